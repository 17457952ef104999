//! The synchronisation primitives the crate's concurrent code is written against, in one
//! place, as `tokio/src/loom/` does it: std's in production, loom's under
//! `--cfg connhealth_loom`, so that the pool's protocols are model-checked on the code
//! that runs (`scripts/loom`). Code that shares state between threads takes its locks
//! and atomics from here, never from `std::sync` directly.
//!
//! The cfg is the crate's own, not tokio's `loom`: under `--cfg loom` tokio compiles
//! without `tokio::net`, which the crate and its test kit need.
//!
//! Every critical section in connhealth is a push, a pop, a swap or a flag, and no user
//! code runs under a lock. A holder that panicked therefore leaves the data whole, so the
//! locks here recover from poisoning rather than hand every caller a `Result` it could
//! only unwrap.
//!
//! `Arc`, `Weak` and wakers are std's in both builds. loom's `Arc` cannot be a method
//! receiver (`self: &Arc<Self>`), has no `Weak`, and cannot make a `Waker` (std's `Wake`
//! takes std's `Arc`); what the models explore is the state behind the locks and atomics
//! here, and an `Arc`'s count only decides when a pool is dropped, which no model races.
//! The pool keeps its wakers under this `Mutex`; the models wake through a waker that
//! counts its wakes in a loom atomic.

use std::sync::{PoisonError, TryLockError};
use std::time::Duration;

#[cfg(connhealth_loom)]
use loom::sync as imp;
#[cfg(not(connhealth_loom))]
use std::sync as imp;

pub(crate) use self::imp::{atomic, MutexGuard};
pub(crate) use std::sync::{Arc, Weak};

/// A mutex whose guard is returned directly: poisoning is recovered, for the reason the
/// module doc gives.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(imp::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(imp::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock if no other thread holds it: for fast paths that have somewhere else to go
    /// rather than wait.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The value, through a unique reference: no locking.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A condition variable over [`Mutex`], recovering poisoning as it does.
#[derive(Debug, Default)]
pub(crate) struct Condvar(imp::Condvar);

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
            .unwrap_or_else(PoisonError::into_inner);
        (guard, waited.timed_out())
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
