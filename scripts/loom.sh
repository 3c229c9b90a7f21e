#!/usr/bin/env bash
# Model-checks the write path's lock protocol with loom: the library is
# built with `--cfg loom` (src/sync.rs swaps parking_lot's locks for loom's)
# and the models (the `loom.rs` files beside the code they check) run as
# unit tests, each exploring every interleaving of a few threads.
#
#   scripts/loom.sh              every model
#   scripts/loom.sh FILTER       the models whose name contains FILTER
#   LOOM_MAX_PREEMPTIONS=2 ...   a smaller bound, for a quick run
#
# Features: tls and deflate, so the TLS session's and the compressor's
# models run too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# -Dwarnings: the loom build of our crate is held to the same lints
# (cargo caps them for dependencies).
export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom -Dwarnings"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
exec cargo test --release --lib --features tls,deflate -- "${1:-loom}" --test-threads=2
