//! The in-flight limits (`max_in_flight`, `max_in_flight_per_destination`) under waits,
//! timeouts, cancellation and failed connects: a place given back always reaches the
//! next waiting probe, an abandoned probe or a failed connect gives its place back at
//! once, and a probe that never left is the prober's error, not a verdict on its target.
//! A target whose SYNs must be dropped lives in a namespace of the test's own, where
//! iptables drops them.

mod probe_support;

use std::net::TcpListener;
#[cfg(target_os = "linux")]
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

#[cfg(target_os = "linux")]
use connhealth::ProbeError;
#[cfg(target_os = "linux")]
use connhealth_testkit::require;
#[cfg(target_os = "linux")]
use probe_support::dropping_and_live as setup;
use probe_support::runtime;

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn a_place_given_back_to_a_dropped_waiter_reaches_the_next_one() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let (netns, prober, addr, _, _listeners) =
        setup(probe_support::builder().max_in_flight_per_destination(1));
    let rt = runtime();
    // The first probe holds the destination's one place until it times out.
    let first = rt.spawn({
        let prober = prober.clone();
        async move { prober.probe_addr(addr, Duration::from_millis(300)).await }
    });
    std::thread::sleep(Duration::from_millis(50));
    // The second waits behind it, and is dropped while it waits.
    rt.block_on(async {
        let second = tokio::time::timeout(
            Duration::from_millis(50),
            prober.probe_addr(addr, Duration::from_secs(10)),
        );
        assert!(second.await.is_err());
    });
    // The third waits behind both.
    let third = rt.spawn({
        let prober = prober.clone();
        async move {
            let start = Instant::now();
            (
                prober.probe_addr(addr, Duration::from_secs(3)).await,
                start.elapsed(),
            )
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    // The target answers again; the first probe's SYNs are lost already.
    netns.restore_tcp_port(addr.port()).unwrap();
    assert!(matches!(
        rt.block_on(first).unwrap(),
        Err(ProbeError::TimedOut)
    ));
    // The place the first gives back goes to the dropped second, and on to the third.
    let (third, took) = rt.block_on(third).unwrap();
    assert!(third.is_ok(), "{third:?} after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn probes_waiting_behind_probes_that_time_out_together_still_run() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let (_netns, prober, addr, _, _listeners) =
        setup(probe_support::builder().max_in_flight_per_destination(1));
    let timeout = Duration::from_millis(200);
    let (first, second, many) = runtime().block_on(async {
        // The second probe waits behind the first, and both time out in the same turn
        // of the engine: the stream's probe, parked behind them, must still be sent.
        let many = async {
            let mut stream = prober.probe_many(vec![addr], timeout);
            tokio::time::timeout(Duration::from_secs(3), stream.next()).await
        };
        tokio::join!(
            prober.probe_addr(addr, timeout),
            prober.probe_addr(addr, timeout),
            many
        )
    });
    assert!(matches!(first, Err(ProbeError::TimedOut)), "{first:?}");
    assert!(second.is_err(), "{second:?}");
    let (_, result) = many.expect("the stream's probe was never sent").unwrap();
    assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
}

#[test]
#[cfg(target_os = "linux")] // needs a namespace's own routing table
fn a_connect_that_fails_at_once_gives_its_place_back() {
    if !require("probes without a route", &["ip"]) {
        return;
    }
    // No route to the target: each connect fails inside the call, with no socket left in
    // flight. One place per destination: a failed start that kept its place would leave
    // every later probe there parked behind it until its timeout.
    let netns = connhealth_testkit::Netns::new().unwrap();
    netns.unreachable_route("127.77.0.0/16").unwrap();
    let prober = netns
        .enter(|| {
            probe_support::builder()
                .max_in_flight_per_destination(1)
                .build()
        })
        .unwrap();
    let addr = "127.77.0.1:80".parse().unwrap();
    let start = Instant::now();
    let results = runtime().block_on(async {
        let mut stream = prober.probe_many(vec![addr; 5], Duration::from_secs(2));
        let mut results = Vec::new();
        // A probe parked behind a place nobody holds would wait for ever: its timeout
        // runs from a SYN that is never sent.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some((_, result)) = stream.next().await {
                results.push(result);
            }
        })
        .await;
        results
    });
    assert_eq!(results.len(), 5, "{results:?}");
    for result in &results {
        assert!(
            matches!(result, Err(ProbeError::Unreachable(_))),
            "{result:?}"
        );
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn an_abandoned_probe_gives_its_place_back_at_once() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let (_netns, prober, dead, up, _listeners) = setup(probe_support::builder().max_in_flight(1));
    let rt = runtime();
    // A caller gives up on a long probe after 100 ms: its socket must not keep the
    // prober's one place for the minute it asked for.
    rt.block_on(async {
        let long = prober.probe_addr(dead, Duration::from_secs(60));
        assert!(tokio::time::timeout(Duration::from_millis(100), long)
            .await
            .is_err());
    });
    let result = rt.block_on(prober.probe_addr(up, Duration::from_millis(500)));
    assert!(result.is_ok(), "{result:?}");
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn a_dropped_stream_gives_its_places_back_at_once() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let (_netns, prober, dead, up, _listeners) = setup(probe_support::builder().max_in_flight(2));
    let rt = runtime();
    rt.block_on(async {
        let mut stream = prober.probe_many(vec![dead; 2], Duration::from_secs(60));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), stream.next())
                .await
                .is_err()
        );
    });
    let result = rt.block_on(prober.probe_addr(up, Duration::from_millis(500)));
    assert!(result.is_ok(), "{result:?}");
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn a_probe_that_never_left_is_the_probers_error_not_the_targets() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let (_netns, prober, dead, up, _listeners) = setup(probe_support::builder().max_in_flight(1));
    let rt = runtime();
    let holder = rt.spawn({
        let prober = prober.clone();
        async move { prober.probe_addr(dead, Duration::from_secs(1)).await }
    });
    std::thread::sleep(Duration::from_millis(50));
    // The live target's probe waits for the one place, and its timeout passes first.
    let start = Instant::now();
    let result = rt.block_on(prober.probe_addr(up, Duration::from_millis(300)));
    let took = start.elapsed();
    match &result {
        Err(err @ ProbeError::Exhausted(why)) => {
            assert!(!err.is_down(), "a target never probed is not down");
            assert!(why.to_string().contains("max_in_flight"), "{why}");
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(matches!(
        rt.block_on(holder).unwrap(),
        Err(ProbeError::TimedOut)
    ));
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn an_ipv4_mapped_address_is_the_same_destination_as_its_ipv4_address() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let (_netns, prober, dead, _, _listeners) =
        setup(probe_support::builder().max_in_flight_per_destination(1));
    // The same listener written as an IPv6 socket would reach it: ::ffff:127.0.0.1.
    let IpAddr::V4(ip) = dead.ip() else {
        unreachable!("the setup's listeners are on 127.0.0.1")
    };
    let mapped = SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), dead.port());
    let rt = runtime();
    // The IPv4 form holds the destination's one place until it times out.
    let holder = rt.spawn({
        let prober = prober.clone();
        async move { prober.probe_addr(dead, Duration::from_secs(1)).await }
    });
    std::thread::sleep(Duration::from_millis(50));
    // The mapped form waits behind it: one listener, one SYN backlog, one limit.
    let result = rt.block_on(prober.probe_addr(mapped, Duration::from_millis(300)));
    match &result {
        Err(ProbeError::Exhausted(why)) => {
            assert!(
                why.to_string().contains("max_in_flight_per_destination"),
                "{why}"
            )
        }
        other => panic!("{mapped} was sent beside {dead}: expected Exhausted, got {other:?}"),
    }
    assert!(matches!(
        rt.block_on(holder).unwrap(),
        Err(ProbeError::TimedOut)
    ));
}

#[test]
fn a_limit_beyond_any_descriptor_count_still_streams_an_endless_list() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let prober = probe_support::builder().max_in_flight(usize::MAX).build();
    let streamed = runtime().block_on(async {
        // Endless, but it says so if the stream tries to read all of it.
        let mut pulled = 0usize;
        let endless = std::iter::repeat_with(move || {
            pulled += 1;
            assert!(pulled < 1 << 20, "the stream is draining an endless list");
            addr
        });
        let mut stream = prober.probe_many(endless, Duration::from_secs(5));
        let first = async {
            for _ in 0..100 {
                let (_, result) = stream.next().await.unwrap();
                assert!(result.is_ok(), "{result:?}");
            }
        };
        tokio::time::timeout(Duration::from_secs(10), first).await
    });
    assert!(
        streamed.is_ok(),
        "the stream never answered: it was draining the list"
    );
}
