//! The subscriber: one thread per server attached to a backplane. It reads
//! the channel and delivers what other instances published, rewrites this
//! instance's presence when it (re)subscribes (Redis may have restarted
//! empty), and reconnects with backoff when Redis goes away (one `warn!`
//! when the link drops, one `info!` when it is back). It never spins: it
//! blocks in a read (at most [`TICK`] at a time, then pings) or in a
//! backoff wait that a stop ends at once. The periodic presence refresh is
//! not its job: the presence thread ([`Presence`]), which it owns, keeps
//! its own deadlines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::link::{self, BACKOFF_MAX, BACKOFF_MIN};
use super::presence::Presence;
use super::wire::{self, Body, Target};
use super::Node;
use crate::session::hub::Hub;
use crate::sse::Streams;

/// The longest the subscriber blocks in one read before it pings.
const TICK: Duration = Duration::from_secs(1);

/// A running subscriber thread and its presence thread;
/// [`Subscriber::stop`] joins both.
pub(crate) struct Subscriber {
    node: Arc<Node>,
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    thread: Option<JoinHandle<()>>,
    presence: Presence,
}

impl Subscriber {
    /// Starts the threads.
    pub(crate) fn start(
        node: Arc<Node>,
        hub: Arc<Hub>,
        sse: Arc<Streams>,
    ) -> std::io::Result<Subscriber> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, wake_rx) = crossbeam_channel::bounded(1);
        let presence = Presence::start(Arc::clone(&node), Arc::clone(&hub))?;
        let (n, s) = (Arc::clone(&node), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("wsportal-backplane".into())
            .stack_size(256 << 10)
            .spawn(move || run(&n, &hub, &sse, &s, &wake_rx))?;
        Ok(Subscriber {
            node,
            stop,
            wake,
            thread: Some(thread),
            presence,
        })
    }

    /// Stops and joins the threads: a backoff wait ends at once, and a read
    /// is woken by a message published to ourselves (or ends within [`TICK`]).
    /// Afterwards nothing of this instance refreshes its presence.
    pub(crate) fn stop(&mut self) {
        self.presence.stop();
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
        let _ = self
            .node
            .bp
            .publish(self.node.id, &Target::All, super::wire::Payload::Wake);
        let _ = thread.join();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reason a subscription ended.
enum Ended {
    Stopped,
    Lost(String),
}

fn run(node: &Node, hub: &Hub, sse: &Streams, stop: &AtomicBool, wake: &Receiver<()>) {
    let mut down = false;
    let mut backoff = BACKOFF_MIN;
    let url = node
        .bp
        .link
        .client()
        .get_connection_info()
        .addr()
        .to_string();
    while !stop.load(Ordering::SeqCst) {
        let why = match subscribe(node, hub, sse, stop, &mut down, &url) {
            Ended::Stopped => return,
            Ended::Lost(why) => why,
        };
        if !down {
            // It was up: the first attempt to come back is soon.
            backoff = BACKOFF_MIN;
        }
        if !down {
            log::warn!(
                "backplane: Redis at {url} unreachable ({why}); local delivery goes on, \
                 other instances are out of reach until it is back"
            );
            down = true;
        } else {
            log::debug!("backplane: still no Redis at {url}: {why}");
        }
        // A stop ends the wait at once.
        if wake.recv_timeout(backoff).is_ok() {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Connects, subscribes and delivers until the link fails or a stop.
fn subscribe(
    node: &Node,
    hub: &Hub,
    sse: &Streams,
    stop: &AtomicBool,
    down: &mut bool,
    url: &str,
) -> Ended {
    let timeout = node.bp.timeout;
    let mut conn = match link::connect(node.bp.link.client(), timeout) {
        Ok(c) => c,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let mut ps = conn.as_pubsub();
    if let Err(e) = ps.subscribe(node.bp.channel()) {
        return Ended::Lost(e.to_string());
    }
    // Read back what the stream histories missed meanwhile (messages
    // arriving now wait in the socket, and are applied after, without
    // duplicates); Redis may have restarted empty: write presence again.
    if let Err(e) = sse.sync_histories().and_then(|()| node.refresh(hub)) {
        return Ended::Lost(e.to_string());
    }
    if std::mem::take(down) {
        log::info!("backplane: Redis at {url} is back; subscribed again");
    } else {
        log::debug!("backplane: instance {:016x} subscribed at {url}", node.id);
    }
    if let Err(e) = ps.set_read_timeout(Some(TICK)) {
        return Ended::Lost(e.to_string());
    }
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ended::Stopped;
        }
        match ps.get_message() {
            Ok(msg) => deliver(node, hub, sse, msg.get_payload_bytes()),
            Err(e) if e.is_timeout() => {
                // Quiet: check the link is still there.
                if let Err(e) = ps.ping::<redis::Value>() {
                    return Ended::Lost(e.to_string());
                }
            }
            Err(e) => return Ended::Lost(e.to_string()),
        }
    }
}

/// Delivers one message from the channel locally; a malformed or foreign one
/// is logged and dropped.
pub(crate) fn deliver(node: &Node, hub: &Hub, sse: &Streams, bytes: &[u8]) {
    let env = match wire::decode(bytes) {
        Ok(env) => env,
        Err(why) => {
            log::debug!(
                "backplane: dropped a message of {} bytes: {why}",
                bytes.len()
            );
            return;
        }
    };
    // Our own messages were delivered here already, except events in a
    // stream's one order, which every instance delivers as they come back.
    if env.origin == node.id && !matches!(env.body, Body::Ordered { .. }) {
        return;
    }
    match (env.target, env.body) {
        (_, Body::Wake) => {}
        (Target::All, Body::Ws(m)) => {
            let _ = hub.deliver("all connections", hub.connections(), &m);
        }
        (Target::Resource(route), Body::Ws(m)) => {
            let _ = hub.deliver(&route, hub.on_route(&route), &m);
        }
        (Target::Group(group), Body::Ws(m)) => {
            let _ = hub.deliver(&group, hub.group_members(&group), &m);
        }
        (Target::Stream(stream), Body::Event(e)) => {
            if let Some(p) = sse.publisher(&stream) {
                let _ = p.send_here(&e);
            }
        }
        (Target::Stream(stream), Body::Ordered { prev, entry, event }) => {
            if let Some(p) = sse.publisher(&stream) {
                p.receive_ordered(&prev, &entry, &event);
            }
        }
        (Target::StreamGroup { stream, group }, Body::Event(e)) => {
            if let Some(p) = sse.publisher(&stream) {
                let _ = p.to_group_here(&group, &e);
            }
        }
        (_, _) => log::debug!("backplane: dropped a message whose target and kind do not match"),
    }
}
