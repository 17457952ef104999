//! The `http` check with blackbox_exporter 0.23's http module settings, against servers
//! of the test's own on loopback: what blackbox's `ProbeHTTP` judges and reports, rule by
//! rule (`fail_if_*` regexes and their order, `valid_http_versions`, `fail_if_ssl`,
//! `fail_if_not_ssl`, the address chosen, `Last-Modified`, `Content-Length`, the TLS
//! chain).
//!
//! Run with `cargo test -p connhealth-watch --test check_http_blackbox`.

mod http_servers;

use std::time::Duration;

use connhealth_watch::checks::http::{Http, HttpReport};
use connhealth_watch::checks::{CheckResult, Outcome};
use connhealth_watch::config::{HeaderMatch, HttpPlan, IpChoice, Pattern, StatusRange, TlsPlan};
use http::HeaderName;

use http_servers::{self_signed_ca, server_config, Reply, Server};

const TIMEOUT: Duration = Duration::from_secs(2);

/// One check of `url` as `plan` says, reported.
async fn report(url: &str, plan: &HttpPlan) -> HttpReport {
    Http::new()
        .check_report(&url.parse().unwrap(), plan, TIMEOUT)
        .await
}

fn assert_ok(result: &CheckResult) {
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(result.detail, None);
    assert!(!result.regex_failed, "{result:?}");
}

/// A mismatch, its detail, and whether it counts as the regexes' failure.
fn mismatch(result: &CheckResult) -> (&str, bool) {
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    (result.detail.as_deref().unwrap(), result.regex_failed)
}

fn pattern(regex: &str) -> Pattern {
    Pattern(regex::bytes::Regex::new(regex).unwrap())
}

fn header(name: &str, regex: &str, allow_missing: bool) -> HeaderMatch {
    HeaderMatch {
        header: HeaderName::from_bytes(name.as_bytes()).unwrap(),
        regexp: pattern(regex),
        allow_missing,
    }
}

// --- Last-Modified ------------------------------------------------------------------

#[tokio::test]
async fn last_modified_is_read_as_go_reads_it_in_any_of_its_three_formats() {
    let server = Server::http(|request| match request.target.as_str() {
        "/imf" => Reply::ok("x").header("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        "/rfc850" => Reply::ok("x").header("Last-Modified", "Sunday, 06-Nov-94 08:49:37 GMT"),
        "/asctime" => Reply::ok("x").header("Last-Modified", "Sun Nov  6 08:49:37 1994"),
        "/iso" => Reply::ok("x").header("Last-Modified", "1994-11-06T08:49:37Z"),
        _ => Reply::ok("x"),
    });
    for path in ["/imf", "/rfc850", "/asctime"] {
        let report = report(&server.url(path), &HttpPlan::default()).await;
        assert_ok(&report.result);
        assert_eq!(report.last_modified, Some(784_111_777), "{path}");
    }
    for path in ["/iso", "/none"] {
        let report = report(&server.url(path), &HttpPlan::default()).await;
        assert_ok(&report.result);
        assert_eq!(report.last_modified, None, "{path}");
    }
}

// --- Content-Length -----------------------------------------------------------------

#[tokio::test]
async fn content_length_is_go_s_minus_one_when_chunked_and_zero_without_an_answer() {
    let server = Server::http(|request| match request.target.as_str() {
        "/chunked" => Reply::raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
            b"2\r\nok\r\n0\r\n\r\n",
        ),
        "/to-close" => Reply::raw(b"HTTP/1.1 200 OK\r\nConnection: close", b"ok")
            .then(http_servers::Then::Close),
        "/empty" => Reply::new("204 No Content", ""),
        "/moved" => Reply::new("302 Found", "moved").header("Location", "/gone"),
        "/gone" => Reply::hang_up(),
        _ => Reply::ok("twelve bytes"),
    });
    let length = |report: &HttpReport| (report.content_length, report.body_length);
    let plain = HttpPlan::default();

    let sized = report(&server.url("/"), &plain).await;
    assert_ok(&sized.result);
    assert_eq!(length(&sized), (12, 12));

    let chunked = report(&server.url("/chunked"), &plain).await;
    assert_ok(&chunked.result);
    assert_eq!(length(&chunked), (-1, 2));

    let to_close = report(&server.url("/to-close"), &plain).await;
    assert_ok(&to_close.result);
    assert_eq!(length(&to_close), (-1, 2));

    let empty = report(&server.url("/empty"), &plain).await;
    assert_ok(&empty.result);
    assert_eq!(length(&empty), (0, 0));

    let head = HttpPlan {
        method: http::Method::HEAD,
        ..HttpPlan::default()
    };
    let head = report(&server.url("/"), &head).await;
    assert_ok(&head.result);
    assert_eq!(length(&head), (12, 0));

    // The redirect's answer had a length; the request it led to got no answer at all,
    // and blackbox reports an empty one.
    let nowhere = report(&server.url("/moved"), &plain).await;
    assert_eq!(nowhere.result.outcome, Outcome::Closed, "{nowhere:?}");
    assert_eq!(nowhere.redirects, 1);
    assert_eq!(nowhere.status_code, None);
    assert_eq!(nowhere.version, None);
    assert_eq!(length(&nowhere), (0, 0));
}

// --- The order of the judgments, and probe_failed_due_to_regex ---------------------

/// A server that answers `/` with two `X-Debug` headers and a body naming the path.
fn debugging() -> Server {
    Server::http(|request| {
        let status = match request.target.as_str() {
            "/error" => "500 Internal Server Error",
            _ => "200 OK",
        };
        Reply::new(status, format!("served {}", request.target))
            .header("X-Debug", "one")
            .header("X-Debug", "secret two")
    })
}

#[tokio::test]
async fn a_bad_status_is_judged_first_and_is_no_regex_failure() {
    let server = debugging();
    let plan = HttpPlan {
        fail_if_header_matches: vec![header("X-Debug", "secret", false)],
        fail_if_body_not_matches: vec![pattern("absent")],
        ..HttpPlan::default()
    };
    let result = report(&server.url("/error"), &plan).await.result;
    assert_eq!(
        mismatch(&result),
        ("status 500 Internal Server Error (expected 2xx)", false)
    );
}

#[tokio::test]
async fn fail_if_header_matches_fails_on_any_value_and_on_a_missing_header() {
    let server = debugging();
    let url = server.url("/");
    let with = |spec: HeaderMatch| HttpPlan {
        fail_if_header_matches: vec![header("X-Other", ".", true), spec],
        ..HttpPlan::default()
    };

    let result = report(&url, &with(header("x-debug", "^secret", false)))
        .await
        .result;
    assert_eq!(
        mismatch(&result),
        (
            "status 200 OK, but header x-debug \"secret two\" matches \"^secret\" (fail_if_header_matches)",
            true
        )
    );
    assert_ok(
        &report(&url, &with(header("X-Debug", "^three", false)))
            .await
            .result,
    );

    let missing = report(&url, &with(header("X-Missing", ".", false)))
        .await
        .result;
    assert_eq!(
        mismatch(&missing),
        (
            "status 200 OK, but the answer has no x-missing header (fail_if_header_matches)",
            true
        )
    );
    assert_ok(
        &report(&url, &with(header("X-Missing", ".", true)))
            .await
            .result,
    );
}

#[tokio::test]
async fn fail_if_header_not_matches_passes_when_any_value_matches() {
    let server = debugging();
    let url = server.url("/");
    let with = |spec: HeaderMatch| HttpPlan {
        fail_if_header_not_matches: vec![header("Content-Length", "^[0-9]+$", false), spec],
        ..HttpPlan::default()
    };

    assert_ok(
        &report(&url, &with(header("X-Debug", "two$", false)))
            .await
            .result,
    );
    let result = report(&url, &with(header("X-Debug", "three", false)))
        .await
        .result;
    assert_eq!(
        mismatch(&result),
        (
            "status 200 OK, but header x-debug \"one\" does not match \"three\" (nor do its 1 other values) (fail_if_header_not_matches)",
            true
        )
    );

    let missing = report(&url, &with(header("Location", ".", false)))
        .await
        .result;
    assert_eq!(
        mismatch(&missing),
        (
            "status 200 OK, but the answer has no location header (fail_if_header_not_matches)",
            true
        )
    );
    assert_ok(
        &report(&url, &with(header("Location", ".", true)))
            .await
            .result,
    );
}

#[tokio::test]
async fn body_regexes_judge_the_whole_body_after_the_headers() {
    let server = Server::http(|request| match request.target.as_str() {
        // Past the 1 MiB our own `expect` reads.
        "/long" => Reply::ok(&format!("{}marker", "y".repeat(3 << 20))),
        _ => Reply::ok("status: degraded, build 7"),
    });
    let url = server.url("/");

    let matches = HttpPlan {
        fail_if_body_matches: vec![pattern("healthy"), pattern("deg[a-z]+")],
        ..HttpPlan::default()
    };
    let result = report(&url, &matches).await.result;
    assert_eq!(
        mismatch(&result),
        (
            "status 200 OK, but the body matches \"deg[a-z]+\" at byte 8 (fail_if_body_matches): \"degraded\"",
            true
        )
    );

    let not_matches = HttpPlan {
        fail_if_body_not_matches: vec![pattern("build"), pattern("status: ok")],
        ..HttpPlan::default()
    };
    let result = report(&url, &not_matches).await.result;
    assert_eq!(
        mismatch(&result),
        (
            "status 200 OK, but the body does not match \"status: ok\" (fail_if_body_not_matches): 25 bytes, \"status: degraded, build 7\"",
            true
        )
    );

    // The headers are judged before the body.
    let both = HttpPlan {
        fail_if_header_not_matches: vec![header("X-Version", ".", false)],
        ..not_matches
    };
    let result = report(&url, &both).await.result;
    assert!(
        mismatch(&result).0.contains("no x-version header"),
        "{result:?}"
    );

    let whole = HttpPlan {
        fail_if_body_not_matches: vec![pattern("marker$")],
        ..HttpPlan::default()
    };
    let long = report(&server.url("/long"), &whole).await;
    assert_ok(&long.result);
    assert_eq!(long.body_length, (3 << 20) + 6);
}

#[tokio::test]
async fn valid_http_versions_is_judged_after_the_regexes() {
    let server = Server::http(|_| Reply::new("200 OK", "old").then(http_servers::Then::Close));
    let old = Server::http(|_| {
        Reply::raw(b"HTTP/1.0 200 OK\r\nContent-Length: 3", b"old").then(http_servers::Then::Close)
    });
    let versions = |valid: &[&str]| HttpPlan {
        valid_http_versions: valid.iter().map(|v| v.to_string()).collect(),
        ..HttpPlan::default()
    };

    assert_ok(
        &report(&server.url("/"), &versions(&["HTTP/1.1"]))
            .await
            .result,
    );
    assert_ok(
        &report(&old.url("/"), &versions(&["HTTP/1.1", "HTTP/1.0"]))
            .await
            .result,
    );
    let result = report(&old.url("/"), &versions(&["HTTP/1.1", "HTTP/2.0"]))
        .await
        .result;
    assert_eq!(
        mismatch(&result),
        (
            "status 200 OK, but over HTTP/1.0 (valid_http_versions: HTTP/1.1, HTTP/2.0)",
            false
        )
    );

    // A body regex that fails is the verdict, and the regexes' failure.
    let plan = HttpPlan {
        fail_if_body_matches: vec![pattern("old")],
        ..versions(&["HTTP/2.0"])
    };
    let result = report(&old.url("/"), &plan).await.result;
    assert!(mismatch(&result).1, "{result:?}");
    // A status that fails comes first.
    let plan = HttpPlan {
        valid_status: vec![StatusRange {
            low: 204,
            high: 204,
        }],
        ..versions(&["HTTP/2.0"])
    };
    let result = report(&old.url("/"), &plan).await.result;
    assert_eq!(mismatch(&result), ("status 200 OK (expected 204)", false));
}

#[tokio::test]
async fn fail_if_ssl_and_fail_if_not_ssl_judge_the_last_answer() {
    let pki = self_signed_ca();
    let tls = TlsPlan {
        ca_file: Some(pki.ca_file.clone()),
        ..TlsPlan::default()
    };
    let secure = Server::https(server_config(&pki), |_| Reply::ok("ok"));
    let plain = Server::http(|_| Reply::ok("ok"));
    let redirects = Server::http({
        let to = secure.https_url("/");
        move |_| Reply::redirect("302 Found", &to)
    });
    let plan = |fail_if_ssl, fail_if_not_ssl| HttpPlan {
        fail_if_ssl,
        fail_if_not_ssl,
        tls: tls.clone(),
        ..HttpPlan::default()
    };

    assert_ok(&report(&plain.url("/"), &plan(true, false)).await.result);
    assert_ok(
        &report(&secure.https_url("/"), &plan(false, true))
            .await
            .result,
    );
    // Plain http redirected to https: the last answer came over TLS.
    assert_ok(&report(&redirects.url("/"), &plan(false, true)).await.result);

    let result = report(&plain.url("/"), &plan(false, true)).await.result;
    assert_eq!(
        mismatch(&result),
        (
            "status 200 OK, but the last answer did not come over TLS (fail_if_not_ssl)",
            false
        )
    );
    let result = report(&redirects.url("/"), &plan(true, false)).await.result;
    assert_eq!(
        mismatch(&result),
        (
            "status 200 OK, but the last answer came over TLS (fail_if_ssl)",
            false
        )
    );
}

// --- The address chosen -------------------------------------------------------------

fn prefer(preferred: u8, fallback: bool) -> HttpPlan {
    HttpPlan {
        ip: IpChoice::Prefer {
            preferred,
            fallback,
        },
        ..HttpPlan::default()
    }
}

#[tokio::test]
async fn the_url_s_host_is_checked_at_the_one_address_chosen_and_reported() {
    let server = Server::http(|_| Reply::ok("ok"));
    let url = server.url("/");
    let loopback = "127.0.0.1".parse().unwrap();

    for plan in [prefer(4, false), prefer(6, true)] {
        let ok = report(&url, &plan).await.result;
        assert_ok(&ok);
        assert_eq!(
            (ok.ip_protocol, ok.ip),
            (Some(4), Some(loopback)),
            "{plan:?}"
        );
    }

    // No IPv6 address, and no fallback: nothing is checked, and no address reported
    // (`probe_ip_protocol 0`), as blackbox's failed resolution.
    let none = report(&url, &prefer(6, false)).await;
    assert_eq!(none.result.outcome, Outcome::Resolve, "{none:?}");
    assert!(none
        .result
        .detail
        .as_deref()
        .unwrap()
        .contains("no IPv6 address"));
    assert_eq!((none.result.ip_protocol, none.result.ip), (None, None));
    assert_eq!((none.status_code, none.content_length), (None, 0));
    assert_eq!(server.stats.requests(), 2);
    // Each address in turn (our own targets): the same address, found.
    let every = report(&url, &HttpPlan::default()).await.result;
    assert_ok(&every);
    assert_eq!((every.ip_protocol, every.ip), (Some(4), Some(loopback)));
}

#[tokio::test]
async fn a_redirect_s_other_host_resolves_as_before_and_the_first_host_is_reported() {
    let Some(v6) = Server::http_v6(|_| Reply::ok("on ::1")) else {
        assert!(
            !connhealth_testkit::in_ci(),
            "::1 must be available under CI"
        );
        eprintln!("skipping: no IPv6 loopback here");
        return;
    };
    let to = v6.url("/");
    let v4 = Server::http(move |_| Reply::redirect("302 Found", &to));
    let url = v4.url("/");

    // IPv4 chosen for 127.0.0.1, without fallback; [::1], another host, is not held to it.
    let report_4 = report(&url, &prefer(4, false)).await;
    assert_ok(&report_4.result);
    assert_eq!(report_4.redirects, 1);
    assert_eq!(v6.stats.requests(), 1);
    let first = &report_4.result;
    assert_eq!(
        (first.ip_protocol, first.ip),
        (Some(4), Some("127.0.0.1".parse().unwrap()))
    );
    // Our own targets report the address the check ended on.
    let every = report(&url, &HttpPlan::default()).await.result;
    assert_ok(&every);
    assert_eq!(
        (every.ip_protocol, every.ip),
        (Some(6), Some("::1".parse().unwrap()))
    );
}

// --- The final connection's TLS -------------------------------------------------------

#[tokio::test]
async fn tls_facts_are_the_last_answer_s_connection_s() {
    let pki = self_signed_ca();
    let tls = TlsPlan {
        ca_file: Some(pki.ca_file.clone()),
        ..TlsPlan::default()
    };
    let plain = Server::http(|request| match request.target.as_str() {
        "/gone" => Reply::hang_up(),
        _ => Reply::ok("plain"),
    });
    let (ok_url, gone_url) = (plain.url("/"), plain.url("/gone"));
    let secure = Server::https(server_config(&pki), move |request| {
        match request.target.as_str() {
            "/to-plain" => Reply::redirect("302 Found", &ok_url),
            "/to-nowhere" => Reply::redirect("302 Found", &gone_url),
            _ => Reply::ok("secure"),
        }
    });
    let plan = HttpPlan {
        tls,
        ..HttpPlan::default()
    };

    let direct = report(&secure.https_url("/"), &plan).await;
    assert_ok(&direct.result);
    assert!(direct.ssl);
    assert_eq!(direct.result.cert_expiry, Some(pki.not_after));
    assert!(direct.result.tls_version.is_some());

    // The last answer came over plain http: nothing of the first connection's TLS.
    let to_plain = report(&secure.https_url("/to-plain"), &plan).await;
    assert_ok(&to_plain.result);
    assert!(!to_plain.ssl);
    let facts = &to_plain.result;
    assert_eq!((facts.cert_expiry, facts.tls_version), (None, None));
    assert_eq!(facts.chain, None);

    // No last answer at all: nothing either, as blackbox's empty answer.
    let to_nowhere = report(&secure.https_url("/to-nowhere"), &plan).await;
    assert_eq!(to_nowhere.result.outcome, Outcome::Closed, "{to_nowhere:?}");
    assert!(!to_nowhere.ssl);
    let facts = &to_nowhere.result;
    assert_eq!((facts.cert_expiry, facts.tls_version), (None, None));
    assert_eq!(facts.chain, None);
}

#[tokio::test]
async fn an_https_answer_reports_its_connection_s_chain() {
    let pki = self_signed_ca();
    let secure = Server::https(server_config(&pki), |_| Reply::ok("secure"));
    let plan = HttpPlan {
        tls: TlsPlan {
            ca_file: Some(pki.ca_file.clone()),
            ..TlsPlan::default()
        },
        ..HttpPlan::default()
    };
    let http = Http::new();
    let url = secure.https_url("/").parse().unwrap();
    for _ in 0..2 {
        // The second check reuses the connection, and reports its chain all the same.
        let report = http.check_report(&url, &plan, TIMEOUT).await;
        assert_ok(&report.result);
        let chain = report.result.chain.expect("the chain");
        assert!(chain.subject.contains("localhost"), "{chain:?}");
        assert_eq!(chain.fingerprint_sha256.len(), 64, "{chain:?}");
    }
    assert_eq!(secure.stats.connections(), 1);
}

// --- A redirect not followed ----------------------------------------------------------

#[tokio::test]
async fn a_redirect_not_followed_counts_and_its_unread_body_fails_the_body_regexes() {
    let server = Server::http(|_| Reply::redirect("302 Found", "/elsewhere"));
    let url = server.url("/");
    let mut plan = HttpPlan {
        follow_redirects: false,
        valid_status: vec![StatusRange {
            low: 302,
            high: 302,
        }],
        ..HttpPlan::default()
    };
    let answered = report(&url, &plan).await;
    assert_ok(&answered.result);
    assert_eq!(answered.redirects, 1, "Go counts the redirect it refuses");
    assert_eq!(answered.body_length, 0, "Go closes its body unread");
    // Go's client closed the body, so blackbox's body regexes fail on the read, whichever
    // they are.
    plan.fail_if_body_matches = vec![pattern("never in any body")];
    let answered = report(&url, &plan).await;
    let (detail, regex) = mismatch(&answered.result);
    assert!(regex, "{detail}");
    assert!(detail.contains("not followed is not read"), "{detail}");
}
