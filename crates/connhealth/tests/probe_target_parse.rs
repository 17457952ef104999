//! `Target::parse` agrees with std: a string std reads as a socket address is that
//! address as a probe target. Cases the `probe_target` fuzz target found (fuzz/), each
//! with its input inline.

use std::net::SocketAddr;

use connhealth::probe::Target;

/// Found by `scripts/fuzz`: std reads a numeric scope of 0 as no scope at all, and
/// `Target::parse` refuses every scoped IPv6 address ("brackets hold an IPv6 address
/// only"). Scoped targets are issue 15's deliverable 4 (the prober's open edges), whose
/// helper owns `probe/`: this test is ignored until that lands, and the fuzz target skips
/// inputs with a '%' until then.
#[test]
#[ignore = "fix needed in probe::Target::parse: scoped IPv6 targets (issue 15, deliverable 4)"]
fn a_zero_scope_reads_as_the_address_std_reads() {
    let text = "[fe20::1%0]:79";
    let std: SocketAddr = text.parse().expect("std reads it");
    assert_eq!(Target::parse(text).ok(), Some(Target::Addr(std)));
}
