#!/usr/bin/env bash
# Runs a fuzzing campaign: each target for SECONDS (default 300) of wall time, at most
# JOBS (default 2) at once, new inputs added to corpus/<target>/, crashes, hangs and
# out-of-memory inputs saved under artifacts/<target>/, and libFuzzer's final figures in
# logs/<target>.log. Build first (docs/reliability.md):
#   RUSTC_BOOTSTRAP=1 cargo fuzz build -O -s none --debug-assertions
# Usage: [FUZZ_ARGS='-max_len=1024 ...'] fuzz/campaign.sh [SECONDS] [JOBS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
jobs=${2:-2}
shift $(($# < 2 ? $# : 2))
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(scenario_yaml scenario_json overrides units iptables_save sweep_shard sim_scenario)
fi
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p logs
run() {
    local t=$1
    mkdir -p "corpus/$t" "artifacts/$t"
    # -timeout: an input taking 10 s is a hang; -rss_limit_mb: 2 GiB is out of memory.
    "$bin/$t" "corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" ${FUZZ_ARGS:-} >"logs/$t.log" 2>&1 || true
    echo "$t: $(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}') execs," \
        "$(grep -E 'DONE|Done' "logs/$t.log" | tail -1)," \
        "$(find "artifacts/$t" -type f | wc -l) artifacts"
}
for t in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= jobs)); do sleep 1; done
    run "$t" &
done
wait
