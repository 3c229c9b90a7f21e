//! Deadlines from durations a caller chose: never an overflow panic.
//!
//! A setting or argument may be as large as `Duration::MAX` ("wait for
//! ever"); `Instant + Duration` and `as u64` casts would panic or wrap on
//! it. Every deadline in the crate is computed here, saturating.

use std::time::{Duration, Instant};

/// About a century: a deadline this far away is never reached.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The instant `d` from now, or a century from now if that is later (or
/// not representable).
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d.min(FOREVER)).unwrap_or(now)
}

/// `d` in whole milliseconds, saturating at `u64::MAX`.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate() {
        assert!(after(Duration::MAX) > Instant::now() + Duration::from_secs(3600));
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(millis(Duration::from_micros(1500)), 1);
    }
}
