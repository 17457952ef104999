//! Debian's `prometheus-alertmanager`, started by the test on a free loopback port with a
//! config of its own, its storage in the test's folder and no cluster gossip; killed on
//! drop. Missing, it fails the test: `scripts/test` installs it.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use connhealth_testkit::{free_port, wait_until, TempDir};

/// Where Debian puts it.
pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// Every alert is routed to a receiver that sends nowhere: the test reads the alerts
/// back through the API.
const CONFIG: &str =
    "route:\n  receiver: nowhere\n  group_wait: 1s\nreceivers:\n  - name: nowhere\n";

pub struct Alertmanager {
    pub addr: SocketAddr,
    child: Child,
}

impl Alertmanager {
    pub fn start(dir: &TempDir) -> Alertmanager {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: this test runs the real Alertmanager; scripts/test installs it \
             (Debian package prometheus-alertmanager), or run: apt-get install prometheus-alertmanager"
        );
        let config = dir.write("alertmanager.yml", CONFIG);
        let storage = dir.join("alertmanager-data");
        std::fs::create_dir_all(&storage).unwrap();
        for _ in 0..5 {
            let port = free_port().unwrap();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
            let mut child = Command::new(BINARY)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", storage.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--cluster.listen-address=")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {BINARY}: {err}"));
            let ready = wait_until(Duration::from_secs(15), || {
                if let Ok(Some(_)) = child.try_wait() {
                    return true;
                }
                matches!(
                    connhealth_testkit::http(addr, "GET", "/-/ready"),
                    Ok((200, _))
                )
            });
            if ready.is_some() && child.try_wait().ok().flatten().is_none() {
                return Alertmanager { addr, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default();
        panic!("Alertmanager did not start; its log:\n{log}");
    }

    /// The alerts it lists now (`GET /api/v2/alerts`: active, silenced or inhibited,
    /// not resolved) whose `target` label is `target`.
    pub fn alerts(&self, target: &str) -> Vec<serde_json::Value> {
        let Ok((200, body)) = connhealth_testkit::http(self.addr, "GET", "/api/v2/alerts") else {
            return Vec::new();
        };
        let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        all.into_iter()
            .filter(|alert| alert["labels"]["target"] == target)
            .collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
