//! The peers, run as their users run them: HAProxy (Debian's `haproxy`) and
//! blackbox_exporter (Debian's `prometheus-blackbox-exporter`), each a child process on
//! loopback ports of the bench's namespace, `wrk` for the `/probe` load, and nginx
//! (Debian's `nginx`) as the https server of the `https` part. Each is installed with
//! apt-get when missing and the bench runs as root.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The Debian package of each peer command, for the messages.
pub const COMMANDS: [(&str, &str); 4] = [
    ("haproxy", "haproxy"),
    (
        "prometheus-blackbox-exporter",
        "prometheus-blackbox-exporter",
    ),
    ("wrk", "wrk"),
    ("nginx", "nginx"),
];

/// Makes sure every peer is on the PATH (installing its package when root).
pub fn ensure_installed() -> Result<(), String> {
    for (command, package) in COMMANDS {
        connhealth_testkit::ensure_command(command)
            .map_err(|err| format!("{command} (Debian package {package}): {err}"))?;
    }
    Ok(())
}

/// One line a peer printed, and when the bench read it.
pub type LogLine = (SystemTime, String);

/// A peer's process: stdout read line by line, each stamped on arrival; stderr in a file.
pub struct Peer {
    child: Child,
    lines: Arc<Mutex<Vec<LogLine>>>,
    name: &'static str,
}

impl Peer {
    fn spawn(name: &'static str, command: &mut Command, stderr: &Path) -> io::Result<Peer> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr)?)
            .spawn()
            .map_err(|err| io::Error::other(format!("cannot start {name}: {err}")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        std::thread::Builder::new()
            .name(format!("bench-{name}-log"))
            .spawn({
                let lines = Arc::clone(&lines);
                move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { return };
                        let at = SystemTime::now();
                        lines
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((at, line));
                    }
                }
            })?;
        Ok(Peer { child, lines, name })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line it printed so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until `addr` accepts a connection (the peer is serving), or fails when the
    /// peer exits or `limit` passes.
    fn wait_serving(&mut self, addr: SocketAddr, limit: Duration) -> io::Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!("{} exited: {status}", self.name)));
            }
            if TcpStream::connect(addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::other(format!(
            "{} did not listen on {addr} within {limit:?}",
            self.name
        )))
    }

    /// SIGTERM, then SIGKILL if it has not exited within 3 s.
    pub fn stop(mut self) {
        // SAFETY: kill sends a signal to our own child, whose pid is still ours to use
        // (it has not been waited for).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// HAProxy's check settings for every server.
#[derive(Debug, Clone)]
pub struct HaproxyChecks {
    /// The `default-server` line's check options, e.g. `check inter 1s`.
    pub options: String,
    /// Log every check's failure and every state change to stdout.
    pub log: bool,
}

/// The config: one thread, one backend of `servers`, each `server sN ADDR` checked with
/// `checks.options` (HAProxy's default check: a connect, half-open); a stats page on
/// `stats` (HAProxy needs at least one listener, and the bench reads the page).
pub fn haproxy_config(servers: &[SocketAddr], checks: &HaproxyChecks, stats: SocketAddr) -> String {
    let mut cfg = String::with_capacity(40 * servers.len() + 1024);
    let _ = writeln!(cfg, "global\n    nbthread 1\n    maxconn 4096");
    if checks.log {
        let _ = writeln!(cfg, "    log stdout format raw local0");
    }
    let _ = writeln!(
        cfg,
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    \
         timeout server 10s\n    timeout check 1s"
    );
    if checks.log {
        let _ = writeln!(cfg, "    log global");
    }
    let _ = writeln!(
        cfg,
        "frontend stats\n    mode http\n    bind {stats}\n    stats enable\n    stats uri /stats"
    );
    let _ = writeln!(cfg, "backend be");
    if checks.log {
        let _ = writeln!(cfg, "    option log-health-checks");
    }
    let _ = writeln!(cfg, "    default-server {}", checks.options);
    for (i, server) in servers.iter().enumerate() {
        let _ = writeln!(cfg, "    server s{i} {server}");
    }
    cfg
}

/// HAProxy running `cfg`.
pub struct Haproxy {
    peer: Peer,
    stats: SocketAddr,
}

impl Haproxy {
    /// Writes `dir/NAME.cfg`, starts `haproxy -db` on it, and waits until it serves.
    pub fn start(
        dir: &Path,
        name: &str,
        servers: &[SocketAddr],
        checks: &HaproxyChecks,
    ) -> io::Result<Haproxy> {
        let stats = free_addr()?;
        let path = dir.join(format!("{name}.cfg"));
        std::fs::write(&path, haproxy_config(servers, checks, stats))?;
        let mut peer = Peer::spawn(
            "haproxy",
            Command::new("haproxy").arg("-db").arg("-f").arg(&path),
            &dir.join(format!("{name}.stderr")),
        )?;
        peer.wait_serving(stats, Duration::from_secs(30))?;
        Ok(Haproxy { peer, stats })
    }

    /// Its process.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The servers by state, from its stats page (`;csv`): (UP, other).
    pub fn servers_up(&self) -> io::Result<(usize, usize)> {
        let csv = http_get(self.stats, "/stats;csv")?;
        let (mut up, mut other) = (0, 0);
        for line in csv.lines().filter(|l| l.starts_with("be,s")) {
            match line.split(',').nth(17) {
                Some("UP") => up += 1,
                _ => other += 1,
            }
        }
        Ok((up, other))
    }

    /// Stops it.
    pub fn stop(self) {
        self.peer.stop();
    }
}

/// blackbox_exporter with a `tcp_connect` module, as its Debian package ships it.
pub struct Blackbox {
    peer: Peer,
    listen: SocketAddr,
}

impl Blackbox {
    /// Writes `dir/blackbox.yml` and starts it on a free loopback port.
    pub fn start(dir: &Path) -> io::Result<Blackbox> {
        Blackbox::start_with(
            dir,
            "blackbox",
            "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 1s\n",
        )
    }

    /// Writes `modules` (a blackbox.yml) to `dir/NAME.yml` and starts it on a free
    /// loopback port, its stderr in `dir/NAME.stderr`.
    pub fn start_with(dir: &Path, name: &str, modules: &str) -> io::Result<Blackbox> {
        let listen = free_addr()?;
        let config = dir.join(format!("{name}.yml"));
        std::fs::write(&config, modules)?;
        let mut peer = Peer::spawn(
            "blackbox_exporter",
            Command::new("prometheus-blackbox-exporter")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--web.listen-address={listen}")),
            &dir.join(format!("{name}.stderr")),
        )?;
        peer.wait_serving(listen, Duration::from_secs(30))?;
        Ok(Blackbox { peer, listen })
    }

    /// Its process.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Where it serves `/probe`.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Stops it.
    pub fn stop(self) {
        self.peer.stop();
    }
}

/// nginx serving `200 ok` on `https://127.0.0.1:PORT/t/...`, one process (`master_process
/// off`), as a fleet's web server is tuned for many long-lived clients: 4096
/// connections, kept 120 s idle and for 100k requests each. Its `stub_status` is on a
/// plain-HTTP port of its own, so that reading it touches no https counter but its own
/// request.
pub struct Nginx {
    peer: Peer,
    https: SocketAddr,
    status: SocketAddr,
}

/// nginx's `stub_status` counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct NginxStatus {
    /// Client connections open now, the status request's own included.
    pub active: u64,
    /// Connections accepted so far.
    pub accepts: u64,
    /// Requests so far.
    pub requests: u64,
}

impl std::ops::Sub for NginxStatus {
    type Output = NginxStatus;
    /// Accepts and requests between two readings, less the later reading's own
    /// connection and request; `active` is the later one's, less its own.
    fn sub(self, earlier: NginxStatus) -> NginxStatus {
        NginxStatus {
            active: self.active.saturating_sub(1),
            accepts: self.accepts.saturating_sub(earlier.accepts + 1),
            requests: self.requests.saturating_sub(earlier.requests + 1),
        }
    }
}

impl Nginx {
    /// Writes `dir/nginx.conf` for the certificate chain and key in `cert` and `key` (PEM
    /// files), starts `nginx` on it, and waits until it serves.
    pub fn start(dir: &Path, cert: &Path, key: &Path) -> io::Result<Nginx> {
        let (https, status) = (free_addr()?, free_addr()?);
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(&prefix)?;
        let p = |name: &str| prefix.join(name).display().to_string();
        let (cert, key) = (cert.display(), key.display());
        let conf = [
            "daemon off;".to_owned(),
            "master_process off;".to_owned(),
            "worker_rlimit_nofile 16384;".to_owned(),
            format!("pid {};", p("nginx.pid")),
            format!("error_log {} warn;", p("error.log")),
            "events { worker_connections 4096; }".to_owned(),
            "http {".to_owned(),
            "    access_log off;".to_owned(),
            "    keepalive_timeout 120s;".to_owned(),
            "    keepalive_requests 100000;".to_owned(),
            format!("    client_body_temp_path {};", p("client_body")),
            format!("    proxy_temp_path {};", p("proxy")),
            "    server {".to_owned(),
            format!("        listen {https} ssl;"),
            format!("        ssl_certificate {cert};"),
            format!("        ssl_certificate_key {key};"),
            "        location /t/ { return 200 \"ok\"; }".to_owned(),
            "    }".to_owned(),
            "    server {".to_owned(),
            format!("        listen {status};"),
            "        location = /status { stub_status; }".to_owned(),
            "        location /t/ { return 200 \"ok\"; }".to_owned(),
            "    }".to_owned(),
            "}\n".to_owned(),
        ]
        .join("\n");
        let path = prefix.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let mut peer = Peer::spawn(
            "nginx",
            Command::new("nginx")
                .arg("-p")
                .arg(&prefix)
                .arg("-e")
                .arg(prefix.join("startup.log"))
                .arg("-c")
                .arg(&path),
            &prefix.join("stderr"),
        )?;
        peer.wait_serving(status, Duration::from_secs(30))?;
        peer.wait_serving(https, Duration::from_secs(5))?;
        Ok(Nginx {
            peer,
            https,
            status,
        })
    }

    /// Its process.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Its https address.
    pub fn https(&self) -> SocketAddr {
        self.https
    }

    /// Its plain-HTTP address (`stub_status`, and `200 ok` on `/t/...`).
    pub fn http(&self) -> SocketAddr {
        self.status
    }

    /// Its `stub_status` now.
    pub fn status(&self) -> io::Result<NginxStatus> {
        let text = http_get(self.status, "/status")?;
        let numbers: Vec<u64> = text
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        // `Active connections: A`, `server accepts handled requests`, `ACC HAND REQ`,
        // then Reading, Writing and Waiting.
        match numbers[..] {
            [active, accepts, _handled, requests, ..] => Ok(NginxStatus {
                active,
                accepts,
                requests,
            }),
            _ => Err(io::Error::other(format!("unreadable stub_status: {text}"))),
        }
    }

    /// Stops it.
    pub fn stop(self) {
        self.peer.stop();
    }
}

/// What one wrk run reported.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    /// Requests completed.
    pub requests: u64,
    /// Responses that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors.
    pub errors: u64,
}

/// `wrk -t2 -c32 -dSECONDS URL`.
pub fn wrk(url: &str, seconds: u32) -> io::Result<WrkRun> {
    let output = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), url])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let number_before = |marker: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.contains(marker))?;
        line.split_whitespace().next()?.parse().ok()
    };
    let requests = number_before(" requests in ").ok_or_else(|| {
        io::Error::other(format!(
            "wrk printed no request count: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    })?;
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|list| {
            list.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(WrkRun {
        requests,
        non_2xx,
        errors,
    })
}

/// A loopback address with a port free now.
pub fn free_addr() -> io::Result<SocketAddr> {
    Ok(SocketAddr::from((
        [127, 0, 0, 1],
        connhealth_testkit::free_port()?,
    )))
}

/// `GET path`: the body of a 200, else an error.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    match connhealth_testkit::http(addr, "GET", path)? {
        (200, body) => Ok(body),
        (code, body) => Err(io::Error::other(format!("GET {path}: {code} {body}"))),
    }
}
