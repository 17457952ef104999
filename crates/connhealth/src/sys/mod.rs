//! The only place with raw system calls. The whole platform module is chosen by `cfg`, as
//! socket2 and mio do; everything outside `sys` is written once, against it.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use self::unix::*;

#[cfg(not(unix))]
compile_error!(
    "connhealth supports Unix (Linux is tested; other Unix builds through the portable path). \
     Windows is not supported yet."
);
