//! [`Deadlines`]: when each probe in the engine's table gives up.
//!
//! A min-heap of `(deadline, index, arm)` with lazy deletion. Most probes finish long
//! before their deadline, and taking their heap entry out of the middle of the heap
//! would cost a search; instead the entry stays, and goes stale. Each index of the
//! engine's table has a count of the deadlines armed for it, kept here in a dense array:
//! a heap entry is live while it carries its index's current count and the index is
//! armed. Arming a probe again (a `start_by` giving way to SYN + timeout) and disarming it
//! (the probe left the table) both move the count on. Stale entries are skipped when they
//! fall due, and dropped all at once when they outnumber live ones by [`SLACK`].
//!
//! Why the counts live here rather than in the table: telling a stale entry from a live
//! one must not read the table. With thousands of probes in flight the table (about 130
//! bytes an entry, one entry per probe in flight or queued) no longer stays in the cache
//! beside the kernel's sockets, and a compaction that read it paid a cache miss per heap
//! entry: about two per probe at 4096 in flight, none at 128. The counts take 8 bytes an
//! entry, read in the heap's order, and stay cached.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Stale heap entries are dropped once the heap holds more than twice the live ones
/// plus this many, so that a compaction, which reads the whole heap, runs at most once
/// per this many arms: its cost per probe stays constant.
const SLACK: usize = 1024;

/// One heap entry: `index`'s deadline `at`, armed as its `arm`th.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Armed {
    at: Instant,
    index: u32,
    arm: u32,
}

/// One table index's standing: the count of deadlines armed for it, and whether one is
/// armed now.
#[derive(Clone, Copy, Default)]
struct Arm {
    count: u32,
    armed: bool,
}

/// The engine's deadlines, by table index.
pub(super) struct Deadlines {
    heap: BinaryHeap<Reverse<Armed>>,
    /// By table index.
    arms: Vec<Arm>,
    /// Indexes with a deadline armed.
    live: usize,
}

impl Deadlines {
    pub(super) fn new() -> Deadlines {
        Deadlines {
            heap: BinaryHeap::new(),
            arms: Vec::new(),
            live: 0,
        }
    }

    /// Arms `index`'s deadline at `at`; a deadline armed for it before goes stale.
    pub(super) fn arm(&mut self, index: u32, at: Instant) {
        let position = index as usize;
        if position >= self.arms.len() {
            self.arms.resize(position + 1, Arm::default());
        }
        let arm = &mut self.arms[position];
        // Wrapping cannot revive a stale entry: one is compacted away within
        // 2 * live + SLACK arms, far fewer than its index's count takes to come round.
        arm.count = arm.count.wrapping_add(1);
        if !arm.armed {
            arm.armed = true;
            self.live += 1;
        }
        self.heap.push(Reverse(Armed {
            at,
            index,
            arm: arm.count,
        }));
        if self.heap.len() > 2 * self.live + SLACK {
            let arms = &self.arms;
            self.heap.retain(|Reverse(armed)| is_live(arms, armed));
        }
    }

    /// `index`'s probe left the table: its deadline, if it had one, goes stale.
    pub(super) fn disarm(&mut self, index: u32) {
        if let Some(arm) = self.arms.get_mut(index as usize) {
            if arm.armed {
                arm.armed = false;
                arm.count = arm.count.wrapping_add(1);
                self.live -= 1;
            }
        }
    }

    /// The earliest deadline in the heap, live or stale: a stale one costs at worst one
    /// wake-up for nothing. (Popping stale entries off the top to reach a live one would
    /// cost a sift each; most of them go in a compaction, a cheaper pass, before they
    /// fall due.)
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(armed)| armed.at)
    }

    /// The index of the earliest live deadline at or before `now`, taken off the heap
    /// with the stale entries due before it. The index stays armed until
    /// [`disarm`](Self::disarm).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<u32> {
        while let Some(&Reverse(armed)) = self.heap.peek() {
            if armed.at > now {
                return None;
            }
            self.heap.pop();
            if is_live(&self.arms, &armed) {
                return Some(armed.index);
            }
        }
        None
    }
}

fn is_live(arms: &[Arm], armed: &Armed) -> bool {
    arms.get(armed.index as usize)
        .is_some_and(|arm| arm.armed && arm.count == armed.arm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_the_current_arm_of_an_armed_index_falls_due() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut deadlines = Deadlines::new();
        deadlines.arm(0, ms(10));
        deadlines.arm(1, ms(20));
        deadlines.arm(0, ms(30)); // re-armed: its 10 ms entry is stale
        deadlines.arm(2, ms(5));
        deadlines.disarm(2); // left the table: its 5 ms entry is stale
        assert_eq!(deadlines.next(), Some(ms(5))); // stale, and harmless
        assert_eq!(deadlines.pop_due(ms(25)), Some(1));
        deadlines.disarm(1);
        assert_eq!(deadlines.pop_due(ms(25)), None);
        assert_eq!(deadlines.pop_due(ms(30)), Some(0));
        deadlines.disarm(0);
        assert_eq!(deadlines.live, 0);
        deadlines.arm(2, ms(40)); // a new probe at a reused index
        assert_eq!(deadlines.pop_due(ms(40)), Some(2));
    }

    #[test]
    fn stale_entries_are_compacted_away() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::new();
        deadlines.arm(100, t0 + Duration::from_secs(3600));
        for i in 0..100_000u32 {
            deadlines.arm(i % 8, t0 + Duration::from_millis(u64::from(i)));
            deadlines.disarm(i % 8);
        }
        assert!(deadlines.heap.len() <= 2 + SLACK + 1);
        assert_eq!(deadlines.pop_due(t0 + Duration::from_secs(1000)), None);
        assert_eq!(deadlines.heap.len(), 1, "only the live entry is left");
    }
}
