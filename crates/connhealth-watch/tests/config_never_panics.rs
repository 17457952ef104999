//! `parse` never panics, whatever the text: every prefix of a config that uses every
//! key, and the config with each character removed, parse to a plan or to errors, and
//! every error has a place and a one-line message. The same for a file_sd file, and for a
//! `blackbox_config` file.

use connhealth_watch::config::{parse, ConfigErrors};

const CONFIG: &str = r#"
[defaults]
check = "half-open"
interval = "2s"
fast_interval = "500ms"
down_interval = "2s"
timeout = "1s"
rise = 2
fall = 3
jitter = 0.1
send = "PING\r\n"
expect = "^\\+PONG"
quit = "QUIT\r\n"
server_name = "é.example"
ca_file = "missing.pem"
insecure = false
cert_min_days = 14

[[targets]]
name = "cache-ü"
address = "[::1]:6379"
labels = { service = "cache", "zone-😀" = "a" }
check = "send-expect"

[modules.redis_ping]
check = "tls"

[[file_sd]]
files = ["sd/*.json", "[", "*.yml"]
timeout = 1979-05-27T07:32:00Z
"#;

const JSON: &str = r#"[{"targets": ["10.0.0.1:1", "é:2", "[::1]:3", 4],
  "labels": {"__meta": "x", "zone": "a", "bad-ü": 1}}, 5, {"targets": null}]"#;

/// A blackbox file that uses every prober and most keys.
const YAML: &str = r#"modules:
  web: &web
    prober: http
    timeout: 1.5s
    http:
      valid_status_codes: [200, 204]
      valid_http_versions: ["HTTP/1.1"]
      method: PÖST
      headers: {Host: é.example, "X-😀": ~}
      fail_if_body_matches_regexp: ["(a|b"]
      fail_if_header_matches: [{header: Set-Cookie, regexp: '.*', allow_missing: yes}]
      basic_auth: {username: u, password: p}
      tls_config: {ca_file: missing.pem, min_version: TLS10, server_name: é.example}
      preferred_ip_protocol: ip5
  copy:
    <<: *web
    timeout: -3s
  banner:
    prober: tcp
    tcp:
      query_response:
        - expect: "^220 (.+)$"
          send: "EHLO ${1}"
        - starttls: true
      tls_config: {cert_file: c.pem}
  ping: {prober: icmp, icmp: {ttl: 300}}
  dns: {prober: dns, dns: {query_name: x}}
  1: {prober: grpc}
  "1": {prober: tcp}
"#;

#[track_caller]
fn check(result: Result<connhealth_watch::config::Plan, ConfigErrors>) {
    if let Err(errors) = result {
        for err in &errors.0 {
            assert!(err.line >= 1 && err.column >= 1, "{err}");
            assert!(!err.message.contains('\n'), "{err}");
        }
    }
}

/// Every prefix, and every one-character deletion, of `text`.
fn mangled(text: &str) -> impl Iterator<Item = String> + '_ {
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let prefixes = boundaries.clone().into_iter().map(|i| text[..i].to_owned());
    let deletions = text.char_indices().map(|(i, c)| {
        let mut s = text.to_owned();
        s.replace_range(i..i + c.len_utf8(), "");
        s
    });
    prefixes.chain(deletions)
}

mod config {
    use super::*;

    #[test]
    fn mangled_configs_do_not_panic() {
        let path = std::env::temp_dir().join("connhealth-config-never-panics/watch.toml");
        for text in mangled(CONFIG) {
            check(parse(&path, &text));
        }
        let deep = format!("x = {}", "[{a=".repeat(10_000));
        check(parse(&path, &deep));
    }

    #[test]
    fn mangled_file_sd_files_do_not_panic() {
        let dir = connhealth_testkit::TempDir::new("config-never-panics");
        std::fs::create_dir_all(dir.join("sd")).unwrap();
        let path = dir.join("watch.toml");
        let config = "[[file_sd]]\nfiles = [\"sd/*.json\"]\n";
        for text in mangled(JSON) {
            std::fs::write(dir.join("sd/a.json"), &text).unwrap();
            check(parse(&path, config));
        }
        std::fs::write(dir.join("sd/a.json"), b"[\"\xff\"]").unwrap();
        check(parse(&path, config));
        std::fs::write(dir.join("sd/a.json"), "[".repeat(100_000)).unwrap();
        check(parse(&path, config));
    }

    #[test]
    fn mangled_blackbox_files_do_not_panic() {
        let dir = connhealth_testkit::TempDir::new("config-never-panics-blackbox");
        let path = dir.join("watch.toml");
        let config = "blackbox_config = \"blackbox.yml\"\n";
        for text in mangled(YAML) {
            std::fs::write(dir.join("blackbox.yml"), &text).unwrap();
            check(parse(&path, config));
        }
        for deep in [
            "[".repeat(100_000),
            "{a: ".repeat(100_000),
            "- ".repeat(100_000),
        ] {
            std::fs::write(dir.join("blackbox.yml"), deep).unwrap();
            check(parse(&path, config));
        }
        std::fs::write(dir.join("blackbox.yml"), b"modules:\n  \xff: {}\n").unwrap();
        check(parse(&path, config));
    }
}
