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
    /// Pushing to nobody is `Ok(0)`, not an error ([`Broadcaster::allow_nobody`]).
    nobody_ok: bool,
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
        Broadcaster {
            hub,
            nobody_ok: false,
        }
    }

    /// Sends to every open connection of the resource registered as `route`
    /// (the pattern as given to `define_resource`, e.g. `/chat/:room`).
    ///
    /// # Errors
    /// [`Error::NoConnections`] when none is open. Otherwise returns how many
    /// connections the message was queued for.
    pub fn to_resource(&self, route: &str, msg: impl Into<Message>) -> Result<usize, Error> {
        let recipients = self.hub.on_route(route);
        self.deliver(route, recipients, &msg.into())
    }

    /// Sends to every member of `group`.
    ///
    /// # Errors
    /// [`Error::NoConnections`] when the group has no open connection.
    pub fn to_group(&self, group: &str, msg: impl Into<Message>) -> Result<usize, Error> {
        let recipients = self.hub.group_members(group);
        self.deliver(group, recipients, &msg.into())
    }

    /// Sends to every open connection.
    ///
    /// # Errors
    /// [`Error::NoConnections`] when none is open.
    pub fn to_all(&self, msg: impl Into<Message>) -> Result<usize, Error> {
        let recipients = self.hub.connections();
        self.deliver("all connections", recipients, &msg.into())
    }

    /// The same snapshot as [`ServerHandle::stats`](crate::ServerHandle::stats),
    /// of the server this broadcaster reaches (before it starts and after
    /// it stops: the totals, and no resources, streams or threads).
    pub fn stats(&self) -> crate::Stats {
        crate::stats::snapshot(&self.hub)
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

/// Filtered sends, resource membership, and pushing to nobody without an error.
impl Broadcaster {
    /// The same broadcaster, except that a push finding nobody returns
    /// `Ok(0)` instead of [`Error::NoConnections`]: for a background loop,
    /// where nobody listening is the normal case, so that `?` or `expect`
    /// is left for real failures.
    ///
    /// ```
    /// # let server = wsportal::Server::new();
    /// let push = server.broadcaster().allow_nobody();
    /// assert_eq!(push.to_all("tick")?, 0); // nobody is connected yet
    /// # Ok::<(), wsportal::Error>(())
    /// ```
    pub fn allow_nobody(mut self) -> Broadcaster {
        self.nobody_ok = true;
        self
    }

    /// Sends to each of `connections` (from [`Broadcaster::connections`],
    /// [`Broadcaster::resource_connections`], kept handles...), encoding the
    /// message once. Connections of another server, repeated ones and
    /// closed ones are skipped.
    ///
    /// # Errors
    /// [`Error::NoConnections`] when none of them is open here (unless
    /// [`Broadcaster::allow_nobody`]). Otherwise returns how many
    /// connections the message was queued for.
    pub fn to_connections<'a>(
        &self,
        connections: impl IntoIterator<Item = &'a Connection>,
        msg: impl Into<Message>,
    ) -> Result<usize, Error> {
        let mut seen = std::collections::HashSet::new();
        let recipients: Vec<Connection> = connections
            .into_iter()
            .filter(|c| Arc::ptr_eq(&c.inner.hub, &self.hub) && seen.insert(c.id()))
            .cloned()
            .collect();
        self.deliver("the given connections", recipients, &msg.into())
    }

    /// Sends to the open connections of the resource registered as `route`
    /// for which `keep` returns true, encoding the message once: a
    /// per-client filter (read what to keep from [`Connection::data`] or
    /// [`Connection::with_state`]). `keep` runs on the calling thread, once
    /// per connection, before anything is sent.
    ///
    /// # Errors
    /// [`Error::NoConnections`] when no connection is kept (unless
    /// [`Broadcaster::allow_nobody`]).
    pub fn to_resource_where(
        &self,
        route: &str,
        keep: impl FnMut(&Connection) -> bool,
        msg: impl Into<Message>,
    ) -> Result<usize, Error> {
        let recipients = self.hub.on_route(route).into_iter().filter(keep).collect();
        self.deliver(route, recipients, &msg.into())
    }

    /// The open connections of the resource registered as `route` (the
    /// pattern as given to `define_resource`), by id.
    pub fn resource_connections(&self, route: &str) -> Vec<Connection> {
        self.hub.on_route(route)
    }

    /// How many connections of the resource registered as `route` are open.
    pub fn resource_count(&self, route: &str) -> usize {
        self.hub.on_route(route).len()
    }

    fn deliver(&self, target: &str, to: Vec<Connection>, msg: &Message) -> Result<usize, Error> {
        match self.hub.deliver(target, to, msg) {
            Err(Error::NoConnections(_)) if self.nobody_ok => Ok(0),
            delivered => delivered,
        }
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
