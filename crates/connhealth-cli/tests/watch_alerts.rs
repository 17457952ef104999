//! `connhealth watch` and its alert receivers, as its own process: a notification the
//! receiver has not taken yet survives `kill -9` with `--data-dir`, and is delivered once
//! by the next daemon; an https webhook is verified against the system's roots
//! (`SSL_CERT_FILE` names them here).
#![cfg(unix)] // the daemon runs on Unix only

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connhealth_testkit::{http, wait_until, TempDir};
use tokio_rustls::rustls;

/// A plain or a TLS stream.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// `connhealth watch` as its own process; SIGKILLed on drop.
struct Watch {
    child: Child,
    listen: SocketAddr,
}

impl Watch {
    fn start(config: &std::path::Path, data_dir: &std::path::Path) -> Watch {
        Watch::start_with(config, Some(data_dir), &[])
    }

    fn start_with(
        config: &std::path::Path,
        data_dir: Option<&std::path::Path>,
        env: &[(&str, &std::path::Path)],
    ) -> Watch {
        let listen = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_connhealth"));
        command
            .arg("watch")
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(listen.to_string());
        if let Some(dir) = data_dir {
            command.arg("--data-dir").arg(dir);
        }
        command.envs(env.iter().copied());
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start connhealth watch");
        let watch = Watch { child, listen };
        let ready = wait_until(Duration::from_secs(10), || {
            matches!(http(listen, "GET", "/-/ready"), Ok((200, _)))
        });
        assert!(ready.is_some(), "the daemon never got ready");
        watch
    }

    fn get(&self, path: &str) -> String {
        match http(self.listen, "GET", path) {
            Ok((200, body)) => body,
            other => panic!("GET {path}: {other:?}"),
        }
    }

    /// `connhealth_alerts_failed_total{receiver="webhook"}`, if shown yet.
    fn failed_posts(&self) -> Option<f64> {
        let metrics = self.get("/metrics");
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix("connhealth_alerts_failed_total{receiver=\"webhook\"} ")
            })
            .and_then(|value| value.trim().parse().ok())
    }

    /// `kill -9`.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver on `listener` that answers 200 and keeps every body.
fn receiver(listener: TcpListener) -> Arc<Mutex<Vec<serde_json::Value>>> {
    receiver_over(listener, None)
}

/// The same, over TLS with `tls` when given.
fn receiver_over(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Arc<Mutex<Vec<serde_json::Value>>> {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    std::thread::spawn({
        let bodies = Arc::clone(&bodies);
        move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut stream: Box<dyn ReadWrite> = match &tls {
                    None => Box::new(stream),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(Arc::clone(config)) else {
                            continue;
                        };
                        Box::new(rustls::StreamOwned::new(conn, stream))
                    }
                };
                let mut reader = BufReader::new(&mut stream);
                // A handshake refused by the client ends here, with nothing taken.
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err()
                    || !request_line.starts_with("POST ")
                {
                    continue;
                }
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                let read = reader.read_exact(&mut body);
                drop(reader);
                if read.is_ok() {
                    bodies
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or_default());
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    bodies
}

#[test]
fn a_pending_notification_survives_kill_9() {
    let dir = TempDir::new("cli-watch-alerts-kill");
    // Nothing listens at the receiver's address yet, nor at the target's.
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap();
    drop(hook);
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap();
    drop(target);
    let config = dir.write(
        "watch.toml",
        format!(
            "[[alerts.webhook]]\nurl = \"http://{hook_addr}/\"\n\n\
             [[targets]]\nname = \"db\"\naddress = \"{target_addr}\"\n\
             interval = \"100ms\"\nfast_interval = \"100ms\"\ndown_interval = \"100ms\"\n\
             timeout = \"500ms\"\nrise = 1\nfall = 1\n"
        ),
    );
    let data = dir.join("data");

    let first = Watch::start(&config, &data);
    let failed = wait_until(Duration::from_secs(10), || {
        first.failed_posts().is_some_and(|n| n >= 1.0)
    });
    assert!(failed.is_some(), "the receiver was never tried");
    let status: serde_json::Value = serde_json::from_str(&first.get("/status?target=db")).unwrap();
    let down_at = status["targets"][0]["transitions"][0]["at"]["rfc3339"].clone();
    assert_eq!(status["targets"][0]["transitions"][0]["to"], "down");
    first.kill();

    let bodies = receiver(TcpListener::bind(hook_addr).unwrap());
    let second = Watch::start(&config, &data);
    let taken = wait_until(Duration::from_secs(10), || {
        !bodies.lock().unwrap().is_empty()
    });
    assert!(
        taken.is_some(),
        "the pending notification was lost with the process"
    );
    std::thread::sleep(Duration::from_millis(1500)); // and nothing more comes
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["target"], "db");
    assert_eq!(bodies[0]["to"], "down");
    assert_eq!(
        bodies[0]["at"]["rfc3339"], down_at,
        "the first daemon's transition"
    );
    drop(second);
}

/// A CA (PEM) and a server config for 127.0.0.1 with a certificate it signed.
fn pki() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "connhealth alerts test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), Arc::new(config))
}

#[test]
fn an_https_webhook_is_verified_with_the_system_roots() {
    let dir = TempDir::new("cli-watch-alerts-https");
    let (ca, tls) = pki();
    let ca_file = dir.write("ca.pem", ca);
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap();
    let bodies = receiver_over(hook, Some(tls));
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap();
    drop(target);
    let config = dir.write(
        "watch.toml",
        format!(
            "[[alerts.webhook]]\nurl = \"https://{hook_addr}/hook\"\n\n\
             [[targets]]\nname = \"db\"\naddress = \"{target_addr}\"\n\
             interval = \"100ms\"\nfast_interval = \"100ms\"\nrise = 1\nfall = 1\n"
        ),
    );
    // The system's roots, as rustls-native-certs reads them, are this CA alone.
    let watch = Watch::start_with(&config, None, &[("SSL_CERT_FILE", &ca_file)]);
    let taken = wait_until(Duration::from_secs(10), || {
        !bodies.lock().unwrap().is_empty()
    });
    assert!(
        taken.is_some(),
        "nothing arrived over TLS; failed POSTs: {:?}",
        watch.failed_posts()
    );
    assert_eq!(bodies.lock().unwrap()[0]["to"], "down");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        watch.failed_posts(),
        Some(0.0),
        "the answer was not read as taken"
    );
    drop(watch);

    // Without the CA among the roots, the certificate is refused and nothing is sent.
    let other = dir.write("other.pem", pki().0);
    let bodies_before = bodies.lock().unwrap().len();
    let watch = Watch::start_with(&config, None, &[("SSL_CERT_FILE", &other)]);
    let failed = wait_until(Duration::from_secs(10), || {
        watch.failed_posts().is_some_and(|n| n >= 1.0)
    });
    assert!(failed.is_some(), "an unknown CA was not refused");
    assert_eq!(bodies.lock().unwrap().len(), bodies_before);
}
