//! The Windows half of the test kit.

/// True when this Windows program runs under Wine rather than on Windows: Wine's ntdll
/// exports `wine_get_version`, Windows' does not.
///
/// Wine's Winsock differs from what Windows documents in a few places: a `recv` made after
/// a reset returns 0 (one already waiting gets `WSAECONNRESET`), an `accept` of a
/// connection reset in the queue fails with `WSAENOTCONN`, and `SIO_TCP_INFO`,
/// `TCP_MAXRT` and `TCP_KEEPCNT` are missing.
/// A test that meets one states both expectations and asserts the one that applies.
pub fn is_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: both names are NUL-terminated static strings; ntdll is loaded in every
    // process and stays loaded, so the handle is valid for the lookup.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

/// Pins the calling thread to one CPU (`SetThreadAffinityMask`), so that threads pinned
/// to different CPUs really run at once. Returns `false` when it could not (a CPU past the
/// first 64, or one this process may not use).
pub fn pin_thread_to_cpu(cpu: usize) -> bool {
    use windows_sys::Win32::System::Threading::{GetCurrentThread, SetThreadAffinityMask};
    if cpu >= 64 {
        return false;
    }
    // SAFETY: GetCurrentThread returns a pseudo-handle for the calling thread, valid for
    // the call; the mask is a plain integer. A zero return means the call failed.
    unsafe { SetThreadAffinityMask(GetCurrentThread(), 1 << cpu) != 0 }
}
