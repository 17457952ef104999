//! A soak of `connhealth watch`: 10k targets, a tenth of them flapping, a SIGHUP every
//! second and `/metrics` scraped every second, with the daemon's descriptors, resident
//! size, late checks and every transition accounted for, row by row.
//!
//! `scripts/soak MINUTES` runs this test, release-built, for that many minutes after a
//! one-minute warm-up, in rows of a minute. `cargo test -p connhealth-cli --test soak` runs
//! the same code for 30 s after a 15 s warm-up, in rows of 10 s (`CONNHEALTH_SOAK_SECONDS`
//! sets the duration, `CONNHEALTH_SOAK_TARGETS` the fleet).
//!
//! # Sizing the 30-s version
//!
//! Released, the daemon spends about a quarter of a core on the 10k targets (the checks,
//! a 10k-target reload and a 15 MB scrape each second), and kept up on this 2-core
//! machine while the other sessions' builds held its load average at 9: at most 1.7 % of
//! checks late, every transition seen. Built for `cargo test` (unoptimised), it needs 60
//! to 70 % of a core for the same fleet, and at the same load it fell behind (17 to 56 %
//! of checks late, 1,605 of 17,669 transitions missed). So a debug build watches 2,000
//! targets by default (18 % of a core, under 1 % late at that load), of which 200 flap,
//! 20 `hold` and 20 `connect`: every check of the verdict is the same, only the fleet is
//! smaller. A release build (`cargo test --release`, and `scripts/soak`) watches 10k.
//!
//! # The set-up
//!
//! * **The daemon is a child process**: the `connhealth` binary's `watch`, with
//!   `--log-format json`, so that its descriptors (`/proc/PID/fd`) and resident size
//!   (`VmRSS`) are its own, and it is signalled and scraped as an operator would.
//! * **A network namespace of its own** (root, `ip`): the daemon and the driver's
//!   listeners share a private loopback, so 10k checks a second neither disturb nor are
//!   disturbed by whatever else runs on the machine, and the fixed ports
//!   `127.0.0.1:20000+i` (below the ephemeral range, so a probe's own port never takes a
//!   closed listener's) are free. Without root it skips, and fails under `CI=true`.
//! * **The driver owns the targets**: one listener each. A target `i` is checked `hold`
//!   when `i % 100 == 0`, `connect` when `i % 100 == 1`, and `half-open` otherwise, so 1 %
//!   each of the first two; targets `0..100`, `1000..1100`, ... flap (a tenth, of each
//!   kind). A flapping listener is closed for 4 to 6 s and open for 4 to 6 s (five
//!   lengths each, so that flaps do not beat with the schedule), the first closes spread
//!   over 10 s. Each close and reopening is recorded with its time ([`fleet`]).
//! * **The daemon's schedule**: `interval` 1 s, `fast_interval` 250 ms, `down_interval`
//!   1 s, `rise` 2, `fall` 3, `jitter` 0.1, `timeout` 500 ms: a check per target a
//!   second.
//!
//! # What is judged
//!
//! * **Transitions** ([`ledger`]): every window in which a listener is open must bring one
//!   `up`, every window in which it is closed one `down`. The schedule's worst case is
//!   `interval × 1.1 + (fall − 1) × fast_interval × 1.1` = 1.65 s to see a close (a `hold`
//!   target sees it at once), and `down_interval × 1.1 + (rise − 1) × fast_interval × 1.1`
//!   = 1.375 s to see a reopening. Every window lasts 4 s at least, longer than either, so
//!   no change can hide in a window too short for it. *Missed*: a window that ended with
//!   no transition into its state. *Duplicated*: a second one in a window, one in no
//!   window of its state (no cause), or one whose `from` is not where the last one went
//!   (a reload that reset a target to `unknown` shows so; every SIGHUP reloads an
//!   unchanged config, so a reload that lost state shows here). Both fail the soak. A
//!   transition seen after its *deadline*, 1.5 × the worst case plus 0.5 s (2.98 s and
//!   2.56 s; 10 s for a target's first `up`, as the daemon spreads its first checks over
//!   the interval), is counted *overdue* and printed, not failed: like late checks, it
//!   says the daemon was held up, and a machine shared with other work does that (in a
//!   10-minute run here, before overdue was told apart from missed, 5,485 windows failed
//!   and 42 % of checks were late during three minutes in which another session's tests
//!   took both cores; the next two runs had none).
//! * **Every change logged**: at the end, the logged transitions must number the sum of
//!   `connhealth_target_state_changes_total`.
//! * **Descriptors flat**: each row prints the fewest and the most descriptors of its
//!   samples (two a second). The fewest is the daemon's own floor (listeners, pipes,
//!   epoll, the held connections); the most adds the probes in flight at a sample, which
//!   come and go. Flat means the last row's fewest is at most the first row's fewest
//!   plus [`FDS_MARGIN`]: a descriptor leaked per reload or per scrape would add 60 a
//!   minute, one per transition thousands.
//! * **Resident size flat**: each row prints the least, the median and the most `VmRSS`
//!   of its samples. The size swings by up to 10 MiB within a minute (the daemon trims
//!   the allocator's free memory at every reload, once a second here, and a 15 MB scrape
//!   and a 10k-target parse come and go between trims), and the least alone swings by
//!   3 MiB from row to row. The median of a row's 120 samples is steadier: over a
//!   10-minute run it stayed between 36.7 and 37.4 MiB but for one row at 39.1 MiB, which
//!   came back. Flat means the last row's median is at most the first row's × (1 +
//!   [`RSS_MARGIN`]) + [`RSS_SLACK_KIB`]. The margin is for that noise and for what
//!   legitimately grows (each target keeps its last 10 transitions: about 1.3 KiB for
//!   each of the thousand flapping ones once full, which the 30-s version does not
//!   reach). Over ten minutes at 10k targets (a bound 3.8 MiB above 36.7 MiB) it catches
//!   a leak of 0.7 byte per check (6M checks), 28 bytes per transition (140k), or 6 KiB
//!   per reload or per scrape (670 each): a fleet leaked at each reload (80 KiB) would
//!   be 50 MiB. The 30-s version catches only gross leaks.
//! * **Reloads and scrapes**: at least 90 % of the SIGHUPs must have reloaded by the end
//!   (the reloads fall behind when one takes longer than a second, and two SIGHUPs that
//!   arrive before the daemon reads the first are one), no reload may fail and nothing
//!   may be logged at `WARN` or `ERROR`, every scrape must answer 200, and the daemon
//!   must exit 0 on SIGTERM.
//!
//! Late checks (`connhealth_checks_late_total`) are printed per row, as a share of the
//! checks the row made (`connhealth_target_checks_total`), not judged: they measure the
//! machine as much as the daemon.
#![cfg(unix)] // needs the watch daemon (Unix only), root, a network namespace, /proc and signals

#[path = "soak/fleet.rs"]
mod fleet;
#[path = "soak/ledger.rs"]
mod ledger;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use connhealth_testkit::{require, Netns, TempDir};

use fleet::{Change, Flap, Kind, Target};
use ledger::{Counts, Deadlines, Ledger, Observed, State};

/// Descriptors the last row's floor may exceed the first row's by: a few, for a reload or
/// a scrape connection caught at a sample.
const FDS_MARGIN: usize = 16;
/// The share the resident size may grow by, and the slack on top.
const RSS_MARGIN: f64 = 0.05;
const RSS_SLACK_KIB: u64 = 2048;

const INTERVAL: Duration = Duration::from_secs(1);
const FAST_INTERVAL: Duration = Duration::from_millis(250);
const DOWN_INTERVAL: Duration = Duration::from_secs(1);
const RISE: u32 = 2;
const FALL: u32 = 3;
const JITTER: f64 = 0.1;
const TIMEOUT: Duration = Duration::from_millis(500);

/// The fleet: 10k released, fewer unoptimised (see the module doc's sizing).
const DEFAULT_TARGETS: u64 = if cfg!(debug_assertions) {
    2_000
} else {
    10_000
};

/// Where the daemon listens, inside the soak's own namespace.
const LISTEN: &str = "127.0.0.1:9717";
/// The first target's port: below the ephemeral range (32768 and up).
const FIRST_PORT: u16 = 20000;
/// After the daemon is ready, when the first flap may come: every target is up by then.
const FLAP_AFTER: Duration = Duration::from_secs(5);
/// The first closes are spread over this.
const FLAP_SPREAD: Duration = Duration::from_secs(10);

/// How long the run lasts and how it is cut into rows.
#[derive(Debug, Clone, Copy)]
struct Settings {
    targets: usize,
    warm_up: Duration,
    duration: Duration,
    row: Duration,
}

impl Settings {
    fn from_env() -> Settings {
        let number = |name: &str, default: u64| {
            std::env::var(name).ok().map_or(default, |text| {
                text.parse()
                    .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number"))
            })
        };
        let duration = Duration::from_secs(number("CONNHEALTH_SOAK_SECONDS", 30));
        // Minute by minute when it is long enough for that to say something.
        let (warm_up, row) = if duration >= Duration::from_secs(120) {
            (Duration::from_secs(60), Duration::from_secs(60))
        } else {
            (Duration::from_secs(15), Duration::from_secs(10))
        };
        let targets = number("CONNHEALTH_SOAK_TARGETS", DEFAULT_TARGETS) as usize;
        // Ports 20000 and up, below the ephemeral range.
        assert!(
            (100..=12_000).contains(&targets),
            "CONNHEALTH_SOAK_TARGETS={targets}: between 100 and 12000"
        );
        // Flat is judged between the first row and the last: two at least.
        assert!(
            duration >= row * 2,
            "CONNHEALTH_SOAK_SECONDS={}: at least {}",
            duration.as_secs(),
            (row * 2).as_secs()
        );
        Settings {
            targets,
            warm_up,
            duration,
            row,
        }
    }
}

/// The fleet: kinds and flaps as the module doc says.
fn targets(count: usize) -> Vec<Target> {
    let flapping = (0..count).filter(|&i| flaps(i)).count().max(1);
    let mut flapper = 0;
    (0..count)
        .map(|i| {
            let kind = match i % 100 {
                0 => Kind::Hold,
                1 => Kind::Connect,
                _ => Kind::HalfOpen,
            };
            let flap = flaps(i).then(|| {
                let j = flapper;
                flapper += 1;
                let step = Duration::from_millis(500);
                Flap {
                    first_close: FLAP_SPREAD.mul_f64(j as f64 / flapping as f64),
                    closed: Duration::from_secs(4) + step * (j % 5) as u32,
                    open: Duration::from_secs(4) + step * ((j / 5) % 5) as u32,
                }
            });
            Target {
                name: format!("t{i:05}"),
                address: SocketAddr::from(([127, 0, 0, 1], FIRST_PORT + i as u16)),
                kind,
                flap,
            }
        })
        .collect()
}

fn flaps(i: usize) -> bool {
    (i / 100).is_multiple_of(10)
}

fn config(targets: &[Target]) -> String {
    let mut text = format!(
        "[defaults]\ncheck = \"half-open\"\ninterval = \"{}ms\"\nfast_interval = \"{}ms\"\n\
         down_interval = \"{}ms\"\ntimeout = \"{}ms\"\nrise = {RISE}\nfall = {FALL}\n\
         jitter = {JITTER}\n",
        INTERVAL.as_millis(),
        FAST_INTERVAL.as_millis(),
        DOWN_INTERVAL.as_millis(),
        TIMEOUT.as_millis(),
    );
    for target in targets {
        text.push_str(&format!(
            "\n[[targets]]\nname = \"{}\"\naddress = \"{}\"\n",
            target.name, target.address
        ));
        if target.kind != Kind::HalfOpen {
            text.push_str(&format!("check = \"{}\"\n", target.kind.name()));
        }
    }
    text
}

/// The deadlines of the module doc, from the schedule.
fn deadlines() -> Deadlines {
    let worst = |wait: Duration, fast_checks: u32| {
        (wait + FAST_INTERVAL * fast_checks).mul_f64(1.0 + JITTER)
    };
    let margin = |worst: Duration| worst.mul_f64(1.5) + Duration::from_millis(500);
    Deadlines {
        first: Duration::from_secs(10),
        down: margin(worst(INTERVAL, FALL - 1)),
        up: margin(worst(DOWN_INTERVAL, RISE - 1)),
    }
}

/// What the daemon's stderr says.
enum LogEvent {
    Transition(Observed),
    Reloaded,
    /// An error line, or a line that is not the JSON the daemon writes.
    Other(String),
}

fn parse_log_line(line: &str) -> Option<LogEvent> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return Some(LogEvent::Other(line.to_owned()));
    };
    let field = |name: &str| value.get(name).and_then(|v| v.as_str());
    if let (Some(target), Some(from), Some(to)) = (field("target"), field("from"), field("to")) {
        let at = field("timestamp").and_then(ledger::parse_rfc3339_utc);
        return match (State::parse(from), State::parse(to), at) {
            (Some(from), Some(to), Some(at)) => Some(LogEvent::Transition(Observed {
                target: target.to_owned(),
                from,
                to,
                at,
                why: field("why").unwrap_or_default().to_owned(),
            })),
            _ => Some(LogEvent::Other(line.to_owned())),
        };
    }
    match (field("level"), field("message")) {
        (_, Some("config reloaded")) => Some(LogEvent::Reloaded),
        (Some("ERROR" | "WARN"), _) => Some(LogEvent::Other(line.to_owned())),
        _ => None,
    }
}

/// The daemon, a child process in the namespace; killed on drop if still running.
struct Watch {
    child: Child,
    pid: libc::pid_t,
    listen: SocketAddr,
}

/// What the daemon logged, with when each line arrived.
type LogEvents = mpsc::Receiver<(LogEvent, SystemTime)>;

impl Watch {
    fn start(netns: &Netns, config: &std::path::Path) -> (Watch, LogEvents) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns.name()])
            // `ip netns exec` execs the program: the child's pid is the daemon's.
            .arg(env!("CARGO_BIN_EXE_connhealth"))
            .arg("watch")
            .arg("--config")
            .arg(config)
            .args(["--listen", LISTEN, "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start connhealth watch");
        let stderr = child.stderr.take().expect("piped");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(event) = parse_log_line(&line) {
                    let _ = tx.send((event, SystemTime::now()));
                }
            }
        });
        let watch = Watch {
            pid: child.id() as libc::pid_t,
            child,
            listen: LISTEN.parse().expect("an address"),
        };
        (watch, events)
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory effects; the child is ours and not yet reaped.
        let sent = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(sent, 0, "signal {signal} to the daemon");
    }

    /// `/proc/PID/fd` entries.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// `VmRSS` in KiB.
    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The CPU time the daemon has used (user and system), from `/proc/PID/stat`.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // The fields after the command name, which is in parentheses and may hold spaces:
        // utime and stime are the 14th and 15th fields of the line, in clock ticks.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: u64 = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|field| field.parse::<u64>().ok())
            .sum();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    /// Sends SIGTERM and waits up to 5 s: the exit code.
    fn stop(mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's own counters, from one scrape of `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct Scrape {
    late: u64,
    checks: u64,
    state_changes: u64,
}

fn scrape(listen: SocketAddr) -> Result<Scrape, String> {
    let (code, body) =
        connhealth_testkit::http(listen, "GET", "/metrics").map_err(|err| err.to_string())?;
    if code != 200 {
        return Err(format!("/metrics answered {code}"));
    }
    let mut scrape = Scrape::default();
    for line in body.lines() {
        let value = || {
            line.rsplit_once(' ')
                .and_then(|(_, value)| value.parse::<f64>().ok())
                .unwrap_or(0.0) as u64
        };
        if line.starts_with("connhealth_target_checks_total{") {
            scrape.checks += value();
        } else if line.starts_with("connhealth_target_state_changes_total{") {
            scrape.state_changes += value();
        } else if line.starts_with("connhealth_checks_late_total ") {
            scrape.late = value();
        }
    }
    Ok(scrape)
}

/// One printed row.
#[derive(Debug, Default)]
struct Row {
    /// When the row started, and the daemon's CPU time then.
    began: Option<(Instant, Duration)>,
    fds: Vec<usize>,
    rss_kib: Vec<u64>,
    reloads: u64,
    counts: Counts,
}

impl Row {
    fn begin(watch: &Watch) -> Row {
        Row {
            began: Some((Instant::now(), watch.cpu_time())),
            ..Row::default()
        }
    }

    /// The daemon's CPU time since the row began, as a share of one core.
    fn cpu_share(&self, watch: &Watch) -> f64 {
        self.began.map_or(0.0, |(at, cpu)| {
            watch.cpu_time().saturating_sub(cpu).as_secs_f64() / at.elapsed().as_secs_f64()
        })
    }

    fn fds_floor(&self) -> usize {
        self.fds.iter().copied().min().unwrap_or(0)
    }

    fn rss_median_kib(&self) -> u64 {
        let mut sorted = self.rss_kib.clone();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or(0)
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[test]
fn soak() {
    if !require("the soak of connhealth watch", &["ip"]) {
        return;
    }
    let settings = Settings::from_env();
    // 10k listeners here, as many descriptors again in the daemon (which raises its own
    // soft limit to this hard one).
    let _ = connhealth_testkit::set_open_files_limit(u64::MAX);
    let netns = Netns::new().expect("a network namespace");
    let dir = TempDir::new("soak");
    let targets = targets(settings.targets);
    let config = dir.write("watch.toml", config(&targets));
    let listeners = netns
        .enter(|| {
            targets
                .iter()
                .map(|t| fleet::listen(t.address))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .expect("enter the namespace")
        .expect("a listener per target");

    let (watch, events) = Watch::start(&netns, &config);
    let ready_by = Instant::now() + Duration::from_secs(60);
    let ready = netns
        .enter(|| loop {
            let answer = connhealth_testkit::http(watch.listen, "GET", "/-/ready");
            if answer.is_ok_and(|(code, _)| code == 200) {
                return true;
            }
            if Instant::now() > ready_by {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        })
        .expect("enter the namespace");
    assert!(ready, "the daemon was not ready within 60 s");
    let started = Instant::now();
    let names = targets.iter().map(|t| t.name.clone()).collect();
    let mut ledger = Ledger::new(names, SystemTime::now(), deadlines());
    let flapping = targets.iter().filter(|t| t.flap.is_some()).count();
    println!(
        "soak: {} targets ({} flapping; {} hold, {} connect), a SIGHUP and a scrape every \
         second, {:?} warm-up then {:?} in rows of {:?}; deadlines {:?}",
        targets.len(),
        flapping,
        targets.iter().filter(|t| t.kind == Kind::Hold).count(),
        targets.iter().filter(|t| t.kind == Kind::Connect).count(),
        settings.warm_up,
        settings.duration,
        settings.row,
        deadlines(),
    );

    let (stop_flapping, stop_serving) = (AtomicBool::new(false), AtomicBool::new(false));
    let (changes_tx, changes) = mpsc::channel::<Change>();
    let ((rows, verdict), sockets) = std::thread::scope(|scope| {
        let flapper = scope.spawn(|| {
            netns
                .enter(|| {
                    fleet::serve(
                        &targets,
                        listeners,
                        started + FLAP_AFTER,
                        &stop_flapping,
                        &stop_serving,
                        changes_tx,
                    )
                })
                .expect("enter the namespace")
        });
        let monitored = netns
            .enter(|| {
                monitor(
                    &settings,
                    &watch,
                    &mut ledger,
                    changes,
                    events,
                    started,
                    &stop_flapping,
                )
            })
            .expect("enter the namespace");
        stop_serving.store(true, Ordering::Relaxed);
        let (report, sockets) = flapper.join().expect("the flapper");
        println!(
            "driver: {} closes, {} reopenings, {} rebinds retried, {} connections accepted",
            report.closes, report.reopens, report.rebind_retries, report.accepted
        );
        (monitored, sockets)
    });
    let exit = watch.stop();
    drop(sockets);
    let passed = judge(&rows, &verdict, &ledger, exit);
    assert!(passed, "the soak failed: see the verdict above");
}

/// What the run saw besides its rows.
#[derive(Debug, Default)]
struct RunTotals {
    sighups: u64,
    reloads: u64,
    scrapes: u64,
    failed_scrapes: Vec<String>,
    other_lines: Vec<String>,
    other_line_count: u64,
    final_scrape: Option<Scrape>,
}

/// Signals, scrapes and samples every half second, prints a row at each row's end, then
/// stops the flapping and waits until every window is judged. Returns the rows (the
/// warm-up first, the drain last) and the run's totals.
fn monitor(
    settings: &Settings,
    watch: &Watch,
    ledger: &mut Ledger,
    changes: mpsc::Receiver<Change>,
    events: LogEvents,
    started: Instant,
    stop_flapping: &AtomicBool,
) -> (Vec<Row>, RunTotals) {
    let tick = Duration::from_millis(500);
    let rows_wanted = settings.duration.as_secs().div_ceil(settings.row.as_secs()) as usize;
    let soak_end = started + settings.warm_up + settings.row * rows_wanted as u32;
    let drain_limit = soak_end + ledger::GIVE_UP.max(deadlines().first) + ledger::LAG * 2;
    let mut totals = RunTotals::default();
    let mut rows: Vec<Row> = vec![Row::begin(watch)];
    let mut row_end = started + settings.warm_up;
    let mut row_start_scrape = Scrape::default();
    let mut last_scrape = Scrape::default();
    println!(
        "{:>8} {:>7} {:>6} {:>11} {:>17} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>6} {:>4}",
        "row",
        "time",
        "CPU %",
        "fds min-max",
        "RSS MiB min-med-max",
        "checks",
        "late",
        "late %",
        "reloads",
        "expected",
        "seen",
        "overdue",
        "missed",
        "dup"
    );
    let mut next = started;
    for n in 0u64.. {
        next += tick;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        if n % 2 == 0 {
            watch.signal(libc::SIGHUP);
            totals.sighups += 1;
        } else {
            totals.scrapes += 1;
            match scrape(watch.listen) {
                Ok(scrape) => last_scrape = scrape,
                Err(why) => totals.failed_scrapes.push(why),
            }
        }
        let row = rows.last_mut().expect("a row");
        row.fds.push(watch.open_fds());
        row.rss_kib.push(watch.rss_kib());
        for change in changes.try_iter() {
            ledger.listener_changed(change.target, change.at, change.open);
        }
        for (event, arrived) in events.try_iter() {
            match event {
                LogEvent::Transition(observed) => ledger.observed(observed, arrived),
                LogEvent::Reloaded => {
                    row.reloads += 1;
                    totals.reloads += 1;
                }
                LogEvent::Other(line) => {
                    totals.other_line_count += 1;
                    if totals.other_lines.len() < 10 {
                        totals.other_lines.push(line);
                    }
                }
            }
        }
        row.counts += ledger.judge(SystemTime::now());
        let now = Instant::now();
        // rows: the warm-up, then the soak's own, then the drain.
        let draining = rows.len() > rows_wanted + 1;
        if draining {
            stop_flapping.store(true, Ordering::Relaxed);
            if ledger.unjudged() == 0 || now > drain_limit {
                totals.final_scrape = scrape(watch.listen).ok();
                let scrape = totals.final_scrape.unwrap_or(last_scrape);
                print_row(
                    rows.last().expect("a row"),
                    watch,
                    "drain",
                    started,
                    &row_start_scrape,
                    &scrape,
                );
                return (rows, totals);
            }
        } else if now >= row_end {
            let label = match rows.len() - 1 {
                0 => "warm-up".to_owned(),
                n => n.to_string(),
            };
            print_row(
                rows.last().expect("a row"),
                watch,
                &label,
                started,
                &row_start_scrape,
                &last_scrape,
            );
            row_start_scrape = last_scrape;
            rows.push(Row::begin(watch));
            row_end += settings.row;
        }
    }
    unreachable!("the loop returns")
}

fn print_row(row: &Row, watch: &Watch, label: &str, started: Instant, from: &Scrape, to: &Scrape) {
    let checks = to.checks.saturating_sub(from.checks);
    let late = to.late.saturating_sub(from.late);
    let late_share = if checks == 0 {
        0.0
    } else {
        late as f64 * 100.0 / checks as f64
    };
    let fds = format!(
        "{}-{}",
        row.fds_floor(),
        row.fds.iter().copied().max().unwrap_or(0)
    );
    let rss = format!(
        "{:.1}-{:.1}-{:.1}",
        mib(row.rss_kib.iter().copied().min().unwrap_or(0)),
        mib(row.rss_median_kib()),
        mib(row.rss_kib.iter().copied().max().unwrap_or(0))
    );
    println!(
        "{:>8} {:>6}s {:>6.0} {:>11} {:>17} {:>8} {:>7} {:>7.2} {:>8} {:>8} {:>8} {:>7} {:>6} {:>4}",
        label,
        started.elapsed().as_secs(),
        row.cpu_share(watch) * 100.0,
        fds,
        rss,
        checks,
        late,
        late_share,
        row.reloads,
        row.counts.expected,
        row.counts.seen,
        row.counts.overdue,
        row.counts.missed,
        row.counts.duplicated,
    );
}

/// Prints the verdict; true when every part of it holds.
fn judge(rows: &[Row], totals: &RunTotals, ledger: &Ledger, exit: Option<i32>) -> bool {
    // rows[0] is the warm-up, the last the drain; the soak proper is between.
    let soak = &rows[1..rows.len() - 1];
    let (first, last) = (&soak[0], &soak[soak.len() - 1]);
    let mut passed = true;
    let mut line = |ok: bool, text: String| {
        passed &= ok;
        println!("  {} {text}", if ok { "ok  " } else { "FAIL" });
    };
    println!("verdict:");
    let (fds_first, fds_last) = (first.fds_floor(), last.fds_floor());
    line(
        fds_last <= fds_first + FDS_MARGIN,
        format!(
            "descriptors flat: the last row's fewest {fds_last} <= the first row's {fds_first} + {FDS_MARGIN}"
        ),
    );
    let (rss_first, rss_last) = (first.rss_median_kib(), last.rss_median_kib());
    let rss_bound = (rss_first as f64 * (1.0 + RSS_MARGIN)) as u64 + RSS_SLACK_KIB;
    line(
        rss_last <= rss_bound,
        format!(
            "resident size flat: the last row's median {:.1} MiB <= the first row's {:.1} MiB x {} + {} MiB = {:.1} MiB",
            mib(rss_last),
            mib(rss_first),
            1.0 + RSS_MARGIN,
            RSS_SLACK_KIB / 1024,
            mib(rss_bound)
        ),
    );
    let counts = ledger.totals();
    line(
        counts.missed == 0
            && counts.duplicated == 0
            && counts.expected == counts.seen
            && ledger.unjudged() == 0,
        format!(
            "transitions: {} expected, {} seen ({} after their deadline), {} missed, {} duplicated, {} left unjudged",
            counts.expected,
            counts.seen,
            counts.overdue,
            counts.missed,
            counts.duplicated,
            ledger.unjudged()
        ),
    );
    let counted = totals.final_scrape.map(|s| s.state_changes);
    line(
        counted == Some(ledger.logged) && ledger.slow_lines == 0,
        format!(
            "every state change logged: {} log lines, connhealth_target_state_changes_total {}; {} lines later than {:?}",
            ledger.logged,
            counted.map_or("not scraped".to_owned(), |c| c.to_string()),
            ledger.slow_lines,
            ledger::LAG,
        ),
    );
    // Two SIGHUPs that meet a reload in progress coalesce into one signal; at one a
    // second and reloads of well under a second, that is rare.
    line(
        totals.reloads * 100 >= totals.sighups * 90 && totals.other_line_count == 0,
        format!(
            "reloads: {} SIGHUPs, {} reloads; {} error or unparsed log lines",
            totals.sighups, totals.reloads, totals.other_line_count
        ),
    );
    line(
        totals.failed_scrapes.is_empty(),
        format!(
            "scrapes: {}, {} failed {:?}",
            totals.scrapes,
            totals.failed_scrapes.len(),
            totals.failed_scrapes.iter().take(3).collect::<Vec<_>>()
        ),
    );
    line(exit == Some(0), format!("exit after SIGTERM: {exit:?}"));
    for other in &totals.other_lines {
        println!("  log: {other}");
    }
    for anomaly in &ledger.anomalies {
        println!("  anomaly: {anomaly}");
    }
    println!("soak: {}", if passed { "PASS" } else { "FAIL" });
    passed
}
