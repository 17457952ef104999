//! The `http` check: one HTTP/1.1 request, the answer's status and body judged, on a
//! connection kept between checks.
//!
//! On the wire, for each check:
//!
//! 1. the connection kept from the previous check, when there is one and the kernel
//!    says it is still open ([`connhealth::check`], one `poll`, nothing sent); else the
//!    URL's host resolved, SYN, SYN-ACK, ACK, and for https a TLS handshake verified as
//!    the `tls` kind verifies (`ca_file`, `insecure`, a pinned self-signed CA:TRUE
//!    certificate, `cert_min_days`), for `server_name`, else the host of a `Host` the
//!    plan's `headers` set (as blackbox: the URL often holds an address), else the URL's
//!    host (no SNI for an address). A kept https connection is reused only under the
//!    same trust and name; `cert_min_days` is judged again at every check;
//! 2. the request: `method`, the URL's path and query, `Host` (the URL's authority) and
//!    `User-Agent: connhealth-watch/VERSION` unless `headers` set them, then `headers`,
//!    then `body`;
//! 3. the answer's head, then its body, read whole up to [`BODY_CAP`] bytes (with no
//!    cap when the plan has blackbox's body regexes, which judge it whole, as blackbox);
//! 4. a redirect (301, 302, 303, 307, 308 with a Location) is followed when
//!    `follow_redirects` says so, at most [`MAX_REDIRECTS`] times, as blackbox does (one
//!    not followed counts as a redirect, and its answer is judged, its body unread): on
//!    the same connection while the origin stays the same, else on a connection of its
//!    own, closed after the check;
//! 5. the last answer is judged in blackbox's order, the first failure the verdict: its
//!    status must be in `valid_status` (2xx when it is empty); then its headers must pass
//!    `fail_if_header_matches` and `fail_if_header_not_matches`; then its body
//!    `fail_if_body_matches`, `fail_if_body_not_matches`, and `expect` when set; then its
//!    version must be in `valid_http_versions` (any when it is empty); then
//!    `fail_if_ssl` and `fail_if_not_ssl` judge whether it came over TLS;
//! 6. with `reuse_connection`, the target's connection is kept, unless the server said
//!    `Connection: close` or the answer was not read whole; else it is closed
//!    gracefully: hyper's shutdown (TLS close_notify, a FIN), then the server's bytes
//!    are read until its FIN, so the server sees an orderly close.
//!
//! A kept connection the server has closed since (an idle timeout, a restart) is found
//! closed in step 1 and replaced, so it fails nothing. When the server closes it just as
//! the request goes out, the request is sent once more on a new connection; only then,
//! never after a timeout.
//!
//! Everything, name resolution included, happens within the check's timeout; a timeout
//! names its phase (`no response within 1s`). The reported duration runs from the start
//! of the check to the end of the last body, as blackbox's `probe_duration_seconds`:
//! resolution, connection and TLS included when there were any.
//!
//! # Outcomes
//!
//! A status outside `valid_status` is `mismatch`, its detail naming the status (`status
//! 500 Internal Server Error (expected 2xx)`): the server answered, and its answer is not
//! what the check expects, which is what `mismatch` says for send-expect. It keeps
//! `regex_failed` false: blackbox's `probe_failed_due_to_regex` is about the header and
//! body regexes only. A header or a body that fails them, or a body that does not match
//! `expect`, is `mismatch` with `regex_failed`, the detail naming the setting and showing
//! what failed (the header's value, the body's start or what matched). A version outside
//! `valid_http_versions`, and an answer over TLS or not against `fail_if_ssl` or
//! `fail_if_not_ssl`, are `mismatch` without it. An answer that is not HTTP, too many
//! redirects or a Location that is not a URL are `error`; a connection closed before the
//! answer is `closed`; the rest as for the `tls` kind.

mod conn;
mod date;
mod url;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, Request, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use tokio::time::{timeout_at, Instant};

use self::conn::{Body, Conn, Opened, Trust};
use self::url::Origin;
use super::tls::TlsClient;
use super::{first_answer, resolve, CheckResult, Outcome};
use crate::config::{AllowList, HttpPlan, IpChoice, StatusRange, TlsPlan};
use crate::human::Rounded;

/// The most body bytes read from one answer, unless the plan has blackbox's body regexes
/// (which read it whole, as blackbox). The rest is not read: the body is judged on what
/// was, and the connection, with unread bytes in it, is not kept.
pub const BODY_CAP: usize = 1 << 20;

/// The most redirects followed, as blackbox (and Go's client): the answer to the 11th
/// is a failure.
pub const MAX_REDIRECTS: u32 = 10;

/// How much of an unmatched body a failure's detail shows.
const SHOWN: usize = 80;

/// `valid_status` when a plan leaves it empty.
const DEFAULT_VALID_STATUS: [StatusRange; 1] = [StatusRange {
    low: 200,
    high: 299,
}];

/// Request headers that go only to the target's own origin, never along a redirect to
/// another (Go's client drops the same).
const OWN_ORIGIN_ONLY: [HeaderName; 4] = [
    header::HOST,
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// A target's http checker: holds the connection kept between its checks.
///
/// `/probe` makes one for a single check; the scheduler keeps one per target. Checks of
/// one target never overlap, but they may: a check takes the kept connection for its
/// time, so a check that overlaps opens a connection of its own, and whichever ends last
/// is kept. A check that is cancelled (its future dropped) closes what it held.
/// Dropping the `Http` closes the kept connection.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use connhealth_watch::checks::http::Http;
/// use connhealth_watch::config::HttpPlan;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A server for the example, on loopback: it answers each request with "ok".
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let url = format!("http://{}/healthz", listener.local_addr().unwrap());
/// tokio::spawn(async move {
///     let (mut conn, _) = listener.accept().await.unwrap();
///     let mut request = [0; 1024];
///     while conn.read(&mut request).await.unwrap_or(0) > 0 {
///         let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
///         conn.write_all(answer.as_bytes()).await.unwrap();
///     }
/// });
///
/// let url: http::Uri = url.parse().unwrap();
/// let plan = HttpPlan::default(); // GET, any 2xx, the connection kept
/// let http = Http::new();
/// for _ in 0..3 {
///     // One connection for the three checks: the server accepts only one.
///     let result = http.check(&url, &plan, Duration::from_secs(1)).await;
///     assert!(result.is_ok(), "{result:?}");
/// }
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Http {
    kept: Mutex<Option<Conn>>,
    /// `/probe`'s `[probe] allow`: the addresses it may reach, redirects included.
    allow: Option<AllowList>,
}

/// What an http check found: its result, and what blackbox's http prober reports
/// besides (`probe_http_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReport {
    /// The verdict.
    pub result: CheckResult,
    /// The last answer's status code, when an answer came. Like the other facts of the
    /// last answer, it is blackbox's empty answer's (none, 0, false) when the last request
    /// got none: a redirect that led nowhere reports nothing of the answer before it.
    pub status_code: Option<u16>,
    /// The last answer's HTTP version.
    pub version: Option<Version>,
    /// Redirects followed.
    pub redirects: u32,
    /// The last answer's length as Go's `resp.ContentLength` gives it, blackbox's
    /// `probe_http_content_length`: its `Content-Length`; -1 when it had none (chunked,
    /// or a body read to the close); 0 for a 1xx, 204 or 304, and when no answer came.
    pub content_length: i64,
    /// The bytes of the last answer's body that were read (at most [`BODY_CAP`]).
    pub body_length: u64,
    /// The last answer came over TLS.
    pub ssl: bool,
    /// The last answer's `Last-Modified` in Unix seconds, read as Go's `http.ParseTime`
    /// reads it (RFC 1123, RFC 850, asctime); `None` when it had none, or one Go would not
    /// read.
    pub last_modified: Option<i64>,
    /// Where the time went, added up over the redirects.
    pub phases: Phases,
    /// What became of the connection kept from the previous check.
    pub reuse: Reuse,
}

/// What became of the connection kept from the previous check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// None was kept: the first check, `reuse_connection = false`, or the previous
    /// check did not keep its connection (`Connection: close`, a failure).
    Nothing,
    /// It carried the request.
    Reused,
    /// The kernel (or hyper) said the server had closed it: it was replaced before any
    /// request went out.
    FoundClosed,
    /// The server closed it as the request went out: the request went again, once, on a
    /// new connection.
    ClosedUnderRequest,
}

/// A check's time by phase, as blackbox's `probe_http_duration_seconds{phase}`. A reused
/// connection spends nothing in `resolve`, `connect` and `tls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Name resolution.
    pub resolve: Duration,
    /// TCP handshakes.
    pub connect: Duration,
    /// TLS handshakes.
    pub tls: Duration,
    /// From sending a request to its answer's head.
    pub processing: Duration,
    /// Reading the bodies.
    pub transfer: Duration,
    /// Which phases blackbox would report: all, only `resolve` (the URL's host did not
    /// resolve), or none (the target was no URL).
    pub timed: Timed,
}

/// Which of [`Phases`] are reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Timed {
    /// Every phase.
    #[default]
    All,
    /// Only the lookup: the URL's own host did not resolve.
    Lookup,
    /// None: the target was no URL, so nothing was looked up.
    Nothing,
}

impl Http {
    /// A checker with no connection yet.
    pub fn new() -> Http {
        Http::default()
    }

    /// A checker that reaches only the addresses `allow` permits (none: any), the URL's
    /// and every redirect's: a host that resolves to any address outside it is refused
    /// before anything is sent, and the result says why in
    /// [`CheckResult::forbidden`](super::CheckResult::forbidden).
    pub fn within(allow: Option<AllowList>) -> Http {
        Http {
            allow,
            ..Http::default()
        }
    }

    /// One check of `url` now, as `plan` says (https with `plan.tls`'s trust), within
    /// `timeout`, name resolution included.
    pub async fn check(&self, url: &Uri, plan: &HttpPlan, timeout: Duration) -> CheckResult {
        self.check_report(url, plan, timeout).await.result
    }

    /// [`Http::check`], with what blackbox's http prober reports besides the verdict.
    pub async fn check_report(&self, url: &Uri, plan: &HttpPlan, timeout: Duration) -> HttpReport {
        let start = Instant::now();
        let deadline = start + timeout;
        let own_origin = match url::Origin::of(url) {
            Ok(origin) => origin,
            Err(why) => {
                let result = CheckResult::failed(Outcome::Error, Duration::ZERO, why);
                return HttpReport::of(result);
            }
        };
        // Taken out for the check's time: never held across an await, and a cancelled
        // check drops (closes) what it took.
        let kept = self.lock().take().filter(|_| plan.reuse_connection);
        let kept = kept.map(|mut conn| {
            conn.carried = true;
            conn
        });
        let mut exchange = Exchange {
            url,
            plan,
            tls: &plan.tls,
            deadline,
            timeout,
            own_origin,
            own: kept,
            other: None,
            closing: Vec::new(),
            report: HttpReport::of(CheckResult::new(Outcome::Ok, Duration::ZERO)),
            dns_time: Duration::ZERO,
            last_addr: None,
            own_addr: None,
            last_tls: None,
            last_chain: None,
            allow: self.allow.as_ref(),
        };
        let result = match exchange.run().await {
            Ok(result) | Err(result) => result,
        };
        let report = exchange.finish(result, start.elapsed());

        let Exchange {
            own,
            other,
            closing,
            ..
        } = exchange;
        let mut to_close = closing;
        to_close.extend(other);
        match own {
            Some(conn) if plan.reuse_connection => {
                // An overlapping check may have kept one since: the newer stays.
                if let Some(older) = self.lock().replace(conn) {
                    to_close.push(older);
                }
            }
            own => to_close.extend(own),
        }
        for conn in to_close {
            conn.close(deadline).await;
        }
        report
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Conn>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpReport {
    /// The report of a check of a target that is no URL, as blackbox reports it: no
    /// answer, and a lookup's time only when `looked_up` (Go's URL parser took what ours
    /// refuses, an empty host say, and the lookup failed), else no time at all.
    pub fn no_url(result: CheckResult, looked_up: bool) -> HttpReport {
        let mut report = HttpReport::of(result);
        report.phases.timed = if looked_up {
            Timed::Lookup
        } else {
            Timed::Nothing
        };
        report
    }

    fn of(result: CheckResult) -> HttpReport {
        HttpReport {
            result,
            status_code: None,
            version: None,
            redirects: 0,
            content_length: 0,
            last_modified: None,
            body_length: 0,
            ssl: false,
            phases: Phases::default(),
            reuse: Reuse::Nothing,
        }
    }
}

/// One check's state: the connections it holds, and what it has seen so far.
struct Exchange<'a> {
    url: &'a Uri,
    plan: &'a HttpPlan,
    tls: &'a TlsPlan,
    deadline: Instant,
    timeout: Duration,
    own_origin: Origin,
    /// The target's own connection (the kept one, or one opened by this check).
    own: Option<Conn>,
    /// A connection to another origin a redirect led to, for a chain that stays there.
    other: Option<Conn>,
    /// Connections answered and not to be kept, closed gracefully once judged.
    closing: Vec<Conn>,
    report: HttpReport,
    dns_time: Duration,
    last_addr: Option<std::net::SocketAddr>,
    /// The address of the target's own connection: with [`IpChoice::Prefer`], the one
    /// chosen for the URL's host, what the check reports (blackbox's `probe_ip_protocol`
    /// and `probe_ip_addr_hash` are its first host's, wherever redirects lead).
    own_addr: Option<std::net::SocketAddr>,
    last_tls: Option<crate::checks::tls::Verified>,
    /// The last answer's connection's chain, as blackbox reports it (https).
    last_chain: Option<Box<super::ChainInfo>>,
    /// `[probe] allow`, for `/probe`.
    allow: Option<&'a AllowList>,
}

/// An answer, read.
struct Answer {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Vec<u8>,
    /// False when the body went past [`BODY_CAP`].
    whole: bool,
    /// The answer of a redirect not followed: Go's client closes its body unread, so
    /// blackbox's body regexes fail on it.
    unread: bool,
}

impl Exchange<'_> {
    /// Steps 1 to 5: the verdict (`Err` for failures before a verdict could be made).
    async fn run(&mut self) -> Result<CheckResult, CheckResult> {
        let plan = self.plan;
        let mut url = self.url.clone();
        let mut method = plan.method.clone();
        let mut body = Bytes::from(plan.body.clone());
        loop {
            let answer = self.fetch(&url, &method, &body).await?;
            let location = answer.headers.get(header::LOCATION);
            let followed = matches!(answer.status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let location = match location {
                Some(location) if followed => location,
                _ => return Ok(self.judge(&answer)),
            };
            let too_many = self.report.redirects == MAX_REDIRECTS;
            if !plan.follow_redirects || too_many {
                // As Go's client: the redirect it refuses counts, and the answer that
                // asked for it is the last, judged as it is but for its body, which Go
                // closes unread.
                self.report.redirects += 1;
                self.report.body_length = 0;
                let to = shown(location.as_bytes());
                let unread = Answer {
                    body: Vec::new(),
                    unread: true,
                    ..answer
                };
                let mut result = self.judge(&unread);
                if too_many {
                    let why = format!(
                        "too many redirects: more than {MAX_REDIRECTS}, the last from {url} to \"{to}\""
                    );
                    result.detail = Some(match result.detail {
                        Some(detail) => format!("{why}; {detail}"),
                        None => why,
                    });
                }
                return Ok(result);
            }
            url = url::follow(&url, location.as_bytes()).map_err(|why| {
                // Go's client gives no answer then, and blackbox reports an empty one.
                self.forget_answer();
                let detail = format!("redirect {} from {url}: {why}", answer.status.as_u16());
                CheckResult::failed(Outcome::Error, Duration::ZERO, detail)
            })?;
            self.report.redirects += 1;
            // 301, 302 and 303 turn a request into a GET without a body, as browsers and
            // Go's client do; 307 and 308 repeat it as it was.
            if matches!(answer.status.as_u16(), 301..=303)
                && method != Method::GET
                && method != Method::HEAD
            {
                method = Method::GET;
                body = Bytes::new();
            }
        }
    }

    /// One request and its answer, on the connection for `url`'s origin.
    async fn fetch(
        &mut self,
        url: &Uri,
        method: &Method,
        body: &Bytes,
    ) -> Result<Answer, CheckResult> {
        self.forget_answer();
        let origin = Origin::of(url)
            .map_err(|why| CheckResult::failed(Outcome::Error, Duration::ZERO, why))?;
        let (mut conn, mut reused) = self.connection(&origin).await?;
        let carried = std::mem::take(&mut conn.carried);
        let response = loop {
            let request = self.request(url, &origin, method, body);
            let sent = Instant::now();
            self.last_addr = Some(conn.addr);
            match timeout_at(self.deadline, conn.send(request)).await {
                Ok(Ok(response)) => {
                    self.report.phases.processing += sent.elapsed();
                    break response;
                }
                Ok(Err(failure)) if reused && failure.closed_before_answer() => {
                    if carried {
                        self.report.reuse = Reuse::ClosedUnderRequest;
                    }
                    tracing::debug!(%origin, failure = ?failure, "http check: the kept connection was closed under the request; sending it on a new one");
                    drop(conn);
                    conn = self.open(&origin).await?;
                    reused = false;
                }
                Ok(Err(failure)) => return Err(failure.result(Duration::ZERO)),
                Err(_) => {
                    let detail = format!("no response within {}", Rounded(self.timeout));
                    return Err(CheckResult::failed(
                        Outcome::Timeout,
                        Duration::ZERO,
                        detail,
                    ));
                }
            }
        };
        self.last_tls = conn.tls.clone();
        self.last_chain = conn.chain.clone();
        let (head, mut incoming) = response.into_parts();
        self.report.status_code = Some(head.status.as_u16());
        self.report.version = Some(head.version);
        self.report.ssl = origin.https;
        self.report.content_length = content_length(method, &head);
        self.report.last_modified = head
            .headers
            .get(header::LAST_MODIFIED)
            .and_then(|value| date::parse_http_time(value.as_bytes()));
        let transfer = Instant::now();
        // blackbox's body regexes judge the body whole, however long.
        let cap = if self.plan.fail_if_body_matches.is_empty()
            && self.plan.fail_if_body_not_matches.is_empty()
        {
            BODY_CAP
        } else {
            usize::MAX
        };
        let read = read_body(&mut incoming, cap, self.deadline, self.timeout).await;
        self.report.phases.transfer += transfer.elapsed();
        let (body, whole) = read?;
        self.report.body_length = body.len() as u64;
        drop(incoming);

        let answer = Answer {
            status: head.status,
            version: head.version,
            headers: head.headers,
            body,
            whole,
            unread: false,
        };
        if !answer.whole {
            drop(conn); // unread bytes in it: no reuse, and no graceful close either
        } else if closes_after(head.version, &answer.headers) {
            self.closing.push(conn);
        } else if origin == self.own_origin {
            self.own = Some(conn);
        } else {
            self.other = Some(conn);
        }
        Ok(answer)
    }

    /// Forgets what the previous answer showed, as a new request goes out: what is
    /// reported is the last answer's, or blackbox's empty answer's when none came.
    fn forget_answer(&mut self) {
        let report = &mut self.report;
        report.status_code = None;
        report.version = None;
        report.content_length = 0;
        report.body_length = 0;
        report.ssl = false;
        report.last_modified = None;
        self.last_tls = None;
        self.last_chain = None;
    }

    /// The connection for `origin`: the one held for it when the kernel says it is
    /// still open (`true`: reused), else a new one.
    async fn connection(&mut self, origin: &Origin) -> Result<(Conn, bool), CheckResult> {
        let held = if *origin == self.own_origin {
            self.own.take()
        } else {
            self.other.take()
        };
        if let Some(conn) = held {
            let verified_otherwise = match &conn.verified_for {
                Some(was) => !was.verifies_as(&self.trust(origin)),
                None => false,
            };
            if conn.origin != *origin {
                self.closing.push(conn); // another origin's, now left behind
            } else if verified_otherwise {
                // The plan's TLS settings changed (a reload): verify anew.
                self.closing.push(conn);
            } else {
                match conn.still_open() {
                    Ok(()) => {
                        if conn.carried {
                            self.report.reuse = Reuse::Reused;
                        }
                        if *origin == self.own_origin {
                            self.own_addr = Some(conn.addr);
                        }
                        return Ok((conn, true));
                    }
                    Err(why) => {
                        if conn.carried {
                            self.report.reuse = Reuse::FoundClosed;
                        }
                        tracing::debug!(%origin, why, "http check: the kept connection is gone; opening another");
                    }
                }
            }
        }
        Ok((self.open(origin).await?, false))
    }

    /// A new connection to `origin`: its name resolved, its addresses tried in order.
    async fn open(&mut self, origin: &Origin) -> Result<Conn, CheckResult> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let target = origin
            .target()
            .map_err(|why| CheckResult::failed(Outcome::Error, Duration::ZERO, why))?;
        // The URL's own host: one address, as blackbox chooses it, when the plan says so;
        // a redirect's other hosts: each address in turn.
        let own = *origin == self.own_origin;
        let choice = if own { self.plan.ip } else { IpChoice::Every };
        let resolved = resolve(&target, left, choice).await;
        let resolved = resolved.inspect_err(|failed| {
            self.dns_time += failed.dns_time;
            self.report.phases.resolve += failed.dns_time;
            // blackbox times only the lookup when the URL's own host does not resolve.
            if own && self.report.redirects == 0 {
                self.report.phases.timed = Timed::Lookup;
            }
        })?;
        self.dns_time += resolved.dns_time;
        self.report.phases.resolve += resolved.dns_time;
        if let Some(refused) = self
            .allow
            .and_then(|allow| super::outside(allow, &target, &resolved.addrs))
        {
            return Err(refused);
        }
        if own && matches!(choice, IpChoice::Prefer { .. }) {
            self.own_addr = resolved.addrs.first().copied();
        }

        let trust = self.trust(origin);
        let (tls_plan, sni) = (&trust.plan, trust.name.as_str());
        let (deadline, timeout) = (self.deadline, self.timeout);
        let opened: Mutex<Option<Opened>> = Mutex::new(None);
        let result = first_answer(&resolved.addrs, deadline.into_std(), |addr, _left| {
            let opened = &opened;
            async move {
                let client = if origin.https {
                    match TlsClient::new(tls_plan, sni, deadline, timeout).await {
                        Ok(client) => Some(client),
                        Err(failed) => return failed,
                    }
                } else {
                    None
                };
                match conn::open(origin, addr, client, deadline, timeout).await {
                    Ok(conn) => {
                        *opened.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
                        CheckResult::new(Outcome::Ok, Duration::ZERO)
                    }
                    Err(failed) => failed,
                }
            }
        })
        .await;
        match opened.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(mut opened) => {
                self.report.phases.connect += opened.connect;
                self.report.phases.tls += opened.tls;
                opened.conn.verified_for = origin.https.then_some(trust);
                Ok(opened.conn)
            }
            None => Err(result),
        }
    }

    /// How an https connection to `origin` is verified. The target's own server is
    /// named by `server_name`, else by the Host header the plan sets (as blackbox does:
    /// the URL often holds an address), else by the URL; another origin by its URL, with
    /// the same trust.
    fn trust(&self, origin: &Origin) -> Trust {
        let own = *origin == self.own_origin;
        let host_header = self
            .plan
            .headers
            .iter()
            .find(|(name, _)| *name == header::HOST)
            .and_then(|(_, value)| value.to_str().ok())
            .map(url::host_of_header)
            .filter(|host| own && !host.is_empty());
        let name = host_header.unwrap_or(origin.bare_host()).to_string();
        let plan = if own {
            self.tls.clone()
        } else {
            TlsPlan {
                server_name: None,
                ..self.tls.clone()
            }
        };
        Trust { plan, name }
    }

    /// The request for `url` on a connection to `origin`.
    fn request(&self, url: &Uri, origin: &Origin, method: &Method, body: &Bytes) -> Request<Body> {
        let own = *origin == self.own_origin;
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = method.clone();
        // The origin form (RFC 9112 §3.2.1): the path, `/` when the URL has none (also
        // before a query: `http://host?x` asks for `/?x`), and the query.
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        *request.uri_mut() = Uri::try_from(target).unwrap_or_else(|_| Uri::from_static("/"));
        let headers = request.headers_mut();
        if let Some(authority) = url.authority() {
            // Without the userinfo a URL may carry (`user:pass@`): it is no part of Host.
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            if let Ok(host) = HeaderValue::from_str(host) {
                headers.insert(header::HOST, host);
            }
        }
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        let sent = self
            .plan
            .headers
            .iter()
            .filter(|(name, _)| own || !OWN_ORIGIN_ONLY.contains(name));
        for (name, _) in sent.clone() {
            headers.remove(name);
        }
        for (name, value) in sent {
            headers.append(name.clone(), value.clone());
        }
        request
    }

    /// Step 5, in blackbox's order: the status; then, when it passed, the headers'
    /// regexes; then the body's (blackbox's `probe_failed_due_to_regex` says which of
    /// those two failed, never the status) and `expect`; then the HTTP version; then TLS
    /// (`fail_if_ssl`, `fail_if_not_ssl`). The first failure is the verdict.
    fn judge(&self, answer: &Answer) -> CheckResult {
        let plan = self.plan;
        let valid = if plan.valid_status.is_empty() {
            &DEFAULT_VALID_STATUS[..]
        } else {
            &plan.valid_status[..]
        };
        let code = answer.status.as_u16();
        let status = status_text(answer.status);
        if !valid.iter().any(|range| range.contains(code)) {
            let detail = format!("status {status} (expected {})", expected(valid));
            return CheckResult::failed(Outcome::Mismatch, Duration::ZERO, detail);
        }
        let regex_failed = |why: String| CheckResult {
            regex_failed: true,
            ..CheckResult::failed(
                Outcome::Mismatch,
                Duration::ZERO,
                format!("status {status}, but {why}"),
            )
        };
        if let Some(why) = header_failure(plan, &answer.headers) {
            return regex_failed(why);
        }
        if let Some(why) = body_failure(plan, answer) {
            return regex_failed(why);
        }
        let version = version_name(answer.version);
        if !plan.valid_http_versions.is_empty()
            && !plan
                .valid_http_versions
                .iter()
                .any(|valid| valid == version)
        {
            let detail = format!(
                "status {status}, but over {version} (valid_http_versions: {})",
                plan.valid_http_versions.join(", ")
            );
            return CheckResult::failed(Outcome::Mismatch, Duration::ZERO, detail);
        }
        let tls = match (self.report.ssl, plan.fail_if_ssl, plan.fail_if_not_ssl) {
            (true, true, _) => Some("the last answer came over TLS (fail_if_ssl)"),
            (false, _, true) => Some("the last answer did not come over TLS (fail_if_not_ssl)"),
            _ => None,
        };
        if let Some(why) = tls {
            let detail = format!("status {status}, but {why}");
            return CheckResult::failed(Outcome::Mismatch, Duration::ZERO, detail);
        }
        CheckResult::new(Outcome::Ok, Duration::ZERO)
    }

    /// The report of a check that ended with `result` after `took`: the fields every
    /// result carries, and `cert_min_days` judged on the connection's certificate.
    fn finish(&mut self, mut result: CheckResult, took: Duration) -> HttpReport {
        result.duration = took;
        result.dns_time = self.dns_time;
        match self.plan.ip {
            // The address chosen for the URL's host, whatever became of the check: none
            // when it did not resolve.
            IpChoice::Prefer { .. } => {
                result.ip_protocol = self.own_addr.map(super::ip_protocol);
                result.ip = self.own_addr.map(|addr| addr.ip());
            }
            // The address the check ended on (the one that refused, when none answered).
            IpChoice::Every => {
                if result.ip_protocol.is_none() {
                    result.ip_protocol = self.last_addr.map(super::ip_protocol);
                    result.ip = self.last_addr.map(|addr| addr.ip());
                }
            }
        }
        if let Some(verified) = &self.last_tls {
            result.cert_expiry = result.cert_expiry.or(verified.cert_expiry());
            result.tls_version = result.tls_version.or(verified.version());
            result.chain = result.chain.take().or(self.last_chain.take());
            if result.is_ok() {
                if let Some(detail) = verified.expires_too_soon(self.tls) {
                    result.outcome = Outcome::Tls;
                    result.detail = Some(detail);
                }
            }
        }
        let mut report = std::mem::replace(
            &mut self.report,
            HttpReport::of(CheckResult::new(Outcome::Ok, Duration::ZERO)),
        );
        report.result = result;
        report
    }
}

/// Go's `resp.ContentLength` of `head`, an answer to `method` (`fixLength` in Go's
/// `net/http`): a HEAD's `Content-Length` (-1 without one); 0 for a 1xx, 204 or 304;
/// -1 when chunked (a `Transfer-Encoding`, HTTP/1.1 on); else the `Content-Length`, -1
/// without one (a body read to the close).
fn content_length(method: &Method, head: &::http::response::Parts) -> i64 {
    let declared = || {
        head.headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
            .and_then(|length| i64::try_from(length).ok())
            .unwrap_or(-1)
    };
    let code = head.status.as_u16();
    if *method == Method::HEAD {
        declared()
    } else if head.status.is_informational() || code == 204 || code == 304 {
        0
    } else if head.version >= Version::HTTP_11
        && head.headers.contains_key(header::TRANSFER_ENCODING)
    {
        -1
    } else {
        declared()
    }
}

/// `connhealth-watch/VERSION`.
const USER_AGENT: &str = concat!("connhealth-watch/", env!("CARGO_PKG_VERSION"));

/// True when the server closes the connection after this answer: `Connection: close`,
/// or HTTP/1.0 without `keep-alive`.
fn closes_after(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers.get_all(header::CONNECTION).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    has("close") || (version < Version::HTTP_11 && !has("keep-alive"))
}

/// Step 3: the body, whole (`true`) or its first `cap` bytes (`false`), by `deadline`.
async fn read_body(
    body: &mut Incoming,
    cap: usize,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Vec<u8>, bool), CheckResult> {
    let mut read = Vec::new();
    loop {
        let frame = match timeout_at(deadline, body.frame()).await {
            Ok(None) => return Ok((read, true)),
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => {
                let (outcome, detail) = match conn::io_error(&err) {
                    Some(io) => (
                        Outcome::of_io_error(io),
                        format!("body, after {} bytes: {io}", read.len()),
                    ),
                    None if err.is_incomplete_message() => (
                        Outcome::Closed,
                        format!(
                            "the server closed the connection after {} bytes of the body",
                            read.len()
                        ),
                    ),
                    None => (
                        Outcome::Error,
                        format!("body, after {} bytes: {err}", read.len()),
                    ),
                };
                return Err(CheckResult::failed(outcome, Duration::ZERO, detail));
            }
            Err(_) => {
                let detail = format!(
                    "the body did not arrive whole within {} ({} bytes read)",
                    Rounded(timeout),
                    read.len()
                );
                return Err(CheckResult::failed(
                    Outcome::Timeout,
                    Duration::ZERO,
                    detail,
                ));
            }
        };
        // Trailers carry nothing the check reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let room = cap - read.len();
        if data.len() > room {
            read.extend_from_slice(&data[..room]);
            return Ok((read, false));
        }
        read.extend_from_slice(&data);
    }
}

/// blackbox's `matchRegularExpressionsOnHeaders`: why `headers` fail the plan's
/// `fail_if_header_matches` (any value of the header matches) or
/// `fail_if_header_not_matches` (no value does), each in order; a header missing fails
/// either unless `allow_missing`. `None` when they pass.
fn header_failure(plan: &HttpPlan, headers: &HeaderMap) -> Option<String> {
    let lists = [
        (&plan.fail_if_header_matches, true, "fail_if_header_matches"),
        (
            &plan.fail_if_header_not_matches,
            false,
            "fail_if_header_not_matches",
        ),
    ];
    for (specs, fails_on_match, setting) in lists {
        for spec in specs {
            let values: Vec<&HeaderValue> = headers.get_all(&spec.header).iter().collect();
            let Some(first) = values.first() else {
                if spec.allow_missing {
                    continue;
                }
                return Some(format!(
                    "the answer has no {} header ({setting})",
                    spec.header
                ));
            };
            let regex = &spec.regexp.0;
            let matched = values.iter().find(|value| regex.is_match(value.as_bytes()));
            let shown_regex = regex.as_str().escape_default();
            match matched {
                Some(value) if fails_on_match => {
                    return Some(format!(
                        "header {} \"{}\" matches \"{shown_regex}\" ({setting})",
                        spec.header,
                        shown(value.as_bytes()),
                    ));
                }
                None if !fails_on_match => {
                    let more = match values.len() {
                        1 => String::new(),
                        n => format!(" (nor do its {} other values)", n - 1),
                    };
                    return Some(format!(
                        "header {} \"{}\" does not match \"{shown_regex}\"{more} ({setting})",
                        spec.header,
                        shown(first.as_bytes()),
                    ));
                }
                _ => {}
            }
        }
    }
    None
}

/// Why `answer`'s body fails the plan: blackbox's `fail_if_body_matches` (the body
/// matches one), then `fail_if_body_not_matches` (it does not match one), then our
/// `expect` (it does not match). `None` when it passes.
fn body_failure(plan: &HttpPlan, answer: &Answer) -> Option<String> {
    let regexes =
        !plan.fail_if_body_matches.is_empty() || !plan.fail_if_body_not_matches.is_empty();
    if answer.unread && regexes {
        return Some(
            "the body of a redirect that is not followed is not read, so fail_if_body_* \
             cannot pass (as in blackbox)"
                .to_owned(),
        );
    }
    let body = &answer.body[..];
    let excerpt = || {
        let more = if body.len() > SHOWN { "..." } else { "" };
        format!("{} bytes, \"{}\"{more}", body.len(), shown(body))
    };
    for pattern in &plan.fail_if_body_matches {
        if let Some(found) = pattern.0.find(body) {
            return Some(format!(
                "the body matches \"{}\" at byte {} (fail_if_body_matches): \"{}\"",
                pattern.0.as_str().escape_default(),
                found.start(),
                shown(found.as_bytes()),
            ));
        }
    }
    for pattern in &plan.fail_if_body_not_matches {
        if !pattern.0.is_match(body) {
            return Some(format!(
                "the body does not match \"{}\" (fail_if_body_not_matches): {}",
                pattern.0.as_str().escape_default(),
                excerpt(),
            ));
        }
    }
    let expect = plan.expect.as_ref()?;
    if expect.0.is_match(body) {
        return None;
    }
    let within = if answer.whole {
        String::new()
    } else {
        format!(" in its first {BODY_CAP} bytes")
    };
    Some(format!(
        "the body does not match \"{}\"{within}: {}",
        expect.0.as_str().escape_default(),
        excerpt(),
    ))
}

/// An answer's version as Go writes `resp.Proto` (`HTTP/1.1`, `HTTP/2.0`): what
/// `valid_http_versions` lists.
fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// `500 Internal Server Error`, or the code alone when it has no standard reason.
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `valid_status` as the config writes it: `2xx`, `204`, `200-204`, joined by commas.
fn expected(valid: &[StatusRange]) -> String {
    let ranges: Vec<String> = valid
        .iter()
        .map(|range| {
            if range.low == range.high {
                range.low.to_string()
            } else if range.low % 100 == 0 && range.high == range.low + 99 {
                format!("{}xx", range.low / 100)
            } else {
                format!("{}-{}", range.low, range.high)
            }
        })
        .collect();
    ranges.join(", ")
}

/// The first [`SHOWN`] bytes of `bytes`, escaped: a body or a header is any bytes.
fn shown(bytes: &[u8]) -> String {
    bytes[..bytes.len().min(SHOWN)].escape_ascii().to_string()
}
