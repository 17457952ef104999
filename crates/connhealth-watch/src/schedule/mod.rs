//! The schedule: when each target is checked, and the loop that starts every check on
//! time.
//!
//! One task on a current-thread runtime of its own owns every target's schedule: a heap
//! of due times, one entry per target. Each turn it starts everything due, hands the
//! half-open and connect probes to the library's [`Prober`](connhealth::Prober) engine in
//! one batch per prober ([`ProbeFeed`]), and takes their results back in batches. `tls`
//! and `send-expect` checks are a task each on the same runtime, and `hold` keeps a task
//! per target ([`Hold`]). Nothing on this path takes a lock shared by all targets: each
//! result takes its own target's status lock, once.
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
//!   `connhealth_checks_late_total`.
//!
//! [`TargetState::next_wait`]: crate::state::TargetState::next_wait

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use connhealth::probe::{FeedResult, ProbeFeed, Target as Address};
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::checks::hold::{self, Hold};
use crate::checks::{self, CheckResult, Outcome, Probers};
use crate::config::{CheckKind, CheckPlan};
use crate::sinks::Sinks;
use crate::state::{Fleet, TargetState, Watched};

/// When the scheduler wakes for a check, it also starts the checks due within this much
/// after it. Every check then costs a share of one wake-up of the scheduler and of the
/// probe engine, rather than one each: at 10k checks/s, wakes carry about 50 checks
/// instead of one, and the cross-thread wake-ups were a third of the daemon's CPU. A
/// check never starts late for it, only a few milliseconds early, and its next check is
/// still due one wait after this one was *due*, so nothing drifts.
const EARLY: Duration = Duration::from_millis(5);

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
}

impl SchedulerThread {
    /// Waits for the scheduler to stop.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Starts the scheduler on a thread (and a current-thread runtime) of its own, watching
/// `fleet` until [`Command::Stop`].
pub fn spawn(
    probers: Probers,
    sinks: Sinks,
    fleet: Arc<Fleet>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> io::Result<SchedulerThread> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("connhealth-checks".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut scheduler = Scheduler::new(probers, sinks);
                scheduler.swap(&fleet, Instant::now());
                scheduler.run(commands).await;
            });
            // Held connections and check tasks end here, with the runtime.
            runtime.shutdown_timeout(Duration::from_millis(50));
        })?;
    Ok(SchedulerThread { thread })
}

/// A slot's key in the heap and in probe tags: its index and the generation of the
/// target in it, so that a result for a target removed by a reload misses the target
/// that took its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    index: u32,
    generation: u32,
}

/// A probe's tag: the key, and whether it confirms a held connection's close.
#[derive(Debug, Clone, Copy)]
struct Tag {
    key: Key,
    confirm: bool,
}

impl Tag {
    const CONFIRM: u64 = 1 << 63;

    fn encode(self) -> u64 {
        let confirm = if self.confirm { Tag::CONFIRM } else { 0 };
        u64::from(self.key.index) | u64::from(self.key.generation & 0x7fff_ffff) << 32 | confirm
    }

    fn decode(tag: u64) -> Tag {
        Tag {
            key: Key {
                index: tag as u32,
                generation: (tag >> 32) as u32 & 0x7fff_ffff,
            },
            confirm: tag & Tag::CONFIRM != 0,
        }
    }
}

/// One watched target, as the scheduler sees it.
struct Entry {
    target: Arc<Watched>,
    address: Address,
    /// The target's kind, timeout and jitter, copied here: every check reads them, and
    /// reading them through the `Arc` cost a cache miss per check (6 % of the daemon's
    /// CPU at 10k checks/s).
    kind: CheckKind,
    timeout: Duration,
    jitter: f64,
    generation: u32,
    /// When the current (or next) scheduled check is due.
    due: Instant,
    /// The wait that made it due: what lateness is measured against.
    wait: Duration,
    /// A scheduled check is under way; the next is scheduled when it ends.
    running: bool,
    /// The time name resolution took for the check under way.
    dns_time: Duration,
    /// A name's other addresses, for the probe under way to try next after a refusal,
    /// last one first; and when that probe's time is up.
    fallback: Vec<SocketAddr>,
    deadline: Instant,
    /// `hold`: the held connection.
    hold: Option<Hold>,
}

/// What check tasks, resolvers and held connections report.
enum Event {
    /// A `tls` or `send-expect` check ended.
    Done {
        key: Key,
        started: Instant,
        result: CheckResult,
    },
    /// The name of a probed target resolved: probe its addresses now, in order.
    Resolved {
        key: Key,
        resolved: checks::Resolved,
        /// When the check's timeout, which counts from the start of the lookup, is up.
        deadline: Instant,
    },
    /// A name did not resolve in time.
    Unresolved { key: Key, result: CheckResult },
    /// A held connection closed: confirm with a half-open probe now.
    HoldClosed { key: Key, why: String },
}

struct Scheduler {
    probers: Probers,
    sinks: Sinks,
    slots: Vec<Option<Entry>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    due: BinaryHeap<Reverse<(Instant, Key)>>,
    half_open: ProbeFeed,
    connect: ProbeFeed,
    results: Vec<FeedResult>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    rng: fastrand::Rng,
}

impl Scheduler {
    fn new(probers: Probers, sinks: Sinks) -> Scheduler {
        let (events_tx, events) = mpsc::unbounded_channel();
        let half_open = probers.half_open.feed();
        let connect = probers.connect.feed();
        Scheduler {
            probers,
            sinks,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            due: BinaryHeap::new(),
            half_open,
            connect,
            results: Vec::new(),
            events_tx,
            events,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_at: None,
            rng: fastrand::Rng::new(),
        }
    }

    async fn run(&mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.start_due(Instant::now());
            self.half_open.flush();
            self.connect.flush();
            self.arm_timer();
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
        for feed in [0, 1] {
            let feed = if feed == 0 {
                &mut self.half_open
            } else {
                &mut self.connect
            };
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

    fn arm_timer(&mut self) {
        let next = self.due.peek().map(|Reverse((at, _))| *at);
        if next != self.timer_at {
            if let Some(at) = next {
                self.timer.as_mut().reset(at.into());
            }
            self.timer_at = next;
        }
    }

    /// Watches `fleet` from now on. A target carried over from the last fleet (the same
    /// `Arc`: unchanged by the reload) keeps its schedule and its held connection; one
    /// whose settings changed (a new `Arc` sharing the old one's status) keeps its slot
    /// and takes the new settings ([`Scheduler::retarget`]); new ones get their first
    /// check spread over their interval; removed ones are dropped, closing their held
    /// connections.
    fn swap(&mut self, fleet: &Fleet, now: Instant) {
        let mut old: HashMap<*const Mutex<TargetState>, u32> = HashMap::new();
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(entry) = slot {
                old.insert(entry.target.state_id(), index as u32);
            }
        }
        let count = fleet.targets.len().max(1) as f64;
        for (position, target) in fleet.targets.iter().enumerate() {
            if let Some(index) = old.remove(&target.state_id()) {
                self.retarget(index, target, now);
                continue;
            }
            let Ok(address) = Address::parse(&target.plan.address) else {
                // The config validated it; a target that does not parse is never checked.
                tracing::error!(target = %target.plan.name, "unparsable address; not checked");
                continue;
            };
            let interval = target.plan.check.interval;
            let offset = interval.mul_f64(position as f64 / count);
            self.insert(Arc::clone(target), address, now + offset, interval);
        }
        for (_, index) in old {
            self.remove(index);
        }
    }

    /// Puts `target`, the same watched target with new settings or labels, in slot
    /// `index`. The address and kind are the same (else it would be a new target), so the
    /// slot, its key and any check under way stay; the check under way ends with the old
    /// settings and is recorded with the new ones.
    ///
    /// The next check is due one *new* wait after the last one was due (never before
    /// now): a reload from 1 h to 10 s does not wait out the hour, and one from 10 s to
    /// 1 h does not check again at 10 s. A held connection is opened again with the new
    /// timeout and dead-peer bound; a `tls` or `send-expect` check reads its settings
    /// from the target when it starts, so the next one uses the new ones.
    fn retarget(&mut self, index: u32, target: &Arc<Watched>, now: Instant) {
        let Some(Some(entry)) = self.slots.get_mut(index as usize) else {
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
        if settings_changed && entry.hold.is_some() {
            // Dropping the old one aborts its task and closes its connection, without a
            // close event: the new one connects at once with the new settings.
            entry.hold = Some(held(&self.events_tx, key, entry.address.clone(), check));
        }
        let Some(entry) = self.entry(key) else {
            return;
        };
        if !settings_changed || entry.running {
            // A check under way schedules the next one, with the new wait, when it ends.
            return;
        }
        let wait = entry.target.state().next_wait(&entry.target.plan.check);
        let last_due = entry.due.checked_sub(entry.wait).unwrap_or(entry.due);
        let due = (last_due + wait).max(now);
        if due != entry.due {
            entry.due = due;
            entry.wait = wait;
            self.due.push(Reverse((due, key)));
        }
    }

    fn insert(&mut self, target: Arc<Watched>, address: Address, due: Instant, wait: Duration) {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.generations[index as usize];
        let key = Key { index, generation };
        let hold = (target.plan.check.kind == CheckKind::Hold)
            .then(|| held(&self.events_tx, key, address.clone(), &target.plan.check));
        let check = &target.plan.check;
        let (kind, timeout, jitter) = (check.kind, check.timeout, check.jitter);
        self.slots[index as usize] = Some(Entry {
            target,
            address,
            kind,
            timeout,
            jitter,
            generation,
            due,
            wait,
            running: false,
            dns_time: Duration::ZERO,
            fallback: Vec::new(),
            deadline: due,
            hold,
        });
        self.due.push(Reverse((due, key)));
    }

    fn remove(&mut self, index: u32) {
        // Dropping the entry drops its held connection; stale heap entries, results and
        // events miss it by generation.
        self.slots[index as usize] = None;
        let generation = &mut self.generations[index as usize];
        *generation = generation.wrapping_add(1) & 0x7fff_ffff;
        self.free.push(index);
    }

    fn entry(&mut self, key: Key) -> Option<&mut Entry> {
        self.slots
            .get_mut(key.index as usize)?
            .as_mut()
            .filter(|entry| entry.generation == key.generation)
    }

    /// Starts every check due by `now`, and those due within [`EARLY`] after it.
    fn start_due(&mut self, now: Instant) {
        let horizon = now + EARLY;
        let Some(&Reverse((first, _))) = self.due.peek() else {
            return;
        };
        if first > now {
            return;
        }
        while let Some(&Reverse((at, key))) = self.due.peek() {
            if at > horizon {
                break;
            }
            self.due.pop();
            let Some(entry) = self.entry(key) else {
                continue;
            };
            if entry.running || entry.due != at {
                continue;
            }
            entry.running = true;
            entry.dns_time = Duration::ZERO;
            entry.fallback.clear();
            let (kind, timeout, wait) = (entry.kind, entry.timeout, entry.wait);
            // Not sent by the time the next check would be due: give up, `exhausted`.
            let start_by = at + wait.max(timeout);
            // An address is copied; only a name is cloned, to be resolved.
            let address = match &entry.address {
                Address::Addr(addr) => Ok(*addr),
                named => Err(named.clone()),
            };
            match (kind, address) {
                (CheckKind::HalfOpen | CheckKind::Connect | CheckKind::Hold, Ok(addr)) => {
                    let tag = Tag {
                        key,
                        confirm: false,
                    };
                    self.feed(kind)
                        .push(tag.encode(), addr, timeout, Some(start_by));
                }
                (CheckKind::HalfOpen | CheckKind::Connect | CheckKind::Hold, Err(named)) => {
                    self.resolve_then_probe(key, named, timeout);
                }
                (CheckKind::Tls | CheckKind::SendExpect, address) => {
                    let address = address.map_or_else(|named| named, Address::Addr);
                    self.spawn_check(key, address, now);
                }
            }
        }
    }

    fn feed(&mut self, kind: CheckKind) -> &mut ProbeFeed {
        match kind {
            CheckKind::Connect => &mut self.connect,
            _ => &mut self.half_open,
        }
    }

    /// A probed target named by a host name: resolve it (within the timeout) off the
    /// scheduler's turn, then probe what it resolved to with what is left.
    fn resolve_then_probe(&self, key: Key, address: Address, timeout: Duration) {
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + timeout;
            let event = match checks::resolve(&address, timeout).await {
                Ok(resolved) => Event::Resolved {
                    key,
                    resolved,
                    deadline,
                },
                Err(result) => Event::Unresolved { key, result },
            };
            let _ = events.send(event);
        });
    }

    /// A `tls` or `send-expect` check: a task of its own, reporting back.
    fn spawn_check(&self, key: Key, address: Address, now: Instant) {
        let Some(Some(entry)) = self.slots.get(key.index as usize) else {
            return;
        };
        let target = Arc::clone(&entry.target);
        let (probers, events) = (self.probers.clone(), self.events_tx.clone());
        tokio::spawn(async move {
            let started = Instant::now().max(now);
            let plan = &target.plan.check;
            let result = checks::run(&probers, &address, plan, plan.timeout).await;
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
            Event::Resolved {
                key,
                resolved,
                deadline,
            } => {
                let Some(entry) = self.entry(key) else {
                    return;
                };
                let mut addrs = resolved.addrs;
                addrs.reverse();
                let Some(first) = addrs.pop() else {
                    return;
                };
                entry.dns_time = resolved.dns_time;
                entry.fallback = addrs;
                entry.deadline = deadline;
                let (kind, start_by) = (entry.kind, entry.due + entry.wait);
                let timeout = deadline.saturating_duration_since(Instant::now());
                let tag = Tag {
                    key,
                    confirm: false,
                };
                self.feed(kind)
                    .push(tag.encode(), first, timeout, Some(start_by));
            }
            Event::Unresolved { key, result } => self.finish(key, None, result),
            Event::HoldClosed { key, why } => {
                let Some(entry) = self.entry(key) else {
                    return;
                };
                tracing::debug!(target = %entry.target.plan.name, "{why}; confirming with a probe");
                let timeout = entry.timeout;
                match entry.address.clone() {
                    Address::Addr(addr) => {
                        let tag = Tag { key, confirm: true };
                        self.half_open.push(tag.encode(), addr, timeout, None);
                    }
                    // A name: the next scheduled check resolves and probes it.
                    _ => {
                        if let Some(hold) = &entry.hold {
                            hold.reconnect();
                        }
                    }
                }
            }
        }
    }

    fn on_probe(&mut self, done: FeedResult) {
        let tag = Tag::decode(done.tag);
        let Some(entry) = self.entry(tag.key) else {
            return;
        };
        let refused =
            matches!(&done.result, Err(err) if Outcome::of_probe_error(err).tries_next_address());
        if refused && !tag.confirm && !entry.fallback.is_empty() {
            // A name's next address may answer ("localhost": ::1 first, the server on
            // 127.0.0.1 only), within what is left of the check's time.
            let left = entry.deadline.saturating_duration_since(Instant::now());
            if let (Some(next), false) = (entry.fallback.pop(), left.is_zero()) {
                let kind = entry.kind;
                self.feed(kind).push(done.tag, next, left, None);
                return;
            }
        }
        let mut result = CheckResult::of_probe(&done.result);
        result.dns_time = entry.dns_time;
        result.ip_protocol = Some(checks::ip_protocol(done.addr));
        if let Some(hold) = &entry.hold {
            if result.is_ok() {
                hold.reconnect();
            }
        }
        if tag.confirm {
            // The held connection closed and nothing answers: the server is gone, and
            // there is no reason to wait for `fall` scheduled checks to say so.
            result.conclusive = result.outcome.is_failure();
            self.record(tag.key, result);
            return;
        }
        let sent = done.sent;
        self.finish(tag.key, sent, result);
    }

    /// A scheduled check ended: count it, record it, schedule the next one from this
    /// one's due time.
    fn finish(&mut self, key: Key, started: Option<Instant>, result: CheckResult) {
        let now = Instant::now();
        let Some(entry) = self.entry(key) else {
            return;
        };
        entry.running = false;
        let late_after = (entry.wait / 10).max(Duration::from_millis(10));
        let late = match started {
            Some(started) => started.saturating_duration_since(entry.due) > late_after,
            // Never started: the checker's own fault, so late by definition.
            None => result.outcome == Outcome::Exhausted,
        };
        if late {
            self.sinks.late_check();
        }
        let Some(wait) = self.record(key, result) else {
            return;
        };
        let jitter = self.jitter(key, wait);
        let Some(entry) = self.entry(key) else {
            return;
        };
        let due = (entry.due + jitter).max(now);
        entry.due = due;
        entry.wait = wait;
        self.due.push(Reverse((due, key)));
    }

    /// Hands `result` to the sinks' seam (the target's state, then the sinks), and
    /// returns the wait before the next check.
    fn record(&mut self, key: Key, result: CheckResult) -> Option<Duration> {
        let entry = self.slots.get(key.index as usize)?.as_ref()?;
        let target = (entry.generation == key.generation).then_some(&entry.target)?;
        Some(self.sinks.record(target, result))
    }

    /// The target's `wait × (1 ± jitter)`.
    fn jitter(&mut self, key: Key, wait: Duration) -> Duration {
        let jitter = self
            .slots
            .get(key.index as usize)
            .and_then(Option::as_ref)
            .map_or(0.0, |entry| entry.jitter);
        jittered(&mut self.rng, wait, jitter)
    }
}

/// A held connection for the target in slot `key`, with `check`'s timeout and dead-peer
/// bound, reporting its closes to the scheduler.
fn held(
    events: &mpsc::UnboundedSender<Event>,
    key: Key,
    address: Address,
    check: &CheckPlan,
) -> Hold {
    let events = events.clone();
    Hold::spawn(
        address,
        check.timeout,
        hold::dead_peer_bound(check.interval, check.fall),
        move |why| {
            let _ = events.send(Event::HoldClosed { key, why });
        },
    )
}

/// `wait × (1 ± jitter)`, drawn uniformly.
fn jittered(rng: &mut fastrand::Rng, wait: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return wait;
    }
    let factor = 1.0 + jitter * (rng.f64() * 2.0 - 1.0);
    wait.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_jittered_within_the_bound() {
        let wait = Duration::from_millis(1000);
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut low, mut high) = (wait, wait);
        for _ in 0..1000 {
            let jittered = jittered(&mut rng, wait, 0.1);
            assert!((900..=1100).contains(&jittered.as_millis()), "{jittered:?}");
            low = low.min(jittered);
            high = high.max(jittered);
        }
        assert!(low < Duration::from_millis(920) && high > Duration::from_millis(1080));
        assert_eq!(jittered(&mut rng, wait, 0.0), wait);
    }

    #[test]
    fn tags_round_trip() {
        for (index, generation, confirm) in
            [(0, 0, false), (7, 3, true), (u32::MAX, 0x7fff_ffff, true)]
        {
            let tag = Tag {
                key: Key { index, generation },
                confirm,
            };
            let back = Tag::decode(tag.encode());
            assert_eq!((back.key, back.confirm), (tag.key, confirm));
        }
    }
}
