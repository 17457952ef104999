//! The syscall behind [`crate::inspect`]: one `getsockopt(TCP_INFO)`.
//!
//! The struct is our own copy of the kernel's `struct tcp_info` (include/uapi/linux/tcp.h)
//! up to `tcpi_min_rtt`, rather than libc's, whose copy differs between C libraries and
//! versions. The kernel fills `min(optlen, sizeof(struct tcp_info))` bytes and says how
//! many: an older kernel fills fewer, and each field past the returned length is absent,
//! not zero.

use std::io;

use crate::Inspection;

#[cfg(target_os = "linux")]
pub(crate) fn inspect(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<Inspection> {
    linux::inspect(fd)
}

/// Outside Linux, `TCP_INFO` is missing or has another layout (FreeBSD's `struct
/// tcp_info`, macOS's `TCP_CONNECTION_INFO`): say so rather than guess.
#[cfg(not(target_os = "linux"))]
pub(crate) fn inspect(_fd: std::os::fd::BorrowedFd<'_>) -> io::Result<Inspection> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "connhealth::inspect needs Linux's TCP_INFO; this platform is not supported yet",
    ))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem::{self, offset_of};
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::time::Duration;

    use crate::{Inspection, TcpState};

    /// `struct tcp_info` from include/uapi/linux/tcp.h, as far as `tcpi_min_rtt` (Linux
    /// 4.6). Fields are in the kernel's order and width; the two bit-field bytes are kept
    /// whole.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub(super) struct TcpInfo {
        pub(super) tcpi_state: u8,
        pub(super) tcpi_ca_state: u8,
        pub(super) tcpi_retransmits: u8,
        pub(super) tcpi_probes: u8,
        pub(super) tcpi_backoff: u8,
        pub(super) tcpi_options: u8,
        pub(super) tcpi_wscale: u8,
        pub(super) tcpi_delivery_flags: u8,

        pub(super) tcpi_rto: u32,
        pub(super) tcpi_ato: u32,
        pub(super) tcpi_snd_mss: u32,
        pub(super) tcpi_rcv_mss: u32,

        pub(super) tcpi_unacked: u32,
        pub(super) tcpi_sacked: u32,
        pub(super) tcpi_lost: u32,
        pub(super) tcpi_retrans: u32,
        pub(super) tcpi_fackets: u32,

        pub(super) tcpi_last_data_sent: u32,
        pub(super) tcpi_last_ack_sent: u32,
        pub(super) tcpi_last_data_recv: u32,
        pub(super) tcpi_last_ack_recv: u32,

        pub(super) tcpi_pmtu: u32,
        pub(super) tcpi_rcv_ssthresh: u32,
        pub(super) tcpi_rtt: u32,
        pub(super) tcpi_rttvar: u32,
        pub(super) tcpi_snd_ssthresh: u32,
        pub(super) tcpi_snd_cwnd: u32,
        pub(super) tcpi_advmss: u32,
        pub(super) tcpi_reordering: u32,

        pub(super) tcpi_rcv_rtt: u32,
        pub(super) tcpi_rcv_space: u32,

        pub(super) tcpi_total_retrans: u32,

        pub(super) tcpi_pacing_rate: u64,
        pub(super) tcpi_max_pacing_rate: u64,
        pub(super) tcpi_bytes_acked: u64,
        pub(super) tcpi_bytes_received: u64,
        pub(super) tcpi_segs_out: u32,
        pub(super) tcpi_segs_in: u32,

        pub(super) tcpi_notsent_bytes: u32,
        pub(super) tcpi_min_rtt: u32,
    }

    /// Every kernel since 2.6 fills at least this much (up to `tcpi_total_retrans`).
    const MIN_LEN: usize = offset_of!(TcpInfo, tcpi_pacing_rate);

    pub(super) fn tcp_info(fd: BorrowedFd<'_>) -> io::Result<(TcpInfo, usize)> {
        let mut info = TcpInfo::default();
        let mut len = mem::size_of::<TcpInfo>() as libc::socklen_t;
        // SAFETY: `info` is a valid, writable, plain-old-data struct of `len` bytes that
        // outlives the call; the kernel writes at most `len` bytes and stores the count it
        // wrote in `len`. The descriptor is borrowed, so it stays open for the call.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut TcpInfo).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((info, len as usize))
    }

    pub(super) fn inspect(fd: BorrowedFd<'_>) -> io::Result<Inspection> {
        let (info, len) = tcp_info(fd)?;
        if len < MIN_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TCP_INFO returned {len} bytes, fewer than the {MIN_LEN} every Linux since 2.6 fills"),
            ));
        }
        let has = |end: usize| len >= end;
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        let us = |v: u32| Duration::from_micros(u64::from(v));
        Ok(Inspection {
            state: TcpState::from_linux(info.tcpi_state),
            rtt: us(info.tcpi_rtt),
            rtt_var: us(info.tcpi_rttvar),
            rto: us(info.tcpi_rto),
            retransmits: info.tcpi_retransmits,
            total_retransmits: info.tcpi_total_retrans,
            backoff: info.tcpi_backoff,
            probes: info.tcpi_probes,
            unacked: info.tcpi_unacked,
            lost: info.tcpi_lost,
            notsent_bytes: has(offset_of!(TcpInfo, tcpi_min_rtt))
                .then_some(info.tcpi_notsent_bytes),
            last_data_sent: ms(info.tcpi_last_data_sent),
            last_data_recv: ms(info.tcpi_last_data_recv),
            last_ack_recv: ms(info.tcpi_last_ack_recv),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Offsets from the kernel header, checked against libc where libc has the field.
        #[test]
        fn layout_matches_the_kernel() {
            assert_eq!(offset_of!(TcpInfo, tcpi_rto), 8);
            assert_eq!(offset_of!(TcpInfo, tcpi_unacked), 24);
            assert_eq!(offset_of!(TcpInfo, tcpi_last_data_sent), 44);
            assert_eq!(offset_of!(TcpInfo, tcpi_rtt), 68);
            assert_eq!(offset_of!(TcpInfo, tcpi_total_retrans), 100);
            assert_eq!(offset_of!(TcpInfo, tcpi_pacing_rate), 104);
            assert_eq!(offset_of!(TcpInfo, tcpi_notsent_bytes), 144);
            assert_eq!(mem::size_of::<TcpInfo>(), 152);
            assert_eq!(
                offset_of!(TcpInfo, tcpi_total_retrans),
                offset_of!(libc::tcp_info, tcpi_total_retrans)
            );
            assert_eq!(
                offset_of!(TcpInfo, tcpi_last_data_recv),
                offset_of!(libc::tcp_info, tcpi_last_data_recv)
            );
        }
    }
}
