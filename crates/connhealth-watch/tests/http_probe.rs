//! `/probe`: one check now, in blackbox_exporter's format, and a 400 that says what to
//! write for every request it cannot run.

mod http_support;

use std::time::{Duration, UNIX_EPOCH};

use connhealth_watch::checks::{CheckResult, Outcome};
use connhealth_watch::config::{Check, CheckKind, Module, Pattern, SendExpectPlan};
use connhealth_watch::http::probe::{probe_timeout, render};
use http_support::{fleet, sample, Server};

/// A port where nothing listens.
fn closed_port() -> u16 {
    connhealth_testkit::closed_port().port()
}

fn redis_ping() -> Module {
    Module {
        check: Check::SendExpect(SendExpectPlan {
            send: Some(b"PING\r\n".to_vec()),
            expect: Some(Pattern(regex::bytes::Regex::new("^\\+PONG").unwrap())),
            quit: None,
        }),
        timeout: Some(Duration::from_secs(1)),
    }
}

#[tokio::test]
async fn a_listening_port_is_a_success_over_ipv4() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = Server::start(fleet(Vec::new())).await;
    let target = listener.local_addr().unwrap();
    for module in [
        "",
        "&module=half_open",
        "&module=connect",
        "&module=tcp_connect",
    ] {
        let reply = server.get(&format!("/probe?target={target}{module}")).await;
        assert_eq!(reply.status, 200, "{module}: {}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let body = &reply.body;
        assert_eq!(sample(body, "probe_success"), Some(1.0), "{module}: {body}");
        assert!(
            sample(body, "probe_duration_seconds").unwrap() > 0.0,
            "{body}"
        );
        assert_eq!(sample(body, "probe_ip_protocol"), Some(4.0), "{body}");
        assert_eq!(sample(body, "probe_dns_lookup_time_seconds"), Some(0.0));
        // FNV-1a of 127.0.0.1, as blackbox hashes it.
        assert_eq!(sample(body, "probe_ip_addr_hash"), Some(3_668_918_509.0));
        // blackbox's tcp prober always says whether its regex failed; ours only where
        // there is a regex.
        let regex = module.ends_with("tcp_connect").then_some(0.0);
        assert_eq!(sample(body, "probe_failed_due_to_regex"), regex, "{module}");
    }
}

#[tokio::test]
async fn a_closed_port_is_a_failure() {
    let server = Server::start(fleet(Vec::new())).await;
    let port = closed_port();
    for module in ["half_open", "connect"] {
        let reply = server
            .get(&format!("/probe?target=127.0.0.1:{port}&module={module}"))
            .await;
        assert_eq!(
            reply.status, 200,
            "a failed probe is still a 200, as in blackbox"
        );
        assert_eq!(
            sample(&reply.body, "probe_success"),
            Some(0.0),
            "{}",
            reply.body
        );
        assert_eq!(sample(&reply.body, "probe_ip_protocol"), Some(4.0));
    }
}

#[tokio::test]
async fn ipv6_loopback_reports_ip_protocol_6() {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        assert!(
            !connhealth_testkit::in_ci(),
            "::1 must be available under CI"
        );
        eprintln!("skipping: no IPv6 loopback here");
        return;
    };
    let server = Server::start(fleet(Vec::new())).await;
    let port = listener.local_addr().unwrap().port();
    let reply = server.get(&format!("/probe?target=[::1]:{port}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        sample(&reply.body, "probe_success"),
        Some(1.0),
        "{}",
        reply.body
    );
    assert_eq!(sample(&reply.body, "probe_ip_protocol"), Some(6.0));
}

#[tokio::test]
async fn a_module_of_the_config_is_used() {
    let mut fleet = fleet(Vec::new());
    fleet.modules.insert("redis_ping".into(), redis_ping());
    let server = Server::start(fleet).await;
    let port = closed_port();
    let reply = server
        .get(&format!("/probe?target=127.0.0.1:{port}&module=redis_ping"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(sample(&reply.body, "probe_success"), Some(0.0));
    assert_eq!(
        sample(&reply.body, "probe_failed_due_to_regex"),
        Some(0.0),
        "a send-expect module reports the regex, as blackbox's tcp prober does: {}",
        reply.body
    );
}

#[tokio::test]
async fn every_request_it_cannot_run_is_a_400_that_says_what_to_write() {
    let mut fleet = fleet(Vec::new());
    fleet.modules.insert("redis_ping".into(), redis_ping());
    fleet
        .unsupported_modules
        .insert("icmp".into(), "blackbox's icmp prober".into());
    let server = Server::start(fleet).await;
    // The path, its headers, and what the 400 says.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        (
            "/probe",
            &[],
            "missing target: write /probe?target=HOST:PORT&module=NAME, e.g. /probe?target=127.0.0.1:6379&module=half_open\n",
        ),
        ("/probe?target=", &[], "missing target: write"),
        ("/probe?module=connect", &[], "missing target: write"),
        (
            "/probe?target=127.0.0.1:80&module=foo",
            &[],
            "unknown module \"foo\"; modules: half_open, connect, tcp_connect, http_2xx, redis_ping\n",
        ),
        (
            "/probe?target=127.0.0.1:80&module=icmp",
            &[],
            "module \"icmp\" uses blackbox's icmp prober, which connhealth does not run",
        ),
    ];
    // A scrape timeout that is not a number is blackbox's 500.
    let reply = server
        .request(
            "GET",
            "/probe?target=127.0.0.1:80",
            &[("X-Prometheus-Scrape-Timeout-Seconds", "soon")],
        )
        .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("X-Prometheus-Scrape-Timeout-Seconds: \"soon\" is not a number of seconds"),
        "{}",
        reply.body
    );
    for (path, headers, reason) in cases {
        let reply = server.request("GET", path, headers).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert!(
            reply.body.contains(reason),
            "{path}: {:?} should say {reason:?}",
            reply.body
        );
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[tokio::test]
async fn a_target_it_cannot_probe_is_probe_success_0_and_debug_says_why() {
    let server = Server::start(fleet(Vec::new())).await;
    // The target, and what debug=true says of it.
    let cases = [
        ("example", "no port; expected host:port"),
        ("127.0.0.1:nosuchservice", "the port is not a number"),
        ("::1:80", "an IPv6 address needs brackets: [::1]:80"),
        ("[::1]", "expected ':port' after ']'"),
    ];
    for (target, reason) in cases {
        for module in ["half_open", "tcp_connect"] {
            let path = format!("/probe?target={target}&module={module}");
            let reply = server.get(&path).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.body);
            assert_eq!(sample(&reply.body, "probe_success"), Some(0.0), "{path}");
            // blackbox stops before it resolves anything, but for a host:port Go splits
            // (any port): its tcp prober resolves the host before the dial fails.
            let resolved =
                (module == "tcp_connect" && target.ends_with(":nosuchservice")).then_some(4.0);
            assert_eq!(sample(&reply.body, "probe_ip_protocol"), resolved, "{path}");
            let debug = server.get(&format!("{path}&debug=true")).await;
            assert_eq!(debug.status, 200, "{path}");
            assert_eq!(
                debug.header("content-type"),
                Some("text/plain"),
                "blackbox's"
            );
            assert!(
                debug.body.starts_with("Logs for the probe:\n"),
                "{}",
                debug.body
            );
            assert!(debug.body.contains(reason), "{path}: {}", debug.body);
            assert!(
                debug
                    .body
                    .contains("Metrics that would have been returned:\nprobe_duration_seconds")
                    || debug
                        .body
                        .contains("Metrics that would have been returned:\n# HELP"),
                "{}",
                debug.body
            );
        }
    }
}

#[tokio::test]
async fn unknown_parameters_are_ignored_and_of_a_repeated_one_the_first_counts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = Server::start(fleet(Vec::new())).await;
    let up = listener.local_addr().unwrap();
    let down = closed_port();
    for (query, success) in [
        (format!("target={up}&modul=connect&job=x"), 1.0),
        (format!("target={up}&target=127.0.0.1:{down}"), 1.0),
        (format!("target=127.0.0.1:{down}&target={up}"), 0.0),
        (format!("target={up}&module=half_open&module=nope"), 1.0),
    ] {
        let reply = server.get(&format!("/probe?{query}")).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        assert_eq!(
            sample(&reply.body, "probe_success"),
            Some(success),
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_service_name_is_a_port_as_in_go() {
    let server = Server::start(fleet(Vec::new())).await;
    // Nothing listens on loopback's smtp port here: refused, but probed.
    let reply = server
        .get("/probe?target=127.0.0.1:smtp&module=tcp_connect&debug=true")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("\nprobe_ip_protocol 4\n"),
        "{}",
        reply.body
    );
}

#[test]
fn the_timeout_is_capped_by_the_scrape_timeout_as_blackbox_caps_it() {
    let s = Duration::from_secs;
    assert_eq!(probe_timeout(s(1), None), s(1));
    assert_eq!(probe_timeout(s(1), Some(10.0)), s(1));
    assert_eq!(probe_timeout(s(5), Some(2.0)), Duration::from_millis(1500));
    assert_eq!(
        probe_timeout(s(5), Some(0.0)),
        s(5),
        "0 means not sent: 120 s"
    );
    assert_eq!(probe_timeout(s(200), None), Duration::from_millis(119_500));
    assert_eq!(
        probe_timeout(s(5), Some(0.2)),
        s(5),
        "less than the offset: the module's"
    );
}

/// blackbox_exporter's series for a tcp probe, by name, with its help texts: the
/// families in its order (the registry sorts them by name) and their lines.
const BLACKBOX: &[(&str, &str)] = &[
    (
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
    ),
    (
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
    ),
    (
        "probe_failed_due_to_regex",
        "Indicates if probe failed due to regex",
    ),
    (
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
    ),
    (
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
    ),
    (
        "probe_ssl_earliest_cert_expiry",
        "Returns last SSL chain expiry in unixtime",
    ),
    (
        "probe_success",
        "Displays whether or not the probe was a success",
    ),
    (
        "probe_tls_version_info",
        "Returns the TLS version used or NaN when unknown",
    ),
];

/// The lines blackbox writes for `samples` (name → sample line, `None` for any value).
fn blackbox_lines(samples: &[(&str, Option<&str>)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, help) in BLACKBOX {
        let Some((_, line)) = samples.iter().find(|(n, _)| n == name) else {
            continue;
        };
        lines.push(format!("# HELP {name} {help}"));
        lines.push(format!("# TYPE {name} gauge"));
        lines.push(line.map_or_else(|| format!("{name} *"), str::to_owned));
    }
    lines
}

fn assert_lines(body: &str, expected: &[String]) {
    let got: Vec<&str> = body.lines().collect();
    assert_eq!(got.len(), expected.len(), "{body}");
    for (got, expected) in got.iter().zip(expected) {
        match expected.strip_suffix(" *") {
            Some(name) => {
                let (got_name, value) = got.rsplit_once(' ').unwrap();
                assert_eq!(got_name, name, "{body}");
                value.parse::<f64>().expect("a number");
            }
            None => assert_eq!(got, expected, "{body}"),
        }
    }
}

#[tokio::test]
async fn a_probe_answers_line_by_line_as_blackbox_does() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = Server::start(fleet(Vec::new())).await;
    let reply = server
        .get(&format!(
            "/probe?target={}&module=tcp_connect",
            listener.local_addr().unwrap()
        ))
        .await;
    let expected = blackbox_lines(&[
        ("probe_dns_lookup_time_seconds", None),
        ("probe_duration_seconds", None),
        (
            "probe_failed_due_to_regex",
            Some("probe_failed_due_to_regex 0"),
        ),
        ("probe_ip_addr_hash", Some("probe_ip_addr_hash 3668918509")),
        ("probe_ip_protocol", Some("probe_ip_protocol 4")),
        ("probe_success", Some("probe_success 1")),
    ]);
    assert_lines(&reply.body, &expected);
}

#[test]
fn a_tls_probe_adds_the_expiry_and_version_as_blackbox_does() {
    let expiry = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let result = CheckResult {
        dns_time: Duration::from_micros(1500),
        ip_protocol: Some(6),
        cert_expiry: Some(expiry),
        tls_version: Some("TLS 1.3"),
        ..CheckResult::new(Outcome::Ok, Duration::from_millis(3))
    };
    let body = render(&result, CheckKind::Tls, Duration::from_millis(4));
    let expected = blackbox_lines(&[
        (
            "probe_dns_lookup_time_seconds",
            Some("probe_dns_lookup_time_seconds 0.0015"),
        ),
        (
            "probe_duration_seconds",
            Some("probe_duration_seconds 0.004"),
        ),
        ("probe_ip_addr_hash", Some("probe_ip_addr_hash 0")),
        ("probe_ip_protocol", Some("probe_ip_protocol 6")),
        (
            "probe_ssl_earliest_cert_expiry",
            Some("probe_ssl_earliest_cert_expiry 1800000000"),
        ),
        ("probe_success", Some("probe_success 1")),
        (
            "probe_tls_version_info",
            Some("probe_tls_version_info{version=\"TLS 1.3\"} 1"),
        ),
    ]);
    assert_lines(&body, &expected);
}

#[test]
fn a_send_expect_probe_says_when_the_regex_failed() {
    let result = CheckResult {
        ip_protocol: Some(4),
        regex_failed: true,
        ..CheckResult::failed(Outcome::Mismatch, Duration::from_millis(2), "no match")
    };
    let body = render(&result, CheckKind::SendExpect, Duration::from_millis(2));
    let expected = blackbox_lines(&[
        (
            "probe_dns_lookup_time_seconds",
            Some("probe_dns_lookup_time_seconds 0"),
        ),
        ("probe_duration_seconds", None),
        (
            "probe_failed_due_to_regex",
            Some("probe_failed_due_to_regex 1"),
        ),
        ("probe_ip_addr_hash", Some("probe_ip_addr_hash 0")),
        ("probe_ip_protocol", Some("probe_ip_protocol 4")),
        ("probe_success", Some("probe_success 0")),
    ]);
    assert_lines(&body, &expected);
}

#[test]
fn a_target_that_did_not_resolve_has_ip_protocol_0_as_blackbox() {
    let result = CheckResult {
        dns_time: Duration::from_millis(20),
        ..CheckResult::failed(Outcome::Resolve, Duration::from_millis(20), "no such name")
    };
    let body = render(&result, CheckKind::HalfOpen, Duration::from_millis(21));
    assert_eq!(sample(&body, "probe_ip_protocol"), Some(0.0), "{body}");
    assert_eq!(sample(&body, "probe_ip_addr_hash"), Some(0.0), "{body}");
    assert_eq!(sample(&body, "probe_dns_lookup_time_seconds"), Some(0.02));
    assert_eq!(sample(&body, "probe_success"), Some(0.0));
}
