#!/usr/bin/env bash
# Real-browser test of the demo (`cargo run --example demo`): headless
# Chromium loads http://ADDR/?selftest=1, whose own script sends one echo and
# one chat message and marks on <body> what came back:
#   data-echo-ok      the echo over the WebSocket /echo
#   data-chat-ok      its own chat message relayed back over the WebSocket /chat
#   data-tick-ok      a `tick` over the EventSource /events
#   data-sse-chat-ok  its chat message again, as a `chat` event over /events
#   data-stats-ok     the live stats panel redrawn from two `stats` events,
#                     showing the page's own /echo, /chat and /events clients
# This script checks those markers in the resulting DOM, that the panel's
# chart has points and was redrawn at least twice, and saves a screenshot
# (default /tmp/wsportal-demo.png; BROWSER_TEST_SCREENSHOT overrides it).
# Then it does it all again over TLS: the demo with a fresh self-signed
# certificate (scripts/tls-cert.sh; Chromium runs with
# --ignore-certificate-errors), loaded from https://, so its WebSockets are
# wss:// and its EventSource https:// (screenshot *-https.png).
#
# Chromium is driven over the DevTools protocol on a pipe
# (--remote-debugging-pipe) by a small Python driver below: --dump-dom with
# --virtual-time-budget never returns while a WebSocket or EventSource is open.
#
# Needs: cargo, python3, and chromium (installed with apt-get when missing,
# which needs root). It fails, never skips, when it cannot run. Every wait
# is bounded.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # cds to ROOT
LOG_NAME=browser-test
LOG_CLOCK=0 # log lines are "[browser-test] MSG", without the time

SHOT="${BROWSER_TEST_SCREENSHOT:-/tmp/wsportal-demo.png}"
PAGE_WAIT="${BROWSER_TEST_WAIT:-30}" # seconds for the page to pass its self-test

# ------------------------------------------------------------------ chromium
if ! command -v chromium >/dev/null 2>&1; then
    [[ "$(id -u)" == 0 ]] || die "chromium is missing and installing it needs root (apt-get install -y chromium)"
    log "installing chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -q || die "apt-get update"
    timeout 1200 apt-get install -y -q chromium || die "apt-get install chromium"
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed to drive chromium"
log "$(timeout 60 chromium --version 2>/dev/null || echo 'chromium (version unknown)')"

# ------------------------------------------------------------------ the demo
log "building the demo"
timeout 1200 cargo build --release --features tls,deflate --example demo \
    || die "cargo build --release --features tls,deflate --example demo"

# (Not $WORK: lib.sh's WORK is .ci-work, which must survive the cleanup.)
SCRATCH="$(mktemp -d /tmp/wsportal-browser.XXXXXX)"
DEMO_PID=""
cleanup() {
    term_and_reap "$DEMO_PID"
    rm -rf "$SCRATCH"
}
trap cleanup EXIT

# check_demo SCHEME SHOT [DEMO ARGS...]: runs the demo, loads
# SCHEME://ADDR/?selftest=1 in Chromium, checks the page's markers.
check_demo() {
local scheme=$1 SHOT=$2
shift 2
# Port 0: the demo prints the address it got ("listening on ADDR").
exec 3< <(exec timeout 300 target/release/examples/demo 127.0.0.1:0 "$@" 2>"$SCRATCH/demo.err")
DEMO_PID=$!
ADDR=""
while IFS= read -r -t 30 -u 3 line; do
    echo "    demo: $line"
    if [[ "$line" == *"listening on "* ]]; then
        ADDR="${line##*listening on }"
        break
    fi
done
[[ -n "$ADDR" ]] || die "the demo did not print 'listening on ADDR' within 30 s: $(cat "$SCRATCH/demo.err")"
URL="$scheme://$ADDR/?selftest=1"
log "loading $URL"

# ------------------------------------------------------------------ the browser
set +e
timeout $((PAGE_WAIT + 60)) python3 - "$URL" "$SHOT" "$PAGE_WAIT" "$SCRATCH" >"$SCRATCH/dom.html" <<'PY'
"""Drives headless Chromium over --remote-debugging-pipe (fds 3 and 4, NUL-
separated JSON): opens the page, waits (bounded) for its self-test markers,
prints the DOM and saves a screenshot."""
import base64, json, os, select, subprocess, sys, time

url, shot, page_wait, work = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
MARKERS = ["echo", "chat", "tick", "sse-chat", "stats"]

to_browser_r, to_browser_w = os.pipe()
from_browser_r, from_browser_w = os.pipe()

def child_fds():
    # Chromium reads commands on fd 3 and writes answers on fd 4.
    r, w = os.dup(to_browser_r), os.dup(from_browser_w)
    os.dup2(r, 3)
    os.dup2(w, 4)

args = [
    "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--ignore-certificate-errors",
    "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-pipe",
    "--user-data-dir=" + os.path.join(work, "profile"), "--window-size=1280,900",
    "about:blank",
]
browser = subprocess.Popen(
    args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    stderr=open(os.path.join(work, "chromium.log"), "w"),
    preexec_fn=child_fds, close_fds=False,
)
os.close(to_browser_r)
os.close(from_browser_w)

buf = b""
next_id = 0
notes = []  # console messages and exceptions, shown on failure

def read_message(deadline):
    global buf
    while b"\0" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from chromium in time")
        ready, _, _ = select.select([from_browser_r], [], [], left)
        if ready:
            chunk = os.read(from_browser_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited; see chromium.log")
            buf += chunk
    msg, buf = buf.split(b"\0", 1)
    return json.loads(msg)

def call(method, params=None, session=None, timeout=15):
    global next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(to_browser_w, json.dumps(msg).encode() + b"\0")
    deadline = time.monotonic() + timeout
    while True:
        m = read_message(deadline)
        if m.get("id") == next_id:
            if "error" in m:
                raise RuntimeError(f"{method}: {m['error']}")
            return m.get("result", {})
        if m.get("method") == "Runtime.consoleAPICalled":
            parts = [str(a.get("value", a.get("description", ""))) for a in m["params"]["args"]]
            notes.append("console: " + " ".join(parts))
        elif m.get("method") == "Runtime.exceptionThrown":
            notes.append("exception: " + json.dumps(m["params"]["exceptionDetails"])[:500])

def evaluate(session, expression):
    r = call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    return r.get("result", {}).get("value")

status = 1
try:
    target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    call("Emulation.setDeviceMetricsOverride",
         {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
    call("Runtime.enable", {}, session)
    call("Page.enable", {}, session)
    call("Page.navigate", {"url": url}, session)
    check = "JSON.stringify(%s.map(w => !!document.body && document.body.hasAttribute('data-' + w + '-ok')))" % json.dumps(MARKERS)
    deadline = time.monotonic() + page_wait
    seen = []
    while time.monotonic() < deadline:
        seen = json.loads(evaluate(session, check) or "[]")
        if seen and all(seen):
            break
        time.sleep(0.2)  # polling the page, bounded by the deadline above
    print(evaluate(session, "document.documentElement.outerHTML"))
    png = call("Page.captureScreenshot", {"format": "png"}, session)["data"]
    with open(shot, "wb") as f:
        f.write(base64.b64decode(png))
    missing = [w for w, ok in zip(MARKERS, seen) if not ok] if seen else MARKERS
    if missing:
        sys.stderr.write("page self-test incomplete, missing: %s\n" % ", ".join(missing))
        for n in notes:
            sys.stderr.write("  " + n + "\n")
    else:
        status = 0
    try:
        call("Browser.close", timeout=5)
    except Exception:
        pass
except Exception as e:
    sys.stderr.write("driver error: %s\n" % e)
finally:
    try:
        browser.wait(timeout=10)
    except subprocess.TimeoutExpired:
        browser.kill()
        browser.wait()
sys.exit(status)
PY
DRIVER=$?
set -e

# ------------------------------------------------------------------ verdict
[[ -s "$SCRATCH/dom.html" ]] || die "no DOM from the browser (driver exit $DRIVER); chromium log: $(tail -n 20 "$SCRATCH/chromium.log" 2>/dev/null)"
body="$(grep -o '<body[^>]*>' "$SCRATCH/dom.html" | head -n1 || true)"
log "resulting <body>: $body"
for marker in echo chat tick sse-chat stats; do
    grep -q "data-$marker-ok=\"yes\"" <<<"$body" || die "the page did not mark data-$marker-ok (driver exit $DRIVER)"
done
# The demo is built with `deflate`: Chromium must have agreed permessage-deflate.
grep -q 'data-echo-extensions="permessage-deflate' <<<"$body" \
    || die "Chromium did not agree permessage-deflate on /echo (see data-echo-extensions in: $body)"
# The live panel: redrawn every second (at least twice by now), with a chart.
updates="$(grep -o '<section id="stats" data-updates="[0-9]*"' "$SCRATCH/dom.html" | grep -o '[0-9]*' | head -n1 || true)"
(( ${updates:-0} >= 2 )) || die "the stats panel was redrawn ${updates:-0} times, expected at least 2"
grep -q '<polyline id="stats-in"[^>]*points="[0-9]' "$SCRATCH/dom.html" || die "the stats chart has no points"
log "stats panel redrawn $updates times"
[[ -s "$SHOT" ]] || die "no screenshot at $SHOT"
kill -0 "$DEMO_PID" 2>/dev/null || die "the demo exited during the test: $(cat "$SCRATCH/demo.err")"
log "screenshot: $SHOT"
log "passed ($scheme): echo (permessage-deflate), chat, tick, chat-as-event and the live stats panel all worked in a real browser"
term_and_reap "$DEMO_PID"
DEMO_PID=""
}

check_demo http "$SHOT"
bash scripts/tls-cert.sh "$SCRATCH/tls" >/dev/null || die "could not make a certificate (openssl)"
check_demo https "${SHOT%.png}-https.png" --cert "$SCRATCH/tls/cert.pem" --key "$SCRATCH/tls/key.pem"
