//! Pushing to many connections from any thread: every connection of a
//! resource, a named group, or all of them.

use std::fmt;
use std::sync::Arc;

use crate::hub::Hub;
use crate::{Connection, Error, Message};

/// A cheap, cloneable, `Send + Sync` handle for pushing messages to
/// connections from any thread. Get one from
/// [`ServerHandle::broadcaster`](crate::ServerHandle::broadcaster) or, inside
/// hooks, [`Connection::broadcaster`].
///
/// Each message is encoded once, whatever the number of recipients. A push
/// that finds nobody returns [`Error::NoConnections`], as reblocks-websocket
/// signals `no-active-websockets`.
#[derive(Clone)]
pub struct Broadcaster {
    hub: Arc<Hub>,
}

impl fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field("connections", &self.hub.count())
            .finish()
    }
}

impl Broadcaster {
    pub(crate) fn new(hub: Arc<Hub>) -> Broadcaster {
        Broadcaster { hub }
    }

    /// Sends to every open connection of the resource registered as `route`
    /// (the pattern as given to `define_resource`, e.g. `/chat/:room`).
    ///
    /// # Errors
    /// [`Error::NoConnections`] when none is open. Otherwise returns how many
    /// connections the message was queued for.
    pub fn to_resource(&self, route: &str, msg: impl Into<Message>) -> Result<usize, Error> {
        let recipients = self.hub.on_route(route);
        self.hub.deliver(route, recipients, &msg.into())
    }

    /// Sends to every member of `group`.
    ///
    /// # Errors
    /// [`Error::NoConnections`] when the group has no open connection.
    pub fn to_group(&self, group: &str, msg: impl Into<Message>) -> Result<usize, Error> {
        let recipients = self.hub.group_members(group);
        self.hub.deliver(group, recipients, &msg.into())
    }

    /// Sends to every open connection.
    ///
    /// # Errors
    /// [`Error::NoConnections`] when none is open.
    pub fn to_all(&self, msg: impl Into<Message>) -> Result<usize, Error> {
        let recipients = self.hub.connections();
        self.hub.deliver("all connections", recipients, &msg.into())
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.hub.count()
    }

    /// The open connections, by id.
    pub fn connections(&self) -> Vec<Connection> {
        self.hub.connections()
    }

    /// The open connection with this id.
    pub fn connection(&self, id: u64) -> Option<Connection> {
        self.hub.connection(id)
    }

    /// The groups that have members, with their sizes, by name.
    pub fn groups(&self) -> Vec<(String, usize)> {
        self.hub.group_names()
    }

    /// The members of `group`, by id.
    pub fn group_members(&self, group: &str) -> Vec<Connection> {
        self.hub.group_members(group)
    }
}

impl Connection {
    /// Joins a named group (a chat room, a user id...). A connection leaves
    /// all its groups when it closes.
    pub fn join(&self, group: &str) {
        self.inner.hub.join(self, group);
    }

    /// Leaves a group.
    pub fn leave(&self, group: &str) {
        self.inner.hub.leave(self, group);
    }

    /// The groups this connection is in.
    pub fn groups(&self) -> Vec<String> {
        self.inner.groups.lock().clone()
    }

    /// A handle for pushing to the other connections of this server.
    pub fn broadcaster(&self) -> Broadcaster {
        Broadcaster::new(Arc::clone(&self.inner.hub))
    }
}
