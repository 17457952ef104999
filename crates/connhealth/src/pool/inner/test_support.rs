//! What the step-by-step tests (`tests.rs`) and the loom models (`loom_models.rs`) both
//! drive the pool with: connections that are numbers, and a waker that counts.

use std::task::Wake;

use crate::pool::Manager;
use crate::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::Status;

/// Connections that are numbers, always open.
pub(super) struct Numbers;

impl Manager for Numbers {
    type Connection = u32;
    type Error = std::io::Error;
    async fn connect(&self) -> std::io::Result<u32> {
        Ok(7)
    }
    fn check(&self, _: &u32) -> Status {
        Status::Open
    }
}

/// A waker that counts its wakes, in `crate::sync`'s atomic, so that loom orders them.
#[derive(Default)]
pub(super) struct CountWakes(AtomicUsize);

impl CountWakes {
    pub(super) fn count(&self) -> usize {
        self.0.load(SeqCst)
    }
}

impl Wake for CountWakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}
