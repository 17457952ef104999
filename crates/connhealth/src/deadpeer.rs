//! Bounded detection of a silently vanished peer: [`DeadPeer`](crate::DeadPeer). (Issue 5.)
