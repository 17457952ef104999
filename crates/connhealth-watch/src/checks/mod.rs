//! The check kinds, one file each, and what a check reports.
//!
//! `half-open` and `connect` go through the library's [`connhealth::Prober`] ([`Probers`]),
//! which the scheduler feeds in batches; `hold` keeps a connection per target ([`hold`]);
//! `tls` and `send-expect` are a task per check ([`tls`], [`send_expect`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use connhealth::probe::Target;
use connhealth::{Mode, ProbeEngine, Prober};

pub use crate::config::Endpoint;
use crate::config::{AllowList, Check, CheckPlan, IpChoice};
use crate::human::Rounded;

pub mod close;
pub mod hold;
pub mod http;
pub mod send_expect;
pub mod tcp;
pub mod tls;

use self::hold::Hold;
use self::http::Http;

/// The two probers every half-open and connect check goes through: the scheduler feeds
/// them in batches, and `/probe` calls them one probe at a time.
#[derive(Debug, Clone)]
pub struct Probers {
    /// `Mode::HalfOpen`: half-open checks, hold's confirming probes, `/probe` `half_open`.
    pub half_open: Prober,
    /// `Mode::Connect`: connect checks, `/probe` `connect` and `tcp_connect`.
    pub connect: Prober,
}

impl Probers {
    /// Two probers, each keeping at most `max_in_flight` probes in flight.
    pub fn new(max_in_flight: usize) -> Probers {
        let build = |mode| {
            Prober::builder()
                .mode(mode)
                .max_in_flight(max_in_flight)
                .build()
        };
        Probers {
            half_open: build(Mode::HalfOpen),
            connect: build(Mode::Connect),
        }
    }

    /// Logs which engine sends the half-open checks' SYNs (what
    /// `connhealth_probe_engine` says): once, at start. When it is not the raw engine,
    /// the library has just said why (the missing `CAP_NET_RAW`, most often).
    pub fn say_engine(&self) {
        match self.half_open.engine() {
            Some(ProbeEngine::Raw) => tracing::info!(
                engine = "raw",
                "half-open checks run on the raw engine: one raw socket sends every SYN"
            ),
            Some(engine) if cfg!(target_os = "linux") => tracing::info!(
                engine = engine.as_str(),
                "half-open checks run a socket per probe; with CAP_NET_RAW they would run on the raw engine, with no socket per probe"
            ),
            Some(engine) => tracing::info!(
                engine = engine.as_str(),
                "half-open checks run a socket per probe (the raw engine is Linux's alone)"
            ),
            None => tracing::warn!(
                "half-open checks cannot run: the probe engine did not start (see the error above)"
            ),
        }
    }
}

/// How the scheduler runs a kind's scheduled checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// Batched through the half-open prober's feed (`half-open`, and `hold`'s probes).
    HalfOpen,
    /// Batched through the connect prober's feed.
    Connect,
    /// A task per check ([`run`]): `tls`, `send-expect`, `http`.
    Task,
}

impl Runner {
    /// The runner of `check`'s kind.
    pub fn of(check: &Check) -> Runner {
        match check {
            Check::HalfOpen | Check::Hold => Runner::HalfOpen,
            Check::Connect => Runner::Connect,
            Check::Tls(_) | Check::SendExpect(_) | Check::Http(_) | Check::Tcp(_) => Runner::Task,
        }
    }
}

/// What a kind keeps for a target between its checks: `hold`'s held connection, or
/// `http`'s kept-alive one. Dropping it closes what it keeps.
#[derive(Debug, Default)]
pub enum Kept {
    /// The kind keeps nothing.
    #[default]
    Nothing,
    /// `hold`: the held connection, which reports its close.
    Hold(Hold),
    /// `http`: the connection kept alive between checks.
    Http(Arc<Http>),
}

impl Kept {
    /// What `plan`'s kind keeps for a target at `endpoint`: `on_close` is told when a
    /// held connection closes (`hold` only). Call it on a runtime: a held connection is
    /// a task.
    pub fn start(
        plan: &CheckPlan,
        endpoint: &Endpoint,
        on_close: impl Fn(String) + Send + 'static,
    ) -> Kept {
        match (&plan.check, endpoint) {
            (Check::Hold, Endpoint::Tcp(target)) => {
                Kept::Hold(Hold::for_plan(target.clone(), plan, on_close))
            }
            (Check::Http(_), _) => Kept::Http(Arc::new(Http::new())),
            _ => Kept::Nothing,
        }
    }

    /// The held connection, for `hold`.
    pub fn hold(&self) -> Option<&Hold> {
        match self {
            Kept::Hold(hold) => Some(hold),
            _ => None,
        }
    }
}

/// Runs one check of `address` now, as `plan` says, within `timeout` (name resolution
/// included): what `/probe` does. A string that is not what the kind takes (`host:port`,
/// or a URL for `http`) is an `error` result that says why.
pub async fn run_once(
    probers: &Probers,
    address: &str,
    plan: &CheckPlan,
    timeout: Duration,
) -> CheckResult {
    match Endpoint::parse(address, &plan.check) {
        Ok(endpoint) => run(probers, &endpoint, plan, &Kept::Nothing, timeout).await,
        Err(why) => CheckResult::failed(Outcome::Error, Duration::ZERO, why),
    }
}

/// Checks `endpoint` as `plan` says, within `timeout` from now, name resolution included,
/// trying a name's addresses in order until one answers, with what the kind keeps for the
/// target (`kept`: an http connection to reuse). The scheduler runs `tls`, `send-expect`
/// and `http` checks through here, and `/probe` every kind; `hold` has no connection to
/// hold here, so it probes half-open, as its scheduled checks do. (The scheduler hands its
/// half-open and connect probes to the engine in batches instead.)
///
/// This is the one match on the kind for running a check.
pub async fn run(
    probers: &Probers,
    endpoint: &Endpoint,
    plan: &CheckPlan,
    kept: &Kept,
    timeout: Duration,
) -> CheckResult {
    run_within(probers, endpoint, plan, kept, timeout, None).await
}

/// [`run`], reaching only addresses `allow` permits (`/probe`'s `[probe] allow`): a name
/// is resolved once, and when any of the addresses it gives lies outside, nothing is sent
/// and the result says why in [`CheckResult::forbidden`].
pub async fn run_within(
    probers: &Probers,
    endpoint: &Endpoint,
    plan: &CheckPlan,
    kept: &Kept,
    timeout: Duration,
    allow: Option<&AllowList>,
) -> CheckResult {
    let target = match (endpoint, &plan.check) {
        (Endpoint::Url(url), Check::Http(http)) => {
            return match (kept, allow) {
                (Kept::Http(client), None) => client.check(url, http, timeout).await,
                (_, allow) => Http::within(allow.cloned()).check(url, http, timeout).await,
            };
        }
        (Endpoint::Tcp(target), _) => target,
        (Endpoint::Url(url), _) => {
            let detail = format!(
                "{url} is a URL; check = \"{}\" takes host:port",
                plan.kind().name()
            );
            return CheckResult::failed(Outcome::Error, Duration::ZERO, detail);
        }
    };
    let deadline = Instant::now() + timeout;
    let resolved = match resolve(target, timeout, plan.check.ip_choice()).await {
        Ok(resolved) => resolved,
        Err(failed) => return failed,
    };
    if let Some(refused) = allow.and_then(|allow| outside(allow, target, &resolved.addrs)) {
        return refused;
    }
    let host = host_of(target);
    let mut result = first_answer(&resolved.addrs, deadline, |addr, left| {
        // SNI and the name verified: the name as written, or else the address's IP.
        let host = host.clone().unwrap_or_else(|| addr.ip().to_string());
        async move {
            match &plan.check {
                Check::HalfOpen | Check::Hold => one_probe(&probers.half_open, addr, left).await,
                Check::Connect => one_probe(&probers.connect, addr, left).await,
                Check::Tls(tls) => tls::check(addr, &host, tls, left).await,
                Check::SendExpect(send_expect) => send_expect::check(addr, send_expect, left).await,
                Check::Tcp(tcp) => tcp::check(addr, &host, tcp, &probers.connect, left).await,
                Check::Http(_) => {
                    let detail = format!("{addr} is not a URL; check = \"http\" takes one");
                    CheckResult::failed(Outcome::Error, Duration::ZERO, detail)
                }
            }
        }
    })
    .await;
    result.dns_time = resolved.dns_time;
    result
}

/// The refusal when any of `addrs`, what `target` resolved to, lies outside `allow`.
pub(crate) fn outside(
    allow: &AllowList,
    target: &Target,
    addrs: &[SocketAddr],
) -> Option<CheckResult> {
    let addr = addrs.iter().find(|addr| !allow.permits(addr.ip()))?;
    let which = match target {
        Target::Name { host, .. } if host != &addr.ip().to_string() => {
            format!("{host} resolves to {}, which", addr.ip())
        }
        _ => addr.ip().to_string(),
    };
    let why = format!("{which} is outside [probe] allow ({allow}): nothing was sent to it");
    Some(CheckResult {
        forbidden: Some(why.clone()),
        ..CheckResult::failed(Outcome::Error, Duration::ZERO, why)
    })
}

async fn one_probe(prober: &Prober, addr: SocketAddr, timeout: Duration) -> CheckResult {
    CheckResult::of_probe(&prober.probe_addr(addr, timeout).await)
}

/// 4 or 6: `probe_ip_protocol` of an address.
pub fn ip_protocol(addr: SocketAddr) -> u8 {
    if addr.is_ipv4() {
        4
    } else {
        6
    }
}

/// The host name of `target` as written, or `None` for an address. A scoped IPv6
/// address (`fe80::1%eth0`) is a name to the resolver, which looks its interface up, but
/// not a host name: sent as SNI it would be refused, so it counts as an address.
fn host_of(target: &Target) -> Option<String> {
    match target {
        Target::Name { host, .. } => match host.split_once('%') {
            Some((ip, _scope)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => None,
            _ => Some(host.clone()),
        },
        _ => None,
    }
}

/// What a target's address is for one check: the address itself, or every address its
/// name resolved to, in the resolver's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// At least one address.
    pub addrs: Vec<SocketAddr>,
    /// The time name resolution took (zero for an address).
    pub dns_time: Duration,
}

/// The addresses to check: `target` itself, or its name resolved within `timeout` by the
/// system resolver; with [`IpChoice::Prefer`], only the one address chosen.
pub async fn resolve(
    target: &Target,
    timeout: Duration,
    ip: IpChoice,
) -> Result<Resolved, CheckResult> {
    let resolved = resolve_every(target, timeout).await?;
    let IpChoice::Prefer {
        preferred,
        fallback,
    } = ip
    else {
        return Ok(resolved);
    };
    let of = |family: u8| {
        resolved
            .addrs
            .iter()
            .copied()
            .find(|a| ip_protocol(*a) == family)
    };
    let other = if preferred == 4 { 6 } else { 4 };
    let chosen = of(preferred).or_else(|| if fallback { of(other) } else { None });
    match chosen {
        Some(addr) => Ok(Resolved {
            addrs: vec![addr],
            dns_time: resolved.dns_time,
        }),
        None => {
            let host = match target {
                Target::Name { host, .. } => host.clone(),
                _ => resolved.addrs[0].ip().to_string(),
            };
            let detail =
                format!("{host} has no IPv{preferred} address, and ip_protocol_fallback is off");
            Err(CheckResult {
                dns_time: resolved.dns_time,
                ..CheckResult::failed(Outcome::Resolve, resolved.dns_time, detail)
            })
        }
    }
}

async fn resolve_every(target: &Target, timeout: Duration) -> Result<Resolved, CheckResult> {
    let (host, port) = match target {
        Target::Addr(addr) => {
            return Ok(Resolved {
                addrs: vec![*addr],
                dns_time: Duration::ZERO,
            })
        }
        Target::Name { host, port } => (host.as_str(), *port),
        _ => {
            return Err(CheckResult::failed(
                Outcome::Error,
                Duration::ZERO,
                "unsupported target",
            ))
        }
    };
    let start = Instant::now();
    let looked_up = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await;
    let took = start.elapsed();
    let failed = |detail: String| CheckResult {
        dns_time: took,
        ..CheckResult::failed(Outcome::Resolve, took, detail)
    };
    match looked_up {
        Err(_) => Err(failed(format!(
            "{host} did not resolve within {}",
            Rounded(timeout)
        ))),
        Ok(Err(err)) => Err(failed(format!("cannot resolve {host}: {err}"))),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                return Err(failed(format!("{host} resolved to no address")));
            }
            Ok(Resolved {
                addrs,
                dns_time: took,
            })
        }
    }
}

/// Runs `check` on each of `addrs` in turn, with what is left until `deadline`, until one
/// answers: a refusal or an unreachable address moves on to the next, as a client would
/// ("localhost" is often `::1` first, with the server on `127.0.0.1` only). The result is
/// the first answer's, or the first refusal's when none answered.
pub async fn first_answer<F, Fut>(
    addrs: &[SocketAddr],
    deadline: Instant,
    mut check: F,
) -> CheckResult
where
    F: FnMut(SocketAddr, Duration) -> Fut,
    Fut: std::future::Future<Output = CheckResult>,
{
    let mut first_refusal: Option<CheckResult> = None;
    for &addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut result = check(addr, left).await;
        result.ip_protocol = Some(ip_protocol(addr));
        result.ip = Some(addr.ip());
        if !result.outcome.tries_next_address() {
            return result; // an answer: a success, or a failure no other address changes
        }
        first_refusal.get_or_insert(result);
        if Instant::now() >= deadline {
            break;
        }
    }
    first_refusal
        .unwrap_or_else(|| CheckResult::failed(Outcome::Error, Duration::ZERO, "no address"))
}

/// Why a check ended as it did: the `result` label of `connhealth_target_checks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The check succeeded.
    Ok,
    /// The target answered with an RST: nothing listens.
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// No route, or an ICMP unreachable.
    Unreachable,
    /// The name did not resolve.
    Resolve,
    /// The checker ran out of its own resources, or could not start the check in time:
    /// nothing is known about the target, and it never makes a target down.
    Exhausted,
    /// A held or established connection was closed by the peer.
    Closed,
    /// send-expect: the reply did not match.
    Mismatch,
    /// tls: the handshake failed, the chain did not verify, or a certificate expires too
    /// soon.
    Tls,
    /// Anything else.
    Error,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::Refused,
        Outcome::Timeout,
        Outcome::Unreachable,
        Outcome::Resolve,
        Outcome::Exhausted,
        Outcome::Closed,
        Outcome::Mismatch,
        Outcome::Tls,
        Outcome::Error,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::Resolve => "resolve",
            Outcome::Exhausted => "exhausted",
            Outcome::Closed => "closed",
            Outcome::Mismatch => "mismatch",
            Outcome::Tls => "tls",
            Outcome::Error => "error",
        }
    }

    /// The index in [`Outcome::ALL`], for per-outcome counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A refusal or an unreachable address: another address of the same name may answer.
    pub fn tries_next_address(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::Unreachable)
    }

    /// Counts toward `fall`. `Exhausted` is the checker's problem and counts toward
    /// neither `rise` nor `fall`.
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Exhausted)
    }

    /// The outcome of a probe error from the library.
    pub fn of_probe_error(err: &connhealth::ProbeError) -> Outcome {
        use connhealth::ProbeError;
        match err {
            ProbeError::Refused => Outcome::Refused,
            ProbeError::TimedOut => Outcome::Timeout,
            ProbeError::Unreachable(_) => Outcome::Unreachable,
            ProbeError::Resolve(_) => Outcome::Resolve,
            ProbeError::Exhausted(_) => Outcome::Exhausted,
            _ => Outcome::Error,
        }
    }

    /// The outcome of an I/O error from `connect`, `read` or `write`.
    pub fn of_io_error(err: &std::io::Error) -> Outcome {
        use std::io::ErrorKind;
        match err.kind() {
            ErrorKind::ConnectionRefused => Outcome::Refused,
            ErrorKind::TimedOut => Outcome::Timeout,
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => Outcome::Closed,
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => Outcome::Unreachable,
            _ => match err.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL | libc::ENOBUFS) => {
                    Outcome::Exhausted
                }
                Some(libc::EHOSTUNREACH | libc::ENETUNREACH) => Outcome::Unreachable,
                _ => Outcome::Error,
            },
        }
    }
}

/// What blackbox reports of a TLS peer's chain besides its earliest expiry:
/// `probe_ssl_last_chain_expiry_timestamp_seconds` and `probe_ssl_last_chain_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// The earliest `notAfter` of the verified chain (leaf to trust anchor), in Unix
    /// seconds; Go's zero time, -62135596800, when nothing was verified (`insecure`), as
    /// blackbox reports it.
    pub last_chain_expiry: i64,
    /// The leaf's SHA-256, in lowercase hex.
    pub fingerprint_sha256: String,
    /// The leaf's subject, as Go writes a name (`CN=example.com,O=Example`).
    pub subject: String,
    /// The leaf's issuer, written the same way.
    pub issuer: String,
    /// The leaf's DNS names, joined by commas.
    pub subject_alternative: String,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// Why it ended as it did.
    pub outcome: Outcome,
    /// The check's own time: to the SYN-ACK, the handshake, or the match. Zero when it
    /// never started.
    pub duration: Duration,
    /// The time name resolution took (zero for an address).
    pub dns_time: Duration,
    /// 4 or 6: the address family of the address checked, when one was.
    pub ip_protocol: Option<u8>,
    /// A sentence for the log and `/status` when the check failed: the error as the
    /// system or the peer gave it.
    pub detail: Option<String>,
    /// tls: the earliest `notAfter` in the peer's chain.
    pub cert_expiry: Option<SystemTime>,
    /// tls: the negotiated version, as blackbox names it (`TLS 1.3`).
    pub tls_version: Option<&'static str>,
    /// tls: the rest of what blackbox reports of the chain, once a handshake completed.
    pub chain: Option<Box<ChainInfo>>,
    /// The address checked, once one was chosen (`probe_ip_addr_hash`).
    pub ip: Option<std::net::IpAddr>,
    /// `/probe` only: an address the check was about to reach lies outside `[probe]
    /// allow`, so nothing was sent to it; why.
    pub forbidden: Option<String>,
    /// send-expect: the reply was read but did not match.
    pub regex_failed: bool,
    /// A conclusive failure: the held connection closed and nothing listens any more.
    /// The target goes down at once, whatever `fall` says.
    pub conclusive: bool,
}

impl CheckResult {
    /// A result with nothing but its outcome and duration.
    pub fn new(outcome: Outcome, duration: Duration) -> CheckResult {
        CheckResult {
            outcome,
            duration,
            dns_time: Duration::ZERO,
            ip_protocol: None,
            detail: None,
            cert_expiry: None,
            tls_version: None,
            chain: None,
            ip: None,
            forbidden: None,
            regex_failed: false,
            conclusive: false,
        }
    }

    /// The result of a half-open or connect probe: `Ok` with the time to the SYN-ACK (or
    /// the handshake), or the probe error's outcome with its message.
    pub fn of_probe(probed: &Result<Duration, connhealth::ProbeError>) -> CheckResult {
        match probed {
            Ok(rtt) => CheckResult::new(Outcome::Ok, *rtt),
            Err(err) => CheckResult::failed(
                Outcome::of_probe_error(err),
                Duration::ZERO,
                err.to_string(),
            ),
        }
    }

    /// A failure with a detail.
    pub fn failed(outcome: Outcome, duration: Duration, detail: impl Into<String>) -> CheckResult {
        CheckResult {
            detail: Some(detail.into()),
            ..CheckResult::new(outcome, duration)
        }
    }

    /// True when the check succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_ipv6_address_is_not_a_host_name() {
        let host = |written: &str| host_of(&Target::parse(written).unwrap());
        assert_eq!(host("[fe80::1%eth0]:443"), None);
        assert_eq!(host("[fe80::1%2]:443"), None);
        assert_eq!(host("127.0.0.1:443"), None);
        assert_eq!(host("localhost:443").as_deref(), Some("localhost"));
    }
}
