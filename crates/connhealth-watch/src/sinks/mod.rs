//! The sinks: where every check result and every transition goes, through one seam.
//!
//! The scheduler hands each result to [`Sinks::record`], and to nothing else:
//!
//! 1. the target's [`TargetState`](crate::state::TargetState) takes it (the rise/fall
//!    state machine, the counters, the last check and the last transitions). That is the
//!    live view, read at request time by [`metrics`] (`/metrics`) and [`status`]
//!    (`/status`): nothing on the check path renders anything;
//! 2. the transition it caused, if any, goes to every [`Sink`]: the log line
//!    ([`log::Log`]), the history ([`history::HistorySink`], which also takes each target's closed
//!    minutes), the status page's live events ([`events::EventsSink`]) and one sink per
//!    alert receiver ([`alerts`]).
//!    A sink that asks for them ([`Sink::wants_results`]) gets every result too.
//!
//! Each sink runs on a thread of its own, fed through a bounded queue of
//! [`QUEUE_CAPACITY`] events. Handing an event over never blocks: when a sink has fallen
//! that far behind (a webhook that hangs, a disk that stalls), the event is dropped and
//! counted in `connhealth_sink_events_dropped_total{sink}`. A slow sink loses its own
//! events; it never delays a check.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::{Duration, Instant, SystemTime};
//! use connhealth_watch::checks::{CheckResult, Outcome};
//! use connhealth_watch::config::{CheckPlan, TargetPlan};
//! use connhealth_watch::sinks::{Event, Sink, Sinks};
//! use connhealth_watch::state::{Health, Watched};
//!
//! /// Remembers each transition's new state.
//! struct Seen(Arc<Mutex<Vec<Health>>>);
//!
//! impl Sink for Seen {
//!     fn name(&self) -> &'static str {
//!         "seen"
//!     }
//!     fn deliver(&mut self, event: Event) {
//!         if let Event::Changed { transition, .. } = event {
//!             self.0.lock().unwrap().push(transition.to);
//!         }
//!     }
//! }
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sinks = Sinks::start(vec![Box::new(Seen(Arc::clone(&seen)))])?;
//! let check = CheckPlan { rise: 1, ..CheckPlan::default() };
//! let plan = TargetPlan::new("web", "127.0.0.1:80", Default::default(), check).unwrap();
//! let web = Arc::new(Watched::new(plan, SystemTime::now()));
//! sinks.record(&web, CheckResult::new(Outcome::Ok, Duration::from_millis(1)));
//! assert_eq!(web.state().health, Health::Up); // the live view took it at once
//! sinks.stop(Duration::from_secs(1)); // waits (that long at most) for the sinks to drain
//! assert_eq!(*seen.lock().unwrap(), [Health::Up]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::checks::CheckResult;
use crate::state::{MinuteAggregate, Transition, Watched};

pub mod alerts;
pub mod events;
pub mod history;
pub mod log;
pub mod metrics;
pub mod status;

/// How many events a sink may have waiting before new ones are dropped: a burst of a
/// whole fleet going down at once (10k transitions) fits, with room.
pub const QUEUE_CAPACITY: usize = 65_536;

/// What a sink is told.
#[derive(Debug, Clone)]
pub enum Event {
    /// A check ended. Only for sinks that ask for every result ([`Sink::wants_results`]).
    Checked {
        /// The target checked.
        target: Arc<Watched>,
        /// What the check found.
        result: CheckResult,
        /// When it was recorded.
        at: SystemTime,
    },
    /// A target changed state.
    Changed {
        /// The target.
        target: Arc<Watched>,
        /// From what, to what, when and why.
        transition: Transition,
    },
    /// A minute of a target's checks ended: its aggregate, handed over when the first
    /// check of a later minute is recorded. Only for sinks that ask ([`Sink::wants_minutes`]).
    Minute {
        /// The target.
        target: Arc<Watched>,
        /// Its checks in that minute.
        minute: MinuteAggregate,
    },
}

/// Something that is told of transitions (and, if it asks, of every result): the log,
/// and next a history store, alert receivers, a status page's live events.
///
/// [`deliver`](Sink::deliver) runs on the sink's own thread, one event at a time, in the
/// order the scheduler recorded them. It may take its time: the checks never wait for it.
pub trait Sink: Send + 'static {
    /// A short name, the `sink` label of `connhealth_sink_events_dropped_total`.
    fn name(&self) -> &'static str;

    /// True to be told of every check result, not only of transitions. Off by default:
    /// at 10k checks a second, a result is worth handing over only to a sink that uses it.
    fn wants_results(&self) -> bool {
        false
    }

    /// True to be told of each target's per-minute aggregates ([`Event::Minute`]): one
    /// event per target per minute, whatever the interval.
    fn wants_minutes(&self) -> bool {
        false
    }

    /// Handles one event.
    fn deliver(&mut self, event: Event);

    /// Called on the sink's thread once before the first event, after every event, and
    /// at the time it last returned: work that waits for a time (a batch written every
    /// 250 ms, an alert held for its `for`, a retry after a backoff). Returns when it
    /// wants to be called next; `None` (the default) waits for the next event.
    fn tick(&mut self, now: Instant) -> Option<Instant> {
        let _ = now;
        None
    }

    /// Called once when the queue is closed ([`Sinks::stop`]) and every event before it
    /// delivered: write what is batched.
    fn finish(&mut self) {}
}

/// The seam every check result goes through: records it in the target's state, then hands
/// what happened to each sink's queue. Cheap to clone: the scheduler and the HTTP side
/// hold one each.
#[derive(Clone)]
pub struct Sinks {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<Queue>,
    wants_results: bool,
    wants_minutes: bool,
    /// `connhealth_checks_late_total`: counted by the scheduler, shown by `/metrics`.
    late_checks: AtomicU64,
}

/// One sink's queue and thread.
struct Queue {
    name: &'static str,
    wants_results: bool,
    wants_minutes: bool,
    /// Taken by [`Sinks::stop`]: the thread drains what is queued and ends. Events go
    /// boxed: std's bounded channel allocates every slot up front, and 65,536 slots of an
    /// unboxed event (about 170 bytes) were 11 MB of RSS for a queue that is nearly always
    /// empty; boxed, a slot is 16 bytes.
    sender: Mutex<Option<SyncSender<Box<Event>>>>,
    dropped: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Sinks {
    /// Starts a thread per sink (named `connhealth-sink-NAME`), each behind a queue of
    /// [`QUEUE_CAPACITY`] events.
    pub fn start(sinks: Vec<Box<dyn Sink>>) -> io::Result<Sinks> {
        Sinks::with_capacity(sinks, QUEUE_CAPACITY)
    }

    /// [`Sinks::start`], each queue holding at most `capacity` events (at least 1).
    pub fn with_capacity(sinks: Vec<Box<dyn Sink>>, capacity: usize) -> io::Result<Sinks> {
        let mut queues = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let (name, wants_results) = (sink.name(), sink.wants_results());
            let wants_minutes = sink.wants_minutes();
            let (sender, events) = mpsc::sync_channel::<Box<Event>>(capacity.max(1));
            let thread = std::thread::Builder::new()
                .name(format!("connhealth-sink-{name}"))
                .spawn(move || drive(sink, events))?;
            queues.push(Queue {
                name,
                wants_results,
                wants_minutes,
                sender: Mutex::new(Some(sender)),
                dropped: AtomicU64::new(0),
                thread: Mutex::new(Some(thread)),
            });
        }
        let wants_results = queues.iter().any(|queue| queue.wants_results);
        let wants_minutes = queues.iter().any(|queue| queue.wants_minutes);
        Ok(Sinks {
            inner: Arc::new(Inner {
                queues,
                wants_results,
                wants_minutes,
                late_checks: AtomicU64::new(0),
            }),
        })
    }

    /// No sink at all: results only reach the targets' states (for tests of the HTTP
    /// side).
    pub fn none() -> Sinks {
        Sinks {
            inner: Arc::new(Inner {
                queues: Vec::new(),
                wants_results: false,
                wants_minutes: false,
                late_checks: AtomicU64::new(0),
            }),
        }
    }

    /// Records `result` of a check of `target`: its state takes it at once, then each
    /// sink is handed the transition it caused (and the result, if it asks), without
    /// waiting. Returns the wait before the target's next check, as its new state says.
    pub fn record(&self, target: &Arc<Watched>, result: CheckResult) -> Duration {
        let at = SystemTime::now();
        let check = &target.plan.check;
        let (transition, wait, minute) = {
            let mut state = target.state();
            let transition = state.record(check, &result, at);
            (
                transition,
                state.next_wait(check),
                state.closed_minute.take(),
            )
        };
        if let Some(minute) = minute.filter(|_| self.inner.wants_minutes) {
            let event = Event::Minute {
                target: Arc::clone(target),
                minute,
            };
            self.hand_over(event, |queue| queue.wants_minutes);
        }
        if self.inner.wants_results {
            let event = Event::Checked {
                target: Arc::clone(target),
                result,
                at,
            };
            self.hand_over(event, |queue| queue.wants_results);
        }
        if let Some(transition) = transition {
            let event = Event::Changed {
                target: Arc::clone(target),
                transition,
            };
            self.hand_over(event, |_| true);
        }
        wait
    }

    /// Counts a check that started late (`connhealth_checks_late_total`).
    pub fn late_check(&self) {
        self.inner.late_checks.fetch_add(1, Ordering::Relaxed);
    }

    /// Checks that started late, so far.
    pub fn late_checks(&self) -> u64 {
        self.inner.late_checks.load(Ordering::Relaxed)
    }

    /// Each sink's name and the events it lost because its queue was full.
    pub fn dropped(&self) -> Vec<(&'static str, u64)> {
        self.inner
            .queues
            .iter()
            .map(|queue| (queue.name, queue.dropped.load(Ordering::Relaxed)))
            .collect()
    }

    /// Closes every queue and waits, for at most `grace`, for each sink to deliver what
    /// it holds; a sink still busy then (a receiver that hangs) is left to the process's
    /// exit, so that a stop is never held up by it. Events recorded after this reach the
    /// targets' states only. Returns the names of the sinks that did not finish in time.
    pub fn stop(&self, grace: Duration) -> Vec<&'static str> {
        for queue in &self.inner.queues {
            drop(lock(&queue.sender).take());
        }
        let deadline = std::time::Instant::now() + grace;
        let mut late = Vec::new();
        for queue in &self.inner.queues {
            let mut thread = lock(&queue.thread);
            let Some(handle) = thread.as_ref() else {
                continue;
            };
            // std has no join with a timeout: look, and sleep briefly between looks.
            while !handle.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if handle.is_finished() {
                if let Some(handle) = thread.take() {
                    let _ = handle.join();
                }
            } else {
                late.push(queue.name);
            }
        }
        late
    }

    fn hand_over(&self, event: Event, wanted: impl Fn(&Queue) -> bool) {
        let mut queues = self.inner.queues.iter().filter(|queue| wanted(queue));
        let Some(mut queue) = queues.next() else {
            return;
        };
        // Every sink but the last gets a clone; the last gets the event itself.
        for next in queues {
            queue.send(event.clone());
            queue = next;
        }
        queue.send(event);
    }
}

/// A sink's thread: events as they come, ticks when the sink asks, and `finish` once
/// the queue is closed and drained.
fn drive(mut sink: Box<dyn Sink>, events: Receiver<Box<Event>>) {
    let mut next = sink.tick(Instant::now());
    loop {
        let event = match next {
            None => match events.recv() {
                Ok(event) => Some(event),
                Err(_) => break,
            },
            Some(at) => match events.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        if let Some(event) = event {
            sink.deliver(*event);
        }
        next = sink.tick(Instant::now());
    }
    sink.finish();
}

impl Queue {
    fn send(&self, event: Event) {
        let sender = lock(&self.sender);
        let Some(sender) = sender.as_ref() else {
            return; // stopped
        };
        match sender.try_send(Box::new(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The sink's thread ended (its deliver panicked): nothing will read.
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Sinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.queues.iter().map(|queue| queue.name).collect();
        f.debug_struct("Sinks")
            .field("sinks", &names)
            .field("late_checks", &self.late_checks())
            .finish()
    }
}
