//! The raw engine's packets: the SYN it builds, and the replies it reads back (SYN-ACK,
//! RST, ICMP and ICMPv6 destination unreachable). Bytes in, bytes out: no system calls.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// A SYN's TCP header with its options: 20 bytes of header and 20 of options.
pub(crate) const SYN_LEN: usize = 40;

/// One SYN, as the kernel sends it with a raw socket's IP header (or IPv6's) in front.
pub(crate) type Syn = [u8; SYN_LEN];

/// What a SYN says beyond its ports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SynFields {
    pub(crate) source_port: u16,
    pub(crate) port: u16,
    pub(crate) sequence: u32,
    /// The timestamp option's value (milliseconds on the engine's clock).
    pub(crate) timestamp: u32,
}

/// Builds the SYN `fields` describe, with the options a Linux SYN carries, in Linux's
/// order: MSS, SACK permitted, timestamps, a no-op and window scale. Real stacks and
/// middleboxes answer it as they answer a kernel's SYN. For IPv4 the checksum is summed
/// here over `sum_for`'s (source, destination) pseudo-header; for IPv6 (`None`) the
/// kernel sums it (`IPV6_CHECKSUM`).
pub(crate) fn syn(fields: SynFields, sum_for: Option<(Ipv4Addr, Ipv4Addr)>) -> Syn {
    let mut p = [0u8; SYN_LEN];
    p[0..2].copy_from_slice(&fields.source_port.to_be_bytes());
    p[2..4].copy_from_slice(&fields.port.to_be_bytes());
    p[4..8].copy_from_slice(&fields.sequence.to_be_bytes());
    p[12] = (SYN_LEN as u8 / 4) << 4;
    p[13] = 0x02; // SYN

    // What Linux advertises with a 1460-byte MSS: 44 segments, scaled by 2^7 later.
    let (window, mss): (u16, u16) = match sum_for {
        Some(_) => (64240, 1460),
        None => (64800, 1440),
    };
    p[14..16].copy_from_slice(&window.to_be_bytes());
    p[20..24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
    p[24..26].copy_from_slice(&[4, 2]);
    p[26..28].copy_from_slice(&[8, 10]);
    p[28..32].copy_from_slice(&fields.timestamp.to_be_bytes());
    // p[32..36]: the echoed timestamp, zero in a SYN.
    p[36..40].copy_from_slice(&[1, 3, 3, 7]);
    if let Some((source, destination)) = sum_for {
        let mut sum = sum16(&source.octets(), 0);
        sum = sum16(&destination.octets(), sum);
        sum += 6 + SYN_LEN as u32; // protocol and TCP length
        let checksum = fold(sum16(&p, sum));
        p[16..18].copy_from_slice(&checksum.to_be_bytes());
    }
    p
}

/// The one's-complement sum of big-endian 16-bit words (RFC 1071), added to `sum`; `p`
/// has an even length here.
fn sum16(p: &[u8], mut sum: u32) -> u32 {
    for word in p.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What a reply says about the probe it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A SYN-ACK: something listens.
    SynAck,
    /// An RST (with ACK) answering the SYN: nothing listens.
    Reset,
    /// An ICMP destination unreachable quoting the SYN, as the errno Linux's TCP would
    /// report for it.
    Unreachable(i32),
}

/// A reply to one of our SYNs, before it is checked against the probe it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The target: the reply's source (for ICMP, the quoted SYN's destination).
    pub(crate) target: SocketAddr,
    /// Our port it was sent to.
    pub(crate) source_port: u16,
    /// The sequence number of the SYN it answers: a SYN-ACK's or RST's acknowledgement
    /// minus one, or the quoted SYN's own.
    pub(crate) sequence: u32,
    pub(crate) answer: Answer,
}

/// Reads a datagram of the IPv4 TCP socket: the IP header, then TCP.
pub(crate) fn tcp4(p: &[u8]) -> Option<Reply> {
    let (header, source) = ipv4_header(p, 6)?;
    let tcp = p.get(header..)?;
    tcp_reply(tcp, IpAddr::V4(source), 0)
}

/// Reads a datagram of the IPv6 TCP socket (the TCP header; the sender from `recvmsg`).
pub(crate) fn tcp6(p: &[u8], from: SocketAddrV6) -> Option<Reply> {
    tcp_reply(p, IpAddr::V6(*from.ip()), scope(from.ip(), from.scope_id()))
}

/// Reads a datagram of the ICMP socket: an IP header, a destination unreachable, and the
/// IP header and first 8 bytes of the SYN it quotes.
pub(crate) fn icmp4(p: &[u8]) -> Option<Reply> {
    let (header, _) = ipv4_header(p, 1)?;
    let icmp = p.get(header..)?;
    let (&kind, &code) = (icmp.first()?, icmp.get(1)?);
    if kind != 3 {
        return None;
    }
    // As Linux's icmp_err_convert: what connect() would have returned.
    let errno = match code {
        0 | 6 | 9 | 11 => libc_errno::ENETUNREACH,
        1 | 7 | 10 | 12 | 13 | 14 | 15 => libc_errno::EHOSTUNREACH,
        2 => libc_errno::ENOPROTOOPT,
        3 => libc_errno::ECONNREFUSED,
        // Fragmentation needed: not an answer to a 60-byte SYN; ignore it.
        4 => return None,
        5 => libc_errno::EOPNOTSUPP,
        _ => return None,
    };
    let quoted = icmp.get(8..)?;
    let (header, _) = ipv4_header(quoted, 6)?;
    let destination = Ipv4Addr::new(quoted[16], quoted[17], quoted[18], quoted[19]);
    quoted_syn(quoted.get(header..)?, IpAddr::V4(destination), 0, errno)
}

/// Reads a datagram of the ICMPv6 socket: a destination unreachable, and the IPv6 header
/// and first 8 bytes of the SYN it quotes. `from` (the router or host that sent it)
/// lends its scope to a quoted link-local destination.
pub(crate) fn icmp6(p: &[u8], from: SocketAddrV6) -> Option<Reply> {
    let (&kind, &code) = (p.first()?, p.get(1)?);
    if kind != 1 {
        return None;
    }
    // As Linux's icmpv6_err_convert.
    let errno = match code {
        0 => libc_errno::ENETUNREACH,
        1 | 5 | 6 => libc_errno::EACCES,
        2 | 3 => libc_errno::EHOSTUNREACH,
        4 => libc_errno::ECONNREFUSED,
        _ => return None,
    };
    let quoted = p.get(8..)?;
    if quoted.len() < 40 || quoted[0] >> 4 != 6 || quoted[6] != 6 {
        return None;
    }
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&quoted[24..40]);
    let destination = Ipv6Addr::from(octets);
    let scope = scope(&destination, from.scope_id());
    quoted_syn(&quoted[40..], IpAddr::V6(destination), scope, errno)
}

/// An IPv4 header carrying `protocol`, not a later fragment: its length and source.
fn ipv4_header(p: &[u8], protocol: u8) -> Option<(usize, Ipv4Addr)> {
    let (&version_length, &proto) = (p.first()?, p.get(9)?);
    let header = usize::from(version_length & 0x0f) * 4;
    if version_length >> 4 != 4 || header < 20 || p.len() < header || proto != protocol {
        return None;
    }
    if u16::from_be_bytes([p[6], p[7]]) & 0x1fff != 0 {
        return None;
    }
    Some((header, Ipv4Addr::new(p[12], p[13], p[14], p[15])))
}

fn tcp_reply(tcp: &[u8], from: IpAddr, scope: u32) -> Option<Reply> {
    if tcp.len() < 20 {
        return None;
    }
    let flags = tcp[13];
    let (syn, ack, rst) = (flags & 0x02 != 0, flags & 0x10 != 0, flags & 0x04 != 0);
    let answer = match (syn, ack, rst) {
        (true, true, false) => Answer::SynAck,
        // An RST answering a SYN acknowledges it; a bare RST names no SYN of ours.
        (false, true, true) => Answer::Reset,
        _ => return None,
    };
    let acknowledged = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    Some(Reply {
        target: socket_addr(from, u16::from_be_bytes([tcp[0], tcp[1]]), scope),
        source_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        sequence: acknowledged.wrapping_sub(1),
        answer,
    })
}

fn quoted_syn(tcp: &[u8], destination: IpAddr, scope: u32, errno: i32) -> Option<Reply> {
    let tcp = tcp.get(..8)?;
    Some(Reply {
        target: socket_addr(destination, u16::from_be_bytes([tcp[2], tcp[3]]), scope),
        source_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        sequence: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        answer: Answer::Unreachable(errno),
    })
}

/// The scope an address keeps as a destination: a link-local address's interface, none
/// for any other (as [`destination`](super::super::destination::destination) counts it).
fn scope(ip: &Ipv6Addr, scope_id: u32) -> u32 {
    if ip.is_unicast_link_local() {
        scope_id
    } else {
        0
    }
}

fn socket_addr(ip: IpAddr, port: u16, scope: u32) -> SocketAddr {
    match ip {
        IpAddr::V4(ip) => SocketAddr::new(ip.into(), port),
        IpAddr::V6(ip) => SocketAddrV6::new(ip, port, 0, scope).into(),
    }
}

/// The Linux errno values a reply maps to, spelled out so that this file builds (and
/// its tests run) on every system; the engine reads them through `io::Error` on Linux.
mod libc_errno {
    pub(super) const EACCES: i32 = 13;
    pub(super) const ENOPROTOOPT: i32 = 92;
    pub(super) const EOPNOTSUPP: i32 = 95;
    pub(super) const ENETUNREACH: i32 = 101;
    pub(super) const ECONNREFUSED: i32 = 111;
    pub(super) const EHOSTUNREACH: i32 = 113;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const TARGET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn fields() -> SynFields {
        SynFields {
            source_port: 61001,
            port: 80,
            sequence: 0xdead_beef,
            timestamp: 12345,
        }
    }

    #[test]
    fn a_syn_carries_linux_options_and_a_valid_checksum() {
        let p = syn(fields(), Some((LOCAL, TARGET)));
        assert_eq!(&p[0..4], &[0xee, 0x49, 0, 80]);
        assert_eq!(&p[4..8], &0xdead_beefu32.to_be_bytes());
        assert_eq!(p[12] >> 4, 10, "a 40-byte header");
        assert_eq!(p[13], 0x02, "SYN alone");
        assert_eq!(&p[20..24], &[2, 4, 0x05, 0xb4], "MSS 1460");
        assert_eq!(&p[24..28], &[4, 2, 8, 10], "SACK permitted, timestamps");
        assert_eq!(&p[36..40], &[1, 3, 3, 7], "window scale 7");
        // Summing the pseudo-header and the segment, checksum included, gives 0xffff.
        let mut sum = sum16(&LOCAL.octets(), 0);
        sum = sum16(&TARGET.octets(), sum) + 6 + 40;
        assert_eq!(fold(sum16(&p, sum)), 0);
        // IPv6: the kernel sums it.
        assert_eq!(&syn(fields(), None)[16..18], &[0, 0]);
    }

    fn ipv4(protocol: u8, source: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
        p.extend(source.octets());
        p.extend(LOCAL.octets());
        p.extend_from_slice(payload);
        p
    }

    fn tcp(from_port: u16, to_port: u16, ack: u32, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&from_port.to_be_bytes());
        t[2..4].copy_from_slice(&to_port.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    #[test]
    fn syn_acks_and_resets_name_the_syn_they_answer() {
        let reply = tcp4(&ipv4(6, TARGET, &tcp(80, 61001, 0xdead_bef0, 0x12))).unwrap();
        assert_eq!(
            reply,
            Reply {
                target: "10.0.0.2:80".parse().unwrap(),
                source_port: 61001,
                sequence: 0xdead_beef,
                answer: Answer::SynAck,
            }
        );
        let reset = tcp4(&ipv4(6, TARGET, &tcp(80, 61001, 0, 0x14))).unwrap();
        assert_eq!((reset.answer, reset.sequence), (Answer::Reset, u32::MAX));
        // A bare RST, a bare SYN, an ACK: no answer to a SYN.
        for flags in [0x04, 0x02, 0x10, 0x11] {
            assert_eq!(tcp4(&ipv4(6, TARGET, &tcp(80, 61001, 1, flags))), None);
        }
        let from: SocketAddrV6 = "[fe80::2%3]:0".parse().unwrap();
        let six = tcp6(&tcp(80, 61001, 1, 0x12), from).unwrap();
        assert_eq!(six.target, "[fe80::2%3]:80".parse::<SocketAddr>().unwrap());
        let global: SocketAddrV6 = "[2001:db8::2%3]:0".parse().unwrap();
        let six = tcp6(&tcp(80, 61001, 1, 0x12), global).unwrap();
        assert_eq!(
            six.target,
            "[2001:db8::2]:80".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn unreachables_name_the_quoted_syn_and_its_errno() {
        let mut quoted = vec![0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0];
        quoted.extend(LOCAL.octets());
        quoted.extend(TARGET.octets());
        quoted.extend(&syn(fields(), Some((LOCAL, TARGET)))[..8]);
        let mut icmp = vec![3, 1, 0, 0, 0, 0, 0, 0];
        icmp.extend(&quoted);
        let reply = icmp4(&ipv4(1, Ipv4Addr::new(10, 0, 0, 254), &icmp)).unwrap();
        assert_eq!(reply.target, "10.0.0.2:80".parse::<SocketAddr>().unwrap());
        assert_eq!(reply.source_port, 61001);
        assert_eq!(reply.sequence, 0xdead_beef);
        assert_eq!(reply.answer, Answer::Unreachable(libc_errno::EHOSTUNREACH));
        icmp[1] = 4; // fragmentation needed
        assert_eq!(icmp4(&ipv4(1, TARGET, &icmp)), None);
        icmp[0] = 11; // time exceeded
        assert_eq!(icmp4(&ipv4(1, TARGET, &icmp)), None);

        let mut six = vec![1, 4, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0, 0, 40, 6, 64];
        six.extend("fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        six.extend("fe80::2".parse::<Ipv6Addr>().unwrap().octets());
        six.extend(&syn(fields(), None)[..8]);
        let from: SocketAddrV6 = "[fe80::2%5]:0".parse().unwrap();
        let reply = icmp6(&six, from).unwrap();
        assert_eq!(
            reply.target,
            "[fe80::2%5]:80".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(reply.answer, Answer::Unreachable(libc_errno::ECONNREFUSED));
    }

    #[test]
    fn truncated_and_foreign_datagrams_are_ignored_not_a_panic() {
        let good = ipv4(6, TARGET, &tcp(80, 61001, 1, 0x12));
        for len in 0..good.len() {
            assert_eq!(tcp4(&good[..len]), None, "{len} bytes");
            let _ = icmp4(&good[..len]);
            let _ = icmp6(&good[..len], "[::1]:0".parse().unwrap());
            let _ = tcp6(&good[..len], "[::1]:0".parse().unwrap());
        }
        let mut wrong_version = good.clone();
        wrong_version[0] = 0x65;
        assert_eq!(tcp4(&wrong_version), None);
        let mut udp = good;
        udp[9] = 17;
        assert_eq!(tcp4(&udp), None);
    }
}
