//! The daemon: wires config, schedule, checks, state and the sinks together, and owns
//! reload, signals and shutdown.
//!
//! Two runtimes, so that nothing slow delays a check: the scheduler and every check run
//! on one current-thread runtime of their own ([`crate::schedule`]); HTTP, signals,
//! reloads and the file_sd watcher run on another. A scrape of 100k targets, a slow HTTP
//! client or a reload never holds up a check, and the checks never wait on a scrape.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use connhealth::{Mode, Prober};
use tokio::sync::mpsc;

use crate::config::{self, CheckPlan, ConfigErrors, Plan};
use crate::schedule::{self, Command};
use crate::shard::Shard;
use crate::state::Target;
use crate::sys;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What `connhealth watch` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The TOML config.
    pub config: PathBuf,
    /// Where HTTP listens (default `127.0.0.1:9717`).
    pub listen: SocketAddr,
    /// Validate the config and exit: 0 and a summary, or 2 and every error.
    pub check_config: bool,
    /// Watch only this shard's targets.
    pub shard: Option<Shard>,
    /// How log lines look.
    pub log_format: LogFormat,
    /// The most probes each prober keeps in flight; by default a quarter of the
    /// descriptor limit (raised to its hard limit at start), between 64 and 4096.
    pub max_in_flight: Option<usize>,
}

/// The default `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9717";

/// The targets being watched, with the modules `/probe` offers: one generation of the
/// config. A reload builds the next and swaps it in.
#[derive(Debug)]
pub struct Fleet {
    /// Every target this instance watches (its shard's), in config order.
    pub targets: Vec<Arc<Target>>,
    /// `[modules.NAME]`.
    pub modules: std::collections::BTreeMap<String, CheckPlan>,
    /// `[defaults]`: the settings of the built-in `/probe` modules.
    pub defaults: CheckPlan,
}

impl Fleet {
    /// The fleet of `plan`: a target whose name, address and check kind are unchanged
    /// from `old` keeps its state, counters and transitions, with its new settings and
    /// labels ([`TargetPlan::is_same_target`](crate::config::TargetPlan::is_same_target));
    /// the others start unknown.
    pub fn build(plan: Plan, old: Option<&Fleet>, now: SystemTime) -> Fleet {
        let kept: HashMap<&str, &Arc<Target>> = old
            .map(|fleet| {
                fleet
                    .targets
                    .iter()
                    .map(|t| (t.plan.name.as_str(), t))
                    .collect()
            })
            .unwrap_or_default();
        let targets = plan
            .targets
            .into_iter()
            .map(|new| match kept.get(new.name.as_str()) {
                Some(old) if old.plan == new => Arc::clone(old),
                // New settings or labels, the same thing to watch: the state, counters
                // and transitions carry on (an alert's `for:` does not start over), and
                // the scheduler takes the new settings for the next check.
                Some(old) if old.plan.is_same_target(&new) => Arc::new(Target::carrying(new, old)),
                _ => Arc::new(Target::new(new, now)),
            })
            .collect();
        Fleet {
            targets,
            modules: plan.modules,
            defaults: plan.defaults,
        }
    }
}

/// The two probers every half-open and connect check goes through.
#[derive(Debug, Clone)]
pub struct Probers {
    /// `Mode::HalfOpen`: half-open checks, hold's confirming probes, `/probe` `half_open`.
    pub half_open: Prober,
    /// `Mode::Connect`: connect checks, `/probe` `connect` and `tcp_connect`.
    pub connect: Prober,
}

impl Probers {
    /// Two probers sized for the process's descriptor limit.
    pub fn new(max_in_flight: usize) -> Probers {
        let build = |mode| {
            Prober::builder()
                .mode(mode)
                .max_in_flight(max_in_flight)
                .build()
        };
        Probers {
            half_open: build(Mode::HalfOpen),
            connect: build(Mode::Connect),
        }
    }
}

/// The outcome of the last reload, for `connhealth_config_last_reload_*`.
#[derive(Debug, Clone, Copy)]
pub struct ReloadState {
    /// The last reload (or the first load) succeeded.
    pub successful: bool,
    /// When a config last loaded.
    pub last_success: SystemTime,
}

/// What the HTTP side, the scheduler and reloads share.
#[derive(Debug)]
pub struct Shared {
    options: Options,
    fleet: RwLock<Arc<Fleet>>,
    /// Checks started more than max(10 ms, 10 % of their interval) after they were due.
    pub late_checks: AtomicU64,
    reload_state: Mutex<ReloadState>,
    ready: AtomicBool,
    /// The probers (the scheduler holds clones).
    pub probers: Probers,
    scheduler: mpsc::UnboundedSender<Command>,
    /// One reload at a time: SIGHUP, `POST /-/reload` and file_sd changes queue here.
    reloading: tokio::sync::Mutex<()>,
    /// The current plan's file_sd globs, and what its files looked like, for the watcher.
    file_sd: Mutex<FileSdSeen>,
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

    fn file_sd(&self) -> FileSdSeen {
        self.file_sd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The options the daemon was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// A `Shared` for tests of the HTTP side and the sinks: `fleet` as the current fleet,
    /// probers of their own, no scheduler (its commands go nowhere), ready or not as
    /// `ready` says. A reload reads `options.config`.
    #[doc(hidden)]
    pub fn for_tests(options: Options, fleet: Fleet, ready: bool) -> Arc<Shared> {
        let (scheduler, _) = mpsc::unbounded_channel();
        let shared = Shared::new(
            options,
            Arc::new(fleet),
            Probers::new(256),
            scheduler,
            FileSdSeen::default(),
        );
        shared.ready.store(ready, Ordering::Relaxed);
        Arc::new(shared)
    }

    /// A `Shared` whose config loaded just now, not yet ready.
    fn new(
        options: Options,
        fleet: Arc<Fleet>,
        probers: Probers,
        scheduler: mpsc::UnboundedSender<Command>,
        file_sd: FileSdSeen,
    ) -> Shared {
        Shared {
            options,
            fleet: RwLock::new(fleet),
            late_checks: AtomicU64::new(0),
            reload_state: Mutex::new(ReloadState {
                successful: true,
                last_success: SystemTime::now(),
            }),
            ready: AtomicBool::new(false),
            probers,
            scheduler,
            reloading: tokio::sync::Mutex::new(()),
            file_sd: Mutex::new(file_sd),
        }
    }

    /// Re-reads the config and file_sd and swaps the new fleet in: every target whose
    /// address and check kind are unchanged keeps its state, with its new settings. On error nothing changes: the errors are logged with
    /// their line and column, returned, and `connhealth_config_last_reload_successful`
    /// turns 0.
    pub async fn reload(&self, why: &str) -> Result<usize, ConfigErrors> {
        let _one_at_a_time = self.reloading.lock().await;
        let path = self.options.config.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            config::load(&path).map(|plan| {
                let seen = FileSdSeen::of(&path, &plan);
                (plan, seen)
            })
        })
        .await
        .unwrap_or_else(|err| {
            Err(ConfigErrors::one(
                &self.options.config,
                format!("the config loader failed: {err}"),
            ))
        });
        let (plan, seen) = match loaded {
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
        *self.file_sd.lock().unwrap_or_else(PoisonError::into_inner) = seen;
        let plan = shard_plan(plan, self.options.shard);
        let now = SystemTime::now();
        let fleet = Arc::new(Fleet::build(plan, Some(&self.fleet()), now));
        let targets = fleet.targets.len();
        sys::release_freed_memory();
        *self.fleet.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fleet);
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

/// Keeps the targets of `shard` (all of them without one).
fn shard_plan(mut plan: Plan, shard: Option<Shard>) -> Plan {
    if let Some(shard) = shard {
        plan.targets.retain(|t| shard.owns(&t.name));
    }
    plan
}

/// Runs `connhealth watch` to the end and returns its exit code: 0 after SIGTERM or
/// SIGINT, 2 for a bad config at start, 1 for a failure at run time (the listen address
/// is taken, say), with the reason on stderr.
pub fn run(options: Options) -> ExitCode {
    let plan = match config::load(&options.config) {
        Ok(plan) => plan,
        Err(errors) => {
            eprintln!("{errors}");
            if !options.check_config {
                eprintln!(
                    "connhealth watch: {} has {} error(s); fix them and start again (--check-config validates without starting)",
                    options.config.display(),
                    errors.0.len()
                );
            }
            return ExitCode::from(2);
        }
    };
    if options.check_config {
        println!("{}", summary(&options, &plan));
        return ExitCode::SUCCESS;
    }
    let _log_guard = crate::status::init_logging(options.log_format);
    let plan = shard_plan(plan, options.shard);
    match serve(options, plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            tracing::error!("{why}");
            eprintln!("connhealth watch: {why}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config`'s one line.
fn summary(options: &Options, plan: &Plan) -> String {
    let from_file_sd: usize = plan.file_sd.iter().map(|sd| sd.matched.len()).sum();
    let mut line = format!(
        "{}: ok, {} target(s), {} module(s), {} file_sd file(s)",
        options.config.display(),
        plan.targets.len(),
        plan.modules.len(),
        from_file_sd
    );
    if let Some(shard) = options.shard {
        let mine = plan.targets.iter().filter(|t| shard.owns(&t.name)).count();
        line.push_str(&format!("; shard {shard} watches {mine}"));
    }
    line
}

/// Starts everything and runs until SIGTERM or SIGINT.
fn serve(options: Options, plan: Plan) -> Result<(), String> {
    let daemon = Daemon::start(options, plan)?;
    let why = daemon.runtime.block_on(signals(&daemon.shared));
    tracing::info!("{why}: shutting down");
    daemon.stop();
    Ok(())
}

/// A running daemon: the scheduler thread, the HTTP server and the file_sd watcher.
/// [`run`] starts one and stops it on a signal; tests and the demo drive one directly.
///
/// ```
/// use std::net::TcpListener;
/// use std::time::{Duration, Instant};
/// use connhealth_watch::config;
/// use connhealth_watch::daemon::{Daemon, Options};
/// use connhealth_watch::state::Health;
///
/// # let dir = std::env::temp_dir().join(format!("connhealth-watch-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let path = dir.join("watch.toml");
/// let text = format!(
///     "[defaults]\nrise = 1\n\n[[targets]]\nname = \"web\"\naddress = \"{}\"\n",
///     server.local_addr()?
/// );
/// std::fs::write(&path, text)?;
/// let plan = config::load(&path).map_err(std::io::Error::other)?;
/// let options = Options {
///     config: path,
///     listen: "127.0.0.1:0".parse().unwrap(), // any free port; see `listen()`
///     check_config: false,
///     shard: None,
///     log_format: Default::default(),
///     max_in_flight: None,
/// };
/// let daemon = Daemon::start(options, plan).map_err(std::io::Error::other)?;
/// let web = daemon.shared().fleet().targets[0].clone();
/// let start = Instant::now();
/// while web.status().health != Health::Up && start.elapsed() < Duration::from_secs(5) {
///     std::thread::sleep(Duration::from_millis(10));
/// }
/// assert_eq!(web.status().health, Health::Up); // one half-open check, one success
/// daemon.stop();
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Daemon {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    checks: schedule::SchedulerThread,
    stop: tokio::sync::watch::Sender<bool>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    listen: SocketAddr,
}

impl Daemon {
    /// Starts watching `plan` (already sharded), serving HTTP on `options.listen`. Fails
    /// with the reason when the address is taken or a thread cannot start.
    pub fn start(options: Options, plan: Plan) -> Result<Daemon, String> {
        let max_in_flight = sys::raise_descriptor_limit();
        let max_in_flight = options.max_in_flight.unwrap_or(max_in_flight).max(1);
        let probers = Probers::new(max_in_flight);
        let (scheduler_tx, scheduler_rx) = mpsc::unbounded_channel();
        let file_sd = FileSdSeen::of(&options.config, &plan);
        let fleet = Arc::new(Fleet::build(plan, None, SystemTime::now()));
        sys::release_freed_memory();
        let shared = Arc::new(Shared::new(
            options,
            Arc::clone(&fleet),
            probers,
            scheduler_tx,
            file_sd,
        ));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("connhealth-http")
            .enable_all()
            .build()
            .map_err(|err| format!("cannot start the HTTP runtime: {err}"))?;
        let wanted = shared.options.listen;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(wanted))
            .map_err(|err| {
                format!("cannot listen on {wanted}: {err}; pick another address with --listen")
            })?;
        let listen = listener.local_addr().unwrap_or(wanted);
        let checks = schedule::spawn(Arc::clone(&shared), fleet, scheduler_rx)
            .map_err(|err| format!("cannot start the scheduler thread: {err}"))?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let http = runtime.spawn(crate::http::serve(listener, Arc::clone(&shared), {
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            }
        }));
        runtime.spawn(watch_file_sd(Arc::clone(&shared), stop_rx));
        shared.ready.store(true, Ordering::Relaxed);
        tracing::info!(%listen, targets = shared.fleet().targets.len(), "connhealth watch started");
        Ok(Daemon {
            shared,
            runtime,
            checks,
            stop,
            http,
            listen,
        })
    }

    /// What the daemon shares with its HTTP side: the fleet, counters, reload.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The address HTTP listens on (the port chosen, when `--listen` gave port 0).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Reloads now, as SIGHUP does.
    pub fn reload(&self) -> Result<usize, ConfigErrors> {
        self.runtime.block_on(self.shared.reload("reload"))
    }

    /// Stops everything and waits, briefly: in-flight HTTP requests get 300 ms, idle
    /// connections and hung resolvers are not waited for, so the process can exit within
    /// a second of SIGTERM.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let http = self.http;
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_millis(300), http).await });
        let _ = self.shared.scheduler.send(Command::Stop);
        self.checks.join();
        self.runtime.shutdown_timeout(Duration::from_millis(100));
    }
}

/// Waits for SIGTERM or SIGINT, reloading on every SIGHUP meanwhile. Returns what ended it.
async fn signals(shared: &Arc<Shared>) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    // One reloader, woken by every SIGHUP. A SIGHUP that comes while a reload runs leaves
    // one permit, so the files are read again once after it and the newest config wins;
    // a burst of them never queues a reload each (a reload of a large fleet takes longer
    // than an operator's loop of `kill -HUP` does).
    let wanted = Arc::new(tokio::sync::Notify::new());
    let reloader = tokio::spawn({
        let shared = Arc::clone(shared);
        let wanted = Arc::clone(&wanted);
        async move {
            loop {
                wanted.notified().await;
                let _ = shared.reload("SIGHUP").await;
            }
        }
    });
    let why = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => wanted.notify_one(),
        }
    };
    reloader.abort();
    why
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
            if modified.map_or(true, |at| at >= plan.read_at) {
                *len = u64::MAX;
            }
        }
        FileSdSeen { globs, seen }
    }
}

/// Reloads when a file_sd file changes, appears or disappears.
async fn watch_file_sd(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
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
