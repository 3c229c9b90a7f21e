//! Every server example stops cleanly: run as it is (its source is a child
//! of this module) with `--seconds 0`, it starts, closes, joins its own
//! threads and returns `Ok`; in a process of its own, SIGINT or SIGTERM
//! closes it (1001 to its clients) and it exits with status 0. (`logtail`
//! has a fuller test of its own.)

use crate::support::*;

// Because the examples' `main`s are not called here:
#[allow(dead_code)]
#[path = "../../examples/chat.rs"]
mod chat;
#[allow(dead_code)]
#[path = "../../examples/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../../examples/demo.rs"]
mod demo;
#[allow(dead_code)]
#[path = "../../examples/echo.rs"]
mod echo;
#[allow(dead_code)]
#[path = "../../examples/hooks.rs"]
mod hooks;
#[allow(dead_code)]
#[path = "../../examples/push.rs"]
mod push;
#[allow(dead_code)]
#[path = "../../examples/soak.rs"]
mod soak;
#[allow(dead_code)]
#[path = "../../examples/stream.rs"]
mod stream;

#[test]
fn every_server_example_stops_cleanly_after_its_seconds() {
    let args: Vec<String> = ["127.0.0.1:0", "--seconds", "0"].map(String::from).into();
    chat::run(&args).unwrap();
    demo::run(&args).unwrap();
    echo::run(&args).unwrap();
    hooks::run(&args).unwrap();
    push::run(&args).unwrap();
    soak::run(&args).unwrap();
    stream::run(&args).unwrap();
}

/// A command line an example does not understand is an error at once
/// (its `main` prints the usage line and exits with status 2), never a
/// server that runs on, ignoring it.
#[test]
fn examples_refuse_what_they_do_not_understand() {
    type Run = fn(&[String]) -> Result<(), Box<dyn std::error::Error>>;
    let examples: [(&str, Run); 7] = [
        ("chat", chat::run),
        ("demo", demo::run),
        ("echo", echo::run),
        ("hooks", hooks::run),
        ("push", push::run),
        ("soak", soak::run),
        ("stream", stream::run),
    ];
    for (name, run) in examples {
        for (bad, why) in [
            (
                &["127.0.0.1:0", "--second", "5"][..],
                "unknown option --second",
            ),
            (
                &["127.0.0.1:0", "--seconds", "abc"][..],
                "--seconds: bad value \"abc\"",
            ),
            (&["127.0.0.1:0", "--seconds"][..], "--seconds needs a value"),
            (
                &["127.0.0.1:0", "extra", "--seconds", "0"][..],
                "unexpected argument \"extra\"",
            ),
        ] {
            let args: Vec<String> = bad.iter().map(|a| (*a).to_owned()).collect();
            let err = run(&args).expect_err(name);
            assert_eq!(err.to_string(), why, "{name} {bad:?}");
        }
    }
    let both = ["--unix", "/tmp/x.sock", "127.0.0.1:0"].map(String::from);
    assert!(demo::run(&both).is_err());
    let half = ["127.0.0.1:0", "--cert", "c.pem", "--seconds", "0"].map(String::from);
    assert!(demo::run(&half).is_err());
    assert!(echo::run(&half).is_err());
}

/// The client example: `/close` takes a numeric code (and `/closed` is a
/// message, not a close); `--ca` is for `wss://`; unknown flags are refused.
#[test]
fn the_client_example_reads_its_commands_and_flags_strictly() {
    assert_eq!(client::close_command("/close"), Some(Ok((1000, ""))));
    assert_eq!(
        client::close_command("/close 4000 bye now"),
        Some(Ok((4000, "bye now")))
    );
    assert_eq!(client::close_command("/closed"), None);
    assert_eq!(client::close_command("hello"), None);
    assert!(matches!(client::close_command("/close abc"), Some(Err(_))));
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let refused = |a: &[&str]| client::parse(&args(a)).err().unwrap_or_default();
    assert_eq!(
        refused(&["ws://127.0.0.1:1/x", "--ca", "c.pem"]),
        "--ca PATH is for wss:// URLs"
    );
    assert_eq!(
        refused(&["ws://127.0.0.1:1/x", "--bogus"]),
        "unknown option --bogus"
    );
    assert_eq!(
        refused(&["ws://127.0.0.1:1/x", "--ca"]),
        "--ca needs a value"
    );
    assert_eq!(
        refused(&["ws://127.0.0.1:1/x", "ws://127.0.0.1:2/y"]),
        "unexpected argument \"ws://127.0.0.1:2/y\""
    );
    let both = client::parse(&args(&["--reconnect", "ws://h:1/x", "--proxy-env"])).unwrap();
    assert!(both.reconnect && both.proxy_env);
    assert_eq!(both.url, "ws://h:1/x");
    assert!(client::parse(&args(&["wss://localhost:1/x", "--ca", "c.pem"])).is_ok());
}

/// `demo --unix PATH` serves on a Unix-domain socket and removes its file.
#[cfg(unix)]
#[test]
fn the_demo_serves_on_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("wsportal-demo-{}.sock", std::process::id()));
    let args: Vec<String> = ["--unix", path.to_str().unwrap(), "--seconds", "0"]
        .map(String::from)
        .into();
    demo::run(&args).unwrap();
    assert!(!path.exists(), "the socket file is removed");
}

/// Without the `redis` feature, `--redis` is refused with a message that
/// names the feature (rather than ignored).
#[cfg(not(feature = "redis"))]
#[test]
fn redis_flag_without_the_feature_says_so() {
    let args: Vec<String> = [
        "127.0.0.1:0",
        "--redis",
        "redis://127.0.0.1:1/",
        "--seconds",
        "0",
    ]
    .map(String::from)
    .into();
    for e in [demo::run(&args).unwrap_err(), chat::run(&args).unwrap_err()] {
        assert!(e.to_string().contains("redis"), "{e}");
        assert!(e.to_string().contains("feature"), "{e}");
    }
}

// ------------------------------------------------------------ signals

/// The variable that makes this test binary, run again, an example's process.
const CHILD: &str = "WSPORTAL_EXAMPLE_CHILD";

/// Not a test of its own: in a process started by `spawn_example`, runs
/// the example named in `WSPORTAL_EXAMPLE_CHILD` (with its arguments) and
/// exits with 0 when its `run` returns `Ok`, 1 otherwise, as its `main` does.
/// In the test run itself it does nothing.
#[test]
fn example_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let words: Vec<String> = spec.split(' ').map(String::from).collect();
    let args = &words[1..];
    let result = match words[0].as_str() {
        "chat" => chat::run(args),
        "demo" => demo::run(args),
        "echo" => echo::run(args),
        "hooks" => hooks::run(args),
        "push" => push::run(args),
        "soak" => soak::run(args),
        "stream" => stream::run(args),
        other => panic!("no example {other}"),
    };
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

/// An example running in a process of its own (this binary, running only
/// `example_child`), and the address it printed.
struct ExampleProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl ExampleProcess {
    fn spawn(example: &str) -> ExampleProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["examples::example_child", "--exact", "--nocapture"])
            .env(CHILD, format!("{example} 127.0.0.1:0"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the test binary runs again");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        // Reads the child's output to its end, so that it never blocks.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((_, after)) = line.split_once("listening on ") {
                    let addr = after.split("://").last().unwrap_or(after);
                    let addr = addr.split(['/', ' ']).next().unwrap_or("").to_owned();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("the example says where it listens");
        ExampleProcess {
            child,
            addr: addr.parse().expect("an address"),
        }
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Its exit status, waited for at most `WAIT`.
    fn exit_status(mut self) -> std::process::ExitStatus {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut child = self.child;
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait());
            child
        });
        match rx.recv_timeout(WAIT) {
            Ok(status) => {
                let _ = waiter.join();
                status.unwrap()
            }
            Err(_) => {
                self.child = waiter.join().unwrap();
                let _ = self.child.kill();
                panic!("the example did not exit after the signal");
            }
        }
    }
}

#[test]
fn the_demo_stops_cleanly_on_sigterm() {
    let demo = ExampleProcess::spawn("demo");
    let mut chat = connect(demo.addr, "/chat");
    ping_sync(&mut chat);
    let mut events = sse(demo.addr, "/events", "");
    // POST /say: a chat message from curl or a webhook.
    let say = "POST /say HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(http(demo.addr, say).0, 204);
    assert_eq!(recv(&mut chat), tungstenite::Message::text("hello"));
    let big = format!(
        "POST /say HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n{}",
        "x".repeat(4097)
    );
    assert_eq!(http(demo.addr, &big).0, 413);
    demo.signal("TERM");
    assert_eq!(recv_close(&mut chat).0, 1001);
    // The event stream ends.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut events, &mut rest).expect("the stream ends");
    let status = demo.exit_status();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn every_server_example_stops_cleanly_on_sigint_and_sigterm() {
    for (example, path, signal) in [
        ("echo", "/echo", "INT"),
        ("chat", "/chat", "TERM"),
        ("hooks", "/err", "TERM"),
        ("push", "/counter", "INT"),
        ("soak", "/echo", "TERM"),
        ("stream", "/log", "TERM"),
    ] {
        let p = ExampleProcess::spawn(example);
        let mut ws = connect(p.addr, path);
        p.signal(signal);
        assert_eq!(recv_close(&mut ws).0, 1001, "{example}");
        let status = p.exit_status();
        assert_eq!(status.code(), Some(0), "{example}: {status:?}");
    }
}
