//! No descriptor leaks after 100k mixed probes: answered, refused, timed out, and
//! abandoned by their callers.
//!
//! A file of its own (its own process) because it counts the process's open descriptors.
#![cfg(target_os = "linux")] // needs iptables to drop SYNs, and /proc/self/fd

use std::net::TcpListener;
use std::time::Duration;

#[allow(dead_code)]
mod probe_support;

use connhealth::ProbeError;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn no_descriptor_leaks_after_100k_mixed_probes() {
    if !connhealth_testkit::require("probes that time out", &["ip", "iptables"]) {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Inside a namespace of our own: listeners, a closed port, and a port whose SYNs are
    // dropped. The prober is built there, so its sockets are too.
    let netns = connhealth_testkit::Netns::new().unwrap();
    let before = open_fds();
    let (servers, closed, dropped, prober) = netns
        .enter(|| {
            let servers: Vec<_> = (0..4)
                .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            let closed = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let dropped = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            (servers, closed, dropped, probe_support::prober())
        })
        .unwrap();
    netns.drop_tcp_port(dropped.port()).unwrap();
    let open: Vec<_> = servers.iter().map(|s| s.local_addr().unwrap()).collect();

    let (mut up, mut refused, mut timed_out) = (0, 0, 0);
    rt.block_on(async {
        for round in 0..10 {
            // Answered and refused.
            let targets = (0..9_000).map(|i| if i % 3 == 0 { closed } else { open[i % 4] });
            let mut stream = prober.probe_many(targets, Duration::from_secs(5));
            while let Some((addr, result)) = stream.next().await {
                match result {
                    Ok(_) if addr != closed => up += 1,
                    Err(ProbeError::Refused) if addr == closed => refused += 1,
                    other => panic!("{addr}: {other:?}"),
                }
            }
            // Dropped SYNs: the deadline closes the socket.
            let mut stream = prober.probe_many(vec![dropped; 100], Duration::from_millis(20));
            while let Some((_, result)) = stream.next().await {
                if matches!(result, Err(ProbeError::TimedOut)) {
                    timed_out += 1;
                }
            }
            // Abandoned: a stream dropped after a few results, and futures dropped
            // while their probes are in flight.
            let mut stream = prober.probe_many(vec![open[round % 4]; 400], Duration::from_secs(5));
            for _ in 0..10 {
                stream.next().await.unwrap().1.unwrap();
            }
            drop(stream);
            for _ in 0..100 {
                let probe = prober.probe_addr(open[1], Duration::from_secs(5));
                let _ = tokio::time::timeout(Duration::from_micros(1), probe).await;
            }
        }
    });
    assert_eq!((up, refused), (60_000, 30_000));
    assert!(
        up > 0 && refused > 0 && timed_out > 0,
        "{up} {refused} {timed_out}"
    );

    assert_eq!(timed_out, 1_000);

    // While the prober lives, its engine holds an epoll instance and an eventfd (and the
    // raw engine its four raw sockets: TCP and ICMP, IPv4 and IPv6), and the test its
    // listeners.
    std::thread::sleep(Duration::from_millis(100));
    let raw_sockets = match prober.engine() {
        Some(connhealth::ProbeEngine::Raw) => 4,
        _ => 0,
    };
    let held = 2 + raw_sockets + servers.len();
    assert!(
        open_fds() <= before + held,
        "{} open with the prober alive, {before} before",
        open_fds()
    );
    drop(prober);
    drop(servers);
    assert_eq!(open_fds(), before, "descriptors leaked");
}
