//! The backplane made exact (issue 28): presence that tells the truth, and
//! one history per event stream shared by every instance. Each test starts
//! its own `redis-server` (see `backplane.rs`).

use std::io::BufReader;
use std::net::TcpStream;
use std::time::Duration;

use wsportal::{Backplane, Config, Event, EventStream, Resource, Server, ServerHandle};

use crate::backplane::{eventually, text, Redis};
use crate::support::{connect, init_logs, next_event, sse};

/// A chat server on its own backplane handle (its own Redis connection).
fn chat(redis: &Redis, prefix: &str, ttl: Duration) -> (Backplane, ServerHandle) {
    let bp = Backplane::redis(&redis.url())
        .unwrap()
        .prefix(prefix)
        .presence_ttl(ttl)
        // Under load a Redis step may take longer than the default 250 ms.
        .timeout(Duration::from_secs(5));
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

/// A server with the event stream `/events` keeping `history` events, an
/// `on_unknown_id` that answers `unknown`, and its own backplane handle.
fn events_server(redis: &Redis, prefix: &str, history: usize) -> ServerHandle {
    let bp = Backplane::redis(&redis.url())
        .unwrap()
        .prefix(prefix)
        .presence_ttl(Duration::from_secs(600))
        // Under load a Redis step may take longer than the default 250 ms;
        // an append that gives up is delivered on its own instance only.
        .timeout(Duration::from_secs(5));
    // No keep-alive comments: a read with nothing to read times out.
    let mut server = Server::with_config(
        Config::default()
            .shutdown_grace(Duration::from_millis(200))
            .sse_keepalive(None),
    );
    server.define_event_stream(
        "/events",
        EventStream::new()
            .history(history)
            .on_unknown_id(|_| Some(Event::new("unknown"))),
    );
    server.backplane(bp);
    server.start("127.0.0.1:0").unwrap()
}

/// The next `n` events' `(id, data)`.
fn events(r: &mut BufReader<TcpStream>, n: usize) -> Vec<(String, String)> {
    (0..n).map(|_| next_event(r)).collect()
}

fn resume(h: &ServerHandle, id: &str) -> BufReader<TcpStream> {
    sse(
        h.local_addr(),
        "/events",
        &format!("Last-Event-ID: {id}\r\n"),
    )
}

/// Two instances publishing to one stream at once: every instance serves
/// the same sequence live, and a resume on either gets exactly the rest.
#[test]
fn concurrent_publishers_on_two_instances_make_one_sequence_everywhere() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (
        events_server(&redis, "one", 500),
        events_server(&redis, "one", 500),
    );
    let mut watch_a = sse(a.local_addr(), "/events", "");
    let mut watch_b = sse(b.local_addr(), "/events", "");
    // Both watchers see a first event: both instances are subscribed.
    let first = a.event_stream("/events").unwrap();
    first.send(&Event::new("start").id("start")).unwrap();
    assert_eq!(next_event(&mut watch_a).1, "start");
    assert_eq!(next_event(&mut watch_b).1, "start");
    let n = 100;
    let senders: Vec<_> = [(&a, "a"), (&b, "b")]
        .into_iter()
        .map(|(h, name)| {
            let p = h.event_stream("/events").unwrap().allow_nobody();
            std::thread::spawn(move || {
                for i in 0..n {
                    let id = format!("{name}{i}");
                    p.send(&Event::new(id.clone()).id(id)).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let seq_a = events(&mut watch_a, 2 * n);
    let seq_b = events(&mut watch_b, 2 * n);
    assert_eq!(seq_a, seq_b, "one order on both instances");
    for name in ["a", "b"] {
        // Each publisher's own events in its order.
        let mine: Vec<_> = seq_a
            .iter()
            .filter(|(id, _)| id.starts_with(name))
            .collect();
        assert_eq!(mine.len(), n);
        for (i, (id, _)) in mine.iter().enumerate() {
            assert_eq!(*id, format!("{name}{i}"));
        }
    }
    // A resume on either instance after any event gets exactly the rest.
    for k in [0, 37, 2 * n - 2] {
        let (id, _) = &seq_a[k];
        for h in [&a, &b] {
            let mut r = resume(h, id);
            assert_eq!(events(&mut r, 2 * n - 1 - k), seq_a[k + 1..]);
        }
    }
}

/// An id older than the history goes to `on_unknown_id` on every instance
/// alike; an id in it replays the same events on both.
#[test]
fn a_trimmed_id_is_unknown_on_every_instance_alike() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (
        events_server(&redis, "trim", 5),
        events_server(&redis, "trim", 5),
    );
    let mut watch_a = sse(a.local_addr(), "/events", "");
    let mut watch_b = sse(b.local_addr(), "/events", "");
    let p = a.event_stream("/events").unwrap().allow_nobody();
    for i in 0..10 {
        p.send(&Event::new(format!("e{i}")).id(format!("{i}")))
            .unwrap();
    }
    // Both instances have applied every event (each delivers an event as
    // it applies it).
    assert_eq!(events(&mut watch_a, 10).last().unwrap().0, "9");
    assert_eq!(events(&mut watch_b, 10).last().unwrap().0, "9");
    for h in [&a, &b] {
        assert_eq!(next_event(&mut resume(h, "3")).1, "unknown");
        let mut r = resume(h, "6");
        assert_eq!(
            events(&mut r, 3),
            [7, 8, 9].map(|i| (i.to_string(), format!("e{i}")))
        );
    }
}

/// Redis restarted without its data: the old ids are unknown on every
/// instance, and the new events form the sequence again.
#[test]
fn after_redis_lost_the_history_old_ids_are_unknown_everywhere() {
    init_logs();
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (a, b) = (
        events_server(&redis, "lost", 50),
        events_server(&redis, "lost", 50),
    );
    let mut watch_b = sse(b.local_addr(), "/events", "");
    let p = a.event_stream("/events").unwrap().allow_nobody();
    p.send(&Event::new("old").id("old")).unwrap();
    assert_eq!(next_event(&mut watch_b).0, "old");
    redis.restart();
    // A subscriber that is back reads the histories, then writes its
    // liveness key: once both keys exist, both replicas read the empty one.
    // (The presence thread, whose period is 200 s here, writes none.)
    let raw = redis::Client::open(redis.url()).unwrap();
    eventually("both instances are back", || {
        raw.get_connection()
            .and_then(|mut c| {
                redis::cmd("KEYS")
                    .arg("lost:alive:*")
                    .query::<Vec<String>>(&mut c)
            })
            .is_ok_and(|k| k.len() == 2)
    });
    for h in [&a, &b] {
        assert_eq!(next_event(&mut resume(h, "old")).1, "unknown");
    }
    // The sequence goes on from the new history.
    p.send(&Event::new("new").id("new")).unwrap();
    assert_eq!(next_event(&mut watch_b).0, "new");
    p.send(&Event::new("new2").id("new2")).unwrap();
    for h in [&a, &b] {
        assert_eq!(next_event(&mut resume(h, "new")).0, "new2");
    }
}

/// Instances whose subscriptions were cut while more events than the
/// history holds were published deliver every one of them, in order, once
/// they are back (they read the history back from where they were).
#[test]
fn instances_cut_off_from_the_channel_catch_up_exactly() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (
        events_server(&redis, "cut", 5),
        events_server(&redis, "cut", 5),
    );
    let mut watch_a = sse(a.local_addr(), "/events", "");
    let mut watch_b = sse(b.local_addr(), "/events", "");
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    cut_subscriptions(&mut raw);
    let p = a.event_stream("/events").unwrap().allow_nobody();
    for i in 0..12 {
        p.send(&Event::new(format!("e{i}")).id(format!("{i}")))
            .unwrap();
    }
    restore_subscriptions(&mut raw);
    // `MAXLEN ~ 5` trims whole nodes of 100 entries: all 12 are still in
    // Redis, so nothing fell out of the history.
    let all: Vec<_> = (0..12).map(|i| (i.to_string(), format!("e{i}"))).collect();
    assert_eq!(events(&mut watch_a, 12), all);
    assert_eq!(events(&mut watch_b, 12), all);
}

/// Cuts every subscription and keeps them cut until
/// `restore_subscriptions`: new connections are not authenticated, while
/// the instances' publishing connections stay.
fn cut_subscriptions(raw: &mut redis::Connection) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("secret")
        .query(raw)
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(raw)
        .unwrap();
}

fn restore_subscriptions(raw: &mut redis::Connection) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("")
        .query(raw)
        .unwrap();
}

/// An instance cut off while its last event fell out of the history does
/// not pass the rest off as complete: its clients are closed, and resuming
/// with their last id they are told it is unknown.
#[test]
fn clients_of_an_instance_that_missed_trimmed_events_are_told() {
    init_logs();
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (
        events_server(&redis, "gone", 5),
        events_server(&redis, "gone", 5),
    );
    let mut watchers = [&a, &b].map(|h| sse(h.local_addr(), "/events", ""));
    let p = a.event_stream("/events").unwrap().allow_nobody();
    p.send(&Event::new("first").id("first")).unwrap();
    for w in &mut watchers {
        assert_eq!(next_event(w).0, "first");
    }
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    // Both subscribed (a connection still subscribing would escape the cut).
    eventually("both instances are subscribed", || {
        let n: (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("gone:bus")
            .query(&mut raw)
            .unwrap();
        n.1 == 2
    });
    cut_subscriptions(&mut raw);
    // `MAXLEN ~ 5` trims whole nodes of 100 entries: 300 more events
    // drop the first node, and `first` with it.
    for i in 0..300 {
        p.send(&Event::new(format!("e{i}")).id(format!("{i}")))
            .unwrap();
    }
    restore_subscriptions(&mut raw);
    // Each instance, back, closes its watcher without an event.
    for w in &mut watchers {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(w, &mut line).expect("closed in time");
        assert_eq!(n, 0, "{line:?}");
    }
    for h in [&a, &b] {
        assert_eq!(next_event(&mut resume(h, "first")).1, "unknown");
    }
}
