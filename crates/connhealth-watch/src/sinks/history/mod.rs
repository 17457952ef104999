//! The history: each target's transitions and per-minute aggregates, kept in memory
//! ([`History`], bounded) and, with `--data-dir`, in `state.sqlite` ([`HistorySink`]
//! writes it, [`crate::store::history`] holds its tables).
//!
//! [`History`] is what the status page and `/api/history` read: per target, the last
//! [`TRANSITIONS_KEPT`] transitions, the closed minutes of the last hour, and hourly
//! buckets for 7 days, whatever the fleet's size or age: about 6 KiB per target once a
//! week old, and up to 16 KiB more for the transitions of a target that flapped 100 times. It is filled by the history's sink, on its own thread, from the sinks' seam
//! ([`Event::Changed`](super::Event::Changed) and
//! [`Event::Minute`](super::Event::Minute)), and at start from the store: nothing on
//! the check path touches it.
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use connhealth_watch::sinks::history::History;
//! use connhealth_watch::state::MinuteAggregate;
//!
//! let history = History::new();
//! let now = UNIX_EPOCH + Duration::from_secs(3600 * 1000 + 30);
//! for ago in 1..=3 {
//!     let mut minute = MinuteAggregate::new(now - Duration::from_secs(60 * ago));
//!     minute.add(true, Duration::from_micros(250));
//!     minute.add(ago != 2, Duration::from_micros(250)); // one failure, 2 minutes ago
//!     history.record_minute("web", minute);
//! }
//! assert_eq!(history.last_hour("web", now).len(), 3);
//! assert_eq!(history.uptime("web", Duration::from_secs(3600), now), Some(5.0 / 6.0));
//! assert_eq!(history.uptime("other", Duration::from_secs(3600), now), None);
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, SystemTime};

use crate::state::{minute_of, Fleet, MinuteAggregate, Transition, Watched};
use crate::store::history::{HourAggregate, LoadedTarget, HOURS_LOADED};

pub(crate) mod json;
mod sink;

pub use self::json::render;
pub use self::sink::{HistorySink, SNAPSHOT_EVERY, WRITE_EVERY};

/// How many transitions per target the memory keeps.
pub const TRANSITIONS_KEPT: usize = 100;

/// How many closed minutes per target the memory keeps: one hour's.
pub const MINUTES_KEPT: usize = 60;

/// How many hourly buckets per target the memory keeps: 7 days, and the hour under way.
pub const HOURS_KEPT: usize = HOURS_LOADED as usize;

/// The shared read model of every target's history: cheap to clone (one `Arc`), bounded
/// in memory. One lock for the whole model, taken briefly by the history's sink (one
/// event at a time) and by readers (one target at a time); never by a check.
#[derive(Clone, Default)]
pub struct History {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    targets: HashMap<String, Kept>,
    /// The current fleet's targets, for their open minute ([`History::track`]).
    live: HashMap<String, Weak<Watched>>,
}

/// One target's history in memory.
#[derive(Debug, Default)]
struct Kept {
    /// Oldest first, at most [`TRANSITIONS_KEPT`].
    transitions: VecDeque<Transition>,
    /// Closed minutes, oldest first, at most [`MINUTES_KEPT`].
    minutes: VecDeque<MinuteAggregate>,
    /// Hours, oldest first, at most [`HOURS_KEPT`].
    hours: VecDeque<HourAggregate>,
}

impl Kept {
    fn add_transition(&mut self, transition: Transition) {
        if self.transitions.len() == TRANSITIONS_KEPT {
            self.transitions.pop_front();
        }
        self.transitions.push_back(transition);
    }

    fn add_minute(&mut self, minute: MinuteAggregate) {
        // Minutes come in order, but a clock stepped back or a minute the daemon
        // restarted within may repeat one: it adds up.
        match self
            .minutes
            .iter_mut()
            .rev()
            .find(|m| m.minute <= minute.minute)
        {
            Some(same) if same.minute == minute.minute => same.merge(&minute),
            _ => {
                let at = self.minutes.partition_point(|m| m.minute < minute.minute);
                self.minutes.insert(at, minute);
            }
        }
        let newest = self.minutes.back().map_or(0, |m| m.minute);
        while self.minutes.len() > MINUTES_KEPT
            || self
                .minutes
                .front()
                .is_some_and(|m| m.minute + MINUTES_KEPT as u64 <= newest)
        {
            self.minutes.pop_front();
        }
        let hour = minute.minute / 60;
        match self.hours.iter_mut().rev().find(|h| h.hour <= hour) {
            Some(same) if same.hour == hour => same.add(&minute),
            _ => {
                let at = self.hours.partition_point(|h| h.hour < hour);
                let mut bucket = HourAggregate {
                    hour,
                    ..HourAggregate::default()
                };
                bucket.add(&minute);
                self.hours.insert(at, bucket);
            }
        }
        let newest = self.hours.back().map_or(0, |h| h.hour);
        while self.hours.len() > HOURS_KEPT
            || self
                .hours
                .front()
                .is_some_and(|h| h.hour + HOURS_KEPT as u64 <= newest)
        {
            self.hours.pop_front();
        }
    }
}

/// Unix seconds of `at` (0 before 1970).
fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// A history that starts with what the store kept ([`crate::store::Store::load_history`]).
    pub fn loaded(targets: &[LoadedTarget]) -> History {
        let history = History::new();
        {
            let mut inner = history.write();
            for target in targets {
                let skip = target
                    .saved
                    .transitions
                    .len()
                    .saturating_sub(TRANSITIONS_KEPT);
                let skip_minutes = target.minutes.len().saturating_sub(MINUTES_KEPT);
                let skip_hours = target.hours.len().saturating_sub(HOURS_KEPT);
                let kept = Kept {
                    transitions: target.saved.transitions[skip..].iter().cloned().collect(),
                    minutes: target.minutes[skip_minutes..].iter().copied().collect(),
                    hours: target.hours[skip_hours..].iter().copied().collect(),
                };
                inner.targets.insert(target.name.clone(), kept);
            }
        }
        history
    }

    /// Records a transition of the target named `target`.
    pub fn record_transition(&self, target: &str, transition: Transition) {
        self.kept(target, |kept| kept.add_transition(transition));
    }

    /// Records a closed minute of the target named `target`.
    pub fn record_minute(&self, target: &str, minute: MinuteAggregate) {
        self.kept(target, |kept| kept.add_minute(minute));
    }

    fn kept(&self, target: &str, update: impl FnOnce(&mut Kept)) {
        let mut inner = self.write();
        match inner.targets.get_mut(target) {
            Some(kept) => update(kept),
            None => {
                let mut kept = Kept::default();
                update(&mut kept);
                inner.targets.insert(target.to_owned(), kept);
            }
        }
    }

    /// Follows `fleet`, the fleet now watched: [`History::uptime`] counts each target's
    /// minute under way, read from its state, and the history of targets no longer in
    /// it is dropped, so that memory stays bounded by the fleet. Called at start and at
    /// every reload.
    pub fn track(&self, fleet: &Fleet) {
        let live: HashMap<String, Weak<Watched>> = fleet
            .targets
            .iter()
            .map(|target| (target.plan.name.clone(), Arc::downgrade(target)))
            .collect();
        let mut inner = self.write();
        inner.targets.retain(|name, _| live.contains_key(name));
        inner.live = live;
    }

    /// The targets [`History::track`] follows, still watched.
    pub(crate) fn tracked(&self) -> Vec<Arc<Watched>> {
        self.read()
            .live
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// True when the history holds anything of a target named `target`, or follows it.
    pub fn knows(&self, target: &str) -> bool {
        let inner = self.read();
        inner.targets.contains_key(target) || inner.live.contains_key(target)
    }

    /// The share of checks that succeeded over `window` before `now` (exhausted checks
    /// excluded), None when no check in it. Windows used: 1 h, 24 h, 7 d.
    ///
    /// What it counts: the minute under way (read from the target's state, when the
    /// target is in the fleet [`History::track`] follows), and
    ///
    /// * for a window of an hour or less, each closed minute that began within it;
    /// * for a longer one, each hour that began within it (up to 7 days): to the hour,
    ///   so a 24 h window counts between 23 and 24 hours.
    ///
    /// A minute that was just closed may still be on its way to the history for a few
    /// milliseconds; it is then not counted.
    ///
    /// It takes the target's own lock ([`Watched::state`]) for a moment: never call it
    /// while holding that lock (std's mutex is not reentrant: that would deadlock).
    pub fn uptime(&self, target: &str, window: Duration, now: SystemTime) -> Option<f64> {
        let start = unix_secs(now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH));
        let (mut checks, mut failures) = (0u64, 0u64);
        let live = {
            let inner = self.read();
            if let Some(kept) = inner.targets.get(target) {
                if window <= Duration::from_secs(MINUTES_KEPT as u64 * 60) {
                    for minute in kept.minutes.iter().filter(|m| m.minute * 60 >= start) {
                        checks += u64::from(minute.checks);
                        failures += u64::from(minute.failures);
                    }
                } else {
                    for hour in kept.hours.iter().filter(|h| h.hour * 3600 >= start) {
                        checks += hour.checks;
                        failures += hour.failures;
                    }
                }
            }
            inner.live.get(target).and_then(Weak::upgrade)
        };
        // The minute under way: the target's own lock, after the history's is released.
        let now_minute = minute_of(now);
        if let Some(open) = live.and_then(|target| target.state().minute) {
            if open.minute * 60 >= start && open.minute <= now_minute {
                checks += u64::from(open.checks);
                failures += u64::from(open.failures);
            }
        }
        (checks > 0).then(|| (checks - failures) as f64 / checks as f64)
    }

    /// The closed minutes of the last hour, oldest first (the open minute is in
    /// TargetState.minute).
    pub fn last_hour(&self, target: &str, now: SystemTime) -> Vec<MinuteAggregate> {
        let start = unix_secs(now).saturating_sub(3600);
        let now_minute = minute_of(now);
        let inner = self.read();
        inner.targets.get(target).map_or_else(Vec::new, |kept| {
            kept.minutes
                .iter()
                .filter(|m| m.minute * 60 >= start && m.minute < now_minute)
                .copied()
                .collect()
        })
    }

    /// The latest `limit` transitions, oldest first.
    pub fn transitions(&self, target: &str, limit: usize) -> Vec<Transition> {
        let inner = self.read();
        inner.targets.get(target).map_or_else(Vec::new, |kept| {
            let skip = kept.transitions.len().saturating_sub(limit);
            kept.transitions.iter().skip(skip).cloned().collect()
        })
    }

    /// The transitions since `since` and the closed minutes since `since` that memory
    /// holds, oldest first; `None` when it knows no such target ([`History::knows`]).
    /// `/api/history` without `--data-dir`.
    pub fn since(
        &self,
        target: &str,
        since: SystemTime,
    ) -> Option<(Vec<Transition>, Vec<MinuteAggregate>)> {
        let inner = self.read();
        let Some(kept) = inner.targets.get(target) else {
            return inner
                .live
                .contains_key(target)
                .then(|| (Vec::new(), Vec::new()));
        };
        let start = unix_secs(since);
        let transitions = kept
            .transitions
            .iter()
            .filter(|t| t.at >= since)
            .cloned()
            .collect();
        let minutes = kept
            .minutes
            .iter()
            .filter(|m| m.minute * 60 >= start / 60 * 60)
            .copied()
            .collect();
        Some((transitions, minutes))
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.read();
        f.debug_struct("History")
            .field("targets", &inner.targets.len())
            .field("tracked", &inner.live.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(at: u64, checks: u32, failures: u32) -> MinuteAggregate {
        let mut m = MinuteAggregate {
            minute: at,
            ..MinuteAggregate::default()
        };
        for i in 0..checks {
            m.add(i >= failures, Duration::from_micros(100 + u64::from(i)));
        }
        m
    }

    #[test]
    fn memory_is_bounded_per_target() {
        let history = History::new();
        let start = 10_000_000;
        for m in 0..(8 * 24 * 60) {
            history.record_minute("t", minute(start + m, 2, 1));
        }
        for i in 0..250u64 {
            history.record_transition(
                "t",
                Transition {
                    from: crate::state::Health::Up,
                    to: crate::state::Health::Down,
                    at: SystemTime::UNIX_EPOCH + Duration::from_secs(i),
                    why: String::new(),
                    check_time: Duration::ZERO,
                    detail: None,
                },
            );
        }
        let inner = history.read();
        let kept = &inner.targets["t"];
        assert_eq!(kept.minutes.len(), MINUTES_KEPT);
        assert_eq!(kept.hours.len(), HOURS_KEPT);
        assert_eq!(kept.transitions.len(), TRANSITIONS_KEPT);
        assert_eq!(
            kept.transitions.front().map(|t| t.at),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(150))
        );
    }

    #[test]
    fn a_minute_seen_twice_adds_up() {
        let history = History::new();
        history.record_minute("t", minute(100, 2, 0));
        history.record_minute("t", minute(100, 3, 3));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(101 * 60);
        let hour = history.last_hour("t", now);
        assert_eq!(hour.len(), 1);
        assert_eq!((hour[0].checks, hour[0].failures), (5, 3));
        assert_eq!((hour[0].rtt_min_us, hour[0].rtt_max_us), (100, 101));
    }
}
