//! [`EngineHandle`]: the engine as the [`Prober`](super::Prober)s see it, which starts
//! the engine thread and, dropped with the last prober, stops and joins it.

use std::io;
use std::thread;

use std::sync::atomic::{AtomicBool, Ordering};

use super::engine::{Config, Engine};
use super::inbox::Inbox;
use super::raw::Raw;
use super::{Mode, ProbeEngine};
use crate::sync::Arc;
use crate::sys::probe::{Poller, Waker};

/// Dropping it (with the last `Prober` clone) stops the engine thread, which closes every
/// socket it still holds, and waits for it.
pub(crate) struct EngineHandle {
    inbox: Arc<Inbox>,
    kind: ProbeEngine,
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
    ///
    /// The raw wire's sockets are opened here too, for [`Mode::Raw`] (whose error this
    /// returns) and for [`Mode::HalfOpen`] unless the builder said no (which falls back
    /// to a socket per probe, and says why once per process).
    pub(crate) fn start(config: Config) -> io::Result<EngineHandle> {
        let waker = Waker::new()?;
        let mut poller = Poller::new(waker.readable())?;
        let raw = match (config.mode, config.raw) {
            (Mode::Raw, _) => Some(Raw::open(config.raw_source_ports.clone(), &mut poller)?),
            (Mode::HalfOpen, true) => {
                match Raw::open(config.raw_source_ports.clone(), &mut poller) {
                    Ok(raw) => Some(raw),
                    Err(err) => {
                        fall_back_once(&err);
                        None
                    }
                }
            }
            _ => None,
        };
        let kind = match raw {
            Some(_) => ProbeEngine::Raw,
            None => ProbeEngine::Sockets,
        };
        let inbox = Arc::new(Inbox::new(waker));
        let engine = Engine::new(config, Arc::clone(&inbox), poller, raw);
        let thread = thread::Builder::new()
            .name("connhealth-probe".into())
            .spawn(move || engine.run())?;
        Ok(EngineHandle {
            inbox,
            kind,
            thread: Some(thread),
        })
    }

    /// Which engine runs.
    pub(crate) fn kind(&self) -> ProbeEngine {
        self.kind
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

/// Says once per process why half-open probes run a socket each: a daemon that builds
/// several probers, or rebuilds one at each reload, should not repeat it.
fn fall_back_once(err: &io::Error) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if SAID.swap(true, Ordering::Relaxed) {
        return;
    }
    let message =
        "connhealth: half-open probes use a socket each (the raw engine is not available)";
    if err.kind() == io::ErrorKind::PermissionDenied {
        // The usual case: a process without CAP_NET_RAW.
        tracing::info!(%err, "{message}");
    } else {
        // Something the caller asked for is wrong (a bad raw_source_ports, say).
        tracing::warn!(%err, "{message}");
    }
}
