//! `/metrics` is gzipped when the scraper asks (`Accept-Encoding: gzip`, as Prometheus
//! sends), and plain otherwise, through real HTTP requests on loopback.
//!
//! `http_support`'s client wants a UTF-8 body; a gzipped one is read here as bytes.

mod http_support;

use std::io::Read;
use std::net::SocketAddr;
use std::time::SystemTime;

use http_support::{mixed_fleet, request_raw, RawReply, Server};

/// `GET /metrics` with `headers`, on a connection of its own.
async fn get_metrics(addr: SocketAddr, headers: &[(&str, &str)]) -> RawReply {
    request_raw(addr, "GET", "/metrics", headers).await
}

fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .expect("a gzip stream of UTF-8 text");
    text
}

/// The fleet's and the daemon's lines: the `process_*` ones change between two scrapes.
fn connhealth_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.contains("process_"))
        .collect()
}

#[tokio::test]
async fn a_scraper_that_asks_for_gzip_gets_the_same_text_gzipped() {
    let server = Server::start(mixed_fleet(SystemTime::now())).await;
    let plain = get_metrics(server.addr, &[]).await;
    assert_eq!(plain.status, 200);
    let plain = String::from_utf8(plain.body).unwrap();
    // What Prometheus sends, and what a browser sends.
    for accept in ["gzip", "gzip, deflate, br"] {
        let gzipped = get_metrics(server.addr, &[("Accept-Encoding", accept)]).await;
        assert_eq!(gzipped.status, 200, "{accept}");
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{accept}");
        assert_eq!(gzipped.header("vary"), Some("accept-encoding"), "{accept}");
        assert_eq!(
            gzipped.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = gunzip(&gzipped.body);
        assert_eq!(
            connhealth_lines(&text),
            connhealth_lines(&plain),
            "{accept}"
        );
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
    }
}

#[tokio::test]
async fn a_plain_request_gets_plain_text() {
    let server = Server::start(mixed_fleet(SystemTime::now())).await;
    // No Accept-Encoding, gzip refused with q=0, and only encodings the daemon lacks.
    for headers in [
        &[][..],
        &[("Accept-Encoding", "gzip;q=0")][..],
        &[("Accept-Encoding", "identity, gzip; q=0.0")][..],
        &[("Accept-Encoding", "br, deflate")][..],
    ] {
        let reply = get_metrics(server.addr, headers).await;
        assert_eq!(reply.status, 200, "{headers:?}");
        assert_eq!(reply.header("content-encoding"), None, "{headers:?}");
        assert_eq!(reply.header("vary"), Some("accept-encoding"), "{headers:?}");
        let text = String::from_utf8(reply.body).expect("plain text");
        assert!(
            text.starts_with("# HELP connhealth_build_info "),
            "{headers:?}: {text}"
        );
    }
}
