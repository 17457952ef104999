//! Which CPU the calling thread runs on, so that the pool can keep state per CPU.
//!
//! Linux's `sched_getcpu` reads the thread's rseq area (glibc 2.35 and later) or the
//! vDSO (x86-64): one to twenty nanoseconds, no system call. Where it is a system call
//! (aarch64 with glibc before 2.35 or with musl, rseq turned off), a checkout and a
//! return would each pay one, so it is timed once, on first use, and not used when slow.
//! Then, as on other platforms, each thread gets a number of its own, handed out in
//! turn: threads that run at once then mostly use different numbers too.
//! `--cfg connhealth_portable` forces that fallback on Linux, so that CI runs the pool's
//! cross-core tests against it.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// A small number for the calling thread's CPU (or, where the platform cannot tell it
/// cheaply, for the thread). Two threads running at the same moment get different
/// numbers on Linux; a thread may get another one after the scheduler moves it.
#[cfg(all(target_os = "linux", not(connhealth_portable)))]
pub(crate) fn current_cpu() -> usize {
    static CHEAP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let cheap = *CHEAP.get_or_init(|| {
        let took = per_call(sched_getcpu);
        let cheap = is_cheap(took);
        if !cheap {
            tracing::debug!(
                ?took,
                "sched_getcpu is a system call here: lanes per thread"
            );
        }
        cheap
    });
    if !cheap {
        return thread_number();
    }
    sched_getcpu().unwrap_or_else(thread_number)
}

/// The calling thread's CPU, where the kernel can say.
#[cfg(all(target_os = "linux", not(connhealth_portable)))]
fn sched_getcpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no argument and touches no memory of ours; it returns
    // the CPU number, or -1 (with errno set) where the kernel cannot say.
    usize::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// Whether a call that takes `per_call` is cheap enough for every checkout and return.
/// rseq takes 1–3 ns, a vDSO `getcpu` up to about 20; a system call takes 45 ns on the
/// 2-core development VM, and more with the usual mitigations.
#[cfg(any(test, all(target_os = "linux", not(connhealth_portable))))]
fn is_cheap(per_call: std::time::Duration) -> bool {
    per_call < std::time::Duration::from_nanos(25)
}

/// The time one call of `f` takes: the best of a few rounds, so that a preemption or a
/// cold cache does not count.
#[cfg(any(test, all(target_os = "linux", not(connhealth_portable))))]
fn per_call<T>(f: impl Fn() -> T) -> std::time::Duration {
    const CALLS: u32 = 32;
    (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..CALLS {
                std::hint::black_box(f());
            }
            start.elapsed() / CALLS
        })
        .min()
        .unwrap_or_default()
}

/// A small number for the calling thread: the platform cannot tell its CPU.
#[cfg(any(not(target_os = "linux"), connhealth_portable))]
pub(crate) fn current_cpu() -> usize {
    thread_number()
}

/// A number of the calling thread's own, handed out in turn on first use.
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    NUMBER.with(|number| {
        if number.get() == usize::MAX {
            number.set(NEXT.fetch_add(1, Relaxed) % (usize::MAX / 2));
        }
        number.get()
    })
}

/// How many CPUs this process may run on (its affinity mask and cgroup quota, as
/// `std::thread::available_parallelism` reads them), looked up once.
pub(crate) fn usable_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_number_where_the_cpu_is_unknown() {
        assert_eq!(thread_number(), thread_number());
        let other = std::thread::spawn(thread_number).join().unwrap();
        assert_ne!(other, thread_number());
    }

    #[test]
    fn a_call_is_timed_by_its_best_round() {
        let spin = |at_least: std::time::Duration| {
            move || {
                let start = std::time::Instant::now();
                while start.elapsed() < at_least {}
            }
        };
        let slow = per_call(spin(std::time::Duration::from_micros(2)));
        assert!(slow >= std::time::Duration::from_micros(2), "{slow:?}");
        assert!(!is_cheap(slow));
        assert!(is_cheap(per_call(|| 1 + 1)));
    }

    #[test]
    fn the_cpu_is_within_the_machine() {
        // On Linux, a CPU number below the count of CPUs the kernel knows of.
        #[cfg(all(target_os = "linux", not(connhealth_portable)))]
        {
            let online = std::fs::read_to_string("/sys/devices/system/cpu/possible")
                .ok()
                .and_then(|s| s.trim().rsplit(['-', ',']).next()?.parse::<usize>().ok());
            if let (Some(last), Some(cpu)) = (online, sched_getcpu()) {
                assert!(cpu <= last, "cpu {cpu} > {last}");
            }
        }
        assert!(usable_cpus() >= 1);
    }
}
