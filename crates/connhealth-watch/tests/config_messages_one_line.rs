//! Every config error is one line, even when it quotes a name that holds a newline or
//! another control character (a JSON or TOML escape writes one): the character is shown
//! escaped, as `\n`, so that the `FILE:LINE:COLUMN: message` line stays whole and a
//! terminal control sequence in a discovered file never reaches the log raw. Found by the
//! `file_sd` fuzz target (fuzz/), with a label name `zo\\\n e`; the inputs are shortened.

use connhealth_watch::config::{parse, ConfigError};

fn errors_of(config: &str, json: &str) -> Vec<ConfigError> {
    let dir = connhealth_testkit::TempDir::new("config-messages-one-line");
    std::fs::write(dir.join("sd.json"), json).unwrap();
    match parse(&dir.join("watch.toml"), config) {
        Ok(plan) => panic!("{config:?} with {json:?} loaded: {:?}", plan.targets),
        Err(errors) => errors.0,
    }
}

#[track_caller]
fn assert_one_line(errors: &[ConfigError], shown: &str) {
    assert!(!errors.is_empty());
    for err in errors {
        assert!(
            !err.message.chars().any(char::is_control),
            "a control character in {:?}",
            err.message
        );
    }
    assert!(
        errors.iter().any(|err| err.message.contains(shown)),
        "{shown} not in {errors:?}"
    );
}

const FILE_SD: &str = "[[file_sd]]\nfiles = [\"sd.json\"]\n";

#[test]
fn a_file_sd_label_name_with_a_newline_is_shown_escaped() {
    let errors = errors_of(
        FILE_SD,
        r#"[{"targets": ["a:1"], "labels": {"zo\ne": "x"}}]"#,
    );
    assert_one_line(&errors, r"zo\ne");
}

#[test]
fn a_file_sd_key_with_control_characters_is_shown_escaped() {
    let errors = errors_of(FILE_SD, r#"[{"targets": ["a:1"], "tar\u001bgets": []}]"#);
    assert_one_line(&errors, r"tar\u{1b}gets");
    let errors = errors_of(FILE_SD, r#"[{"labels": {"__x": "y", "l\r\n": 1}}]"#);
    assert_one_line(&errors, r"l\r\n");
}

#[test]
fn a_toml_key_with_a_newline_is_shown_escaped() {
    let errors = errors_of("[defaults]\n\"inter\\nval\" = \"2s\"\n", "[]");
    assert_one_line(&errors, r"inter\nval");
    let errors = errors_of("[modules.\"a\\tb\"]\ncheck = \"hold\"\n[[targets]]\nname = \"x\\ny\"\naddress = \"a b\\n:1\"\n", "[]");
    assert_one_line(&errors, r"\n");
}
