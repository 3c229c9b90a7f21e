//! The locks the write path is built on: `parking_lot`'s normally, `loom`'s
//! under `cfg(loom)`, so that the model checker explores every interleaving
//! of the real code (`scripts/loom.sh`; the models sit beside the code they
//! check, in `loom.rs` files). The API is `parking_lot`'s: `lock()` returns
//! the guard, `Condvar::wait_until` takes the guard by `&mut`.
//!
//! Under loom a timed wait never times out: it returns only when notified.
//! A model that deadlocks there has found a waiter that only a timeout would
//! have woken, which is a lost wake-up.

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicBool;

#[cfg(loom)]
pub(crate) use self::model::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicBool;

/// The calling thread's id (loom's own threads have their own ids).
#[cfg(not(loom))]
pub(crate) fn thread_id() -> std::thread::ThreadId {
    std::thread::current().id()
}

/// The calling thread's id (loom's own threads have their own ids).
#[cfg(loom)]
pub(crate) fn thread_id() -> loom::thread::ThreadId {
    loom::thread::current().id()
}

/// The id [`thread_id`] returns.
#[cfg(not(loom))]
pub(crate) type ThreadId = std::thread::ThreadId;

/// The id [`thread_id`] returns.
#[cfg(loom)]
pub(crate) type ThreadId = loom::thread::ThreadId;

#[cfg(loom)]
mod model {
    use std::fmt;
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    /// `parking_lot::Mutex`'s API over loom's.
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard of [`Mutex`]; `None` only inside a condvar wait.
    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(value))
        }

        #[track_caller]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            // Because a model that panics while holding a lock has failed anyway.
            MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok().map(|g| MutexGuard(Some(g)))
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Mutex<T> {
            Mutex::new(T::default())
        }
    }

    impl<T> fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Mutex { .. }")
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // Because the guard is only empty inside `Condvar::wait_until`.
            self.0
                .as_deref()
                .expect("a guard is only empty inside a wait")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            // Because the guard is only empty inside `Condvar::wait_until`.
            self.0
                .as_deref_mut()
                .expect("a guard is only empty inside a wait")
        }
    }

    /// `parking_lot::Condvar`'s API over loom's.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    /// Whether a wait timed out (never, under loom).
    #[derive(Debug)]
    pub(crate) struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        pub(crate) fn timed_out(&self) -> bool {
            self.0
        }
    }

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar(loom::sync::Condvar::new())
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }

        /// Waits for a notification; loom does not model time, so the
        /// deadline is ignored and the wait never times out.
        #[track_caller]
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            _deadline: Instant,
        ) -> WaitTimeoutResult {
            // Because the guard is only empty inside this function.
            let g = guard.0.take().expect("a guard is only empty inside a wait");
            guard.0 = Some(self.0.wait(g).unwrap_or_else(|e| e.into_inner()));
            WaitTimeoutResult(false)
        }
    }
}
