//! `inspect`: one TCP_INFO call, read into names a TCP engineer knows; `stalled()` turns
//! true within about a second of the peer vanishing under load, and false again when it
//! comes back.
//!
//! On Windows, `SIO_TCP_INFO` (Windows 10 1703 and later) fills fewer fields; Wine 8.0
//! does not have it and answers `WSAEOPNOTSUPP`, which `inspect` reports as
//! `Unsupported`. The Windows tests below assert what applies.

#[cfg(target_os = "linux")]
mod linux {

    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use connhealth::{inspect, TcpState};
    use connhealth_testkit::{require, tcp_pair, wait_until, Netns};

    #[test]
    fn a_live_connection_reads_sensibly() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut conn, mut peer) = tcp_pair(&listener).unwrap();
        conn.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).unwrap();
        peer.write_all(b"pong").unwrap();
        conn.read_exact(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(50));

        let info = inspect(&conn).unwrap();
        assert_eq!(info.state, TcpState::Established);
        // Loopback RTT is microseconds (it may even round to zero); the RTO is Linux's floor,
        // 200 ms plus a little: both in the right unit, not off by a thousand.
        assert!(info.rtt < Duration::from_millis(100), "{info:?}");
        assert!(
            info.rto >= Duration::from_millis(200) && info.rto < Duration::from_secs(1),
            "{info:?}"
        );
        assert_eq!(info.unacked, 0);
        assert_eq!(info.notsent_bytes, Some(0), "Linux 4.6 and later report it");
        assert_eq!(
            (info.retransmits, info.backoff, info.total_retransmits),
            (0, 0, 0)
        );
        assert!(!info.stalled());
        // The last data each way moved about 50 ms ago, not at connect time.
        for since in [info.last_data_sent, info.last_data_recv] {
            assert!(
                since >= Duration::from_millis(40) && since < Duration::from_secs(1),
                "{info:?}"
            );
        }
        assert_eq!(info.state.to_string(), "ESTABLISHED");
    }

    #[test]
    fn states_follow_the_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(inspect(&listener).unwrap().state, TcpState::Listen);

        let (conn, peer) = tcp_pair(&listener).unwrap();
        drop(peer); // FIN from the peer: we are in CLOSE-WAIT until we close too
        wait_until(Duration::from_secs(1), || {
            inspect(&conn).unwrap().state == TcpState::CloseWait
        })
        .expect("CLOSE-WAIT after the peer's FIN");

        let (conn, _peer) = tcp_pair(&listener).unwrap();
        conn.shutdown(Shutdown::Write).unwrap(); // our FIN, acknowledged: FIN-WAIT-2
        wait_until(Duration::from_secs(1), || {
            inspect(&conn).unwrap().state == TcpState::FinWait2
        })
        .expect("FIN-WAIT-2 after our FIN is acknowledged");
    }

    #[test]
    fn a_socket_that_is_not_tcp_gets_the_kernels_error() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = inspect(&udp).unwrap_err();
        assert!(err.raw_os_error().is_some(), "{err}");
    }

    #[test]
    fn stalled_turns_true_within_a_second_of_the_peer_vanishing_under_load() {
        if !require(
            "stall detection in a network namespace",
            &["ip", "iptables"],
        ) {
            return;
        }
        let netns = Netns::new().unwrap();
        let (mut conn, mut peer, port) = netns.tcp_pair().unwrap();

        // The peer drains everything, so a stall can only come from the network.
        let done = Arc::new(AtomicBool::new(false));
        peer.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let reader = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !done.load(Ordering::Relaxed) {
                    let _ = peer.read(&mut buf);
                }
            })
        };
        conn.set_nonblocking(true).unwrap();

        // Under load on a healthy path: data in flight, nothing retransmitted.
        let start = Instant::now();
        write_until(&mut conn, Duration::from_millis(300), || false);
        let info = inspect(&conn).unwrap();
        assert!(!info.stalled(), "healthy under load: {info:?}");
        assert!(start.elapsed() >= Duration::from_millis(300));

        let vanished = Instant::now();
        netns.drop_tcp_port(port).unwrap();
        let probe = conn.try_clone().unwrap();
        write_until(&mut conn, Duration::from_secs(3), || {
            inspect(&probe).unwrap().stalled()
        })
        .expect("stalled within 3 s of the vanish");
        let took = vanished.elapsed();
        let info = inspect(&conn).unwrap();
        eprintln!("stalled after {took:?}: {info:?}");
        assert!(
            took <= Duration::from_millis(1_200),
            "stalled only after {took:?}"
        );
        assert!(info.unacked > 0 && info.total_retransmits > 0, "{info:?}");
        assert_eq!(
            info.state,
            TcpState::Established,
            "a stall is a warning, not a verdict"
        );

        // The peer comes back: the next retransmission is acknowledged and the stall clears.
        netns.restore_tcp_port(port).unwrap();
        let cleared = wait_until(Duration::from_secs(5), || {
            !inspect(&conn).unwrap().stalled()
        })
        .expect("the stall clears once the peer is back");
        eprintln!("stall cleared {cleared:?} after the peer came back");
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap();
    }

    /// Keeps a non-blocking `conn` writing until `until` holds (the time it took) or `limit`
    /// passes (`None`).
    fn write_until(
        conn: &mut TcpStream,
        limit: Duration,
        mut until: impl FnMut() -> bool,
    ) -> Option<Duration> {
        let chunk = [0u8; 16 * 1024];
        let start = Instant::now();
        loop {
            match conn.write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("write: {e}"),
            }
            if until() {
                return Some(start.elapsed());
            }
            if start.elapsed() > limit {
                return None;
            }
        }
    }
}

#[cfg(windows)]
mod windows {
    use std::net::{TcpListener, UdpSocket};
    use std::time::Duration;

    use connhealth::{inspect, TcpState};
    use connhealth_testkit::{is_wine, tcp_pair};

    #[test]
    fn a_live_connection_reads_sensibly_or_wine_says_unsupported() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (conn, _peer) = tcp_pair(&listener).unwrap();
        match inspect(&conn) {
            Err(err) if is_wine() => {
                assert_eq!(err.kind(), std::io::ErrorKind::Unsupported, "{err}");
                assert!(err.to_string().contains("SIO_TCP_INFO"), "{err}");
            }
            Err(err) => panic!("Windows 10 1703 and later have SIO_TCP_INFO: {err}"),
            Ok(info) => {
                assert!(!is_wine(), "Wine 8.0 has no SIO_TCP_INFO: {info:?}");
                assert_eq!(info.state, TcpState::Established);
                assert!(info.rtt < Duration::from_millis(100), "{info:?}");
                assert_eq!(info.unacked, 0);
                assert!(!info.stalled());
            }
        }
    }

    #[test]
    fn a_socket_that_is_not_tcp_gets_an_error_that_says_so() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = inspect(&udp).unwrap_err();
        assert!(err.raw_os_error().is_some(), "{err}");
    }
}
