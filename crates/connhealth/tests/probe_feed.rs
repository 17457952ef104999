//! `ProbeFeed`: tagged probes pushed as they fall due, results taken in batches. Each
//! probe's timeout runs from its own SYN, a `start_by` bounds how late it may leave, and a
//! dropped feed gives back every socket. Host names are looked up on the prober's resolver
//! threads, within the timeout, and their addresses tried in order; an address push is
//! left as it was. Real listeners, real refusals, and dropped SYNs, host files and a slow
//! or silent DNS server in namespaces of the tests' own: nothing leaves loopback.

mod probe_support;

use std::collections::HashMap;
#[cfg(not(windows))]
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use connhealth::probe::{FeedResult, ProbeFeed, Target};
use connhealth::ProbeError;
#[cfg(target_os = "linux")]
use connhealth_testkit::{require, Netns};
#[cfg(windows)]
use probe_support::accepted;
#[cfg(target_os = "linux")]
use probe_support::dropping_and_live as setup;
use probe_support::runtime;
#[cfg(windows)]
use probe_support::windows::{assert_completed_and_reset, while_draining};

// Counts this thread's allocations: an address push must make none.
#[global_allocator]
static ALLOCATOR: connhealth_testkit::CountingAllocator =
    connhealth_testkit::CountingAllocator::new();

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

/// Every result of the feed, by tag.
fn by_tag(results: Vec<(FeedResult, Instant)>) -> HashMap<u64, (FeedResult, Instant)> {
    results.into_iter().map(|r| (r.0.tag, r)).collect()
}

/// `localhost:port`, as a checker's configuration would name it.
fn localhost(port: u16) -> Target {
    Target::parse(&format!("localhost:{port}")).unwrap()
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
    let prober = probe_support::prober();
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
    let prober = probe_support::prober();
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
    let (_netns, prober, dead, up, _listeners) = setup(probe_support::builder().max_in_flight(1));
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
    let (_netns, prober, dead, up, _listeners) = setup(probe_support::builder().max_in_flight(1));
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
    let (_netns, prober, dead, _, _listeners) = setup(probe_support::builder());
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
        // the minute it was given. (Sockets are what this counts: the raw engine holds
        // none per probe.)
        let prober = connhealth::Prober::builder().raw(false).build();
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
    let prober = probe_support::prober();
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

#[test]
fn a_name_is_looked_up_and_found_where_it_listens() {
    // On 127.0.0.1 only: where "localhost" is ::1 first, as on most systems, ::1 refuses
    // and 127.0.0.1 must be tried next.
    let server = listener("127.0.0.1:0");
    let up = server.local_addr().unwrap();
    let prober = probe_support::prober();
    let mut feed = prober.feed();
    // Refused ::1 takes about a second on Windows (see the prober's module docs).
    let timeout = Duration::from_secs(5);
    feed.push_target(1, &localhost(up.port()), timeout, None);
    feed.push_target(2, &Target::Addr(up), timeout, None);
    assert_eq!(feed.outstanding(), 2);
    let flushed = Instant::now();
    feed.flush();
    let results = by_tag(runtime().block_on(all_results(&mut feed)));
    let (named, _) = &results[&1];
    assert!(named.result.is_ok(), "{named:?}");
    assert_eq!(named.addr, up, "the address that answered");
    assert!(named.lookup > Duration::ZERO, "{named:?}");
    let sent = named.sent.expect("sent");
    assert!(
        sent.duration_since(flushed) >= named.lookup,
        "its SYN left after its lookup: {named:?}"
    );
    // An address through push_target is a push: no lookup.
    let (addressed, _) = &results[&2];
    assert!(addressed.result.is_ok(), "{addressed:?}");
    assert_eq!((addressed.addr, addressed.lookup), (up, Duration::ZERO));
    assert!(addressed.sent.is_some());
}

#[test]
fn a_name_that_does_not_resolve_is_a_resolve_error_with_no_address() {
    // `.invalid` never resolves (RFC 6761), and resolvers answer it locally.
    let target = Target::parse("no-such-host.invalid:80").unwrap();
    let prober = probe_support::prober();
    let mut feed = prober.feed();
    let timeout = Duration::from_secs(3);
    let flushed = Instant::now();
    feed.push_target(5, &target, timeout, None);
    feed.flush();
    let results = runtime().block_on(all_results(&mut feed));
    let [(result, arrived)] = &results[..] else {
        panic!("{results:?}")
    };
    assert!(
        matches!(result.result, Err(ProbeError::Resolve(_))),
        "{result:?}"
    );
    assert!(
        !result.result.as_ref().unwrap_err().is_down(),
        "not the target's fault"
    );
    // Nothing was probed: the unspecified address, with the target's port.
    assert_eq!(result.addr, SocketAddr::from(([0, 0, 0, 0], 80)));
    assert_eq!(result.sent, None);
    assert!(result.lookup > Duration::ZERO, "{result:?}");
    assert!(
        result.lookup <= arrived.duration_since(flushed),
        "{result:?}"
    );
    assert!(arrived.duration_since(flushed) < timeout + Duration::from_millis(200));
}

#[test]
fn a_name_whose_every_address_refuses_reports_the_first_refusal() {
    let down = closed_port();
    let first = ("localhost", down.port())
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let prober = probe_support::prober();
    let mut feed = prober.feed();
    // Two refusals of about a second each on Windows.
    feed.push_target(3, &localhost(down.port()), Duration::from_secs(5), None);
    feed.flush();
    let results = runtime().block_on(all_results(&mut feed));
    let [(result, _)] = &results[..] else {
        panic!("{results:?}")
    };
    assert!(
        matches!(result.result, Err(ProbeError::Refused)),
        "{result:?}"
    );
    assert_eq!(result.addr, first, "the first address the resolver gave");
    assert!(
        result.sent.is_some() && result.lookup > Duration::ZERO,
        "{result:?}"
    );
}

#[test]
fn an_address_push_is_left_as_it_was() {
    // The hot path: once the feed's buffer has grown to a tick's probes, pushing an
    // address allocates nothing, by push or by push_target, and reports no lookup.
    let server = listener("127.0.0.1:0");
    let up = server.local_addr().unwrap();
    let target = Target::Addr(up);
    let prober = probe_support::prober();
    let mut feed = prober.feed();
    let rt = runtime();
    let tick = |feed: &mut ProbeFeed| {
        for tag in 0..32 {
            feed.push(tag, up, Duration::from_secs(2), None);
            feed.push_target(tag + 32, &target, Duration::from_secs(2), None);
        }
    };
    tick(&mut feed);
    feed.flush();
    rt.block_on(all_results(&mut feed));
    let before = connhealth_testkit::allocations();
    tick(&mut feed);
    let allocated = connhealth_testkit::allocations() - before;
    feed.flush();
    let results = rt.block_on(all_results(&mut feed));
    assert_eq!(allocated, 0, "allocations by 64 address pushes");
    assert_eq!(results.len(), 64);
    for (result, _) in &results {
        assert!(result.result.is_ok(), "{result:?}");
        assert_eq!((result.addr, result.lookup), (up, Duration::ZERO));
        assert!(result.sent.is_some());
    }
    #[cfg(windows)] // each probe completed the handshake: empty the backlog
    drop(accepted(&server));
}

/// A port whose SYNs the name tests' namespaces drop.
#[cfg(target_os = "linux")]
const SILENT_PORT: u16 = 9;

/// The DNS server of [`slow_and_silent_dns`], in the child: on the namespace's own
/// `127.0.0.1:53`, it answers every `A` query with `127.0.0.1` (and any other type with no
/// record) after `delay`, and never answers a name that starts with `silent`.
#[cfg(target_os = "linux")]
fn serve_dns(delay: Duration) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:53").unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let query = buf[..len].to_vec();
            let socket = socket.try_clone().unwrap();
            // A and AAAA come together: each is answered after `delay`, not one after
            // the other.
            thread::spawn(move || {
                // The question: length-prefixed labels from byte 12, a zero, type, class.
                let (mut at, mut name) = (12, String::new());
                while at < query.len() && query[at] != 0 {
                    let end = at + 1 + query[at] as usize;
                    name.push_str(&String::from_utf8_lossy(
                        &query[at + 1..end.min(query.len())],
                    ));
                    name.push('.');
                    at = end;
                }
                let question_end = at + 5;
                if question_end > query.len() || name.starts_with("silent") {
                    return;
                }
                thread::sleep(delay);
                let is_a = query[at + 1..at + 3] == [0, 1];
                // The query's id; a response, recursion desired and available, no error;
                // one question, and one answer to an A query.
                let mut reply = query[..2].to_vec();
                reply.extend([0x81, 0x80, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
                reply.extend(&query[12..question_end]);
                if is_a {
                    // The name (a pointer to the question's), A, IN, TTL 60, 127.0.0.1.
                    reply.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
                }
                let _ = socket.send_to(&reply, from);
            });
        }
    });
}

/// A namespace whose resolver is [`serve_dns`] on its own loopback, and whose
/// [`SILENT_PORT`] drops every SYN. None when the tools are missing.
#[cfg(target_os = "linux")]
fn slow_and_silent_dns() -> Option<Netns> {
    if !require("names resolved by a slow DNS server", &["ip", "iptables"]) {
        return None;
    }
    // Only the namespace's own loopback is ever asked: the child runs under `ip netns
    // exec`, which gives it this resolv.conf in place of the host's.
    let netns = Netns::new().unwrap();
    netns
        .set_resolv_conf("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
        .unwrap();
    netns.drop_tcp_port(SILENT_PORT).unwrap();
    Some(netns)
}

#[test]
#[cfg(target_os = "linux")] // a namespace of its own, with its own hosts file and iptables
fn a_names_addresses_are_tried_in_order_until_one_answers() {
    if connhealth_testkit::inside_netns().is_some() {
        // The child. `several.test` is four loopback addresses (three with ::1): one
        // answers with an ICMP host unreachable, the others have nothing listening, until
        // the listener on the last of them in the resolver's order.
        let order: Vec<_> = ("several.test", 0)
            .to_socket_addrs()
            .unwrap()
            .map(|addr| addr.ip())
            .collect();
        assert!(order.len() >= 3, "{order:?}");
        let last = *order.last().unwrap();
        let server = listener(&SocketAddr::new(last, 0).to_string());
        let port = server.local_addr().unwrap().port();
        let at = |ip| SocketAddr::new(ip, port);
        let name = Target::parse(&format!("several.test:{port}")).unwrap();
        let prober = probe_support::prober();
        let mut feed = prober.feed();
        let timeout = Duration::from_secs(2);
        feed.push_target(1, &name, timeout, None);
        let down = closed_port().port();
        let every_one_refuses = Target::parse(&format!("several.test:{down}")).unwrap();
        feed.push_target(2, &every_one_refuses, timeout, None);
        feed.flush();
        let rt = runtime();
        let results = by_tag(rt.block_on(all_results(&mut feed)));
        let (found, _) = &results[&1];
        assert!(found.result.is_ok(), "{found:?} in {order:?}");
        assert_eq!(found.addr, at(last), "{order:?}");
        // None answered: the first address's error, and that address.
        let (refused, _) = &results[&2];
        let unreachable = std::net::IpAddr::from([127, 0, 0, 2]);
        assert_eq!(refused.addr, SocketAddr::new(order[0], down), "{refused:?}");
        match &refused.result {
            Err(ProbeError::Refused) => assert_ne!(order[0], unreachable),
            Err(ProbeError::Unreachable(_)) => assert_eq!(order[0], unreachable),
            other => panic!("{other:?}"),
        }
        // Prober::probe takes the same path.
        let probed = rt.block_on(prober.probe(&format!("several.test:{port}"), timeout));
        assert!(probed.is_ok(), "{probed:?}");
        thread::sleep(PAST_DELAYED_ACK);
        assert_eq!(accepted(&server), 0, "half-open probes were accepted");
        return;
    }
    if !require("a name with several addresses", &["ip", "iptables"]) {
        return;
    }
    let netns = Netns::new().unwrap();
    let mut hosts = String::new();
    if netns
        .enter(|| TcpListener::bind("[::1]:0").is_ok())
        .unwrap()
    {
        hosts.push_str("::1 several.test\n");
    }
    hosts.push_str("127.0.0.2 several.test\n127.0.0.3 several.test\n127.0.0.4 several.test\n");
    netns.set_hosts(&hosts).unwrap();
    // 127.0.0.2 is unreachable: an ICMP error, after the SYN.
    netns
        .exec(
            "iptables",
            &[
                "-I",
                "INPUT",
                "-p",
                "tcp",
                "-d",
                "127.0.0.2",
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-host-unreachable",
            ],
        )
        .unwrap();
    netns
        .rerun_test_inside("a_names_addresses_are_tried_in_order_until_one_answers")
        .unwrap();
}

#[test]
#[cfg(target_os = "linux")] // a namespace with its own DNS server, and iptables
fn a_names_timeout_counts_from_the_start_of_its_lookup() {
    if connhealth_testkit::inside_netns().is_some() {
        // The child: lookups take 300 ms, or never end; the address's SYNs are dropped.
        let delay = Duration::from_millis(300);
        serve_dns(delay);
        let timeout = Duration::from_millis(1000);
        let prober = probe_support::prober();
        let mut feed = prober.feed();
        let slow = Target::parse(&format!("slow.test:{SILENT_PORT}")).unwrap();
        let silent = Target::parse(&format!("silent.test:{SILENT_PORT}")).unwrap();
        feed.push_target(1, &slow, timeout, None);
        feed.push_target(2, &silent, timeout, None);
        let flushed = Instant::now();
        feed.flush();
        let results = by_tag(runtime().block_on(all_results(&mut feed)));

        // Resolved in 300 ms, then probed with the 700 ms left, from its SYN.
        let (slow, arrived) = &results[&1];
        assert!(matches!(slow.result, Err(ProbeError::TimedOut)), "{slow:?}");
        assert_eq!(slow.addr, SocketAddr::from(([127, 0, 0, 1], SILENT_PORT)));
        assert!(slow.lookup >= delay && slow.lookup < timeout, "{slow:?}");
        let sent = slow.sent.expect("sent after the lookup");
        assert!(sent.duration_since(flushed) >= slow.lookup, "{slow:?}");
        let in_flight = arrived.duration_since(sent);
        assert!(
            in_flight >= timeout - slow.lookup
                && in_flight < timeout - delay + Duration::from_millis(150),
            "{in_flight:?} in flight after a lookup of {:?}",
            slow.lookup
        );
        let took = arrived.duration_since(flushed);
        assert!(
            took >= timeout && took < timeout + Duration::from_millis(200),
            "{took:?}"
        );

        // Never resolved: the lookup spent the whole timeout.
        let (silent, arrived) = &results[&2];
        assert!(
            matches!(silent.result, Err(ProbeError::Resolve(_))),
            "{silent:?}"
        );
        assert_eq!(silent.sent, None);
        assert!(silent.lookup >= timeout, "{silent:?}");
        let took = arrived.duration_since(flushed);
        assert!(
            took >= timeout && took < timeout + Duration::from_millis(200),
            "{took:?}"
        );
        return;
    }
    if let Some(netns) = slow_and_silent_dns() {
        netns
            .rerun_test_inside("a_names_timeout_counts_from_the_start_of_its_lookup")
            .unwrap();
    }
}

#[test]
#[cfg(target_os = "linux")] // a namespace with its own DNS server
fn names_being_looked_up_hold_up_no_address() {
    if connhealth_testkit::inside_netns().is_some() {
        // The child: 64 names whose lookups never end hold every resolver thread, and
        // the address probes flushed with them (and after them) come back at once.
        serve_dns(Duration::ZERO);
        let server = listener("127.0.0.1:0");
        let up = server.local_addr().unwrap();
        let timeout = Duration::from_millis(1500);
        let prober = probe_support::prober();
        let mut feed = prober.feed();
        for tag in 0..64 {
            let silent = Target::parse(&format!("silent-{tag}.test:80")).unwrap();
            feed.push_target(tag, &silent, timeout, None);
            feed.push(100 + tag, up, timeout, None);
        }
        let flushed = Instant::now();
        feed.flush();
        let rt = runtime();
        let mut addresses = Vec::new();
        while addresses.len() < 64 {
            let mut batch = Vec::new();
            rt.block_on(feed.done(&mut batch));
            addresses.extend(batch.into_iter().filter(|r| r.tag >= 100));
        }
        let took = flushed.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "{took:?} for the addresses"
        );
        for result in &addresses {
            assert!(result.result.is_ok(), "{result:?}");
            assert_eq!((result.addr, result.lookup), (up, Duration::ZERO));
        }
        // The names end at their timeout, each with its lookup's time.
        let names = rt.block_on(all_results(&mut feed));
        assert_eq!(names.len(), 64);
        for (result, _) in &names {
            assert!(
                matches!(result.result, Err(ProbeError::Resolve(_))),
                "{result:?}"
            );
            assert!(result.lookup >= timeout, "{result:?}");
        }
        thread::sleep(PAST_DELAYED_ACK);
        assert_eq!(accepted(&server), 0, "half-open probes were accepted");
        return;
    }
    if let Some(netns) = slow_and_silent_dns() {
        netns
            .rerun_test_inside("names_being_looked_up_hold_up_no_address")
            .unwrap();
    }
}
