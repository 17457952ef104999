//! The server's other paths and its manners: health and readiness, reload, a 404 that
//! lists the paths, a 405 that names the method, and a shutdown that returns.

mod http_support;

use std::time::Duration;

use http_support::{fleet, options, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn healthy_is_200() {
    let server = Server::start(fleet(Vec::new())).await;
    let reply = server.get("/-/healthy").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "OK"));
}

#[tokio::test]
async fn ready_is_503_until_a_config_is_loaded() {
    let config = options("/nonexistent/connhealth.toml".into());
    let not_ready = Server::with(config.clone(), fleet(Vec::new()), false).await;
    let reply = not_ready.get("/-/ready").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "not ready: the config is not loaded yet\n");
    let ready = Server::with(config, fleet(Vec::new()), true).await;
    let reply = ready.get("/-/ready").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "OK"));
}

#[tokio::test]
async fn an_unknown_path_is_a_404_that_lists_the_paths() {
    let server = Server::start(fleet(Vec::new())).await;
    let reply = server.get("/metric").await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.body.starts_with("no such path: /metric\n"),
        "{}",
        reply.body
    );
    for path in [
        "GET  /metrics",
        "GET  /probe?target=HOST:PORT&module=NAME",
        "GET  /status",
        "POST /-/reload",
        "GET  /-/healthy",
        "GET  /-/ready",
    ] {
        assert!(reply.body.contains(path), "{path}: {}", reply.body);
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_that_names_the_right_one() {
    let server = Server::start(fleet(Vec::new())).await;
    let reply = server.get("/-/reload").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.body, "GET is not allowed here: use POST /-/reload\n");
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = server.request("POST", "/metrics", &[]).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.body, "POST is not allowed here: use GET /metrics\n");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn a_reload_that_fails_is_a_500_with_every_error_and_its_place() {
    let dir = connhealth_testkit::TempDir::new("http-reload");
    let config = dir.join("watch.toml");
    std::fs::write(&config, "[defaults\ncheck = 1\n").unwrap();
    let server = Server::with(options(config.clone()), fleet(Vec::new()), true).await;
    let reply = server.request("POST", "/-/reload", &[]).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let prefix = format!("{}:", config.display());
    assert!(!reply.body.trim().is_empty());
    for line in reply.body.lines() {
        // FILE:LINE:COLUMN: message
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line:?} names the file"));
        let mut parts = rest.splitn(3, ':');
        let line_no: usize = parts.next().unwrap().parse().expect("a line number");
        let column: usize = parts.next().unwrap().parse().expect("a column");
        assert!(line_no >= 1 && column >= 1);
        assert!(parts.next().is_some_and(|m| !m.trim().is_empty()));
    }
    let metrics = server.get("/metrics").await;
    assert!(
        metrics
            .body
            .contains("\nconnhealth_config_last_reload_successful 0\n"),
        "a failed reload shows in /metrics"
    );
}

#[tokio::test]
async fn a_reload_that_loads_is_a_200() {
    let dir = connhealth_testkit::TempDir::new("http-reload-ok");
    let config = dir.join("watch.toml");
    std::fs::write(&config, "[defaults]\ncheck = \"half-open\"\n").unwrap();
    let server = Server::with(options(config), fleet(Vec::new()), true).await;
    let reply = server.request("POST", "/-/reload", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "config reloaded: 0 target(s)\n");
}

#[tokio::test]
async fn head_answers_without_a_body() {
    let server = Server::start(fleet(Vec::new())).await;
    let reply = server.request("HEAD", "/-/healthy", &[]).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start(fleet(Vec::new())).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";
    stream
        .write_all(format!("{request}{request}").as_bytes())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0; 4096];
    while seen.windows(2).filter(|w| *w == b"OK").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("two answers within 5 s")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn garbage_is_a_400_and_the_server_goes_on() {
    let server = Server::start(fleet(Vec::new())).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"\x16\x03\x01 not http\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(server.get("/-/healthy").await.status, 200);
}

#[tokio::test]
async fn serve_returns_soon_after_shutdown_even_with_idle_connections() {
    let server = Server::start(fleet(Vec::new())).await;
    let _idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut kept_alive = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    kept_alive
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0; 1024];
    let _ = kept_alive.read(&mut buf).await.unwrap();
    let start = std::time::Instant::now();
    server.stop().await.expect("serve returns Ok");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
