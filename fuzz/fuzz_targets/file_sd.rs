//! The file_sd parser (`config/file_sd.rs`, through `connhealth_watch::fuzzing`) over any
//! bytes, as a config load reads each file its globs match (the UTF-8 check included).
//!
//! Properties, beyond not panicking:
//! * errors: each has a line and a column (1-based) inside the file and a one-line message
//!   (no control character at all, though names quoted may hold them), in file order; never "could not be followed" (the scanner disagreeing with
//!   serde_json, which checks the syntax first); a file that is not UTF-8 gets one error,
//!   at its first bad byte;
//! * the file is accepted exactly when serde_json reads it as file_sd's schema
//!   (`[{"targets": [..], "labels": {..}}]`, both optional, no other key) with every
//!   address a probe target and every label name (other than `__*`, which are dropped) a
//!   Prometheus name connhealth does not reserve; the targets are then the same, in order.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use connhealth_watch::fuzzing::{self, FileSdTarget};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// file_sd's schema, as Prometheus documents it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Prometheus' `[a-zA-Z_][a-zA-Z0-9_]*`, less the names connhealth sets itself.
fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !["target", "address", "check", "result"].contains(&name)
}

/// What serde_json and the documented rules make of `data`: the targets, or `None` when
/// the file is to be refused.
fn expected(data: &[u8]) -> Option<Vec<FileSdTarget>> {
    // serde would take a group written as an array too (`[["a:1"]]`); Go's JSON, and
    // Prometheus, want objects.
    let values: Vec<serde_json::Value> = serde_json::from_slice(data).ok()?;
    if !values.iter().all(serde_json::Value::is_object) {
        return None;
    }
    let groups: Vec<Group> = serde_json::from_slice(data).ok()?;
    let mut targets = Vec::new();
    for group in groups {
        let mut labels = BTreeMap::new();
        for (name, value) in group.labels {
            if name.starts_with("__") {
                continue;
            }
            if !label_name_ok(&name) {
                return None;
            }
            labels.insert(name, value);
        }
        for address in group.targets {
            connhealth::probe::Target::parse(&address).ok()?;
            targets.push(FileSdTarget {
                address,
                labels: labels.clone(),
            });
        }
    }
    Some(targets)
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("sd/targets.json");
    let read = fuzzing::file_sd(path, data.to_vec());
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(err) => {
            assert_eq!(read.errors.len(), 1, "{:?}", read.errors);
            assert!(read.targets.is_empty());
            let prefix = std::str::from_utf8(&data[..err.valid_up_to()]).unwrap();
            let line = 1 + prefix.matches('\n').count();
            let column = 1 + prefix.rsplit('\n').next().unwrap().chars().count();
            let at = &read.errors[0];
            assert_eq!((at.line, at.column), (line, column), "{at}");
            return;
        }
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let mut last = (0, 0);
    for err in &read.errors {
        assert_eq!(err.file, path);
        assert!(err.line >= 1 && err.column >= 1, "{err}");
        assert!(
            !err.message.is_empty() && !err.message.chars().any(char::is_control),
            "{err:?}"
        );
        assert!(!err.message.contains("could not be followed"), "{err}");
        let line = lines
            .get(err.line - 1)
            .unwrap_or_else(|| panic!("{err}: past the last line"));
        assert!(
            err.column <= line.chars().count() + 1,
            "{err}: past the line's end"
        );
        assert!(
            (err.line, err.column) >= last,
            "out of order: {:?}",
            read.errors
        );
        last = (err.line, err.column);
    }
    match expected(data) {
        Some(targets) => {
            assert!(
                read.errors.is_empty(),
                "serde_json and the rules accept it: {:?}",
                read.errors
            );
            assert_eq!(read.targets, targets);
        }
        None => assert!(!read.errors.is_empty(), "accepted, with {:?}", read.targets),
    }
});
