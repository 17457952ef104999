//! `check()`: one test per row of the behaviour table, against real sockets and real
//! failures (a private network namespace for a vanished peer and for `ss -K`).
//!
//! On Windows the same rows run where their subject exists; the ones that need a Linux
//! tool (namespaces, iptables, `ss -K`, seccomp) or Unix sockets are Linux-only. Where
//! Wine's Winsock differs from what Windows documents, a test states both and asserts
//! the one that applies ([`reset_reads_as`]).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
#[cfg(unix)]
use std::os::fd::AsFd as AsSocket;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(windows)]
use std::os::windows::io::AsSocket;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use connhealth::{check, Closed, Status};
#[cfg(target_os = "linux")]
use connhealth_testkit::{require, Netns};
use connhealth_testkit::{tcp_pair, wait_until};
use socket2::SockRef;
#[cfg(target_os = "linux")]
use socket2::TcpKeepalive;

/// Linux sees a FIN behind unread bytes (`POLLRDHUP`); the portable Unix path, forced on
/// Linux with `--cfg connhealth_portable`, sees the bytes until they are read. Windows
/// documents `POLLHUP` from `WSAPoll` once the stream is disconnected, which the check
/// reads as the end of the stream; Wine 8.0 reports only the bytes (`POLLRDNORM`).
fn sees_fin_behind_data() -> bool {
    #[cfg(windows)]
    return !connhealth_testkit::is_wine();
    #[cfg(not(windows))]
    cfg!(all(target_os = "linux", not(connhealth_portable)))
}

/// What a check says after the peer's RST. Linux and Windows report the reset
/// (`ECONNRESET`, `WSAECONNRESET`). Wine 8.0 does not: its `recv` returns 0 after an RST,
/// and `SO_ERROR` is 0, so under Wine the check can only see the end of the stream.
fn reset_reads_as() -> Status {
    #[cfg(windows)]
    if connhealth_testkit::is_wine() {
        return Status::Closed(Closed::Eof);
    }
    Status::Closed(Closed::Reset)
}

/// What a check of a connected UDP socket says after an ICMP port unreachable. Linux
/// reports `ECONNREFUSED` once; Windows documents `WSAECONNRESET` on the next `recv`,
/// which the check reads as the same refusal. Wine 8.0 reports nothing: the socket stays
/// quiet, and the check says `Open`.
fn port_unreachable_reads_as() -> Status {
    #[cfg(windows)]
    if connhealth_testkit::is_wine() {
        return Status::Open;
    }
    Status::Closed(Closed::Refused)
}

/// How long the kernel may take to deliver a segment over loopback to the peer socket.
const SETTLE: Duration = Duration::from_secs(2);

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp_pair(&listener).unwrap()
}

/// Waits until `check(conn)` leaves `Open`, and returns the first other answer. (Asking
/// again would not do: the kernel reports a socket error once, to the first who asks.)
fn settled<S: AsSocket>(conn: &S) -> Status {
    settled_within(conn, SETTLE)
}

fn settled_within<S: AsSocket>(conn: &S, limit: Duration) -> Status {
    let mut seen = Status::Open;
    wait_until(limit, || {
        seen = check(conn);
        seen != Status::Open
    });
    seen
}

/// Closes `conn` with an RST instead of a FIN (SO_LINGER zero).
fn reset(conn: TcpStream) {
    SockRef::from(&conn)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(conn);
}

#[test]
fn open_with_nothing_to_read_is_open() {
    let (conn, _peer) = pair();
    assert_eq!(check(&conn), Status::Open);
    // Asking again changes nothing.
    assert_eq!(check(&conn), Status::Open);
}

#[test]
fn unread_bytes_are_readable_and_still_read_afterwards() {
    let (mut conn, mut peer) = pair();
    peer.write_all(b"PONG\r\n").unwrap();
    assert_eq!(settled(&conn), Status::Readable);
    assert_eq!(check(&conn), Status::Readable);
    let mut got = [0; 6];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"PONG\r\n", "the check consumed nothing");
    assert_eq!(check(&conn), Status::Open);
}

#[test]
fn peer_close_is_eof() {
    let (conn, peer) = pair();
    drop(peer);
    assert_eq!(settled(&conn), Status::Closed(Closed::Eof));
}

#[test]
fn peer_shutting_down_its_write_side_is_eof() {
    let (conn, peer) = pair();
    peer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(settled(&conn), Status::Closed(Closed::Eof));
    drop(peer);
}

#[test]
fn bytes_then_fin_is_eof_and_the_bytes_remain() {
    let (mut conn, mut peer) = pair();
    peer.write_all(b"last words").unwrap();
    drop(peer);
    // A recv(MSG_PEEK) check returns the bytes and calls this open; the FIN behind them
    // is what matters.
    if sees_fin_behind_data() {
        assert_eq!(settled(&conn), Status::Closed(Closed::Eof));
    } else {
        assert_eq!(settled(&conn), Status::Readable);
    }
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"last words");
    assert_eq!(
        check(&conn),
        Status::Closed(Closed::Eof),
        "drained, both paths see the FIN"
    );
}

#[test]
fn peer_reset_is_reset_and_stays_closed() {
    let (conn, peer) = pair();
    reset(peer);
    assert_eq!(settled(&conn), reset_reads_as());
    // The kernel reported the error once; the connection is still closed.
    let again = check(&conn);
    assert!(again.is_closed(), "second check said {again:?}");
    assert!(check(&conn).is_closed());
}

#[test]
fn closed_stays_closed_after_the_application_read_the_error() {
    let (mut conn, peer) = pair();
    reset(peer);
    wait_until(SETTLE, || check(&conn) != Status::Open);
    let mut buf = [0; 8];
    let _ = conn.read(&mut buf); // takes ECONNRESET, or reads EOF after our check took it
    assert!(check(&conn).is_closed());
}

#[test]
fn bytes_then_reset_is_closed() {
    let (conn, mut peer) = pair();
    peer.write_all(b"partial reply").unwrap();
    reset(peer);
    assert_eq!(settled(&conn), reset_reads_as());
    assert!(check(&conn).is_closed());
}

#[test]
fn peer_closing_with_our_bytes_unread_resets() {
    // A peer that closes with unread data in its receive queue sends an RST, not a FIN.
    let (mut conn, peer) = pair();
    conn.write_all(b"request the peer never reads").unwrap();
    thread::sleep(Duration::from_millis(20));
    drop(peer);
    assert_eq!(settled(&conn), reset_reads_as());
}

#[cfg(target_os = "linux")] // needs `ss -K` in a network namespace
#[test]
fn killed_by_the_local_stack_is_aborted() {
    if !require("ss -K test", &["ip", "ss"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let (conn, _peer, port) = netns.tcp_pair().unwrap();
    assert_eq!(check(&conn), Status::Open);
    // Kill only our side (its remote port is the listener's), as an administrator would.
    netns
        .exec("ss", &["-K", "-t", &format!("dport = :{port}")])
        .unwrap();
    assert_eq!(settled(&conn), Status::Closed(Closed::Aborted));
    assert!(check(&conn).is_closed());
}

/// A connection inside a fresh namespace, with the peer's port then silently dropped.
#[cfg(target_os = "linux")]
fn vanished_peer(netns: &Netns) -> (TcpStream, TcpStream) {
    let (conn, peer, port) = netns.tcp_pair().unwrap();
    assert_eq!(check(&conn), Status::Open);
    netns.drop_tcp_port(port).unwrap();
    (conn, peer)
}

#[cfg(target_os = "linux")] // needs a network namespace and iptables DROP
#[test]
fn vanished_peer_after_user_timeout_is_timed_out() {
    if !require("vanished-peer test", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let (mut conn, _peer) = vanished_peer(&netns);
    SockRef::from(&conn)
        .set_tcp_user_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Unacknowledged data: retransmitted until TCP_USER_TIMEOUT gives up.
    conn.write_all(b"into the void").unwrap();
    assert_eq!(
        check(&conn),
        Status::Open,
        "a silent peer looks open at first"
    );
    let seen = settled_within(&conn, Duration::from_secs(5));
    assert_eq!(seen, Status::Closed(Closed::TimedOut));
    assert!(check(&conn).is_closed(), "closed stays closed");
}

#[cfg(target_os = "linux")] // needs a network namespace and iptables DROP
#[test]
fn vanished_idle_peer_after_keepalive_is_timed_out() {
    if !require("vanished-peer test", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let (conn, _peer) = vanished_peer(&netns);
    // Linux counts keepalive in whole seconds: first probe after 1 s idle, give up after
    // one unanswered probe 1 s later.
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(1))
        .with_interval(Duration::from_secs(1))
        .with_retries(1);
    SockRef::from(&conn).set_tcp_keepalive(&keepalive).unwrap();
    let start = Instant::now();
    let seen = settled_within(&conn, Duration::from_secs(6));
    assert_eq!(
        seen,
        Status::Closed(Closed::TimedOut),
        "after {:?}",
        start.elapsed()
    );
}

#[cfg(target_os = "linux")] // needs iptables REJECT and IP_RECVERR
#[test]
fn an_icmp_error_on_a_live_connection_is_not_a_close() {
    if !require("an ICMP error inside a namespace", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let (mut client, mut server, port) = netns.tcp_pair().unwrap();
    // With IP_RECVERR, an ICMP error on an established connection becomes a socket
    // error (POLLERR) while TCP retries: the connection is not closed by it.
    connhealth_testkit::set_recverr(&client).unwrap();
    let port = port.to_string();
    let reject = |op: &str| {
        let rule = ["OUTPUT", "-p", "tcp", "--dport", &port, "-j", "REJECT"];
        let tail = ["--reject-with", "icmp-host-unreachable"];
        let args: Vec<&str> = [op].into_iter().chain(rule).chain(tail).collect();
        netns.exec("iptables", &args).unwrap();
    };
    reject("-I");
    client.write_all(b"a").unwrap();
    // Past the first retransmission (RTO 200 ms at least), whose ICMP error arrives in
    // the timer's context, where TCP makes it a socket error.
    thread::sleep(Duration::from_millis(700));
    let during = check(&client);
    reject("-D");
    // The retransmission gets through: the connection was alive all along.
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(server.read(&mut [0u8; 8]).unwrap(), 1);
    assert!(
        !during.is_closed(),
        "a live connection was reported {during:?}"
    );
    assert_eq!(check(&client), Status::Open);
}

#[test]
fn connected_udp_after_port_unreachable_is_refused() {
    let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let conn = UdpSocket::bind("127.0.0.1:0").unwrap();
    conn.connect(addr).unwrap();
    assert_eq!(check(&conn), Status::Open);
    conn.send(b"anyone?").unwrap();
    assert_eq!(settled(&conn), port_unreachable_reads_as());
    // Reported once: UDP has no connection, and the next datagram may well arrive.
    assert_eq!(check(&conn), Status::Open);
}

#[test]
fn zero_length_datagram_is_readable_not_closed() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    b.send(&[]).unwrap();
    assert_eq!(settled(&a), Status::Readable);
    let mut buf = [0; 8];
    assert_eq!(
        a.recv(&mut buf).unwrap(),
        0,
        "the empty datagram is still there"
    );
    assert_eq!(check(&a), Status::Open);
}

#[cfg(unix)] // Unix-domain sockets
#[test]
fn unix_stream_open_then_peer_closed_is_eof() {
    let (conn, mut peer) = UnixStream::pair().unwrap();
    assert_eq!(check(&conn), Status::Open);
    peer.write_all(b"x").unwrap();
    assert_eq!(check(&conn), Status::Readable);
    drop(peer);
    assert_eq!(check(&conn), Status::Closed(Closed::Eof));
}

#[test]
fn another_thread_blocked_in_read_does_not_block_the_check() {
    let (conn, mut peer) = pair();
    let conn = Arc::new(conn);
    let reader = {
        let conn = Arc::clone(&conn);
        thread::spawn(move || {
            let mut buf = [0; 16];
            (&*conn).read(&mut buf).unwrap()
        })
    };
    thread::sleep(Duration::from_millis(50)); // the reader is now asleep in read()
    let start = Instant::now();
    for _ in 0..1000 {
        assert_eq!(check(&*conn), Status::Open);
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "1000 checks beside a blocked reader took {took:?}"
    );
    peer.write_all(b"wake").unwrap();
    assert_eq!(reader.join().unwrap(), 4);
}

#[cfg(target_os = "linux")]
#[test]
fn kernel_without_an_answer_is_unknown() {
    let (conn, peer) = pair();
    #[cfg(target_arch = "x86_64")]
    let polls = [libc::SYS_poll, libc::SYS_ppoll];
    #[cfg(not(target_arch = "x86_64"))]
    let polls = [libc::SYS_ppoll];
    for errno in [libc::EINTR, libc::ENOMEM, libc::ENOBUFS] {
        let seen =
            connhealth_testkit::with_failing_syscalls(&polls, errno, || check(&conn)).unwrap();
        assert_eq!(seen, Status::Unknown, "poll failing with errno {errno}");
    }
    // The same connection, asked normally, is fine, and a real close is still seen.
    assert_eq!(check(&conn), Status::Open);
    drop(peer);
    assert_eq!(settled(&conn), Status::Closed(Closed::Eof));
}

mod tokio_types {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn tokio_tcp_is_asked_directly_not_through_cached_readiness() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let conn = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        assert_eq!(check(&conn), Status::Open);
        peer.write_all(b"+PONG\r\n").await.unwrap();
        drop(peer);
        // tokio has not polled `conn` since; its cached readiness is empty.
        let expected = if sees_fin_behind_data() {
            Status::Closed(Closed::Eof)
        } else {
            Status::Readable
        };
        assert_eq!(settled(&conn), expected);
    }

    #[tokio::test]
    async fn tokio_udp() {
        let gone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = gone.local_addr().unwrap();
        drop(gone);
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.connect(addr).await.unwrap();
        udp.send(b"?").await.unwrap();
        assert_eq!(settled(&udp), port_unreachable_reads_as());
    }

    #[cfg(unix)] // Unix-domain sockets
    #[tokio::test]
    async fn tokio_unix() {
        let (conn, peer) = tokio::net::UnixStream::pair().unwrap();
        assert_eq!(check(&conn), Status::Open);
        drop(peer);
        assert_eq!(check(&conn), Status::Closed(Closed::Eof));
    }
}

mod tls {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

    fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    #[test]
    fn tls_close_notify_then_fin_is_eof_on_the_transport() {
        let (server_config, client_config) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed_tx, closed_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let server = thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut tls = ServerConnection::new(server_config).unwrap();
            while tls.is_handshaking() {
                tls.complete_io(&mut sock).unwrap();
            }
            let mut stream = rustls::StreamOwned::new(tls, sock);
            go_rx.recv().unwrap(); // the client has seen the connection open
            stream.write_all(b"hello over tls").unwrap();
            // A graceful TLS close: the close_notify alert, then a FIN.
            stream.conn.send_close_notify();
            stream.conn.complete_io(&mut stream.sock).unwrap();
            stream.sock.shutdown(Shutdown::Write).unwrap();
            closed_tx.send(()).unwrap();
            thread::sleep(Duration::from_millis(500));
        });

        let sock = TcpStream::connect(addr).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls =
            rustls::StreamOwned::new(ClientConnection::new(client_config, name).unwrap(), sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        assert!(check(tls.get_ref()).is_usable());
        go_tx.send(()).unwrap();

        closed_rx.recv().unwrap();
        // The close_notify record sits unread ahead of the FIN: a peek-based check sees
        // bytes and says open.
        let expected = if sees_fin_behind_data() {
            Status::Closed(Closed::Eof)
        } else {
            Status::Readable
        };
        assert_eq!(settled(tls.get_ref()), expected);
        let mut plaintext = String::new();
        tls.read_to_string(&mut plaintext).unwrap();
        assert_eq!(plaintext, "hello over tls");
        assert_eq!(check(tls.get_ref()), Status::Closed(Closed::Eof));
        server.join().unwrap();
    }
}
