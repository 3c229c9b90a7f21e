"""Python `websockets` (sync, threaded) peer: `websockets_server.py ADDR [--nodelay]`.

Echoes text and binary messages on any path; on /chat relays every text
message to every /chat client, sender included. Used plainly, with the
library's defaults; each chat client gets a writer thread fed by a queue so
that one slow client does not block the others.
"""

import queue
import socket
import sys
import threading

from websockets.sync.server import serve

room = set()
room_lock = threading.Lock()


def writer(conn, q):
    while True:
        msg = q.get()
        if msg is None:
            return
        try:
            conn.send(msg)
        except Exception:
            return


def handler(conn):
    if NODELAY:
        conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if conn.request.path != "/chat":
        for msg in conn:
            conn.send(msg)
        return
    q = queue.SimpleQueue()
    threading.Thread(target=writer, args=(conn, q), daemon=True).start()
    with room_lock:
        room.add(q)
    try:
        for msg in conn:
            if isinstance(msg, str):
                with room_lock:
                    members = list(room)
                for m in members:
                    m.put(msg)
    finally:
        with room_lock:
            room.discard(q)
        q.put(None)


if __name__ == "__main__":
    host, port = sys.argv[1].rsplit(":", 1)
    NODELAY = "--nodelay" in sys.argv[2:]
    with serve(handler, host, int(port)) as server:
        print(f"python-websockets listening on {sys.argv[1]}", flush=True)
        server.serve_forever()
