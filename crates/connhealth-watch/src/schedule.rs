//! The schedule. (Being written.)

use std::io;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::daemon::{Fleet, Shared};

/// What the daemon tells the scheduler.
#[derive(Debug)]
pub enum Command {
    /// A reload built a new fleet: watch it from now on.
    Fleet(Arc<Fleet>),
    /// Shut down.
    Stop,
}

/// The scheduler's thread.
#[derive(Debug)]
pub struct SchedulerThread {
    thread: std::thread::JoinHandle<()>,
}

impl SchedulerThread {
    /// Waits for the scheduler to stop.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Starts the scheduler on a thread of its own.
pub fn spawn(
    shared: Arc<Shared>,
    fleet: Arc<Fleet>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> io::Result<SchedulerThread> {
    let thread = std::thread::Builder::new()
        .name("connhealth-checks".into())
        .spawn(move || {
            let _ = (shared, fleet, commands);
        })?;
    Ok(SchedulerThread { thread })
}
