"""A raw WebSocket client and server harness for the memory scripts
(`deflate-rss.py`, `idle-memory.py`): only the standard library, so that
the client side costs nothing that would blur the server's figures.
"""
import base64
import os
import re
import resource
import socket
import subprocess


def raise_fd_limit():
    """Raises the soft open-file limit to the hard one (the server, started
    after, inherits it): two sockets per connection, thousands of them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(binary, stdout_timeout=30):
    """Starts an example on 127.0.0.1:0; returns the process and the
    address it printed ("listening on ws://HOST:PORT")."""
    server = subprocess.Popen([binary, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    found = re.search(r"//([\d.]+):(\d+)", line)
    if not found:
        server.kill()
        server.wait()
        raise SystemExit(f"{binary} printed no address: {line!r}")
    return server, (found[1], int(found[2]))


def rss_kib(pid):
    """The process's resident memory (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def connect(addr, offer="", timeout=20):
    """Opens a WebSocket to /echo, offering `offer` as its extensions;
    returns the socket and whether the server agreed permessage-deflate."""
    s = socket.create_connection(addr, timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    ext = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    s.sendall((f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{ext}\r\n").encode())
    head = b""
    # A byte at a time: nothing after the head is taken from the socket.
    while not head.endswith(b"\r\n\r\n"):
        more = s.recv(1)
        if not more:
            raise SystemExit("the server closed a connection during its handshake")
        head += more
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"handshake refused: {head.splitlines()[0]!r}")
    return s, b"permessage-deflate" in head


def frame(payload, rsv1=False):
    """A masked text frame (RSV1 set for a compressed message)."""
    mask = os.urandom(4)
    b0 = 0x81 | (0x40 if rsv1 else 0)
    n = len(payload)
    head = bytes([b0, 0x80 | n]) if n < 126 else bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    """The next frame from the server: (first byte, payload)."""
    def exact(k):
        buf = b""
        while len(buf) < k:
            chunk = s.recv(k - len(buf))
            if not chunk:
                raise SystemExit("a connection closed before its echo")
            buf += chunk
        return buf
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exact(2), "big")
    elif n == 127:
        n = int.from_bytes(exact(8), "big")
    return b0, exact(n)
