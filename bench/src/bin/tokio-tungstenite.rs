//! `tokio-tungstenite ADDR [--nodelay]`: tokio multi-thread runtime with
//! tokio-tungstenite, one task per connection.
//!
//! * Any path: echo every text and binary message.
//! * `/chat`: relay text messages to every `/chat` client, sender included,
//!   through a `tokio::sync::broadcast` channel. A client that falls more
//!   than `ROOM_CAPACITY` messages behind gets `Lagged` and is closed.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

const ROOM_CAPACITY: usize = 1024;

#[tokio::main]
async fn main() {
    let args = wsportal_bench::server_args::parse();
    wsportal_bench::raise_nofile_limit();
    let listener = TcpListener::bind(&args.addr).await.expect("bind");
    println!(
        "tokio-tungstenite listening on {}",
        listener.local_addr().unwrap()
    );
    let (room, _) = broadcast::channel::<Message>(ROOM_CAPACITY);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if args.nodelay {
            let _ = stream.set_nodelay(true);
        }
        tokio::spawn(handle(stream, room.clone()));
    }
}

async fn handle(stream: TcpStream, room: broadcast::Sender<Message>) {
    let mut path = String::new();
    // The closure's signature is tungstenite's `Callback`, large error and all.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    if path != "/chat" {
        while let Some(Ok(msg)) = source.next().await {
            if (msg.is_text() || msg.is_binary()) && sink.send(msg).await.is_err() {
                return;
            }
        }
        return;
    }
    let mut rx = room.subscribe();
    loop {
        tokio::select! {
            incoming = source.next() => match incoming {
                Some(Ok(msg)) if msg.is_text() => {
                    let _ = room.send(msg);
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            relayed = rx.recv() => match relayed {
                Ok(msg) => {
                    if sink.send(msg).await.is_err() {
                        return;
                    }
                }
                // Lagged (too slow) or closed: drop the client.
                Err(_) => {
                    let _ = sink.close().await;
                    return;
                }
            },
        }
    }
}
