//! `GET /events`, the status page's Server-Sent Events: a transition reaches every
//! viewer within 2 s, as one coalesced `data:` message; a viewer that falls behind is
//! told to refetch and then carries on; the streams end when the daemon stops.

mod http_support;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use connhealth_watch::config::CheckPlan;
use connhealth_watch::state::Health;
use serde_json::Value;

/// A viewer of `/events` on a blocking socket, and what it has read so far (the body
/// still chunked: each message is one chunk, so its text reads whole).
struct Viewer {
    conn: TcpStream,
    seen: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Viewer {
    fn connect(addr: SocketAddr) -> Viewer {
        let mut conn = TcpStream::connect(addr).expect("connect");
        write!(
            conn,
            "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Viewer {
            conn,
            seen: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until `needle` has been read, for at most `limit`; true if it was. Each
    /// byte is searched once: a lagging viewer reads tens of megabytes.
    fn read_until(&mut self, limit: Duration, needle: &str) -> bool {
        let needle = needle.as_bytes();
        let start = Instant::now();
        let mut searched = 0;
        let mut buf = [0; 64 * 1024];
        loop {
            if find(&self.seen[searched..], needle) {
                return true;
            }
            searched = self.seen.len().saturating_sub(needle.len() - 1);
            if start.elapsed() > limit {
                return false;
            }
            match self.conn.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(err) => panic!("reading /events: {err}"),
            }
        }
    }

    /// True once the stream ended (within `limit`): its last chunk, or the connection
    /// closed.
    fn ends_within(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        let mut buf = [0; 64 * 1024];
        while start.elapsed() < limit {
            if self.seen.ends_with(b"\r\n0\r\n\r\n") {
                return true;
            }
            match self.conn.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// The JSON arrays of every `data: [...]` message read so far.
    fn changes(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| line.strip_prefix("data: ["))
            .flat_map(|rest| {
                let array: Value = serde_json::from_str(&format!("[{rest}")).expect("JSON");
                array.as_array().cloned().unwrap_or_default()
            })
            .collect()
    }
}

#[test]
fn a_transition_reaches_a_hundred_viewers_within_two_seconds_and_the_streams_end_at_stop() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let steady = TcpListener::bind("127.0.0.1:0").unwrap();
    let quick = CheckPlan {
        interval: Duration::from_millis(100),
        fast_interval: Duration::from_millis(100),
        down_interval: Duration::from_millis(100),
        rise: 1,
        fall: 1,
        ..CheckPlan::default()
    };
    let plan = support::plan(vec![
        support::target("web", server.local_addr().unwrap(), quick.clone()),
        support::target("db", steady.local_addr().unwrap(), quick),
    ]);
    let daemon = support::start(plan);
    for name in ["web", "db"] {
        support::wait_health(&daemon, name, Health::Up, Duration::from_secs(5)).expect("up");
    }
    // The first window (their transitions from unknown) is sent and gone.
    std::thread::sleep(Duration::from_millis(600));
    let mut viewers: Vec<Viewer> = (0..100).map(|_| Viewer::connect(daemon.listen())).collect();
    for viewer in &mut viewers {
        assert!(
            viewer.read_until(Duration::from_secs(5), "retry: 2000"),
            "the stream opens: {}",
            viewer.text()
        );
        let head = viewer.text();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("cache-control: no-cache"), "{head}");
    }
    assert_eq!(daemon.shared().live().viewers(), 100);

    let killed = Instant::now();
    drop(server);
    for viewer in &mut viewers {
        let seen = viewer.read_until(
            Duration::from_secs(2),
            "\"target\":\"web\",\"from\":\"up\",\"to\":\"down\"",
        );
        assert!(seen, "web down within 2 s: {}", viewer.text());
    }
    eprintln!(
        "100 viewers told of the transition {:?} after the kill",
        killed.elapsed()
    );
    assert!(killed.elapsed() < Duration::from_secs(2));
    let changes = viewers[0].changes();
    let web = changes
        .iter()
        .find(|c| c["target"] == "web" && c["to"] == "down")
        .expect("web's transition");
    assert_eq!(web["from"], "up");
    assert_eq!(web["why"], "1 failure: refused");
    assert!(web["at"]["rfc3339"].as_str().unwrap().ends_with('Z'));
    assert!(web["at"]["unix"].as_f64().unwrap() > 0.0);
    assert!(
        changes
            .iter()
            .all(|c| c["target"] != "db" || c["to"] != "down"),
        "db did not go down"
    );

    // At stop, every stream ends at once rather than holding the server's stop.
    std::thread::spawn(move || daemon.stop());
    for viewer in &mut viewers {
        assert!(
            viewer.ends_within(Duration::from_secs(1)),
            "the stream ends"
        );
    }
}

#[tokio::test]
async fn a_viewer_that_falls_behind_is_told_to_refetch_and_carries_on() {
    let server = http_support::Server::start(http_support::synthetic_fleet(1)).await;
    let addr = server.addr;
    let live = server.shared.live().clone();
    // A viewer that reads its first message, then nothing for a while.
    let mut viewer = tokio::task::spawn_blocking(move || {
        let mut viewer = Viewer::connect(addr);
        assert!(viewer.read_until(Duration::from_secs(5), "retry: 2000"));
        viewer
    })
    .await
    .unwrap();
    // 50 MB of messages of 256 KiB: far more than the socket buffers and the broadcast's
    // backlog of 64 messages hold.
    let big = format!("data: [\"{}\"]\n\n", "x".repeat(256 * 1024));
    for i in 0..200 {
        live.publish(big.clone().into());
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let viewer = tokio::task::spawn_blocking(move || {
        let told = viewer.read_until(
            Duration::from_secs(20),
            "event: refetch\ndata: {\"why\":\"lagged\",\"count\":",
        );
        assert!(told, "told to refetch");
        viewer
    })
    .await
    .unwrap();
    // The stream goes on after it.
    live.publish("data: [\"after\"]\n\n".into());
    let mut viewer = tokio::task::spawn_blocking(move || {
        let mut viewer = viewer;
        assert!(viewer.read_until(Duration::from_secs(20), "data: [\"after\"]"));
        viewer
    })
    .await
    .unwrap();
    let text = viewer.text();
    let missed: u64 = text
        .split("\"why\":\"lagged\",\"count\":")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(missed > 0);
    eprintln!("the lagging viewer missed {missed} messages");
    live.close();
    assert!(
        tokio::task::spawn_blocking(move || viewer.ends_within(Duration::from_secs(2)))
            .await
            .unwrap()
    );
    server.stop().await.unwrap();
}
