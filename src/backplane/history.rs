//! Event-stream histories shared by every instance: one Redis stream per
//! event stream (`PREFIX:history:ROUTE`, field `e`: the event as in the
//! wire format's kind 3 payload), trimmed with `XADD ... MAXLEN ~ CAP`.
//!
//! `APPEND` adds an event and publishes it (wire kind 4, with the previous
//! entry's id and its own) in one script, so the channel carries a
//! stream's events in the history's order, and every instance (the
//! publishing one included) delivers them in that order. An instance that
//! sees a kind 4 whose previous entry is not the last it has (it missed
//! one, or Redis restarted) reads the history back with `SINCE`, which
//! returns what follows its last entry or, when that entry is gone, the
//! whole history (the replica is then replaced). The events' own ids are
//! what clients see; the entry ids order them and find what was missed.
//!
//! A history's epoch is its first entry's id (`PREFIX:history-epoch:ROUTE`,
//! written by `APPEND`): a replica whose last entry is gone from a history
//! of the same epoch knows it missed what was trimmed (its clients are
//! told); another epoch means Redis lost the history.
//!
//! The history size is the serving servers' (`PREFIX:history-cap:ROUTE`,
//! written by `SINCE`), so a worker (`Backplane::publish_event`) appends
//! with it; with no server keeping a history, a worker's event is plain
//! kind 3.

use std::cell::Cell;
use std::collections::HashMap;

use super::wire::{self, Payload, Target};
use super::Backplane;
use crate::session::cluster::Since;
use crate::{Error, Event};

/// KEYS: history, channel, size key, epoch key. ARGV: size (empty: read
/// the size key), the message as kind 3, where its payload starts, `1` to
/// keep it. Returns the entry id (empty when not kept). The first entry of
/// a history (no previous one) is its epoch: a Redis that lost the
/// history starts a new one.
const APPEND: &str = r"
local cap = tonumber(ARGV[1])
if cap == nil then cap = tonumber(redis.call('GET', KEYS[3]) or '') end
local m, off = ARGV[2], tonumber(ARGV[3])
if cap == nil or cap <= 0 then
  redis.call('PUBLISH', KEYS[2], m)
  return ''
end
local function u16(s) return string.char(math.floor(#s / 256), #s % 256) .. s end
local ev = string.sub(m, off + 1)
local prev, id = '', ''
if ARGV[4] == '1' then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last > 0 then prev = last[1][1] end
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', cap, '*', 'e', ev)
  if prev == '' then redis.call('SET', KEYS[4], id) end
end
redis.call('PUBLISH', KEYS[2],
  string.sub(m, 1, 11) .. '\4' .. string.sub(m, 13, off) .. u16(prev) .. u16(id) .. ev)
return id
";

/// KEYS: history, size key, epoch key. ARGV: the last entry id known (or
/// empty; `0-0`: the history was seen empty), the size. Returns `{1,
/// entries after it, epoch}` (at most SIZE; oldest first), or `{0, the last
/// SIZE entries (newest first), epoch}` when that entry is not in the
/// history; the epoch is empty when the history has none.
const SINCE: &str = r"
local cap = tonumber(ARGV[2])
redis.call('SET', KEYS[2], cap)
local epoch = redis.call('GET', KEYS[3]) or ''
if ARGV[1] == '0-0' then
  return {1, redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', cap), epoch}
end
if ARGV[1] ~= '' then
  local r = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', cap + 1)
  if #r > 0 and r[1][1] == ARGV[1] then
    table.remove(r, 1)
    return {1, r, epoch}
  end
end
return {0, redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', cap), epoch}
";

/// A script run by its SHA1: loaded into a Redis once (`SCRIPT LOAD`), and
/// again when that Redis has lost it (`NOSCRIPT`: restarted, flushed).
/// The SHA1 is of the text, so one process-wide cache serves every Redis.
struct Lua {
    code: &'static str,
    sha: std::sync::Mutex<Option<String>>,
}

static APPEND_LUA: Lua = Lua {
    code: APPEND,
    sha: std::sync::Mutex::new(None),
};

impl Lua {
    fn sha(&self) -> Option<String> {
        // A poisoned cache is still a valid one (a String or nothing).
        self.sha.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs the script with the keys and arguments `args` adds.
    fn run<T: redis::FromRedisValue>(
        &self,
        c: &mut redis::Connection,
        args: impl Fn(&mut redis::Cmd),
    ) -> redis::RedisResult<T> {
        let evalsha = |sha: &str, c: &mut redis::Connection| {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(sha);
            args(&mut cmd);
            cmd.query::<T>(c)
        };
        if let Some(sha) = self.sha() {
            match evalsha(&sha, c) {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {}
                done => return done,
            }
        }
        let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(self.code).query(c)?;
        *self.sha.lock().unwrap_or_else(|p| p.into_inner()) = Some(sha.clone());
        evalsha(&sha, c)
    }
}

impl Backplane {
    fn history_key(&self, stream: &str) -> String {
        format!("{}:history:{stream}", self.prefix)
    }

    fn cap_key(&self, stream: &str) -> String {
        format!("{}:history-cap:{stream}", self.prefix)
    }

    fn epoch_key(&self, stream: &str) -> String {
        format!("{}:history-epoch:{stream}", self.prefix)
    }

    /// Appends and publishes an event (see the module docs); `cap` `None`
    /// takes the servers' size. `Ok(false)`: the answer was lost.
    pub(super) fn append(
        &self,
        origin: u64,
        stream: &str,
        cap: Option<usize>,
        event: &Event,
    ) -> Result<bool, Error> {
        let target = Target::Stream(stream.to_owned());
        let m = wire::encode(origin, &target, Payload::Event(event))?;
        let off = wire::payload_offset(&target);
        let keys = (
            self.history_key(stream),
            self.channel(),
            self.cap_key(stream),
            self.epoch_key(stream),
        );
        let cap = cap.map(|c| c.to_string()).unwrap_or_default();
        let keep = if event.id.is_some() { "1" } else { "0" };
        let lost = Cell::new(false);
        let done = self.link.with(self.timeout, "history append", |c| {
            let r = APPEND_LUA.run::<String>(c, |cmd| {
                cmd.arg(4)
                    .arg(&keys.0)
                    .arg(&keys.1)
                    .arg(&keys.2)
                    .arg(&keys.3)
                    .arg(&cap)
                    .arg(&m)
                    .arg(off)
                    .arg(keep);
            });
            if let Err(e) = &r {
                lost.set(e.is_timeout());
            }
            r
        });
        match done {
            Ok(_) => Ok(true),
            Err(_) if lost.get() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads a stream's history after `after` (see [`SINCE`]).
    pub(super) fn since(
        &self,
        stream: &str,
        after: Option<&str>,
        cap: usize,
    ) -> Result<Since, Error> {
        let (key, cap_key, epoch_key) = (
            self.history_key(stream),
            self.cap_key(stream),
            self.epoch_key(stream),
        );
        type Entries = Vec<(String, HashMap<String, Vec<u8>>)>;
        let (continuous, entries, epoch): (i64, Entries, String) =
            self.link.with(self.timeout, "history read", |c| {
                redis::cmd("EVAL")
                    .arg(SINCE)
                    .arg(3)
                    .arg(&key)
                    .arg(&cap_key)
                    .arg(&epoch_key)
                    .arg(after.unwrap_or(""))
                    .arg(cap.max(1))
                    .query(c)
            })?;
        let mut out: Vec<(String, Event)> = entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let event = fields.get("e").map(|e| wire::decode_event(e));
                match event {
                    Some(Ok(event)) => Some((id, event)),
                    _ => {
                        log::debug!("backplane: history entry {id} of {stream} dropped: malformed");
                        None
                    }
                }
            })
            .collect();
        let continuous = continuous == 1;
        if !continuous {
            out.reverse();
        }
        Ok(Since {
            continuous,
            entries: out,
            epoch,
        })
    }
}
