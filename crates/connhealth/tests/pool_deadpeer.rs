//! The pool with a `DeadPeer` policy: a peer that vanishes without a FIN or RST takes its
//! idle connections out of the pool within the policy's bound, with no `get()`.
#![cfg(target_os = "linux")] // needs a network namespace and iptables DROP

use std::net::TcpListener;
use std::time::{Duration, Instant};

use connhealth::pool::{Pool, TcpManager};
use connhealth::{DeadPeer, DeadPeerSettings};
use connhealth_testkit::{require, Netns};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_connection_carries_the_policy() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let policy = DeadPeer::detect_within(Duration::from_secs(10));
    let manager = TcpManager::new(listener.local_addr().unwrap().to_string()).dead_peer(policy);
    runtime().block_on(async {
        let pool = Pool::builder().max_size(2).build(manager).await.unwrap();
        let conn = pool.get().await.unwrap();
        assert_eq!(
            DeadPeerSettings::read(&*conn).unwrap(),
            Some(policy.settings().unwrap())
        );
    });
}

#[test]
fn a_bound_the_platform_cannot_honour_fails_the_connect_with_the_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let manager = TcpManager::new(listener.local_addr().unwrap().to_string())
        .dead_peer(DeadPeer::detect_within(Duration::from_millis(100)));
    runtime().block_on(async {
        let pool = Pool::builder()
            .max_size(1)
            .get_timeout(Duration::from_secs(2))
            .build(manager)
            .await
            .unwrap();
        let err = pool.get().await.unwrap_err().to_string();
        assert!(err.contains("smallest bound"), "{err}");
    });
}

#[test]
fn idle_connections_to_a_vanished_peer_leave_the_pool_within_the_bound() {
    if !require("a pool whose peer vanishes", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let policy = DeadPeer::detect_within(Duration::from_secs(3));
    // The runtime runs on a thread inside the namespace, so the pool's sockets live there.
    let (listener, port) = netns
        .enter(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            (listener, port)
        })
        .unwrap();
    netns
        .enter(|| {
            runtime().block_on(async {
                let manager = TcpManager::new(format!("127.0.0.1:{port}")).dead_peer(policy);
                let pool = Pool::builder()
                    .max_size(4)
                    .min_idle(2)
                    .evict_interval(Duration::from_secs(3600))
                    .build(manager)
                    .await
                    .unwrap();
                assert_eq!(pool.stats().idle(), 2);
                netns.drop_tcp_port(port).unwrap();
                let vanished = Instant::now();
                // No get(): the kernel fails the connections (ETIMEDOUT), the watcher sees
                // the error event, and the pool drops them.
                while pool.stats().peer_closed() < 2 {
                    assert!(
                        vanished.elapsed() < policy.bound(),
                        "after {:?}: {:?}",
                        vanished.elapsed(),
                        pool.stats()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert_eq!(pool.stats().idle(), 0, "{:?}", pool.stats());
            })
        })
        .unwrap();
    drop(listener);
}
