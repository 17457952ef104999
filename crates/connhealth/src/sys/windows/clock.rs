//! The pool's coarse clock on Windows: `GetTickCount64`, the system timer's tick count in
//! milliseconds. It reads a value the kernel keeps in shared memory (no system call, a few
//! nanoseconds) and advances once per timer interrupt, every 10-16 ms.

use std::time::Duration;

use windows_sys::Win32::System::SystemInformation::GetTickCount64;

/// Nanoseconds since boot, at the timer tick's resolution.
pub(crate) fn coarse_nanos() -> u64 {
    // SAFETY: GetTickCount64 takes no arguments and cannot fail.
    let ms = unsafe { GetTickCount64() };
    ms.saturating_mul(1_000_000)
}

/// How far [`coarse_nanos`] can lag the precise clock: the default timer interval,
/// 15.625 ms, rounded up.
pub(crate) fn coarse_resolution() -> Duration {
    Duration::from_millis(16)
}
