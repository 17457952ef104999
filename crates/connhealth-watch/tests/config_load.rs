//! Valid configs load with the right values: DESIGN.md's example, inheritance
//! (built-in ← [defaults] ← the table), down_interval's default, labels, modules and
//! file_sd targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connhealth_testkit::TempDir;
use connhealth_watch::config::{
    file_sd_paths, load, Check, CheckKind, CheckPlan, Endpoint, Pattern, Plan, TargetPlan,
};

/// A fresh folder, removed at the end.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        Fixture {
            dir: TempDir::new(&format!("config-load-{test}")),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        self.dir.write(name, text)
    }

    fn load(&self, config: &str) -> Plan {
        let path = self.write("watch.toml", config);
        load(&path).unwrap_or_else(|errors| panic!("did not load:\n{errors}"))
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn target<'a>(plan: &'a Plan, name: &str) -> &'a TargetPlan {
    plan.targets
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}: {:?}", plan.targets))
}

/// DESIGN.md's example, word for word.
const DESIGN_EXAMPLE: &str = r#"
[defaults]
check = "half-open"        # half-open | connect | hold | tls | send-expect
interval = "2s"            # between checks while up (HAProxy's inter)
fast_interval = "500ms"    # while unknown, or after a result that starts a change (fastinter)
down_interval = "2s"       # while down (downinter); defaults to interval
timeout = "1s"             # for one check, name resolution included
rise = 2                   # consecutive successes to become up
fall = 3                   # consecutive failures to become down
jitter = 0.1               # each wait is drawn from interval x (1 +- jitter)

[[targets]]
name = "cache-a"           # unique; the `target` label; defaults to the address
address = "127.0.0.1:6379" # host:port, [v6]:port; a name is resolved at every check
labels = { service = "cache" }   # added to every series of this target
check = "send-expect"
send = "PING\r\n"          # send-expect: bytes sent after connecting (optional)
expect = "^\\+PONG"        # send-expect: a regex the reply must match
quit = "QUIT\r\n"          # send-expect: sent before a graceful close (optional)
# tls: server_name, ca_file, insecure (verify nothing, still read the chain), cert_min_days

[modules.redis_ping]       # for /probe?module=redis_ping; same keys as [defaults]
check = "send-expect"
send = "PING\r\n"
expect = "^\\+PONG"

[[file_sd]]                # Prometheus file_sd: [{"targets": ["host:port"], "labels": {...}}]
files = ["targets/*.json"] # re-read within 5 s of a change, and on every reload
"#;

/// Named `config` so that `cargo test -p connhealth-watch --test 'config_*' --lib config`
/// runs them: its filter matches test paths.
mod config {
    use super::*;

    #[test]
    fn the_design_example_loads_with_its_values() {
        let fixture = Fixture::new("design");
        fixture.write(
            "targets/b.json",
            r#"[{"targets": ["10.0.0.3:9100"], "labels": {}}]"#,
        );
        fixture.write(
            "targets/a.json",
            r#"[
            {"targets": ["10.0.0.1:9100", "[::1]:9100"],
             "labels": {"env": "prod", "__meta_source": "dropped"}},
            {"targets": ["web.internal:80"]}
        ]"#,
        );
        fixture.write("targets/notes.txt", "not matched");
        let plan = fixture.load(DESIGN_EXAMPLE);

        assert_eq!(plan.source, fixture.dir.join("watch.toml"));
        let defaults = &plan.defaults;
        assert_eq!(defaults, &CheckPlan::default());
        assert_eq!(defaults.kind(), CheckKind::HalfOpen);
        assert_eq!(defaults.interval, Duration::from_secs(2));
        assert_eq!(defaults.fast_interval, Duration::from_millis(500));
        assert_eq!(defaults.down_interval, Duration::from_secs(2));
        assert_eq!(defaults.timeout, Duration::from_secs(1));
        assert_eq!((defaults.rise, defaults.fall), (2, 3));
        assert_eq!(defaults.jitter, 0.1);

        let names: Vec<&str> = plan.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cache-a",
                "10.0.0.1:9100",
                "[::1]:9100",
                "web.internal:80",
                "10.0.0.3:9100"
            ]
        );

        let cache = target(&plan, "cache-a");
        assert_eq!(cache.address, "127.0.0.1:6379");
        assert_eq!(cache.labels, labels(&[("service", "cache")]));
        let Check::SendExpect(ping) = &cache.check.check else {
            panic!("{:?}", cache.check);
        };
        assert_eq!(ping.send.as_deref(), Some(&b"PING\r\n"[..]));
        assert_eq!(ping.quit.as_deref(), Some(&b"QUIT\r\n"[..]));
        let Pattern(expect) = ping.expect.as_ref().unwrap();
        assert_eq!(expect.as_str(), "^\\+PONG");
        assert!(expect.is_match(b"+PONG\r\n"));
        assert_eq!(cache.check.interval, Duration::from_secs(2));
        assert_eq!(cache.check.rise, 2);

        let module = &plan.modules["redis_ping"];
        assert_eq!(plan.modules.len(), 1);
        let Check::SendExpect(module) = &module.check else {
            panic!("{module:?}");
        };
        assert_eq!(module.send.as_deref(), Some(&b"PING\r\n"[..]));
        assert_eq!(module.quit, None);
        assert_eq!(
            module.expect.as_ref().map(|r| r.0.as_str()),
            Some("^\\+PONG")
        );

        assert_eq!(plan.file_sd.len(), 1);
        let sd = &plan.file_sd[0];
        assert_eq!(sd.files, ["targets/*.json"]);
        assert_eq!(
            sd.matched,
            [
                fixture.dir.join("targets/a.json"),
                fixture.dir.join("targets/b.json")
            ]
        );
        assert_eq!(sd.check, plan.defaults);
        let from_file = target(&plan, "10.0.0.1:9100");
        assert_eq!(from_file.address, "10.0.0.1:9100");
        assert_eq!(from_file.labels, labels(&[("env", "prod")]));
        assert_eq!(from_file.check, plan.defaults);
        assert_eq!(
            target(&plan, "[::1]:9100").labels,
            labels(&[("env", "prod")])
        );
        assert!(target(&plan, "web.internal:80").labels.is_empty());
    }

    #[test]
    fn settings_inherit_and_down_interval_follows_interval() {
        let fixture = Fixture::new("inherit");
        fixture.write(
            "sd/a.json",
            r#"[{"targets": ["10.0.0.9:22"], "labels": {"zone": "b"}}]"#,
        );
        let plan = fixture.load(
            r#"
[defaults]
interval = "5s"
rise = 4

[[targets]]
address = "127.0.0.1:1"

[[targets]]
address = "127.0.0.1:2"
interval = "10s"
check = "connect"

[[targets]]
address = "127.0.0.1:3"
down_interval = "1m30s"
jitter = 0

[modules.slow]
timeout = "3s"

[[file_sd]]
files = ["sd/*.json", "sd/a.json", "missing/*.json"]
check = "hold"
fall = 1
"#,
        );
        assert_eq!(plan.defaults.interval, Duration::from_secs(5));
        assert_eq!(plan.defaults.down_interval, Duration::from_secs(5));
        assert_eq!(plan.defaults.rise, 4);

        let first = &target(&plan, "127.0.0.1:1").check;
        assert_eq!(first.interval, Duration::from_secs(5));
        assert_eq!(first.down_interval, Duration::from_secs(5));
        assert_eq!(first.rise, 4);
        assert_eq!(first.fall, 3);
        assert_eq!(first.kind(), CheckKind::HalfOpen);

        let second = &target(&plan, "127.0.0.1:2").check;
        assert_eq!(second.kind(), CheckKind::Connect);
        assert_eq!(second.interval, Duration::from_secs(10));
        assert_eq!(second.down_interval, Duration::from_secs(10));
        assert_eq!(second.rise, 4);

        let third = &target(&plan, "127.0.0.1:3").check;
        assert_eq!(third.down_interval, Duration::from_secs(90));
        assert_eq!(third.interval, Duration::from_secs(5));
        assert_eq!(third.jitter, 0.0);

        let slow = &plan.modules["slow"];
        assert_eq!(slow.timeout, Some(Duration::from_secs(3)));

        let sd = &plan.file_sd[0];
        assert_eq!(
            sd.matched,
            [fixture.dir.join("sd/a.json")],
            "each file once"
        );
        assert_eq!(sd.check.kind(), CheckKind::Hold);
        assert_eq!(sd.check.fall, 1);
        assert_eq!(sd.check.rise, 4);
        let from_file = target(&plan, "10.0.0.9:22");
        assert_eq!(from_file.check, sd.check);
        assert_eq!(from_file.labels, labels(&[("zone", "b")]));
    }

    #[test]
    fn the_same_address_in_two_groups_files_or_blocks_is_two_targets() {
        let fixture = Fixture::new("same_address");
        fixture.write(
            "sd/a.json",
            r#"[
              {"targets": ["10.0.0.1:80", "10.0.0.2:80"], "labels": {"env": "prod"}},
              {"targets": ["10.0.0.1:80", "10.0.0.1:80"], "labels": {"env": "staging"}}
            ]"#,
        );
        fixture.write("sd/b.json", r#"[{"targets": ["10.0.0.1:80"]}]"#);
        let plan = fixture.load(
            r#"
[[targets]]
name = "10.0.0.2:80"
address = "127.0.0.1:80"

[[file_sd]]
files = ["sd/*.json"]

[[file_sd]]
files = ["sd/b.json"]
check = "connect"
"#,
        );
        let found: Vec<(&str, &str, Option<&str>, CheckKind)> = plan
            .targets
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.address.as_str(),
                    t.labels.get("env").map(String::as_str),
                    t.check.kind(),
                )
            })
            .collect();
        use CheckKind::{Connect, HalfOpen};
        assert_eq!(
            found,
            [
                ("10.0.0.2:80", "127.0.0.1:80", None, HalfOpen),
                // The first to list an address is named by it, as before.
                ("10.0.0.1:80", "10.0.0.1:80", Some("prod"), HalfOpen),
                // A name taken by a [[targets]] table counts as taken.
                (
                    "10.0.0.2:80@sd/a.json#1",
                    "10.0.0.2:80",
                    Some("prod"),
                    HalfOpen
                ),
                // Later ones by the address, the file and the group in it...
                (
                    "10.0.0.1:80@sd/a.json#2",
                    "10.0.0.1:80",
                    Some("staging"),
                    HalfOpen
                ),
                // ... and a count when that is taken too.
                (
                    "10.0.0.1:80@sd/a.json#2-2",
                    "10.0.0.1:80",
                    Some("staging"),
                    HalfOpen
                ),
                ("10.0.0.1:80@sd/b.json#1", "10.0.0.1:80", None, HalfOpen),
                // The same file matched by a second block.
                ("10.0.0.1:80@sd/b.json#1-2", "10.0.0.1:80", None, Connect),
            ]
        );
    }

    #[test]
    fn file_sd_labels_go_on_every_target_and_a_files_own_win() {
        let fixture = Fixture::new("file_sd_labels");
        fixture.write(
            "sd/a.json",
            r#"[
              {"targets": ["10.0.0.1:80"], "labels": {"env": "prod", "__meta_x": "y"}},
              {"targets": ["10.0.0.2:80"]}
            ]"#,
        );
        let plan = fixture.load(
            r#"
[[file_sd]]
files = ["sd/*.json"]
labels = { team = "db", env = "unset" }
"#,
        );
        assert_eq!(
            plan.file_sd[0].labels,
            labels(&[("team", "db"), ("env", "unset")])
        );
        assert_eq!(
            target(&plan, "10.0.0.1:80").labels,
            labels(&[("team", "db"), ("env", "prod")])
        );
        assert_eq!(
            target(&plan, "10.0.0.2:80").labels,
            labels(&[("team", "db"), ("env", "unset")])
        );
    }

    #[test]
    fn kind_specific_settings_of_defaults_serve_only_their_kind() {
        let fixture = Fixture::new("kinds");
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        fixture.write("ca/root.pem", &ca.cert.pem());
        let plan = fixture.load(
            r#"
[defaults]
send = "PING\r\n"
expect = "^\\+PONG"
ca_file = "ca/root.pem"
cert_min_days = 14

[[targets]]
address = "127.0.0.1:6379"
check = "send-expect"

[[targets]]
address = "127.0.0.1:443"
check = "tls"
server_name = "localhost"
insecure = true

[[targets]]
address = "127.0.0.1:80"
"#,
        );
        // Each plan holds its own kind's settings, and no other's: the type says so.
        let redis = &target(&plan, "127.0.0.1:6379").check.check;
        let Check::SendExpect(redis) = redis else {
            panic!("{redis:?}");
        };
        assert_eq!(redis.send.as_deref(), Some(&b"PING\r\n"[..]));
        assert!(redis.expect.is_some());

        let tls = &target(&plan, "127.0.0.1:443").check.check;
        let Check::Tls(tls) = tls else {
            panic!("{tls:?}");
        };
        assert_eq!(tls.server_name.as_deref(), Some("localhost"));
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(fixture.dir.join("ca/root.pem").as_path())
        );
        assert!(tls.insecure);
        assert_eq!(tls.cert_min_days, Some(14));

        // A half-open target carries neither: it compares equal to the built-in plan.
        assert_eq!(target(&plan, "127.0.0.1:80").check, CheckPlan::default());
        assert_eq!(plan.defaults, CheckPlan::default());
    }

    #[test]
    fn a_config_with_no_targets_is_valid() {
        let fixture = Fixture::new("empty");
        for text in [
            "",
            "# nothing\n",
            "[defaults]\n",
            "[modules.m]\ncheck = \"connect\"\n",
        ] {
            let plan = fixture.load(text);
            assert!(plan.targets.is_empty(), "{text:?}");
            assert!(plan.file_sd.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn inline_tables_and_dotted_keys_read_as_their_long_forms() {
        let fixture = Fixture::new("spellings");
        let plan = fixture.load(
            r#"
targets = [
  { address = "127.0.0.1:1", labels.service = "a" },
  { address = "127.0.0.1:2", name = "two" },
]
modules.quick = { timeout = "100ms" }
file_sd = [{ files = [] }]
"#,
        );
        assert_eq!(
            target(&plan, "127.0.0.1:1").labels,
            labels(&[("service", "a")])
        );
        assert_eq!(target(&plan, "two").address, "127.0.0.1:2");
        assert_eq!(
            plan.modules["quick"].timeout,
            Some(Duration::from_millis(100))
        );
        assert!(plan.file_sd[0].matched.is_empty());
    }

    #[test]
    fn file_sd_paths_are_sorted_deduplicated_and_relative_to_the_config() {
        let fixture = Fixture::new("paths");
        let config = fixture.write("watch.toml", "");
        fixture.write("sd/b.json", "[]");
        fixture.write("sd/a.json", "[]");
        std::fs::create_dir_all(fixture.dir.join("sd/folder.json")).unwrap();
        let absolute = fixture.dir.join("sd/a.json").display().to_string();
        let globs = [
            "sd/*.json".to_owned(),
            absolute,
            "none/*.json".to_owned(),
            "[".to_owned(),
        ];
        assert_eq!(
            file_sd_paths(&config, &globs),
            [fixture.dir.join("sd/a.json"), fixture.dir.join("sd/b.json")]
        );
        assert!(file_sd_paths(&config, &[]).is_empty());
        assert!(file_sd_paths(Path::new("/nonexistent/watch.toml"), &globs[..1]).is_empty());
    }

    #[test]
    fn parse_reads_file_sd_relative_to_the_path_it_is_given() {
        let fixture = Fixture::new("parse");
        fixture.write("sd/a.json", r#"[{"targets": ["10.0.0.1:1"]}]"#);
        let path = fixture.dir.join("not-written.toml");
        let plan = connhealth_watch::config::parse(&path, "[[file_sd]]\nfiles = [\"sd/*.json\"]\n")
            .unwrap();
        assert_eq!(plan.targets.len(), 1);
        assert_eq!(plan.source, path);
    }

    #[test]
    fn a_timeout_longer_than_its_interval_is_a_warning_where_it_is_written() {
        let fixture = Fixture::new("timeout-warning");
        let plan = fixture.load(
            r#"[defaults]
interval = "2s"
timeout = "5s"

[[targets]]
address = "127.0.0.1:1"

[[targets]]
address = "127.0.0.1:2"
interval = "10s"

[[targets]]
address = "127.0.0.1:3"
interval = "1s"
timeout = "1s"
"#,
        );
        // Once in [defaults], where it is written; not again for the target that
        // inherits it, nor for those that fix it.
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        let warning = plan.warnings[0].to_string();
        assert!(
            warning.contains("watch.toml:3:11: timeout 5s is longer than interval 2s"),
            "{warning}"
        );
        assert!(
            warning.contains("connhealth_checks_late_total"),
            "{warning}"
        );
        // It still loads: a warning, not an error.
        assert_eq!(plan.targets.len(), 3);

        let plan = fixture.load("[[targets]]\naddress = \"127.0.0.1:1\"\ninterval = \"500ms\"\n");
        assert_eq!(
            plan.warnings.len(),
            1,
            "the built-in 1s timeout, over a 500ms interval"
        );
        assert!(plan.warnings[0]
            .to_string()
            .contains(":3:12: timeout 1s is longer than interval 500ms"));
    }

    #[test]
    fn a_file_sd_block_of_http_checks_lists_urls() {
        let fixture = Fixture::new("file-sd-http");
        fixture.write(
            "sd/web.json",
            r#"[{"targets": ["http://127.0.0.1:8080/healthz", "https://localhost/"]}]"#,
        );
        let plan = fixture.load("[[file_sd]]\nfiles = [\"sd/*.json\"]\ncheck = \"http\"\n");
        let endpoints: Vec<&Endpoint> = plan.targets.iter().map(|t| &t.endpoint).collect();
        assert!(
            endpoints.iter().all(|e| matches!(e, Endpoint::Url(_))),
            "{endpoints:?}"
        );
        assert_eq!(plan.targets[0].name, "http://127.0.0.1:8080/healthz");

        // host:port in a block of http checks, a URL in one of half-open checks: each is
        // an error at its place in the file.
        fixture.write("sd/web.json", r#"[{"targets": ["127.0.0.1:8080"]}]"#);
        fixture.write("sd2/tcp.json", r#"[{"targets": ["http://127.0.0.1/"]}]"#);
        let path = fixture.write(
            "watch.toml",
            "[[file_sd]]\nfiles = [\"sd/*.json\"]\ncheck = \"http\"\n\n[[file_sd]]\nfiles = [\"sd2/*.json\"]\n",
        );
        let errors = load(&path).unwrap_err().0;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].message.contains("has no scheme"), "{}", errors[0]);
        assert!(
            errors[1].message.contains("is not host:port"),
            "{}",
            errors[1]
        );
    }
}
