//! A `blackbox_config` file (blackbox_exporter's module file, YAML) over any bytes, as a
//! config load reads it (through `connhealth_watch::fuzzing::blackbox`).
//!
//! Bytes become text with `String::from_utf8_lossy`, as for `watch_config` (a load
//! reports a file that is not UTF-8 before it parses it).
//!
//! The file names files (`ca_file`, `cert_file`, `key_file`), relative to its folder, so
//! the harness keeps the fuzzer inside a folder of its own: it skips any text that could
//! spell a `/`, literally or as a YAML escape (`\x2F`, `\u002F`, `\U0000002F`). No input
//! reaches the rest of the filesystem.
//!
//! Properties, beyond not panicking:
//! * errors and warnings: each has a line and a column (1-based) inside the text and a
//!   one-line message (no control character at all), in file order; with an error, no
//!   module is kept;
//! * modules: no name both run and set aside; a timeout, when set, longer than 0 and at
//!   most 30 days; the checks are blackbox's (`tcp` and `http` only), each with one address
//!   chosen as blackbox chooses it, and an http one opens a connection per probe.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use connhealth_watch::config::{Check, ConfigError, IpChoice};
use libfuzzer_sys::fuzz_target;

/// `blackbox.yml` in a folder of this process's own.
fn blackbox_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let folder =
            std::env::temp_dir().join(format!("connhealth-fuzz-blackbox-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        folder.join("blackbox.yml")
    })
}

fn could_spell_a_slash(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    text.contains('/') || lower.contains("x2f") || lower.contains("u002f")
}

fn check_located(path: &Path, text: &str, list: &[ConfigError], what: &str) {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut last = (0, 0);
    for err in list {
        assert_eq!(err.file, path, "{what}: {err}");
        assert!(err.line >= 1 && err.column >= 1, "{what}: {err}");
        assert!(
            !err.message.is_empty() && !err.message.chars().any(char::is_control),
            "{what}: {err:?}"
        );
        let line = lines
            .get(err.line - 1)
            .unwrap_or_else(|| panic!("{what}: {err}: past the last line"));
        assert!(
            err.column <= line.chars().count() + 1,
            "{what}: {err}: past the line's end"
        );
        assert!(
            (err.line, err.column) >= last,
            "{what}: out of order: {list:?}"
        );
        last = (err.line, err.column);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if could_spell_a_slash(&text) {
        return;
    }
    let path = blackbox_path();
    let read = connhealth_watch::fuzzing::blackbox(path, &text);
    check_located(path, &text, &read.errors, "error");
    check_located(path, &text, &read.warnings, "warning");
    const MAX: Duration = Duration::from_secs(30 * 24 * 3600);
    for (name, module) in &read.modules {
        assert!(!read.unsupported.contains_key(name), "{name}: both");
        if let Some(timeout) = module.timeout {
            assert!(!timeout.is_zero() && timeout <= MAX, "{name}: {timeout:?}");
        }
        match &module.check {
            Check::Tcp(tcp) => {
                assert!(matches!(tcp.ip, IpChoice::Prefer { .. }), "{name}: {tcp:?}")
            }
            Check::Http(http) => {
                assert!(
                    matches!(http.ip, IpChoice::Prefer { .. }),
                    "{name}: {http:?}"
                );
                assert!(!http.reuse_connection, "{name}: {http:?}");
            }
            other => panic!("{name}: not a blackbox prober: {other:?}"),
        }
    }
});
