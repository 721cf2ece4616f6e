#!/usr/bin/env bash
# Runs a fuzzing campaign: each target for SECONDS (default 300) of wall time, at most
# JOBS (default 1) at once, new inputs added to corpus/<target>/, crashes, hangs and
# out-of-memory inputs saved under artifacts/<target>/. Each run's libFuzzer output goes
# to logs/<target>-<UTC time>.log and one line of figures (execs, wall time, coverage,
# features, corpus, peak RSS, artifacts) is appended to logs/campaign.log, so runs of
# the same target add up. Build first (docs/reliability.md):
#   RUSTC_BOOTSTRAP=1 cargo fuzz build -O -s none --debug-assertions
# Usage: [FUZZ_ARGS='-max_len=1024 ...'] fuzz/campaign.sh [SECONDS] [JOBS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
jobs=${2:-1}
shift $(($# < 2 ? $# : 2))
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(scenario_yaml scenario_json overrides units iptables_save sweep_shard sim_scenario
        evidence_sysctl evidence_ctstat evidence_ctlist evidence_rules evidence_import)
fi
bin=${FUZZ_BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
mkdir -p logs
run() {
    local t=$1 log start end
    mkdir -p "corpus/$t" "artifacts/$t"
    log="logs/$t-$(date -u +%Y%m%dT%H%M%SZ).log"
    start=$(date +%s)
    # -timeout: an input taking 10 s is a hang; -rss_limit_mb: 2 GiB is out of memory.
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$bin/$t" "corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" ${FUZZ_ARGS:-} >"$log" 2>&1 || true
    end=$(date +%s)
    local last
    # The last status line (DONE, or the last pulse of an interrupted run).
    last=$(grep -aE '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 || true)
    printf '%s %s execs=%s wall_s=%s cov=%s ft=%s corp=%s peak_rss_mb=%s artifacts=%s args=%s\n' \
        "$(date -u +%FT%TZ)" "$t" \
        "$(grep -aE '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)" \
        "$((end - start))" \
        "$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")" \
        "$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")" \
        "$(sed -nE 's/.*corp: ([^ ]+).*/\1/p' <<<"$last")" \
        "$(grep -aE '^stat::peak_rss_mb' "$log" | awk '{print $2}' || true)" \
        "$(find "artifacts/$t" -type f | wc -l)" "'${FUZZ_ARGS:-}'" | tee -a logs/campaign.log
}
for t in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= jobs)); do sleep 1; done
    run "$t" &
done
wait
