//! The demo to run first: one page with a chat box, a live clock and an echo
//! box, served with its WebSockets and its event stream by one server on one
//! port.
//!
//!     cargo run --example demo                  # then open http://127.0.0.1:8080/
//!     cargo run --example demo -- 0.0.0.0:9000  # another address
//!     cargo run --features tls --example demo -- 127.0.0.1:8443 --cert cert.pem --key key.pem
//!                                               # then open https://localhost:8443/
//!
//! Two or more demos sharing one Redis (feature `redis`) are one site: open
//! the page on each, and chat and events reach the pages of every instance.
//!
//!     cargo run --features redis --example demo -- 127.0.0.1:8080 --redis redis://127.0.0.1:6379/
//!     cargo run --features redis --example demo -- 127.0.0.1:8081 --redis redis://127.0.0.1:6379/
//!
//! - `/`        the page (the HTML, CSS and JavaScript at the end of this file)
//! - `/echo`    WebSocket: every message comes straight back
//! - `/chat`    WebSocket: every text message goes to every chat client, sender included
//! - `/events`  Server-Sent Events: a `tick` with the server's time every second,
//!   a `stats` event every second (clients per endpoint and WebSocket
//!   messages per second over the last minute, from `stats()`, drawn by the
//!   page's live panel), and every chat message again as a `chat` event
//! - `/metrics` the same statistics for Prometheus (`Server::define_metrics`)
//! - `POST /say` a text body (at most 4 KiB) goes out as a chat message,
//!   answered `204`: `curl --data-binary 'hello from curl' http://127.0.0.1:8080/say`
//!
//! `--unix PATH` listens on a Unix-domain socket instead of an address (for
//! nginx on the same machine: `proxy_pass http://unix:PATH;`, and
//! `--trust-proxy 0.0.0.0` trusts the proxy on the socket).
//!
//! Behind a reverse proxy (nginx, Caddy), `--trust-proxy 127.0.0.1` (the
//! proxy's address) makes the server believe its `X-Forwarded-*` headers:
//! client addresses in the logs, and the `Origin` check of the WebSockets
//! against the host the browser used (see the README's nginx section).
//!
//! `RUST_LOG=debug` shows clients come and go. Ctrl-C stops it;
//! `--seconds N` after the address stops it cleanly after N seconds.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/signals.rs"]
mod signals;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wsportal::{
    Broadcaster, Event, EventPublisher, EventStream, Message, Resource, Response, Server,
    ServerHandle, Stats,
};

/// The longest `POST /say` body, in bytes.
const SAY_MAX: usize = 4 << 10;

/// How many seconds the page's chart shows.
const CHART_SECONDS: usize = 60;

/// The command line (anything else: this line, and exit status 2).
const USAGE: &str = "demo [ADDR | --unix PATH] [--seconds N] [--trust-proxy ADDR[/PREFIX]]... [--cert PATH --key PATH] [--redis URL]";

fn main() -> std::process::ExitCode {
    cli::init_logs();
    cli::finish(USAGE, run(&cli::args()))
}

/// Serves on `args[0]` (default 127.0.0.1:8080); `--seconds N` stops it
/// cleanly after N seconds; `--cert PATH --key PATH` serve it over https;
/// `--redis URL` (feature `redis`) links it with the other demos using that Redis.
pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = cli::Args::parse(
        argv,
        1,
        &[
            "--seconds",
            "--unix",
            "--trust-proxy",
            "--cert",
            "--key",
            "--redis",
        ],
    )?;
    let seconds = args.seconds()?;
    let addr = args.positional(0).unwrap_or("127.0.0.1:8080");
    if args.value("--cert").is_some() != args.value("--key").is_some() {
        return Err(cli::Usage("give both --cert PATH and --key PATH".into()).into());
    }
    if args.positional(0).is_some() && args.value("--unix").is_some() {
        return Err(cli::Usage("give an address or --unix PATH, not both".into()).into());
    }

    // The event stream. It keeps the last 100 chat events (they have ids), so
    // a browser that reconnects gets the ones it missed. A publisher pushes
    // events to every client of the stream, from any thread.
    let events = EventStream::new().history(100);
    let publisher = events.publisher().allow_nobody(); // nobody listening: Ok(0)

    // Behind nginx or Caddy: `--trust-proxy ADDR` (the proxy's address or
    // range, repeatable) believes its X-Forwarded-For/-Proto/-Host for
    // that peer.
    let trusted = args.values("--trust-proxy");
    let mut server = Server::with_config(wsportal::Config::default().trusted_proxies(trusted));
    server.define_page("/", "text/html; charset=utf-8", PAGE);
    server.define_event_stream("/events", events);
    server.define_metrics("/metrics");
    let stats = server.broadcaster(); // for `stats()` in the clock thread
    if let Some(url) = args.value("--redis") {
        join_redis(&mut server, url)?;
    }

    // Echo: send every message back as it came.
    server.define_resource(
        "/echo",
        Resource::new().on_message(|ws, msg| {
            let _ = ws.send(msg);
        }),
    );

    // Chat: relay every text message to every `/chat` WebSocket (the sender
    // too), and to every event-stream client as a `chat` event. The event
    // ids start with this process's id, so that they stay unique when
    // several demos share a Redis: a browser can then resume its event
    // stream on any of them.
    let chat = Arc::new(Chat {
        events: publisher.clone(),
        ids: AtomicU64::new(0),
        process: std::process::id(),
        to: server.broadcaster(),
    });
    let relay = Arc::clone(&chat);
    server.define_resource(
        "/chat",
        Resource::new().on_message(move |_ws, msg| {
            if let Message::Text(text) = &msg {
                relay.say(text);
            }
        }),
    );
    // `POST /say` with a text body (at most 4 KiB): the same as a chat
    // message, from a script or a webhook (`curl --data-binary hi URL/say`).
    server.define_handler_for("/say", &["POST"], move |req| {
        match std::str::from_utf8(req.body()) {
            Ok(text) if text.len() <= SAY_MAX => {
                chat.say(text);
                Response::new(204)
            }
            Ok(_) => Response::new(413).text_body("at most 4 KiB"),
            Err(_) => Response::new(400).text_body("the body must be utf-8 text"),
        }
    });

    let (handle, scheme) = start(&server, addr, &args).map_err(|e| match e {
        // The server checks the proxies when it starts: a bad one was ours.
        wsportal::Error::Config {
            setting: "trusted_proxies",
            reason,
            ..
        } => cli::Usage(format!("--trust-proxy: {reason}")).into(),
        e => Box::<dyn std::error::Error>::from(e),
    })?;
    // From now on (before anyone learns where it listens), SIGINT (Ctrl-C)
    // or SIGTERM (systemd, docker stop) asks it to close.
    let _signals = signals::close_on_signals(handle.closer())?;
    let web = if scheme == "wss" { "https" } else { "http" };
    let here = handle.local_addr();
    match handle.unix_path() {
        // Behind a proxy on the same machine: it serves the browsers.
        Some(path) => println!("listening on unix:{}", path.display()),
        None => {
            println!("open {web}://{here}/ in a browser");
            println!("metrics for Prometheus: {web}://{here}/metrics");
            println!("listening on {here}");
        }
    }

    // The clock: a thread of our own sends a `tick` and a `stats` event every
    // second until the server closes. They have no id, so they are live only
    // (never replayed). With `--redis` every instance's events reach every
    // page: the page adds up the `stats` of each instance it hears from.
    let closer = handle.closer();
    let clock = std::thread::spawn(move || {
        let mut rates = Rates {
            server: here.to_string(),
            ..Rates::default()
        };
        while !closer.wait_timeout(Duration::from_secs(1)) {
            if let Err(e) = publisher.send(&Event::new(utc_time()).name("tick")) {
                log::warn!("tick not sent: {e}");
            }
            let json = rates.next_json(&stats.stats());
            if let Err(e) = publisher.send(&Event::new(json).name("stats")) {
                log::warn!("stats not sent: {e}");
            }
        }
    });
    // Serve until SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop), or for
    // `--seconds N`; then stop cleanly: 1001 to every client, threads joined.
    match seconds {
        Some(d) => _ = handle.wait_timeout(d),
        None => handle.wait(),
    }
    handle.close();
    clock.join().expect("the clock does not panic");
    Ok(())
}

/// Links the server with every demo using the Redis at `url`: then
/// `to_resource("/chat", ..)` and the event stream's `send` reach the
/// clients of all of them (feature `redis`).
#[cfg(feature = "redis")]
fn join_redis(server: &mut Server, url: &str) -> Result<(), wsportal::Error> {
    server.backplane(wsportal::Backplane::redis(url)?.prefix("demo"));
    Ok(())
}

#[cfg(not(feature = "redis"))]
fn join_redis(_: &mut Server, _: &str) -> Result<(), wsportal::Error> {
    Err(wsportal::Error::InvalidInput(
        "--redis needs the redis feature: cargo run --features redis --example demo ...",
    ))
}

/// Where a chat message goes: every `/chat` WebSocket and the event stream.
struct Chat {
    events: EventPublisher,
    ids: AtomicU64,
    process: u32,
    to: Broadcaster,
}

impl Chat {
    fn say(&self, text: &str) {
        let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let event = Event::new(text)
            .name("chat")
            .id(format!("{}-{id}", self.process));
        if let Err(e) = self.events.send(&event) {
            log::warn!("chat event not sent: {e}");
        }
        // Nobody in the chat is fine: `Err(NoConnections)` is ignored.
        let _ = self.to.to_resource("/chat", text);
    }
}

/// WebSocket messages per second (in and out) over the last minute.
#[derive(Default)]
struct Rates {
    /// This server's address, so that pages can tell instances apart.
    server: String,
    last: Option<(u64, u64)>,
    per_second: VecDeque<(u64, u64)>,
}

impl Rates {
    /// Adds this second's counts; the `stats` event for the page, as JSON:
    /// `{"server":"ADDR","clients":{"/chat":1,...},"in":[...],"out":[...]}`,
    /// the oldest second first.
    fn next_json(&mut self, s: &Stats) -> String {
        let now = (s.messages_received, s.messages_sent);
        let (in0, out0) = self.last.unwrap_or(now);
        self.last = Some(now);
        if self.per_second.is_empty() {
            self.per_second.resize(CHART_SECONDS, (0, 0));
        }
        self.per_second.pop_front();
        self.per_second
            .push_back((now.0.saturating_sub(in0), now.1.saturating_sub(out0)));
        let clients: Vec<String> = s
            .connections_by_resource
            .iter()
            .chain(&s.event_clients_by_stream)
            .map(|(route, n)| format!("{route:?}:{n}")) // our routes need no escaping
            .collect();
        let list = |f: fn(&(u64, u64)) -> u64| {
            let v: Vec<String> = self.per_second.iter().map(|x| f(x).to_string()).collect();
            v.join(",")
        };
        format!(
            "{{\"server\":{:?},\"clients\":{{{}}},\"in\":[{}],\"out\":[{}]}}",
            self.server, // an address needs no escaping
            clients.join(","),
            list(|x| x.0),
            list(|x| x.1)
        )
    }
}

/// Starts `server` on `addr`: over TLS when `args` hold `--cert PATH --key
/// PATH` (PEM files; the `tls` feature), plain otherwise. Returns the handle
/// and the scheme clients use (`ws` or `wss`).
fn start(
    server: &Server,
    addr: &str,
    args: &cli::Args,
) -> Result<(ServerHandle, &'static str), wsportal::Error> {
    if let Some(path) = args.value("--unix") {
        return start_unix(server, path);
    }
    match (args.value("--cert"), args.value("--key")) {
        (None, None) => Ok((server.start(addr)?, "ws")),
        #[cfg(feature = "tls")]
        (Some(cert), Some(key)) => {
            let tls = wsportal::TlsConfig::from_pem_files(cert, key)?;
            Ok((server.start_tls(addr, tls)?, "wss"))
        }
        #[cfg(not(feature = "tls"))]
        (Some(_), Some(_)) => Err(wsportal::Error::InvalidInput(
            "--cert and --key need the tls feature: cargo run --features tls --example ...",
        )),
        _ => Err(wsportal::Error::InvalidInput(
            "give both --cert PATH and --key PATH",
        )),
    }
}

/// `--unix PATH`: a Unix-domain socket instead of an address (the socket
/// file is removed when the server closes).
#[cfg(unix)]
fn start_unix(
    server: &Server,
    path: &str,
) -> Result<(ServerHandle, &'static str), wsportal::Error> {
    Ok((server.start_unix(path)?, "ws"))
}

#[cfg(not(unix))]
fn start_unix(_: &Server, _: &str) -> Result<(ServerHandle, &'static str), wsportal::Error> {
    Err(wsportal::Error::InvalidInput("--unix needs a Unix system"))
}

/// The time of day in UTC, as `HH:MM:SS UTC`.
fn utc_time() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

/// The page. With `?selftest=1` in its URL it sends one echo and one chat
/// message by itself and marks what came back on `<body>` (`data-echo-ok`,
/// `data-chat-ok`, `data-tick-ok`, `data-sse-chat-ok`, and `data-stats-ok`
/// once the live panel has been redrawn twice, showing the page's own three
/// connections), for `scripts/browser-test.sh`.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsportal demo</title>
<link rel="icon" href="data:,">
<style>
  :root { --bg: #f4f5f8; --card: #fff; --ink: #1d2330; --muted: #6b7385;
          --line: #e2e5ec; --accent: #3558e6; --ok: #1f9d55; --bad: #d64545; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         background: var(--bg); color: var(--ink); }
  header { padding: 28px 32px 8px; }
  h1 { margin: 0; font-size: 26px; }
  header p { margin: 4px 0 0; color: var(--muted); }
  .pills { margin-top: 12px; display: flex; gap: 8px; flex-wrap: wrap; }
  .pill { font-size: 13px; padding: 3px 10px; border-radius: 999px; background: #e8eaf0; color: var(--muted); }
  .pill::before { content: "\25CF  "; }
  .pill.on { background: #e3f5ea; color: var(--ok); }
  .pill.off { background: #fbe6e6; color: var(--bad); }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 20px; padding: 20px 32px 32px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 18px;
            display: flex; flex-direction: column; gap: 12px; box-shadow: 0 1px 2px rgba(20, 30, 60, .05); }
  h2 { margin: 0; font-size: 17px; }
  h2 small { font-weight: normal; color: var(--muted); font-size: 13px; margin-left: 6px; }
  .log { list-style: none; margin: 0; padding: 8px; height: 220px; overflow-y: auto; background: #f9fafc;
         border: 1px solid var(--line); border-radius: 8px; font-size: 14px; }
  .log li { padding: 3px 6px; border-radius: 6px; overflow-wrap: anywhere; }
  .log li.mine { background: #eef1fd; }
  .log li.sys { color: var(--muted); font-style: italic; }
  form { display: flex; gap: 8px; }
  input { flex: 1; min-width: 0; padding: 8px 10px; border: 1px solid var(--line); border-radius: 8px; font: inherit; }
  input:focus { outline: 2px solid #c9d3fb; border-color: var(--accent); }
  button { padding: 8px 16px; border: 0; border-radius: 8px; background: var(--accent); color: #fff; font: inherit; cursor: pointer; }
  button:hover { filter: brightness(1.1); }
  #clock { font: 600 44px/1.1 ui-monospace, "SF Mono", Menlo, Consolas, monospace; text-align: center; padding: 18px 0 6px; letter-spacing: 1px; }
  .note { color: var(--muted); font-size: 13px; margin: 0; }
  #selftest { margin: 0 32px; color: var(--muted); font-size: 13px; }
  .counts { display: flex; gap: 10px; flex-wrap: wrap; }
  .count { background: #f9fafc; border: 1px solid var(--line); border-radius: 8px; padding: 6px 12px; text-align: center; min-width: 80px; }
  .count b { display: block; font: 600 24px/1.2 ui-monospace, "SF Mono", Menlo, Consolas, monospace; }
  .count span { color: var(--muted); font-size: 13px; }
  #stats-chart { width: 100%; height: 90px; background: #f9fafc; border: 1px solid var(--line); border-radius: 8px; }
  .in { color: var(--accent); } .out { color: var(--ok); }
</style>
</head>
<body>
<header>
  <h1>wsportal demo</h1>
  <p>WebSockets, Server-Sent Events and this page, all from one blocking Rust server on one port.</p>
  <div class="pills">
    <span id="chat-status" class="pill">chat</span>
    <span id="events-status" class="pill">events</span>
    <span id="echo-status" class="pill">echo</span>
  </div>
</header>
<p id="selftest" hidden></p>
<main>
  <section>
    <h2>Chat <small>WebSocket /chat</small></h2>
    <ul id="chat-log" class="log"></ul>
    <form id="chat-form"><input id="chat-input" placeholder="Say something to everyone" autocomplete="off"><button>Send</button></form>
    <p class="note">You are <b id="me"></b>. Open this page in a second tab to chat with yourself.</p>
  </section>
  <section>
    <h2>Server clock <small>Server-Sent Events /events</small></h2>
    <div id="clock">--:--:--</div>
    <p class="note">A <code>tick</code> event every second. Chat messages arrive here too, as <code>chat</code> events:</p>
    <ul id="sse-log" class="log" style="height: 120px"></ul>
  </section>
  <section>
    <h2>Echo <small>WebSocket /echo</small></h2>
    <ul id="echo-log" class="log"></ul>
    <form id="echo-form"><input id="echo-input" placeholder="Anything comes straight back" autocomplete="off"><button>Send</button></form>
  </section>
  <section id="stats" data-updates="0">
    <h2>Server <small>live, a <code>stats</code> event every second</small></h2>
    <div id="stats-clients" class="counts"><div class="count"><b>-</b><span>waiting</span></div></div>
    <svg id="stats-chart" viewBox="0 0 300 90" preserveAspectRatio="none" role="img" aria-label="WebSocket messages per second over the last minute">
      <polyline id="stats-in" fill="none" stroke="#3558e6" stroke-width="2" vector-effect="non-scaling-stroke" points=""></polyline>
      <polyline id="stats-out" fill="none" stroke="#1f9d55" stroke-width="2" vector-effect="non-scaling-stroke" points=""></polyline>
    </svg>
    <p class="note">WebSocket messages per second over the last minute (peak <b id="stats-peak">0</b>/s):
      <b class="in" id="stats-in-now">0</b> in, <b class="out" id="stats-out-now">0</b> out now.
      Open a second tab and the numbers move. For Prometheus: <a href="/metrics">/metrics</a>.</p>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const wsUrl = (path) => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
const selftest = new URLSearchParams(location.search).has("selftest");
const token = Math.random().toString(36).slice(2, 8);
const me = "guest-" + Math.floor(1000 + Math.random() * 9000);
$("me").textContent = me;

function add(list, text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  $(list).append(li);
  while ($(list).children.length > 200) $(list).firstChild.remove();
  $(list).scrollTop = $(list).scrollHeight;
}
function status(name, state) { $(name + "-status").className = "pill " + state; }
function mark(what) {
  // For scripts/browser-test.sh: data-echo-ok, data-chat-ok, data-tick-ok, data-sse-chat-ok, data-stats-ok.
  document.body.setAttribute("data-" + what + "-ok", "yes");
  const done = ["echo", "chat", "tick", "sse-chat", "stats"].filter((w) => document.body.hasAttribute("data-" + w + "-ok"));
  $("selftest").hidden = false;
  $("selftest").textContent = "Self-test passed: " + done.join(", ");
}
function submit(form, input, send) {
  $(form).addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $(input).value.trim();
    if (text) { send(text); $(input).value = ""; }
  });
}

// Echo over a WebSocket.
const echo = new WebSocket(wsUrl("/echo"));
function sendEcho(text) { echo.send(text); add("echo-log", "\u2192 " + text, "mine"); }
echo.onopen = () => {
  status("echo", "on");
  // For scripts/browser-test.sh: the extensions the browser agreed on.
  document.body.setAttribute("data-echo-extensions", echo.extensions);
  if (selftest) sendEcho("selftest-echo-" + token);
};
echo.onclose = () => { status("echo", "off"); add("echo-log", "disconnected", "sys"); };
echo.onmessage = (e) => {
  add("echo-log", "\u2190 " + e.data);
  if (e.data === "selftest-echo-" + token) mark("echo");
};
submit("echo-form", "echo-input", sendEcho);

// The chat room over a WebSocket: the server sends every message to everyone, us included.
const chat = new WebSocket(wsUrl("/chat"));
const chatTest = me + ": selftest-chat-" + token;
// The self-test's chat message waits for the event stream too: a first
// EventSource gets no replay, so a chat sent before it connects is not seen.
let chatOpen = false, eventsOpen = false, chatSent = false;
const chatSelftest = () => {
  if (selftest && chatOpen && eventsOpen && !chatSent) { chatSent = true; chat.send(chatTest); }
};
chat.onopen = () => { status("chat", "on"); chatOpen = true; chatSelftest(); };
chat.onclose = () => { status("chat", "off"); add("chat-log", "disconnected", "sys"); };
chat.onmessage = (e) => {
  add("chat-log", e.data, e.data.startsWith(me + ": ") ? "mine" : "");
  if (e.data === chatTest) mark("chat");
};
submit("chat-form", "chat-input", (text) => chat.send(me + ": " + text));

// Server-Sent Events: the browser reconnects by itself, sending Last-Event-ID.
const events = new EventSource("/events");
events.onopen = () => { status("events", "on"); eventsOpen = true; chatSelftest(); };
events.onerror = () => status("events", events.readyState === EventSource.CLOSED ? "off" : "");
events.addEventListener("tick", (e) => { $("clock").textContent = e.data; mark("tick"); });
events.addEventListener("chat", (e) => {
  add("sse-log", e.data);
  if (e.data === chatTest) mark("sse-chat");
});

// The live panel: clients per endpoint, and a chart of messages per second.
// Several demos sharing a Redis all send theirs: the panel shows their sum
// over the instances heard from in the last 3 seconds.
const servers = new Map();
function sumStats() {
  const s = { clients: {}, in: [], out: [] };
  const plus = (xs, ys) => ys.forEach((v, i) => { xs[i] = (xs[i] || 0) + v; });
  for (const [name, { at, one }] of servers) {
    if (Date.now() - at > 3000) { servers.delete(name); continue; }
    for (const [path, n] of Object.entries(one.clients)) s.clients[path] = (s.clients[path] || 0) + n;
    plus(s.in, one.in);
    plus(s.out, one.out);
  }
  return s;
}
events.addEventListener("stats", (e) => {
  const one = JSON.parse(e.data);
  servers.set(one.server, { at: Date.now(), one });
  const s = sumStats();
  const shown = servers.size > 1 ? { ...s.clients, instances: servers.size } : s.clients;
  const counts = Object.entries(shown).map(([path, n]) => {
    const div = document.createElement("div");
    div.className = "count";
    const b = document.createElement("b");
    b.textContent = n;
    const span = document.createElement("span");
    span.textContent = path;
    div.append(b, span);
    return div;
  });
  $("stats-clients").replaceChildren(...counts);
  const peak = Math.max(1, ...s.in, ...s.out);
  const points = (xs) => xs.map((v, i) =>
    (i * 300 / Math.max(1, xs.length - 1)).toFixed(1) + "," + (86 - v * 80 / peak).toFixed(1)).join(" ");
  $("stats-in").setAttribute("points", points(s.in));
  $("stats-out").setAttribute("points", points(s.out));
  $("stats-peak").textContent = peak;
  $("stats-in-now").textContent = s.in[s.in.length - 1];
  $("stats-out-now").textContent = s.out[s.out.length - 1];
  const updates = Number($("stats").dataset.updates) + 1;
  $("stats").dataset.updates = updates;
  const mine = ["/echo", "/chat", "/events"].every((p) => s.clients[p] >= 1);
  if (updates >= 2 && mine) mark("stats");
});
</script>
</body>
</html>
"##;
