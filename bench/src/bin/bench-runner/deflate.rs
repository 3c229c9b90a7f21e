//! The `deflate` group (issue 13): permessage-deflate on, against the
//! peers that have it. Opt-in: `SCENARIOS=deflate` (or `all`, or a name).
//!
//! loadgen offers what browsers offer (`permessage-deflate;
//! client_max_window_bits`) and fails a row whose server declines. Peers
//! run with the same settings where they can be set: 12-bit windows both
//! ways, context takeover both ways, level 6, every message compressed
//! (wsportal's and Python `websockets`' defaults; Node `ws` is given them
//! with `--deflate`, see bench/node/ws_server.js).

use std::path::Path;
use std::time::Duration;

use super::{strings, Scenario, Server};

/// Where scripts/bench.sh copies wsportal's `echo` and `chat` examples
/// built with `--features deflate` (the plain rows keep the plain build).
const DIR: &str = "target/bench/deflate";

/// Whether `server` has a row in the deflate scenarios.
pub fn serves(server: &Server) -> bool {
    matches!(
        server.name.as_str(),
        "python-websockets" | "python-websockets-sync" | "node-ws" | "wsportal"
    )
}

/// The command that runs `server` with compression on (`None`: shown as a
/// skipped row).
pub fn command(server: &Server, chat: bool) -> Option<Vec<String>> {
    let plain = if chat { &server.chat } else { &server.echo };
    match server.name.as_str() {
        // Python `websockets` compresses by default, with these settings.
        "python-websockets" | "python-websockets-sync" => plain.clone(),
        "node-ws" => plain.clone().map(|c| [c, strings(&["--deflate"])].concat()),
        "wsportal" => {
            let bin = format!("{DIR}/{}", if chat { "chat" } else { "echo" });
            Path::new(&bin).exists().then(|| vec![bin])
        }
        _ => None,
    }
}

/// The report's line on the group's settings.
pub fn header() -> String {
    "deflate: loadgen offers `permessage-deflate; client_max_window_bits`; servers use 12-bit \
     windows, context takeover and level 6, and compress every message; loadgen sends each \
     message compressed on its own (a fresh stream) and inflates and checks every byte it gets.\n"
        .into()
}

/// The group's scenarios. `timed`: the echo scenarios' warmup/duration
/// arguments; `broadcast`: loadgen's arguments for the 64 B and 16 KiB
/// rooms; `idle`: connections held and seconds.
#[allow(clippy::too_many_arguments)]
pub fn scenarios(
    timed: &[String],
    echo_timeout: Duration,
    rounds: usize,
    broadcast: [Vec<String>; 2],
    bc_extra: &[(&'static str, &'static str)],
    bc_timeout: Duration,
    idle: (f64, f64),
) -> Vec<Scenario> {
    const ECHO: &[&str] = &[
        "python-websockets",
        "python-websockets-sync",
        "node-ws",
        "wsportal",
    ];
    let compressed = [("ratio", "ratio"), ("compressed_pct", "compressed %")];
    let echo =
        |name: &str, what: &str, args: &[&str], extra: &[(&'static str, &'static str)]| Scenario {
            group: "deflate",
            opt_in: true,
            deflate: true,
            metric: ("msgs_per_s", "msg/s", true),
            extra: [
                extra,
                &compressed[..],
                &[
                    ("p99_us", "p99 µs"),
                    ("server_cpu_pct", "CPU %"),
                    ("loadgen_cpu_pct", "loadgen CPU %"),
                ],
            ]
            .concat(),
            rounds,
            servers: Some(ECHO),
            ..Scenario::new(
                name,
                what,
                [strings(args), strings(&["--deflate"]), timed.to_vec()].concat(),
                echo_timeout,
            )
        };
    let mut list = vec![
        echo(
            "deflate-json",
            "compressed echo of ~1 KiB JSON (16 variants, repeated keys), 100 clients x 8 in flight",
            &[
                "echo", "--content", "json", "--size", "1024", "--clients", "100", "--inflight", "8",
            ],
            &[("cpu_us_per_msg", "CPU µs/msg")],
        ),
        echo(
            "deflate-64k",
            "compressed echo of 64 KiB of log lines (16 variants), 10 clients x 4 in flight",
            &[
                "echo", "--content", "log", "--size", "65536", "--clients", "10", "--inflight", "4",
            ],
            &[("cpu_us_per_msg", "CPU µs/msg"), ("mb_per_s", "MB/s")],
        ),
    ];
    for (args, (name, label)) in broadcast.into_iter().zip([
        ("deflate-broadcast64", "64 B"),
        ("deflate-broadcast16k", "16 KiB"),
    ]) {
        list.push(Scenario {
            group: "deflate",
            opt_in: true,
            deflate: true,
            metric: ("p99_us", "p99 µs", false),
            extra: [bc_extra, &compressed[..]].concat(),
            chat: true,
            servers: Some(&["node-ws", "wsportal"]),
            ..Scenario::new(
                name,
                &format!(
                    "room relay of {label} log text, members negotiate deflate, 1 publisher \
                     (compressing), 5 stalled members"
                ),
                [args, strings(&["--deflate", "--content", "log"])].concat(),
                bc_timeout,
            )
        });
    }
    list.push(Scenario {
        group: "deflate",
        opt_in: true,
        deflate: true,
        metric: ("kib_per_conn", "KiB/conn idle", false),
        extra: vec![
            (
                "kib_per_conn_after_echo",
                "KiB/conn after one message each way",
            ),
            ("compressed_pct", "compressed %"),
            ("hold_cpu_ms", "CPU ms in hold"),
            ("open_s", "open s"),
            ("server_threads", "threads"),
            ("echo_ok", "echo ok"),
        ],
        servers: Some(&["python-websockets", "node-ws", "wsportal"]),
        ..Scenario::idle(
            "deflate-idle",
            "compressed connections held idle, then one compressed 256 B JSON message each way; \
             RSS growth per connection before and after",
            &[
                "idle",
                "--deflate",
                "--content",
                "json",
                "--size",
                "256",
                "--concurrency",
                "100",
            ],
            idle,
        )
    });
    list
}
