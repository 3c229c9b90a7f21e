#!/usr/bin/env bash
# Benchmark wsportal against peer servers: builds everything in release,
# runs every scenario against every server and prints markdown tables
# (also saved to target/bench/results.md). See bench/README.md.
#
#   bash scripts/bench.sh            # full run, well under 15 minutes
#   QUICK=1 bash scripts/bench.sh    # about 2 minutes
#   SERVERS=tokio-tungstenite,wsportal SCENARIOS=echo64 bash scripts/bench.sh
#   SCENARIOS=stalled bash scripts/bench.sh      # issue 11's stalled-members table
#   SCENARIOS=tls bash scripts/bench.sh          # the wss-* rows (TLS, issue 16)
#   BASELINE=main bash scripts/bench.sh          # adds a wsportal-baseline row: the
#                                                # examples built from that commit
#   SCENARIOS=redis bash scripts/bench.sh        # issue 14: a room over 3 instances + Redis
set -euo pipefail
cd "$(dirname "$0")/.."

# 10,000 idle connections need more than 1024 descriptors (loadgen and servers).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "warning: open-file limit is $(ulimit -n); the idle scenario may fail (set IDLE_CONNS lower)" >&2
fi
command -v taskset >/dev/null || { echo "taskset not found (Debian package util-linux)" >&2; exit 1; }

echo "== building the harness (bench/) in release" >&2
cargo build --release --quiet -p wsportal-bench --bins

# The deflate group (SCENARIOS=deflate or all) runs wsportal's echo and chat
# built with `--features deflate`, copied to target/bench/deflate/; built
# first, so that target/release/examples/ ends with the plain build.
case ",${SCENARIOS:-}," in
  *,all,*|*deflate*)
    echo "== building wsportal's examples with --features deflate" >&2
    rm -rf target/bench/deflate
    if cargo build --release --quiet --features deflate --example echo --example chat; then
      mkdir -p target/bench/deflate
      cp target/release/examples/echo target/release/examples/chat target/bench/deflate/
    else
      echo "warning: the deflate build failed; its wsportal rows are skipped" >&2
    fi ;;
esac

# The `tls` group (wss-* scenarios): wsportal's echo example built with
# `--features tls` and copied to target/bench/tls/echo, before the plain
# build below puts the plain one back in target/release/examples (the plain
# rows keep using it); and a fresh test certificate in target/bench/tls/.
case ",${SCENARIOS:-}," in
  *,all,*|*,tls,*|*,wss-*)
    echo "== building wsportal's echo example with --features tls; test certificate" >&2
    mkdir -p target/bench/tls
    rm -f target/bench/tls/echo
    if cargo build --release --quiet --example echo --features tls; then
      cp target/release/examples/echo target/bench/tls/echo
    else
      echo "warning: the tls build failed; wsportal's wss rows are skipped" >&2
    fi
    bash scripts/tls-cert.sh target/bench/tls >/dev/null
    ;;
esac

echo "== building wsportal's examples in release" >&2
if ! cargo build --release --quiet --examples; then
  export WSPORTAL_SKIP="cargo build --release --examples failed"
  echo "warning: $WSPORTAL_SKIP; the wsportal row is skipped" >&2
fi

# Optional extra peers: Python websockets and Node ws. A failed install only
# drops their rows. EXTRA_PEERS=0 skips them.
if [ "${EXTRA_PEERS:-1}" = 1 ]; then
  if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import websockets' 2>/dev/null; then
    echo "== installing Python websockets into bench/.venv" >&2
    { python3 -m venv bench/.venv && bench/.venv/bin/pip install --quiet -r bench/peers/requirements.txt; } \
      || { echo "warning: Python websockets unavailable; its row is skipped" >&2; rm -rf bench/.venv; }
  fi
  if [ ! -d bench/node/node_modules/ws ] || [ ! -d bench/node/node_modules/bufferutil ]; then
    echo "== installing Node ws into bench/node" >&2
    (cd bench/node && npm ci --silent --no-audit --no-fund) \
      || echo "warning: Node ws unavailable; its row is skipped" >&2
  fi
fi

# The `redis` group (issue 14, opt-in): the chat example with the `redis`
# feature, in a target dir of its own (the plain rows keep the plain build),
# and the Socket.IO + Redis adapter peer (a failed install drops its rows).
case ",${SCENARIOS:-}," in
  *,all,*|*,redis*)
    echo "== building wsportal's chat example with --features redis (target/bench/redis)" >&2
    cargo build --release --quiet --features redis --example chat --target-dir target/bench/redis \
      || echo "warning: the redis build failed; the wsportal rows of the redis group are skipped" >&2
    if [ "${EXTRA_PEERS:-1}" = 1 ] && [ ! -d bench/socketio/node_modules/@socket.io/redis-adapter ]; then
      echo "== installing Socket.IO and its Redis adapter into bench/socketio" >&2
      (cd bench/socketio && npm ci --silent --no-audit --no-fund) \
        || echo "warning: Socket.IO unavailable; its rows are skipped" >&2
    fi
    ;;
esac

# BASELINE=REV: wsportal's echo and chat examples as of commit REV, built
# from a clean export in their own target dir (never mixed with this tree's
# binaries), become the `wsportal-baseline` row: before/after in one run.
# With wss-* scenarios, also its echo built with `--features tls` (echo-tls).
if [ -n "${BASELINE:-}" ]; then
  rev=$(git rev-parse --verify "${BASELINE}^{commit}")
  base=target/bench/baseline/${rev:0:12}
  if [ ! -x "$base/bin/echo" ] || [ ! -x "$base/bin/chat" ]; then
    echo "== building wsportal's examples as of $BASELINE (${rev:0:12}) in $base" >&2
    rm -rf "$base/src" "$base/bin"
    mkdir -p "$base/src" "$base/bin"
    git archive "$rev" | tar -x -C "$base/src"
    (cd "$base/src" && cargo build --release --quiet --examples --target-dir ../target)
    cp "$base/target/release/examples/echo" "$base/target/release/examples/chat" "$base/bin/"
  fi
  case ",${SCENARIOS:-}," in
    *,all,*|*,tls,*|*,wss-*)
      if [ ! -x "$base/bin/echo-tls" ]; then
        echo "== building wsportal's echo as of $BASELINE with --features tls" >&2
        (cd "$base/src" && cargo build --release --quiet --example echo --features tls --target-dir ../target) \
          && cp "$base/target/release/examples/echo" "$base/bin/echo-tls" \
          || echo "warning: the baseline's tls build failed; its wss rows are skipped" >&2
      fi ;;
  esac
  export WSPORTAL_BASELINE_DIR="$PWD/$base/bin"
fi

# Hard stop as a safety net; the runner bounds every step itself.
exec timeout --kill-after=10 "${BENCH_TIMEOUT:-900}" target/release/bench-runner
