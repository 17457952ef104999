//! The engine: one thread that owns every probe socket of a [`Prober`](super::Prober)
//! family, from `socket()` to `close()`. The module docs of [`super`] explain why.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::mem;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::task::{Context, Wake};
use std::thread;
use std::time::{Duration, Instant};

use socket2::Socket;
use tokio::sync::oneshot;

use super::many::ManyShared;
use super::{FeedResult, Mode, ProbeError};
use crate::sync::{Arc, Condvar, Mutex};
use crate::sys::probe::{self as sys, Failure, Poller, Waker, WAKE_TOKEN};
use crate::util::deadline_after;

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

/// At most this many resolver threads per prober: a burst of names waits its turn
/// rather than start a thread each.
const RESOLVERS: usize = 16;

/// A resolver thread with no work for this long exits.
const RESOLVER_IDLE: Duration = Duration::from_secs(5);

pub(crate) type ProbeResult = Result<Duration, ProbeError>;
pub(crate) type ResolveResult = Result<Vec<SocketAddr>, ProbeError>;

/// Where a probe's result goes.
pub(crate) enum Reply {
    /// One `probe`/`probe_addr` future.
    One(oneshot::Sender<ProbeResult>),
    /// A `probe_many` stream or a [`ProbeFeed`](super::ProbeFeed): results are pushed in
    /// batches, one wake per engine turn. The stream ignores the tag.
    Many { shared: Arc<ManyShared>, tag: u64 },
    /// A name resolution for `probe`.
    Resolve(oneshot::Sender<ResolveResult>),
}

impl Reply {
    /// Nobody waits for the answer any more: the future or stream was dropped.
    fn is_closed(&self) -> bool {
        match self {
            Reply::One(tx) => tx.is_closed(),
            Reply::Many { shared, .. } => shared.is_closed(),
            Reply::Resolve(tx) => tx.is_closed(),
        }
    }
}

/// A probe to start.
pub(crate) struct Job {
    pub(crate) addr: SocketAddr,
    pub(crate) timing: Timing,
    pub(crate) reply: Reply,
}

/// When a probe gives up.
#[derive(Clone, Copy)]
pub(crate) enum Timing {
    /// `probe` and `probe_addr`: one deadline for the whole call, the wait for a place
    /// under the limits included.
    Until(Instant),
    /// `probe_many` and the feed: `timeout` runs from the moment the SYN leaves, so a
    /// probe queued behind the limits is not timed out before it is tried. One not sent
    /// by `start_by` is not sent at all (`None`: it waits as long as it takes).
    FromSyn {
        timeout: Duration,
        start_by: Option<Instant>,
    },
}

impl Timing {
    /// The deadline of a task that has not been sent yet, if it has one, and the timeout
    /// that runs from its SYN, if it has one.
    fn split(self) -> (Option<Instant>, Option<Duration>) {
        match self {
            Timing::Until(at) => (Some(at), None),
            Timing::FromSyn { timeout, start_by } => (start_by, Some(timeout)),
        }
    }
}

/// What callers hand the engine.
pub(crate) enum Submission {
    Probe(Job),
    Resolve {
        host: String,
        port: u16,
        deadline: Instant,
        reply: oneshot::Sender<ResolveResult>,
    },
    /// From a resolver thread: the answer for the resolution in `slot`.
    Resolved {
        slot: u32,
        generation: u32,
        result: io::Result<Vec<SocketAddr>>,
    },
    /// The future waiting for the probe in `slot` was dropped (sent by [`CancelOnDrop`]):
    /// close its socket now rather than at its deadline.
    Cancelled {
        slot: u32,
        generation: u32,
    },
    /// A `probe_many` stream was dropped: close the sockets of its probes in flight.
    StreamDropped,
}

/// Registered with a probe future's channel while its probe is in flight: woken when
/// the future is dropped, it tells the engine, so that an abandoned probe gives back its
/// descriptor and its places under the in-flight limits at once, not at its timeout
/// (which may be long: `tokio::time::timeout(d, probe_addr(a, long))`).
struct CancelOnDrop {
    shared: Arc<Shared>,
    slot: u32,
    generation: u32,
}

impl Wake for CancelOnDrop {
    fn wake(self: Arc<Self>) {
        let _ = self.shared.submit_one(Submission::Cancelled {
            slot: self.slot,
            generation: self.generation,
        });
    }
}

/// A name to resolve for the task in `slot`.
struct ResolveJob {
    host: String,
    port: u16,
    deadline: Instant,
    slot: u32,
    generation: u32,
}

/// The resolver threads: `getaddrinfo` blocks and cannot be cancelled, so it runs off
/// the engine thread, on at most [`RESOLVERS`] threads, started on demand and gone after
/// [`RESOLVER_IDLE`] without work. A job whose probe timed out while it waited is
/// skipped. A resolver that hangs holds only its own thread; with all of them hung,
/// later names wait in the queue and time out at their deadlines, like the probes.
#[derive(Default)]
struct Resolvers {
    state: Mutex<ResolverState>,
    work: Condvar,
}

#[derive(Default)]
struct ResolverState {
    jobs: VecDeque<ResolveJob>,
    threads: usize,
    idle: usize,
    /// The engine stopped: idle threads exit now.
    closed: bool,
}

impl Resolvers {
    /// Queues `job`, waking an idle thread, and starting one more when the jobs waiting
    /// outnumber the idle threads (an idle thread counts as idle until it has woken, so a
    /// burst must not count it once per job) and there is room; gives the job back if no
    /// thread can run it.
    fn submit(self: &Arc<Self>, job: ResolveJob, shared: &Arc<Shared>) -> Result<(), io::Error> {
        let mut state = self.state.lock();
        state.jobs.push_back(job);
        let wake = state.idle > 0;
        let start = state.jobs.len() > state.idle && state.threads < RESOLVERS;
        if start {
            state.threads += 1;
        }
        drop(state);
        if wake {
            self.work.notify_one();
        }
        if !start {
            return Ok(()); // an idle or busy thread takes it next
        }
        let (resolvers, shared) = (Arc::clone(self), Arc::clone(shared));
        let spawned = thread::Builder::new()
            .name("connhealth-resolve".into())
            .spawn(move || resolvers.serve(&shared));
        if let Err(err) = spawned {
            let mut state = self.state.lock();
            state.threads -= 1;
            if state.threads == 0 {
                // No thread will ever take it: it fails now. (With threads running, it
                // waits for one of them.)
                state.jobs.pop_back();
                return Err(err);
            }
        }
        Ok(())
    }

    /// A resolver thread: takes jobs until none comes for [`RESOLVER_IDLE`].
    fn serve(&self, shared: &Shared) {
        while let Some(job) = self.next_job() {
            if Instant::now() >= job.deadline {
                continue; // its probe timed out while it waited
            }
            let result = (job.host.as_str(), job.port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            let _ = shared.submit_one(Submission::Resolved {
                slot: job.slot,
                generation: job.generation,
                result,
            });
        }
    }

    fn next_job(&self) -> Option<ResolveJob> {
        let mut state = self.state.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                state.threads -= 1;
                return None;
            }
            state.idle += 1;
            let (next, timed_out) = self.work.wait_timeout(state, RESOLVER_IDLE);
            state = next;
            state.idle -= 1;
            if timed_out && state.jobs.is_empty() {
                state.threads -= 1;
                return None;
            }
        }
    }

    /// The engine stopped: no more jobs, and idle threads exit.
    fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.jobs.clear();
        drop(state);
        self.work.notify_all();
    }
}

struct Inbox {
    items: Vec<Submission>,
    /// Cleared when the last handle drops (shutdown) or the engine stops.
    open: bool,
    why_closed: &'static str,
}

/// The part of the engine that other threads touch: the inbox and the waker.
pub(crate) struct Shared {
    inbox: Mutex<Inbox>,
    waker: Waker,
}

impl Shared {
    /// Moves every submission in `items` to the engine, in one lock. The engine is woken
    /// only when the inbox goes from empty to non-empty: while it is non-empty, the
    /// engine has a wake pending and will drain everything at once.
    ///
    /// On error the submissions stay in `items`.
    pub(crate) fn submit(&self, items: &mut Vec<Submission>) -> Result<(), ProbeError> {
        let mut inbox = self.inbox.lock();
        if !inbox.open {
            return Err(ProbeError::engine_stopped(inbox.why_closed));
        }
        let was_empty = inbox.items.is_empty();
        inbox.items.append(items);
        drop(inbox);
        if was_empty {
            self.waker.wake();
        }
        Ok(())
    }

    pub(crate) fn submit_one(&self, item: Submission) -> Result<(), ProbeError> {
        let mut inbox = self.inbox.lock();
        if !inbox.open {
            return Err(ProbeError::engine_stopped(inbox.why_closed));
        }
        let was_empty = inbox.items.is_empty();
        inbox.items.push(item);
        drop(inbox);
        if was_empty {
            self.waker.wake();
        }
        Ok(())
    }

    fn close(&self, why: &'static str) -> Vec<Submission> {
        let mut inbox = self.inbox.lock();
        if inbox.open {
            inbox.open = false;
            inbox.why_closed = why;
        }
        mem::take(&mut inbox.items)
    }
}

/// The engine as the [`Prober`](super::Prober)s see it. Dropping it (with the last
/// `Prober` clone) stops the engine thread, which closes every socket it still holds,
/// and waits for it.
pub(crate) struct EngineHandle {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_per_destination: usize,
}

impl EngineHandle {
    /// Starts the engine thread. It is spawned from the calling thread and so inherits
    /// its network namespace: every probe socket is created there.
    pub(crate) fn start(config: Config) -> io::Result<EngineHandle> {
        let waker = Waker::new()?;
        let poller = Poller::new(&waker)?;
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox {
                items: Vec::new(),
                open: true,
                why_closed: "",
            }),
            waker,
        });
        let engine = Engine {
            shared: shared.clone(),
            resolvers: Arc::default(),
            poller,
            half_open: config.mode == Mode::HalfOpen,
            max_in_flight: config.max_in_flight.max(1),
            max_per_destination: config
                .max_in_flight_per_destination
                .clamp(1, u32::MAX as usize) as u32,
            slots: Vec::new(),
            free: Vec::new(),
            deadlines: BinaryHeap::new(),
            timed: 0,
            queue: VecDeque::new(),
            destinations: HashMap::new(),
            in_flight: 0,
            retry_at: None,
            stalled_on: None,
            more_to_start: false,
            tokens: Vec::with_capacity(1024),
            inbox: Vec::new(),
            to_wake: Vec::new(),
        };
        let thread = thread::Builder::new()
            .name("connhealth-probe".into())
            .spawn(move || engine.run())?;
        Ok(EngineHandle {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        // The last Prober is gone (a stream holds a clone; a probe future holds only its
        // channel). Stop, failing whatever still waits, and wait until every probe
        // socket is closed, so that a dropped Prober leaves no descriptor behind.
        drop(self.shared.close("the prober was dropped"));
        self.shared.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum Phase {
    /// Queued, parked behind its destination's limit, or stalled on exhaustion.
    Waiting,
    InFlight {
        socket: Socket,
        start: Instant,
    },
    Resolving,
}

struct Task {
    addr: SocketAddr,
    /// For [`Timing::FromSyn`], its timeout: at the SYN, the deadline is re-armed for the
    /// SYN's time plus this. (Its start_by is `deadline` while it waits: kept once, so
    /// that a task costs no more than before.)
    from_syn: Option<Duration>,
    /// The deadline armed in the heap, if any: [`Timing::Until`]'s, or a waiting
    /// [`Timing::FromSyn`] task's start_by, and once it is sent its SYN's time plus its
    /// timeout. A heap entry with another time is stale (the task was re-armed).
    deadline: Option<Instant>,
    reply: Reply,
    phase: Phase,
    /// The last local-exhaustion error this task hit; reported if its deadline passes
    /// before it could start.
    exhausted: Option<io::Error>,
    hold: Hold,
}

/// A waiting task's standing with its destination's in-flight limit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Not held back by it.
    Free,
    /// In the destination's `parked` list.
    Parked,
    /// Taken off that list for the place a finished probe gave back. If it leaves
    /// without starting (dropped, or timed out in the same turn), that place passes on
    /// to the next parked task: otherwise they would wait with the destination idle.
    Released,
}

/// A task taken out of its slot, to be delivered.
struct Finished {
    task: Task,
    /// When its SYN left; `None` if it never did.
    sent: Option<Instant>,
}

struct Slot {
    generation: u32,
    task: Option<Task>,
}

#[derive(Default)]
struct Destination {
    in_flight: u32,
    parked: VecDeque<(u32, u32)>,
}

struct Engine {
    shared: Arc<Shared>,
    resolvers: Arc<Resolvers>,
    poller: Poller,
    half_open: bool,
    max_in_flight: usize,
    max_per_destination: u32,
    /// Every task lives in a slot; epoll data and deadlines name it by
    /// `(index, generation)`, never by descriptor: a descriptor closed and reused for a
    /// new probe must not receive the old probe's event or deadline.
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Deadlines, lazily deleted: an entry whose slot moved to another generation is
    /// skipped, and the heap is compacted when stale entries outnumber live ones.
    deadlines: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// Live tasks with an entry in `deadlines`.
    timed: usize,
    /// Tasks waiting to start, in submission order.
    queue: VecDeque<(u32, u32)>,
    /// In-flight count per destination, and tasks parked behind its limit: many SYNs in
    /// flight to one listener overflow its SYN backlog and turn into drops or cookies.
    destinations: HashMap<SocketAddr, Destination>,
    in_flight: usize,
    /// Set while starting is stalled on local exhaustion: retry then, or sooner when one
    /// of our probes completes and gives its descriptor and port back.
    retry_at: Option<Instant>,
    /// The errno that stalled the engine (meaningful while `retry_at` is set).
    stalled_on: Option<i32>,
    /// The last turn started its quota of probes and left some queued.
    more_to_start: bool,
    tokens: Vec<u64>,
    inbox: Vec<Submission>,
    to_wake: Vec<Arc<ManyShared>>,
}

impl Engine {
    fn run(mut self) {
        loop {
            // Streams with a few results not worth a wake yet: look for more work
            // without sleeping, and wake them if there is none.
            // Probes left to start after a turn's quota: look again at once, too.
            let timeout = match self.to_wake.is_empty() && !self.more_to_start {
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
                    self.shared.waker.reset();
                } else {
                    self.ready(token, now);
                }
            }
            tokens.clear();
            self.tokens = tokens;
            if !self.drain_inbox() {
                self.stop("the prober was dropped");
                return;
            }
            self.expire(Instant::now());
            self.start_queued();
            self.flush_wakes(idle);
        }
    }

    fn next_timeout(&self, now: Instant) -> Option<Duration> {
        let deadline = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
        let next = match (deadline, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|at| at.saturating_duration_since(now))
    }

    fn token(index: u32, generation: u32) -> u64 {
        u64::from(index) | u64::from(generation) << 32
    }

    fn task_mut(&mut self, index: u32, generation: u32) -> Option<&mut Task> {
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        slot.task.as_mut()
    }

    fn insert(&mut self, task: Task) -> (u32, u32) {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    task: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        let timed = task.deadline;
        slot.task = Some(task);
        let generation = slot.generation;
        if let Some(at) = timed {
            self.push_deadline(at, index, generation, false);
        }
        (index, generation)
    }

    /// Pushes the heap entry for `at`, which the caller has just made the `deadline` of
    /// the task in `(index, generation)`. `rearmed`: the task had a deadline already, so
    /// it is counted in `timed` already and its old entry is now stale.
    fn push_deadline(&mut self, at: Instant, index: u32, generation: u32, rearmed: bool) {
        self.deadlines.push(Reverse((at, index, generation)));
        if !rearmed {
            self.timed += 1;
        }
        if self.deadlines.len() > 2 * self.timed + 1024 {
            // Live entries only: the slot's generation, and the task's current deadline
            // (a task re-armed at its SYN keeps a stale entry for its start_by).
            let slots = &self.slots;
            self.deadlines.retain(|Reverse((at, i, g))| {
                let slot = &slots[*i as usize];
                slot.generation == *g
                    && slot
                        .task
                        .as_ref()
                        .is_some_and(|task| task.deadline == Some(*at))
            });
        }
    }

    /// Removes a task from its slot, closing its socket (if any) at once, and moves the
    /// slot to its next generation so that stale events and deadlines miss it.
    fn take(&mut self, index: u32) -> Finished {
        let slot = &mut self.slots[index as usize];
        let mut task = slot.task.take().expect("take() is called on a live slot");
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        if task.deadline.is_some() {
            self.timed -= 1;
        }
        let mut sent = None;
        match mem::replace(&mut task.phase, Phase::Waiting) {
            Phase::InFlight { socket, start } => {
                sent = Some(start);
                self.poller.remove(socket.as_fd());
                // The zero linger turns this close into an RST, now.
                drop(socket);
                self.in_flight -= 1;
                if let Some(dest) = self.destinations.get_mut(&task.addr) {
                    dest.in_flight -= 1;
                }
                self.pass_turn(task.addr);
                // A descriptor and a local port just came back.
                self.retry_at = None;
            }
            _ if task.hold == Hold::Released => self.pass_turn(task.addr),
            _ => {}
        }
        Finished { task, sent }
    }

    /// A place under `addr`'s limit is free: the next task parked behind it goes to the
    /// front of the queue.
    fn pass_turn(&mut self, addr: SocketAddr) {
        let Some(dest) = self.destinations.get_mut(&addr) else {
            return;
        };
        while let Some((index, generation)) = dest.parked.pop_front() {
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation {
                continue;
            }
            if let Some(task) = slot.task.as_mut() {
                task.hold = Hold::Released;
                self.queue.push_front((index, generation));
                break;
            }
        }
        if dest.in_flight == 0 && dest.parked.is_empty() {
            self.destinations.remove(&addr);
        }
    }

    /// A probe socket became writable or failed: its connect is over.
    fn ready(&mut self, token: u64, now: Instant) {
        let (index, generation) = (token as u32, (token >> 32) as u32);
        let Some(task) = self.task_mut(index, generation) else {
            return;
        };
        let Phase::InFlight { socket, start } = &task.phase else {
            return;
        };
        let result = match socket.take_error() {
            Ok(None) => Ok(now.saturating_duration_since(*start)),
            Ok(Some(err)) | Err(err) => Err(ProbeError::from_connect(err)),
        };
        let task = self.take(index);
        self.deliver(task, result);
    }

    fn expire(&mut self, now: Instant) {
        // Read once: a probe that expires below gives its port back and clears the stall,
        // but the tasks behind it still waited on it.
        let stalled_on = self.retry_at.and(self.stalled_on);
        let limits_full = self.in_flight >= self.max_in_flight;
        while let Some(&Reverse((at, index, generation))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let max_per_destination = self.max_per_destination;
            let max_in_flight = self.max_in_flight;
            let Some(task) = self.task_mut(index, generation) else {
                continue;
            };
            if task.deadline != Some(at) {
                // Stale: the task was re-armed at its SYN, its start_by giving way to
                // SYN + timeout, which has an entry of its own.
                continue;
            }
            let from_syn = task.from_syn.is_some();
            // A probe never sent says nothing of its target: the error is the prober's.
            let error = match (&task.phase, task.exhausted.take(), stalled_on) {
                (Phase::Resolving, _, _) => ProbeError::Resolve(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "name resolution did not finish before the probe's timeout",
                )),
                (Phase::InFlight { .. }, _, _) => ProbeError::TimedOut,
                (Phase::Waiting, Some(err), _) => ProbeError::Exhausted(err),
                (Phase::Waiting, None, Some(code)) => {
                    ProbeError::Exhausted(io::Error::from_raw_os_error(code))
                }
                (Phase::Waiting, None, None) => {
                    ProbeError::not_sent(if task.hold == Hold::Parked {
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
                    })
                }
            };
            let task = self.take(index);
            self.deliver(task, Err(error));
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
            let Some((index, generation)) = self.queue.pop_front() else {
                break;
            };
            let max_per_destination = self.max_per_destination;
            let Some(task) = self.task_mut(index, generation) else {
                continue;
            };
            if task.reply.is_closed() {
                // Its future or stream was dropped: do not send a SYN nobody waits for.
                self.take(index);
                continue;
            }
            // A waiting task's deadline is, with a timeout from its SYN, its start_by.
            let (addr, from_syn, start_by) = (task.addr, task.from_syn, task.deadline);
            if let Some(dest) = self.destinations.get_mut(&addr) {
                if dest.in_flight >= max_per_destination {
                    dest.parked.push_back((index, generation));
                    self.slots[index as usize].task.as_mut().expect("live").hold = Hold::Parked;
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
            let started = sys::start_connect(&addr, self.half_open).and_then(|socket| {
                self.poller
                    .add(socket.as_fd(), Self::token(index, generation))
                    .map(|()| socket)
            });
            match started {
                Ok(socket) => {
                    let task = self.slots[index as usize].task.as_mut().expect("live");
                    task.phase = Phase::InFlight { socket, start };
                    task.hold = Hold::Free;
                    // Hear of it if the caller goes away while the probe is in flight.
                    let caller_gone = match &mut task.reply {
                        Reply::One(tx) => {
                            let cancel = std::task::Waker::from(Arc::new(CancelOnDrop {
                                shared: Arc::clone(&self.shared),
                                slot: index,
                                generation,
                            }));
                            tx.poll_closed(&mut Context::from_waker(&cancel)).is_ready()
                        }
                        Reply::Many { .. } | Reply::Resolve(_) => false,
                    };
                    // The timeout runs from the SYN: a start_by armed while it waited
                    // gives way to SYN + timeout (its heap entry goes stale).
                    if let Some(timeout) = from_syn {
                        let at = deadline_after(start, timeout);
                        let rearmed = task.deadline.replace(at).is_some();
                        self.push_deadline(at, index, generation, rearmed);
                    }
                    self.in_flight += 1;
                    self.destinations.entry(addr).or_default().in_flight += 1;
                    if caller_gone {
                        // Dropped since it was looked at above: close it at once.
                        self.take(index);
                    }
                }
                Err(err) if sys::classify(&err) == Failure::Exhausted && self.in_flight > 0 => {
                    // Our own probes hold descriptors and ports and will give them back
                    // within their timeouts: wait for that rather than failing this
                    // probe and everything queued behind it.
                    let task = self.slots[index as usize].task.as_mut().expect("live");
                    self.queue.push_front((index, generation));
                    self.stalled_on = err.raw_os_error();
                    task.exhausted = Some(err);
                    self.retry_at = Some(Instant::now() + EXHAUSTED_RETRY);
                    break;
                }
                Err(err) => {
                    let task = self.take(index);
                    self.deliver(task, Err(ProbeError::from_connect(err)));
                }
            }
        }
    }

    /// Takes everything submitted since the last turn. False when the engine must stop.
    fn drain_inbox(&mut self) -> bool {
        let open = {
            let mut inbox = self.shared.inbox.lock();
            mem::swap(&mut inbox.items, &mut self.inbox);
            inbox.open
        };
        let mut items = mem::take(&mut self.inbox);
        for item in items.drain(..) {
            self.accept(item);
        }
        self.inbox = items;
        open
    }

    fn accept(&mut self, item: Submission) {
        match item {
            Submission::Probe(job) => {
                let (deadline, from_syn) = job.timing.split();
                let task = Task {
                    addr: job.addr,
                    from_syn,
                    deadline,
                    reply: job.reply,
                    phase: Phase::Waiting,
                    exhausted: None,
                    hold: Hold::Free,
                };
                let key = self.insert(task);
                self.queue.push_back(key);
            }
            Submission::Resolve {
                host,
                port,
                deadline,
                reply,
            } => {
                let task = Task {
                    addr: SocketAddr::from(([0, 0, 0, 0], port)),
                    from_syn: None,
                    deadline: Some(deadline),
                    reply: Reply::Resolve(reply),
                    phase: Phase::Resolving,
                    exhausted: None,
                    hold: Hold::Free,
                };
                let (slot, generation) = self.insert(task);
                // Off this thread; the deadline heap covers the slot, so the probe stops
                // waiting at its deadline whatever the resolver does.
                let job = ResolveJob {
                    host,
                    port,
                    deadline,
                    slot,
                    generation,
                };
                if let Err(err) = self.resolvers.submit(job, &self.shared) {
                    let task = self.take(slot);
                    self.deliver(task, Err(ProbeError::Resolve(err)));
                }
            }
            Submission::Resolved {
                slot,
                generation,
                result,
            } => {
                let Some(task) = self.task_mut(slot, generation) else {
                    return; // it timed out already
                };
                if !matches!(task.phase, Phase::Resolving) {
                    return;
                }
                let Reply::Resolve(reply) = self.take(slot).task.reply else {
                    return;
                };
                let result = match result {
                    Ok(addrs) if addrs.is_empty() => Err(ProbeError::Resolve(io::Error::new(
                        io::ErrorKind::NotFound,
                        "the name resolved to no address",
                    ))),
                    Ok(addrs) => Ok(addrs),
                    Err(err) => Err(ProbeError::Resolve(err)),
                };
                let _ = reply.send(result);
            }
            Submission::Cancelled { slot, generation } => {
                if self.task_mut(slot, generation).is_some() {
                    self.take(slot);
                }
            }
            Submission::StreamDropped => {
                for index in 0..self.slots.len() as u32 {
                    let abandoned = self.slots[index as usize]
                        .task
                        .as_ref()
                        .is_some_and(|task| {
                            matches!(task.phase, Phase::InFlight { .. }) && task.reply.is_closed()
                        });
                    if abandoned {
                        self.take(index);
                    }
                }
            }
        }
    }

    fn deliver(&mut self, finished: Finished, result: ProbeResult) {
        let Finished { task, sent } = finished;
        match task.reply {
            Reply::One(tx) => {
                let _ = tx.send(result);
            }
            Reply::Many { shared, tag } => {
                let result = FeedResult {
                    tag,
                    addr: task.addr,
                    sent,
                    result,
                };
                if shared.push(result) {
                    self.to_wake.push(shared);
                }
            }
            Reply::Resolve(tx) => {
                let _ = tx.send(result.map(|_| vec![task.addr]));
            }
        }
    }

    /// Wakes the streams that have results: at most once per turn each, after all of
    /// their results of the turn are in; while the engine is busy, only those with a
    /// batch of results waiting. When the engine is about to go idle, all of them.
    fn flush_wakes(&mut self, idle: bool) {
        if self.to_wake.is_empty() {
            return;
        }
        let now = Instant::now();
        self.to_wake
            .retain(|shared| !shared.wake(if idle { 1 } else { shared.batch() }, now));
    }

    /// Closes the inbox and fails everything still held: no caller is left hanging.
    fn stop(&mut self, why: &'static str) {
        self.resolvers.close();
        for item in self.shared.close(why) {
            match item {
                Submission::Resolve { reply, .. } => {
                    let _ = reply.send(Err(ProbeError::engine_stopped(why)));
                }
                Submission::Resolved { .. }
                | Submission::Cancelled { .. }
                | Submission::StreamDropped => {}
                // Queued in a slot, and failed with everything else below.
                probe @ Submission::Probe(_) => self.accept(probe),
            }
        }
        for index in 0..self.slots.len() as u32 {
            if self.slots[index as usize].task.is_some() {
                let task = self.take(index);
                self.deliver(task, Err(ProbeError::engine_stopped(why)));
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
