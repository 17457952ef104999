//! The raw engine (`Mode::Raw`, Linux) as a prober: its results table, its limits and
//! source ports, its retransmission, IPv6, and the socket engine `Mode::HalfOpen` falls
//! back to without `CAP_NET_RAW`. What it leaves on its targets is in
//! `probe_raw_resets.rs`; the replies it must not believe in `probe_raw_forged.rs`.
//!
//! Every test runs in a network namespace of its own, with its prober built inside it:
//! the engine thread, and so its raw sockets, live in the namespace of the thread that
//! built the prober.

#![cfg(target_os = "linux")]

mod probe_support;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use connhealth::{Mode, ProbeEngine, ProbeError, Prober};
use connhealth_testkit::{require, wait_until, Netns};
use probe_support::raw::{
    all_up, closed_port, firewall, half_open, listener, raw_prober, PAST_DELAYED_ACK,
};
use probe_support::{accepted, runtime};

#[test]
fn listening_port_is_up_and_the_server_sees_nothing() {
    let Some((netns, prober)) = raw_prober("raw probes", Prober::builder()) else {
        return;
    };
    let server = listener(&netns, "127.0.0.1:0");
    let port = server.local_addr().unwrap().port();
    let timeout = Duration::from_secs(2);
    let rtt = runtime()
        .block_on(prober.probe_addr(server.local_addr().unwrap(), timeout))
        .unwrap();
    assert!(rtt < timeout, "{rtt:?}");
    thread::sleep(PAST_DELAYED_ACK);
    assert!(accepted(&server).is_empty(), "a raw probe was accepted");
    assert_eq!(
        half_open(&netns, port),
        0,
        "a raw probe left a half-open entry"
    );

    // As root, the default mode runs the raw engine too, and Mode::Raw ignores raw(false).
    let (default, raw_anyway) = netns
        .enter(|| {
            let raw_anyway = Prober::builder().raw(false).mode(Mode::Raw).build();
            (Prober::new().engine(), raw_anyway.engine())
        })
        .unwrap();
    assert_eq!(default, Some(ProbeEngine::Raw));
    assert_eq!(raw_anyway, Some(ProbeEngine::Raw));
}

#[test]
fn closed_port_is_refused_at_once() {
    let Some((netns, prober)) = raw_prober("raw probes", Prober::builder()) else {
        return;
    };
    let addr = closed_port(&netns, "127.0.0.1");
    let start = Instant::now();
    let result = runtime().block_on(prober.probe_addr(addr, Duration::from_secs(5)));
    assert!(matches!(result, Err(ProbeError::Refused)), "{result:?}");
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn dropped_syns_time_out_at_the_timeout_not_before() {
    let Some((netns, prober)) = raw_prober("raw probes to a dropping target", Prober::builder())
    else {
        return;
    };
    let server = listener(&netns, "127.0.0.1:0");
    let addr = server.local_addr().unwrap();
    netns.drop_tcp_port(addr.port()).unwrap();
    let rt = runtime();
    // 1.2 s spans the retransmission at 1 s: the second SYN, dropped too, ends nothing.
    for timeout in [Duration::from_millis(300), Duration::from_millis(1200)] {
        let start = Instant::now();
        let result = rt.block_on(prober.probe_addr(addr, timeout));
        let elapsed = start.elapsed();
        assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
        assert!(elapsed >= timeout, "{elapsed:?} < {timeout:?}");
        assert!(
            elapsed < timeout + Duration::from_millis(250),
            "{elapsed:?} for {timeout:?}"
        );
    }
}

#[test]
fn no_route_and_icmp_unreachables_are_unreachable() {
    let Some((netns, prober)) = raw_prober("raw probes to unreachable targets", Prober::builder())
    else {
        return;
    };
    let rt = runtime();
    // No route: no SYN can leave, and the probe fails at once.
    netns.unreachable_route("127.77.0.0/16").unwrap();
    let start = Instant::now();
    let result = rt.block_on(prober.probe("127.77.0.1:80", Duration::from_secs(5)));
    assert!(
        matches!(result, Err(ProbeError::Unreachable(_))),
        "{result:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(500));

    // The SYN leaves and an ICMP error comes back, quoting it; what Linux's own connect
    // would report for each, and a firewall's forged RST (`tcp-reset`) is a refusal.
    // (`None`: refused; `Some(errno)`: unreachable, with that errno.)
    let cases = [
        ("icmp-host-unreachable", Some(libc::EHOSTUNREACH)),
        ("icmp-net-unreachable", Some(libc::ENETUNREACH)),
        ("icmp-port-unreachable", None),
        ("tcp-reset", None),
    ];
    for (reject_with, expected) in cases {
        // A listener, so that only the firewall's answer can end the probe this way.
        let server = listener(&netns, "127.0.0.1:0");
        let port = server.local_addr().unwrap().port().to_string();
        firewall(
            &netns,
            false,
            &[
                "-I",
                "INPUT",
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "REJECT",
                "--reject-with",
                reject_with,
            ],
        );
        let start = Instant::now();
        let result =
            rt.block_on(prober.probe_addr(server.local_addr().unwrap(), Duration::from_secs(5)));
        let elapsed = start.elapsed();
        match (&result, expected) {
            (Err(ProbeError::Refused), None) => {}
            (Err(ProbeError::Unreachable(err)), Some(errno))
                if err.raw_os_error() == Some(errno) => {}
            other => panic!("--reject-with {reject_with}: {other:?}"),
        }
        assert!(
            elapsed < Duration::from_millis(500),
            "{reject_with}: {elapsed:?}"
        );
    }
}

#[test]
fn the_unspecified_address_is_this_host_as_connect_has_it() {
    // connect(2) to 0.0.0.0 or :: reaches this host (a BSD-ism Linux keeps: the kernel
    // sends to the loopback), and the answer comes from the loopback address. The socket
    // engine reports what connect() says; the raw engine must report the same.
    let Some((netns, prober)) = raw_prober("raw probes", Prober::builder()) else {
        return;
    };
    let sockets = netns
        .enter(|| Prober::builder().raw(false).build())
        .unwrap();
    let rt = runtime();
    for any in ["0.0.0.0", "[::]"] {
        let server = listener(&netns, &format!("{any}:0"));
        let open = format!("{any}:{}", server.local_addr().unwrap().port());
        let closed = closed_port(&netns, any);
        for (engine, prober) in [("raw", &prober), ("sockets", &sockets)] {
            let result = rt.block_on(prober.probe(&open, Duration::from_secs(2)));
            assert!(result.is_ok(), "{engine}, {open}: {result:?}");
            let start = Instant::now();
            let result = rt.block_on(prober.probe_addr(closed, Duration::from_secs(2)));
            assert!(
                matches!(result, Err(ProbeError::Refused)),
                "{engine}, {closed}: {result:?}"
            );
            assert!(start.elapsed() < Duration::from_millis(500));
        }
        thread::sleep(PAST_DELAYED_ACK);
        assert!(accepted(&server).is_empty(), "{any}");
    }
}

#[test]
fn a_host_name_is_resolved_and_its_addresses_probed() {
    let Some((netns, prober)) = raw_prober("raw probes of a name", Prober::builder()) else {
        return;
    };
    // "localhost" may resolve to ::1 first; the server listens on 127.0.0.1 only, so the
    // engine must read the RST from ::1 and try the next address.
    let server = listener(&netns, "127.0.0.1:0");
    let target = format!("localhost:{}", server.local_addr().unwrap().port());
    let result = runtime().block_on(prober.probe(&target, Duration::from_secs(2)));
    assert!(result.is_ok(), "{result:?}");
    thread::sleep(PAST_DELAYED_ACK);
    assert!(accepted(&server).is_empty());
}

#[test]
fn per_destination_limits_hold_probes_back() {
    let builder = Prober::builder().max_in_flight_per_destination(2);
    let Some((netns, prober)) = raw_prober("raw probes to a dropping target", builder) else {
        return;
    };
    let server = listener(&netns, "127.0.0.1:0");
    let addr = server.local_addr().unwrap();
    netns.drop_tcp_port(addr.port()).unwrap();
    let rt = runtime();

    // probe_many: each probe's timeout runs from its own SYN, so 4 probes of 300 ms are
    // two waves of two, and each one times out against the target.
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let timed_out = rt.block_on(async {
        let mut stream = prober.probe_many(vec![addr; 4], timeout);
        let mut n = 0;
        while let Some((_, result)) = stream.next().await {
            assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
            n += 1;
        }
        n
    });
    let elapsed = start.elapsed();
    assert_eq!(timed_out, 4);
    assert!(elapsed >= timeout * 2, "{elapsed:?} for two waves");
    assert!(
        elapsed < timeout * 2 + Duration::from_millis(250),
        "{elapsed:?}"
    );

    // probe_addr: the timeout bounds the whole call. Two probes hold both places for a
    // second; a third whose timeout passes while it waits was never sent: Exhausted.
    rt.block_on(async {
        let holders: Vec<_> = (0..2)
            .map(|_| {
                let prober = prober.clone();
                tokio::spawn(async move { prober.probe_addr(addr, Duration::from_secs(1)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = Instant::now();
        let result = prober.probe_addr(addr, Duration::from_millis(300)).await;
        let elapsed = start.elapsed();
        assert!(
            matches!(result, Err(ProbeError::Exhausted(_))),
            "{result:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(550),
            "{elapsed:?}"
        );
        for holder in holders {
            let result = holder.await.unwrap();
            assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
        }
    });
}

#[test]
fn a_lost_syn_is_sent_again_at_one_second_and_its_answer_counts() {
    let Some((netns, prober)) = raw_prober("raw probes to a dropping target", Prober::builder())
    else {
        return;
    };
    let server = listener(&netns, "127.0.0.1:0");
    let addr = server.local_addr().unwrap();
    netns.drop_tcp_port(addr.port()).unwrap();
    let rt = runtime();
    let probe = {
        let prober = prober.clone();
        rt.spawn(async move { prober.probe_addr(addr, Duration::from_secs(3)).await })
    };
    // The first SYN is lost; the retransmission at 1 s finds the listener.
    thread::sleep(Duration::from_millis(300));
    netns.restore_tcp_port(addr.port()).unwrap();
    let rtt = rt.block_on(probe).unwrap().unwrap();
    // As a connect() reports it: from the first SYN.
    assert!(
        rtt >= Duration::from_secs(1) && rtt < Duration::from_secs(2),
        "{rtt:?}"
    );
    thread::sleep(PAST_DELAYED_ACK);
    assert!(accepted(&server).is_empty());
    assert_eq!(half_open(&netns, addr.port()), 0);
}

#[test]
fn out_of_source_ports_toward_one_destination_stalls_only_that_destination() {
    // Two source ports: a port need only be unique among the probes in flight to one
    // destination, so both serve every destination at once.
    let builder = Prober::builder().raw_source_ports(61000..=61001);
    let Some((netns, prober)) = raw_prober("raw probes to a dropping target", builder) else {
        return;
    };
    let (dropping, live) = (
        listener(&netns, "127.0.0.1:0"),
        listener(&netns, "127.0.0.1:0"),
    );
    let (full, other) = (dropping.local_addr().unwrap(), live.local_addr().unwrap());
    netns.drop_tcp_port(full.port()).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let probe = |addr, timeout| {
            let prober = prober.clone();
            tokio::spawn(async move { prober.probe_addr(addr, timeout).await })
        };
        // Both ports are taken toward `full` for a second.
        let holders: Vec<_> = (0..2)
            .map(|_| probe(full, Duration::from_secs(1)))
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;

        // No port until the holders time out: this one's own timeout passes first.
        let start = Instant::now();
        let result = prober.probe_addr(full, Duration::from_millis(300)).await;
        let elapsed = start.elapsed();
        match &result {
            Err(ProbeError::Exhausted(err)) => {
                assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{err}")
            }
            other => panic!("expected Exhausted, got {other:?}"),
        }
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(550),
            "{elapsed:?}"
        );
        // This one waits for a port, takes one given back at ~1 s, and then times out
        // against its target.
        let stalled = probe(full, Duration::from_millis(1500));
        tokio::time::sleep(Duration::from_millis(50)).await;

        // The other destination has both ports free: its probe goes out at once.
        probe_support::the_other_destination_goes_on(&prober, other, holders, stalled).await;
    });
}

#[test]
fn a_dropped_probe_gives_its_source_port_back_at_once() {
    // One source port: a probe whose future is dropped must give it back, or the next
    // probe of the same destination finds none.
    let builder = Prober::builder().raw_source_ports(61000..=61000);
    let Some((netns, prober)) = raw_prober("raw probes to a dropping target", builder) else {
        return;
    };
    let server = listener(&netns, "127.0.0.1:0");
    let addr = server.local_addr().unwrap();
    netns.drop_tcp_port(addr.port()).unwrap();
    let rt = runtime();
    let abandoned = rt.block_on(async {
        let probe = prober.probe_addr(addr, Duration::from_secs(10));
        tokio::time::timeout(Duration::from_millis(100), probe).await
    });
    assert!(abandoned.is_err(), "{abandoned:?}");
    netns.restore_tcp_port(addr.port()).unwrap();
    let start = Instant::now();
    let result = rt.block_on(prober.probe_addr(addr, Duration::from_secs(2)));
    assert!(result.is_ok(), "{result:?}");
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn ipv6_listening_closed_unreachable_and_nothing_accepted() {
    let Some((netns, prober)) = raw_prober("raw IPv6 probes", Prober::builder()) else {
        return;
    };
    let rt = runtime();
    let servers: Vec<_> = (0..2).map(|_| listener(&netns, "[::1]:0")).collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
    let timeout = Duration::from_secs(2);

    let rtt = rt.block_on(prober.probe(&addrs[0].to_string(), timeout));
    assert!(rtt.as_ref().is_ok_and(|rtt| *rtt < timeout), "{rtt:?}");

    // An IPv4-mapped address is its IPv4 address, on the IPv4 wire.
    let v4 = listener(&netns, "127.0.0.1:0");
    let mapped = format!("[::ffff:127.0.0.1]:{}", v4.local_addr().unwrap().port());
    let result = rt.block_on(prober.probe(&mapped, timeout));
    assert!(result.is_ok(), "{mapped}: {result:?}");

    let closed = closed_port(&netns, "[::1]");
    let start = Instant::now();
    let result = rt.block_on(prober.probe_addr(closed, timeout));
    assert!(matches!(result, Err(ProbeError::Refused)), "{result:?}");
    assert!(start.elapsed() < Duration::from_millis(500));

    let probes = 1_000;
    let ok = all_up(&prober, (0..probes).map(|i| addrs[i % 2]).collect());
    assert_eq!(ok, probes);
    let cleared = wait_until(Duration::from_secs(1), || {
        addrs.iter().all(|addr| half_open(&netns, addr.port()) == 0)
    });
    assert!(cleared.is_some(), "half-open entries left on [::1]");
    thread::sleep(PAST_DELAYED_ACK);
    let accepted: usize = servers.iter().map(|s| accepted(s).len()).sum();
    assert_eq!(accepted, 0, "raw IPv6 probes were accepted");

    // An ICMPv6 address unreachable, quoting the SYN.
    let rejecting = listener(&netns, "[::1]:0");
    let port = rejecting.local_addr().unwrap().port().to_string();
    firewall(
        &netns,
        true,
        &[
            "-I",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-j",
            "REJECT",
            "--reject-with",
            "icmp6-addr-unreachable",
        ],
    );
    let start = Instant::now();
    let result = rt.block_on(prober.probe_addr(rejecting.local_addr().unwrap(), timeout));
    assert!(
        matches!(&result, Err(ProbeError::Unreachable(e)) if e.raw_os_error() == Some(libc::EHOSTUNREACH)),
        "{result:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[test]
fn without_cap_net_raw_half_open_falls_back_to_sockets_and_raw_says_why() {
    if connhealth_testkit::inside_netns().is_some() {
        // The child, run as root without CAP_NET_RAW (bit 13) in any of its sets.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let effective = status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))
            .map(|caps| u64::from_str_radix(caps.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(effective & (1 << 13), 0, "the child still has CAP_NET_RAW");

        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let addr = server.local_addr().unwrap();
        let rt = runtime();
        let prober = Prober::new();
        assert_eq!(prober.engine(), Some(ProbeEngine::Sockets));
        let result = rt.block_on(prober.probe_addr(addr, Duration::from_secs(2)));
        assert!(result.is_ok(), "{result:?}");

        let raw = Prober::builder().mode(Mode::Raw).build();
        assert_eq!(raw.engine(), None);
        match rt.block_on(raw.probe_addr(addr, Duration::from_secs(2))) {
            Err(err @ ProbeError::Io(_)) => {
                let message = err.to_string();
                assert!(message.contains("CAP_NET_RAW"), "{message}");
            }
            other => panic!("Mode::Raw without CAP_NET_RAW: {other:?}"),
        }
        thread::sleep(PAST_DELAYED_ACK);
        assert!(accepted(&server).is_empty());
        return;
    }
    if !require("a prober without CAP_NET_RAW", &["ip", "setpriv"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    netns
        .rerun_test_inside_under(
            &["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw"],
            "without_cap_net_raw_half_open_falls_back_to_sockets_and_raw_says_why",
        )
        .unwrap();
}
