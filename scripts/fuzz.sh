#!/usr/bin/env bash
# Fuzzes wsportal's parsers: every target in fuzz/ for SECONDS each (default
# 60), then fails if any crashed. `--replay` only runs the committed corpus
# (what CI does, in seconds).
#
#   scripts/fuzz.sh [SECONDS]     fuzz each target, growing fuzz/corpus/TARGET
#   scripts/fuzz.sh --replay      run every corpus file once, no fuzzing
#   scripts/fuzz.sh --merge       add to fuzz/corpus/TARGET the inputs of past
#                                 runs (target/fuzz/corpus) that reach new code
#   TARGETS="frame_reader route" scripts/fuzz.sh 30
#
# Engine: libFuzzer (crate libfuzzer-sys) on the stable toolchain. The flags
# below are the ones `cargo fuzz build --sanitizer none` passes (coverage
# counters, compare tracing, debug assertions); none needs nightly, so we set
# them ourselves and CI need not install cargo-fuzz (fuzz/ has the layout
# cargo-fuzz expects, so `cargo fuzz run TARGET --sanitizer none` should work
# too; not tried here).
# No AddressSanitizer: it needs nightly's -Zsanitizer, and the library is
# `forbid(unsafe_code)`, so what it would add is covered by the allocation
# checks in the targets. cargo-afl (not tried) was the other candidate: it
# needs AFL++'s compiler plugins built per toolchain (`cargo afl config
# --build`), for the same kind of coverage guidance.
#
# Crashes land in fuzz/artifacts/TARGET/ (not committed); a crash becomes a
# regression test under tests/ or beside the code, and its input joins the
# corpus as fuzz/corpus/TARGET/regression-WHAT.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_EACH=60
REPLAY=0
MERGE=0
case "${1:-}" in
    --replay) REPLAY=1 ;;
    --merge) MERGE=1 ;;
    "") ;;
    *) SECONDS_EACH=$1 ;;
esac
ALL="frame_reader frame_diff request_head client_response sse_event route"
TARGETS="${TARGETS:-$ALL}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$PWD/target/fuzz"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

echo "fuzz: building targets ($TRIPLE, release, stable flags)"
# --target keeps RUSTFLAGS off build scripts; --locked: fuzz/Cargo.lock is committed.
cargo build --manifest-path fuzz/Cargo.toml --release --locked --target "$TRIPLE" --bins
BIN="$CARGO_TARGET_DIR/$TRIPLE/release"

failed=()
for t in $TARGETS; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    if (( MERGE )); then
        before=$(find "$corpus" -type f | wc -l)
        "$BIN/$t" -merge=1 -max_len=4096 "$corpus" "target/fuzz/corpus/$t" 2>"target/fuzz/$t.log" \
            || { tail -n 20 "target/fuzz/$t.log"; failed+=("$t"); continue; }
        echo "fuzz: $t: corpus $before -> $(find "$corpus" -type f | wc -l) inputs"
        continue
    fi
    if (( REPLAY )); then
        n=$(find "$corpus" -type f | wc -l)
        echo "fuzz: $t: replaying $n corpus inputs"
        # -runs=0 runs each input once; -max_len covers the longest file.
        if ! "$BIN/$t" -runs=0 -max_len=1048576 "$corpus" 2>"target/fuzz/$t.log"; then
            tail -n 40 "target/fuzz/$t.log"
            failed+=("$t")
        else
            grep -E "^(INFO: seed corpus|#[0-9]+\s+(INITED|DONE))" "target/fuzz/$t.log" | tail -n 2 || true
        fi
        continue
    fi
    # A scratch corpus dir first, so the committed one only grows by hand
    # (merge), not by every run.
    work="target/fuzz/corpus/$t"
    mkdir -p "$work"
    echo "fuzz: $t for ${SECONDS_EACH}s"
    if ! "$BIN/$t" -max_total_time="$SECONDS_EACH" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "$work" "$corpus" \
        2>"target/fuzz/$t.log"; then
        tail -n 60 "target/fuzz/$t.log"
        failed+=("$t")
        continue
    fi
    # The last status line: execs, coverage (cov: edges, ft: features), corpus size.
    grep -E "^#[0-9]+" "target/fuzz/$t.log" | tail -n 1
    grep -E "stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "target/fuzz/$t.log" | tr '\n' ' '
    echo
done

if (( ${#failed[@]} )); then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz: all targets passed"
