"""Python `websockets` peer: `websockets_server.py [--sync] ADDR [--nodelay]`.

Echoes text and binary messages on any path; on /chat relays every text
message to every /chat client, sender included. Written as the library's
docs write it, with its defaults:

* default: the asyncio implementation (`websockets.asyncio.server`), the
  one the docs start with: `async for message in websocket: await
  websocket.send(message)`, and for the room the docs' `broadcast()`,
  which writes to every connection without waiting for any of them.
* `--sync`: the threaded implementation (`websockets.sync.server`); chat
  members get a writer thread fed by a queue so that one slow client does
  not block the others.
"""

import asyncio
import queue
import socket
import sys
import threading

ADDR = next(a for a in sys.argv[1:] if not a.startswith("-"))
NODELAY = "--nodelay" in sys.argv[1:]


def set_nodelay(sock):
    if NODELAY and sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- asyncio (default) -----------------------------------------------------

async_room = set()


async def async_handler(websocket):
    set_nodelay(websocket.transport.get_extra_info("socket"))
    if websocket.request.path != "/chat":
        async for message in websocket:
            await websocket.send(message)
        return
    from websockets.asyncio.server import broadcast

    async_room.add(websocket)
    try:
        async for message in websocket:
            if isinstance(message, str):
                broadcast(async_room, message)
    finally:
        async_room.discard(websocket)


async def async_main(host, port):
    from websockets.asyncio.server import serve

    async with serve(async_handler, host, port) as server:
        print(f"python-websockets listening on {ADDR}", flush=True)
        await server.serve_forever()


# --- threaded (--sync) -----------------------------------------------------

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


def sync_handler(conn):
    set_nodelay(conn.socket)
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


def sync_main(host, port):
    from websockets.sync.server import serve

    with serve(sync_handler, host, port) as server:
        print(f"python-websockets listening on {ADDR}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    host, port = ADDR.rsplit(":", 1)
    if "--sync" in sys.argv[1:]:
        sync_main(host, int(port))
    else:
        asyncio.run(async_main(host, int(port)))
