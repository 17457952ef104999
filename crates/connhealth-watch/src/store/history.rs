//! The history's tables: every transition, per-minute aggregates per target, and each
//! target's last state.

/// The history's tables, created at open.
pub(crate) const SCHEMA: &str = "";
