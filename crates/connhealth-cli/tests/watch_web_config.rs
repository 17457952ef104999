//! `connhealth watch --web.config.file`: what the command line does with it (the daemon's
//! side is crates/connhealth-watch/tests/web_config.rs).
#![cfg(unix)]

use std::process::Command;

use connhealth_testkit::TempDir;

fn watch(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_connhealth"));
    command.arg("watch").args(args);
    command
}

#[test]
fn a_bad_web_config_exits_2_with_its_line_and_column() {
    let dir = TempDir::new("cli-watch-web-config-bad");
    let config = dir.write("watch.toml", "[defaults]\ninterval = \"2s\"\n");
    let web = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_fil: server.key\n",
    );
    let (config, web) = (config.to_str().unwrap(), web.to_str().unwrap());
    for extra in [&["--check-config"][..], &["--listen", "127.0.0.1:0"][..]] {
        let mut args = vec!["--config", config, "--web.config.file", web];
        args.extend_from_slice(extra);
        let output = watch(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("{web}:3:3: ")), "{stderr}");
        assert!(stderr.contains("key_fil"), "{stderr}");
    }
}

#[test]
fn help_explains_the_web_config_with_an_example() {
    let output = watch(&["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--web.config.file <FILE>"), "{help}");
    assert!(help.contains("tls_server_config:"), "{help}");
    assert!(help.contains("basic_auth_users:"), "{help}");
}

/// The daemon's stderr up to its "started" line, listening at `listen`.
fn start_lines(listen: &str, extra: &[&str]) -> String {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("cli-watch-web-config-warn");
    let config = dir.write("watch.toml", "[defaults]\ninterval = \"2s\"\n");
    let mut args = vec!["--config", config.to_str().unwrap(), "--listen", listen];
    args.extend_from_slice(extra);
    let mut child = watch(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("connhealth watch started") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn listening_beyond_loopback_without_a_web_config_is_a_warning() {
    let open = start_lines("0.0.0.0:0", &[]);
    assert!(
        open.contains("WARN") && open.contains("--web.config.file"),
        "{open}"
    );
    let loopback = start_lines("127.0.0.1:0", &[]);
    assert!(
        loopback.contains("started") && !loopback.contains("WARN"),
        "{loopback}"
    );
}

/// A CA, and a server certificate for localhost it signed: (CA, cert PEM, key PEM).
fn server_pki(name: &str) -> (rcgen::Certificate, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca, leaf.pem(), key.serialize_pem())
}

/// `GET /-/healthy` over TLS trusting only `ca`: served?
fn healthy_with(addr: std::net::SocketAddr, ca: &rcgen::Certificate) -> bool {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
            return false;
        };
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let Ok(mut tls) = connector.connect(name, tcp).await else {
            return false;
        };
        let request = "GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if tls.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        answer.starts_with(b"HTTP/1.1 200 ")
    })
}

#[test]
fn sighup_serves_a_renewed_certificate() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("cli-watch-web-config-sighup");
    let config = dir.write("watch.toml", "[defaults]\ninterval = \"2s\"\n");
    let (old_ca, cert, key) = server_pki("old CA");
    dir.write("server.crt", cert);
    dir.write("server.key", key);
    let web = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let listen_arg = listen.to_string();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &listen_arg,
        "--web.config.file",
        web.to_str().unwrap(),
    ];
    let mut child = watch(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut wait_for = |words: &str| {
        for line in lines.by_ref() {
            if line.unwrap().contains(words) {
                return true;
            }
        }
        false
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(wait_for("connhealth watch started"));
        assert!(healthy_with(listen, &old_ca));
        let (new_ca, cert, key) = server_pki("new CA");
        std::fs::write(dir.join("server.key"), key).unwrap();
        std::fs::write(dir.join("server.crt"), cert).unwrap();
        // SAFETY: kill has no memory effects; the child is ours and not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
        assert!(wait_for("config reloaded"));
        assert!(
            healthy_with(listen, &new_ca),
            "the new certificate is served"
        );
        assert!(!healthy_with(listen, &old_ca), "the old one is not");
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
