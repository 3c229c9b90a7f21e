"""Interop peer on Python `websockets` (sync API), for scripts/interop.sh.

    python peer.py server            # prints "listening on ws://127.0.0.1:PORT"
    python peer.py client URL        # checks a wsportal server; exit 1 on mismatch

The server speaks the command protocol described in examples/interop.rs
(echo, cmd:protocol, cmd:header, cmd:ping, cmd:close, cmd:lastclose,
cmd:frag). The client runs the same checks as the Node peer's client.
Every wait is bounded.
"""

import os
import select
import ssl
import sys
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import serve

WAIT = 10
PROTOCOLS = ["chat.v2", "chat.v1"]
last_close = ["none"]
lock = threading.Lock()


def frag_text(size):
    return "".join(chr(ord("a") + i % 26) for i in range(size))


def frag_binary(size):
    return bytes(i % 251 for i in range(size))


def chunks(data, n):
    step = -(-len(data) // n)
    return [data[i:i + step] for i in range(0, len(data), step)]


def select_protocol(connection, offered):
    for p in PROTOCOLS:  # the server's preference
        if p in offered:
            return p
    return None


def handler(ws):
    if DEFLATE and not deflated(ws, ws.response.headers):
        ws.close(1011, "permessage-deflate was not agreed")
        return
    try:
        for msg in ws:
            if isinstance(msg, str) and msg.startswith("cmd:"):
                name, _, arg = msg[4:].partition(" ")
                if name == "protocol":
                    ws.send(ws.subprotocol or "none")
                elif name == "header":
                    ws.send(ws.request.headers.get(arg, "-"))
                elif name == "ping":
                    if ws.ping(b"srv-ping").wait(WAIT):
                        ws.send("pong ok")
                elif name == "close":
                    code, _, reason = arg.partition(" ")
                    ws.close(int(code), reason)
                elif name == "lastclose":
                    with lock:
                        ws.send(last_close[0])
                elif name == "frag":
                    n, size = (int(x) for x in arg.split())
                    ws.send(chunks(frag_text(size), n))
                    ws.send(chunks(frag_binary(size), n))
                else:
                    ws.send(f"unknown command {name}")
            else:
                ws.send(msg)
    except ConnectionClosed:
        pass
    rcvd = ws.protocol.close_rcvd
    with lock:
        last_close[0] = f"{rcvd.code} {rcvd.reason}" if rcvd else "1006 "


# With INTEROP_CERT and INTEROP_KEY (PEM files) the server serves wss://; with
# INTEROP_CERT the client trusts that certificate for wss:// URLs.
CERT = os.environ.get("INTEROP_CERT")
KEY = os.environ.get("INTEROP_KEY")
# INTEROP_DEFLATE=default: permessage-deflate with websockets' defaults (12-bit
# windows, memLevel 5); =tuned: other windows and no context takeover. Either
# way the extension must be agreed, or the peer fails.
DEFLATE = os.environ.get("INTEROP_DEFLATE", "")


def deflated(ws, headers):
    return "permessage-deflate" in (headers.get("Sec-WebSocket-Extensions") or "")


def server_compression():
    if DEFLATE == "tuned":
        from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
        return dict(compression=None, extensions=[ServerPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True,
            server_max_window_bits=10, client_max_window_bits=9)])
    return dict(compression="deflate" if DEFLATE else None)


def client_compression():
    if DEFLATE == "tuned":
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        return dict(compression=None, extensions=[ClientPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True,
            server_max_window_bits=11, client_max_window_bits=True)])
    return dict(compression="deflate" if DEFLATE else None)


def run_server():
    tls = None
    if CERT and KEY:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(CERT, KEY)
    with serve(handler, "127.0.0.1", 0, select_subprotocol=select_protocol,
               max_size=None, ping_interval=None, ssl=tls, **server_compression()) as server:
        port = server.socket.getsockname()[1]
        scheme = "wss" if tls else "ws"
        print(f"listening on {scheme}://127.0.0.1:{port}", flush=True)
        server.serve_forever()


def expect(what, got, want):
    if got != want:
        g = got if not isinstance(got, (bytes, str)) or len(got) < 80 else f"{type(got).__name__} of {len(got)}"
        w = want if not isinstance(want, (bytes, str)) or len(want) < 80 else f"{type(want).__name__} of {len(want)}"
        sys.exit(f"python client: FAIL: {what}: expected {w!r}, got {g!r}")
    print(f"ok: {what}", flush=True)


class TicketsFirst(ssl.SSLContext):
    """A client context that reads the server's TLS 1.3 session tickets
    before handing the socket over.

    websockets' sync client reads in a thread of its own while the caller
    writes, and CPython's SSLSocket is not safe for that (OpenSSL's SSL
    object is not: python/cpython#77271, python-engineio#461). A TLS 1.3
    server sends its tickets once it has the client's Finished, so they
    arrive while the client writes its HTTP request; now and then the
    request is lost inside the SSL object and the client waits for the
    response until its open timeout. Seen against wsportal in CI (the
    request never reached the kernel: the client's socket had sent only
    ClientHello and Finished); `sync-tls-race.py` counts it (DEPLOYING.md,
    "Python's sync client over wss://").
    """

    def wrap_socket(self, *args, **kwargs):
        tls = super().wrap_socket(*args, **kwargs)
        if tls.version() == "TLSv1.3":
            timeout = tls.gettimeout()
            if not select.select([tls], [], [], WAIT)[0]:
                print(f"note: no TLS 1.3 session tickets within {WAIT} s", flush=True)
            tls.setblocking(False)
            try:
                data = tls.recv(1)
                sys.exit(f"python client: FAIL: the server spoke first: {data!r}")
            except ssl.SSLWantReadError:
                pass  # the tickets, and nothing else
            tls.settimeout(timeout)
        return tls


def client_tls(url):
    if not (url.startswith("wss:") and CERT):
        return None
    tls = TicketsFirst(ssl.PROTOCOL_TLS_CLIENT)
    tls.load_verify_locations(cafile=CERT)
    return tls


def open_client(url):
    tls = client_tls(url)
    return connect(url, subprotocols=["nope", "chat.v1"], additional_headers={"X-Interop": "yes"},
                   max_size=None, open_timeout=WAIT, close_timeout=WAIT, **client_compression(),
                   ping_interval=None, ssl=tls)


def run_client(url):
    with open_client(url) as ws:
        expect("subprotocol agreed", ws.subprotocol, "chat.v1")
        if DEFLATE:
            expect(f"permessage-deflate agreed ({DEFLATE})", deflated(ws, ws.response.headers), True)
        ws.send("cmd:protocol")
        expect("the server agrees on the subprotocol", ws.recv(WAIT), "chat.v1")
        ws.send("cmd:header X-Interop")
        expect("the server saw our extra header", ws.recv(WAIT), "yes")
        for msg in ["héllo wörld ✓", "", b"", bytes(range(256)), "x" * 70000,
                    bytes(i % 253 for i in range(4 << 20))]:
            ws.send(msg)
            expect(f"echo of a {type(msg).__name__} message of {len(msg)}", ws.recv(WAIT), msg)
        text = frag_text(100000)
        ws.send(chunks(text, 10))
        expect("echo of a text message sent in 10 fragments", ws.recv(WAIT), text)
        data = frag_binary(100000)
        ws.send(chunks(data, 7))
        expect("echo of a binary message sent in 7 fragments", ws.recv(WAIT), data)
        expect("our ping was answered", ws.ping(b"client-ping").wait(WAIT), True)
        ws.send("cmd:ping")
        expect("we answered the server's ping", ws.recv(WAIT), "pong ok")
        ws.close(4001, "interop bye")
        # The server echoes the code (RFC 6455, 5.5.1); the reason is optional.
        expect("the server echoed our close code", ws.close_code, 4001)

    with open_client(url) as ws:
        ws.send("cmd:lastclose")
        expect("the server saw our close code and reason", ws.recv(WAIT), "4001 interop bye")
        ws.send("cmd:close 4002 server bye")
        try:
            ws.recv(WAIT)
            sys.exit("python client: FAIL: a message instead of the server's close")
        except ConnectionClosed as e:
            expect("the server's close code and reason", (e.rcvd.code, e.rcvd.reason),
                   (4002, "server bye"))
    print(f"python client: all checks passed against {url}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["server"]:
        run_server()
    elif len(sys.argv) == 3 and sys.argv[1] == "client":
        run_client(sys.argv[2])
    else:
        sys.exit("usage: peer.py server | peer.py client URL")
