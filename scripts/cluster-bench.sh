#!/usr/bin/env bash
# The event-stream numbers across instances (bench/RESULTS.md, "Event
# streams across instances"): examples/cluster_bench.rs on one instance
# alone, then on two sharing a fresh redis-server, with a history of 1,000
# and with none; ROUNDS times each (default 3), interleaved.
#
#   bash scripts/cluster-bench.sh                 (this tree)
#   BASELINE=f9e7cd2 bash scripts/cluster-bench.sh  (also that commit,
#       unpacked under target/ with this tree's example)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RATE=${RATE:-1000} SECS=${SECS:-5} ROUNDS=${ROUNDS:-3}
command -v redis-server >/dev/null || { echo "redis-server is needed" >&2; exit 1; }
builds=(".")
if [[ -n "${BASELINE:-}" ]]; then
    wt="target/cluster-bench-baseline/$BASELINE"
    if [[ ! -d "$wt" ]]; then
        mkdir -p "$wt"
        git archive "$BASELINE" | tar -x -C "$wt"
    fi
    cp examples/cluster_bench.rs "$wt/examples/"
    builds+=("$wt")
fi
for b in "${builds[@]}"; do
    (cd "$b" && cargo build -q --release --features redis --example cluster_bench)
done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for ((round = 1; round <= ROUNDS; round++)); do
    for b in "${builds[@]}"; do
        label=$([[ "$b" == . ]] && echo "this tree" || echo "baseline $BASELINE")
        for setup in "none 1000" "redis 1000" "redis 0"; do
            read -r where history <<<"$setup"
            url=none
            if [[ "$where" == redis ]]; then
                redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
                rpid=$!
                for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
                url="redis://127.0.0.1:$port/"
            fi
            echo "[$label, round $round] $(timeout 120 "$b/target/release/examples/cluster_bench" "$url" "$history" "$RATE" "$SECS")"
            if [[ "$where" == redis ]]; then kill "$rpid"; wait "$rpid" 2>/dev/null || true; fi
        done
    done
done
