//! `/probe?target=HOST:PORT&module=NAME`: one check now, answered as blackbox_exporter
//! answers, so that a Prometheus job written for blackbox works when pointed here.
//!
//! The module is `[modules.NAME]` from the config, or a built-in one
//! ([`config::built_in_module`](crate::config::built_in_module)): `half_open` (the
//! default), `connect`, `tcp_connect` (blackbox's name for connect), which take
//! `[defaults]` with their kind, and `http_2xx` (blackbox's name), an `http` check whose
//! target is a URL, answered with blackbox's `probe_http_*` series besides. The check's
//! timeout is the module's, capped as blackbox caps it by Prometheus'
//! `X-Prometheus-Scrape-Timeout-Seconds` less half a second. `hostname=NAME`, as in
//! blackbox, sets the server name of a tls or http module when it has none.
//!
//! The answer is built as a handful of [`prometheus::proto::MetricFamily`] values and
//! encoded with the text encoder: no registry, no collectors, no descriptors per
//! request, which blackbox pays for on every probe.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use prometheus::proto::{MetricFamily, MetricType};

use super::{bad_request, Params};
use crate::checks::http::{Http, HttpReport};
use crate::checks::{self, CheckResult};
use crate::config::{built_in_module, Check, CheckKind, CheckPlan, BUILT_IN_MODULES};
use crate::reload::Shared;
use crate::sinks::metrics::{encode, family, label, metric, unix_seconds, CONTENT_TYPE};
use crate::state::Fleet;

/// The module used when none is given.
pub const DEFAULT_MODULE: &str = "half_open";

/// The header Prometheus sends with its scrape timeout, in seconds.
pub const SCRAPE_TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";

/// The query parameters `/probe` takes.
pub(crate) const PARAMS: [&str; 3] = ["target", "module", "hostname"];

/// What blackbox takes off Prometheus' scrape timeout, so that its answer arrives in time.
pub const SCRAPE_TIMEOUT_OFFSET_SECONDS: f64 = 0.5;

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match Params::parse("/probe", query, &PARAMS) {
        Ok(params) => params,
        Err(why) => return bad_request(why),
    };
    let fleet = shared.fleet();
    let request = match ProbeRequest::new(&fleet, &params, &headers) {
        Ok(request) => request,
        Err(why) => return bad_request(why),
    };
    let start = Instant::now();
    let (result, http) = match (&request.plan.check, &request.endpoint) {
        // An http module reports blackbox's `probe_http_*` series besides the verdict.
        (Check::Http(plan), checks::Endpoint::Url(url)) => {
            let report = Http::new().check_report(url, plan, request.timeout).await;
            (report.result.clone(), Some(report))
        }
        (_, endpoint) => {
            let (plan, timeout) = (&request.plan, request.timeout);
            let kept = checks::Kept::Nothing;
            let result = checks::run(&shared.probers, endpoint, plan, &kept, timeout).await;
            (result, None)
        }
    };
    let took = start.elapsed();
    tracing::debug!(
        target = request.target,
        module = request.module,
        result = result.outcome.label(),
        detail = result.detail.as_deref().unwrap_or(""),
        "probe"
    );
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render_with(&result, request.plan.kind(), took, http.as_ref()),
    )
        .into_response()
}

/// One `/probe` request, checked.
#[derive(Debug)]
pub(crate) struct ProbeRequest<'a> {
    pub(crate) target: &'a str,
    pub(crate) module: &'a str,
    pub(crate) plan: Cow<'a, CheckPlan>,
    /// The target, parsed as the module's kind takes it.
    pub(crate) endpoint: checks::Endpoint,
    pub(crate) timeout: Duration,
}

impl<'a> ProbeRequest<'a> {
    /// The request of `params`, or a 400's reason that says what to write.
    pub(crate) fn new(
        fleet: &'a Fleet,
        params: &'a Params,
        headers: &HeaderMap,
    ) -> Result<Self, String> {
        let target = params.get("target").ok_or(
            "missing target: write /probe?target=HOST:PORT&module=NAME, \
             e.g. /probe?target=127.0.0.1:6379&module=half_open",
        )?;
        let module = params.get("module").unwrap_or(DEFAULT_MODULE);
        let mut plan = module_plan(fleet, module).ok_or_else(|| {
            format!(
                "unknown module {module:?}; modules: {}",
                module_names(fleet).join(", ")
            )
        })?;
        // host:port, or a URL for an http module.
        let endpoint = checks::Endpoint::parse(target, &plan.check)?;
        if let Some(hostname) = params.get("hostname") {
            if plan
                .check
                .tls()
                .is_some_and(|tls| tls.server_name.is_none())
            {
                if let Some(tls) = plan.to_mut().check.tls_mut() {
                    tls.server_name = Some(hostname.to_owned());
                }
            }
        }
        let scrape_timeout = match headers.get(SCRAPE_TIMEOUT_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|seconds| seconds.is_finite())
                    .ok_or_else(|| {
                        format!(
                            "{SCRAPE_TIMEOUT_HEADER}: {value:?} is not a number of seconds, e.g. 10 or 2.5"
                        )
                    })?,
            ),
        };
        let timeout = probe_timeout(plan.timeout, scrape_timeout);
        Ok(ProbeRequest {
            target,
            module,
            plan,
            endpoint,
            timeout,
        })
    }
}

/// The plan of module `name`: the config's `[modules.NAME]` (which wins over a built-in
/// of the same name), or a built-in one.
pub fn module_plan<'a>(fleet: &'a Fleet, name: &str) -> Option<Cow<'a, CheckPlan>> {
    if let Some(plan) = fleet.modules.get(name) {
        return Some(Cow::Borrowed(plan));
    }
    built_in_module(name, &fleet.defaults).map(Cow::Owned)
}

/// Every module `/probe` offers: the built-in ones, then the config's.
pub fn module_names(fleet: &Fleet) -> Vec<&str> {
    let mut names: Vec<&str> = BUILT_IN_MODULES.to_vec();
    names.extend(
        fleet
            .modules
            .keys()
            .map(String::as_str)
            .filter(|name| !BUILT_IN_MODULES.contains(name)),
    );
    names
}

/// The check's timeout, as blackbox_exporter works it out: the module's, unless
/// Prometheus' scrape timeout (120 s when not sent, or sent as 0) less
/// [`SCRAPE_TIMEOUT_OFFSET_SECONDS`] is shorter; the module's again if that is negative.
pub fn probe_timeout(module: Duration, scrape_timeout_seconds: Option<f64>) -> Duration {
    let scrape = scrape_timeout_seconds
        .filter(|seconds| *seconds != 0.0)
        .unwrap_or(120.0);
    let max = scrape - SCRAPE_TIMEOUT_OFFSET_SECONDS;
    let module_seconds = module.as_secs_f64();
    if (module_seconds < max && module_seconds > 0.0) || max < 0.0 {
        module
    } else {
        Duration::try_from_secs_f64(max).unwrap_or(module)
    }
}

/// `/probe`'s answer for `result`, a check of `kind` that took `duration` in all: the
/// series blackbox_exporter's tcp prober gives, with its names and help texts, in its
/// order (by name).
///
/// Always `probe_dns_lookup_time_seconds`, `probe_duration_seconds` and
/// `probe_success`; `probe_ip_protocol` once an address was chosen; for send-expect,
/// `probe_failed_due_to_regex`; for tls, once a handshake read them,
/// `probe_ssl_earliest_cert_expiry` and `probe_tls_version_info{version}`.
///
/// ```
/// use std::time::Duration;
/// use connhealth_watch::checks::{CheckResult, Outcome};
/// use connhealth_watch::config::CheckKind;
///
/// let result = CheckResult {
///     ip_protocol: Some(4),
///     ..CheckResult::new(Outcome::Ok, Duration::from_micros(90))
/// };
/// let text = connhealth_watch::http::probe::render(
///     &result,
///     CheckKind::HalfOpen,
///     Duration::from_micros(250),
/// );
/// assert!(text.ends_with("# TYPE probe_success gauge\nprobe_success 1\n"));
/// assert!(text.contains("\nprobe_ip_protocol 4\n"));
/// ```
pub fn render(result: &CheckResult, kind: CheckKind, duration: Duration) -> String {
    render_with(result, kind, duration, None)
}

/// [`render`], with an http check's `probe_http_*` series from its report: the status
/// code (0 when no answer came), the HTTP version, whether it was https, the redirects
/// followed, the content length (-1 when not given, as blackbox), and the time by phase.
pub fn render_with(
    result: &CheckResult,
    kind: CheckKind,
    duration: Duration,
    http: Option<&HttpReport>,
) -> String {
    let flag = |yes: bool| if yes { 1.0 } else { 0.0 };
    let mut families = Vec::with_capacity(7);
    families.push(gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        result.dns_time.as_secs_f64(),
    ));
    families.push(gauge(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        duration.as_secs_f64(),
    ));
    if matches!(kind, CheckKind::SendExpect | CheckKind::Http) {
        families.push(gauge(
            "probe_failed_due_to_regex",
            "Indicates if probe failed due to regex",
            flag(result.regex_failed),
        ));
    }
    if let Some(report) = http {
        families.extend(http_families(report));
    }
    if let Some(version) = result.ip_protocol {
        families.push(gauge(
            "probe_ip_protocol",
            "Specifies whether probe ip protocol is IP4 or IP6",
            f64::from(version),
        ));
    }
    if let Some(expiry) = result.cert_expiry {
        families.push(gauge(
            "probe_ssl_earliest_cert_expiry",
            "Returns earliest SSL cert expiry date",
            // Whole seconds, as blackbox gives them.
            unix_seconds(expiry).trunc(),
        ));
    }
    families.push(gauge(
        "probe_success",
        "Displays whether or not the probe was a success",
        flag(result.is_ok()),
    ));
    if let Some(version) = result.tls_version {
        families.push(family(
            "probe_tls_version_info",
            "Returns the TLS version used, or NaN when unknown",
            MetricType::GAUGE,
            vec![metric(
                vec![label("version", version)],
                MetricType::GAUGE,
                1.0,
            )],
        ));
    }
    let mut out = Vec::with_capacity(1024);
    for family in &families {
        encode(family, &mut out).expect("writing to a Vec does not fail");
    }
    String::from_utf8(out).expect("the text encoder writes UTF-8")
}

/// The `probe_http_*` families of `report`, in name order.
fn http_families(report: &HttpReport) -> Vec<MetricFamily> {
    let phases = &report.phases;
    let by_phase = [
        ("resolve", phases.resolve),
        ("connect", phases.connect),
        ("tls", phases.tls),
        ("processing", phases.processing),
        ("transfer", phases.transfer),
    ]
    .into_iter()
    .map(|(phase, took)| {
        metric(
            vec![label("phase", phase)],
            MetricType::GAUGE,
            took.as_secs_f64(),
        )
    })
    .collect();
    let version = match report.version {
        Some(http::Version::HTTP_09) => 0.9,
        Some(http::Version::HTTP_10) => 1.0,
        Some(http::Version::HTTP_11) => 1.1,
        Some(http::Version::HTTP_2) => 2.0,
        Some(http::Version::HTTP_3) => 3.0,
        _ => 0.0,
    };
    vec![
        gauge(
            "probe_http_content_length",
            "Length of http content response",
            report.content_length.map_or(-1.0, |length| length as f64),
        ),
        family(
            "probe_http_duration_seconds",
            "Duration of http request by phase, summed over all redirects",
            MetricType::GAUGE,
            by_phase,
        ),
        gauge(
            "probe_http_redirects",
            "The number of redirects",
            f64::from(report.redirects),
        ),
        gauge(
            "probe_http_ssl",
            "Indicates if SSL was used for the final redirect",
            if report.ssl { 1.0 } else { 0.0 },
        ),
        gauge(
            "probe_http_status_code",
            "Response HTTP status code",
            f64::from(report.status_code.unwrap_or(0)),
        ),
        gauge(
            "probe_http_uncompressed_body_length",
            "Length of uncompressed response body",
            report.body_length as f64,
        ),
        gauge(
            "probe_http_version",
            "Returns the version of HTTP of the probe response",
            version,
        ),
    ]
}

/// A family of one gauge with no labels.
fn gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    family(
        name,
        help,
        MetricType::GAUGE,
        vec![metric(Vec::new(), MetricType::GAUGE, value)],
    )
}
