//! What the `tls` check reports besides success, as blackbox 0.23 reports it: the leaf's
//! fingerprint, subject, issuer and DNS names, and the last chain's expiry
//! (`probe_ssl_last_chain_info`, `probe_ssl_last_chain_expiry_timestamp_seconds`); and
//! the client certificate and version range it offers. Against a real rustls server
//! (tokio-rustls) on loopback, with certificates made by rcgen.
//!
//! Run with `cargo test -p connhealth-watch --test check_tls_facts`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connhealth_testkit::TempDir;
use connhealth_watch::checks::{tls, ChainInfo, CheckResult, Outcome};
use connhealth_watch::config::{ClientCert, TlsPlan, TlsVersion};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};

const TIMEOUT: Duration = Duration::from_secs(2);
const DAY: u64 = 86_400;
const GO_ZERO_TIME: i64 = -62_135_596_800;

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Params for `sans` (DNS names or IP addresses), `subject` as (type, value) in that
/// order, valid until `not_after` (Unix seconds).
fn params(sans: &[&str], subject: &[(DnType, &str)], not_after: u64) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|san| san.to_string()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, value) in subject {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(now_unix() - DAY);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(not_after);
    params
}

fn ca_params(subject: &str, not_after: u64) -> CertificateParams {
    let mut params = params(&[], &[(DnType::CommonName, subject)], not_after);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A leaf's params that name their issuer's key (authorityKeyIdentifier), as CAs do.
fn leaf_params(subject: &[(DnType, &str)], not_after: u64) -> CertificateParams {
    let mut params = params(&["localhost"], subject, not_after);
    params.use_authority_key_identifier_extension = true;
    params
}

/// Files in a folder of their own, removed on drop.
struct Files {
    dir: TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: TempDir::new("check-tls-facts"),
        }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        self.dir.write(name, contents)
    }
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivatePkcs8KeyDer::from(key.serialize_der()).into()
}

/// A server's identity: the chain it sends and its key.
struct Served {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Served {
    fn new(chain: &[&Certificate], key: &KeyPair) -> Served {
        Served {
            chain: chain.iter().map(|cert| cert.der().clone()).collect(),
            key: key_der(key),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    served: &Served,
    versions: &[&'static SupportedProtocolVersion],
    client_ca: Option<&Certificate>,
) -> ServerConfig {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der().clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(served.chain.clone(), served.key.clone_key())
        .unwrap()
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A TLS server on a free loopback port that reports each handshake (`Ok`, or the
/// server's error), then reads until the client closes and closes too.
async fn tls_server(
    config: ServerConfig,
) -> (SocketAddr, mpsc::UnboundedReceiver<Result<(), String>>) {
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
                match acceptor.accept(tcp).await {
                    Err(err) => {
                        let _ = report.send(Err(err.to_string()));
                    }
                    Ok(mut tls) => {
                        let _ = report.send(Ok(()));
                        let mut buf = [0u8; 256];
                        while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn check(addr: SocketAddr, plan: &TlsPlan) -> CheckResult {
    tls::check(addr, "localhost", plan, TIMEOUT).await
}

fn trusting(ca_file: PathBuf) -> TlsPlan {
    TlsPlan {
        ca_file: Some(ca_file),
        ..TlsPlan::default()
    }
}

fn chain(result: &CheckResult) -> &ChainInfo {
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    result
        .chain
        .as_deref()
        .expect("chain info after a handshake")
}

fn sha256_hex(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn pinned_self_signed_leaf_is_a_chain_of_one_with_gos_names() {
    let not_after = now_unix() + 40 * DAY;
    let key = KeyPair::generate().unwrap();
    let subject = [
        (DnType::CountryName, "US"),
        (DnType::OrganizationName, "Example, Inc."),
        (DnType::CommonName, "localhost"),
    ];
    let mut leaf = params(
        &["localhost", "alt.example", "127.0.0.1"],
        &subject,
        not_after,
    );
    leaf.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let leaf = leaf.self_signed(&key).unwrap();
    let files = Files::new();
    let ca_file = files.write("leaf.pem", &leaf.pem());
    let (addr, _seen) = tls_server(server_config(&Served::new(&[&leaf], &key), BOTH, None)).await;

    let result = check(addr, &trusting(ca_file)).await;
    let info = chain(&result);
    assert_eq!(info.fingerprint_sha256, sha256_hex(leaf.der()));
    assert_eq!(info.fingerprint_sha256.len(), 64);
    assert_eq!(info.subject, "CN=localhost,O=Example\\, Inc.,C=US");
    assert_eq!(info.issuer, info.subject, "self-signed");
    assert_eq!(
        info.subject_alternative, "localhost,alt.example",
        "DNS names only"
    );
    assert_eq!(info.last_chain_expiry, not_after as i64);
}

/// A root in a CA file and a leaf it signed, each valid until the given time; the
/// last chain's expiry of a check of it.
async fn last_chain_expiry_of(
    root_not_after: u64,
    leaf_not_after: u64,
) -> (ChainInfo, CheckResult) {
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params("Facts Root", root_not_after)
        .self_signed(&root_key)
        .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params(
        &[
            (DnType::CommonName, "localhost"),
            (DnType::OrganizationName, "Leaf Org"),
        ],
        leaf_not_after,
    )
    .signed_by(&leaf_key, &root, &root_key)
    .unwrap();
    let files = Files::new();
    let ca_file = files.write("ca.pem", &root.pem());
    let served = Served::new(&[&leaf], &leaf_key);
    let (addr, _seen) = tls_server(server_config(&served, BOTH, None)).await;
    let result = check(addr, &trusting(ca_file)).await;
    (chain(&result).clone(), result)
}

#[tokio::test]
async fn last_chain_expiry_is_the_earliest_of_leaf_and_root() {
    let now = now_unix();
    let (info, result) = last_chain_expiry_of(now + 30 * DAY, now + 90 * DAY).await;
    assert_eq!(
        info.last_chain_expiry,
        (now + 30 * DAY) as i64,
        "the root's"
    );
    assert_eq!(info.issuer, "CN=Facts Root");
    // CN first in the certificate, and still first: Go's order, not the reverse of it.
    assert_eq!(info.subject, "CN=localhost,O=Leaf Org");
    // The earliest expiry of what the server sent is the leaf's: the root was not sent.
    let sent = result
        .cert_expiry
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap();
    assert_eq!(sent.as_secs(), now + 90 * DAY);

    let (info, _) = last_chain_expiry_of(now + 90 * DAY, now + 30 * DAY).await;
    assert_eq!(
        info.last_chain_expiry,
        (now + 30 * DAY) as i64,
        "the leaf's"
    );
}

#[tokio::test]
async fn an_intermediate_the_server_sends_counts_in_the_chain() {
    let now = now_unix();
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params("Facts Root", now + 900 * DAY)
        .self_signed(&root_key)
        .unwrap();
    let mid_key = KeyPair::generate().unwrap();
    let mut mid = ca_params("Facts Intermediate", now + 20 * DAY);
    mid.use_authority_key_identifier_extension = true;
    let mid = mid.signed_by(&mid_key, &root, &root_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params(&[(DnType::CommonName, "localhost")], now + 60 * DAY)
        .signed_by(&leaf_key, &mid, &mid_key)
        .unwrap();
    let files = Files::new();
    let ca_file = files.write("ca.pem", &root.pem());
    let served = Served::new(&[&leaf, &mid], &leaf_key);
    let (addr, _seen) = tls_server(server_config(&served, BOTH, None)).await;

    let info = chain(&check(addr, &trusting(ca_file)).await).clone();
    assert_eq!(info.last_chain_expiry, (now + 20 * DAY) as i64);
    assert_eq!(info.issuer, "CN=Facts Intermediate");
    assert_eq!(info.fingerprint_sha256, sha256_hex(leaf.der()));
}

#[tokio::test]
async fn of_two_chains_the_one_that_lasts_longest_counts_and_another_key_is_no_parent() {
    // Two roots of one name and key (a renewed root), and one of that name with another
    // key that lasts longer still: Go's chains are leaf→first and leaf→second, and it
    // reports the later of their expiries; the third signed nothing here.
    let now = now_unix();
    let root_key = KeyPair::generate().unwrap();
    let first = ca_params("Facts Root", now + 10 * DAY)
        .self_signed(&root_key)
        .unwrap();
    let second = ca_params("Facts Root", now + 50 * DAY)
        .self_signed(&root_key)
        .unwrap();
    let other_key = KeyPair::generate().unwrap();
    let other = ca_params("Facts Root", now + 80 * DAY)
        .self_signed(&other_key)
        .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params(&[(DnType::CommonName, "localhost")], now + 100 * DAY)
        .signed_by(&leaf_key, &first, &root_key)
        .unwrap();
    let files = Files::new();
    let pem = format!("{}{}{}", first.pem(), other.pem(), second.pem());
    let ca_file = files.write("ca.pem", &pem);
    let served = Served::new(&[&leaf], &leaf_key);
    let (addr, _seen) = tls_server(server_config(&served, BOTH, None)).await;

    let info = chain(&check(addr, &trusting(ca_file)).await).clone();
    assert_eq!(info.last_chain_expiry, (now + 50 * DAY) as i64);
}

#[tokio::test]
async fn insecure_reports_gos_zero_time_for_the_last_chain_and_the_leafs_facts() {
    let now = now_unix();
    let key = KeyPair::generate().unwrap();
    let leaf = params(
        &["localhost"],
        &[(DnType::CommonName, "unverified")],
        now + 5 * DAY,
    )
    .self_signed(&key)
    .unwrap();
    let (addr, _seen) = tls_server(server_config(&Served::new(&[&leaf], &key), BOTH, None)).await;
    let plan = TlsPlan {
        insecure: true,
        ..TlsPlan::default()
    };
    let info = chain(&check(addr, &plan).await).clone();
    assert_eq!(info.last_chain_expiry, GO_ZERO_TIME);
    assert_eq!(info.subject, "CN=unverified");
    assert_eq!(info.fingerprint_sha256, sha256_hex(leaf.der()));
    assert_eq!(info.subject_alternative, "localhost");
}

#[tokio::test]
async fn a_chain_that_does_not_verify_reports_no_chain_info() {
    let key = KeyPair::generate().unwrap();
    let leaf = params(
        &["localhost"],
        &[(DnType::CommonName, "x")],
        now_unix() + 5 * DAY,
    )
    .self_signed(&key)
    .unwrap();
    let (addr, _seen) = tls_server(server_config(&Served::new(&[&leaf], &key), BOTH, None)).await;
    let result = check(addr, &TlsPlan::default()).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    assert_eq!(result.chain, None);
    assert!(result.cert_expiry.is_some(), "{result:?}");
}

/// A server CA and a leaf for localhost, a client CA and a client certificate it signed,
/// in files; and the server's identity.
struct MutualTls {
    _files: Files,
    ca_file: PathBuf,
    client: ClientCert,
    client_ca: Certificate,
    served: Served,
}

/// [`MutualTls`] with `client_key` as the client's key, written in its file as `key_pem`.
fn mutual_tls(client_key: KeyPair, key_pem: &str) -> MutualTls {
    let now = now_unix();
    let files = Files::new();
    let server_key = KeyPair::generate().unwrap();
    let server_ca = ca_params("Server CA", now + 90 * DAY)
        .self_signed(&server_key)
        .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params(&[(DnType::CommonName, "localhost")], now + 90 * DAY)
        .signed_by(&leaf_key, &server_ca, &server_key)
        .unwrap();
    let client_ca_key = KeyPair::generate().unwrap();
    let client_ca = ca_params("Client CA", now + 90 * DAY)
        .self_signed(&client_ca_key)
        .unwrap();
    let mut client_params = params(&[], &[(DnType::CommonName, "checker")], now + 90 * DAY);
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &client_ca, &client_ca_key)
        .unwrap();
    MutualTls {
        ca_file: files.write("server-ca.pem", &server_ca.pem()),
        client: ClientCert {
            cert_file: files.write("client.pem", &client_cert.pem()),
            key_file: files.write("client.key", key_pem),
        },
        _files: files,
        client_ca,
        served: Served::new(&[&leaf], &leaf_key),
    }
}

/// [`mutual_tls`] with an ECDSA client key in PKCS#8.
fn pkcs8_mutual_tls() -> MutualTls {
    let key = KeyPair::generate().unwrap();
    let pem = key.serialize_pem();
    mutual_tls(key, &pem)
}

#[tokio::test]
async fn a_server_that_requires_a_client_certificate_passes_with_client_cert() {
    let mtls = pkcs8_mutual_tls();
    for versions in [TLS12, TLS13] {
        let config = server_config(&mtls.served, versions, Some(&mtls.client_ca));
        let (addr, mut seen) = tls_server(config).await;
        let plan = TlsPlan {
            client_cert: Some(mtls.client.clone()),
            ..trusting(mtls.ca_file.clone())
        };
        let result = check(addr, &plan).await;
        assert_eq!(result.outcome, Outcome::Ok, "{versions:?}: {result:?}");
        let server = seen.recv().await.expect("the server reports");
        assert_eq!(
            server,
            Ok(()),
            "{versions:?}: the server accepted the certificate"
        );
    }
}

#[tokio::test]
async fn a_server_that_requires_a_client_certificate_refuses_a_check_without_one() {
    let mtls = pkcs8_mutual_tls();
    // TLS 1.2: the server refuses before its Finished, so the handshake fails.
    let config = server_config(&mtls.served, TLS12, Some(&mtls.client_ca));
    let (addr, mut seen) = tls_server(config).await;
    let result = check(addr, &trusting(mtls.ca_file.clone())).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    let server = seen.recv().await.expect("the server reports");
    assert!(server.is_err(), "{server:?}");

    // TLS 1.3: the client's handshake is over before the server judges its (empty)
    // Certificate, so the server's refusal is what shows it.
    let config = server_config(&mtls.served, TLS13, Some(&mtls.client_ca));
    let (addr, mut seen) = tls_server(config).await;
    let _ = check(addr, &trusting(mtls.ca_file.clone())).await;
    let server = seen.recv().await.expect("the server reports");
    let why = server.expect_err("the server refuses");
    assert!(why.contains("certificate"), "{why}");
}

/// `openssl` with `args`, `input` on its stdin; its stdout. `None` when there is no
/// openssl (outside CI).
fn openssl(args: &[&str], input: &str) -> Option<String> {
    if let Err(err) = connhealth_testkit::ensure_command("openssl") {
        if connhealth_testkit::in_ci() {
            panic!("openssl is needed under CI: {err}");
        }
        eprintln!("skipped: openssl: {err}");
        return None;
    }
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", out.status);
    Some(String::from_utf8(out.stdout).unwrap())
}

#[tokio::test]
async fn pkcs1_and_sec1_client_keys_load_too() {
    // SEC1 (`EC PRIVATE KEY`) of an ECDSA key.
    let ec_key = KeyPair::generate().unwrap();
    let Some(sec1) = openssl(&["ec"], &ec_key.serialize_pem()) else {
        return;
    };
    // PKCS#1 (`RSA PRIVATE KEY`) of an RSA key.
    let Some(rsa_pkcs8) = openssl(&["genpkey", "-algorithm", "RSA"], "") else {
        return;
    };
    let rsa_key = KeyPair::from_pem(&rsa_pkcs8).unwrap();
    let Some(pkcs1) = openssl(&["rsa", "-traditional"], &rsa_pkcs8) else {
        return;
    };
    for (key, pem, label) in [
        (ec_key, sec1, "EC PRIVATE KEY"),
        (rsa_key, pkcs1, "RSA PRIVATE KEY"),
    ] {
        assert!(
            pem.starts_with(&format!("-----BEGIN {label}-----")),
            "{pem}"
        );
        let mtls = mutual_tls(key, &pem);
        let config = server_config(&mtls.served, TLS13, Some(&mtls.client_ca));
        let (addr, mut seen) = tls_server(config).await;
        let plan = TlsPlan {
            client_cert: Some(mtls.client.clone()),
            ..trusting(mtls.ca_file.clone())
        };
        let result = check(addr, &plan).await;
        assert_eq!(result.outcome, Outcome::Ok, "{label}: {result:?}");
        assert_eq!(seen.recv().await, Some(Ok(())), "{label}");
    }
}

#[tokio::test]
async fn unusable_client_certificate_files_are_errors_naming_them() {
    let mtls = pkcs8_mutual_tls();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let files = Files::new();
    let no_key = files.write("no-key.pem", "nothing here\n");
    let other_key = files.write("other.key", &KeyPair::generate().unwrap().serialize_pem());
    let cases = [
        (
            ClientCert {
                cert_file: "/nonexistent/connhealth-client.pem".into(),
                key_file: mtls.client.key_file.clone(),
            },
            "cannot read client certificate file /nonexistent/connhealth-client.pem",
        ),
        (
            ClientCert {
                cert_file: mtls.client.cert_file.clone(),
                key_file: "/nonexistent/connhealth-client.key".into(),
            },
            "cannot read client key file /nonexistent/connhealth-client.key",
        ),
        (
            ClientCert {
                cert_file: no_key.clone(),
                key_file: mtls.client.key_file.clone(),
            },
            "no CERTIFICATE",
        ),
        (
            ClientCert {
                cert_file: mtls.client.cert_file.clone(),
                key_file: no_key.clone(),
            },
            "no private key",
        ),
        (
            ClientCert {
                cert_file: mtls.client.cert_file.clone(),
                key_file: other_key.clone(),
            },
            "other.key",
        ),
    ];
    for (client_cert, expected) in cases {
        let plan = TlsPlan {
            client_cert: Some(client_cert.clone()),
            ..trusting(mtls.ca_file.clone())
        };
        let result = check(addr, &plan).await;
        assert_eq!(
            result.outcome,
            Outcome::Error,
            "{client_cert:?}: {result:?}"
        );
        let detail = result.detail.as_deref().unwrap_or_default();
        assert!(detail.contains(expected), "{client_cert:?}: {detail}");
    }
}

async fn versioned(server: &[&'static SupportedProtocolVersion], plan: TlsPlan) -> CheckResult {
    let now = now_unix();
    let key = KeyPair::generate().unwrap();
    let mut leaf = params(
        &["localhost"],
        &[(DnType::CommonName, "localhost")],
        now + 9 * DAY,
    );
    leaf.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let leaf = leaf.self_signed(&key).unwrap();
    let files = Files::new();
    let ca_file = files.write("leaf.pem", &leaf.pem());
    let config = server_config(&Served::new(&[&leaf], &key), server, None);
    let (addr, _seen) = tls_server(config).await;
    check(
        addr,
        &TlsPlan {
            ca_file: Some(ca_file),
            ..plan
        },
    )
    .await
}

#[tokio::test]
async fn min_version_tls13_fails_against_a_tls12_only_server() {
    let plan = TlsPlan {
        min_version: Some(TlsVersion::Tls13),
        ..TlsPlan::default()
    };
    let result = versioned(TLS12, plan.clone()).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    assert_eq!(result.tls_version, None);
    assert_eq!(result.chain, None);

    let result = versioned(BOTH, plan).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.tls_version, Some("TLS 1.3"));
}

#[tokio::test]
async fn max_version_tls12_is_what_a_tls13_server_then_speaks() {
    let plan = TlsPlan {
        max_version: Some(TlsVersion::Tls12),
        ..TlsPlan::default()
    };
    let result = versioned(BOTH, plan.clone()).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.tls_version, Some("TLS 1.2"));

    let result = versioned(TLS13, plan).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");

    let result = versioned(BOTH, TlsPlan::default()).await;
    assert_eq!(result.tls_version, Some("TLS 1.3"), "{result:?}");
}

#[tokio::test]
async fn an_empty_version_range_is_an_error_saying_so() {
    let plan = TlsPlan {
        min_version: Some(TlsVersion::Tls13),
        max_version: Some(TlsVersion::Tls12),
        ..TlsPlan::default()
    };
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let result = check(addr, &plan).await;
    assert_eq!(result.outcome, Outcome::Error, "{result:?}");
    let detail = result.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("no TLS version"), "{detail}");
    assert!(detail.contains("min_version TLS 1.3"), "{detail}");
}
