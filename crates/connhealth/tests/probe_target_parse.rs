//! `Target::parse` agrees with std: a string std reads as a socket address is that
//! address as a probe target. Cases the `probe_target` fuzz target found (fuzz/), each
//! with its input inline.

use std::net::SocketAddr;

use connhealth::probe::Target;

/// Found by `scripts/fuzz`: std reads a numeric scope of 0 as no scope at all, and
/// `Target::parse` refused every scoped IPv6 address ("brackets hold an IPv6 address
/// only") until scoped targets were accepted.
#[test]
fn a_zero_scope_reads_as_the_address_std_reads() {
    let text = "[fe20::1%0]:79";
    let std: SocketAddr = text.parse().expect("std reads it");
    assert_eq!(Target::parse(text).ok(), Some(Target::Addr(std)));
}
