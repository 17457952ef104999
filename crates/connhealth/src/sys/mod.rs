//! The only place with raw system calls. The whole platform module is chosen by `cfg`, as
//! socket2 and mio do; everything outside `sys` is written once, against it.
//!
//! Each platform module offers the same names:
//!
//! | name | Unix | Windows |
//! |---|---|---|
//! | `AsSocket`, `BorrowedSocket` | `AsFd`, `BorrowedFd` | `AsSocket`, `BorrowedSocket` |
//! | `check::status` | `poll(2)` (+ a peek off Linux) | `WSAPoll` + `FIONREAD` |
//! | `tcp_info::inspect` | `TCP_INFO` | `SIO_TCP_INFO` |
//! | `keepalive::{apply, read}` | `TCP_KEEP*`, `TCP_USER_TIMEOUT` | `SIO_KEEPALIVE_VALS`, `TCP_MAXRT` |
//! | `clock` | `CLOCK_MONOTONIC_COARSE` | `GetTickCount64` |
//! | `cpu` | `sched_getcpu` | `GetCurrentProcessorNumberEx` |
//! | `probe` | epoll + eventfd, or poll + a pipe | `WSAPoll` + a loopback UDP socket |
//!
//! The public functions name the platform's trait through `AsSocket`, so that their
//! signatures read `AsFd` on Unix and `AsSocket` on Windows.

pub(crate) mod clock;
mod failure;
#[cfg(any(windows, not(target_os = "linux"), connhealth_portable, test))]
pub(crate) mod poll_set;
#[cfg(not(target_os = "linux"))]
pub(crate) mod raw_none;
pub(crate) mod wait;

pub(crate) use self::failure::Failure;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use self::unix as platform;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use self::windows as platform;

// Each platform module offers exactly these names.
pub(crate) use self::platform::{borrow, check, cpu, keepalive, probe, tcp_info, AsSocket};

#[cfg(not(any(unix, windows)))]
compile_error!(
    "connhealth supports Unix (Linux is tested; other Unix builds through the portable path) \
     and Windows (tested under Wine). This target is neither."
);
