//! The raw engine's wire: half-open probes without a socket each.
//!
//! The engine ([`super::engine`]) keeps its table, limits, deadlines and queues whichever
//! wire it runs; with this one, a probe in flight holds a source port instead of a
//! socket. This module owns what is particular to it:
//!
//! * **Sending.** [`Raw::start`] picks a source port for the probe and builds its SYN
//!   (`packet.rs`) into a batch; [`Raw::flush`] sends the batch with one `sendmmsg` per
//!   address family, once per engine turn.
//! * **Validation.** A SYN's sequence number is a keyed hash of the target's address and
//!   port and our source port ([`Raw::sequence`]; std's SipHash with a key drawn at
//!   random when the engine starts). A reply counts only when it comes from the probe's
//!   target, to the probe's port, and acknowledges that number (an ICMP error: quotes
//!   it). Whoever cannot see our SYNs cannot forge an answer to them.
//! * **Receiving.** [`Raw::receive`] reads a batch of replies from one of the raw
//!   sockets and hands the engine each one that names a probe in flight.
//! * **Ports** (`ports.rs`): a range the kernel never picks for its own sockets. A
//!   probe's port is unique among the probes in flight to its destination, as a
//!   connect's is.
//! * **Retransmission.** The engine re-sends a SYN that has no answer on the kernel's
//!   schedule (1 s, then 2 s, 4 s, ...: [`retransmit_at`]) until the probe's timeout.

use std::collections::hash_map::{HashMap, RandomState};
use std::hash::BuildHasher;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

mod packet;
mod ports;

pub(crate) use self::packet::Answer;
use self::packet::{Syn, SynFields};
use super::inbox::ProbeId;
use crate::sys::probe::{self as sys, Heard, Poller, RawSockets};

/// The raw sockets' tokens in the engine's poller: just below the waker's.
const FIRST_TOKEN: u64 = sys::WAKE_TOKEN - 1;

/// How long a looked-up source address is trusted before it is asked again (routes
/// change; a lookup is four system calls).
const SOURCE_TTL: Duration = Duration::from_secs(10);

/// At most this many datagrams are read from one raw socket per engine turn, so that
/// a flood of replies cannot hold back the turn's other steps.
const MAX_READ_PER_TURN: usize = 256;

/// The kernel's SYN retries (`net.ipv4.tcp_syn_retries`' default).
const MAX_RETRANSMITS: u8 = 6;

/// The engine's raw wire: its sockets, its source ports, the probes in flight by
/// destination and port, and the SYNs of this turn.
pub(crate) struct Raw {
    sockets: RawSockets,
    key: RandomState,
    ports: RangeInclusive<u16>,
    /// The next port to try, as an offset into `ports`.
    cursor: u32,
    in_flight: HashMap<(SocketAddr, u16), ProbeId>,
    sources: HashMap<Ipv4Addr, (Ipv4Addr, Instant)>,
    batch4: Batch,
    batch6: Batch,
    /// The timestamp option's clock: milliseconds since `epoch`, from a random start (as
    /// Linux offsets each connection's), so the option does not tell the engine's age.
    epoch: Instant,
    timestamp_offset: u32,
    /// Replies that answered a probe, and valid SYN-ACKs that came after their probe
    /// ended: many of the latter mean the targets never got our RST (a firewall?).
    answered: u64,
    late: u64,
    warned: bool,
}

/// The SYNs of one family waiting for [`Raw::flush`], with the probes they belong to.
#[derive(Default)]
struct Batch {
    syns: Vec<Syn>,
    to: Vec<SocketAddr>,
    ids: Vec<ProbeId>,
}

impl Batch {
    fn push(&mut self, syn: Syn, to: SocketAddr, id: ProbeId) {
        self.syns.push(syn);
        self.to.push(to);
        self.ids.push(id);
    }
}

/// When the `n`th retransmission of a SYN first sent at `start` is due (n from 1), as the
/// kernel schedules it: the timeout starts at 1 s and doubles. `None` once the kernel
/// would have given up.
pub(crate) fn retransmit_at(start: Instant, n: u8) -> Option<Instant> {
    (n <= MAX_RETRANSMITS).then(|| start + Duration::from_secs((1u64 << n) - 1))
}

impl Raw {
    /// Opens the raw sockets on `ports` (or the default range) and registers them with
    /// `poller`. The error says why, and what to do.
    pub(crate) fn open(ports: Option<RangeInclusive<u16>>, poller: &mut Poller) -> io::Result<Raw> {
        let ports = match ports {
            Some(ports) if ports.is_empty() || *ports.start() == 0 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("raw_source_ports {ports:?} is empty or includes port 0"),
                ))
            }
            Some(ports) => ports,
            None => ports::default_range(
                sys::sysctl("net.ipv4.ip_local_reserved_ports").as_deref(),
                sys::sysctl("net.ipv4.ip_local_port_range").as_deref(),
            )
            .map_err(io::Error::other)?,
        };
        let sockets = RawSockets::open(&ports).map_err(|err| match err.raw_os_error() {
            Some(code) if code == EPERM || code == EACCES => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "raw sockets need CAP_NET_RAW ({err}): run as root, grant it \
                     (`setcap cap_net_raw+ep`, or `AmbientCapabilities=CAP_NET_RAW` \
                     in a systemd unit)"
                ),
            ),
            _ => err,
        })?;
        sockets.register(poller, FIRST_TOKEN)?;
        let key = RandomState::new();
        let cursor = key.hash_one("cursor") as u32 % ports::len(&ports);
        Ok(Raw {
            sockets,
            timestamp_offset: key.hash_one("timestamps") as u32,
            key,
            ports,
            cursor,
            in_flight: HashMap::new(),
            sources: HashMap::new(),
            batch4: Batch::default(),
            batch6: Batch::default(),
            epoch: Instant::now(),
            answered: 0,
            late: 0,
            warned: false,
        })
    }

    /// The socket a poller token names, if it is one of ours.
    pub(crate) fn heard(token: u64) -> Option<Heard> {
        RawSockets::heard(FIRST_TOKEN, token)
    }

    /// The sequence number of our SYN from `port` to `target`, and so of every reply to it.
    fn sequence(&self, target: SocketAddr, port: u16) -> u32 {
        self.key.hash_one((target, port)) as u32
    }

    /// Takes a source port for a probe `id` of `target` (a [`destination`]) and batches
    /// its SYN. `EADDRNOTAVAIL` when every port is in flight to `target`; the errors of
    /// a source address that cannot be found (no route: `ENETUNREACH`).
    ///
    /// [`destination`]: super::destination::destination
    pub(crate) fn start(&mut self, id: ProbeId, target: SocketAddr) -> io::Result<u16> {
        let target = wire_addr(target);
        if target.is_ipv6() && !self.sockets.has_ipv6() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "IPv6 raw sockets could not be opened on this host",
            ));
        }
        let count = ports::len(&self.ports);
        for step in 0..count {
            let offset = (self.cursor + step) % count;
            let port = *self.ports.start() + offset as u16;
            if self.in_flight.contains_key(&(target, port)) {
                continue; // in flight to this target already: the next one
            }
            let syn = self.syn(target, port)?;
            self.cursor = (offset + 1) % count;
            self.in_flight.insert((target, port), id);
            self.batch(id, target, syn);
            return Ok(port);
        }
        Err(io::Error::from_raw_os_error(EADDRNOTAVAIL))
    }

    /// Batches the SYN of probe `id` again (its retransmission).
    pub(crate) fn resend(&mut self, id: ProbeId, target: SocketAddr, port: u16) {
        let target = wire_addr(target);
        // The source was found when the probe started; if the route went since, the
        // retransmission is skipped and the probe times out, as the kernel's would.
        if let Ok(syn) = self.syn(target, port) {
            self.batch(id, target, syn);
        }
    }

    /// Gives `port` back: the probe of `target` ended.
    pub(crate) fn end(&mut self, target: SocketAddr, port: u16) {
        self.in_flight.remove(&(wire_addr(target), port));
    }

    fn batch(&mut self, id: ProbeId, target: SocketAddr, syn: Syn) {
        match target {
            SocketAddr::V4(_) => self.batch4.push(syn, target, id),
            SocketAddr::V6(_) => self.batch6.push(syn, target, id),
        }
    }

    fn syn(&mut self, target: SocketAddr, port: u16) -> io::Result<Syn> {
        let sum_for = match target {
            SocketAddr::V4(v4) => Some((self.source(*v4.ip())?, *v4.ip())),
            SocketAddr::V6(_) => None,
        };
        let fields = SynFields {
            source_port: port,
            port: target.port(),
            sequence: self.sequence(target, port),
            timestamp: (self.epoch.elapsed().as_millis() as u32)
                .wrapping_add(self.timestamp_offset),
        };
        Ok(packet::syn(fields, sum_for))
    }

    /// The source address of packets to `to`, cached for [`SOURCE_TTL`].
    fn source(&mut self, to: Ipv4Addr) -> io::Result<Ipv4Addr> {
        let now = Instant::now();
        if let Some(&(source, at)) = self.sources.get(&to) {
            if now.saturating_duration_since(at) < SOURCE_TTL {
                return Ok(source);
            }
        }
        let source = sys::source_for(to)?;
        if self.sources.len() >= 65536 {
            self.sources
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < SOURCE_TTL);
        }
        self.sources.insert(to, (source, now));
        Ok(source)
    }

    /// Sends the turn's SYNs. A SYN the system refused for good (no route) is reported
    /// in `failed` with its error, for the engine to end its probe. Returns false when the
    /// system was out of buffers (`ENOBUFS`, `EAGAIN`): the SYNs not sent stay batched,
    /// and the engine flushes again shortly.
    pub(crate) fn flush(&mut self, failed: &mut Vec<(ProbeId, io::Error)>) -> bool {
        let all4 = flush_batch(&mut self.sockets, &mut self.batch4, failed);
        let all6 = flush_batch(&mut self.sockets, &mut self.batch6, failed);
        all4 && all6
    }

    /// Reads the datagrams queued on the socket `heard`, up to [`MAX_READ_PER_TURN`], and
    /// appends each valid reply to a probe in flight to `answers`. (The poller reports the
    /// socket again while more are queued.)
    pub(crate) fn receive(
        &mut self,
        heard: Heard,
        answers: &mut Vec<(ProbeId, Answer)>,
    ) -> io::Result<()> {
        let mut read = 0;
        while read < MAX_READ_PER_TURN {
            let batch = self.receive_batch(heard, answers)?;
            read += batch;
            if batch < sys::RECV_BATCH {
                break;
            }
        }
        self.warn_if_resets_are_lost();
        Ok(())
    }

    fn receive_batch(
        &mut self,
        heard: Heard,
        answers: &mut Vec<(ProbeId, Answer)>,
    ) -> io::Result<usize> {
        let Raw {
            sockets,
            key,
            in_flight,
            answered,
            late,
            ..
        } = self;
        sockets.receive(heard, |datagram, from| {
            let Some(reply) = parse(heard, datagram, from) else {
                return;
            };
            let sequence = key.hash_one((reply.target, reply.source_port)) as u32;
            if reply.sequence != sequence {
                return; // not an answer to any SYN of ours: stray, or forged
            }
            match in_flight.get(&(reply.target, reply.source_port)) {
                Some(&id) => {
                    *answered += 1;
                    answers.push((id, reply.answer));
                }
                None if reply.answer == Answer::SynAck => *late += 1,
                None => {}
            }
        })
    }

    /// Targets that never get our RST keep their half-open connection and re-send their
    /// SYN-ACK (after 1 s, 3 s, 7 s, ...): those arrive after their probe ended. A few
    /// are normal (answers to a retransmitted SYN); as many as the probes answered mean
    /// that something drops the RSTs. Said once.
    fn warn_if_resets_are_lost(&mut self) {
        if !self.warned && self.answered >= 100 && self.late * 2 >= self.answered {
            self.warned = true;
            tracing::warn!(
                late_syn_acks = self.late,
                answered = self.answered,
                "connhealth raw probe engine: targets keep re-sending SYN-ACKs after their \
                 probe ended, so the kernel's RST does not reach them and each probe leaves \
                 a half-open connection on its target for about a minute. Is a firewall \
                 dropping outgoing RSTs from ports {:?}? Allow them, or build the prober \
                 with .raw(false).",
                self.ports
            );
        }
    }
}

fn parse(heard: Heard, datagram: &[u8], from: Option<SocketAddrV6>) -> Option<packet::Reply> {
    #[cfg(target_os = "linux")]
    {
        match (heard, from) {
            (Heard::Tcp4, _) => packet::tcp4(datagram),
            (Heard::Icmp4, _) => packet::icmp4(datagram),
            (Heard::Tcp6, Some(from)) => packet::tcp6(datagram, from),
            (Heard::Icmp6, Some(from)) => packet::icmp6(datagram, from),
            (Heard::Tcp6 | Heard::Icmp6, None) => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (datagram, from);
        match heard {}
    }
}

fn flush_batch(
    sockets: &mut RawSockets,
    batch: &mut Batch,
    failed: &mut Vec<(ProbeId, io::Error)>,
) -> bool {
    let mut at = 0;
    let mut all = true;
    while at < batch.syns.len() {
        let (sent, err) = sockets.send(&batch.syns[at..], &batch.to[at..]);
        at += sent;
        let Some(err) = err else {
            break;
        };
        match err.raw_os_error() {
            Some(code) if code == ENOBUFS || code == EAGAIN => {
                all = false;
                break;
            }
            // A local firewall dropped it (EPERM): as with the kernel's own SYN, the
            // probe waits for its retransmission or its timeout.
            Some(code) if code == EPERM => at += 1,
            _ => {
                failed.push((batch.ids[at], err));
                at += 1;
            }
        }
    }
    batch.syns.drain(..at);
    batch.to.drain(..at);
    batch.ids.drain(..at);
    all
}

/// The address a probe's packets go to and its replies come from: an IPv6 address keeps
/// its scope only when it is link-local (where it names the link), as replies have it.
/// The unspecified address is the loopback: `connect()` to `0.0.0.0` or `::` reaches
/// this host (a BSD-ism Linux keeps), the answer comes from `127.0.0.1` or `::1`, and
/// the socket engine reports it; keyed by the unspecified address, the answer would
/// match no probe and the probe would time out.
fn wire_addr(target: SocketAddr) -> SocketAddr {
    match target {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), v4.port())
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            SocketAddrV6::new(Ipv6Addr::LOCALHOST, v6.port(), 0, 0).into()
        }
        SocketAddr::V6(v6) if !v6.ip().is_unicast_link_local() => {
            SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0).into()
        }
        other => other,
    }
}

// The few errno values this module tells apart: Linux's, the only system it runs on
// (spelled out so that the portable build of this file needs no libc).
const EPERM: i32 = 1;
const EAGAIN: i32 = 11;
const EACCES: i32 = 13;
const EADDRNOTAVAIL: i32 = 99;
const ENOBUFS: i32 = 105;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_follow_the_kernels_schedule() {
        let t0 = Instant::now();
        let at: Vec<_> = (1..=7).map(|n| retransmit_at(t0, n)).collect();
        let secs: Vec<_> = at.iter().flatten().map(|at| (*at - t0).as_secs()).collect();
        assert_eq!(secs, [1, 3, 7, 15, 31, 63]);
        assert_eq!(at[6], None);
    }
}
