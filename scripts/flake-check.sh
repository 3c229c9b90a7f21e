#!/usr/bin/env bash
# Proves the test suite is deterministic: runs `cargo test --release` and
# `cargo test` N times each (default 20), alternating, while busy loops keep
# both cores loaded, and reports every test that failed even once.
#
#   bash scripts/flake-check.sh [N]
#
# Exit status 0 only if every run passed. Logs of failed runs are kept in
# .ci-work/flake/. Load is one busy loop per core (`nproc`), stopped on exit.

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=flake

N="${1:-20}"
[[ "$N" =~ ^[0-9]+$ ]] && (( N > 0 )) || die "usage: $0 [N]  (N a positive number of rounds)"
OUT="$WORK/flake"
rm -rf "$OUT"
mkdir -p "$OUT"

log "building both profiles first (not under load)"
cargo test --release --no-run -q 2>&1 | tail -n 5
cargo test --no-run -q 2>&1 | tail -n 5

LOAD_PIDS=()
stop_load() {
    local p
    for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap stop_load EXIT
for _ in $(seq "$(nproc)"); do
    # A busy loop that ends by itself after an hour at the latest.
    timeout 3600 bash -c 'while :; do :; done' &
    LOAD_PIDS+=($!)
done
log "load: ${#LOAD_PIDS[@]} busy loops"

runs=0
failed_runs=0
for i in $(seq "$N"); do
    for profile in release debug; do
        args=()
        [[ "$profile" == release ]] && args=(--release)
        logf="$OUT/run-$i-$profile.log"
        runs=$((runs + 1))
        # Debug logs go to each test's captured output: a failure explains itself.
        if RUST_LOG="${RUST_LOG:-wsportal=debug}" timeout 900 cargo test "${args[@]}" >"$logf" 2>&1 </dev/null; then
            log "round $i/$N $profile: ok"
            rm -f "$logf"
        else
            failed_runs=$((failed_runs + 1))
            log "round $i/$N $profile: FAILED (log kept: $logf)"
            grep -E '^test .* FAILED$|panicked at' "$logf" | head -n 10 | sed 's/^/    /'
        fi
    done
done

echo
if (( failed_runs == 0 )); then
    log "all $runs runs passed ($N rounds x release+debug, under load) in $((SECONDS - T0))s"
    exit 0
fi
log "$failed_runs of $runs runs failed; tests that failed at least once:"
cat "$OUT"/run-*.log | sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' | sort | uniq -c | sort -rn
exit 1
