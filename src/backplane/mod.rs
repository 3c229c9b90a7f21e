//! The Redis backplane (feature `redis`): broadcasts, group pushes and
//! event-stream events published on one server instance reach the matching
//! clients of every instance that shares the backplane.
//!
//! The backplane layer: may use `sse`, `session`, `wire` and the base
//! types; below it, the hub and event streams hold it only as a
//! `session::cluster::Cluster`, so nothing there imports this folder.
//!
//! Each running server attached to a backplane is a [`Node`] with a random
//! instance id. A push is delivered locally at once, then published (one
//! Redis `PUBLISH` on the channel `PREFIX:bus`, in the format of
//! [`wire`]) through the backplane's one publishing connection ([`Link`],
//! under a lock). One subscriber thread per server ([`Subscriber`]) reads
//! the channel and delivers what other instances published; its own
//! messages coming back are dropped by their origin id.
//!
//! Group presence: each node writes its local member count of each group
//! into the hash `PREFIX:group:NAME` (field: its id in hex), and keeps the
//! key `PREFIX:alive:ID` alive with a TTL; counts of nodes whose key
//! expired are ignored (and removed) when a size is asked for.
//!
//! The counts are absolute, written after every join, leave and close
//! (`Hub::join`/`leave`/`unregister`, after they release their locks) under
//! the link's lock, so the last write is the latest count. Every third of
//! the TTL the presence thread ([`presence`], on deadlines of its own, not
//! the subscriber's reads) refreshes the alive key, rewrites every count (a
//! Redis restarted empty is refilled) and deletes the counts this instance
//! wrote for groups it no longer has (`Node::written`: a leave whose write
//! was lost is repaired); the hashes expire after twice the TTL unless
//! rewritten. A size is one Lua script (`SIZE_FN`). A graceful close joins
//! the subscriber and presence threads, then removes the instance at once
//! (`Node::retire`). `to_group` with no local member publishes and asks the
//! size in one script, and answers `NoConnections` only when it is 0 (or
//! when no answer came: then whether it went out is unknown).
//!
//! What the subscriber receives it delivers with `Hub::deliver`,
//! `EventPublisher::send_here`/`to_group_here`, and, for an event in a
//! stream's shared history (wire kind 4, also its own), with
//! `EventPublisher::receive_ordered` (see [`history`]); a message that does
//! not decode (`wire::decode`: foreign, other version, truncated, bad
//! UTF-8) is logged at debug and dropped.

mod history;
mod link;
mod node;
mod presence;
mod subscriber;
pub(crate) mod wire;

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use self::link::Link;
use self::wire::{Payload, Target};
use crate::{Error, Event, Message};

pub(crate) use self::node::Node;
pub(crate) use self::subscriber::Subscriber;

/// `size(key, alive)`: sums a group's counts over the nodes still alive,
/// and drops the others.
const SIZE_FN: &str = r"
local function size(key, alive)
  local h = redis.call('HGETALL', key)
  local n = 0
  for i = 1, #h, 2 do
    if redis.call('EXISTS', alive .. h[i]) == 1 then
      n = n + tonumber(h[i + 1])
    else
      redis.call('HDEL', key, h[i])
    end
  end
  return n
end
";

/// A group's size: `KEYS[1]` the group's hash, `ARGV[1]` the alive prefix.
fn group_size_script() -> String {
    format!("{SIZE_FN}return size(KEYS[1], ARGV[1])")
}

/// A Redis backplane (feature `redis`) linking several server instances
/// (processes or machines, behind a load balancer) so that pushes reach
/// the clients of all of them. Attach it with
/// [`Server::backplane`](crate::Server::backplane); then
/// [`Broadcaster::to_resource`](crate::Broadcaster::to_resource),
/// [`to_group`](crate::Broadcaster::to_group),
/// [`to_all`](crate::Broadcaster::to_all),
/// [`EventPublisher::send`](crate::EventPublisher::send) and
/// [`EventPublisher::to_group`](crate::EventPublisher::to_group) reach every
/// instance sharing the same Redis and prefix.
///
/// ```no_run
/// use wsportal::{Backplane, Server};
/// let mut server = Server::new();
/// server.backplane(Backplane::redis("redis://127.0.0.1:6379/")?.prefix("chat"));
/// # Ok::<(), wsportal::Error>(())
/// ```
///
/// WebSocket delivery through Redis is **at most once**: a message published while
/// Redis is unreachable, or while an instance is disconnected from it, is
/// lost for the instances that did not get it (local clients always get it
/// at once). Messages published from one thread arrive in order on every
/// instance. Nothing waits on Redis for longer than [`Backplane::timeout`]
/// (per step: the lock, then each socket operation); while Redis is down,
/// publishing fails at once between reconnection attempts. An event
/// stream with a history is exact instead: see
/// [`EventStream::history`](crate::EventStream::history).
///
/// A `Backplane` is cheap to clone: clones (and every server it is
/// attached to) share one publishing connection, used under a lock. The
/// `publish_*` methods work from a process that serves no clients (a
/// worker).
#[derive(Clone)]
pub struct Backplane {
    link: Arc<Link>,
    prefix: String,
    timeout: Duration,
    presence_ttl: Duration,
    /// The origin of what this handle publishes itself (`publish_*`).
    origin: u64,
}

impl fmt::Debug for Backplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backplane")
            .field("redis", &self.link.client().get_connection_info().addr())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("presence_ttl", &self.presence_ttl)
            .finish()
    }
}

/// A random instance id (std's hasher keys are random per process; the
/// time and a counter make two ids of one process differ).
fn random_id() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish().max(1)
}

impl Backplane {
    /// A backplane on the Redis (6 or later) or Valkey server at `url`
    /// (`redis://[user:password@]host[:port][/db]`), with the prefix
    /// `wsportal`. Nothing connects yet: a server connects when it starts,
    /// and keeps trying while Redis is unreachable.
    ///
    /// # Errors
    /// [`Error::Config`] (setting `backplane`) for a URL that is not one.
    pub fn redis(url: &str) -> Result<Backplane, Error> {
        let client = redis::Client::open(url).map_err(|e| Error::Config {
            setting: "backplane",
            reason: format!("{url:?} is not a Redis URL: {e}"),
        })?;
        Ok(Backplane {
            link: Arc::new(Link::new(client)),
            prefix: "wsportal".to_owned(),
            timeout: Duration::from_millis(250),
            presence_ttl: Duration::from_secs(15),
            origin: random_id(),
        })
    }

    /// The prefix of the channel and keys (default `wsportal`), so that
    /// several applications can share one Redis: only instances with the
    /// same prefix see each other.
    pub fn prefix(mut self, prefix: &str) -> Backplane {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// The longest any step of talking to Redis may block a hook or a
    /// publisher (default 250 ms, at least 1 ms): waiting for the shared
    /// publishing connection, connecting, and each write and read.
    pub fn timeout(mut self, timeout: Duration) -> Backplane {
        self.timeout = timeout;
        self
    }

    /// How long an instance that stopped refreshing (killed, cut off from
    /// Redis) still counts in group presence (default 15 s; at least 30 ms).
    /// Each instance refreshes every third of it.
    pub fn presence_ttl(mut self, ttl: Duration) -> Backplane {
        self.presence_ttl = ttl;
        self
    }

    /// Checks the settings, naming the bad one.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |setting, reason: &str| {
            Err(Error::Config {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.timeout < Duration::from_millis(1) {
            return bad("backplane timeout", "must be at least 1 ms");
        }
        if self.presence_ttl < Duration::from_millis(30) {
            return bad("backplane presence_ttl", "must be at least 30 ms");
        }
        if self.prefix.is_empty() {
            return bad("backplane prefix", "must not be empty");
        }
        Ok(())
    }

    fn channel(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    fn group_key(&self, group: &str) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    fn alive_prefix(&self) -> String {
        format!("{}:alive:", self.prefix)
    }

    fn publish(&self, origin: u64, target: &Target, body: Payload<'_>) -> Result<(), Error> {
        let bytes = wire::encode(origin, target, body)?;
        let channel = self.channel();
        self.link.with(self.timeout, "publish", |c| {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(bytes)
                .query::<i64>(c)
        })?;
        Ok(())
    }

    /// Publishes `msg` to every WebSocket connection of every instance.
    ///
    /// # Errors
    /// [`Error::Backplane`] when Redis could not be reached within the timeout.
    pub fn publish_to_all(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.publish(self.origin, &Target::All, Payload::Ws(&msg.into()))
    }

    /// Publishes `msg` to the connections of the resource registered as
    /// `route` (the pattern, e.g. `/chat/:room`) on every instance.
    ///
    /// # Errors
    /// As [`Backplane::publish_to_all`].
    pub fn publish_to_resource(&self, route: &str, msg: impl Into<Message>) -> Result<(), Error> {
        let target = Target::Resource(route.to_owned());
        self.publish(self.origin, &target, Payload::Ws(&msg.into()))
    }

    /// Publishes `msg` to the members of `group` on every instance.
    ///
    /// # Errors
    /// As [`Backplane::publish_to_all`].
    pub fn publish_to_group(&self, group: &str, msg: impl Into<Message>) -> Result<(), Error> {
        let target = Target::Group(group.to_owned());
        self.publish(self.origin, &target, Payload::Ws(&msg.into()))
    }

    /// Publishes an event to the clients of the event stream defined at
    /// `stream` on every instance. When the servers keep a history of that
    /// stream, an event with an id enters the stream's one shared history
    /// (in Redis), in the same order as their own events (see
    /// [`EventStream::history`](crate::EventStream::history)).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an event that cannot be sent (see
    /// [`Event`]), otherwise as [`Backplane::publish_to_all`] (a reply that
    /// timed out is an error too, though the event may have gone out).
    pub fn publish_event(&self, stream: &str, event: &Event) -> Result<(), Error> {
        event.encode()?;
        match self.append(self.origin, stream, None, event)? {
            true => Ok(()),
            false => Err(Error::Backplane(
                "publish event: no answer within the timeout (it may have gone out)".to_owned(),
            )),
        }
    }

    /// Publishes an event to the clients of the event stream `stream` that
    /// joined `group`, on every instance (not kept in any history).
    ///
    /// # Errors
    /// As [`Backplane::publish_event`].
    pub fn publish_event_to_group(
        &self,
        stream: &str,
        group: &str,
        event: &Event,
    ) -> Result<(), Error> {
        event.encode()?;
        let target = Target::StreamGroup {
            stream: stream.to_owned(),
            group: group.to_owned(),
        };
        self.publish(self.origin, &target, Payload::Event(event))
    }

    /// How many WebSocket connections are members of `group`, over every
    /// live instance. It can be stale: a join or leave is counted once its
    /// instance has written it (right after, unless Redis was unreachable:
    /// then at the next refresh after reconnecting), and an instance that
    /// died without closing still counts until its presence TTL expires.
    ///
    /// # Errors
    /// [`Error::Backplane`] when Redis could not be reached within the timeout.
    pub fn cluster_group_size(&self, group: &str) -> Result<usize, Error> {
        let key = self.group_key(group);
        let alive = self.alive_prefix();
        let n: i64 = self.link.with(self.timeout, "group size", |c| {
            redis::cmd("EVAL")
                .arg(group_size_script())
                .arg(1)
                .arg(&key)
                .arg(&alive)
                .query(c)
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
