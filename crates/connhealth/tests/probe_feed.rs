//! `ProbeFeed`: tagged probes pushed as they fall due, results taken in batches. Each
//! probe's timeout runs from its own SYN, a `start_by` bounds how late it may leave, and a
//! dropped feed gives back every socket. Real listeners, real refusals, and dropped SYNs in
//! namespaces of the tests' own.

mod probe_support;

use std::collections::HashMap;
#[cfg(not(windows))]
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use connhealth::probe::{FeedResult, ProbeFeed};
use connhealth::{ProbeError, Prober};
#[cfg(target_os = "linux")]
use connhealth_testkit::{require, Netns};
#[cfg(windows)]
use probe_support::accepted;
#[cfg(target_os = "linux")]
use probe_support::dropping_and_live as setup;
use probe_support::runtime;
#[cfg(windows)]
use probe_support::windows::{assert_completed_and_reset, while_draining};

/// Longer than the delayed-ACK timer (~200 ms at most): a probe socket left open would
/// have completed the handshake by then, and the listener would hold a connection.
const PAST_DELAYED_ACK: Duration = Duration::from_millis(300);

/// A port whose SYNs the fd test's namespace drops (set up before the child runs).
#[cfg(target_os = "linux")]
const DROPPED_PORT: u16 = 9;

fn listener(addr: &str) -> TcpListener {
    let listener = TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

fn closed_port() -> SocketAddr {
    // Bound and dropped: the kernel answers a SYN with an RST.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Connections the listener can accept now.
#[cfg(not(windows))]
fn accepted(listener: &TcpListener) -> usize {
    let mut n = 0;
    loop {
        match listener.accept() {
            Ok(_) => n += 1,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return n,
            Err(err) => panic!("accept: {err}"),
        }
    }
}

/// Takes results until none is outstanding, noting when each batch arrived.
async fn all_results(feed: &mut ProbeFeed) -> Vec<(FeedResult, Instant)> {
    let mut results = Vec::new();
    let mut batch = Vec::new();
    while feed.outstanding() > 0 {
        feed.done(&mut batch).await;
        let arrived = Instant::now();
        results.extend(batch.drain(..).map(|result| (result, arrived)));
    }
    results
}

#[test]
fn a_feed_is_send_unpin_and_debug() {
    fn check<T: Send + Unpin + std::fmt::Debug>() {}
    check::<ProbeFeed>();
    check::<FeedResult>();
}

#[test]
fn tags_come_back_with_their_address_and_result() {
    let server = listener("127.0.0.1:0");
    let (up, down) = (server.local_addr().unwrap(), closed_port());
    let prober = Prober::new();
    let mut feed = prober.feed();
    let timeout = Duration::from_secs(2);
    // Two tags to the same address, and tags that are neither small nor in order.
    feed.push(u64::MAX, up, timeout, None);
    feed.push(3, down, timeout, None);
    feed.push(1 << 40, up, timeout, None);
    assert_eq!(feed.outstanding(), 3, "queued probes are outstanding");
    feed.flush();
    assert_eq!(feed.outstanding(), 3);
    let results = runtime().block_on(all_results(&mut feed));
    assert_eq!(feed.outstanding(), 0);
    let by_tag: HashMap<u64, &FeedResult> = results.iter().map(|(r, _)| (r.tag, r)).collect();
    assert_eq!(by_tag.len(), 3, "{results:?}");
    for tag in [u64::MAX, 1 << 40] {
        let result = by_tag[&tag];
        assert_eq!(result.addr, up);
        assert!(result.result.is_ok(), "{result:?}");
    }
    assert_eq!(by_tag[&3].addr, down);
    assert!(
        matches!(by_tag[&3].result, Err(ProbeError::Refused)),
        "{:?}",
        by_tag[&3]
    );
}

#[test]
fn sent_is_when_the_syn_left_before_the_result_arrived() {
    let server = listener("127.0.0.1:0");
    let (up, down) = (server.local_addr().unwrap(), closed_port());
    let prober = Prober::new();
    let mut feed = prober.feed();
    let pushed = Instant::now();
    feed.push(1, up, Duration::from_secs(2), None);
    feed.push(2, down, Duration::from_secs(2), None);
    feed.flush();
    let results = runtime().block_on(all_results(&mut feed));
    assert_eq!(results.len(), 2);
    for (result, arrived) in &results {
        let sent = result.sent.expect("both probes were sent");
        assert!(pushed <= sent && sent <= *arrived, "{result:?}");
        if let Ok(rtt) = result.result {
            assert!(sent + rtt <= *arrived, "{result:?}");
        }
    }
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn a_probe_queued_behind_max_in_flight_gets_its_full_timeout_from_its_syn() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let (_netns, prober, dead, up, _listeners) = setup(Prober::builder().max_in_flight(1));
    let (hold, timeout) = (Duration::from_millis(400), Duration::from_millis(200));
    let mut feed = prober.feed();
    let pushed = Instant::now();
    // The first holds the one place for 400 ms; the second waits twice its own timeout.
    feed.push(1, dead, hold, None);
    feed.push(2, up, timeout, None);
    feed.flush();
    let results = runtime().block_on(all_results(&mut feed));
    let (first, second) = match &results[..] {
        [(a, _), (b, _)] if a.tag == 1 => (a, b),
        [(b, _), (a, _)] => (a, b),
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(first.result, Err(ProbeError::TimedOut)),
        "{first:?}"
    );
    assert!(second.result.is_ok(), "{second:?}");
    let waited = second.sent.expect("sent").duration_since(pushed);
    assert!(
        waited >= hold && waited > timeout,
        "it left after {waited:?}"
    );
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn a_probe_not_sent_by_its_start_by_is_the_probers_error() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let (_netns, prober, dead, up, _listeners) = setup(Prober::builder().max_in_flight(1));
    let hold = Duration::from_millis(600);
    let start_by = Duration::from_millis(150);
    let mut feed = prober.feed();
    let pushed = Instant::now();
    feed.push(1, dead, hold, None);
    feed.push(2, up, Duration::from_secs(5), Some(pushed + start_by));
    feed.flush();
    let rt = runtime();
    let mut batch = Vec::new();
    rt.block_on(feed.done(&mut batch));
    let arrived = pushed.elapsed();
    let late = batch.iter().find(|r| r.tag == 2).expect("tag 2 came first");
    assert_eq!(late.addr, up);
    assert!(late.sent.is_none(), "{late:?}");
    match &late.result {
        Err(err @ ProbeError::Exhausted(why)) => {
            assert!(!err.is_down(), "a target never probed is not down");
            assert!(why.to_string().contains("max_in_flight"), "{why}");
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    // At its start_by, not when the place came free.
    assert!(
        arrived >= start_by && arrived < hold - Duration::from_millis(100),
        "{arrived:?}"
    );
    let rest = rt.block_on(all_results(&mut feed));
    assert!(
        matches!(
            rest[..],
            [(
                FeedResult {
                    tag: 1,
                    result: Err(ProbeError::TimedOut),
                    ..
                },
                _
            )]
        ),
        "{rest:?}"
    );
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs
fn a_probe_sent_before_its_start_by_gets_its_full_timeout_after_it() {
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    // Sent at once, well before its start_by: the deadline is re-armed at the SYN for
    // SYN + timeout, and the start_by that passes while it is in flight means nothing.
    let (_netns, prober, dead, _, _listeners) = setup(Prober::builder());
    let (start_by, timeout) = (Duration::from_millis(100), Duration::from_millis(400));
    let mut feed = prober.feed();
    let pushed = Instant::now();
    feed.push(1, dead, timeout, Some(pushed + start_by));
    feed.flush();
    let results = runtime().block_on(all_results(&mut feed));
    let [(result, arrived)] = &results[..] else {
        panic!("{results:?}")
    };
    let sent = result.sent.expect("sent before its start_by");
    assert!(sent < pushed + start_by, "{result:?}");
    assert!(
        matches!(result.result, Err(ProbeError::TimedOut)),
        "{result:?}"
    );
    let took = arrived.duration_since(sent);
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(200),
        "timed out {took:?} after its SYN"
    );
}

#[cfg(target_os = "linux")] // /proc/self/fd
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
#[cfg(target_os = "linux")] // needs iptables to drop SYNs, and /proc/self/fd
fn dropping_the_feed_closes_its_sockets_at_once() {
    if connhealth_testkit::inside_netns().is_some() {
        // The child, alone in its process (so that the count of descriptors is ours):
        // every SYN to DROPPED_PORT is dropped, so each probe would hold its socket for
        // the minute it was given.
        let prober = Prober::new();
        thread::sleep(Duration::from_millis(50));
        let before = open_fds();
        let target = SocketAddr::from(([127, 0, 0, 1], DROPPED_PORT));
        let mut feed = prober.feed();
        for tag in 0..100 {
            feed.push(tag, target, Duration::from_secs(60), None);
        }
        // Probes behind the in-flight limit, queued in the engine when the feed drops.
        for tag in 100..1_000 {
            feed.push(tag, target, Duration::from_secs(60), None);
        }
        // And probes pushed but never flushed.
        feed.flush();
        feed.push(1_000, target, Duration::from_secs(60), None);
        let in_flight =
            connhealth_testkit::wait_until(Duration::from_secs(2), || open_fds() >= before + 64);
        assert!(in_flight.is_some(), "{} open, {before} before", open_fds());
        drop(feed);
        let closed =
            connhealth_testkit::wait_until(Duration::from_millis(100), || open_fds() == before);
        assert!(closed.is_some(), "{} open, {before} before", open_fds());
        // And none comes back: the queued probes were dropped, not sent.
        thread::sleep(Duration::from_millis(100));
        assert_eq!(open_fds(), before);
        return;
    }
    if !require("probes to a dropping target", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    netns.drop_tcp_port(DROPPED_PORT).unwrap();
    netns
        .rerun_test_inside("dropping_the_feed_closes_its_sockets_at_once")
        .unwrap();
}

/// Counts its wakes.
struct CountWakes {
    wakes: AtomicUsize,
    thread: thread::Thread,
}

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.thread.unpark();
    }
}

#[test]
fn twenty_thousand_probes_through_one_feed_all_come_back_none_accepted() {
    let servers: Vec<_> = (0..64).map(|_| listener("127.0.0.1:0")).collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
    let prober = Prober::new();
    let mut feed = prober.feed();
    const PROBES: u64 = 20_000;
    for tag in 0..PROBES {
        feed.push(
            tag,
            addrs[tag as usize % addrs.len()],
            Duration::from_secs(5),
            None,
        );
    }
    feed.flush();
    // Polled by hand, parking between polls: each wake of the feed is counted.
    let take_all = |feed: &mut ProbeFeed| {
        let counter = Arc::new(CountWakes {
            wakes: AtomicUsize::new(0),
            thread: thread::current(),
        });
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut results = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while feed.outstanding() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} outstanding",
                feed.outstanding()
            );
            if feed.poll_done(&mut cx, &mut results).is_pending() {
                thread::park_timeout(Duration::from_millis(100));
            }
        }
        (results, counter)
    };
    #[cfg(not(windows))]
    let (results, counter) = take_all(&mut feed);
    // Each probe is a connection on Windows, reset at once: the servers accept as they
    // come, or their backlogs fill (see probe_support::windows).
    #[cfg(windows)]
    let ((results, counter), mut conns) = while_draining(&servers, || take_all(&mut feed));
    assert_eq!(results.len(), PROBES as usize);
    let mut seen = vec![false; PROBES as usize];
    for result in &results {
        assert!(result.result.is_ok(), "{result:?}");
        assert_eq!(result.addr, addrs[result.tag as usize % addrs.len()]);
        assert!(!std::mem::replace(&mut seen[result.tag as usize], true));
    }
    // Results come in batches, not with a wake each.
    let wakes = counter.wakes.load(Ordering::Relaxed);
    assert!(
        wakes * 10 < PROBES as usize,
        "{wakes} wakes for {PROBES} probes"
    );
    thread::sleep(PAST_DELAYED_ACK);
    #[cfg(not(windows))]
    {
        let accepted: usize = servers.iter().map(accepted).sum();
        assert_eq!(accepted, 0, "half-open probes were accepted");
    }
    #[cfg(windows)]
    {
        conns.extend(servers.iter().flat_map(accepted));
        assert_completed_and_reset(&conns, PROBES as usize);
    }
}
