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

import os
import sys
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ left in the checkout
from rawws import connect, frame, raise_fd_limit, read_frame, rss_kib, start  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
# Two sockets per connection (ours and the server's) plus a few, for N in
# the thousands.
raise_fd_limit()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "examples", "demo")
MESSAGE = ('{"user":"someone","room":"lobby","text":"hello, this is a chat line",'
           '"ts":1700000000}').encode()


def measure(offer):
    server, addr = start(BIN)
    try:
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
