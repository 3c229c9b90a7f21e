#!/usr/bin/env bash
# The torture test of issue 27 (tests/torture.rs), in a release build, over
# every transport: plain TCP on the default build, then TLS, deflate and
# TLS+deflate on `--features tls,deflate`.
#
#   bash scripts/torture.sh SECONDS [SEED]
#
# SECONDS is per transport (so the whole run takes about 4 x SECONDS plus
# the builds). Without SEED each transport's run picks a random one; every
# run prints its seed, and a failure names it: `bash scripts/torture.sh
# SECONDS SEED` repeats the same schedule. Prints each transport's counts
# (messages sent and received, flushes confirmed, closes, shutdowns).
# Exit status 0 only if every run passed; failed runs' output is kept in
# .ci-work/torture/.

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=torture

SECS="${1:-}"
SEED="${2:-}"
[[ "$SECS" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "usage: $0 SECONDS [SEED]  (SECONDS per transport)"
if [[ -n "$SEED" ]]; then
    export TORTURE_SEED="$SEED"
fi
export TORTURE_SECONDS="$SECS"
OUT="$WORK/torture"
mkdir -p "$OUT"
trap 'stop_child' EXIT
trap 'log "interrupted"; stop_child; exit 130' INT TERM HUP

failed=0
# run NAME TRANSPORTS CARGO_ARGS...: one build, the given transports.
run() {
    local name=$1 transports=$2 logf="$OUT/$1.log" rc=0
    shift 2
    log "cargo test --release --test torture $* (${transports})"
    run_bounded 1800 cargo test --release --test torture "$@" --no-run -q </dev/null 2>&1 | tail -n 5 \
        || die "building the torture test ($*) failed"
    # Bounded: the runs themselves plus 5 minutes for shutdowns and checks.
    local limit
    limit=$(awk -v s="$SECS" 'BEGIN { printf "%d", s * 4 + 300 }')
    TORTURE_TRANSPORTS="$transports" run_bounded "$limit" \
        cargo test --release --test torture "$@" -q -- --nocapture >"$logf" 2>&1 </dev/null || rc=$?
    grep -E '^torture' "$logf" | sed 's/^/    /' || true
    if (( rc == 0 )); then
        rm -f "$logf"
    else
        failed=1
        log "FAILED ($name, exit status $rc); output kept in $logf:"
        grep -E '^  |panicked|did not finish' "$logf" | head -n 40 | sed 's/^/    /' >&2 || true
    fi
}

run plain plain
# TORTURE_FEATURE_TRANSPORTS picks among them (all three unless set).
run features "${TORTURE_FEATURE_TRANSPORTS:-tls,deflate,tls+deflate}" --features tls,deflate

if (( failed )); then
    die "the torture test failed (see the seed above to repeat it)"
fi
log "all transports passed in $((SECONDS - T0))s"
