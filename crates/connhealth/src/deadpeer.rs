//! Bounded detection of a silently vanished peer. (Issue 5.)
