//! `/probe?target=HOST:PORT&module=NAME`: one check now, answered as blackbox_exporter
//! answers, so that a Prometheus job written for blackbox works when pointed here.
//!
//! The module is `[modules.NAME]` from the config, a module of the `blackbox_config`
//! file, or a built-in one ([`config::built_in_module`](crate::config::built_in_module)):
//! connhealth's `half_open` (the default) and `connect`, and blackbox's `tcp_connect` and
//! `http_2xx` (the default when a blackbox file is loaded, as in blackbox), which a
//! blackbox file may redefine. The check's timeout is the module's, capped as blackbox
//! caps it by Prometheus' `X-Prometheus-Scrape-Timeout-Seconds` less half a second; a
//! module without one gets that. The query is read as blackbox reads it: unknown
//! parameters are ignored, the first of a repeated one counts, `debug=true` answers the
//! probe's log, its series and the module as text. A target that the module cannot
//! probe (no port, a bad port, not a URL) is `probe_success 0`, as blackbox answers, so
//! that `probe_success == 0` fires for a typo in a target list. `hostname=NAME` is an
//! http module's `Host` header, as in blackbox, and the server name of a tls module that
//! has none.
//!
//! The answer is built as a handful of [`prometheus::proto::MetricFamily`] values and
//! encoded with the text encoder: no registry, no collectors, no descriptors per
//! request, which blackbox pays for on every probe.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus::proto::{MetricFamily, MetricType};

use super::{bad_request, text, Params};
use crate::checks::http::{Http, HttpReport, Timed};
use crate::checks::{self, CheckResult, Outcome, Probers};
use crate::config::{
    built_in_module, AllowList, Check, CheckKind, Endpoint, Module, BUILT_IN_MODULES,
};
use crate::reload::Shared;
use crate::sinks::metrics::{encode, family, label, metric, unix_seconds, CONTENT_TYPE};
use crate::state::Fleet;
use connhealth::probe::Target;

/// The module used when none is given.
pub const DEFAULT_MODULE: &str = "half_open";

/// The module used when none is given and a `blackbox_config` file is loaded: blackbox's
/// default, so that a blackbox job without `module` probes as it did.
pub const BLACKBOX_DEFAULT_MODULE: &str = "http_2xx";

/// The header Prometheus sends with its scrape timeout, in seconds.
pub const SCRAPE_TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";

/// What blackbox takes off Prometheus' scrape timeout, so that its answer arrives in time.
pub const SCRAPE_TIMEOUT_OFFSET_SECONDS: f64 = 0.5;

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match Params::lenient("/probe", query) {
        Ok(params) => params,
        Err(why) => return bad_request(why),
    };
    let fleet = shared.fleet();
    let Some(_slot) = Slot::take(&shared.probes_in_flight, fleet.probe.max_concurrent) else {
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} /probe requests are running, [probe] max_concurrent; try again, or raise it\n",
                fleet.probe.max_concurrent
            ),
        );
    };
    let request = match ProbeRequest::new(&fleet, &params, &headers) {
        Ok(request) => request,
        Err(Refusal::BadRequest(why)) => return bad_request(why),
        // blackbox answers 500 for it.
        Err(Refusal::BadScrapeTimeout(why)) => {
            return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n"))
        }
    };
    let start = Instant::now();
    let Probed {
        result,
        http,
        reached,
    } = request
        .run(&shared.probers, fleet.probe.allow.as_ref())
        .await;
    if let Some(why) = &result.forbidden {
        return text(StatusCode::FORBIDDEN, format!("{why}\n"));
    }
    let took = start.elapsed();
    tracing::debug!(
        target = request.target,
        module = request.module_name,
        result = result.outcome.label(),
        detail = result.detail.as_deref().unwrap_or(""),
        "probe"
    );
    let answer = Answer {
        result: &result,
        kind: request.module.check.kind(),
        duration: took,
        http: http.as_ref(),
        reached,
    };
    if params.first("debug") == Some("true") {
        return (
            // blackbox's, exactly.
            [(header::CONTENT_TYPE, "text/plain")],
            debug_output(&request, &answer),
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], answer.render()).into_response()
}

/// Why `/probe` refuses a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 400: no target, an unknown module, a module connhealth does not run.
    BadRequest(String),
    /// 500, as blackbox: `X-Prometheus-Scrape-Timeout-Seconds` is not a number.
    BadScrapeTimeout(String),
}

impl Refusal {
    /// The reason.
    pub(crate) fn why(&self) -> &str {
        match self {
            Refusal::BadRequest(why) | Refusal::BadScrapeTimeout(why) => why,
        }
    }
}

/// One `/probe` request, checked.
#[derive(Debug)]
pub(crate) struct ProbeRequest<'a> {
    pub(crate) target: &'a str,
    pub(crate) module_name: &'a str,
    pub(crate) module: Cow<'a, Module>,
    /// The target, parsed as the module's kind takes it; the reason when it is not what
    /// the kind takes, which answers as blackbox does: `probe_success 0`, not a 400.
    pub(crate) endpoint: Result<Endpoint, String>,
    pub(crate) timeout: Duration,
}

impl<'a> ProbeRequest<'a> {
    /// The request of `params`, or why it is refused, saying what to write: no target, an
    /// unknown module, a module of a prober connhealth does not run, or a scrape timeout
    /// header that is not a number.
    pub(crate) fn new(
        fleet: &'a Fleet,
        params: &'a Params,
        headers: &HeaderMap,
    ) -> Result<Self, Refusal> {
        let target = params
            .first("target")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Refusal::BadRequest(
                    "missing target: write /probe?target=HOST:PORT&module=NAME, \
                     e.g. /probe?target=127.0.0.1:6379&module=half_open"
                        .to_owned(),
                )
            })?;
        let module_name =
            params
                .first("module")
                .filter(|m| !m.is_empty())
                .unwrap_or(if fleet.blackbox {
                    BLACKBOX_DEFAULT_MODULE
                } else {
                    DEFAULT_MODULE
                });
        if let Some(what) = fleet.unsupported_modules.get(module_name) {
            return Err(Refusal::BadRequest(format!(
                "module {module_name:?} uses {what}, which connhealth does not run; \
                 connhealth runs blackbox's tcp and http probers and its own half_open and \
                 connect: probe this module with blackbox_exporter, or change it"
            )));
        }
        let mut module = find_module(fleet, module_name).ok_or_else(|| {
            Refusal::BadRequest(format!(
                "unknown module {module_name:?}; modules: {}",
                module_names(fleet).join(", ")
            ))
        })?;
        if let Some(hostname) = params.first("hostname").filter(|h| !h.is_empty()) {
            set_hostname(module.to_mut(), hostname).map_err(Refusal::BadRequest)?;
        }
        let endpoint = match &module.check {
            Check::Http(_) => Endpoint::parse(&with_scheme(target), &module.check),
            check => Endpoint::parse(target, check),
        };
        let scrape_timeout = match headers.get(SCRAPE_TIMEOUT_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|seconds| seconds.is_finite())
                    .ok_or_else(|| {
                        Refusal::BadScrapeTimeout(format!(
                            "{SCRAPE_TIMEOUT_HEADER}: {value:?} is not a number of seconds, e.g. 10 or 2.5"
                        ))
                    })?,
            ),
        };
        let timeout = probe_timeout(module.timeout.unwrap_or(Duration::ZERO), scrape_timeout);
        Ok(ProbeRequest {
            target,
            module_name,
            module,
            endpoint,
            timeout,
        })
    }

    /// The check, now, reaching only what `allow` permits.
    async fn run(&self, probers: &Probers, allow: Option<&AllowList>) -> Probed {
        let endpoint = match &self.endpoint {
            Ok(endpoint) => endpoint,
            Err(why) => {
                let mut result = CheckResult::failed(Outcome::Error, Duration::ZERO, why.clone());
                // blackbox's tcp prober splits host and port as Go does, and resolves the
                // host before the dial fails on the port: its address series come with
                // the failure.
                let mut reached = false;
                if let Check::Http(_) = &self.module.check {
                    // Go's URL parser takes more than ours (an empty host, say); what it
                    // takes is looked up, and the lookup fails.
                    let url = with_scheme(self.target);
                    let looked_up = url
                        .parse::<http::Uri>()
                        .is_ok_and(|u| u.authority().is_some());
                    return Probed {
                        http: Some(HttpReport::no_url(result.clone(), looked_up)),
                        result,
                        reached: looked_up,
                    };
                }
                if let Check::Tcp(tcp) = &self.module.check {
                    if let Some((host, _port)) = go_split_host_port(self.target) {
                        reached = true;
                        let target = match host.parse::<std::net::IpAddr>() {
                            Ok(ip) => Target::Addr(std::net::SocketAddr::new(ip, 0)),
                            Err(_) => Target::Name {
                                host: host.to_owned(),
                                port: 0,
                            },
                        };
                        match checks::resolve(&target, self.timeout, tcp.ip).await {
                            Ok(resolved) => {
                                let addr = resolved.addrs[0];
                                result.dns_time = resolved.dns_time;
                                result.ip_protocol = Some(checks::ip_protocol(addr));
                                result.ip = Some(addr.ip());
                            }
                            Err(failed) => result.dns_time = failed.dns_time,
                        }
                    }
                }
                return Probed {
                    result,
                    http: None,
                    reached,
                };
            }
        };
        match (&self.module.check, endpoint) {
            // An http module reports blackbox's `probe_http_*` series besides the verdict.
            (Check::Http(plan), Endpoint::Url(url)) => {
                let report = Http::within(allow.cloned())
                    .check_report(url, plan, self.timeout)
                    .await;
                Probed {
                    result: report.result.clone(),
                    http: Some(report),
                    reached: true,
                }
            }
            (check, endpoint) => {
                let plan = crate::config::CheckPlan {
                    check: check.clone(),
                    timeout: self.timeout,
                    ..Default::default()
                };
                let kept = checks::Kept::Nothing;
                let result =
                    checks::run_within(probers, endpoint, &plan, &kept, self.timeout, allow).await;
                Probed {
                    result,
                    http: None,
                    reached: true,
                }
            }
        }
    }
}

/// An http module's target as blackbox takes it: without a scheme, `http://` first.
fn with_scheme(target: &str) -> Cow<'_, str> {
    if target.starts_with("http://") || target.starts_with("https://") {
        Cow::Borrowed(target)
    } else {
        Cow::Owned(format!("http://{target}"))
    }
}

/// A place among the `/probe` requests running at once, given back on drop.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    /// A place, when fewer than `max` requests hold one.
    fn take(in_flight: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < max).then_some(now + 1)
            })
            .ok()
            .map(|_| Slot(in_flight))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one `/probe` check found.
#[derive(Debug)]
struct Probed {
    result: CheckResult,
    /// An http check's report.
    http: Option<HttpReport>,
    /// An address was looked for (see [`Answer::reached`]).
    reached: bool,
}

/// Go's `net.SplitHostPort`: `host:port` split at the last colon, `[host]:port` at the
/// bracket (the port may be anything, even empty); `None` where Go gives an error (no
/// colon, a colon in an unbracketed host, stray brackets).
pub fn go_split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let last = hostport.rfind(':')?;
    let (host, inner_from, inner_to) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != last {
            return None;
        }
        (&hostport[1..end], 1, end + 1)
    } else {
        let host = &hostport[..last];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hostport[inner_from..].contains('[') || hostport[inner_to..].contains(']') {
        return None;
    }
    Some((host, &hostport[last + 1..]))
}

/// `hostname=NAME`: an http module's `Host` header, as blackbox sets it (a 400 when the
/// module sets another), which also names the TLS server unless `server_name` does; the
/// server name of a tls or tcp module that names none.
fn set_hostname(module: &mut Module, hostname: &str) -> Result<(), String> {
    match &mut module.check {
        Check::Http(http) => {
            let value = HeaderValue::from_str(hostname)
                .map_err(|_| format!("hostname {hostname:?} cannot be a Host header"))?;
            if let Some((_, set)) = http.headers.iter().find(|(name, _)| name == header::HOST) {
                if set != value {
                    return Err(format!(
                        "host header defined both in module configuration ({}) and with URL-parameter 'hostname' ({hostname})",
                        String::from_utf8_lossy(set.as_bytes())
                    ));
                }
            }
            http.headers.retain(|(name, _)| name != header::HOST);
            http.headers.push((header::HOST, value));
        }
        check => {
            if let Some(tls) = check.tls_mut().filter(|tls| tls.server_name.is_none()) {
                tls.server_name = Some(hostname.to_owned());
            }
        }
    }
    Ok(())
}

/// The text blackbox answers `debug=true` with: what happened, the series, the module.
fn debug_output(request: &ProbeRequest<'_>, answer: &Answer<'_>) -> String {
    let result = answer.result;
    let mut out = String::from("Logs for the probe:\n");
    let _ = writeln!(
        out,
        "module={} target={} level=info msg=\"Beginning probe\" probe={} timeout_seconds={}",
        request.module_name,
        request.target,
        answer.kind.name(),
        request.timeout.as_secs_f64()
    );
    let _ = match &result.detail {
        None if result.is_ok() => writeln!(
            out,
            "module={} target={} level=info msg=\"Probe succeeded\" duration_seconds={}",
            request.module_name,
            request.target,
            answer.duration.as_secs_f64()
        ),
        detail => writeln!(
            out,
            "module={} target={} level=error msg=\"Probe failed\" result={} detail={:?} duration_seconds={}",
            request.module_name,
            request.target,
            result.outcome.label(),
            detail.as_deref().unwrap_or(""),
            answer.duration.as_secs_f64()
        ),
    };
    out.push_str("\n\n\nMetrics that would have been returned:\n");
    out.push_str(&answer.render());
    out.push_str("\n\n\nModule configuration:\n");
    let _ = writeln!(out, "{:#?}", request.module);
    out
}

/// Module `name`: the config's (`[modules.NAME]` or `blackbox_config`'s, which win over a
/// built-in of the same name), or a built-in one.
pub fn find_module<'a>(fleet: &'a Fleet, name: &str) -> Option<Cow<'a, Module>> {
    if let Some(module) = fleet.modules.get(name) {
        return Some(Cow::Borrowed(module));
    }
    built_in_module(name, fleet.defaults_timeout).map(Cow::Owned)
}

/// Every module `/probe` runs: the built-in ones, then the config's.
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
/// series blackbox_exporter gives for it, with its names and help texts, in its order (by
/// name). See [`Answer::render`].
///
/// ```
/// use std::time::Duration;
/// use connhealth_watch::checks::{CheckResult, Outcome};
/// use connhealth_watch::config::CheckKind;
///
/// let result = CheckResult {
///     ip_protocol: Some(4),
///     ip: Some([127, 0, 0, 1].into()),
///     ..CheckResult::new(Outcome::Ok, Duration::from_micros(90))
/// };
/// let text = connhealth_watch::http::probe::render(
///     &result,
///     CheckKind::HalfOpen,
///     Duration::from_micros(250),
/// );
/// assert!(text.ends_with("# TYPE probe_success gauge\nprobe_success 1\n"));
/// assert!(text.contains("\nprobe_ip_protocol 4\n"));
/// assert!(text.contains("\nprobe_ip_addr_hash 3668918509\n"));
/// ```
pub fn render(result: &CheckResult, kind: CheckKind, duration: Duration) -> String {
    render_with(result, kind, duration, None)
}

/// [`render`], with an http check's `probe_http_*` series from its report.
pub fn render_with(
    result: &CheckResult,
    kind: CheckKind,
    duration: Duration,
    http: Option<&HttpReport>,
) -> String {
    Answer {
        result,
        kind,
        duration,
        http,
        reached: true,
    }
    .render()
}

/// What `/probe` answers with.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The check's result.
    pub result: &'a CheckResult,
    /// The module's kind.
    pub kind: CheckKind,
    /// The whole probe's time.
    pub duration: Duration,
    /// An http check's report.
    pub http: Option<&'a HttpReport>,
    /// The target was what the kind takes, so an address was looked for (false: no
    /// `probe_dns_lookup_time_seconds`, `probe_ip_protocol`, `probe_ip_addr_hash`, as
    /// blackbox stops before it resolves anything).
    pub reached: bool,
}

impl Answer<'_> {
    /// The series, as blackbox gives them:
    ///
    /// - always `probe_duration_seconds` and `probe_success`;
    /// - once the target was read, `probe_dns_lookup_time_seconds`, `probe_ip_protocol`
    ///   and `probe_ip_addr_hash` (FNV-1a of the address's bytes; both 0 when no address
    ///   was found);
    /// - for blackbox's tcp and http probers and for send-expect,
    ///   `probe_failed_due_to_regex`;
    /// - for http, the `probe_http_*` series;
    /// - once a TLS handshake read them, `probe_ssl_earliest_cert_expiry`,
    ///   `probe_ssl_last_chain_expiry_timestamp_seconds`,
    ///   `probe_ssl_last_chain_info{fingerprint_sha256,subject,issuer,subjectalternative}`
    ///   and `probe_tls_version_info{version}` (the `tls` kind reports the expiry also when
    ///   verification failed).
    pub fn render(&self) -> String {
        let result = self.result;
        let flag = |yes: bool| if yes { 1.0 } else { 0.0 };
        let mut families = Vec::with_capacity(12);
        if self.reached {
            families.push(gauge(
                "probe_dns_lookup_time_seconds",
                "Returns the time taken for probe dns lookup in seconds",
                result.dns_time.as_secs_f64(),
            ));
        }
        families.push(gauge(
            "probe_duration_seconds",
            "Returns how long the probe took to complete in seconds",
            self.duration.as_secs_f64(),
        ));
        if matches!(
            self.kind,
            CheckKind::SendExpect | CheckKind::Http | CheckKind::Tcp
        ) {
            families.push(gauge(
                "probe_failed_due_to_regex",
                "Indicates if probe failed due to regex",
                flag(result.regex_failed),
            ));
        }
        if let Some(report) = self.http {
            families.extend(http_families(report));
        }
        if self.reached {
            families.push(gauge(
                "probe_ip_addr_hash",
                "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
                result.ip.map_or(0.0, |ip| f64::from(ip_hash(ip))),
            ));
            families.push(gauge(
                "probe_ip_protocol",
                "Specifies whether probe ip protocol is IP4 or IP6",
                f64::from(result.ip_protocol.unwrap_or(0)),
            ));
        }
        if let Some(expiry) = result.cert_expiry {
            families.push(gauge(
                "probe_ssl_earliest_cert_expiry",
                "Returns last SSL chain expiry in unixtime",
                // Whole seconds, as blackbox gives them.
                unix_seconds(expiry).trunc(),
            ));
        }
        if let Some(chain) = &result.chain {
            families.push(gauge(
                "probe_ssl_last_chain_expiry_timestamp_seconds",
                "Returns last SSL chain expiry in timestamp",
                chain.last_chain_expiry as f64,
            ));
            families.push(family(
                "probe_ssl_last_chain_info",
                "Contains SSL leaf certificate information",
                MetricType::GAUGE,
                vec![metric(
                    vec![
                        label("fingerprint_sha256", &chain.fingerprint_sha256),
                        label("issuer", &chain.issuer),
                        label("subject", &chain.subject),
                        label("subjectalternative", &chain.subject_alternative),
                    ],
                    MetricType::GAUGE,
                    1.0,
                )],
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
                "Returns the TLS version used or NaN when unknown",
                MetricType::GAUGE,
                vec![metric(
                    vec![label("version", version)],
                    MetricType::GAUGE,
                    1.0,
                )],
            ));
        }
        let mut out = Vec::with_capacity(1024);
        // The text encoder refuses a family without a series (no phase timed, say): a
        // family blackbox leaves out, as it leaves out a gauge vector never set.
        for family in families.iter().filter(|f| !f.get_metric().is_empty()) {
            encode(family, &mut out).expect("writing a family with series to a Vec does not fail");
        }
        String::from_utf8(out).expect("the text encoder writes UTF-8")
    }
}

/// `probe_ip_addr_hash`: FNV-1a (32 bits) of the address's bytes, 4 for IPv4 and 16 for
/// IPv6, as blackbox hashes them.
pub fn ip_hash(ip: std::net::IpAddr) -> u32 {
    let bytes: Vec<u8> = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        },
    };
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The `probe_http_*` families of `report`, in name order: the content length (-1 when
/// the answer gave none, 0 when no answer came, as blackbox), the time by phase, the
/// redirects followed, whether the last answer came over TLS, its status code (0 when
/// none came), its body's length, its HTTP version and, when it had a valid one, its
/// `Last-Modified`.
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
    .filter(|(phase, _)| match phases.timed {
        Timed::All => true,
        Timed::Lookup => *phase == "resolve",
        Timed::Nothing => false,
    })
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
    let mut families = vec![
        gauge(
            "probe_http_content_length",
            "Length of http content response",
            report.content_length as f64,
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
    ];
    if let Some(unix) = report.last_modified {
        // Only when the answer had a valid one, as blackbox; in name order.
        let at = families
            .iter()
            .position(|f| f.name() > "probe_http_last_modified_timestamp_seconds")
            .unwrap_or(families.len());
        families.insert(
            at,
            gauge(
                "probe_http_last_modified_timestamp_seconds",
                "Returns the Last-Modified HTTP response header in unixtime",
                unix as f64,
            ),
        );
    }
    families
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_split_as_go_splits_them() {
        assert_eq!(go_split_host_port("db:5432"), Some(("db", "5432")));
        assert_eq!(go_split_host_port("db:smtp"), Some(("db", "smtp")));
        assert_eq!(go_split_host_port("db:"), Some(("db", "")));
        assert_eq!(go_split_host_port(":80"), Some(("", "80")));
        assert_eq!(go_split_host_port("[::1]:80"), Some(("::1", "80")));
        assert_eq!(
            go_split_host_port("[fe80::1%eth0]:80"),
            Some(("fe80::1%eth0", "80"))
        );
        for refused in [
            "db",
            "::1:80",
            "[::1]",
            "[::1]x:80",
            "[::1:80",
            "d[b:80",
            "db]:80",
        ] {
            assert_eq!(go_split_host_port(refused), None, "{refused}");
        }
    }

    #[test]
    fn the_ip_hash_is_fnv_1a_of_the_address_bytes() {
        assert_eq!(ip_hash([127, 0, 0, 1].into()), 3_668_918_509);
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(ip_hash(mapped), 3_668_918_509, "as Go's To4()");
        assert_ne!(
            ip_hash("::1".parse().unwrap()),
            ip_hash([0, 0, 0, 1].into())
        );
    }
}
