"""An event-stream server (Python's standard library only) for the SSE
interop check (scripts/interop-sse.sh): it prints "listening on
http://HOST:PORT", then serves the scripted stream of scripted_stream()
below at /events. Request 1 gets the wire format's corners and ends inside an
event; request 2 must carry Last-Event-ID: 3 and gets the rest; request 3
gets 204 (stop). Any other request, or a wrong Last-Event-ID, gets data the
client prints and the check then fails on."""

import http.server
import sys
import threading

FIRST = (
    b"\xef\xbb\xbf: a comment, then the reconnection time\n"
    b"retry: 100\n"
    b"id: 1\nevent: greet\ndata: hello\ndata: world\n\n"
    b"id: 2\r\ndata: crlf\r\n\r\n"
    b"id: 3\rdata: cr only\r\r"
    b"data: no id: keeps 3\n\n"
    b"id: 4\ndata: cut off"
)
SECOND = b"data: resumed after 3\n\ndata: multi\ndata:\ndata: line\n\nevent: bye\ndata: x\n\n"

lock = threading.Lock()
requests = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body runs until the connection closes

    def log_message(self, fmt, *args):
        sys.stderr.write("sse_peer.py: " + fmt % args + "\n")

    def do_GET(self):
        with lock:
            requests.append(self.headers.get("Last-Event-ID"))
            n = len(requests)
            last = requests[-1]
        if self.path != "/events" or self.headers.get("Accept") != "text/event-stream":
            body = b"data: WRONG request %s\n\n" % self.path.encode()
        elif n == 1:
            body = FIRST if last is None else b"data: WRONG first Last-Event-ID\n\n"
        elif n == 2:
            body = SECOND if last == "3" else b"data: WRONG Last-Event-ID %s\n\n" % str(last).encode()
        else:
            self.send_response(204)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
