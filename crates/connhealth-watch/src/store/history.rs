//! The history's tables: every transition, per-minute aggregates per target, hourly
//! rollups of those, and each target's last state.
//!
//! | table | key | holds | kept |
//! |---|---|---|---|
//! | `targets` | `id` (and `name`, unique) | each target's address, check kind and last state: health, since, last change, state changes | while the file lives |
//! | `transitions` | `id`, indexed by `(target_id, at_us)` | every transition: from, to, when, why, the check's time, the failure's detail | for ever |
//! | `minutes` | `(target_id, minute)`, without rowid | checks, failures, RTT min, max and sum of each minute | 30 days ([`RETENTION`]) |
//! | `hours` | `(target_id, hour)`, without rowid | checks and failures of each hour, kept up to date at each write of a minute | 30 days |
//! | `open_minutes` | `target_id`, without rowid | each target's minute under way, as last seen (every few seconds) | until the minute is written, or folded into `minutes` at the next start |
//!
//! Times are Unix microseconds (`*_us`), minutes Unix seconds / 60, hours Unix seconds /
//! 3600. A target is named once, in `targets`; the other tables hold its integer id, so
//! a minute is about 30 bytes on disk. [`Writer::write`] writes one [`Batch`] in one
//! transaction; [`load`] reads what the daemon needs at start.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension};

use crate::state::{Health, MinuteAggregate, SavedState, Transition};

/// The history's tables, created at open.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS targets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    check_kind TEXT NOT NULL,
    health TEXT NOT NULL,
    since_us INTEGER NOT NULL,
    last_change_us INTEGER,
    state_changes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    target_id INTEGER NOT NULL REFERENCES targets(id),
    at_us INTEGER NOT NULL,
    from_health TEXT NOT NULL,
    to_health TEXT NOT NULL,
    why TEXT NOT NULL,
    check_us INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS transitions_by_target ON transitions(target_id, at_us);
CREATE TABLE IF NOT EXISTS minutes (
    target_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    rtt_min_us INTEGER NOT NULL,
    rtt_max_us INTEGER NOT NULL,
    rtt_sum_us INTEGER NOT NULL,
    PRIMARY KEY (target_id, minute)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS open_minutes (
    target_id INTEGER PRIMARY KEY,
    minute INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    rtt_min_us INTEGER NOT NULL,
    rtt_max_us INTEGER NOT NULL,
    rtt_sum_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hours (
    target_id INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (target_id, hour)
) WITHOUT ROWID;
";

/// How long per-minute aggregates (and hourly rollups) are kept: 30 days.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How many transitions per target [`load`] reads back: what the in-memory history keeps.
pub const TRANSITIONS_LOADED: usize = 100;

/// How many hours of hourly rollups [`load`] reads back: 7 days, and the hour under way.
pub const HOURS_LOADED: u64 = 7 * 24 + 1;

/// One hour of a target's checks: the rollup of its minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HourAggregate {
    /// Which hour: Unix seconds / 3600.
    pub hour: u64,
    /// Checks in it (`exhausted` ones excluded, as in [`MinuteAggregate`]).
    pub checks: u64,
    /// Of those, the ones that failed.
    pub failures: u64,
}

impl HourAggregate {
    /// Adds `minute`'s checks, which must lie in this hour.
    pub fn add(&mut self, minute: &MinuteAggregate) {
        self.checks += u64::from(minute.checks);
        self.failures += u64::from(minute.failures);
    }
}

/// A target's identity: what must match for a saved state to be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its address, as written (a URL for `http`).
    pub address: String,
    /// Its check kind's name.
    pub check: &'static str,
}

/// A target's last state, as `targets` keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastState {
    /// Its health.
    pub health: Health,
    /// Since when.
    pub since: SystemTime,
    /// Its last transition's time.
    pub last_change: Option<SystemTime>,
    /// Its transitions so far.
    pub state_changes: u64,
}

/// What one transaction writes. Filled by the history's sink between two writes.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every target the batch names, by name: its identity and, when it changed state,
    /// its last state. A target whose identity differs from the saved one (a reload
    /// changed its address or kind) and that has no new state is saved as `unknown`, as
    /// the daemon then holds it.
    pub targets: BTreeMap<String, (Identity, Option<LastState>)>,
    /// Transitions, in order.
    pub transitions: Vec<(String, Transition)>,
    /// Closed minutes.
    pub minutes: Vec<(String, MinuteAggregate)>,
    /// Minutes under way, as seen now: each replaces the target's last one, so that a
    /// `kill -9` loses only the checks since. Written before the closed minutes, each of
    /// which clears the target's minute under way up to it.
    pub open_minutes: Vec<(String, MinuteAggregate)>,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
            && self.transitions.is_empty()
            && self.minutes.is_empty()
            && self.open_minutes.is_empty()
    }

    /// Rows the batch writes.
    pub fn len(&self) -> usize {
        self.targets.len() + self.transitions.len() + self.minutes.len() + self.open_minutes.len()
    }
}

/// The columns of `minutes` and `open_minutes`, in order.
const MINUTE_COLUMNS: &str =
    "(target_id, minute, checks, failures, rtt_min_us, rtt_max_us, rtt_sum_us)";

/// A minute inserted where one is: the two add up.
const ADD_MINUTE: &str = "ON CONFLICT (target_id, minute) DO UPDATE SET
    rtt_min_us = CASE WHEN checks = failures THEN excluded.rtt_min_us
        WHEN excluded.checks = excluded.failures THEN rtt_min_us
        ELSE min(rtt_min_us, excluded.rtt_min_us) END,
    rtt_max_us = max(rtt_max_us, excluded.rtt_max_us),
    rtt_sum_us = rtt_sum_us + excluded.rtt_sum_us,
    checks = checks + excluded.checks,
    failures = failures + excluded.failures";

/// An hour inserted where one is: the two add up.
const ADD_HOUR: &str = "ON CONFLICT (target_id, hour) DO UPDATE SET
    checks = checks + excluded.checks, failures = failures + excluded.failures";

/// At start: the minutes that were under way when the daemon last stopped (or died),
/// as last seen, become closed minutes (adding up with any of the same minute), and the
/// table of minutes under way is emptied. The checks of that minute made after its last
/// snapshot are lost; those the new process makes in the same minute add up.
pub fn fold_open_minutes(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         INSERT INTO minutes {MINUTE_COLUMNS} SELECT * FROM open_minutes WHERE true {ADD_MINUTE};
         INSERT INTO hours (target_id, hour, checks, failures)
             SELECT target_id, minute / 60, checks, failures FROM open_minutes WHERE true {ADD_HOUR};
         DELETE FROM open_minutes;
         COMMIT;"
    ))
}

/// Writes batches: knows each target's id, so that a batch names a target's id only.
#[derive(Debug, Default)]
pub struct Writer {
    ids: HashMap<String, i64>,
    /// Where the retention pass is: the ids left to prune in this pass.
    pruning: Vec<i64>,
}

/// How many targets one retention step prunes, in one transaction: a step takes a few
/// milliseconds, so a reader of `/api/history` never waits long.
const PRUNE_STEP: usize = 500;

impl Writer {
    /// A writer that knows the ids `conn` holds.
    pub fn new(conn: &Connection) -> rusqlite::Result<Writer> {
        let mut ids = HashMap::new();
        let mut query = conn.prepare("SELECT name, id FROM targets")?;
        let rows = query.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
        for row in rows {
            let (name, id) = row?;
            ids.insert(name, id);
        }
        Ok(Writer {
            ids,
            pruning: Vec::new(),
        })
    }

    /// Writes `batch` in one transaction. On error nothing of it is written (the
    /// transaction rolls back), and the batch is left as it was, to be tried again.
    pub fn write(&mut self, conn: &mut Connection, batch: &Batch) -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        // Ids this batch gave targets the writer did not know yet.
        let mut new_ids: HashMap<&str, i64> = HashMap::new();
        {
            let mut set_state = tx.prepare_cached(
                "INSERT INTO targets (name, address, check_kind, health, since_us, last_change_us, state_changes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET address = excluded.address,
                    check_kind = excluded.check_kind, health = excluded.health,
                    since_us = excluded.since_us, last_change_us = excluded.last_change_us,
                    state_changes = excluded.state_changes
                 RETURNING id",
            )?;
            // A target named for its minutes only: created unknown, or reset to unknown
            // when a reload changed what it watches (the daemon starts it again so).
            let mut set_identity = tx.prepare_cached(
                "INSERT INTO targets (name, address, check_kind, health, since_us, last_change_us, state_changes)
                 VALUES (?1, ?2, ?3, 'unknown', ?4, NULL, 0)
                 ON CONFLICT (name) DO UPDATE SET address = excluded.address,
                    check_kind = excluded.check_kind, health = 'unknown',
                    since_us = excluded.since_us, last_change_us = NULL, state_changes = 0
                 WHERE address IS NOT excluded.address OR check_kind IS NOT excluded.check_kind",
            )?;
            // The same two for a target whose id the writer knows: an update by rowid,
            // cheaper than an upsert through the name's index (most writes are these).
            let mut update_state = tx.prepare_cached(
                "UPDATE targets SET address = ?2, check_kind = ?3, health = ?4, since_us = ?5,
                    last_change_us = ?6, state_changes = ?7
                 WHERE id = ?1",
            )?;
            let mut update_identity = tx.prepare_cached(
                "UPDATE targets SET address = ?2, check_kind = ?3, health = 'unknown',
                    since_us = ?4, last_change_us = NULL, state_changes = 0
                 WHERE id = ?1 AND (address IS NOT ?2 OR check_kind IS NOT ?3)",
            )?;
            let now = micros(SystemTime::now());
            for (name, (identity, state)) in &batch.targets {
                let known = self.ids.get(name).copied();
                match (state, known) {
                    (Some(state), Some(id)) => {
                        update_state.execute(params![
                            id,
                            identity.address,
                            identity.check,
                            state.health.name(),
                            micros(state.since),
                            state.last_change.map(micros),
                            i64::try_from(state.state_changes).unwrap_or(i64::MAX),
                        ])?;
                    }
                    (None, Some(id)) => {
                        update_identity.execute(params![
                            id,
                            identity.address,
                            identity.check,
                            now
                        ])?;
                    }
                    (Some(state), None) => {
                        let id: i64 = set_state.query_row(
                            params![
                                name,
                                identity.address,
                                identity.check,
                                state.health.name(),
                                micros(state.since),
                                state.last_change.map(micros),
                                i64::try_from(state.state_changes).unwrap_or(i64::MAX),
                            ],
                            |row| row.get(0),
                        )?;
                        new_ids.insert(name, id);
                    }
                    (None, None) => {
                        set_identity.execute(params![
                            name,
                            identity.address,
                            identity.check,
                            now
                        ])?;
                        let id: i64 = tx.query_row(
                            "SELECT id FROM targets WHERE name = ?1",
                            [name],
                            |row| row.get(0),
                        )?;
                        new_ids.insert(name, id);
                    }
                }
            }
            let id_of = |name: &str| {
                self.ids
                    .get(name)
                    .or_else(|| new_ids.get(name))
                    .copied()
                    .ok_or_else(|| {
                        rusqlite::Error::InvalidParameterName(format!(
                            "the batch names no target {name:?}"
                        ))
                    })
            };
            let mut transition = tx.prepare_cached(
                "INSERT INTO transitions (target_id, at_us, from_health, to_health, why, check_us, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (name, t) in &batch.transitions {
                transition.execute(params![
                    id_of(name)?,
                    micros(t.at),
                    t.from.name(),
                    t.to.name(),
                    t.why,
                    i64::try_from(t.check_time.as_micros()).unwrap_or(i64::MAX),
                    t.detail,
                ])?;
            }
            let mut open = tx.prepare_cached(
                "INSERT OR REPLACE INTO open_minutes (target_id, minute, checks, failures, rtt_min_us, rtt_max_us, rtt_sum_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (name, m) in &batch.open_minutes {
                open.execute(params![
                    id_of(name)?,
                    as_i64(m.minute),
                    m.checks,
                    m.failures,
                    m.rtt_min_us,
                    m.rtt_max_us,
                    as_i64(m.rtt_sum_us),
                ])?;
            }
            // A minute written twice (the daemon restarted within it, and counted the
            // rest of it anew) adds up.
            let mut minute = tx.prepare_cached(&format!(
                "INSERT INTO minutes {MINUTE_COLUMNS} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) {ADD_MINUTE}"
            ))?;
            let mut hour = tx.prepare_cached(&format!(
                "INSERT INTO hours (target_id, hour, checks, failures) VALUES (?1, ?2, ?3, ?4) {ADD_HOUR}"
            ))?;
            let mut closed = tx
                .prepare_cached("DELETE FROM open_minutes WHERE target_id = ?1 AND minute <= ?2")?;
            for (name, m) in &batch.minutes {
                let id = id_of(name)?;
                closed.execute(params![id, as_i64(m.minute)])?;
                minute.execute(params![
                    id,
                    as_i64(m.minute),
                    m.checks,
                    m.failures,
                    m.rtt_min_us,
                    m.rtt_max_us,
                    as_i64(m.rtt_sum_us),
                ])?;
                hour.execute(params![id, as_i64(m.minute / 60), m.checks, m.failures])?;
            }
        }
        tx.commit()?;
        for (name, id) in new_ids {
            self.ids.insert(name.to_owned(), id);
        }
        Ok(())
    }

    /// One step of the retention pass: deletes the minutes and hours older than
    /// [`RETENTION`] before `now` of at most 500 targets, in one transaction.
    /// A pass starts when the last one ended; returns true when this step ended one.
    /// Each delete is a range of one target's primary key: cheap at any size.
    pub fn prune_step(&mut self, conn: &mut Connection, now: SystemTime) -> rusqlite::Result<bool> {
        if self.pruning.is_empty() {
            self.pruning = self.ids.values().copied().collect();
        }
        let before = now.checked_sub(RETENTION).unwrap_or(SystemTime::UNIX_EPOCH);
        let minute = as_i64(crate::state::minute_of(before));
        let step = self.pruning.len().min(PRUNE_STEP);
        let ids = self.pruning.split_off(self.pruning.len() - step);
        let tx = conn.transaction()?;
        {
            let mut minutes =
                tx.prepare_cached("DELETE FROM minutes WHERE target_id = ?1 AND minute < ?2")?;
            let mut hours =
                tx.prepare_cached("DELETE FROM hours WHERE target_id = ?1 AND hour < ?2")?;
            for id in &ids {
                minutes.execute(params![id, minute])?;
                hours.execute(params![id, minute / 60])?;
            }
        }
        match tx.commit() {
            Ok(()) => Ok(self.pruning.is_empty()),
            Err(err) => {
                self.pruning.extend(ids);
                Err(err)
            }
        }
    }
}

/// One target as [`load`] reads it back.
#[derive(Debug, Clone)]
pub struct LoadedTarget {
    /// Its name.
    pub name: String,
    /// Its last state, with its last [`TRANSITIONS_LOADED`] transitions, oldest first.
    pub saved: SavedState,
    /// Its minutes of the hour before `now`, oldest first.
    pub minutes: Vec<MinuteAggregate>,
    /// Its hours of the last 7 days (and the hour under way), oldest first.
    pub hours: Vec<HourAggregate>,
}

/// Reads every target's last state and recent history, as of `now`: what the daemon
/// resumes and what the in-memory history starts with. Per target: its last
/// [`TRANSITIONS_LOADED`] transitions, the minutes of the last hour, and [`HOURS_LOADED`]
/// hours; each read is a range of an index.
pub fn load(conn: &Connection, now: SystemTime) -> rusqlite::Result<Vec<LoadedTarget>> {
    let first_minute = as_i64(crate::state::minute_of(now).saturating_sub(60));
    let first_hour = as_i64((crate::state::minute_of(now) / 60).saturating_sub(HOURS_LOADED - 1));
    let mut targets = conn.prepare(
        "SELECT id, name, address, check_kind, health, since_us, last_change_us, state_changes
         FROM targets ORDER BY id",
    )?;
    let mut transitions = conn.prepare(
        "SELECT at_us, from_health, to_health, why, check_us, detail FROM transitions
         WHERE target_id = ?1 ORDER BY at_us DESC, id DESC LIMIT ?2",
    )?;
    let mut minutes = conn.prepare(
        "SELECT minute, checks, failures, rtt_min_us, rtt_max_us, rtt_sum_us FROM minutes
         WHERE target_id = ?1 AND minute >= ?2 ORDER BY minute",
    )?;
    let mut hours = conn.prepare(
        "SELECT hour, checks, failures FROM hours WHERE target_id = ?1 AND hour >= ?2 ORDER BY hour",
    )?;
    let rows = targets.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            SavedState {
                address: row.get(2)?,
                check: row.get(3)?,
                health: health(row.get_ref(4)?.as_str()?),
                since: time(row.get(5)?),
                last_change: row.get::<_, Option<i64>>(6)?.map(time),
                state_changes: u64::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
                transitions: Vec::new(),
            },
        ))
    })?;
    let mut loaded = Vec::new();
    for row in rows {
        let (id, name, mut saved) = row?;
        let limit = as_i64(TRANSITIONS_LOADED as u64);
        saved.transitions = transitions
            .query_map(params![id, limit], transition_of)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        saved.transitions.reverse();
        let minutes = minutes
            .query_map(params![id, first_minute], minute_of_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let hours = hours
            .query_map(params![id, first_hour], |row| {
                Ok(HourAggregate {
                    hour: as_u64(row.get(0)?),
                    checks: as_u64(row.get(1)?),
                    failures: as_u64(row.get(2)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        loaded.push(LoadedTarget {
            name,
            saved,
            minutes,
            hours,
        });
    }
    Ok(loaded)
}

/// What `/api/history` answers for one target from the file.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Every transition since the window's start, oldest first.
    pub transitions: Vec<Transition>,
    /// Every minute since the window's start, oldest first.
    pub minutes: Vec<MinuteAggregate>,
}

/// The target named `name`'s transitions and minutes since `since`; `None` when the file
/// knows no such target.
pub fn window(
    conn: &Connection,
    name: &str,
    since: SystemTime,
) -> rusqlite::Result<Option<Window>> {
    let Some(id) = conn
        .query_row("SELECT id FROM targets WHERE name = ?1", [name], |row| {
            row.get::<_, i64>(0)
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut transitions = conn.prepare_cached(
        "SELECT at_us, from_health, to_health, why, check_us, detail FROM transitions
         WHERE target_id = ?1 AND at_us >= ?2 ORDER BY at_us, id",
    )?;
    let transitions = transitions
        .query_map(params![id, micros(since)], transition_of)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut minutes = conn.prepare_cached(
        "SELECT minute, checks, failures, rtt_min_us, rtt_max_us, rtt_sum_us FROM minutes
         WHERE target_id = ?1 AND minute >= ?2 ORDER BY minute",
    )?;
    let minutes = minutes
        .query_map(
            params![id, as_i64(crate::state::minute_of(since))],
            minute_of_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(Window {
        transitions,
        minutes,
    }))
}

fn transition_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Transition> {
    Ok(Transition {
        at: time(row.get(0)?),
        from: health(row.get_ref(1)?.as_str()?),
        to: health(row.get_ref(2)?.as_str()?),
        why: row.get(3)?,
        check_time: Duration::from_micros(as_u64(row.get(4)?)),
        detail: row.get(5)?,
    })
}

fn minute_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MinuteAggregate> {
    Ok(MinuteAggregate {
        minute: as_u64(row.get(0)?),
        checks: row.get(1)?,
        failures: row.get(2)?,
        rtt_min_us: row.get(3)?,
        rtt_max_us: row.get(4)?,
        rtt_sum_us: as_u64(row.get(5)?),
    })
}

/// A health as saved; a word this version does not know reads as `unknown`, which
/// resumes nothing wrong.
fn health(name: &str) -> Health {
    Health::from_name(name).unwrap_or(Health::Unknown)
}

/// `at` as Unix microseconds (negative before 1970).
fn micros(at: SystemTime) -> i64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// Unix microseconds as a time.
fn time(us: i64) -> SystemTime {
    let magnitude = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
