//! Silences (`POST /api/silence`) and `[[maintenance]]` windows: while either is in force
//! for a target, no receiver is told of it.
//!
//! Nothing here runs on a timer. A window is a rule evaluated when someone asks: a
//! receiver about to send a notification, or a page showing a target. Between windows a
//! window costs nothing; a receiver holding a muted notification looks again when the
//! mute ends ([`Muted::until`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::MaintenancePlan;
use crate::state::Watched;
use crate::store::{self, Store};

/// Why a target's notifications are held back now, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Muted {
    /// `POST /api/silence?target=NAME&for=...`.
    Silenced {
        /// When the silence ends.
        until: SystemTime,
    },
    /// A `[[maintenance]]` window.
    Maintenance {
        /// The window's `name` (`maintenance-N` by default).
        window: String,
        /// When this occurrence of the window ends.
        until: SystemTime,
    },
}

impl Muted {
    /// When the mute ends.
    pub fn until(&self) -> SystemTime {
        match self {
            Muted::Silenced { until } | Muted::Maintenance { until, .. } => *until,
        }
    }
}

/// The silences and maintenance windows in force, shared by every receiver and the HTTP
/// side. Silences are kept in the store when there is one, and read back at start.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use connhealth_watch::config::{CheckPlan, TargetPlan};
/// use connhealth_watch::sinks::alerts::{Muted, Mutes};
/// use connhealth_watch::state::Watched;
///
/// let mutes = Mutes::new(Vec::new(), None)?;
/// let plan = TargetPlan::new("db-1", "127.0.0.1:5432", Default::default(), CheckPlan::default()).unwrap();
/// let db = Watched::new(plan, SystemTime::now());
/// let now = SystemTime::now();
/// assert_eq!(mutes.muted(&db, now), None);
/// let until = now + Duration::from_secs(1800);
/// mutes.silence("db-1", Some(until))?;
/// assert_eq!(mutes.muted(&db, now), Some(Muted::Silenced { until }));
/// assert_eq!(mutes.muted(&db, until), None); // it ends by itself
/// # Ok::<(), String>(())
/// ```
#[derive(Debug)]
pub struct Mutes {
    silences: Mutex<HashMap<String, SystemTime>>,
    maintenance: RwLock<Arc<[MaintenancePlan]>>,
    store: Option<Arc<Store>>,
}

impl Mutes {
    /// The mutes of `maintenance`, with the silences kept in `store` (when given) still
    /// in force. Fails with the reason when the store cannot be read.
    pub fn new(
        maintenance: Vec<MaintenancePlan>,
        store: Option<Arc<Store>>,
    ) -> Result<Mutes, String> {
        let mut silences = HashMap::new();
        if let Some(store) = &store {
            let kept =
                store::alerts::silences(&store.lock(), SystemTime::now()).map_err(|err| {
                    format!(
                        "cannot read the silences in {}: {err}",
                        store.path().display()
                    )
                })?;
            silences.extend(kept);
        }
        Ok(Mutes {
            silences: Mutex::new(silences),
            maintenance: RwLock::new(maintenance.into()),
            store,
        })
    }

    /// The mutes of `maintenance`, silences kept in memory only.
    pub(crate) fn in_memory(maintenance: Vec<MaintenancePlan>) -> Mutes {
        Mutes {
            silences: Mutex::new(HashMap::new()),
            maintenance: RwLock::new(maintenance.into()),
            store: None,
        }
    }

    /// Why `target`'s notifications are held back at `now`, if they are: a silence, or
    /// the maintenance window that ends last among those in force.
    pub fn muted(&self, target: &Watched, now: SystemTime) -> Option<Muted> {
        self.muted_by(&target.plan.name, &target.plan.labels, now)
    }

    /// [`Mutes::muted`] for a target known by its name and labels.
    pub fn muted_by(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        now: SystemTime,
    ) -> Option<Muted> {
        let silenced = self
            .silences
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
            .filter(|&until| until > now);
        if let Some(until) = silenced {
            return Some(Muted::Silenced { until });
        }
        let windows = Arc::clone(
            &self
                .maintenance
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        windows
            .iter()
            .filter(|window| matches(window, name, labels))
            .filter_map(|window| in_force_until(window, now).map(|until| (window, until)))
            .max_by_key(|(_, until)| *until)
            .map(|(window, until)| Muted::Maintenance {
                window: window.name.clone(),
                until,
            })
    }

    /// Silences `target` until `until` (kept in the store when there is one); `None`
    /// lifts its silence. Fails with the reason when the store cannot be written.
    pub fn silence(&self, target: &str, until: Option<SystemTime>) -> Result<(), String> {
        if let Some(store) = &self.store {
            store::alerts::silence(&store.lock(), target, until).map_err(|err| {
                format!(
                    "cannot write the silence to {}: {err}",
                    store.path().display()
                )
            })?;
        }
        let mut silences = self.silences.lock().unwrap_or_else(PoisonError::into_inner);
        match until {
            Some(until) => silences.insert(target.to_owned(), until),
            None => silences.remove(target),
        };
        Ok(())
    }

    /// The silences in force at `now`, by target name.
    pub fn silences(&self, now: SystemTime) -> Vec<(String, SystemTime)> {
        let mut silences = self.silences.lock().unwrap_or_else(PoisonError::into_inner);
        // Ended ones are forgotten here, when someone looks: no timer.
        silences.retain(|_, until| *until > now);
        let mut list: Vec<(String, SystemTime)> = silences
            .iter()
            .map(|(name, until)| (name.clone(), *until))
            .collect();
        list.sort();
        list
    }

    /// Puts `windows` in force (at a reload).
    pub fn set_maintenance(&self, windows: Vec<MaintenancePlan>) {
        *self
            .maintenance
            .write()
            .unwrap_or_else(PoisonError::into_inner) = windows.into();
    }
}

/// True when `window` takes the target `name` with `labels`.
fn matches(window: &MaintenancePlan, name: &str, labels: &BTreeMap<String, String>) -> bool {
    window.matchers.iter().all(|(key, value)| {
        if key == "target" {
            name == value
        } else {
            labels.get(key) == Some(value)
        }
    })
}

const DAY: u64 = 86_400;

/// When the occurrence of `window` that holds `now` ends, if one does: the occurrences
/// that began today and on the days before, as far back as the window lasts.
fn in_force_until(window: &MaintenancePlan, now: SystemTime) -> Option<SystemTime> {
    let now = now.duration_since(UNIX_EPOCH).ok()?;
    let today = now.as_secs() / DAY;
    let back = window.duration.as_secs() / DAY + 1;
    (0..=back)
        .filter_map(|ago| today.checked_sub(ago))
        // 1970-01-01 was a Thursday: day 0 is index 3 from Monday.
        .filter(|day| window.days & (1 << ((day + 3) % 7)) != 0)
        .map(|day| Duration::from_secs(day * DAY + u64::from(window.start_minute) * 60))
        .filter(|start| *start <= now && now < *start + window.duration)
        .map(|start| UNIX_EPOCH + start + window.duration)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start_minute: u32, minutes: u64, days: u8) -> MaintenancePlan {
        MaintenancePlan {
            name: "w".into(),
            start_minute,
            duration: Duration::from_secs(minutes * 60),
            days,
            matchers: BTreeMap::new(),
        }
    }

    /// 2026-12-07 (a Monday) at `hh:mm` UTC, plus `days`.
    fn at(days: u64, hh: u64, mm: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_601_600 + days * DAY + hh * 3600 + mm * 60)
    }

    #[test]
    fn a_window_holds_on_its_days_only() {
        let monday = window(2 * 60, 60, 0b1);
        assert_eq!(in_force_until(&monday, at(0, 2, 30)), Some(at(0, 3, 0)));
        assert_eq!(in_force_until(&monday, at(0, 3, 0)), None);
        assert_eq!(in_force_until(&monday, at(0, 1, 59)), None);
        assert_eq!(in_force_until(&monday, at(1, 2, 30)), None); // Tuesday
        assert_eq!(in_force_until(&monday, at(7, 2, 0)), Some(at(7, 3, 0)));
    }

    #[test]
    fn a_window_may_cross_midnight() {
        let sunday_night = window(23 * 60, 120, 1 << 6);
        assert_eq!(
            in_force_until(&sunday_night, at(0, 0, 30)),
            Some(at(0, 1, 0))
        );
        assert_eq!(in_force_until(&sunday_night, at(0, 23, 30)), None); // Monday night
    }
}
