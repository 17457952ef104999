//! The http prober's scenarios, after blackbox's prober/http_test.go and example.yml.

use super::http_server;
use super::scenario::{closed_port, Case, Env, Probe};

/// The test's HTTP server, probed with `module` at `http://127.0.0.1:PORT{path}`.
fn plain(module: &str, path: &str) -> Probe {
    let server = http_server::start(None);
    let port = server.port();
    Probe::new(format!(
        "module={module}&target=http://127.0.0.1:{port}{path}"
    ))
    .with(server)
}

/// The same server over TLS (the self-signed CA:TRUE certificate), at `https://…`.
fn https(env: &Env, module: &str, path: &str) -> Probe {
    let server = http_server::start(Some(env.tls.clone()));
    let port = server.port();
    Probe::new(format!(
        "module={module}&target=https://127.0.0.1:{port}{path}"
    ))
    .with(server)
}

/// The scenarios where blackbox's probe succeeds (in all others it fails).
pub const SUCCEEDS: &[&str] = &[
    "http_200",
    "http_404_valid_status_codes",
    "http_valid_version_1_1",
    "http_answer_in_http_1_0",
    "http_post_body_echoed",
    "http_headers_and_host",
    "http_redirects_followed",
    "http_body_without_fail_regexp",
    "http_body_has_needed_regexp",
    "http_header_required_present",
    "http_header_allow_missing",
    "http_last_modified",
    "http_chunked_no_content_length",
    "http_fail_if_ssl_over_http",
    "http_fail_if_not_ssl_over_https",
    "https_ca_file",
    "http_target_without_scheme",
    "http_localhost",
    "http_hostname_parameter",
];

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "http_200",
            setup: |_| plain("http_2xx", "/ok"),
        },
        Case {
            name: "http_404_default_codes",
            setup: |_| plain("http_2xx", "/notfound"),
        },
        Case {
            name: "http_404_valid_status_codes",
            setup: |_| plain("http_404", "/notfound"),
        },
        Case {
            name: "http_200_not_in_valid_status_codes",
            setup: |_| plain("http_404", "/ok"),
        },
        Case {
            name: "http_valid_version_1_1",
            setup: |_| plain("http_11_only", "/ok"),
        },
        Case {
            name: "http_invalid_version_2_0",
            setup: |_| plain("http_2_only", "/ok"),
        },
        Case {
            name: "http_answer_in_http_1_0",
            setup: |_| plain("http_2xx", "/http10"),
        },
        Case {
            name: "http_post_body_echoed",
            setup: |_| plain("http_post", "/echo"),
        },
        Case {
            name: "http_headers_and_host",
            setup: |_| plain("http_headers", "/headers"),
        },
        Case {
            name: "http_redirects_followed",
            setup: |_| plain("http_2xx", "/redirect2"),
        },
        Case {
            name: "http_redirect_loop",
            setup: |_| plain("http_2xx", "/loop"),
        },
        Case {
            name: "http_follow_redirects_false",
            setup: |_| plain("http_no_follow", "/redirect"),
        },
        Case {
            name: "http_no_follow_redirects_true",
            setup: |_| plain("http_no_follow_old", "/redirect"),
        },
        Case {
            name: "http_body_matches_fail_regexp",
            setup: |_| plain("http_body_fail", "/dberror"),
        },
        Case {
            name: "http_body_without_fail_regexp",
            setup: |_| plain("http_body_fail", "/ok"),
        },
        Case {
            name: "http_body_lacks_needed_regexp",
            setup: |_| plain("http_body_need", "/ok"),
        },
        Case {
            name: "http_body_has_needed_regexp",
            setup: |_| plain("http_body_need", "/download"),
        },
        Case {
            name: "http_header_required_missing",
            setup: |_| plain("http_header_checks", "/ok"),
        },
        Case {
            name: "http_header_required_present",
            setup: |_| plain("http_header_checks", "/cors"),
        },
        Case {
            name: "http_header_forbidden_present",
            setup: |_| plain("http_header_checks", "/cookie"),
        },
        Case {
            name: "http_header_allow_missing",
            setup: |_| plain("http_header_allow_missing", "/ok"),
        },
        Case {
            name: "http_last_modified",
            setup: |_| plain("http_2xx", "/last-modified"),
        },
        Case {
            name: "http_chunked_no_content_length",
            setup: |_| plain("http_2xx", "/chunked"),
        },
        Case {
            name: "http_fail_if_ssl_over_http",
            setup: |_| plain("http_fail_if_ssl", "/ok"),
        },
        Case {
            name: "http_fail_if_ssl_over_https",
            setup: |env| https(env, "http_fail_if_ssl", "/ok"),
        },
        Case {
            name: "http_fail_if_not_ssl_over_http",
            setup: |_| plain("http_fail_if_not_ssl", "/ok"),
        },
        Case {
            name: "http_fail_if_not_ssl_over_https",
            setup: |env| https(env, "http_fail_if_not_ssl", "/ok"),
        },
        Case {
            name: "https_ca_file",
            setup: |env| https(env, "http_tls", "/ok"),
        },
        Case {
            name: "https_untrusted",
            setup: |env| https(env, "http_2xx", "/ok"),
        },
        Case {
            name: "http_target_without_scheme",
            setup: |_| {
                let server = http_server::start(None);
                let target = format!("127.0.0.1:{}/ok", server.port());
                Probe::new(format!("module=http_2xx&target={target}")).with(server)
            },
        },
        Case {
            name: "http_localhost",
            setup: |_| {
                let server = http_server::start(None);
                let target = format!("http://localhost:{}/ok", server.port());
                Probe::new(format!("module=http_2xx&target={target}")).with(server)
            },
        },
        Case {
            name: "http_refused",
            setup: |_| {
                Probe::new(format!(
                    "module=http_2xx&target=http://127.0.0.1:{}/",
                    closed_port()
                ))
            },
        },
        Case {
            name: "http_hostname_parameter",
            setup: |_| {
                let server = http_server::start(None);
                let target = format!("http://127.0.0.1:{}/headers", server.port());
                Probe::new(format!(
                    "module=http_expect_vhost&target={target}&hostname=vhost.example.com"
                ))
                .with(server)
            },
        },
        Case {
            name: "http_hostname_parameter_conflicts_with_host_header",
            setup: |_| {
                let server = http_server::start(None);
                let target = format!("http://127.0.0.1:{}/headers", server.port());
                Probe::new(format!(
                    "module=http_headers&target={target}&hostname=other.example.com"
                ))
                .with(server)
            },
        },
    ]
}
