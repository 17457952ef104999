//! A real Prometheus (Debian's `prometheus` package) scrapes the daemon's `/metrics`, and,
//! with blackbox_exporter's relabelling, its `/probe`. The series are read back from
//! Prometheus' HTTP API.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connhealth_testkit::{ensure_command, free_port, in_ci};
use connhealth_watch::config::CheckPlan;
use connhealth_watch::state::Health;
use support::{get, plan, start, target, temp_dir, wait_health};

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    /// Its config and data, removed once it is stopped.
    _dir: connhealth_testkit::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scrape config a blackbox_exporter user already has, pointed at the daemon: the
/// `/probe` job is blackbox's documented relabelling, unchanged but for the address.
fn scrape_config(daemon: SocketAddr, probed: SocketAddr) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: connhealth
    static_configs:
      - targets: ["{daemon}"]
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [tcp_connect]
    static_configs:
      - targets: ["{probed}"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: "{daemon}"
"#
    )
}

fn prometheus(config: &str) -> Option<Prometheus> {
    if let Err(err) = ensure_command("prometheus") {
        if in_ci() {
            panic!("prometheus is needed under CI: {err}");
        }
        eprintln!("skipping: no prometheus: {err}");
        return None;
    }
    let dir = temp_dir("prometheus");
    dir.write("prometheus.yml", config);
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Some(Prometheus {
        child,
        addr,
        _dir: dir,
    })
}

/// The value of the one series `query` returns, once Prometheus has one.
fn query(prometheus: &Prometheus, query: &str, limit: Duration) -> Option<String> {
    let path = format!("/api/v1/query?query={}", encode(query));
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok((200, body)) = support::http(prometheus.addr, "GET", &path) {
            let reply: serde_json::Value = serde_json::from_str(&body).expect("JSON from the API");
            if let Some(value) = reply["data"]["result"][0]["value"][1].as_str() {
                return Some(value.to_owned());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_metrics_and_probe_with_blackbox_relabelling() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap();
    let down = connhealth_testkit::closed_port();
    let check = CheckPlan {
        interval: Duration::from_millis(200),
        fast_interval: Duration::from_millis(50),
        rise: 1,
        fall: 1,
        ..CheckPlan::default()
    };
    let mut web = target("web", up, check.clone());
    web.labels.insert("service".into(), "frontend".into());
    let daemon = start(plan(vec![web, target("gone", down, check)]));
    // The targets have a state (connhealth_target_up is absent while unknown) before
    // Prometheus starts scraping.
    wait_health(&daemon, "web", Health::Up, Duration::from_secs(3)).expect("web is up");
    wait_health(&daemon, "gone", Health::Down, Duration::from_secs(3)).expect("gone is down");
    assert!(get(daemon.listen(), "/metrics").contains("connhealth_target_up"));

    let Some(prometheus) = prometheus(&scrape_config(daemon.listen(), up)) else {
        return;
    };
    let limit = Duration::from_secs(30);
    let scraped = query(&prometheus, r#"up{job="connhealth"}"#, limit);
    assert_eq!(
        scraped.as_deref(),
        Some("1"),
        "Prometheus could not scrape /metrics"
    );
    let web_up = query(
        &prometheus,
        r#"connhealth_target_up{target="web",service="frontend",check="half-open"}"#,
        limit,
    );
    assert_eq!(web_up.as_deref(), Some("1"));
    let gone_up = query(&prometheus, r#"connhealth_target_up{target="gone"}"#, limit);
    assert_eq!(gone_up.as_deref(), Some("0"));
    let refused = query(
        &prometheus,
        r#"connhealth_target_checks_total{target="gone",result="refused"} > 0"#,
        limit,
    );
    assert!(refused.is_some(), "no refused checks of gone");

    let probe = query(
        &prometheus,
        &format!(r#"probe_success{{instance="{up}"}}"#),
        limit,
    );
    assert_eq!(
        probe.as_deref(),
        Some("1"),
        "the blackbox job's probe_success"
    );
    let probe_up = query(&prometheus, r#"up{job="blackbox"}"#, limit);
    assert_eq!(probe_up.as_deref(), Some("1"));
    let duration = query(
        &prometheus,
        &format!(r#"probe_duration_seconds{{instance="{up}"}} > 0"#),
        limit,
    );
    assert!(duration.is_some(), "no probe_duration_seconds");
    drop(listener);
    daemon.stop();
}
