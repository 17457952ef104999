//! One receiver as a [`Sink`]: its own thread and queue, so it delivers in order and a
//! slow or dead receiver holds up no one else.
//!
//! A transition becomes a notification when it differs from what the receiver will
//! have been told once its queue drains (a receiver never told counts as told `up`):
//! so `unknown -> down` is sent, `unknown -> up` is not, and after a down is sent, the
//! up is. The notification is *held* for `for`; a transition back before then cancels
//! it, and nothing is sent. A held notification whose `for` has passed is sent unless
//! its target is muted ([`Mutes`]): then it waits for the mute to end, and is sent then
//! if the target has not come back meanwhile. Sent notifications go out one at a time,
//! in the order they became due; a failed POST is tried again after 1 s, 2 s, 4 s, ...
//! up to 60 s, and the ones behind it wait.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::alertmanager;
use super::mute::Mutes;
use super::notice::Notice;
use super::post::Poster;
use super::webhook;
use super::Watching;
use crate::config::{ReceiverKind, ReceiverPlan};
use crate::sinks::{Event, Sink};
use crate::state::Health;
use crate::store::{self, Store};

/// The first wait after a failed POST; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How often a muted notification looks again whether its mute still holds (a silence
/// lifted early is seen within this).
const MUTE_RECHECK: Duration = Duration::from_secs(5);

/// A receiver's counters, shown in `/metrics`.
#[derive(Debug)]
pub struct ReceiverCounters {
    /// The `receiver` label.
    pub name: &'static str,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl ReceiverCounters {
    pub(crate) fn new(name: &'static str) -> ReceiverCounters {
        ReceiverCounters {
            name,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Notifications the receiver took (a 2xx answer).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// POSTs that failed: no connection, no answer within 10 s, or an answer other than
    /// 2xx. Each failed try counts.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// A receiver's settings, which a reload may replace (its name and kind stay).
pub(crate) type Settings = Arc<RwLock<Arc<ReceiverPlan>>>;

/// Alertmanager: the most alerts in one POST.
const AM_BATCH: usize = 500;

/// A notification not yet delivered.
#[derive(Debug)]
struct Pending {
    /// Its row in the outbox (0 without a store).
    id: i64,
    notice: Notice,
    /// When its `for` ends.
    due: SystemTime,
    /// Held: when to look at it again (its `for` or its mute ends); `None`: at once.
    look_at: Option<Instant>,
}

/// One receiver's sink.
pub(crate) struct Receiver {
    /// The `receiver` label, as the config names it.
    receiver: &'static str,
    /// `alerts/NAME`: the `sink` label, apart from the other sinks' names whatever the
    /// receiver is called.
    name: &'static str,
    settings: Settings,
    poster: Poster,
    mutes: Arc<Mutes>,
    watching: Arc<Watching>,
    counters: Arc<ReceiverCounters>,
    store: Option<Arc<Store>>,
    /// The last notice delivered, per target.
    told: HashMap<String, Notice>,
    /// Waiting for their `for`, or for a mute to end, in the order seen.
    held: Vec<Pending>,
    /// Due, in the order they became due: sent from the front.
    queue: VecDeque<Pending>,
    /// Per target in `queue`: the state its last queued notification tells, and how
    /// many it has there (what [`Receiver::expected`] reads without a scan).
    queued: HashMap<String, (Health, usize)>,
    /// `held` changed since [`Receiver::release`] last looked.
    held_changed: bool,
    /// Some target has two held notifications (read back after a restart).
    held_twice: bool,
    /// When the earliest held notification needs a look.
    next_look: Option<Instant>,
    /// After a failed POST: when to try again, and the wait that led there.
    retry: Option<(Instant, Duration)>,
    /// Alertmanager: when to post the firing alerts again.
    refresh_at: Option<Instant>,
}

impl Receiver {
    /// A receiver; with a store, its outbox and what it was last told are read back.
    pub(crate) fn new(
        name: &'static str,
        settings: Settings,
        mutes: Arc<Mutes>,
        watching: Arc<Watching>,
        counters: Arc<ReceiverCounters>,
        store: Option<Arc<Store>>,
    ) -> Result<Receiver, String> {
        let poster =
            Poster::new().map_err(|err| format!("cannot start the {name} receiver: {err}"))?;
        // A sink's name is static: receivers start once, with the daemon, so this leaks a
        // few bytes once per receiver and process.
        let sink_name: &'static str = Box::leak(format!("alerts/{name}").into_boxed_str());
        let mut receiver = Receiver {
            receiver: name,
            name: sink_name,
            settings,
            poster,
            mutes,
            watching,
            counters,
            store,
            told: HashMap::new(),
            held: Vec::new(),
            queue: VecDeque::new(),
            queued: HashMap::new(),
            held_changed: false,
            held_twice: false,
            next_look: None,
            retry: None,
            refresh_at: None,
        };
        if let Some(store) = &receiver.store {
            let store::alerts::Kept { outbox, told } = store::alerts::load(&store.lock(), name)
                .map_err(|err| {
                    format!(
                        "cannot read the {name} receiver's pending alerts from {}: {err}",
                        store.path().display()
                    )
                })?;
            for (target, notice) in told {
                if let Ok(notice) = serde_json::from_str::<Notice>(&notice) {
                    receiver.told.insert(target, notice);
                }
            }
            let mut seen = HashSet::new();
            for row in outbox {
                match serde_json::from_str::<Notice>(&row.notice) {
                    Ok(notice) => {
                        receiver.held_twice |= !seen.insert(notice.target.clone());
                        receiver.held_changed = true;
                        receiver.held.push(Pending {
                            id: row.id,
                            notice,
                            due: row.due,
                            look_at: None,
                        });
                    }
                    Err(_) => receiver.forget(row.id),
                }
            }
            if !receiver.held.is_empty() {
                tracing::info!(
                    receiver = name,
                    pending = receiver.held.len(),
                    "alert receiver {name}: {} notification(s) not yet delivered before the restart, sending them",
                    receiver.held.len()
                );
            }
            if receiver.firing().next().is_some() {
                receiver.refresh_at = Some(Instant::now());
            }
        }
        Ok(receiver)
    }

    /// Its settings now.
    fn settings(&self) -> Arc<ReceiverPlan> {
        Arc::clone(&self.settings.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// What the receiver will have been told of `target` once its queue drains.
    fn expected(&self, target: &str) -> Health {
        self.queued
            .get(target)
            .map(|(health, _)| *health)
            .or_else(|| self.told.get(target).map(Notice::health))
            .unwrap_or(Health::Up)
    }

    /// Alertmanager's firing alerts: the targets last told down.
    fn firing(&self) -> impl Iterator<Item = &Notice> {
        self.told.values().filter(|n| n.health() == Health::Down)
    }

    fn changed(&mut self, notice: Notice) {
        let to = notice.health();
        if notice.to != Health::Up.name() && notice.to != Health::Down.name() {
            return;
        }
        if let Some(i) = self
            .held
            .iter()
            .rposition(|p| p.notice.target == notice.target)
        {
            if self.held[i].notice.health() == to {
                return; // already held (read back after a restart): its `for` goes on
            }
            // Back before its `for` ended: a flap, and nothing is sent.
            let cancelled = self.held.remove(i);
            self.held_changed = true;
            self.forget(cancelled.id);
        }
        if to == self.expected(&notice.target) {
            return;
        }
        let due = notice.at.time() + self.settings().hold;
        let id = match &self.store {
            Some(store) => store::alerts::hold(
                &store.lock(),
                self.receiver,
                &notice.target,
                due,
                &notice.json(),
            )
            .unwrap_or_else(|err| {
                tracing::warn!(
                    receiver = self.receiver,
                    "cannot keep a pending alert in the store: {err}"
                );
                0
            }),
            None => 0,
        };
        self.held_changed = true;
        self.held.push(Pending {
            id,
            notice,
            due,
            look_at: None,
        });
    }

    fn forget(&self, id: i64) {
        if let (Some(store), true) = (&self.store, id > 0) {
            if let Err(err) = store::alerts::cancel(&store.lock(), id) {
                tracing::warn!(
                    receiver = self.receiver,
                    "cannot remove a cancelled alert from the store: {err}"
                );
            }
        }
    }

    /// Moves the held notifications whose `for` has passed and whose target is not
    /// muted to the queue; the next time one of the others needs a look.
    ///
    /// A held notification is looked at again only when its time comes (the end of its
    /// `for`, or of its mute, at most [`MUTE_RECHECK`] ahead): a whole fleet held by a
    /// maintenance window costs a pass of comparisons per transition, not a mute
    /// evaluation per held notification.
    fn release(&mut self, now: Instant) -> Option<Instant> {
        if !self.held_changed && self.next_look.is_none_or(|at| now < at) {
            return self.next_look;
        }
        self.held_changed = false;
        let wall = SystemTime::now();
        let mut wake: Option<Instant> = None;
        // Only after a restart may a target have two held notifications; then the later
        // waits for the earlier, to keep their order.
        let mut waiting: Option<HashSet<String>> = self.held_twice.then(HashSet::new);
        let mut i = 0;
        while i < self.held.len() {
            let pending = &mut self.held[i];
            let target = &pending.notice.target;
            let blocked = waiting.as_ref().is_some_and(|w| w.contains(target));
            let look = match pending.look_at {
                _ if blocked => None,
                Some(at) if at > now => Some(at),
                _ => {
                    let left = if let Ok(left) = pending.due.duration_since(wall) {
                        Some(left)
                    } else {
                        self.mutes
                            .muted_by(target, &pending.notice.labels, wall)
                            .map(|muted| {
                                let left = muted.until().duration_since(wall).unwrap_or_default();
                                left.min(MUTE_RECHECK)
                            })
                    };
                    match left {
                        Some(left) => {
                            let at = now + left.max(Duration::from_millis(1));
                            pending.look_at = Some(at);
                            Some(at)
                        }
                        None => {
                            let pending = self.held.remove(i);
                            let queued = self
                                .queued
                                .entry(pending.notice.target.clone())
                                .or_insert((Health::Up, 0));
                            *queued = (pending.notice.health(), queued.1 + 1);
                            self.queue.push_back(pending);
                            continue;
                        }
                    }
                }
            };
            if let Some(at) = look {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            if let Some(waiting) = &mut waiting {
                waiting.insert(target.clone());
            }
            i += 1;
        }
        if self.held.is_empty() {
            self.held_twice = false;
        }
        self.next_look = wake;
        wake
    }

    /// Sends the queue in order until it is empty or a POST fails. Alertmanager takes
    /// several alerts per POST: up to [`AM_BATCH`] in a row, of distinct targets.
    fn deliver_queue(&mut self, now: Instant) -> Option<Instant> {
        if let Some((at, _)) = self.retry {
            if at > now && !self.queue.is_empty() {
                return Some(at);
            }
        }
        while let Some(first) = self.queue.front() {
            let settings = self.settings();
            let (result, taken) = match &settings.kind {
                ReceiverKind::Webhook { url, headers } => {
                    (webhook::send(&self.poster, url, headers, &first.notice), 1)
                }
                ReceiverKind::Alertmanager { url } => {
                    let mut targets = HashSet::new();
                    let batch: Vec<(&Notice, Option<&Notice>)> = self
                        .queue
                        .iter()
                        .take(AM_BATCH)
                        .take_while(|p| targets.insert(p.notice.target.as_str()))
                        .map(|p| (&p.notice, self.told.get(&p.notice.target)))
                        .collect();
                    let taken = batch.len();
                    (alertmanager::send(&self.poster, url, batch), taken)
                }
            };
            if let Err(why) = result {
                return Some(self.failed(&why));
            }
            self.retry = None;
            self.counters
                .sent
                .fetch_add(taken as u64, Ordering::Relaxed);
            for _ in 0..taken {
                let Some(pending) = self.queue.pop_front() else {
                    break;
                };
                if let Some(queued) = self.queued.get_mut(&pending.notice.target) {
                    queued.1 -= 1;
                    if queued.1 == 0 {
                        self.queued.remove(&pending.notice.target);
                    }
                }
                self.delivered(pending);
            }
        }
        None
    }

    /// Records `pending` as taken: out of the outbox, and what its target was last told.
    fn delivered(&mut self, pending: Pending) {
        if let Some(store) = &self.store {
            let written = store::alerts::delivered(
                &store.lock(),
                pending.id,
                self.receiver,
                &pending.notice.target,
                &pending.notice.json(),
            );
            if let Err(err) = written {
                tracing::warn!(
                    receiver = self.receiver,
                    "cannot record a delivered alert in the store: {err}"
                );
            }
        }
        if pending.notice.health() == Health::Down {
            self.refresh_at
                .get_or_insert(Instant::now() + alertmanager::REFRESH);
        }
        self.told
            .insert(pending.notice.target.clone(), pending.notice);
    }

    /// Counts a failed POST and returns when to try again.
    fn failed(&mut self, why: &str) -> Instant {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        let wait = self
            .retry
            .map_or(FIRST_BACKOFF, |(_, last)| (last * 2).min(MAX_BACKOFF));
        tracing::warn!(
            receiver = self.receiver,
            "alert receiver {}: {why}; trying again in {}s ({} waiting)",
            self.receiver,
            wait.as_secs(),
            self.queue.len()
        );
        let at = Instant::now() + wait;
        self.retry = Some((at, wait));
        at
    }

    /// Alertmanager: posts the firing alerts again when it is time.
    fn refresh(&mut self, now: Instant) -> Option<Instant> {
        let settings = self.settings();
        let ReceiverKind::Alertmanager { url } = &settings.kind else {
            return None;
        };
        let at = self.refresh_at?;
        if at <= now {
            self.forget_removed();
        }
        if self.firing().next().is_none() {
            self.refresh_at = None;
            return None;
        }
        if at > now || !self.queue.is_empty() {
            return Some(at);
        }
        let next = match alertmanager::refresh(&self.poster, url, self.firing()) {
            Ok(()) => Instant::now() + alertmanager::REFRESH,
            Err(why) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    receiver = self.receiver,
                    "alert receiver {}: refreshing the firing alerts: {why}",
                    self.receiver
                );
                Instant::now() + FIRST_BACKOFF * 10
            }
        };
        self.refresh_at = Some(next);
        Some(next)
    }
}

impl Receiver {
    /// Forgets what was told of targets no longer in the config: their firing alerts
    /// are not refreshed, and Alertmanager resolves them after `ENDS_AFTER`.
    fn forget_removed(&mut self) {
        let names = self.watching.names();
        let removed: Vec<String> = self
            .told
            .keys()
            .filter(|target| !names.contains(*target))
            .cloned()
            .collect();
        for target in removed {
            self.told.remove(&target);
            tracing::info!(
                receiver = self.receiver,
                "alert receiver {}: {target} is no longer in the config; its alert is no longer refreshed",
                self.receiver
            );
            if let Some(store) = &self.store {
                if let Err(err) = store::alerts::untell(&store.lock(), self.receiver, &target) {
                    tracing::warn!(receiver = self.receiver, "cannot update the store: {err}");
                }
            }
        }
    }
}

impl Sink for Receiver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn deliver(&mut self, event: Event) {
        if let Event::Changed { target, transition } = event {
            self.changed(Notice::of(&target, &transition));
        }
    }

    fn tick(&mut self, now: Instant) -> Option<Instant> {
        let released = self.release(now);
        let retry = self.deliver_queue(now);
        let refresh = self.refresh(Instant::now());
        [released, retry, refresh].into_iter().flatten().min()
    }
}
