//! `tungstenite-naive ADDR [--nodelay]`: tungstenite used the way an
//! ordinary user would: std `TcpListener`, one thread per connection,
//! a blocking read/send loop.
//!
//! * Any path: echo every text and binary message.
//! * `/chat`: relay every text message to every client of `/chat`, sender
//!   included. Each chat client gets a second thread that owns a writer
//!   `WebSocket` over a clone of the socket and drains an unbounded channel;
//!   the room is a shared `Vec` of those channels.

use std::net::TcpStream;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use tungstenite::handshake::server::{Request, Response};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

type Room = Arc<Mutex<Vec<Sender<Message>>>>;

fn main() {
    let args = wsportal_bench::server_args::parse();
    wsportal_bench::raise_nofile_limit();
    let listener = std::net::TcpListener::bind(&args.addr).expect("bind");
    println!(
        "tungstenite-naive listening on {}",
        listener.local_addr().unwrap()
    );
    let room: Room = Arc::default();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if args.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let room = room.clone();
        std::thread::spawn(move || handle(stream, room));
    }
}

fn handle(stream: TcpStream, room: Room) {
    // Remember the request path while accepting the upgrade.
    let mut path = String::new();
    // The closure's signature is tungstenite's `Callback`, large error and all.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(ws) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    if path == "/chat" {
        chat(ws, room);
    } else {
        echo(ws);
    }
}

fn echo(mut ws: WebSocket<TcpStream>) {
    // Pings are answered and close replies sent by tungstenite itself.
    while let Ok(msg) = ws.read() {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).is_err() {
            return;
        }
    }
}

fn chat(mut ws: WebSocket<TcpStream>, room: Room) {
    let Ok(clone) = ws.get_ref().try_clone() else {
        return;
    };
    let (tx, rx) = channel::<Message>();
    room.lock().unwrap().push(tx);
    std::thread::spawn(move || {
        let mut writer = WebSocket::from_raw_socket(clone, Role::Server, None);
        for msg in rx {
            if writer.send(msg).is_err() {
                break;
            }
        }
    });
    while let Ok(msg) = ws.read() {
        if msg.is_text() {
            // Send to everyone; forget clients whose writer thread is gone.
            room.lock()
                .unwrap()
                .retain(|tx| tx.send(msg.clone()).is_ok());
        }
    }
    // Our own sender stays in the room until a later broadcast finds the
    // writer thread gone, as in the simplest version of this pattern. The
    // writer thread, though, only ends once the room drops its sender.
}
