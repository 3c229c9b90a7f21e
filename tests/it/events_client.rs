//! The blocking event-stream client (`EventSource`) against our own server:
//! resuming with `Last-Event-ID` from a stream that keeps a history (events
//! sent while it was away arrive once, in order), `204` stopping it, and a
//! stop from another thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wsportal::{
    Accept, Error, Event, EventPublisher, EventReader, EventSource, EventStream, Reject, Server,
    ServerHandle,
};

use crate::support::*;

/// A stream with a history at `/events`. Every handshake reports its
/// `Last-Event-ID`; the second and later ones wait for a `go` (so that the
/// test publishes while the client is away), or answer `204` if `then_204`.
fn server(
    then_204: bool,
) -> (
    ServerHandle,
    EventPublisher,
    Events<Option<String>>,
    Events<()>,
) {
    init_logs();
    let seen = Events::new();
    let go = Events::<()>::new();
    let (tx, rx) = (seen.tx.clone(), go.rx.clone());
    let count = Arc::new(AtomicUsize::new(0));
    let stream = EventStream::new().history(100).on_handshake(move |req| {
        let _ = tx.send(req.header("last-event-id").map(str::to_owned));
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(Accept::new());
        }
        if then_204 {
            return Err(Reject::new(204));
        }
        rx.recv_timeout(WAIT).expect("the test says go");
        Ok(Accept::new())
    });
    let publisher = stream.publisher();
    let mut server = Server::new();
    server.define_event_stream("/events", stream);
    let h = server.start("127.0.0.1:0").expect("server starts");
    (h, publisher, seen, go)
}

fn connect(h: &ServerHandle) -> EventReader {
    EventSource::new(format!("http://{}/events", h.local_addr()))
        .retry(Duration::from_millis(20))
        .connect()
        .expect("the stream opens")
}

fn next_data(events: &mut EventReader) -> String {
    events.recv_timeout(WAIT).expect("an event").data
}

/// Ends the one client's connection from the server's side.
fn kick(publisher: &EventPublisher) {
    let clients = publisher.clients();
    assert_eq!(clients.len(), 1);
    clients[0].close();
}

#[test]
fn events_client_resumes_from_the_history_once_in_order() {
    let (h, publisher, seen, go) = server(false);
    let mut events = connect(&h);
    assert_eq!(seen.next(), None);
    for i in 1..=2 {
        publisher
            .send(&Event::new(format!("e{i}")).id(i.to_string()))
            .unwrap();
    }
    assert_eq!(next_data(&mut events), "e1");
    let second = events.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (second.data.as_str(), second.last_event_id.as_str()),
        ("e2", "2")
    );

    kick(&publisher);
    // Away (its reconnect waits for `go`): these go to the history only.
    for i in 3..=5 {
        // Nobody is connected (NoConnections), but the history keeps it.
        let _ = publisher.send(&Event::new(format!("e{i}")).id(i.to_string()));
    }
    go.tx.send(()).unwrap();
    // Reading reconnects (the client has no thread of its own).
    for i in 3..=5 {
        assert_eq!(next_data(&mut events), format!("e{i}"));
    }
    assert_eq!(seen.next().as_deref(), Some("2"));
    // Live again, and nothing replayed twice.
    publisher
        .send(&Event::new("e6").id("6").name("tick"))
        .unwrap();
    let live = events.recv_timeout(WAIT).unwrap();
    assert_eq!((live.event.as_str(), live.data.as_str()), ("tick", "e6"));
    assert_eq!(events.last_event_id(), "6");
    h.close();
}

#[test]
fn events_client_stops_on_204_and_from_another_thread() {
    let (h, publisher, seen, _go) = server(true);
    let mut events = connect(&h);
    assert_eq!(seen.next(), None);
    publisher.send(&Event::new("only").id("1")).unwrap();
    assert_eq!(next_data(&mut events), "only");
    kick(&publisher);
    assert!(matches!(events.recv_timeout(WAIT), Err(Error::Closed)));
    assert_eq!(seen.next().as_deref(), Some("1"));
    assert!(events.next().is_none());

    let (h2, _publisher, _seen, _go) = server(false);
    let mut events = connect(&h2);
    let closer = events.closer();
    let stopper = thread::spawn(move || closer.close());
    assert!(matches!(events.recv_timeout(WAIT), Err(Error::Closed)));
    stopper.join().unwrap();
    assert!(events.next().is_none());
    h.close();
    h2.close();
}

/// Over TLS and through a CONNECT proxy, as the WebSocket client.
#[cfg(feature = "tls")]
#[test]
fn events_client_over_https_through_a_proxy() {
    init_logs();
    let certs = crate::tls::Certs::new();
    let stream = EventStream::new().history(10);
    let publisher = stream.publisher();
    publisher.send(&Event::new("kept").id("1")).ok();
    let mut server = Server::new();
    server.define_event_stream("/events", stream);
    let h = server
        .start_tls("127.0.0.1:0", certs.server())
        .expect("server starts");
    let (proxy, seen) = crate::proxy::proxy(None, 1);
    let mut events = EventSource::new(format!(
        "https://localhost:{}/events",
        h.local_addr().port()
    ))
    .tls_config(certs.client_config())
    .proxy(format!("http://{proxy}"))
    .last_event_id("0")
    .connect()
    .expect("the stream opens");
    // Last-Event-ID 0 is not in the history: live events only.
    publisher.send(&Event::new("live").id("2")).unwrap();
    assert_eq!(next_data(&mut events), "live");
    drop(events);
    assert_eq!(seen.join().unwrap().len(), 1);
    h.close();
}
