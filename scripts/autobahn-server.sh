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
# 4. runs `kosoku -m fuzzingclient -x '12.*' -x '13.*'` against it, one kosoku
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
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KOSOKU_VERSION="${KOSOKU_VERSION:-0.1.0}"
PYTHON="${PYTHON:-python3}"
WORK="$ROOT/.ci-work"
VENV="$WORK/venv"
OUT="${AUTOBAHN_OUT:-$WORK/autobahn/server-$EXAMPLE}"
SECTIONS="${AUTOBAHN_SECTIONS:-1 2 3 4 5 6 7 9 10}"
SECTION_TIMEOUT="${AUTOBAHN_SECTION_TIMEOUT:-600}"
TOTAL_TIMEOUT="${AUTOBAHN_TIMEOUT:-1200}"
BUILD_TIMEOUT="${AUTOBAHN_BUILD_TIMEOUT:-1200}"
READY_TIMEOUT="${AUTOBAHN_READY_TIMEOUT:-30}"
PARALLELISM="${AUTOBAHN_PARALLELISM:-1}"
CLOSE_MODE="${AUTOBAHN_CLOSE:-must}"
# Cases in sections 1-10 with kosoku 0.1.0 (1:16 2:11 3:7 4:10 5:20 6:145 7:37 9:54 10:1).
MIN_CASES=301

T0=$SECONDS
log() { printf '[autobahn-server %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf '[autobahn-server %4ds] FAILED: %s\n' "$((SECONDS - T0))" "$*" >&2; exit 1; }

SERVER_PID=""
SERVER_LOG="$WORK/autobahn/server-$EXAMPLE.log"

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server (pid $SERVER_PID) ignored SIGTERM for 5s, sending SIGKILL"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
# Foreground work runs through run_bounded (timeout in the background + wait)
# so that a signal to this script (e.g. CI's own step timeout) can stop it:
# `timeout` puts its command in a process group of its own, out of reach of a
# signal sent to ours.
CHILD_PID=""
run_bounded() {
    local secs=$1 rc=0
    shift
    timeout -k 10 "$secs" "$@" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}
stop_child() {
    if [[ -n "$CHILD_PID" ]]; then
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
        CHILD_PID=""
    fi
}
cleanup() { stop_child; stop_server; }
trap cleanup EXIT
trap 'log "interrupted by SIGTERM"; cleanup; exit 143' TERM
trap 'log "interrupted by SIGINT"; cleanup; exit 130' INT
trap 'log "interrupted by SIGHUP"; cleanup; exit 129' HUP

show_server_log() {
    if [[ -s "$SERVER_LOG" ]]; then
        echo "---- last 40 lines of server log ($SERVER_LOG) ----" >&2
        tail -n 40 "$SERVER_LOG" >&2 || true
        echo "---- end of server log ----" >&2
    fi
}

# ---------------------------------------------------------------- venv
ensure_venv() {
    mkdir -p "$WORK"
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV"
        run_bounded 300 "$PYTHON" -m venv "$VENV" </dev/null || die "could not create venv at $VENV with $PYTHON (is python3-venv installed?)"
    fi
    local have
    have="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("kosoku"))' 2>/dev/null || true)"
    if [[ "$have" != "$KOSOKU_VERSION" ]]; then
        log "pip install kosoku==$KOSOKU_VERSION"
        run_bounded 600 "$VENV/bin/python" -m pip install --disable-pip-version-check -q "kosoku==$KOSOKU_VERSION" </dev/null \
            || die "pip install kosoku==$KOSOKU_VERSION failed"
    fi
    if [[ -n "${AUTOBAHN_PIP_EXTRA:-}" ]]; then
        # shellcheck disable=SC2086 # word splitting intended: a package list
        run_bounded 600 "$VENV/bin/python" -m pip install --disable-pip-version-check -q $AUTOBAHN_PIP_EXTRA </dev/null \
            || die "pip install $AUTOBAHN_PIP_EXTRA failed"
    fi
    run_bounded 60 "$VENV/bin/kosoku" --help >/dev/null </dev/null || die "kosoku is installed but \`kosoku --help\` does not run"
}

# ---------------------------------------------------------------- main
log "example=$EXAMPLE out=$OUT"
ensure_venv
log "kosoku $KOSOKU_VERSION ready in $VENV"

if [[ -n "${SERVER_CMD:-}" ]]; then
    log "SERVER_CMD override: $SERVER_CMD (no cargo build)"
    SERVER_ARGV=(bash -c "exec $SERVER_CMD \"\$@\"" server-cmd)
else
    command -v cargo >/dev/null || die "cargo not found on PATH"
    has_example="$(timeout 300 cargo metadata --no-deps --format-version 1 </dev/null 2>/dev/null \
        | "$VENV/bin/python" -c '
import json, sys
name = sys.argv[1]
meta = json.load(sys.stdin)
print(any(t["name"] == name and "example" in t["kind"] for p in meta["packages"] for t in p["targets"]))
' "$EXAMPLE" 2>/dev/null || echo unknown)"
    if [[ "$has_example" == "False" ]]; then
        die "the crate has no example named '$EXAMPLE' (expected examples/$EXAMPLE.rs)"
    fi
    log "cargo build --release --example $EXAMPLE"
    b0=$SECONDS
    run_bounded "$BUILD_TIMEOUT" cargo build --release --example "$EXAMPLE" </dev/null \
        || die "cargo build --release --example $EXAMPLE failed (or exceeded ${BUILD_TIMEOUT}s)"
    log "build took $((SECONDS - b0))s"
    target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    BIN="$target_dir/release/examples/$EXAMPLE"
    [[ -x "$BIN" ]] || die "built example not found at $BIN"
    SERVER_ARGV=("$BIN")
fi

rm -rf "$OUT"
mkdir -p "$OUT" "$(dirname "$SERVER_LOG")"
: >"$SERVER_LOG"

log "starting server: ${SERVER_ARGV[*]} 127.0.0.1:0"
PATH="$VENV/bin:$PATH" RUST_BACKTRACE=1 "${SERVER_ARGV[@]}" 127.0.0.1:0 </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ADDR=""
deadline=$((SECONDS + READY_TIMEOUT))
while (( SECONDS < deadline )); do
    line="$(grep -m1 'listening on' "$SERVER_LOG" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then
        ADDR="$(sed -n 's#.*listening on[: ]*\(ws://\|http://\)\{0,1\}\([^ /]*\).*#\2#p' <<<"$line")"
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        rc=0; wait "$SERVER_PID" || rc=$?
        SERVER_PID=""
        show_server_log
        die "server exited (status $rc) before printing 'listening on'"
    fi
    sleep 0.1
done
if [[ -z "$ADDR" ]]; then
    show_server_log
    die "server did not print 'listening on HOST:PORT' within ${READY_TIMEOUT}s"
fi
[[ "$ADDR" =~ :[0-9]+$ ]] || { show_server_log; die "could not parse HOST:PORT from: $line"; }
log "server pid $SERVER_PID listening on $ADDR"

# ---------------------------------------------------------------- kosoku runs
if [[ -n "${AUTOBAHN_CASES:-}" ]]; then
    CHUNKS=("custom")
    MIN_CASES=1
else
    read -r -a CHUNKS <<<"$SECTIONS"
    [[ "$SECTIONS" == "1 2 3 4 5 6 7 9 10" ]] || MIN_CASES=1
fi

run_failed=""
k0=$SECONDS
for chunk in "${CHUNKS[@]}"; do
    args=(-m fuzzingclient -p "$PARALLELISM" -x '12.*' -x '13.*')
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
        show_server_log
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
"$VENV/bin/python" "$ROOT/scripts/check-autobahn.py" --min-cases "$MIN_CASES" --close "$CLOSE_MODE" "$OUT/index.json" || rc=$?
log "reports: $OUT/index.json (HTML: $OUT/sec-*/index.html); total $((SECONDS - T0))s"
if [[ -n "$run_failed" ]]; then
    die "kosoku run problems:$run_failed"
fi
if (( rc != 0 )); then
    die "Autobahn conformance check failed for example '$EXAMPLE' (see the failing cases above)"
fi
log "PASSED: example '$EXAMPLE' is Autobahn-conformant (cases: ${AUTOBAHN_CASES:-sections 1-10})"
