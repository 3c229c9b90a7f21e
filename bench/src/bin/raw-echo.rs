//! `raw-echo ADDR [--nodelay]`: plain TCP echo, one thread per connection.
//! The ceiling for the echo scenarios: no WebSocket work at all.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let args = wsportal_bench::server_args::parse();
    wsportal_bench::raise_nofile_limit();
    let listener = TcpListener::bind(&args.addr).expect("bind");
    println!("raw-echo listening on {}", listener.local_addr().unwrap());
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if args.nodelay {
            let _ = stream.set_nodelay(true);
        }
        std::thread::spawn(move || echo(stream));
    }
}

fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
