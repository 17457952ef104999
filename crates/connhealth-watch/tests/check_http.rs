//! The `http` check against servers of the test's own (plain and TLS, on loopback) and a
//! real nginx: keep-alive reuse and the kernel's word before each reuse, servers that
//! close, status and body verdicts, redirects, https trust and reuse.
//!
//! Run with `cargo test -p connhealth-watch --test check_http`. The nginx tests need
//! Debian's `nginx-light` (scripts/test installs it); without it they skip, or fail under
//! `CI=true`.

mod http_servers;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use connhealth_watch::checks::http::{Http, HttpReport, Reuse, BODY_CAP};
use connhealth_watch::checks::{CheckResult, Outcome};
use connhealth_watch::config::{HttpPlan, Pattern, StatusRange, TlsPlan};
use http::{HeaderName, HeaderValue, Method, Uri};

use http_servers::{
    ca_signed, self_signed_ca, server_config, End, Nginx, Pki, Reply, Server, Then,
};

const TIMEOUT: Duration = Duration::from_secs(2);
const DAY: Duration = Duration::from_secs(86_400);

/// A check as these tests write it: the URL (a target's address) and its settings.
#[derive(Debug, Clone)]
struct Req {
    url: Uri,
    plan: HttpPlan,
}

impl std::ops::Deref for Req {
    type Target = HttpPlan;

    fn deref(&self) -> &HttpPlan {
        &self.plan
    }
}

impl std::ops::DerefMut for Req {
    fn deref_mut(&mut self) -> &mut HttpPlan {
        &mut self.plan
    }
}

fn plan(url: &str) -> Req {
    Req {
        url: url.parse().unwrap(),
        // GET, any 2xx, redirects followed, the connection kept.
        plan: HttpPlan::default(),
    }
}

fn no_reuse(url: &str) -> Req {
    let mut req = plan(url);
    req.reuse_connection = false;
    req
}

fn trusting(pki: &Pki) -> TlsPlan {
    TlsPlan {
        ca_file: Some(pki.ca_file.clone()),
        ..TlsPlan::default()
    }
}

/// One check of `req` by `http`, https trusting `tls`.
async fn go(http: &Http, req: &Req, tls: &TlsPlan, timeout: Duration) -> CheckResult {
    go_report(http, req, tls, timeout).await.result
}

/// [`go`], reported.
async fn go_report(http: &Http, req: &Req, tls: &TlsPlan, timeout: Duration) -> HttpReport {
    let plan = HttpPlan {
        tls: tls.clone(),
        ..req.plan.clone()
    };
    http.check_report(&req.url, &plan, timeout).await
}

async fn check(http: &Http, req: &Req) -> CheckResult {
    go(http, req, &TlsPlan::default(), TIMEOUT).await
}

/// One check of `http`, reported: what became of its kept connection, and the result.
async fn kept(http: &Http, req: &Req) -> Reuse {
    let report = go_report(http, req, &TlsPlan::default(), TIMEOUT).await;
    assert_ok(&report.result);
    report.reuse
}

async fn report(req: &Req) -> HttpReport {
    go_report(&Http::new(), req, &TlsPlan::default(), TIMEOUT).await
}

fn assert_ok(result: &CheckResult) {
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.detail, None);
}

/// Waits until `ends` connections have ended at the server, the runtime running
/// meanwhile (a connection's task may be what closes it).
async fn wait_for_ends(server: &Server, ends: usize) -> Vec<End> {
    let start = Instant::now();
    while server.stats.ends().len() < ends && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stats.ends()
}

// --- Keep-alive -------------------------------------------------------------------

#[tokio::test]
async fn five_checks_with_reuse_use_one_connection() {
    let server = Server::http(|_| Reply::ok("ok"));
    let http = Http::new();
    let plan = plan(&server.url("/healthz"));
    assert_eq!(kept(&http, &plan).await, Reuse::Nothing);
    for _ in 0..4 {
        assert_eq!(kept(&http, &plan).await, Reuse::Reused);
    }
    assert_eq!(server.stats.connections(), 1);
    assert_eq!(server.stats.requests(), 5);
    let last = server.stats.last_request();
    assert_eq!(last.nth_on_connection, 5);
}

#[tokio::test]
async fn five_checks_without_reuse_use_five_connections_each_closed_with_a_fin() {
    let server = Server::http(|_| Reply::ok("ok"));
    let http = Http::new();
    let plan = no_reuse(&server.url("/healthz"));
    for _ in 0..5 {
        assert_eq!(kept(&http, &plan).await, Reuse::Nothing);
    }
    assert_eq!(server.stats.connections(), 5);
    // Each closed by the checker, gracefully: a FIN, never an RST.
    assert_eq!(wait_for_ends(&server, 5).await, vec![End::Fin; 5]);
}

#[tokio::test]
async fn dropping_the_checker_closes_its_kept_connection() {
    let server = Server::http(|_| Reply::ok("ok"));
    let http = Http::new();
    assert_ok(&check(&http, &plan(&server.url("/"))).await);
    assert!(server.stats.ends().is_empty(), "the connection is kept");
    drop(http);
    assert_eq!(wait_for_ends(&server, 1).await.len(), 1);
}

#[tokio::test]
async fn server_that_answers_connection_close_every_time_stays_ok() {
    let server = Server::http(|_| {
        Reply::ok("ok")
            .header("Connection", "close")
            .then(Then::Close)
    });
    let http = Http::new();
    let plan = plan(&server.url("/"));
    for _ in 0..5 {
        assert_ok(&check(&http, &plan).await);
    }
    assert_eq!(server.stats.connections(), 5);
    assert_eq!(server.stats.requests(), 5);
}

#[tokio::test]
async fn server_that_just_closes_after_every_answer_stays_ok() {
    // No `Connection: close`: the checker keeps the connection, and finds it closed
    // before the next check.
    let server = Server::http(|_| Reply::ok("ok").then(Then::Close));
    let http = Http::new();
    let plan = plan(&server.url("/"));
    assert_eq!(kept(&http, &plan).await, Reuse::Nothing);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(kept(&http, &plan).await, Reuse::FoundClosed);
    }
    assert_eq!(server.stats.connections(), 5);
    assert_eq!(server.stats.requests(), 5);
}

#[tokio::test]
async fn kept_connection_closed_by_the_server_while_idle_is_replaced() {
    let server =
        Server::http(|_| Reply::ok("ok").then(Then::CloseWhenIdleFor(Duration::from_millis(50))));
    let http = Http::new();
    let plan = plan(&server.url("/"));
    assert_eq!(kept(&http, &plan).await, Reuse::Nothing);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(kept(&http, &plan).await, Reuse::FoundClosed);
    }
    assert_eq!(server.stats.connections(), 3);
    assert_eq!(server.stats.requests(), 3);
}

#[tokio::test]
async fn kept_connection_the_server_has_sent_its_fin_on_gets_no_request() {
    // The server answers, and a little later sends its FIN but still reads. The test
    // blocks its (single-threaded) runtime from the end of the first check until the FIN
    // is in, so hyper's task cannot have read it: only the kernel knows, and the check
    // must ask it before sending.
    let server =
        Server::http(|_| Reply::ok("ok").then(Then::HalfCloseAfter(Duration::from_millis(200))));
    let http = Http::new();
    let plan = plan(&server.url("/"));
    assert_eq!(kept(&http, &plan).await, Reuse::Nothing);
    connhealth_testkit::wait_until(Duration::from_secs(5), || {
        server.stats.fin_sent.load(Ordering::SeqCst)
    })
    .expect("the server's FIN");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(kept(&http, &plan).await, Reuse::FoundClosed);
    assert_eq!(server.stats.requests_after_fin.load(Ordering::SeqCst), 0);
    assert_eq!(server.stats.connections(), 2);
}

#[tokio::test]
async fn request_on_a_kept_connection_closed_under_it_is_sent_once_more() {
    // The race of an idle timeout: the server reads the second request of a connection
    // and closes without answering.
    let server = Server::http(|request| {
        if request.nth_on_connection == 2 {
            Reply::hang_up()
        } else {
            Reply::ok("ok")
        }
    });
    let http = Http::new();
    let plan = plan(&server.url("/"));
    assert_eq!(kept(&http, &plan).await, Reuse::Nothing);
    assert_eq!(kept(&http, &plan).await, Reuse::ClosedUnderRequest);
    assert_eq!(server.stats.connections(), 2);
    assert_eq!(server.stats.requests(), 3);
}

#[tokio::test]
async fn new_connection_closed_without_an_answer_is_closed_and_not_sent_again() {
    let server = Server::http(|_| Reply::hang_up());
    let result = check(&Http::new(), &plan(&server.url("/"))).await;
    assert_eq!(result.outcome, Outcome::Closed, "{result:?}");
    assert!(result.detail.unwrap().contains("closed the connection"));
    assert_eq!(server.stats.connections(), 1);
}

#[tokio::test]
async fn silent_server_times_out_naming_the_phase_and_gets_one_request() {
    let server = Server::http(|_| Reply::silent());
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let result = go(
        &Http::new(),
        &plan(&server.url("/")),
        &TlsPlan::default(),
        timeout,
    )
    .await;
    assert!(start.elapsed() < timeout + Duration::from_secs(1));
    assert_eq!(result.outcome, Outcome::Timeout, "{result:?}");
    assert_eq!(result.detail.as_deref(), Some("no response within 300ms"));
    assert_eq!(server.stats.connections(), 1);
    assert_eq!(server.stats.requests(), 1);
}

#[tokio::test]
async fn after_a_timeout_the_next_check_uses_a_new_connection() {
    let server = Server::http(|request| {
        if request.connection == 1 {
            Reply::silent()
        } else {
            Reply::ok("ok")
        }
    });
    let http = Http::new();
    let plan = plan(&server.url("/"));
    let timeout = Duration::from_millis(200);
    let first = go(&http, &plan, &TlsPlan::default(), timeout).await;
    assert_eq!(first.outcome, Outcome::Timeout);
    assert_ok(&check(&http, &plan).await);
    assert_eq!(server.stats.connections(), 2);
}

#[tokio::test]
async fn refused_port_is_refused() {
    let addr = connhealth_testkit::closed_port();
    let result = check(&Http::new(), &plan(&format!("http://{addr}/"))).await;
    assert_eq!(result.outcome, Outcome::Refused, "{result:?}");
    assert_eq!(result.ip_protocol, Some(4));
}

#[tokio::test]
async fn overlapping_checks_of_one_checker_both_succeed() {
    let server = Server::http(|_| Reply::ok("ok"));
    let http = Http::new();
    let plan = plan(&server.url("/"));
    let (a, b) = tokio::join!(check(&http, &plan), check(&http, &plan));
    assert_ok(&a);
    assert_ok(&b);
    assert_ok(&check(&http, &plan).await);
    assert!(server.stats.connections() <= 2);
}

#[tokio::test]
async fn a_cancelled_check_leaves_the_checker_usable() {
    let server = Server::http(|request| {
        if request.connection == 1 {
            Reply::silent()
        } else {
            Reply::ok("ok")
        }
    });
    let http = Http::new();
    let plan = plan(&server.url("/"));
    let cancelled = tokio::time::timeout(Duration::from_millis(100), check(&http, &plan)).await;
    assert!(cancelled.is_err());
    assert_ok(&check(&http, &plan).await);
}

// --- The request -------------------------------------------------------------------

#[test]
fn checker_and_check_can_move_to_any_task() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let http = Http::new();
    send_sync(&http);
    let plan = plan("http://127.0.0.1:1/");
    send(&go(&http, &plan, &TlsPlan::default(), TIMEOUT));
}

#[tokio::test]
async fn urls_without_a_path_ask_for_slash() {
    let server = Server::http(|_| Reply::ok("ok"));
    let port = server.addr.port();
    assert_ok(&check(&Http::new(), &plan(&format!("http://127.0.0.1:{port}"))).await);
    assert_eq!(server.stats.last_request().target, "/");
    assert_ok(&check(&Http::new(), &plan(&format!("http://127.0.0.1:{port}?x=1"))).await);
    assert_eq!(server.stats.last_request().target, "/?x=1");
}

#[tokio::test]
async fn request_has_the_defaults_and_the_plans_method_headers_and_body() {
    let server = Server::http(|_| Reply::ok("ok"));
    let result = check(&Http::new(), &plan(&server.url("/healthz?full=1"))).await;
    assert_ok(&result);
    let seen = server.stats.last_request();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/healthz?full=1")
    );
    assert_eq!(seen.header("Host"), Some(server.addr.to_string().as_str()));
    let agent = format!("connhealth-watch/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(seen.header("User-Agent"), Some(agent.as_str()));

    let mut custom = plan(&server.url("/api"));
    custom.plan = HttpPlan {
        method: Method::POST,
        headers: vec![
            (
                HeaderName::from_static("host"),
                HeaderValue::from_static("api.internal"),
            ),
            (
                HeaderName::from_static("user-agent"),
                HeaderValue::from_static("probe/1"),
            ),
            (
                HeaderName::from_static("x-check"),
                HeaderValue::from_static("yes"),
            ),
        ],
        body: b"{\"ping\":1}".to_vec(),
        ..custom.plan.clone()
    };
    assert_ok(&check(&Http::new(), &custom).await);
    let seen = server.stats.last_request();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.header("Host"), Some("api.internal"));
    assert_eq!(seen.header("User-Agent"), Some("probe/1"));
    assert_eq!(seen.header("X-Check"), Some("yes"));
    assert_eq!(seen.body, b"{\"ping\":1}");
    let hosts = seen
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"));
    assert_eq!(hosts.count(), 1, "the plan's Host replaces the default");
}

// --- The verdict -------------------------------------------------------------------

#[tokio::test]
async fn status_500_is_a_mismatch_naming_it() {
    let server = Server::http(|_| Reply::new("500 Internal Server Error", "boom"));
    let result = check(&Http::new(), &plan(&server.url("/"))).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert_eq!(
        result.detail.as_deref(),
        Some("status 500 Internal Server Error (expected 2xx)")
    );
    assert!(!result.regex_failed);
}

#[tokio::test]
async fn valid_status_lists_codes_and_classes() {
    let server = Server::http(|_| Reply::new("503 Service Unavailable", ""));
    let mut plan = plan(&server.url("/"));
    plan.valid_status = vec![
        StatusRange {
            low: 200,
            high: 299,
        },
        StatusRange {
            low: 503,
            high: 503,
        },
    ];
    assert_ok(&check(&Http::new(), &plan).await);
    plan.valid_status = vec![
        StatusRange {
            low: 200,
            high: 299,
        },
        StatusRange {
            low: 304,
            high: 304,
        },
    ];
    let result = check(&Http::new(), &plan).await;
    assert_eq!(
        result.detail.as_deref(),
        Some("status 503 Service Unavailable (expected 2xx, 304)")
    );
    plan.valid_status = Vec::new(); // 2xx when empty
    assert_eq!(check(&Http::new(), &plan).await.outcome, Outcome::Mismatch);
}

#[tokio::test]
async fn body_that_does_not_match_is_a_mismatch_with_an_excerpt() {
    let server =
        Server::http(|_| Reply::ok(&format!("{{\"status\":\"down\"}}{}", "x".repeat(200))));
    let mut plan = plan(&server.url("/"));
    plan.expect = Some(Pattern(
        regex::bytes::Regex::new("\"status\":\"up\"").unwrap(),
    ));
    let result = check(&Http::new(), &plan).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert!(result.regex_failed);
    let detail = result.detail.unwrap();
    assert!(detail.contains("does not match"), "{detail}");
    assert!(
        detail.contains("{\\\"status\\\":\\\"down\\\"}xxx"),
        "{detail}"
    );
    assert!(detail.ends_with("...") && detail.len() < 300, "{detail}");
}

#[tokio::test]
async fn body_that_matches_is_ok_and_non_utf8_bodies_are_shown_escaped() {
    let server = Server::http(|request| match request.target.as_str() {
        "/up" => Reply::ok("{\"status\":\"up\"}"),
        _ => Reply::new("200 OK", b"\xff\xfe\x00binary".to_vec()),
    });
    let mut up = plan(&server.url("/up"));
    up.expect = Some(Pattern(
        regex::bytes::Regex::new("\"status\":\"up\"").unwrap(),
    ));
    assert_ok(&check(&Http::new(), &up).await);
    let binary = Req {
        url: server.url("/binary").parse().unwrap(),
        ..up
    };
    let result = check(&Http::new(), &binary).await;
    assert!(result.regex_failed);
    assert!(result.detail.unwrap().contains("\\xff\\xfe\\x00binary"));
}

#[tokio::test]
async fn huge_body_is_read_up_to_the_cap_and_its_connection_not_kept() {
    let server = Server::http(|_| Reply::ok(&"y".repeat(3 * BODY_CAP)));
    let http = Http::new();
    let plan = plan(&server.url("/"));
    let report = go_report(&http, &plan, &TlsPlan::default(), TIMEOUT).await;
    assert_ok(&report.result);
    assert_eq!(report.body_length, BODY_CAP as u64);
    assert_eq!(report.content_length, 3 * BODY_CAP as i64);
    assert_ok(&check(&http, &plan).await);
    assert_eq!(server.stats.connections(), 2);
}

#[tokio::test]
async fn odd_answers_are_failures_not_panics() {
    let server = Server::http(|request| {
        let raw = |head: &[u8], body: &[u8]| Reply::raw(head, body);
        match request.target.as_str() {
            "/garbage" => raw(b"SSH-2.0-OpenSSH_9.2", b""),
            "/bad-length" => raw(b"HTTP/1.1 200 OK\r\nContent-Length: nope", b""),
            "/short" => raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10", b"abc").then(Then::Close),
            "/odd-header" => raw(
                b"HTTP/1.1 200 OK\r\nX-\xc3\xa9: \xff\r\nContent-Length: 0",
                b"",
            ),
            _ => raw(b"HTTP/1.1 999 Whatever\r\nContent-Length: 0", b""),
        }
    });
    for path in ["/garbage", "/bad-length", "/short", "/odd-header", "/999"] {
        let result = check(&Http::new(), &plan(&server.url(path))).await;
        assert!(
            result.detail.is_some() || result.is_ok(),
            "{path}: {result:?}"
        );
        assert_ne!(result.outcome, Outcome::Timeout, "{path}: {result:?}");
    }
}

// --- Redirects ---------------------------------------------------------------------

/// A server where `/hop/N` redirects to `/hop/N-1`, alternately by a relative and an
/// absolute Location, and `/hop/0` answers 200.
fn hops() -> Server {
    Server::http(|request| {
        let n: u32 = request
            .target
            .strip_prefix("/hop/")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        match n {
            0 => Reply::ok("arrived"),
            n if n % 2 == 0 => Reply::redirect("302 Found", &format!("{}", n - 1)),
            n => {
                let host = request.header("Host").unwrap_or_default().to_string();
                Reply::redirect(
                    "301 Moved Permanently",
                    &format!("http://{host}/hop/{}", n - 1),
                )
            }
        }
    })
}

#[tokio::test]
async fn redirect_chain_of_three_is_followed() {
    let server = hops();
    let report = report(&plan(&server.url("/hop/3"))).await;
    assert_ok(&report.result);
    assert_eq!(report.redirects, 3);
    assert_eq!(report.status_code, Some(200));
    assert_eq!(server.stats.connections(), 1, "one origin, one connection");
    assert_eq!(server.stats.last_request().target, "/hop/0");
}

#[tokio::test]
async fn redirect_chain_of_ten_is_followed_and_of_eleven_is_too_many() {
    let server = hops();
    assert_ok(&report(&plan(&server.url("/hop/10"))).await.result);
    let report = report(&plan(&server.url("/hop/11"))).await;
    let result = report.result;
    // As Go's client: the 11th is refused and counted, and its 30x judged.
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert_eq!(report.redirects, 11);
    assert_eq!(report.status_code, Some(301), "/hop/1's");
    let detail = result.detail.unwrap();
    assert!(
        detail.starts_with("too many redirects: more than 10")
            && detail.ends_with("(expected 2xx)"),
        "{detail}"
    );
}

#[tokio::test]
async fn redirect_not_followed_is_judged_as_it_is() {
    let server = Server::http(|_| Reply::redirect("302 Found", "/elsewhere"));
    let mut plan = plan(&server.url("/"));
    plan.follow_redirects = false;
    let counted = report(&plan).await;
    assert_eq!(
        counted.redirects, 1,
        "counted, as Go counts the redirect it refuses"
    );
    let result = check(&Http::new(), &plan).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert_eq!(
        result.detail.as_deref(),
        Some("status 302 Found (expected 2xx)")
    );
    plan.valid_status = vec![StatusRange {
        low: 300,
        high: 399,
    }];
    assert_ok(&check(&Http::new(), &plan).await);
    assert_eq!(server.stats.requests(), 3);
}

#[tokio::test]
async fn redirect_to_another_origin_has_a_connection_of_its_own_closed_after() {
    let other = Server::http(|_| Reply::ok("other"));
    let to = other.url("/landing");
    let target = Server::http(move |_| Reply::redirect("307 Temporary Redirect", &to));
    let http = Http::new();
    let plan = plan(&target.url("/"));
    for _ in 0..3 {
        assert_ok(&check(&http, &plan).await);
    }
    assert_eq!(target.stats.connections(), 1, "the target's own is kept");
    assert_eq!(other.stats.connections(), 3, "another origin's is not");
    assert_eq!(wait_for_ends(&other, 3).await, vec![End::Fin; 3]);
}

#[tokio::test]
async fn redirect_with_a_bad_location_is_an_error_saying_so() {
    let server = Server::http(|request| match request.target.as_str() {
        "/ftp" => Reply::redirect("302 Found", "ftp://files.example/x"),
        _ => Reply::redirect("302 Found", "http://[::1/x"),
    });
    for path in ["/ftp", "/broken"] {
        let result = check(&Http::new(), &plan(&server.url(path))).await;
        assert_eq!(result.outcome, Outcome::Error, "{result:?}");
        assert!(result.detail.unwrap().starts_with("redirect 302 from"));
    }
}

#[tokio::test]
async fn see_other_turns_a_post_into_a_get() {
    let server = Server::http(|request| match request.target.as_str() {
        "/form" => Reply::redirect("303 See Other", "/done"),
        _ => Reply::ok("done"),
    });
    let mut plan = plan(&server.url("/form"));
    plan.method = Method::POST;
    plan.body = b"a=1".to_vec();
    assert_ok(&check(&Http::new(), &plan).await);
    let last = server.stats.last_request();
    assert_eq!((last.method.as_str(), last.body.len()), ("GET", 0));
}

// --- https -------------------------------------------------------------------------

#[tokio::test]
async fn https_with_an_expired_certificate_is_tls() {
    let pki = ca_signed(SystemTime::now() - 2 * DAY);
    let server = Server::https(server_config(&pki), |_| Reply::ok("ok"));
    let result = go(
        &Http::new(),
        &plan(&server.https_url("/")),
        &trusting(&pki),
        TIMEOUT,
    )
    .await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    assert!(result.detail.unwrap().contains("expired"));
    assert_eq!(result.cert_expiry, Some(pki.not_after));
    assert_eq!(server.stats.requests(), 0);
}

#[tokio::test]
async fn https_with_a_self_signed_ca_true_certificate_pinned_in_ca_file_is_ok() {
    let pki = self_signed_ca();
    let server = Server::https(server_config(&pki), |_| Reply::ok("ok"));
    let report = go_report(
        &Http::new(),
        &plan(&server.https_url("/")),
        &trusting(&pki),
        TIMEOUT,
    )
    .await;
    assert_ok(&report.result);
    assert!(report.ssl);
    assert_eq!(report.result.tls_version, Some("TLS 1.3"));
    assert_eq!(report.result.cert_expiry, Some(pki.not_after));
    // Untrusted without the pin.
    let result = go(
        &Http::new(),
        &plan(&server.https_url("/")),
        &TlsPlan::default(),
        TIMEOUT,
    )
    .await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
}

#[tokio::test]
async fn https_five_checks_with_reuse_make_one_handshake() {
    let pki = ca_signed(SystemTime::now() + 90 * DAY);
    let server = Server::https(server_config(&pki), |_| Reply::ok("ok"));
    let http = Http::new();
    let plan = plan(&server.https_url("/"));
    for _ in 0..5 {
        let result = go(&http, &plan, &trusting(&pki), TIMEOUT).await;
        assert_ok(&result);
        // Each result carries the kept connection's certificate and version.
        assert_eq!(result.cert_expiry, Some(pki.not_after));
        assert_eq!(result.tls_version, Some("TLS 1.3"));
    }
    assert_eq!(server.stats.connections(), 1);
    assert_eq!(server.stats.requests(), 5);
}

#[tokio::test]
async fn https_without_reuse_closes_each_connection_with_close_notify_and_a_fin() {
    let pki = ca_signed(SystemTime::now() + 90 * DAY);
    let server = Server::https(server_config(&pki), |_| Reply::ok("ok"));
    let http = Http::new();
    let plan = no_reuse(&server.https_url("/"));
    for _ in 0..3 {
        assert_ok(&go(&http, &plan, &trusting(&pki), TIMEOUT).await);
    }
    assert_eq!(server.stats.connections(), 3);
    assert_eq!(wait_for_ends(&server, 3).await, vec![End::Fin; 3]);
}

#[tokio::test]
async fn https_cert_min_days_is_judged_at_every_check_of_a_kept_connection() {
    let pki = ca_signed(SystemTime::now() + 10 * DAY);
    let server = Server::https(server_config(&pki), |_| Reply::ok("ok"));
    let http = Http::new();
    let plan = plan(&server.https_url("/"));
    assert_ok(&go(&http, &plan, &trusting(&pki), TIMEOUT).await);
    let strict = TlsPlan {
        cert_min_days: Some(30),
        ..trusting(&pki)
    };
    let result = go(&http, &plan, &strict, TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    assert!(result.detail.unwrap().contains("within cert_min_days = 30"));
    assert_eq!(server.stats.connections(), 1);
}

#[tokio::test]
async fn https_kept_connection_is_verified_anew_when_the_trust_changes() {
    let pki = ca_signed(SystemTime::now() + 90 * DAY);
    let server = Server::https(server_config(&pki), |_| Reply::ok("ok"));
    let http = Http::new();
    let plan = plan(&server.https_url("/"));
    assert_ok(&go(&http, &plan, &trusting(&pki), TIMEOUT).await);
    // A reload that drops the CA file: the kept connection was verified against it.
    let result = go(&http, &plan, &TlsPlan::default(), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    assert_ok(&go(&http, &plan, &trusting(&pki), TIMEOUT).await);
    assert_eq!(server.stats.connections(), 3);
}

#[tokio::test]
async fn https_server_name_and_host_header_name_the_server_for_an_ip_url() {
    let pki = ca_signed(SystemTime::now() + 90 * DAY);
    let server = Server::https(server_config(&pki), |_| Reply::ok("ok"));
    let by_ip = format!("https://127.0.0.1:{}/", server.addr.port());
    // The certificate names 127.0.0.1 too: no SNI, verified against the IP.
    assert_ok(&go(&Http::new(), &plan(&by_ip), &trusting(&pki), TIMEOUT).await);
    // A Host header names the server (as blackbox): `wrong.example` is not in it.
    let mut with_host = plan(&by_ip);
    with_host.headers = vec![(
        HeaderName::from_static("host"),
        HeaderValue::from_static("wrong.example"),
    )];
    let result = go(&Http::new(), &with_host, &trusting(&pki), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
    // server_name wins over both.
    let named = TlsPlan {
        server_name: Some("localhost".into()),
        ..trusting(&pki)
    };
    assert_ok(&go(&Http::new(), &with_host, &named, TIMEOUT).await);
}

// --- A real nginx ------------------------------------------------------------------

/// An nginx serving `/healthz` ("ok\n"), or `None` when there is none to run (a
/// failure under CI).
fn nginx(pki: &Pki) -> Option<Nginx> {
    if !connhealth_testkit::require("the nginx http check tests", &["nginx"]) {
        return None;
    }
    let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("nginx");
    match Nginx::start(binary, &[("healthz", "ok\n")], pki) {
        Ok(nginx) => Some(nginx),
        Err(err) if connhealth_testkit::in_ci() => panic!("nginx under CI: {err}"),
        Err(err) => {
            eprintln!("skipping the nginx test: {err}");
            None
        }
    }
}

#[tokio::test]
async fn nginx_http_is_ok_reuses_one_connection_and_a_wrong_path_is_404() {
    let pki = ca_signed(SystemTime::now() + 90 * DAY);
    let Some(nginx) = nginx(&pki) else { return };
    let http = Http::new();
    let mut healthz = plan(&format!("http://{}/healthz", nginx.http));
    healthz.expect = Some(Pattern(regex::bytes::Regex::new("^ok").unwrap()));
    for _ in 0..3 {
        assert_ok(&check(&http, &healthz).await);
    }
    let log = nginx.access_log(3);
    let connections: Vec<&str> = log.iter().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(connections.len(), 3, "{log:?}");
    assert!(connections.iter().all(|c| *c == connections[0]), "{log:?}");
    assert!(log[2].starts_with(&format!("{} 3 200 GET /healthz", connections[0])));

    let missing = plan(&format!("http://{}/nope", nginx.http));
    let result = check(&http, &missing).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert_eq!(
        result.detail.as_deref(),
        Some("status 404 Not Found (expected 2xx)")
    );
}

#[tokio::test]
async fn nginx_https_with_ca_file_is_ok_on_one_connection() {
    let pki = ca_signed(SystemTime::now() + 90 * DAY);
    let Some(nginx) = nginx(&pki) else { return };
    let http = Http::new();
    let url = format!("https://localhost:{}/healthz", nginx.https.port());
    let healthz = plan(&url);
    for _ in 0..3 {
        let report = go_report(&http, &healthz, &trusting(&pki), TIMEOUT).await;
        assert_ok(&report.result);
        assert!(report.ssl);
        assert_eq!(report.result.cert_expiry, Some(pki.not_after));
    }
    let log = nginx.access_log(3);
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log[2].contains(" 3 200 GET /healthz"), "{log:?}");
    // Untrusted without the CA file.
    let result = go(&Http::new(), &healthz, &TlsPlan::default(), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Tls, "{result:?}");
}
