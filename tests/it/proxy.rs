//! The client through an HTTP CONNECT proxy and a SOCKS5 proxy written here
//! (std threads on 127.0.0.1:0): ws:// and (feature `tls`) wss:// with TLS
//! inside the tunnel, credentials from the proxy URL, and a refusal's status.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};

use wsportal::{Client, Error, Message, Server, ServerHandle};

use crate::support::*;

/// A CONNECT proxy that serves `conns` connections, then returns the
/// request heads it saw. With `auth`, it wants that `Proxy-Authorization`.
pub(crate) fn proxy(
    auth: Option<&'static str>,
    conns: usize,
) -> (SocketAddr, JoinHandle<Vec<String>>) {
    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = thread::spawn(move || {
        let mut heads = Vec::new();
        let mut pumps = Vec::new();
        for _ in 0..conns {
            let (mut client, _) = listener.accept().unwrap();
            client.set_read_timeout(Some(WAIT)).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(client.read(&mut byte).unwrap(), 1, "the head ended early");
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            heads.push(head.clone());
            if let Some(want) = auth {
                if !head.contains(&format!("\r\nProxy-Authorization: {want}\r\n")) {
                    let _ = client.write_all(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                          Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
                    );
                    continue;
                }
            }
            let target = head
                .strip_prefix("CONNECT ")
                .and_then(|r| r.split(' ').next())
                .expect("a CONNECT request")
                .to_owned();
            let server = TcpStream::connect(target).unwrap();
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .unwrap();
            client.set_read_timeout(None).unwrap();
            pump(client, server, &mut pumps);
        }
        for p in pumps {
            p.join().unwrap();
        }
        heads
    });
    (addr, t)
}

/// Copies both ways between `client` and `server` on two threads, each
/// shutting its destination's write side when its source ends.
fn pump(client: TcpStream, server: TcpStream, pumps: &mut Vec<JoinHandle<()>>) {
    for (mut from, to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        pumps.push(thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut &to);
            let _ = to.shutdown(Shutdown::Write);
        }));
    }
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// A SOCKS5 proxy (RFC 1928, and RFC 1929 with `auth`) that serves `conns`
/// connections, then returns the destinations asked for, as
/// "ATYP HOST:PORT".
fn socks5(
    auth: Option<(&'static str, &'static str)>,
    conns: usize,
) -> (SocketAddr, JoinHandle<Vec<String>>) {
    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = thread::spawn(move || {
        let mut asked = Vec::new();
        let mut pumps = Vec::new();
        for _ in 0..conns {
            let (mut c, _) = listener.accept().unwrap();
            c.set_read_timeout(Some(WAIT)).unwrap();
            let hello = read_n(&mut c, 2);
            assert_eq!(hello[0], 5);
            let methods = read_n(&mut c, usize::from(hello[1]));
            if let Some((user, password)) = auth {
                assert!(methods.contains(&2), "{methods:?}");
                c.write_all(&[5, 2]).unwrap();
                let head = read_n(&mut c, 2);
                let u = read_n(&mut c, usize::from(head[1]));
                let plen = read_n(&mut c, 1)[0];
                let p = read_n(&mut c, usize::from(plen));
                if u != user.as_bytes() || p != password.as_bytes() {
                    c.write_all(&[1, 1]).unwrap();
                    continue;
                }
                c.write_all(&[1, 0]).unwrap();
            } else {
                c.write_all(&[5, 0]).unwrap();
            }
            let req = read_n(&mut c, 4);
            assert_eq!(&req[..3], &[5, 1, 0]);
            let host = match req[3] {
                1 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(read_n(&mut c, 4)).unwrap())
                    .to_string(),
                3 => {
                    let len = read_n(&mut c, 1)[0];
                    String::from_utf8(read_n(&mut c, usize::from(len))).unwrap()
                }
                other => panic!("address type {other}"),
            };
            let port = u16::from_be_bytes(<[u8; 2]>::try_from(read_n(&mut c, 2)).unwrap());
            asked.push(format!("{} {host}:{port}", req[3]));
            let server = TcpStream::connect((host.as_str(), port)).unwrap();
            c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
            c.set_read_timeout(None).unwrap();
            pump(c, server, &mut pumps);
        }
        for p in pumps {
            p.join().unwrap();
        }
        asked
    });
    (addr, t)
}

fn echo() -> ServerHandle {
    let mut server = Server::new();
    server.define_resource("/echo", echo_resource());
    server.start("127.0.0.1:0").expect("server starts")
}

fn round_trip(ws: &wsportal::ClientHandle) {
    ws.send_text("through").unwrap();
    assert_eq!(
        ws.recv_timeout(WAIT).unwrap(),
        Message::Text("through".into())
    );
}

#[test]
fn client_through_a_connect_proxy() {
    let server = echo();
    let (proxy, seen) = proxy(None, 1);
    let ws = Client::new(format!("ws://{}/echo", server.local_addr()))
        .proxy(format!("http://{proxy}"))
        .connect()
        .expect("connects through the proxy");
    assert_eq!(ws.peer_addr(), proxy);
    round_trip(&ws);
    ws.disconnect(1000, "");
    let heads = seen.join().unwrap();
    let authority = server.local_addr().to_string();
    assert!(
        heads[0].starts_with(&format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        )),
        "{heads:?}"
    );
    assert!(!heads[0].contains("Proxy-Authorization"), "{heads:?}");
}

#[test]
fn client_proxy_credentials_and_refusal() {
    let server = echo();
    let (proxy, seen) = proxy(Some("Basic dXNlcjpwQHNz"), 2);
    let url = format!("ws://{}/echo", server.local_addr());
    let refused = Client::new(&url)
        .proxy(format!("http://user:wrong@{proxy}"))
        .connect();
    assert!(
        matches!(refused, Err(Error::Proxy { status: 407 })),
        "{refused:?}"
    );
    let ws = Client::new(&url)
        .proxy(format!("http://user:p%40ss@{proxy}/"))
        .connect()
        .expect("the right credentials open the tunnel");
    round_trip(&ws);
    ws.disconnect(1000, "");
    assert_eq!(seen.join().unwrap().len(), 2);
    assert!(matches!(
        Client::new(&url).proxy("socks4://127.0.0.1:1").connect(),
        Err(Error::InvalidInput(_))
    ));
}

#[cfg(feature = "tls")]
#[test]
fn client_wss_through_a_connect_proxy() {
    let certs = crate::tls::Certs::new();
    let mut server = Server::new();
    server.define_resource("/echo", echo_resource());
    let server = server
        .start_tls("127.0.0.1:0", certs.server())
        .expect("server starts");
    let (proxy, seen) = proxy(None, 1);
    let port = server.local_addr().port();
    let ws = Client::new(format!("wss://localhost:{port}/echo"))
        .tls_config(certs.client_config())
        .proxy(proxy.to_string())
        .connect()
        .expect("TLS inside the tunnel");
    round_trip(&ws);
    ws.disconnect(1000, "");
    let heads = seen.join().unwrap();
    assert!(
        heads[0].starts_with(&format!("CONNECT localhost:{port} ")),
        "{heads:?}"
    );
}

#[test]
fn client_through_a_socks5_proxy() {
    let server = echo();
    let port = server.local_addr().port();
    let (proxy, seen) = socks5(Some(("user", "p@ss")), 3);
    // socks5h: the proxy resolves the name.
    let ws = Client::new(format!("ws://localhost:{port}/echo"))
        .proxy(format!("socks5h://user:p%40ss@{proxy}"))
        .connect()
        .expect("connects through the socks5 proxy");
    round_trip(&ws);
    ws.disconnect(1000, "");
    // socks5 with an address: sent as one.
    let ws = Client::new(format!("ws://127.0.0.1:{port}/echo"))
        .proxy(format!("socks5://user:p%40ss@{proxy}"))
        .connect()
        .expect("connects through the socks5 proxy");
    round_trip(&ws);
    ws.disconnect(1000, "");
    let refused = Client::new(format!("ws://127.0.0.1:{port}/echo"))
        .proxy(format!("socks5://user:wrong@{proxy}"))
        .connect();
    assert!(
        matches!(refused, Err(Error::Proxy { status: 407 })),
        "{refused:?}"
    );
    assert_eq!(
        seen.join().unwrap(),
        [format!("3 localhost:{port}"), format!("1 127.0.0.1:{port}")]
    );
}
