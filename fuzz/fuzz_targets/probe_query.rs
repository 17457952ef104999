//! `/probe`'s reading of a request (`http/probe.rs`, through `connhealth_watch::fuzzing`):
//! the query string as axum extracts it, `Params::parse`, and the module and timeout
//! worked out from it and from the `X-Prometheus-Scrape-Timeout-Seconds` header. Nothing
//! is probed.
//!
//! Input: the query string, then optionally a newline and the header's value (no newline:
//! no header). Inputs hyper would refuse before any handler (a bad URI or header value)
//! are skipped.
//!
//! Properties, beyond not panicking:
//! * a request read names a module `/probe` offers, with that module's own timeout; its
//!   target is taken exactly when it is what the module's kind reads (a host:port, or a
//!   URL, `http://` added when it has no scheme, for http);
//! * the timeout is the module's, or shorter: without the header, or with one of 0, it is
//!   the module's (each module here is under blackbox's 119.5 s), or 119.5 s for a module
//!   with none; a header of S > 0.5 s makes it at most S - 0.5 s (a module with no timeout
//!   of its own gets exactly that); one of less than 0.5 s, or past what a `Duration`
//!   holds, leaves it the module's (zero for a module with none);
//! * `hostname` becomes the server name of a tls module that has none (for http it is the
//!   Host header, and the server name stays the module's);
//! * a 400's reason is not empty.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use connhealth_watch::config::{Check, Endpoint};
use connhealth_watch::fuzzing;
use connhealth_watch::http::probe::{find_module, module_names};
use connhealth_watch::state::Fleet;
use libfuzzer_sys::fuzz_target;

/// Modules of every kind, with and without a server name and with their own timeouts.
const CONFIG: &str = r#"
[defaults]
timeout = "3s"

[modules.redis_ping]
check = "send-expect"
send = "PING\r\n"
expect = "^\\+PONG"
timeout = "250ms"

[modules.tls_named]
check = "tls"
server_name = "db.internal"

[modules.tls]
check = "tls"
timeout = "10s"

[modules.hold]
check = "hold"
"#;

fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| {
        let plan = connhealth_watch::config::parse("watch.toml".as_ref(), CONFIG)
            .unwrap_or_else(|errors| panic!("the harness's config: {errors}"));
        Fleet::build(plan, None, SystemTime::now())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (query, header) = match text.split_once('\n') {
        Some((query, header)) => (query, Some(header)),
        None => (text, None),
    };
    let fleet = fleet();
    let Some(read) = fuzzing::probe(fleet, query, header.map(str::as_bytes)) else {
        return;
    };
    let probe = match read {
        Ok(probe) => probe,
        Err(reason) => {
            assert!(!reason.is_empty(), "{text:?}");
            return;
        }
    };
    assert!(
        module_names(fleet).contains(&probe.module.as_str()),
        "{text:?}: {probe:?}"
    );
    let plan = find_module(fleet, &probe.module).expect("a module offered is found");
    let target = match &plan.check {
        Check::Http(_)
            if !probe.target.starts_with("http://") && !probe.target.starts_with("https://") =>
        {
            format!("http://{}", probe.target)
        }
        _ => probe.target.clone(),
    };
    assert_eq!(
        probe.target_ok,
        Endpoint::parse(&target, &plan.check).is_ok(),
        "{text:?}: {probe:?}"
    );
    assert_eq!(probe.module_timeout, plan.timeout, "{text:?}");
    let scrape: Option<f64> = header.map(|h| h.trim().parse().expect("a header read is a number"));
    let max = scrape.filter(|s| *s != 0.0).unwrap_or(120.0) - 0.5;
    match plan.timeout {
        Some(module) if max < 0.0 => assert_eq!(probe.timeout, module, "{text:?}"),
        Some(module) => {
            assert!(probe.timeout <= module, "{text:?}: {probe:?}");
            assert!(
                probe.timeout == module || (probe.timeout.as_secs_f64() - max).abs() < 1e-6,
                "{text:?}: {probe:?}"
            );
        }
        None if max < 0.0 => assert_eq!(probe.timeout, Duration::ZERO, "{text:?}"),
        // A header past what a Duration holds leaves the module's: none, zero.
        None if Duration::try_from_secs_f64(max).is_err() => {
            assert_eq!(probe.timeout, Duration::ZERO, "{text:?}")
        }
        None => assert!(
            (probe.timeout.as_secs_f64() - max).abs() < 1e-6,
            "{text:?}: {probe:?}"
        ),
    }
    // `hostname` names the server of a kind that has one (tls), when its module does not;
    // for http it is the Host header, as in blackbox, and the server name stays the
    // module's.
    match plan.check.tls().map(|tls| &tls.server_name) {
        Some(name) if matches!(plan.check, Check::Http(_)) => {
            assert_eq!(
                probe.server_name.as_ref(),
                name.as_ref(),
                "{text:?}: {probe:?}"
            )
        }
        Some(Some(name)) => assert_eq!(probe.server_name.as_ref(), Some(name)),
        Some(None) => {
            let hostname = query_has_value(query, "hostname");
            assert_eq!(probe.server_name.is_some(), hostname, "{text:?}: {probe:?}");
        }
        None => assert_eq!(probe.server_name, None, "{text:?}: {probe:?}"),
    }
});

/// True when the first value `query` gives `name` is not empty (as Go's
/// `url.Values.Get`), decoded as axum decodes it.
fn query_has_value(query: &str, name: &str) -> bool {
    // A '#' starts the fragment, which is not part of the query.
    let query = query.split('#').next().unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .is_some_and(|(_, value)| !value.is_empty())
}
