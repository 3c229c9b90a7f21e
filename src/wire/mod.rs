//! The wire format: WebSocket frames, the frame reader with every receiver
//! rule of RFC 6455, permessage-deflate (RFC 7692), and Server-Sent Events'
//! event format. Pure byte work: nothing here owns a socket, a thread or a
//! lock, so it is all tested without sockets (and fuzzed, `fuzz/`).
//!
//! May use: the crate's base types (`Error`, `Message`). Used by every layer
//! above; never imports from them.

#[cfg(feature = "deflate")]
pub(crate) mod deflate;
pub(crate) mod event;
#[cfg(feature = "deflate")]
pub(crate) mod extension;
pub(crate) mod frame;
pub(crate) mod reader;
