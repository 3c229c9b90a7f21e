#!/usr/bin/env bash
# Interop check of our blocking event-stream client (`EventSource`, through
# `examples/events.rs`) against event-stream servers we did not write: a
# Python one (http.server, HTTP/1.0, the body until close) and a Node one
# (http, HTTP/1.1 chunked, the body in several writes). Both are in
# scripts/interop/ and need only the standard library.
#
#   bash scripts/interop-sse.sh
#
# Each serves the same script: the wire format's corners (a BOM, comments,
# retry, event names, multi-line data, CRLF, CR and LF line ends, an event
# cut off by the end of the stream); then it checks that the client came
# back with Last-Event-ID: 3 and sends the rest; then 204, which stops the
# client. The client's output must be exactly EXPECTED below.
#
# Environment knobs (all optional):
#   INTEROP_TIMEOUT     seconds per pairing (default 60)

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # cds to ROOT; sets WORK
LOG_NAME=interop-sse

PAIR_TIMEOUT="${INTEROP_TIMEOUT:-60}"
LOGS="$WORK/interop-sse"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/events"
mkdir -p "$LOGS"

SERVER_PID=""
stop_server() { term_and_reap "$SERVER_PID"; SERVER_PID=""; }
trap stop_server EXIT
trap 'stop_server; exit 143' TERM
trap 'stop_server; exit 130' INT

command -v node >/dev/null || die "node is not installed"
log "cargo build --release --example events"
timeout 1200 cargo build --release --example events </dev/null \
    || die "cargo build --release --example events failed"

EXPECTED='connected; Ctrl-C stops
greet (id 1): hello
world
message (id 2): crlf
message (id 3): cr only
message (id 3): no id: keeps 3
message (id 3): resumed after 3
message (id 3): multi

line
bye (id 3): x
stopped: the server answered 204'

FAILED=()
# check NAME CMD...: starts the peer (it prints "listening on http://ADDR"),
# runs the client against ADDR/events, compares its output.
check() {
    local name=$1
    shift
    log "== $name"
    local out="$LOGS/$name-server.log"
    : >"$out"
    timeout -k 5 $((PAIR_TIMEOUT + 30)) "$@" </dev/null >"$out" 2>&1 &
    SERVER_PID=$!
    local addr=""
    for _ in $(seq 1 150); do
        addr="$(sed -n 's#^listening on http://\([^ /]*\).*#\1#p' "$out" | head -n1)"
        [[ -n "$addr" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$addr" ]]; then
        show_log "$out" "$name server"
        FAILED+=("$name (server did not start)")
        stop_server
        return
    fi
    local got rc=0
    got="$(timeout -k 5 "$PAIR_TIMEOUT" "$BIN" "http://$addr/events" </dev/null 2>"$LOGS/$name-client.err")" || rc=$?
    stop_server
    if (( rc == 0 )) && [[ "$got" == "$EXPECTED" ]]; then
        log "ok: $name"
    else
        log "FAIL: $name (exit status $rc); the client printed:"
        echo "$got" | sed 's/^/    /'
        diff <(echo "$EXPECTED") <(echo "$got") | sed 's/^/    /' || true
        show_log "$LOGS/$name-client.err" "$name client stderr"
        FAILED+=("$name")
    fi
}

check python "${PYTHON:-python3}" "$ROOT/scripts/interop/sse_peer.py"
check node node "$ROOT/scripts/interop/sse_peer.js"

if (( ${#FAILED[@]} > 0 )); then
    die "${#FAILED[@]} of 2 checks failed: $(printf '%s; ' "${FAILED[@]}")"
fi
log "PASSED: our EventSource reads Python's and Node's event streams, resumes and stops on 204 (total $((SECONDS - T0))s)"
