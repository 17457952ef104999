//! The raw engine's sockets where there are none (every system but Linux): opening them
//! fails, so [`Mode::HalfOpen`](crate::Mode::HalfOpen) runs the socket engine and
//! [`Mode::Raw`](crate::Mode::Raw) reports why it cannot run. The types are empty, so
//! the engine's raw paths compile here and can never be reached.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};
use std::ops::RangeInclusive;

use crate::sys::probe::Poller;

pub(crate) const RECV_BATCH: usize = 64;

/// Which of the raw sockets a datagram came from; none exist here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {}

/// No raw sockets: [`RawSockets::open`] always fails.
#[derive(Debug)]
pub(crate) enum RawSockets {}

impl RawSockets {
    pub(crate) fn open(_ports: &RangeInclusive<u16>) -> io::Result<RawSockets> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the raw engine runs on Linux only",
        ))
    }

    pub(crate) fn has_ipv6(&self) -> bool {
        match *self {}
    }

    pub(crate) fn register(&self, _poller: &mut Poller, _first_token: u64) -> io::Result<()> {
        match *self {}
    }

    pub(crate) fn heard(_first_token: u64, _token: u64) -> Option<Heard> {
        None
    }

    pub(crate) fn send(
        &mut self,
        _packets: &[impl AsRef<[u8]>],
        _to: &[SocketAddr],
    ) -> (usize, Option<io::Error>) {
        match *self {}
    }

    pub(crate) fn receive(
        &mut self,
        heard: Heard,
        _each: impl FnMut(&[u8], Option<SocketAddrV6>),
    ) -> io::Result<usize> {
        match heard {}
    }
}

pub(crate) fn source_for(_to: Ipv4Addr) -> io::Result<Ipv4Addr> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

pub(crate) fn sysctl(_name: &str) -> Option<String> {
    None
}
