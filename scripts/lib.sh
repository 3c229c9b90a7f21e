# shellcheck shell=bash
# Helpers shared by the scripts in scripts/. Each script sources it with
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# and then sets LOG_NAME (the tag in its log lines). Sourcing it cds to the
# repository root and sets:
#   ROOT    the repository root
#   WORK    $ROOT/.ci-work, where the scripts keep venvs, logs and reports
#   VENV    $WORK/venv, the Python venv shared by the scripts
#   PYTHON  python used to create the venv ($PYTHON, default python3)
#   T0      $SECONDS when the script started, for the times in log lines

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
WORK="$ROOT/.ci-work"
VENV="$WORK/venv"
PYTHON="${PYTHON:-python3}"
T0=$SECONDS

# ---------------------------------------------------------------- logging
# log MSG...: "[LOG_NAME   12s] MSG" on stdout, the time counted from T0;
# with LOG_CLOCK=0 just "[LOG_NAME] MSG".
log() {
    if [[ "${LOG_CLOCK:-1}" == 0 ]]; then
        printf '[%s] %s\n' "$LOG_NAME" "$*"
    else
        printf '[%s %4ds] %s\n' "$LOG_NAME" "$((SECONDS - T0))" "$*"
    fi
}
# die MSG...: log "FAILED: MSG" on stderr and exit 1.
die() {
    log "FAILED: $*" >&2
    exit 1
}

# show_log FILE WHAT: the last 40 lines of FILE (if not empty) on stderr,
# between "---- last 40 lines of WHAT (FILE) ----" and "---- end of WHAT ----".
show_log() {
    if [[ -s "$1" ]]; then
        echo "---- last 40 lines of $2 ($1) ----" >&2
        tail -n 40 "$1" >&2 || true
        echo "---- end of $2 ----" >&2
    fi
}

# ---------------------------------------------------------------- processes
# run_bounded SECS CMD...: run CMD under `timeout -k 10 SECS`, in the
# background + wait, and return its status (124/137 on timeout). Foreground
# work goes through here so that a signal to the script (e.g. CI's own step
# timeout) can stop it: `timeout` puts its command in a process group of its
# own, out of reach of a signal sent to ours. CHILD_PID is the running one.
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
# stop_child: stop the command run_bounded is running, if any.
stop_child() {
    term_and_reap "$CHILD_PID"
    CHILD_PID=""
}

# term_and_reap PID: SIGTERM the background child PID and wait for it
# (nothing when PID is empty).
term_and_reap() {
    if [[ -n "$1" ]]; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}

# term_then_kill PID [WHAT]: if the background child PID is running, SIGTERM
# it, give it 5 s, SIGKILL it if it is still there (logged as "WHAT (pid PID)
# ignored SIGTERM for 5s, sending SIGKILL" when WHAT is given) and reap it.
term_then_kill() {
    local pid=$1 what=${2:-}
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            if [[ -n "$what" ]]; then
                log "$what (pid $pid) ignored SIGTERM for 5s, sending SIGKILL"
            fi
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
}

# trap_cleanup: run the script's `cleanup` function on exit, and on SIGTERM,
# SIGINT or SIGHUP log "interrupted by SIG...", run it and exit 143/130/129.
trap_cleanup() {
    trap cleanup EXIT
    trap 'log "interrupted by SIGTERM"; cleanup; exit 143' TERM
    trap 'log "interrupted by SIGINT"; cleanup; exit 130' INT
    trap 'log "interrupted by SIGHUP"; cleanup; exit 129' HUP
}

# wait_listening PID LOGFILE SECS: poll LOGFILE every 0.1 s, for at most SECS,
# for the first line containing `listening on` (written by the background
# child PID). When it comes, sets LISTEN_LINE to it and ADDR to the HOST:PORT
# after `listening on` (an optional ws:// or http:// before HOST is skipped;
# ADDR may be empty or partial if the line has another shape) and returns 0.
# Returns 1 (ADDR empty) if SECS pass first, and 2 if PID exits first; PID is
# then reaped and its exit status is in LISTEN_STATUS.
# shellcheck disable=SC2034 # ADDR, LISTEN_LINE and LISTEN_STATUS are its outputs
wait_listening() {
    local pid=$1 file=$2 deadline=$((SECONDS + $3))
    ADDR=""
    LISTEN_LINE=""
    while (( SECONDS < deadline )); do
        LISTEN_LINE="$(grep -m1 'listening on' "$file" 2>/dev/null || true)"
        if [[ -n "$LISTEN_LINE" ]]; then
            ADDR="$(sed -n 's#.*listening on[: ]*\(ws://\|http://\)\{0,1\}\([^ /]*\).*#\2#p' <<<"$LISTEN_LINE")"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            LISTEN_STATUS=0
            wait "$pid" || LISTEN_STATUS=$?
            return 2
        fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- python
# venv_has PKG VERSION: true if $VENV has exactly VERSION of PKG installed.
venv_has() {
    local have
    have="$("$VENV/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true)"
    [[ "$have" == "$2" ]]
}

# ensure_venv: make/reuse $VENV with kosoku==$KOSOKU_VERSION (a Python 3
# reimplementation of the Autobahn testsuite) and the packages in
# $AUTOBAHN_PIP_EXTRA, check that `kosoku --help` runs and log "kosoku
# VERSION ready in VENV". Dies on failure.
ensure_venv() {
    mkdir -p "$WORK"
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV"
        run_bounded 300 "$PYTHON" -m venv "$VENV" </dev/null || die "could not create venv at $VENV with $PYTHON (is python3-venv installed?)"
    fi
    if ! venv_has kosoku "$KOSOKU_VERSION"; then
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
    log "kosoku $KOSOKU_VERSION ready in $VENV"
}

# ---------------------------------------------------------------- cargo
# build_example NAME MISSING_MSG: `cargo build --release --example NAME`
# (with `--features $AUTOBAHN_FEATURES` when that is set),
# bounded by $BUILD_TIMEOUT, and set BIN to the built binary. Dies with
# MISSING_MSG if `cargo metadata` shows the crate has no such example (the
# check needs $VENV's python; if it cannot run, the build goes ahead).
build_example() {
    local example=$1 missing=$2 has_example b0
    command -v cargo >/dev/null || die "cargo not found on PATH"
    has_example="$(timeout 300 cargo metadata --no-deps --format-version 1 </dev/null 2>/dev/null \
        | "$VENV/bin/python" -c '
import json, sys
name = sys.argv[1]
meta = json.load(sys.stdin)
print(any(t["name"] == name and "example" in t["kind"] for p in meta["packages"] for t in p["targets"]))
' "$example" 2>/dev/null || echo unknown)"
    if [[ "$has_example" == "False" ]]; then
        die "$missing"
    fi
    local features=()
    [[ -n "${AUTOBAHN_FEATURES:-}" ]] && features=(--features "$AUTOBAHN_FEATURES")
    log "cargo build --release --example $example ${features[*]}"
    b0=$SECONDS
    run_bounded "$BUILD_TIMEOUT" cargo build --release --example "$example" "${features[@]}" </dev/null \
        || die "cargo build --release --example $example ${features[*]} failed (or exceeded ${BUILD_TIMEOUT}s)"
    log "build took $((SECONDS - b0))s"
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/$example"
    [[ -x "$BIN" ]] || die "built example not found at $BIN"
}

# program_argv KNOB TAG EXAMPLE MISSING_MSG: set PROGRAM_ARGV to the program
# to run, to which the caller appends arguments: the shell command in $KNOB
# when that is set (through `bash -c "exec $KNOB \"\$@\"" TAG`; no cargo
# build), else the example EXAMPLE, built by build_example.
# shellcheck disable=SC2034 # PROGRAM_ARGV is its output
program_argv() {
    local knob=$1 tag=$2 example=$3 missing=$4
    if [[ -n "${!knob:-}" ]]; then
        log "$knob override: ${!knob} (no cargo build)"
        PROGRAM_ARGV=(bash -c "exec ${!knob} \"\$@\"" "$tag")
    else
        build_example "$example" "$missing"
        PROGRAM_ARGV=("$BIN")
    fi
}
