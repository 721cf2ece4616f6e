#!/usr/bin/env bash
# CI's fuzz step: builds the targets on the stable toolchain (RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its -Z flags; docs/reliability.md says why that is safe here), replays
# every committed corpus input once, then fuzzes each target for FUZZ_SECONDS (default 3)
# with new inputs going to a scratch directory, so the committed corpus is unchanged.
# Any crash, hang (10 s) or out-of-memory (2 GiB) fails the step. Prints the wall time
# of the build and of the replays and runs (docs/reliability.md has the figures).
set -euo pipefail
cd "$(dirname "$0")"
secs=${FUZZ_SECONDS:-3}
cargo fmt --check   # the fuzz workspace is outside the main one
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
export RUSTC_BOOTSTRAP=1
# FUZZ_BIN_DIR: binaries already built (with the flags below) elsewhere; no build then.
if [ -n "${FUZZ_BIN_DIR:-}" ]; then
    bin=$FUZZ_BIN_DIR
else
    t0=$SECONDS
    cargo fuzz build -O -s none --debug-assertions
    echo "fuzz build: $((SECONDS - t0)) s"
    bin=target/x86_64-unknown-linux-gnu/release
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
t1=$SECONDS
mapfile -t targets < <(cargo fuzz list)
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "$scratch/artifacts-$t"
    seeds=()
    [ -d "corpus/$t" ] && seeds=("corpus/$t")
    echo "== fuzz $t: replay the corpus, then ${secs}s"
    # With a scratch directory first, libFuzzer replays every input of the corpus
    # directories, then writes what it finds to the scratch one.
    # FUZZ_SECONDS=0: replay only (libFuzzer reads -max_total_time=0 as "no limit").
    if [ "$secs" = 0 ]; then limit=(-runs=0); else limit=(-max_total_time="$secs"); fi
    "$bin/$t" "$scratch/$t" "${seeds[@]}" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$scratch/artifacts-$t/" 2>&1 | grep -aE '^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|panicked' || true
    if [ -n "$(ls -A "$scratch/artifacts-$t")" ]; then
        echo "fuzz $t: crash, hang or out-of-memory input:" "$scratch/artifacts-$t"/*
        exit 1
    fi
done
echo "fuzz replays and runs (${#targets[@]} targets): $((SECONDS - t1)) s"
