#!/usr/bin/env bash
# The demo behind Debian's nginx, configured two ways:
#   guide   the way most guides write it: `proxy_set_header Host $host;`
#           (which drops the port), X-Forwarded-For and X-Forwarded-Proto,
#           the Upgrade/Connection pair, `proxy_buffering off`
#   readme  the README's snippet (section "Behind nginx")
# with the demo run as `demo 127.0.0.1:0 --trust-proxy 127.0.0.1` (and the
# README's once more with the demo on a Unix socket: `--unix PATH
# --trust-proxy 0.0.0.0`, removed when it stops on SIGTERM). For each,
# through nginx (python3, stdlib only):
#   - a WebSocket handshake to /echo with the same-site Origin
#     (http://127.0.0.1:NGINX_PORT) gets 101 and echoes a message;
#   - one with a foreign Origin gets 403;
#   - /events delivers `tick` events one by one, about a second apart
#     (not held in a buffer): three ticks, each within 2.5 s of the last;
#   - POST /say (a text body) answers 204 and the text comes back as a
#     `chat` event on /events.
#
# nginx runs as a foreground process (`daemon off`) with its own config,
# pid file, logs and temp dirs in a temp dir, on a free port of its own, and
# is stopped at the end, as is the demo. Needs: cargo, python3, nginx
# (installed with apt-get when missing, which needs root). Fails, never
# skips. Every wait is bounded.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # cds to ROOT
LOG_NAME=nginx-test

if ! command -v nginx >/dev/null 2>&1; then
    [[ "$(id -u)" == 0 ]] || die "nginx is missing and installing it needs root (apt-get install -y nginx)"
    log "installing nginx with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    run_bounded 600 apt-get update -q </dev/null || die "apt-get update"
    run_bounded 1200 apt-get install -y -q nginx </dev/null || die "apt-get install nginx"
fi
NGINX="$(command -v nginx)"
log "$("$NGINX" -v 2>&1)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed for the checks"

log "building the demo"
run_bounded 1200 cargo build --example demo </dev/null || die "cargo build --example demo"
DEMO_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/demo"

SCRATCH="$(mktemp -d /tmp/wsportal-nginx.XXXXXX)"
DEMO_PID=""
NGINX_PID=""
cleanup() {
    term_then_kill "$NGINX_PID" nginx
    term_then_kill "$DEMO_PID" demo
    NGINX_PID=""
    DEMO_PID=""
    rm -rf "$SCRATCH"
}
trap_cleanup

# A free port for nginx (bound and released: nginx must know it up front).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The `location /` bodies of the two configurations.
guide_location() {
    cat <<'EOF'
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
EOF
}
readme_location() {
    # Keep in step with the README's "Behind nginx" snippet.
    cat <<'EOF'
            proxy_pass http://backend;
            proxy_http_version 1.1;                  # WebSocket needs 1.1
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;        # keeps the port
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;                     # event streams as they come
            proxy_read_timeout 1h;                   # long-lived connections
EOF
}

# The checks, run by run_case through nginx.
cat >"$SCRATCH/checks.py" <<'PY'
"""The checks, through nginx on 127.0.0.1:PORT (stdlib only)."""
import base64, os, socket, sys, time

port = int(sys.argv[1])
here = f"127.0.0.1:{port}"

def connect():
    deadline = time.monotonic() + 20
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.settimeout(10)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

def read_head(s):
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            raise RuntimeError(f"connection closed in the head: {head!r}")
        head += b
    return head.decode("latin-1")

def websocket(origin):
    s = connect()
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /echo HTTP/1.1\r\nHost: {here}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: {key}\r\nOrigin: {origin}\r\n\r\n").encode())
    head = read_head(s)
    return s, int(head.split(" ")[1])

def echo(s, text):
    data = text.encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
    hdr = s.recv(2)
    n = hdr[1] & 0x7F
    got = b""
    while len(got) < n:
        got += s.recv(n - len(got))
    return hdr[0], got.decode()

s, status = websocket(f"http://{here}")
assert status == 101, f"same-site Origin: {status}"
assert echo(s, "hello through nginx") == (0x81, "hello through nginx"), "echo"
s.close()
print("  same-site WebSocket: 101, echoed")
s, status = websocket("http://evil.example")
assert status == 403, f"foreign Origin: {status}"
s.close()
print("  foreign Origin: 403")

# The event stream: ticks come one by one.
ev = connect()
# HTTP/1.0: nginx answers without chunked framing (the stream ends with the connection).
ev.sendall(f"GET /events HTTP/1.0\r\nHost: {here}\r\nAccept: text/event-stream\r\n\r\n".encode())
head = read_head(ev)
assert head.startswith("HTTP/1.1 200"), head
buf = b""
def next_event(name, deadline):
    """The data of the next event called `name` (others skipped)."""
    global buf
    while True:
        while b"\n\n" not in buf:
            ev.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = ev.recv(4096)
            except socket.timeout:
                raise AssertionError(f"no {name} event in time (buffered?)")
            if not chunk:
                raise AssertionError("the event stream ended")
            buf += chunk
        block, buf = buf.split(b"\n\n", 1)
        lines = block.decode().splitlines()
        fields = dict(l.split(": ", 1) for l in lines if l.startswith(("event: ", "data: ")))
        if fields.get("event") == name:
            return fields.get("data", "")

last = time.monotonic()
for i in range(3):
    next_event("tick", last + 2.5)
    last = time.monotonic()
print("  /events: three ticks, each within 2.5 s of the last")

# POST /say: 204, then the text as a chat event.
p = connect()
body = b"said through nginx"
p.sendall(f"POST /say HTTP/1.1\r\nHost: {here}\r\nContent-Type: text/plain\r\n"
          f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
head = read_head(p)
assert head.startswith("HTTP/1.1 204"), head
p.close()
data = next_event("chat", time.monotonic() + 10)
assert data == "said through nginx", data
print("  POST /say: 204, and the chat event arrived")
ev.close()
PY

# run_case NAME [unix]: the demo (on a TCP port, or with `unix` on a Unix
# socket) and nginx with NAME's location, the checks, stop.
run_case() {
    local name=$1 mode=${2:-tcp} port backend
    log "== $name configuration ($mode)"
    : >"$SCRATCH/demo.log"
    if [[ "$mode" == unix ]]; then
        # On the socket there is no peer address: 0.0.0.0 stands for it.
        # nginx's workers (another user when we are root) must reach the
        # socket: the directory searchable, the socket writable by all.
        chmod 711 "$SCRATCH"
        (umask 000 && exec "$DEMO_BIN" --unix "$SCRATCH/demo.sock" --trust-proxy 0.0.0.0) >"$SCRATCH/demo.log" 2>&1 &
    else
        "$DEMO_BIN" 127.0.0.1:0 --trust-proxy 127.0.0.1 >"$SCRATCH/demo.log" 2>&1 &
    fi
    DEMO_PID=$!
    wait_listening "$DEMO_PID" "$SCRATCH/demo.log" 60 || {
        show_log "$SCRATCH/demo.log" demo
        die "the demo did not print 'listening on ADDR' within 60 s"
    }
    backend=$ADDR
    [[ "$mode" == unix ]] && backend="unix:$SCRATCH/demo.sock"
    port="$(free_port)"
    local conf="$SCRATCH/$name"
    mkdir -p "$conf/logs" "$conf/tmp"
    {
        cat <<EOF
worker_processes 1;
pid $conf/nginx.pid;
error_log $conf/logs/error.log info;
daemon off;
events { worker_connections 256; }
http {
    access_log $conf/logs/access.log;
    client_body_temp_path $conf/tmp/body;
    proxy_temp_path $conf/tmp/proxy;
    fastcgi_temp_path $conf/tmp/fastcgi;
    uwsgi_temp_path $conf/tmp/uwsgi;
    scgi_temp_path $conf/tmp/scgi;
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }
    upstream backend { server $backend; }
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        location / {
EOF
        "${name}_location"
        cat <<'EOF'
        }
    }
}
EOF
    } >"$conf/nginx.conf"
    "$NGINX" -t -q -p "$conf" -c "$conf/nginx.conf" 2>"$conf/logs/check.log" || {
        show_log "$conf/logs/check.log" "nginx -t"
        die "nginx refuses the $name configuration"
    }
    "$NGINX" -p "$conf" -c "$conf/nginx.conf" >"$conf/logs/stdout.log" 2>&1 &
    NGINX_PID=$!
    local rc=0
    run_bounded 90 python3 "$SCRATCH/checks.py" "$port" </dev/null || rc=$?
    if (( rc != 0 )); then
        grep -v "\[info\]" "$conf/logs/error.log" | tail -n 20 >&2 || true
        show_log "$SCRATCH/demo.log" demo
        die "$name configuration: the checks failed (exit status $rc)"
    fi
    term_then_kill "$NGINX_PID" nginx
    term_then_kill "$DEMO_PID" demo
    NGINX_PID=""
    DEMO_PID=""
    if [[ "$mode" == unix && -e "$SCRATCH/demo.sock" ]]; then
        die "the demo left its socket file behind"
    fi
    log "$name configuration ($mode): passed"
}

run_case guide
run_case readme
run_case readme unix
log "passed"
