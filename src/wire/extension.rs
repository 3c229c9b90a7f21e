//! Negotiating `permessage-deflate` (RFC 7692, section 7) in the opening
//! handshake: [`Deflate`] (the settings), the server's choice among a
//! client's offers, the client's offer and its check of the answer.
//!
//! This module knows header values, not frames: what the agreement means
//! for the bytes is `deflate.rs`.

/// The extension's name in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";

/// Settings of `permessage-deflate` (RFC 7692) for a server or a client
/// (feature `deflate`), given to [`Config::deflate`](crate::Config::deflate).
/// With the feature on, a server accepts the extension and a client offers
/// it, with these defaults:
///
/// - window bits 12 for what the server compresses and, when the client's
///   offer lets the server choose (`client_max_window_bits`), for what the
///   client compresses: 4 KiB windows, most of the gain of 32 KiB ones at
///   a fraction of the memory per connection;
/// - context takeover both ways (each message may refer to the ones before);
/// - level 6, zlib's default;
/// - every message is compressed (`min_size` 0), as browsers and Python
///   `websockets` do.
///
/// ```
/// let config = wsportal::Config::default().deflate(Some(
///     wsportal::Deflate::default()
///         .server_max_window_bits(10)
///         .server_no_context_takeover(true)
///         .min_size(256),
/// ));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deflate {
    pub(crate) server_max_window_bits: u8,
    pub(crate) client_max_window_bits: u8,
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) level: u32,
    pub(crate) min_size: usize,
    /// A client asks the server for `server_max_window_bits` (set by the
    /// setter, so a client's default offer is the browsers' one).
    pub(crate) ask_server_window: bool,
}

impl Default for Deflate {
    fn default() -> Deflate {
        Deflate {
            server_max_window_bits: 12,
            client_max_window_bits: 12,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            level: 6,
            min_size: 0,
            ask_server_window: false,
        }
    }
}

impl Deflate {
    /// The largest window (8 to 15 bits, default 12) the server compresses
    /// with. A server answers with it (or with the smaller window a client
    /// asks for); a client given this setting asks a server for it (a
    /// client's default offer asks for nothing, as browsers do).
    pub fn server_max_window_bits(mut self, bits: u8) -> Deflate {
        self.server_max_window_bits = bits;
        self.ask_server_window = bits < 15;
        self
    }

    /// The largest window (8 to 15 bits, default 12) the client compresses
    /// with. A server asks it of a client whose offer allows that; a client
    /// offers `client_max_window_bits` always and compresses with at most
    /// this many bits.
    pub fn client_max_window_bits(mut self, bits: u8) -> Deflate {
        self.client_max_window_bits = bits;
        self
    }

    /// The server compresses each message on its own (default `false`):
    /// less memory (its compressor is freed between messages), less gain.
    pub fn server_no_context_takeover(mut self, on: bool) -> Deflate {
        self.server_no_context_takeover = on;
        self
    }

    /// The client compresses each message on its own (default `false`).
    pub fn client_no_context_takeover(mut self, on: bool) -> Deflate {
        self.client_no_context_takeover = on;
        self
    }

    /// The compression level, 0 (stored) to 9 (smallest), default 6.
    pub fn level(mut self, level: u32) -> Deflate {
        self.level = level;
        self
    }

    /// Messages shorter than this many bytes are sent uncompressed
    /// (default 0: all are compressed). Deflate saves nothing on a few
    /// bytes, so a threshold of some tens of bytes saves CPU; a peer must
    /// accept either.
    pub fn min_size(mut self, bytes: usize) -> Deflate {
        self.min_size = bytes;
        self
    }

    /// Checks the values; the error names the bad one.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let window = "must be between 8 and 15";
        if !(8..=15).contains(&self.server_max_window_bits) {
            return Err(("deflate.server_max_window_bits", window));
        }
        if !(8..=15).contains(&self.client_max_window_bits) {
            return Err(("deflate.client_max_window_bits", window));
        }
        if self.level > 9 {
            return Err(("deflate.level", "must be between 0 and 9"));
        }
        Ok(())
    }
}

/// What both ends agreed: the parameters of the accepted offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    /// 8 to 15 (15 when the answer did not say).
    pub(crate) server_max_window_bits: u8,
    pub(crate) client_max_window_bits: u8,
}

/// One side's half of an agreement: how it compresses or how its peer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Direction {
    /// Window bits for zlib, 9 to 15: a window of 8 is compressed with 9
    /// (zlib cannot make raw deflate with 8; a 9-bit encoder never refers
    /// further back than 250 bytes, which an 8-bit decoder holds) and
    /// inflated with 9 (a peer whose zlib did the same refers up to 250
    /// bytes back, which fits).
    pub(crate) window_bits: u8,
    pub(crate) no_context_takeover: bool,
}

impl Agreed {
    /// How the server compresses (and the client inflates).
    pub(crate) fn server(&self) -> Direction {
        Direction {
            window_bits: self.server_max_window_bits.max(9),
            no_context_takeover: self.server_no_context_takeover,
        }
    }

    /// How the client compresses (and the server inflates).
    pub(crate) fn client(&self) -> Direction {
        Direction {
            window_bits: self.client_max_window_bits.max(9),
            no_context_takeover: self.client_no_context_takeover,
        }
    }

    /// The answer's `Sec-WebSocket-Extensions` value.
    pub(crate) fn response(&self, say_client_bits: bool) -> String {
        let mut out = NAME.to_owned();
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            out.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if say_client_bits {
            out.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        out
    }
}

/// One extension of a `Sec-WebSocket-Extensions` list: its name and its
/// parameters (values unquoted).
#[derive(Debug, PartialEq, Eq)]
struct Offer<'a> {
    name: &'a str,
    params: Vec<(&'a str, Option<&'a str>)>,
}

/// Splits header values into extensions (`,`) and parameters (`;`).
fn offers<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Offer<'a>> {
    values
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut parts = e.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => {
                        let v = v.trim();
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(v);
                        (k.trim(), Some(v))
                    }
                    None => (p, None),
                })
                .collect();
            Offer { name, params }
        })
        .collect()
}

/// The parameters of one `permessage-deflate` offer or answer, each at
/// most once and well formed; `None` when not.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn window(v: &str) -> Option<u8> {
    // Only plain digits: no sign, no leading zero (RFC 7692, section 7.1.2).
    if v.is_empty() || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

fn params(offer: &Offer<'_>) -> Option<Params> {
    let mut p = Params::default();
    for (i, (k, v)) in offer.params.iter().enumerate() {
        if offer.params[..i].iter().any(|(seen, _)| seen == k) {
            return None;
        }
        match (*k, *v) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => p.server_max_window_bits = Some(window(v)?),
            ("client_max_window_bits", None) => p.client_max_window_bits = Some(None),
            ("client_max_window_bits", Some(v)) => {
                p.client_max_window_bits = Some(Some(window(v)?));
            }
            _ => return None,
        }
    }
    Some(p)
}

/// The server's choice: the first `permessage-deflate` offer it can
/// accept, with the answer to write. Offers with unknown, repeated or
/// invalid parameters are declined (skipped), never an error.
pub(crate) fn accept<'a>(
    values: impl Iterator<Item = &'a str>,
    ours: &Deflate,
) -> Option<(Agreed, String)> {
    for offer in offers(values) {
        if !offer.name.eq_ignore_ascii_case(NAME) {
            continue;
        }
        let Some(p) = params(&offer) else {
            log::debug!("permessage-deflate offer declined: bad parameters");
            continue;
        };
        let server_bits = p
            .server_max_window_bits
            .map_or(ours.server_max_window_bits, |b| {
                b.min(ours.server_max_window_bits)
            });
        // Without `client_max_window_bits` in the offer, the client may use
        // 15 bits and the server cannot ask for fewer.
        let client_bits = match p.client_max_window_bits {
            None => 15,
            Some(asked) => asked.unwrap_or(15).min(ours.client_max_window_bits),
        };
        let agreed = Agreed {
            server_no_context_takeover: p.server_no_context_takeover
                || ours.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover
                || ours.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        let response = agreed.response(p.client_max_window_bits.is_some());
        return Some((agreed, response));
    }
    None
}

/// The client's offer: `client_max_window_bits` (so a server may pick a
/// window), and the settings that ask something of the server; then,
/// unless we already give up context takeover, the same with
/// `client_no_context_takeover`, for a server that wants its clients
/// without it (as Autobahn's 13.2, 13.5 and 13.6 do; Python `websockets`
/// and Node `ws` echo it when they take that offer, which is how the
/// answer tells the two apart).
pub(crate) fn offer(ours: &Deflate) -> String {
    let mut first = NAME.to_owned();
    if ours.server_no_context_takeover {
        first.push_str("; server_no_context_takeover");
    }
    if ours.client_no_context_takeover {
        first.push_str("; client_no_context_takeover");
    }
    if ours.ask_server_window {
        first.push_str(&format!(
            "; server_max_window_bits={}",
            ours.server_max_window_bits
        ));
    }
    first.push_str("; client_max_window_bits");
    if ours.client_no_context_takeover {
        return first;
    }
    format!("{first}, {first}; client_no_context_takeover")
}

/// The client's check of the server's answer (every
/// `Sec-WebSocket-Extensions` value): `Ok(None)` when it declined,
/// `Ok(Some)` with the agreement, `Err` with the reason when the answer
/// breaks the offer (the connection then fails).
pub(crate) fn verify<'a>(
    values: impl Iterator<Item = &'a str>,
    ours: &Deflate,
) -> Result<Option<Agreed>, &'static str> {
    let answers = offers(values);
    let [answer] = &answers[..] else {
        return match answers.len() {
            0 => Ok(None),
            _ => Err("handshake: the server chose more than one extension"),
        };
    };
    if !answer.name.eq_ignore_ascii_case(NAME) {
        return Err("handshake: the server chose an extension we did not offer");
    }
    let p = params(answer).ok_or("handshake: bad permessage-deflate parameters in the answer")?;
    let server_bits = p.server_max_window_bits.unwrap_or(15);
    if ours.ask_server_window && server_bits > ours.server_max_window_bits {
        return Err("handshake: server_max_window_bits above what we asked");
    }
    if ours.server_no_context_takeover && !p.server_no_context_takeover {
        return Err("handshake: server_no_context_takeover missing from the answer");
    }
    let client_bits = match p.client_max_window_bits {
        None => ours.client_max_window_bits,
        Some(None) => return Err("handshake: client_max_window_bits without a value"),
        Some(Some(b)) => b.min(ours.client_max_window_bits),
    };
    Ok(Some(Agreed {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover || ours.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(offer: &str) -> Option<(Agreed, String)> {
        accept(std::iter::once(offer), &Deflate::default())
    }

    fn server_with(offer: &str, ours: Deflate) -> Option<String> {
        accept(std::iter::once(offer), &ours).map(|(_, r)| r)
    }

    /// The offers Autobahn 13.x sends (autobahn's `PerMessageDeflateOffer`
    /// with each case's settings), and what an unrestricted server answers.
    #[test]
    fn autobahn_13_offers() {
        let max = Deflate::default()
            .server_max_window_bits(15)
            .client_max_window_bits(15);
        let cases = [
            // 13.1: the plain offer (with client_max_window_bits).
            (
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate; client_max_window_bits=15",
            ),
            ("permessage-deflate", "permessage-deflate"),
            // 13.2/13.5/13.6: no context takeover asked of the server.
            (
                "permessage-deflate; client_max_window_bits; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=15",
            ),
            // 13.3: an 8-bit window asked of the server.
            (
                "permessage-deflate; client_max_window_bits; server_max_window_bits=8",
                "permessage-deflate; server_max_window_bits=8; client_max_window_bits=15",
            ),
            (
                "permessage-deflate; client_max_window_bits; server_max_window_bits=15",
                "permessage-deflate; client_max_window_bits=15",
            ),
            (
                "permessage-deflate; client_max_window_bits; server_no_context_takeover; \
                 server_max_window_bits=8",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; \
                 client_max_window_bits=15",
            ),
            (
                "permessage-deflate; client_max_window_bits=9; client_no_context_takeover",
                "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
            ),
        ];
        for (offer, answer) in cases {
            assert_eq!(server_with(offer, max).as_deref(), Some(answer), "{offer}");
        }
        // 13.7: several offers, the first acceptable one wins.
        let several = "permessage-deflate; client_max_window_bits; server_no_context_takeover; \
                       server_max_window_bits=8, permessage-deflate; client_max_window_bits; \
                       server_no_context_takeover, permessage-deflate; client_max_window_bits";
        let (agreed, _) = accept(std::iter::once(several), &max).unwrap();
        assert_eq!(agreed.server_max_window_bits, 8);
        assert_eq!(agreed.server().window_bits, 9);
        assert!(agreed.server_no_context_takeover);
    }

    #[test]
    fn defaults_answer_with_12_bits() {
        let (agreed, answer) = server("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(
            answer,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        );
        assert_eq!(agreed.client().window_bits, 12);
        // Without client_max_window_bits the client keeps 15.
        let (agreed, answer) = server("permessage-deflate").unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=12");
        assert_eq!(agreed.client().window_bits, 15);
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_taken() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(server(bad), None, "{bad}");
            let then = format!("{bad}, permessage-deflate");
            assert!(server(&then).is_some(), "{then}");
        }
        // Quoted values are allowed (RFC 7692 section 7.1.2.1).
        assert!(server("permessage-deflate; client_max_window_bits=\"10\"").is_some());
        // Offers may be spread over several headers.
        let two = ["foo", "permessage-deflate; server_no_context_takeover"];
        assert!(accept(two.into_iter(), &Deflate::default()).is_some());
    }

    #[test]
    fn server_settings_shape_the_answer() {
        let ours = Deflate::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true)
            .client_max_window_bits(9);
        assert_eq!(
            server_with("permessage-deflate; client_max_window_bits=10", ours).unwrap(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=9"
        );
    }

    fn client(answer: &str) -> Result<Option<Agreed>, &'static str> {
        verify(std::iter::once(answer), &Deflate::default())
    }

    #[test]
    fn client_offer_and_answers() {
        assert_eq!(
            offer(&Deflate::default()),
            "permessage-deflate; client_max_window_bits, \
             permessage-deflate; client_max_window_bits; client_no_context_takeover"
        );
        assert_eq!(
            offer(
                &Deflate::default()
                    .server_max_window_bits(10)
                    .client_no_context_takeover(true)
            ),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; \
             client_max_window_bits"
        );
        // Our own server takes the first offer.
        let (agreed, _) = accept(
            std::iter::once(offer(&Deflate::default()).as_str()),
            &Deflate::default(),
        )
        .unwrap();
        assert!(!agreed.client_no_context_takeover);
        assert_eq!(verify(std::iter::empty(), &Deflate::default()), Ok(None));
        let a = client("permessage-deflate").unwrap().unwrap();
        assert_eq!((a.server().window_bits, a.client().window_bits), (15, 12));
        let a = client("permessage-deflate; client_max_window_bits=8; server_max_window_bits=9")
            .unwrap()
            .unwrap();
        assert_eq!((a.server().window_bits, a.client().window_bits), (9, 9));
        let a =
            client("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
                .unwrap()
                .unwrap();
        assert!(a.server().no_context_takeover && a.client().no_context_takeover);
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate, permessage-deflate",
            "x-other",
        ] {
            assert!(client(bad).is_err(), "{bad}");
        }
        // A window above the one we asked for breaks the offer.
        let ours = Deflate::default().server_max_window_bits(10);
        let answer = "permessage-deflate; server_max_window_bits=11";
        assert!(verify(std::iter::once(answer), &ours).is_err());
    }
}
