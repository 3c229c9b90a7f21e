//! An event stream's history shared by every instance (feature `redis`):
//! this instance's history is a replica of the stream's history in Redis
//! (`backplane/history.rs`), applied in the one order of the channel.
//!
//! With a backplane and a history, [`EventPublisher::send`] delivers
//! nothing here at once: it appends the event in Redis, which publishes it
//! to every instance, this one included, and the subscriber delivers it
//! ([`EventPublisher::receive_ordered`]) in the history's order. Each
//! message names the entry before it: when that is the last entry this
//! replica applied, the event is applied and delivered; when it is older,
//! it was had already; otherwise something was missed (a lost message, a
//! Redis restart), and [`EventPublisher::sync`] reads the history back.
//! Applying and delivering happen under the stream's lock, so a client's
//! replay and the live events it gets after are one sequence.
//!
//! When Redis cannot be reached, `send` delivers here only, and the event
//! is not kept (it is in no instance's history).

use std::sync::Arc;

use super::client::{EventClient, Shared, State};
use super::history::EntryId;
use super::publisher::EventPublisher;
use crate::session::cluster::Cluster;
use crate::{Error, Event};

/// Queues an event for every client of the stream its filter lets have it.
fn push_all(st: &State, event: &Event, bytes: &Arc<[u8]>) -> usize {
    st.clients
        .values()
        .filter(|c: &&EventClient| st.keeps(c, event) && c.push_shared(Arc::clone(bytes)).is_ok())
        .count()
}

impl EventPublisher {
    /// The cluster, route and history size, when this stream's history is
    /// shared (a backplane and a history).
    fn shared_history(&self) -> Option<(Arc<dyn Cluster>, &str, usize)> {
        let node = self.shared.cluster.read().clone()?;
        let route = self.shared.route.get()?;
        let cap = self.shared.state.lock().history.cap();
        (cap > 0).then_some((node, route.as_str(), cap))
    }

    /// [`EventPublisher::send`] when the history is shared: `None` when it
    /// is not (send as usual).
    pub(crate) fn send_ordered(&self, event: &Event) -> Option<Result<usize, Error>> {
        let (node, route, cap) = self.shared_history()?;
        if let Err(e) = event.encode() {
            return Some(Err(e));
        }
        match node.append_event(route, cap, event) {
            // Delivered here when it comes back from Redis.
            Ok(_) => Some(Ok(self.client_count())),
            Err(e) => {
                log::debug!("backplane: event not kept in the shared history, sent here only: {e}");
                Some(self.send_here(event))
            }
        }
    }

    /// An event from the channel in the stream's one order (wire kind 4):
    /// `prev` and `entry` are its history entry's predecessor and its own
    /// (empty: not kept).
    pub(crate) fn receive_ordered(&self, prev: &str, entry: &str, event: &Event) {
        let bytes: Arc<[u8]> = match event.encode() {
            Ok(b) => b.into(),
            Err(e) => return log::debug!("backplane: dropped an event: {e}"),
        };
        let mut st = self.shared.state.lock();
        let (Some(prev), Some(entry)) = (EntryId::parse(prev), EntryId::parse(entry)) else {
            return log::debug!("backplane: dropped an event with a malformed entry id");
        };
        if entry == EntryId::MIN || st.history.cap() == 0 {
            // Not kept (or no history here): live only.
            push_all(&st, event, &bytes);
            return;
        }
        match st.history.synced() {
            Some(s) if s == prev => {
                if prev == EntryId::MIN {
                    // The first entry of a history is its epoch.
                    st.history.same_epoch(&entry.to_string());
                }
                st.history.apply(entry, event, &bytes);
                push_all(&st, event, &bytes);
            }
            Some(s) if entry <= s => {} // had it (read back already)
            _ => {
                drop(st);
                if let Err(e) = self.sync() {
                    log::debug!("backplane: history of {} not read back: {e}", self.route());
                }
            }
        }
    }

    /// Reads back what this replica missed of the shared history (or all
    /// of it, when the last entry it has is gone from Redis), keeps it and
    /// delivers the new entries live. A no-op without a shared history.
    ///
    /// # Errors
    /// [`Error::Backplane`] when Redis could not be read.
    pub(crate) fn sync(&self) -> Result<(), Error> {
        let Some((node, route, cap)) = self.shared_history() else {
            return Ok(());
        };
        // One read-back at a time: only the subscriber's in-order path
        // applies entries meanwhile, each right after the last applied.
        let _reading = self.shared.reading_back.lock();
        // A read brings at most `cap` entries: read on while they come in
        // full batches (bounded: a stream that outruns us is caught up by
        // the next gap).
        for _ in 0..64 {
            if !self.read_back(node.as_ref(), route, cap)? {
                break;
            }
        }
        Ok(())
    }

    /// One read of the history after the last entry applied; `Ok(true)`
    /// when there may be more.
    fn read_back(&self, node: &dyn Cluster, route: &str, cap: usize) -> Result<bool, Error> {
        let after = self.shared.state.lock().history.synced();
        let since = node.history_since(route, after.map(|a| a.to_string()).as_deref(), cap)?;
        let mut entries = Vec::with_capacity(since.entries.len());
        for (id, event) in since.entries {
            let (Some(id), Ok(bytes)) = (EntryId::parse(&id), event.encode()) else {
                continue;
            };
            entries.push((id, event, Arc::<[u8]>::from(bytes)));
        }
        let more = since.continuous && entries.len() >= cap;
        let mut st = self.shared.state.lock();
        let old = st.history.synced();
        let same_epoch = st.history.same_epoch(&since.epoch);
        if since.continuous {
            // Another caller may have applied some meanwhile: `apply` skips them.
            for (id, event, bytes) in &entries {
                if st.history.apply(*id, event, bytes) {
                    push_all(&st, event, bytes);
                }
            }
        } else if old != after {
            // Entries were applied in order meanwhile, so our last one was
            // there after all: this read is stale; the next gap reads again.
            log::trace!("backplane: history of {route} read back while it moved");
        } else {
            // The history no longer holds our last entry: take it as it is.
            // On the first sync (`old` is `None`) nothing counts as new.
            if after.is_some() {
                log::debug!(
                    "backplane: history of {route} replaced (trimmed past us, or Redis lost it)"
                );
            }
            // Trimmed past our last entry (the same history: the same
            // epoch): our clients missed what fell out. They are closed, to
            // resume with their last id and be told it is unknown, rather
            // than get the rest as if nothing was missed. (When Redis lost
            // the history, whether they missed anything is unknown: they
            // get the new history's events.)
            let trimmed_past_us = same_epoch && after.is_some_and(|a| a != EntryId::MIN);
            st.history.clear();
            for (id, event, bytes) in &entries {
                st.history.record(event, bytes);
                if !trimmed_past_us && old.is_some_and(|o| *id > o) {
                    push_all(&st, event, bytes);
                }
            }
            if trimmed_past_us {
                log::debug!(
                    "backplane: {route} missed events that fell out of its history: closing its {} clients",
                    st.clients.len()
                );
                for c in st.clients.values() {
                    c.close();
                }
            }
            // An empty history: the next entry's predecessor is the empty id.
            let last = entries.last().map_or(EntryId::MIN, |(id, _, _)| *id);
            st.history.set_synced(last);
        }
        Ok(more)
    }

    fn route(&self) -> &str {
        self.shared.route.get().map_or("?", String::as_str)
    }
}

/// Before a client's `Last-Event-ID` is declared unknown: this replica may
/// only lag (the client saw the event on another instance), so read back
/// the shared history once. A no-op without a shared history.
pub(crate) fn catch_up(shared: &Arc<Shared>) {
    if let Err(e) = EventPublisher::new(Arc::clone(shared)).sync() {
        log::debug!("backplane: history not read back for a resuming client: {e}");
    }
}
