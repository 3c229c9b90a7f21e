//! What the layers below the backplane ask of the cluster a server belongs
//! to (feature `redis`). The hub writes presence after a join or leave,
//! `Broadcaster` and `EventPublisher` publish what they just delivered here,
//! and an event stream with a history keeps it in the cluster's one shared
//! history (appending, reading it back).
//! The backplane (`backplane/`) implements [`Cluster`]; defining it here
//! lets the hub and event streams hold one without importing upward.

use std::sync::Arc;

use crate::session::hub::Hub;
use crate::{Error, Event, Message};

/// Who a message published across instances is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    All,
    Resource(String),
    Group(String),
    Stream(String),
    StreamGroup { stream: String, group: String },
}

/// A running server's place in a cluster: see the module documentation.
pub(crate) trait Cluster: Send + Sync {
    /// Publishes a WebSocket message that was just delivered locally.
    fn publish(&self, target: &Target, msg: &Message) -> Result<(), Error>;

    /// Publishes an event that was just delivered locally.
    fn publish_event(&self, target: &Target, event: &Event) -> Result<(), Error>;

    /// Publishes to a group that has no member here, and answers how many
    /// members it has on the other instances (`usize::MAX` when it went
    /// out but the size is unknown: only 0 means nobody).
    fn publish_to_absent_group(&self, group: &str, msg: &Message) -> Result<usize, Error>;

    /// How many members `group` has on every instance.
    fn group_size(&self, group: &str) -> Result<usize, Error>;

    /// Writes this instance's member counts of `groups`, as they are now.
    fn write_presence(&self, hub: &Hub, groups: &[String]) -> Result<(), Error>;

    /// Takes this instance out of presence at once (a graceful stop).
    fn retire(&self, groups: &[String]);

    /// Appends `event` to the shared history of the event stream `stream`
    /// (trimmed to about `cap` events; an event without an id is not kept)
    /// and publishes it to every instance, this one included, in the
    /// history's order: the subscriber delivers it here too. `Ok(true)`:
    /// done; `Ok(false)`: the answer was lost (it may have been done);
    /// `Err`: not done.
    fn append_event(&self, stream: &str, cap: usize, event: &Event) -> Result<bool, Error>;

    /// The shared history of `stream` after the entry `after`, at most
    /// `cap` entries; or, when `after` is not in it (trimmed, lost with a
    /// Redis restart, or `None`), its last `cap` entries.
    fn history_since(&self, stream: &str, after: Option<&str>, cap: usize) -> Result<Since, Error>;
}

/// A stretch of a stream's shared history, oldest first.
pub(crate) struct Since {
    /// Whether `entries` follow the entry asked for; else they are the
    /// whole history (as far as it is kept).
    pub(crate) continuous: bool,
    /// Entry ids (`MS-SEQ`) and events.
    pub(crate) entries: Vec<(String, Event)>,
    /// The history's epoch (its first entry's id; empty when it has none):
    /// the same epoch means the same history, only trimmed.
    pub(crate) epoch: String,
}

/// The cluster side of a hub.
impl Hub {
    /// The cluster this hub's server is attached to, if any.
    pub(crate) fn cluster(&self) -> Option<Arc<dyn Cluster>> {
        self.cluster.read().clone()
    }

    pub(crate) fn set_cluster(&self, node: Option<Arc<dyn Cluster>>) {
        *self.cluster.write() = node;
    }

    /// Writes the presence of `groups` after a join, leave or close.
    pub(crate) fn presence_changed(&self, groups: &[String]) {
        if let Some(node) = self.cluster() {
            if let Err(e) = node.write_presence(self, groups) {
                log::debug!("backplane: presence not written (the next refresh will): {e}");
            }
        }
    }
}
