//! The backplane made exact (issue 28): presence that tells the truth, and
//! one history per event stream shared by every instance. Each test starts
//! its own `redis-server` (see `backplane.rs`).

use std::time::Duration;

use wsportal::{Backplane, Config, Resource, Server, ServerHandle};

use crate::backplane::{eventually, text, Redis};
use crate::support::{connect, init_logs};

/// A chat server on its own backplane handle (its own Redis connection).
fn chat(redis: &Redis, prefix: &str, ttl: Duration) -> (Backplane, ServerHandle) {
    let bp = Backplane::redis(&redis.url())
        .unwrap()
        .prefix(prefix)
        .presence_ttl(ttl);
    let mut server =
        Server::with_config(Config::default().shutdown_grace(Duration::from_millis(200)));
    server.define_resource(
        "/chat/:room",
        Resource::new().on_open(|ws| ws.join(ws.param("room").unwrap_or(""))),
    );
    server.backplane(bp.clone());
    (bp, server.start("127.0.0.1:0").unwrap())
}

/// Regression: presence was refreshed only between the subscriber's
/// blocking reads (up to 1 s each), so with a TTL under about 1.5 s a
/// connected member's group looked empty for part of every second.
#[test]
fn a_short_presence_ttl_never_shows_a_connected_members_group_empty() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let (_bp, h) = chat(&redis, "ttl", Duration::from_millis(600));
    let watch = Backplane::redis(&redis.url()).unwrap().prefix("ttl");
    let _member = connect(h.local_addr(), "/chat/g");
    eventually("the member is counted", || {
        watch.cluster_group_size("g").ok() == Some(1)
    });
    // Five TTLs: each lapse of the refresh would show as a 0.
    let mut empty = 0;
    for _ in 0..150 {
        if watch.cluster_group_size("g").unwrap() == 0 {
            empty += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(empty, 0, "the group looked empty in {empty} of 150 samples");
}

/// Regression: a leave whose `HDEL` was lost with the link was never
/// repaired (a refresh rewrote only the groups that still had members
/// here), so the count stayed while another instance kept the hash alive.
#[test]
fn a_leave_lost_with_the_link_is_repaired_by_the_next_refresh() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    // Long enough that no instance's liveness lapses during the test.
    let ttl = Duration::from_secs(3);
    let (_a_bp, a) = chat(&redis, "lost", ttl);
    let (_b_bp, b) = chat(&redis, "lost", ttl);
    let watch = Backplane::redis(&redis.url()).unwrap().prefix("lost");
    let on_a = connect(a.local_addr(), "/chat/g");
    let _on_b = connect(b.local_addr(), "/chat/g");
    eventually("both members are counted", || {
        watch.cluster_group_size("g").ok() == Some(2)
    });
    // Every normal connection (the instances' publishing links, which
    // write presence) is cut: the leave below is written on a dead link.
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut raw)
        .unwrap();
    drop(on_a);
    eventually("the member that left is no longer counted", || {
        watch.cluster_group_size("g").ok() == Some(1)
    });
}

/// Regression: `to_group` with no member here published and asked the
/// group's size in one round trip, and answered `NoConnections` when the
/// size could not be read, though the message had gone out.
#[test]
fn to_group_says_published_when_the_size_lookup_fails_after_the_publish() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let ttl = Duration::from_secs(3);
    let (_a_bp, a) = chat(&redis, "size", ttl);
    let (_b_bp, b) = chat(&redis, "size", ttl);
    let watch = Backplane::redis(&redis.url()).unwrap().prefix("size");
    let mut on_b = connect(b.local_addr(), "/chat/g");
    eventually("the member is counted", || {
        watch.cluster_group_size("g").ok() == Some(1)
    });
    // A count that is not a number, from an instance that looks alive:
    // the size lookup fails.
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("size:alive:bogus")
        .arg(1)
        .ignore()
        .cmd("HSET")
        .arg("size:group:g")
        .arg("bogus")
        .arg("x")
        .ignore()
        .query(&mut raw)
        .unwrap();
    assert!(watch.cluster_group_size("g").is_err());
    assert_eq!(a.broadcaster().to_group("g", "hi").ok(), Some(0));
    assert_eq!(text(&mut on_b), "hi");
}
