//! The engine's limits: a destination's place given back to the next probe parked behind
//! it, and the stalls of a destination out of local ports. The module docs of
//! [`super`] say how they are used.

use std::collections::hash_map;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use super::{Engine, Gave, Hold, EXHAUSTED_RETRY};
use crate::probe::destination::{destination, Stall};
use crate::probe::inbox::ProbeId;

impl Engine {
    /// A place under `addr`'s limit is free: the next probe parked behind it goes to the
    /// front of the queue. With [`Gave::ItsPlace`], a probe in flight to `addr` just
    /// ended: its place is counted back first, and the destination's stall is over (its
    /// local port came back).
    ///
    /// One lookup of the destination does all of it (it took two or three): with a
    /// destination per target, the table of destinations grows with the probes in
    /// flight, and each lookup, a SipHash of the address and a probe of that table, is
    /// paid for every probe.
    pub(super) fn pass_turn(&mut self, addr: SocketAddr, gave: Gave) {
        let hash_map::Entry::Occupied(mut known) = self.destinations.entry(destination(addr))
        else {
            return;
        };
        let dest = known.get_mut();
        if gave == Gave::ItsPlace {
            dest.in_flight -= 1;
            dest.stall = None;
        }
        while let Some(id) = dest.parked.pop_front() {
            let entry = &mut self.entries[id.index as usize];
            if entry.generation != id.generation {
                continue;
            }
            if let Some(probe) = entry.probe.as_mut() {
                probe.hold = Hold::Released;
                self.queue.push_front(id);
                break;
            }
        }
        if dest.in_flight == 0 && dest.parked.is_empty() {
            known.remove();
        }
    }

    /// Stops starts toward `addr` after the probe `id` found no local port for it: the
    /// probe waits first in line behind the stall.
    pub(super) fn stall(&mut self, id: ProbeId, addr: SocketAddr, err: io::Error) {
        let key = destination(addr);
        let dest = self
            .destinations
            .get_mut(&key)
            .expect("it has probes in flight");
        dest.parked.push_front(id);
        dest.stall = Some(Stall {
            retry_at: Instant::now() + EXHAUSTED_RETRY,
            errno: err.raw_os_error(),
        });
        self.stalled.push(key);
        let probe = self.live(id);
        probe.hold = Hold::Parked;
        probe.exhausted = Some(err);
    }

    /// Ends the stalls due by `now`, each releasing the first probe parked behind it (a
    /// port may have come back from outside the engine) if the destination's limit has
    /// room for it; if not, the next probe of it to finish releases one.
    pub(super) fn retry_stalled(&mut self, now: Instant) {
        let mut at = 0;
        while at < self.stalled.len() {
            let key = self.stalled[at];
            match self.destinations.get_mut(&key) {
                Some(dest) if dest.stall.is_some_and(|stall| stall.retry_at > now) => at += 1,
                Some(dest) => {
                    let release =
                        dest.stall.take().is_some() && dest.in_flight < self.max_per_destination;
                    self.stalled.swap_remove(at);
                    if release {
                        self.pass_turn(key, Gave::Nothing);
                    }
                }
                None => {
                    self.stalled.swap_remove(at);
                }
            }
        }
    }
}
