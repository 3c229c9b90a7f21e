//! Integration tests: real sockets on 127.0.0.1:0, bounded waits, no sleeps
//! used as synchronisation.

#[cfg(feature = "redis")]
mod backplane;
#[cfg(feature = "redis")]
mod backplane_exact;
mod client;
mod core;
mod correctness;
#[cfg(feature = "deflate")]
mod deflate;
mod ergonomics;
mod examples;
mod hardening;
mod http;
mod logtail;
mod page;
mod push;
mod sse;
mod stats;
mod support;
#[cfg(feature = "tls")]
mod tls;
mod write;
