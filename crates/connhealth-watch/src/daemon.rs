//! The daemon: the one module that wires the stages together (nothing imports it), and
//! owns start, signals and shutdown.
//!
//! Two runtimes, so that nothing slow delays a check: the scheduler and every check run
//! on one current-thread runtime of their own ([`crate::schedule`]); HTTP, signals,
//! reloads and the file_sd watcher run on another. Each sink has a thread of its own
//! ([`crate::sinks`]). A scrape of 100k targets, a slow HTTP client, a slow sink or a
//! reload never holds up a check, and the checks never wait on a scrape.
//!
//! Under systemd (`Type=notify`, `packaging/connhealth-watch.service`) the daemon tells
//! the service manager what it does ([`crate::notify`]): `READY=1` once the config is
//! loaded and the listener bound, `RELOADING=1` then `READY=1` around each reload,
//! `STOPPING=1` at shutdown, `STATUS=watching N targets`, and, when `WatchdogSec=` asks,
//! `WATCHDOG=1` at half its period from a thread of its own, only while the scheduler's
//! loop turns ([`schedule::Progress`]): a stuck scheduler stops the pings, and systemd
//! restarts the daemon.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::checks::Probers;
use crate::config::{self, ConfigErrors, Options, Plan};
use crate::notify::{Notifier, WatchdogGate};
use crate::reload::{watch_file_sd, Reloading, Shared};
use crate::schedule;
use crate::sinks::alerts::Alerts;
use crate::sinks::events::Live;
use crate::sinks::history::{History, HistorySink};
use crate::sinks::{log, Sink, Sinks};
use crate::state::SavedState;
use crate::store::history::LoadedTarget;
use crate::store::{Store, StoreError};
use crate::sys;

/// How long a stop waits for the sinks to deliver what they hold.
const SINKS_GRACE: Duration = Duration::from_millis(300);

/// Runs `connhealth watch` to the end and returns its exit code: 0 after SIGTERM or
/// SIGINT, 2 for a bad config at start, 1 for a failure at run time (the listen address
/// is taken, say), with the reason on stderr.
pub fn run(options: Options) -> ExitCode {
    // The web config is read here to refuse a bad one at start (exit 2), with the config's
    // errors; the daemon reads it again when it starts.
    let web = options
        .web_config
        .as_deref()
        .map(config::load_web)
        .transpose();
    let plan = match (config::load(&options.config), web) {
        (Ok(plan), Ok(_)) => Ok(plan),
        (Err(mut errors), Err(web)) => {
            errors.0.extend(web.0);
            Err(errors)
        }
        (Err(errors), _) | (_, Err(errors)) => Err(errors),
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(errors) => {
            eprintln!("{errors}");
            if !options.check_config {
                let file = errors.0.first().map_or(&*options.config, |err| &*err.file);
                eprintln!(
                    "connhealth watch: {} has {} error(s); fix them and start again (--check-config validates without starting)",
                    file.display(),
                    errors.0.len()
                );
            }
            return ExitCode::from(2);
        }
    };
    if options.check_config {
        for warning in &plan.warnings {
            eprintln!("warning: {warning}");
        }
        println!("{}", summary(&options, &plan));
        return ExitCode::SUCCESS;
    }
    let store = match open_store(&options) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("connhealth watch: {err}");
            return ExitCode::from(2);
        }
    };
    let log_guard = log::init_logging(options.log_format);
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    let plan = plan.sharded(options.shard);
    match serve(options, plan, store) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            // Once: through the log when it is set up (it writes to stderr), else plainly.
            if log_guard.is_some() {
                tracing::error!("connhealth watch: {why}");
            } else {
                eprintln!("connhealth watch: {why}");
            }
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

/// `--data-dir`'s store, opened and checked, with what it remembers; `None` without
/// `--data-dir`.
fn open_store(options: &Options) -> Result<Option<Remembered>, StoreError> {
    let Some(dir) = options.data_dir.as_deref() else {
        return Ok(None);
    };
    let store = Arc::new(Store::open(dir)?);
    let targets = store.load_history(std::time::SystemTime::now())?;
    Ok(Some(Remembered { store, targets }))
}

/// An open store and what it held at start: every target's last state and recent
/// history.
#[derive(Debug)]
struct Remembered {
    store: Arc<Store>,
    targets: Vec<LoadedTarget>,
}

/// Starts everything and runs until SIGTERM or SIGINT.
fn serve(options: Options, plan: Plan, store: Option<Remembered>) -> Result<(), String> {
    let daemon = Daemon::launch(options, plan, Vec::new(), store)?;
    let signals = {
        let _in = daemon.runtime.enter();
        Signals::install()
    };
    daemon.announce_ready();
    let why = daemon.runtime.block_on(signals.wait(&daemon.shared));
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
/// use connhealth_watch::config::{self, Options};
/// use connhealth_watch::daemon::Daemon;
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
///     listen: "127.0.0.1:0".into(), // any free port; see `listen()`
///     check_config: false,
///     shard: None,
///     log_format: Default::default(),
///     max_in_flight: None,
///     web_config: None,
///     data_dir: None,
/// };
/// let daemon = Daemon::start(options, plan).map_err(std::io::Error::other)?;
/// let web = daemon.shared().fleet().targets[0].clone();
/// let start = Instant::now();
/// while web.state().health != Health::Up && start.elapsed() < Duration::from_secs(5) {
///     std::thread::sleep(Duration::from_millis(10));
/// }
/// assert_eq!(web.state().health, Health::Up); // one half-open check, one success
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
    notifier: Arc<Notifier>,
    watchdog: Option<Watchdog>,
}

impl Daemon {
    /// Starts watching `plan` (already sharded), serving HTTP on `options.listen`, with
    /// the log and the history as its sinks (the history in `--data-dir`'s store when
    /// `options.data_dir` is set, and each target resumed in its saved state). Fails
    /// with the reason when the address is taken, a thread cannot start, or the data dir
    /// cannot be used.
    pub fn start(options: Options, plan: Plan) -> Result<Daemon, String> {
        Daemon::start_with(options, plan, Vec::new())
    }

    /// [`Daemon::start`], with `sinks` told of every transition beside the log.
    pub fn start_with(
        options: Options,
        plan: Plan,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<Daemon, String> {
        let store = open_store(&options).map_err(|err| err.to_string())?;
        let daemon = Daemon::launch(options, plan, sinks, store)?;
        daemon.announce_ready();
        Ok(daemon)
    }

    /// Tells systemd (`READY=1` and the target count) that the daemon serves.
    fn announce_ready(&self) {
        let targets = self.shared.fleet().targets.len();
        self.notifier.ready(&status(targets, true));
    }

    /// Everything of [`Daemon::start_with`] but `READY=1`: [`serve`] first installs its
    /// signal handlers, so that a reload asked for the moment systemd hears READY (its
    /// `ExecReload`'s SIGHUP) finds them and does not end the process.
    fn launch(
        options: Options,
        plan: Plan,
        sinks: Vec<Box<dyn Sink>>,
        remembered: Option<Remembered>,
    ) -> Result<Daemon, String> {
        let notifier = Arc::new(Notifier::from_env());
        let max_in_flight = sys::raise_descriptor_limit();
        let max_in_flight = options.max_in_flight.unwrap_or(max_in_flight).max(1);
        let probers = Probers::new(max_in_flight);
        // The history: loaded from the store, or empty in memory; its sink fills it.
        let (history, saved, store) = match remembered {
            Some(Remembered { store, targets }) => {
                let history = History::loaded(&targets);
                let saved: HashMap<String, SavedState> = targets
                    .into_iter()
                    .map(|target| (target.name, target.saved))
                    .collect();
                (history, saved, Some(store))
            }
            None => (History::new(), HashMap::new(), None),
        };
        let live = Live::new();
        let mut all: Vec<Box<dyn Sink>> = vec![
            Box::new(log::Log),
            Box::new(HistorySink::new(history.clone(), store.clone())),
            Box::new(live.sink()),
        ];
        all.extend(sinks);
        let (alerts, receivers) = Alerts::start(&plan, store.clone())?;
        all.extend(receivers);
        let sinks = Sinks::start(all).map_err(|err| format!("cannot start a sink: {err}"))?;
        let (scheduler_tx, scheduler_rx) = mpsc::unbounded_channel();
        let shared = Shared::new(options, plan, probers.clone(), sinks.clone(), scheduler_tx)
            .with_live(live)
            .with_alerts(alerts);
        let store_path = store.as_ref().map(|store| store.path().to_owned());
        let (shared, resumed) = shared.remembering(history, store, &saved);
        drop(saved);
        if let Some(path) = store_path {
            tracing::info!(
                path = %path.display(),
                resumed,
                "{resumed} target(s) resume in the state {} saved",
                path.display()
            );
        }
        let shared = Arc::new(shared);
        sys::release_freed_memory();
        let fleet = shared.fleet();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("connhealth-http")
            .enable_all()
            .build()
            .map_err(|err| format!("cannot start the HTTP runtime: {err}"))?;
        let wanted = shared.options().listen.as_str();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(wanted))
            .and_then(|listener| Ok((listener.local_addr()?, listener)));
        let (listen, listener) = listener.map_err(|err| {
            format!("cannot listen on {wanted}: {err}; pick another address with --listen")
        })?;
        let web = match &shared.options().web_config {
            Some(path) => Some(config::load_web(path).map_err(|errors| errors.to_string())?),
            None => None,
        };
        let open = web
            .as_ref()
            .is_none_or(|web| web.tls.is_none() && web.basic_auth.is_none());
        if open && !listen.ip().is_loopback() {
            tracing::warn!(
                %listen,
                "HTTP listens beyond loopback with neither TLS nor basic auth (--web.config.file): anyone who reaches {listen} reads /metrics and /status and can POST /-/reload; give a web config with TLS and basic_auth_users, or listen on 127.0.0.1"
            );
        }
        shared.set_web(web);
        // The scheduler turns at least twice per watchdog ping, due checks or not.
        let heartbeat = notifier.watchdog_period().map(|period| period / 2);
        let checks = schedule::spawn(probers, sinks, fleet, scheduler_rx, heartbeat)
            .map_err(|err| format!("cannot start the scheduler thread: {err}"))?;
        shared.observe_reloads({
            let notifier = Arc::clone(&notifier);
            move |what| match what {
                Reloading::Begins => notifier.reloading(),
                Reloading::Ended { targets, loaded } => {
                    notifier.ready(&status(targets, loaded));
                }
            }
        });
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let http = runtime.spawn(crate::http::serve(listener, Arc::clone(&shared), {
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            }
        }));
        runtime.spawn(watch_file_sd(Arc::clone(&shared), stop_rx));
        shared.set_ready();
        let targets = shared.fleet().targets.len();
        let watchdog = match notifier.watchdog_period() {
            Some(period) => Some(
                Watchdog::start(Arc::clone(&notifier), checks.progress(), period)
                    .map_err(|err| format!("cannot start the watchdog thread: {err}"))?,
            ),
            None => None,
        };
        shared.probers.say_engine();
        tracing::info!(%listen, targets, "connhealth watch started");
        Ok(Daemon {
            shared,
            runtime,
            checks,
            stop,
            http,
            listen,
            notifier,
            watchdog,
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
    /// connections and hung resolvers are not waited for, and the sinks get 300 ms to
    /// deliver what they hold, so the process can exit within a second of SIGTERM.
    pub fn stop(self) {
        self.notifier.stopping();
        if let Some(watchdog) = self.watchdog {
            watchdog.stop();
        }
        // Open status pages' streams end first: the server's graceful stop waits for
        // the answers under way, and an event stream never ends by itself.
        self.shared.live().close();
        let _ = self.stop.send(true);
        let http = self.http;
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_millis(300), http).await });
        self.shared.stop_scheduler();
        self.checks.join();
        for sink in self.shared.sinks.stop(SINKS_GRACE) {
            tracing::warn!(
                sink,
                "the {sink} sink did not finish delivering within {}; not waited for",
                crate::human::Rounded(SINKS_GRACE)
            );
        }
        self.runtime.shutdown_timeout(Duration::from_millis(100));
    }
}

/// `STATUS=`: what the daemon watches.
fn status(targets: usize, loaded: bool) -> String {
    let plural = if targets == 1 { "" } else { "s" };
    let mut status = format!("watching {targets} target{plural}");
    if !loaded {
        status.push_str("; the last reload failed, see the log");
    }
    status
}

/// The thread that sends `WATCHDOG=1` every `period` (half of `WatchdogSec=`), each time
/// only if the scheduler turned since the last ping. A thread of its own, not a task on
/// the HTTP runtime: a long scrape there must not delay a ping.
#[derive(Debug)]
struct Watchdog {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Watchdog {
    fn start(
        notifier: Arc<Notifier>,
        progress: schedule::Progress,
        period: Duration,
    ) -> std::io::Result<Watchdog> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("connhealth-watchdog".into())
            .spawn(move || {
                let mut gate = WatchdogGate::new(progress.turns());
                let mut next = Instant::now() + period;
                let mut stuck_since: Option<Instant> = None;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(wait) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    next = (next + period).max(Instant::now());
                    if gate.advanced(progress.turns()) {
                        notifier.watchdog();
                        if let Some(since) = stuck_since.take() {
                            tracing::warn!(
                                "the scheduler moves again after {}; systemd's watchdog is pinged again",
                                crate::human::Rounded(since.elapsed())
                            );
                        }
                    } else if stuck_since.is_none() {
                        stuck_since = Some(Instant::now());
                        tracing::error!(
                            "the scheduler made no progress in {}: systemd's watchdog is not pinged (with no ping within WatchdogSec= it restarts the daemon)",
                            crate::human::Rounded(period)
                        );
                    }
                }
            })?;
        Ok(Watchdog { stop, thread })
    }

    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// The daemon's signal handlers: SIGTERM and SIGINT stop it, SIGHUP reloads.
struct Signals(
    std::io::Result<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
);

impl Signals {
    /// Installs the handlers (in a runtime's context), from which moment those signals no
    /// longer end the process by default.
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals((|| {
            Ok((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::hangup())?,
            ))
        })())
    }

    /// Waits for SIGTERM or SIGINT, reloading on every SIGHUP meanwhile. Returns what
    /// ended it.
    async fn wait(self, shared: &Arc<Shared>) -> &'static str {
        let Ok((mut term, mut int, mut hup)) = self.0 else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        };
        // One reloader, woken by every SIGHUP. A SIGHUP that comes while a reload runs
        // leaves one permit, so the files are read again once after it and the newest
        // config wins; a burst of them never queues a reload each (a reload of a large
        // fleet takes longer than an operator's loop of `kill -HUP` does).
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
}
