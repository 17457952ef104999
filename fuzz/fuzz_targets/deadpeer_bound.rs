//! `connhealth::DeadPeer::try_detect_within` over any duration.
//!
//! Properties, beyond not panicking (the doc of `DeadPeer` is the promise):
//! * it accepts exactly the bounds in `MIN_BOUND..=MAX_BOUND`, keeps the bound as given,
//!   and refuses the others as `TooShort` or `TooLong` with the bound and the limit;
//! * an accepted policy's settings keep its promise: the idle verdict (`window`), even
//!   with timers an eighth late, lands inside the bound, and so does the verdict with data
//!   in flight for Linux's smallest RTO (200 ms); keepalive times are whole seconds the
//!   kernel takes (1 to 32767 s, 1 to 127 probes) and the user timeout fits its 32-bit
//!   milliseconds.
//!
//! Input: 12 bytes, little-endian: seconds (u64), then nanoseconds (u32, taken modulo
//! 10^9); missing bytes are zero.

#![no_main]

use std::time::Duration;

use connhealth::{DeadPeer, DeadPeerError};
use libfuzzer_sys::fuzz_target;

/// Linux's smallest retransmission timeout (`TCP_RTO_MIN`).
const RTO_MIN: Duration = Duration::from_millis(200);

fn bound_of(data: &[u8]) -> Duration {
    let mut bytes = [0u8; 12];
    let n = data.len().min(12);
    bytes[..n].copy_from_slice(&data[..n]);
    let secs = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let nanos = u32::from_le_bytes(bytes[8..].try_into().unwrap()) % 1_000_000_000;
    Duration::new(secs, nanos)
}

fuzz_target!(|data: &[u8]| {
    let bound = bound_of(data);
    match DeadPeer::try_detect_within(bound) {
        Ok(policy) => {
            assert!(
                (DeadPeer::MIN_BOUND..=DeadPeer::MAX_BOUND).contains(&bound),
                "{bound:?} accepted"
            );
            assert_eq!(policy.bound(), bound);
            assert_eq!(policy, DeadPeer::detect_within(bound));
            let s = policy.settings().expect("an accepted bound has settings");
            let window = s.window();
            assert!(window + window / 8 < bound, "{bound:?}: {s:?}");
            assert_eq!(s.idle, s.interval, "{bound:?}: {s:?}");
            assert_eq!(s.interval.subsec_nanos(), 0, "{bound:?}: {s:?}");
            assert!(
                (1..=32_767).contains(&s.interval.as_secs()),
                "{bound:?}: {s:?}"
            );
            assert!((1..=127).contains(&s.count), "{bound:?}: {s:?}");
            if let Some(user_timeout) = s.user_timeout {
                assert!(
                    user_timeout.as_millis() <= i32::MAX as u128,
                    "{bound:?}: {s:?}"
                );
                // The verdict falls on the last firing, not the one before it.
                assert!(user_timeout > window - s.interval, "{bound:?}: {s:?}");
                assert!(user_timeout <= window, "{bound:?}: {s:?}");
                let in_flight = RTO_MIN + user_timeout;
                assert!(in_flight + in_flight / 8 < bound, "{bound:?}: {s:?}");
            }
        }
        Err(DeadPeerError::TooShort { bound: asked, min }) => {
            assert_eq!((asked, min), (bound, DeadPeer::MIN_BOUND));
            assert!(bound < DeadPeer::MIN_BOUND);
            assert!(DeadPeer::detect_within(bound).settings().is_err());
        }
        Err(DeadPeerError::TooLong { bound: asked, max }) => {
            assert_eq!((asked, max), (bound, DeadPeer::MAX_BOUND));
            assert!(bound > DeadPeer::MAX_BOUND);
            assert!(DeadPeer::detect_within(bound).settings().is_err());
        }
        Err(other) => panic!("{bound:?}: unexpected {other:?}"),
    }
});
