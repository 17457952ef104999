//! The synchronisation primitives the crate's concurrent code is written against, in one
//! place, as `tokio/src/loom/` does it.
//!
//! Every critical section in connhealth is a push, a pop, a swap or a flag, and no user
//! code runs under a lock. A holder that panicked therefore leaves the data whole, so the
//! locks here recover from poisoning rather than hand every caller a `Result` it could
//! only unwrap.

use std::time::Duration;

pub(crate) use std::sync::{atomic, Arc, MutexGuard, Weak};

/// A mutex whose guard is returned directly: poisoning is recovered, for the reason the
/// module doc gives.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(std::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lock if no other thread holds it: for fast paths that have somewhere else to go
    /// rather than wait.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The value, through a unique reference: no locking.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A condition variable over [`Mutex`], recovering poisoning as it does.
#[derive(Debug, Default)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    /// Waits for a notification or `timeout`; the flag says whether the time ran out.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        let (guard, waited) = self
            .0
            .wait_timeout(guard, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (guard, waited.timed_out())
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
