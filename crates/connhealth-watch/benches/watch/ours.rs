//! Our daemon, in a child process of its own so that its CPU time and memory are its own
//! and are read from `/proc` exactly as HAProxy's and blackbox_exporter's are.
//!
//! The bench binary runs itself again as `watch __daemon CONFIG.toml`: in that mode it
//! does what `connhealth watch --config CONFIG.toml` does (`config::load`, the logging,
//! [`Daemon::start`]), then answers questions on stdin, one line each, so that the bench
//! can count checks without a scrape of 100k series inside its windows (`/metrics` is
//! scraped after a window, and must agree).
//! The daemon stops when stdin closes, so it never outlives the bench.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connhealth_watch::checks::Outcome;
use connhealth_watch::config::{self, CheckKind, CheckPlan};
use connhealth_watch::daemon::Daemon;
use connhealth_watch::state::Health;
use connhealth_watch::{LogFormat, Options};

/// The first argument that puts the bench binary in daemon mode.
pub const DAEMON_MODE: &str = "__daemon";

/// The schedule of a config's `[defaults]`.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub interval: Duration,
    pub fast_interval: Duration,
    pub down_interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub jitter: f64,
}

impl Schedule {
    /// Every check every `interval`, with the documented defaults for the rest
    /// (fast_interval 500 ms, timeout 1 s, rise 2, fall 3, jitter 0.1).
    pub fn every(interval: Duration) -> Schedule {
        let defaults = CheckPlan::default();
        Schedule {
            interval,
            fast_interval: defaults.fast_interval,
            down_interval: interval,
            timeout: defaults.timeout,
            rise: defaults.rise,
            fall: defaults.fall,
            jitter: defaults.jitter,
        }
    }
}

/// One `[[targets]]` entry.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub name: String,
    pub address: SocketAddr,
    pub check: CheckKind,
}

/// `count` half-open targets named `t0`, `t1`, ... spread over `addrs`.
pub fn spread(count: usize, addrs: &[SocketAddr]) -> Vec<TargetSpec> {
    (0..count)
        .map(|i| TargetSpec {
            name: format!("t{i}"),
            address: addrs[i % addrs.len()],
            check: CheckKind::HalfOpen,
        })
        .collect()
}

/// `[defaults]` with `check` and `schedule`.
fn defaults_toml(toml: &mut String, check: CheckKind, schedule: &Schedule) {
    let ms = |d: Duration| format!("\"{}ms\"", d.as_millis());
    let _ = writeln!(toml, "[defaults]");
    let _ = writeln!(toml, "check = \"{}\"", check.name());
    let _ = writeln!(toml, "interval = {}", ms(schedule.interval));
    let _ = writeln!(toml, "fast_interval = {}", ms(schedule.fast_interval));
    let _ = writeln!(toml, "down_interval = {}", ms(schedule.down_interval));
    let _ = writeln!(toml, "timeout = {}", ms(schedule.timeout));
    let _ = writeln!(toml, "rise = {}", schedule.rise);
    let _ = writeln!(toml, "fall = {}", schedule.fall);
    let _ = writeln!(toml, "jitter = {:?}", schedule.jitter);
}

/// The TOML config of `targets` with `schedule` as `[defaults]`, as a user would write it.
pub fn config_toml(schedule: &Schedule, targets: &[TargetSpec]) -> String {
    let mut toml = String::with_capacity(64 * targets.len() + 256);
    defaults_toml(&mut toml, CheckKind::HalfOpen, schedule);
    for target in targets {
        let _ = writeln!(toml, "\n[[targets]]");
        let _ = writeln!(toml, "name = \"{}\"", target.name);
        let _ = writeln!(toml, "address = \"{}\"", target.address);
        if target.check != CheckKind::HalfOpen {
            let _ = writeln!(toml, "check = \"{}\"", target.check.name());
        }
    }
    toml
}

/// The TOML config of `http` targets `t0`, `t1`, ... on `urls`, with `schedule` and
/// the lines of `http_defaults` (`ca_file`, `reuse_connection`) as `[defaults]`.
pub fn http_config_toml(schedule: &Schedule, http_defaults: &str, urls: &[String]) -> String {
    let mut toml = String::with_capacity(64 * urls.len() + 256);
    defaults_toml(&mut toml, CheckKind::Http, schedule);
    toml.push_str(http_defaults);
    for (i, url) in urls.iter().enumerate() {
        let _ = writeln!(toml, "\n[[targets]]\nname = \"t{i}\"\nurl = \"{url}\"");
    }
    toml
}

/// The engine a scrape of `/metrics` says runs the half-open checks: the `engine` label
/// of the `connhealth_probe_engine` series at 1.
pub fn probe_engine(metrics: &str) -> Option<&str> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix("connhealth_probe_engine{engine=\"")?;
        let (engine, value) = rest.split_once("\"} ")?;
        (value.trim() == "1").then_some(engine)
    })
}

// ---- the child: the daemon itself ----

/// Daemon mode: start the daemon on `config` (keeping its state in `data_dir`, as
/// `--data-dir` does, when given) and answer the bench on stdin until it closes.
pub fn child_main(config: &Path, data_dir: Option<&Path>) -> ExitCode {
    let plan = match config::load(config) {
        Ok(plan) => plan,
        Err(errors) => {
            eprintln!("bench daemon: {errors}");
            return ExitCode::from(2);
        }
    };
    // As `connhealth watch` does: every transition is a log line on stderr.
    let _log = connhealth_watch::sinks::log::init_logging(LogFormat::Text);
    let options = Options {
        config: config.to_owned(),
        listen: "127.0.0.1:0".into(),
        check_config: false,
        shard: None,
        log_format: LogFormat::Text,
        max_in_flight: None,
        web_config: None,
        data_dir: data_dir.map(Path::to_owned),
    };
    let daemon = match Daemon::start(options, plan) {
        Ok(daemon) => daemon,
        Err(why) => {
            eprintln!("bench daemon: {why}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "listen {}", daemon.listen());
    let _ = out.flush();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = answer(&daemon, line.trim());
        if out.write_all(answer.as_bytes()).is_err() || out.flush().is_err() {
            break;
        }
    }
    daemon.stop();
    ExitCode::SUCCESS
}

fn unix_nanos(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// One answer, newline-terminated: `counts TOTAL OK EXHAUSTED LATE`, `health UP DOWN
/// UNKNOWN`; for `transitions PREFIX` one `t NAME TO UNIX_NANOS` line per transition
/// of each target whose name starts with PREFIX, then `end`; for `checks PREFIX` one
/// `c NAME RESULT UNIX_NANOS` line per such target, its last check, then `end`.
fn answer(daemon: &Daemon, question: &str) -> String {
    let shared = daemon.shared();
    let fleet = shared.fleet();
    let (verb, prefix) = question.split_once(' ').unwrap_or((question, ""));
    let mine = fleet
        .targets
        .iter()
        .filter(|t| t.plan.name.starts_with(prefix));
    match verb {
        "counts" => {
            let (mut total, mut ok, mut exhausted) = (0u64, 0u64, 0u64);
            for target in mine {
                let status = target.state();
                total += status.total_checks();
                ok += status.checks[Outcome::Ok.index()];
                exhausted += status.checks[Outcome::Exhausted.index()];
            }
            let late = shared.sinks.late_checks();
            format!("counts {total} {ok} {exhausted} {late}\n")
        }
        "health" => {
            let (mut up, mut down, mut unknown) = (0, 0, 0);
            for target in mine {
                match target.state().health {
                    Health::Up => up += 1,
                    Health::Down => down += 1,
                    Health::Unknown => unknown += 1,
                }
            }
            format!("health {up} {down} {unknown}\n")
        }
        "transitions" => {
            let mut text = String::new();
            for target in mine {
                for t in &target.state().transitions {
                    let _ = writeln!(
                        text,
                        "t {} {} {}",
                        target.plan.name,
                        t.to.name(),
                        unix_nanos(t.at)
                    );
                }
            }
            text.push_str("end\n");
            text
        }
        "checks" => {
            let mut text = String::new();
            for target in mine {
                if let Some(last) = &target.state().last_check {
                    let _ = writeln!(
                        text,
                        "c {} {} {}",
                        target.plan.name,
                        last.outcome.label(),
                        unix_nanos(last.at)
                    );
                }
            }
            text.push_str("end\n");
            text
        }
        _ => format!("error unknown question {question:?}\n"),
    }
}

// ---- the parent: the bench's handle on the child ----

/// Checks counted by the daemon's own status, summed over targets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Every check recorded, whatever its result.
    pub total: u64,
    /// Checks that succeeded.
    pub ok: u64,
    /// Checks the daemon could not start in time (its own fault).
    pub exhausted: u64,
    /// `connhealth_checks_late_total`.
    pub late: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, earlier: Counts) -> Counts {
        Counts {
            total: self.total - earlier.total,
            ok: self.ok - earlier.ok,
            exhausted: self.exhausted - earlier.exhausted,
            late: self.late - earlier.late,
        }
    }
}

/// Health by state, over some targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCount {
    pub up: usize,
    pub down: usize,
    pub unknown: usize,
}

/// The capabilities the daemon's process starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caps {
    /// The bench's own (root's: `CAP_NET_RAW` among them).
    AsIs,
    /// All of them but `CAP_NET_RAW`.
    NoNetRaw,
}

/// Our daemon running in a child process.
pub struct Ours {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    listen: SocketAddr,
}

impl Ours {
    /// Writes `toml` to `dir/NAME.toml` and starts the daemon on it, its stderr in
    /// `dir/NAME.log`; returns once it serves.
    pub fn start(dir: &Path, name: &str, toml: &str) -> io::Result<Ours> {
        Ours::start_with(dir, name, toml, None)
    }

    /// [`Ours::start`], keeping its state in `data_dir` (`--data-dir`) when given.
    pub fn start_with(
        dir: &Path,
        name: &str,
        toml: &str,
        data_dir: Option<&Path>,
    ) -> io::Result<Ours> {
        Ours::launch(dir, name, toml, data_dir, Caps::AsIs)
    }

    /// [`Ours::start`] without `CAP_NET_RAW`, as a daemon under the packaged unit runs
    /// without its drop-in: the half-open checks run a socket per probe.
    pub fn start_without_net_raw(dir: &Path, name: &str, toml: &str) -> io::Result<Ours> {
        Ours::launch(dir, name, toml, None, Caps::NoNetRaw)
    }

    fn launch(
        dir: &Path,
        name: &str,
        toml: &str,
        data_dir: Option<&Path>,
        caps: Caps,
    ) -> io::Result<Ours> {
        let config = dir.join(format!("{name}.toml"));
        let log = dir.join(format!("{name}.log"));
        std::fs::write(&config, toml)?;
        let exe = std::env::current_exe()?;
        let mut command = match caps {
            Caps::AsIs => Command::new(&exe),
            Caps::NoNetRaw => {
                // Root keeps a capability across exec through its bounding or inheritable
                // set: dropped from both, the daemon has no CAP_NET_RAW. setpriv execs,
                // so the child's pid is the daemon's.
                let mut setpriv = Command::new("setpriv");
                setpriv
                    .args(["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"])
                    .arg(&exe);
                setpriv
            }
        };
        command.arg(DAEMON_MODE).arg(&config);
        if let Some(data_dir) = data_dir {
            command.arg(data_dir);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let listen = line
            .strip_prefix("listen ")
            .and_then(|addr| addr.trim().parse().ok())
            .ok_or_else(|| {
                let _ = child.kill();
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                io::Error::other(format!("the daemon did not start: {stderr}"))
            })?;
        Ok(Ours {
            child,
            stdin,
            stdout,
            listen,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its HTTP server listens.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The engine its `/metrics` says runs the half-open checks (a scrape: keep it out
    /// of a window, and away from a large fleet).
    pub fn engine(&self) -> io::Result<String> {
        let metrics = crate::peers::http_get(self.listen, "/metrics")?;
        probe_engine(&metrics)
            .map(str::to_owned)
            .ok_or_else(|| io::Error::other("/metrics has no connhealth_probe_engine series at 1"))
    }

    fn ask(&mut self, question: &str) -> io::Result<Vec<String>> {
        let stdin = self.stdin.as_mut().expect("stdin open until stop");
        writeln!(stdin, "{question}")?;
        stdin.flush()?;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line)? == 0 {
                return Err(io::Error::other("the daemon exited"));
            }
            let line = line.trim_end().to_owned();
            // Lists are `t ...` or `c ...` lines closed by `end`.
            let last = !line.starts_with("t ") && !line.starts_with("c ");
            lines.push(line);
            if last {
                return Ok(lines);
            }
        }
    }

    fn numbers(&mut self, question: &str, verb: &str) -> io::Result<Vec<u64>> {
        let lines = self.ask(question)?;
        let line = lines.last().cloned().unwrap_or_default();
        let rest = line
            .strip_prefix(verb)
            .ok_or_else(|| io::Error::other(format!("asked {question:?}, got {line:?}")))?;
        Ok(rest
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect())
    }

    /// Checks so far, over every target.
    pub fn counts(&mut self) -> io::Result<Counts> {
        let n = self.numbers("counts", "counts ")?;
        Ok(Counts {
            total: n[0],
            ok: n[1],
            exhausted: n[2],
            late: n[3],
        })
    }

    /// Health of the targets whose names start with `prefix`.
    pub fn health(&mut self, prefix: &str) -> io::Result<HealthCount> {
        let n = self.numbers(&format!("health {prefix}"), "health ")?;
        Ok(HealthCount {
            up: n[0] as usize,
            down: n[1] as usize,
            unknown: n[2] as usize,
        })
    }

    /// Every transition kept of the targets whose names start with `prefix`: name, the
    /// health it went to, when.
    pub fn transitions(&mut self, prefix: &str) -> io::Result<Vec<(String, Health, SystemTime)>> {
        let lines = self.ask(&format!("transitions {prefix}"))?;
        Ok(lines
            .iter()
            .filter_map(|line| {
                let mut fields = line.strip_prefix("t ")?.split(' ');
                let name = fields.next()?.to_owned();
                let to = match fields.next()? {
                    "up" => Health::Up,
                    "down" => Health::Down,
                    _ => Health::Unknown,
                };
                let nanos: u64 = fields.next()?.parse().ok()?;
                Some((name, to, UNIX_EPOCH + Duration::from_nanos(nanos)))
            })
            .collect())
    }

    /// The last check of each target whose name starts with `prefix`: name, whether it
    /// succeeded, when it ended.
    pub fn last_checks(&mut self, prefix: &str) -> io::Result<Vec<(String, bool, SystemTime)>> {
        let lines = self.ask(&format!("checks {prefix}"))?;
        Ok(lines
            .iter()
            .filter_map(|line| {
                let mut fields = line.strip_prefix("c ")?.split(' ');
                let name = fields.next()?.to_owned();
                let ok = fields.next()? == "ok";
                let nanos: u64 = fields.next()?.parse().ok()?;
                Some((name, ok, UNIX_EPOCH + Duration::from_nanos(nanos)))
            })
            .collect())
    }

    /// Closes its stdin and waits for it to stop (it has 5 s, then it is killed).
    pub fn stop(mut self) -> io::Result<()> {
        drop(self.stdin.take());
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!("the daemon exited with {status}")))
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(io::Error::other(
            "the daemon did not stop within 5 s of its stdin closing",
        ))
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
