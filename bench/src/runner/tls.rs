//! The `tls` group (opt-in): `wss-echo64`, `wss-echo4k`, `wss-echo16k`,
//! `wss-echo64k`, `wss-connect` and `wss-idle`, the plain scenarios of the
//! same names over TLS, against servers that speak it: tokio-tungstenite
//! with tokio-rustls (the peer, with and without TCP_NODELAY) and
//! wsportal's `echo` example built with `--features tls`. Everybody uses
//! rustls with the `ring` provider and the test certificate
//! `scripts/bench.sh` makes in `target/bench/tls/`.

use std::path::Path;

use super::{env_s, strings, Scenario, Server};

/// The test certificate and key (P-256, made at bench time).
const CERT: &str = "target/bench/tls/cert.pem";
const KEY: &str = "target/bench/tls/key.pem";
/// wsportal's echo example built with `--features tls` (kept apart from the
/// plain build, which the plain rows use).
const WSPORTAL_ECHO: &str = "target/bench/tls/echo";

/// The plain scenarios that get a TLS twin.
const TWINS: [&str; 6] = ["echo64", "echo4k", "echo16k", "echo64k", "connect", "idle"];

/// A TLS twin (`wss-NAME`) of each scenario in [`TWINS`]: the same loadgen
/// arguments plus `--tls-ca`, group `tls`, opt-in. `wss-echo64k` also runs
/// with one client (`wss-echo64k-1`): each server then has one connection,
/// and so the same allocator layout (`bench/README.md`, wss-echo64k).
pub fn scenarios(plain: &[Scenario]) -> Vec<Scenario> {
    let mut wss = Vec::new();
    for s in plain.iter().filter(|s| TWINS.contains(&s.name.as_str())) {
        wss.push(twin(s, &s.name, &s.what, s.args.clone()));
        if s.name == "echo64k" {
            let mut args = s.args.clone();
            if let Some(at) = args.iter().position(|a| a == "--clients") {
                args[at + 1] = "1".into();
            }
            let what = s.what.replace("10 clients", "1 client");
            wss.push(twin(s, "echo64k-1", &what, args));
        }
    }
    wss
}

/// `s` over TLS, as `wss-NAME` with loadgen arguments `args`.
fn twin(s: &Scenario, name: &str, what: &str, args: Vec<String>) -> Scenario {
    Scenario {
        group: "tls",
        args: [args, strings(&["--tls-ca", CERT])].concat(),
        metric: s.metric,
        extra: s.extra.clone(),
        same_core: s.same_core,
        rounds: s.rounds,
        nagle_rows: s.nagle_rows,
        opt_in: true,
        tls: true,
        ..Scenario::new(
            &format!("wss-{name}"),
            &format!("{what}, over TLS"),
            Vec::new(),
            s.timeout,
        )
    }
}

/// The servers of the TLS scenarios, in table order (names as in the plain
/// tables, so `SERVERS` picks them the same way).
pub fn servers() -> Vec<Server> {
    let peer = Server {
        name: "tokio-tungstenite".into(),
        echo: Some(vec!["target/release/tokio-tungstenite".into()]),
        chat: None,
        raw: false,
        peer: true,
        ours: true,
        nagle: false,
        skip: None,
    };
    let wsportal = Server {
        name: "wsportal".into(),
        echo: Some(super::with_args_from("ECHO_ARGS", WSPORTAL_ECHO)),
        chat: None,
        raw: false,
        peer: false,
        ours: false,
        nagle: false,
        skip: (!Path::new(WSPORTAL_ECHO).exists())
            .then(|| format!("{WSPORTAL_ECHO} not built (its wss rows)")),
    };
    let mut list = vec![
        peer.clone(),
        Server {
            nagle: true,
            ..peer
        },
        wsportal.clone(),
    ];
    // The same echo built from an older commit (`BASELINE=REV` in
    // scripts/bench.sh), for before/after comparisons in one run.
    if let Ok(dir) = std::env::var("WSPORTAL_BASELINE_DIR") {
        let echo = format!("{dir}/echo-tls");
        list.push(Server {
            name: "wsportal-baseline".into(),
            skip: (!Path::new(&echo).exists()).then(|| format!("{echo} not built")),
            echo: Some(vec![echo]),
            ..wsportal
        });
    }
    let only = env_s("SERVERS", "");
    list.retain(|s| only.is_empty() || only.split(',').any(|n| n == s.name));
    list
}

/// Arguments after the address for every TLS server.
pub fn server_flags() -> Vec<String> {
    strings(&["--cert", CERT, "--key", KEY])
}

/// The report's line about the TLS scenarios.
pub fn note() -> String {
    format!(
        "tls: rustls with the ring provider on both sides, certificate {CERT} (P-256, \
         scripts/tls-cert.sh), every connection a full handshake (loadgen resumes no sessions).\n"
    )
}
