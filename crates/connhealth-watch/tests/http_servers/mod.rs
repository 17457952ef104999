//! Small HTTP/1.1 servers of the `http` check's tests, on loopback, each on threads of its
//! own (so that a test may block its runtime and the server still runs): they answer as
//! a handler says, over plain TCP or TLS (rustls), and count what they see: connections
//! (each a TLS handshake for https), requests, how each connection ended, and requests
//! that arrived after the server had sent its FIN.
//!
//! Also the certificates (rcgen) and an nginx of the test's own.

#![allow(dead_code)] // each test file uses some of it

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connhealth_testkit::TempDir;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio_rustls::rustls;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// One request as the server read it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// 1 for the first request on its connection.
    pub nth_on_connection: usize,
    /// 1 for the server's first connection.
    pub connection: usize,
}

impl Request {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with the connection after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Waits for the next request.
    KeepAlive,
    /// Closes it (a FIN), whatever the answer said.
    Close,
    /// Waits this long for the next request, then closes (an idle timeout).
    CloseWhenIdleFor(Duration),
    /// Waits this long, then sends its FIN (`shutdown(SHUT_WR)`) but goes on reading: a
    /// request that arrives after it is counted in [`Stats::requests_after_fin`].
    HalfCloseAfter(Duration),
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status line and headers, without the blank line (`Content-Length` is added
    /// unless `raw`).
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    pub then: Then,
    /// `head` and `body` are sent as they are, with no Content-Length added.
    pub raw: bool,
    /// Nothing is answered: the connection is closed as soon as the request is read.
    pub hang_up: bool,
    /// Nothing is answered, ever: the connection stays open and silent.
    pub silent: bool,
}

impl Reply {
    /// `HTTP/1.1 {status}` with `body`, kept alive.
    pub fn new(status: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            head: format!("HTTP/1.1 {status}").into_bytes(),
            body: body.into(),
            then: Then::KeepAlive,
            raw: false,
            hang_up: false,
            silent: false,
        }
    }

    /// `200 OK` with `body`.
    pub fn ok(body: &str) -> Reply {
        Reply::new("200 OK", body)
    }

    /// A redirect to `location`.
    pub fn redirect(status: &str, location: &str) -> Reply {
        Reply::new(status, "").header("Location", location)
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.head
            .extend_from_slice(format!("\r\n{name}: {value}").as_bytes());
        self
    }

    /// `head` and `body` as they are: any bytes, no Content-Length added.
    pub fn raw(head: &[u8], body: &[u8]) -> Reply {
        Reply {
            head: head.to_vec(),
            raw: true,
            ..Reply::new("", body.to_vec())
        }
    }

    pub fn then(mut self, then: Then) -> Reply {
        self.then = then;
        self
    }

    pub fn hang_up() -> Reply {
        Reply {
            hang_up: true,
            ..Reply::ok("")
        }
    }

    pub fn silent() -> Reply {
        Reply {
            silent: true,
            ..Reply::ok("")
        }
    }
}

/// How a connection ended, as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client's FIN (for TLS: close_notify, then a FIN).
    Fin,
    /// A FIN in the middle of a request, or for TLS a FIN without close_notify.
    FinAlone,
    /// The client's RST.
    Reset,
    /// The server closed it first, and then the client's FIN came.
    ServerClosed,
}

/// What a server saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    pub requests_after_fin: AtomicUsize,
    /// Set when a [`Then::HalfCloseAfter`] FIN has gone out.
    pub fin_sent: AtomicBool,
    pub ends: Mutex<Vec<End>>,
    pub seen: Mutex<Vec<Request>>,
}

impl Stats {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn ends(&self) -> Vec<End> {
        self.ends.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Request {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A server on a free loopback port, for the test's life.
pub struct Server {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

impl Server {
    /// Plain HTTP, answering with `handler`.
    pub fn http(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::start(None, Arc::new(handler))
    }

    /// Plain HTTP on IPv6's loopback (`[::1]`), answering with `handler`; `None` where
    /// there is no IPv6 loopback.
    pub fn http_v6(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Option<Server> {
        let listener = TcpListener::bind("[::1]:0").ok()?;
        Some(Server::serve(listener, None, Arc::new(handler)))
    }

    /// HTTPS with `tls`, answering with `handler`.
    pub fn https(
        tls: ServerConfig,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        Server::start(Some(Arc::new(tls)), Arc::new(handler))
    }

    fn start(tls: Option<Arc<ServerConfig>>, handler: Arc<Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        Server::serve(listener, tls, handler)
    }

    fn serve(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        handler: Arc<Handler>,
    ) -> Server {
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let shared = Arc::clone(&stats);
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let connection = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let (stats, handler, tls) =
                    (Arc::clone(&shared), Arc::clone(&handler), tls.clone());
                thread::spawn(move || {
                    let end = match tls {
                        None => serve(&mut Plain(tcp), connection, &stats, &*handler),
                        Some(config) => {
                            let conn = ServerConnection::new(config).unwrap();
                            let mut stream = Tls(StreamOwned::new(conn, tcp));
                            serve(&mut stream, connection, &stats, &*handler)
                        }
                    };
                    if let Some(end) = end {
                        stats.ends.lock().unwrap().push(end);
                    }
                });
            }
        });
        Server { addr, stats }
    }

    /// `http://127.0.0.1:PORT{path}` (`http://[::1]:PORT{path}` on IPv6).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `https://localhost:PORT{path}`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

/// A connection's stream, and how to send a FIN on it.
trait Stream: Read + Write {
    fn tcp(&self) -> &TcpStream;
    /// The server's FIN (and, for TLS, close_notify before it).
    fn fin(&mut self) {
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
}

struct Plain(TcpStream);

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Stream for Plain {
    fn tcp(&self) -> &TcpStream {
        &self.0
    }
}

struct Tls(StreamOwned<ServerConnection, TcpStream>);

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Stream for Tls {
    fn tcp(&self) -> &TcpStream {
        &self.0.sock
    }
    fn fin(&mut self) {
        self.0.conn.send_close_notify();
        let _ = self.0.flush();
        let _ = self.0.sock.shutdown(Shutdown::Write);
    }
}

/// Serves one connection; how it ended, when it ended.
fn serve(
    stream: &mut dyn Stream,
    connection: usize,
    stats: &Stats,
    handler: &Handler,
) -> Option<End> {
    let mut buffered = Vec::new();
    let mut nth = 0;
    let mut fin_sent = false;
    loop {
        let request = match read_request(stream, &mut buffered) {
            Ok(Some(request)) => request,
            Ok(None) if fin_sent => return Some(End::ServerClosed),
            Ok(None) => return Some(End::Fin),
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return Some(End::Reset),
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Some(End::FinAlone),
            // An idle timeout (`Then::CloseWhenIdleFor`).
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                stream.fin();
                drain(stream);
                return Some(End::ServerClosed);
            }
            Err(_) => return None,
        };
        if fin_sent {
            stats.requests_after_fin.fetch_add(1, Ordering::SeqCst);
        }
        nth += 1;
        let request = Request {
            nth_on_connection: nth,
            connection,
            ..request
        };
        stats.requests.fetch_add(1, Ordering::SeqCst);
        stats.seen.lock().unwrap().push(request.clone());
        let reply = handler(&request);
        if reply.silent {
            thread::sleep(Duration::from_secs(30));
            return None;
        }
        if reply.hang_up {
            stream.fin();
            drain(stream);
            return Some(End::ServerClosed);
        }
        let mut answer = reply.head;
        if !reply.raw {
            answer
                .extend_from_slice(format!("\r\nContent-Length: {}", reply.body.len()).as_bytes());
        }
        answer.extend_from_slice(b"\r\n\r\n");
        answer.extend_from_slice(&reply.body);
        if stream
            .write_all(&answer)
            .and_then(|()| stream.flush())
            .is_err()
        {
            return Some(End::Reset);
        }
        match reply.then {
            Then::KeepAlive => {}
            Then::Close => {
                stream.fin();
                drain(stream);
                return Some(End::ServerClosed);
            }
            Then::CloseWhenIdleFor(idle) => {
                let _ = stream.tcp().set_read_timeout(Some(idle));
            }
            Then::HalfCloseAfter(wait) => {
                thread::sleep(wait);
                stream.fin();
                fin_sent = true;
                stats.fin_sent.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Reads until the client's FIN, so that the server's close is not an RST either.
fn drain(stream: &mut dyn Stream) {
    let _ = stream.tcp().set_read_timeout(Some(Duration::from_secs(5)));
    let mut scratch = [0u8; 4096];
    while matches!(stream.read(&mut scratch), Ok(n) if n > 0) {}
}

/// One request: its head, then a Content-Length body. `None` at the client's close
/// before a request began.
fn read_request(stream: &mut dyn Stream, buffered: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(end) = find(buffered, b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            if buffered.is_empty() {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffered.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut words = lines.next().unwrap_or_default().split(' ');
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    buffered.drain(..head_end + 4);
    while buffered.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffered.extend_from_slice(&chunk[..n]);
    }
    let body = buffered.drain(..length).collect();
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
        ..Request::default()
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A certificate for a server, its key, and the PEM file a check trusts it by.
pub struct Pki {
    _dir: TempDir,
    /// The PEM of what to trust: the CA, or the self-signed certificate itself.
    pub ca_file: PathBuf,
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
    pub key: PrivateKeyDer<'static>,
    pub key_pem: String,
    /// Whole seconds.
    pub not_after: SystemTime,
}

/// Sets `params`'s notAfter to `when` (whole seconds) and its notBefore 30 days before
/// it or now, whichever is earlier (so that an expired certificate is expired, not yet
/// to come); returns notAfter.
fn valid_until(params: &mut CertificateParams, when: SystemTime) -> SystemTime {
    let unix = |at: SystemTime| at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_after = epoch + Duration::from_secs(unix(when));
    let before = unix(when.min(SystemTime::now())) - 30 * 86_400;
    params.not_before = epoch + Duration::from_secs(before);
    UNIX_EPOCH + Duration::from_secs(unix(when))
}

/// A test CA, in the CA file, and a certificate it signed for `localhost` and
/// 127.0.0.1, valid until `until`.
pub fn ca_signed(until: SystemTime) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "connhealth http test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let not_after = valid_until(&mut params, until);
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    pki(&ca.pem(), cert.der().clone(), cert.pem(), key, not_after)
}

/// A self-signed certificate with CA:TRUE for `localhost` and 127.0.0.1, as `openssl
/// req -x509` makes, valid for 90 days, pinned in its own CA file.
pub fn self_signed_ca() -> Pki {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let not_after = valid_until(
        &mut params,
        SystemTime::now() + Duration::from_secs(90 * 86_400),
    );
    let cert = params.self_signed(&key).unwrap();
    pki(&cert.pem(), cert.der().clone(), cert.pem(), key, not_after)
}

fn pki(
    ca_pem: &str,
    cert: CertificateDer<'static>,
    cert_pem: String,
    key: KeyPair,
    not_after: SystemTime,
) -> Pki {
    let dir = TempDir::new("check-http-pki");
    let ca_file = dir.write("ca.pem", ca_pem);
    Pki {
        _dir: dir,
        ca_file,
        cert,
        cert_pem,
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        key_pem: key.serialize_pem(),
        not_after,
    }
}

/// A rustls server config serving `pki`'s certificate.
pub fn server_config(pki: &Pki) -> ServerConfig {
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .unwrap()
}

/// An nginx of the test's own, on loopback ports, with its config, logs and pid file in
/// a temp folder; stopped on drop.
pub struct Nginx {
    child: Child,
    pub dir: TempDir,
    pub http: SocketAddr,
    pub https: SocketAddr,
}

impl Nginx {
    /// Starts `nginx` (the binary at `binary`) serving `root` (files written into the
    /// temp folder's `www/` by the caller through `files`), http on one port and https
    /// with `pki` on another, and waits until both accept. Its access log names each
    /// request's connection (`$connection $connection_requests $status $request`).
    pub fn start(binary: &str, files: &[(&str, &str)], pki: &Pki) -> io::Result<Nginx> {
        let dir = TempDir::new("check-http-nginx");
        for (name, contents) in files {
            dir.write(format!("www/{name}"), contents);
        }
        let cert = dir.write("cert.pem", &pki.cert_pem);
        let key = dir.write("key.pem", &pki.key_pem);
        let http = SocketAddr::from(([127, 0, 0, 1], connhealth_testkit::free_port()?));
        let https = SocketAddr::from(([127, 0, 0, 1], connhealth_testkit::free_port()?));
        let prefix = dir.path().display().to_string();
        let config = format!(
            // One process, no workers: it reads the temp folder as whoever runs the test,
            // and a kill on drop stops all of it.
            r#"master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format conn '$connection $connection_requests $status $request';
    access_log {prefix}/access.log conn;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_timeout 60s;
    server {{
        listen {http};
        listen {https} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {prefix}/www;
    }}
}}
"#,
            cert = cert.display(),
            key = key.display(),
        );
        let config_file = dir.write("nginx.conf", config);
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config_file)
            .arg("-p")
            .arg(dir.path())
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut nginx = Nginx {
            child,
            dir,
            http,
            https,
        };
        let up = connhealth_testkit::wait_until(Duration::from_secs(10), || {
            TcpStream::connect(http).is_ok() && TcpStream::connect(https).is_ok()
        });
        if up.is_none() {
            let _ = nginx.child.kill();
            let mut stderr = String::new();
            if let Some(mut err) = nginx.child.stderr.take() {
                let _ = err.read_to_string(&mut stderr);
            }
            let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
            return Err(io::Error::other(format!(
                "nginx did not start: {stderr} {log}"
            )));
        }
        Ok(nginx)
    }

    /// The access log's lines, `CONNECTION REQUESTS STATUS REQUEST`, once there are
    /// `lines` of them (or 5 s have passed): nginx writes a line when its request ends,
    /// which may be just after the client has read the answer.
    pub fn access_log(&self, lines: usize) -> Vec<String> {
        let read = || {
            std::fs::read_to_string(self.dir.join("access.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        connhealth_testkit::wait_until(Duration::from_secs(5), || read().len() >= lines);
        read()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
