//! `Heartbeat`: application-level ping/pong with deadlines. A peer that stops answering
//! is dead within `interval + misses × timeout`; a reconnect brings it back; reported
//! activity keeps a busy connection from being pinged; jitter keeps pings out of step.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connhealth::heartbeat::{Beat, Heartbeat, HeartbeatError, Ping, PingFailure};
#[cfg(unix)]
use connhealth_testkit::require;
#[cfg(target_os = "linux")]
use connhealth_testkit::Netns;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A line server: answers each "PING" line with "PONG" while `answering`, reads and
/// ignores it otherwise (a hung application whose kernel still acknowledges). Stops
/// when `Server` is dropped.
struct Server {
    addr: SocketAddr,
    answering: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(listener: TcpListener) -> Server {
        let addr = listener.local_addr().unwrap();
        let answering = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let (a, s) = (answering.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (a, s) = (a.clone(), s.clone());
                        std::thread::spawn(move || serve(conn, a, s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            answering,
            stop,
        }
    }
}

fn serve(conn: std::net::TcpStream, answering: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with('\n') => {
                if answering.load(Ordering::Relaxed) && writer.write_all(b"PONG\n").is_err() {
                    return;
                }
                line.clear();
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Pings a `Server` over a line protocol, reconnecting when the connection is gone or
/// a cancelled ping may have left its pong on the wire. Connects through `connect`, so
/// that a test can make its sockets inside a namespace.
struct LinePing<C> {
    connect: C,
    conn: Option<tokio::io::BufReader<TcpStream>>,
    in_flight: bool,
    pong: &'static str,
    pings: Arc<AtomicUsize>,
    connects: Arc<AtomicUsize>,
}

impl<C, F> LinePing<C>
where
    C: FnMut() -> F + Send,
    F: std::future::Future<Output = io::Result<TcpStream>> + Send,
{
    fn new(connect: C) -> LinePing<C> {
        LinePing {
            connect,
            conn: None,
            in_flight: false,
            pong: "PONG\n",
            pings: Arc::default(),
            connects: Arc::default(),
        }
    }
}

impl<C, F> Ping for LinePing<C>
where
    C: FnMut() -> F + Send,
    F: std::future::Future<Output = io::Result<TcpStream>> + Send,
{
    async fn ping(&mut self) -> io::Result<()> {
        self.pings.fetch_add(1, Ordering::Relaxed);
        if std::mem::replace(&mut self.in_flight, true) {
            self.conn = None; // the last ping was cancelled: its pong may still come
        }
        if self.conn.is_none() {
            self.connects.fetch_add(1, Ordering::Relaxed);
            self.conn = Some(tokio::io::BufReader::new((self.connect)().await?));
        }
        let conn = self.conn.as_mut().unwrap();
        let result = async {
            conn.get_mut().write_all(b"PING\n").await?;
            let mut line = String::new();
            conn.read_line(&mut line).await?;
            if line == self.pong {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "expected {:?}, got {line:?}",
                    self.pong
                )))
            }
        }
        .await;
        if result.is_err() {
            self.conn = None;
        }
        self.in_flight = false;
        result
    }
}

fn loopback_pinger(
    addr: SocketAddr,
) -> LinePing<
    impl FnMut()
            -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<TcpStream>> + Send>>
        + Send,
> {
    LinePing::new(move || Box::pin(TcpStream::connect(addr)) as _)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_builder_refuses_settings_that_make_no_sense() {
    let b = || Heartbeat::builder().interval(ms(1000)).timeout(ms(200));
    assert!(b().build().is_ok());
    assert_eq!(
        b().timeout(ms(1000)).build().unwrap_err(),
        HeartbeatError::TimeoutNotShorterThanInterval {
            timeout: ms(1000),
            interval: ms(1000)
        }
    );
    let message = b().timeout(ms(5000)).build().unwrap_err().to_string();
    assert!(
        message.contains("must be shorter than the interval"),
        "{message}"
    );
    assert_eq!(
        b().interval(Duration::ZERO).build().unwrap_err(),
        HeartbeatError::ZeroInterval
    );
    assert_eq!(
        b().timeout(Duration::ZERO).build().unwrap_err(),
        HeartbeatError::ZeroTimeout
    );
    assert_eq!(
        b().misses(0).build().unwrap_err(),
        HeartbeatError::ZeroMisses
    );
    assert_eq!(
        b().jitter(1.0).build().unwrap_err(),
        HeartbeatError::Jitter(1.0)
    );
    assert!(b().jitter(f64::NAN).build().is_err());
    assert!(matches!(
        b().max_backoff(ms(10)).build().unwrap_err(),
        HeartbeatError::BackoffBelowInterval { .. }
    ));
    let hb = Heartbeat::builder()
        .interval(ms(500))
        .timeout(ms(100))
        .misses(3)
        .build()
        .unwrap();
    assert_eq!(hb.dead_within(), ms(800));
}

#[tokio::test]
async fn a_live_peer_is_reported_alive_with_its_rtt() {
    let server = Server::start(TcpListener::bind("127.0.0.1:0").unwrap());
    let hb = Heartbeat::builder()
        .interval(ms(100))
        .timeout(ms(50))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut beats = hb.run(loopback_pinger(server.addr));
    for _ in 0..3 {
        match beats.next_beat().await {
            Beat::Alive { rtt } => assert!(rtt < ms(50), "{rtt:?}"),
            other => panic!("expected Alive, got {other:?}"),
        }
    }
    // Three intervals, each shortened by at most 10 % jitter.
    let took = start.elapsed();
    assert!(took >= ms(270) && took < ms(600), "{took:?}");
}

#[tokio::test]
async fn reported_activity_keeps_a_busy_connection_from_being_pinged() {
    let server = Server::start(TcpListener::bind("127.0.0.1:0").unwrap());
    let hb = Heartbeat::builder()
        .interval(ms(100))
        .timeout(ms(50))
        .build()
        .unwrap();
    let activity = hb.activity();
    let pinger = loopback_pinger(server.addr);
    let pings = pinger.pings.clone();
    let mut beats = hb.run(pinger);

    // Traffic every 30 ms for 500 ms: five intervals, and not one ping.
    let busy = tokio::spawn(async move {
        for _ in 0..17 {
            activity.record();
            tokio::time::sleep(ms(30)).await;
        }
    });
    let quiet = tokio::time::timeout(ms(500), beats.next_beat()).await;
    assert!(quiet.is_err(), "a busy connection was pinged: {quiet:?}");
    assert_eq!(pings.load(Ordering::Relaxed), 0);
    busy.await.unwrap();

    // Quiet again: the ping comes within an interval of the last activity.
    let waited = Instant::now();
    assert!(matches!(beats.next_beat().await, Beat::Alive { .. }));
    assert!(waited.elapsed() <= ms(200), "{:?}", waited.elapsed());
    assert_eq!(pings.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_hung_peer_is_missed_then_dead_within_interval_plus_misses_timeouts() {
    let server = Server::start(TcpListener::bind("127.0.0.1:0").unwrap());
    let hb = Heartbeat::builder()
        .interval(ms(200))
        .timeout(ms(100))
        .misses(3)
        .max_backoff(ms(400))
        .build()
        .unwrap();
    let bound = hb.dead_within();
    let mut beats = hb.run(loopback_pinger(server.addr));
    assert!(matches!(beats.next_beat().await, Beat::Alive { .. }));

    // The process hangs; its kernel still acknowledges, so only a pong can tell.
    server.answering.store(false, Ordering::Relaxed);
    let hung = Instant::now();
    for expected in 1..=2 {
        match beats.next_beat().await {
            Beat::Missed {
                misses,
                reason: PingFailure::TimedOut(t),
            } => {
                assert_eq!((misses, t), (expected, ms(100)));
            }
            other => panic!("expected Missed({expected}), got {other:?}"),
        }
    }
    assert!(matches!(
        beats.next_beat().await,
        Beat::Dead(PingFailure::TimedOut(_))
    ));
    let took = hung.elapsed();
    eprintln!("dead after {took:?} (bound {bound:?})");
    assert!(
        took <= bound + ms(100),
        "dead after {took:?}, bound {bound:?}"
    );
    assert!(
        took >= ms(3 * 100),
        "three timeouts cannot pass sooner: {took:?}"
    );

    // It recovers: the next pong, after a backoff wait, is Alive again.
    server.answering.store(true, Ordering::Relaxed);
    let back = Instant::now();
    assert!(matches!(beats.next_beat().await, Beat::Alive { .. }));
    assert!(back.elapsed() <= ms(400 + 100), "{:?}", back.elapsed());
}

#[tokio::test]
async fn jitter_keeps_pings_out_of_step() {
    let server = Server::start(TcpListener::bind("127.0.0.1:0").unwrap());
    let interval = ms(60);
    let hb = Heartbeat::builder()
        .interval(interval)
        .timeout(ms(30))
        .jitter(0.5)
        .build()
        .unwrap();
    let mut beats = hb.run(loopback_pinger(server.addr));
    let mut gaps = Vec::new();
    let mut last = Instant::now();
    for _ in 0..8 {
        assert!(matches!(beats.next_beat().await, Beat::Alive { .. }));
        gaps.push(last.elapsed());
        last = Instant::now();
    }
    let (min, max) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
    eprintln!("gaps between pongs: {gaps:?}");
    assert!(
        *max <= interval + ms(20),
        "jitter only shortens waits: {gaps:?}"
    );
    assert!(
        *min >= interval / 2,
        "at most half an interval is cut: {gaps:?}"
    );
    assert!(*max - *min >= ms(3), "eight waits in step: {gaps:?}");
}

#[test]
#[cfg(target_os = "linux")] // needs a network namespace and iptables
fn a_vanished_peer_is_dead_within_interval_plus_timeout_and_alive_after_reconnect() {
    if !require(
        "heartbeat against a vanished peer in a network namespace",
        &["ip", "iptables"],
    ) {
        return;
    }
    let netns = Arc::new(Netns::new().unwrap());
    let listener = netns
        .enter(|| TcpListener::bind("127.0.0.1:0"))
        .unwrap()
        .unwrap();
    let server = Server::start(listener);
    let port = server.addr.port();

    // Sockets made inside the namespace, from a blocking thread (setns is per thread).
    let ns = netns.clone();
    let addr = server.addr;
    let pinger = LinePing::new(move || {
        let ns = ns.clone();
        async move {
            let conn = tokio::task::spawn_blocking(move || {
                ns.enter(|| std::net::TcpStream::connect_timeout(&addr, ms(150)))?
            })
            .await
            .map_err(io::Error::other)??;
            conn.set_nonblocking(true)?;
            TcpStream::from_std(conn)
        }
    });
    let connects = pinger.connects.clone();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let hb = Heartbeat::builder()
            .interval(ms(500))
            .timeout(ms(200))
            .misses(1)
            .max_backoff(ms(500))
            .build()
            .unwrap();
        let bound = hb.dead_within();
        assert_eq!(bound, ms(700));
        let mut beats = hb.run(pinger);
        assert!(matches!(beats.next_beat().await, Beat::Alive { .. }));

        let vanished = Instant::now();
        netns.drop_tcp_port(port).unwrap();
        match beats.next_beat().await {
            Beat::Dead(reason) => eprintln!("dead after {:?}: {reason}", vanished.elapsed()),
            other => panic!("expected Dead, got {other:?}"),
        }
        let took = vanished.elapsed();
        assert!(
            took <= bound + ms(150),
            "dead after {took:?}, bound {bound:?}"
        );

        // Back: the pinger reconnects (the old connection is suspect after a cancelled
        // ping) and the heartbeat reports the peer alive.
        netns.restore_tcp_port(port).unwrap();
        let back = Instant::now();
        let alive = tokio::time::timeout(Duration::from_secs(3), beats.next_beat()).await;
        assert!(matches!(alive, Ok(Beat::Alive { .. })), "{alive:?}");
        eprintln!("alive again {:?} after the peer came back", back.elapsed());
        assert!(connects.load(Ordering::Relaxed) >= 2, "it reconnected");
    });
}

#[cfg(unix)] // needs redis-server, and SIGSTOP to hang it (testkit's Redis is Unix only)
#[tokio::test]
async fn a_hung_redis_server_is_dead_within_the_bound_and_alive_when_it_resumes() {
    if !require("heartbeat against redis-server", &["redis-server"]) {
        return;
    }
    let redis = connhealth_testkit::Redis::start(&[]).unwrap();
    let mut pinger = loopback_pinger(redis.addr());
    pinger.pong = "+PONG\r\n"; // Redis answers an inline PING with a RESP simple string
    let hb = Heartbeat::builder()
        .interval(ms(200))
        .timeout(ms(100))
        .misses(1)
        .max_backoff(ms(200))
        .build()
        .unwrap();
    let bound = hb.dead_within();
    let mut beats = hb.run(pinger);
    assert!(matches!(beats.next_beat().await, Beat::Alive { .. }));

    // SIGSTOP: the server's kernel still accepts and acknowledges; keepalive and check()
    // would call it healthy forever.
    redis.pause().unwrap();
    let hung = Instant::now();
    assert!(matches!(
        beats.next_beat().await,
        Beat::Dead(PingFailure::TimedOut(_))
    ));
    let took = hung.elapsed();
    assert!(
        took <= bound + ms(150),
        "dead after {took:?}, bound {bound:?}"
    );

    redis.resume().unwrap();
    let alive = tokio::time::timeout(Duration::from_secs(2), beats.next_beat()).await;
    assert!(matches!(alive, Ok(Beat::Alive { .. })), "{alive:?}");
}

#[tokio::test]
async fn traffic_while_a_ping_waits_is_a_sign_of_life() {
    let hb = Heartbeat::builder()
        .interval(ms(100))
        .timeout(ms(50))
        .misses(2)
        .jitter(0.0)
        .build()
        .unwrap();
    let activity = hb.activity();
    // A busy peer: its pongs queue behind a long reply, which the reader reports as it
    // arrives, every 5 ms from just after the first ping left.
    let mut beats = hb.run(Silent);
    let busy = tokio::spawn(async move {
        tokio::time::sleep(ms(110)).await;
        for _ in 0..60 {
            activity.record();
            tokio::time::sleep(ms(5)).await;
        }
    });
    let verdict = tokio::time::timeout(ms(350), beats.next_beat()).await;
    assert!(
        verdict.is_err(),
        "a peer sending all along was reported {verdict:?}"
    );
    busy.await.unwrap();
    // Quiet from here: dead within the bound of the last sign of life.
    let quiet = Instant::now();
    assert!(matches!(beats.next_beat().await, Beat::Missed { .. }));
    assert!(matches!(beats.next_beat().await, Beat::Dead(_)));
    assert!(quiet.elapsed() < ms(200) + ms(100), "{:?}", quiet.elapsed());
}

#[tokio::test]
async fn settings_at_the_edge_of_the_clock_neither_panic_nor_ping() {
    let hb = Heartbeat::builder()
        .interval(Duration::MAX)
        .timeout(Duration::MAX / 2)
        .max_backoff(Duration::MAX)
        .build()
        .unwrap();
    assert_eq!(hb.dead_within(), Duration::MAX);
    let mut beats = hb.run(Silent);
    assert!(tokio::time::timeout(ms(50), beats.next_beat())
        .await
        .is_err());
}

/// A peer that never answers.
struct Silent;

impl Ping for Silent {
    async fn ping(&mut self) -> io::Result<()> {
        std::future::pending().await
    }
}
