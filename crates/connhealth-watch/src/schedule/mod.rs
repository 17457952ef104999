//! The schedule: when each target is checked, and the loop that starts every check on
//! time.
//!
//! One task on a current-thread runtime of its own owns every target's schedule: a
//! calendar of due times, one entry per target (`due.rs`, `slots.rs`). Each turn it starts everything due,
//! hands the half-open and connect probes (host names included: the library resolves
//! them on its own threads) to the library's [`Prober`](connhealth::Prober) engine in one
//! batch per prober ([`ProbeFeed`]), and takes their results back in batches. `tls`,
//! `send-expect` and `http` checks are a task each on the same runtime. What a kind keeps
//! between checks (`hold`'s held connection, `http`'s kept-alive one) is the kind's own
//! ([`Kept`]); the scheduler only holds it. Every result goes to the sinks' seam
//! ([`Sinks::record`]), which takes its own target's state lock, once: nothing on this
//! path takes a lock shared by all targets.
//!
//! Timing, as HAProxy does it and as the pitfalls demand:
//!
//! * **From the due time, not the end.** A target's next check is due one wait after its
//!   last one was *due*, so intervals never drift by the checks' own durations.
//! * **Waits by state.** `interval` while up, `down_interval` while down, `fast_interval`
//!   while unknown or while a change has started ([`TargetState::next_wait`]).
//! * **Jitter and spread.** Each wait is drawn from `wait × (1 ± jitter)`, and the first
//!   checks of a (re)loaded fleet are spread evenly over each target's interval, so
//!   thousands of targets never start on one tick.
//! * **Timeouts count from the SYN.** A probe's timeout runs from the moment its SYN
//!   leaves ([`ProbeFeed::push`]), never from time spent waiting for a place in the
//!   engine. A probe that could not be sent before the target's next check was due ends
//!   `exhausted`: counted, and late, but never a failure of the target.
//! * **Late checks.** A check that starts (its SYN leaves, or its task starts) more than
//!   max(10 ms, 10 % of its wait) after it was due counts in
//!   `connhealth_checks_late_total` (`timing.rs`).
//!
//! [`TargetState::next_wait`]: crate::state::TargetState::next_wait

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use connhealth::probe::{FeedResult, ProbeFeed};
use tokio::sync::mpsc;
use tokio::time::Sleep;

use self::due::DueTimes;
use self::slots::{Entry, Key, Slots, Tag};
use self::timing::{due_after_reload, early_for, is_late, jittered, on_grid, EARLY};
use crate::checks::{self, CheckResult, Endpoint, Kept, Outcome, Probers, Runner};
use crate::sinks::Sinks;
use crate::state::{Fleet, TargetState, Watched};

mod due;
mod slots;
mod timing;

/// What the daemon tells the scheduler.
#[derive(Debug)]
pub enum Command {
    /// A reload built a new fleet: watch it from now on.
    Fleet(Arc<Fleet>),
    /// Shut down.
    Stop,
}

/// The scheduler's thread.
#[derive(Debug)]
pub struct SchedulerThread {
    thread: std::thread::JoinHandle<()>,
    progress: Progress,
}

impl SchedulerThread {
    /// Waits for the scheduler to stop.
    pub fn join(self) {
        let _ = self.thread.join();
    }

    /// The scheduler's count of turns, to see from another thread that it moves.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }
}

/// How many turns the scheduler's loop has taken: one atomic the loop adds to once a turn
/// (no lock, nothing else on the check path), read by the systemd watchdog, which pings
/// only while it moves. With a heartbeat ([`spawn`]) the loop turns at least that often
/// even when nothing is due, so an idle scheduler moves too and only a stuck one stops.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// The turns taken so far.
    pub fn turns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn turn(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts the scheduler on a thread (and a current-thread runtime) of its own, watching
/// `fleet` until [`Command::Stop`]: its probes go through `probers`, its results to
/// `sinks`. With `heartbeat`, its loop turns at least once each `heartbeat`, due checks
/// or not ([`Progress`]).
pub fn spawn(
    probers: Probers,
    sinks: Sinks,
    fleet: Arc<Fleet>,
    commands: mpsc::UnboundedReceiver<Command>,
    heartbeat: Option<Duration>,
) -> io::Result<SchedulerThread> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let progress = Progress::default();
    let turns = progress.clone();
    let thread = std::thread::Builder::new()
        .name("connhealth-checks".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut scheduler = Scheduler::new(probers, sinks, turns, heartbeat);
                scheduler.swap(&fleet, Instant::now());
                scheduler.run(commands).await;
            });
            // Held connections and check tasks end here, with the runtime.
            runtime.shutdown_timeout(Duration::from_millis(50));
        })?;
    Ok(SchedulerThread { thread, progress })
}

/// What check tasks and held connections report.
enum Event {
    /// A `tls`, `send-expect` or `http` check ended.
    Done {
        key: Key,
        started: Instant,
        result: CheckResult,
    },
    /// A held connection closed: confirm with a half-open probe now.
    HoldClosed { key: Key, why: String },
}

struct Scheduler {
    probers: Probers,
    sinks: Sinks,
    slots: Slots,
    due: DueTimes,
    /// The due times a turn takes out of `due`, kept for their buffer.
    starting: Vec<(Instant, Key)>,
    half_open: ProbeFeed,
    connect: ProbeFeed,
    results: Vec<FeedResult>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    rng: fastrand::Rng,
    progress: Progress,
    heartbeat: Option<Duration>,
}

impl Scheduler {
    fn new(
        probers: Probers,
        sinks: Sinks,
        progress: Progress,
        heartbeat: Option<Duration>,
    ) -> Scheduler {
        let (events_tx, events) = mpsc::unbounded_channel();
        let half_open = probers.half_open.feed();
        let connect = probers.connect.feed();
        Scheduler {
            probers,
            sinks,
            slots: Slots::default(),
            due: DueTimes::new(Instant::now()),
            starting: Vec::new(),
            half_open,
            connect,
            results: Vec::new(),
            events_tx,
            events,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_at: None,
            rng: fastrand::Rng::new(),
            progress,
            heartbeat,
        }
    }

    async fn run(&mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.progress.turn();
            let now = Instant::now();
            self.start_due(now);
            self.half_open.flush();
            self.connect.flush();
            self.arm_timer(now);
            let stop = poll_fn(|cx| self.poll_work(cx, &mut commands)).await;
            if stop {
                return;
            }
        }
    }

    /// Handles whatever is ready: commands, results, events, the timer. Ready(true) to
    /// stop, Ready(false) when something was done, Pending when nothing was ready.
    fn poll_work(
        &mut self,
        cx: &mut Context<'_>,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Poll<bool> {
        let mut worked = false;
        while let Poll::Ready(command) = commands.poll_recv(cx) {
            match command {
                Some(Command::Fleet(fleet)) => self.swap(&fleet, Instant::now()),
                Some(Command::Stop) | None => return Poll::Ready(true),
            }
            worked = true;
        }
        let mut results = std::mem::take(&mut self.results);
        for feed in [&mut self.half_open, &mut self.connect] {
            if feed.poll_done(cx, &mut results).is_ready() {
                worked = true;
            }
        }
        for done in results.drain(..) {
            self.on_probe(done);
        }
        self.results = results;
        while let Poll::Ready(Some(event)) = self.events.poll_recv(cx) {
            self.on_event(event);
            worked = true;
        }
        if self.timer_at.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            self.timer_at = None;
            worked = true;
        }
        if worked {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }

    fn arm_timer(&mut self, now: Instant) {
        let mut next = self.due.next();
        if let Some(heartbeat) = self.heartbeat {
            let latest = now + heartbeat;
            if let Some(armed) = self.timer_at {
                // Armed no later than the heartbeat and the next due time: it stays (one
                // that fires before the next due time only makes an extra turn), rather
                // than being reset on every turn of a busy loop.
                if armed <= latest && next.is_none_or(|at| armed <= at) {
                    return;
                }
            }
            next = Some(next.map_or(latest, |at| at.min(latest)));
        }
        if next != self.timer_at {
            if let Some(at) = next {
                self.timer.as_mut().reset(at.into());
            }
            self.timer_at = next;
        }
    }

    /// Watches `fleet` from now on. A target carried over from the last fleet (the same
    /// `Arc`: unchanged by the reload) keeps its schedule and what its kind keeps; one
    /// whose settings changed (a new `Arc` sharing the old one's state) keeps its slot
    /// and takes the new settings ([`Scheduler::retarget`]); new ones get their first
    /// check spread over their interval; removed ones are dropped, closing what their
    /// kind kept.
    fn swap(&mut self, fleet: &Fleet, now: Instant) {
        let mut old: HashMap<*const Mutex<TargetState>, u32> = HashMap::new();
        for (index, entry) in self.slots.iter() {
            old.insert(entry.target.state_id(), index);
        }
        let count = fleet.targets.len().max(1) as f64;
        for (position, target) in fleet.targets.iter().enumerate() {
            if let Some(index) = old.remove(&target.state_id()) {
                self.retarget(index, target, now);
                continue;
            }
            let endpoint = target.plan.endpoint.clone();
            let interval = target.plan.check.interval;
            let offset = interval.mul_f64(position as f64 / count);
            self.insert(Arc::clone(target), endpoint, now + offset, interval);
        }
        for (_, index) in old {
            self.slots.remove(index);
        }
    }

    /// Puts `target`, the same watched target with new settings or labels, in slot
    /// `index`. The address and kind are the same (else it would be a new target), so the
    /// slot, its key and any check under way stay; the check under way ends with the old
    /// settings and is recorded with the new ones.
    ///
    /// The next check is due one *new* wait after the last one was due, never before
    /// now ([`due_after_reload`]). What the kind keeps is started again with the new
    /// settings (a held connection with the new timeout and dead-peer bound); a task
    /// kind reads its settings from the target when it starts, so the next check uses
    /// the new ones.
    fn retarget(&mut self, index: u32, target: &Arc<Watched>, now: Instant) {
        let events = self.events_tx.clone();
        let Some(entry) = self.slots.at_mut(index) else {
            return;
        };
        if Arc::ptr_eq(&entry.target, target) {
            return;
        }
        let settings_changed = entry.target.plan.check != target.plan.check;
        entry.target = Arc::clone(target);
        let check = &target.plan.check;
        (entry.timeout, entry.jitter) = (check.timeout, check.jitter);
        let key = Key {
            index,
            generation: entry.generation,
        };
        if settings_changed {
            // Dropping the old one closes what it kept (a held connection, without a
            // close event): the new one starts at once with the new settings.
            entry.kept = Arc::new(keep(&events, key, &entry.endpoint, check));
        }
        if !settings_changed || entry.running {
            // A check under way schedules the next one, with the new wait, when it ends.
            return;
        }
        let wait = entry.target.state().next_wait(&entry.target.plan.check);
        let due = due_after_reload(entry.due, entry.wait, wait, now);
        if due != entry.due {
            entry.due = due;
            entry.wait = wait;
            self.due.push(due, key);
        }
    }

    fn insert(&mut self, target: Arc<Watched>, endpoint: Endpoint, due: Instant, wait: Duration) {
        let key = self.slots.next_key();
        let check = &target.plan.check;
        let kept = Arc::new(keep(&self.events_tx, key, &endpoint, check));
        let (runner, timeout, jitter) = (Runner::of(&check.check), check.timeout, check.jitter);
        self.slots.insert(Entry {
            target,
            endpoint,
            runner,
            timeout,
            jitter,
            generation: key.generation,
            due,
            wait,
            slot: due,
            running: false,
            kept,
        });
        self.due.push(due, key);
    }

    /// Starts every check due by `now`, and those due within [`EARLY`] after it (at most
    /// [`early_for`] their wait).
    fn start_due(&mut self, now: Instant) {
        let horizon = now + EARLY;
        if self.due.next().is_none_or(|first| first > now) {
            return;
        }
        let mut starting = std::mem::take(&mut self.starting);
        self.due.take_due(horizon, &mut starting);
        for (at, key) in starting.drain(..) {
            let Some(entry) = self.slots.get_mut(key) else {
                continue;
            };
            if entry.running || entry.due != at {
                continue;
            }
            if at > now + early_for(entry.wait) {
                // A short wait: not this early; the next turn takes it.
                self.due.push(at, key);
                continue;
            }
            entry.running = true;
            let (runner, timeout, wait) = (entry.runner, entry.timeout, entry.wait);
            // Not sent by the time the next check would be due: give up, `exhausted`.
            let start_by = at + wait.max(timeout);
            let feed = match runner {
                Runner::HalfOpen => &mut self.half_open,
                Runner::Connect => &mut self.connect,
                Runner::Task => {
                    self.spawn_check(key, now);
                    continue;
                }
            };
            let Endpoint::Tcp(target) = &entry.endpoint else {
                continue; // never: a probed kind's endpoint is host:port
            };
            let tag = Tag {
                key,
                confirm: false,
            };
            feed.push_target(tag.encode(), target, timeout, Some(start_by));
        }
        self.starting = starting;
    }

    /// A `tls`, `send-expect` or `http` check: a task of its own, reporting back.
    fn spawn_check(&self, key: Key, now: Instant) {
        let Some(entry) = self.slots.get(key) else {
            return;
        };
        let target = Arc::clone(&entry.target);
        let endpoint = entry.endpoint.clone();
        let kept = Arc::clone(&entry.kept);
        let (probers, events) = (self.probers.clone(), self.events_tx.clone());
        tokio::spawn(async move {
            let started = Instant::now().max(now);
            let plan = &target.plan.check;
            let result = checks::run(&probers, &endpoint, plan, &kept, plan.timeout).await;
            let _ = events.send(Event::Done {
                key,
                started,
                result,
            });
        });
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Done {
                key,
                started,
                result,
            } => self.finish(key, Some(started), result),
            Event::HoldClosed { key, why } => {
                let Some(entry) = self.slots.get(key) else {
                    return;
                };
                let Endpoint::Tcp(target) = &entry.endpoint else {
                    return;
                };
                tracing::debug!(target = %entry.target.plan.name, "{why}; confirming with a probe");
                let tag = Tag { key, confirm: true };
                self.half_open
                    .push_target(tag.encode(), target, entry.timeout, None);
            }
        }
    }

    fn on_probe(&mut self, done: FeedResult) {
        let tag = Tag::decode(done.tag);
        let Some(entry) = self.slots.get(tag.key) else {
            return;
        };
        let mut result = CheckResult::of_probe(&done.result);
        result.dns_time = done.lookup;
        if result.outcome != Outcome::Resolve {
            result.ip_protocol = Some(checks::ip_protocol(done.addr));
        }
        if let Some(hold) = entry.kept.hold() {
            hold.after_probe(&mut result, tag.confirm);
        }
        if tag.confirm {
            // Not a scheduled check: recorded, and the schedule stays as it is.
            self.record(tag.key, result);
            return;
        }
        self.finish(tag.key, done.sent, result);
    }

    /// A scheduled check ended: count it, record it, schedule the next one from this
    /// one's due time.
    fn finish(&mut self, key: Key, started: Option<Instant>, result: CheckResult) {
        let now = Instant::now();
        let Some(entry) = self.slots.get_mut(key) else {
            return;
        };
        entry.running = false;
        let late = match started {
            Some(started) => is_late(entry.due, entry.wait, started),
            // Never started: the checker's own fault, so late by definition.
            None => result.outcome == Outcome::Exhausted,
        };
        if late {
            self.sinks.late_check();
        }
        let Some(wait) = self.record(key, result) else {
            return;
        };
        let Some(entry) = self.slots.get_mut(key) else {
            return;
        };
        // Back to `interval` after a change: to the target's own place in the interval.
        let wait = if wait == entry.target.plan.check.interval && entry.wait != wait {
            on_grid(entry.slot, wait, entry.due + wait).saturating_duration_since(entry.due)
        } else {
            wait
        };
        let next = entry.due + jittered(&mut self.rng, wait, entry.jitter);
        if next < now {
            // This check ran past its successor's due time (a timeout longer than the
            // interval): the successor starts now, late by the overlap.
            self.sinks.late_check();
        }
        let due = next.max(now);
        entry.due = due;
        entry.wait = wait;
        self.due.push(due, key);
    }

    /// Hands `result` to the sinks' seam (the target's state, then the sinks), and
    /// returns the wait before the next check.
    fn record(&mut self, key: Key, result: CheckResult) -> Option<Duration> {
        let entry = self.slots.get(key)?;
        Some(self.sinks.record(&entry.target, result))
    }
}

/// What `check`'s kind keeps for the target in slot `key` at `endpoint`, reporting a held
/// connection's close to the scheduler.
fn keep(
    events: &mpsc::UnboundedSender<Event>,
    key: Key,
    endpoint: &Endpoint,
    check: &crate::config::CheckPlan,
) -> Kept {
    let events = events.clone();
    Kept::start(check, endpoint, move |why| {
        let _ = events.send(Event::HoldClosed { key, why });
    })
}
