//! The `hold` check against a real redis-server: a crash (SIGKILL) is seen within 50 ms,
//! and a server that only closes idle connections stays up.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use connhealth_testkit::{in_ci, wait_until, Redis};
use connhealth_watch::config::{Check, CheckKind, CheckPlan};
use connhealth_watch::state::Health;
use support::{became, plan, start, status, target, wait_health};

fn redis(args: &[&str]) -> Option<Redis> {
    match Redis::start(args) {
        Ok(redis) => Some(redis),
        Err(err) if in_ci() => panic!("redis-server is needed under CI: {err}"),
        Err(err) => {
            eprintln!("skipping: no redis-server: {err}");
            None
        }
    }
}

/// A field of redis' `INFO`, read on a connection of its own.
fn info(addr: SocketAddr, field: &str) -> u64 {
    let mut conn = TcpStream::connect(addr).expect("connect to redis");
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    conn.write_all(b"INFO\r\nQUIT\r\n").unwrap();
    let mut reply = String::new();
    let _ = conn.read_to_string(&mut reply);
    reply
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO: {reply}"))
}

fn schedule(kind: CheckKind) -> CheckPlan {
    CheckPlan {
        check: Check::from(kind),
        interval: Duration::from_secs(1),
        fast_interval: Duration::from_millis(200),
        down_interval: Duration::from_millis(500),
        timeout: Duration::from_millis(500),
        rise: 1,
        fall: 3,
        jitter: 0.0,
    }
}

#[test]
fn a_killed_server_is_down_within_50_ms_and_up_again_after_its_restart() {
    let Some(mut redis) = redis(&[]) else { return };
    let addr = redis.addr();
    let daemon = start(plan(vec![
        target("held", addr, schedule(CheckKind::Hold)),
        target("probed", addr, schedule(CheckKind::HalfOpen)),
    ]));
    wait_health(&daemon, "held", Health::Up, Duration::from_secs(5)).expect("held is up");
    wait_health(&daemon, "probed", Health::Up, Duration::from_secs(5)).expect("probed is up");
    // The held connection is redis' only client besides this INFO one.
    wait_until(Duration::from_secs(3), || {
        info(addr, "connected_clients") >= 2
    })
    .expect("the daemon holds a connection to redis");

    let killed = SystemTime::now();
    redis.kill().expect("kill redis");
    wait_health(&daemon, "held", Health::Down, Duration::from_secs(3)).expect("held goes down");
    let took = became(&daemon, "held", Health::Down)
        .expect("a transition to down")
        .duration_since(killed)
        .unwrap_or_default();
    assert!(
        took <= Duration::from_millis(50),
        "held went down {took:?} after the kill"
    );
    let held = status(&daemon, "held");
    let why = &held.transitions.back().expect("transition").why;
    assert!(why.contains("held connection closed"), "why: {why}");
    // The same schedule without a held connection needs interval x fall at worst: it is
    // still up at this moment.
    assert_eq!(
        status(&daemon, "probed").health,
        Health::Up,
        "half-open saw it already"
    );

    redis.restart().expect("restart redis");
    wait_health(&daemon, "held", Health::Up, Duration::from_secs(3)).expect("held is up again");
    wait_until(Duration::from_secs(3), || {
        info(addr, "connected_clients") >= 2
    })
    .expect("the daemon holds a connection to the restarted redis");
    daemon.stop();
}

#[test]
fn a_server_that_closes_idle_connections_stays_up_and_is_held_again() {
    // redis closes a client idle for more than 1 s, counted in whole seconds: after 2 s.
    let Some(redis) = redis(&["--timeout", "1"]) else {
        return;
    };
    let addr = redis.addr();
    let daemon = start(plan(vec![target("held", addr, schedule(CheckKind::Hold))]));
    wait_health(&daemon, "held", Health::Up, Duration::from_secs(5)).expect("held is up");
    let connections = info(addr, "total_connections_received");
    std::thread::sleep(Duration::from_millis(5500));
    let held = status(&daemon, "held");
    assert_eq!(held.health, Health::Up);
    assert_eq!(
        held.state_changes, 1,
        "only unknown -> up: {:?}",
        held.transitions
    );
    // Each idle cut was followed by a new held connection (the half-open probes are
    // never accepted, and so never counted by redis). One more is this INFO's own.
    let reconnects = info(addr, "total_connections_received") - connections - 1;
    assert!(reconnects >= 2, "{reconnects} reconnections in 5.5 s");
    daemon.stop();
}

#[test]
fn a_server_that_vanishes_silently_is_down_within_the_probes_bound() {
    use connhealth_testkit::{require, Netns};
    use std::net::TcpListener;
    if !require(
        "a held connection whose server vanishes",
        &["ip", "iptables"],
    ) {
        return;
    }
    let netns = Netns::new().unwrap();
    let check = CheckPlan {
        timeout: Duration::from_millis(300),
        interval: Duration::from_millis(500),
        fast_interval: Duration::from_millis(200),
        ..schedule(CheckKind::Hold)
    };
    let (listener, daemon) = netns
        .enter(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            (
                listener,
                start(plan(vec![target("held", addr, check.clone())])),
            )
        })
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    // The server accepts and holds: the held connection is established and idle. The
    // listener stays open (the probes need it), and comes back with the connection.
    let held = std::thread::spawn(move || {
        let accepted = listener.accept().map(|(conn, _)| conn);
        (listener, accepted)
    });
    wait_health(&daemon, "held", Health::Up, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("never up: {:?}", status(&daemon, "held")));
    let (_listener, accepted) = held.join().unwrap();
    let _server_side = accepted.expect("the daemon connected");

    // No FIN, no RST, no ICMP: the held connection says nothing; the probes time out.
    netns.drop_tcp_port(port).unwrap();
    let vanished = SystemTime::now();
    wait_health(&daemon, "held", Health::Down, Duration::from_secs(5)).expect("down");
    let took = became(&daemon, "held", Health::Down)
        .unwrap()
        .duration_since(vanished)
        .unwrap_or_default();
    // The next probe within an interval, then fall - 1 more at fast_interval, each
    // failing at its timeout.
    let bound =
        check.interval + check.fast_interval * (check.fall - 1) + check.timeout * check.fall;
    assert!(
        took <= bound + Duration::from_millis(100),
        "down after {took:?}, bound {bound:?}"
    );
    assert!(
        status(&daemon, "held").checks[connhealth_watch::checks::Outcome::Timeout.index()] >= 3
    );
    daemon.stop();
}
