//! `/probe`'s reading of a request (`http/probe.rs`, through `connhealth_watch::fuzzing`):
//! the query string as axum extracts it, `Params::lenient`, and the module and timeout
//! worked out from it and from the `X-Prometheus-Scrape-Timeout-Seconds` header. Nothing
//! is probed.
//!
//! Input: the query string, then optionally a newline and the header's value (no newline:
//! no header). Inputs hyper would refuse before any handler (a bad URI or header value)
//! are skipped.
//!
//! Properties, beyond not panicking:
//! * a request read is for a probe target; the module is one `/probe` offers, with its
//!   own timeout (or none);
//! * a module's own timeout is the timeout, or shorter: without the header, or with one
//!   of 0, it is the module's (each module here is under blackbox's 119.5 s); a header
//!   of S > 0.5 s makes it at most S - 0.5 s; a module without one takes S - 0.5 s
//!   (119.5 s without the header), as blackbox;
//! * `hostname` becomes the server name of a tls module that has none (an http module
//!   takes it as its `Host` header instead);
//! * a 400's reason is not empty.

#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use connhealth_watch::config::Endpoint;
use connhealth_watch::state::Fleet;
use connhealth_watch::fuzzing;
use connhealth_watch::config::Check;
use connhealth_watch::http::probe::{find_module, module_names};
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
    let module = find_module(fleet, &probe.module).expect("a module offered is found");
    // A target the kind cannot take is answered with probe_success 0, not refused.
    if !matches!(module.check, Check::Http(_)) {
        assert_eq!(
            Endpoint::parse(&probe.target, &module.check).is_ok(),
            probe.target_ok,
            "{text:?}: {probe:?}"
        );
    }
    assert_eq!(probe.module_timeout, module.timeout, "{text:?}");
    let scrape: Option<f64> = header.map(|h| h.trim().parse().expect("a header read is a number"));
    let max = scrape.filter(|s| *s != 0.0).unwrap_or(120.0) - 0.5;
    match probe.module_timeout {
        Some(own) => {
            assert!(probe.timeout <= own, "{text:?}: {probe:?}");
            if max >= 0.0 && own.as_secs_f64() < max {
                assert_eq!(probe.timeout, own, "{text:?}");
            } else if max >= 0.0 {
                assert!(probe.timeout.as_secs_f64() <= max + 1e-9, "{text:?}: {probe:?}");
            }
        }
        None if max >= 0.0 => assert!(
            (probe.timeout.as_secs_f64() - max).abs() < 1e-6,
            "{text:?}: {probe:?}"
        ),
        None => assert!(probe.timeout.is_zero(), "{text:?}: {probe:?}"),
    }
    // `hostname` names the server of a tls module, when its module does not.
    match module.check.tls().map(|tls| &tls.server_name) {
        Some(Some(name)) => assert_eq!(probe.server_name.as_ref(), Some(name)),
        Some(None) if matches!(module.check, Check::Http(_)) => {
            assert_eq!(probe.server_name, None, "{text:?}: {probe:?}")
        }
        Some(None) => {
            let hostname = first_value(query, "hostname").is_some_and(|v| !v.is_empty());
            assert_eq!(probe.server_name.is_some(), hostname, "{text:?}: {probe:?}");
        }
        None => assert_eq!(probe.server_name, None, "{text:?}: {probe:?}"),
    }
});

/// The first value of `name` in `query`, decoded as axum decodes it (`Params::first`).
fn first_value(query: &str, name: &str) -> Option<String> {
    // A '#' starts the fragment, which is not part of the query.
    let query = query.split('#').next().unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    pairs
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}
