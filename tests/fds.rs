//! Out of file descriptors: the acceptor says so once at warn level (not a
//! hundred times a second), leaves the waiting connection queued, and serves
//! it once descriptors are free again. Its own test binary (its own
//! process) with one test, since the descriptor limit is the process's.
#![cfg(unix)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::Level;
use socket2::{Domain, Socket, Type};
use wsportal::Server;

const WAIT: Duration = Duration::from_secs(20);

/// What wsportal logged about accepting.
static LINES: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target().starts_with("wsportal")
    }

    fn log(&self, r: &log::Record<'_>) {
        let text = r.args().to_string();
        if self.enabled(r.metadata()) && text.starts_with("accept") {
            LINES.lock().unwrap().push((r.level(), text));
        }
    }

    fn flush(&self) {}
}

fn lines() -> Vec<(Level, String)> {
    LINES.lock().unwrap().clone()
}

fn fd_limit() -> libc::rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit for getrlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r
}

fn set_fd_limit(r: &libc::rlimit) {
    // SAFETY: `r` is a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, r) }, 0);
}

/// Sends a GET for `/` on `s` and returns the response.
fn get(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn running_out_of_descriptors_is_logged_once_and_the_waiting_client_is_served() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let mut server = Server::new();
    server.define_page("/", "text/plain", "hello");
    let handle = server.start("127.0.0.1:0").unwrap();
    let addr: SocketAddr = handle.local_addr();

    // Two sockets made while there are descriptors, connected once there
    // are none: connecting takes no new descriptor.
    let socket = || Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let (first, queued) = (socket(), socket());
    // A low limit, and every descriptor under it taken.
    let saved = fd_limit();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
    assert!(open < 200, "{open} descriptors open already");
    set_fd_limit(&libc::rlimit {
        rlim_cur: saved.rlim_max.min(256),
        ..saved
    });
    let mut filler: Vec<File> = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        filler.push(f);
        assert!(filler.len() <= 256);
    }
    // An accept that was already waiting holds a descriptor it reserved
    // before the table filled: `first` may get it. Every later accept
    // fails; `queued` waits behind them.
    first.connect(&addr.into()).unwrap();
    let deadline = Instant::now() + WAIT;
    while lines().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    queued.connect(&addr.into()).unwrap();
    // Descriptors again: both are served.
    drop(filler);
    set_fd_limit(&saved);
    assert!(get(first.into()).ends_with("hello"));
    let response = get(queued.into());
    assert!(response.ends_with("hello"), "{response:?} {:?}", lines());

    let lines = lines();
    let (first, rest) = lines.split_first().expect("a failed accept was logged");
    assert_eq!(first.0, Level::Warn, "{lines:?}");
    assert!(first.1.starts_with("accept failed: "), "{lines:?}");
    let (last, again) = rest.split_last().expect("more lines");
    assert!(again.len() >= 2, "{lines:?}");
    assert!(
        again
            .iter()
            .all(|(level, text)| *level == Level::Debug && text.starts_with("accept failed again")),
        "{lines:?}"
    );
    assert_eq!(last.0, Level::Info, "{lines:?}");
    assert_eq!(
        last.1,
        format!("accepting again after {} failed attempts", again.len() + 1)
    );
    handle.close();
}
