//! The Windows half of the test kit.

/// True when this Windows program runs under Wine rather than on Windows: Wine's ntdll
/// exports `wine_get_version`, Windows' does not.
///
/// Wine's Winsock differs from what Windows documents in a few places (a reset reads as
/// an end of stream, `SIO_TCP_INFO` and the keepalive `getsockopt` options are missing).
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
