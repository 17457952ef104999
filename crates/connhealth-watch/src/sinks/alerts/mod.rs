//! Being told: `[[alerts.webhook]]` and `[alerts.alertmanager]` receivers, silences and
//! `[[maintenance]]` windows.
//!
//! Each receiver is a [`Sink`] of its own (`receiver.rs`), so each has its
//! own thread and queue, delivers in order, and never delays a check or another
//! receiver. Its POSTs (`post.rs`: HTTP/1.1, http or https, 10 s at most) run on a
//! current-thread runtime that the receiver's thread owns. What a webhook gets is the
//! transition as `/status` shows it (`notice.rs`, `webhook.rs`); Alertmanager gets the
//! alert `ConnhealthTargetDown` (`alertmanager.rs`). Silences and maintenance windows
//! (`mute.rs`) hold notifications back while they are in force.
//!
//! With `--data-dir`, a notification is written to the store's outbox when its
//! transition is seen and removed when the receiver took it; what each receiver was last
//! told is kept beside it. A restart (even after `kill -9`) sends what was pending and
//! does not send again what was delivered.
//!
//! A reload applies new maintenance windows, and new settings (`url`, `headers`, `for`)
//! to each receiver that keeps its name and kind; a receiver added or removed starts or
//! stops at the next restart, and the reload logs a warning saying so.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

use crate::config::{Plan, ReceiverKind, ReceiverPlan};
use crate::sinks::Sink;
use crate::store::Store;

mod alertmanager;
mod mute;
mod notice;
mod post;
mod receiver;
mod webhook;

pub use self::alertmanager::{ALERT_NAME, ENDS_AFTER, REFRESH};
pub use self::mute::{Muted, Mutes};
pub use self::receiver::{ReceiverCounters, FIRST_BACKOFF, MAX_BACKOFF};

use self::receiver::{Receiver, Settings};

/// The receivers as sinks, one each, for [`Sinks::start`](super::Sinks::start).
pub type Receivers = Vec<Box<dyn Sink>>;

/// What the HTTP side and `/metrics` see of the alerts: the mutes, and each receiver's
/// counters.
#[derive(Debug)]
pub struct Alerts {
    /// The silences and maintenance windows.
    pub mutes: Arc<Mutes>,
    receivers: Vec<Arc<ReceiverCounters>>,
    /// Each running receiver's settings, by name, in config order.
    settings: Vec<Settings>,
    watching: Arc<Watching>,
}

/// The names of the targets watched now, which the receivers read: Alertmanager's
/// firing alert of a target removed from the config is no longer refreshed, and
/// Alertmanager resolves it after [`ENDS_AFTER`].
#[derive(Debug, Default)]
pub(crate) struct Watching {
    names: RwLock<Arc<HashSet<String>>>,
}

impl Watching {
    fn of(plan: &Plan) -> Watching {
        let watching = Watching::default();
        watching.set(plan);
        watching
    }

    fn set(&self, plan: &Plan) {
        let names = plan.targets.iter().map(|t| t.name.clone()).collect();
        *self.names.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(names);
    }

    /// The names, now.
    pub(crate) fn names(&self) -> Arc<HashSet<String>> {
        Arc::clone(&self.names.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Alerts {
    /// No receiver, the maintenance windows of `plan`, silences in memory (for a
    /// [`Shared`](crate::reload::Shared) built without [`Alerts::start`]).
    pub fn none(plan: &Plan) -> Alerts {
        Alerts {
            mutes: Arc::new(Mutes::in_memory(plan.maintenance.clone())),
            receivers: Vec::new(),
            settings: Vec::new(),
            watching: Arc::new(Watching::of(plan)),
        }
    }

    /// The receivers of `plan` as sinks, each to be started on its own thread, with the
    /// mutes they share; with `store`, their pending notifications and the silences are
    /// read back. Fails with the reason when the store cannot be read or a receiver's
    /// runtime cannot start.
    pub fn start(
        plan: &Plan,
        store: Option<Arc<Store>>,
    ) -> Result<(Arc<Alerts>, Receivers), String> {
        let mutes = Arc::new(Mutes::new(plan.maintenance.clone(), store.clone())?);
        let watching = Arc::new(Watching::of(plan));
        let mut counters = Vec::new();
        let mut settings = Vec::new();
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        for receiver in &plan.alerts.receivers {
            // The receiver label is static, as a sink's name is: receivers start once,
            // with the daemon, so this leaks a few bytes once per receiver and process.
            let name: &'static str = Box::leak(receiver.name.clone().into_boxed_str());
            let setting: Settings = Arc::new(RwLock::new(Arc::new(receiver.clone())));
            let count = Arc::new(ReceiverCounters::new(name));
            let sink = Receiver::new(
                name,
                Arc::clone(&setting),
                Arc::clone(&mutes),
                Arc::clone(&watching),
                Arc::clone(&count),
                store.clone(),
            )?;
            counters.push(count);
            settings.push(setting);
            sinks.push(Box::new(sink));
        }
        let alerts = Alerts {
            mutes,
            receivers: counters,
            settings,
            watching,
        };
        Ok((Arc::new(alerts), sinks))
    }

    /// Each receiver's counters, in config order (webhooks, then Alertmanager).
    pub fn receivers(&self) -> &[Arc<ReceiverCounters>] {
        &self.receivers
    }

    /// Takes what a reloaded `plan` (sharded) changes: its targets and maintenance
    /// windows, and the settings (`url`, `headers`, `for`) of each receiver that keeps
    /// its name and kind. A receiver added, removed, or changed in kind starts or stops
    /// at the next restart, which a warning says.
    pub fn reload(&self, plan: &Plan) {
        self.watching.set(plan);
        self.mutes.set_maintenance(plan.maintenance.clone());
        let same_kind = |a: &ReceiverPlan, b: &ReceiverPlan| {
            matches!(
                (&a.kind, &b.kind),
                (ReceiverKind::Webhook { .. }, ReceiverKind::Webhook { .. })
                    | (
                        ReceiverKind::Alertmanager { .. },
                        ReceiverKind::Alertmanager { .. }
                    )
            )
        };
        let mut kept = 0;
        for new in &plan.alerts.receivers {
            let running = self.settings.iter().find(|setting| {
                let current = setting.read().unwrap_or_else(PoisonError::into_inner);
                current.name == new.name && same_kind(&current, new)
            });
            match running {
                Some(setting) => {
                    kept += 1;
                    let mut current = setting.write().unwrap_or_else(PoisonError::into_inner);
                    if **current != *new {
                        *current = Arc::new(new.clone());
                        tracing::info!(receiver = %new.name, "alert receiver {}: new settings", new.name);
                    }
                }
                None => tracing::warn!(
                    receiver = %new.name,
                    "alert receiver {} is new in the config: receivers start at a restart; until then it is not told",
                    new.name
                ),
            }
        }
        if kept < self.settings.len() {
            tracing::warn!(
                "{} alert receiver(s) left the config: receivers stop at a restart; until then they are still told",
                self.settings.len() - kept
            );
        }
    }
}
