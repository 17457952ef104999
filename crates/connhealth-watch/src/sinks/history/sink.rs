//! [`HistorySink`]: the sink that keeps the history, in memory and, with `--data-dir`,
//! in the store, written in batches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::History;
use crate::sinks::{Event, Sink};
use crate::state::Watched;
use crate::store::history::{Batch, Identity, LastState, Writer};
use crate::store::Store;

/// How often a batch is written: a transition is committed within this (and the time to
/// write the batch) of the check that made it, so a `kill -9` loses at most that.
pub const WRITE_EVERY: Duration = Duration::from_millis(500);

/// How often each target's minute under way is saved: a `kill -9` loses at most the
/// checks of this long (a graceful stop loses none).
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);

/// After a failed write, the next try waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often a retention pass starts (each pass prunes in small steps, one per tick).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The most rows a batch holds while the store cannot be written: 200k (a fleet of
/// 10k targets' minutes for 20 minutes). Beyond, the batch is dropped and counted: the
/// memory stays bounded, and the in-memory history goes on.
const MAX_PENDING: usize = 200_000;

/// The sink that keeps the history: every transition ([`Event::Changed`]) and every
/// closed minute ([`Event::Minute`]) goes to the shared [`History`] at once and, with a
/// store, into a batch that [`Sink::tick`] writes every [`WRITE_EVERY`] in one
/// transaction, with each target's last state.
///
/// A write that fails (a full disk, a file made read-only) is logged once, with the path
/// and what to do, and tried again every second with what was batched since; when it
/// succeeds again, that is logged too. Nothing of it reaches the checks: the sink runs
/// on its own thread, behind the seam's queue.
#[derive(Debug)]
pub struct HistorySink {
    history: History,
    store: Option<Stored>,
}

/// The store's side of the sink.
#[derive(Debug)]
struct Stored {
    store: Arc<Store>,
    /// `None` until the first write: built from the file, on the sink's thread.
    writer: Option<Writer>,
    batch: Batch,
    /// When the batch is due to be written; `None` while it is empty.
    write_at: Option<Instant>,
    prune_at: Instant,
    snapshot_at: Instant,
    /// Each target's minute under way as last saved: its minute and checks, so that a
    /// target with no check since is not written again.
    snapshots: HashMap<String, (u64, u32)>,
    /// Since when writes fail; `None` while they succeed.
    failing_since: Option<SystemTime>,
    /// Rows dropped since writes began to fail.
    dropped: usize,
}

impl HistorySink {
    /// A sink that keeps `history`, and writes it to `store` when there is one.
    pub fn new(history: History, store: Option<Arc<Store>>) -> HistorySink {
        HistorySink {
            history,
            store: store.map(|store| Stored {
                store,
                writer: None,
                batch: Batch::default(),
                write_at: None,
                prune_at: Instant::now() + PRUNE_EVERY,
                snapshot_at: Instant::now() + SNAPSHOT_EVERY,
                snapshots: HashMap::new(),
                failing_since: None,
                dropped: 0,
            }),
        }
    }
}

fn identity(target: &Watched) -> Identity {
    Identity {
        address: target.plan.address.clone(),
        check: target.plan.check.kind().name(),
    }
}

impl Sink for HistorySink {
    fn name(&self) -> &'static str {
        "history"
    }

    fn wants_minutes(&self) -> bool {
        true
    }

    fn deliver(&mut self, event: Event) {
        match event {
            Event::Changed { target, transition } => {
                let name = &target.plan.name;
                self.history.record_transition(name, transition.clone());
                if let Some(stored) = &mut self.store {
                    // The state as it is now, not as the transition left it: a later
                    // transition already recorded is in the queue behind this one, and
                    // the batch that writes it writes the same state again.
                    let state = {
                        let state = target.state();
                        LastState {
                            health: state.health,
                            since: state.since,
                            last_change: state.last_change,
                            state_changes: state.state_changes,
                        }
                    };
                    let entry = (identity(&target), Some(state));
                    stored.batch.targets.insert(name.clone(), entry);
                    stored.batch.transitions.push((name.clone(), transition));
                }
            }
            Event::Minute { target, minute } => {
                let name = &target.plan.name;
                self.history.record_minute(name, minute);
                if let Some(stored) = &mut self.store {
                    if !stored.batch.targets.contains_key(name) {
                        let entry = (identity(&target), None);
                        stored.batch.targets.insert(name.clone(), entry);
                    }
                    stored.batch.minutes.push((name.clone(), minute));
                }
            }
            Event::Checked { .. } => {}
        }
    }

    fn tick(&mut self, now: Instant) -> Option<Instant> {
        let stored = self.store.as_mut()?;
        if now >= stored.snapshot_at {
            stored.snapshot(&self.history);
            stored.snapshot_at = now + SNAPSHOT_EVERY;
        }
        if !stored.batch.is_empty() {
            let due = *stored.write_at.get_or_insert(now + WRITE_EVERY);
            if now >= due {
                stored.write(now);
            }
        }
        if now >= stored.prune_at && stored.failing_since.is_none() {
            stored.prune(now);
        }
        let next = stored.prune_at.min(stored.snapshot_at);
        Some(stored.write_at.map_or(next, |at| at.min(next)))
    }

    fn finish(&mut self) {
        if let Some(stored) = &mut self.store {
            stored.snapshot(&self.history);
            if !stored.batch.is_empty() {
                stored.write(Instant::now());
            }
        }
    }
}

impl Stored {
    /// Puts each followed target's minute under way in the batch, when it has new
    /// checks. Each target's own lock, briefly, one at a time: as a scrape takes it.
    fn snapshot(&mut self, history: &History) {
        let tracked = history.tracked();
        // Only the targets watched now: the map does not grow with file_sd's churn.
        let mut snapshots = HashMap::with_capacity(tracked.len());
        for target in tracked {
            let Some(open) = target.state().minute else {
                continue;
            };
            let name = &target.plan.name;
            let seen = (open.minute, open.checks);
            let unchanged = self.snapshots.get(name) == Some(&seen);
            snapshots.insert(name.clone(), seen);
            if unchanged {
                continue;
            }
            if !self.batch.targets.contains_key(name) {
                let entry = (identity(&target), None);
                self.batch.targets.insert(name.clone(), entry);
            }
            self.batch.open_minutes.push((name.clone(), open));
        }
        self.snapshots = snapshots;
    }

    /// Writes the batch; on failure keeps it (bounded) for the next try.
    fn write(&mut self, now: Instant) {
        let result = {
            let mut conn = self.store.lock();
            let writer = match &mut self.writer {
                Some(writer) => Ok(writer),
                None => Writer::new(&conn).map(|writer| self.writer.insert(writer)),
            };
            writer.and_then(|writer| writer.write(&mut conn, &self.batch))
        };
        match result {
            Ok(()) => {
                self.batch = Batch::default();
                self.write_at = None;
                if let Some(since) = self.failing_since.take() {
                    let failed_for = since.elapsed().unwrap_or_default();
                    tracing::info!(
                        path = %self.store.path().display(),
                        "the history is written to {} again, after {} of failed writes; {} row(s) were lost meanwhile",
                        self.store.path().display(),
                        crate::human::Rounded(failed_for),
                        self.dropped,
                    );
                    self.dropped = 0;
                }
            }
            Err(err) => {
                if self.failing_since.is_none() {
                    self.failing_since = Some(SystemTime::now());
                    tracing::error!(
                        path = %self.store.path().display(),
                        "cannot write the history to {}: {err}; check the disk's free space and the file's permissions (the daemon goes on checking, keeps the history in memory, and tries again every second)",
                        self.store.path().display(),
                    );
                }
                if self.batch.len() > MAX_PENDING {
                    self.dropped += self.batch.len();
                    self.batch = Batch::default();
                    self.write_at = None;
                } else {
                    self.write_at = Some(now + RETRY_AFTER);
                }
            }
        }
    }

    /// One retention step; the next pass a minute after this one ends.
    fn prune(&mut self, now: Instant) {
        let result = {
            let mut conn = self.store.lock();
            let writer = match &mut self.writer {
                Some(writer) => Ok(writer),
                None => Writer::new(&conn).map(|writer| self.writer.insert(writer)),
            };
            writer.and_then(|writer| writer.prune_step(&mut conn, SystemTime::now()))
        };
        match result {
            Ok(true) => self.prune_at = now + PRUNE_EVERY,
            // More targets to prune in this pass: the next step soon, after the
            // other users of the file had their turn.
            Ok(false) => self.prune_at = now + Duration::from_millis(10),
            Err(err) => {
                tracing::warn!(
                    path = %self.store.path().display(),
                    "cannot delete minutes older than 30 days from {}: {err}; tried again in a minute",
                    self.store.path().display(),
                );
                self.prune_at = now + PRUNE_EVERY;
            }
        }
    }
}
