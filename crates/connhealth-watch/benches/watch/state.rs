//! State, history and the status page: what they cost the checks, measured against the
//! same daemon without them, in the same run.
//!
//! 10k half-open targets at 1 s (`rise = fall = 1`, jitter 0.1) on 100 flapping ports:
//! each port listens for 3 s, then refuses for 3 s, the ports out of phase, so about a
//! third of the fleet changes state every second (3.3k transitions a second, each a log
//! line, a history row and an event). The same fleet runs three times, one after the
//! other, each a fresh daemon with a 5 s warm-up and a 10 s window, in two rounds; each
//! line takes each run's better round:
//!
//! * plain (history in memory, no viewer): the reference;
//! * with `--data-dir` (every transition and minute written to SQLite): its late checks
//!   (target <= 1 %) and its CPU per check as a ratio to plain's (target <= 1.1 x);
//! * plain with 100 page viewers on `GET /events` (100 connections held by this process,
//!   each reading every message and, as the page does, asking for its first 50 rows
//!   400 ms after a message): CPU per check as a ratio to plain's (target <= 1.1 x).
//!
//! During the plain run, `GET /` is timed (the median of 20, target <= 50 ms), with the
//! first page of rows the page asks for, and Chromium's first paint of `/` is measured
//! over WebDriver (target <= 1 s).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ours::{self, Ours, Schedule};
use crate::process::{Mark, Window};
use crate::report::{below, Report};

const TARGETS: usize = 10_000;
const PORTS: usize = 100;
/// Each port listens this long, then refuses this long.
const HALF_PERIOD: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(10);
const VIEWERS: usize = 100;
/// Rounds of the three runs.
const ROUNDS: usize = 2;

/// The part: three runs of the flapping fleet, and the page's timings.
pub fn state(dir: &Path, report: &mut Report) -> io::Result<()> {
    let flappers = Flappers::start(PORTS, HALF_PERIOD)?;
    let mut schedule = Schedule::every(Duration::from_secs(1));
    (schedule.rise, schedule.fall) = (1, 1);
    let toml = ours::config_toml(&schedule, &ours::spread(TARGETS, &flappers.addrs));

    // Two rounds of the three, interleaved; each keeps its better round (the least CPU
    // per check): this machine's speed drifts by more than the 10 % measured.
    let mut best: [Option<Run>; 3] = [None, None, None];
    for round in 0..ROUNDS {
        let data_dir = dir.join(format!("state-data-{round}"));
        let runs = [
            run(dir, "state-plain", &toml, None, 0, |daemon| {
                if round == 0 {
                    page_timings(daemon.listen(), report)
                } else {
                    Ok(())
                }
            })?,
            run(dir, "state-data-dir", &toml, Some(&data_dir), 0, |_| Ok(()))?,
            run(dir, "state-viewers", &toml, None, VIEWERS, |_| Ok(()))?,
        ];
        for (kept, new) in best.iter_mut().zip(runs) {
            if kept
                .as_ref()
                .is_none_or(|kept| new.cpu_per_check() < kept.cpu_per_check())
            {
                *kept = Some(new);
            }
        }
    }
    let [Some(plain), Some(stored), Some(viewed)] = best else {
        unreachable!("every round fills each");
    };
    let transitions = plain.transitions as f64 / plain.window.wall.as_secs_f64();
    if transitions < 1000.0 {
        report.fail(format!(
            "state: the fleet made {transitions:.0} transitions a second, not the thousands the flapping ports should make"
        ));
    }

    // The engine halves the plain daemon's CPU per check (the raw one as root), so the
    // same extra cost of a feature is a larger ratio on it: the lines name it.
    let engine = &plain.engine;
    if stored.engine != *engine || viewed.engine != *engine {
        report.fail(format!(
            "state: the runs ran different engines: plain {engine}, --data-dir {}, viewers {}",
            stored.engine, viewed.engine
        ));
    }
    let late = stored.late_percent();
    let met = late <= 1.0;
    println!(
        "--data-dir, {TARGETS} flapping targets at 1 s ({transitions:.0} transitions/s): {late:.2} % of checks late (without: {:.2} %; target <= 1 %){}",
        plain.late_percent(),
        below(met)
    );
    report.target("--data-dir: checks late", met);
    let ratio = stored.cpu_per_check().as_secs_f64() / plain.cpu_per_check().as_secs_f64();
    let met = ratio <= 1.1;
    println!(
        "--data-dir, {TARGETS} flapping targets at 1 s, {engine} engine: {:.1} us CPU per check = {ratio:.2} x without ({:.1} us; target <= 1.1){}",
        micros(stored.cpu_per_check()),
        micros(plain.cpu_per_check()),
        below(met)
    );
    report.target("--data-dir: CPU per check", met);
    let ratio = viewed.cpu_per_check().as_secs_f64() / plain.cpu_per_check().as_secs_f64();
    let met = ratio <= 1.1;
    println!(
        "{VIEWERS} page viewers on /events ({:.0} refetches/s of 50 rows), {TARGETS} flapping targets, {engine} engine: {:.1} us CPU per check = {ratio:.2} x without ({:.1} us; target <= 1.1){}",
        viewed.refetches as f64 / viewed.window.wall.as_secs_f64(),
        micros(viewed.cpu_per_check()),
        micros(plain.cpu_per_check()),
        below(met)
    );
    report.target("/events viewers: CPU per check", met);
    if viewed.event_bytes == 0 || viewed.refetches == 0 {
        report.fail("state: the /events viewers received nothing, or never refetched".into());
    }
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One run's window.
struct Run {
    window: Window,
    checks: u64,
    late: u64,
    transitions: u64,
    event_bytes: u64,
    refetches: u64,
    /// The engine of its half-open checks, as `/metrics` says.
    engine: String,
}

impl Run {
    fn cpu_per_check(&self) -> Duration {
        self.window.cpu.div_f64(self.checks.max(1) as f64)
    }

    fn late_percent(&self) -> f64 {
        100.0 * self.late as f64 / self.checks.max(1) as f64
    }
}

/// The daemon on `toml`, with `viewers` on `/events` from before the warm-up; `after`
/// runs after the window (its requests cost the daemon CPU outside it).
fn run(
    dir: &Path,
    name: &str,
    toml: &str,
    data_dir: Option<&Path>,
    viewers: usize,
    after: impl FnOnce(&Ours) -> io::Result<()>,
) -> io::Result<Run> {
    let mut daemon = Ours::start_with(dir, name, toml, data_dir)?;
    let viewers = Viewers::start(daemon.listen(), viewers)?;
    std::thread::sleep(WARM_UP);
    let before = daemon.counts()?;
    let (bytes_before, refetches_before) = (viewers.bytes(), viewers.refetches());
    let mark = Mark::now(daemon.pid())?;
    let changes_before = state_changes(daemon.listen())?;
    std::thread::sleep(WINDOW);
    let window = mark.window()?;
    let counts = daemon.counts()? - before;
    let transitions = state_changes(daemon.listen())?.saturating_sub(changes_before);
    let event_bytes = viewers.bytes() - bytes_before;
    let refetches = viewers.refetches() - refetches_before;
    after(&daemon)?;
    let engine = daemon.engine()?;
    viewers.stop();
    daemon.stop()?;
    Ok(Run {
        window,
        checks: counts.total,
        late: counts.late,
        transitions,
        event_bytes,
        refetches,
        engine,
    })
}

/// The sum of `connhealth_target_state_changes_total` over the fleet.
fn state_changes(listen: SocketAddr) -> io::Result<u64> {
    let text = crate::peers::http_get(listen, "/metrics")?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("connhealth_target_state_changes_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// `GET /` timed, and Chromium's first paint of it.
fn page_timings(listen: SocketAddr, report: &mut Report) -> io::Result<()> {
    let median = |path: &str| -> io::Result<Duration> {
        let mut times = Vec::new();
        for _ in 0..20 {
            let start = Instant::now();
            crate::peers::http_get(listen, path)?;
            times.push(start.elapsed());
        }
        times.sort();
        Ok(times[times.len() / 2])
    };
    let page = median("/")?;
    // What the page asks for next: its first 50 rows, the fleet walked for the counts.
    let rows = median("/api/targets?limit=50")?;
    let met = page <= Duration::from_millis(50);
    println!(
        "GET / with {TARGETS} targets: {:.2} ms (median of 20; its first 50 rows, /api/targets, {:.2} ms) = {:.3} x the target (50 ms){}",
        page.as_secs_f64() * 1e3,
        rows.as_secs_f64() * 1e3,
        page.as_secs_f64() / 0.05,
        below(met)
    );
    report.target("GET / served", met);

    // A fresh headless Chromium over WebDriver; its start is not counted.
    let url = format!("http://{listen}/");
    let paint = connhealth_testkit::webdriver::first_contentful_paint(&url)?;
    let first = paint.first_contentful_paint;
    let met = first <= Duration::from_secs(1);
    let rows = paint.marked.map_or("no rows marked".to_owned(), |rows| {
        format!("the first rows at {:.0} ms", rows.as_secs_f64() * 1e3)
    });
    println!(
        "first paint of / in Chromium, {TARGETS} targets: {:.0} ms ({rows}) = {:.2} x the target (1 s){}",
        first.as_secs_f64() * 1e3,
        first.as_secs_f64(),
        below(met)
    );
    report.target("first paint in Chromium", met);
    if paint.marked.is_none() {
        report.fail("state: the status page showed no rows in Chromium".into());
    }
    Ok(())
}

/// Ports that listen for `half` then refuse for `half`, each out of phase with the next.
struct Flappers {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Flappers {
    fn start(count: usize, half: Duration) -> io::Result<Flappers> {
        let mut listeners = Vec::with_capacity(count);
        for _ in 0..count {
            listeners.push(Some(TcpListener::bind("127.0.0.1:0")?));
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.as_ref().expect("open").local_addr())
            .collect::<io::Result<_>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("bench-flappers".into())
            .spawn({
                let (addrs, stop) = (addrs.clone(), Arc::clone(&stop));
                move || {
                    let start = Instant::now();
                    let period = half * 2;
                    while !stop.load(Ordering::Relaxed) {
                        let now = start.elapsed();
                        for (i, listener) in listeners.iter_mut().enumerate() {
                            // Port i's phase: shifted by i / count of a period.
                            let shift = period.mul_f64(i as f64 / addrs.len() as f64);
                            let phase = (now + shift).as_nanos() % period.as_nanos();
                            let open = phase < half.as_nanos();
                            if open && listener.is_none() {
                                *listener = TcpListener::bind(addrs[i]).ok();
                            } else if !open {
                                *listener = None;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })?;
        Ok(Flappers {
            addrs,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Flappers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Page viewers, as the status page behaves: each holds `GET /events` and, after each
/// message (a keep-alive comment aside), asks for its first 50 rows
/// (`/api/targets?limit=50`) 400 ms later, once however many messages came meanwhile.
struct Viewers {
    streams: Vec<TcpStream>,
    bytes: Arc<AtomicU64>,
    refetches: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

/// The page's wait between a message and its refetch.
const REFETCH_AFTER: Duration = Duration::from_millis(400);

impl Viewers {
    fn start(listen: SocketAddr, count: usize) -> io::Result<Viewers> {
        let bytes = Arc::new(AtomicU64::new(0));
        let refetches = Arc::new(AtomicU64::new(0));
        let (mut streams, mut threads) = (Vec::new(), Vec::new());
        for _ in 0..count {
            let mut stream = TcpStream::connect(listen)?;
            write!(
                stream,
                "GET /events HTTP/1.1\r\nHost: {listen}\r\nAccept: text/event-stream\r\n\r\n"
            )?;
            let mut reader = stream.try_clone()?;
            reader.set_read_timeout(Some(Duration::from_millis(50)))?;
            let (bytes, refetches) = (Arc::clone(&bytes), Arc::clone(&refetches));
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut due: Option<Instant> = None;
                // The page's refetches go over one kept connection, as a browser's do.
                let mut rows: Option<KeptConnection> = None;
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            bytes.fetch_add(n as u64, Ordering::Relaxed);
                            // A message that is not only the keep-alive comment.
                            let text = String::from_utf8_lossy(&buf[..n]);
                            let news = text.contains("data:") || text.contains("event:");
                            if news && due.is_none() {
                                due = Some(Instant::now() + REFETCH_AFTER);
                            }
                        }
                        Err(err)
                            if matches!(
                                err.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                    if due.is_some_and(|at| Instant::now() >= at) {
                        due = None;
                        if rows.is_none() {
                            rows = KeptConnection::open(listen).ok();
                        }
                        match rows.as_mut().map(|c| c.get("/api/targets?limit=50")) {
                            Some(Ok(200)) => {
                                refetches.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => rows = None,
                        }
                    }
                }
            }));
            streams.push(stream);
        }
        Ok(Viewers {
            streams,
            bytes,
            refetches,
            threads,
        })
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn refetches(&self) -> u64 {
        self.refetches.load(Ordering::Relaxed)
    }

    fn stop(self) {
        for stream in &self.streams {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// One HTTP/1.1 connection kept open for GETs, as a browser keeps one.
struct KeptConnection {
    stream: std::io::BufReader<TcpStream>,
    host: SocketAddr,
}

impl KeptConnection {
    fn open(host: SocketAddr) -> io::Result<KeptConnection> {
        let stream = TcpStream::connect(host)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(KeptConnection {
            stream: std::io::BufReader::new(stream),
            host,
        })
    }

    /// GETs `path`, reads the whole answer, and returns its status.
    fn get(&mut self, path: &str) -> io::Result<u16> {
        use std::io::BufRead;
        let host = self.host;
        write!(
            self.stream.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"
        )?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no status line: {line:?}")))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().map_err(io::Error::other)?;
                }
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body)?;
        Ok(status)
    }
}
