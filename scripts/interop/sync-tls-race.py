"""How often Python websockets' sync client loses its request over TLS 1.3
(DEPLOYING.md, "Python's sync client over wss://").

    INTEROP_CERT=cert.pem python sync-tls-race.py URL N [tickets-first]

Opens N connections to the wss:// echo at URL one after another (open
timeout 2 s), each sending one message and reading its echo, and counts
the failures by kind. With `tickets-first` the client reads the server's
session tickets first (peer.py's TicketsFirst, what CI's interop check
uses); without, it is `websockets` as users call it. Run it with both
cores busy (e.g. two `yes >/dev/null`): on an idle machine the race is
rare.
"""

import collections
import ssl
import sys
import time

from websockets.sync.client import connect

from peer import CERT, TicketsFirst


def main():
    if len(sys.argv) not in (3, 4) or not CERT or sys.argv[3:] not in ([], ["tickets-first"]):
        sys.exit("usage: INTEROP_CERT=cert.pem sync-tls-race.py URL N [tickets-first]")
    url, n = sys.argv[1], int(sys.argv[2])
    if sys.argv[3:]:
        tls = TicketsFirst(ssl.PROTOCOL_TLS_CLIENT)
        tls.load_verify_locations(cafile=CERT)
    else:
        tls = ssl.create_default_context(cafile=CERT)
    failures = collections.Counter()
    start = time.monotonic()
    for _ in range(n):
        try:
            with connect(url, open_timeout=2, ssl=tls, ping_interval=None, compression=None) as ws:
                ws.send("hi")
                ws.recv(5)
        except Exception as e:  # a count by kind, whatever went wrong
            failures[f"{type(e).__name__}: {e}"] += 1
    mode = "tickets first" if sys.argv[3:] else "as is"
    print(f"{mode}: {sum(failures.values())} of {n} failed in {time.monotonic() - start:.0f} s", flush=True)
    for what, count in failures.most_common():
        print(f"  {count} x {what}")


if __name__ == "__main__":
    main()
