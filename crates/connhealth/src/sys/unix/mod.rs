//! Unix, with Linux-only refinements behind `cfg(target_os = "linux")`.
//!
//! Split by concern, as mio does: each file serves one capability of the crate.

pub(crate) mod check;
pub(crate) mod clock;
pub(crate) mod cpu;
pub(crate) mod keepalive;
pub(crate) mod probe;
pub(crate) mod tcp_info;
