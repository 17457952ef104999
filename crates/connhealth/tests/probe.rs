//! Half-open probes: every outcome of `Prober`, against real listeners, real refusals,
//! and real drops and routes inside namespaces of the tests' own.

mod probe_support;

use std::future::Future;
#[cfg(not(windows))]
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use connhealth::DeadPeer;
use connhealth::{Mode, ProbeError, Prober};
#[cfg(target_os = "linux")]
use connhealth_testkit::{require, Netns};
#[cfg(windows)]
use probe_support::windows::{assert_completed_and_reset, while_draining};
use probe_support::{accepted, runtime};

/// Longer than the delayed-ACK timer (~200 ms at most): a probe socket left open would
/// have completed the handshake by then, and the listener would hold a connection.
const PAST_DELAYED_ACK: Duration = Duration::from_millis(300);

fn listener(addr: &str) -> TcpListener {
    let listener = TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

fn closed_port() -> SocketAddr {
    // Bound and dropped: nothing listens there until someone binds it again, and the
    // kernel answers a SYN with an RST.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn listening_ipv4_port_is_up_and_the_server_accepts_nothing() {
    let server = listener("127.0.0.1:0");
    let prober = probe_support::prober();
    let rtt = runtime()
        .block_on(prober.probe_addr(server.local_addr().unwrap(), Duration::from_secs(2)))
        .unwrap();
    assert!(rtt < Duration::from_secs(2));
    thread::sleep(PAST_DELAYED_ACK);
    #[cfg(not(windows))]
    assert_eq!(
        accepted(&server).len(),
        0,
        "the half-open probe was accepted"
    );
    #[cfg(windows)] // no TCP_QUICKACK: see probe_support::windows
    assert_completed_and_reset(&accepted(&server), 1);
}

#[test]
fn listening_ipv6_port_is_up_and_the_server_accepts_nothing() {
    let server = listener("[::1]:0");
    let target = format!("[::1]:{}", server.local_addr().unwrap().port());
    let result = runtime().block_on(probe_support::prober().probe(&target, Duration::from_secs(2)));
    assert!(result.is_ok(), "{result:?}");
    thread::sleep(PAST_DELAYED_ACK);
    #[cfg(not(windows))]
    assert_eq!(accepted(&server).len(), 0);
    #[cfg(windows)] // no TCP_QUICKACK: see probe_support::windows
    assert_completed_and_reset(&accepted(&server), 1);
}

#[test]
fn hostname_resolves_and_is_up() {
    // "localhost" may resolve to ::1 first; the server listens on 127.0.0.1 only, so
    // the probe must try the next address after a refusal.
    let server = listener("127.0.0.1:0");
    let target = format!("localhost:{}", server.local_addr().unwrap().port());
    // Room for the refusal first: on Windows that takes a second or two (`refused_within`).
    let timeout = Duration::from_secs(if cfg!(windows) { 5 } else { 2 });
    let result = runtime().block_on(probe_support::prober().probe(&target, timeout));
    assert!(result.is_ok(), "{result:?}");
    thread::sleep(PAST_DELAYED_ACK);
    #[cfg(not(windows))]
    assert_eq!(accepted(&server).len(), 0);
    #[cfg(windows)] // no TCP_QUICKACK: see probe_support::windows
    assert_completed_and_reset(&accepted(&server), 1);
}

/// How soon a connect to a closed loopback port is refused.
///
/// Linux answers the SYN with an RST and fails the connect at once, and so does Wine (its
/// sockets are Linux's). Windows retries a SYN answered by an RST before it reports
/// `WSAECONNREFUSED`, for about a second (not measured here: these tests run under Wine).
fn refused_within() -> Duration {
    #[cfg(windows)]
    if !connhealth_testkit::is_wine() {
        return Duration::from_secs(3);
    }
    Duration::from_millis(500)
}

#[test]
fn closed_port_is_refused_at_once() {
    let addr = closed_port();
    let start = Instant::now();
    let result =
        runtime().block_on(probe_support::prober().probe_addr(addr, Duration::from_secs(5)));
    assert!(matches!(result, Err(ProbeError::Refused)), "{result:?}");
    assert!(start.elapsed() < refused_within(), "{:?}", start.elapsed());
}

#[test]
fn connect_mode_completes_the_handshake_and_resets_it() {
    let server = listener("127.0.0.1:0");
    let prober = probe_support::builder().mode(Mode::Connect).build();
    assert_eq!(prober.mode(), Mode::Connect);
    let result =
        runtime().block_on(prober.probe_addr(server.local_addr().unwrap(), Duration::from_secs(2)));
    assert!(result.is_ok(), "{result:?}");
    thread::sleep(Duration::from_millis(50));
    let conns = accepted(&server);
    // Windows and Wine each report the reset in their own way: see probe_support::windows.
    #[cfg(windows)]
    assert_completed_and_reset(&conns, 1);
    #[cfg(not(windows))]
    {
        assert_eq!(conns.len(), 1, "the listener should see the connection");
        match &conns[0] {
            Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset),
            Ok(n) => panic!("expected a reset, read {n} bytes"),
        }
    }
}

#[test]
fn half_open_under_load_is_never_accepted() {
    let servers: Vec<_> = (0..8).map(|_| listener("127.0.0.1:0")).collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
    let prober = probe_support::builder().max_in_flight(512).build();
    let probe = || {
        runtime().block_on(async {
            let mut stream = prober.probe_many(
                (0..20_000).map(|i| addrs[i % addrs.len()]),
                Duration::from_secs(5),
            );
            let mut ok = 0;
            while let Some((_, result)) = stream.next().await {
                assert!(result.is_ok(), "{result:?}");
                ok += 1;
            }
            ok
        })
    };
    #[cfg(not(windows))]
    let ok = probe();
    // Each probe is a connection on Windows, reset at once: the servers accept as they
    // come, or their backlogs fill (see probe_support::windows).
    #[cfg(windows)]
    let (ok, mut seen) = while_draining(&servers, probe);
    assert_eq!(ok, 20_000);
    thread::sleep(PAST_DELAYED_ACK);
    #[cfg(not(windows))]
    {
        let accepted: usize = servers.iter().map(|s| accepted(s).len()).sum();
        assert_eq!(accepted, 0, "half-open probes were accepted under load");
    }
    #[cfg(windows)]
    {
        seen.extend(servers.iter().flat_map(accepted));
        assert_completed_and_reset(&seen, 20_000);
    }
}

#[test]
fn results_never_cross_between_reused_descriptors() {
    // Open and closed ports interleaved: descriptors are closed and reused constantly,
    // and each result must still belong to its own address.
    let servers: Vec<_> = (0..4).map(|_| listener("127.0.0.1:0")).collect();
    let open: Vec<_> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
    let closed: Vec<_> = (0..4).map(|_| closed_port()).collect();
    let targets: Vec<_> = (0..8_000)
        .map(|i| {
            if i % 2 == 0 {
                open[i / 2 % 4]
            } else {
                closed[i / 2 % 4]
            }
        })
        .collect();
    let prober = probe_support::prober();
    let rt = runtime();
    let probe = || {
        rt.block_on(async {
            let mut stream = prober.probe_many(targets.clone(), Duration::from_secs(5));
            let mut seen = 0;
            while let Some((addr, result)) = stream.next().await {
                seen += 1;
                if open.contains(&addr) {
                    assert!(result.is_ok(), "{addr}: {result:?}");
                } else {
                    assert!(
                        matches!(result, Err(ProbeError::Refused)),
                        "{addr}: {result:?}"
                    );
                }
            }
            assert_eq!(seen, targets.len());

            // The same with one future per probe, all in flight together.
            let tasks: Vec<_> = targets[..2_000]
                .iter()
                .map(|&addr| {
                    let prober = prober.clone();
                    tokio::spawn(async move {
                        (addr, prober.probe_addr(addr, Duration::from_secs(5)).await)
                    })
                })
                .collect();
            for task in tasks {
                let (addr, result) = task.await.unwrap();
                assert_eq!(open.contains(&addr), result.is_ok(), "{addr}: {result:?}");
            }
        })
    };
    #[cfg(not(windows))]
    probe();
    // Each probe is a connection on Windows: the servers accept as they come, or their
    // backlogs fill (see probe_support::windows).
    #[cfg(windows)]
    while_draining(&servers, probe);
}

#[test]
fn probes_complete_without_a_tokio_runtime() {
    // The results come back through wakers, so any executor works: here, a bare
    // block_on that parks the thread.
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    fn block_on<F: Future>(future: F) -> F::Output {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            thread::park();
        }
    }
    let server = listener("127.0.0.1:0");
    let prober = probe_support::prober();
    assert!(
        block_on(prober.probe_addr(server.local_addr().unwrap(), Duration::from_secs(2))).is_ok()
    );
    let addrs = vec![server.local_addr().unwrap(); 100];
    let results = block_on(async {
        let mut stream = prober.probe_many(addrs, Duration::from_secs(2));
        let mut n = 0;
        while let Some((_, result)) = stream.next().await {
            assert!(result.is_ok(), "{result:?}");
            n += 1;
        }
        n
    });
    assert_eq!(results, 100);
}

#[test]
fn bad_target_strings_are_errors_not_panics() {
    let prober = probe_support::prober();
    let rt = runtime();
    for target in [
        "",
        ":",
        "localhost",
        "localhost:",
        ":80",
        "localhost:99999",
        "localhost:http",
        "localhost:0",
        "::1:80",
        "::1",
        "[::1]",
        "[::1",
        "[::1]80",
        "[localhost]:80",
        "a b:80",
        "host:80:90",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "[::1]:+80",
        "\0:80",
        "[fe80::1%]:80",
        "[fe80::1%99999999999]:80",
        "[fe80::1%a/b]:80",
        "[fe80::1%an-interface-name-too-long]:80",
        "fe80::1%eth0:80",
    ] {
        let start = Instant::now();
        let result = rt.block_on(prober.probe(target, Duration::from_secs(2)));
        match result {
            Err(err @ ProbeError::InvalidTarget { .. }) => {
                let message = err.to_string();
                assert!(message.contains("invalid target"), "{message}");
            }
            other => panic!("{target:?}: expected InvalidTarget, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_millis(500));
    }
}

/// Two namespaces joined by a veth pair, each end with a link-local address of its own
/// (`fe80::1` on the prober's end, `fe80::2` on the peer's, no duplicate address
/// detection to wait for), and a listener bound to the peer's address on its link. The
/// prober is built in the first namespace. Returns the namespaces, the prober, the
/// listener, the prober's interface name and its index there.
#[cfg(target_os = "linux")] // needs network namespaces and a veth pair
fn link_local_peer() -> (Netns, Netns, Prober, TcpListener, &'static str, u32) {
    const PROBER_END: &str = "chprobe0";
    const PEER_END: &str = "chpeer0";
    let (ours, peer) = (Netns::new().unwrap(), Netns::new().unwrap());
    ours.exec(
        "ip",
        &[
            "link",
            "add",
            PROBER_END,
            "type",
            "veth",
            "peer",
            "name",
            PEER_END,
            "netns",
            peer.name(),
        ],
    )
    .unwrap();
    for (netns, dev, addr) in [
        (&ours, PROBER_END, "fe80::1/64"),
        (&peer, PEER_END, "fe80::2/64"),
    ] {
        netns
            .exec("ip", &["addr", "add", addr, "dev", dev, "nodad"])
            .unwrap();
        netns.exec("ip", &["link", "set", dev, "up"]).unwrap();
    }
    let index_of = |name: &str| {
        let name = std::ffi::CString::new(name).unwrap();
        // SAFETY: `name` is a live, NUL-terminated string.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    };
    let listener = peer
        .enter(|| {
            let on_link =
                std::net::SocketAddrV6::new("fe80::2".parse().unwrap(), 0, 0, index_of(PEER_END));
            TcpListener::bind(on_link).unwrap()
        })
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let (prober, index) = ours
        .enter(|| (probe_support::prober(), index_of(PROBER_END)))
        .unwrap();
    assert_ne!(index, 0, "{PROBER_END} has no index");
    (ours, peer, prober, listener, PROBER_END, index)
}

#[test]
#[cfg(target_os = "linux")] // needs network namespaces and a veth pair
fn a_scoped_link_local_target_is_probed_on_its_interface() {
    if !require("probes over a veth pair", &["ip"]) {
        return;
    }
    let (_ours, _peer, prober, listener, interface, index) = link_local_peer();
    let port = listener.local_addr().unwrap().port();
    let rt = runtime();
    // The interface by name (looked up in the prober's namespace, where it exists, not in
    // the caller's, where it does not), and by number.
    for target in [
        format!("[fe80::2%{interface}]:{port}"),
        format!("[fe80::2%{index}]:{port}"),
    ] {
        // The link comes up a moment after the namespaces are joined.
        let mut result = rt.block_on(prober.probe(&target, Duration::from_secs(2)));
        for _ in 0..20 {
            if result.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            result = rt.block_on(prober.probe(&target, Duration::from_secs(2)));
        }
        assert!(result.is_ok(), "{target}: {result:?}");
    }
    std::thread::sleep(PAST_DELAYED_ACK);
    assert!(
        accepted(&listener).is_empty(),
        "half-open probes were accepted"
    );
    // A link-local address names no host without its link: the kernel says so.
    let unscoped = rt.block_on(prober.probe(&format!("[fe80::2]:{port}"), Duration::from_secs(2)));
    assert!(unscoped.is_err(), "{unscoped:?}");
    // An interface the prober's namespace does not have: a resolution error, at once.
    let missing = rt.block_on(prober.probe(
        &format!("[fe80::2%nosuchif0]:{port}"),
        Duration::from_secs(2),
    ));
    assert!(
        matches!(missing, Err(ProbeError::Resolve(_))),
        "{missing:?}"
    );
}

#[test]
fn a_name_that_does_not_resolve_is_a_resolve_error_within_the_timeout() {
    // `.invalid` never resolves (RFC 6761), and resolvers answer it locally.
    let timeout = Duration::from_secs(3);
    let start = Instant::now();
    let result =
        runtime().block_on(probe_support::prober().probe("no-such-host.invalid:80", timeout));
    assert!(matches!(result, Err(ProbeError::Resolve(_))), "{result:?}");
    assert!(start.elapsed() < timeout + Duration::from_millis(200));
}

#[test]
#[cfg(target_os = "linux")] // needs a namespace whose resolver hangs (iptables) and `ip netns exec`
fn a_hung_resolver_cannot_hold_a_probe_past_its_timeout() {
    if let Some(_netns) = connhealth_testkit::inside_netns() {
        // The child: its resolv.conf names a nameserver on the namespace's loopback whose
        // DNS traffic is dropped, so getaddrinfo waits for its own timeout (seconds).
        let prober = probe_support::prober();
        let timeout = Duration::from_millis(500);
        let start = Instant::now();
        let result = runtime().block_on(prober.probe("hung-resolver.invalid:80", timeout));
        let elapsed = start.elapsed();
        assert!(matches!(result, Err(ProbeError::Resolve(_))), "{result:?}");
        assert!(elapsed >= timeout, "{elapsed:?}");
        assert!(
            elapsed < timeout + Duration::from_millis(250),
            "{elapsed:?}"
        );
        return;
    }
    if let Some(netns) = hung_resolver() {
        netns
            .rerun_test_inside("a_hung_resolver_cannot_hold_a_probe_past_its_timeout")
            .unwrap();
    }
}

#[test]
#[cfg(target_os = "linux")] // needs a namespace whose resolver hangs (iptables) and /proc/self/task
fn a_burst_of_names_waits_for_a_few_resolver_threads() {
    if let Some(_netns) = connhealth_testkit::inside_netns() {
        // The child: every resolution hangs (see `hung_resolver`), so every name of the
        // burst holds a resolver thread for seconds, or waits for one.
        let prober = probe_support::prober();
        let timeout = Duration::from_millis(500);
        let rt = runtime();
        // One name first ("localhost" is in /etc/hosts): its thread is idle when the
        // burst comes, and must not stand for the whole burst.
        let first = rt.block_on(prober.probe("localhost:1", timeout));
        assert!(matches!(first, Err(ProbeError::Refused)), "{first:?}");
        let probes: Vec<_> = (0..64)
            .map(|i| {
                let prober = prober.clone();
                rt.spawn(
                    async move { prober.probe(&format!("hung-{i}.invalid:80"), timeout).await },
                )
            })
            .collect();
        thread::sleep(Duration::from_millis(250));
        let resolvers = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.starts_with("connhealth-reso"))
            .count();
        assert_eq!(resolvers, 16, "resolver threads for 64 hung names");
        let start = Instant::now();
        for probe in probes {
            let result = rt.block_on(probe).unwrap();
            assert!(matches!(result, Err(ProbeError::Resolve(_))), "{result:?}");
        }
        assert!(start.elapsed() < timeout, "{:?}", start.elapsed());
        return;
    }
    if let Some(netns) = hung_resolver() {
        netns
            .rerun_test_inside("a_burst_of_names_waits_for_a_few_resolver_threads")
            .unwrap();
    }
}

/// A namespace whose resolver hangs: its resolv.conf names a nameserver on the
/// namespace's own loopback, whose DNS traffic is dropped, so getaddrinfo waits for its
/// own timeout (5 s). None when the tools are missing.
#[cfg(target_os = "linux")] // needs network namespaces and iptables
fn hung_resolver() -> Option<Netns> {
    if !require("a hung resolver", &["ip", "iptables"]) {
        return None;
    }
    // Only the namespace's own loopback is ever asked: the child runs under `ip netns
    // exec`, which gives it this resolv.conf in place of the host's.
    let netns = Netns::new().unwrap();
    netns
        .set_resolv_conf("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
        .unwrap();
    for ip in ["iptables", "ip6tables"] {
        for proto in ["udp", "tcp"] {
            // On INPUT: a DROP on OUTPUT fails the send at once (EPERM), and the
            // resolver would give up instead of waiting.
            netns
                .exec(
                    ip,
                    &["-I", "INPUT", "-p", proto, "--dport", "53", "-j", "DROP"],
                )
                .unwrap();
        }
    }
    Some(netns)
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn a_dead_peer_policy_bounds_every_probe() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let policy = DeadPeer::detect_within(DeadPeer::MIN_BOUND);
    let (server, prober) = netns
        .enter(|| {
            let prober = probe_support::builder().dead_peer(policy).build();
            (listener("127.0.0.1:0"), prober)
        })
        .unwrap();
    let addr = server.local_addr().unwrap();
    netns.drop_tcp_port(addr.port()).unwrap();
    let start = Instant::now();
    // The call asks for a minute; the policy says a silent target is down after its bound.
    let result = runtime().block_on(prober.probe_addr(addr, Duration::from_secs(60)));
    let elapsed = start.elapsed();
    assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
    assert!(elapsed >= policy.bound(), "{elapsed:?}");
    assert!(
        elapsed < policy.bound() + Duration::from_millis(300),
        "{elapsed:?}"
    );
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn dropped_syns_time_out_at_the_timeout() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let (server, prober) = netns
        .enter(|| (listener("127.0.0.1:0"), probe_support::prober()))
        .unwrap();
    let addr = server.local_addr().unwrap();
    netns.drop_tcp_port(addr.port()).unwrap();
    let rt = runtime();
    for timeout in [Duration::from_millis(300), Duration::from_millis(1200)] {
        let start = Instant::now();
        let result = rt.block_on(prober.probe_addr(addr, timeout));
        let elapsed = start.elapsed();
        assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
        assert!(elapsed >= timeout, "{elapsed:?} < {timeout:?}");
        assert!(
            elapsed < timeout + Duration::from_millis(200),
            "{elapsed:?} for {timeout:?}"
        );
    }
    // probe_many: the timeout runs from each SYN, and every probe reports it.
    let results = rt.block_on(async {
        let mut stream = prober.probe_many(vec![addr; 3], Duration::from_millis(300));
        let start = Instant::now();
        let mut n = 0;
        while let Some((_, result)) = stream.next().await {
            assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
            n += 1;
        }
        (n, start.elapsed())
    });
    assert_eq!(results.0, 3);
    assert!(results.1 < Duration::from_millis(500), "{:?}", results.1);
}

#[test]
#[cfg(target_os = "linux")] // needs a namespace's own routing table
fn no_route_is_unreachable_at_once() {
    if !require("probes without a route", &["ip"]) {
        return;
    }
    // A loopback range made unreachable inside the namespace's own routing table: the
    // connect fails at once, and no packet is sent anywhere.
    let netns = Netns::new().unwrap();
    netns.unreachable_route("127.77.0.0/16").unwrap();
    let prober = netns.enter(Prober::new).unwrap();
    let start = Instant::now();
    let result = runtime().block_on(prober.probe("127.77.0.1:80", Duration::from_secs(5)));
    assert!(
        matches!(result, Err(ProbeError::Unreachable(_))),
        "{result:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
#[cfg(target_os = "linux")] // needs a namespace's port range (sysctl) and iptables
fn out_of_local_ports_is_exhausted_and_the_prober_waits_for_ports() {
    if !require("local port exhaustion", &["ip", "iptables", "sysctl"]) {
        return;
    }
    // Two local ports in this namespace, both held by probes to a dropping target.
    let netns = Netns::new().unwrap();
    // The listener first: binding port 0 also takes a port from the range.
    let (server, prober) = netns
        .enter(|| {
            (
                listener("127.0.0.1:0"),
                Prober::builder().raw(false).build(),
            )
        })
        .unwrap();
    netns
        .exec(
            "sysctl",
            &["-w", "net.ipv4.ip_local_port_range=40000 40001"],
        )
        .unwrap();
    let addr = server.local_addr().unwrap();
    netns.drop_tcp_port(addr.port()).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let holders: Vec<_> = (0..2)
            .map(|_| {
                let prober = prober.clone();
                tokio::spawn(async move { prober.probe_addr(addr, Duration::from_secs(1)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;

        // No port until the holders time out at 1 s: this one's own timeout passes first.
        let start = Instant::now();
        let result = prober.probe_addr(addr, Duration::from_millis(300)).await;
        let elapsed = start.elapsed();
        match &result {
            Err(ProbeError::Exhausted(err)) => {
                assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{err}")
            }
            other => panic!("expected Exhausted, got {other:?}"),
        }
        assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(500));

        // This one waits for a port instead of failing: it starts when a holder times
        // out (~1 s), and then times out itself, against the target.
        let start = Instant::now();
        let result = prober.probe_addr(addr, Duration::from_millis(1500)).await;
        assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
        assert!(start.elapsed() >= Duration::from_millis(1500));
        for holder in holders {
            assert!(matches!(holder.await.unwrap(), Err(ProbeError::TimedOut)));
        }
    });
}

#[test]
#[cfg(target_os = "linux")] // needs a namespace's port range (sysctl) and iptables
fn out_of_local_ports_toward_one_destination_stalls_only_that_destination() {
    if !require("local port exhaustion", &["ip", "iptables", "sysctl"]) {
        return;
    }
    // Two local ports in this namespace. A connect()'s port need only be unique for its
    // destination, so both may serve every destination at once.
    let netns = Netns::new().unwrap();
    let (dropping, live, prober) = netns
        .enter(|| {
            (
                listener("127.0.0.1:0"),
                listener("127.0.0.1:0"),
                Prober::builder().raw(false).build(),
            )
        })
        .unwrap();
    netns
        .exec(
            "sysctl",
            &["-w", "net.ipv4.ip_local_port_range=40000 40001"],
        )
        .unwrap();
    let (full, other) = (dropping.local_addr().unwrap(), live.local_addr().unwrap());
    netns.drop_tcp_port(full.port()).unwrap();
    let rt = runtime();
    rt.block_on(async {
        // Both ports are taken toward `full` for a second, and one more probe of it waits
        // for one of them.
        let probe = |addr, timeout| {
            let prober = prober.clone();
            tokio::spawn(async move { prober.probe_addr(addr, timeout).await })
        };
        let holders: Vec<_> = (0..2)
            .map(|_| probe(full, Duration::from_secs(1)))
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stalled = probe(full, Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(50)).await;

        // The other destination has both ports free: its probe goes out at once.
        probe_support::the_other_destination_goes_on(&prober, other, holders, stalled).await;
    });
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn in_flight_limits_hold_probes_back_without_spending_their_timeouts() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    // Dropped SYNs keep each probe in flight for its whole timeout, so the limits show
    // as waves: and each probe's timeout runs from its own SYN, so the waiting ones
    // still get their full timeout.
    let netns = Netns::new().unwrap();
    let (server, global, per_destination) = netns
        .enter(|| {
            (
                listener("127.0.0.1:0"),
                probe_support::builder().max_in_flight(2).build(),
                probe_support::builder()
                    .max_in_flight_per_destination(1)
                    .build(),
            )
        })
        .unwrap();
    let addr = server.local_addr().unwrap();
    netns.drop_tcp_port(addr.port()).unwrap();
    let timeout = Duration::from_millis(300);
    let rt = runtime();
    for (prober, probes, waves) in [(&global, 4, 2), (&per_destination, 3, 3)] {
        let start = Instant::now();
        let timed_out = rt.block_on(async {
            let mut stream = prober.probe_many(vec![addr; probes], timeout);
            let mut n = 0;
            while let Some((_, result)) = stream.next().await {
                assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
                n += 1;
            }
            n
        });
        let elapsed = start.elapsed();
        assert_eq!(timed_out, probes);
        assert!(elapsed >= timeout * waves, "{elapsed:?} for {waves} waves");
        assert!(
            elapsed < timeout * waves + Duration::from_millis(250),
            "{elapsed:?}"
        );
    }
}
