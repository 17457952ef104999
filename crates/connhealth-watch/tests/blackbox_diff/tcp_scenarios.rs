//! The tcp prober's scenarios, after blackbox's prober/tcp_test.go and example.yml.

use std::time::Duration;

use super::scenario::{closed_port, Case, Probe};
use super::script_server::{on_both, on_ipv4, Step, Step::*};

/// A server playing `script` on 127.0.0.1, probed with `module` at 127.0.0.1:PORT.
fn scripted(module: &str, script: Vec<Step>) -> Probe {
    let server = on_ipv4(script, None);
    Probe::new(format!(
        "module={module}&target=127.0.0.1:{}",
        server.port()
    ))
    .with(server)
}

/// A server on 127.0.0.1 and ::1 at one port, probed with `module` at `host`:PORT.
fn both_families(module: &str, host: &str) -> Probe {
    let server = on_both(vec![WaitClose]);
    Probe::new(format!("module={module}&target={host}:{}", server.port())).with(server)
}

const SMTP_BANNER: &str = "220 mail.example.com ESMTP Postfix\r\n";

/// The scenarios where blackbox's probe succeeds (in all others it fails): checked, so
/// that a broken server cannot hide behind both exporters failing alike.
pub const SUCCEEDS: &[&str] = &[
    "tcp_connect_ok",
    "tcp_smtp_banner",
    "tcp_banner_without_line_end",
    "tcp_irc_second_line",
    "tcp_irc_reply_in_two_writes",
    "tcp_expand_match_into_send",
    "tcp_banner_after_1500ms",
    "tcp_tls",
    "tcp_tls_localhost",
    "tcp_tls_pop3s_banner",
    "tcp_smtp_starttls",
    "tcp_ip4_localhost",
    "tcp_ip4_no_fallback_localhost",
    "tcp_ip6_localhost",
    "tcp_ip4_to_ipv6_literal",
    "tcp_ip6_to_ipv4_literal",
    "tcp_ip6_to_ipv6_literal",
    "tcp_connect_ipv6_literal",
];

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "tcp_connect_ok",
            setup: |_| scripted("tcp_connect", vec![WaitClose]),
        },
        Case {
            name: "tcp_connect_refused",
            setup: |_| {
                Probe::new(format!(
                    "module=tcp_connect&target=127.0.0.1:{}",
                    closed_port()
                ))
            },
        },
        Case {
            name: "tcp_smtp_banner",
            setup: |_| scripted("tcp_smtp_banner", vec![Send(SMTP_BANNER), WaitClose]),
        },
        Case {
            name: "tcp_banner_without_line_end",
            setup: |_| {
                scripted(
                    "tcp_smtp_banner",
                    vec![Send("220 mail.example.com ESMTP Postfix")],
                )
            },
        },
        Case {
            name: "tcp_irc_second_line",
            setup: |_| {
                let script = vec![
                    Check {
                        want: "NICK prober",
                        ok: "",
                        bad: "ERROR :bad NICK\n",
                    },
                    Check {
                        want: "USER prober prober prober :prober",
                        ok: "",
                        bad: "ERROR :bad USER\n",
                    },
                    Send(":ircd.localhost NOTICE AUTH :*** Looking up your hostname...\n"),
                    Send(":ircd.localhost 001 prober :Welcome to IRC!\n"),
                    WaitClose,
                ];
                scripted("irc_banner", script)
            },
        },
        Case {
            name: "tcp_irc_reply_in_two_writes",
            setup: |_| {
                let script = vec![
                    Line,
                    Line,
                    SendSplit(
                        ":ircd.localhost NOTICE AUTH :*** Looking up\n:ircd.local",
                        "host 001 prober :Welcome\n",
                    ),
                    WaitClose,
                ];
                scripted("irc_banner", script)
            },
        },
        Case {
            name: "tcp_irc_refused_by_server",
            setup: |_| {
                let script = vec![
                    Line,
                    Line,
                    Send(":ircd.localhost NOTICE AUTH :*** Looking up your hostname...\n"),
                    Send("ERROR: Your IP address has been blacklisted.\n"),
                ];
                scripted("irc_banner", script)
            },
        },
        Case {
            name: "tcp_expand_match_into_send",
            setup: |_| {
                let script = vec![
                    Send("SSH-2.0-OpenSSH_6.9p1 Debian-2\r\n"),
                    Check {
                        want: "CONFIRM OpenSSH_6.9p1",
                        ok: "OK\n",
                        bad: "BAD\n",
                    },
                    WaitClose,
                ];
                scripted("tcp_expand", script)
            },
        },
        Case {
            name: "tcp_expect_never_matches_then_close",
            setup: |_| scripted("tcp_never_matches", vec![Send("hello\nworld\n")]),
        },
        Case {
            name: "tcp_expect_timeout_after_other_line",
            setup: |_| scripted("tcp_never_matches", vec![Send("hello\n"), WaitClose]),
        },
        Case {
            name: "tcp_banner_after_1500ms",
            setup: |_| {
                let script = vec![
                    Sleep(Duration::from_millis(1500)),
                    Send("220 ready\n"),
                    WaitClose,
                ];
                scripted("tcp_banner_no_timeout", script)
            },
        },
        Case {
            name: "tcp_banner_after_scrape_timeout",
            setup: |_| {
                let script = vec![
                    Sleep(Duration::from_millis(1500)),
                    Send("220 ready\n"),
                    WaitClose,
                ];
                // 1.5 s less blackbox's 0.5 s: a 1 s timeout.
                scripted("tcp_banner_no_timeout", script).scrape_timeout(Some("1.5"))
            },
        },
        Case {
            name: "tcp_tls",
            setup: |env| {
                let server = on_ipv4(vec![Tls, WaitClose], Some(env.tls.clone()));
                Probe::new(format!(
                    "module=tls_connect&target=127.0.0.1:{}",
                    server.port()
                ))
                .with(server)
            },
        },
        Case {
            name: "tcp_tls_localhost",
            setup: |env| {
                let server = on_ipv4(vec![Tls, WaitClose], Some(env.tls.clone()));
                Probe::new(format!(
                    "module=tls_connect&target=localhost:{}",
                    server.port()
                ))
                .with(server)
            },
        },
        Case {
            name: "tcp_tls_to_plain_server",
            setup: |_| scripted("tls_connect", vec![Send(SMTP_BANNER), WaitClose]),
        },
        Case {
            name: "tcp_tls_pop3s_banner",
            setup: |env| {
                let script = vec![
                    Tls,
                    Send("+OK POP3 server ready\r\n"),
                    Check {
                        want: "QUIT",
                        ok: "+OK bye\r\n",
                        bad: "-ERR what\r\n",
                    },
                    WaitClose,
                ];
                let server = on_ipv4(script, Some(env.tls.clone()));
                Probe::new(format!(
                    "module=pop3s_banner&target=127.0.0.1:{}",
                    server.port()
                ))
                .with(server)
            },
        },
        Case {
            name: "tcp_smtp_starttls",
            setup: |env| {
                let script = vec![
                    Send(SMTP_BANNER),
                    Check {
                        want: "EHLO prober",
                        ok: "250-mail.example.com\r\n250-STARTTLS\r\n250 DSN\r\n",
                        bad: "500 5.5.2 Error\r\n",
                    },
                    Check {
                        want: "STARTTLS",
                        ok: "220 2.0.0 Ready to start TLS\r\n",
                        bad: "500 5.5.2 Error\r\n",
                    },
                    Tls,
                    Check {
                        want: "EHLO prober",
                        ok: "250-mail.example.com\r\n250-AUTH PLAIN LOGIN\r\n250 DSN\r\n",
                        bad: "500 5.5.2 Error\r\n",
                    },
                    Check {
                        want: "QUIT",
                        ok: "221 2.0.0 Bye\r\n",
                        bad: "500 5.5.2 Error\r\n",
                    },
                    WaitClose,
                ];
                let server = on_ipv4(script, Some(env.tls.clone()));
                Probe::new(format!(
                    "module=smtp_starttls&target=127.0.0.1:{}",
                    server.port()
                ))
                .with(server)
            },
        },
        Case {
            name: "tcp_ip4_localhost",
            setup: |_| both_families("tcp_ip4", "localhost"),
        },
        Case {
            name: "tcp_ip4_no_fallback_localhost",
            setup: |_| both_families("tcp_ip4_no_fallback", "localhost"),
        },
        Case {
            name: "tcp_ip6_localhost",
            setup: |_| both_families("tcp_ip6", "localhost"),
        },
        Case {
            name: "tcp_ip6_no_fallback_localhost",
            setup: |_| both_families("tcp_ip6_no_fallback", "localhost"),
        },
        Case {
            name: "tcp_ip4_to_ipv6_literal",
            setup: |_| both_families("tcp_ip4", "[::1]"),
        },
        Case {
            name: "tcp_ip4_no_fallback_to_ipv6_literal",
            setup: |_| both_families("tcp_ip4_no_fallback", "[::1]"),
        },
        Case {
            name: "tcp_ip6_to_ipv4_literal",
            setup: |_| both_families("tcp_ip6", "127.0.0.1"),
        },
        Case {
            name: "tcp_ip6_no_fallback_to_ipv4_literal",
            setup: |_| both_families("tcp_ip6_no_fallback", "127.0.0.1"),
        },
        Case {
            name: "tcp_ip6_to_ipv6_literal",
            setup: |_| both_families("tcp_ip6", "[::1]"),
        },
        Case {
            name: "tcp_connect_ipv6_literal",
            setup: |_| both_families("tcp_connect", "[::1]"),
        },
        Case {
            name: "tcp_service_name_port",
            // finger is 79/tcp in /etc/services; nothing listens there (see the test).
            setup: |_| Probe::new("module=tcp_connect&target=localhost:finger"),
        },
    ]
}
