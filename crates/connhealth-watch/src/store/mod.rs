//! `--data-dir DIR`: the daemon's memory across restarts, in `DIR/state.sqlite`.
//!
//! One SQLite file in WAL mode, with `synchronous = NORMAL`: a commit survives the
//! process's death (`kill -9`, a panic, the OOM killer) at once, and a power cut loses
//! at most the last commits, never the file. It holds what each concern writes in its own
//! tables: the history and each target's last state (`history.rs`), silences and
//! the alerts not yet delivered (`alerts.rs`). Writers batch: nothing here runs on the
//! check path.
//!
//! [`Store::open`] refuses, with the path and what to do, a folder it cannot create or
//! write, a file that is not SQLite, a SQLite file that is not connhealth's, one from a
//! newer connhealth, and one that fails SQLite's quick check. It never overwrites or
//! repairs such a file: the operator decides.
//!
//! The quick check reads the whole file: about half a second per 100 MB here. Above
//! [`QUICK_CHECK_MAX_BYTES`] it is skipped, so that a large history (10k targets keep
//! gigabytes of per-minute aggregates) does not delay the start by minutes; the header
//! checks still run, and SQLite reports a damaged page when a read meets it (the daemon
//! then logs the error with the path, and goes on checking).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub mod alerts;
pub mod history;

/// The file in the data dir.
pub const FILE_NAME: &str = "state.sqlite";

/// Above this size the quick check at open is skipped (see the module's doc): 256 MiB.
pub const QUICK_CHECK_MAX_BYTES: u64 = 256 << 20;

/// `PRAGMA application_id` of connhealth's file: "cnhw" (connhealth watch).
const APPLICATION_ID: i32 = 0x636e_6877;

/// The schema's version (`PRAGMA user_version`). A file of a later version is refused:
/// an older daemon cannot know what a newer one keeps.
const SCHEMA_VERSION: i32 = 1;

/// An open `state.sqlite`. One connection, behind a lock: the history's writer, the
/// alerts' writers and the HTTP side's readers take turns, each briefly.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// Why a data dir cannot be used. Each says the path, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder cannot be created, or is not a folder.
    #[error("cannot use the data dir {}: {source}; create it, or give another --data-dir", path.display())]
    Dir {
        /// The folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// SQLite cannot open, read or write the file: permissions, a file system mounted
    /// read-only (which root meets too), a full disk.
    #[error("cannot open {}: {source}; check its permissions and that its file system is writable (not mounted read-only, not full), or give another --data-dir", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file is not SQLite, or is damaged.
    #[error("{} is damaged or is not a SQLite file ({why}); connhealth does not overwrite it: move it away (a fresh one is created), or give another --data-dir", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite found.
        why: String,
    },
    /// A SQLite file, but not connhealth's.
    #[error("{} is a SQLite file of another program (application_id {found:#x}); connhealth does not overwrite it: give another --data-dir", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its application id.
        found: i32,
    },
    /// connhealth's, written by a newer version.
    #[error("{} was written by a newer connhealth (schema {found}, this one knows {SCHEMA_VERSION}); run that version, or give another --data-dir", path.display())]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i32,
    },
}

impl Store {
    /// Opens (creating if missing) `dir/state.sqlite`, after checking that it is
    /// connhealth's and whole.
    ///
    /// ```
    /// use connhealth_watch::store::Store;
    ///
    /// let dir = std::env::temp_dir().join(format!("connhealth-store-doc-{}", std::process::id()));
    /// let store = Store::open(&dir)?;
    /// assert!(store.path().ends_with("state.sqlite"));
    /// drop(store);
    /// // Not connhealth's: refused, never overwritten.
    /// std::fs::write(dir.join("state.sqlite"), "not a database, but someone's file")?;
    /// let err = Store::open(&dir).unwrap_err().to_string();
    /// assert!(err.contains("is damaged or is not a SQLite file"), "{err}");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let open = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(open)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(open)?;
        let corrupt = |why: String| StoreError::Corrupt {
            path: path.clone(),
            why,
        };
        // The first read of the header: a file that is not SQLite fails here.
        let (app_id, version) = conn
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id), \
                        (SELECT user_version FROM pragma_user_version)",
                [],
                |row| Ok((row.get::<_, i32>(0)?, row.get::<_, i32>(1)?)),
            )
            .map_err(|err| classify(err, &path))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .map_err(|err| classify(err, &path))?;
        if tables > 0 && app_id != APPLICATION_ID {
            return Err(StoreError::Foreign {
                path,
                found: app_id,
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::Newer {
                path,
                found: version,
            });
        }
        let size = std::fs::metadata(&path).map_or(0, |meta| meta.len());
        if tables > 0 && size <= QUICK_CHECK_MAX_BYTES {
            let check: String = conn
                .query_row("PRAGMA quick_check", [], |row| row.get(0))
                .map_err(|err| classify(err, &path))?;
            if check != "ok" {
                return Err(corrupt(format!("quick_check says: {check}")));
            }
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|err| classify(err, &path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(corrupt(format!(
                "it cannot be put in WAL mode (it says {mode})"
            )));
        }
        // An 8 MiB page cache (SQLite's default is 2 MiB): a fleet's transitions land
        // all over the `transitions_by_target` index, and each miss is a read.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -8192;",
        )
        .map_err(open)?;
        // The schema, created in one transaction, which also proves the file writable.
        let schema = format!(
            "BEGIN IMMEDIATE;\n{}\n{}\nPRAGMA application_id = {APPLICATION_ID};\n\
             PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;",
            history::SCHEMA,
            alerts::SCHEMA,
        );
        conn.execute_batch(&schema)
            .map_err(|err| classify(err, &path))?;
        Ok(Store {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// Every target's last state and recent history, as of `now`
    /// ([`history::load`]), once the minutes under way when the daemon last stopped are
    /// folded in ([`history::fold_open_minutes`]): read once at start.
    pub fn load_history(
        &self,
        now: std::time::SystemTime,
    ) -> Result<Vec<history::LoadedTarget>, StoreError> {
        let conn = self.lock();
        history::fold_open_minutes(&conn)
            .and_then(|()| history::load(&conn, now))
            .map_err(|err| classify(err, &self.path))
    }

    /// The file: `DIR/state.sqlite`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, locked. Hold it for one batch or one query: the others wait.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An error of SQLite's at open, in the operator's terms.
fn classify(err: rusqlite::Error, path: &Path) -> StoreError {
    use rusqlite::ErrorCode;
    match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
            why: err.to_string(),
        },
        _ => StoreError::Open {
            path: path.to_owned(),
            source: err,
        },
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}
