//! `--shard K/N`: which targets this instance watches, by rendezvous hash of the name.
//!
//! Each target goes to the shard whose hash of `(name, shard)` is highest. The N shards are
//! disjoint and cover every target, every instance agrees without talking to the others,
//! and going from N to N+1 shards moves only the targets the new shard wins. The hash is
//! FNV-1a with a SplitMix64 finaliser, written out here rather than taken from `std`,
//! whose hasher may change between Rust releases: instances built apart must agree.

use std::fmt;
use std::str::FromStr;

/// One shard of N, 1-based: `--shard 2/3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This instance's shard, 1 to `count`.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

impl Shard {
    /// True when the target named `name` belongs to this shard.
    ///
    /// ```
    /// use connhealth_watch::shard::Shard;
    /// let shards: Vec<Shard> = (1..=3).map(|k| format!("{k}/3").parse().unwrap()).collect();
    /// for name in ["cache-a", "db-1", "10.0.0.1:80"] {
    ///     assert_eq!(shards.iter().filter(|s| s.owns(name)).count(), 1);
    /// }
    /// ```
    pub fn owns(&self, name: &str) -> bool {
        owner(name, self.count) == self.index
    }
}

/// The shard, 1 to `count`, that owns `name`.
fn owner(name: &str, count: u32) -> u32 {
    (1..=count)
        .max_by_key(|&shard| weight(name, shard))
        .unwrap_or(1)
}

fn weight(name: &str, shard: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes().chain(shard.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV alone mixes its last bytes poorly, and the shard number is the last bytes.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("{text:?} is not a shard; write K/N with 1 <= K <= N, e.g. 2/3");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_cover_everything_and_are_balanced() {
        let names: Vec<String> = (0..3000).map(|i| format!("target-{i}")).collect();
        let shards: Vec<Shard> = (1..=3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for name in &names {
            let owners: Vec<_> = shards.iter().filter(|s| s.owns(name)).collect();
            assert_eq!(owners.len(), 1, "{name} has {} owners", owners.len());
            sizes[owners[0].index as usize - 1] += 1;
        }
        for size in sizes {
            assert!((800..1200).contains(&size), "unbalanced: {sizes:?}");
        }
    }

    #[test]
    fn a_new_shard_moves_only_what_it_wins() {
        for i in 0..2000 {
            let name = format!("t{i}");
            let (before, after) = (owner(&name, 4), owner(&name, 5));
            assert!(after == before || after == 5, "{name}: {before} -> {after}");
        }
    }

    #[test]
    fn bad_shards_say_what_to_write() {
        for text in ["0/3", "4/3", "1/0", "a/b", "2", "1/3/4", ""] {
            let err = text.parse::<Shard>().unwrap_err();
            assert!(err.contains("K/N"), "{text}: {err}");
        }
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
    }
}
