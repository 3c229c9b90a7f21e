//! The reconnecting client (`Client::reconnecting`) against our own server,
//! stopped and started again on the same port: the hooks run on each new
//! connection, sends fail at once while it is away, a close the program asks
//! for is final, and refusals it cannot mend stop it.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use wsportal::{Client, Error, Message, Reconnect, Resource, Server, ServerHandle};

use crate::support::*;

/// An echo server on `addr` whose `/bye` path closes with 4001 at once.
fn echo_on(addr: SocketAddr) -> ServerHandle {
    init_logs();
    let mut server = Server::new();
    server.define_resource(
        "/echo",
        Resource::new().on_message(|ws, msg| {
            let _ = ws.send(msg);
        }),
    );
    server.define_resource(
        "/bye",
        Resource::new().on_open(|ws| ws.close(4001, "go away")),
    );
    server.start(addr).expect("server starts")
}

fn quick() -> Reconnect {
    Reconnect::new()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
}

#[test]
fn client_reconnects_to_a_restarted_server_and_reruns_on_open() {
    let server = echo_on("127.0.0.1:0".parse().unwrap());
    let addr = server.local_addr();
    let opened = Events::new();
    let closed = Events::new();
    let (o, c) = (opened.tx.clone(), closed.tx.clone());
    let hooks = Resource::new()
        .on_open(move |ws| {
            // Re-subscribing: the first thing each connection sends.
            let _ = ws.send_text("subscribe");
            let _ = o.send(());
        })
        .on_close(move |_, code, _| {
            let _ = c.send(code);
        });
    let ws = Client::new(format!("ws://{addr}/echo"))
        .reconnect(quick())
        .reconnecting(hooks)
        .expect("valid settings");
    opened.next();
    assert!(ws.wait_connected(WAIT));
    assert_eq!(
        ws.recv_timeout(WAIT).unwrap(),
        Message::Text("subscribe".into())
    );
    ws.send_text("one").unwrap();
    assert_eq!(ws.recv_timeout(WAIT).unwrap(), Message::Text("one".into()));

    server.close();
    closed.next();
    // Away: a send fails at once and says so.
    assert!(matches!(ws.send_text("lost"), Err(Error::NotConnected)));

    let server = echo_on(addr);
    opened.next();
    assert!(ws.wait_connected(WAIT));
    assert_eq!(ws.connections(), 2);
    assert_eq!(
        ws.recv_timeout(WAIT).unwrap(),
        Message::Text("subscribe".into())
    );
    ws.send_text("two").unwrap();
    assert_eq!(ws.recv_timeout(WAIT).unwrap(), Message::Text("two".into()));

    // A close the program asks for is final.
    ws.close(1000, "done");
    assert_eq!(closed.next(), 1000);
    assert!(ws.wait_stopped(WAIT).is_some());
    assert!(matches!(ws.send_text("after"), Err(Error::Closed)));
    assert_eq!(ws.connections(), 2);
    assert!(matches!(ws.recv_timeout(WAIT), Err(Error::Closed)));
    server.close();
}

#[test]
fn client_reconnect_gives_up_after_max_attempts() {
    init_logs();
    // A port nothing listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ws = Client::new(format!("ws://{addr}/"))
        .reconnect(quick().max_attempts(Some(3)))
        .reconnecting(Resource::new())
        .unwrap();
    let why = ws.wait_stopped(WAIT).expect("it gives up");
    assert!(why.contains("i/o"), "{why}");
    assert_eq!(ws.connections(), 0);
    assert!(matches!(ws.send_text("x"), Err(Error::Closed)));
}

#[test]
fn client_reconnect_stops_on_a_refusal_or_a_policy_close_when_asked() {
    let server = echo_on("127.0.0.1:0".parse().unwrap());
    let addr = server.local_addr();
    let refused = Client::new(format!("ws://{addr}/nowhere"))
        .reconnect(quick())
        .reconnecting(Resource::new())
        .unwrap();
    let why = refused.wait_stopped(WAIT).expect("a 404 is final");
    assert!(why.contains("404"), "{why}");

    let bye = Client::new(format!("ws://{addr}/bye"))
        .reconnect(quick().stop_on_policy_close(true))
        .reconnecting(Resource::new())
        .unwrap();
    let why = bye.wait_stopped(WAIT).expect("4001 is final when asked");
    assert!(why.contains("4001"), "{why}");
    assert_eq!(bye.connections(), 1);

    assert!(matches!(
        Client::new("ws://h/#x").reconnecting(Resource::new()),
        Err(Error::InvalidInput(_))
    ));
    server.close();
}

/// A server that answers its first upgrade with `503` and `Retry-After: 0`,
/// then accepts: the refusal is retried, not final.
#[test]
fn client_reconnect_retries_a_503() {
    init_logs();
    let refused = std::sync::atomic::AtomicBool::new(false);
    let mut server = Server::new();
    server.define_resource(
        "/echo",
        Resource::new()
            .on_handshake(move |_| {
                if refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    Ok(wsportal::Accept::new())
                } else {
                    Err(wsportal::Reject::new(503).header("Retry-After", "0"))
                }
            })
            .on_message(|ws, msg| {
                let _ = ws.send(msg);
            }),
    );
    let h = server.start("127.0.0.1:0").expect("server starts");
    let ws = Client::new(format!("ws://{}/echo", h.local_addr()))
        .reconnect(quick())
        .reconnecting(Resource::new())
        .unwrap();
    assert!(ws.wait_connected(WAIT), "the 503 was retried");
    ws.send_text("after 503").unwrap();
    assert_eq!(
        ws.recv_timeout(WAIT).unwrap(),
        Message::Text("after 503".into())
    );
    ws.close(1000, "");
    h.close();
}

/// With `Reconnect::buffer`, sends while away are held and go out in order
/// on the next connection, after its `on_open`; one that does not fit fails.
#[test]
fn client_reconnect_buffer_holds_sends_while_away() {
    let server = echo_on("127.0.0.1:0".parse().unwrap());
    let addr = server.local_addr();
    let closed = Events::new();
    let c = closed.tx.clone();
    let hooks = Resource::new()
        .on_open(|ws| {
            let _ = ws.send_text("subscribe");
        })
        .on_close(move |_, code, _| {
            let _ = c.send(code);
        });
    let ws = Client::new(format!("ws://{addr}/echo"))
        .reconnect(quick().buffer(1024))
        .reconnecting(hooks)
        .unwrap();
    assert!(ws.wait_connected(WAIT));
    assert_eq!(
        ws.recv_timeout(WAIT).unwrap(),
        Message::Text("subscribe".into())
    );

    server.close();
    closed.next();
    ws.send_text("a").unwrap();
    ws.send_text("b").unwrap();
    let too_big = "x".repeat(2000);
    assert!(matches!(ws.send_text(&too_big), Err(Error::NotConnected)));

    let server = echo_on(addr);
    for expected in ["subscribe", "a", "b"] {
        assert_eq!(
            ws.recv_timeout(WAIT).unwrap(),
            Message::Text(expected.into())
        );
    }
    ws.close(1000, "");
    server.close();
}
