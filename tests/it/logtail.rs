//! The `logtail` example, run as it is (its source is this module's child):
//! token auth, per-client WebSocket filters, the filtered and resumable
//! event stream, `/stats`, and a clean stop that also ends the tail thread.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;

use crate::support::*;

#[path = "../../examples/logtail.rs"]
#[allow(dead_code)] // because the example's `main` is not called here.
mod app;

/// A log file of this test's own, removed when dropped.
struct LogFile(PathBuf);

impl LogFile {
    fn new(first: &str) -> LogFile {
        let name = format!("wsportal-logtail-{}.log", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, first).unwrap();
        LogFile(path)
    }

    fn append(&self, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.0)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn text(ws: &mut tungstenite::WebSocket<TcpStream>) -> String {
    recv(ws).into_text().unwrap().to_string()
}

#[test]
fn logtail_filters_resumes_reports_and_stops_cleanly() {
    init_logs();
    let log = LogFile::new("an old line, not sent\n");
    let (handle, tail) = app::serve("127.0.0.1:0", log.0.clone(), "secret").unwrap();
    let addr = handle.local_addr();

    // No token, a wrong one: 401, for the WebSocket and the stream alike.
    assert!(connect_with(addr, "/logs", &[]).is_err());
    let (status, _) = http(addr, "GET /sse?token=nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 401);

    // Every client sends its filter first: the answer shows it is registered.
    let mut all = connect(addr, "/logs?token=secret");
    all.send("".into()).unwrap();
    assert_eq!(text(&mut all), "filter: \"\"");
    let bearer = [("Authorization", "Bearer secret")];
    let mut errors = connect_with(addr, "/logs", &bearer).unwrap();
    errors.send("ERROR".into()).unwrap();
    assert_eq!(text(&mut errors), "filter: \"ERROR\"");
    let mut sse_errors = sse(addr, "/sse?token=secret&filter=ERROR", "");
    // A filter from the query string is there from the start. (A ping
    // answered means its connection is registered for pushes.)
    let mut seeded = connect(addr, "/logs?token=secret&filter=two");
    seeded
        .send(tungstenite::Message::Ping(b"up".to_vec().into()))
        .unwrap();
    while !matches!(seeded.read().unwrap(), tungstenite::Message::Pong(_)) {}

    log.append("one INFO\ntwo ERROR\nthree ERR");
    log.append("OR, a line written in two pieces\n");
    assert_eq!(text(&mut all), "one INFO");
    assert_eq!(text(&mut all), "two ERROR");
    assert_eq!(text(&mut all), "three ERROR, a line written in two pieces");
    assert_eq!(text(&mut errors), "two ERROR");
    assert_eq!(
        text(&mut errors),
        "three ERROR, a line written in two pieces"
    );
    assert_eq!(text(&mut seeded), "two ERROR");
    assert_eq!(
        next_event(&mut sse_errors),
        ("2".into(), "two ERROR".into())
    );
    assert_eq!(next_event(&mut sse_errors).0, "3");

    // A browser resuming after line 1 gets what it missed, through its filter.
    let mut resumed = sse(
        addr,
        "/sse?token=secret&filter=three",
        "Last-Event-ID: 1\r\n",
    );
    assert_eq!(next_event(&mut resumed).0, "3");
    log.append("four three\n");
    assert_eq!(next_event(&mut resumed), ("4".into(), "four three".into()));

    let (status, stats) = http(addr, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(
        stats.ends_with(r#"{"lines":4,"websocket_clients":3,"sse_clients":2}"#),
        "{stats}"
    );

    // The stop path of `main`: asked from elsewhere, then closed; the tail
    // thread ends with the server.
    drop((errors, seeded, sse_errors, resumed));
    let closed = std::thread::spawn(move || recv_close(&mut all).0);
    handle.closer().close();
    handle.wait();
    handle.close();
    tail.join().unwrap();
    assert_eq!(closed.join().unwrap(), 1001);
}
