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
//! * a request read is for a probe target; each parameter was known and given once; the
//!   module is one `/probe` offers, with its own timeout;
//! * the timeout is the module's, or shorter: without the header, or with one of 0, it is
//!   the module's (each module here is under blackbox's 119.5 s); a header of S > 0.5 s
//!   makes it at most S - 0.5 s;
//! * `hostname` becomes the server name of a module that has none;
//! * a 400's reason is not empty.

#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use connhealth_watch::config::Endpoint;
use connhealth_watch::state::Fleet;
use connhealth_watch::fuzzing;
use connhealth_watch::http::probe::{module_names, module_plan};
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
    let plan = module_plan(fleet, &probe.module).expect("a module offered has a plan");
    // host:port, or a URL for an http module.
    assert!(
        Endpoint::parse(&probe.target, &plan.check).is_ok(),
        "{text:?}: {probe:?}"
    );
    assert_eq!(probe.module_timeout, plan.timeout, "{text:?}");
    assert!(probe.timeout <= probe.module_timeout, "{text:?}: {probe:?}");
    let scrape: Option<f64> = header.map(|h| h.trim().parse().expect("a header read is a number"));
    match scrape {
        None => assert_eq!(probe.timeout, probe.module_timeout, "{text:?}"),
        Some(s) if s == 0.0 || s < 0.5 => {
            assert_eq!(probe.timeout, probe.module_timeout, "{text:?}")
        }
        Some(s) => assert!(
            probe.timeout.as_secs_f64() <= s - 0.5 + 1e-9 || probe.timeout == probe.module_timeout,
            "{text:?}: {probe:?}"
        ),
    }
    // `hostname` names the server of a kind that has one (tls, http), when its module
    // does not.
    match plan.check.tls().map(|tls| &tls.server_name) {
        Some(Some(name)) => assert_eq!(probe.server_name.as_ref(), Some(name)),
        Some(None) => {
            let hostname = query_has_value(query, "hostname");
            assert_eq!(probe.server_name.is_some(), hostname, "{text:?}: {probe:?}");
        }
        None => assert_eq!(probe.server_name, None, "{text:?}: {probe:?}"),
    }
});

/// True when `query` gives `name` a value that is not empty, decoded as axum decodes it
/// (`Params::get` skips empty values).
fn query_has_value(query: &str, name: &str) -> bool {
    // A '#' starts the fragment, which is not part of the query.
    let query = query.split('#').next().unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    pairs
        .iter()
        .any(|(key, value)| key == name && !value.is_empty())
}
