//! `connhealth watch --data-dir`: a notification the receiver has not taken yet survives
//! `kill -9` of the daemon, and is delivered once by the next one.
#![cfg(unix)] // the daemon runs on Unix only

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connhealth_testkit::{http, wait_until, TempDir};

/// `connhealth watch` as its own process; SIGKILLed on drop.
struct Watch {
    child: Child,
    listen: SocketAddr,
}

impl Watch {
    fn start(config: &std::path::Path, data_dir: &std::path::Path) -> Watch {
        let listen = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_connhealth"))
            .arg("watch")
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data-dir")
            .arg(data_dir)
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
    let bodies = Arc::new(Mutex::new(Vec::new()));
    std::thread::spawn({
        let bodies = Arc::clone(&bodies);
        move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
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
                if reader.read_exact(&mut body).is_ok() {
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
