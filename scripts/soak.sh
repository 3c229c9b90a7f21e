#!/usr/bin/env bash
# Soak: runs examples/soak.rs under waves of mixed, partly hostile load
# (bench/src/bin/soak.rs says what each wave does) for MINUTES (default 1),
# sampling the server's RSS, threads and open fds every 2 s, and fails
# unless every check passed, the quiet readings after the first and the last
# wave agree (threads and fds no higher; RSS, after a warm-up, within 10% or
# 8 MiB), and the server still answers at the end.
#
#   scripts/soak.sh [MINUTES]        e.g. scripts/soak.sh 30
#   SOAK_WAVE=60 scripts/soak.sh 30  longer waves (seconds, default 30)
#
# 127.0.0.1 only. The server runs with RUST_LOG unset; its stderr goes to
# target/soak/server.log, and a panic there fails the run.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MINUTES="${1:-1}"
WAVE="${SOAK_WAVE:-30}"
OUT=target/soak
mkdir -p "$OUT"

echo "soak: building (release)"
cargo build --release --example soak
cargo build --release -p wsportal-bench --bin soak

# The server stops by itself well after the load would have ended.
LIMIT=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 * 2 + 300 }')
target/release/examples/soak 127.0.0.1:0 --seconds "$LIMIT" >"$OUT/server.out" 2>"$OUT/server.log" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
trap cleanup EXIT

ADDR=""
for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/^listening on //p' "$OUT/server.out")"
    [[ -n "$ADDR" ]] && break
    sleep 0.1
done
[[ -n "$ADDR" ]] || { echo "soak: the server did not start"; cat "$OUT/server.log"; exit 1; }

# The chat room alone needs 500 sockets on each side.
if (( $(ulimit -n) < 4096 )); then ulimit -n 4096 2>/dev/null || true; fi
rc=0
target/release/soak "$ADDR" "$SERVER" --minutes "$MINUTES" --wave "$WAVE" || rc=$?
if grep -q "panicked" "$OUT/server.log"; then
    echo "soak: FAIL: the server log has a panic:"
    grep -m5 -A3 "panicked" "$OUT/server.log"
    rc=1
fi
exit "$rc"
