//! Demo part 1: `check()` sees a FIN, an RST and pending data at once.

use std::io;

pub(crate) fn run() -> io::Result<()> {
    super::heading("check(): the kernel's view of an established connection");
    Ok(())
}
