#!/usr/bin/env bash
# Interop checks against WebSocket implementations we did not write.
#
#   bash scripts/interop.sh
#
# 1. installs Python `websockets` into the venv at .ci-work/venv and Node `ws`
#    into .ci-work/node (pinned versions, reused when already there);
# 2. cargo build --release --example interop;
# 3. runs four pairings, each bounded by `timeout`, all on 127.0.0.1:
#      our client  -> Python websockets server   (scripts/interop/peer.py server)
#      our client  -> Node ws server             (scripts/interop/peer.js server)
#      Python websockets client -> our server    (examples/interop.rs server)
#      Node ws client           -> our server
#    Each checks text, binary up to 4 MiB, fragmented messages, pings and
#    pongs both ways, close codes and reasons both ways, the subprotocol and
#    an extra request header (see examples/interop.rs for the command protocol).
# 4. checks our server's Prometheus page (/metrics) with Python
#    `prometheus_client`'s text-format parser (scripts/interop/metrics.py).
# 5. runs the four pairings again with permessage-deflate (our build has the
#    `deflate` feature; the peers turn it on through INTEROP_DEFLATE, with
#    their defaults and then `tuned`: other windows, no context takeover),
#    each peer failing unless the extension was agreed;
# 6. runs the four pairings again over TLS (wss://, a certificate made by
#    scripts/tls-cert.sh that each client is told to trust), then checks that
#    our client refuses a server it was not told to trust (Error::Tls);
# 7. runs scripts/interop-sse.sh: our blocking EventSource (examples/events.rs)
#    against a Python and a Node event-stream server (standard library only).
#
# Exit status is non-zero if any pairing fails; each failure says which check
# differed and how.
#
# Environment knobs (all optional):
#   WEBSOCKETS_VERSION  pip version of websockets (default 17.4)
#   WS_VERSION          npm version of ws (default 8.23.0)
#   PROMETHEUS_CLIENT_VERSION  pip version of prometheus_client (default 0.26.0)
#   INTEROP_TIMEOUT     seconds per pairing (default 120)
#   PYTHON              python used to create the venv (default python3)

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # cds to ROOT; sets WORK, VENV, PYTHON
LOG_NAME=interop

WEBSOCKETS_VERSION="${WEBSOCKETS_VERSION:-17.4}"
WS_VERSION="${WS_VERSION:-8.23.0}"
PROMETHEUS_CLIENT_VERSION="${PROMETHEUS_CLIENT_VERSION:-0.26.0}"
PAIR_TIMEOUT="${INTEROP_TIMEOUT:-120}"
NODE_DIR="$WORK/node"
LOGS="$WORK/interop"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/interop"

SERVER_PID=""
stop_server() { term_and_reap "$SERVER_PID"; SERVER_PID=""; }
trap stop_server EXIT
trap 'stop_server; exit 143' TERM
trap 'stop_server; exit 130' INT

# ---------------------------------------------------------------- installs
mkdir -p "$WORK" "$LOGS"
command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    timeout 300 "$PYTHON" -m venv "$VENV" </dev/null || die "could not create a venv with $PYTHON"
fi
if ! venv_has websockets "$WEBSOCKETS_VERSION"; then
    log "pip install websockets==$WEBSOCKETS_VERSION"
    timeout 600 "$VENV/bin/python" -m pip install --disable-pip-version-check -q "websockets==$WEBSOCKETS_VERSION" </dev/null \
        || die "pip install websockets==$WEBSOCKETS_VERSION failed"
fi
if ! venv_has prometheus_client "$PROMETHEUS_CLIENT_VERSION"; then
    log "pip install prometheus_client==$PROMETHEUS_CLIENT_VERSION"
    timeout 600 "$VENV/bin/python" -m pip install --disable-pip-version-check -q "prometheus_client==$PROMETHEUS_CLIENT_VERSION" </dev/null \
        || die "pip install prometheus_client==$PROMETHEUS_CLIENT_VERSION failed"
fi
have="$(node -e "try{console.log(require('$NODE_DIR/node_modules/ws/package.json').version)}catch(e){}" 2>/dev/null || true)"
if [[ "$have" != "$WS_VERSION" ]]; then
    log "npm install ws@$WS_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    [[ -f "$NODE_DIR/package.json" ]] || echo '{"private": true}' >"$NODE_DIR/package.json"
    timeout 600 npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent "ws@$WS_VERSION" </dev/null \
        || die "npm install ws@$WS_VERSION failed"
fi
export NODE_PATH="$NODE_DIR/node_modules"
log "websockets $WEBSOCKETS_VERSION, ws $WS_VERSION, node $(node -v)"

log "cargo build --release --features tls,deflate --example interop"
timeout 1200 cargo build --release --features tls,deflate --example interop </dev/null \
    || die "cargo build --release --features tls,deflate --example interop failed"

# ---------------------------------------------------------------- pairings
# start_server NAME CMD...: starts a server that prints "listening on
# ws://HOST:PORT" (or wss://) and sets ADDR and SCHEME (bounded wait).
start_server() {
    local name=$1
    shift
    local out="$LOGS/$name-server.log"
    : >"$out"
    timeout -k 5 $((PAIR_TIMEOUT + 30)) "$@" </dev/null >"$out" 2>&1 &
    SERVER_PID=$!
    ADDR=""
    for _ in $(seq 1 150); do
        ADDR="$(sed -n 's#^listening on wss\{0,1\}://\([^ /]*\).*#\1#p' "$out" | head -n1)"
        SCHEME="$(sed -n 's#^listening on \(wss\{0,1\}\)://.*#\1#p' "$out" | head -n1)"
        [[ -n "$ADDR" ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$out" >&2
    die "$name server did not start listening"
}

FAILED=()
# pair NAME SERVER_NAME SERVER_CMD -- CLIENT_CMD... (the URL is appended)
pair() {
    local name=$1 server=$2
    shift 2
    local server_cmd=()
    while [[ $1 != -- ]]; do server_cmd+=("$1"); shift; done
    shift
    log "== $name"
    start_server "$server" "${server_cmd[@]}"
    local rc=0
    timeout -k 5 "$PAIR_TIMEOUT" "$@" "$SCHEME://$ADDR/interop" </dev/null 2>&1 | sed 's/^/    /' || rc=${PIPESTATUS[0]}
    stop_server
    if (( rc == 0 )); then
        log "ok: $name"
    else
        (( rc == 124 )) && log "timed out after ${PAIR_TIMEOUT}s"
        log "FAIL: $name (exit status $rc); server log: $LOGS/$server-server.log"
        FAILED+=("$name")
    fi
}

PEER_PY=(python "$ROOT/scripts/interop/peer.py")
PEER_PY[0]="$VENV/bin/python"
PEER_JS=(node "$ROOT/scripts/interop/peer.js")

pair "wsportal client -> python websockets server" python "${PEER_PY[@]}" server -- "$BIN" client
pair "wsportal client -> node ws server" node "${PEER_JS[@]}" server -- "$BIN" client
pair "python websockets client -> wsportal server" wsportal "$BIN" server 127.0.0.1:0 -- "${PEER_PY[@]}" client
pair "node ws client -> wsportal server" wsportal "$BIN" server 127.0.0.1:0 -- "${PEER_JS[@]}" client
pair "prometheus_client parses wsportal /metrics" wsportal "$BIN" server 127.0.0.1:0 -- "$VENV/bin/python" "$ROOT/scripts/interop/metrics.py"

# ------------------------------------------------------- permessage-deflate
# wsportal (built with `deflate`) offers and accepts it by default; the peers
# above turn it off (so those pairs run uncompressed), these turn it on and
# fail unless it was agreed: with their defaults, and `tuned` (other window
# sizes, no context takeover either way).
for mode in default tuned; do
    export INTEROP_DEFLATE=$mode
    pair "wsportal client -> python websockets server (deflate $mode)" python "${PEER_PY[@]}" server -- "$BIN" client
    pair "wsportal client -> node ws server (deflate $mode)" node "${PEER_JS[@]}" server -- "$BIN" client
    pair "python websockets client -> wsportal server (deflate $mode)" wsportal "$BIN" server 127.0.0.1:0 -- "${PEER_PY[@]}" client
    pair "node ws client -> wsportal server (deflate $mode)" wsportal "$BIN" server 127.0.0.1:0 -- "${PEER_JS[@]}" client
done
unset INTEROP_DEFLATE

# ---------------------------------------------------------------- over TLS
bash "$ROOT/scripts/tls-cert.sh" "$WORK/tls" >/dev/null || die "could not make a certificate (openssl)"
export INTEROP_CERT="$WORK/tls/cert.pem" INTEROP_KEY="$WORK/tls/key.pem"
pair "wsportal client -> python websockets server (tls)" python "${PEER_PY[@]}" server -- "$BIN" client
pair "wsportal client -> node ws server (tls)" node "${PEER_JS[@]}" server -- "$BIN" client
pair "python websockets client -> wsportal server (tls)" wsportal "$BIN" server 127.0.0.1:0 -- "${PEER_PY[@]}" client
pair "node ws client -> wsportal server (tls)" wsportal "$BIN" server 127.0.0.1:0 -- "${PEER_JS[@]}" client

# A client not told to trust the certificate must refuse it with Error::Tls.
name="wsportal client refuses an untrusted python websockets server (tls)"
log "== $name"
start_server python "${PEER_PY[@]}" server
refused="$(env -u INTEROP_CERT timeout -k 5 "$PAIR_TIMEOUT" "$BIN" client "$SCHEME://$ADDR/interop" </dev/null 2>&1 || true)"
stop_server
echo "$refused" | sed 's/^/    /'
if grep -q 'Tls(\|tls: .*UnknownIssuer' <<<"$refused"; then
    log "ok: $name"
else
    log "FAIL: $name (expected a TLS error)"
    FAILED+=("$name")
fi

# ---------------------------------------------------------- event streams
name="wsportal EventSource -> python and node event-stream servers"
log "== $name (scripts/interop-sse.sh)"
if INTEROP_TIMEOUT="$PAIR_TIMEOUT" bash "$ROOT/scripts/interop-sse.sh" 2>&1 | sed 's/^/    /'; then
    log "ok: $name"
else
    log "FAIL: $name"
    FAILED+=("$name")
fi

if (( ${#FAILED[@]} > 0 )); then
    die "${#FAILED[@]} of 19 checks failed: $(printf '%s; ' "${FAILED[@]}")"
fi
log "PASSED: all 19 checks: 4 pairings plain, with deflate (two ways) and over TLS, /metrics, and the event-stream client (total $((SECONDS - T0))s)"
