//! The engine: one thread that owns every probe socket of a [`Prober`](super::Prober)
//! family, from `socket()` to `close()`. The module docs of [`super`] say why it is a
//! thread of its own; this page says how it works.
//!
//! # How a probe flows
//!
//! 1. **Submission.** A front end (`probe_addr`, `probe_many`, the feed) wraps the address,
//!    its [`Timing`](super::inbox::Timing) and its [`Reply`] in a [`Job`] and pushes it
//!    into the [`Inbox`] (`inbox.rs`), in batches where it can; the engine's waker is
//!    written only when the inbox goes from empty to non-empty. A host name comes as a
//!    [`NameProbe`] instead: see *Names* below.
//! 2. **The engine's turn** ([`Engine::run`]) is one wait and four steps, always in this
//!    order:
//!    1. *close*: every socket the poller reported is read (`SO_ERROR`) and closed, and
//!       its result delivered, before anything else is done (see the delayed ACK below);
//!    2. *take the inbox*: each new job becomes a [`Probe`] in the table and joins the
//!       back of the start queue;
//!    3. *expire*: every deadline that passed ends its probe (timed out, or never sent),
//!       and every destination stall whose retry time came ends (below);
//!    4. *start*: probes leave the queue, at most [`MAX_STARTS_PER_TURN`] of them, while
//!       there is room under `max_in_flight`. One whose destination is full parks on
//!       that destination; the others get a socket, a `connect()` (the SYN) and a place in
//!       the poller, keyed by their [`ProbeId`].
//!
//!    Then the consumers with results are woken (once per turn each, in batches while the
//!    engine is busy), and the next wait lasts until the earliest deadline, or not at
//!    all when a consumer still waits for a wake or probes are left to start.
//! 3. **The socket.** The SYN-ACK (or an RST, or an ICMP error) makes the socket
//!    writable; the poller reports its token in the next wait, and step 1 closes it with a
//!    zero linger, which sends an RST.
//! 4. **The result** goes to a oneshot channel (one probe) or to the consumer's
//!    [`SharedResults`] (a stream or a feed), and the probe's entry moves on to its next
//!    generation, so that an old token or deadline misses whatever comes next.
//!
//! # The raw wire
//!
//! With a [`Raw`] wire (`raw/`), step 2.4 takes a source port and batches a SYN instead
//! of opening a socket, and the turn ends by sending the batch ([`Engine::flush_raw`]).
//! The raw sockets are in the poller under tokens of their own, just below the waker's;
//! step 2.1 reads a batch of replies from each one reported ([`Engine::hear`]) and ends
//! the probes they answer, as it closes ready sockets on the other wire. A probe in
//! flight holds [`Link::Raw`] (its port and how many times its SYN was re-sent) instead
//! of [`Link::Socket`]; its deadline in the heap is its next retransmission while that
//! comes before its timeout, and step 2.3 re-sends it and arms the next. No descriptor
//! is spent per probe, so the raw wire has no descriptor exhaustion; out of socket
//! buffers (`ENOBUFS`), the SYNs not sent stay batched and go in 1 ms. The delayed-ACK
//! window below does not concern it: the kernel resets the handshake itself.
//!
//! # The table and its ids
//!
//! Probes live in a table of entries ([`Entry`]), reused through a free list. A probe is
//! named by its [`ProbeId`], the entry's index and generation, in the poller's tokens, in
//! the deadlines and in the queues; never by descriptor, since a closed descriptor is
//! reused by the next `socket()` at once. Name lookups are entries too
//! ([`Phase::Resolving`]), so that their deadlines are kept in the same place.
//!
//! # Names
//!
//! A host name (from `probe` or the feed's `push_target`) is one [`NameProbe`]
//! (`name.rs`, where the rules live), which the engine moves from entry to entry. Its
//! lookup is an entry in [`Phase::Resolving`], armed at the lookup's deadline, while a
//! resolver thread runs `getaddrinfo` (`resolver.rs`) and answers through the inbox with
//! [`Submission::Resolved`]. The answer's first address then joins the queue as an
//! ordinary probe, the name riding in its [`Reply::Name`], under the same limits,
//! deadlines and generations as any other. When that probe ends, [`Engine::deliver`]
//! hands its [`Attempt`] to the name: a refusal or an unreachable address puts the next
//! address at the front of the queue (it carries on a probe that has had its turn), and
//! anything else, or no address or time left, reports to the caller. A dropped caller's
//! name ends where any probe does: at its start, at the cancel of its future, at the
//! feed's drop.
//!
//! # Deadlines
//!
//! [`Deadlines`] (`deadlines.rs`): a binary heap of `(deadline, index, arm)`, lazily
//! deleted: a probe that ends early leaves its heap entry behind, stale, and a dense
//! count per table index, not the table, says which entries are live, so that skipping
//! and compacting stale entries stays cheap with thousands in flight. A probe whose
//! timeout runs from its SYN ([`Timing::FromSyn`](super::inbox::Timing::FromSyn)) has its
//! `start_by` armed while it waits, and is re-armed at the SYN for SYN + timeout; the
//! `start_by` entry goes stale. The wait's timeout is the heap's minimum, rounded up to
//! the millisecond by the poller, so a probe times out at its deadline, never before.
//!
//! # The per-turn start cap
//!
//! A turn starts at most [`MAX_STARTS_PER_TURN`] (256) probes. A backlog behind a large
//! `max_in_flight` (a health checker's tick, a `probe_many` of 100k addresses) is started
//! over the next turns, each after that turn's ready sockets are closed. Without the cap
//! one turn could start thousands of connects: on loopback each SYN-ACK arrives within
//! the `connect()` itself, and every socket started early in the turn would stay open
//! until the last connect of the turn returned. 256 connects are about 2 ms of work on an
//! idle core, and stay far below the delayed-ACK window on a thread that gets a tenth of
//! a core (`tests/probe_starved.rs`).
//!
//! # Why sockets close before the delayed-ACK window
//!
//! A half-open probe socket has TCP_QUICKACK off: the kernel holds its ACK of the SYN-ACK
//! for the delayed-ACK timer, at most `TCP_DELACK_MAX` (200 ms). If the socket is still
//! open when the timer fires, the ACK completes the handshake and the server's `accept()`
//! returns a connection, which is what a half-open probe promises never to cause. So the
//! time from a writable event to the close must stay far below 200 ms under any load:
//! ready sockets are closed first in every turn, by the thread that saw them, before new
//! work is taken; the start cap bounds the rest of the turn.
//!
//! # Limits and local exhaustion
//!
//! `max_in_flight` bounds the sockets in flight, `max_in_flight_per_destination` those
//! to one address ([`Destination`]): a probe over the latter parks in the destination's
//! FIFO and goes back to the front of the queue when a place is given back
//! ([`Hold`] says where it stands, so that a place handed to a probe that then leaves is
//! passed on). `EMFILE`, `ENFILE`, `ENOBUFS` and `ENOMEM` at `socket()` or `connect()`
//! are the prober's own exhaustion, and concern every destination: starting stops until
//! one of its own probes gives a descriptor back, or [`EXHAUSTED_RETRY`] passes.
//! `EADDRNOTAVAIL` concerns one destination (Linux picks a connect's local port so that
//! the four-tuple is unique: the same port serves many destinations): that destination
//! gets a [`Stall`], its probes park behind it, and the others go on. The stall ends when
//! one of its probes in flight gives its port back, or at its retry time; each probe that
//! starts then releases the next parked one, until one finds no port and stalls it again.
//! With none of its probes in flight, nothing of ours would give a port back, and the
//! probe fails at once as `Exhausted`.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::task::{Context, Wake};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::deadlines::Deadlines;
use super::destination::{destination, Destination};
use super::inbox::{Inbox, Job, ProbeId, Reply, Submission};
use super::name::Attempt;
use super::raw::{retransmit_at, Answer, Raw};
use super::resolver::Resolvers;
use super::results::SharedResults;
use super::{Mode, ProbeError};
use crate::sync::Arc;
use crate::sys::probe::{self as sys, Poller, WAKE_TOKEN};
use crate::sys::{borrow, Failure};
use crate::util::deadline_after;

mod limits;
mod raw_wire;
mod replies;

/// How long a probe stalled on local exhaustion waits before trying again when none of
/// the engine's own probes has given a descriptor or port back (another part of the
/// process, or another process, may have).
const EXHAUSTED_RETRY: Duration = Duration::from_millis(10);

/// At most this many SYNs per engine turn. A turn starts probes only after it has closed
/// every socket that became ready; starting thousands in one turn (a backlog behind a
/// large `max_in_flight`) keeps answered sockets open for tens of milliseconds, and the
/// growing set in flight makes every probe dearer: a health checker near its limit tipped
/// into a state where every check was late. 256 SYNs are about 2 ms of work.
const MAX_STARTS_PER_TURN: usize = 256;

/// How soon the raw wire tries again to send SYNs the system had no buffers for.
const RAW_BACKLOG_RETRY: Duration = Duration::from_millis(1);

/// What the engine is built with.
pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_per_destination: usize,
    /// Whether [`Mode::HalfOpen`] may run the raw wire.
    pub(crate) raw: bool,
    pub(crate) raw_source_ports: Option<std::ops::RangeInclusive<u16>>,
}

/// Registered with a probe future's channel while its probe is in flight: woken when
/// the future is dropped, it tells the engine, so that an abandoned probe gives back its
/// descriptor and its places under the in-flight limits at once, not at its timeout
/// (which may be long: `tokio::time::timeout(d, probe_addr(a, long))`).
struct CancelOnDrop {
    inbox: Arc<Inbox>,
    id: ProbeId,
}

impl Wake for CancelOnDrop {
    fn wake(self: Arc<Self>) {
        let _ = self.inbox.submit_one(Submission::Cancelled { id: self.id });
    }
}

enum Phase {
    /// Queued, parked behind its destination's limit, or stalled on exhaustion.
    Waiting,
    InFlight {
        link: Link,
        start: Instant,
    },
    Resolving,
}

/// What a probe in flight holds: its socket, or (on the raw wire) its source port and
/// how many times its SYN was sent again.
enum Link {
    Socket(Socket),
    Raw { port: u16, resent: u8 },
}

/// One probe (or one name resolution) in the engine's table.
struct Probe {
    addr: SocketAddr,
    /// For [`Timing::FromSyn`](super::inbox::Timing::FromSyn), its timeout: at the SYN,
    /// the deadline is re-armed for the SYN's time plus this. (Its start_by is `deadline`
    /// while it waits: kept once, so that a probe costs no more than before.)
    from_syn: Option<Duration>,
    /// The deadline armed in [`Deadlines`], if any: `Timing::Until`'s, or a waiting
    /// `Timing::FromSyn` probe's start_by, and once it is sent its SYN's time plus its
    /// timeout (re-armed: the start_by's heap entry goes stale).
    deadline: Option<Instant>,
    reply: Reply,
    phase: Phase,
    /// The last local-exhaustion error this probe hit; reported if its deadline passes
    /// before it could start.
    exhausted: Option<io::Error>,
    hold: Hold,
}

/// A waiting probe's standing with its destination's in-flight limit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Not held back by it.
    Free,
    /// In the destination's `parked` list.
    Parked,
    /// Taken off that list for the place a finished probe gave back. If it leaves
    /// without starting (dropped, or timed out in the same turn), that place passes on
    /// to the next parked probe: otherwise they would wait with the destination idle.
    Released,
}

/// What the probe that lets a parked one go gives back to its destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gave {
    /// Its place in flight: it was in flight, and ended.
    ItsPlace,
    /// Nothing of its own: a place handed to it that it never used ([`Hold::Released`]),
    /// or room that opened otherwise (a stall that ended).
    Nothing,
}

/// Where a new probe joins the start queue.
#[derive(Clone, Copy)]
enum Place {
    Back,
    Front,
}

/// A probe taken out of the table, to be delivered.
struct Finished {
    probe: Probe,
    /// When its SYN left; `None` if it never did.
    sent: Option<Instant>,
}

/// One place in the engine's table: a probe, or nothing, and the generation that names
/// what is (or was last) there.
struct Entry {
    generation: u32,
    probe: Option<Probe>,
}

/// The engine thread's state; see the module docs.
pub(crate) struct Engine {
    inbox: Arc<Inbox>,
    resolvers: Arc<Resolvers>,
    poller: Poller,
    half_open: bool,
    /// The raw wire, when the engine runs it: no socket per probe.
    raw: Option<Raw>,
    /// The raw wire has SYNs the system had no buffers for: flush again soon.
    raw_backlog: bool,
    answers: Vec<(ProbeId, Answer)>,
    send_failed: Vec<(ProbeId, io::Error)>,
    max_in_flight: usize,
    max_per_destination: u32,
    /// Every probe has an entry here, named by its [`ProbeId`].
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Each probe's `deadline`, by its entry's index.
    deadlines: Deadlines,
    /// Probes waiting to start, in submission order.
    queue: VecDeque<ProbeId>,
    /// In-flight count per destination, and probes parked behind its limit: many SYNs in
    /// flight to one listener overflow its SYN backlog and turn into drops or cookies.
    /// Keyed by [`destination`], so that every spelling of one listener shares a limit.
    destinations: HashMap<SocketAddr, Destination>,
    in_flight: usize,
    /// Set while starting is stalled on local exhaustion that concerns every destination
    /// (descriptors, buffers): retry then, or sooner when one of our probes completes and
    /// gives its descriptor back.
    retry_at: Option<Instant>,
    /// The errno that stalled the engine (meaningful while `retry_at` is set).
    stalled_on: Option<i32>,
    /// Destinations with a [`Stall`], to retry at their `retry_at` (lazily cleaned: an
    /// entry whose destination is no longer stalled is dropped when next looked at).
    stalled: Vec<SocketAddr>,
    /// The last turn started its quota of probes and left some queued.
    more_to_start: bool,
    tokens: Vec<u64>,
    submissions: Vec<Submission>,
    to_wake: Vec<Arc<SharedResults>>,
}

impl Engine {
    pub(crate) fn new(
        config: Config,
        inbox: Arc<Inbox>,
        poller: Poller,
        raw: Option<Raw>,
    ) -> Engine {
        Engine {
            inbox,
            resolvers: Arc::default(),
            poller,
            half_open: config.mode != Mode::Connect,
            raw,
            raw_backlog: false,
            answers: Vec::new(),
            send_failed: Vec::new(),
            max_in_flight: config.max_in_flight.max(1),
            max_per_destination: config
                .max_in_flight_per_destination
                .clamp(1, u32::MAX as usize) as u32,
            entries: Vec::new(),
            free: Vec::new(),
            deadlines: Deadlines::new(),
            queue: VecDeque::new(),
            destinations: HashMap::new(),
            in_flight: 0,
            retry_at: None,
            stalled_on: None,
            stalled: Vec::new(),
            more_to_start: false,
            tokens: Vec::with_capacity(1024),
            submissions: Vec::new(),
            to_wake: Vec::new(),
        }
    }

    /// The engine thread: turns until the inbox closes.
    pub(crate) fn run(mut self) {
        loop {
            // Streams with a few results not worth a wake yet: look for more work
            // without sleeping, and wake them if there is none.
            // Probes left to start after a turn's quota: look again at once, too.
            let timeout = match self.to_wake.is_empty() && !self.more_to_start {
                true if self.raw_backlog => Some(RAW_BACKLOG_RETRY),
                true => self.next_timeout(Instant::now()),
                false => Some(Duration::ZERO),
            };
            if let Err(err) = self.poller.wait(timeout, &mut self.tokens) {
                tracing::error!(%err, "probe engine: waiting for readiness failed; stopping");
                self.stop("waiting for readiness failed");
                return;
            }
            // One clock read per batch: every event in it happened before the wait
            // returned, so this bounds each probe's time to the SYN-ACK from above.
            let now = Instant::now();
            let idle = self.tokens.is_empty();
            let mut tokens = mem::take(&mut self.tokens);
            // Close first: a half-open socket must be closed well within the ~200 ms
            // delayed-ACK window, so ready sockets come before any new work.
            for &token in &tokens {
                if token == WAKE_TOKEN {
                    self.inbox.waker().reset();
                } else if let Some(heard) = Raw::heard(token).filter(|_| self.raw.is_some()) {
                    self.hear(heard, now);
                } else {
                    self.ready(ProbeId::from_token(token), now);
                }
            }
            tokens.clear();
            self.tokens = tokens;
            if !self.take_inbox() {
                self.stop("the prober was dropped");
                return;
            }
            let now = Instant::now();
            self.expire(now);
            self.retry_stalled(now);
            self.start_queued();
            self.flush_raw();
            self.flush_wakes(idle);
        }
    }

    fn next_timeout(&self, now: Instant) -> Option<Duration> {
        let deadline = self.deadlines.next();
        let stall = self
            .stalled
            .iter()
            .filter_map(|key| self.destinations.get(key)?.stall)
            .map(|stall| stall.retry_at)
            .min();
        [deadline, self.retry_at, stall]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    fn probe_mut(&mut self, id: ProbeId) -> Option<&mut Probe> {
        let entry = self.entries.get_mut(id.index as usize)?;
        if entry.generation != id.generation {
            return None;
        }
        entry.probe.as_mut()
    }

    /// The probe `id`, which the caller knows is live.
    fn live(&mut self, id: ProbeId) -> &mut Probe {
        self.entries[id.index as usize]
            .probe
            .as_mut()
            .expect("a live probe")
    }

    fn insert(&mut self, probe: Probe) -> ProbeId {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    probe: None,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let entry = &mut self.entries[index as usize];
        let timed = probe.deadline;
        entry.probe = Some(probe);
        let id = ProbeId {
            index,
            generation: entry.generation,
        };
        if let Some(at) = timed {
            self.deadlines.arm(index, at);
        }
        id
    }

    /// Removes a probe from the table, closing its socket (if any) at once, and moves
    /// its entry to the next generation so that stale events and deadlines miss it.
    fn take(&mut self, id: ProbeId) -> Finished {
        let entry = &mut self.entries[id.index as usize];
        let mut probe = entry
            .probe
            .take()
            .expect("take() is called on a live probe");
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(id.index);
        self.deadlines.disarm(id.index);
        let mut sent = None;
        match mem::replace(&mut probe.phase, Phase::Waiting) {
            Phase::InFlight { link, start } => {
                sent = Some(start);
                match link {
                    Link::Socket(socket) => {
                        self.poller.remove(borrow(&socket));
                        // The zero linger turns this close into an RST, now.
                        drop(socket);
                    }
                    Link::Raw { port, .. } => {
                        if let Some(raw) = &mut self.raw {
                            raw.end(destination(probe.addr), port);
                        }
                    }
                }
                self.in_flight -= 1;
                self.pass_turn(probe.addr, Gave::ItsPlace);
                // A descriptor and a local port just came back.
                self.retry_at = None;
            }
            _ if probe.hold == Hold::Released => self.pass_turn(probe.addr, Gave::Nothing),
            _ => {}
        }
        Finished { probe, sent }
    }

    /// A probe socket became writable or failed: its connect is over.
    fn ready(&mut self, id: ProbeId, now: Instant) {
        let Some(probe) = self.probe_mut(id) else {
            return;
        };
        let Phase::InFlight {
            link: Link::Socket(socket),
            start,
        } = &probe.phase
        else {
            return;
        };
        let result = match socket.take_error() {
            Ok(None) => Ok(now.saturating_duration_since(*start)),
            Ok(Some(err)) | Err(err) => Err(ProbeError::from_connect(err)),
        };
        let finished = self.take(id);
        self.deliver(finished, result);
    }

    fn expire(&mut self, now: Instant) {
        // Read once: a probe that expires below gives its port back and clears the stall,
        // but the probes behind it still waited on it.
        let stalled_on = self.retry_at.and(self.stalled_on);
        let limits_full = self.in_flight >= self.max_in_flight;
        // Live deadlines only: those of probes that ended, or were re-armed at their SYN
        // (a start_by giving way to SYN + timeout), are skipped inside.
        while let Some(index) = self.deadlines.pop_due(now) {
            let max_per_destination = self.max_per_destination;
            let max_in_flight = self.max_in_flight;
            let id = ProbeId {
                index,
                generation: self.entries[index as usize].generation,
            };
            if self.retransmit(id, now) {
                continue;
            }
            let Some(probe) = self.probe_mut(id) else {
                continue;
            };
            // Parked behind its destination's stall, it waited for a local port.
            let (addr, hold) = (probe.addr, probe.hold);
            let destination_stall = match hold {
                Hold::Parked => self
                    .destinations
                    .get(&destination(addr))
                    .and_then(|dest| dest.stall),
                Hold::Free | Hold::Released => None,
            };
            let stalled_on = destination_stall
                .and_then(|stall| stall.errno)
                .or(stalled_on);
            let probe = self.live(id);
            let from_syn = probe.from_syn.is_some();
            // A probe never sent says nothing of its target: the error is the prober's.
            let error = match (&probe.phase, probe.exhausted.take(), stalled_on) {
                (Phase::Resolving, _, _) => ProbeError::Resolve(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "name resolution did not finish before the probe's timeout",
                )),
                (Phase::InFlight { .. }, _, _) => ProbeError::TimedOut,
                (Phase::Waiting, Some(err), _) => ProbeError::Exhausted(err),
                (Phase::Waiting, None, Some(code)) => {
                    ProbeError::Exhausted(io::Error::from_raw_os_error(code))
                }
                (Phase::Waiting, None, None) => ProbeError::not_sent(if hold == Hold::Parked {
                    format!(
                        "it waited behind {max_per_destination} probes in flight to the \
                             same address (max_in_flight_per_destination)"
                    )
                } else if limits_full {
                    format!(
                        "it waited for one of the prober's {max_in_flight} places in \
                             flight (max_in_flight)"
                    )
                } else if from_syn {
                    "its start_by passed before the prober could send it".to_owned()
                } else {
                    "its timeout passed before the prober could send it".to_owned()
                }),
            };
            let finished = self.take(id);
            self.deliver(finished, Err(error));
        }
    }

    fn start_queued(&mut self) {
        let mut starts = 0;
        self.more_to_start = false;
        while self.in_flight < self.max_in_flight {
            if starts == MAX_STARTS_PER_TURN {
                // The rest waits for the next turn, after this turn's sockets are closed.
                self.more_to_start = !self.queue.is_empty();
                break;
            }
            if let Some(at) = self.retry_at {
                if Instant::now() < at {
                    break;
                }
                self.retry_at = None;
            }
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let max_per_destination = self.max_per_destination;
            let Some(probe) = self.probe_mut(id) else {
                continue;
            };
            if probe.reply.is_closed() {
                // Its future or stream was dropped: do not send a SYN nobody waits for.
                self.take(id);
                continue;
            }
            // A waiting probe's deadline is, with a timeout from its SYN, its start_by.
            let (addr, from_syn, start_by) = (probe.addr, probe.from_syn, probe.deadline);
            if let Some(dest) = self.destinations.get_mut(&destination(addr)) {
                if dest.in_flight >= max_per_destination || dest.stall.is_some() {
                    dest.parked.push_back(id);
                    self.live(id).hold = Hold::Parked;
                    continue;
                }
            }
            // Before connect(): on loopback the SYN-ACK is often processed inside it.
            let start = Instant::now();
            if from_syn.is_some() && start_by.is_some_and(|by| start >= by) {
                // Too late to send: its entry at start_by is due, and the next turn's
                // expire reports it (and passes on a place it was given).
                continue;
            }
            starts += 1;
            let started = match &mut self.raw {
                Some(raw) => raw
                    .start(id, destination(addr))
                    .map(|port| Link::Raw { port, resent: 0 }),
                None => sys::start_connect(&addr, self.half_open).and_then(|socket| {
                    self.poller
                        .add(borrow(&socket), id.token())
                        .map(|()| Link::Socket(socket))
                }),
            };
            match started {
                Ok(link) => {
                    let inbox = &self.inbox;
                    let probe = self.entries[id.index as usize]
                        .probe
                        .as_mut()
                        .expect("a live probe");
                    let raw = matches!(link, Link::Raw { .. });
                    probe.phase = Phase::InFlight { link, start };
                    probe.hold = Hold::Free;
                    // Hear of it if the caller goes away while the probe is in flight.
                    let caller_gone = match probe.reply.future_mut() {
                        Some(tx) => {
                            let cancel = std::task::Waker::from(Arc::new(CancelOnDrop {
                                inbox: Arc::clone(inbox),
                                id,
                            }));
                            tx.poll_closed(&mut Context::from_waker(&cancel)).is_ready()
                        }
                        None => false,
                    };
                    // The timeout runs from the SYN: a start_by armed while it waited
                    // gives way to SYN + timeout (its heap entry goes stale).
                    if let Some(timeout) = from_syn {
                        let at = deadline_after(start, timeout);
                        probe.deadline = Some(at);
                        self.deadlines.arm(id.index, at);
                    }
                    if raw {
                        // The first retransmission, if it comes before the timeout.
                        let first = retransmit_at(start, 1);
                        if let Some(at) = first.filter(|at| probe.deadline.is_none_or(|d| *at < d))
                        {
                            self.deadlines.arm(id.index, at);
                        }
                    }
                    self.in_flight += 1;
                    let dest = self.destinations.entry(destination(addr)).or_default();
                    dest.in_flight += 1;
                    if dest.in_flight < max_per_destination && !dest.parked.is_empty() {
                        // Probes parked behind a stall that just ended: the next one may
                        // find a port too (and, if not, stalls the destination again).
                        self.pass_turn(addr, Gave::Nothing);
                    }
                    if caller_gone {
                        // Dropped since it was looked at above: close it at once.
                        self.take(id);
                    }
                }
                Err(err)
                    if sys::classify(&err) == Failure::DestinationExhausted
                        && self
                            .destinations
                            .get(&destination(addr))
                            .is_some_and(|dest| dest.in_flight > 0) =>
                {
                    // Our own probes to this destination hold its local ports and will
                    // give them back within their timeouts: this destination waits for
                    // that, and the others go on (their ports are their own).
                    self.stall(id, addr, err);
                }
                Err(err) if sys::classify(&err) == Failure::Exhausted && self.in_flight > 0 => {
                    // Our own probes hold descriptors and will give them back within
                    // their timeouts: wait for that rather than failing this probe and
                    // everything queued behind it.
                    self.queue.push_front(id);
                    self.stalled_on = err.raw_os_error();
                    self.live(id).exhausted = Some(err);
                    self.retry_at = Some(Instant::now() + EXHAUSTED_RETRY);
                    break;
                }
                Err(err) => {
                    let finished = self.take(id);
                    self.deliver(finished, Err(ProbeError::from_connect(err)));
                }
            }
        }
    }

    /// Takes everything submitted since the last turn. False when the engine must stop.
    fn take_inbox(&mut self) -> bool {
        let mut submissions = mem::take(&mut self.submissions);
        let open = self.inbox.take(&mut submissions);
        for submission in submissions.drain(..) {
            self.accept(submission);
        }
        self.submissions = submissions;
        open
    }

    fn accept(&mut self, submission: Submission) {
        match submission {
            Submission::Probe(job) => self.enqueue(job, Place::Back),
            Submission::Name { host, probe } => self.look_up(host, probe),
            Submission::Resolved { id, result } => {
                let Some(probe) = self.probe_mut(id) else {
                    return; // it timed out already
                };
                if !matches!(probe.phase, Phase::Resolving) {
                    return;
                }
                let Finished { probe, .. } = self.take(id);
                if let Reply::Name(name) = probe.reply {
                    // The first address joins the queue as a probe pushed now would.
                    let next = name.resolved(result, Instant::now());
                    self.follow(next, Place::Back);
                }
            }
            Submission::Cancelled { id } => {
                if self.probe_mut(id).is_some() {
                    self.take(id);
                }
            }
            Submission::StreamDropped => {
                for index in 0..self.entries.len() as u32 {
                    let entry = &self.entries[index as usize];
                    let abandoned = entry.probe.as_ref().is_some_and(|probe| {
                        matches!(probe.phase, Phase::InFlight { .. } | Phase::Resolving)
                            && probe.reply.is_closed()
                    });
                    if abandoned {
                        let generation = entry.generation;
                        self.take(ProbeId { index, generation });
                    }
                }
            }
        }
    }

    /// A new probe joins the queue, at its back, or at its front for the next address of
    /// a name, which carries on a probe that has had its turn.
    fn enqueue(&mut self, job: Job, place: Place) {
        let Job {
            addr,
            timing,
            reply,
        } = job;
        let (deadline, from_syn) = timing.split();
        let id = self.insert(Probe {
            addr,
            from_syn,
            deadline,
            reply,
            phase: Phase::Waiting,
            exhausted: None,
            hold: Hold::Free,
        });
        match place {
            Place::Back => self.queue.push_back(id),
            Place::Front => self.queue.push_front(id),
        }
    }

    /// Closes the inbox and fails everything still held: no caller is left hanging.
    fn stop(&mut self, why: &'static str) {
        self.resolvers.close();
        for submission in self.inbox.close(why) {
            match submission {
                Submission::Name { probe, .. } => {
                    let failed = Attempt {
                        addr: probe.unresolved(),
                        sent: None,
                        result: Err(ProbeError::engine_stopped(why)),
                    };
                    self.send(Reply::Name(probe), failed, Duration::ZERO);
                }
                Submission::Resolved { .. }
                | Submission::Cancelled { .. }
                | Submission::StreamDropped => {}
                // Put in the table, and failed with everything else below.
                probe @ Submission::Probe(_) => self.accept(probe),
            }
        }
        for index in 0..self.entries.len() as u32 {
            let entry = &self.entries[index as usize];
            if entry.probe.is_some() {
                let generation = entry.generation;
                let finished = self.take(ProbeId { index, generation });
                self.deliver(finished, Err(ProbeError::engine_stopped(why)));
            }
        }
        self.flush_wakes(true);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Also reached when the engine thread unwinds from a panic: callers then get an
        // error instead of waiting forever.
        self.stop("the probe engine stopped");
    }
}
