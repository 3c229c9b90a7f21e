//! The `/metrics` page (`Server::define_metrics`): a snapshot of the
//! server's [`Stats`] in the Prometheus text exposition format, answered
//! as a handler answers (`GET` and `HEAD`, `405` otherwise). The counters
//! themselves live below, in `session::stats`; this is only their page,
//! their Prometheus text and their JSON (`Stats::to_json`, for a `/stats`
//! handler).

use std::fmt::Write as _;

use super::handler::Handler;
use crate::session::hub::Hub;
use crate::session::stats::snapshot;
use crate::{Request, Response, Stats};

/// The `Content-Type` of the Prometheus text exposition format.
const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The answer of a metrics page (`Server::define_metrics`) to `req`.
pub(super) fn metrics_response(req: &Request, hub: &Hub, debug_on_error: bool) -> Vec<u8> {
    let response = Response::new(200)
        .header("Content-Type", PROMETHEUS_TYPE)
        .header("Cache-Control", "no-store")
        .body(snapshot(hub).to_prometheus());
    // The handler's rules: GET and HEAD, 405 otherwise.
    let page = Handler::new(move |_| response.clone());
    page.respond(req, debug_on_error)
}

impl Stats {
    /// The snapshot in the Prometheus text exposition format (version
    /// 0.0.4): `# HELP` and `# TYPE` lines, counters named `..._total`,
    /// gauges, and labels `resource`, `stream`, `group`, `kind`, `status`,
    /// `code` and `state`. This is what
    /// [`Server::define_metrics`](crate::Server::define_metrics) serves.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let one = |v: usize| vec![(String::new(), v as u64)];
        let by = |label: &str, pairs: &[(String, usize)]| -> Vec<(String, u64)> {
            pairs
                .iter()
                .map(|(k, v)| (labels(&[(label, k)]), *v as u64))
                .collect()
        };
        let by_code = |label: &str, pairs: &[(u16, u64)]| -> Vec<(String, u64)> {
            pairs
                .iter()
                .map(|(k, v)| (labels(&[(label, &k.to_string())]), *v))
                .collect()
        };
        let gauges = [
            (
                "wsportal_connections",
                "Open WebSocket connections, by resource.",
                by("resource", &self.connections_by_resource),
            ),
            (
                "wsportal_event_clients",
                "Open event-stream (SSE) clients, by stream.",
                by("stream", &self.event_clients_by_stream),
            ),
            (
                "wsportal_groups",
                "Groups with at least one member.",
                one(self.groups),
            ),
            (
                "wsportal_group_members",
                "Members of the largest groups.",
                by("group", &self.largest_groups),
            ),
            (
                "wsportal_backlog_bytes",
                "Bytes queued and not yet written, over all clients.",
                one(self.backlog_bytes),
            ),
            (
                "wsportal_largest_backlog_bytes",
                "The largest single client backlog, in bytes.",
                one(self.largest_backlog),
            ),
            (
                "wsportal_threads",
                "Pool threads, by state (busy or idle).",
                by(
                    "state",
                    &[
                        ("busy".to_owned(), self.threads_busy),
                        ("idle".to_owned(), self.threads_idle),
                    ],
                ),
            ),
        ];
        for (name, help, samples) in &gauges {
            family(&mut out, name, "gauge", help, samples);
        }
        let total = |v: u64| vec![(String::new(), v)];
        let counters = [
            (
                "wsportal_messages_received_total",
                "WebSocket data messages received.",
                total(self.messages_received),
            ),
            (
                "wsportal_received_bytes_total",
                "Payload bytes of the WebSocket data messages received.",
                total(self.bytes_received),
            ),
            (
                "wsportal_messages_sent_total",
                "WebSocket data messages queued to peers.",
                total(self.messages_sent),
            ),
            (
                "wsportal_sent_bytes_total",
                "Payload bytes of the WebSocket data messages queued to peers.",
                total(self.bytes_sent),
            ),
            (
                "wsportal_handshakes_accepted_total",
                "Handshakes accepted, by kind (websocket or event_stream).",
                vec![
                    (labels(&[("kind", "websocket")]), self.websocket_accepted),
                    (
                        labels(&[("kind", "event_stream")]),
                        self.event_streams_accepted,
                    ),
                ],
            ),
            (
                "wsportal_requests_refused_total",
                "Requests refused, by HTTP status.",
                by_code("status", &self.refused_by_status),
            ),
            (
                "wsportal_closes_total",
                "Ended WebSocket connections, by close code.",
                by_code("code", &self.closes_by_code),
            ),
            (
                "wsportal_hook_panics_total",
                "Hooks and handlers that panicked.",
                total(self.hook_panics),
            ),
        ];
        for (name, help, samples) in &counters {
            family(&mut out, name, "counter", help, samples);
        }
        out
    }
}

impl Stats {
    /// The snapshot as one JSON object, for a `/stats` handler
    /// (`Response::json(handle.stats().to_json())`): every field by its
    /// name; the per-resource, per-stream, per-status and per-code counts
    /// as objects (`{"/chat":2}`, `{"404":1}`), the largest groups as an
    /// array of `{"group":NAME,"members":N}`, largest first. Names are
    /// escaped as JSON strings; no dependency is involved.
    ///
    /// ```
    /// let stats = wsportal::Stats::default();
    /// let json = stats.to_json();
    /// assert!(json.starts_with(r#"{"connections":0,"connections_by_resource":{}"#));
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(1024);
        let names = |pairs: &[(String, usize)]| -> String {
            let items: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{v}", json_string(k)))
                .collect();
            format!("{{{}}}", items.join(","))
        };
        let codes = |pairs: &[(u16, u64)]| -> String {
            let items: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", items.join(","))
        };
        let groups: Vec<String> = self
            .largest_groups
            .iter()
            .map(|(g, n)| format!("{{\"group\":{},\"members\":{n}}}", json_string(g)))
            .collect();
        let fields: [(&str, String); 19] = [
            ("connections", self.connections.to_string()),
            (
                "connections_by_resource",
                names(&self.connections_by_resource),
            ),
            ("event_clients", self.event_clients.to_string()),
            (
                "event_clients_by_stream",
                names(&self.event_clients_by_stream),
            ),
            ("groups", self.groups.to_string()),
            ("largest_groups", format!("[{}]", groups.join(","))),
            ("messages_received", self.messages_received.to_string()),
            ("bytes_received", self.bytes_received.to_string()),
            ("messages_sent", self.messages_sent.to_string()),
            ("bytes_sent", self.bytes_sent.to_string()),
            ("websocket_accepted", self.websocket_accepted.to_string()),
            (
                "event_streams_accepted",
                self.event_streams_accepted.to_string(),
            ),
            ("refused_by_status", codes(&self.refused_by_status)),
            ("closes_by_code", codes(&self.closes_by_code)),
            ("hook_panics", self.hook_panics.to_string()),
            ("backlog_bytes", self.backlog_bytes.to_string()),
            ("largest_backlog", self.largest_backlog.to_string()),
            ("threads_busy", self.threads_busy.to_string()),
            ("threads_idle", self.threads_idle.to_string()),
        ];
        out.push('{');
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{name}\":{value}");
        }
        out.push('}');
        out
    }
}

/// `s` as a JSON string literal (RFC 8259: quotes, backslashes and
/// control characters escaped).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One metric family: its `# HELP` and `# TYPE` lines, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// `{a="x",b="y"}` with the values escaped as the text format says.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for ch in v.chars() {
            match ch {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("group", "a\"b\\c\nd"), ("code", "1000")]),
            r#"{group="a\"b\\c\nd",code="1000"}"#
        );
    }

    #[test]
    fn json_has_every_field_and_escapes_names() {
        let s = Stats {
            connections: 2,
            connections_by_resource: vec![("/chat/:room".to_owned(), 2)],
            largest_groups: vec![("x\"y\\z\n\u{1}".to_owned(), 3)],
            refused_by_status: vec![(404, 2), (503, 1)],
            closes_by_code: vec![(1000, 1)],
            threads_idle: 4,
            ..Stats::default()
        };
        assert_eq!(
            s.to_json(),
            concat!(
                r#"{"connections":2,"connections_by_resource":{"/chat/:room":2},"#,
                r#""event_clients":0,"event_clients_by_stream":{},"groups":0,"#,
                r#""largest_groups":[{"group":"x\"y\\z\n\u0001","members":3}],"#,
                r#""messages_received":0,"bytes_received":0,"messages_sent":0,"bytes_sent":0,"#,
                r#""websocket_accepted":0,"event_streams_accepted":0,"#,
                r#""refused_by_status":{"404":2,"503":1},"closes_by_code":{"1000":1},"#,
                r#""hook_panics":0,"backlog_bytes":0,"largest_backlog":0,"#,
                r#""threads_busy":0,"threads_idle":4}"#
            )
        );
    }

    #[test]
    fn prometheus_text_has_help_type_and_samples() {
        let s = Stats {
            connections_by_resource: vec![("/chat/:room".to_owned(), 2)],
            largest_groups: vec![("x\"y".to_owned(), 3)],
            messages_received: 7,
            refused_by_status: vec![(404, 2)],
            closes_by_code: vec![(1000, 1)],
            ..Stats::default()
        };
        let text = s.to_prometheus();
        for line in [
            "# HELP wsportal_connections Open WebSocket connections, by resource.",
            "# TYPE wsportal_connections gauge",
            "wsportal_connections{resource=\"/chat/:room\"} 2",
            "wsportal_group_members{group=\"x\\\"y\"} 3",
            "# TYPE wsportal_messages_received_total counter",
            "wsportal_messages_received_total 7",
            "wsportal_requests_refused_total{status=\"404\"} 2",
            "wsportal_closes_total{code=\"1000\"} 1",
            "wsportal_threads{state=\"idle\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with('\n'));
    }
}
