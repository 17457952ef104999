//! The call behind [`crate::inspect`] on Windows: `WSAIoctl(SIO_TCP_INFO)` with version 0
//! (Windows 10 1703 and later), which fills a `TCP_INFO_v0`.
//!
//! Windows reports less than Linux's `TCP_INFO`, and in other units:
//!
//! | field | from |
//! |---|---|
//! | `state` | `State` |
//! | `rtt` | `RttUs` |
//! | `unacked` | `BytesInFlight`, in segments of `Mss` bytes, rounded up |
//! | `total_retransmits` | `BytesRetrans`, in segments of `Mss` bytes, rounded up |
//! | `retransmits` | `TimeoutEpisodes`: retransmission timeouts over the connection's life, not only the current run |
//! | `rtt_var`, `rto`, `backoff`, `probes`, `lost`, `last_*` | not reported: zero |
//! | `notsent_bytes` | not reported: `None` |
//!
//! So [`Inspection::stalled`](crate::Inspection::stalled) says true while data is in
//! flight on a connection that has had a retransmission timeout at any time: a weaker
//! signal than Linux's. Where `SIO_TCP_INFO` is missing (older Windows, and Wine, which
//! answers `WSAEOPNOTSUPP`), the error says so, with kind `Unsupported`.

use std::io;
use std::mem;
use std::ptr;
use std::time::Duration;

use socket2::SockRef;
use windows_sys::Win32::Networking::WinSock::{
    self, TCP_INFO_v0, SIO_TCP_INFO, SOCKET_ERROR, TCPSTATE, WSAEINVAL, WSAEOPNOTSUPP,
};

use super::{last_error, raw, BorrowedSocket};
use crate::{Inspection, TcpState};

pub(crate) fn inspect(sock: BorrowedSocket<'_>) -> io::Result<Inspection> {
    let version: u32 = 0;
    let mut info: TCP_INFO_v0 = TCP_INFO_v0::default();
    let mut returned: u32 = 0;
    // SAFETY: the input is a live u32 and the output a live, writable TCP_INFO_v0, each of
    // the length given; no overlapped I/O, so the call completes before it returns and
    // nothing is written after. The socket is borrowed, so it stays open.
    let rc = unsafe {
        WinSock::WSAIoctl(
            raw(sock),
            SIO_TCP_INFO,
            (&version as *const u32).cast(),
            mem::size_of::<u32>() as u32,
            (&mut info as *mut TCP_INFO_v0).cast(),
            mem::size_of::<TCP_INFO_v0>() as u32,
            &mut returned,
            ptr::null_mut(),
            None,
        )
    };
    if rc == SOCKET_ERROR {
        let err = last_error();
        let is_tcp = matches!(SockRef::from(&sock).r#type(), Ok(socket2::Type::STREAM));
        return Err(match err.raw_os_error() {
            // On a TCP socket, the ioctl itself is missing; on another, the error is
            // the caller's to see as it is.
            Some(WSAEOPNOTSUPP | WSAEINVAL) if is_tcp => io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "connhealth::inspect needs SIO_TCP_INFO (Windows 10 1703 or later); this \
                     system refused it: {err}"
                ),
            ),
            _ => err,
        });
    }
    Ok(from_v0(&info))
}

fn from_v0(info: &TCP_INFO_v0) -> Inspection {
    let segments = |bytes: u64| {
        let mss = u64::from(info.Mss.max(1));
        u32::try_from(bytes.div_ceil(mss)).unwrap_or(u32::MAX)
    };
    Inspection {
        state: tcp_state(info.State),
        rtt: Duration::from_micros(u64::from(info.RttUs)),
        rtt_var: Duration::ZERO,
        rto: Duration::ZERO,
        retransmits: u8::try_from(info.TimeoutEpisodes).unwrap_or(u8::MAX),
        total_retransmits: segments(u64::from(info.BytesRetrans)),
        backoff: 0,
        probes: 0,
        unacked: segments(u64::from(info.BytesInFlight)),
        lost: 0,
        notsent_bytes: None,
        last_data_sent: Duration::ZERO,
        last_data_recv: Duration::ZERO,
        last_ack_recv: Duration::ZERO,
    }
}

/// Windows' `TCPSTATE`, in the order of MIB-II's tcpConnState less one.
fn tcp_state(state: TCPSTATE) -> TcpState {
    match state {
        WinSock::TCPSTATE_CLOSED => TcpState::Closed,
        WinSock::TCPSTATE_LISTEN => TcpState::Listen,
        WinSock::TCPSTATE_SYN_SENT => TcpState::SynSent,
        WinSock::TCPSTATE_SYN_RCVD => TcpState::SynReceived,
        WinSock::TCPSTATE_ESTABLISHED => TcpState::Established,
        WinSock::TCPSTATE_FIN_WAIT_1 => TcpState::FinWait1,
        WinSock::TCPSTATE_FIN_WAIT_2 => TcpState::FinWait2,
        WinSock::TCPSTATE_CLOSE_WAIT => TcpState::CloseWait,
        WinSock::TCPSTATE_CLOSING => TcpState::Closing,
        WinSock::TCPSTATE_LAST_ACK => TcpState::LastAck,
        WinSock::TCPSTATE_TIME_WAIT => TcpState::TimeWait,
        other => TcpState::Other(u8::try_from(other).unwrap_or(u8::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_segments_and_states_keep_their_names() {
        let info = TCP_INFO_v0 {
            State: WinSock::TCPSTATE_ESTABLISHED,
            Mss: 1460,
            RttUs: 250,
            BytesInFlight: 1461,
            BytesRetrans: 1460,
            TimeoutEpisodes: 1,
            ..TCP_INFO_v0::default()
        };
        let inspection = from_v0(&info);
        assert_eq!(inspection.state, TcpState::Established);
        assert_eq!(inspection.rtt, Duration::from_micros(250));
        assert_eq!(inspection.unacked, 2);
        assert_eq!(inspection.total_retransmits, 1);
        assert!(inspection.stalled());
        assert_eq!(tcp_state(WinSock::TCPSTATE_TIME_WAIT), TcpState::TimeWait);
        assert_eq!(tcp_state(42), TcpState::Other(42));
    }
}
