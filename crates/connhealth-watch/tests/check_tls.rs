//! The `tls` check against a real rustls server (tokio-rustls), with certificates made
//! by rcgen: a test CA and a leaf for `localhost` it signs.
//!
//! Run with `cargo test -p connhealth-watch --test check_tls`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connhealth_testkit::TempDir;
use connhealth_watch::checks::{tls, CheckResult, Outcome};
use connhealth_watch::config::TlsPlan;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

const TIMEOUT: Duration = Duration::from_secs(2);
const DAY: Duration = Duration::from_secs(86_400);

/// A PEM file in a folder of its own, removed on drop.
struct TempPem {
    _dir: TempDir,
    path: PathBuf,
}

impl TempPem {
    fn new(pem: &str) -> TempPem {
        let dir = TempDir::new("check-tls");
        let path = dir.write("ca.pem", pem);
        TempPem { _dir: dir, path }
    }
}

/// A test CA (valid until rcgen's default, 4096), its PEM in a file, and one leaf it
/// signed.
struct Pki {
    ca_file: TempPem,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
    /// The leaf's notAfter, whole seconds.
    leaf_not_after: SystemTime,
}

/// A CA and a leaf for `names` (DNS names or IP addresses), `CN=localhost`, that
/// expires `valid_for` from now.
fn pki(names: &[&str], valid_for: Duration) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "connhealth test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let mut leaf_params = CertificateParams::new(names).unwrap();
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let not_after_unix = (SystemTime::now() + valid_for)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    leaf_params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(not_after_unix);
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    Pki {
        ca_file: TempPem::new(&ca.pem()),
        leaf: leaf.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        leaf_not_after: UNIX_EPOCH + Duration::from_secs(not_after_unix),
    }
}

/// A self-signed certificate with basicConstraints CA:TRUE for `names`, `CN=localhost`,
/// that expires `valid_for` from now (or, with `expired`, expired that long ago): what
/// `openssl req -x509` makes, served as the leaf and pinned in its own CA file.
fn self_signed_ca(names: &[&str], valid_for: Duration, expired: bool) -> Pki {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let not_after = if expired {
        SystemTime::now() - valid_for
    } else {
        SystemTime::now() + valid_for
    };
    let not_after_unix = not_after.duration_since(UNIX_EPOCH).unwrap().as_secs();
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(not_after_unix);
    let cert = params.self_signed(&key).unwrap();
    Pki {
        ca_file: TempPem::new(&cert.pem()),
        leaf: cert.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        leaf_not_after: UNIX_EPOCH + Duration::from_secs(not_after_unix),
    }
}

fn localhost_pki() -> Pki {
    pki(&["localhost"], 90 * DAY)
}

fn server_config(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ServerConfig {
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.leaf.clone()], pki.leaf_key.clone_key())
        .unwrap()
}

/// What the TLS server saw of one connection.
#[derive(Debug)]
enum ServerSaw {
    /// The handshake failed, as the server's rustls says.
    HandshakeFailed(String),
    /// The handshake completed; how the checker closed.
    Closed(CloseSeen),
}

#[derive(Debug)]
struct CloseSeen {
    /// The first read through TLS: `Ok(0)` only after a close_notify (rustls reports a
    /// FIN without one as an `UnexpectedEof` error).
    tls_read: Result<usize, std::io::ErrorKind>,
    /// The server's own close_notify and FIN. A reset that arrived before it fails this
    /// write (which consumes the socket's error).
    shutdown: Result<(), std::io::ErrorKind>,
    /// A read of the TCP socket after that: `Ok(0)` is the checker's FIN.
    tcp_read: Result<usize, std::io::ErrorKind>,
    /// The socket's pending error (`SO_ERROR`) once the server answered with its own
    /// close_notify and FIN and waited: a reset that came after the write above leaves
    /// `ECONNRESET` here.
    error_after_close: Option<String>,
}

/// A TLS server on a free loopback port that completes handshakes, waits for the
/// client's close, answers with close_notify and FIN, and reports each connection.
async fn tls_server(config: ServerConfig) -> (SocketAddr, mpsc::UnboundedReceiver<ServerSaw>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (report, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let report = report.clone();
            tokio::spawn(async move {
                let saw = match acceptor.accept(tcp).await {
                    Err(err) => ServerSaw::HandshakeFailed(err.to_string()),
                    Ok(mut tls) => {
                        let mut buf = [0u8; 256];
                        let tls_read = tls.read(&mut buf).await.map_err(|err| err.kind());
                        let shutdown = tls.shutdown().await.map_err(|err| err.kind());
                        let (mut tcp, _) = tls.into_inner();
                        let tcp_read = tcp.read(&mut buf).await.map_err(|err| err.kind());
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let error_after_close =
                            tcp.take_error().unwrap().map(|err| err.to_string());
                        ServerSaw::Closed(CloseSeen {
                            tls_read,
                            shutdown,
                            tcp_read,
                            error_after_close,
                        })
                    }
                };
                let _ = report.send(saw);
            });
        }
    });
    (addr, seen)
}

async fn tls13_server(pki: &Pki) -> (SocketAddr, mpsc::UnboundedReceiver<ServerSaw>) {
    tls_server(server_config(pki, &[&rustls::version::TLS13])).await
}

fn plan(tls: TlsPlan) -> TlsPlan {
    tls
}

fn trusting(pki: &Pki) -> TlsPlan {
    TlsPlan {
        ca_file: Some(pki.ca_file.path.clone()),
        ..TlsPlan::default()
    }
}

fn assert_expiry(result: &CheckResult, expected: SystemTime) {
    let expiry = result.cert_expiry.expect("cert_expiry is set");
    let off = expiry
        .duration_since(expected)
        .unwrap_or_else(|early| early.duration());
    assert!(
        off <= Duration::from_secs(1),
        "{expiry:?} against {expected:?}"
    );
}

#[tokio::test]
async fn verified_chain_is_ok_with_the_leafs_expiry_and_version() {
    let pki = localhost_pki();
    let (addr, _seen) = tls13_server(&pki).await;
    let started = Instant::now();
    let result = tls::check(addr, "localhost", &plan(trusting(&pki)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.tls_version, Some("TLS 1.3"));
    assert_expiry(&result, pki.leaf_not_after);
    assert!(result.duration > Duration::ZERO && result.duration <= started.elapsed());
    assert_eq!(result.detail, None);
}

#[tokio::test]
async fn tls12_server_reports_tls_1_2() {
    let pki = localhost_pki();
    let (addr, _seen) = tls_server(server_config(&pki, &[&rustls::version::TLS12])).await;
    let result = tls::check(addr, "localhost", &plan(trusting(&pki)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.tls_version, Some("TLS 1.2"));
}

#[tokio::test]
async fn ip_address_host_is_verified_against_the_ip_san() {
    let pki = pki(&["127.0.0.1"], 90 * DAY);
    let (addr, _seen) = tls13_server(&pki).await;
    let result = tls::check(addr, "127.0.0.1", &plan(trusting(&pki)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
}

#[tokio::test]
async fn wrong_server_name_is_tls() {
    let pki = localhost_pki();
    let (addr, _seen) = tls13_server(&pki).await;
    let tls_plan = TlsPlan {
        server_name: Some("wrong.example".into()),
        ..trusting(&pki)
    };
    let result = tls::check(addr, "localhost", &plan(tls_plan), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("not valid for name"), "{detail}");
    assert_expiry(&result, pki.leaf_not_after);
}

#[tokio::test]
async fn unknown_ca_against_the_system_roots_is_tls_with_the_expiry_still_read() {
    let pki = localhost_pki();
    let (addr, _seen) = tls13_server(&pki).await;
    let result = tls::check(addr, "localhost", &plan(TlsPlan::default()), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert_expiry(&result, pki.leaf_not_after);
}

#[tokio::test]
async fn insecure_accepts_an_unknown_ca_and_still_reads_the_expiry() {
    let pki = localhost_pki();
    let (addr, _seen) = tls13_server(&pki).await;
    let tls_plan = TlsPlan {
        insecure: true,
        server_name: Some("not-the-name.example".into()),
        ..TlsPlan::default()
    };
    let result = tls::check(addr, "localhost", &plan(tls_plan), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.tls_version, Some("TLS 1.3"));
    assert_expiry(&result, pki.leaf_not_after);
}

#[tokio::test]
async fn cert_expiring_within_cert_min_days_is_tls_naming_it() {
    let pki = pki(&["localhost"], 10 * DAY);
    let (addr, _seen) = tls13_server(&pki).await;
    let tls_plan = TlsPlan {
        cert_min_days: Some(30),
        ..trusting(&pki)
    };
    let result = tls::check(addr, "localhost", &plan(tls_plan), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    let date = humantime::format_rfc3339_seconds(pki.leaf_not_after).to_string();
    assert!(detail.contains("CN=localhost"), "{detail}");
    assert!(detail.contains(&date), "{detail} names {date}");
    assert!(detail.contains("cert_min_days = 30"), "{detail}");
    assert_expiry(&result, pki.leaf_not_after);
}

#[tokio::test]
async fn cert_valid_beyond_cert_min_days_is_ok() {
    let pki = pki(&["localhost"], 10 * DAY);
    let (addr, _seen) = tls13_server(&pki).await;
    let tls_plan = TlsPlan {
        cert_min_days: Some(5),
        ..trusting(&pki)
    };
    let result = tls::check(addr, "localhost", &plan(tls_plan), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
}

#[tokio::test]
async fn server_sees_close_notify_then_a_fin_and_no_reset() {
    let pki = localhost_pki();
    let (addr, mut seen) = tls13_server(&pki).await;
    let result = tls::check(addr, "localhost", &plan(trusting(&pki)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    let saw = tokio::time::timeout(Duration::from_secs(3), seen.recv())
        .await
        .expect("the server reports")
        .expect("one connection");
    let ServerSaw::Closed(close) = saw else {
        panic!("the handshake failed on the server: {saw:?}");
    };
    assert_eq!(close.tls_read, Ok(0), "close_notify: {close:?}");
    assert_eq!(close.shutdown, Ok(()), "never a reset: {close:?}");
    assert_eq!(close.tcp_read, Ok(0), "then a FIN: {close:?}");
    assert_eq!(close.error_after_close, None, "never a reset: {close:?}");
}

#[tokio::test]
async fn server_sees_an_alert_when_verification_fails() {
    let pki = localhost_pki();
    let (addr, mut seen) = tls13_server(&pki).await;
    let result = tls::check(addr, "localhost", &plan(TlsPlan::default()), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let saw = tokio::time::timeout(Duration::from_secs(3), seen.recv())
        .await
        .expect("the server reports")
        .expect("one connection");
    let ServerSaw::HandshakeFailed(why) = saw else {
        panic!("the handshake completed on the server: {saw:?}");
    };
    assert!(why.contains("UnknownCA"), "the checker's alert: {why}");
}

#[tokio::test]
async fn plain_tcp_server_is_a_tls_error_not_a_hang() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.write_all(b"220 hello, this is not TLS\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
    });
    let started = Instant::now();
    let result = tls::check(addr, "localhost", &plan(TlsPlan::default()), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    assert!(
        started.elapsed() < TIMEOUT / 2,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(result.cert_expiry, None);
}

#[tokio::test]
async fn silent_server_times_out_within_the_timeout() {
    let addr = connhealth_testkit::silent_server(Duration::from_secs(10));
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = tls::check(addr, "localhost", &plan(TlsPlan::default()), timeout).await;
    let took = started.elapsed();
    assert_eq!(result.outcome, Outcome::Timeout, "{result:?}");
    assert!(took < timeout + Duration::from_millis(200), "took {took:?}");
}

#[tokio::test]
async fn closed_port_is_refused() {
    let addr = connhealth_testkit::closed_port();
    let result = tls::check(addr, "localhost", &plan(TlsPlan::default()), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Refused, "{result:?}");
}

#[tokio::test]
async fn unreadable_ca_file_is_an_error_naming_it() {
    let tls_plan = TlsPlan {
        ca_file: Some("/nonexistent/connhealth-ca.pem".into()),
        ..TlsPlan::default()
    };
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let result = tls::check(addr, "localhost", &plan(tls_plan), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Error, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("/nonexistent/connhealth-ca.pem"),
        "{detail}"
    );
}

#[tokio::test]
async fn run_once_checks_an_ip_target_against_its_ip_san_and_a_name_against_its_name() {
    // What /probe runs: the address as a string, the name verified taken from it.
    let probers = connhealth_watch::checks::Probers::new(16);
    let pki = pki(&["127.0.0.1", "localhost"], 90 * DAY);
    let (addr, _seen) = tls13_server(&pki).await;
    let plan = connhealth_watch::config::CheckPlan {
        check: connhealth_watch::config::Check::Tls(trusting(&pki)),
        ..Default::default()
    };
    for address in [addr.to_string(), format!("localhost:{}", addr.port())] {
        let result = connhealth_watch::checks::run_once(&probers, &address, &plan, TIMEOUT).await;
        assert_eq!(result.outcome, Outcome::Ok, "{address}: {result:?}");
        assert_eq!(result.tls_version, Some("TLS 1.3"));
    }
}

#[tokio::test]
async fn self_signed_ca_true_certificate_pinned_in_ca_file_is_ok() {
    // `openssl req -x509` makes CA:TRUE; curl and blackbox trust it when it is the CA file.
    let pki = self_signed_ca(&["localhost"], 90 * DAY, false);
    let (addr, _seen) = tls13_server(&pki).await;
    let result = tls::check(addr, "localhost", &plan(trusting(&pki)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.tls_version, Some("TLS 1.3"));
    assert_eq!(result.detail, None);
    assert_expiry(&result, pki.leaf_not_after);

    let tls12 = tls_server(server_config(&pki, &[&rustls::version::TLS12])).await;
    let result = tls::check(tls12.0, "localhost", &plan(trusting(&pki)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "TLS 1.2: {result:?}");
}

#[tokio::test]
async fn pinned_ca_true_certificate_still_answers_to_cert_min_days() {
    let pki = self_signed_ca(&["localhost"], 10 * DAY, false);
    let (addr, _seen) = tls13_server(&pki).await;
    let tls_plan = TlsPlan {
        cert_min_days: Some(30),
        ..trusting(&pki)
    };
    let result = tls::check(addr, "localhost", &plan(tls_plan), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("cert_min_days = 30"), "{detail}");
    assert_expiry(&result, pki.leaf_not_after);
}

#[tokio::test]
async fn ca_true_certificate_not_in_ca_file_is_tls() {
    let served = self_signed_ca(&["localhost"], 90 * DAY, false);
    let other = localhost_pki();
    let (addr, _seen) = tls13_server(&served).await;
    let result = tls::check(addr, "localhost", &plan(trusting(&other)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(detail.starts_with("TLS handshake: "), "{detail}");
    assert!(
        detail.contains("CaUsedAsEndEntity"),
        "webpki's reason: {detail}"
    );
    assert_expiry(&result, served.leaf_not_after);
}

#[tokio::test]
async fn expired_pinned_ca_true_certificate_is_tls_naming_the_expiry() {
    let pki = self_signed_ca(&["localhost"], DAY, true);
    let (addr, _seen) = tls13_server(&pki).await;
    let result = tls::check(addr, "localhost", &plan(trusting(&pki)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("certificate expired"), "{detail}");
    assert_expiry(&result, pki.leaf_not_after);
}

#[tokio::test]
async fn pinned_ca_true_certificate_for_another_name_is_tls_naming_the_name() {
    let pki = self_signed_ca(&["localhost"], 90 * DAY, false);
    let (addr, _seen) = tls13_server(&pki).await;
    let tls_plan = TlsPlan {
        server_name: Some("wrong.example".into()),
        ..trusting(&pki)
    };
    let result = tls::check(addr, "localhost", &plan(tls_plan), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("not valid for name"), "{detail}");
    assert!(detail.contains("wrong.example"), "{detail}");
}

#[tokio::test]
async fn pinned_ca_true_certificate_for_client_auth_only_is_tls() {
    // Go's crypto/x509 checks the extended key usage of a pinned leaf too.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).unwrap();
    let pki = Pki {
        ca_file: TempPem::new(&cert.pem()),
        leaf: cert.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        leaf_not_after: UNIX_EPOCH,
    };
    let (addr, _seen) = tls13_server(&pki).await;
    let result = tls::check(addr, "localhost", &plan(trusting(&pki)), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("InvalidPurpose"), "{detail}");
}

/// `openssl req -x509` exactly as a user runs it, when openssl is there (under CI it
/// must be).
#[tokio::test]
async fn openssl_req_x509_certificate_pinned_in_ca_file_is_ok() {
    if let Err(err) = connhealth_testkit::ensure_command("openssl") {
        if connhealth_testkit::in_ci() {
            panic!("openssl is needed under CI: {err}");
        }
        eprintln!("skipped: openssl: {err}");
        return;
    }
    let dir = TempDir::new("check-tls-openssl");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-days", "30"])
        .arg("-keyout")
        .arg(&key_path)
        .arg("-out")
        .arg(&cert_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req -x509: {status}");
    let cert_pem = std::fs::read(&cert_path).unwrap();
    let key_pem = std::fs::read(&key_path).unwrap();
    let cert = rustls_pemfile::certs(&mut &cert_pem[..])
        .next()
        .expect("a certificate")
        .unwrap();
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .unwrap()
        .expect("a private key");
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
    let (addr, _seen) = tls_server(config).await;
    let tls_plan = TlsPlan {
        ca_file: Some(cert_path),
        ..TlsPlan::default()
    };
    let result = tls::check(addr, "localhost", &plan(tls_plan), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert!(result.cert_expiry.is_some(), "{result:?}");
}
