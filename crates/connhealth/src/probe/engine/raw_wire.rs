//! The engine's turn on the raw wire: replies read and matched to their probes,
//! the turn's SYNs sent, and retransmissions. The module docs of [`super`] say where
//! each comes in the turn.

use std::io;
use std::mem;
use std::time::Instant;

use super::{Engine, Link, Phase};
use crate::probe::destination::destination;
use crate::probe::inbox::ProbeId;
use crate::probe::raw::{retransmit_at, Answer};
use crate::probe::ProbeError;
use crate::sys::probe as sys;

impl Engine {
    /// Reads the replies queued on the raw socket `heard` (a batch of them: the poller
    /// reports the socket again while more are queued) and ends the probes they answer.
    pub(super) fn hear(&mut self, heard: sys::Heard, now: Instant) {
        let Some(raw) = &mut self.raw else {
            return;
        };
        let mut answers = mem::take(&mut self.answers);
        if let Err(err) = raw.receive(heard, &mut answers) {
            tracing::warn!(%err, "probe engine: reading the raw socket failed");
        }
        for (id, answer) in answers.drain(..) {
            let Some(probe) = self.probe_mut(id) else {
                continue;
            };
            let Phase::InFlight { start, .. } = probe.phase else {
                continue;
            };
            let result = match answer {
                Answer::SynAck => Ok(now.saturating_duration_since(start)),
                Answer::Reset => Err(ProbeError::Refused),
                Answer::Unreachable(code) => {
                    Err(ProbeError::from_connect(io::Error::from_raw_os_error(code)))
                }
            };
            let finished = self.take(id);
            self.deliver(finished, result);
        }
        self.answers = answers;
    }

    /// Sends the SYNs the turn batched on the raw wire, and ends the probes whose SYN the
    /// system refused for good (no route).
    pub(super) fn flush_raw(&mut self) {
        let Some(raw) = &mut self.raw else {
            return;
        };
        let mut failed = mem::take(&mut self.send_failed);
        self.raw_backlog = !raw.flush(&mut failed);
        for (id, err) in failed.drain(..) {
            if self.probe_mut(id).is_some() {
                let finished = self.take(id);
                self.deliver(finished, Err(ProbeError::from_connect(err)));
            }
        }
        self.send_failed = failed;
    }

    /// On the raw wire, a deadline of a probe in flight that comes before its own is a
    /// retransmission: its SYN is batched again and the next one armed (or its timeout).
    /// False for anything else, which `expire` ends.
    pub(super) fn retransmit(&mut self, id: ProbeId, now: Instant) -> bool {
        let Some(probe) = self.probe_mut(id) else {
            return false;
        };
        let Phase::InFlight {
            link: Link::Raw { port, resent },
            start,
        } = &mut probe.phase
        else {
            return false;
        };
        if probe.deadline.is_none_or(|deadline| deadline <= now) {
            return false;
        }
        let (addr, port, start) = (probe.addr, *port, *start);
        *resent += 1;
        let next = retransmit_at(start, *resent + 1);
        let at = next.into_iter().chain(probe.deadline).min();
        if let Some(raw) = &mut self.raw {
            raw.resend(id, destination(addr), port);
        }
        if let Some(at) = at {
            self.deadlines.arm(id.index, at);
        }
        true
    }
}
