//! Shared by the prober's tests.

#[cfg(target_os = "linux")] // the raw engine's tests, in namespaces
pub mod raw;

/// A builder for the engine under test: the library's own choice (on Linux as root, the
/// raw engine), or a socket per probe with `CONNHEALTH_TEST_ENGINE=sockets` (`.ci/run`
/// runs the probe tests both ways).
#[allow(dead_code)] // not every test file that shares this module builds its own
pub fn builder() -> connhealth::ProberBuilder {
    match std::env::var("CONNHEALTH_TEST_ENGINE").as_deref() {
        Ok("sockets") => connhealth::Prober::builder().raw(false),
        Ok("raw") => connhealth::Prober::builder().mode(connhealth::Mode::Raw),
        _ => connhealth::Prober::builder(),
    }
}

/// A prober with the defaults, on the engine under test (see [`builder`]).
#[allow(dead_code)]
pub fn prober() -> connhealth::Prober {
    builder().build()
}

/// A probe's result, from a task the test spawned.
#[allow(dead_code)]
pub type Spawned = tokio::task::JoinHandle<Result<std::time::Duration, connhealth::ProbeError>>;

/// The end of a stall test (out of local or source ports toward one destination, on either
/// engine): while `holders` hold that destination's ports and `stalled` waits for one, a
/// probe of `other` goes out at once; then every holder, and the stalled probe after the
/// port it was given back, time out against their dropping target.
#[allow(dead_code)]
pub async fn the_other_destination_goes_on(
    prober: &connhealth::Prober,
    other: std::net::SocketAddr,
    holders: Vec<Spawned>,
    stalled: Spawned,
) {
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let result = prober.probe_addr(other, Duration::from_millis(500)).await;
    assert!(result.is_ok(), "{result:?} after {:?}", start.elapsed());
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    for holder in holders {
        assert!(matches!(
            holder.await.unwrap(),
            Err(connhealth::ProbeError::TimedOut)
        ));
    }
    let stalled = stalled.await.unwrap();
    assert!(
        matches!(stalled, Err(connhealth::ProbeError::TimedOut)),
        "{stalled:?}"
    );
}

/// The runtime the probe tests' callers run on: two workers, as a service would have.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A namespace with a prober built by `builder`, a listener whose SYNs are dropped (the
/// first address), and one that answers (the second); the listeners are non-blocking and
/// accept nothing unless a test asks them to.
#[allow(dead_code)] // not every test file that shares this module drops SYNs
#[cfg(target_os = "linux")] // a namespace and iptables
pub fn dropping_and_live(
    builder: connhealth::ProberBuilder,
) -> (
    connhealth_testkit::Netns,
    connhealth::Prober,
    std::net::SocketAddr,
    std::net::SocketAddr,
    [std::net::TcpListener; 2],
) {
    let listener = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    };
    let netns = connhealth_testkit::Netns::new().unwrap();
    let (dropping, live, prober) = netns
        .enter(|| (listener(), listener(), builder.build()))
        .unwrap();
    let (dead, up) = (dropping.local_addr().unwrap(), live.local_addr().unwrap());
    netns.drop_tcp_port(dead.port()).unwrap();
    (netns, prober, dead, up, [dropping, live])
}

/// Connections `listener` hands out now: for each, the accept's error when the connection
/// was reset before it (Windows only, see `windows::reset_before_accept`), or else the
/// outcome of one read (1 s at most). The listener must be nonblocking.
#[allow(dead_code)] // not every test file that shares this module probes listeners
pub fn accepted(listener: &std::net::TcpListener) -> Vec<std::io::Result<usize>> {
    use std::io::Read;
    let mut conns = Vec::new();
    loop {
        match listener.accept() {
            Ok((mut conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(std::time::Duration::from_secs(1)))
                    .unwrap();
                conns.push(conn.read(&mut [0u8; 16]));
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return conns,
            #[cfg(windows)]
            Err(err) if windows::reset_before_accept(&err) => conns.push(Err(err)),
            Err(err) => panic!("accept: {err}"),
        }
    }
}

/// Windows: what a server application sees of a probe.
///
/// Windows has no `TCP_QUICKACK`, so a `Mode::HalfOpen` probe completes the handshake
/// and its zero-linger close resets the connection, as `Mode::Connect` does: the server's
/// listener may hand out a connection that is already reset. Under Wine the sockets are
/// Linux's, but the Windows path sets no `TCP_QUICKACK` either, so every handshake
/// completes there too, and Linux queues each reset connection for `accept`.
///
/// So on Windows a listener nobody accepts from fills its backlog with reset connections
/// (under Wine, Linux then drops further SYNs and those probes time out): the tests that
/// send more probes than a backlog holds accept while they probe ([`while_draining`]), as
/// a server that keeps up would.
#[cfg(windows)]
#[allow(dead_code)] // not every test file that shares this module probes listeners
pub mod windows {
    use std::io;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use windows_sys::Win32::Networking::WinSock::{WSAECONNRESET, WSAENOTCONN};

    use super::accepted;

    /// Whether an `accept` failed because the connection it had was reset before the
    /// call. Windows documents `WSAECONNRESET` for it ("An incoming connection was
    /// indicated, but was subsequently terminated by the remote peer prior to accepting
    /// the call"); Wine 8.0 fails the `accept` with `WSAENOTCONN` instead (Linux's accept
    /// hands over the reset socket, and Wine finds it unconnected). Either way the
    /// connection is gone from the queue.
    pub fn reset_before_accept(err: &io::Error) -> bool {
        let wine = connhealth_testkit::is_wine();
        err.raw_os_error() == Some(if wine { WSAENOTCONN } else { WSAECONNRESET })
    }

    /// Runs `probe` while a thread accepts from `listeners` every millisecond; returns
    /// what `probe` returned and what the thread saw ([`accepted`]).
    pub fn while_draining<T>(
        listeners: &[TcpListener],
        probe: impl FnOnce() -> T,
    ) -> (T, Vec<io::Result<usize>>) {
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let drain = scope.spawn(|| {
                let mut seen = Vec::new();
                while !done.load(Ordering::Acquire) {
                    for listener in listeners {
                        seen.extend(accepted(listener));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                seen
            });
            let out = probe();
            done.store(true, Ordering::Release);
            (out, drain.join().unwrap())
        })
    }

    /// Asserts what the servers saw of `probes` probes that each completed the handshake
    /// and reset it: no connection that carried bytes or stayed open.
    ///
    /// * Windows documents a connection reset before the accept as an accept that fails
    ///   with `WSAECONNRESET`, and one reset after it as a read that fails with
    ///   `WSAECONNRESET`. At most one connection per probe; the test does not assume that
    ///   Windows keeps a reset connection in the backlog, so none is allowed too.
    /// * Wine 8.0 fails the accept with `WSAENOTCONN`. A reset after the accept fails a
    ///   read that was waiting for it with `WSAECONNRESET`, but a read that comes after
    ///   it returns the end of the stream (0 bytes). Its sockets are Linux's, which queues
    ///   every completed handshake: the servers see at least one connection.
    pub fn assert_completed_and_reset(seen: &[io::Result<usize>], probes: usize) {
        assert!(
            seen.len() <= probes,
            "{} connections for {probes} probes",
            seen.len()
        );
        let wine = connhealth_testkit::is_wine();
        if wine {
            assert!(!seen.is_empty(), "no handshake completed under Wine");
        }
        for outcome in seen {
            let reset = match outcome {
                Err(err) if wine => matches!(err.raw_os_error(), Some(WSAENOTCONN | WSAECONNRESET)),
                Err(err) => err.raw_os_error() == Some(WSAECONNRESET),
                Ok(0) => wine,
                Ok(_) => false,
            };
            assert!(reset, "a probe's connection was not reset: {outcome:?}");
        }
    }
}
