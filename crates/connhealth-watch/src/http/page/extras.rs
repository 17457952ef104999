//! What the status page shows beside a target's live state: its uptime over 1 h, 24 h
//! and 7 d, its last hour minute by minute, and whether its alerts are muted.
//!
//! Uptime and the last hour come from the [`History`](crate::sinks::history::History)
//! (memory, loaded from `--data-dir` at start), with the minute under way read from the
//! target's state; mutes from the silences and maintenance windows. Each is asked once
//! per row shown, at most [`super::api::MAX_LIMIT`] rows a request, on a blocking
//! thread, with no target's lock held.

use std::time::{Duration, SystemTime};

use crate::reload::Shared;
use crate::sinks::alerts::Muted;
use crate::state::{minute_of, MinuteAggregate, Watched};

/// One hour.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);
/// One day.
pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);
/// One week.
pub(crate) const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// A target's history and mutes, as the page shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Extras {
    /// The share of checks that succeeded over the last hour, 0 to 1; `None` without
    /// a check in it.
    pub(crate) uptime_1h: Option<f64>,
    /// The same over the last 24 hours.
    pub(crate) uptime_24h: Option<f64>,
    /// The same over the last 7 days.
    pub(crate) uptime_7d: Option<f64>,
    /// The minutes of the last hour that had checks, oldest first, the open one last.
    pub(crate) last_hour: Vec<MinuteAggregate>,
    /// Why the target's alerts are muted now, if they are.
    pub(crate) muted: Option<Muted>,
}

/// `target`'s uptime, last hour and mutes at `now`.
pub(crate) fn extras(shared: &Shared, target: &Watched, now: SystemTime) -> Extras {
    let history = shared.history();
    let name = &target.plan.name;
    let uptime = |window| history.uptime(name, window, now);
    let mut last_hour = history.last_hour(name, now);
    let hour_ago = minute_of(now).saturating_sub(60);
    last_hour.extend(target.state().minute.filter(|open| open.minute >= hour_ago));
    Extras {
        uptime_1h: uptime(HOUR),
        uptime_24h: uptime(DAY),
        uptime_7d: uptime(WEEK),
        last_hour,
        muted: shared.alerts().mutes.muted(target, now),
    }
}
