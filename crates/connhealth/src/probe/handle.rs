//! [`EngineHandle`]: the engine as the [`Prober`](super::Prober)s see it, which starts
//! the engine thread and, dropped with the last prober, stops and joins it.

use std::io;
use std::thread;

use super::engine::{Config, Engine};
use super::inbox::Inbox;
use crate::sync::Arc;
use crate::sys::probe::{Poller, Waker};

/// Dropping it (with the last `Prober` clone) stops the engine thread, which closes every
/// socket it still holds, and waits for it.
pub(crate) struct EngineHandle {
    inbox: Arc<Inbox>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Starts the engine thread. It is spawned from the calling thread and so inherits
    /// its network namespace: every probe socket is created there.
    pub(crate) fn start(config: Config) -> io::Result<EngineHandle> {
        let waker = Waker::new()?;
        let poller = Poller::new(waker.readable())?;
        let inbox = Arc::new(Inbox::new(waker));
        let engine = Engine::new(config, Arc::clone(&inbox), poller);
        let thread = thread::Builder::new()
            .name("connhealth-probe".into())
            .spawn(move || engine.run())?;
        Ok(EngineHandle {
            inbox,
            thread: Some(thread),
        })
    }

    /// Where callers hand the engine their work.
    pub(crate) fn inbox(&self) -> &Inbox {
        &self.inbox
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        // The last Prober is gone (a stream holds a clone; a probe future holds only its
        // channel). Stop, failing whatever still waits, and wait until every probe
        // socket is closed, so that a dropped Prober leaves no descriptor behind.
        drop(self.inbox.close("the prober was dropped"));
        self.inbox.waker().wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
