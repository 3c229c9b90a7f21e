//! The presence thread: one per server attached to a backplane. It
//! refreshes this instance's liveness key and rewrites its group counts
//! every third of the presence TTL, on a deadline of its own, so a refresh
//! never waits for anything else (the subscriber may be blocked in a read
//! or in a reconnection backoff). A failed refresh (Redis down) is retried
//! at the next deadline. A stop ends its wait at once; [`Presence::stop`]
//! joins it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::Node;
use crate::session::hub::Hub;

/// A running presence thread.
pub(crate) struct Presence {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Presence {
    /// Starts the thread; its first refresh is one period from now (the
    /// subscriber refreshes when it subscribes).
    pub(crate) fn start(node: Arc<Node>, hub: Arc<Hub>) -> std::io::Result<Presence> {
        let (stop, stop_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("wsportal-presence".into())
            .stack_size(128 << 10)
            .spawn(move || run(&node, &hub, &stop_rx))?;
        Ok(Presence {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and joins the thread (its wait ends at once; a refresh under
    /// way ends within the backplane's timeout).
    pub(crate) fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.stop.try_send(());
            let _ = thread.join();
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(node: &Node, hub: &Hub, stop: &Receiver<()>) {
    let every = node.bp.presence_ttl / 3;
    let mut next = Instant::now() + every;
    loop {
        match stop.recv_deadline(next) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // The next deadline counts from this one, not from the end of the
        // refresh, so a slow Redis does not stretch the period.
        next += every;
        if let Err(e) = node.refresh(hub) {
            log::debug!("backplane: presence not refreshed (retrying): {e}");
        }
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}
