//! Integration tests: real sockets on 127.0.0.1:0, bounded waits, no sleeps
//! used as synchronisation.

// Because each example included by `examples` and `logtail` brings its own
// copy of examples/support/*.rs, as it does when built alone.
#![allow(clippy::duplicate_mod)]

#[cfg(feature = "redis")]
mod backplane;
#[cfg(feature = "redis")]
mod backplane_exact;
mod client;
mod client_limits;
mod client_reconnect;
mod core;
mod correctness;
#[cfg(feature = "deflate")]
mod deflate;
mod ergonomics;
mod events_client;
mod examples;
mod hardening;
mod http;
mod logtail;
mod page;
mod proxy;
mod push;
mod sse;
mod stats;
mod support;
#[cfg(feature = "tls")]
mod tls;
#[cfg(unix)]
mod unix;
mod write;
mod writepath;
