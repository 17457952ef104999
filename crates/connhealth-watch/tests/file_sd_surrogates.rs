//! A file_sd string with a `\u` escape of half a UTF-16 surrogate pair is a JSON syntax
//! error at that escape, like any other. serde_json's syntax check skips over string
//! contents, and only decoding the string refuses the lone half: the loader used to call
//! that "could not be followed (a bug in connhealth)", at 1:1. Found by the `file_sd` fuzz
//! target (fuzz/); the inputs are its, shortened.

use connhealth_watch::config::{parse, ConfigError};

/// The errors of a config whose one file_sd file holds `json`.
fn errors_of(json: &str) -> Vec<ConfigError> {
    let dir = connhealth_testkit::TempDir::new("file-sd-surrogates");
    std::fs::write(dir.join("sd.json"), json).unwrap();
    let config = "[[file_sd]]\nfiles = [\"sd.json\"]\n";
    match parse(&dir.join("watch.toml"), config) {
        Ok(plan) => panic!("{json:?} loaded: {:?}", plan.targets),
        Err(errors) => errors.0,
    }
}

#[test]
fn a_lone_surrogate_is_a_syntax_error_at_its_escape() {
    // The column is the escape's backslash.
    for (json, column) in [
        (r#"[{"targets": ["\ud800:80"]}]"#, 16),
        (r#"[{"targets": ["a:1"], "labels": {"x": "\udddd"}}]"#, 40),
    ] {
        let errors = errors_of(json);
        assert_eq!(errors.len(), 1, "{json}: {errors:?}");
        let err = &errors[0];
        assert!(!err.message.contains("bug in connhealth"), "{err}");
        assert!(err.message.contains("not valid JSON"), "{err}");
        assert!(err.message.contains("surrogate"), "{err}");
        assert_eq!((err.line, err.column), (1, column), "{json}: {err}");
    }
}

#[test]
fn a_surrogate_pair_is_one_character() {
    let dir = connhealth_testkit::TempDir::new("file-sd-surrogates");
    std::fs::write(
        dir.join("sd.json"),
        r#"[{"targets": ["\ud83d\ude00.example:80"]}]"#,
    )
    .unwrap();
    let plan = parse(
        &dir.join("watch.toml"),
        "[[file_sd]]\nfiles = [\"sd.json\"]\n",
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(plan.targets[0].address, "😀.example:80");
}
