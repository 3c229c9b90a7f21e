//! Route matching with percent-decoding.
//!
//! Checks: adding routes never panics (a bad one is `Error::Route`); `find`
//! agrees with a reference matcher written from the documented rules (an
//! exact path wins, else the first `:name` route in definition order whose
//! segments all match, a parameter matching one non-empty segment); each
//! parameter is the segment percent-decoded (`%` and two hex digits, and
//! nothing else, is an escape; a parameter that is not UTF-8 once decoded
//! makes the request a 400, `None` here).

use libfuzzer_sys::arbitrary::Unstructured;
use wsportal::fuzzing::Routes;
use wsportal::Error;

/// Strict percent-decoding, then strict UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let (h, l) = (b[i + 1], b[i + 2]);
            if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() {
                let hex =
                    |c: u8| (c as char).to_digit(16).expect("because it is a hex digit") as u8;
                out.push(hex(h) * 16 + hex(l));
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The reference matcher: the parameters if `pattern` matches `path`.
fn matches(pattern: &str, path: &str) -> Option<Vec<(String, Option<String>)>> {
    let pat: Vec<&str> = pattern[1..].split('/').collect();
    let got: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if pat.len() != got.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, g) in pat.iter().zip(&got) {
        match p.strip_prefix(':') {
            Some(_) if g.is_empty() => return None,
            Some(name) => params.push((name.to_owned(), decode(g))),
            None if p == g => {}
            None => return None,
        }
    }
    Some(params)
}

/// All parameters decoded, or `None` if one is not UTF-8.
fn all_decoded(params: Vec<(String, Option<String>)>) -> Option<Vec<(String, String)>> {
    params.into_iter().map(|(k, v)| v.map(|v| (k, v))).collect()
}

/// A path from a small alphabet (so segments collide), or any string.
fn text(u: &mut Unstructured<'_>) -> Option<String> {
    if u.ratio(1, 4).ok()? {
        return u.arbitrary::<String>().ok();
    }
    const PIECES: [&str; 12] = [
        "/", "a", "b", ":x", ":y", "%", "%2F", "%41", "%+1", "%zz", "é", "%C3",
    ];
    let n = u.int_in_range(0..=8u8).ok()?;
    let mut s = String::from("/");
    for _ in 0..n {
        s.push_str(u.choose(&PIECES).ok()?);
    }
    Some(s)
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(count) = u.int_in_range(0..=6u8) else {
        return;
    };
    let mut routes = Routes::default();
    let mut added: Vec<String> = Vec::new();
    for i in 0..count {
        let Some(p) = text(&mut u) else { return };
        match routes.add(&p, usize::from(i)) {
            Ok(()) => added.push(p),
            Err(Error::Route(_)) => added.push(String::new()),
            Err(other) => panic!("undocumented error {other:?}"),
        }
    }
    let Some(path) = text(&mut u) else { return };
    let found = routes.find(&path);
    let exact = added
        .iter()
        .position(|p| !p.is_empty() && !p.split('/').any(|s| s.starts_with(':')) && *p == path);
    let want = match exact {
        Some(i) => Some((i, Some(Vec::new()))),
        None => added
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty() && p.split('/').any(|s| s.starts_with(':')))
            .find_map(|(i, p)| matches(p, &path).map(|params| (i, all_decoded(params)))),
    };
    let got = found.map(|(id, params, pattern)| {
        assert_eq!(pattern, added[id]);
        (id, params)
    });
    assert_eq!(got, want, "routes {added:?}, path {path:?}");
}
