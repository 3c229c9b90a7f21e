//! Paths to endpoints: exact paths and `:name` segments.
//!
//! An exact path wins over a pattern; among patterns the first registered wins.

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route path such as `/chat/:room`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    pub(crate) fn parse(path: &str) -> Result<Pattern, Error> {
        if !path.starts_with('/') {
            return Err(Error::Route(format!("{path:?} does not start with '/'")));
        }
        if path.contains(['?', '#', ' ']) {
            return Err(Error::Route(format!(
                "{path:?} contains '?', '#' or a space"
            )));
        }
        let mut segments = Vec::new();
        for seg in path[1..].split('/') {
            match seg.strip_prefix(':') {
                Some("") => {
                    return Err(Error::Route(format!("{path:?} has an unnamed ':' segment")))
                }
                Some(name) => {
                    let dup = segments.contains(&Segment::Param(name.to_owned()));
                    if dup {
                        return Err(Error::Route(format!("{path:?} repeats ':{name}'")));
                    }
                    segments.push(Segment::Param(name.to_owned()));
                }
                None => segments.push(Segment::Literal(seg.to_owned())),
            }
        }
        Ok(Pattern {
            text: path.to_owned(),
            segments,
        })
    }

    fn is_exact(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Whether both patterns match the same paths: the same literals in the
    /// same places, whatever the parameters are called.
    fn same_shape(&self, other: &Pattern) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    (Segment::Param(_), Segment::Param(_)) => true,
                    _ => false,
                })
    }

    /// The named segments' values if `path` matches, not decoded yet.
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts = path.strip_prefix('/')?.split('/');
        let mut params = Vec::new();
        let mut expected = self.segments.iter();
        for part in parts {
            match expected.next()? {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => params.push((name.clone(), part.to_owned())),
            }
        }
        expected.next().is_none().then_some(params)
    }
}

/// A route lookup's result: target, named segments, pattern text.
pub(crate) type Found<'a, T> = (&'a T, Vec<(String, String)>, &'a str);

/// Endpoints by path.
#[derive(Debug, Clone)]
pub(crate) struct Routes<T> {
    entries: Vec<(Pattern, T)>,
}

impl<T> Default for Routes<T> {
    fn default() -> Self {
        Routes {
            entries: Vec::new(),
        }
    }
}

impl<T> Routes<T> {
    /// Adds an endpoint; an error if the path is malformed or already taken.
    pub(crate) fn add(&mut self, path: &str, target: T) -> Result<(), Error> {
        let pattern = Pattern::parse(path)?;
        if let Some(p) = self
            .entries
            .iter()
            .find(|(p, _)| p.same_shape(&pattern))
            .map(|(p, _)| p.text.clone())
        {
            return Err(Error::Route(if p == path {
                format!("{path:?} is defined twice")
            } else {
                format!("{path:?} matches the same paths as {p:?}, defined before")
            }));
        }
        self.entries.push((pattern, target));
        Ok(())
    }

    /// The endpoint for `path`: the target, its named segments (not
    /// percent-decoded: see [`decode_params`]), and the pattern's text (e.g.
    /// `/chat/:room`).
    pub(crate) fn find(&self, path: &str) -> Option<Found<'_, T>> {
        let exact = self
            .entries
            .iter()
            .find(|(p, _)| p.is_exact() && p.text == path);
        if let Some((p, t)) = exact {
            return Some((t, Vec::new(), &p.text));
        }
        self.entries
            .iter()
            .filter(|(p, _)| !p.is_exact())
            .find_map(|(p, t)| p.matches(path).map(|params| (t, params, p.text.as_str())))
    }
}

/// Percent-decodes the named segments' values; `None` when one is not UTF-8
/// once decoded (`%FF`), which the server refuses with 400 rather than
/// giving two different paths the same value.
pub(crate) fn decode_params(raw: Vec<(String, String)>) -> Option<Vec<(String, String)>> {
    raw.into_iter()
        .map(|(k, v)| crate::http::percent_decode_utf8(&v).map(|v| (k, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_pattern_and_params_decode() {
        let mut r = Routes::default();
        r.add("/chat/:room", 1).unwrap();
        r.add("/chat/lobby", 2).unwrap();
        r.add("/", 3).unwrap();
        assert_eq!(r.find("/chat/lobby").unwrap().0, &2);
        let (t, params, pattern) = r.find("/chat/my%20room").unwrap();
        assert_eq!(t, &1);
        assert_eq!(pattern, "/chat/:room");
        assert_eq!(params, vec![("room".to_owned(), "my%20room".to_owned())]);
        let decoded = decode_params(params).unwrap();
        assert_eq!(decoded, vec![("room".to_owned(), "my room".to_owned())]);
        let (_, params, _) = r.find("/chat/a%2Fb").unwrap();
        assert_eq!(decode_params(params).unwrap()[0].1, "a/b");
        let (_, params, _) = r.find("/chat/..").unwrap();
        assert_eq!(decode_params(params).unwrap()[0].1, "..");
        for bad in ["/chat/%FF", "/chat/%FE", "/chat/%C3"] {
            let (_, params, _) = r.find(bad).unwrap();
            assert_eq!(decode_params(params), None, "{bad}");
        }
        assert!(r.find("/chat/").is_none());
        assert!(r.find("/chat/a/b").is_none());
        assert_eq!(r.find("/").unwrap().0, &3);
        assert!(r.find("/nope").is_none());
    }

    #[test]
    fn refuses_bad_paths() {
        let mut r = Routes::default();
        assert!(r.add("chat", 1).is_err());
        assert!(r.add("/a/:", 1).is_err());
        assert!(r.add("/a/:x/:x", 1).is_err());
        r.add("/a/:x", 1).unwrap();
        assert!(r.add("/a/:x", 2).is_err());
        assert!(r.add("/a/:y", 2).is_err());
        r.add("/a/b", 3).unwrap();
        r.add("/a/:x/c", 4).unwrap();
        r.add("/a/:x/:y", 5).unwrap();
        assert!(r.add("/a/:p/:q", 6).is_err());
    }

    /// Found by the `route` fuzz target: `u8::from_str_radix` takes a sign,
    /// so `%+1` decoded to U+0001. Only `%` and two hex digits is an escape.
    #[test]
    fn a_sign_is_not_a_hex_digit() {
        let mut r = Routes::default();
        r.add("/f/:name", 1).unwrap();
        for (path, want) in [("/f/%+1", "%+1"), ("/f/%-1", "%-1"), ("/f/%+f%41", "%+fA")] {
            let (_, params, _) = r.find(path).unwrap();
            let params = decode_params(params).unwrap();
            assert_eq!(params, vec![("name".to_owned(), want.to_owned())], "{path}");
        }
    }
}
