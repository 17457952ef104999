//! What one `/probe` costs in CPU: the answer's rendering alone, against the registry
//! way blackbox (and the prometheus crate's usual path) builds it, and a whole probe
//! over HTTP on loopback, the server's side only.
//!
//! Measurements, not checks: run them in release.
//!
//! ```text
//! cargo test --release -p connhealth-watch --test http_probe_cost -- --ignored --nocapture --test-threads=1
//! ```

mod http_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use connhealth_watch::checks::{CheckResult, Outcome};
use connhealth_watch::config::CheckKind;
use http_support::{fleet, Server};

/// CPU time of this process, or of this thread, so far.
fn cpu(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain integers, for which all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given and has no other effect.
    assert_eq!(unsafe { libc::getrusage(who, &mut usage) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn ok_result() -> CheckResult {
    CheckResult {
        ip_protocol: Some(4),
        ..CheckResult::new(Outcome::Ok, Duration::from_micros(80))
    }
}

/// The same answer built the registry way: a registry, gauges registered, gathered.
fn render_with_registry(result: &CheckResult, took: Duration) -> String {
    use prometheus::{Encoder, Gauge, Registry, TextEncoder};
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, value: f64| {
        let gauge = Gauge::new(name, help).unwrap();
        gauge.set(value);
        registry.register(Box::new(gauge)).unwrap();
    };
    gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        result.dns_time.as_secs_f64(),
    );
    gauge(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        took.as_secs_f64(),
    );
    gauge(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
        4.0,
    );
    gauge(
        "probe_success",
        "Displays whether or not the probe was a success",
        1.0,
    );
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn rendering_an_answer() {
    let result = ok_result();
    let took = Duration::from_micros(120);
    assert_eq!(
        connhealth_watch::http::probe::render(&result, CheckKind::HalfOpen, took),
        render_with_registry(&result, took),
        "the same text either way"
    );
    let n = 200_000;
    for (way, render) in [
        (
            "protos + TextEncoder",
            &(|| connhealth_watch::http::probe::render(&result, CheckKind::HalfOpen, took))
                as &dyn Fn() -> String,
        ),
        ("registry + gather", &|| render_with_registry(&result, took)),
    ] {
        let start = Instant::now();
        let mut bytes = 0;
        for _ in 0..n {
            bytes += render().len();
        }
        eprintln!(
            "{way}: {:.2} µs per answer ({bytes} bytes)",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn a_whole_probe_over_http() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    // Connect probes complete the handshake: accept them, or the backlog fills.
    let acceptor = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for connection in acceptor.incoming() {
            drop(connection);
        }
    });
    // The daemon's HTTP runtime: one worker.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(Server::start(fleet(Vec::new())));
    for module in ["half_open", "connect"] {
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let request =
            format!("GET /probe?target={target}&module={module} HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut probe = |buf: &mut Vec<u8>| {
            stream.write_all(request.as_bytes()).unwrap();
            buf.clear();
            read_answer(&mut stream, buf);
            assert!(
                buf.ends_with(b"probe_success 1\n"),
                "{}",
                String::from_utf8_lossy(buf)
            );
        };
        let mut buf = Vec::new();
        for _ in 0..1000 {
            probe(&mut buf);
        }
        let n = 20_000;
        let (process, client, start) = (
            cpu(libc::RUSAGE_SELF),
            cpu(libc::RUSAGE_THREAD),
            Instant::now(),
        );
        for _ in 0..n {
            probe(&mut buf);
        }
        let wall = start.elapsed();
        let client = cpu(libc::RUSAGE_THREAD) - client;
        let process = cpu(libc::RUSAGE_SELF) - process;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        eprintln!(
            "{module}: {:.1} µs of CPU per probe on the server's side (process {:.1} − client {:.1}), {:.1} µs wall, one at a time",
            per(process - client),
            per(process),
            per(client),
            per(wall)
        );
    }
    drop(server);
}

/// Reads one answer with a `Content-Length` into `buf`.
fn read_answer(stream: &mut std::net::TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0; 4096];
    loop {
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..head_end]).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if buf.len() >= head_end + 4 + length {
                return;
            }
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}
