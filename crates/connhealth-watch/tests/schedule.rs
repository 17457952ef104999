//! The state machine's timing against real listeners: a flapping listener goes down and
//! up within the windows that `interval`, `fast_interval`, `down_interval`, `rise` and
//! `fall` allow; intervals do not drift with the checks' own time; a check that cannot
//! start is `exhausted` and late, never a failure; and half-open checks leave a listener
//! that never accepts with nothing in its queue.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime};

use connhealth_testkit::{require, Netns};
use connhealth_watch::checks::Outcome;
use connhealth_watch::config::{Check, CheckKind, CheckPlan, Pattern, SendExpectPlan};
use connhealth_watch::state::Health;
use support::{became, plan, start, start_limited, status, target, wait_health};

/// Scheduling slack on a loaded 2-core machine: a check may start this much after it was
/// due (the timer's millisecond, the probe's loopback round trip, a busy core).
const SLACK: Duration = Duration::from_millis(60);

/// `PING`, and a `+PONG` expected.
fn redis_ping() -> SendExpectPlan {
    SendExpectPlan {
        send: Some(b"PING\r\n".to_vec()),
        expect: Some(Pattern(regex::bytes::Regex::new(r"^\+PONG").unwrap())),
        quit: None,
    }
}

/// A `kind` check every `interval`, at 20 ms while unknown or changing, with no jitter.
fn quick(kind: CheckKind, interval: Duration) -> CheckPlan {
    CheckPlan {
        check: Check::from(kind),
        interval,
        fast_interval: Duration::from_millis(20),
        jitter: 0.0,
        ..CheckPlan::default()
    }
}

fn flapping_plan() -> CheckPlan {
    CheckPlan {
        check: Check::from(CheckKind::HalfOpen),
        interval: Duration::from_millis(300),
        fast_interval: Duration::from_millis(100),
        down_interval: Duration::from_millis(400),
        timeout: Duration::from_millis(200),
        rise: 2,
        fall: 3,
        jitter: 0.0,
    }
}

/// How long after `since` the target "flap" became `health`.
fn time_to(
    daemon: &connhealth_watch::daemon::Daemon,
    health: Health,
    since: SystemTime,
) -> Duration {
    wait_health(daemon, "flap", health, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("never {}", health.name()));
    let at = became(daemon, "flap", health).expect("a transition");
    at.duration_since(since).unwrap_or_default()
}

/// `took` is within `earliest..=latest` (plus the scheduling slack).
fn assert_window(round: usize, what: &str, took: Duration, earliest: Duration, latest: Duration) {
    let latest = latest + SLACK;
    assert!(
        (earliest..=latest).contains(&took),
        "round {round}: {what} after {took:?}, expected {earliest:?}..={latest:?}"
    );
}

#[test]
fn a_flapping_listener_goes_down_and_up_within_the_windows_the_schedule_allows() {
    let mut listener = Some(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.as_ref().unwrap().local_addr().unwrap();
    let check = flapping_plan();
    let daemon = start(plan(vec![target("flap", addr, check.clone())]));
    wait_health(&daemon, "flap", Health::Up, Duration::from_secs(3)).expect("up at first");

    for round in 0..2 {
        // Settle into the `interval` rhythm of a target that is up.
        std::thread::sleep(Duration::from_millis(400));
        let closed = SystemTime::now();
        drop(listener.take());
        // The next check comes within one interval; then fall - 1 more at fast_interval.
        let down = time_to(&daemon, Health::Down, closed);
        let within = check.fast_interval * (check.fall - 1);
        assert_window(round, "down", down, within, check.interval + within);
        let why = status(&daemon, "flap")
            .transitions
            .back()
            .unwrap()
            .why
            .clone();
        assert_eq!(why, "3 failures: refused");

        // Settle into the `down_interval` rhythm of a target that is down.
        std::thread::sleep(Duration::from_millis(500));
        let reopened = SystemTime::now();
        listener = Some(TcpListener::bind(addr).expect("the same port again"));
        // The next check within one down_interval; then rise - 1 more at fast_interval.
        let up = time_to(&daemon, Health::Up, reopened);
        let within = check.fast_interval * (check.rise - 1);
        assert_window(round, "up", up, within, check.down_interval + within);
    }
    daemon.stop();
}

#[test]
fn intervals_run_from_the_due_time_not_from_the_end_of_the_check() {
    // A send-expect server that answers after 60 ms: scheduled from the end of each
    // check, a 100 ms interval would run every 160 ms.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut line = [0u8; 64];
                let _ = conn.read(&mut line);
                std::thread::sleep(Duration::from_millis(60));
                let _ = conn.write_all(b"+PONG\r\n");
                let _ = conn.read(&mut line); // until the checker's FIN
            });
        }
    });
    let check = CheckPlan {
        check: Check::SendExpect(redis_ping()),
        interval: Duration::from_millis(100),
        fast_interval: Duration::from_millis(100),
        down_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        rise: 1,
        fall: 1,
        jitter: 0.0,
    };
    let daemon = start(plan(vec![target("slow", addr, check)]));
    wait_health(&daemon, "slow", Health::Up, Duration::from_secs(3)).expect("up");
    let before = status(&daemon, "slow").total_checks();
    std::thread::sleep(Duration::from_secs(3));
    let checks = status(&daemon, "slow").total_checks() - before;
    assert!(
        (27..=33).contains(&checks),
        "{checks} checks in 3 s at a 100 ms interval (from the end of each: ~19)"
    );
    // A check more than 10 ms late is counted; a loaded 2-core machine makes one or two.
    let late = daemon.shared().sinks.late_checks();
    assert!(late <= checks / 10, "{late} of {checks} checks late");
    daemon.stop();
}

#[test]
fn a_check_that_overlaps_its_successor_counts_the_successor_late() {
    // A server that never answers, a 300 ms timeout and a 100 ms interval: each check
    // runs past the next one's due time, which then starts when it ends, 200 ms late.
    let addr = connhealth_testkit::silent_server(Duration::from_secs(30));
    let check = CheckPlan {
        check: Check::SendExpect(redis_ping()),
        interval: Duration::from_millis(100),
        fast_interval: Duration::from_millis(100),
        down_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
        rise: 1,
        fall: 1,
        jitter: 0.0,
    };
    let daemon = start(plan(vec![target("overlapping", addr, check)]));
    std::thread::sleep(Duration::from_millis(1600));
    let checks = status(&daemon, "overlapping").total_checks();
    let late = daemon.shared().sinks.late_checks();
    daemon.stop();
    assert!(checks >= 3, "{checks} checks in 1.6 s at a 300 ms timeout");
    // Every check but the first was started late by the one before it.
    assert!(late + 1 >= checks, "{late} late of {checks} checks");
}

#[test]
fn after_a_recovery_the_fleet_is_checked_at_its_own_places_in_the_interval() {
    // Ten targets of one server, spread over a 1 s interval, checked every 500 ms while
    // down: they come back up within one 500 ms window. Then each must return to its own
    // place in the interval, or the next failure waits for the bunch (up to a whole
    // interval, not half of one on average).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let check = CheckPlan {
        check: Check::HalfOpen,
        interval: Duration::from_secs(1),
        fast_interval: Duration::from_millis(200),
        down_interval: Duration::from_millis(500),
        timeout: Duration::from_millis(200),
        rise: 1,
        fall: 1,
        jitter: 0.0,
    };
    let names: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let daemon = start(plan(
        names
            .iter()
            .map(|name| target(name, addr, check.clone()))
            .collect(),
    ));
    let all = |health| {
        for name in &names {
            wait_health(&daemon, name, health, Duration::from_secs(5)).expect("every target");
        }
    };
    all(Health::Up);
    drop(listener);
    all(Health::Down);
    std::thread::sleep(Duration::from_millis(1200));
    let _listener = TcpListener::bind(addr).expect("the same port again");
    all(Health::Up);
    // Two intervals later, the last checks of the ten span the interval again.
    std::thread::sleep(Duration::from_millis(2100));
    let last: Vec<SystemTime> = names
        .iter()
        .map(|name| status(&daemon, name).last_check.unwrap().at)
        .collect();
    daemon.stop();
    let first = *last.iter().min().unwrap();
    let span = last.iter().max().unwrap().duration_since(first).unwrap();
    assert!(
        span >= Duration::from_millis(700),
        "the ten last checks span {span:?} of the 1 s interval"
    );
}

#[test]
fn the_first_checks_of_a_fleet_are_spread_over_the_interval() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let check = CheckPlan {
        interval: Duration::from_secs(1),
        jitter: 0.0,
        ..CheckPlan::default()
    };
    let targets = (0..100)
        .map(|i| target(&format!("t{i}"), addr, check.clone()))
        .collect();
    let daemon = start(plan(targets));
    std::thread::sleep(Duration::from_millis(500));
    let checked = (0..100)
        .filter(|i| status(&daemon, &format!("t{i}")).total_checks() > 0)
        .count();
    // Evenly spread over 1 s: about half have had their first check at 500 ms.
    assert!(
        (35..=65).contains(&checked),
        "{checked} of 100 targets checked in the first half second"
    );
    daemon.stop();
}

#[test]
fn a_connect_check_completes_the_handshake_that_half_open_does_not() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let check = quick(CheckKind::Connect, Duration::from_millis(100));
    let daemon = start(plan(vec![target("connect", addr, check)]));
    wait_health(&daemon, "connect", Health::Up, Duration::from_secs(3)).expect("up");
    std::thread::sleep(Duration::from_millis(100));
    // Each connect check left the listener a (reset) connection to accept.
    let accepted = std::iter::from_fn(|| listener.accept().ok()).count();
    assert!(accepted >= 2, "{accepted} connections accepted");
    daemon.stop();
}

#[test]
fn half_open_checks_leave_a_listener_that_never_accepts_with_an_empty_queue() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let check = quick(CheckKind::HalfOpen, Duration::from_millis(50));
    let daemon = start(plan(vec![target("quiet", addr, check)]));
    wait_health(&daemon, "quiet", Health::Up, Duration::from_secs(3)).expect("up");
    std::thread::sleep(Duration::from_secs(1));
    let checks = status(&daemon, "quiet").checks[Outcome::Ok.index()];
    assert!(checks >= 15, "only {checks} checks");
    // The kernel's delayed ACK would have completed a handshake ~40-200 ms after a
    // SYN-ACK; give it time, then look at the accept queue.
    std::thread::sleep(Duration::from_millis(300));
    match listener.accept() {
        Err(err) if err.kind() == ErrorKind::WouldBlock => {}
        other => panic!("{checks} half-open checks left a connection to accept: {other:?}"),
    }
    daemon.stop();
}

#[test]
fn a_name_is_resolved_and_its_next_address_tried_after_a_refusal() {
    if connhealth_testkit::inside_netns().is_none() {
        if !require("a name with two addresses", &["ip"]) {
            return;
        }
        let netns = Netns::new().unwrap();
        netns
            .exec("ip", &["addr", "add", "::1/128", "dev", "lo"])
            .ok();
        netns
            .set_hosts("::1 dual.test\n127.0.0.1 dual.test\n")
            .unwrap();
        netns
            .rerun_test_inside("a_name_is_resolved_and_its_next_address_tried_after_a_refusal")
            .unwrap();
        return;
    }
    // Inside: "dual.test" resolves to ::1 first, then 127.0.0.1, and the server listens
    // on 127.0.0.1 only, as many do. Each kind must get past the refusal on ::1.
    let resolved: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs("dual.test:1")
        .unwrap()
        .collect();
    assert!(resolved.len() == 2 && resolved[0].is_ipv6(), "{resolved:?}");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut line = [0u8; 64];
                let _ = conn.read(&mut line);
                let _ = conn.write_all(b"+PONG\r\n");
                let _ = conn.read(&mut line);
            });
        }
    });
    let check = |kind| CheckPlan {
        check: match kind {
            CheckKind::SendExpect => Check::SendExpect(redis_ping()),
            other => Check::from(other),
        },
        ..quick(kind, Duration::from_millis(100))
    };
    let address = format!("dual.test:{port}");
    let kinds = [
        CheckKind::HalfOpen,
        CheckKind::Connect,
        CheckKind::SendExpect,
    ];
    let daemon = start(plan(
        kinds
            .iter()
            .map(|&kind| target(kind.name(), &address, check(kind)))
            .collect(),
    ));
    for kind in kinds {
        wait_health(&daemon, kind.name(), Health::Up, Duration::from_secs(3)).unwrap_or_else(
            || {
                panic!(
                    "{} never up: {:?}",
                    kind.name(),
                    status(&daemon, kind.name())
                )
            },
        );
    }
    daemon.stop();
}

#[test]
fn a_closed_port_is_down_refused_and_an_ipv6_target_is_up() {
    let closed = connhealth_testkit::closed_port();
    let v6 = match TcpListener::bind("[::1]:0") {
        Ok(listener) => listener,
        Err(err) => panic!("this machine has no ::1: {err}"),
    };
    let v6_addr = v6.local_addr().unwrap();
    let check = quick(CheckKind::HalfOpen, Duration::from_millis(100));
    let daemon = start(plan(vec![
        target("closed", closed, check.clone()),
        target("v6", format!("[::1]:{}", v6_addr.port()), check),
    ]));
    wait_health(&daemon, "closed", Health::Down, Duration::from_secs(3)).expect("down");
    let closed_status = status(&daemon, "closed");
    assert!(closed_status.checks[Outcome::Refused.index()] >= 3);
    assert_eq!(
        closed_status.transitions.back().unwrap().why,
        "3 failures: refused"
    );
    wait_health(&daemon, "v6", Health::Up, Duration::from_secs(3)).expect("v6 up");
    daemon.stop();
}

#[test]
fn a_check_that_cannot_start_is_exhausted_and_late_and_never_a_failure() {
    if !require("checks queued behind dropped SYNs", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let (dropped, live, daemon) = netns
        .enter(|| {
            let dropped = TcpListener::bind("127.0.0.1:0").unwrap();
            let live = TcpListener::bind("127.0.0.1:0").unwrap();
            let check = CheckPlan {
                interval: Duration::from_millis(300),
                fast_interval: Duration::from_millis(300),
                down_interval: Duration::from_millis(300),
                timeout: Duration::from_secs(1),
                rise: 1,
                fall: 1,
                jitter: 0.0,
                ..CheckPlan::default()
            };
            let dropped_addr = dropped.local_addr().unwrap();
            let mut targets: Vec<_> = (0..16)
                .map(|i| target(&format!("dropped-{i}"), dropped_addr, check.clone()))
                .collect();
            targets.push(target("live", live.local_addr().unwrap(), check));
            // Four places in flight, taken for a second at a time by dropped SYNs.
            let daemon = start_limited(plan(targets), 4);
            (dropped, live, daemon)
        })
        .unwrap();
    netns
        .drop_tcp_port(dropped.local_addr().unwrap().port())
        .unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let live_status = status(&daemon, "live");
    let exhausted = live_status.checks[Outcome::Exhausted.index()];
    assert!(
        exhausted >= 1,
        "live was never exhausted: {:?}",
        live_status.checks
    );
    assert_ne!(
        live_status.health,
        Health::Down,
        "exhaustion made live down"
    );
    for outcome in [Outcome::Timeout, Outcome::Refused] {
        assert_eq!(
            live_status.checks[outcome.index()],
            0,
            "live got {outcome:?}: its timeout ran while it waited for a place"
        );
    }
    assert!(daemon.shared().sinks.late_checks() >= exhausted);
    // The probes that did get a place timed out from their own SYN: those targets are down.
    let down: Vec<_> = (0..16)
        .map(|i| status(&daemon, &format!("dropped-{i}")))
        .filter(|s| s.health == Health::Down && s.checks[Outcome::Timeout.index()] > 0)
        .collect();
    assert!(
        !down.is_empty(),
        "no dropped target is down after {:?}",
        start.elapsed()
    );
    drop(live);
    daemon.stop();
}
