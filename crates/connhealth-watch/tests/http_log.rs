//! The log: one line per state change on stderr, readable as text, fields as keys in
//! JSON, at the level `RUST_LOG` says. A target going down is a warning; one coming up
//! is news.
//!
//! A process has one global subscriber, so each case runs this test binary again as a
//! child (`log_child`, which does nothing unless `CONNHEALTH_LOG_CHILD` is set) and reads
//! what it wrote to stderr.

use std::process::Command;
use std::time::{Duration, SystemTime};

use connhealth_watch::config::{Check, CheckPlan, TargetPlan};
use connhealth_watch::sinks::log::{init_logging, log_transition};
use connhealth_watch::state::{Health, Transition};
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
    let (from, to) = match std::env::var("CONNHEALTH_LOG_TO").as_deref() {
        Ok("up") => (Health::Down, Health::Up),
        _ => (Health::Up, Health::Down),
    };
    let guard = init_logging(format).expect("the first subscriber of this process");
    let plan = TargetPlan::new(
        "cache-a",
        "127.0.0.1:6379",
        [("service".to_owned(), "cache".to_owned())].into(),
        CheckPlan {
            check: Check::HalfOpen,
            ..CheckPlan::default()
        },
    )
    .unwrap();
    log_transition(
        &plan,
        &Transition {
            from,
            to,
            at: SystemTime::now(),
            why: if to == Health::Up {
                "2 successes".into()
            } else {
                "3 failures: refused".into()
            },
            check_time: Duration::from_micros(412),
            detail: None,
        },
    );
    drop(guard); // flushes the non-blocking writer
}

/// Runs `log_child` in a child process with `format` and `rust_log`, logging a change
/// up -> down; its stderr lines.
fn child_log(format: &str, rust_log: Option<&str>) -> Vec<String> {
    child_log_to("down", format, rust_log)
}

/// Runs `log_child` in a child process, logging a change to `to` (`up` or `down`) in
/// `format` with `rust_log`; its stderr lines.
fn child_log_to(to: &str, format: &str, rust_log: Option<&str>) -> Vec<String> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "log_child", "--test-threads=1", "--nocapture"])
        .env("CONNHEALTH_LOG_CHILD", format)
        .env("CONNHEALTH_LOG_TO", to)
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
    let (_time, rest) = lines[0].split_once("  ").unwrap();
    assert_eq!(
        rest,
        "WARN target cache-a (127.0.0.1:6379) up -> down: 3 failures: refused (check 0.4ms)"
    );
}

/// Two lines a second apart in the same second read the same without milliseconds: a
/// flap, or the order of two targets' changes, is lost.
#[test]
fn text_timestamps_carry_milliseconds() {
    let lines = child_log("text", None);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (time, _) = lines[0].split_once("  ").unwrap();
    assert!(
        humantime::parse_rfc3339(time).is_ok() && time.len() == 24 && time.as_bytes()[19] == b'.',
        "an RFC 3339 time to the millisecond: {time:?}"
    );
}

#[test]
fn a_transition_to_down_is_a_warning() {
    for format in ["text", "json"] {
        let lines = child_log_to("down", format, None);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(" WARN target cache-a") || lines[0].contains(r#""level":"WARN""#),
            "{lines:?}"
        );
    }
}

#[test]
fn a_transition_to_up_is_info() {
    for format in ["text", "json"] {
        let lines = child_log_to("up", format, None);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(" INFO target cache-a (127.0.0.1:6379) down -> up: 2 successes")
                || lines[0].contains(r#""level":"INFO""#),
            "{lines:?}"
        );
    }
}

#[test]
fn in_json_the_fields_are_keys() {
    let lines = child_log("json", None);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["target"], "cache-a");
    assert_eq!(line["address"], "127.0.0.1:6379");
    assert_eq!(line["from"], "up");
    assert_eq!(line["to"], "down");
    assert_eq!(line["why"], "3 failures: refused");
    assert_eq!(line["check_ms"], 0.412);
    assert_eq!(
        line["message"],
        "target cache-a (127.0.0.1:6379) up -> down: 3 failures: refused (check 0.4ms)"
    );
    assert!(humantime::parse_rfc3339(line["timestamp"].as_str().unwrap()).is_ok());
}

/// A line names what was checked and carries the target's own labels, so that a log
/// search finds every change of a service (`labels.service="cache"`) as a query on the
/// metrics would.
#[test]
fn json_lines_carry_the_check_kind_and_labels() {
    let lines = child_log("json", None);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["check"], "half-open", "{line}");
    assert_eq!(
        line["labels"],
        serde_json::json!({"service": "cache"}),
        "{line}"
    );
}

#[test]
fn rust_log_sets_the_level() {
    assert_eq!(
        child_log_to("down", "text", Some("error")),
        Vec::<String>::new()
    );
    assert_eq!(child_log_to("down", "text", Some("warn")).len(), 1);
    assert_eq!(
        child_log_to("up", "text", Some("warn")),
        Vec::<String>::new()
    );
    assert_eq!(
        child_log_to("up", "text", Some("connhealth_watch=info")).len(),
        1
    );
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
