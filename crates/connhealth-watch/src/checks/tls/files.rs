//! The files a check's TLS reads (a CA file; a client certificate and its key), parsed
//! once per set of paths, looked at again (a `stat` of each) at most every
//! [`RECHECK`], and re-read when the size or mtime of any of them changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// How often cached files are looked at again, as file_sd's "within 5 s of a change".
pub(super) const RECHECK: Duration = Duration::from_secs(5);

/// A file's identity as `stat` sees it: a change of either means it was rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

#[derive(Debug)]
struct Cached<V> {
    stamps: Vec<FileStamp>,
    checked: Instant,
    value: V,
}

type Entries<V> = Mutex<HashMap<Box<[PathBuf]>, Cached<V>>>;

/// What was parsed from sets of files, by their paths. The lock is held for a lookup,
/// never across an await.
#[derive(Debug)]
pub(super) struct FileCache<V> {
    entries: LazyLock<Entries<V>>,
}

impl<V: Clone> FileCache<V> {
    pub(super) const fn new() -> FileCache<V> {
        FileCache {
            entries: LazyLock::new(Default::default),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Box<[PathBuf]>, Cached<V>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `parse` makes of the contents of `files` (each a path and what it is, for
    /// the message: `CA file`), from the cache while they are unchanged. An unreadable
    /// file is an error naming it (`cannot read CA file /etc/ca.pem: ...`); `parse`'s
    /// errors are its own sentences.
    pub(super) async fn get(
        &self,
        files: &[(&Path, &str)],
        parse: impl FnOnce(&[Vec<u8>]) -> Result<V, String>,
    ) -> Result<V, String> {
        let key: Box<[PathBuf]> = files.iter().map(|(path, _)| path.to_path_buf()).collect();
        if let Some(cached) = self.entries().get(&key) {
            if cached.checked.elapsed() < RECHECK {
                return Ok(cached.value.clone());
            }
        }
        let unreadable = |path: &Path, what: &str, err: std::io::Error| {
            format!("cannot read {what} {}: {err}", path.display())
        };
        let mut stamps = Vec::with_capacity(files.len());
        for (path, what) in files {
            let meta = tokio::fs::metadata(path)
                .await
                .map_err(|err| unreadable(path, what, err))?;
            stamps.push(FileStamp {
                modified: meta.modified().ok(),
                len: meta.len(),
            });
        }
        if let Some(cached) = self.entries().get_mut(&key) {
            if cached.stamps == stamps {
                cached.checked = Instant::now();
                return Ok(cached.value.clone());
            }
        }
        let mut contents = Vec::with_capacity(files.len());
        for (path, what) in files {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|err| unreadable(path, what, err))?;
            contents.push(bytes);
        }
        let value = parse(&contents)?;
        self.entries().insert(
            key,
            Cached {
                stamps,
                checked: Instant::now(),
                value: value.clone(),
            },
        );
        Ok(value)
    }
}
