//! Shared pieces of the wsportal benchmark harness.
//!
//! * [`procfs`]: server CPU time and memory read from `/proc/PID/...`.
//! * [`frame`]: a minimal client-side WebSocket frame codec used by `loadgen`.
//! * [`deflate`], [`content`]: loadgen's permessage-deflate, and the
//!   realistic message bodies of the compression scenarios.
//! * [`socketio`]: the Engine.IO/Socket.IO text framing `loadgen --socketio` speaks.
//! * [`server_args`]: the command line shared by the peer servers.

pub mod content;
pub mod deflate;
pub mod frame;
pub mod net;
pub mod procfs;
pub mod socketio;

/// Command line of every peer server: `<bin> ADDR [--nodelay] [--cert PATH --key PATH]`.
pub mod server_args {
    /// Parsed peer-server arguments.
    pub struct ServerArgs {
        /// Listen address, e.g. `127.0.0.1:9001`.
        pub addr: String,
        /// Set `TCP_NODELAY` on accepted sockets.
        pub nodelay: bool,
        /// Further flags given, out of those the server accepts.
        pub flags: Vec<String>,
        /// `--cert PATH --key PATH` (PEM files): serve over TLS, where the
        /// server supports it.
        pub tls: Option<(String, String)>,
    }

    /// Parses `ADDR [--nodelay]` from the process arguments; exits on misuse.
    pub fn parse() -> ServerArgs {
        parse_with(&[])
    }

    /// Like [`parse`], also accepting the flags in `allowed` (e.g. a variant).
    pub fn parse_with(allowed: &[&str]) -> ServerArgs {
        let mut addr = None;
        let mut nodelay = false;
        let mut flags = Vec::new();
        let (mut cert, mut key) = (None, None);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--nodelay" => nodelay = true,
                "--cert" => {
                    cert = Some(args.next().unwrap_or_else(|| usage("--cert needs a path")))
                }
                "--key" => key = Some(args.next().unwrap_or_else(|| usage("--key needs a path"))),
                a if allowed.contains(&a) => flags.push(a.to_string()),
                a if !a.starts_with('-') && addr.is_none() => addr = Some(a.to_string()),
                other => usage(other),
            }
        }
        let addr = addr.unwrap_or_else(|| usage("missing ADDR"));
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => usage("give both --cert PATH and --key PATH"),
        };
        ServerArgs {
            addr,
            nodelay,
            flags,
            tls,
        }
    }

    fn usage(what: &str) -> ! {
        eprintln!("error: {what}\nusage: SERVER ADDR [--nodelay] [--cert PATH --key PATH]");
        std::process::exit(2)
    }
}

/// Raises the soft open-file limit to the hard limit (10,000 connections need it).
/// Child processes inherit the raised limit.
pub fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
