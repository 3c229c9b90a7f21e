//! Sessions and the hub: an open connection's handle (`Connection`), its
//! life on its own thread (`run`), the hooks it calls (`Resource`, run under
//! `guard`), the hub that knows every open connection, its housekeeper
//! thread, broadcasting, and the counters behind `Stats`.
//!
//! May use: `wire`, `transport`, `http`, the base types. Never the server,
//! the client, event streams or the backplane (those sit above and hand
//! their pieces down).

pub(crate) mod broadcast;
#[cfg(feature = "redis")]
pub(crate) mod cluster;
#[cfg(feature = "deflate")]
pub(crate) mod compress;
pub(crate) mod connection;
pub(crate) mod guard;
pub(crate) mod hub;
pub(crate) mod resource;
mod run;
mod send;
pub(crate) mod state;
pub(crate) mod stats;
mod turn;
pub(crate) mod writer;

pub(crate) use self::run::run;
