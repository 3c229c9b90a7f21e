"""Draws issue 29's fan-out curves from the bench runner's runs.jsonl.

python bench/plot_fanout.py target/bench/runs.jsonl bench/fanout.png

Two panels against the room's size: p99 delivery latency (ms, log scale)
and the server's CPU per delivery (µs). One line per server through the
median of its rounds; a bar from its best to its worst round. Also prints
the table (median p50/p99, CPU, peak RSS) as markdown.
"""
import collections
import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src, out = sys.argv[1], sys.argv[2]
runs = collections.defaultdict(list)
for line in open(src):
    r = json.loads(line)
    if not r["scenario"].startswith("fanout") or r.get("error"):
        continue
    members = int(r["scenario"][len("fanout"):])
    runs[(r["server"], members)].append(r)

servers = sorted({s for s, _ in runs})
sizes = sorted({m for _, m in runs})


def figure(rs, key, scale=1.0):
    vals = [float(r[key]) * scale for r in rs if r.get(key) not in (None, "")]
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


fig, (lat, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
print("| members | server | rounds | p50 ms | p99 ms (best-worst) | CPU µs/delivery | peak RSS MiB |")
print("|---:|---|---:|---:|---:|---:|---:|")
for server in servers:
    xs, p99, p99_err, cpus, cpu_err = [], [], [[], []], [], [[], []]
    for m in sizes:
        rs = runs.get((server, m))
        if not rs:
            continue
        p = figure(rs, "p99_us", 1e-3)
        c = figure(rs, "cpu_us_per_delivery")
        p50 = figure(rs, "p50_us", 1e-3)
        rss = figure(rs, "hwm_mib")
        if p is None:
            continue
        xs.append(m)
        p99.append(p[0])
        p99_err[0].append(p[0] - p[1])
        p99_err[1].append(p[2] - p[0])
        cpus.append(c[0] if c else float("nan"))
        cpu_err[0].append(c[0] - c[1] if c else 0)
        cpu_err[1].append(c[2] - c[0] if c else 0)
        print(f"| {m:,} | {server} | {len(rs)} | {p50[0]:.1f} | {p[0]:.1f} ({p[1]:.1f}-{p[2]:.1f}) "
              f"| {c[0]:.1f} | {rss[0]:.0f} |" if c and rss and p50 else f"| {m:,} | {server} | {len(rs)} | | {p[0]:.1f} | | |")
    lat.errorbar(xs, p99, yerr=p99_err, marker="o", capsize=3, label=server)
    cpu.errorbar(xs, cpus, yerr=cpu_err, marker="o", capsize=3, label=server)
lat.set_yscale("log")
lat.set_xlabel("members in the room")
lat.set_ylabel("p99 delivery latency (ms)")
lat.set_title("p99 latency (lower is better)")
cpu.set_xlabel("members in the room")
cpu.set_ylabel("server CPU per delivery (µs)")
cpu.set_title("CPU per delivery (lower is better)")
cpu.set_ylim(bottom=0)
for ax in (lat, cpu):
    ax.grid(True, alpha=0.3)
    ax.legend()
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"\nwrote {out}")
