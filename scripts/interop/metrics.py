"""Checks wsportal's Prometheus page with a parser we did not write.

    python metrics.py ws://HOST:PORT/interop

Against `examples/interop.rs server` (which serves /metrics): opens a
WebSocket with Python `websockets` and echoes two messages, asks for an
unknown path (a 404), then reads http://HOST:PORT/metrics and parses it with
`prometheus_client`'s text-format parser (what a Prometheus exporter's
tests use), checking families, types, labels and values. HEAD answers the
same head without a body, POST 405. Exits non-zero on the first mismatch.
"""

import sys
import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

WAIT = 10


def fail(why):
    sys.stderr.write("metrics: FAIL: %s\n" % why)
    sys.exit(1)


def expect(what, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))
    print("ok: %s" % what)


def request(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def main():
    ws_url = sys.argv[1]
    addr = urllib.parse.urlsplit(ws_url).netloc
    metrics_url = "http://%s/metrics" % addr

    with connect(ws_url, open_timeout=WAIT, close_timeout=WAIT) as ws:
        for text in ["hello", "world!"]:
            ws.send(text)
            expect("echo of %r" % text, ws.recv(timeout=WAIT), text)
        # Answered only once the echo hooks have returned (and counted).
        if not ws.ping().wait(WAIT):
            fail("no pong within %d s" % WAIT)
        status, _, _ = request("http://%s/nope" % addr)
        expect("status of an unknown path", status, 404)

        status, headers, body = request(metrics_url)
        expect("GET /metrics status", status, 200)
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        expect("content type", ctype.split(";")[0], "text/plain")
        if "version=0.0.4" not in ctype:
            fail("content type without version=0.0.4: %r" % ctype)

        families = {f.name: f for f in text_string_to_metric_families(body)}
        print("ok: prometheus_client parsed %d families" % len(families))
        want_types = {
            "wsportal_connections": "gauge",
            "wsportal_event_clients": "gauge",
            "wsportal_groups": "gauge",
            "wsportal_group_members": "gauge",
            "wsportal_backlog_bytes": "gauge",
            "wsportal_largest_backlog_bytes": "gauge",
            "wsportal_threads": "gauge",
            # The parser names a counter family without its `_total`.
            "wsportal_messages_received": "counter",
            "wsportal_received_bytes": "counter",
            "wsportal_messages_sent": "counter",
            "wsportal_sent_bytes": "counter",
            "wsportal_handshakes_accepted": "counter",
            "wsportal_requests_refused": "counter",
            "wsportal_closes": "counter",
            "wsportal_hook_panics": "counter",
        }
        for name, typ in want_types.items():
            if name not in families:
                fail("no family %s in:\n%s" % (name, body))
            expect("type of %s" % name, families[name].type, typ)
            if not families[name].documentation:
                fail("%s has no HELP text" % name)
        extra = set(families) - set(want_types)
        if extra:
            fail("families nobody expected: %s" % sorted(extra))

        def value(family, sample_name, **labels):
            for s in families[family].samples:
                if s.name == sample_name and s.labels == labels:
                    return s.value
            fail("no sample %s%r in:\n%s" % (sample_name, labels, body))

        expect("open connections on /interop",
               value("wsportal_connections", "wsportal_connections", resource="/interop"), 1.0)
        expect("messages received",
               value("wsportal_messages_received", "wsportal_messages_received_total"), 2.0)
        expect("bytes received",
               value("wsportal_received_bytes", "wsportal_received_bytes_total"), 11.0)
        expect("messages sent",
               value("wsportal_messages_sent", "wsportal_messages_sent_total"), 2.0)
        expect("websocket handshakes",
               value("wsportal_handshakes_accepted", "wsportal_handshakes_accepted_total",
                     kind="websocket"), 1.0)
        expect("404 refusals",
               value("wsportal_requests_refused", "wsportal_requests_refused_total",
                     status="404"), 1.0)
        expect("1000 closes so far",
               value("wsportal_closes", "wsportal_closes_total", code="1000"), 0.0)
        busy = value("wsportal_threads", "wsportal_threads", state="busy")
        if busy < 1:
            fail("threads busy: expected at least 1 (this WebSocket), got %r" % busy)
        print("ok: threads busy %d" % busy)

    status, _, body = request(metrics_url, "HEAD")
    expect("HEAD /metrics", (status, body), (200, ""))
    status, _, _ = request(metrics_url, "POST")
    expect("POST /metrics", status, 405)
    print("metrics: PASS")


if __name__ == "__main__":
    main()
