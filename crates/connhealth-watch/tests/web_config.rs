//! `--web.config.file` (exporter-toolkit's web config) against the real daemon, started
//! in this process, with a real TLS client (tokio-rustls) and certificates made by rcgen:
//! TLS, client certificates, basic auth on every path, and the file read again at reload.
//!
//! Run with `cargo test -p connhealth-watch --test web_config`.

mod support;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use connhealth_testkit::TempDir;
use connhealth_watch::config::{self, Options};
use connhealth_watch::daemon::Daemon;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// A CA, and PEM of what it signed.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for `localhost` and 127.0.0.1, for a server (or a client): (cert PEM, key PEM).
    fn leaf(
        &self,
        client: bool,
    ) -> (
        String,
        String,
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
    ) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let der = cert.der().clone();
        let key_der = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
        (cert.pem(), key.serialize_pem(), der, key_der)
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        roots
    }
}

/// A daemon watching no target, with the web config `web` (written as web.yml beside
/// the server certificate of `ca`, as server.crt and server.key).
struct Served {
    dir: TempDir,
    daemon: Option<Daemon>,
}

impl Served {
    fn start(test: &str, ca: &Ca, web: &str) -> Served {
        Served::start_with_file(test, ca, web, "unused.txt", "")
    }

    /// [`Served::start`], with `name` holding `contents` in the folder first.
    fn start_with_file(test: &str, ca: &Ca, web: &str, name: &str, contents: &str) -> Served {
        let dir = TempDir::new(test);
        dir.write(name, contents);
        let (cert, key, _, _) = ca.leaf(false);
        dir.write("server.crt", cert);
        dir.write("server.key", key);
        let web_path = dir.write("web.yml", web);
        let config = dir.write("watch.toml", "[defaults]\ninterval = \"1s\"\n");
        let plan = config::load(&config).expect("the config loads");
        let options = Options {
            web_config: Some(web_path),
            ..support::options(config)
        };
        let daemon = Daemon::start(options, plan).expect("the daemon starts");
        Served {
            dir,
            daemon: Some(daemon),
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }

    fn addr(&self) -> SocketAddr {
        self.daemon().listen()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.stop();
        }
    }
}

/// A TLS client trusting `ca`, presenting `cert` if given.
fn client(
    ca: &Ca,
    cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(ca.roots());
    let config = match cert {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// `METHOD path` over TLS with the raw header lines `headers`: the status and the body
/// (chunks and all), or why there is none.
fn https(
    addr: SocketAddr,
    tls: &Arc<ClientConfig>,
    method: &str,
    path: &str,
    headers: &[&[u8]],
) -> io::Result<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tcp = TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
        let name = ServerName::try_from("localhost").unwrap();
        let mut stream =
            tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await??;
        stream.write_all(&request(method, path, headers)).await?;
        stream.flush().await?;
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await?;
        // A peer that closes without close_notify: what was read still counts.
        if let Err(err) = read {
            if answer.is_empty() {
                return Err(err);
            }
        }
        parse(&answer)
    })
}

fn request(method: &str, path: &str, headers: &[&[u8]]) -> Vec<u8> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n"
    )
    .into_bytes();
    for header in headers {
        request.extend_from_slice(header);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request
}

fn parse(answer: &[u8]) -> io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    Ok((status, text.into_owned()))
}

fn basic(user: &str, password: &str) -> Vec<u8> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}").into_bytes()
}

/// A web config with TLS (server.crt, server.key) and `prometheus`'s bcrypt hash of
/// `secret` at `cost`; `more` is appended.
fn web_with_users(cost: u32, more: &str) -> String {
    let hash = bcrypt::hash("secret", cost).unwrap();
    format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {hash}\n{more}"
    )
}

#[test]
fn basic_auth_guards_every_path_over_tls() {
    let ca = Ca::new("web-config test CA");
    let served = Served::start(
        "web-basic-auth",
        &ca,
        &web_with_users(
            4,
            "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
        ),
    );
    let tls = client(&ca, None);
    let addr = served.addr();
    let right = basic("prometheus", "secret");
    let wrong = basic("prometheus", "guess");

    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/status"),
        ("GET", "/probe?target=127.0.0.1:1&module=tcp_connect"),
        ("POST", "/-/reload"),
        ("GET", "/-/healthy"),
        ("GET", "/-/ready"),
        ("GET", "/nowhere"),
        // The status page and what it reads.
        ("GET", "/"),
        ("GET", "/api/targets"),
        ("GET", "/events"),
        ("GET", "/badge/web.svg"),
    ] {
        for headers in [&[][..], &[wrong.as_slice()][..]] {
            let (status, answer) = https(addr, &tls, method, path, headers).unwrap();
            assert_eq!(status, 401, "{method} {path} with {headers:?}: {answer}");
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("www-authenticate: basic"),
                "{answer}"
            );
            assert!(!answer.contains("connhealth_"), "{answer}");
            assert!(answer
                .to_ascii_lowercase()
                .contains("x-content-type-options: nosniff"));
        }
    }
    let (status, metrics) = https(addr, &tls, "GET", "/metrics", &[&right[..]]).unwrap();
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("connhealth_"), "{metrics}");
    assert!(metrics
        .to_ascii_lowercase()
        .contains("x-content-type-options: nosniff"));
    for path in ["/-/healthy", "/-/ready", "/status", "/", "/api/targets"] {
        assert_eq!(
            https(addr, &tls, "GET", path, &[&right[..]]).unwrap().0,
            200,
            "{path}"
        );
    }
    let (status, answer) = https(addr, &tls, "POST", "/-/reload", &[&right[..]]).unwrap();
    assert_eq!(status, 200, "{answer}");
    // The scheme is read in any case, as Go reads it.
    let lower = String::from_utf8(right.clone())
        .unwrap()
        .replace("Basic", "basic");
    assert_eq!(
        https(addr, &tls, "GET", "/-/healthy", &[lower.as_bytes()])
            .unwrap()
            .0,
        200
    );
}

#[test]
fn a_malformed_authorization_header_is_a_401() {
    let ca = Ca::new("web-config test CA");
    let served = Served::start("web-malformed", &ca, &web_with_users(4, ""));
    let tls = client(&ca, None);
    let no_colon = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode("prometheus")
    );
    let non_utf8_user = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(b"\xff\xfe:secret")
    );
    let malformed: Vec<Vec<u8>> = vec![
        b"Authorization: Basic !!!".to_vec(),
        b"Authorization: Basic ".to_vec(),
        b"Authorization: Basic".to_vec(),
        b"Authorization: Bearer abc".to_vec(),
        b"Authorization: Basic cHJvbWV0aGV1czpzZWNyZXQ".to_vec(), // no padding
        no_colon.into_bytes(),
        non_utf8_user.into_bytes(),
        b"Authorization: Basic \xff\xfe\xfd".to_vec(),
        b"Authorization: \xc3\x28".to_vec(),
    ];
    for header in &malformed {
        let (status, answer) =
            https(served.addr(), &tls, "GET", "/metrics", &[&header[..]]).unwrap();
        assert_eq!(
            status,
            401,
            "{:?}: {answer}",
            String::from_utf8_lossy(header)
        );
    }
    // Still serving after all of them.
    let right = basic("prometheus", "secret");
    assert_eq!(
        https(served.addr(), &tls, "GET", "/metrics", &[&right[..]])
            .unwrap()
            .0,
        200
    );
}

#[test]
fn an_unknown_user_costs_as_much_as_a_wrong_password_and_a_login_is_cached() {
    const COST: u32 = 8;
    let ca = Ca::new("web-config test CA");
    let served = Served::start("web-timing", &ca, &web_with_users(COST, ""));
    let tls = client(&ca, None);
    let addr = served.addr();
    let hash = bcrypt::hash("other", COST).unwrap();
    let start = Instant::now();
    let _ = bcrypt::verify("secret", &hash);
    let bcrypt_cost = start.elapsed();

    let time = |header: &[u8]| {
        let start = Instant::now();
        let (status, _) = https(addr, &tls, "GET", "/-/healthy", &[header]).unwrap();
        (status, start.elapsed())
    };
    let (status, wrong) = time(&basic("prometheus", "guess"));
    assert_eq!(status, 401);
    let (status, unknown) = time(&basic("nobody", "guess"));
    assert_eq!(status, 401);
    let floor = bcrypt_cost / 2;
    assert!(
        wrong >= floor,
        "a wrong password took {wrong:?}, bcrypt {bcrypt_cost:?}"
    );
    assert!(
        unknown >= floor,
        "an unknown user took {unknown:?}, bcrypt {bcrypt_cost:?}"
    );
    assert!(
        unknown <= wrong * 3 + Duration::from_millis(200)
            && wrong <= unknown * 3 + Duration::from_millis(200),
        "an unknown user took {unknown:?}, a wrong password {wrong:?}"
    );

    let right = basic("prometheus", "secret");
    let (status, first) = time(&right);
    assert_eq!(status, 200);
    assert!(
        first >= floor,
        "the first login took {first:?}, bcrypt {bcrypt_cost:?}"
    );
    let (status, again) = time(&right);
    assert_eq!(status, 200);
    assert!(
        again < first,
        "a second login took {again:?}, the first {first:?}: not cached"
    );
}

#[test]
fn a_required_client_certificate_is_required() {
    let ca = Ca::new("web-config test CA");
    let clients = Ca::new("web-config client CA");
    let web = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n";
    let served = Served::start_with_file(
        "web-client-cert",
        &ca,
        web,
        "clients.crt",
        &clients.cert.pem(),
    );
    let addr = served.addr();

    let none = https(addr, &client(&ca, None), "GET", "/metrics", &[]);
    assert!(
        !matches!(none, Ok((200, _))),
        "no client certificate: {none:?}"
    );
    if let Ok((_, answer)) = &none {
        assert!(!answer.contains("connhealth_"), "{answer}");
    }
    // A certificate of another CA is refused too.
    let (_, _, stranger, stranger_key) = ca.leaf(true);
    let other = https(
        addr,
        &client(&ca, Some((stranger, stranger_key))),
        "GET",
        "/metrics",
        &[],
    );
    assert!(
        !matches!(other, Ok((200, _))),
        "a stranger's certificate: {other:?}"
    );

    let (_, _, cert, key) = clients.leaf(true);
    let (status, metrics) = https(
        addr,
        &client(&ca, Some((cert, key))),
        "GET",
        "/metrics",
        &[],
    )
    .unwrap();
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("connhealth_"));
}

#[test]
fn plain_http_to_the_tls_port_gets_no_metrics() {
    let ca = Ca::new("web-config test CA");
    let served = Served::start(
        "web-plain",
        &ca,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        let mut tcp = TcpStream::connect(served.addr()).await.unwrap();
        tcp.write_all(&request("GET", "/metrics", &[]))
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
        answer
    });
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.contains(" 200 "), "{text}");
    assert!(!text.contains("connhealth_"), "{text}");
    // And TLS on the same port serves (no basic auth in this file).
    let (status, _) = https(served.addr(), &client(&ca, None), "GET", "/metrics", &[]).unwrap();
    assert_eq!(status, 200);
}

/// Trusting only `ca`, does the daemon's certificate verify?
fn serves_cert_of(addr: SocketAddr, ca: &Ca) -> bool {
    let right = basic("prometheus", "secret");
    matches!(
        https(addr, &client(ca, None), "GET", "/-/healthy", &[&right[..]]),
        Ok((200, _))
    )
}

fn replace_server_cert(dir: &Path, ca: &Ca) {
    let (cert, key, _, _) = ca.leaf(false);
    // As certbot or cert-manager renew: the key first, then the certificate.
    std::fs::write(dir.join("server.key"), key).unwrap();
    std::fs::write(dir.join("server.crt"), cert).unwrap();
}

#[test]
fn a_renewed_certificate_is_served_after_a_reload_and_a_bad_file_keeps_the_old() {
    let old = Ca::new("web-config old CA");
    let served = Served::start("web-renew", &old, &web_with_users(4, ""));
    let addr = served.addr();
    assert!(serves_cert_of(addr, &old));

    // As SIGHUP does (the daemon's signal handler calls the same reload).
    let new = Ca::new("web-config new CA");
    replace_server_cert(served.dir.path(), &new);
    assert!(serves_cert_of(addr, &old), "the file alone changes nothing");
    served.daemon().reload().expect("the reload succeeds");
    assert!(serves_cert_of(addr, &new));
    assert!(!serves_cert_of(addr, &old));

    // By POST /-/reload.
    let newer = Ca::new("web-config newer CA");
    replace_server_cert(served.dir.path(), &newer);
    let right = basic("prometheus", "secret");
    let (status, answer) = https(
        addr,
        &client(&new, None),
        "POST",
        "/-/reload",
        &[&right[..]],
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(serves_cert_of(addr, &newer));

    // A broken web config at reload: refused with its place, the old one stays.
    let web = served.dir.join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_fil: server.key\n",
    )
    .unwrap();
    let errors = served
        .daemon()
        .reload()
        .expect_err("a broken web config is refused");
    let text = errors.to_string();
    assert!(text.contains(&format!("{}:3:3:", web.display())), "{text}");
    assert!(serves_cert_of(addr, &newer));
    // Basic auth still in force.
    let (status, _) = https(addr, &client(&newer, None), "GET", "/metrics", &[]).unwrap();
    assert_eq!(status, 401);
}

#[test]
fn a_bad_web_config_is_an_error_at_its_line_and_column() {
    let dir = TempDir::new("web-bad");
    let check = |text: &str, expected: &str, words: &str| {
        let path = dir.write("web.yml", text);
        let errors = config::load_web(&path).expect_err(text).to_string();
        assert!(
            errors.starts_with(&format!("{}:{expected}: ", path.display())),
            "{text:?}: {errors}"
        );
        assert!(errors.contains(words), "{text:?}: {errors}");
        let prefix = format!("{}:", path.display());
        assert!(
            errors.lines().all(|line| line.starts_with(&prefix)),
            "{errors}"
        );
    };
    check("tls_server_config:\n  cert_fil: a.crt\n", "2:3", "cert_fil");
    check("basic_auth_users:\n  alice: hunter2\n", "2:10", "bcrypt");
    check(
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
        "2:14",
        "missing.crt",
    );
    let ca = Ca::new("web-config test CA");
    let (cert, key, _, _) = ca.leaf(false);
    dir.write("server.crt", cert);
    dir.write("server.key", key);
    check(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n",
        "4:16",
        "TLS 1.2",
    );
    check(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: server.crt\n",
        "4:19",
        "client_auth_type",
    );
    dir.write("a.crt", "not a certificate\n");
    dir.write("a.key", "not a key\n");
    check(
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: Sometimes\n",
        "4:21",
        "client_auth_type",
    );
    check(
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        "4:18",
        "cipher_suites",
    );
    check(
        "http_server_config:\n  headers:\n    X-Powered-By: me\n",
        "3:5",
        "X-Powered-By",
    );
    check(
        "rate_limit:\n  interval: 1s\n  burst: 5\n",
        "2:3",
        "rate_limit",
    );
    check("basic_auth_users: [alice]\n", "1:19", "");
    check(
        "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n",
        "2:21",
        "plain HTTP",
    );
    // Good files load: empty, auth only, TLS with versions.
    for good in [
        "",
        "# nothing\n",
        "tls_server_config: {}\n",
        "http_server_config:\n  http2: false\n",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n  prefer_server_cipher_suites: true\n  cipher_suites: []\n",
    ] {
        let path = dir.write("web.yml", good);
        if let Err(errors) = config::load_web(&path) {
            panic!("{good:?}: {errors}");
        }
    }
}

#[test]
fn the_other_client_auth_types_ask_for_a_certificate_as_go_does() {
    let ca = Ca::new("web-config test CA");
    let clients = Ca::new("web-config client CA");
    let served = |kind: &str| {
        let web = format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {kind}\n  client_ca_file: clients.crt\n");
        Served::start_with_file(
            "web-client-auth-types",
            &ca,
            &web,
            "clients.crt",
            &clients.cert.pem(),
        )
    };
    let get = |served: &Served, cert: Option<&Ca>| {
        let cert = cert.map(|signer| {
            let (_, _, cert, key) = signer.leaf(true);
            (cert, key)
        });
        matches!(
            https(served.addr(), &client(&ca, cert), "GET", "/-/healthy", &[]),
            Ok((200, _))
        )
    };
    // (client_auth_type, none, one of the client CA, a stranger's): served?
    for (kind, none, ours, stranger) in [
        ("VerifyClientCertIfGiven", true, true, false),
        ("RequireAnyClientCert", false, true, true),
        ("RequestClientCert", true, true, true),
    ] {
        let served = served(kind);
        assert_eq!(get(&served, None), none, "{kind}, no certificate");
        assert_eq!(
            get(&served, Some(&clients)),
            ours,
            "{kind}, the client CA's"
        );
        assert_eq!(get(&served, Some(&ca)), stranger, "{kind}, a stranger's");
    }
}
