#!/usr/bin/env bash
# Autobahn conformance run for wsportal's WebSocket client.
#
#   bash scripts/autobahn-client.sh
#
# 1. makes/reuses a Python venv at .ci-work/venv with `kosoku` pinned to
#    $KOSOKU_VERSION;
# 2. `cargo build --release --example autobahn_client` (fails clearly if the
#    crate has no such example yet);
# 3. starts `kosoku -m fuzzingserver -x '12.*' -x '13.*' 127.0.0.1:0` in the
#    background and reads its real port from the line it prints on stderr,
#    `fuzzingserver listening on ws://127.0.0.1:PORT`;
# 4. runs `target/release/examples/autobahn_client 127.0.0.1:PORT`, which must
#    be a standard Autobahn client driver with agent name `wsportal`:
#      GET ws://ADDR/getCaseCount              -> one text message: N
#      for i in 1..=N: ws://ADDR/runCase?case=i&agent=wsportal  (echo every
#                      message back, text as text, binary as binary, until closed)
#      GET ws://ADDR/updateReports?agent=wsportal               (then kosoku
#                      writes the report and exits)
# 5. waits (bounded) for kosoku to write .ci-work/autobahn/client/index.json
#    and gates it with scripts/check-autobahn.py (agent `wsportal`).
#
# Exit status is non-zero on any failure, with the reason printed last.
#
# Environment knobs (all optional):
#   CLIENT_CMD        command used instead of the built example; the fuzzing
#                     server's HOST:PORT is appended as its last argument. Runs
#                     with the venv's bin/ first on PATH; no cargo build is done.
#                     Example (a Python `websockets` reference driver):
#                       AUTOBAHN_PIP_EXTRA=websockets WEBSOCKETS_MAX_FRAGMENTS=10000000 \
#                       CLIENT_CMD="python /path/to/client_driver.py" \
#                       bash scripts/autobahn-client.sh
#   AUTOBAHN_FEATURES cargo features for the example's build (e.g. deflate).
#                     With `deflate` the whole suite is served: sections 12 and
#                     13 (permessage-deflate) too, all 517 cases required, and
#                     the report goes to .ci-work/autobahn/client-deflate.
#   AUTOBAHN_AGENT    agent name the client reports (default wsportal).
#   AUTOBAHN_PIP_EXTRA extra pip packages to put in the venv (e.g. websockets).
#   AUTOBAHN_CASES    space-separated case ids/globs (e.g. "5.* 9.7.1") to serve
#                     instead of sections 1-10; turns off the case-count check.
#   AUTOBAHN_TIMEOUT  seconds the client may run (default 1200).
#   AUTOBAHN_PARALLELISM  cases the client runs at a time (default 1; above 1
#                     it is passed as `--parallel N`, which the built example
#                     knows; a CLIENT_CMD must know it too).
#   AUTOBAHN_BUILD_TIMEOUT   seconds for the cargo build (default 1200).
#   AUTOBAHN_READY_TIMEOUT   seconds to wait for kosoku to listen (default 30).
#   AUTOBAHN_REPORT_TIMEOUT  seconds to wait for kosoku to exit after the client
#                     is done (default 60).
#   AUTOBAHN_OUT      report directory (default .ci-work/autobahn/client).
#   AUTOBAHN_CLOSE    check-autobahn.py --close mode: must (default)|strict|ignore.
#   KOSOKU_VERSION    kosoku version to install (default 0.1.0).
#   PYTHON            python used to create the venv (default python3).

set -euo pipefail

EXAMPLE=autobahn_client
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # cds to ROOT; sets WORK, VENV, PYTHON
LOG_NAME=autobahn-client

KOSOKU_VERSION="${KOSOKU_VERSION:-0.1.0}"
sel=(-x '12.*' -x '13.*')
# Cases in sections 1-10 with kosoku 0.1.0 (1:16 2:11 3:7 4:10 5:20 6:145 7:37 9:54 10:1).
MIN_CASES=301
CHECK_EXTRA=()
TAG=client
TIMEOUT_DEFAULT=1200
SUITE="sections 1-10"
if [[ " ${AUTOBAHN_FEATURES:-} " =~ [\ ,]deflate[\ ,] ]]; then
    # The whole suite: sections 12 and 13 (12:90 13:126) are permessage-deflate.
    sel=()
    MIN_CASES=517
    CHECK_EXTRA=(--compression)
    TAG=client-deflate
    TIMEOUT_DEFAULT=2400
    SUITE="all sections"
fi
OUT="${AUTOBAHN_OUT:-$WORK/autobahn/$TAG}"
AGENT="${AUTOBAHN_AGENT:-wsportal}"
CLIENT_TIMEOUT="${AUTOBAHN_TIMEOUT:-$TIMEOUT_DEFAULT}"
BUILD_TIMEOUT="${AUTOBAHN_BUILD_TIMEOUT:-1200}"
READY_TIMEOUT="${AUTOBAHN_READY_TIMEOUT:-30}"
REPORT_TIMEOUT="${AUTOBAHN_REPORT_TIMEOUT:-60}"
PARALLELISM="${AUTOBAHN_PARALLELISM:-1}"
CLIENT_EXTRA=()
if (( PARALLELISM > 1 )); then
    CLIENT_EXTRA=(--parallel "$PARALLELISM")
fi
CLOSE_MODE="${AUTOBAHN_CLOSE:-must}"

KOSOKU_PID=""
KOSOKU_LOG="$WORK/autobahn/$TAG-kosoku.log"
CLIENT_LOG="$WORK/autobahn/$TAG-$EXAMPLE.log"

stop_kosoku() { term_then_kill "$KOSOKU_PID"; KOSOKU_PID=""; }
cleanup() { stop_child; stop_kosoku; }
trap_cleanup

# ---------------------------------------------------------------- main
log "out=$OUT agent=$AGENT"
ensure_venv

program_argv CLIENT_CMD client-cmd "$EXAMPLE" "the crate has no example named '$EXAMPLE' yet (expected examples/$EXAMPLE.rs: an Autobahn client driver taking HOST:PORT, agent 'wsportal')"
CLIENT_ARGV=("${PROGRAM_ARGV[@]}")

rm -rf "$OUT"
mkdir -p "$OUT" "$(dirname "$KOSOKU_LOG")"
: >"$KOSOKU_LOG"
: >"$CLIENT_LOG"

if [[ -n "${AUTOBAHN_CASES:-}" ]]; then
    for c in $AUTOBAHN_CASES; do sel+=(-i "$c"); done
    MIN_CASES=1
fi

# kosoku in fuzzingserver mode exits by itself once the client has called
# /updateReports; the outer timeout only bounds a client that never does.
ks_budget=$((READY_TIMEOUT + CLIENT_TIMEOUT + REPORT_TIMEOUT + 30))
log "starting kosoku -m fuzzingserver ${sel[*]} -o $OUT 127.0.0.1:0"
timeout -k 10 "$ks_budget" "$VENV/bin/kosoku" -m fuzzingserver "${sel[@]}" -o "$OUT" 127.0.0.1:0 \
    </dev/null >"$KOSOKU_LOG" 2>&1 &
KOSOKU_PID=$!

ready=0
wait_listening "$KOSOKU_PID" "$KOSOKU_LOG" "$READY_TIMEOUT" || ready=$?
if (( ready == 2 )); then
    KOSOKU_PID=""
    show_log "$KOSOKU_LOG" "kosoku log"
    die "kosoku fuzzingserver exited (status $LISTEN_STATUS) before listening"
fi
[[ -n "$ADDR" && "$ADDR" =~ :[0-9]+$ ]] || { show_log "$KOSOKU_LOG" "kosoku log"; die "kosoku fuzzingserver did not report a listening HOST:PORT within ${READY_TIMEOUT}s"; }
log "kosoku fuzzingserver pid $KOSOKU_PID listening on $ADDR"

log "running client: ${CLIENT_ARGV[*]} $ADDR"
c0=$SECONDS
client_rc=0
PATH="$VENV/bin:$PATH" RUST_BACKTRACE=1 run_bounded "$CLIENT_TIMEOUT" "${CLIENT_ARGV[@]}" "$ADDR" "${CLIENT_EXTRA[@]}" \
    </dev/null >"$CLIENT_LOG" 2>&1 || client_rc=$?
log "client finished in $((SECONDS - c0))s with exit status $client_rc"
problems=""
if (( client_rc == 124 || client_rc == 137 )); then
    problems+=" client-timeout(${CLIENT_TIMEOUT}s)"
elif (( client_rc != 0 )); then
    problems+=" client-exit-status-$client_rc"
fi
if [[ -n "$problems" ]]; then
    show_log "$CLIENT_LOG" "client log"
fi

# Wait (bounded) for kosoku to notice /updateReports, write the report and exit.
wait_kosoku() {  # SECONDS -> sets ks_rc when kosoku has exited
    local deadline=$((SECONDS + $1))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$KOSOKU_PID" 2>/dev/null; then
            ks_rc=0; wait "$KOSOKU_PID" || ks_rc=$?
            KOSOKU_PID=""
            return 0
        fi
        sleep 0.2
    done
    return 1
}
# Ask kosoku for the report ourselves (a bare /updateReports handshake), so a
# client that crashed or hung half-way still leaves the cases it ran.
salvage_report() {
    log "requesting /updateReports?agent=$AGENT from kosoku ourselves to salvage a partial report"
    # (Passed with -c: a background command's stdin is /dev/null, so no heredoc.)
    local py='
import base64, os, socket, sys
addr, agent = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET /updateReports?agent={agent} HTTP/1.1\r\nHost: {addr}\r\n"
           f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
try:
    while s.recv(4096):
        pass
except OSError:
    pass
'
    run_bounded 30 "$VENV/bin/python" -c "$py" "$ADDR" "$AGENT" || true
}
ks_rc=""
if (( client_rc == 0 )); then
    wait_kosoku "$REPORT_TIMEOUT" || {
        problems+=" client-did-not-call-updateReports"
        log "kosoku still running ${REPORT_TIMEOUT}s after the client exited: did the client call /updateReports?agent=$AGENT ?"
    }
fi
if [[ -z "$ks_rc" ]] && kill -0 "$KOSOKU_PID" 2>/dev/null; then
    salvage_report
    wait_kosoku 30 || { problems+=" kosoku-did-not-finish"; log "kosoku did not write a report; stopping it"; stop_kosoku; }
fi
grep -E 'cases passed|cases failed|wrote reports' "$KOSOKU_LOG" | sed 's/^/[kosoku] /' || true

if [[ ! -f "$OUT/index.json" ]]; then
    show_log "$KOSOKU_LOG" "kosoku log"
    show_log "$CLIENT_LOG" "client log"
    die "no report was written to $OUT/index.json; problems:${problems:- none detected}"
fi

rc=0
"$VENV/bin/python" "$ROOT/scripts/check-autobahn.py" "${CHECK_EXTRA[@]}" --min-cases "$MIN_CASES" --close "$CLOSE_MODE" "$OUT/index.json" "$AGENT" || rc=$?
log "reports: $OUT/index.json (HTML: $OUT/index.html); total $((SECONDS - T0))s"
if [[ -n "$problems" ]]; then
    die "client run problems:$problems"
fi
if (( rc != 0 )); then
    die "Autobahn conformance check failed for the client (agent '$AGENT'; see the failing cases above)"
fi
log "PASSED: the client is Autobahn-conformant (cases: ${AUTOBAHN_CASES:-$SUITE})"
