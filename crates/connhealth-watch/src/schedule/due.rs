//! [`DueTimes`]: when each target's next check is due, as a calendar of millisecond
//! buckets over the next few seconds, and a heap for what lies beyond.
//!
//! A binary heap of 10k due times costs a check about a dozen cache misses per pop at
//! full load (its lower levels never stay cached between turns): a measurable share of
//! the daemon's CPU per check. Almost every due time is within a few seconds (an
//! interval, give or take its jitter), so it goes into the bucket of its millisecond and
//! is read back in order with its neighbours; only longer waits go to the heap, and move
//! to their bucket when it comes within reach. Within one millisecond, due times come out
//! in no particular order: the scheduler starts every check due within [`EARLY`] of now
//! in one turn anyway.
//!
//! [`EARLY`]: super::timing::EARLY

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::slots::Key;

/// Buckets in the calendar: one per millisecond, about 4 s ahead.
const RING: usize = 4096;
const WORDS: usize = RING / 64;

/// The due times of every target's next check (and stale ones, which the scheduler
/// skips: an entry is not removed when its target's due time changes).
pub(super) struct DueTimes {
    /// The instant of tick 0; a tick is a millisecond since.
    origin: Instant,
    /// The first tick whose bucket may still hold due times: everything before it came out.
    cursor: u64,
    buckets: Vec<Vec<(Instant, Key)>>,
    /// One bit per bucket that holds something.
    occupied: [u64; WORDS],
    /// Due times at or beyond `cursor + RING` ticks.
    far: BinaryHeap<Reverse<(Instant, Key)>>,
}

impl DueTimes {
    pub(super) fn new(origin: Instant) -> DueTimes {
        DueTimes {
            origin,
            cursor: 0,
            buckets: (0..RING).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            far: BinaryHeap::new(),
        }
    }

    fn tick(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }

    pub(super) fn push(&mut self, at: Instant, key: Key) {
        // A time already passed goes in the first bucket not yet read.
        let tick = self.tick(at).max(self.cursor);
        if tick < self.cursor + RING as u64 {
            self.put(tick, at, key);
        } else {
            self.far.push(Reverse((at, key)));
        }
    }

    fn put(&mut self, tick: u64, at: Instant, key: Key) {
        let slot = (tick % RING as u64) as usize;
        self.buckets[slot].push((at, key));
        self.occupied[slot / 64] |= 1 << (slot % 64);
    }

    /// The earliest due time, if any.
    pub(super) fn next(&self) -> Option<Instant> {
        let near = self
            .first_occupied()
            .and_then(|slot| self.buckets[slot].iter().map(|&(at, _)| at).min());
        let far = self.far.peek().map(|Reverse((at, _))| *at);
        match (near, far) {
            (Some(near), Some(far)) => Some(near.min(far)),
            (near, far) => near.or(far),
        }
    }

    /// The first occupied bucket in ring order from the cursor's.
    fn first_occupied(&self) -> Option<usize> {
        let start = (self.cursor % RING as u64) as usize;
        (0..=WORDS).find_map(|step| {
            let word = (start / 64 + step) % WORDS;
            let mut bits = self.occupied[word];
            if step == 0 {
                bits &= !0u64 << (start % 64); // this word's buckets before the cursor's
            } else if step == WORDS {
                bits &= (1u64 << (start % 64)).wrapping_sub(1); // ... are last in order
            }
            (bits != 0).then(|| word * 64 + bits.trailing_zeros() as usize)
        })
    }

    /// Moves every due time at or before `horizon` into `out`, in order of their
    /// millisecond.
    pub(super) fn take_due(&mut self, horizon: Instant, out: &mut Vec<(Instant, Key)>) {
        let last = self.tick(horizon);
        if last < self.cursor {
            return;
        }
        if last >= self.cursor + RING as u64 {
            // Idle for longer than the calendar holds: everything in it is due.
            for tick in self.cursor..self.cursor + RING as u64 {
                self.drain(tick, horizon, out);
            }
            while let Some(&Reverse((at, key))) = self.far.peek() {
                if at > horizon {
                    break;
                }
                self.far.pop();
                out.push((at, key));
            }
            self.cursor = last;
        } else {
            let mut tick = self.cursor;
            while tick <= last {
                let slot = (tick % RING as u64) as usize;
                if self.occupied[slot / 64] >> (slot % 64) & 1 == 0 {
                    // Skip to the next bucket in use, word by word.
                    let rest = self.occupied[slot / 64] >> (slot % 64);
                    tick += match rest {
                        0 => 64 - (slot % 64) as u64,
                        rest => u64::from(rest.trailing_zeros()),
                    };
                    continue;
                }
                self.drain(tick, horizon, out);
                tick += 1;
            }
            self.cursor = last;
        }
        // Due times that came within reach of the calendar move into it.
        let reach = self.cursor + RING as u64;
        while let Some(&Reverse((at, key))) = self.far.peek() {
            let tick = self.tick(at).max(self.cursor);
            if tick >= reach {
                break;
            }
            self.far.pop();
            self.put(tick, at, key);
        }
    }

    /// Moves the due times of `tick`'s bucket at or before `horizon` into `out`.
    fn drain(&mut self, tick: u64, horizon: Instant, out: &mut Vec<(Instant, Key)>) {
        let slot = (tick % RING as u64) as usize;
        let bucket = &mut self.buckets[slot];
        if bucket.is_empty() {
            return;
        }
        let before = out.len();
        bucket.retain(|&(at, key)| {
            let due = at <= horizon;
            if due {
                out.push((at, key));
            }
            !due
        });
        if bucket.is_empty() {
            self.occupied[slot / 64] &= !(1 << (slot % 64));
        }
        out[before..].sort_unstable_by_key(|&(at, _)| at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(index: u32) -> Key {
        Key {
            index,
            generation: 0,
        }
    }

    fn take(due: &mut DueTimes, horizon: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        due.take_due(horizon, &mut out);
        out.iter().map(|(_, key)| key.index).collect()
    }

    #[test]
    fn due_times_come_out_in_order_and_only_when_due() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut due = DueTimes::new(t0);
        assert_eq!(due.next(), None);
        due.push(ms(30), key(3));
        due.push(ms(10), key(1));
        due.push(ms(20), key(2));
        due.push(ms(10_000), key(9)); // beyond the calendar
        assert_eq!(due.next(), Some(ms(10)));
        assert_eq!(take(&mut due, ms(5)), Vec::<u32>::new());
        assert_eq!(take(&mut due, ms(20)), [1, 2]);
        assert_eq!(due.next(), Some(ms(30)));
        // A time already passed comes out at the next take.
        due.push(ms(1), key(4));
        assert_eq!(due.next(), Some(ms(1)));
        assert_eq!(take(&mut due, ms(25)), [4]);
        assert_eq!(take(&mut due, ms(9_999)), [3]);
        assert_eq!(due.next(), Some(ms(10_000)));
        assert_eq!(take(&mut due, ms(10_000)), [9]);
        assert_eq!(due.next(), None);
    }

    #[test]
    fn within_a_millisecond_only_what_is_due_comes_out() {
        let t0 = Instant::now();
        let mut due = DueTimes::new(t0);
        let at = |us: u64| t0 + Duration::from_micros(us);
        due.push(at(5_900), key(2));
        due.push(at(5_100), key(1));
        assert_eq!(take(&mut due, at(5_500)), [1]);
        assert_eq!(due.next(), Some(at(5_900)));
        assert_eq!(take(&mut due, at(6_000)), [2]);
    }

    #[test]
    fn the_calendar_wraps_and_far_times_move_in() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut due = DueTimes::new(t0);
        // A fleet checked every second, for a minute: each comes out once per second,
        // in order, however the ring wraps.
        for i in 0..100 {
            due.push(ms(i * 10), key(i as u32));
        }
        let mut now = 0;
        let mut seen = Vec::new();
        while now < 60_000 {
            now += 7;
            let mut out = Vec::new();
            due.take_due(ms(now), &mut out);
            for (at, key) in out {
                assert!(at <= ms(now), "{at:?} came out before it was due");
                assert!(
                    ms(now) - at <= Duration::from_millis(7),
                    "late: {:?}",
                    ms(now) - at
                );
                seen.push(key.index);
                due.push(at + Duration::from_millis(1_000), key);
            }
        }
        assert!(seen.len() >= 100 * 59, "{}", seen.len());
        // Far due times (30 s waits) move into the calendar and come out on time.
        let mut far = DueTimes::new(t0);
        far.push(ms(30_000), key(1));
        far.push(ms(45_000), key(2));
        let mut out = Vec::new();
        for step in 1..=50_000 / 5 {
            let before = out.len();
            far.take_due(ms(step * 5), &mut out);
            for &(at, _) in &out[before..] {
                assert!(ms(step * 5) - at < Duration::from_millis(5), "late");
            }
        }
        assert_eq!(out.iter().map(|(_, k)| k.index).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn after_a_long_idle_gap_everything_due_comes_out() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut due = DueTimes::new(t0);
        due.push(ms(100), key(1));
        due.push(ms(3_000), key(2));
        due.push(ms(20_000), key(3));
        due.push(ms(90_000), key(4));
        assert_eq!(take(&mut due, ms(60_000)), [1, 2, 3]);
        assert_eq!(due.next(), Some(ms(90_000)));
        due.push(ms(60_500), key(5));
        assert_eq!(due.next(), Some(ms(60_500)));
        assert_eq!(take(&mut due, ms(100_000)), [5, 4]);
    }
}
