//! `connhealth::probe::Target::parse` over any text.
//!
//! Properties, beyond not panicking:
//! * a target written back (`ip:port`, `[ipv6]:port`, `host:port`) parses to itself;
//! * a target never has port 0, and a name is never an IP address, empty, or holds a ':',
//!   except a scoped IPv6 address with an interface name (`[fe80::1%eth0]:80`), which is a
//!   name for the resolver and written back in its brackets;
//! * a name is the input's host as written, up to its last ':';
//! * whatever std parses as a `SocketAddr` (port not 0; a numeric scope included, which
//!   std reads as `scope_id`) parses to that address here;
//! * a refusal is `InvalidTarget`, carrying the input and a reason.
//!
//! Input: the bytes as UTF-8 (the parser takes `&str`; other bytes are skipped).

#![no_main]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use connhealth::probe::Target;
use connhealth::ProbeError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Target::parse(text);
    match &parsed {
        Ok(target) => {
            assert_ne!(target.port(), 0, "{text:?} parsed with port 0: {target:?}");
            let written = match target {
                Target::Addr(addr) => addr.to_string(),
                Target::Name { host, port } => {
                    assert!(host.parse::<IpAddr>().is_err(), "{text:?}: an IP as a name");
                    let (as_written, _) = text.rsplit_once(':').expect("a name has a port");
                    let scoped = host
                        .split_once('%')
                        .is_some_and(|(ip, scope)| ip.parse::<Ipv6Addr>().is_ok() && !scope.is_empty());
                    if scoped {
                        assert_eq!(format!("[{host}]"), as_written, "{text:?}: the host changed");
                        format!("[{host}]:{port}")
                    } else {
                        assert!(
                            !host.is_empty() && !host.contains(':'),
                            "{text:?}: {target:?}"
                        );
                        assert_eq!(host, as_written, "{text:?}: the host changed");
                        format!("{host}:{port}")
                    }
                }
                _ => return,
            };
            assert_eq!(
                Target::parse(&written).as_ref().ok(),
                Some(target),
                "{text:?} parsed to {target:?}, written back as {written:?}"
            );
        }
        Err(ProbeError::InvalidTarget { target, reason }) => {
            assert_eq!(target, text);
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("{text:?}: parse gave {other:?}, not InvalidTarget"),
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() != 0 {
            assert!(
                matches!(&parsed, Ok(Target::Addr(a)) if *a == addr),
                "std reads {text:?} as {addr}, Target::parse as {parsed:?}"
            );
        }
    }
});
