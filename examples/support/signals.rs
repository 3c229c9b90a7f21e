//! Stopping a server on SIGINT (Ctrl-C) and SIGTERM (`systemctl stop`,
//! `docker stop`): the pattern every server example uses, with the
//! `signal-hook` crate (a dev-dependency here; in your application, a
//! dependency). A thread of our own waits for the first signal and asks
//! the server to close with a `Closer`; the main thread, blocked in
//! `ServerHandle::wait`, then calls `close()`: 1001 to every WebSocket
//! client, event streams ended, every thread joined. Dropping the guard
//! stops and joins the signal thread.
//!
//! ```text
//! let handle = server.start(addr)?;
//! let _signals = signals::close_on_signals(handle.closer())?;
//! handle.wait();
//! handle.close();
//! ```

use std::io;

/// Stops and joins the signal thread when dropped.
pub struct OnSignals {
    #[cfg(unix)]
    stop: signal_hook::iterator::Handle,
    #[cfg(unix)]
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Closes the server behind `closer` on the first SIGINT or SIGTERM.
///
/// # Errors
/// When the signal handlers cannot be installed.
#[cfg(unix)]
pub fn close_on_signals(closer: wsportal::Closer) -> io::Result<OnSignals> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let stop = signals.handle();
    let thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            // `forever` ends when the guard closes the handle.
            if let Some(signal) = signals.forever().next() {
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                log::info!("{name}: closing");
                closer.close();
            }
        })?;
    Ok(OnSignals {
        stop,
        thread: Some(thread),
    })
}

/// Without Unix signals, Ctrl-C ends the process as before.
#[cfg(not(unix))]
pub fn close_on_signals(_closer: wsportal::Closer) -> io::Result<OnSignals> {
    Ok(OnSignals {})
}

impl Drop for OnSignals {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            self.stop.close();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
