//! Header fields: a request's, kept in one buffer, and the lookups every
//! list of fields shares (a request's, a response's).

use std::borrow::Cow;
use std::fmt;

/// Header fields in the order received, names and values in one string.
///
/// A request stays with its connection for the connection's life (hooks
/// read it), so its head is kept compact: one string and one list of
/// offsets instead of a `String` per name and value (a browser's handshake
/// has ten to twenty of them, each a separate heap block).
#[derive(Clone, Default)]
pub(crate) struct Headers {
    text: String,
    /// Where each field's name and value end in `text`; a name starts
    /// where the field before it ended.
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// Room for `fields` fields of `bytes` bytes in all, so that filling
    /// it allocates twice at most.
    pub(crate) fn with_capacity(fields: usize, bytes: usize) -> Headers {
        Headers {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(fields),
        }
    }

    /// Appends a field.
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// The fields, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, end)| {
            let field = (&self.text[start..name_end], &self.text[name_end..end]);
            start = end;
            field
        })
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(fields: I) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in fields {
            headers.push(name, value);
        }
        headers
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A list of owned fields (a response's) as the lookups below take them.
pub(crate) fn pairs(fields: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The first value of a header, by case-insensitive name.
pub(crate) fn header_value<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    name: &str,
) -> Option<&'a str> {
    fields
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// How many times a header occurs, by case-insensitive name.
pub(crate) fn header_count<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    name: &str,
) -> usize {
    fields
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .count()
}

/// Whether a comma-separated header contains `token` (case-insensitive),
/// looking at every occurrence of the header.
pub(crate) fn has_token<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    name: &str,
    token: &str,
) -> bool {
    fields
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A header value as received: leading and trailing SP and HTAB removed,
/// bytes that are not UTF-8 (obs-text such as a Latin-1 cookie) replaced
/// with U+FFFD.
pub(crate) fn header_text(value: &[u8]) -> Cow<'_, str> {
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = value.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => String::from_utf8_lossy(&value[s..=e]),
        _ => Cow::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_in_order_with_empty_names_and_values_kept_apart() {
        let mut h = Headers::with_capacity(1, 1);
        h.push("Host", "x");
        h.push("X-Empty", "");
        h.push("host", "second");
        let all: Vec<_> = h.iter().collect();
        assert_eq!(all, [("Host", "x"), ("X-Empty", ""), ("host", "second")]);
        assert_eq!(header_value(h.iter(), "HOST"), Some("x"));
        assert_eq!(header_value(h.iter(), "x-empty"), Some(""));
        assert_eq!(header_count(h.iter(), "host"), 2);
        assert_eq!(
            format!("{h:?}"),
            r#"[("Host", "x"), ("X-Empty", ""), ("host", "second")]"#
        );
    }
}
