//! The client's check of the server's answer: the response head parser and
//! the `Sec-WebSocket-Accept`, extension and subprotocol checks, through the
//! stable entry point `fuzzing::check_response`.
//!
//! Checks: every refusal is `Error::Protocol` (the client reports it, the
//! connection is never opened); a status is 100-599; a 101 is accepted
//! only with the right accept value for the key and an offered subprotocol
//! (or none); allocations stay proportional to the head's size.

use libfuzzer_sys::arbitrary::Unstructured;
use wsportal::{fuzzing, Error};

/// RFC 6455's example key and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(which) = u.int_in_range(0..=3u8) else {
        return;
    };
    let offered: Vec<String> = match which {
        0 => vec![],
        1 => vec!["chat".into()],
        2 => vec!["chat".into(), "superchat".into()],
        _ => vec!["superchat".into()],
    };
    let head = u.take_rest();
    let (result, largest) =
        crate::largest_allocation(|| fuzzing::check_response(head, KEY, &offered));
    // The header list is proportional to the head (48 bytes a header, doubled).
    assert!(
        largest <= 32 * head.len() + 16 * 1024,
        "allocated {largest} bytes at once"
    );
    match result {
        Ok((101, protocol)) => {
            let text = String::from_utf8_lossy(head);
            assert!(
                text.contains(ACCEPT),
                "accepted a 101 without the accept value"
            );
            if let Some(p) = protocol {
                assert!(
                    offered.contains(&p),
                    "accepted a subprotocol not offered: {p:?}"
                );
            }
        }
        Ok((status, protocol)) => {
            assert!((100..600).contains(&status), "status {status}");
            assert!(protocol.is_none());
        }
        Err(Error::Protocol(_)) => {}
        Err(other) => panic!("undocumented refusal {other:?}"),
    }
}
