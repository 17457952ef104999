//! Which CPU the calling thread runs on, so that the pool can keep state per CPU.
//!
//! `GetCurrentProcessorNumberEx` reads the processor number in user mode (`RDPID`, or the
//! segment limit the kernel sets per CPU): no system call. Its group and number make one
//! index, so machines with more than 64 logical CPUs are covered.

use windows_sys::Win32::System::Kernel::PROCESSOR_NUMBER;
use windows_sys::Win32::System::Threading::GetCurrentProcessorNumberEx;

/// A small number for the calling thread's CPU. Two threads running at the same moment
/// get different numbers; a thread may get another one after the scheduler moves it.
pub(crate) fn current_cpu() -> usize {
    let mut number = PROCESSOR_NUMBER {
        Group: 0,
        Number: 0,
        Reserved: 0,
    };
    // SAFETY: the function writes one PROCESSOR_NUMBER through the pointer, which is live
    // for the call; it cannot fail.
    unsafe { GetCurrentProcessorNumberEx(&mut number) };
    usize::from(number.Group) * 64 + usize::from(number.Number)
}

/// How many CPUs this process may run on (its affinity mask, as
/// `std::thread::available_parallelism` reads it), looked up once.
pub(crate) fn usable_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_within_the_machine() {
        // Within the CPUs of the first group, on every machine with at most 64.
        let cpus = usable_cpus();
        assert!(cpus >= 1);
        if cpus <= 64 {
            assert!(current_cpu() < 64, "cpu {}", current_cpu());
        }
    }
}
