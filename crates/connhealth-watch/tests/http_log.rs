//! The log: one line per state change on stderr, readable as text, fields as keys in
//! JSON, at the level `RUST_LOG` says.
//!
//! A process has one global subscriber, so each case runs this test binary again as a
//! child (`log_child`, which does nothing unless `CONNHEALTH_LOG_CHILD` is set) and reads
//! what it wrote to stderr.

use std::process::Command;
use std::time::{Duration, SystemTime};

use connhealth_watch::config::{CheckKind, CheckPlan, TargetPlan};
use connhealth_watch::state::{Health, Transition};
use connhealth_watch::status::{init_logging, log_transition};
use connhealth_watch::LogFormat;

#[test]
fn log_child() {
    let Ok(format) = std::env::var("CONNHEALTH_LOG_CHILD") else {
        return;
    };
    let format = if format == "json" {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    let guard = init_logging(format).expect("the first subscriber of this process");
    let plan = TargetPlan {
        name: "cache-a".into(),
        address: "127.0.0.1:6379".into(),
        labels: Default::default(),
        check: CheckPlan {
            kind: CheckKind::HalfOpen,
            ..CheckPlan::default()
        },
    };
    log_transition(
        &plan,
        &Transition {
            from: Health::Up,
            to: Health::Down,
            at: SystemTime::now(),
            why: "3 failures: refused".into(),
            check_time: Duration::from_micros(412),
        },
    );
    drop(guard); // flushes the non-blocking writer
}

/// Runs `log_child` in a child process with `format` and `rust_log`; its stderr lines.
fn child_log(format: &str, rust_log: Option<&str>) -> Vec<String> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "log_child", "--test-threads=1", "--nocapture"])
        .env("CONNHEALTH_LOG_CHILD", format)
        .env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stderr)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_state_change_is_one_line_a_person_reads() {
    let lines = child_log("text", None);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    let (time, rest) = line.split_once("  ").unwrap();
    assert!(
        humantime::parse_rfc3339(time).is_ok() && time.len() == 20,
        "an RFC 3339 time to the second: {time:?}"
    );
    assert_eq!(
        rest,
        "INFO target cache-a (127.0.0.1:6379) up -> down: 3 failures: refused (check 0.4 ms)"
    );
}

#[test]
fn in_json_the_fields_are_keys() {
    let lines = child_log("json", None);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "cache-a");
    assert_eq!(line["address"], "127.0.0.1:6379");
    assert_eq!(line["from"], "up");
    assert_eq!(line["to"], "down");
    assert_eq!(line["why"], "3 failures: refused");
    assert_eq!(line["check_ms"], 0.412);
    assert_eq!(
        line["message"],
        "target cache-a (127.0.0.1:6379) up -> down: 3 failures: refused (check 0.4 ms)"
    );
    assert!(humantime::parse_rfc3339(line["timestamp"].as_str().unwrap()).is_ok());
}

#[test]
fn rust_log_sets_the_level() {
    assert_eq!(child_log("text", Some("warn")), Vec::<String>::new());
    assert_eq!(child_log("text", Some("connhealth_watch=info")).len(), 1);
}

#[test]
fn a_bad_rust_log_is_reported_and_info_used() {
    let lines = child_log("text", Some("=[bad"));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("WARN RUST_LOG ignored, logging at info"),
        "{lines:?}"
    );
    assert!(lines[1].contains("up -> down"), "{lines:?}");
}
