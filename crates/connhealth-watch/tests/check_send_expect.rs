//! The `send-expect` check against real servers: a real `redis-server`, and plain tokio
//! TCP servers that record what they saw of the checker's close.
//!
//! Run with `cargo test -p connhealth-watch --test check_send_expect`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use connhealth_testkit::{require, wait_until, Redis, TempDir};
use connhealth_watch::checks::{send_expect, Outcome};
use connhealth_watch::config::{Pattern, SendExpectPlan};
use regex::bytes::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(2);

fn plan(send: Option<&[u8]>, expect: &str, quit: Option<&[u8]>) -> SendExpectPlan {
    SendExpectPlan {
        send: send.map(<[u8]>::to_vec),
        expect: Some(Pattern(Regex::new(expect).expect("a valid regex"))),
        quit: quit.map(<[u8]>::to_vec),
    }
}

fn redis_ping(quit: Option<&[u8]>) -> SendExpectPlan {
    plan(Some(b"PING\r\n"), r"^\+PONG", quit)
}

/// A redis-server, or `None` when this machine cannot run one (outside CI).
fn redis(args: &[&str]) -> Option<Redis> {
    if !require("send-expect against redis-server", &["redis-server"]) {
        return None;
    }
    Some(Redis::start(args).expect("redis-server starts"))
}

/// One command on a fresh connection; the reply's text (a bulk or status reply). The
/// connection ends with QUIT, so that redis closes it without logging a line.
fn redis_command(addr: SocketAddr, command: &str) -> String {
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to redis");
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    conn.write_all(format!("{command}\r\nQUIT\r\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(conn);
    let mut head = String::new();
    reader.read_line(&mut head).unwrap();
    let reply = match head.strip_prefix('$') {
        None => head,
        Some(len) => {
            let len: usize = len.trim().parse().expect("a bulk length");
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).unwrap();
            body.truncate(len);
            String::from_utf8(body).expect("redis replies in UTF-8")
        }
    };
    // +OK to QUIT, then redis's FIN: nothing is left unread.
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    reply
}

/// The value of `field` in an `INFO` reply.
fn info_field(info: &str, field: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {field}: {info}"))
}

/// A log file in a folder of its own, removed on drop.
struct LogFile {
    _dir: TempDir,
    path: PathBuf,
}

impl LogFile {
    fn new() -> LogFile {
        let dir = TempDir::new("check-send-expect");
        let path = dir.join("redis.log");
        LogFile { _dir: dir, path }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

/// A redis-server logging at `verbose` into `log`, and the log's length once the
/// testkit's own startup PINGs have been logged: what the checks add comes after it.
fn verbose_redis(log: &LogFile) -> Option<(Redis, usize)> {
    let path = log.path.to_str().expect("a UTF-8 temp path").to_owned();
    let server = redis(&["--loglevel", "verbose", "--logfile", &path])?;
    wait_until(Duration::from_secs(2), || {
        log.text().contains("Client closed connection")
    })
    .expect("redis logs the close of the testkit's PING connection");
    std::thread::sleep(Duration::from_millis(50));
    Some((server, log.text().len()))
}

#[tokio::test]
async fn redis_ping_matches_pong() {
    let Some(server) = redis(&[]) else { return };
    let started = Instant::now();
    let result = send_expect::check(server.addr(), &redis_ping(None), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert!(!result.regex_failed);
    assert!(result.duration > Duration::ZERO && result.duration <= started.elapsed());
}

#[tokio::test]
async fn redis_reply_that_does_not_match_is_a_mismatch() {
    let Some(server) = redis(&[]) else { return };
    let plan = plan(Some(b"PING\r\n"), r"^\+NOPE", None);
    let started = Instant::now();
    let result = send_expect::check(server.addr(), &plan, Duration::from_millis(500)).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert!(result.regex_failed);
    let detail = result.detail.expect("a detail");
    assert!(detail.contains(r#""+PONG\r\n""#), "{detail}");
    // redis keeps the connection open: the check waits out its timeout for more bytes.
    assert!(started.elapsed() < Duration::from_millis(700));
}

#[tokio::test]
async fn redis_logs_nothing_and_keeps_no_connection_after_quit() {
    let log = LogFile::new();
    let Some((server, logged_before)) = verbose_redis(&log) else {
        return;
    };
    let stats_before = redis_command(server.addr(), "INFO stats");
    for _ in 0..3 {
        let result =
            send_expect::check(server.addr(), &redis_ping(Some(b"QUIT\r\n")), TIMEOUT).await;
        assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    }
    let stats_after = redis_command(server.addr(), "INFO stats");
    let clients = redis_command(server.addr(), "CLIENT LIST");
    assert_eq!(
        clients.lines().count(),
        1,
        "only CLIENT LIST's own: {clients}"
    );
    assert_eq!(
        info_field(&stats_after, "total_connections_received"),
        info_field(&stats_before, "total_connections_received") + 4,
        "the three checks and the INFO connection"
    );
    for field in ["rejected_connections", "total_error_replies"] {
        assert_eq!(
            info_field(&stats_after, field),
            info_field(&stats_before, field),
            "{field}"
        );
    }
    let logged = log.text()[logged_before..].to_string();
    assert!(
        logged.contains("Accepted"),
        "verbose logging is on: {logged}"
    );
    // QUIT makes redis close the connection itself, after its reply: at `verbose` it
    // logs neither "Client closed connection" nor an error such as "Reading from
    // client: Connection reset by peer".
    assert!(!logged.contains("closed connection"), "{logged}");
    assert!(!logged.contains("Reading from client"), "{logged}");
}

#[tokio::test]
async fn redis_reads_a_clean_eof_without_quit() {
    let log = LogFile::new();
    let Some((server, logged_before)) = verbose_redis(&log) else {
        return;
    };
    let result = send_expect::check(server.addr(), &redis_ping(None), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    wait_until(Duration::from_secs(1), || {
        log.text()[logged_before..].contains("Client closed connection")
    })
    .expect("redis reads the checker's FIN as a clean close");
    let logged = log.text()[logged_before..].to_string();
    assert!(
        !logged.contains("Reading from client"),
        "no reset: {logged}"
    );
}

/// What a plain server saw of the checker's close.
#[derive(Debug)]
struct CloseSeen {
    /// Everything the checker sent after the reply, up to its FIN.
    after_reply: Vec<u8>,
    /// The read that ended it: `Ok(0)` is a FIN; an error is a reset.
    end: Result<usize, std::io::ErrorKind>,
    /// The server's `+OK` after the checker's FIN. A reset that arrived before it fails
    /// this write (which consumes the socket's error).
    last_reply: Result<(), std::io::ErrorKind>,
    /// The socket's pending error (`SO_ERROR`) once the server closed too and waited: a
    /// checker that received the server's last reply after it closed answers it with a
    /// reset, which leaves `ECONNRESET` or `EPIPE` here.
    error_after_close: Option<String>,
}

/// A server that reads `PING\r\n`, answers `+PONG\r\n`, reads until the checker's FIN,
/// then answers `+OK\r\n` (as redis answers QUIT) and closes.
async fn pong_server() -> (SocketAddr, tokio::task::JoinHandle<CloseSeen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 6];
        conn.read_exact(&mut request).await.unwrap();
        assert_eq!(&request, b"PING\r\n");
        conn.write_all(b"+PONG\r\n").await.unwrap();
        let mut after_reply = Vec::new();
        let mut buf = [0u8; 256];
        let end = loop {
            match conn.read(&mut buf).await {
                Ok(0) => break Ok(0),
                Ok(n) => after_reply.extend_from_slice(&buf[..n]),
                Err(err) => break Err(err.kind()),
            }
        };
        let last_reply = conn.write_all(b"+OK\r\n").await.map_err(|err| err.kind());
        let _ = conn.shutdown().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let error_after_close = conn.take_error().unwrap().map(|err| err.to_string());
        CloseSeen {
            after_reply,
            end,
            last_reply,
            error_after_close,
        }
    });
    (addr, server)
}

#[tokio::test]
async fn plain_server_reads_quit_then_a_clean_fin_and_never_a_reset() {
    let (addr, server) = pong_server().await;
    let result = send_expect::check(addr, &redis_ping(Some(b"QUIT\r\n")), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    let seen = server.await.unwrap();
    assert_eq!(seen.after_reply, b"QUIT\r\n");
    assert_eq!(seen.end, Ok(0), "a FIN, not a reset");
    assert_eq!(seen.last_reply, Ok(()), "{seen:?}");
    assert_eq!(seen.error_after_close, None, "{seen:?}");
}

#[tokio::test]
async fn closed_port_is_refused() {
    let addr = connhealth_testkit::closed_port();
    let result = send_expect::check(addr, &redis_ping(None), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Refused, "{result:?}");
}

#[tokio::test]
async fn silent_server_times_out_within_the_timeout() {
    let addr = connhealth_testkit::silent_server(Duration::from_secs(10));
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = send_expect::check(addr, &redis_ping(Some(b"QUIT\r\n")), timeout).await;
    let took = started.elapsed();
    assert_eq!(result.outcome, Outcome::Timeout, "{result:?}");
    assert!(!result.regex_failed);
    assert!(took < timeout + Duration::from_millis(200), "took {took:?}");
}

#[tokio::test]
async fn server_that_closes_at_once_is_a_mismatch() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        drop(conn);
    });
    // A banner check (nothing sent), as for SMTP: a server that closes before sending
    // anything has nothing unread to turn its close into a reset.
    let result = send_expect::check(addr, &plan(None, "^220 ", None), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert!(result.regex_failed);
    let detail = result.detail.expect("a detail");
    assert!(detail.contains("before sending anything"), "{detail}");
}

#[tokio::test]
async fn unmatched_reply_is_shown_escaped_and_cut() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut banner = b"\x00\xffbye\r\n".to_vec();
        banner.extend_from_slice(&[b'z'; 200]);
        conn.write_all(&banner).await.unwrap();
        conn.shutdown().await.unwrap();
        let _ = conn.read(&mut [0u8; 16]).await;
    });
    let result = send_expect::check(addr, &plan(None, "^220 ", None), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    let detail = result.detail.expect("a detail");
    assert!(detail.contains(r#""\x00\xffbye\r\nzzz"#), "{detail}");
    assert!(detail.contains("in 207 bytes"), "{detail}");
    assert!(
        detail.ends_with("zzz\"..."),
        "only the start is shown: {detail}"
    );
}

#[tokio::test]
async fn reply_split_across_reads_still_matches() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 6];
        conn.read_exact(&mut request).await.unwrap();
        conn.write_all(b"+PO").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.write_all(b"NG\r\n").await.unwrap();
        let _ = conn.read(&mut [0u8; 16]).await;
    });
    let result = send_expect::check(
        addr,
        &plan(Some(b"PING\r\n"), r"^\+PONG\r\n", None),
        TIMEOUT,
    )
    .await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert!(result.duration >= Duration::from_millis(50), "{result:?}");
}

#[tokio::test]
async fn reply_past_the_cap_is_a_mismatch() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let flood = vec![b'a'; send_expect::READ_CAP + 1000];
        let _ = conn.write_all(&flood).await;
        let _ = conn.shutdown().await;
        let _ = conn.read(&mut [0u8; 16]).await;
    });
    let result = send_expect::check(addr, &plan(None, "^b", None), TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Mismatch, "{result:?}");
    assert!(result.regex_failed);
    let detail = result.detail.expect("a detail");
    assert!(
        detail.contains("no match in the first 65536 bytes"),
        "{detail}"
    );
}

#[tokio::test]
async fn connected_server_with_no_expect_is_ok_once_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).await.unwrap();
        got
    });
    let plan = SendExpectPlan {
        expect: None,
        ..plan(Some(b"hello\n"), "", None)
    };
    let result = send_expect::check(addr, &plan, TIMEOUT).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    assert_eq!(server.await.unwrap(), b"hello\n");
}
