"""How deep each connection thread's stack has ever been (issue 29).

python3 bench/probes/stackdepth.py PID [BINARY]

For every 256 KiB anonymous mapping of PID (wsportal's thread stacks), finds
the lowest resident page (/proc/PID/pagemap) and, in it, the lowest byte
ever written (fresh stack pages are zero): the thread's high-water mark,
in bytes below the top of its mapping. Pages are 4 KiB, so a thread under
8,192 costs two resident pages of stack, one past it three. With BINARY
(the server's executable), also prints the return addresses found from
that depth up, on the deepest thread: the chain of calls that went deepest (older
frames' leftovers are mixed in). Needs root (or the same user with
ptrace access) to read /proc/PID/mem.
"""
import bisect, collections, re, struct, subprocess, sys


def mappings(pid, binary=None):
    """(the thread stacks: 256 KiB anonymous mappings, BINARY's mappings)."""
    stacks, texts = [], []
    for line in open(f"/proc/{pid}/maps"):
        m = re.match(r'([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \S+\s*(.*)', line)
        a, b, perm, off, path = int(m[1], 16), int(m[2], 16), m[3], int(m[4], 16), m[5].strip()
        if perm == 'rw-p' and not path and b - a == 256 * 1024:
            stacks.append((a, b))
        if binary and path.endswith(binary.split('/')[-1]):
            texts.append((a, b, off, perm))
    return stacks, texts


def deepest(pid, a, b):
    """(depth in bytes, the stack's bytes from its deepest page up, the
    address of those bytes' top) for the stack mapped at a..b, or None."""
    n = (b - a) // 4096
    with open(f"/proc/{pid}/pagemap", 'rb') as pagemap, open(f"/proc/{pid}/mem", 'rb') as mem:
        pagemap.seek(a // 4096 * 8)
        entries = struct.unpack(f"{n}Q", pagemap.read(n * 8))
        present = [i for i, e in enumerate(entries) if e >> 63]
        if not present:
            return None
        low = a + present[0] * 4096
        mem.seek(low)
        data = mem.read(b - low)
    first = next((i for i, c in enumerate(data) if c), len(data))
    return b - (low + first), data[first - first % 8:], b - (low + first - first % 8)


def depths(pid):
    """Counter of thread stacks by depth (16-byte steps); and the deepest
    stack's mapping."""
    counts = collections.Counter()
    deepest_stack, most = None, -1
    for a, b in mappings(pid)[0]:
        d = deepest(pid, a, b)
        if d:
            counts[d[0] // 16 * 16] += 1
            if d[0] > most:
                deepest_stack, most = (a, b), d[0]
    return counts, deepest_stack


def main():
    pid = sys.argv[1]
    binary = sys.argv[2] if len(sys.argv) > 2 else None
    counts, deepest_stack = depths(pid)
    for d, n in sorted(counts.items()):
        print(f"{d:6d} bytes deep: {n} threads")
    texts = mappings(pid, binary)[1] if binary else []
    if not (texts and deepest_stack):
        return
    base = min(a - off for a, b, off, p in texts)
    syms = []
    out = subprocess.run(['nm', '-C', '--defined-only', binary], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split(' ', 2)
        if len(parts) == 3 and parts[1] in 'tT':
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    starts = [s[0] for s in syms]
    _, data, top = deepest(pid, *deepest_stack)
    print("return addresses from the deepest point up (bytes below the top):")
    for off in range(0, len(data) - 7, 8):
        w = struct.unpack_from("Q", data, off)[0]
        if any(x <= w < y and 'x' in p for x, y, o, p in texts):
            i = bisect.bisect_right(starts, w - base) - 1
            print(f"  {top - off:6d} {syms[i][1][:100] if i >= 0 else '?'}")


if __name__ == "__main__":
    main()
