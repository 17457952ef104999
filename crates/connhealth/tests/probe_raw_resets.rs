//! What raw probes leave on their targets: the kernel resets each SYN-ACK (no socket
//! owns a raw probe's port), so a listener keeps neither a connection nor a half-open
//! entry; unless a firewall drops those resets, which the targets show in `ss` and the
//! engine reports in its log. And the usual stateful host firewall lets it all through.

#![cfg(target_os = "linux")]

mod probe_support;

use std::thread;
use std::time::{Duration, Instant};

use connhealth::{ProbeError, Prober};
use connhealth_testkit::{wait_until, Netns};
use probe_support::raw::{
    all_up, closed_port, firewall, half_open, listener, raw_prober, PAST_DELAYED_ACK,
};
use probe_support::{accepted, runtime};

/// The namespace's `Tcp: OutRsts` counter (`/proc/net/snmp`, read by a process inside
/// it): the RSTs its kernel sent.
fn tcp_out_rsts(netns: &Netns) -> u64 {
    let out = netns.exec("cat", &["/proc/net/snmp"]).unwrap();
    let snmp = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut tcp = snmp.lines().filter(|line| line.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let at = names.split_whitespace().position(|name| name == "OutRsts");
    let value = values.split_whitespace().nth(at.expect("Tcp: OutRsts"));
    value.unwrap().parse().unwrap()
}

#[test]
fn thousands_of_probes_leave_no_connection_and_no_half_open_entry() {
    let Some((netns, prober)) = raw_prober("raw probes under load", Prober::builder()) else {
        return;
    };
    let servers: Vec<_> = (0..4).map(|_| listener(&netns, "127.0.0.1:0")).collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
    let probes = 2_000;
    let resets_before = tcp_out_rsts(&netns);
    let ok = all_up(
        &prober,
        (0..probes).map(|i| addrs[i % addrs.len()]).collect(),
    );
    assert_eq!(ok, probes);
    // No socket owns a raw probe's port, so the kernel answers every SYN-ACK with an
    // RST: at least one per probe.
    let resets = tcp_out_rsts(&netns) - resets_before;
    assert!(
        resets >= probes as u64,
        "{resets} RSTs for {probes} SYN-ACKs"
    );
    // ...and the RST removes the listener's half-open entry at once.
    let cleared = wait_until(Duration::from_secs(1), || {
        addrs.iter().all(|addr| half_open(&netns, addr.port()) == 0)
    });
    let left: Vec<_> = addrs.iter().map(|a| half_open(&netns, a.port())).collect();
    assert!(cleared.is_some(), "half-open entries left: {left:?}");
    thread::sleep(PAST_DELAYED_ACK);
    let accepted: usize = servers.iter().map(|s| accepted(s).len()).sum();
    assert_eq!(accepted, 0, "raw probes were accepted");
}

#[test]
fn a_firewall_that_drops_our_resets_leaves_half_open_entries_on_the_target() {
    // What the documentation warns about, and how it says to tell: with the RSTs
    // dropped, the probes still report Ok, but the target keeps a half-open connection
    // per probe (`ss -tn state syn-recv` on the target) and re-sends its SYN-ACK.
    let Some((netns, prober)) = raw_prober("raw probes behind a firewall", Prober::builder())
    else {
        return;
    };
    drop_outgoing_resets(&netns);
    let server = listener(&netns, "127.0.0.1:0");
    let addr = server.local_addr().unwrap();
    let probes = 5;
    assert_eq!(all_up(&prober, vec![addr; probes]), probes);
    thread::sleep(PAST_DELAYED_ACK);
    assert_eq!(half_open(&netns, addr.port()), probes, "one per probe");
    // Still there past the listener's first SYN-ACK retransmission (1 s), which the
    // kernel resets again, and the firewall drops again.
    thread::sleep(Duration::from_millis(1200) - PAST_DELAYED_ACK);
    assert_eq!(half_open(&netns, addr.port()), probes);
    assert!(
        accepted(&server).is_empty(),
        "nothing completed the handshake"
    );
}

#[test]
fn a_stateful_host_firewall_lets_the_replies_in_and_the_resets_out() {
    // The usual host firewall: nothing comes in unless it belongs to a connection the
    // host started (conntrack tracks the raw engine's SYNs as it tracks a connect's),
    // and INVALID packets are dropped both ways. Here the namespace is both prober and
    // target, so the listener's port is open to new connections.
    let Some((netns, prober)) = raw_prober("raw probes behind conntrack", Prober::builder()) else {
        return;
    };
    let server = listener(&netns, "127.0.0.1:0");
    let closed = closed_port(&netns, "127.0.0.1");
    let (open, refusing) = (
        server.local_addr().unwrap().port().to_string(),
        closed.port().to_string(),
    );
    for rule in [
        &[
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "INVALID",
            "-j",
            "DROP",
        ][..],
        &[
            "-A",
            "OUTPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "INVALID",
            "-j",
            "DROP",
        ],
        &[
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ],
        &["-A", "INPUT", "-p", "tcp", "--dport", &open, "-j", "ACCEPT"],
        &[
            "-A", "INPUT", "-p", "tcp", "--dport", &refusing, "-j", "ACCEPT",
        ],
        &["-P", "INPUT", "DROP"],
    ] {
        firewall(&netns, false, rule);
    }
    let addr = server.local_addr().unwrap();
    let probes = 200;
    assert_eq!(all_up(&prober, vec![addr; probes]), probes);
    let result = runtime().block_on(prober.probe_addr(closed, Duration::from_secs(2)));
    assert!(matches!(result, Err(ProbeError::Refused)), "{result:?}");
    // The kernel's RSTs passed too: no half-open entry is left.
    let cleared = wait_until(Duration::from_secs(1), || {
        half_open(&netns, addr.port()) == 0
    });
    assert!(
        cleared.is_some(),
        "{} half-open entries left",
        half_open(&netns, addr.port())
    );
    thread::sleep(PAST_DELAYED_ACK);
    assert!(accepted(&server).is_empty());
}

/// The messages of every WARN and ERROR event in this process since [`warnings`] was
/// first called, from every thread (the engine's included).
fn warnings() -> Vec<String> {
    use std::fmt::Write;
    use std::sync::Mutex;
    use tracing::span;

    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    struct Collect;
    impl tracing::Subscriber for Collect {
        fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
            *metadata.level() <= tracing::Level::WARN
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    let _ = write!(self.0, "{}={value:?} ", field.name());
                }
            }
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            SEEN.lock().unwrap().push(fields.0);
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }
    // Process-wide, so that it hears the engine thread; set once, by whichever test asks
    // first.
    let _ = tracing::subscriber::set_global_default(Collect);
    SEEN.lock().unwrap().clone()
}

#[test]
fn lost_resets_are_reported_once_the_targets_resend_their_syn_acks() {
    // The log line the documentation points to: targets that never get our RST re-send
    // their SYN-ACK after a second, to a probe that has ended.
    let said = |warnings: &[String]| {
        warnings
            .iter()
            .filter(|w| w.contains("re-sending SYN-ACKs"))
            .count()
    };
    let before = said(&warnings());
    let Some((netns, prober)) = raw_prober("raw probes behind a firewall", Prober::builder())
    else {
        return;
    };
    drop_outgoing_resets(&netns);
    // 120 probes (the engine says nothing below 100 answers), 60 half-open entries per
    // listener: below a backlog of 128, past which the listener would answer with SYN
    // cookies, which it does not re-send.
    let servers: Vec<_> = (0..2).map(|_| listener(&netns, "127.0.0.1:0")).collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
    let start = Instant::now();
    assert_eq!(
        all_up(&prober, (0..120).map(|i| addrs[i % 2]).collect()),
        120
    );
    let at = start.elapsed();
    if at < Duration::from_millis(800) {
        assert_eq!(
            said(&warnings()),
            before,
            "said before any SYN-ACK came late"
        );
    }
    let heard = wait_until(Duration::from_millis(2500), || said(&warnings()) > before);
    assert!(heard.is_some(), "no warning: {:?}", warnings());
    let warning = warnings()
        .into_iter()
        .rfind(|w| w.contains("re-sending"))
        .unwrap();
    assert!(warning.contains("61000..=65535"), "{warning}");
    // Said once per prober.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(said(&warnings()), before + 1);
}

/// The rule the docs name as the one that keeps the kernel's RSTs from the targets.
fn drop_outgoing_resets(netns: &connhealth_testkit::Netns) {
    let rule = [
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "--tcp-flags",
        "RST",
        "RST",
        "-j",
        "DROP",
    ];
    firewall(netns, false, &rule);
}
