//! Entry points for the fuzz targets in `fuzz/` (`scripts/fuzz` runs them).
//!
//! **Not part of the API.** Hidden from the docs, with no stability promise: anything
//! here may change or go in any release. Each function reaches one parser that the daemon
//! runs on input it does not control, through the daemon's own code, with no file or
//! socket in the way. The public parsers ([`crate::config::parse`],
//! `connhealth::probe::Target::parse`, `connhealth::DeadPeer::try_detect_within`) are
//! fuzzed directly and have nothing here.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::checks::send_expect;
use crate::checks::CheckResult;
use crate::config::{ConfigError, Module, SendExpectPlan};
use crate::http::probe::{ProbeRequest, SCRAPE_TIMEOUT_HEADER};
use crate::http::Params;
use crate::state::Fleet;

/// What a file_sd file holds: its targets, and every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSd {
    /// The targets, in file order.
    pub targets: Vec<FileSdTarget>,
    /// Every problem, in file order: a load with any of them fails.
    pub errors: Vec<ConfigError>,
}

/// One target of a file_sd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSdTarget {
    /// `host:port`; also the target's name, unless an earlier target took that name
    /// (then `ADDRESS@FILE#GROUP`).
    pub address: String,
    /// Its group's labels, without the `__` ones.
    pub labels: BTreeMap<String, String>,
}

/// Reads `bytes` as the file_sd file at `path` (the path only names the file in errors),
/// as a config load reads each file its globs match.
pub fn file_sd(path: &Path, bytes: Vec<u8>) -> FileSd {
    let (targets, errors) = crate::config::file_sd_of(path, bytes);
    let targets = targets
        .into_iter()
        .map(|target| FileSdTarget {
            address: target.address,
            labels: target.labels,
        })
        .collect();
    FileSd { targets, errors }
}

/// What a blackbox module file (`blackbox_config`) holds.
#[derive(Debug, Clone)]
pub struct Blackbox {
    /// The modules `/probe` runs, by name.
    pub modules: BTreeMap<String, Module>,
    /// The modules set aside: name, what they use that connhealth does not implement.
    pub unsupported: BTreeMap<String, String>,
    /// Every problem, in file order: a load with any of them fails.
    pub errors: Vec<ConfigError>,
    /// What loads but is not run, or not as written, in file order.
    pub warnings: Vec<ConfigError>,
}

/// Reads `text` as the blackbox file at `path` (relative paths in it are relative to its
/// folder), as a config load reads `blackbox_config`.
pub fn blackbox(path: &Path, text: &str) -> Blackbox {
    let read = crate::config::blackbox_of(path, text);
    Blackbox {
        modules: read.modules,
        unsupported: read.unsupported,
        errors: read.errors,
        warnings: read.warnings,
    }
}

/// A `/probe` request as the handler reads it, before it checks anything.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The `target` parameter.
    pub target: String,
    /// The module's name (`half_open` when none was given).
    pub module: String,
    /// The module's own timeout, when it has one.
    pub module_timeout: Option<Duration>,
    /// The target was what the module's kind takes (else the answer is `probe_success 0`).
    pub target_ok: bool,
    /// The check's timeout: the module's, capped by the scrape timeout header.
    pub timeout: Duration,
    /// The tls server name: the module's, or else `hostname`.
    pub server_name: Option<String>,
}

/// Reads a request for `/probe?QUERY` with the scrape timeout header set to
/// `scrape_timeout` (when given) as the handler does: `Some` with the request, or the
/// 400's reason; `None` when hyper would refuse the request line or the header before any
/// handler sees it.
pub fn probe(
    fleet: &Fleet,
    query: &str,
    scrape_timeout: Option<&[u8]>,
) -> Option<Result<Probe, String>> {
    let uri = Uri::try_from(format!("/probe?{query}")).ok()?;
    let mut headers = HeaderMap::new();
    if let Some(value) = scrape_timeout {
        headers.insert(SCRAPE_TIMEOUT_HEADER, HeaderValue::from_bytes(value).ok()?);
    }
    // The same extraction as the handler's `Result<Query<_>, QueryRejection>` argument.
    let query = Query::<Vec<(String, String)>>::try_from_uri(&uri);
    let read = Params::lenient("/probe", query).and_then(|params| {
        ProbeRequest::new(fleet, &params, &headers)
            .map(|request| Probe {
                target: request.target.to_owned(),
                module: request.module_name.to_owned(),
                module_timeout: request.module.timeout,
                target_ok: request.endpoint.is_ok(),
                timeout: request.timeout,
                server_name: request
                    .module
                    .check
                    .tls()
                    .and_then(|tls| tls.server_name.clone()),
            })
            .map_err(|refusal| refusal.why().to_owned())
    });
    Some(read)
}

/// How a send-expect conversation left the connection (which decides how it is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Both directions open, time left.
    Open,
    /// The timeout passed.
    OutOfTime,
    /// The peer's FIN was read.
    PeerClosed,
    /// A write or read failed.
    Broken,
}

/// Steps 2 and 3 of a send-expect check over `stream`: `plan.send`, then reading until
/// `plan.expect` matches, within `timeout`.
pub async fn send_expect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    plan: &SendExpectPlan,
    timeout: Duration,
) -> (CheckResult, Ending) {
    let start = Instant::now();
    let (result, ending) =
        send_expect::converse(stream, plan, start, start + timeout, timeout).await;
    let ending = match ending {
        send_expect::Ending::Open => Ending::Open,
        send_expect::Ending::OutOfTime => Ending::OutOfTime,
        send_expect::Ending::PeerClosed => Ending::PeerClosed,
        send_expect::Ending::Broken => Ending::Broken,
    };
    (result, ending)
}
