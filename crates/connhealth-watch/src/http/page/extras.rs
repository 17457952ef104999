//! What the status page shows beside a target's live state: its uptime over 1 h, 24 h
//! and 7 d, its last hour minute by minute, and whether its alerts are muted.
//!
//! # For the integrator
//!
//! This is the one place where the page meets the history and the silences. Until they
//! land, [`extras`] answers from what [`TargetState`](crate::state::TargetState) holds,
//! the open minute only ([`TargetState::minute`](crate::state::TargetState::minute)):
//! every uptime is that minute's share of successful checks, the last hour is that one
//! minute, and nothing is muted. Replace the body of [`extras`], and nothing else, with:
//!
//! ```text
//! let uptime = |window| history.uptime(&target.plan.name, window, now);
//! Extras {
//!     uptime_1h: uptime(HOUR),
//!     uptime_24h: uptime(DAY),
//!     uptime_7d: uptime(WEEK),
//!     // History::last_hour: the closed minutes, oldest first; then the open one.
//!     last_hour: history.last_hour(&target.plan.name, now) + target.state().minute,
//!     muted: mutes.muted(target, now).map(Muted::from),
//! }
//! ```
//!
//! (`History::uptime(&self, target: &str, window: Duration, now: SystemTime) ->
//! Option<f64>`, `History::last_hour(&self, target: &str, now: SystemTime) ->
//! Vec<MinuteAggregate>`, `Mutes::muted(&self, target: &Watched, now) -> Option<Muted>`.)
//! Each is called once per row shown, at most [`super::api::MAX_LIMIT`] rows a request,
//! on a blocking thread, with no target's lock held.

use std::time::{Duration, SystemTime};

use crate::reload::Shared;
use crate::state::{MinuteAggregate, Watched};

/// One hour.
#[allow(dead_code)] // for the integrator's `History::uptime`
pub(crate) const HOUR: Duration = Duration::from_secs(3600);
/// One day.
#[allow(dead_code)] // for the integrator's `History::uptime`
pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);
/// One week.
#[allow(dead_code)] // for the integrator's `History::uptime`
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

/// Why a target's alerts are muted.
#[allow(dead_code)] // made by the silences' `Mutes::muted`, which the integrator plugs in
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Muted {
    /// A silence, or a maintenance window.
    pub(crate) kind: MuteKind,
    /// Until when, when known.
    pub(crate) until: Option<SystemTime>,
    /// Who or what muted it: a silence's comment, a maintenance window's name.
    pub(crate) reason: Option<String>,
}

/// What mutes a target.
#[allow(dead_code)] // made by the silences' `Mutes::muted`, which the integrator plugs in
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MuteKind {
    /// `POST /api/silence`.
    Silenced,
    /// A `[[maintenance]]` window in force.
    Maintenance,
}

impl MuteKind {
    /// `silenced` or `maintenance`, as the API says it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            MuteKind::Silenced => "silenced",
            MuteKind::Maintenance => "maintenance",
        }
    }
}

/// `target`'s uptime, last hour and mutes at `now`.
///
/// INTEGRATION POINT: a stand-in until the history and the silences land; see the
/// [module](self) for the body that replaces it.
pub(crate) fn extras(shared: &Shared, target: &Watched, now: SystemTime) -> Extras {
    let _ = (shared, now);
    let open = target.state().minute;
    let uptime = open
        .filter(|minute| minute.checks > 0)
        .map(|minute| f64::from(minute.successes()) / f64::from(minute.checks));
    Extras {
        uptime_1h: uptime,
        uptime_24h: uptime,
        uptime_7d: uptime,
        last_hour: open.into_iter().collect(),
        muted: None,
    }
}
