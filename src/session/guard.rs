//! Running user hooks so that a panic becomes a value, with its location.
//!
//! `catch_unwind` gives the panic's message but not where it happened, so
//! the first server installs a panic hook that, on threads currently inside a
//! wsportal hook, records the location (and keeps quiet when the caller asked
//! for quiet). Panics anywhere else go to the previous hook unchanged.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A caught panic.
#[derive(Debug, Clone)]
pub(crate) struct Panic {
    pub(crate) message: String,
    pub(crate) location: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Outside,
    Quiet,
    Loud,
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Outside) };
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

fn install() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let mode = MODE.with(Cell::get);
            if mode != Mode::Outside {
                let loc = info
                    .location()
                    .map_or_else(|| "an unknown place".to_owned(), ToString::to_string);
                LOCATION.with(|l| *l.borrow_mut() = Some(loc));
            }
            if mode != Mode::Quiet {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into `Err`. `loud` keeps the standard panic
/// message on stderr; otherwise the panic is silent and left to the caller.
pub(crate) fn run<R>(loud: bool, f: impl FnOnce() -> R) -> Result<R, Panic> {
    run_uncounted(loud, f).inspect_err(|_| crate::session::stats::hook_panicked())
}

/// Runs `f` as [`run`] does, counting a panic in `counters` (for hooks
/// that run on any thread, such as a publisher's: a filter).
pub(crate) fn run_for<R>(
    counters: &crate::session::stats::Counters,
    loud: bool,
    f: impl FnOnce() -> R,
) -> Result<R, Panic> {
    run_uncounted(loud, f).inspect_err(|_| counters.hook_panicked())
}

fn run_uncounted<R>(loud: bool, f: impl FnOnce() -> R) -> Result<R, Panic> {
    install();
    let outer = MODE.with(|m| m.replace(if loud { Mode::Loud } else { Mode::Quiet }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    MODE.with(|m| m.set(outer));
    result.map_err(|payload| {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        };
        let location = LOCATION
            .with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| "an unknown place".to_owned());
        Panic { message, location }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn captures_message_and_location() {
        let p = super::run(false, || panic!("boom {}", 7)).unwrap_err();
        assert_eq!(p.message, "boom 7");
        assert!(p.location.contains("guard.rs"), "{}", p.location);
        assert_eq!(super::run(false, || 5).unwrap(), 5);
    }
}
