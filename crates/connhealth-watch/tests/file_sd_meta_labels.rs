//! A file_sd group's `__` labels are dropped, as Prometheus drops them after relabelling,
//! but like every label they must be strings: Prometheus refuses the whole file
//! otherwise, and so does connhealth, rather than load a file Prometheus would not. Found
//! by the `file_sd` fuzz target (fuzz/), which compares the parser with serde_json reading
//! file_sd's schema.

use connhealth_watch::config::parse;

fn load(
    json: &str,
) -> Result<connhealth_watch::config::Plan, connhealth_watch::config::ConfigErrors> {
    let dir = connhealth_testkit::TempDir::new("file-sd-meta-labels");
    std::fs::write(dir.join("sd.json"), json).unwrap();
    parse(
        &dir.join("watch.toml"),
        "[[file_sd]]\nfiles = [\"sd.json\"]\n",
    )
}

#[test]
fn a_meta_label_that_is_not_a_string_is_an_error() {
    for value in ["1", "null", "[\"x\"]", "{}"] {
        let json = format!(r#"[{{"targets": ["a:1"], "labels": {{"__meta_x": {value}}}}}]"#);
        let errors = load(&json).expect_err(&json).0;
        assert_eq!(errors.len(), 1, "{json}: {errors:?}");
        assert!(
            errors[0]
                .message
                .contains("`__meta_x` must have a string value"),
            "{json}: {}",
            errors[0]
        );
        // At the value.
        assert_eq!((errors[0].line, errors[0].column), (1, 46), "{json}");
    }
}

#[test]
fn a_meta_label_that_is_a_string_is_dropped() {
    let plan = load(r#"[{"targets": ["a:1"], "labels": {"__meta_x": "y", "env": "prod"}}]"#)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let labels: Vec<_> = plan.targets[0].labels.keys().collect();
    assert_eq!(labels, ["env"]);
}
