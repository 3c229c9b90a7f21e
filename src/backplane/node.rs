//! One server instance attached to a backplane ([`Node`]): its id, the
//! group counts it wrote, and what the hub and event streams ask of the
//! cluster (`session::cluster::Cluster`): publishing, group sizes,
//! presence writes and the retirement at a graceful close.

use std::collections::HashSet;
use std::time::Duration;

use parking_lot::Mutex;

use super::wire::{self, Payload, Target};
use super::{random_id, Backplane, SIZE_FN};
use crate::session::cluster::{Cluster, Since};
use crate::session::hub::Hub;
use crate::{Error, Event, Message};

/// Publishes `ARGV[2]` on `KEYS[2]`, then answers the size of the group
/// `KEYS[1]`, or -1 when it could not be read: the publish went out anyway.
fn publish_and_size_script() -> String {
    format!(
        "{SIZE_FN}redis.call('PUBLISH', KEYS[2], ARGV[2])
local ok, n = pcall(size, KEYS[1], ARGV[1])
if ok then return n end
return -1"
    )
}

/// One running server attached to a backplane.
pub(crate) struct Node {
    pub(crate) bp: Backplane,
    pub(crate) id: u64,
    /// The groups whose count this instance may have in Redis: every group
    /// it wrote a count for, until an `HDEL` of it is known to have
    /// succeeded. A refresh deletes those with no member here any more, so
    /// a leave whose write was lost is repaired.
    written: Mutex<HashSet<String>>,
}

impl Node {
    pub(crate) fn new(bp: Backplane) -> Node {
        Node {
            bp,
            id: random_id(),
            written: Mutex::new(HashSet::new()),
        }
    }

    fn field(&self) -> String {
        format!("{:016x}", self.id)
    }

    /// Refreshes this instance's liveness key, rewrites the count of every
    /// group with a member here (Redis may have restarted empty), and
    /// deletes the counts it wrote for groups it no longer has.
    pub(crate) fn refresh(&self, hub: &Hub) -> Result<(), Error> {
        let alive = format!("{}{}", self.bp.alive_prefix(), self.field());
        let ttl = ttl_ms(self.bp.presence_ttl);
        self.bp
            .link
            .with(self.bp.timeout, "presence refresh", |c| {
                redis::cmd("SET")
                    .arg(&alive)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl)
                    .query::<()>(c)
            })?;
        let mut groups: HashSet<String> = hub.group_names().into_iter().map(|(g, _)| g).collect();
        groups.extend(self.written.lock().iter().cloned());
        let groups: Vec<String> = groups.into_iter().collect();
        for chunk in groups.chunks(512) {
            self.write_presence(hub, chunk)?;
        }
        Ok(())
    }
}

impl Cluster for Node {
    /// Publishes a WebSocket message that was just delivered locally.
    fn publish(&self, target: &Target, msg: &Message) -> Result<(), Error> {
        self.bp.publish(self.id, target, Payload::Ws(msg))
    }

    /// Publishes an event that was just delivered locally.
    fn publish_event(&self, target: &Target, event: &Event) -> Result<(), Error> {
        self.bp.publish(self.id, target, Payload::Event(event))
    }

    /// Publishes to a group that has no member here, and asks in the same
    /// round trip (one script) how many members it has on the other
    /// instances. When the publish went out but the size could not be read,
    /// the answer is `usize::MAX` (unknown, maybe some): only a size of 0
    /// lets the caller say that nobody got it. When no answer came at all
    /// (Redis unreachable, or the reply lost), whether it went out is
    /// unknown, and the error is returned.
    fn publish_to_absent_group(&self, group: &str, msg: &Message) -> Result<usize, Error> {
        let bytes = wire::encode(self.id, &Target::Group(group.to_owned()), Payload::Ws(msg))?;
        let (channel, key, alive) = (
            self.bp.channel(),
            self.bp.group_key(group),
            self.bp.alive_prefix(),
        );
        let n: i64 = self.bp.link.with(self.bp.timeout, "publish", |c| {
            redis::cmd("EVAL")
                .arg(publish_and_size_script())
                .arg(2)
                .arg(&key)
                .arg(&channel)
                .arg(&alive)
                .arg(bytes)
                .query(c)
        })?;
        if n < 0 {
            log::debug!("backplane: published to group {group}, but its size is unknown");
            return Ok(usize::MAX);
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn group_size(&self, group: &str) -> Result<usize, Error> {
        self.bp.cluster_group_size(group)
    }

    /// Writes this instance's member counts of `groups` (as they are now:
    /// the last writer writes the latest count, under the link's lock), and
    /// keeps `written` true: a group counted is added before the write, a
    /// group deleted is removed only once the write succeeded.
    fn write_presence(&self, hub: &Hub, groups: &[String]) -> Result<(), Error> {
        if groups.is_empty() {
            return Ok(());
        }
        let field = self.field();
        let ttl = ttl_ms(self.bp.presence_ttl.saturating_mul(2));
        self.bp.link.with(self.bp.timeout, "presence", |c| {
            let mut p = redis::pipe();
            let mut deleted = Vec::new();
            let mut written = self.written.lock();
            for g in groups {
                let key = self.bp.group_key(g);
                match hub.group_size(g) {
                    0 => {
                        p.cmd("HDEL").arg(&key).arg(&field).ignore();
                        deleted.push(g);
                    }
                    n => {
                        written.insert(g.clone());
                        p.cmd("HSET")
                            .arg(&key)
                            .arg(&field)
                            .arg(n)
                            .ignore()
                            .cmd("PEXPIRE")
                            .arg(&key)
                            .arg(ttl)
                            .ignore();
                    }
                }
            }
            drop(written);
            p.query::<()>(c)?;
            let mut written = self.written.lock();
            for g in deleted {
                written.remove(g);
            }
            Ok(())
        })
    }

    fn append_event(&self, stream: &str, cap: usize, event: &Event) -> Result<bool, Error> {
        self.bp.append(self.id, stream, Some(cap), event)
    }

    fn history_since(&self, stream: &str, after: Option<&str>, cap: usize) -> Result<Since, Error> {
        self.bp.since(stream, after, cap)
    }

    /// Takes this instance out of presence at once (a graceful stop): its
    /// liveness key, and its count of `groups` and of every group it wrote.
    /// Called once nothing refreshes any more (the subscriber and presence
    /// threads are joined), so nothing writes it back.
    fn retire(&self, groups: &[String]) {
        let alive = format!("{}{}", self.bp.alive_prefix(), self.field());
        let field = self.field();
        let mut all: HashSet<String> = groups.iter().cloned().collect();
        all.extend(self.written.lock().drain());
        let done = self.bp.link.with(self.bp.timeout, "presence", |c| {
            let mut p = redis::pipe();
            p.cmd("DEL").arg(&alive).ignore();
            for g in &all {
                p.cmd("HDEL").arg(self.bp.group_key(g)).arg(&field).ignore();
            }
            p.query::<()>(c)
        });
        if let Err(e) = done {
            log::debug!("backplane: could not retire instance {:016x}: {e}", self.id);
        }
    }
}

fn ttl_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
