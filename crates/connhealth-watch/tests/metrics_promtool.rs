//! `promtool check metrics` finds nothing in a scrape with every state, check kind and
//! result, labels that need escaping and a tls target with an expiry; and nothing in
//! `/probe`'s answers.
//!
//! promtool comes with Debian's `prometheus` package, installed when missing. Outside
//! CI a machine without it skips; under CI (`CI=true`) that is a failure.

mod http_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connhealth_watch::checks::{CheckResult, Outcome};
use connhealth_watch::config::CheckKind;
use connhealth_watch::sinks::metrics::ReloadState;
use connhealth_watch::sinks::metrics::{render_to_string, AlertCounts, DaemonCounters};
use http_support::{mixed_fleet, synthetic_fleet};

/// True when promtool can run; otherwise says why and skips, or fails under CI.
fn promtool() -> bool {
    match connhealth_testkit::ensure_command("promtool") {
        Ok(()) => true,
        Err(why) if connhealth_testkit::in_ci() => {
            panic!("promtool is needed under CI: {why}")
        }
        Err(why) => {
            eprintln!("skipping: promtool is not available: {why}");
            false
        }
    }
}

/// Runs `promtool check metrics` on `text`; panics with what it said unless it exits 0
/// and says nothing.
fn assert_promtool_clean(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}\non:\n{text}",
        output.status
    );
}

#[test]
fn a_scrape_of_every_state_kind_and_result_lints_cleanly() {
    if !promtool() {
        return;
    }
    let daemon = DaemonCounters {
        late_checks: 3,
        reload: ReloadState {
            successful: true,
            last_success: SystemTime::now(),
        },
        sinks_dropped: Vec::new(),
        alerts: vec![
            AlertCounts {
                receiver: "webhook",
                sent: 12,
                failed: 3,
            },
            AlertCounts {
                receiver: "alertmanager",
                sent: 4,
                failed: 0,
            },
        ],
        probe_engine: Some(connhealth::ProbeEngine::Raw),
    };
    let text = render_to_string(&mixed_fleet(SystemTime::now()), &daemon);
    for family in [
        "connhealth_target_up",
        "connhealth_target_ssl_earliest_cert_expiry_seconds",
        "connhealth_target_checks_total",
        "connhealth_alerts_sent_total",
        "connhealth_alerts_failed_total",
        "process_cpu_seconds_total",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
    assert_promtool_clean(&text);
}

#[test]
fn a_scrape_encoded_in_slices_lints_cleanly() {
    if !promtool() {
        return;
    }
    // More targets than one slice of a family holds, so that every family is encoded
    // in several pieces.
    let daemon = DaemonCounters {
        late_checks: 0,
        reload: ReloadState {
            successful: true,
            last_success: SystemTime::now(),
        },
        sinks_dropped: Vec::new(),
        alerts: Vec::new(),
        probe_engine: None,
    };
    let text = render_to_string(&synthetic_fleet(2_500), &daemon);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("# TYPE connhealth_target_up "))
            .count(),
        1
    );
    assert_promtool_clean(&text);
}

#[test]
fn probe_answers_lint_cleanly() {
    if !promtool() {
        return;
    }
    let tls = CheckResult {
        ip_protocol: Some(6),
        cert_expiry: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
        tls_version: Some("TLS 1.2"),
        ..CheckResult::new(Outcome::Ok, Duration::from_millis(3))
    };
    let regex = CheckResult {
        ip_protocol: Some(4),
        regex_failed: true,
        ..CheckResult::failed(Outcome::Mismatch, Duration::from_millis(1), "no")
    };
    for (result, kind) in [(tls, CheckKind::Tls), (regex, CheckKind::SendExpect)] {
        let text = connhealth_watch::http::probe::render(&result, kind, Duration::from_millis(5));
        assert_promtool_clean(&text);
    }
}
