//! `https`: 1000 https URLs on one nginx, checked every second by blackbox_exporter's
//! `http_2xx` (its `/probe` driven as Prometheus scraping 1k targets every 1 s drives
//! it) and by our daemon's `http` kind, with `reuse_connection` and without, one after
//! the other.
//!
//! Each checker's CPU (from `/proc`, as everywhere in the bench; the driver of
//! blackbox's `/probe` is a thread of this process and is not counted) is divided by
//! the checks it completed in a 10 s window after a warm-up. nginx's `stub_status`
//! counts the requests that reached it and the connections it accepted in the window:
//! the requests must match the checks, and with `reuse_connection` the daemon must hold
//! one connection per target and open next to none, without it one per check.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::fleet;
use crate::ours::{self, Counts, Ours, Schedule};
use crate::peers::{http_get, Blackbox, Nginx, NginxStatus};
use crate::process::{self, mib, Mark, Window};
use crate::report::{below, Report};

const TARGETS: usize = 1000;
const INTERVAL: Duration = Duration::from_secs(1);
/// blackbox_exporter has no schedule to settle: its driver's first second is enough.
const BLACKBOX_WARM_UP: Duration = Duration::from_secs(3);
/// Ours after every target is up: the last `fast_interval` checks are over.
const SETTLE: Duration = Duration::from_secs(2);
/// The most time our targets get to come up (rise 2 at `fast_interval` 500 ms).
const UP_WITHIN: Duration = Duration::from_secs(30);
const WINDOW: Duration = Duration::from_secs(10);
/// Requests to blackbox_exporter's `/probe` in flight at most (one connection each).
const DRIVERS: usize = 250;

/// The CA's PEM (what the checkers trust) and nginx's certificate chain and key, made
/// by rcgen: a CA, and a leaf it signs for 127.0.0.1 and localhost.
pub(crate) struct Pki {
    ca: PathBuf,
    pub(crate) chain: PathBuf,
    pub(crate) key: PathBuf,
}

pub(crate) fn pki(dir: &Path) -> io::Result<Pki> {
    let rcgen = |err: rcgen::Error| io::Error::other(format!("rcgen: {err}"));
    let ca_key = KeyPair::generate().map_err(rcgen)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "connhealth bench CA");
    let ca = ca_params.self_signed(&ca_key).map_err(rcgen)?;
    let leaf_key = KeyPair::generate().map_err(rcgen)?;
    // rcgen reads "127.0.0.1" as an IP address SAN, which both checkers verify.
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(rcgen)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .map_err(rcgen)?;
    let pki = Pki {
        ca: dir.join("https-ca.pem"),
        chain: dir.join("https-chain.pem"),
        key: dir.join("https-key.pem"),
    };
    std::fs::write(&pki.ca, ca.pem())?;
    std::fs::write(&pki.chain, leaf.pem() + &ca.pem())?;
    std::fs::write(&pki.key, leaf_key.serialize_pem())?;
    Ok(pki)
}

/// What one checker did in the window.
struct Measured {
    /// Checks (ours) or probes (blackbox_exporter) completed.
    checks: u64,
    /// Of them, those that succeeded.
    ok: u64,
    /// The checker's CPU.
    window: Window,
    /// nginx's counters over the window, and its CPU.
    nginx: NginxStatus,
    nginx_cpu: Window,
    /// Ours only: its counters, RSS at the window's end, and cores by thread.
    counts: Counts,
    rss: u64,
    threads: String,
}

impl Measured {
    fn cpu_per_check_us(&self) -> f64 {
        self.window.cpu.as_secs_f64() * 1e6 / self.checks.max(1) as f64
    }

    fn rate(&self) -> f64 {
        self.checks as f64 / self.window.wall.as_secs_f64().max(1e-9)
    }

    fn late_percent(&self) -> f64 {
        100.0 * self.counts.late as f64 / self.counts.total.max(1) as f64
    }

    /// nginx's CPU per request it served in the window.
    fn nginx_us(&self) -> f64 {
        self.nginx_cpu.cpu.as_secs_f64() * 1e6 / self.nginx.requests.max(1) as f64
    }

    fn nginx_line(&self) -> String {
        format!(
            "nginx {} requests, {} accepted, {} open at the end, {:.1} µs CPU per request",
            self.nginx.requests,
            self.nginx.accepts,
            self.nginx.active,
            self.nginx_us()
        )
    }
}

/// How blackbox_exporter's `/probe` was driven in its window.
struct Driven {
    /// Requests per second the driver meant to send.
    rate: f64,
    /// Cores the driver's thread (in this process, not counted) used.
    driver_cores: f64,
    /// Mean time from a probe's moment to its answer.
    latency: Duration,
}

/// Probes the driver has seen answered so far.
#[derive(Debug, Default)]
struct Tally {
    /// `/probe` answered `probe_success 1`.
    succeeded: AtomicU64,
    /// `/probe` answered, but not `probe_success 1`.
    failed: AtomicU64,
    /// No answer, or not a 200.
    errors: AtomicU64,
    /// Microseconds from each request's moment to its answer, summed: its wait for a
    /// driver whose previous probe was still out, and the probe.
    waited_us: AtomicU64,
}

/// A reading of [`Tally`].
#[derive(Debug, Clone, Copy)]
struct Counted {
    succeeded: u64,
    failed: u64,
    errors: u64,
    waited_us: u64,
}

impl Tally {
    fn read(&self) -> Counted {
        Counted {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            waited_us: self.waited_us.load(Ordering::Relaxed),
        }
    }
}

/// `/probe?module=http_2xx&target=URL` for `urls` in turn at `rate` per second in all,
/// each request at its own moment (request k at k / rate), from [`DRIVERS`] keep-alive
/// connections on a thread of its own: a Prometheus scraping every URL once per
/// `urls.len() / rate` seconds, its scrapes spread over the interval.
struct Driver {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    thread: Option<JoinHandle<()>>,
}

impl Driver {
    fn start(server: SocketAddr, urls: Vec<String>, rate: f64) -> io::Result<Driver> {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(DRIVER_THREAD.into())
            .spawn({
                let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
                let urls = Arc::new(urls);
                move || {
                    let start = tokio::time::Instant::now();
                    runtime.block_on(async {
                        let workers: Vec<_> = (0..DRIVERS)
                            .map(|first| {
                                let worker = Worker {
                                    first,
                                    start,
                                    rate,
                                    server,
                                    urls: Arc::clone(&urls),
                                    stop: Arc::clone(&stop),
                                    tally: Arc::clone(&tally),
                                };
                                tokio::spawn(worker.run())
                            })
                            .collect();
                        for worker in workers {
                            let _ = worker.await;
                        }
                    });
                }
            })?;
        Ok(Driver {
            stop,
            tally,
            thread: Some(thread),
        })
    }

    fn read(&self) -> Counted {
        self.tally.read()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One of the driver's connections: requests `first`, `first + DRIVERS`, ... each at its
/// moment, or at once when the previous one answered later than that.
struct Worker {
    first: usize,
    start: tokio::time::Instant,
    rate: f64,
    server: SocketAddr,
    urls: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
}

impl Worker {
    async fn run(self) {
        let mut sender = None;
        let mut k = self.first;
        while !self.stop.load(Ordering::Relaxed) {
            let at = self.start + Duration::from_secs_f64(k as f64 / self.rate);
            tokio::time::sleep_until(at).await;
            let url = &self.urls[k % self.urls.len()];
            k += DRIVERS;
            // blackbox_exporter answers within its module's 5 s timeout, or never will.
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                probe(&mut sender, self.server, url),
            )
            .await;
            let counter = match answer {
                Ok(Ok(true)) => &self.tally.succeeded,
                Ok(Ok(false)) => &self.tally.failed,
                Ok(Err(_)) | Err(_) => {
                    sender = None;
                    &self.tally.errors
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let waited = at.elapsed().as_micros() as u64;
            self.tally.waited_us.fetch_add(waited, Ordering::Relaxed);
        }
    }
}

/// One `/probe` on `sender`'s connection (a new one when there is none or it closed):
/// whether it answered `probe_success 1`.
async fn probe(
    sender: &mut Option<SendRequest<Empty<Bytes>>>,
    server: SocketAddr,
    url: &str,
) -> io::Result<bool> {
    let other = |err: hyper::Error| io::Error::other(err.to_string());
    let open = match sender {
        Some(sender) => !sender.is_closed(),
        None => false,
    };
    if !open {
        let stream = tokio::net::TcpStream::connect(server).await?;
        let (new, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(other)?;
        tokio::spawn(conn);
        *sender = Some(new);
    }
    let Some(sender) = sender.as_mut() else {
        unreachable!("opened above")
    };
    sender.ready().await.map_err(other)?;
    let request = hyper::Request::get(format!("/probe?module=http_2xx&target={url}"))
        .header(hyper::header::HOST, server.to_string())
        .body(Empty::new())
        .map_err(io::Error::other)?;
    let answer = sender.send_request(request).await.map_err(other)?;
    let status = answer.status();
    let body = answer
        .into_body()
        .collect()
        .await
        .map_err(other)?
        .to_bytes();
    if status != hyper::StatusCode::OK {
        return Err(io::Error::other(format!("/probe answered {status}")));
    }
    Ok(body
        .split(|&b| b == b'\n')
        .any(|line| line == b"probe_success 1"))
}

/// The thread name of the driver, as `/proc` shows it (15 bytes at most).
const DRIVER_THREAD: &str = "bench-probe-drv";

/// This process's driver thread's CPU so far.
fn driver_cpu() -> io::Result<Duration> {
    Ok(process::threads(std::process::id())?
        .into_iter()
        .find(|(name, _)| name == DRIVER_THREAD)
        .map_or(Duration::ZERO, |(_, cpu)| cpu))
}

/// blackbox_exporter's `http_2xx` on `urls`, driven at one probe per URL per second.
///
/// On a 2-core machine, blackbox_exporter beside nginx may not keep up with 1000
/// probes/s; what it answered is what it is measured by, and the rate it kept is
/// printed. Less than half the rate driven means something else is wrong.
fn measure_blackbox(
    dir: &Path,
    nginx: &Nginx,
    pki: &Pki,
    urls: &[String],
    report: &mut Report,
) -> io::Result<(Measured, Driven)> {
    let modules = format!(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      \
         tls_config:\n        ca_file: {}\n",
        pki.ca.display()
    );
    let blackbox = Blackbox::start_with(dir, "blackbox-http", &modules)?;
    let first = format!("/probe?module=http_2xx&target={}", urls[0]);
    let answer = http_get(blackbox.listen(), &first)?;
    if !answer.lines().any(|line| line == "probe_success 1") {
        report.fail(format!(
            "https: blackbox_exporter's GET {first} did not answer probe_success 1:\n{answer}"
        ));
    }
    let rate = TARGETS as f64 / INTERVAL.as_secs_f64();
    let driver = Driver::start(blackbox.listen(), urls.to_vec(), rate)?;
    std::thread::sleep(BLACKBOX_WARM_UP);
    let (pid, nginx_pid) = (blackbox.peer().pid(), nginx.peer().pid());
    let status = nginx.status()?;
    let (counted, driver_from) = (driver.read(), driver_cpu()?);
    let (mark, nginx_mark) = (Mark::now(pid)?, Mark::now(nginx_pid)?);
    std::thread::sleep(WINDOW);
    let (window, nginx_cpu) = (mark.window()?, nginx_mark.window()?);
    let (now, driver_used) = (driver.read(), driver_cpu()? - driver_from);
    let nginx_status = nginx.status()? - status;
    let rss = process::rss(pid)?;
    drop(driver);
    blackbox.stop();

    let succeeded = now.succeeded - counted.succeeded;
    let failed = now.failed - counted.failed;
    let errors = now.errors - counted.errors;
    let checks = succeeded + failed;
    let expected = rate * window.wall.as_secs_f64();
    if (checks as f64) < 0.5 * expected || (failed + errors) * 1000 > checks {
        report.fail(format!(
            "https: blackbox_exporter http_2xx answered {checks} probes in {:.1} s ({expected:.0} \
             driven), {failed} of them failed, and {errors} /probe requests had no answer",
            window.wall.as_secs_f64()
        ));
    }
    let in_flight = DRIVERS as u64;
    requests_agree(
        report,
        "blackbox_exporter http_2xx",
        checks,
        &nginx_status,
        in_flight,
    );
    let measured = Measured {
        checks,
        ok: succeeded,
        window,
        nginx: nginx_status,
        nginx_cpu,
        counts: Counts::default(),
        rss,
        threads: String::new(),
    };
    let driven = Driven {
        rate,
        driver_cores: driver_used.as_secs_f64() / window.wall.as_secs_f64(),
        latency: Duration::from_micros(
            (now.waited_us - counted.waited_us) / (succeeded + failed + errors).max(1),
        ),
    };
    Ok((measured, driven))
}

/// Every check reached nginx as one request, but for `in_flight` at most at each of the
/// window's ends (nginx counts a request when it arrives, the checker when it ends).
fn requests_agree(
    report: &mut Report,
    what: &str,
    checks: u64,
    nginx: &NginxStatus,
    in_flight: u64,
) {
    let slack = checks / 100 + 2 * in_flight;
    if nginx.requests.abs_diff(checks) > slack {
        report.fail(format!(
            "https: {what}: {checks} checks in the window, but nginx served {} requests",
            nginx.requests
        ));
    }
}

/// Our daemon on `urls` at 1 s with `reuse_connection = reuse`: once every target is
/// up, a window.
fn measure_ours(
    dir: &Path,
    nginx: &Nginx,
    pki: &Pki,
    urls: &[String],
    reuse: bool,
    report: &mut Report,
) -> io::Result<Measured> {
    let what = format!("ours, reuse_connection = {reuse}");
    let http_defaults = format!(
        "ca_file = \"{}\"\nreuse_connection = {reuse}\n",
        pki.ca.display()
    );
    let toml = ours::http_config_toml(&Schedule::every(INTERVAL), &http_defaults, urls);
    let mut daemon = Ours::start(dir, &format!("ours-https-reuse-{reuse}"), &toml)?;
    let start = Instant::now();
    let mut health = daemon.health("")?;
    while health.up < TARGETS && start.elapsed() < UP_WITHIN {
        std::thread::sleep(Duration::from_millis(200));
        health = daemon.health("")?;
    }
    if health.up < TARGETS {
        report.fail(format!(
            "https: {what}: {} of {TARGETS} targets up after {UP_WITHIN:?} ({} down, {} unknown)",
            health.up, health.down, health.unknown
        ));
    }
    std::thread::sleep(SETTLE);
    let (pid, nginx_pid) = (daemon.pid(), nginx.peer().pid());
    // The questions cost the daemon CPU: asked before the CPU mark and after it ends.
    let before = daemon.counts()?;
    let status = nginx.status()?;
    let threads = process::threads(pid)?;
    let (mark, nginx_mark) = (Mark::now(pid)?, Mark::now(nginx_pid)?);
    std::thread::sleep(WINDOW);
    let (window, nginx_cpu) = (mark.window()?, nginx_mark.window()?);
    let threads = process::thread_cores(&threads, &process::threads(pid)?, window.wall);
    let nginx_status = nginx.status()? - status;
    let counts = daemon.counts()? - before;
    let rss = process::rss(pid)?;
    fleet::metrics_agree(&mut daemon, &what, report)?;
    daemon.stop()?;

    let expected = TARGETS as f64 * window.wall.as_secs_f64() / INTERVAL.as_secs_f64();
    if (counts.total as f64) < 0.95 * expected || counts.ok + counts.total / 100 < counts.total {
        report.fail(format!(
            "https: {what}: {} checks in {:.1} s ({expected:.0} scheduled), {} succeeded",
            counts.total,
            window.wall.as_secs_f64(),
            counts.ok
        ));
    }
    // A check takes a few ms: a few dozen of the 1000 per second are out at a time.
    requests_agree(report, &what, counts.total, &nginx_status, 50);
    // Kept: one connection per target stays open and next to none is opened. Not kept:
    // one is accepted per check.
    let connections_right = if reuse {
        nginx_status.accepts * 100 <= counts.total
            && nginx_status.active.abs_diff(TARGETS as u64) <= (TARGETS / 50) as u64
    } else {
        nginx_status.accepts.abs_diff(counts.total) <= (counts.total / 50).max(20)
    };
    if !connections_right {
        report.fail(format!(
            "https: {what}: {} checks, and nginx accepted {} connections with {} open at the end",
            counts.total, nginx_status.accepts, nginx_status.active
        ));
    }
    Ok(Measured {
        checks: counts.total,
        ok: counts.ok,
        window,
        nginx: nginx_status,
        nginx_cpu,
        counts,
        rss,
        threads,
    })
}

/// `https, 1k targets at 1 s`: our CPU per check with a kept connection, against
/// blackbox_exporter's `http_2xx`, and against ours without reuse.
pub fn https(dir: &Path, report: &mut Report) -> io::Result<()> {
    let pki = pki(dir)?;
    let nginx = Nginx::start(dir, &pki.chain, &pki.key)?;
    let urls: Vec<String> = (0..TARGETS)
        .map(|i| format!("https://{}/t/{i}", nginx.https()))
        .collect();
    let (blackbox, driven) = measure_blackbox(dir, &nginx, &pki, &urls, report)?;
    let kept = measure_ours(dir, &nginx, &pki, &urls, true, report)?;
    let fresh = measure_ours(dir, &nginx, &pki, &urls, false, report)?;
    nginx.stop();

    let (ours_us, theirs_us, fresh_us) = (
        kept.cpu_per_check_us(),
        blackbox.cpu_per_check_us(),
        fresh.cpu_per_check_us(),
    );
    let ratio = ours_us / theirs_us;
    println!(
        "https, 1k targets at 1 s: CPU per check {ours_us:.1} µs vs blackbox_exporter http_2xx \
         {theirs_us:.1} µs: {ratio:.2} x (target <= 0.2 x){}",
        below(ratio <= 0.2)
    );
    report.target(
        "https 1k at 1 s: CPU per check <= 0.2 x blackbox_exporter http_2xx",
        ratio <= 0.2,
    );
    println!(
        "https, 1k targets at 1 s: reuse_connection = true {ours_us:.1} µs vs false {fresh_us:.1} \
         µs: {:.2} x (what reuse saves)",
        ours_us / fresh_us
    );
    for (what, m) in [("reuse true", &kept), ("reuse false", &fresh)] {
        println!(
            "  ours {what}: {} checks ({:.0}/s), {} ok, late {:.2} %, {} exhausted, RSS {:.0} MiB, \
             {:.3} cores ({}); {}",
            m.checks,
            m.rate(),
            m.ok,
            m.late_percent(),
            m.counts.exhausted,
            mib(m.rss),
            m.window.cores(),
            m.threads,
            m.nginx_line(),
        );
    }
    println!(
        "  blackbox_exporter http_2xx: {} probes ({:.0}/s of {:.0}/s driven, each answered {:.1} ms \
         after its moment on average; the driver {:.3} cores), {} ok, RSS {:.0} MiB, {:.3} cores; \
         {}; ours reuse false = {:.2} x it",
        blackbox.checks,
        blackbox.rate(),
        driven.rate,
        driven.latency.as_secs_f64() * 1e3,
        driven.driver_cores,
        blackbox.ok,
        mib(blackbox.rss),
        blackbox.window.cores(),
        blackbox.nginx_line(),
        fresh_us / theirs_us,
    );
    Ok(())
}
