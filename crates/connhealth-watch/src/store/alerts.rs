//! The alerts' tables: silences, what each receiver was last told, and the notifications
//! not yet delivered.
//!
//! Each receiver writes its own rows from its own thread, one short transaction per
//! change (a transition held, sent or cancelled): a notification is in `alert_outbox`
//! from the moment its transition is seen until the receiver answered 2xx, so a restart,
//! even after `kill -9`, sends it again (at least once; a POST answered just before the
//! kill may be sent twice).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

/// The alerts' tables, created at open.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY,
    receiver TEXT NOT NULL,
    target TEXT NOT NULL,
    due_unix REAL NOT NULL,
    notice TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_outbox_receiver ON alert_outbox (receiver, id);
CREATE TABLE IF NOT EXISTS alert_told (
    receiver TEXT NOT NULL,
    target TEXT NOT NULL,
    notice TEXT NOT NULL,
    PRIMARY KEY (receiver, target)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS silences (
    target TEXT PRIMARY KEY,
    until_unix REAL NOT NULL
) WITHOUT ROWID;
";

/// One row of `alert_outbox`: a notification held or due, not yet delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Its id: rows are sent in id order.
    pub id: i64,
    /// The target.
    pub target: String,
    /// When its `for` ends (it may be sent from then).
    pub due: SystemTime,
    /// The notification, as JSON.
    pub notice: String,
}

/// What a receiver kept: its outbox, oldest first, and what it last told each target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kept {
    /// Notifications held or due.
    pub outbox: Vec<OutboxRow>,
    /// Per target: the last notification delivered, as JSON.
    pub told: Vec<(String, String)>,
}

/// Unix seconds of `at`.
pub(crate) fn unix(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The time of Unix seconds `seconds`.
pub(crate) fn from_unix(seconds: f64) -> SystemTime {
    UNIX_EPOCH + Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or_default()
}

/// Adds a notification for `receiver` to the outbox; its id.
pub(crate) fn hold(
    conn: &Connection,
    receiver: &str,
    target: &str,
    due: SystemTime,
    notice: &str,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO alert_outbox (receiver, target, due_unix, notice) VALUES (?1, ?2, ?3, ?4)",
        params![receiver, target, unix(due), notice],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Removes a notification that will not be sent (its state did not hold for `for`).
pub(crate) fn cancel(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM alert_outbox WHERE id = ?1", [id])
        .map(drop)
}

/// Records a notification delivered: out of the outbox, and what `receiver` was last
/// told of `target`, in one transaction.
pub(crate) fn delivered(
    conn: &Connection,
    id: i64,
    receiver: &str,
    target: &str,
    notice: &str,
) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM alert_outbox WHERE id = ?1", [id])?;
    tx.execute(
        "INSERT INTO alert_told (receiver, target, notice) VALUES (?1, ?2, ?3)
         ON CONFLICT (receiver, target) DO UPDATE SET notice = excluded.notice",
        params![receiver, target, notice],
    )?;
    tx.commit()
}

/// Forgets what `receiver` told of `target` (a target no longer in the config).
pub(crate) fn untell(conn: &Connection, receiver: &str, target: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM alert_told WHERE receiver = ?1 AND target = ?2",
        [receiver, target],
    )
    .map(drop)
}

/// What `receiver` kept.
pub(crate) fn load(conn: &Connection, receiver: &str) -> rusqlite::Result<Kept> {
    let mut outbox = conn.prepare(
        "SELECT id, target, due_unix, notice FROM alert_outbox WHERE receiver = ?1 ORDER BY id",
    )?;
    let outbox = outbox
        .query_map([receiver], |row| {
            Ok(OutboxRow {
                id: row.get(0)?,
                target: row.get(1)?,
                due: from_unix(row.get(2)?),
                notice: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut told = conn.prepare("SELECT target, notice FROM alert_told WHERE receiver = ?1")?;
    let told = told
        .query_map([receiver], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Kept { outbox, told })
}

/// Every silence still in force at `now`; those that ended are deleted.
pub(crate) fn silences(
    conn: &Connection,
    now: SystemTime,
) -> rusqlite::Result<Vec<(String, SystemTime)>> {
    conn.execute("DELETE FROM silences WHERE until_unix <= ?1", [unix(now)])?;
    let mut query =
        conn.prepare("SELECT target, until_unix FROM silences WHERE until_unix > ?1")?;
    let rows = query
        .query_map([unix(now)], |row| {
            Ok((row.get::<_, String>(0)?, from_unix(row.get(1)?)))
        })?
        .collect();
    rows
}

/// Silences `target` until `until`; `None` lifts its silence.
pub(crate) fn silence(
    conn: &Connection,
    target: &str,
    until: Option<SystemTime>,
) -> rusqlite::Result<()> {
    match until {
        Some(until) => conn.execute(
            "INSERT INTO silences (target, until_unix) VALUES (?1, ?2)
             ON CONFLICT (target) DO UPDATE SET until_unix = excluded.until_unix",
            params![target, unix(until)],
        ),
        None => conn.execute("DELETE FROM silences WHERE target = ?1", [target]),
    }
    .map(drop)
}
