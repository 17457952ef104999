//! Replies the raw engine must not believe. A reply counts only when it comes from the
//! probe's target, to the probe's source port, and acknowledges the SYN's sequence
//! number (an ICMP error: quotes it). The test watches our SYNs arrive, forges replies
//! that get one of those wrong, and then the true ones, which prove that the forgeries
//! could have ended the probe.

#![cfg(target_os = "linux")]

mod probe_support;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::thread;
use std::time::{Duration, Instant};

use connhealth::{ProbeError, Prober};
use connhealth_testkit::Netns;
use probe_support::raw::{closed_port, firewall, raw_prober};
use probe_support::runtime;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A SYN the test saw arriving: where it came from and the sequence number it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeenSyn {
    from: SocketAddrV4,
    sequence: u32,
}

/// The firewall mark (`SO_MARK`) of the test's forged segments, which tells them from
/// the kernel's own.
const FORGED: u32 = 0x7e57;

/// A raw IPv4 socket of `protocol` inside `netns`, bound to `ip` (when given): it sees
/// every packet of the protocol to that address that passed the namespace's firewall,
/// and sends packets whose header past IP's the test writes (the kernel adds the IP
/// header, from the bound address), marked [`FORGED`].
fn raw_socket(netns: &Netns, protocol: Protocol, ip: Option<Ipv4Addr>) -> Socket {
    netns
        .enter(|| {
            let socket = Socket::new(Domain::IPV4, Type::RAW, Some(protocol)).unwrap();
            socket.set_mark(FORGED).unwrap();
            if let Some(ip) = ip {
                socket
                    .bind(&SockAddr::from(SocketAddrV4::new(ip, 0)))
                    .unwrap();
            }
            socket
        })
        .unwrap()
}

/// The next SYN to `port` that `sniffer` sees within `within`, with its source port not
/// among `skip`.
fn next_syn(sniffer: &Socket, port: u16, skip: &[u16], within: Duration) -> SeenSyn {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no SYN to port {port} within {within:?}");
        sniffer.set_read_timeout(Some(left)).unwrap();
        let Ok(n) = (&*sniffer).read(&mut buf) else {
            continue;
        };
        let p = &buf[..n];
        let header = usize::from(p[0] & 0x0f) * 4;
        let Some(tcp) = p.get(header..header + 20) else {
            continue;
        };
        let from = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let source_port = u16::from_be_bytes([tcp[0], tcp[1]]);
        let is_syn = tcp[13] & 0x12 == 0x02;
        if is_syn && u16::from_be_bytes([tcp[2], tcp[3]]) == port && !skip.contains(&source_port) {
            // A target drops a SYN whose checksum is wrong, and the probe only times
            // out: say why here. It is summed over the addresses the kernel put in the
            // IP header.
            let segment = &p[header..];
            let mut summed = Vec::from(&p[12..20]);
            summed.extend([0, 6]);
            summed.extend((segment.len() as u16).to_be_bytes());
            summed.extend(segment);
            summed.resize(summed.len().next_multiple_of(2), 0);
            assert_eq!(
                checksum(&summed),
                0,
                "a SYN with a bad checksum: {segment:02x?}"
            );
            return SeenSyn {
                from: SocketAddrV4::new(from, source_port),
                sequence: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            };
        }
    }
}

const SYN_ACK: u8 = 0x12;
const RST_ACK: u8 = 0x14;

/// A reply the test forges to a SYN it saw, as anyone on the path could.
#[derive(Debug, Clone, Copy)]
enum Forged {
    /// A TCP segment with `flags` from `from` to `to`, acknowledging `ack`.
    Tcp {
        from: SocketAddrV4,
        to: SocketAddrV4,
        flags: u8,
        ack: u32,
    },
    /// An ICMP host unreachable to `to`'s address, quoting a SYN from `to` to `target`
    /// that carries `sequence`.
    Unreachable {
        to: SocketAddrV4,
        target: SocketAddrV4,
        sequence: u32,
    },
}

/// Raw sockets inside a namespace that send [`Forged`] replies, with valid checksums
/// and the mark [`FORGED`]: one TCP socket per source address, and one ICMP socket.
struct Forger {
    tcp: Vec<(Ipv4Addr, Socket)>,
    icmp: Socket,
}

impl Forger {
    fn new(netns: &Netns, sources: &[Ipv4Addr]) -> Forger {
        let tcp = sources
            .iter()
            .map(|&ip| (ip, raw_socket(netns, Protocol::TCP, Some(ip))))
            .collect();
        let icmp = raw_socket(netns, Protocol::ICMPV4, None);
        Forger { tcp, icmp }
    }

    fn send(&self, forged: Forged) {
        let (socket, to, packet) = match forged {
            Forged::Tcp {
                from,
                to,
                flags,
                ack,
            } => {
                let mut tcp = [0u8; 20];
                tcp[0..2].copy_from_slice(&from.port().to_be_bytes());
                tcp[2..4].copy_from_slice(&to.port().to_be_bytes());
                tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
                tcp[8..12].copy_from_slice(&ack.to_be_bytes());
                tcp[12] = 5 << 4;
                tcp[13] = flags;
                tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
                // Summed over the pseudo-header (addresses, protocol, length) too.
                let mut summed = Vec::from(from.ip().octets());
                summed.extend(to.ip().octets());
                summed.extend([0, 6, 0, 20]);
                summed.extend(tcp);
                tcp[16..18].copy_from_slice(&checksum(&summed).to_be_bytes());
                let socket = self.tcp.iter().find(|(ip, _)| ip == from.ip());
                (
                    &socket.expect("a socket for the source").1,
                    to,
                    tcp.to_vec(),
                )
            }
            Forged::Unreachable {
                to,
                target,
                sequence,
            } => {
                // Type 3 code 1, then the quoted SYN: its IP header and first 8 bytes.
                let mut icmp = vec![3, 1, 0, 0, 0, 0, 0, 0];
                icmp.extend([0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0]);
                icmp.extend(to.ip().octets());
                icmp.extend(target.ip().octets());
                icmp.extend(to.port().to_be_bytes());
                icmp.extend(target.port().to_be_bytes());
                icmp.extend(sequence.to_be_bytes());
                let sum = checksum(&icmp);
                icmp[2..4].copy_from_slice(&sum.to_be_bytes());
                (&self.icmp, to, icmp)
            }
        };
        let to = SockAddr::from(SocketAddrV4::new(*to.ip(), 0));
        assert_eq!(socket.send_to(&packet, &to).unwrap(), packet.len());
    }
}

/// The Internet checksum (RFC 1071) of `bytes`, of even length.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks_exact(2)
        .map(|word| u32::from(u16::from_be_bytes([word[0], word[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Starts a probe of `target` on `rt`, for the test to answer while it is in flight.
fn spawn_probe(
    rt: &tokio::runtime::Runtime,
    prober: &Prober,
    target: SocketAddrV4,
    timeout: Duration,
) -> tokio::task::JoinHandle<Result<Duration, ProbeError>> {
    let prober = prober.clone();
    rt.spawn(async move { prober.probe_addr(target.into(), timeout).await })
}

#[test]
fn forged_replies_are_ignored_and_true_ones_are_not() {
    let Some((netns, prober)) = raw_prober("forged replies to raw probes", Prober::builder())
    else {
        return;
    };
    // A silent target: nothing listens on the port, and the firewall drops the kernel's
    // RSTs from it (but not the test's, which carry the mark [`FORGED`]), so only the
    // test's forgeries answer. (A DROP on INPUT would hide our SYNs from the test's raw
    // socket too: raw sockets see what passed INPUT.)
    let target = match closed_port(&netns, "127.0.0.1") {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => unreachable!(),
    };
    let port = target.port().to_string();
    let mark = FORGED.to_string();
    firewall(
        &netns,
        false,
        &[
            "-I",
            "OUTPUT",
            "-p",
            "tcp",
            "--sport",
            &port,
            "--tcp-flags",
            "RST",
            "RST",
            "-m",
            "mark",
            "!",
            "--mark",
            &mark,
            "-j",
            "DROP",
        ],
    );
    let sniffer = raw_socket(&netns, Protocol::TCP, None);
    let elsewhere = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), target.port());
    let forger = Forger::new(&netns, &[*target.ip(), *elsewhere.ip()]);
    let rt = runtime();
    // Every probe's port so far: a new probe's SYN is the first from another one.
    let mut ports = Vec::new();

    // (a), (b): replies that name the probe's SYN wrongly, each in a way of its own.
    let timeout = Duration::from_millis(2500);
    let start = Instant::now();
    let probe = spawn_probe(&rt, &prober, target, timeout);
    let syn = next_syn(&sniffer, target.port(), &ports, Duration::from_secs(1));
    ports.push(syn.from.port());
    let right = syn.sequence.wrapping_add(1);
    let to_another_port = SocketAddrV4::new(*syn.from.ip(), syn.from.port() ^ 1);
    let tcp = |from, to, flags, ack| Forged::Tcp {
        from,
        to,
        flags,
        ack,
    };
    for forged in [
        // From the target, acknowledging a wrong number (one off either way).
        tcp(target, syn.from, SYN_ACK, right.wrapping_add(1)),
        tcp(target, syn.from, SYN_ACK, syn.sequence),
        tcp(target, syn.from, RST_ACK, right.wrapping_add(1)),
        // From another address, same port, acknowledging the right number.
        tcp(elsewhere, syn.from, SYN_ACK, right),
        tcp(elsewhere, syn.from, RST_ACK, right),
        // From the target with the right number, to another of our ports.
        tcp(target, to_another_port, SYN_ACK, right),
        // An ICMP error quoting the SYN with a wrong number, or another target.
        Forged::Unreachable {
            to: syn.from,
            target,
            sequence: right,
        },
        Forged::Unreachable {
            to: syn.from,
            target: elsewhere,
            sequence: syn.sequence,
        },
    ] {
        forger.send(forged);
    }
    thread::sleep(Duration::from_millis(200));
    if probe.is_finished() {
        panic!("a forged reply ended the probe: {:?}", rt.block_on(probe));
    }
    // The engine retransmits the SYN at 1 s, unchanged: the same port and number.
    let again = next_syn(&sniffer, target.port(), &[], Duration::from_millis(1500));
    assert_eq!(again, syn, "the retransmitted SYN");
    let at = start.elapsed();
    assert!(at >= Duration::from_secs(1), "retransmitted after {at:?}");
    let result = rt.block_on(probe).unwrap();
    assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
    assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());

    // (c): the true answers, forged the same way, end a probe at once: so the forgeries
    // above could have, had the engine believed them.
    #[derive(Debug, Clone, Copy)]
    enum True {
        SynAck,
        Reset,
        Unreachable,
    }
    for answer in [True::SynAck, True::Reset, True::Unreachable] {
        let start = Instant::now();
        let probe = spawn_probe(&rt, &prober, target, Duration::from_secs(2));
        let syn = next_syn(&sniffer, target.port(), &ports, Duration::from_secs(1));
        ports.push(syn.from.port());
        let right = syn.sequence.wrapping_add(1);
        forger.send(match answer {
            True::SynAck => tcp(target, syn.from, SYN_ACK, right),
            True::Reset => tcp(target, syn.from, RST_ACK, right),
            True::Unreachable => Forged::Unreachable {
                to: syn.from,
                target,
                sequence: syn.sequence,
            },
        });
        let result = rt.block_on(probe).unwrap();
        let expected = match (answer, &result) {
            (True::SynAck, Ok(_)) | (True::Reset, Err(ProbeError::Refused)) => true,
            (True::Unreachable, Err(ProbeError::Unreachable(err))) => {
                err.raw_os_error() == Some(libc::EHOSTUNREACH)
            }
            _ => false,
        };
        assert!(expected, "{answer:?}: {result:?}");
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(1), "{answer:?}: {elapsed:?}");
    }
}
