//! Reload: a new config read and swapped in, by SIGHUP, `POST /-/reload` or a changed
//! file_sd file, one at a time; and [`Shared`], what the HTTP side and reloads share.
//!
//! A reload builds the next [`Fleet`] from the new plan ([`Fleet::build`]: a target whose
//! address and check kind are unchanged keeps its state) and hands it to the scheduler.
//! A config that does not load changes nothing but `connhealth_config_last_reload_*`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::checks::Probers;
use crate::config::{self, ConfigErrors, Options, Plan, WebConfig};
use crate::schedule::Command;
use crate::sinks::alerts::Alerts;
use crate::sinks::events::Live;
use crate::sinks::history::History;
use crate::sinks::metrics::{AlertCounts, DaemonCounters, ReloadState};
use crate::sinks::Sinks;
use crate::state::{Fleet, SavedState};
use crate::store::Store;
use crate::sys;

/// What the HTTP side and reloads share with the scheduler: the current fleet, the
/// probers and the sinks, and the way to the scheduler for a new fleet.
#[derive(Debug)]
pub struct Shared {
    options: Options,
    fleet: RwLock<Arc<Fleet>>,
    reload_state: Mutex<ReloadState>,
    ready: AtomicBool,
    /// The probers (the scheduler holds clones).
    pub probers: Probers,
    /// The sinks' seam (the scheduler holds a clone): the daemon's own counters.
    pub sinks: Sinks,
    scheduler: mpsc::UnboundedSender<Command>,
    /// One reload at a time: SIGHUP, `POST /-/reload` and file_sd changes queue here.
    reloading: tokio::sync::Mutex<()>,
    /// The current plan's file_sd globs, and what its files looked like, for the watcher.
    file_sd: Mutex<FileSdSeen>,
    /// `/probe` requests running now, against `[probe] max_concurrent`.
    pub probes_in_flight: std::sync::atomic::AtomicUsize,
    /// The web config in force (`--web.config.file`), read again at every reload.
    web: RwLock<Option<Arc<WebConfig>>>,
    /// Told when each reload begins and ends (the daemon tells systemd).
    observer: Observer,
    /// Each target's history, in memory (the history's sink fills it).
    history: History,
    /// `--data-dir`'s store, when given.
    store: Option<Arc<Store>>,
    /// The status page's live events, which `GET /events` streams.
    live: Live,
    /// The alert receivers' counters, the silences and the maintenance windows.
    alerts: Arc<Alerts>,
}

/// What a reload tells the observer set with [`Shared::observe_reloads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloading {
    /// A reload begins (it holds the one-at-a-time lock).
    Begins,
    /// It ended: `targets` are watched now, and `loaded` says whether the config loaded
    /// (when it did not, the fleet is the one before).
    Ended {
        /// The targets of the current fleet.
        targets: usize,
        /// Whether the new config loaded.
        loaded: bool,
    },
}

type ObserverFn = Box<dyn Fn(Reloading) + Send + Sync>;

#[derive(Default)]
struct Observer(OnceLock<ObserverFn>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

impl Shared {
    /// The current fleet.
    pub fn fleet(&self) -> Arc<Fleet> {
        Arc::clone(&self.fleet.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The last reload's outcome.
    pub fn reload_state(&self) -> ReloadState {
        *self
            .reload_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// True once a config is loaded (`/-/ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the daemon ready: its config is loaded and every stage started.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// The daemon's own counters, now, for `/metrics`.
    pub fn counters(&self) -> DaemonCounters {
        DaemonCounters {
            late_checks: self.sinks.late_checks(),
            reload: self.reload_state(),
            sinks_dropped: self.sinks.dropped(),
            alerts: self
                .alerts
                .receivers()
                .iter()
                .map(|counters| AlertCounts {
                    receiver: counters.name,
                    sent: counters.sent(),
                    failed: counters.failed(),
                })
                .collect(),
            probe_engine: self.probers.half_open.engine(),
        }
    }

    /// Tells the scheduler to stop.
    pub fn stop_scheduler(&self) {
        let _ = self.scheduler.send(Command::Stop);
    }

    fn file_sd(&self) -> FileSdSeen {
        self.file_sd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The web config in force: TLS, client certificates and basic auth for every path;
    /// None without `--web.config.file`.
    pub fn web(&self) -> Option<Arc<WebConfig>> {
        self.web
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `web` in force (at start; a reload reads the file again itself).
    pub fn set_web(&self, web: Option<WebConfig>) {
        *self.web.write().unwrap_or_else(PoisonError::into_inner) = web.map(Arc::new);
    }

    /// The alerts: receivers' counters, silences and maintenance windows.
    pub fn alerts(&self) -> &Arc<Alerts> {
        &self.alerts
    }

    /// This `Shared` with `alerts` (started with [`Alerts::start`]) in place of the
    /// receiver-less ones [`Shared::new`] gives.
    pub fn with_alerts(mut self, alerts: Arc<Alerts>) -> Shared {
        self.alerts = alerts;
        self
    }

    /// The options the daemon was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// A `Shared` for tests of the HTTP side and the sinks: `fleet` as the current fleet,
    /// probers of their own, no sink, no scheduler (its commands go nowhere), ready or not
    /// as `ready` says. A reload reads `options.config`.
    #[doc(hidden)]
    pub fn for_tests(options: Options, fleet: Fleet, ready: bool) -> Arc<Shared> {
        let (scheduler, _) = mpsc::unbounded_channel();
        let mut shared = Shared::new(
            options,
            Plan::empty(),
            Probers::new(256),
            Sinks::none(),
            scheduler,
        );
        shared.history.track(&fleet);
        shared.fleet = RwLock::new(Arc::new(fleet));
        shared.ready.store(ready, Ordering::Relaxed);
        Arc::new(shared)
    }

    /// A `Shared` watching the fleet of `plan`, a config loaded just now; not yet ready.
    pub fn new(
        options: Options,
        plan: Plan,
        probers: Probers,
        sinks: Sinks,
        scheduler: mpsc::UnboundedSender<Command>,
    ) -> Shared {
        let file_sd = FileSdSeen::of(&options.config, &plan);
        let alerts = Arc::new(Alerts::none(&plan));
        let fleet = Fleet::build(plan, None, SystemTime::now());
        let history = History::new();
        history.track(&fleet);
        Shared {
            options,
            fleet: RwLock::new(Arc::new(fleet)),
            reload_state: Mutex::new(ReloadState::default()),
            ready: AtomicBool::new(false),
            probers,
            sinks,
            scheduler,
            reloading: tokio::sync::Mutex::new(()),
            file_sd: Mutex::new(file_sd),
            probes_in_flight: std::sync::atomic::AtomicUsize::new(0),
            web: RwLock::new(None),
            observer: Observer::default(),
            history,
            store: None,
            live: Live::new(),
            alerts,
        }
    }

    /// `self`, whose `GET /events` streams `live`: the broadcast that the daemon's
    /// [`EventsSink`](crate::sinks::events::EventsSink) feeds.
    pub fn with_live(mut self, live: Live) -> Shared {
        self.live = live;
        self
    }

    /// The status page's live events.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// This `Shared`, at start, with the history that the history's sink fills and the
    /// store it writes (`--data-dir`): each target of `saved` whose address and check
    /// kind are unchanged resumes in its saved state ([`Fleet::resume`]), and the history
    /// follows the fleet ([`History::track`]). Returns how many targets resumed too.
    pub fn remembering(
        mut self,
        history: History,
        store: Option<Arc<Store>>,
        saved: &std::collections::HashMap<String, SavedState>,
    ) -> (Shared, usize) {
        let fleet = self.fleet.get_mut().unwrap_or_else(PoisonError::into_inner);
        let resumed = match Arc::get_mut(fleet) {
            Some(fleet) => fleet.resume(saved),
            // Only `Shared::new` has made the fleet: no one else holds it yet.
            None => 0,
        };
        history.track(fleet);
        self.history = history;
        self.store = store;
        (self, resumed)
    }

    /// Each target's history, in memory: what the status page and `/api/history`
    /// (without `--data-dir`) read.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// `--data-dir`'s store, when given: what `/api/history` reads.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// Has `observer` told when each reload (SIGHUP, `POST /-/reload`, file_sd) begins
    /// and ends. Once: false, and `observer` dropped, when one is already set.
    pub fn observe_reloads(&self, observer: impl Fn(Reloading) + Send + Sync + 'static) -> bool {
        self.observer.0.set(Box::new(observer)).is_ok()
    }

    fn tell(&self, what: Reloading) {
        if let Some(observer) = self.observer.0.get() {
            observer(what);
        }
    }

    /// Re-reads the config, file_sd and the web config (`--web.config.file`), and swaps
    /// them in: every target whose address and check kind are unchanged keeps its state,
    /// with its new settings; a renewed certificate is served to the next connections.
    /// On error nothing changes, neither the config nor the web config: the errors are
    /// logged with their line and column, returned, and
    /// `connhealth_config_last_reload_successful` turns 0.
    pub async fn reload(&self, why: &str) -> Result<usize, ConfigErrors> {
        let _one_at_a_time = self.reloading.lock().await;
        self.tell(Reloading::Begins);
        let result = self.reload_now(why).await;
        self.tell(Reloading::Ended {
            targets: self.fleet().targets.len(),
            loaded: result.is_ok(),
        });
        result
    }

    /// [`Shared::reload`]'s work, under its lock.
    async fn reload_now(&self, why: &str) -> Result<usize, ConfigErrors> {
        let path = self.options.config.clone();
        let web_path = self.options.web_config.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let web = web_path.as_deref().map(config::load_web).transpose();
            let plan = config::load(&path).map(|plan| {
                let seen = FileSdSeen::of(&path, &plan);
                (plan, seen)
            });
            match (plan, web) {
                (Ok((plan, seen)), Ok(web)) => Ok((plan, seen, web)),
                (Err(mut errors), Err(web)) => {
                    errors.0.extend(web.0);
                    Err(errors)
                }
                (Err(errors), _) | (_, Err(errors)) => Err(errors),
            }
        })
        .await
        .unwrap_or_else(|err| {
            Err(ConfigErrors::one(
                &self.options.config,
                format!("the config loader failed: {err}"),
            ))
        });
        let (plan, seen, web) = match loaded {
            Ok(loaded) => loaded,
            Err(errors) => {
                for err in &errors.0 {
                    tracing::error!(reload = why, "config not reloaded: {err}");
                }
                self.reload_state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .successful = false;
                return Err(errors);
            }
        };
        if web.is_some() {
            self.set_web(web);
        }
        *self.file_sd.lock().unwrap_or_else(PoisonError::into_inner) = seen;
        for warning in &plan.warnings {
            tracing::warn!(reload = why, "{warning}");
        }
        let plan = plan.sharded(self.options.shard);
        self.alerts.reload(&plan);
        let now = SystemTime::now();
        let fleet = Arc::new(Fleet::build(plan, Some(&self.fleet()), now));
        let targets = fleet.targets.len();
        sys::release_freed_memory();
        *self.fleet.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fleet);
        self.history.track(&fleet);
        let _ = self.scheduler.send(Command::Fleet(fleet));
        *self
            .reload_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = ReloadState {
            successful: true,
            last_success: now,
        };
        tracing::info!(reload = why, targets, "config reloaded");
        Ok(targets)
    }
}

/// How often file_sd files are looked at: a change is picked up within this and the
/// reload after it (well within the 5 s promised), and a look is a glob and a few `stat`s.
const FILE_SD_POLL: Duration = Duration::from_secs(1);

/// What a look at the file_sd files saw: each file matched, with its size and mtime.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(config: &std::path::Path, globs: &[String]) -> Fingerprint {
    config::file_sd_paths(config, globs)
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}

/// The file_sd globs of the current plan, and what their files looked like when it was
/// read: the watcher reloads when a look differs.
#[derive(Debug, Clone, Default)]
struct FileSdSeen {
    globs: Vec<String>,
    seen: Fingerprint,
}

impl FileSdSeen {
    /// Taken just after `plan` was loaded. A file modified since the load began may have
    /// changed after it was read: it is marked so that the next look differs, and the
    /// watcher reads it again.
    fn of(config: &std::path::Path, plan: &Plan) -> FileSdSeen {
        let globs: Vec<String> = plan
            .file_sd
            .iter()
            .flat_map(|sd| sd.files.iter().cloned())
            .collect();
        let mut seen = fingerprint(config, &globs);
        for (_, len, modified) in &mut seen {
            if modified.is_none_or(|at| at >= plan.read_at) {
                *len = u64::MAX;
            }
        }
        FileSdSeen { globs, seen }
    }
}

/// Reloads when a file_sd file changes, appears or disappears, until `stop` turns true.
pub async fn watch_file_sd(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FILE_SD_POLL) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let config = shared.options.config.clone();
        let FileSdSeen { globs, seen } = shared.file_sd();
        let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&config, &globs)).await
        else {
            continue;
        };
        if now != seen && shared.reload("file_sd changed").await.is_err() {
            // A reload records what it read. A failed one (a file half-written, or
            // broken) is logged once and tried again at the next change, not every look.
            shared
                .file_sd
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .seen = now;
        }
    }
}
