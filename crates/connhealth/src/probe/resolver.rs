//! The resolver threads behind host names, [`Prober::probe`](super::Prober::probe)'s
//! and [`ProbeFeed::push_target`](super::ProbeFeed::push_target)'s alike.
//!
//! `getaddrinfo` blocks and cannot be cancelled, so it runs off the engine thread, on at
//! most [`RESOLVERS`] threads, started on demand and gone after [`RESOLVER_IDLE`] without
//! work. A job whose probe timed out while it waited is skipped. A resolver that hangs
//! holds only its own thread; with all of them hung, later names wait in the queue and
//! time out at their deadlines, like the probes. The threads are spawned by the engine
//! thread, so they resolve in the prober's network namespace.

use std::collections::VecDeque;
use std::io;
use std::net::ToSocketAddrs;
use std::thread;
use std::time::{Duration, Instant};

use super::inbox::{Inbox, ProbeId, Submission};
use crate::sync::{Arc, Condvar, Mutex};

/// At most this many resolver threads per prober: a burst of names waits its turn
/// rather than start a thread each.
const RESOLVERS: usize = 16;

/// A resolver thread with no work for this long exits.
const RESOLVER_IDLE: Duration = Duration::from_secs(5);

/// A name to resolve for the resolution `id` in the engine's table.
pub(crate) struct ResolveJob {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) deadline: Instant,
    pub(crate) id: ProbeId,
}

/// The resolver threads and their queue of jobs.
#[derive(Default)]
pub(crate) struct Resolvers {
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
    /// thread can run it. Answers go to `inbox`.
    pub(crate) fn submit(
        self: &Arc<Self>,
        job: ResolveJob,
        inbox: &Arc<Inbox>,
    ) -> Result<(), io::Error> {
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
        let (resolvers, inbox) = (Arc::clone(self), Arc::clone(inbox));
        let spawned = thread::Builder::new()
            .name("connhealth-resolve".into())
            .spawn(move || resolvers.serve(&inbox));
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
    fn serve(&self, inbox: &Inbox) {
        while let Some(job) = self.next_job() {
            if Instant::now() >= job.deadline {
                continue; // its probe timed out while it waited
            }
            let result = (job.host.as_str(), job.port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            let _ = inbox.submit_one(Submission::Resolved { id: job.id, result });
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
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.jobs.clear();
        drop(state);
        self.work.notify_all();
    }
}
