//! Shared by the `http_*` and `metrics_*` tests: fleets built by hand (no config parser,
//! no scheduler), a server on a loopback port, and a small HTTP/1.1 client written on
//! tokio's `TcpStream` (the workspace has no HTTP client crate).

#![allow(dead_code)] // Each test file uses a part.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use connhealth_watch::checks::{CheckResult, Outcome};
use connhealth_watch::config::Options;
use connhealth_watch::config::{Check, CheckKind, CheckPlan, TargetPlan};
use connhealth_watch::reload::Shared;
use connhealth_watch::state::Fleet;
use connhealth_watch::state::Watched;
use connhealth_watch::LogFormat;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A target plan with the default check settings of `kind`.
pub fn plan(name: &str, address: &str, kind: CheckKind, labels: &[(&str, &str)]) -> TargetPlan {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let check = CheckPlan {
        check: Check::from(kind),
        rise: 1,
        fall: 1,
        ..CheckPlan::default()
    };
    TargetPlan::new(name, address, labels, check).expect("a valid address")
}

/// A fleet of `targets`, no modules, the default `[defaults]`.
pub fn fleet(targets: Vec<Watched>) -> Fleet {
    Fleet {
        targets: targets.into_iter().map(Arc::new).collect(),
        modules: BTreeMap::new(),
        unsupported_modules: BTreeMap::new(),
        defaults_timeout: None,
        blackbox: false,
        probe: Default::default(),
    }
}

/// A target that has had `results` recorded, in order, at `now`.
pub fn target_after(plan: TargetPlan, results: &[CheckResult], now: SystemTime) -> Watched {
    let target = Watched::new(plan, now);
    for result in results {
        let check = target.plan.check.clone();
        target.state().record(&check, result, now);
    }
    target
}

/// A result of `outcome` that took `millis`.
pub fn result(outcome: Outcome, millis: u64) -> CheckResult {
    let duration = Duration::from_millis(millis);
    match outcome {
        Outcome::Ok => CheckResult::new(outcome, duration),
        _ => CheckResult::failed(outcome, duration, format!("a {} failure", outcome.label())),
    }
}

/// Options whose reloads read `config`.
pub fn options(config: PathBuf) -> Options {
    Options {
        config,
        listen: "127.0.0.1:0".into(),
        check_config: false,
        shard: None,
        log_format: LogFormat::Text,
        max_in_flight: None,
        web_config: None,
        data_dir: None,
    }
}

/// `connhealth_watch::http::serve` on a free loopback port, stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `fleet`, ready, reloading from a config that does not exist.
    pub async fn start(fleet: Fleet) -> Server {
        Server::with(options("/nonexistent/connhealth.toml".into()), fleet, true).await
    }

    /// Serves `fleet` with `options`, ready or not.
    pub async fn with(options: Options, fleet: Fleet, ready: bool) -> Server {
        let shared = Shared::for_tests(options, fleet, ready);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let served = tokio::spawn(connhealth_watch::http::serve(
            listener,
            Arc::clone(&shared),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            shared,
            stop: Some(stop),
            served,
        }
    }

    /// Ends `serve` and waits for it to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        let served = std::mem::replace(&mut self.served, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(2), served)
            .await
            .expect("serve returns soon after shutdown")
            .expect("serve does not panic")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[]).await
    }

    /// `METHOD path` with `headers`.
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(self.addr, method, path, headers).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// An answer whose body is kept as bytes (a gzipped one, say).
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The value of header `name` (any case) among `headers`, whose names are lowercased.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`), read to the
/// end; chunked bodies are decoded.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    text(request_raw(addr, method, path, headers).await)
}

/// [`request`], with the body kept as bytes.
pub async fn request_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 30 s")
        .unwrap();
    parse_raw(&raw)
}

/// Parses one HTTP/1.1 answer whose body is UTF-8.
pub fn parse(raw: &[u8]) -> Reply {
    text(parse_raw(raw))
}

fn text(raw: RawReply) -> Reply {
    Reply {
        status: raw.status,
        headers: raw.headers,
        body: String::from_utf8(raw.body).expect("a UTF-8 body"),
    }
}

/// Parses one HTTP/1.1 answer, its body as bytes.
pub fn parse_raw(raw: &[u8]) -> RawReply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawReply {
        status,
        headers,
        body,
    }
}

/// Decodes a chunked body; panics if it lacks its final chunk (an aborted answer).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line: the answer was cut short");
        let size_line = std::str::from_utf8(&rest[..end]).unwrap();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("a chunk size: {size_line:?}"));
        rest = &rest[end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The value of the sample `series` (name and labels, exactly as written) in a text
/// exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
}

/// Every sample line's series (name and labels) in a text exposition.
pub fn series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series))
        .collect()
}

/// A fleet with every state, every check kind and every result, labels that need
/// escaping, and a tls target with a known expiry. All its addresses are loopback ones
/// where nothing is checked: the fleet is only rendered.
pub fn mixed_fleet(now: SystemTime) -> Fleet {
    let up = target_after(
        plan(
            "cache-a",
            "127.0.0.1:6379",
            CheckKind::HalfOpen,
            &[("service", "cache"), ("zone", "a")],
        ),
        &[result(Outcome::Ok, 1)],
        now,
    );
    let down = target_after(
        plan(
            "cache-b",
            "127.0.0.1:6380",
            CheckKind::Connect,
            &[("service", "cache")],
        ),
        &[result(Outcome::Ok, 1), result(Outcome::Refused, 0)],
        now,
    );
    let unknown = target_after(plan("held", "[::1]:5432", CheckKind::Hold, &[]), &[], now);
    let tls = target_after(
        plan(
            "web",
            "localhost:8443",
            CheckKind::Tls,
            &[("note", "a \"quoted\" \\ value\nand a second line")],
        ),
        &[CheckResult {
            cert_expiry: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            tls_version: Some("TLS 1.3"),
            ..result(Outcome::Ok, 3)
        }],
        now,
    );
    let mut every_result: Vec<CheckResult> = Outcome::ALL.iter().map(|o| result(*o, 2)).collect();
    every_result.push(CheckResult {
        regex_failed: true,
        ..result(Outcome::Mismatch, 2)
    });
    let send_expect = target_after(
        plan("redis", "127.0.0.1:6381", CheckKind::SendExpect, &[]),
        &every_result,
        now,
    );
    fleet(vec![up, down, unknown, tls, send_expect])
}

/// `n` targets, two labels each, a third of them down, one in ten unknown, one in
/// twenty tls with an expiry.
pub fn synthetic_fleet(n: usize) -> Fleet {
    let now = SystemTime::now();
    let targets = (0..n)
        .map(|i| {
            let kind = if i % 20 == 0 {
                CheckKind::Tls
            } else {
                CheckKind::HalfOpen
            };
            let address = format!("127.{}.{}.{}:6379", i >> 16, (i >> 8) & 255, i & 255);
            let name = format!("cache-{i:06}");
            let labels = [("service", "cache"), ("zone", ["a", "b", "c"][i % 3])];
            let mut ok = result(Outcome::Ok, 1);
            if kind == CheckKind::Tls {
                ok.cert_expiry = Some(now + Duration::from_secs(90 * 86_400));
            }
            let results = match i % 10 {
                0 => Vec::new(),
                1..=3 => vec![ok, result(Outcome::Refused, 0)],
                _ => vec![ok],
            };
            target_after(plan(&name, &address, kind, &labels), &results, now)
        })
        .collect();
    fleet(targets)
}
