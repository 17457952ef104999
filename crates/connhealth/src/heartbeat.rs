//! Application-level heartbeats with deadlines: [`Heartbeat`].
//!
//! [`DeadPeer`](crate::DeadPeer) asks the kernel whether the peer's *kernel* still
//! answers. A server whose process hangs (a deadlock, a stop-the-world pause, a full
//! event loop) keeps acknowledging at the TCP level forever. Only a request the
//! application itself must answer (Redis `PING`, a WebSocket ping, a line protocol's
//! `PING`) tells that the peer is alive in the sense that matters. A [`Heartbeat`] sends
//! such a ping whenever the connection has been quiet for an interval, waits a bounded
//! time for the pong, and reports the outcome as a stream of [`Beat`]s.
//!
//! * **Deadlines.** Each ping has a `timeout`, shorter than the `interval`, so pings never
//!   pile up. After `misses` consecutive failed pings the peer is [`Beat::Dead`]: at most
//!   `interval + misses × timeout` after the last sign of life (plus scheduling delay).
//! * **Busy connections are never pinged.** Any inbound traffic the caller reports
//!   through an [`Activity`] handle restarts the clock.
//! * **No fleet in step.** Each wait is shortened by a random fraction (`jitter`), so
//!   thousands of connections opened together drift apart; after a death, pings back off
//!   exponentially, with jitter, up to `max_backoff`, so a fleet does not hammer a
//!   recovering server.
//! * **Recovery.** The heartbeat keeps pinging after [`Beat::Dead`]; the first pong
//!   brings [`Beat::Alive`] again. Reconnecting is the [`Ping`] implementation's job: it
//!   owns the connection, and knows how to make a new one.
//!
//! The heartbeat runs on tokio's timer: poll its stream inside a tokio runtime with time
//! enabled (`rt` plus `time`, as `#[tokio::main]` gives).
//!
//! # Example
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//! use connhealth::heartbeat::{Beat, Heartbeat, Ping};
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//! use tokio::net::TcpStream;
//!
//! /// A line protocol: send "PING\n", expect "PONG\n".
//! struct LinePing(BufReader<TcpStream>);
//!
//! impl Ping for LinePing {
//!     async fn ping(&mut self) -> io::Result<()> {
//!         self.0.get_mut().write_all(b"PING\n").await?;
//!         let mut line = String::new();
//!         self.0.read_line(&mut line).await?;
//!         if line == "PONG\n" { Ok(()) } else { Err(io::Error::other(format!("got {line:?}"))) }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> io::Result<()> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # tokio::spawn(async move {
//! #     let (conn, _) = listener.accept().await.unwrap();
//! #     let (read, mut write) = conn.into_split();
//! #     let mut lines = BufReader::new(read).lines();
//! #     while let Ok(Some(_)) = lines.next_line().await {
//! #         write.write_all(b"PONG\n").await.unwrap();
//! #     }
//! # });
//! let conn = TcpStream::connect(addr).await?;
//! let heartbeat = Heartbeat::builder()
//!     .interval(Duration::from_millis(50))
//!     .timeout(Duration::from_millis(20))
//!     .misses(2)
//!     .build()?;
//! let activity = heartbeat.activity(); // give this to the code that reads the connection
//! let mut beats = heartbeat.run(LinePing(BufReader::new(conn)));
//!
//! match beats.next_beat().await {
//!     Beat::Alive { rtt } => println!("alive, pong after {rtt:?}"),
//!     Beat::Missed { misses, reason } => println!("missed {misses}: {reason}"),
//!     Beat::Dead(reason) => println!("dead: {reason}"),
//!     _ => {}
//! }
//! activity.record(); // whenever the reader sees inbound traffic: no ping needed then
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::time::Instant;

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::Arc;
use crate::util::SplitMix64;

/// Sends one application-level ping and waits for its pong: the one thing a
/// [`Heartbeat`] needs from a protocol.
///
/// Return `Ok(())` when the pong arrived, an error when the ping could not be sent or
/// the answer was wrong. The heartbeat enforces the deadline: it drops the future after
/// its `timeout`. A dropped ping may leave its pong on the wire, to be read as the
/// answer to the next one; an implementation on a stream protocol should then start
/// afresh (see the `heartbeat-redis` example: it reconnects after a cancelled ping).
/// An implementation that owns its connection should reconnect inside `ping` when the
/// connection is gone, so that the heartbeat can report the peer alive again.
pub trait Ping {
    /// Sends a ping and resolves when its pong has arrived.
    fn ping(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// What a [`Heartbeat`] learned.
#[non_exhaustive]
#[derive(Debug)]
pub enum Beat {
    /// A pong arrived, `rtt` after the ping was sent.
    Alive {
        /// Time from sending the ping to its pong, as the application sees it.
        rtt: Duration,
    },
    /// A ping failed, fewer times in a row than the heartbeat's `misses`: the next ping
    /// goes out at once.
    Missed {
        /// Failed pings in a row so far.
        misses: u32,
        /// Why this one failed.
        reason: PingFailure,
    },
    /// `misses` pings in a row failed: the peer is dead. Reported once; the heartbeat
    /// then pings with backoff, silently, until a pong brings [`Beat::Alive`].
    Dead(PingFailure),
}

/// Why a ping failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PingFailure {
    /// No pong within the heartbeat's timeout.
    #[error("no pong within {0:?}")]
    TimedOut(Duration),
    /// The [`Ping`] implementation returned an error (the send failed, the connection
    /// was closed, the answer was wrong).
    #[error("ping failed: {0}")]
    Failed(#[source] io::Error),
}

/// A setting that would make a [`Heartbeat`] meaningless, refused by
/// [`Builder::build`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeartbeatError {
    /// The interval is zero.
    #[error("the heartbeat interval is zero; choose how long a connection may stay quiet before a ping, e.g. 5 s")]
    ZeroInterval,
    /// The timeout is zero.
    #[error(
        "the ping timeout is zero; choose how long to wait for a pong, shorter than the interval"
    )]
    ZeroTimeout,
    /// The timeout is not shorter than the interval.
    #[error(
        "the ping timeout ({timeout:?}) must be shorter than the interval ({interval:?}), \
         or pings would overlap; lower the timeout or raise the interval"
    )]
    TimeoutNotShorterThanInterval {
        /// The timeout asked for.
        timeout: Duration,
        /// The interval asked for.
        interval: Duration,
    },
    /// `misses` is zero.
    #[error("misses is zero; the peer is declared dead after at least one failed ping")]
    ZeroMisses,
    /// The jitter is not a fraction in `[0, 1)`.
    #[error("jitter {0} is not a fraction in [0, 1); 0.1 shortens each wait by up to 10%")]
    Jitter(f64),
    /// The backoff cap is below the interval.
    #[error(
        "max_backoff ({max_backoff:?}) is below the interval ({interval:?}); after a death \
         pings back off from the interval upwards"
    )]
    BackoffBelowInterval {
        /// The backoff cap asked for.
        max_backoff: Duration,
        /// The interval asked for.
        interval: Duration,
    },
}

impl From<HeartbeatError> for io::Error {
    fn from(err: HeartbeatError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

/// Builds a [`Heartbeat`]: `Heartbeat::builder()`.
///
/// Defaults: ping after 5 s of quiet, wait 2 s for the pong, dead after 2 misses (so
/// within 9 s of the last sign of life), 10 % jitter, backoff up to 60 s after a death.
#[derive(Debug, Clone)]
pub struct Builder {
    interval: Duration,
    timeout: Duration,
    misses: u32,
    jitter: f64,
    max_backoff: Duration,
}

impl Builder {
    /// How long the connection may stay quiet (no pong, no reported activity) before a
    /// ping. Each wait is shortened by up to `jitter` of it, never lengthened.
    pub fn interval(mut self, interval: Duration) -> Builder {
        self.interval = interval;
        self
    }

    /// How long to wait for a pong; must be shorter than the interval.
    pub fn timeout(mut self, timeout: Duration) -> Builder {
        self.timeout = timeout;
        self
    }

    /// Failed pings in a row before the peer is declared dead (at least 1).
    pub fn misses(mut self, misses: u32) -> Builder {
        self.misses = misses;
        self
    }

    /// The largest fraction, in `[0, 1)`, by which a wait is shortened at random.
    pub fn jitter(mut self, jitter: f64) -> Builder {
        self.jitter = jitter;
        self
    }

    /// The longest wait between pings after a death (at least the interval). Waits
    /// start at the interval and double, each picked at random between half and all of
    /// the current step.
    pub fn max_backoff(mut self, max_backoff: Duration) -> Builder {
        self.max_backoff = max_backoff;
        self
    }

    /// Checks the settings and builds the heartbeat.
    ///
    /// ```
    /// use std::time::Duration;
    /// use connhealth::heartbeat::{Heartbeat, HeartbeatError};
    ///
    /// let err = Heartbeat::builder()
    ///     .interval(Duration::from_secs(1))
    ///     .timeout(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, HeartbeatError::TimeoutNotShorterThanInterval { .. }));
    /// ```
    pub fn build(self) -> Result<Heartbeat, HeartbeatError> {
        if self.interval.is_zero() {
            return Err(HeartbeatError::ZeroInterval);
        }
        if self.timeout.is_zero() {
            return Err(HeartbeatError::ZeroTimeout);
        }
        if self.timeout >= self.interval {
            return Err(HeartbeatError::TimeoutNotShorterThanInterval {
                timeout: self.timeout,
                interval: self.interval,
            });
        }
        if self.misses == 0 {
            return Err(HeartbeatError::ZeroMisses);
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(HeartbeatError::Jitter(self.jitter));
        }
        if self.max_backoff < self.interval {
            return Err(HeartbeatError::BackoffBelowInterval {
                max_backoff: self.max_backoff,
                interval: self.interval,
            });
        }
        Ok(Heartbeat {
            config: self,
            activity: Activity::new(),
        })
    }
}

/// Application-level ping/pong with deadlines; see the [module documentation](self).
///
/// Build it with [`Heartbeat::builder`], hand the [`Activity`] handle to the code that
/// reads the connection, and [`run`](Heartbeat::run) it with a [`Ping`] implementation.
#[derive(Debug)]
pub struct Heartbeat {
    config: Builder,
    activity: Activity,
}

impl Heartbeat {
    /// A builder with the defaults described on [`Builder`].
    pub fn builder() -> Builder {
        Builder {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            misses: 2,
            jitter: 0.1,
            max_backoff: Duration::from_secs(60),
        }
    }

    /// A handle to report inbound traffic: each [`Activity::record`] restarts the
    /// interval, so a busy connection is never pinged. Clone it freely.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// The longest time from the last sign of life to [`Beat::Dead`]:
    /// `interval + misses × timeout`, before scheduling delay.
    pub fn dead_within(&self) -> Duration {
        let pings = self.config.timeout.saturating_mul(self.config.misses);
        self.config.interval.saturating_add(pings)
    }

    /// Starts watching: the first ping goes out one interval from now, unless activity
    /// is reported first. Pings happen only while the returned stream is polled, so the
    /// caller decides where it runs (a task of its own, or a `select!` beside the
    /// connection's reader). The stream never ends; drop it to stop.
    pub fn run<P: Ping + Send + 'static>(self, pinger: P) -> Beats<P> {
        self.activity.record();
        let driver = Driver {
            pinger,
            rng: SplitMix64::new(),
            backoff: self.config.interval,
            config: self.config,
            activity: self.activity.clone(),
            misses: 0,
            dead: false,
        };
        Beats {
            activity: self.activity,
            next: Box::pin(driver.step()),
        }
    }
}

/// Reports inbound traffic to a [`Heartbeat`]: `record()` restarts its interval.
///
/// Cheap (one atomic store), lock-free, callable from any thread.
#[derive(Debug, Clone)]
pub struct Activity {
    clock: Arc<Clock>,
}

#[derive(Debug)]
struct Clock {
    base: Instant,
    /// Nanoseconds from `base` to the last reported activity.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            clock: Arc::new(Clock {
                base: Instant::now(),
                last: AtomicU64::new(0),
            }),
        }
    }

    /// Something arrived from the peer: it is alive, no ping is needed for an interval.
    pub fn record(&self) {
        let now = self.clock.base.elapsed().as_nanos() as u64;
        self.clock.last.fetch_max(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.clock.base + Duration::from_nanos(self.clock.last.load(Ordering::Relaxed))
    }
}

type Step<P> = Pin<Box<dyn Future<Output = (Beat, Driver<P>)> + Send>>;

/// The stream of [`Beat`]s of a running [`Heartbeat`] (a `futures_core::Stream` that
/// never ends).
pub struct Beats<P> {
    activity: Activity,
    next: Step<P>,
}

impl<P> std::fmt::Debug for Beats<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beats")
            .field("activity", &self.activity)
            .finish_non_exhaustive()
    }
}

impl<P: Ping + Send + 'static> Beats<P> {
    /// Waits for the next [`Beat`], without needing a `StreamExt`.
    ///
    /// Cancel-safe: dropping this future (in a `select!`, or under a timeout) loses
    /// nothing; the wait or ping in progress carries on at the next call.
    pub async fn next_beat(&mut self) -> Beat {
        std::future::poll_fn(|cx| self.poll_beat(cx)).await
    }

    /// The heartbeat's [`Activity`] handle.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    fn poll_beat(&mut self, cx: &mut Context<'_>) -> Poll<Beat> {
        let (beat, driver) = std::task::ready!(self.next.as_mut().poll(cx));
        self.next = Box::pin(driver.step());
        Poll::Ready(beat)
    }
}

impl<P: Ping + Send + 'static> Stream for Beats<P> {
    type Item = Beat;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Beat>> {
        self.get_mut().poll_beat(cx).map(Some)
    }
}

/// The heartbeat's state, moved into each step's future and handed back with its beat.
struct Driver<P> {
    pinger: P,
    config: Builder,
    activity: Activity,
    rng: SplitMix64,
    misses: u32,
    dead: bool,
    /// The current backoff step while dead.
    backoff: Duration,
}

impl<P: Ping + Send + 'static> Driver<P> {
    async fn step(mut self) -> (Beat, Driver<P>) {
        loop {
            if self.dead {
                // Equal jitter: half the step for sure, the other half at random, so a
                // fleet that lost the same server retries spread out, not in waves.
                let wait = self.backoff / 2 + self.rng.fraction_of(self.backoff / 2);
                self.backoff = self.backoff.saturating_mul(2).min(self.config.max_backoff);
                tokio::time::sleep(wait).await;
            } else if self.misses == 0 {
                self.wait_for_quiet().await;
            }
            // After a miss (not yet dead) the next ping goes out at once: the deadline
            // `interval + misses × timeout` leaves no room for waiting.

            let sent = Instant::now();
            let failure = match tokio::time::timeout(self.config.timeout, self.pinger.ping()).await
            {
                Ok(Ok(())) => {
                    self.activity.record();
                    self.misses = 0;
                    self.dead = false;
                    self.backoff = self.config.interval;
                    return (
                        Beat::Alive {
                            rtt: sent.elapsed(),
                        },
                        self,
                    );
                }
                Ok(Err(err)) => PingFailure::Failed(err),
                Err(_) => PingFailure::TimedOut(self.config.timeout),
            };
            if !self.dead && self.activity.last() > sent {
                // Traffic came in while the ping waited: the peer is alive, its pong
                // queued behind what it is sending. Not a miss: wait for quiet again.
                self.misses = 0;
                continue;
            }
            self.misses = self.misses.saturating_add(1);
            if self.dead {
                continue;
            }
            if self.misses >= self.config.misses {
                self.dead = true;
                self.backoff = self.config.interval;
                return (Beat::Dead(failure), self);
            }
            let misses = self.misses;
            return (
                Beat::Missed {
                    misses,
                    reason: failure,
                },
                self,
            );
        }
    }

    /// Sleeps until the connection has been quiet for a (jittered) interval; activity
    /// reported meanwhile pushes the deadline back.
    async fn wait_for_quiet(&mut self) {
        loop {
            let last = self.activity.last();
            let cut = self
                .rng
                .fraction_of(self.config.interval.mul_f64(self.config.jitter));
            match last.checked_add(self.config.interval - cut) {
                Some(due) => tokio::time::sleep_until(due).await,
                // Beyond the clock's range: no ping is ever due.
                None => std::future::pending().await,
            }
            if self.activity.last() == last {
                return;
            }
        }
    }
}
