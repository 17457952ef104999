//! The scheduler's table of watched targets: a slot per target, reused after a target
//! is removed, and a generation per slot, so that a probe result or an event for a
//! removed target misses the target that took its slot. Probes are tagged with a slot's
//! [`Key`], never with anything the kernel reuses (a descriptor).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checks::{Endpoint, Kept, Runner};
use crate::state::Watched;

/// A slot's key in the heap and in probe tags: its index and the generation of the
/// target in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub(super) index: u32,
    pub(super) generation: u32,
}

/// A probe's tag: the key, and whether it confirms a held connection's close.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tag {
    pub(super) key: Key,
    pub(super) confirm: bool,
}

impl Tag {
    const CONFIRM: u64 = 1 << 63;

    /// The tag as the probe feed carries it.
    pub(super) fn encode(self) -> u64 {
        let confirm = if self.confirm { Tag::CONFIRM } else { 0 };
        u64::from(self.key.index) | u64::from(self.key.generation & 0x7fff_ffff) << 32 | confirm
    }

    /// The tag of a probe result.
    pub(super) fn decode(tag: u64) -> Tag {
        Tag {
            key: Key {
                index: tag as u32,
                generation: (tag >> 32) as u32 & 0x7fff_ffff,
            },
            confirm: tag & Tag::CONFIRM != 0,
        }
    }
}

/// One watched target, as the scheduler sees it.
pub(super) struct Entry {
    pub(super) target: Arc<Watched>,
    /// The target's address, parsed for its kind.
    pub(super) endpoint: Endpoint,
    /// The target's runner, timeout and jitter, copied here: every check reads them, and
    /// reading them through the `Arc` cost a cache miss per check (6 % of the daemon's
    /// CPU at 10k checks/s).
    pub(super) runner: Runner,
    pub(super) timeout: Duration,
    pub(super) jitter: f64,
    pub(super) generation: u32,
    /// When the current (or next) scheduled check is due.
    pub(super) due: Instant,
    /// The wait that made it due: what lateness is measured against.
    pub(super) wait: Duration,
    /// Its place in the interval: the due time of its first check, spread with the rest
    /// of the fleet. Checks at `interval` come back to this grid after a change
    /// ([`super::timing::on_grid`]).
    pub(super) slot: Instant,
    /// A scheduled check is under way; the next is scheduled when it ends.
    pub(super) running: bool,
    /// What the kind keeps between checks: a held connection, a kept-alive one.
    pub(super) kept: Arc<Kept>,
}

/// The slots.
#[derive(Default)]
pub(super) struct Slots {
    slots: Vec<Option<Entry>>,
    generations: Vec<u32>,
    free: Vec<u32>,
}

impl Slots {
    /// The key the next [`Slots::insert`] will use.
    pub(super) fn next_key(&mut self) -> Key {
        let index = match self.free.last() {
            Some(&index) => index,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                self.free.push((self.slots.len() - 1) as u32);
                (self.slots.len() - 1) as u32
            }
        };
        Key {
            index,
            generation: self.generations[index as usize],
        }
    }

    /// Puts `entry` in the slot of [`Slots::next_key`] (which `entry.generation` must
    /// be), and returns its key.
    pub(super) fn insert(&mut self, entry: Entry) -> Key {
        let key = self.next_key();
        self.free.pop();
        self.slots[key.index as usize] = Some(entry);
        key
    }

    /// Empties slot `index`. Dropping the entry drops what its kind kept (a held
    /// connection closes); stale heap entries, results and events miss it by generation.
    pub(super) fn remove(&mut self, index: u32) {
        self.slots[index as usize] = None;
        let generation = &mut self.generations[index as usize];
        *generation = generation.wrapping_add(1) & 0x7fff_ffff;
        self.free.push(index);
    }

    /// The entry of `key`, if its target is still there.
    pub(super) fn get(&self, key: Key) -> Option<&Entry> {
        self.slots
            .get(key.index as usize)?
            .as_ref()
            .filter(|entry| entry.generation == key.generation)
    }

    /// [`Slots::get`], to change.
    pub(super) fn get_mut(&mut self, key: Key) -> Option<&mut Entry> {
        self.slots
            .get_mut(key.index as usize)?
            .as_mut()
            .filter(|entry| entry.generation == key.generation)
    }

    /// Every occupied slot's index and entry.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| Some((index as u32, slot.as_ref()?)))
    }

    /// The entry in slot `index`, whatever its generation.
    pub(super) fn at_mut(&mut self, index: u32) -> Option<&mut Entry> {
        self.slots.get_mut(index as usize)?.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for (index, generation, confirm) in
            [(0, 0, false), (7, 3, true), (u32::MAX, 0x7fff_ffff, true)]
        {
            let tag = Tag {
                key: Key { index, generation },
                confirm,
            };
            let back = Tag::decode(tag.encode());
            assert_eq!((back.key, back.confirm), (tag.key, confirm));
        }
    }
}
