//! Bounded detection of a silently vanished peer: [`DeadPeer`].

use std::io;
use std::time::Duration;

use crate::sys;

/// One number, "tell me within this long", turned into keepalive and `TCP_USER_TIMEOUT`
/// settings that make it true.
///
/// A peer that lost power, or a NAT or firewall that forgot the flow, sends no FIN and no
/// RST: [`check`](crate::check) keeps saying `Open`. TCP itself gives up eventually, but
/// on Linux an idle connection sends its first keepalive probe after 2 hours (if keepalive
/// is on at all), and unacknowledged data is retransmitted for about 15 minutes
/// (`tcp_retries2`). `DeadPeer::detect_within(bound).apply(&conn)` sets all four knobs
/// together so that, once the peer goes silent, the kernel fails the connection with
/// `ETIMEDOUT` within `bound`, and `check(&conn)` says `Closed(TimedOut)`:
///
/// * on an **idle** connection, measured from the last segment received from the peer;
/// * with **unacknowledged data** in flight, measured from when that data was first sent.
///
/// A healthy peer answers every keepalive probe, so a healthy idle connection is never
/// declared dead; and a probe goes out at most once a second, so a small bound cannot
/// flood the network. The policy is `Copy`: build it once and apply it to every socket
/// (any `AsFd`: std or tokio streams, socket2 sockets, the transport under a TLS stream).
///
/// # Example
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
/// use connhealth::DeadPeer;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let conn = TcpStream::connect(listener.local_addr()?)?;
///
/// let policy = DeadPeer::detect_within(Duration::from_secs(10));
/// # #[cfg(windows)] // Wine 8.0 has no TCP_MAXRT: there `apply` fails and names it.
/// # if connhealth_testkit::is_wine() { assert!(policy.apply(&conn).is_err()); return Ok(()); }
/// policy.apply(&conn)?;
///
/// # #[cfg(target_os = "linux")] {
/// // What was set: probes after 2 s of silence, every 2 s; dead 8 s after the last ACK,
/// // or 7 s after the first retransmission of unacknowledged data.
/// let applied = policy.settings()?;
/// assert_eq!(applied.idle, Duration::from_secs(2));
/// assert_eq!(applied.interval, Duration::from_secs(2));
/// assert_eq!(applied.count, 3);
/// assert_eq!(applied.user_timeout, Some(Duration::from_secs(7)));
/// assert_eq!(connhealth::DeadPeerSettings::read(&conn)?, Some(applied));
/// # }
///
/// // A bound no platform can honour is refused, with the reason and the smallest bound.
/// let err = DeadPeer::detect_within(Duration::from_secs(1)).apply(&conn).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # The arithmetic
///
/// Linux's keepalive timer, once TCP_USER_TIMEOUT is set, works like this (net/ipv4/
/// tcp_timer.c, `tcp_keepalive_timer`): `idle` after the last segment received from the
/// peer, it sends a probe, then another every `interval`. Each time it fires it asks
/// whether the time since the peer was last heard from has reached the user timeout
/// *and* at least one probe is out; if so, it fails the connection with `ETIMEDOUT`.
/// `KEEPCNT` is not consulted at all while a user timeout is set: the user timeout alone
/// decides, and only when the timer fires. While data is unacknowledged the keepalive
/// timer stands aside and the retransmission timer takes over; the user timeout caps that
/// too, counted from the first *retransmission* of the oldest unacknowledged segment,
/// which comes one retransmission timeout (RTO: 200 ms at the least, about
/// `rtt + 4 × rttvar`) after the data was sent.
///
/// Keepalive times are whole seconds, at least one each. So for a `bound`:
///
/// 1. Keep back `margin = max(bound / 8, 500 ms)`. Kernel timers are allowed to fire
///    late, by up to about an eighth of their length (the timer wheel batches them), plus
///    a tick; the margin absorbs that. `budget = bound - margin`.
/// 2. `interval = idle = clamp(floor(budget / 4), 1 s, 32767 s)`, whole seconds: up to
///    three probes fit in the budget, so one lost probe does not kill a healthy connection
///    once the bound is 5 s or more.
/// 3. `slots = floor(budget / interval)`; the timer fires at `idle`, `idle + interval`,
///    ... and `window = slots × interval` is the firing that gives up on an idle
///    connection. `count = slots - 1` probes are sent before it.
/// 4. `user_timeout = window - interval / 2`. The keepalive verdict still falls on the
///    firing at `window`: the one before it, at `window - interval`, is too early even
///    when it runs late. And the half interval kept back is room for the first RTO when
///    data is in flight: that connection fails `RTO + user_timeout` after the write.
/// 5. `KEEPCNT = count` as well, so that where the user timeout is unknown (other
///    platforms, or Linux before 2.6.37) plain keepalive gives up at the same `window`.
///
/// | bound | idle = interval | probes (count) | window: idle verdict | user timeout | room for the first RTO |
/// |---|---|---|---|---|---|
/// | 2.5 s (smallest) | 1 s | 1 | 2 s | 1.5 s | 0.7 s |
/// | 3 s | 1 s | 1 | 2 s | 1.5 s | 1.1 s |
/// | 5 s | 1 s | 3 | 4 s | 3.5 s | 0.9 s |
/// | 10 s | 2 s | 3 | 8 s | 7 s | 1.8 s |
/// | 30 s | 6 s | 3 | 24 s | 21 s | 5.6 s |
/// | 60 s | 13 s | 3 | 52 s | 45.5 s | 7.8 s |
///
/// Worst case after the peer goes silent, late timers included (an eighth): `window ×
/// 9/8` for an idle connection, `(RTO + user_timeout) × 9/8` with data in flight; both
/// stay inside the bound as long as the path's RTO fits the last column. The namespace
/// tests measure it on loopback: `detect_within(3 s)` fails an idle connection about
/// 2.0 s after the last ACK, and one with data in flight about 1.9 s after the write.
///
/// # Limits
///
/// * Below 2.5 s there is no room: the first probe cannot leave before 1 s of silence,
///   the verdict cannot come before the next firing 1 s later, and timers run late. Such
///   a bound is refused with [`DeadPeerError::TooShort`].
/// * Below 4 s only one probe fits: one lost probe on a lossy path declares the peer
///   dead. Choose 5 s or more where packets get lost.
/// * A bound below a few round trips of the path kills healthy connections whose ACKs
///   are merely slow, and a path whose RTO exceeds the table's last column makes the
///   data-in-flight case late: keep the bound well above the path's worst RTT (and its
///   bufferbloat).
/// * The clock restarts when the application writes: a connection that was idle when the
///   peer vanished, and is written to just before keepalive would have failed it, fails
///   `user_timeout` after that write, up to about twice the bound after the vanish.
/// * A peer that is alive but not reading (zero window) is not dead: its ACKs to the
///   window probes keep the connection open.
/// * Above 24 days the user timeout would overflow the kernel's 32-bit count of
///   milliseconds; such a bound is refused with [`DeadPeerError::TooLong`].
/// * Windows sets the user timeout as `TCP_MAXRT`, in whole seconds: the plan's user
///   timeout is rounded down to a whole second (at least one), and
///   [`settings`](DeadPeer::settings) reports the rounded value (7 s for 10 s, 1 s for
///   3 s). Keepalive's idle and interval are the same whole seconds as on Linux, set with
///   `SIO_KEEPALIVE_VALS`, and the probe count with `TCP_KEEPCNT` (Windows 10 1703 and
///   later). Windows does not consult `TCP_MAXRT` for keepalive: the count alone ends an
///   idle connection, at the same `window`. Tested under Wine only, which refuses
///   `TCP_MAXRT` and `TCP_KEEPCNT`: there `apply` fails and names the option.
/// * macOS, iOS and the BSDs have no `TCP_USER_TIMEOUT`: `apply` sets keepalive only,
///   [`DeadPeerSettings::user_timeout`] is `None`, and only idle connections are bounded.
///   Where keepalive cannot be tuned per socket at all, `apply` fails with
///   `ErrorKind::Unsupported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeadPeer {
    bound: Duration,
}

/// What [`DeadPeer::apply`] sets on a socket, or what [`DeadPeerSettings::read`] found
/// on one.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeadPeerSettings {
    /// Silence before the first keepalive probe (`TCP_KEEPIDLE`; `TCP_KEEPALIVE` on macOS).
    pub idle: Duration,
    /// Time between keepalive probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Keepalive probes before giving up (`TCP_KEEPCNT`). Ignored by Linux while a user
    /// timeout is set; set to agree with it anyway.
    pub count: u32,
    /// How long sent data may stay unacknowledged, and how long keepalive may go
    /// unanswered (`TCP_USER_TIMEOUT`). `None` where the platform does not have it, or
    /// when it is off (a socket read with [`DeadPeerSettings::read`]).
    pub user_timeout: Option<Duration>,
}

impl DeadPeerSettings {
    /// When plain keepalive gives up on an idle connection, counted from the last segment
    /// the peer acknowledged: `idle + count × interval`, before timer lateness.
    pub fn window(&self) -> Duration {
        self.idle + self.interval * self.count
    }

    /// Reads the keepalive and user-timeout settings of a socket back from the kernel:
    /// `None` when keepalive is off. Use it to see what another piece of code (a pool, a
    /// library) left on a socket, or to confirm what [`DeadPeer::apply`] did.
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use connhealth::DeadPeerSettings;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let conn = TcpStream::connect(listener.local_addr()?)?;
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(DeadPeerSettings::read(&conn)?, None); // keepalive is off by default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read<S: sys::AsSocket + ?Sized>(conn: &S) -> io::Result<Option<DeadPeerSettings>> {
        sys::keepalive::read(sys::borrow(conn))
    }
}

/// A bound that [`DeadPeer`] cannot honour. [`DeadPeer::apply`] returns it inside an
/// `io::Error` of kind `InvalidInput`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DeadPeerError {
    /// Shorter than keepalive's whole-second timers allow.
    #[error(
        "cannot detect a dead peer within {bound:?}: keepalive waits at least 1 s before \
         its first probe and 1 s before its verdict, and kernel timers run late, so the \
         smallest bound is {min:?}; choose a bound of at least {min:?} (5 s or more on a \
         lossy path)"
    )]
    TooShort {
        /// The bound asked for.
        bound: Duration,
        /// The smallest bound this platform can honour.
        min: Duration,
    },
    /// Longer than the kernel can count.
    #[error(
        "cannot detect a dead peer within {bound:?}: TCP_USER_TIMEOUT is a 32-bit count of \
         milliseconds, so the largest bound is {max:?}; choose a shorter bound, or leave the \
         system's keepalive defaults"
    )]
    TooLong {
        /// The bound asked for.
        bound: Duration,
        /// The largest bound this platform can honour.
        max: Duration,
    },
}

impl From<DeadPeerError> for io::Error {
    fn from(err: DeadPeerError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

/// Linux's limits on `TCP_KEEPIDLE` and `TCP_KEEPINTVL` (`MAX_TCP_KEEPIDLE`,
/// `MAX_TCP_KEEPINTVL`).
const MAX_KEEPALIVE_SECS: u64 = 32_767;

/// Room kept for timers that fire late: an eighth of the bound, at least this.
const MIN_MARGIN: Duration = Duration::from_millis(500);

impl DeadPeer {
    /// The smallest bound: one idle second, one interval, and the margin for late timers.
    pub const MIN_BOUND: Duration = Duration::from_millis(2_500);

    /// The largest bound: the user timeout must fit the kernel's 32-bit milliseconds.
    pub const MAX_BOUND: Duration = Duration::from_secs(24 * 24 * 3600);

    /// A policy that makes a silently vanished peer fail the connection within `bound`.
    ///
    /// Never fails: a bound the platform cannot honour is reported by
    /// [`apply`](DeadPeer::apply) and [`settings`](DeadPeer::settings). To find out at
    /// construction, use [`try_detect_within`](DeadPeer::try_detect_within).
    pub const fn detect_within(bound: Duration) -> DeadPeer {
        DeadPeer { bound }
    }

    /// Like [`detect_within`](DeadPeer::detect_within), but refuses a bound the platform
    /// cannot honour at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use connhealth::{DeadPeer, DeadPeerError};
    ///
    /// assert!(DeadPeer::try_detect_within(Duration::from_secs(30)).is_ok());
    /// assert_eq!(
    ///     DeadPeer::try_detect_within(Duration::from_millis(500)),
    ///     Err(DeadPeerError::TooShort {
    ///         bound: Duration::from_millis(500),
    ///         min: DeadPeer::MIN_BOUND,
    ///     })
    /// );
    /// ```
    pub fn try_detect_within(bound: Duration) -> Result<DeadPeer, DeadPeerError> {
        let policy = DeadPeer { bound };
        policy.settings()?;
        Ok(policy)
    }

    /// The bound this policy promises.
    pub const fn bound(&self) -> Duration {
        self.bound
    }

    /// The settings [`apply`](DeadPeer::apply) sets on this platform, worked out as the
    /// type's documentation explains; an error for a bound it cannot honour.
    pub fn settings(&self) -> Result<DeadPeerSettings, DeadPeerError> {
        plan(self.bound, sys::keepalive::HAS_USER_TIMEOUT).map(sys::keepalive::as_applied)
    }

    /// Sets keepalive (on, idle, interval, count) and `TCP_USER_TIMEOUT` on `conn`.
    ///
    /// Apply it to an established connection or to a socket before it connects; either
    /// way the timers count from the last segment received. Errors: `InvalidInput` with a
    /// [`DeadPeerError`] inside for a bound the platform cannot honour (nothing is set
    /// then); the OS error if a socket option is refused (for example on a socket that is
    /// not TCP; on Windows, where one policy takes several Winsock calls, the message also
    /// names the option refused, and the error keeps the kind but not the raw code);
    /// `Unsupported` where keepalive cannot be tuned per socket.
    pub fn apply<S: sys::AsSocket + ?Sized>(&self, conn: &S) -> io::Result<()> {
        let settings = self.settings()?;
        sys::keepalive::apply(sys::borrow(conn), &settings)
    }
}

/// The arithmetic of [`DeadPeer`]'s documentation, step by step.
fn plan(bound: Duration, user_timeout: bool) -> Result<DeadPeerSettings, DeadPeerError> {
    if bound < DeadPeer::MIN_BOUND {
        return Err(DeadPeerError::TooShort {
            bound,
            min: DeadPeer::MIN_BOUND,
        });
    }
    if bound > DeadPeer::MAX_BOUND {
        return Err(DeadPeerError::TooLong {
            bound,
            max: DeadPeer::MAX_BOUND,
        });
    }
    let budget = bound - (bound / 8).max(MIN_MARGIN);
    let budget_secs = budget.as_secs();
    let interval_secs = (budget_secs / 4).clamp(1, MAX_KEEPALIVE_SECS);
    let slots = budget_secs / interval_secs;
    // MIN_BOUND leaves a budget of 2 s, so at least the first probe and the verdict fit;
    // MAX_BOUND keeps slots under Linux's MAX_TCP_KEEPCNT (127).
    debug_assert!((2..=128).contains(&slots), "slots {slots} for {bound:?}");
    let interval = Duration::from_secs(interval_secs);
    let window = interval * slots as u32;
    Ok(DeadPeerSettings {
        idle: interval,
        interval,
        count: (slots - 1) as u32,
        user_timeout: user_timeout.then(|| window - interval / 2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_table_in_the_docs_is_what_plan_computes() {
        for (bound, interval, count, window) in [
            (2.5, 1, 1, 2),
            (3.0, 1, 1, 2),
            (5.0, 1, 3, 4),
            (10.0, 2, 3, 8),
            (30.0, 6, 3, 24),
            (60.0, 13, 3, 52),
        ] {
            let s = plan(secs(bound), true).unwrap();
            assert_eq!(s.idle, Duration::from_secs(interval), "{bound}");
            assert_eq!(s.interval, Duration::from_secs(interval), "{bound}");
            assert_eq!(s.count, count, "{bound}");
            assert_eq!(s.window(), Duration::from_secs(window), "{bound}");
            assert_eq!(s.user_timeout, Some(s.window() - s.interval / 2));
        }
    }

    #[test]
    fn every_bound_leaves_room_for_late_timers_and_fits_the_kernel() {
        let mut ms = 2_500u64;
        while ms <= DeadPeer::MAX_BOUND.as_millis() as u64 {
            let bound = Duration::from_millis(ms);
            let s = plan(bound, true).unwrap();
            // Timers may run an eighth late: the verdict still lands inside the bound.
            assert!(s.window() + s.window() / 8 < bound, "{bound:?}: {s:?}");
            assert!(s.idle >= Duration::from_secs(1) && s.interval >= Duration::from_secs(1));
            assert!(s.interval.as_secs() <= MAX_KEEPALIVE_SECS && (1..=127).contains(&s.count));
            assert!(s.user_timeout.unwrap().as_millis() <= i32::MAX as u128);
            // The verdict falls on the last firing, and a 200 ms RTO still fits.
            let user_timeout = s.user_timeout.unwrap();
            assert!(user_timeout > s.window() - s.interval, "{bound:?}: {s:?}");
            let rto = Duration::from_millis(200);
            assert!(
                (rto + user_timeout) + (rto + user_timeout) / 8 < bound,
                "{bound:?}: {s:?}"
            );
            ms = ms * 21 / 20 + 1;
        }
    }

    #[test]
    fn bounds_out_of_reach_are_refused() {
        assert!(matches!(
            plan(Duration::ZERO, true),
            Err(DeadPeerError::TooShort { .. })
        ));
        assert!(matches!(
            plan(secs(2.49), true),
            Err(DeadPeerError::TooShort { .. })
        ));
        assert!(matches!(
            plan(DeadPeer::MAX_BOUND + Duration::from_secs(1), true),
            Err(DeadPeerError::TooLong { .. })
        ));
        assert!(matches!(
            plan(Duration::MAX, true),
            Err(DeadPeerError::TooLong { .. })
        ));
    }

    #[test]
    fn without_a_user_timeout_keepalive_alone_gives_the_same_window() {
        let s = plan(secs(10.0), false).unwrap();
        assert_eq!(s.user_timeout, None);
        assert_eq!(s.window(), Duration::from_secs(8));
    }
}
