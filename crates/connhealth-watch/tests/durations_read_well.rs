//! Durations a person reads are rounded: a check's failure says `no reply within 300ms`,
//! not `no reply within 299.999409ms`.
//!
//! A check is given what is left of its timeout once the name is resolved, so its timeout
//! is rarely a round number; the message rounds it rather than printing every nanosecond.
//!
//! Run with `cargo test -p connhealth-watch --test durations_read_well`.

use std::time::Duration;

use connhealth_watch::checks::{send_expect, tls, Outcome};
use connhealth_watch::config::{Pattern, SendExpectPlan, TlsPlan};
use regex::bytes::Regex;

/// 300 ms less a few hundred nanoseconds: what is left of a 300-ms timeout after a
/// resolution that took no time to speak of.
const LEFT: Duration = Duration::from_nanos(299_999_409);

#[tokio::test]
async fn send_expect_says_no_reply_within_a_rounded_timeout() {
    let addr = connhealth_testkit::silent_server(Duration::from_secs(10));
    let plan = SendExpectPlan {
        send: Some(b"PING\r\n".to_vec()),
        expect: Some(Pattern(Regex::new(r"^\+PONG").unwrap())),
        quit: None,
    };
    let result = send_expect::check(addr, &plan, LEFT).await;
    assert_eq!(result.outcome, Outcome::Timeout, "{result:?}");
    assert_eq!(result.detail.as_deref(), Some("no reply within 300ms"));
}

#[tokio::test]
async fn tls_says_no_handshake_within_a_rounded_timeout() {
    let addr = connhealth_testkit::silent_server(Duration::from_secs(10));
    let plan = TlsPlan {
        insecure: true,
        ..TlsPlan::default()
    };
    // Long enough that the trusted roots load in a debug build; still not round.
    let left = Duration::from_nanos(1_999_999_409);
    let result = tls::check(addr, "localhost", &plan, left).await;
    assert_eq!(result.outcome, Outcome::Timeout, "{result:?}");
    assert_eq!(
        result.detail.as_deref(),
        Some("no TLS handshake within 2s"),
        "{result:?}"
    );
}
