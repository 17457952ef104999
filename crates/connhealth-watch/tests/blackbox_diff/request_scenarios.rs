//! The `/probe` request itself, after blackbox's prober/handler.go: malformed targets,
//! query parameters, `debug=true`, the scrape timeout header, modules.

use super::http_server;
use super::scenario::{closed_port, Case, Compare, Probe};
use super::script_server::{on_ipv4, Step::WaitClose};

/// A tcp_connect probe of `target`, which needs no server.
fn tcp_connect(target: &str) -> Probe {
    Probe::new(format!("module=tcp_connect&target={target}"))
}

/// The scenarios where blackbox's probe succeeds (in all others it fails, but `icmp`,
/// which needs a permission to send ICMP that the test does not check).
pub const SUCCEEDS: &[&str] = &[
    "unknown_query_parameter",
    "repeated_target_takes_first",
    "no_scrape_timeout_header",
    "default_module_is_http_2xx",
];

/// Where blackbox's probe may succeed or fail, as the machine allows.
pub const EITHER: &[&str] = &["icmp"];

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "target_without_port",
            setup: |_| tcp_connect("127.0.0.1"),
        },
        Case {
            name: "target_port_out_of_range",
            setup: |_| tcp_connect("127.0.0.1:99999"),
        },
        Case {
            name: "target_port_unknown_name",
            setup: |_| tcp_connect("127.0.0.1:nosuchservice"),
        },
        Case {
            name: "target_empty_host",
            setup: |_| tcp_connect(&format!(":{}", closed_port())),
        },
        Case {
            name: "target_junk_bytes",
            setup: |_| tcp_connect("%00%FF%FE%01:80"),
        },
        Case {
            name: "target_url_for_tcp",
            setup: |_| tcp_connect(&format!("http://127.0.0.1:{}", closed_port())),
        },
        Case {
            name: "http_target_empty_host",
            setup: |_| Probe::new(format!("module=http_2xx&target=http://:{}/", closed_port())),
        },
        Case {
            name: "http_target_no_url",
            setup: |_| Probe::new("module=http_2xx&target=http://%5B::1/"),
        },
        Case {
            name: "target_missing",
            setup: |_| Probe::new("module=tcp_connect"),
        },
        Case {
            name: "target_empty",
            setup: |_| Probe::new("module=tcp_connect&target="),
        },
        Case {
            name: "unknown_query_parameter",
            setup: |_| {
                let server = on_ipv4(vec![WaitClose], None);
                Probe::new(format!(
                    "module=tcp_connect&target=127.0.0.1:{}&foo=bar",
                    server.port()
                ))
                .with(server)
            },
        },
        Case {
            name: "repeated_target_takes_first",
            setup: |_| {
                let server = on_ipv4(vec![WaitClose], None);
                let (open, closed) = (server.port(), closed_port());
                Probe::new(format!(
                    "module=tcp_connect&target=127.0.0.1:{open}&target=127.0.0.1:{closed}"
                ))
                .with(server)
            },
        },
        Case {
            name: "debug_true",
            setup: |_| {
                let server = on_ipv4(vec![WaitClose], None);
                Probe::new(format!(
                    "module=tcp_connect&target=127.0.0.1:{}&debug=true",
                    server.port()
                ))
                .with(server)
                .compare(Compare::StatusAndContentType)
            },
        },
        Case {
            name: "no_scrape_timeout_header",
            setup: |_| {
                let server = on_ipv4(vec![WaitClose], None);
                Probe::new(format!(
                    "module=tcp_connect&target=127.0.0.1:{}",
                    server.port()
                ))
                .with(server)
                .scrape_timeout(None)
            },
        },
        Case {
            name: "scrape_timeout_header_not_a_number",
            setup: |_| {
                let server = on_ipv4(vec![WaitClose], None);
                Probe::new(format!(
                    "module=tcp_connect&target=127.0.0.1:{}",
                    server.port()
                ))
                .with(server)
                .scrape_timeout(Some("soon"))
            },
        },
        Case {
            name: "unknown_module",
            setup: |_| Probe::new("module=no_such_module&target=127.0.0.1:1"),
        },
        Case {
            name: "default_module_is_http_2xx",
            setup: |_| {
                let server = http_server::start(None);
                Probe::new(format!("target=http://127.0.0.1:{}/ok", server.port())).with(server)
            },
        },
        Case {
            name: "icmp",
            setup: |_| Probe::new("module=icmp&target=127.0.0.1"),
        },
    ]
}
