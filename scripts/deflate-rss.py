#!/usr/bin/env python3
"""Server memory per idle connection, with and without permessage-deflate.

    cargo build --release --features deflate --example demo
    python3 scripts/deflate-rss.py [N]        (N connections, default 500)

(`SCENARIOS=deflate-idle bash scripts/bench.sh` measures the first two
figures with 10,000 connections against the echo example and the peers.)

Starts target/release/examples/demo (default settings: keepalive pings after
30 s of silence), opens N raw connections to /echo offering
permessage-deflate (client_max_window_bits), reads the server's RSS
(/proc/PID/status VmRSS) idle, then after each connection has sent one
compressed message and received its compressed echo, then 33 s later, once
the keepalive scan has freed the idle compressors (the raw clients do not
answer pings: they are cut off 10 s later, after the reading); then the
same with N connections that offer nothing. Prints KiB per connection for
each. Only the standard library (socket, zlib) is used on the client side.
"""

import base64
import os
import re
import resource
import socket
import subprocess
import sys
import time
import zlib

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
# Two sockets per connection (ours and the server's) plus a few: raise the
# soft open-file limit, which the server inherits, for N in the thousands.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _hard != resource.RLIM_INFINITY and _hard > _soft:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "examples", "demo")
MESSAGE = ('{"user":"someone","room":"lobby","text":"hello, this is a chat line",'
           '"ts":1700000000}').encode()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def connect(addr, offer):
    s = socket.create_connection(addr)
    s.settimeout(20)
    key = base64.b64encode(os.urandom(16)).decode()
    ext = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    s.sendall((f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{ext}\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, b"permessage-deflate" in head


def frame(payload, rsv1):
    mask = os.urandom(4)
    b0 = 0x81 | (0x40 if rsv1 else 0)
    n = len(payload)
    head = bytes([b0, 0x80 | n]) if n < 126 else bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    def exact(k):
        buf = b""
        while len(buf) < k:
            chunk = s.recv(k - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exact(2), "big")
    elif n == 127:
        n = int.from_bytes(exact(8), "big")
    return b0, exact(n)


def measure(offer):
    server = subprocess.Popen([BIN, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        host, port = re.search(r"//([\d.]+):(\d+)", line).groups()
        addr = (host, int(port))
        time.sleep(0.5)
        base = rss_kib(server.pid)
        socks = []
        for _ in range(N):
            s, agreed = connect(addr, offer)
            assert agreed == bool(offer)
            socks.append(s)
        time.sleep(1)
        idle = rss_kib(server.pid)
        for s in socks:
            if offer:
                z = zlib.compressobj(6, zlib.DEFLATED, -12)
                payload = z.compress(MESSAGE) + z.flush(zlib.Z_SYNC_FLUSH)
                s.sendall(frame(payload[:-4], True))
            else:
                s.sendall(frame(MESSAGE, False))
            b0, _ = read_frame(s)
            assert bool(b0 & 0x40) == bool(offer)
        time.sleep(1)
        used = rss_kib(server.pid)
        trimmed = None
        if offer:
            time.sleep(33)
            trimmed = rss_kib(server.pid)
        for s in socks:
            s.close()
        return base, idle, used, trimmed
    finally:
        server.terminate()
        server.wait()


for label, offer in (("deflate", "permessage-deflate; client_max_window_bits"), ("plain", "")):
    base, idle, used, trimmed = measure(offer)
    print(f"{label:8} N={N}: base {base} KiB; idle {(idle - base) / N:.1f} KiB/conn; "
          f"after one message each way {(used - base) / N:.1f} KiB/conn", end="")
    if trimmed is not None:
        print(f"; quiet 30 s (compressor freed) {(trimmed - base) / N:.1f} KiB/conn", end="")
    print()
