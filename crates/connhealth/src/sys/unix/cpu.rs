//! Which CPU the calling thread runs on, so that the pool can keep state per CPU.
//!
//! Linux's `sched_getcpu` reads the thread's rseq area (glibc 2.35 and later) or the
//! vDSO: one or two nanoseconds, no system call. Elsewhere each thread gets a number of
//! its own, handed out in turn: threads that run at once then mostly use different
//! numbers too. `--cfg connhealth_portable` forces that fallback on Linux, so that CI
//! runs the pool's cross-core tests against it.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// A small number for the calling thread's CPU (or, where the platform cannot tell, for
/// the thread). Two threads running at the same moment get different numbers on Linux;
/// a thread may get another one after the scheduler moves it.
#[cfg(all(target_os = "linux", not(connhealth_portable)))]
pub(crate) fn current_cpu() -> usize {
    // SAFETY: sched_getcpu takes no argument and touches no memory of ours; it returns
    // the CPU number, or -1 (with errno set) where the kernel cannot say.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).unwrap_or_else(|_| thread_number())
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
    fn the_cpu_is_within_the_machine() {
        // On Linux, a CPU number below the count of CPUs the kernel knows of.
        #[cfg(all(target_os = "linux", not(connhealth_portable)))]
        {
            let online = std::fs::read_to_string("/sys/devices/system/cpu/possible")
                .ok()
                .and_then(|s| s.trim().rsplit(['-', ',']).next()?.parse::<usize>().ok());
            if let Some(last) = online {
                assert!(current_cpu() <= last, "cpu {} > {last}", current_cpu());
            }
        }
        assert!(usable_cpus() >= 1);
    }
}
