//! When checks are due: jitter, lateness, and the next due time after a reload changed a
//! target's waits. Pure functions of times, tested alone.

use std::time::{Duration, Instant};

/// When the scheduler wakes for a check, it also starts the checks due within this much
/// after it (at most [`early_for`] their wait). Every check then costs a share of one
/// wake-up of the scheduler and of the probe engine, rather than one each: at 10k
/// checks/s, wakes carry about 200 checks instead of one (the cross-thread wake-ups were
/// a third of the daemon's CPU with one each, and with 5 ms, about 50 a wake, still some
/// 15 % of it on the raw engine). A check never starts late for it, only a few
/// milliseconds early, and its next check is still due one wait after this one was
/// *due*, so nothing drifts.
pub(super) const EARLY: Duration = Duration::from_millis(20);

/// How early a check with `wait` between checks may start: [`EARLY`], or a twentieth of
/// its wait if that is less, so that short intervals keep their spacing.
pub(super) fn early_for(wait: Duration) -> Duration {
    EARLY.min(wait / 20)
}

/// The time on the grid `slot + k × interval` nearest `at`: `at` moves by at most half an
/// interval.
///
/// A target whose wait goes back to `interval` after a change (a recovery, a failure that
/// did not last) is checked next at its own place in the interval, not one interval
/// after its last fast or down check. Otherwise every target that recovered with the same
/// server lands on that server's `down_interval` grid, and a fleet spread at the start
/// checks it in one bunch until its next failure: a failure then waits for the bunch, up
/// to a whole interval rather than half of one on average (it cost 0.1 to 0.2 s of
/// detection beside HAProxy with inter 1 s, downinter 500 ms).
pub(super) fn on_grid(slot: Instant, interval: Duration, at: Instant) -> Instant {
    let (Some(since), Ok(step)) = (
        at.checked_duration_since(slot),
        u64::try_from(interval.as_nanos()),
    ) else {
        return at;
    };
    let off = Duration::from_nanos((since.as_nanos() % u128::from(step.max(1))) as u64);
    if off <= interval / 2 {
        at - off
    } else {
        at + (interval - off)
    }
}

/// `wait × (1 ± jitter)`, drawn uniformly.
pub(super) fn jittered(rng: &mut fastrand::Rng, wait: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return wait;
    }
    let factor = 1.0 + jitter * (rng.f64() * 2.0 - 1.0);
    wait.mul_f64(factor.max(0.0))
}

/// True when a check due at `due`, after a wait of `wait`, that started at `started` is
/// late: more than max(10 ms, 10 % of the wait) after it was due.
pub(super) fn is_late(due: Instant, wait: Duration, started: Instant) -> bool {
    let late_after = (wait / 10).max(Duration::from_millis(10));
    started.saturating_duration_since(due) > late_after
}

/// The due time of a target's next check after a reload gave it the wait `new_wait`:
/// one new wait after its last check was due (`due - old_wait`), never before `now`. A
/// reload from 1 h to 10 s does not wait out the hour, and one from 10 s to 1 h does not
/// check again at 10 s.
pub(super) fn due_after_reload(
    due: Instant,
    old_wait: Duration,
    new_wait: Duration,
    now: Instant,
) -> Instant {
    let last_due = due.checked_sub(old_wait).unwrap_or(due);
    (last_due + new_wait).max(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_waits_start_less_early() {
        assert_eq!(early_for(Duration::from_secs(1)), EARLY);
        assert_eq!(
            early_for(Duration::from_millis(100)),
            Duration::from_millis(5)
        );
        assert_eq!(early_for(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn waits_are_jittered_within_the_bound() {
        let wait = Duration::from_millis(1000);
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut low, mut high) = (wait, wait);
        for _ in 0..1000 {
            let jittered = jittered(&mut rng, wait, 0.1);
            assert!((900..=1100).contains(&jittered.as_millis()), "{jittered:?}");
            low = low.min(jittered);
            high = high.max(jittered);
        }
        assert!(low < Duration::from_millis(920) && high > Duration::from_millis(1080));
        assert_eq!(jittered(&mut rng, wait, 0.0), wait);
    }

    #[test]
    fn back_to_interval_on_the_grid() {
        let (slot, ms) = (Instant::now(), Duration::from_millis);
        // Up again 1200 ms after its slot, next due at 2200: back to 2000.
        assert_eq!(on_grid(slot, ms(1000), slot + ms(2200)), slot + ms(2000));
        assert_eq!(on_grid(slot, ms(1000), slot + ms(2700)), slot + ms(3000));
        assert_eq!(on_grid(slot, ms(1000), slot + ms(3000)), slot + ms(3000));
        // Before its slot (never, but no panic): as it was.
        assert_eq!(on_grid(slot + ms(500), ms(1000), slot), slot);
    }

    #[test]
    fn late_is_ten_percent_or_ten_ms() {
        let due = Instant::now();
        let ms = Duration::from_millis;
        assert!(!is_late(due, ms(1000), due + ms(100)));
        assert!(is_late(due, ms(1000), due + ms(101)));
        assert!(!is_late(due, ms(50), due + ms(10)));
        assert!(is_late(due, ms(50), due + ms(11)));
        assert!(!is_late(due, ms(50), due - ms(3)), "early is not late");
    }

    #[test]
    fn a_reload_moves_the_next_check_by_the_new_wait() {
        let now = Instant::now();
        let s = Duration::from_secs;
        // Due in 1 h, after a wait of 1 h: the last check was due now; with 10 s, the
        // next is 10 s from now.
        assert_eq!(
            due_after_reload(now + s(3600), s(3600), s(10), now),
            now + s(10)
        );
        // Due in 5 s after a wait of 10 s: the last check was due 5 s ago; with 1 h,
        // the next is an hour after that.
        assert_eq!(
            due_after_reload(now + s(5), s(10), s(3600), now),
            now + s(3595)
        );
        // Never in the past.
        assert_eq!(due_after_reload(now + s(1), s(10), s(2), now), now);
    }
}
