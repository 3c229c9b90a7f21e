"""What an idle connection costs, checked (issue 29; CI runs it).

    python3 scripts/idle-memory.py BINARY [N]

Starts BINARY (the echo example, built in release without features) on
127.0.0.1:0 (it prints the address), opens one WebSocket connection, then
N more (default 2,000), and once every connection thread waits for input
checks two things:

- the thread stacks are at most 8,192 bytes deep (two 4 KiB pages: one
  byte more costs a third page per connection, 4 KiB of 11.4), all but
  1 % of them (a one-off step, such as the first thread's detection of
  the CPU's features, costs a page once, not per connection);
- the server's RSS grew at most 13 KiB per connection (11.4 measured with
  10,000 in bench/RESULTS.md; the margin is for fewer connections and
  noise, so only a real regression fails it).

Then it sends one message on each connection and checks the echo. Exit
status 1 with the figures when a check fails. Every wait is bounded.
"""
import os
import resource
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ left in the checkout
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "probes"))
from rawws import connect, frame, raise_fd_limit, read_frame, rss_kib, start  # noqa: E402
from stackdepth import depths  # noqa: E402

STACK_LIMIT = 8192
RSS_LIMIT_KIB = 13.0
WAIT = 60.0


def threads(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise KeyError("Threads")


def all_waiting(pid):
    """Whether every thread but the main one sleeps (waits for input)."""
    tids = os.listdir(f"/proc/{pid}/task")
    states = [open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0] for t in tids]
    return all(s == "S" for s in states)


def until(what, check):
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"idle-memory: gave up waiting for {what} after {WAIT:.0f} s")
        time.sleep(0.01)


def echo(s):
    s.sendall(frame(b"x"))
    got = read_frame(s)
    if got != (0x81, b"x"):
        sys.exit(f"idle-memory: unexpected echo {got!r}")


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    raise_fd_limit()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 100:
        sys.exit(f"idle-memory: {n} connections need {n + 100} descriptors; the limit is {soft}")
    server, addr = start(binary)
    try:
        conns = [connect(addr)[0]]
        pid = server.pid
        until("the first connection to wait", lambda: all_waiting(pid))
        before = rss_kib(pid)
        base = threads(pid)
        conns += [connect(addr)[0] for _ in range(n)]
        until(f"{n} connection threads", lambda: threads(pid) >= base + n)
        until("every connection thread to wait", lambda: all_waiting(pid))
        per = (rss_kib(pid) - before) / n
        counts, _ = depths(pid)
        deepest = max(counts)
        over = sum(c for d, c in counts.items() if d > STACK_LIMIT)
        print(f"idle-memory: {n} idle connections: {per:.1f} KiB of RSS each (limit {RSS_LIMIT_KIB}); "
              f"deepest thread stack {deepest} bytes (limit {STACK_LIMIT}): "
              + ", ".join(f"{d} x{c}" for d, c in sorted(counts.items())))
        for s in conns:
            echo(s)
        failed = []
        if over > n // 100:
            failed.append(f"{over} thread stacks passed {STACK_LIMIT} bytes (the deepest {deepest}): "
                          "a third page per connection "
                          "(python3 bench/probes/stackdepth.py PID BINARY names the calls)")
        if per > RSS_LIMIT_KIB:
            failed.append(f"{per:.1f} KiB per idle connection")
        for why in failed:
            print(f"idle-memory: FAILED: {why}")
        return 1 if failed else 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
