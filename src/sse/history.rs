//! An event stream's history: the last events that have an id, kept for
//! clients that resume with `Last-Event-ID`. It knows nothing of clients:
//! the stream's filter comes in as a closure.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::Event;

/// The last events with an id, oldest first, at most `cap` of them.
pub(crate) struct History {
    events: VecDeque<Recorded>,
    cap: usize,
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
