#!/usr/bin/env bash
# Autobahn conformance run against one of wsportal's server examples.
#
#   bash scripts/autobahn-server.sh [EXAMPLE]        (EXAMPLE defaults to `echo`)
#
# 1. makes/reuses a Python venv at .ci-work/venv with `kosoku` (a Python 3
#    reimplementation of the Autobahn testsuite) pinned to $KOSOKU_VERSION;
# 2. `cargo build --release --example EXAMPLE`;
# 3. starts `target/release/examples/EXAMPLE 127.0.0.1:0` in the background
#    and waits (bounded) for its `listening on ws://HOST:PORT` line;
# 4. runs `kosoku -m fuzzingclient -x '12.*' -x '13.*'` (the whole suite with
#    AUTOBAHN_FEATURES=deflate) against it, one kosoku
#    run per top-level section (1 2 3 4 5 6 7 9 10) so that a hang in one
#    section still leaves the other sections' results, and merges the reports
#    into .ci-work/autobahn/server-EXAMPLE/index.json;
# 5. stops the server and gates the report with scripts/check-autobahn.py.
#
# Exit status is non-zero on any failure, with the reason printed last.
#
# Environment knobs (all optional):
#   SERVER_CMD         command used instead of the built example; the listen
#                      address (127.0.0.1:0) is appended as its last argument and
#                      it must print a line containing `listening on HOST:PORT`
#                      (an optional ws:// or http:// before HOST is fine). It runs
#                      with the venv's bin/ first on PATH. No cargo build is done.
#                      Example (the Python `websockets` reference server):
#                        AUTOBAHN_PIP_EXTRA=websockets WEBSOCKETS_MAX_FRAGMENTS=10000000 \
#                        SERVER_CMD="python /path/to/echo_server.py" \
#                        bash scripts/autobahn-server.sh
#   AUTOBAHN_FEATURES  cargo features for the example's build (e.g. deflate).
#                      With `deflate` the whole suite runs: sections 12 and 13
#                      (permessage-deflate) too, all 517 cases required, and
#                      the report goes to .ci-work/autobahn/server-EXAMPLE-deflate.
#   AUTOBAHN_PIP_EXTRA extra pip packages to put in the venv (e.g. websockets).
#   AUTOBAHN_SECTIONS  top-level sections to run (default "1 2 3 4 5 6 7 9 10").
#   AUTOBAHN_CASES     space-separated case ids/globs (e.g. "5.* 9.7.1") run as one
#                      kosoku invocation instead of the sections; turns off the
#                      minimum-case-count check.
#   AUTOBAHN_SECTION_TIMEOUT  seconds for one kosoku run (default 600).
#   AUTOBAHN_TIMEOUT   seconds for all kosoku runs together (default 1200).
#   AUTOBAHN_BUILD_TIMEOUT    seconds for the cargo build (default 1200).
#   AUTOBAHN_READY_TIMEOUT    seconds to wait for `listening on` (default 30).
#   AUTOBAHN_PARALLELISM      kosoku -p (default 1).
#   AUTOBAHN_OUT       report directory (default .ci-work/autobahn/server-EXAMPLE).
#   AUTOBAHN_CLOSE     check-autobahn.py --close mode: must (default)|strict|ignore.
#   KOSOKU_VERSION     kosoku version to install (default 0.1.0).
#   PYTHON             python used to create the venv (default python3).

set -euo pipefail

EXAMPLE="${1:-echo}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # cds to ROOT; sets WORK, VENV, PYTHON
LOG_NAME=autobahn-server

KOSOKU_VERSION="${KOSOKU_VERSION:-0.1.0}"
ALL_SECTIONS="1 2 3 4 5 6 7 9 10"
EXCLUDE=(-x '12.*' -x '13.*')
# Cases in sections 1-10 with kosoku 0.1.0 (1:16 2:11 3:7 4:10 5:20 6:145 7:37 9:54 10:1).
MIN_CASES=301
CHECK_EXTRA=()
TAG="$EXAMPLE"
TOTAL_DEFAULT=1200
if [[ " ${AUTOBAHN_FEATURES:-} " =~ [\ ,]deflate[\ ,] ]]; then
    # The whole suite: sections 12 and 13 (12:90 13:126) are permessage-deflate.
    ALL_SECTIONS="1 2 3 4 5 6 7 9 10 12 13"
    EXCLUDE=()
    MIN_CASES=517
    CHECK_EXTRA=(--compression)
    TAG="$EXAMPLE-deflate"
    TOTAL_DEFAULT=2400
fi
OUT="${AUTOBAHN_OUT:-$WORK/autobahn/server-$TAG}"
SECTIONS="${AUTOBAHN_SECTIONS:-$ALL_SECTIONS}"
SECTION_TIMEOUT="${AUTOBAHN_SECTION_TIMEOUT:-600}"
TOTAL_TIMEOUT="${AUTOBAHN_TIMEOUT:-$TOTAL_DEFAULT}"
BUILD_TIMEOUT="${AUTOBAHN_BUILD_TIMEOUT:-1200}"
READY_TIMEOUT="${AUTOBAHN_READY_TIMEOUT:-30}"
PARALLELISM="${AUTOBAHN_PARALLELISM:-1}"
CLOSE_MODE="${AUTOBAHN_CLOSE:-must}"

SERVER_PID=""
SERVER_LOG="$WORK/autobahn/server-$TAG.log"

stop_server() { term_then_kill "$SERVER_PID" server; SERVER_PID=""; }
cleanup() { stop_child; stop_server; }
trap_cleanup

# ---------------------------------------------------------------- main
log "example=$EXAMPLE out=$OUT"
ensure_venv

program_argv SERVER_CMD server-cmd "$EXAMPLE" "the crate has no example named '$EXAMPLE' (expected examples/$EXAMPLE.rs)"
SERVER_ARGV=("${PROGRAM_ARGV[@]}")

rm -rf "$OUT"
mkdir -p "$OUT" "$(dirname "$SERVER_LOG")"
: >"$SERVER_LOG"

log "starting server: ${SERVER_ARGV[*]} 127.0.0.1:0"
PATH="$VENV/bin:$PATH" RUST_BACKTRACE=1 "${SERVER_ARGV[@]}" 127.0.0.1:0 </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ready=0
wait_listening "$SERVER_PID" "$SERVER_LOG" "$READY_TIMEOUT" || ready=$?
if (( ready == 2 )); then
    SERVER_PID=""
    show_log "$SERVER_LOG" "server log"
    die "server exited (status $LISTEN_STATUS) before printing 'listening on'"
fi
if [[ -z "$ADDR" ]]; then
    show_log "$SERVER_LOG" "server log"
    die "server did not print 'listening on HOST:PORT' within ${READY_TIMEOUT}s"
fi
[[ "$ADDR" =~ :[0-9]+$ ]] || { show_log "$SERVER_LOG" "server log"; die "could not parse HOST:PORT from: $LISTEN_LINE"; }
log "server pid $SERVER_PID listening on $ADDR"

# ---------------------------------------------------------------- kosoku runs
if [[ -n "${AUTOBAHN_CASES:-}" ]]; then
    CHUNKS=("custom")
    MIN_CASES=1
else
    read -r -a CHUNKS <<<"$SECTIONS"
    [[ "$SECTIONS" == "$ALL_SECTIONS" ]] || MIN_CASES=1
fi

run_failed=""
k0=$SECONDS
for chunk in "${CHUNKS[@]}"; do
    args=(-m fuzzingclient -p "$PARALLELISM" "${EXCLUDE[@]}")
    if [[ "$chunk" == "custom" ]]; then
        for c in $AUTOBAHN_CASES; do args+=(-i "$c"); done
    else
        args+=(-i "$chunk.*")
    fi
    left=$((TOTAL_TIMEOUT - (SECONDS - k0)))
    if (( left <= 0 )); then
        run_failed+=" section-$chunk(not-run:budget)"
        log "no time left in AUTOBAHN_TIMEOUT=${TOTAL_TIMEOUT}s: skipping section $chunk"
        continue
    fi
    t=$(( left < SECTION_TIMEOUT ? left : SECTION_TIMEOUT ))
    s0=$SECONDS
    rc=0
    run_bounded "$t" "$VENV/bin/kosoku" "${args[@]}" -o "$OUT/sec-$chunk" "$ADDR" </dev/null \
        >"$OUT/kosoku-$chunk.log" 2>&1 || rc=$?
    summary="$(grep -E 'cases passed|cases failed' "$OUT/kosoku-$chunk.log" | head -1 || true)"
    log "section $chunk: ${summary:-no summary} ($((SECONDS - s0))s, kosoku exit $rc)"
    if (( rc == 124 || rc == 137 )); then
        run_failed+=" section-$chunk(timeout)"
        log "kosoku for section $chunk did not finish within ${t}s; its results are lost"
    elif [[ ! -f "$OUT/sec-$chunk/index.json" ]]; then
        run_failed+=" section-$chunk(no-report)"
        log "kosoku for section $chunk wrote no report; its output:"
        tail -n 20 "$OUT/kosoku-$chunk.log" || true
    fi
    # kosoku exits 1 whenever any case is not passed; check-autobahn.py decides.
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        rc=0; wait "$SERVER_PID" || rc=$?
        SERVER_PID=""
        run_failed+=" server-died(status-$rc,during-section-$chunk)"
        log "server exited (status $rc) during section $chunk"
        show_log "$SERVER_LOG" "server log"
        break
    fi
done
log "kosoku runs took $((SECONDS - k0))s"

stop_server

# Merge the per-section indexes into $OUT/index.json (reportfile paths made
# relative to $OUT so check-autobahn.py finds the per-case reports).
"$VENV/bin/python" - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
merged = {}
for idx in sorted(glob.glob(os.path.join(out, "sec-*", "index.json"))):
    sub = os.path.basename(os.path.dirname(idx))
    with open(idx) as f:
        data = json.load(f)
    for agent, cases in data.items():
        for cid, entry in cases.items():
            entry = dict(entry)
            if entry.get("reportfile"):
                entry["reportfile"] = os.path.join(sub, entry["reportfile"])
            merged.setdefault(agent, {})[cid] = entry
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(merged, f, indent=2, sort_keys=True)
PY

rc=0
"$VENV/bin/python" "$ROOT/scripts/check-autobahn.py" "${CHECK_EXTRA[@]}" --min-cases "$MIN_CASES" --close "$CLOSE_MODE" "$OUT/index.json" || rc=$?
log "reports: $OUT/index.json (HTML: $OUT/sec-*/index.html); total $((SECONDS - T0))s"
if [[ -n "$run_failed" ]]; then
    die "kosoku run problems:$run_failed"
fi
if (( rc != 0 )); then
    die "Autobahn conformance check failed for example '$EXAMPLE' (see the failing cases above)"
fi
log "PASSED: example '$EXAMPLE' is Autobahn-conformant (cases: ${AUTOBAHN_CASES:-sections $SECTIONS})"
