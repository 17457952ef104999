//! `DeadPeer`: a peer that vanishes without FIN or RST fails the connection within the
//! bound, idle or with data in flight; a healthy idle connection is never failed; bounds
//! the platform cannot honour are refused with a clear error.
//!
//! The peer vanishes by iptables DROP in a network namespace of the test's own (Linux
//! only); the rest runs on Windows too, where Wine's differences are stated.

#[cfg(target_os = "linux")]
use std::io::Write;
#[cfg(target_os = "linux")]
use std::net::TcpStream;
use std::net::{TcpListener, UdpSocket};
#[cfg(unix)]
use std::os::fd::AsFd as AsSocket;
#[cfg(windows)]
use std::os::windows::io::AsSocket;
use std::time::{Duration, Instant};

use connhealth::{check, DeadPeer, DeadPeerError, DeadPeerSettings, Status};
#[cfg(target_os = "linux")]
use connhealth::{inspect, Closed};
#[cfg(target_os = "linux")]
use connhealth_testkit::{require, wait_until, Netns};

/// Polls `check` until it says closed; returns how long after `since` that was, and what
/// it said. `check` is called once per poll: a second call would no longer see the error.
/// Applies `policy` to `conn`: true when it was set. Linux and Windows set it (Windows
/// documents `TCP_MAXRT` since Vista and `TCP_KEEPCNT` since 10 1703). Wine 8.0 has
/// neither option and refuses `TCP_MAXRT` with `WSAENOPROTOOPT`: there `apply` fails and
/// names the option, which this asserts before it returns false.
fn applied<S: AsSocket + ?Sized>(policy: DeadPeer, conn: &S) -> bool {
    #[cfg(windows)]
    if connhealth_testkit::is_wine() {
        let err = policy.apply(conn).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("TCP_MAXRT") && message.contains("10042"),
            "{message}"
        );
        return false;
    }
    policy.apply(conn).unwrap();
    true
}

#[cfg(target_os = "linux")]
fn wait_closed(conn: &TcpStream, since: Instant, limit: Duration) -> Option<(Duration, Status)> {
    let mut status = Status::Open;
    wait_until(limit, || {
        status = check(conn);
        status.is_closed()
    })?;
    Some((since.elapsed(), status))
}

#[cfg(target_os = "linux")] // needs a network namespace and iptables DROP
#[test]
fn idle_connection_to_a_vanished_peer_times_out_within_the_bound() {
    if !require(
        "dead-peer detection in a network namespace",
        &["ip", "iptables"],
    ) {
        return;
    }
    let bound = Duration::from_secs(3);
    let netns = Netns::new().unwrap();
    let (conn, _peer, port) = netns.tcp_pair().unwrap();
    DeadPeer::detect_within(bound).apply(&conn).unwrap();

    let vanished = Instant::now();
    netns.drop_tcp_port(port).unwrap();
    assert_eq!(check(&conn), Status::Open, "the vanish itself is invisible");

    // Measured from before the DROP rules went in: the true time is a little shorter.
    let (took, status) = wait_closed(&conn, vanished, bound * 2)
        .unwrap_or_else(|| panic!("still open {:?} after the peer vanished", bound * 2));
    eprintln!("idle: {status} after {took:?} (bound {bound:?})");
    assert_eq!(status, Status::Closed(Closed::TimedOut));
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
    // Keepalive cannot decide before its first probe goes unanswered for an interval.
    assert!(took >= Duration::from_millis(900), "too early: {took:?}");
}

#[cfg(target_os = "linux")] // needs a network namespace and iptables DROP
#[test]
fn unacknowledged_data_to_a_vanished_peer_times_out_within_the_bound() {
    if !require(
        "dead-peer detection in a network namespace",
        &["ip", "iptables"],
    ) {
        return;
    }
    let bound = Duration::from_secs(3);
    let netns = Netns::new().unwrap();
    let (mut conn, _peer, port) = netns.tcp_pair().unwrap();
    DeadPeer::detect_within(bound).apply(&conn).unwrap();
    netns.drop_tcp_port(port).unwrap();

    // Keepalive stands aside while data is unacknowledged: only TCP_USER_TIMEOUT bounds
    // this, where tcp_retries2 alone would retransmit for about 15 minutes.
    let sent = Instant::now();
    conn.write_all(&[7u8; 4096]).unwrap();
    wait_until(Duration::from_secs(1), || {
        inspect(&conn).is_ok_and(|i| i.unacked > 0)
    })
    .expect("the data stays unacknowledged");

    let (took, status) = wait_closed(&conn, sent, bound * 2)
        .unwrap_or_else(|| panic!("still open {:?} after the write", bound * 2));
    eprintln!("data in flight: {status} after {took:?} (bound {bound:?})");
    assert_eq!(status, Status::Closed(Closed::TimedOut));
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
}

#[test]
fn a_healthy_idle_connection_stays_open_for_several_bounds() {
    // The tightest policy there is: one probe a second, dead 2 s after the last ACK.
    let policy = DeadPeer::detect_within(DeadPeer::MIN_BOUND);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (conn, _peer) = connhealth_testkit::tcp_pair(&listener).unwrap();
    if !applied(policy, &conn) {
        return;
    }

    let watch = policy.bound() * 3;
    let start = Instant::now();
    while start.elapsed() < watch {
        assert_eq!(check(&conn), Status::Open, "after {:?}", start.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Open because keepalive probed and the peer answered, not because nothing ran: no
    // data moved for the whole watch, yet an ACK arrived within the last interval or so.
    #[cfg(target_os = "linux")]
    {
        let info = inspect(&conn).unwrap();
        assert!(
            info.last_data_recv >= watch - Duration::from_millis(100),
            "{info:?}"
        );
        assert!(
            info.last_ack_recv <= Duration::from_millis(1_500),
            "{info:?}"
        );
    }
}

#[test]
fn bounds_the_platform_cannot_honour_are_refused_and_nothing_is_set() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (conn, _peer) = connhealth_testkit::tcp_pair(&listener).unwrap();

    for bound in [
        Duration::ZERO,
        Duration::from_millis(800),
        Duration::from_millis(2_499),
    ] {
        let err = DeadPeer::detect_within(bound).apply(&conn).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let message = err.to_string();
        assert!(message.contains("smallest bound is 2.5s"), "{message}");
        assert_eq!(
            DeadPeer::try_detect_within(bound),
            Err(DeadPeerError::TooShort {
                bound,
                min: DeadPeer::MIN_BOUND
            })
        );
    }
    for bound in [DeadPeer::MAX_BOUND + Duration::from_secs(1), Duration::MAX] {
        let err = DeadPeer::detect_within(bound).apply(&conn).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("largest bound"), "{err}");
    }
    #[cfg(target_os = "linux")]
    assert_eq!(
        DeadPeerSettings::read(&conn).unwrap(),
        None,
        "a refused policy sets nothing"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn the_report_is_what_the_kernel_holds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    for (bound, idle, count, user_timeout_ms) in
        [(3, 1, 1, 1_500), (10, 2, 3, 7_000), (60, 13, 3, 45_500)]
    {
        let (conn, _peer) = connhealth_testkit::tcp_pair(&listener).unwrap();
        let policy = DeadPeer::detect_within(Duration::from_secs(bound));
        policy.apply(&conn).unwrap();
        let applied = policy.settings().unwrap();
        assert_eq!(applied.idle, Duration::from_secs(idle));
        assert_eq!(applied.interval, Duration::from_secs(idle));
        assert_eq!(applied.count, count);
        assert_eq!(
            applied.user_timeout,
            Some(Duration::from_millis(user_timeout_ms))
        );
        assert!(applied.window() < policy.bound());
        assert_eq!(DeadPeerSettings::read(&conn).unwrap(), Some(applied));
    }
}

/// Whether the tests run under Wine.
fn wine() -> bool {
    #[cfg(windows)]
    return connhealth_testkit::is_wine();
    #[cfg(not(windows))]
    false
}

/// Windows: `apply` sets the keepalive values with `SIO_KEEPALIVE_VALS` and
/// `TCP_KEEPCNT`, and the user timeout as `TCP_MAXRT` in whole seconds (rounded down);
/// `read` gets them back with `getsockopt` (Windows 10 1709 and later). Wine 8.0 refuses
/// `TCP_MAXRT` and `TCP_KEEPCNT`, so `apply` fails there ([`applied`]).
#[cfg(windows)]
#[test]
fn the_report_is_what_the_kernel_holds_or_wine_refuses_the_options() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    for (bound, idle, count, maxrt) in [(3, 1, 1, 1), (10, 2, 3, 7), (60, 13, 3, 45)] {
        let (conn, _peer) = connhealth_testkit::tcp_pair(&listener).unwrap();
        let policy = DeadPeer::detect_within(Duration::from_secs(bound));
        let was_set = applied(policy, &conn);
        let applied = policy.settings().unwrap();
        assert_eq!(applied.idle, Duration::from_secs(idle));
        assert_eq!(applied.count, count);
        assert_eq!(applied.user_timeout, Some(Duration::from_secs(maxrt)));
        if was_set {
            let read = DeadPeerSettings::read(&conn)
                .unwrap()
                .expect("keepalive is on");
            assert_eq!(
                (read.idle, read.interval, read.count),
                (applied.idle, applied.interval, count)
            );
            assert_eq!(read.user_timeout, Some(Duration::from_secs(maxrt)));
        }
    }
}

#[test]
fn a_socket_that_is_not_tcp_gets_the_kernels_error() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = DeadPeer::detect_within(Duration::from_secs(10))
        .apply(&udp)
        .unwrap_err();
    assert_ne!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

#[tokio::test]
async fn the_same_policy_applies_to_tokio_streams() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let conn = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let policy = DeadPeer::detect_within(Duration::from_secs(30));
    let copy = policy; // Copy: one policy, every socket
    let was_set = applied(copy, &conn);
    assert_eq!(was_set, !cfg!(windows) || !wine());
    #[cfg(target_os = "linux")]
    assert_eq!(
        DeadPeerSettings::read(&conn).unwrap(),
        Some(policy.settings().unwrap())
    );
}
