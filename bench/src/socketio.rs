//! The little of Socket.IO that `loadgen --socketio` speaks: Engine.IO v4
//! over a WebSocket (`/socket.io/?EIO=4&transport=websocket`, no polling),
//! with Socket.IO's text packets in its messages.
//!
//! After the upgrade the server sends Engine.IO's open packet (`0{...}`);
//! the client connects to the main namespace (`40`) and is in once the
//! server answers `40{"sid":...}`. Events are `42["name",data]`. The
//! server pings (`2`) every `pingInterval`; the client answers `3`.

/// The request path of a WebSocket-only Engine.IO v4 connection.
pub const PATH: &str = "/socket.io/?EIO=4&transport=websocket";
/// Connect to the main namespace.
pub const CONNECT: &[u8] = b"40";
/// The server's ping and the client's answer.
pub const PING: &[u8] = b"2";
pub const PONG: &[u8] = b"3";

/// Engine.IO's open packet, sent by the server right after the upgrade.
pub fn is_open(msg: &[u8]) -> bool {
    msg.starts_with(b"0{")
}

/// The server's answer to [`CONNECT`].
pub fn is_connected(msg: &[u8]) -> bool {
    msg.starts_with(b"40{")
}

/// The event `name` carrying the string `data` (`42["name","data"]`);
/// `data` must need no JSON escaping (no `"`, `\` or control bytes).
pub fn event(name: &str, data: &[u8]) -> Vec<u8> {
    let mut p = format!("42[\"{name}\",\"").into_bytes();
    p.extend_from_slice(data);
    p.extend_from_slice(b"\"]");
    p
}

/// The string data of event `name`, if `msg` is one (as [`event`] writes it).
pub fn event_data<'a>(name: &str, msg: &'a [u8]) -> Option<&'a [u8]> {
    let head = format!("42[\"{name}\",\"");
    msg.strip_prefix(head.as_bytes())?.strip_suffix(b"\"]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips() {
        let e = event("chat", b"1 2 xx");
        assert_eq!(e, br#"42["chat","1 2 xx"]"#);
        assert_eq!(event_data("chat", &e), Some(&b"1 2 xx"[..]));
        assert_eq!(event_data("other", &e), None);
        assert!(is_open(br#"0{"sid":"a"}"#) && is_connected(br#"40{"sid":"b"}"#));
    }
}
