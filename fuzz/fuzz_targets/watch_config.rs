//! `connhealth_watch::config::parse` over any bytes.
//!
//! Bytes become text with `String::from_utf8_lossy`: `parse` takes a `&str` (`load`
//! reports a file that is not UTF-8 before it parses), so every input is made into some
//! text rather than thrown away, and the U+FFFD that replaces a bad byte is a three-byte
//! character, which keeps the character-counted columns honest.
//!
//! The config names files (`ca_file`, `[[file_sd]]` globs, `blackbox_config` and the
//! files a blackbox file names), so the harness keeps the fuzzer inside a folder of its
//! own: it skips any text that could spell a `/`, literally or as a TOML or YAML escape
//! (`\u002F`, `\U0000002F`, `\x2F`: the config may name itself as its blackbox file), so
//! every path stays in the config's folder, which holds one file_sd file, `sd.json`. No
//! input reaches the rest of the filesystem.
//!
//! Properties, beyond not panicking:
//! * errors: at least one; each has a line and a column (1-based) inside its file and a
//!   one-line message (no control character at all); the config's own come first, in
//!   file order;
//! * a plan: its source is the path; names are unique; every address is a probe target;
//!   every check plan has what validation promises (positive durations up to 30 days,
//!   rise and fall at least 1, jitter in [0, 1), kind-specific settings only on their
//!   kind, an `expect` on every send-expect); a module's timeout, when it has one, is
//!   longer than 0 and at most 30 days; no module is both run and set aside.

#![no_main]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use connhealth_watch::config::{parse, Check, CheckPlan, ConfigErrors, Module};
use libfuzzer_sys::fuzz_target;

const FILE_SD: &str = r#"[{"targets": ["10.0.0.1:9100", "[::1]:80", "db.internal:5432"], "labels": {"env": "prod", "__meta_x": "y"}}]"#;

/// `watch.toml` in a folder of this process's own, beside `sd.json`.
fn config_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let folder =
            std::env::temp_dir().join(format!("connhealth-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        std::fs::write(folder.join("sd.json"), FILE_SD).expect("the file_sd file");
        folder.join("watch.toml")
    })
}

/// True when `text` could name a path outside the config's folder.
fn could_spell_a_slash(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    // TOML's escapes, and YAML's `\x2F`, for a blackbox file that is this text.
    text.contains('/')
        || lower.contains("u002f")
        || lower.contains("u0000002f")
        || lower.contains("x2f")
}

fn check_plan(plan: &CheckPlan, what: &str) {
    const MAX: Duration = Duration::from_secs(30 * 24 * 3600);
    for (name, duration) in [
        ("interval", plan.interval),
        ("fast_interval", plan.fast_interval),
        ("down_interval", plan.down_interval),
        ("timeout", plan.timeout),
    ] {
        assert!(
            !duration.is_zero() && duration <= MAX,
            "{what}: {name} {duration:?}"
        );
    }
    assert!(plan.rise >= 1 && plan.fall >= 1, "{what}: {plan:?}");
    assert!(
        (0.0..1.0).contains(&plan.jitter),
        "{what}: jitter {}",
        plan.jitter
    );
    // A plan holds its own kind's settings only: the type says so now; what is left
    // to check is that send-expect always has its `expect`.
    if let Check::SendExpect(send_expect) = &plan.check {
        assert!(
            send_expect.expect.is_some(),
            "{what}: send-expect without expect"
        );
    }
}

fn check_module(module: &Module, what: &str) {
    const MAX: Duration = Duration::from_secs(30 * 24 * 3600);
    if let Some(timeout) = module.timeout {
        assert!(
            !timeout.is_zero() && timeout <= MAX,
            "{what}: timeout {timeout:?}"
        );
    }
    if let Check::SendExpect(send_expect) = &module.check {
        assert!(
            send_expect.expect.is_some(),
            "{what}: send-expect without expect"
        );
    }
}

fn check_errors(path: &Path, text: &str, errors: &ConfigErrors) {
    assert!(!errors.0.is_empty(), "an error result with no error");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut last_in_config = (0, 0);
    let mut in_other_files = false;
    for err in &errors.0 {
        assert!(err.line >= 1 && err.column >= 1, "{err}");
        assert!(
            !err.message.is_empty() && !err.message.chars().any(char::is_control),
            "{err:?}"
        );
        if err.file == path {
            assert!(
                !in_other_files,
                "a config error after a file_sd one: {errors}"
            );
            let line = lines
                .get(err.line - 1)
                .unwrap_or_else(|| panic!("{err}: past the last line"));
            assert!(
                err.column <= line.chars().count() + 1,
                "{err}: past the line's end"
            );
            assert!(
                (err.line, err.column) >= last_in_config,
                "out of order: {errors}"
            );
            last_in_config = (err.line, err.column);
        } else {
            assert_eq!(
                err.file.parent(),
                path.parent(),
                "{err}: a file outside the folder"
            );
            in_other_files = true;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if could_spell_a_slash(&text) {
        return;
    }
    let path = config_path();
    match parse(path, &text) {
        Err(errors) => check_errors(path, &text, &errors),
        Ok(plan) => {
            assert_eq!(plan.source, path);
            check_plan(&plan.defaults, "[defaults]");
            let mut names = HashSet::new();
            for target in &plan.targets {
                assert!(names.insert(&target.name), "{:?} twice", target.name);
                assert!(
                    connhealth::probe::Target::parse(&target.address).is_ok(),
                    "{:?} is not a probe target",
                    target.address
                );
                check_plan(&target.check, &target.name);
            }
            for (name, module) in &plan.modules {
                check_module(module, name);
                assert!(
                    !plan.unsupported_modules.contains_key(name),
                    "{name} both run and set aside"
                );
            }
            for block in &plan.file_sd {
                check_plan(&block.check, "[[file_sd]]");
                for file in &block.matched {
                    assert_eq!(file.parent(), path.parent(), "{file:?} outside the folder");
                }
            }
        }
    }
});
