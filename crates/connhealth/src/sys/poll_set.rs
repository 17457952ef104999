//! The registry behind the level-triggered pollers (`poll(2)` on Unix, `WSAPoll` on
//! Windows): the array the system call reads, the token of each entry, and where each
//! descriptor sits, so that a removal is O(1).

use std::collections::HashMap;
use std::hash::Hash;

/// One entry of the array a poll call takes (`pollfd`, `WSAPOLLFD`).
pub(crate) trait PollEntry {
    /// The descriptor or socket handle the entry watches.
    type Key: Copy + Eq + Hash;

    fn key(&self) -> Self::Key;

    /// Whether the last call reported anything for this entry, clearing the report.
    fn take_ready(&mut self) -> bool;
}

/// The entries of a poller, each with its token.
pub(crate) struct PollSet<E: PollEntry> {
    entries: Vec<E>,
    tokens: Vec<u64>,
    /// Where each key sits in `entries`, for `remove`.
    index: HashMap<E::Key, usize>,
}

impl<E: PollEntry> std::fmt::Debug for PollSet<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollSet")
            .field("registered", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl<E: PollEntry> PollSet<E> {
    pub(crate) fn new() -> PollSet<E> {
        PollSet {
            entries: Vec::new(),
            tokens: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub(crate) fn push(&mut self, entry: E, token: u64) {
        self.index.insert(entry.key(), self.entries.len());
        self.entries.push(entry);
        self.tokens.push(token);
    }

    /// Must be called before the descriptor is closed: a poll call has no kernel-side
    /// set, and a number reused by the next probe would otherwise inherit this entry.
    pub(crate) fn remove(&mut self, key: E::Key) {
        if let Some(at) = self.index.remove(&key) {
            self.entries.swap_remove(at);
            self.tokens.swap_remove(at);
            if let Some(moved) = self.entries.get(at) {
                self.index.insert(moved.key(), at);
            }
        }
    }

    /// The array to hand the poll call.
    pub(crate) fn entries_mut(&mut self) -> &mut [E] {
        &mut self.entries
    }

    /// Appends the token of every entry the last call reported to `out`.
    pub(crate) fn ready(&mut self, out: &mut Vec<u64>) {
        for (entry, token) in self.entries.iter_mut().zip(&self.tokens) {
            if entry.take_ready() {
                out.push(*token);
            }
        }
    }
}
