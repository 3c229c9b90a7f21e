//! Pushing to many connections from any thread: every connection of a
//! resource, a named group, or all of them.

use std::fmt;
use std::sync::Arc;

use crate::session::hub::Hub;
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
    /// With a backplane (feature `redis`) it also reaches that resource's
    /// connections on the other instances, and the count is of this
    /// instance's connections.
    ///
    /// # Errors
    /// [`Error::NoConnections`] when none is open (with a backplane: here,
    /// and the message could not be published either). Otherwise returns how many
    /// connections the message was queued for.
    pub fn to_resource(&self, route: &str, msg: impl Into<Message>) -> Result<usize, Error> {
        let msg = msg.into();
        let local = self.hub.deliver(route, self.hub.on_route(route), &msg);
        #[cfg(feature = "redis")]
        let local = self.publish(
            crate::session::cluster::Target::Resource(route.to_owned()),
            &msg,
            local,
        );
        self.nobody(local)
    }

    /// Sends to every member of `group`.
    ///
    /// With a backplane (feature `redis`) it also reaches the members on the
    /// other instances; the count is of this instance's members (`Ok(0)`
    /// when only other instances have some).
    ///
    /// # Errors
    /// [`Error::NoConnections`] when the group has no open connection (with
    /// a backplane: on any instance, as far as the group's presence in
    /// Redis says; see `Broadcaster::cluster_group_size`).
    pub fn to_group(&self, group: &str, msg: impl Into<Message>) -> Result<usize, Error> {
        let msg = msg.into();
        let local = self.hub.deliver(group, self.hub.group_members(group), &msg);
        #[cfg(feature = "redis")]
        let local = self.publish_to_group(group, &msg, local);
        self.nobody(local)
    }

    /// Sends to every open connection (with a backplane, feature `redis`: of
    /// every instance; the count is of this instance's).
    ///
    /// # Errors
    /// [`Error::NoConnections`] when none is open (with a backplane: here,
    /// and the message could not be published either).
    pub fn to_all(&self, msg: impl Into<Message>) -> Result<usize, Error> {
        let msg = msg.into();
        let local = self
            .hub
            .deliver("all connections", self.hub.connections(), &msg);
        #[cfg(feature = "redis")]
        let local = self.publish(crate::session::cluster::Target::All, &msg, local);
        self.nobody(local)
    }

    /// The same snapshot as [`ServerHandle::stats`](crate::ServerHandle::stats),
    /// of the server this broadcaster reaches (before it starts and after
    /// it stops: the totals, and no resources, streams or threads).
    pub fn stats(&self) -> crate::Stats {
        crate::session::stats::snapshot(&self.hub)
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
        self.nobody(self.hub.deliver(target, to, msg))
    }

    /// `NoConnections` as `Ok(0)` under [`Broadcaster::allow_nobody`].
    fn nobody(&self, delivered: Result<usize, Error>) -> Result<usize, Error> {
        match delivered {
            Err(Error::NoConnections(_)) if self.nobody_ok => Ok(0),
            delivered => delivered,
        }
    }
}

/// The backplane (feature `redis`).
#[cfg(feature = "redis")]
impl Broadcaster {
    /// Publishes what was just delivered locally; a publish failure leaves
    /// the local result as it was (the link's state is logged by the
    /// subscriber).
    fn publish(
        &self,
        target: crate::session::cluster::Target,
        msg: &Message,
        local: Result<usize, Error>,
    ) -> Result<usize, Error> {
        let Some(node) = self.hub.cluster() else {
            return local;
        };
        match (node.publish(&target, msg), local) {
            (Ok(()), Err(Error::NoConnections(_))) => Ok(0),
            (Err(e), local) => {
                log::debug!("backplane: not published: {e}");
                local
            }
            (Ok(()), local) => local,
        }
    }

    /// As `publish`, but with no member here the answer depends on the
    /// group's presence on the other instances (asked in the same round trip).
    fn publish_to_group(
        &self,
        group: &str,
        msg: &Message,
        local: Result<usize, Error>,
    ) -> Result<usize, Error> {
        let Some(node) = self.hub.cluster() else {
            return local;
        };
        if local.is_ok() {
            return self.publish(
                crate::session::cluster::Target::Group(group.to_owned()),
                msg,
                local,
            );
        }
        match node.publish_to_absent_group(group, msg) {
            Ok(0) => local,
            Ok(_) => Ok(0),
            Err(e) => {
                log::debug!("backplane: not published: {e}");
                local
            }
        }
    }

    /// How many connections are members of `group` on every instance
    /// sharing the backplane (see [`Backplane::cluster_group_size`](crate::Backplane::cluster_group_size)
    /// for how stale it can be); without one, [`Broadcaster::group_members`]'s count.
    ///
    /// # Errors
    /// [`Error::Backplane`] when Redis could not be asked within the backplane's timeout.
    pub fn cluster_group_size(&self, group: &str) -> Result<usize, Error> {
        match self.hub.cluster() {
            Some(node) => node.group_size(group),
            None => Ok(self.hub.group_size(group)),
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
