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
use connhealth_watch::config::HttpPlan;

use http_servers::{Reply, Server};

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
