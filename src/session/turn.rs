//! Sharing a core between busy connections: a connection thread that has
//! worked for `Config::yield_after` (when set) without waiting gives the
//! core up before its next read.
//!
//! A thread that always has input (its peer keeps messages in flight)
//! never waits, so the kernel preempts it only at its timer tick: 4 ms at
//! `CONFIG_HZ=250`. With ten such connections on one core, a message could
//! wait nine ticks (36 ms) for its thread to run again. Giving way at a
//! message boundary, where no lock is held, makes that a few turns of the
//! others' work, for some throughput (DEPLOYING.md has the measurements).
//! A thread alone on its core yields to no one: one cheap system call per
//! turn.
//!
//! Unset, the length depends on the transport, about two large messages'
//! work: a TLS connection's thread spends most of a 64 KiB message's time
//! (some 55 µs) in cryptography ([`TLS_DEFAULT`], 100 µs); a plain one
//! about 22 µs copying ([`PLAIN_DEFAULT`], 50 µs). Measured: with ten
//! busy plain connections on one core, 50 µs brought a 64 KiB echo's p99
//! from 3.5-8 ms to 2-2.8 for about 5 % of its throughput; 100 and 200
//! µs did not (DEPLOYING.md).

use std::time::{Duration, Instant};

/// A read that took this long waited (for input, or for the core): the
/// others have had their turn meanwhile, so a new one starts.
const WAITED: Duration = Duration::from_micros(100);

/// A TLS connection's turn when `Config::yield_after` is unset.
pub(crate) const TLS_DEFAULT: Duration = Duration::from_micros(100);
/// A plain TCP connection's turn when `Config::yield_after` is unset.
pub(crate) const PLAIN_DEFAULT: Duration = Duration::from_micros(50);

/// The turn's length for a connection: `Config::yield_after` if set
/// (`setting`), else the transport's default.
pub(crate) fn length(setting: Option<Option<Duration>>, tls: bool) -> Option<Duration> {
    setting.unwrap_or(Some(if tls { TLS_DEFAULT } else { PLAIN_DEFAULT }))
}

/// One connection thread's turn.
pub(crate) struct Turn {
    /// `None`: never yield.
    len: Option<Duration>,
    since: Instant,
}

impl Turn {
    pub(crate) fn new(len: Option<Duration>, now: Instant) -> Turn {
        Turn { len, since: now }
    }

    /// Before a read: gives the core up if the turn is over. Returns the
    /// time the read starts, for [`Turn::read_done`] (`None` without a
    /// length: no clock is read at all).
    pub(crate) fn before_read(&mut self) -> Option<Instant> {
        self.len?;
        let now = Instant::now();
        if !self.over(now) {
            return Some(now);
        }
        std::thread::yield_now();
        let now = Instant::now();
        self.since = now;
        Some(now)
    }

    /// Whether this thread takes turns at all.
    pub(crate) fn taken(&self) -> bool {
        self.len.is_some()
    }

    /// Whether the turn is over (the next [`Turn::before_read`] yields).
    pub(crate) fn due(&self) -> bool {
        self.len.is_some() && self.over(Instant::now())
    }

    /// After a read that started at `started`.
    pub(crate) fn read_done(&mut self, started: Option<Instant>) {
        if let Some(started) = started {
            self.after(started, Instant::now());
        }
    }

    fn over(&self, now: Instant) -> bool {
        self.len
            .is_some_and(|len| now.saturating_duration_since(self.since) >= len)
    }

    fn after(&mut self, started: Instant, now: Instant) {
        if now.saturating_duration_since(started) >= WAITED {
            self.since = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_ends_after_continuous_work_and_restarts_after_a_wait() {
        let t0 = Instant::now();
        let us = |n| t0 + Duration::from_micros(n);
        let mut turn = Turn::new(Some(Duration::from_micros(100)), t0);
        assert!(!turn.over(us(99)));
        // Reads that found input at once: still the same turn.
        turn.after(us(50), us(60));
        turn.after(us(90), us(95));
        assert!(turn.over(us(100)));
        // A read that waited 150 µs: a new turn from its end.
        turn.after(us(100), us(250));
        assert!(!turn.over(us(349)));
        assert!(turn.over(us(350)));
    }

    #[test]
    fn without_a_length_a_turn_never_ends() {
        let t0 = Instant::now();
        let turn = Turn::new(None, t0);
        assert!(!turn.over(t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn unset_turns_depend_on_the_transport() {
        let us = Duration::from_micros;
        assert_eq!(length(None, true), Some(us(100)));
        assert_eq!(length(None, false), Some(us(50)));
        // Set, the setting holds for both, `None` included.
        assert_eq!(length(Some(None), true), None);
        assert_eq!(length(Some(Some(us(50))), false), Some(us(50)));
        assert_eq!(length(Some(Some(us(50))), true), Some(us(50)));
    }
}
