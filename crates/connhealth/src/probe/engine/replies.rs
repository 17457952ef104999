//! How a probe's result reaches its caller: a host name's lookup and its next address,
//! the result to a future, a stream or a feed, and the wakes of their consumers.

use std::time::{Duration, Instant};

use super::{Engine, Finished, Hold, Phase, Place, Probe};
use crate::probe::inbox::{Job, ProbeResult, Reply};
use crate::probe::name::{Attempt, NameProbe, Next};
use crate::probe::resolver::ResolveJob;
use crate::probe::results::FeedResult;
use crate::probe::ProbeError;

impl Engine {
    /// Starts a name's lookup: an entry of its own, for its deadline, while a resolver
    /// thread looks it up (off this thread: `getaddrinfo` blocks).
    pub(super) fn look_up(&mut self, host: String, mut name: Box<NameProbe>) {
        let deadline = match name.start_lookup(Instant::now()) {
            Ok(deadline) => deadline,
            Err(late) => return self.send(Reply::Name(name), late, Duration::ZERO),
        };
        let port = name.unresolved().port();
        let id = self.insert(Probe {
            addr: name.unresolved(),
            from_syn: None,
            deadline: Some(deadline),
            reply: Reply::Name(name),
            phase: Phase::Resolving,
            exhausted: None,
            hold: Hold::Free,
        });
        // The deadline heap covers the entry, so the name stops waiting at its deadline
        // whatever the resolver does.
        let job = ResolveJob {
            host,
            port,
            deadline,
            id,
        };
        if let Err(err) = self.resolvers.submit(job, &self.inbox) {
            let finished = self.take(id);
            self.deliver(finished, Err(ProbeError::Resolve(err)));
        }
    }

    /// What a name does next: probe another address, or report.
    pub(super) fn follow(&mut self, next: Next, place: Place) {
        match next {
            Next::Probe { name, addr, timing } => self.enqueue(
                Job {
                    addr,
                    timing,
                    reply: Reply::Name(name),
                },
                place,
            ),
            Next::Done {
                reply,
                attempt,
                lookup,
            } => self.send(reply, attempt, lookup),
        }
    }

    /// A probe is over: its result goes to its caller, or, for an address of a name,
    /// to the name, which may go on to its next address.
    pub(super) fn deliver(&mut self, finished: Finished, result: ProbeResult) {
        let Finished { probe, sent } = finished;
        let attempt = Attempt {
            addr: probe.addr,
            sent,
            result,
        };
        match probe.reply {
            Reply::Name(name) => {
                let next = name.answered(attempt, Instant::now());
                self.follow(next, Place::Front);
            }
            reply => self.send(reply, attempt, Duration::ZERO),
        }
    }

    pub(super) fn send(&mut self, reply: Reply, attempt: Attempt, lookup: Duration) {
        match reply {
            Reply::One(tx) => {
                let _ = tx.send(attempt.result);
            }
            Reply::Many { shared, tag } => {
                let result = FeedResult {
                    tag,
                    addr: attempt.addr,
                    sent: attempt.sent,
                    lookup,
                    result: attempt.result,
                };
                if shared.push(result) {
                    self.to_wake.push(shared);
                }
            }
            // A name that ended before its lookup started (its start_by passed, or the
            // engine stopped): its own reply, never a name itself.
            Reply::Name(name) => self.send(name.reply, attempt, lookup),
        }
    }

    /// Wakes the consumers that have results: at most once per turn each, after all of
    /// their results of the turn are in; while the engine is busy, only those with a
    /// batch of results waiting. When the engine is about to go idle, all of them.
    pub(super) fn flush_wakes(&mut self, idle: bool) {
        if self.to_wake.is_empty() {
            return;
        }
        let now = Instant::now();
        self.to_wake
            .retain(|shared| !shared.wake(if idle { 1 } else { shared.batch() }, now));
    }
}
