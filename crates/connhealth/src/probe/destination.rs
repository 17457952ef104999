//! One destination's share of the engine's limits: what counts as one destination, its
//! probes in flight, the probes parked behind it, and its stall when no local port
//! toward it is free. The engine's module docs say how they are used.

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV6};
use std::time::Instant;

use super::inbox::ProbeId;

/// The listener a probe of `addr` reaches, as the per-destination limit counts it: an
/// IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]:p`, what an IPv6 socket reaches IPv4
/// through) is its IPv4 address, and an IPv6 address's flow label, which only labels the
/// packets, is dropped. Its scope is kept: `fe80::1%2` and `fe80::1%3` are hosts on two
/// different links.
pub(crate) fn destination(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::new(ip.into(), v6.port()),
            None => SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id()).into(),
        },
    }
}

/// One destination's share of the limits.
#[derive(Default)]
pub(crate) struct Destination {
    pub(crate) in_flight: u32,
    /// Probes waiting behind `max_in_flight_per_destination`, or behind a stall, in
    /// arrival order.
    pub(crate) parked: VecDeque<ProbeId>,
    /// Set while no local port (or source address) toward it is free.
    pub(crate) stall: Option<Stall>,
}

/// A destination's starts stopped on its own exhaustion (`EADDRNOTAVAIL`): they resume
/// when one of its probes in flight gives its port back, or at `retry_at`.
#[derive(Clone, Copy)]
pub(crate) struct Stall {
    pub(crate) retry_at: Instant,
    /// The OS error, reported to a probe that waited behind the stall until its deadline.
    pub(crate) errno: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_listener_is_one_destination() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
        assert_eq!(destination(mapped), v4);
        assert_eq!(destination(v4), v4);
        let labelled = SocketAddrV6::new("::1".parse().unwrap(), 80, 7, 0);
        assert_eq!(destination(labelled.into()), "[::1]:80".parse().unwrap());
        let (on_2, on_3) = (
            SocketAddrV6::new("fe80::1".parse().unwrap(), 80, 0, 2),
            SocketAddrV6::new("fe80::1".parse().unwrap(), 80, 0, 3),
        );
        assert_ne!(destination(on_2.into()), destination(on_3.into()));
    }
}
