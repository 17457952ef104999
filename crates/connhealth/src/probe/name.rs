//! [`NameProbe`]: a probe of a host name, from its lookup to the answer of one of its
//! addresses. The one home of resolve-and-try-the-next-address, for
//! [`Prober::probe`](super::Prober::probe) and
//! [`ProbeFeed::push_target`](super::ProbeFeed::push_target) alike.
//!
//! The engine runs it; this file decides. The name's lookup is an entry of the engine's
//! table ([`Phase::Resolving`](super::engine)) handed to the resolver threads, and each of
//! its addresses then becomes an ordinary probe in the table, under the same limits,
//! deadlines and generations as any other. The `NameProbe` travels from one entry to the
//! next inside the probe's [`Reply`] ([`Reply::Name`]), boxed, so that the entry of an
//! address probe costs no more than it did before names came to the feed.
//!
//! Addresses are tried in the resolver's order, as a client would try them: a refusal or
//! an unreachable address moves on to the next ("localhost" is often `::1` first, with
//! the server on `127.0.0.1` only); any other end (an answer, a timeout, the prober's own
//! trouble) ends the name, since the next address would say nothing more. When no address
//! answered, the first refusal is reported: the address the system prefers.
//!
//! # Time
//!
//! The name's timing is its caller's. With [`Timing::Until`] (`probe`) one deadline
//! bounds everything. With [`Timing::FromSyn`] (the feed) the timeout counts from the
//! start of the lookup, and what the lookup and each refused address spent is taken off
//! it: each address gets what is left, from its own SYN, as any feed probe does, and its
//! `start_by` is moved on by the same amount, so that a name's result, like an address's,
//! comes by `start_by` + `timeout` at the latest. Waiting for a place under the limits
//! spends nothing, as for an address.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use std::vec;

use super::inbox::{ProbeResult, Reply, Timing};
use super::ProbeError;
use crate::util::deadline_after;

/// One address of a probe tried: where, when its SYN left (`None` if it never did), and
/// how it ended. What every probe in the engine's table ends with.
pub(crate) struct Attempt {
    pub(crate) addr: SocketAddr,
    pub(crate) sent: Option<Instant>,
    pub(crate) result: ProbeResult,
}

/// Where a name's lookup stands.
#[derive(Clone, Copy)]
enum Lookup {
    /// Submitted, not yet taken by the engine.
    Pending,
    Started(Instant),
    Took(Duration),
}

/// A probe of a host name: its caller's reply and timing, and, once its lookup has
/// answered, the addresses left to try and the first refusal.
pub(crate) struct NameProbe {
    /// Where the name's result goes: `One` or `Many`, never another name.
    pub(crate) reply: Reply,
    /// What the next step gets: the lookup, then each address.
    timing: Timing,
    port: u16,
    lookup: Lookup,
    /// Addresses not tried yet, in the resolver's order.
    addrs: vec::IntoIter<SocketAddr>,
    first_refusal: Option<Attempt>,
}

/// What the engine does next for a name.
pub(crate) enum Next {
    /// Probe `addr` with `timing`, the name riding along in the probe's reply.
    Probe {
        name: Box<NameProbe>,
        addr: SocketAddr,
        timing: Timing,
    },
    /// The name is over: hand `attempt` to `reply`, with the lookup's time.
    Done {
        reply: Reply,
        attempt: Attempt,
        lookup: Duration,
    },
}

impl NameProbe {
    /// A name with `port`, to be probed with `timing`, its result to go to `reply`.
    pub(crate) fn new(port: u16, timing: Timing, reply: Reply) -> Box<NameProbe> {
        Box::new(NameProbe {
            reply,
            timing,
            port,
            lookup: Lookup::Pending,
            addrs: Vec::new().into_iter(),
            first_refusal: None,
        })
    }

    /// What a name that never resolved reports as its address: the unspecified IPv4
    /// address with the target's port (`0.0.0.0:port`). No probe went anywhere, and a
    /// caller that logs `addr` still sees the port it asked about.
    pub(crate) fn unresolved(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.port))
    }

    /// The engine takes the name at `now` and starts its lookup: `Ok` with the lookup's
    /// deadline, or, when its `start_by` has passed already, what the name ends with, not
    /// sent (to be handed to its reply with no lookup time).
    pub(crate) fn start_lookup(&mut self, now: Instant) -> Result<Instant, Attempt> {
        let deadline = match self.timing {
            Timing::Until(deadline) => deadline,
            Timing::FromSyn {
                start_by: Some(by), ..
            } if now >= by => {
                return Err(Attempt {
                    addr: self.unresolved(),
                    sent: None,
                    result: Err(ProbeError::not_sent(
                        "its start_by passed before its name could be looked up".to_owned(),
                    )),
                });
            }
            // The name's timeout counts from here: its lookup is part of the check.
            Timing::FromSyn { timeout, .. } => deadline_after(now, timeout),
        };
        self.lookup = Lookup::Started(now);
        Ok(deadline)
    }

    /// The resolver answered at `now`: the first address to probe, or the name's end.
    pub(crate) fn resolved(
        mut self: Box<Self>,
        answer: io::Result<Vec<SocketAddr>>,
        now: Instant,
    ) -> Next {
        let took = self.lookup_time(now);
        self.lookup = Lookup::Took(took);
        let unresolved = self.unresolved();
        let failed = move |err| Attempt {
            addr: unresolved,
            sent: None,
            result: Err(ProbeError::Resolve(err)),
        };
        let addrs = match answer {
            Ok(addrs) if addrs.is_empty() => {
                let attempt = failed(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the name resolved to no address",
                ));
                return self.done(attempt, took);
            }
            Ok(addrs) => addrs,
            Err(err) => {
                let attempt = failed(err);
                return self.done(attempt, took);
            }
        };
        self.addrs = addrs.into_iter();
        match (self.addrs.next(), left_after(self.timing, took, now)) {
            (Some(addr), Some(timing)) => {
                self.timing = timing;
                Next::Probe {
                    name: self,
                    addr,
                    timing,
                }
            }
            // The answer came with nothing of the timeout left to probe with.
            _ => {
                let attempt = failed(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "name resolution left nothing of the probe's timeout",
                ));
                self.done(attempt, took)
            }
        }
    }

    /// The probe of one of the name's addresses (or its lookup) ended at `now` with
    /// `attempt`: the next address to probe, or the name's end.
    pub(crate) fn answered(mut self: Box<Self>, attempt: Attempt, now: Instant) -> Next {
        let lookup = self.lookup_time(now);
        if !matches!(
            attempt.result,
            Err(ProbeError::Refused | ProbeError::Unreachable(_))
        ) {
            // An answer, a timeout, or the prober's own trouble: the next address would
            // not change it.
            return self.done(attempt, lookup);
        }
        // Its time in flight is spent: a refusal comes quickly, an ICMP error may not.
        let spent = attempt
            .sent
            .map_or(Duration::ZERO, |sent| now.saturating_duration_since(sent));
        let first = self.first_refusal.take().unwrap_or(attempt);
        if let Some(timing) = left_after(self.timing, spent, now) {
            if let Some(addr) = self.addrs.next() {
                self.first_refusal = Some(first);
                self.timing = timing;
                return Next::Probe {
                    name: self,
                    addr,
                    timing,
                };
            }
        }
        self.done(first, lookup)
    }

    /// How long the lookup took, or has taken by `now` if it is still running.
    fn lookup_time(&self, now: Instant) -> Duration {
        match self.lookup {
            Lookup::Pending => Duration::ZERO,
            Lookup::Started(since) => now.saturating_duration_since(since),
            Lookup::Took(took) => took,
        }
    }

    fn done(self: Box<Self>, attempt: Attempt, lookup: Duration) -> Next {
        Next::Done {
            reply: self.reply,
            attempt,
            lookup,
        }
    }
}

/// What a name's next step gets once `spent` is gone at `now`, or `None` when nothing is
/// left. One deadline for everything (`Until`) stands as it is. A timeout from the SYN
/// loses `spent`, and its `start_by` moves on by as much: the name's bound, `start_by` +
/// `timeout`, stays where it was.
fn left_after(timing: Timing, spent: Duration, now: Instant) -> Option<Timing> {
    match timing {
        Timing::Until(deadline) => (now < deadline).then_some(timing),
        Timing::FromSyn { timeout, start_by } => {
            let timeout = timeout.checked_sub(spent).filter(|left| !left.is_zero())?;
            Some(Timing::FromSyn {
                timeout,
                start_by: start_by.map(|by| deadline_after(by, spent)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(timing: Timing) -> Box<NameProbe> {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        NameProbe::new(80, timing, Reply::One(tx))
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn refused(addr: SocketAddr, sent: Instant) -> Attempt {
        Attempt {
            addr,
            sent: Some(sent),
            result: Err(ProbeError::Refused),
        }
    }

    #[test]
    fn the_lookup_and_each_refusal_spend_the_timeout_and_move_start_by_on() {
        let t0 = Instant::now();
        let ms = |n| Duration::from_millis(n);
        let timing = Timing::FromSyn {
            timeout: ms(1000),
            start_by: Some(t0 + ms(50)),
        };
        let mut name = name(timing);
        let deadline = name.start_lookup(t0).ok().unwrap();
        assert_eq!(deadline, t0 + ms(1000));
        let (first, second) = (addr("[::1]:80"), addr("127.0.0.1:80"));
        let next = name.resolved(Ok(vec![first, second]), t0 + ms(100));
        let Next::Probe { name, addr, timing } = next else {
            panic!("the first address is probed")
        };
        assert_eq!(addr, first);
        assert!(
            matches!(timing, Timing::FromSyn { timeout, start_by: Some(by) }
            if timeout == ms(900) && by == t0 + ms(150))
        );
        // Sent after a wait (which spends nothing), refused 30 ms after its SYN.
        let next = name.answered(refused(first, t0 + ms(400)), t0 + ms(430));
        let Next::Probe { name, addr, timing } = next else {
            panic!("the second address is probed")
        };
        assert_eq!(addr, second);
        assert!(
            matches!(timing, Timing::FromSyn { timeout, start_by: Some(by) }
            if timeout == ms(870) && by == t0 + ms(180))
        );
        // Refused too: the first refusal is the name's result.
        let Next::Done {
            attempt, lookup, ..
        } = name.answered(refused(second, t0 + ms(440)), t0 + ms(441))
        else {
            panic!("no address is left")
        };
        assert_eq!((attempt.addr, lookup), (first, ms(100)));
        assert_eq!(attempt.sent, Some(t0 + ms(400)));
    }

    #[test]
    fn an_answer_or_a_timeout_ends_the_name() {
        let t0 = Instant::now();
        let until = Timing::Until(t0 + Duration::from_secs(1));
        let (a, b) = (addr("127.0.0.2:80"), addr("127.0.0.1:80"));
        for result in [Ok(Duration::from_millis(1)), Err(ProbeError::TimedOut)] {
            let mut name = name(until);
            name.start_lookup(t0).ok().unwrap();
            let Next::Probe { name, .. } = name.resolved(Ok(vec![a, b]), t0) else {
                panic!()
            };
            let attempt = Attempt {
                addr: a,
                sent: Some(t0),
                result,
            };
            let next = name.answered(attempt, t0);
            assert!(matches!(next, Next::Done { attempt, .. } if attempt.addr == a));
        }
    }

    #[test]
    fn a_name_out_of_time_reports_its_first_refusal() {
        let t0 = Instant::now();
        let until = Timing::Until(t0 + Duration::from_millis(10));
        let mut name = name(until);
        name.start_lookup(t0).ok().unwrap();
        let (a, b) = (addr("127.0.0.2:80"), addr("127.0.0.1:80"));
        let Next::Probe { name, .. } = name.resolved(Ok(vec![a, b]), t0) else {
            panic!()
        };
        let late = t0 + Duration::from_millis(10);
        let next = name.answered(refused(a, t0), late);
        assert!(matches!(next, Next::Done { attempt, .. }
            if attempt.addr == a && matches!(attempt.result, Err(ProbeError::Refused))));
    }

    #[test]
    fn a_name_that_cannot_start_or_resolve_reports_the_unspecified_address() {
        let t0 = Instant::now();
        let late = Timing::FromSyn {
            timeout: Duration::from_secs(1),
            start_by: Some(t0),
        };
        let Err(attempt) = name(late).start_lookup(t0) else {
            panic!("its start_by passed")
        };
        assert_eq!((attempt.addr, attempt.sent), (addr("0.0.0.0:80"), None));
        assert!(matches!(attempt.result, Err(ProbeError::Exhausted(_))));

        let until = Timing::Until(t0 + Duration::from_secs(1));
        let mut name = name(until);
        name.start_lookup(t0).ok().unwrap();
        let later = t0 + Duration::from_millis(5);
        let next = name.resolved(Ok(Vec::new()), later);
        assert!(matches!(next, Next::Done { attempt, lookup, .. }
            if attempt.addr == addr("0.0.0.0:80")
                && lookup == Duration::from_millis(5)
                && matches!(attempt.result, Err(ProbeError::Resolve(_)))));
    }
}
