//! Every kind of config error: one test each, each writing a small config (and its
//! file_sd files) to a fresh folder, loading it, and checking the exact line and column
//! and that the message names the problem and the fix.

use std::path::PathBuf;

use connhealth_testkit::TempDir;
use connhealth_watch::config::{load, ConfigError};

/// A fresh folder holding `watch.toml` and any other files, removed at the end.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        Fixture {
            dir: TempDir::new(&format!("config-errors-{test}")),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        self.dir.write(name, text)
    }

    /// Loads `config` as watch.toml: it must fail; its errors.
    fn errors(&self, config: &str) -> Vec<ConfigError> {
        let path = self.write("watch.toml", config);
        match load(&path) {
            Ok(plan) => panic!("loaded, but should not have: {plan:?}"),
            Err(errors) => {
                // Printed as the daemon prints them, for whoever reads a failure.
                eprintln!("{errors}");
                errors.0
            }
        }
    }
}

/// Loads `config` in a fresh folder; its errors.
fn errors(test: &str, config: &str) -> Vec<ConfigError> {
    Fixture::new(test).errors(config)
}

/// Asserts that `err` is at `line`:`column` of a file whose name is `file`, and that
/// its message holds every one of `words`.
#[track_caller]
fn assert_at(err: &ConfigError, file: &str, line: usize, column: usize, words: &[&str]) {
    assert_eq!(
        err.file.file_name().and_then(|f| f.to_str()),
        Some(file),
        "{err}"
    );
    assert_eq!((err.line, err.column), (line, column), "{err}");
    for word in words {
        assert!(err.message.contains(word), "{word:?} not in: {err}");
    }
    assert!(!err.message.contains('\n'), "not one line: {err}");
}

/// Named `config` so that `cargo test -p connhealth-watch --test 'config_*' --lib config`
/// runs them: its filter matches test paths.
mod config {
    use super::*;

    #[test]
    fn unknown_keys_name_the_allowed_keys_and_the_closest() {
        let errors = errors(
            "unknown_keys",
            "shard = 1\n\
         [defaults]\n\
         intervall = \"2s\"\n\
         labels = { service = \"cache\" }\n\
         [[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         lables = { service = \"cache\" }\n",
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            1,
            1,
            &[
                "unknown key `shard` at the top level",
                "The top-level keys are: defaults, targets, modules, file_sd",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            3,
            1,
            &[
                "unknown key `intervall` in [defaults]",
                "did you mean `interval`?",
                "The keys of [defaults] are: check, interval, fast_interval",
            ],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            4,
            1,
            &[
                "unknown key `labels` in [defaults]",
                ": `labels` belongs in a [[targets]] table.",
            ],
        );
        assert_at(
            &errors[3],
            "watch.toml",
            7,
            1,
            &[
                "unknown key `lables` in [[targets]]",
                "did you mean `labels`?",
                "name, address, url, labels",
            ],
        );
    }

    #[test]
    fn bad_durations_say_to_write_a_unit() {
        let errors = errors(
            "bad_durations",
            "[defaults]\n\
         interval = \"2\"\n\
         timeout = \"0s\"\n\
         fast_interval = \"2 parsecs\"\n\
         down_interval = \"0ms\"\n",
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            format!(
                "{}:2:12: \"2\" is not a duration; write it with a unit, e.g. \"2s\" or \"500ms\"",
                errors[0].file.display()
            )
        );
        assert_at(
            &errors[1],
            "watch.toml",
            3,
            11,
            &["`timeout` must be longer than 0", "timeout = \"1s\""],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            4,
            17,
            &[
                "\"2 parsecs\" is not a duration",
                "unknown time unit",
                "e.g. \"2s\", \"500ms\" or \"1m30s\"",
            ],
        );
        assert_at(
            &errors[3],
            "watch.toml",
            5,
            17,
            &[
                "`down_interval` must be longer than 0",
                "down_interval = \"2s\"",
            ],
        );
    }

    #[test]
    fn duplicate_target_names_point_at_the_second() {
        let errors = errors(
            "duplicate_names",
            "[[targets]]\n\
         name = \"cache\"\n\
         address = \"127.0.0.1:6379\"\n\
         \n\
         [[targets]]\n\
         name = \"cache\"\n\
         address = \"127.0.0.1:6380\"\n\
         \n\
         [[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         [[targets]]\n\
         address = \"127.0.0.1:6379\"\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            6,
            8,
            &[
                "target name \"cache\" is already taken by the target at line 2",
                "give this one another name",
            ],
        );
        // Named by their addresses, the last two collide as well.
        assert_at(
            &errors[1],
            "watch.toml",
            12,
            11,
            &[
                "\"127.0.0.1:6379\" is already taken by the target at line 10",
                "named by its address: give it a name",
            ],
        );
    }

    #[test]
    fn an_address_that_is_not_host_port_says_the_form() {
        let errors = errors(
            "bad_address",
            "[[targets]]\n\
         address = \"10.0.0.1\"\n\
         [[targets]]\n\
         address = \"::1:80\"\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            11,
            &[
                "address \"10.0.0.1\" is not host:port",
                "no port; expected host:port, e.g. example.com:443",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            4,
            11,
            &["needs brackets: [::1]:80"],
        );
    }

    #[test]
    fn rise_or_fall_of_zero_asks_for_one_or_more() {
        let errors = errors(
            "zero_counts",
            "[defaults]\n\
         rise = 0\n\
         [[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         fall = 0\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            8,
            &[
                "rise = 0",
                "up without a single success",
                "at least 1, e.g. rise = 2",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            5,
            8,
            &[
                "fall = 0",
                "down without a single failure",
                "at least 1, e.g. fall = 3",
            ],
        );
    }

    #[test]
    fn an_unknown_check_kind_lists_the_five() {
        let errors = errors(
            "unknown_kind",
            "[[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         check = \"half_open\"\n\
         [modules.m]\n\
         check = \"ping\"\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            9,
            &[
                "unknown check kind \"half_open\"",
                "did you mean \"half-open\"?",
                "write one of: half-open, connect, hold, tls, send-expect",
            ],
        );
        assert_at(&errors[1], "watch.toml", 5, 9, &["unknown check kind \"ping\"; write one of: half-open, connect, hold, tls, send-expect"]);
    }

    #[test]
    fn a_regex_that_does_not_compile_gives_the_reason_on_one_line() {
        let errors = errors(
            "bad_regex",
            "[[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         check = \"send-expect\"\n\
         expect = \"^(\\\\+PONG\"\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            4,
            10,
            &[
                "expect \"^(\\\\+PONG\" is not a valid regex: unclosed group",
                "fix the pattern",
                "expect = \"^\\\\+PONG\"",
            ],
        );
    }

    #[test]
    fn jitter_outside_zero_to_one_is_refused() {
        let errors = errors(
            "jitter",
            "[defaults]\n\
         jitter = 1.5\n\
         [modules.m]\n\
         jitter = -0.1\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            10,
            &["jitter = 1.5 is outside [0, 1)", "e.g. jitter = 0.1"],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            4,
            10,
            &["jitter = -0.1 is outside [0, 1)"],
        );
    }

    #[test]
    fn label_names_must_be_prometheus_names_and_not_reserved() {
        let errors = errors(
            "label_names",
            "[[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         labels = { \"service-name\" = \"cache\" }\n\
         [[targets]]\n\
         address = \"127.0.0.1:6380\"\n\
         [targets.labels]\n\
         target = \"x\"\n\
         __meta = \"y\"\n\
         result = \"z\"\n",
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            12,
            &[
                "`service-name` is not a valid Prometheus label name",
                "write e.g. `service_name`",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            7,
            1,
            &[
                "label `target` is set by connhealth",
                "target, address, check, result are reserved",
                "rename it, e.g. `target_name`",
            ],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            8,
            1,
            &[
                "label `__meta`",
                "starting with __ are reserved",
                "rename it, e.g. `meta`",
            ],
        );
        assert_at(
            &errors[3],
            "watch.toml",
            9,
            1,
            &["label `result`", "reserved"],
        );
    }

    #[test]
    fn label_values_must_be_strings() {
        let errors = errors(
            "label_values",
            "[[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         labels = { shard = 3 }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            20,
            &[
                "label `shard` must have a string value, not an integer",
                "quote it, e.g. shard = \"3\"",
            ],
        );
    }

    #[test]
    fn send_expect_without_expect_asks_for_one() {
        let errors = errors(
            "no_expect",
            "[[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         check = \"send-expect\"\n\
         send = \"PING\\r\\n\"\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            9,
            &[
                "check = \"send-expect\" needs `expect`",
                "add it to this target, e.g. expect = \"^\\\\+PONG\"",
            ],
        );
    }

    #[test]
    fn an_http_target_takes_a_url_and_the_others_an_address() {
        let errors = errors(
            "http_url",
            "[[targets]]\n\
         check = \"http\"\n\
         address = \"127.0.0.1:80\"\n\
         [[targets]]\n\
         url = \"http://127.0.0.1/\"\n\
         [[targets]]\n\
         check = \"http\"\n\
         url = \"ftp://127.0.0.1/\"\n\
         [[targets]]\n\
         check = \"http\"\n\
         url = \"/healthz\"\n\
         [[targets]]\n\
         check = \"http\"\n\
         url = \"http://127.0.0.1/\"\n\
         valid_status = [\"2xx\", 600]\n\
         method = \"\"\n",
        );
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            11,
            &[
                "an http target has a `url`, not an `address`",
                "url = \"https://",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            5,
            1,
            &["`url` is for check = \"http\"", "address = \"host:port\""],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            8,
            7,
            &["has the scheme \"ftp\"", "http:// or https://"],
        );
        assert_at(&errors[3], "watch.toml", 11, 7, &["has no scheme"]);
        assert_at(
            &errors[4],
            "watch.toml",
            15,
            16,
            &["600 in `valid_status` is neither a status code (100 to 599) nor a class"],
        );
        assert_at(&errors[5], "watch.toml", 16, 10, &["is not an HTTP method"]);
    }

    #[test]
    fn kind_specific_keys_need_their_kind() {
        let errors = errors(
            "kind_keys",
            "[defaults]\n\
         send = \"PING\\r\\n\"\n\
         server_name = \"example.com\"\n\
         [[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         expect = \"^\\\\+PONG\"\n\
         [[targets]]\n\
         address = \"127.0.0.1:6380\"\n\
         check = \"connect\"\n\
         insecure = true\n\
         [[file_sd]]\n\
         files = []\n\
         check = \"tls\"\n\
         quit = \"QUIT\\r\\n\"\n",
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            6,
            1,
            &[
                "`expect` is read by check = \"send-expect\" and check = \"http\"",
                "this target is checked with \"half-open\"",
                "remove `expect`, or set check = \"send-expect\"",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            10,
            1,
            &[
                "`insecure` is read by check = \"tls\" and check = \"http\"",
                "checked with \"connect\"",
                "or set check = \"tls\"",
            ],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            14,
            1,
            &[
                "`quit` is read by check = \"send-expect\" only",
                "this file_sd block",
            ],
        );
    }

    #[test]
    fn a_ca_file_must_exist_and_be_readable() {
        let fixture = Fixture::new("ca_file");
        std::fs::create_dir_all(fixture.dir.join("certs")).unwrap();
        fixture.write("empty.pem", "not a certificate\n");
        let errors = fixture.errors(
            "[defaults]\n\
         ca_file = \"missing.pem\"\n\
         [[targets]]\n\
         address = \"127.0.0.1:443\"\n\
         check = \"tls\"\n\
         ca_file = \"certs\"\n\
         [modules.t]\n\
         check = \"tls\"\n\
         ca_file = \"empty.pem\"\n",
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        let looked_at = fixture.dir.join("missing.pem");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            11,
            &[
                &format!(
                    "ca_file \"missing.pem\" (looked at {}) does not exist",
                    looked_at.display()
                ),
                "write the path of a readable PEM file of CA certificates",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            6,
            11,
            &["cannot be read: Is a directory", "write the path"],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            9,
            11,
            &["holds no PEM certificate", "write the path"],
        );
    }

    #[test]
    fn a_module_cannot_take_a_built_in_name() {
        let errors = errors(
            "module_names",
            "[modules.tcp_connect]\n\
         check = \"connect\"\n\
         [modules.half_open]\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            1,
            10,
            &[
                "`tcp_connect` is a built-in /probe module",
                "half_open, connect, tcp_connect",
                "e.g. [modules.my_tcp_connect]",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            3,
            10,
            &["`half_open` is a built-in"],
        );
    }

    #[test]
    fn wrong_types_name_the_expected_type() {
        let errors = errors(
            "wrong_types",
            "[defaults]\n\
         rise = \"2\"\n\
         insecure = \"yes\"\n\
         interval = 2\n\
         timeout = 1979-05-27\n\
         [[targets]]\n\
         address = 6379\n\
         labels = [\"cache\"]\n\
         name = true\n",
        );
        assert_eq!(errors.len(), 7, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            8,
            &[
                "`rise` must be a whole number, not a string",
                "write e.g. rise = 2",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            3,
            12,
            &[
                "`insecure` must be true or false, not a string",
                "insecure = true",
            ],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            4,
            12,
            &[
                "`interval` must be a duration string with a unit, not an integer",
                "interval = \"2s\"",
            ],
        );
        assert_at(
            &errors[3],
            "watch.toml",
            5,
            11,
            &["not a date-time", "timeout = \"1s\""],
        );
        assert_at(
            &errors[4],
            "watch.toml",
            7,
            11,
            &[
                "`address` must be a \"host:port\" string, not an integer",
                "address = \"127.0.0.1:6379\"",
            ],
        );
        assert_at(
            &errors[5],
            "watch.toml",
            8,
            10,
            &[
                "`labels` must be a table of strings, not an array",
                "labels = { service = \"cache\" }",
            ],
        );
        assert_at(
            &errors[6],
            "watch.toml",
            9,
            8,
            &["`name` must be a string, not a boolean"],
        );
    }

    #[test]
    fn sections_of_the_wrong_shape_say_how_to_write_them() {
        let errors = errors(
            "section_shapes",
            "file_sd = \"targets/*.json\"\n\
         [targets]\n\
         address = \"127.0.0.1:6379\"\n\
         [[defaults]]\n",
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            1,
            11,
            &[
                "`file_sd` must be an array of tables, not a string",
                "[[file_sd]]",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            2,
            1,
            &[
                "`targets` must be an array of tables, not a table",
                "[[targets]] (two brackets)",
            ],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            4,
            1,
            &["`defaults` must be a table, not an array", "[defaults]"],
        );
    }

    #[test]
    fn a_target_without_an_address_asks_for_one() {
        let errors = errors("no_address", "[defaults]\n\n  [[targets]]\nname = \"x\"\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            3,
            &[
                "this target has no `address`",
                "address = \"127.0.0.1:6379\"",
            ],
        );
    }

    #[test]
    fn a_file_sd_block_without_files_asks_for_them() {
        let errors = errors(
            "no_files",
            "[[file_sd]]\ninterval = \"5s\"\nfiles = [\"[\"]\n[[file_sd]]\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            10,
            &["\"[\" is not a valid glob", "files = [\"targets/*.json\"]"],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            4,
            1,
            &[
                "this [[file_sd]] block has no `files`",
                "files = [\"targets/*.json\"]",
            ],
        );
    }

    #[test]
    fn a_toml_syntax_error_stops_at_its_place() {
        let errors = errors("syntax", "[defaults]\ninterval = \"2s\" x\nrise = 0\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            17,
            &[
                "this is not valid TOML: expected newline",
                "a string is quoted, e.g. interval = \"2s\"",
            ],
        );
        let errors = self::errors("syntax_duplicate", "[defaults]\nrise = 2\nrise = 3\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            1,
            &["duplicate key", "remove one of them"],
        );
    }

    #[test]
    fn a_bare_word_where_an_integer_belongs_says_an_integer_is_expected() {
        // TOML reads a bare word as a syntax error, and a syntax error stops the parse:
        // one config each.
        for (key, word, example) in [
            ("rise", "two", "rise = 2"),
            ("fall", "3x", "fall = 3"),
            ("cert_min_days", "fourteen", "cert_min_days = 14"),
        ] {
            let config = format!("[defaults]\n{key} = {word}\n");
            let errors = errors(&format!("bare_integer_{key}"), &config);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_at(
                &errors[0],
                "watch.toml",
                2,
                key.len() + 4,
                &[
                    "an integer is expected",
                    &format!("`{key}`"),
                    &format!("`{word}`"),
                    example,
                ],
            );
            assert!(!errors[0].message.contains("quote"), "{}", errors[0]);
        }
    }

    #[test]
    fn a_bare_word_where_a_number_belongs_says_a_number_is_expected() {
        let errors = errors(
            "bare_float",
            "[[targets]]\naddress = \"127.0.0.1:1\"\njitter = low\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            10,
            &["a number is expected", "`jitter`", "`low`", "jitter = 0.1"],
        );
        assert!(!errors[0].message.contains("quote"), "{}", errors[0]);
    }

    #[test]
    fn a_bare_word_where_a_duration_belongs_says_to_quote_it() {
        let errors = errors("bare_duration", "[modules.m]\ninterval = 2s\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            12,
            &[
                "a duration is expected",
                "a quoted string",
                "interval = \"2s\"",
            ],
        );
        let errors = self::errors("bare_duration_word", "[defaults]\ntimeout = soon\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            11,
            &["a duration is expected", "`soon`", "timeout = \"1s\""],
        );
    }

    #[test]
    fn a_bare_word_where_a_string_or_boolean_belongs_says_which() {
        let errors = errors("bare_string", "[defaults]\ncheck = hold\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            9,
            &["a string is expected", "check = \"hold\""],
        );
        let errors = self::errors("bare_boolean", "[defaults]\ninsecure = yes\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            12,
            &["true or false is expected", "insecure = true"],
        );
        // A label's value is a string, whatever its name.
        let errors = self::errors(
            "bare_label",
            "[[targets]]\naddress = \"127.0.0.1:1\"\nlabels = { rise = two }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            19,
            &["a label's value is a string", "rise = \"two\""],
        );
    }

    #[test]
    fn file_sd_labels_follow_the_label_rules() {
        let errors = errors(
            "file_sd_labels",
            "[[file_sd]]\n\
         files = []\n\
         labels = { \"team-name\" = \"db\", target = \"x\", tier = 1 }\n\
         lables = {}\n",
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            12,
            &[
                "`team-name` is not a valid Prometheus label name",
                "`team_name`",
            ],
        );
        assert_at(
            &errors[1],
            "watch.toml",
            3,
            32,
            &["label `target` is set by connhealth", "reserved"],
        );
        assert_at(
            &errors[2],
            "watch.toml",
            3,
            53,
            &["label `tier` must have a string value, not an integer"],
        );
        assert_at(
            &errors[3],
            "watch.toml",
            4,
            1,
            &[
                "unknown key `lables` in [[file_sd]]",
                "did you mean `labels`?",
                "The keys of [[file_sd]] are: files, labels, check",
            ],
        );
    }

    #[test]
    fn yaml_file_sd_files_are_refused() {
        let fixture = Fixture::new("yaml");
        fixture.write("sd/a.yml", "- targets: ['10.0.0.1:80']\n");
        let errors = fixture.errors("[[file_sd]]\nfiles = [\"sd/*\"]\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "a.yml",
            1,
            1,
            &["JSON only, not YAML", "write this file as JSON"],
        );
    }

    #[test]
    fn file_sd_json_syntax_errors_have_their_place() {
        let fixture = Fixture::new("json_syntax");
        fixture.write("sd/a.json", "[\n  {\"targets\": [x]}\n]\n");
        fixture.write("sd/b.json", "[{\"é\": 1,}]");
        let errors = fixture.errors("[[file_sd]]\nfiles = [\"sd/*.json\"]\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_at(
            &errors[0],
            "a.json",
            2,
            16,
            &[
                "this is not valid JSON: expected value",
                "[{\"targets\": [\"host:port\"]",
            ],
        );
        // Columns count characters: "é" is two bytes, one column.
        assert_at(
            &errors[1],
            "b.json",
            1,
            10,
            &["this is not valid JSON: key must be a string"],
        );
    }

    #[test]
    fn file_sd_groups_are_checked_where_they_are_written() {
        let fixture = Fixture::new("json_groups");
        fixture.write(
        "sd/a.json",
        "[\n  {\"targets\": [\"10.0.0.1\"], \"labels\": {\"__meta_x\": \"dropped\", \"env-name\": \"prod\", \"env\": 1}},\n  {\"target\": []},\n  5\n]\n",
    );
        fixture.write("sd/b.json", "{\"targets\": []}");
        let errors = fixture.errors("[[file_sd]]\nfiles = [\"sd/*.json\"]\n");
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert_at(
            &errors[0],
            "a.json",
            2,
            16,
            &["address \"10.0.0.1\" is not host:port: no port"],
        );
        assert_at(
            &errors[1],
            "a.json",
            2,
            63,
            &[
                "`env-name` is not a valid Prometheus label name",
                "`env_name`",
            ],
        );
        assert_at(
            &errors[2],
            "a.json",
            2,
            90,
            &[
                "label `env` must have a string value, not a number",
                "quote it",
            ],
        );
        assert_at(
            &errors[3],
            "a.json",
            3,
            4,
            &[
                "unknown key `target` in a file_sd group",
                "did you mean `targets`?",
            ],
        );
        assert_at(
            &errors[4],
            "a.json",
            4,
            3,
            &["each group of a file_sd file is an object, not a number"],
        );
        assert_at(
            &errors[5],
            "b.json",
            1,
            1,
            &["a JSON array of groups, not an object"],
        );
    }

    #[test]
    fn every_error_of_a_file_is_reported_in_file_order() {
        let errors = errors(
            "file_order",
            "[[targets]]\n\
         address = \"127.0.0.1:6379\"\n\
         rise = 0\n\
         [defaults]\n\
         interval = \"2\"\n\
         [[targets]]\n\
         address = \"nope\"\n",
        );
        let places: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(places, [(3, 8), (5, 12), (7, 11)], "{errors:?}");
        let printed = errors[0].to_string();
        assert!(printed.ends_with("watch.toml:3:8: rise = 0 would make a target up without a single success; write at least 1, e.g. rise = 2"), "{printed}");
    }
}
