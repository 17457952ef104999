//! The alerts' tables: silences, what each receiver was last told, and the notifications
//! not yet delivered.

/// The alerts' tables, created at open.
pub(crate) const SCHEMA: &str = "";
