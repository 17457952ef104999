//! The raw engine's sockets, on Linux: four raw sockets, each behind a classic BPF filter
//! on the prober's source ports, and the batched sends and receives over them.
//!
//! | socket | sends | receives (what its filter lets through) |
//! |---|---|---|
//! | `AF_INET`, `IPPROTO_TCP` | IPv4 SYNs (the kernel adds the IP header) | SYN-ACKs and RSTs to our ports, IP header first |
//! | `AF_INET`, `IPPROTO_ICMP` | | destination unreachable quoting a SYN from our ports |
//! | `AF_INET6`, `IPPROTO_TCP` | IPv6 SYNs (`IPV6_CHECKSUM`: the kernel sums them) | SYN-ACKs and RSTs to our ports, TCP header first |
//! | `AF_INET6`, `IPPROTO_ICMPV6` | | destination unreachable quoting a SYN from our ports |
//!
//! A raw socket gets a copy of every packet of its protocol that passed the host's
//! firewall; the filter runs in the kernel, so only our replies are queued for the
//! engine. The kernel's TCP still sees each SYN-ACK, finds no socket on the port, and
//! answers it with the RST that ends the half-open handshake.
//!
//! The IPv6 pair is optional: on a host without IPv6 the engine probes IPv4 alone, and an
//! IPv6 probe fails as the socket engine's would.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use socket2::SockAddr;

use super::{cvt, Poller};

/// Which of the engine's raw sockets a datagram came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    Tcp4,
    Icmp4,
    Tcp6,
    Icmp6,
}

const KINDS: [Heard; 4] = [Heard::Tcp4, Heard::Icmp4, Heard::Tcp6, Heard::Icmp6];

/// Up to this many datagrams per `recvmmsg`.
const RECV_BATCH: usize = 64;
/// Bytes kept of each datagram: the IPv4 header (with options) and the TCP header, or an
/// ICMP header quoting an IP header and the first bytes of our SYN. The filter truncates
/// to this in the kernel too.
const SNAP: usize = 128;

/// The engine's raw sockets and their send and receive buffers.
pub(crate) struct RawSockets {
    sockets: [Option<OwnedFd>; 4],
    // Reused by every send: one header, iovec and address per datagram of the batch.
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    names: Vec<SockAddr>,
    // Reused by every receive.
    buffers: Box<[[u8; SNAP]; RECV_BATCH]>,
    recv_names: Box<[libc::sockaddr_in6; RECV_BATCH]>,
    recv_iovecs: Box<[libc::iovec; RECV_BATCH]>,
    recv_headers: Box<[libc::mmsghdr; RECV_BATCH]>,
}

// SAFETY: the raw pointers in the reused header and iovec buffers point into buffers the
// struct owns (or, for sends, into the caller's packets for the length of one call); they
// are rebuilt before every call and never shared between threads.
unsafe impl Send for RawSockets {}

impl RawSockets {
    /// Opens the sockets and attaches their filters for source ports `ports`. Fails with
    /// the error of the first IPv4 socket (`EPERM` without `CAP_NET_RAW`).
    pub(crate) fn open(ports: &RangeInclusive<u16>) -> io::Result<RawSockets> {
        let (lo, hi) = (u32::from(*ports.start()), u32::from(*ports.end()));
        let tcp4 = raw_socket(libc::AF_INET, libc::IPPROTO_TCP)?;
        attach(&tcp4, &filter_tcp4(lo, hi))?;
        let icmp4 = raw_socket(libc::AF_INET, libc::IPPROTO_ICMP)?;
        attach(&icmp4, &filter_icmp4(lo, hi))?;
        // IPv6 is optional: a host (or a namespace) may have it disabled.
        let tcp6 = raw_socket(libc::AF_INET6, libc::IPPROTO_TCP)
            .ok()
            .and_then(|fd| {
                let offset: libc::c_int = 16; // the TCP checksum's offset in the header
                setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, offset).ok()?;
                attach(&fd, &filter_tcp6(lo, hi)).ok()?;
                Some(fd)
            });
        let icmp6 = match tcp6 {
            Some(_) => raw_socket(libc::AF_INET6, libc::IPPROTO_ICMPV6)
                .ok()
                .and_then(|fd| attach(&fd, &filter_icmp6(lo, hi)).ok().map(|()| fd)),
            None => None,
        };
        for fd in [Some(&tcp4), tcp6.as_ref()].into_iter().flatten() {
            // A burst of replies must not overflow the queue between two turns: 4 MiB
            // holds some 10k of them. Beyond the rmem_max limit only with CAP_NET_ADMIN.
            let size: libc::c_int = 4 << 20;
            if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
                let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size);
            }
        }
        // SAFETY: all-zero bytes are valid values of these plain C structs (null
        // pointers, zero lengths); they are filled in before each call.
        let (recv_names, recv_iovecs, recv_headers) = unsafe {
            (
                Box::new(mem::zeroed::<[libc::sockaddr_in6; RECV_BATCH]>()),
                Box::new(mem::zeroed::<[libc::iovec; RECV_BATCH]>()),
                Box::new(mem::zeroed::<[libc::mmsghdr; RECV_BATCH]>()),
            )
        };
        Ok(RawSockets {
            sockets: [Some(tcp4), Some(icmp4), tcp6, icmp6],
            headers: Vec::new(),
            iovecs: Vec::new(),
            names: Vec::new(),
            buffers: Box::new([[0; SNAP]; RECV_BATCH]),
            recv_names,
            recv_iovecs,
            recv_headers,
        })
    }

    /// Whether IPv6 SYNs can be sent.
    pub(crate) fn has_ipv6(&self) -> bool {
        self.sockets[2].is_some()
    }

    /// Registers every socket for readability, with the token `first_token - k` for the
    /// socket of [`Heard`] number `k`; [`RawSockets::heard`] maps a token back.
    pub(crate) fn register(&self, poller: &mut Poller, first_token: u64) -> io::Result<()> {
        for (k, fd) in self.sockets.iter().enumerate() {
            if let Some(fd) = fd {
                poller.add_readable(fd.as_fd(), first_token - k as u64)?;
            }
        }
        Ok(())
    }

    /// Which socket a token registered by [`RawSockets::register`] names.
    pub(crate) fn heard(first_token: u64, token: u64) -> Option<Heard> {
        let k = first_token.checked_sub(token)?;
        KINDS.get(usize::try_from(k).ok()?).copied()
    }

    /// Sends `packets[i]` (a TCP header with options) to `to[i]`, all of one family, in
    /// batches of `sendmmsg`. Returns how many left; when fewer than all, the error of
    /// the first one that did not.
    pub(crate) fn send(
        &mut self,
        packets: &[impl AsRef<[u8]>],
        to: &[SocketAddr],
    ) -> (usize, Option<io::Error>) {
        debug_assert_eq!(packets.len(), to.len());
        let Some(first) = to.first() else {
            return (0, None);
        };
        let socket = match first {
            SocketAddr::V4(_) => self.sockets[0].as_ref(),
            SocketAddr::V6(_) => self.sockets[2].as_ref(),
        };
        let Some(socket) = socket else {
            let err = io::Error::new(
                io::ErrorKind::Unsupported,
                "IPv6 raw sockets are not available on this host",
            );
            return (0, Some(err));
        };
        let fd = socket.as_raw_fd();
        self.names.clear();
        // The port of a raw socket's address must be 0 (or, for IPv6, the protocol).
        self.names.extend(
            to.iter()
                .map(|addr| SockAddr::from(SocketAddr::new(addr.ip(), 0))),
        );
        if let (SocketAddr::V6(_), true) = (first, self.names.len() == to.len()) {
            for (name, addr) in self.names.iter_mut().zip(to) {
                if let SocketAddr::V6(v6) = addr {
                    *name = SockAddr::from(SocketAddrV6::new(*v6.ip(), 0, 0, v6.scope_id()));
                }
            }
        }
        self.iovecs.clear();
        self.iovecs.extend(packets.iter().map(|packet| {
            let bytes = packet.as_ref();
            libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            }
        }));
        self.headers.clear();
        for (name, iov) in self.names.iter().zip(self.iovecs.iter_mut()) {
            // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
            let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
            header.msg_hdr.msg_name = name.as_ptr() as *mut libc::c_void;
            header.msg_hdr.msg_namelen = name.len();
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            self.headers.push(header);
        }
        let mut sent = 0;
        while sent < self.headers.len() {
            let rest = &mut self.headers[sent..];
            let count = rest.len().min(1024) as libc::c_uint;
            // SAFETY: every header points at a live address in `names` and an iovec in
            // `iovecs` over the caller's packet, all of which outlive this call.
            let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), count, 0) };
            match n {
                n if n > 0 => sent += n as usize,
                _ => {
                    let err = io::Error::last_os_error();
                    if err.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return (sent, Some(err));
                }
            }
        }
        (sent, None)
    }

    /// Reads up to a batch of datagrams from the socket `heard` without waiting, and
    /// hands each to `each` with the sender's address (for the IPv6 sockets, whose
    /// datagrams start after the IP header; for IPv4 it is in the header). Returns how
    /// many were read: fewer than a batch means the queue is empty.
    pub(crate) fn receive(
        &mut self,
        heard: Heard,
        mut each: impl FnMut(&[u8], Option<SocketAddrV6>),
    ) -> io::Result<usize> {
        let Some(socket) = self.sockets[heard as usize].as_ref() else {
            return Ok(0);
        };
        let fd = socket.as_raw_fd();
        for k in 0..RECV_BATCH {
            self.recv_iovecs[k] = libc::iovec {
                iov_base: self.buffers[k].as_mut_ptr() as *mut libc::c_void,
                iov_len: SNAP,
            };
            // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
            let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
            header.msg_hdr.msg_name = &mut self.recv_names[k] as *mut _ as *mut libc::c_void;
            header.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            header.msg_hdr.msg_iov = &mut self.recv_iovecs[k];
            header.msg_hdr.msg_iovlen = 1;
            self.recv_headers[k] = header;
        }
        // SAFETY: each header points at a buffer, an iovec and an address owned by
        // `self`, of the sizes given; recvmmsg writes at most that much into each.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.recv_headers.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        let n = n as usize;
        for k in 0..n {
            let len = (self.recv_headers[k].msg_len as usize).min(SNAP);
            let from = match heard {
                Heard::Tcp6 | Heard::Icmp6 => {
                    let name = &self.recv_names[k];
                    Some(SocketAddrV6::new(
                        Ipv6Addr::from(name.sin6_addr.s6_addr),
                        0,
                        0,
                        name.sin6_scope_id,
                    ))
                }
                Heard::Tcp4 | Heard::Icmp4 => None,
            };
            each(&self.buffers[k][..len], from);
        }
        Ok(n)
    }
}

impl std::fmt::Debug for RawSockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSockets")
            .field("ipv6", &self.has_ipv6())
            .finish_non_exhaustive()
    }
}

/// The source address the kernel would pick for a packet to `to`: a UDP socket is
/// connected to it (which sends nothing) and asked. IPv4 SYNs need it for their
/// checksum; the IPv6 socket has the kernel sum them.
pub(crate) fn source_for(to: Ipv4Addr) -> io::Result<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect((to, 9))?;
    match socket.local_addr()?.ip() {
        IpAddr::V4(ip) => Ok(ip),
        IpAddr::V6(_) => Err(io::Error::other("an IPv4 route gave an IPv6 source")),
    }
}

/// A sysctl's value from `/proc/sys`, with dots for slashes (`net.ipv4.ip_local_port_range`).
pub(crate) fn sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/"))).ok()
}

fn raw_socket(family: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; a non-negative return is a new descriptor.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    })?;
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size given, read by the kernel during the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &value as *const T as *const libc::c_void,
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn attach(fd: &OwnedFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let program = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // The kernel copies the program during the call.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, program)
}

/// Borrows socket `heard`'s descriptor (tests).
#[cfg(test)]
impl RawSockets {
    fn fd(&self, heard: Heard) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.sockets[heard as usize].as_ref().map(|fd| fd.as_fd())
    }
}

// Classic BPF, as tcpdump compiles it: each program ends in "accept SNAP bytes" or
// "drop". Jumps count instructions forward from the next one.

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | code | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

const LD_H_ABS: u32 = libc::BPF_LD | libc::BPF_H | libc::BPF_ABS;
const LD_B_ABS: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
const LD_H_IND: u32 = libc::BPF_LD | libc::BPF_H | libc::BPF_IND;
const LD_B_IND: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_IND;
const LDX_MSH: u32 = libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH;
const AND: u32 = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;

/// The tail every filter shares: A holds a port; keep it when `lo <= A <= hi`.
fn in_range(lo: u32, hi: u32) -> [libc::sock_filter; 4] {
    [
        jump(libc::BPF_JGE, lo, 0, 2),
        jump(libc::BPF_JGT, hi, 1, 0),
        stmt(RET, SNAP as u32),
        stmt(RET, 0),
    ]
}

/// IPv4 TCP, the datagram starting at the IP header: first fragments only, SYN-ACK or
/// RST, destination port in range.
fn filter_tcp4(lo: u32, hi: u32) -> Vec<libc::sock_filter> {
    let mut program = vec![
        stmt(LD_H_ABS, 6),                  // flags and fragment offset
        jump(libc::BPF_JSET, 0x1fff, 5, 0), // to the drop below
        stmt(LDX_MSH, 0),                   // X = the IP header's length
        stmt(LD_B_IND, 13),                 // TCP flags
        jump(libc::BPF_JSET, 0x04, 3, 0),   // RST
        stmt(AND, 0x12),
        jump(libc::BPF_JEQ, 0x12, 1, 0), // SYN and ACK
        stmt(RET, 0),
        stmt(LD_H_IND, 2), // destination port
    ];
    program.extend(in_range(lo, hi));
    program
}

/// IPv6 TCP, the datagram starting at the TCP header.
fn filter_tcp6(lo: u32, hi: u32) -> Vec<libc::sock_filter> {
    let mut program = vec![
        stmt(LD_B_ABS, 13),
        jump(libc::BPF_JSET, 0x04, 3, 0),
        stmt(AND, 0x12),
        jump(libc::BPF_JEQ, 0x12, 1, 0),
        stmt(RET, 0),
        stmt(LD_H_ABS, 2),
    ];
    program.extend(in_range(lo, hi));
    program
}

/// ICMP destination unreachable, the datagram starting at the IP header, quoting an IPv4
/// TCP packet without options (ours) whose source port is in range.
fn filter_icmp4(lo: u32, hi: u32) -> Vec<libc::sock_filter> {
    let mut program = vec![
        stmt(LDX_MSH, 0),
        stmt(LD_B_IND, 0), // ICMP type
        jump(libc::BPF_JEQ, 3, 0, 4),
        stmt(LD_B_IND, 8), // the quoted IP header's version and length
        jump(libc::BPF_JEQ, 0x45, 0, 2),
        stmt(LD_B_IND, 8 + 9), // its protocol
        jump(libc::BPF_JEQ, 6, 1, 0),
        stmt(RET, 0),
        stmt(LD_H_IND, 8 + 20), // the quoted TCP source port
    ];
    program.extend(in_range(lo, hi));
    program
}

/// ICMPv6 destination unreachable, the datagram starting at the ICMPv6 header, quoting
/// an IPv6 header whose next header is TCP, from a source port in range.
fn filter_icmp6(lo: u32, hi: u32) -> Vec<libc::sock_filter> {
    let mut program = vec![
        stmt(LD_B_ABS, 0),
        jump(libc::BPF_JEQ, 1, 0, 2),
        stmt(LD_B_ABS, 8 + 6), // the quoted header's next header
        jump(libc::BPF_JEQ, 6, 1, 0),
        stmt(RET, 0),
        stmt(LD_H_ABS, 8 + 40),
    ];
    program.extend(in_range(lo, hi));
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program over `packet` the way the kernel does, for the
    /// instructions these filters use; returns what it keeps (0: dropped).
    fn run(program: &[libc::sock_filter], packet: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |at: usize| packet.get(at).copied().map(u32::from);
        let half = |at: usize| Some(byte(at)? << 8 | byte(at + 1)?);
        loop {
            let ins = program[pc];
            let code = u32::from(ins.code);
            pc += 1;
            match code {
                LD_H_ABS => match half(ins.k as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_B_ABS => match byte(ins.k as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_H_IND => match half((x + ins.k) as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_B_IND => match byte((x + ins.k) as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LDX_MSH => match byte(ins.k as usize) {
                    Some(v) => x = 4 * (v & 0xf),
                    None => return 0,
                },
                AND => a &= ins.k,
                RET => return ins.k,
                _ => {
                    let taken = match code & !(libc::BPF_JMP | libc::BPF_K) {
                        libc::BPF_JEQ => a == ins.k,
                        libc::BPF_JGT => a > ins.k,
                        libc::BPF_JGE => a >= ins.k,
                        libc::BPF_JSET => a & ins.k != 0,
                        other => panic!("unexpected BPF code {other:#x}"),
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
            }
        }
    }

    fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    fn ip4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn the_tcp_filters_keep_syn_acks_and_resets_to_our_ports_only() {
        let (v4, v6) = (filter_tcp4(61000, 61999), filter_tcp6(61000, 61999));
        for (flags, kept) in [
            (0x12, true),
            (0x14, true),
            (0x04, true),
            (0x02, false),
            (0x10, false),
        ] {
            for port in [61000, 61500, 61999] {
                assert_eq!(run(&v4, &ip4(6, &tcp(80, port, flags))) != 0, kept);
                assert_eq!(run(&v6, &tcp(80, port, flags)) != 0, kept);
            }
        }
        for port in [60999, 62000, 80] {
            assert_eq!(run(&v4, &ip4(6, &tcp(80, port, 0x12))), 0);
            assert_eq!(run(&v6, &tcp(80, port, 0x12)), 0);
        }
        // A later fragment is dropped; an IP header with options is read past.
        let mut fragment = ip4(6, &tcp(80, 61000, 0x12));
        fragment[7] = 1;
        assert_eq!(run(&v4, &fragment), 0);
        let mut options = vec![
            0x46, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1, 1, 1, 1, 0,
        ];
        options.extend(tcp(80, 61000, 0x12));
        assert_eq!(run(&v4, &options), SNAP as u32);
    }

    #[test]
    fn the_icmp_filters_keep_unreachables_quoting_our_syns_only() {
        let quoted = ip4(6, &tcp(61234, 80, 0x02)[..8]);
        let mut unreachable = vec![3, 1, 0, 0, 0, 0, 0, 0];
        unreachable.extend(&quoted);
        let program = filter_icmp4(61000, 61999);
        assert_ne!(run(&program, &ip4(1, &unreachable)), 0);
        let mut echo = unreachable.clone();
        echo[0] = 0;
        assert_eq!(run(&program, &ip4(1, &echo)), 0);
        let mut theirs = vec![3, 1, 0, 0, 0, 0, 0, 0];
        theirs.extend(ip4(6, &tcp(5000, 80, 0x02)[..8]));
        assert_eq!(run(&program, &ip4(1, &theirs)), 0);

        let mut ip6 = vec![0x60, 0, 0, 0, 0, 8, 6, 64];
        ip6.extend([0u8; 32]);
        let mut unreachable6 = vec![1, 4, 0, 0, 0, 0, 0, 0];
        unreachable6.extend(&ip6);
        unreachable6.extend(&tcp(61234, 80, 0x02)[..8]);
        let program6 = filter_icmp6(61000, 61999);
        assert_ne!(run(&program6, &unreachable6), 0);
        unreachable6[8 + 40] = 0x13; // source port 4914
        assert_eq!(run(&program6, &unreachable6), 0);
    }

    /// Only meaningful with CAP_NET_RAW; the engine's tests (in namespaces, as root)
    /// cover the sockets themselves.
    #[test]
    fn open_fails_cleanly_or_gives_every_ipv4_socket() {
        match RawSockets::open(&(61000..=61999)) {
            Ok(sockets) => {
                assert!(sockets.fd(Heard::Tcp4).is_some() && sockets.fd(Heard::Icmp4).is_some())
            }
            Err(err) => assert!(matches!(
                err.raw_os_error(),
                Some(libc::EPERM | libc::EACCES)
            )),
        }
    }
}
