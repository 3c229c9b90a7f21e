//! An event stream's history: the last events that have an id, kept for
//! clients that resume with `Last-Event-ID`. It knows nothing of clients:
//! the stream's filter comes in as a closure. With a backplane (feature
//! `redis`) it is this instance's replica of the stream's shared history,
//! `synced` up to a Redis entry id (`sse/replica.rs` keeps it so).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::Event;

/// The last events with an id, oldest first, at most `cap` of them.
pub(crate) struct History {
    events: VecDeque<Recorded>,
    cap: usize,
    /// The last shared-history entry applied (a replica only).
    #[cfg(feature = "redis")]
    synced: Option<EntryId>,
    /// The shared history's epoch when it was last read back.
    #[cfg(feature = "redis")]
    epoch: String,
}

/// An event kept for replay.
struct Recorded {
    id: Option<String>,
    bytes: Arc<[u8]>,
    /// The event itself, for the stream's filter.
    event: Event,
}

/// What a joining client is owed, given its `Last-Event-ID`.
pub(crate) enum Replay {
    /// No id, or the newest id: nothing.
    Nothing,
    /// These events, sent after its id.
    Missed(Vec<Arc<[u8]>>),
    /// Its id is not in the history.
    Unknown,
}

impl History {
    /// An empty history that keeps nothing.
    pub(crate) fn new() -> History {
        History {
            events: VecDeque::new(),
            cap: 0,
            #[cfg(feature = "redis")]
            synced: None,
            #[cfg(feature = "redis")]
            epoch: String::new(),
        }
    }

    /// How many events it keeps.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Keeps at most `events` events from now on (dropping the oldest).
    pub(crate) fn set_cap(&mut self, events: usize) {
        self.cap = events;
        while self.events.len() > events {
            self.events.pop_front();
        }
    }

    /// Keeps `event` (encoded as `bytes`) if it has an id and the history
    /// keeps anything.
    pub(crate) fn record(&mut self, event: &Event, bytes: &Arc<[u8]>) {
        if self.cap == 0 || event.id.is_none() {
            return;
        }
        if self.events.len() == self.cap {
            self.events.pop_front();
        }
        self.events.push_back(Recorded {
            id: event.id.clone(),
            bytes: Arc::clone(bytes),
            event: event.clone(),
        });
    }

    /// What a client resuming after `last_id` is owed: the events after
    /// the newest with that id that `keep` lets through.
    pub(crate) fn replay(&self, last_id: Option<&str>, keep: impl Fn(&Event) -> bool) -> Replay {
        let Some(last_id) = last_id else {
            return Replay::Nothing;
        };
        let found = self
            .events
            .iter()
            .rposition(|r| r.id.as_deref() == Some(last_id));
        match found {
            None => Replay::Unknown,
            Some(i) if i + 1 == self.events.len() => Replay::Nothing,
            Some(i) => Replay::Missed(
                self.events
                    .iter()
                    .skip(i + 1)
                    .filter(|r| keep(&r.event))
                    .map(|r| Arc::clone(&r.bytes))
                    .collect(),
            ),
        }
    }
}

/// A Redis stream entry id, `MS-SEQ`; the empty id (no previous entry) is
/// the smallest.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EntryId(u64, u64);

#[cfg(feature = "redis")]
impl EntryId {
    /// The empty id: before every entry.
    pub(crate) const MIN: EntryId = EntryId(0, 0);

    pub(crate) fn parse(s: &str) -> Option<EntryId> {
        if s.is_empty() {
            return Some(EntryId(0, 0));
        }
        let (ms, seq) = s.split_once('-')?;
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

#[cfg(feature = "redis")]
impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// The replica of a shared history (feature `redis`).
#[cfg(feature = "redis")]
impl History {
    /// The last entry applied, if it was ever synced.
    pub(crate) fn synced(&self) -> Option<EntryId> {
        self.synced
    }

    /// Applies the entry `entry` if it is newer than the last one applied:
    /// keeps it, and answers whether it is new (to be delivered live).
    pub(crate) fn apply(&mut self, entry: EntryId, event: &Event, bytes: &Arc<[u8]>) -> bool {
        if self.synced.is_some_and(|s| entry <= s) {
            return false;
        }
        self.record(event, bytes);
        self.synced = Some(entry);
        true
    }

    /// Forgets every event kept: the shared history no longer holds the
    /// last one applied (trimmed past it, or lost with a Redis restart).
    /// `synced` stays, so that only entries newer than it count as new.
    pub(crate) fn clear(&mut self) {
        self.events.clear();
    }

    /// Marks the replica synced up to `entry` (the shared history's last,
    /// or the empty id when it has none).
    pub(crate) fn set_synced(&mut self, entry: EntryId) {
        self.synced = Some(entry);
    }

    /// Notes the shared history's epoch; answers whether it is the one
    /// noted before (empty: none noted yet, or the history had none).
    pub(crate) fn same_epoch(&mut self, epoch: &str) -> bool {
        let same = !epoch.is_empty() && self.epoch == epoch;
        epoch.clone_into(&mut self.epoch);
        same
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::EntryId;

    #[test]
    fn entry_ids_order_as_redis_does() {
        let id = |s| EntryId::parse(s).unwrap();
        assert!(id("") < id("0-1"));
        assert!(id("9-5") < id("10-0"));
        assert!(id("10-0") < id("10-1"));
        assert_eq!(id("1733-7").to_string(), "1733-7");
        assert_eq!(EntryId::parse("x-1"), None);
        assert_eq!(EntryId::parse("17"), None);
    }
}
