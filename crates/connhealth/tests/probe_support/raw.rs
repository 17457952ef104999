//! Shared by the raw engine's tests (`probe_raw*.rs`): a namespace with a `Mode::Raw`
//! prober built inside it, listeners and closed ports there, its firewall, and what `ss`
//! shows of its listeners.
#![allow(dead_code)] // not every raw test file uses every helper

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use connhealth::{Mode, ProbeEngine, Prober, ProberBuilder};
use connhealth_testkit::{require, Netns};

use super::runtime;

/// Longer than the delayed-ACK timer (~200 ms at most): had anything acknowledged a
/// SYN-ACK, the listener would hold a connection by then.
pub const PAST_DELAYED_ACK: Duration = Duration::from_millis(300);

/// The tools the namespace tests use.
pub const TOOLS: &[&str] = &["ip", "iptables", "ip6tables", "ss"];

/// A namespace, and the prober `builder` builds inside it, which must run the raw
/// engine. `None` when this machine cannot run the test (under CI: a panic).
pub fn raw_prober(what: &str, builder: ProberBuilder) -> Option<(Netns, Prober)> {
    if !require(what, TOOLS) {
        return None;
    }
    let netns = Netns::new().unwrap();
    let prober = netns.enter(|| builder.mode(Mode::Raw).build()).unwrap();
    assert_eq!(prober.engine(), Some(ProbeEngine::Raw));
    Some((netns, prober))
}

/// A nonblocking listener on `addr` inside `netns`; it accepts nothing unless asked.
pub fn listener(netns: &Netns, addr: &str) -> TcpListener {
    let listener = netns.enter(|| TcpListener::bind(addr).unwrap()).unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// A port of `ip` inside `netns` where nothing listens: bound and dropped.
pub fn closed_port(netns: &Netns, ip: &str) -> SocketAddr {
    listener(netns, &format!("{ip}:0")).local_addr().unwrap()
}

/// Runs `iptables` (or `ip6tables` for `v6`) with `rule` inside `netns`.
pub fn firewall(netns: &Netns, v6: bool, rule: &[&str]) {
    let program = if v6 { "ip6tables" } else { "iptables" };
    netns.exec(program, rule).unwrap();
}

/// The half-open connections (`SYN-RECV`) on local port `port` in `netns`, as `ss` shows
/// them: what a target's administrator would look at.
pub fn half_open(netns: &Netns, port: u16) -> usize {
    let filter = format!("( sport = :{port} )");
    let out = netns
        .exec("ss", &["-Htn", "state", "syn-recv", &filter])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Runs `probe_many` of `addrs` to the end; every result must be `Ok`. Returns how many.
pub fn all_up(prober: &Prober, addrs: Vec<SocketAddr>) -> usize {
    runtime().block_on(async {
        let mut stream = prober.probe_many(addrs, Duration::from_secs(5));
        let mut ok = 0;
        while let Some((addr, result)) = stream.next().await {
            assert!(result.is_ok(), "{addr}: {result:?}");
            ok += 1;
        }
        ok
    })
}
