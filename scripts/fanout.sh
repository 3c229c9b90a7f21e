#!/usr/bin/env bash
# Issue 29's fan-out curves: rooms of 1,000 / 2,000 / 5,000 / 9,000 members
# (FANOUT_MEMBERS), one publisher, 10 messages/s of 1 KiB (FANOUT_RATE,
# FANOUT_SIZE) for 5 s, wsportal against tokio-tungstenite and Node `ws`,
# FANOUT_ROUNDS (3) interleaved rounds; then bench/fanout.png (p99 latency
# and CPU per delivery against members, one line per server: the median of
# the rounds, bars from the fastest to the slowest) drawn with matplotlib
# (installed into bench/.venv). The tables are in target/bench/results.md,
# every round in target/bench/runs.jsonl.
#
#   bash scripts/fanout.sh
#   FANOUT_MEMBERS=1000,2000 FANOUT_ROUNDS=1 bash scripts/fanout.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f target/bench/runs.jsonl
SCENARIOS=fanout SERVERS="${SERVERS:-wsportal,tokio-tungstenite,node-ws}" \
    BENCH_TIMEOUT="${BENCH_TIMEOUT:-3600}" bash scripts/bench.sh
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import matplotlib' 2>/dev/null; then
    echo "== installing matplotlib into bench/.venv" >&2
    [ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
    bench/.venv/bin/pip install --quiet matplotlib
fi
bench/.venv/bin/python bench/plot_fanout.py target/bench/runs.jsonl bench/fanout.png
