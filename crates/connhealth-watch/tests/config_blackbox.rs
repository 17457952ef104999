//! `blackbox_config`: blackbox_exporter 0.23's module file, read as it is. A file with the
//! shapes of blackbox's example.yml loads into the expected modules field by field; each
//! kind of error is at its FILE:LINE:COLUMN with a message that says what to write; the
//! modules connhealth does not run are set aside with a warning at their name.

use std::path::PathBuf;
use std::time::Duration;

use connhealth_testkit::TempDir;
use connhealth_watch::config::{
    load, Check, ClientCert, ConfigError, HttpPlan, IpChoice, Module, Plan, StatusRange, TcpPlan,
    TlsPlan, TlsVersion,
};
use http::{HeaderName, HeaderValue, Method};

/// A fresh folder holding `watch.toml`, the blackbox file and whatever else a test writes.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        Fixture {
            dir: TempDir::new(&format!("config-blackbox-{test}")),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        self.dir.write(name, text)
    }

    /// `watch.toml` with `toml`, and `blackbox.yml` with `yaml`: the load's result.
    fn load(&self, toml: &str, yaml: &str) -> Result<Plan, Vec<ConfigError>> {
        self.write("blackbox.yml", yaml);
        let path = self.write("watch.toml", toml);
        load(&path).map_err(|errors| {
            eprintln!("{errors}");
            errors.0
        })
    }

    /// `blackbox.yml` with `yaml`, named by a watch.toml of nothing else: it must load.
    fn plan(&self, yaml: &str) -> Plan {
        self.load(BLACKBOX_ONLY, yaml)
            .unwrap_or_else(|errors| panic!("did not load: {errors:?}"))
    }

    /// As [`Fixture::plan`], but it must fail: its errors.
    fn errors(&self, yaml: &str) -> Vec<ConfigError> {
        match self.load(BLACKBOX_ONLY, yaml) {
            Ok(plan) => panic!("loaded, but should not have: {:?}", plan.modules),
            Err(errors) => errors,
        }
    }
}

const BLACKBOX_ONLY: &str = "blackbox_config = \"blackbox.yml\"\n";

/// Asserts that `err` is at `line`:`column` of a file named `file`, with every one of
/// `words` in its one-line message.
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

/// The only error of a load of `yaml`, which must be at `line`:`column` of blackbox.yml
/// and say `words`.
#[track_caller]
fn one_error(test: &str, yaml: &str, line: usize, column: usize, words: &[&str]) {
    let errors = Fixture::new(test).errors(yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(&errors[0], "blackbox.yml", line, column, words);
}

/// The 1-based line of the first line of `text` that holds `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    1 + text
        .lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the file"))
}

fn http(module: &Module) -> &HttpPlan {
    match &module.check {
        Check::Http(http) => http,
        other => panic!("not http: {other:?}"),
    }
}

fn tcp(module: &Module) -> &TcpPlan {
    match &module.check {
        Check::Tcp(tcp) => tcp,
        other => panic!("not tcp: {other:?}"),
    }
}

fn header(name: &'static str, value: &'static str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

fn patterns(list: &[connhealth_watch::config::Pattern]) -> Vec<&str> {
    list.iter().map(|p| p.0.as_str()).collect()
}

/// A self-signed certificate for `name`: its PEM and its key's.
fn certificate(name: &str) -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    (certified.cert.pem(), certified.key_pair.serialize_pem())
}

/// The shapes of blackbox's example.yml (and a few more), with values of our own.
const EXAMPLE: &str = r#"# A blackbox_exporter module file.
modules:
  web_status:
    prober: http
    timeout: 4s
    http:
      valid_http_versions: ["HTTP/1.1", "HTTP/2.0"]
      valid_status_codes: []  # any 2xx
      method: GET
      headers:
        Host: status.internal
        Accept-Language: fr-FR
      no_follow_redirects: true
      fail_if_ssl: false
      fail_if_not_ssl: yes
      fail_if_body_matches_regexp:
        - "maintenance mode"
      fail_if_body_not_matches_regexp:
        - "^ok"
      fail_if_header_matches:
        - header: Set-Cookie
          allow_missing: true
          regexp: '.*'
      fail_if_header_not_matches:
        - header: Access-Control-Allow-Origin
          regexp: '(\*|status\.internal)'
      tls_config:
        insecure_skip_verify: true
      preferred_ip_protocol: "ip4"
      ip_protocol_fallback: false
  api_post:
    prober: http
    timeout: 1m30s
    http:
      method: POST
      headers:
        Content-Type: application/json
      body: '{"ping": true}'
      valid_status_codes: [200, 202]
      follow_redirects: false
  login_basic_auth:
    prober: http
    http:
      headers:
        Host: "login.internal"
      basic_auth:
        username: "prober"
        password: "s3cret "
  token_api:
    prober: http
    http:
      bearer_token: tok-123
  own_authorization:
    prober: http
    http:
      headers:
        Authorization: "Token abc"
      bearer_token: ignored
  custom_ca:
    prober: http
    http:
      tls_config:
        ca_file: "certs/ca.pem"
        cert_file: certs/client.pem
        key_file: certs/client.key
        server_name: api.internal
        min_version: TLS12
        max_version: TLS13
  http_2xx:
    prober: http
    timeout: 2s
  tls_connect:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
      tls_config:
        min_version: TLS13
  tcp_plain:
    prober: tcp
  imap_starttls:
    prober: tcp
    timeout: 500ms
    tcp:
      query_response:
        - expect: "OK.*STARTTLS"
        - send: ". STARTTLS"
        - expect: "OK"
        - starttls: true
        - send: ". capability"
        - expect: "CAPABILITY IMAP4rev1"
  irc_banner:
    prober: tcp
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - send: "NICK prober"
        - expect: "PING :([^ ]+)"
          send: "PONG ${1}"
  icmp_ping:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: "ip4"
      ttl: 32
  dns_lookup:
    prober: dns
    dns:
      query_name: "example.internal"
      query_type: "A"
      valid_rcodes: [NOERROR]
      validate_answer_rrs:
        fail_if_matches_regexp: [".*127.0.0.1"]
  via_proxy:
    prober: http
    http:
      proxy_url: "http://127.0.0.1:3128"
      skip_resolve_phase_with_proxy: true
  gzip_body:
    prober: http
    http:
      compression: gzip
      body_size_limit: 1MB
  bound_source:
    prober: tcp
    tcp:
      source_ip_address: 127.0.0.1
  legacy_tls:
    prober: tcp
    tcp:
      tls: true
      tls_config:
        min_version: TLS10
"#;

/// Named `config` so that `cargo test -p connhealth-watch --test 'config_*' --lib config`
/// runs them: its filter matches test paths.
mod config {
    use super::*;

    #[test]
    fn a_file_of_example_shapes_loads_into_modules_field_by_field() {
        let fixture = Fixture::new("example");
        let (ca, _) = certificate("ca.internal");
        let (client, client_key) = certificate("prober.internal");
        let ca_path = fixture.write("certs/ca.pem", &ca);
        let cert_path = fixture.write("certs/client.pem", &client);
        let key_path = fixture.write("certs/client.key", &client_key);
        let toml = "blackbox_config = \"blackbox.yml\"\n\
                    [modules.redis_ping]\n\
                    check = \"send-expect\"\n\
                    send = \"PING\\r\\n\"\n\
                    expect = \"^\\\\+PONG\"\n";
        let plan = fixture
            .load(toml, EXAMPLE)
            .unwrap_or_else(|errors| panic!("did not load: {errors:?}"));
        assert_eq!(plan.blackbox_config, Some(fixture.dir.join("blackbox.yml")));
        let names: Vec<&str> = plan.modules.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "api_post",
                "custom_ca",
                "http_2xx",
                "imap_starttls",
                "irc_banner",
                "login_basic_auth",
                "own_authorization",
                "redis_ping",
                "tcp_plain",
                "tls_connect",
                "token_api",
                "web_status",
            ]
        );

        // Every http field of blackbox's HTTPProbe.
        let web = &plan.modules["web_status"];
        assert_eq!(web.timeout, Some(Duration::from_secs(4)));
        let web = http(web);
        assert_eq!(web.method, Method::GET);
        assert_eq!(
            web.headers,
            [
                header("host", "status.internal"),
                header("accept-language", "fr-FR")
            ]
        );
        assert_eq!(web.body, b"");
        assert_eq!(
            web.valid_status,
            [StatusRange {
                low: 200,
                high: 299
            }]
        );
        assert_eq!(web.valid_http_versions, ["HTTP/1.1", "HTTP/2.0"]);
        assert!(!web.fail_if_ssl);
        assert!(web.fail_if_not_ssl, "yes is true, as in YAML 1.1");
        assert!(!web.follow_redirects, "no_follow_redirects: true");
        assert!(
            !web.reuse_connection,
            "blackbox opens a connection per probe"
        );
        assert_eq!(web.expect, None);
        assert_eq!(patterns(&web.fail_if_body_matches), ["maintenance mode"]);
        assert_eq!(patterns(&web.fail_if_body_not_matches), ["^ok"]);
        assert_eq!(web.fail_if_header_matches.len(), 1);
        let cookie = &web.fail_if_header_matches[0];
        assert_eq!(cookie.header, "set-cookie");
        assert_eq!(cookie.regexp.0.as_str(), ".*");
        assert!(cookie.allow_missing);
        let origin = &web.fail_if_header_not_matches[0];
        assert_eq!(origin.header, "access-control-allow-origin");
        assert_eq!(origin.regexp.0.as_str(), r"(\*|status\.internal)");
        assert!(!origin.allow_missing);
        assert_eq!(
            web.ip,
            IpChoice::Prefer {
                preferred: 4,
                fallback: false
            }
        );
        assert_eq!(
            web.tls,
            TlsPlan {
                insecure: true,
                ..TlsPlan::default()
            }
        );

        let post = &plan.modules["api_post"];
        assert_eq!(post.timeout, Some(Duration::from_secs(90)));
        let post = http(post);
        assert_eq!(post.method, Method::POST);
        assert_eq!(post.headers, [header("content-type", "application/json")]);
        assert_eq!(post.body, br#"{"ping": true}"#);
        assert_eq!(
            post.valid_status,
            [
                StatusRange {
                    low: 200,
                    high: 200
                },
                StatusRange {
                    low: 202,
                    high: 202
                }
            ]
        );
        assert!(!post.follow_redirects);
        assert_eq!(post.ip, IpChoice::BLACKBOX);

        // basic_auth and bearer_token become an Authorization header, after the module's
        // own (prometheus/common trims the password); one written in `headers` wins.
        let login = http(&plan.modules["login_basic_auth"]);
        assert_eq!(
            login.headers,
            [
                header("host", "login.internal"),
                header("authorization", "Basic cHJvYmVyOnMzY3JldA==")
            ]
        );
        assert!(login.follow_redirects, "blackbox's default");
        let token = http(&plan.modules["token_api"]);
        assert_eq!(token.headers, [header("authorization", "Bearer tok-123")]);
        let own = http(&plan.modules["own_authorization"]);
        assert_eq!(own.headers, [header("authorization", "Token abc")]);

        // Paths are relative to the blackbox file's folder.
        assert_eq!(
            http(&plan.modules["custom_ca"]).tls,
            TlsPlan {
                server_name: Some("api.internal".to_owned()),
                ca_file: Some(ca_path),
                insecure: false,
                cert_min_days: None,
                client_cert: Some(ClientCert {
                    cert_file: cert_path,
                    key_file: key_path,
                }),
                min_version: Some(TlsVersion::Tls12),
                max_version: Some(TlsVersion::Tls13),
            }
        );

        // blackbox's own module names: the file's definition wins over the built-in.
        let http_2xx = &plan.modules["http_2xx"];
        assert_eq!(http_2xx.timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            *http(http_2xx),
            HttpPlan {
                ip: IpChoice::BLACKBOX,
                reuse_connection: false,
                ..HttpPlan::default()
            }
        );

        // tcp.
        let tls_connect = &plan.modules["tls_connect"];
        assert_eq!(tls_connect.timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            *tcp(tls_connect),
            TcpPlan {
                tls: true,
                tls_config: TlsPlan {
                    min_version: Some(TlsVersion::Tls13),
                    ..TlsPlan::default()
                },
                ..TcpPlan::default()
            }
        );
        let plain = &plan.modules["tcp_plain"];
        assert_eq!(plain.timeout, None, "the scrape's timeout decides");
        assert_eq!(*tcp(plain), TcpPlan::default());
        assert_eq!(tcp(plain).ip, IpChoice::BLACKBOX);

        let imap = &plan.modules["imap_starttls"];
        assert_eq!(imap.timeout, Some(Duration::from_millis(500)));
        let steps: Vec<(Option<&str>, &str, bool)> = tcp(imap)
            .query_response
            .iter()
            .map(|s| {
                (
                    s.expect.as_ref().map(|e| e.0.as_str()),
                    s.send.as_str(),
                    s.starttls,
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                (Some("OK.*STARTTLS"), "", false),
                (None, ". STARTTLS", false),
                (Some("OK"), "", false),
                (None, "", true),
                (None, ". capability", false),
                (Some("CAPABILITY IMAP4rev1"), "", false),
            ]
        );
        let irc = tcp(&plan.modules["irc_banner"]);
        assert_eq!(
            irc.ip,
            IpChoice::Prefer {
                preferred: 4,
                fallback: true
            }
        );
        let steps: Vec<(Option<&str>, &str)> = irc
            .query_response
            .iter()
            .map(|s| (s.expect.as_ref().map(|e| e.0.as_str()), s.send.as_str()))
            .collect();
        assert_eq!(
            steps,
            [(None, "NICK prober"), (Some("PING :([^ ]+)"), "PONG ${1}")]
        );

        // What connhealth does not run: set aside, each with a warning at its name.
        let unsupported: Vec<(&str, &str)> = plan
            .unsupported_modules
            .iter()
            .map(|(name, what)| (name.as_str(), what.as_str()))
            .collect();
        assert_eq!(
            unsupported,
            [
                ("bound_source", "`tcp.source_ip_address`"),
                ("dns_lookup", "blackbox's dns prober"),
                ("gzip_body", "`http.compression`, `http.body_size_limit`"),
                ("icmp_ping", "blackbox's icmp prober"),
                ("legacy_tls", "`tcp.tls_config.min_version: TLS10`"),
                ("via_proxy", "`http.proxy_url`"),
            ]
        );
        let warnings = &plan.warnings;
        assert_eq!(warnings.len(), 7, "{warnings:#?}");
        assert_at(
            &warnings[0],
            "blackbox.yml",
            line_of(EXAMPLE, "no_follow_redirects"),
            28,
            &[
                "`no_follow_redirects` is deprecated",
                "write follow_redirects: false instead",
            ],
        );
        for (warning, (name, words)) in warnings[1..].iter().zip([
            ("icmp_ping", "uses blackbox's icmp prober, which connhealth does not run: /probe?module=icmp_ping will answer 400"),
            ("dns_lookup", "uses blackbox's dns prober"),
            ("via_proxy", "uses `http.proxy_url`, which connhealth does not implement: /probe?module=via_proxy will answer 400"),
            ("gzip_body", "uses `http.compression`, `http.body_size_limit`"),
            ("bound_source", "uses `tcp.source_ip_address`"),
            ("legacy_tls", "write TLS12 or TLS13"),
        ]) {
            let line = line_of(EXAMPLE, &format!("  {name}:"));
            assert_at(warning, "blackbox.yml", line, 3, &[&format!("module `{name}`"), words]);
        }
    }

    #[test]
    fn a_blackbox_file_beside_the_config_in_a_folder_resolves_its_paths_there() {
        let fixture = Fixture::new("folder");
        let (ca, _) = certificate("ca.internal");
        let ca_path = fixture.write("blackbox/ca.pem", &ca);
        fixture.write(
            "blackbox/blackbox.yml",
            "modules:\n  https:\n    prober: http\n    http:\n      tls_config: {ca_file: ca.pem}\n",
        );
        let path = fixture.write(
            "watch.toml",
            "blackbox_config = \"blackbox/blackbox.yml\"\n",
        );
        let plan = load(&path).unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(http(&plan.modules["https"]).tls.ca_file, Some(ca_path));
        assert_eq!(
            plan.blackbox_config,
            Some(fixture.dir.join("blackbox/blackbox.yml"))
        );
    }

    #[test]
    fn an_empty_file_or_modules_has_no_modules() {
        let fixture = Fixture::new("empty");
        for yaml in ["", "# nothing yet\n", "modules:\n", "modules: {}\n"] {
            let plan = fixture.plan(yaml);
            assert!(plan.modules.is_empty() && plan.unsupported_modules.is_empty());
        }
    }

    #[test]
    fn each_unsupported_key_sets_its_module_aside() {
        let cases = [
            (
                "tcp:\n      source_ip_address: 10.1.2.3",
                "`tcp.source_ip_address`",
                "tcp",
            ),
            ("http:\n      compression: br", "`http.compression`", "http"),
            (
                "http:\n      body_size_limit: 10MB",
                "`http.body_size_limit`",
                "http",
            ),
            (
                "http:\n      proxy_url: http://proxy:3128",
                "`http.proxy_url`",
                "http",
            ),
            (
                "http:\n      oauth2: {client_id: a, client_secret: b, token_url: http://t}",
                "`http.oauth2`",
                "http",
            ),
            (
                "http:\n      basic_auth: {username: a, password_file: pw}",
                "`http.basic_auth.password_file`",
                "http",
            ),
            (
                "http:\n      authorization: {credentials_file: token}",
                "`http.authorization.credentials_file`",
                "http",
            ),
            (
                "http:\n      bearer_token_file: token",
                "`http.bearer_token_file`",
                "http",
            ),
            (
                "http:\n      tls_config: {max_version: TLS11}",
                "`http.tls_config.max_version: TLS11`",
                "http",
            ),
        ];
        let fixture = Fixture::new("unsupported");
        for (settings, what, prober) in cases {
            let yaml = format!("modules:\n  m:\n    prober: {prober}\n    {settings}\n");
            let plan = fixture.plan(&yaml);
            assert!(plan.modules.is_empty(), "{yaml}");
            assert_eq!(plan.unsupported_modules["m"], what, "{yaml}");
            assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
            assert_at(
                &plan.warnings[0],
                "blackbox.yml",
                2,
                3,
                &["module `m` uses", what, "/probe?module=m will answer 400"],
            );
        }
        // Values that change nothing are not a use: an empty compression, a zero limit.
        let plan = fixture.plan(
            "modules:\n  m:\n    prober: http\n    http:\n      compression: ''\n      body_size_limit: 0\n      enable_http2: false\n",
        );
        assert!(
            plan.modules.contains_key("m"),
            "{:?}",
            plan.unsupported_modules
        );
    }

    #[test]
    fn settings_of_another_prober_are_a_warning() {
        let fixture = Fixture::new("other-prober");
        let plan = fixture.plan("modules:\n  m:\n    prober: tcp\n    http:\n      method: POST\n");
        assert!(plan.modules.contains_key("m"));
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert_at(
            &plan.warnings[0],
            "blackbox.yml",
            5,
            7,
            &[
                "module `m` has prober: tcp, so its `http` settings are never used",
                "set prober: http",
            ],
        );
        let plan = fixture.plan(
            "modules:\n  m:\n    prober: http\n    http:\n      preferred_ip_protocol: ipv4\n",
        );
        assert_eq!(
            http(&plan.modules["m"]).ip,
            IpChoice::Prefer {
                preferred: 4,
                fallback: true
            }
        );
        assert_at(
            &plan.warnings[0],
            "blackbox.yml",
            5,
            30,
            &["\"ipv4\" is read as ip4", "write ip4 or ip6"],
        );
        let plan = fixture.plan("modules:\n  m:\n    prober: tcp\n    timeout: -1s\n");
        assert_eq!(plan.modules["m"].timeout, None);
        assert_at(
            &plan.warnings[0],
            "blackbox.yml",
            4,
            14,
            &["a negative timeout is no timeout"],
        );
        let plan = fixture.plan("modules:\n  m:\n    prober: tcp\n    timeout: '0'\n");
        assert_eq!(plan.modules["m"].timeout, None);
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn unknown_keys_name_the_mapping_its_keys_and_the_closest() {
        one_error(
            "unknown-tcp",
            "modules:\n  m:\n    prober: tcp\n    tcp:\n      tlss: true\n",
            5,
            7,
            &[
                "unknown key `tlss` in `tcp`; did you mean `tls`?",
                "The keys in `tcp` are: preferred_ip_protocol, ip_protocol_fallback, source_ip_address, query_response, tls, tls_config",
            ],
        );
        one_error(
            "unknown-elsewhere",
            "modules:\n  m:\n    prober: tcp\n    tls_config: {}\n",
            4,
            5,
            &["unknown key `tls_config` in a module: it belongs in `http`, or in `oauth2`, or in `tcp`"],
        );
        one_error(
            "unknown-later",
            "modules:\n  m:\n    prober: http\n    http:\n      no_proxy: localhost\n",
            5,
            7,
            &["unknown key `no_proxy` in `http`: it came with a later blackbox"],
        );
        one_error(
            "unknown-top",
            "module:\n  m:\n    prober: tcp\n",
            1,
            1,
            &["unknown key `module` at the top of a blackbox file; did you mean `modules`?"],
        );
        // Each mapping names itself.
        let places = [
            ("http:\n      x: 1", "in `http`"),
            (
                "http:\n      fail_if_header_matches: [{x: 1}]",
                "in a `fail_if_header_matches` or `fail_if_header_not_matches` entry",
            ),
            ("http:\n      basic_auth: {x: 1}", "in `basic_auth`"),
            ("http:\n      authorization: {x: 1}", "in `authorization`"),
            ("http:\n      oauth2: {x: 1}", "in `oauth2`"),
            ("http:\n      tls_config: {x: 1}", "in `tls_config`"),
            (
                "tcp:\n      query_response: [{x: 1}]",
                "in a `query_response` entry",
            ),
            ("icmp:\n      x: 1", "in `icmp`"),
            ("dns:\n      x: 1", "in `dns`"),
            (
                "dns:\n      validate_answer_rrs: {x: 1}",
                "in `validate_answer_rrs`",
            ),
            ("grpc:\n      x: 1", "in `grpc`"),
        ];
        let fixture = Fixture::new("unknown-places");
        for (settings, place) in places {
            let errors = fixture.errors(&format!(
                "modules:\n  m:\n    prober: tcp\n    {settings}\n"
            ));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                errors[0]
                    .message
                    .starts_with(&format!("unknown key `x` {place}")),
                "{}",
                errors[0]
            );
        }
    }

    #[test]
    fn values_of_the_wrong_type_say_what_the_key_takes() {
        one_error(
            "type-codes",
            "modules:\n  m:\n    prober: http\n    http:\n      valid_status_codes: 200\n",
            5,
            27,
            &[
                "`valid_status_codes` must be a list of status codes",
                "write e.g. valid_status_codes: [200, 204]",
            ],
        );
        one_error(
            "type-code",
            "modules:\n  m:\n    prober: http\n    http:\n      valid_status_codes:\n        - 200\n        - two hundred\n",
            7,
            11,
            &["`valid_status_codes` must be a list of status codes"],
        );
        one_error(
            "type-bool",
            "modules:\n  m:\n    prober: tcp\n    tcp:\n      tls: maybe\n",
            5,
            12,
            &["`tls` must be true or false", "write e.g. tls: true"],
        );
        one_error(
            "type-module",
            "modules:\n  m: [tcp]\n",
            2,
            6,
            &[
                "`m` must be a module (a mapping)",
                "write e.g. m: {prober: tcp}",
            ],
        );
    }

    #[test]
    fn bad_values_say_what_to_write() {
        one_error(
            "duration-bare",
            "modules:\n  m:\n    prober: tcp\n    timeout: 5\n",
            4,
            14,
            &["timeout 5 has no unit", "timeout: 5s"],
        );
        one_error(
            "duration-days",
            "modules:\n  m:\n    prober: tcp\n    timeout: 1d\n",
            4,
            14,
            &["timeout \"1d\" has the unit \"d\"", "h, m, s, ms, us, ns"],
        );
        one_error(
            "duration-long",
            "modules:\n  m:\n    prober: tcp\n    timeout: 1000h\n",
            4,
            14,
            &["the timeout is longer than 30 days", "timeout: 5s"],
        );
        one_error(
            "name-twice",
            "modules:\n  1:\n    prober: tcp\n  \"1\":\n    prober: tcp\n",
            4,
            3,
            &[
                "module `1` is defined twice in this file",
                "rename one of them",
            ],
        );
        one_error(
            "regex",
            "modules:\n  m:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: \"^(+OK\"\n",
            6,
            19,
            &["\"^(+OK\" is not a valid regex: repetition operator missing expression", "fix the pattern"],
        );
        one_error(
            "tls-version",
            "modules:\n  m:\n    prober: tcp\n    tcp:\n      tls_config:\n        min_version: TLS1.2\n",
            6,
            22,
            &["\"TLS1.2\" is not a TLS version blackbox knows; write TLS12 or TLS13"],
        );
        one_error(
            "prober-unknown",
            "modules:\n  m:\n    prober: htp\n",
            3,
            13,
            &["unknown prober \"htp\"; did you mean http? write one of: http, tcp, icmp, dns, grpc"],
        );
        one_error(
            "prober-missing",
            "modules:\n  m:\n    timeout: 5s\n",
            2,
            3,
            &["module `m` has no `prober`; add one below it, e.g. prober: tcp"],
        );
        one_error(
            "module-empty",
            "modules:\n  m:\n",
            2,
            3,
            &["module `m` is empty; give it a prober below it"],
        );
    }

    #[test]
    fn yaml_errors_are_where_the_parser_stopped() {
        one_error(
            "syntax",
            "modules:\n  m:\n    prober: 'tcp\n",
            3,
            13,
            &["this is not valid YAML", "fix the YAML here"],
        );
        one_error(
            "duplicate",
            "modules:\n  m:\n    prober: tcp\n  m:\n    prober: http\n",
            4,
            3,
            &["`m` is written twice in one mapping", "keep one of them"],
        );
    }

    #[test]
    fn every_problem_after_reading_is_reported_in_file_order() {
        let fixture = Fixture::new("semantic");
        let (cert, _) = certificate("prober.internal");
        fixture.write("client.pem", &cert);
        let yaml = "modules:\n\
                    \x20 a:\n\
                    \x20   prober: http\n\
                    \x20   http:\n\
                    \x20     method: \"GE T\"\n\
                    \x20     headers:\n\
                    \x20       \"Bad Header\": x\n\
                    \x20     valid_status_codes: [200, 1000]\n\
                    \x20     fail_if_header_matches:\n\
                    \x20       - header: Set-Cookie\n\
                    \x20     tls_config:\n\
                    \x20       ca_file: missing.pem\n\
                    \x20       cert_file: client.pem\n\
                    \x20       server_name: \"not a name\"\n\
                    \x20       min_version: TLS13\n\
                    \x20       max_version: TLS12\n\
                    \x20 b:\n\
                    \x20   prober: http\n\
                    \x20   http:\n\
                    \x20     basic_auth: {username: a, password: b}\n\
                    \x20     bearer_token: c\n\
                    \x20 c:\n\
                    \x20   prober: dns\n\
                    \x20   dns:\n\
                    \x20     query_type: A\n\
                    \x20 d:\n\
                    \x20   prober: icmp\n\
                    \x20   icmp: {ttl: 300}\n\
                    \x20 e:\n\
                    \x20   prober: http\n\
                    \x20   http:\n\
                    \x20     authorization: {type: basic, credentials: x}\n";
        let errors = fixture.errors(yaml);
        let expected: [(usize, usize, &[&str]); 12] = [
            (
                5,
                15,
                &[
                    "method \"GE T\" is not an HTTP method",
                    "write e.g. method: GET",
                ],
            ),
            (
                7,
                9,
                &["header name \"Bad Header\" is not a valid HTTP header name"],
            ),
            (
                8,
                33,
                &["1000 in `valid_status_codes` is not an HTTP status code"],
            ),
            (
                10,
                11,
                &[
                    "this `fail_if_header_matches` entry has no `regexp`",
                    "regexp: '.*'",
                ],
            ),
            (
                12,
                18,
                &[
                    "ca_file \"missing.pem\"",
                    "does not exist",
                    "relative to the blackbox file's folder",
                ],
            ),
            (
                13,
                20,
                &[
                    "`http.tls_config.cert_file` is set without `key_file`",
                    "add key_file:",
                ],
            ),
            (
                14,
                22,
                &["server_name \"not a name\" is neither a DNS name nor an IP address"],
            ),
            (15, 22, &["min_version is above max_version"]),
            (21, 21, &["`basic_auth` and a bearer token are both set"]),
            (
                25,
                7,
                &["`dns` has no `query_name`", "query_name: example.com"],
            ),
            (28, 17, &["ttl 300 is outside 0 to 255", "ttl: 64"]),
            (
                32,
                29,
                &[
                    "authorization type cannot be \"basic\"",
                    "write basic_auth:",
                ],
            ),
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (err, (line, column, words)) in errors.iter().zip(expected) {
            assert_at(err, "blackbox.yml", line, column, words);
        }
    }

    #[test]
    fn the_file_is_named_where_blackbox_config_is_written() {
        let fixture = Fixture::new("missing");
        let path = fixture.write("watch.toml", "blackbox_config = \"nowhere.yml\"\n");
        let errors = load(&path).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_at(
            &errors[0],
            "watch.toml",
            1,
            19,
            &[
                "blackbox_config \"nowhere.yml\"",
                "does not exist",
                "relative to this file's folder",
            ],
        );
        let path = fixture.write("watch.toml", "blackbox_config = 1\n");
        let errors = load(&path).unwrap_err().0;
        assert_at(
            &errors[0],
            "watch.toml",
            1,
            19,
            &[
                "`blackbox_config` must be a string (a path), not an integer",
                "blackbox_config = \"blackbox.yml\"",
            ],
        );
        let path = fixture.write("watch.toml", "blackbox_config = \"\"\n");
        let errors = load(&path).unwrap_err().0;
        assert_at(
            &errors[0],
            "watch.toml",
            1,
            19,
            &["`blackbox_config` is empty"],
        );
        let path = fixture.write("watch.toml", "[defaults]\nblackbox_config = \"b.yml\"\n");
        let errors = load(&path).unwrap_err().0;
        assert_at(
            &errors[0],
            "watch.toml",
            2,
            1,
            &["unknown key `blackbox_config` in [defaults]: `blackbox_config` belongs at the top level, above the first [section]"],
        );
        std::fs::write(fixture.dir.join("latin1.yml"), b"modules:\n  caf\xe9:\n").unwrap();
        let path = fixture.write("watch.toml", "blackbox_config = \"latin1.yml\"\n");
        let errors = load(&path).unwrap_err().0;
        assert_at(
            &errors[0],
            "latin1.yml",
            2,
            6,
            &["not UTF-8", "save it as UTF-8"],
        );
    }

    #[test]
    fn a_module_in_both_files_is_an_error_at_the_tomls_naming_both() {
        let fixture = Fixture::new("both");
        let toml = "blackbox_config = \"blackbox.yml\"\n\n[modules.banner]\ncheck = \"connect\"\n";
        let yaml = "modules:\n  icmp_only:\n    prober: icmp\n  banner:\n    prober: tcp\n";
        let errors = fixture.load(toml, yaml).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let blackbox = fixture.dir.join("blackbox.yml");
        assert_at(
            &errors[0],
            "watch.toml",
            3,
            10,
            &[
                &format!(
                    "module `banner` is defined here and in {}:4:3",
                    blackbox.display()
                ),
                "rename or remove one of them",
            ],
        );
        // The TOML still may not take a built-in name; the blackbox file may.
        let errors = fixture
            .load("[modules.tcp_connect]\ncheck = \"connect\"\n", "")
            .unwrap_err();
        assert_at(
            &errors[0],
            "watch.toml",
            1,
            10,
            &["`tcp_connect` is a built-in /probe module"],
        );
    }
}
