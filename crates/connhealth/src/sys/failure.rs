//! What a failed probe connect means, in the same words on every platform; each
//! platform's `probe::classify` reads its own error codes into it.

/// What a failed `socket()` or `connect()`, or a socket error after the connect, means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `ECONNREFUSED`, `WSAECONNREFUSED`: an RST answered the SYN.
    Refused,
    /// `ETIMEDOUT`, `WSAETIMEDOUT`: the kernel gave up retransmitting the SYN.
    TimedOut,
    /// No route, or an ICMP unreachable came back.
    Unreachable,
    /// Our own resources ran out (descriptors, buffers): not the target's fault, and
    /// worth retrying once other probes give theirs back.
    Exhausted,
    /// Our own resources toward this one destination ran out: no free local port for it
    /// (a connect's port need only be unique per destination), or no source address
    /// that reaches it. Other destinations are not affected.
    DestinationExhausted,
    /// Anything else.
    Other,
}
