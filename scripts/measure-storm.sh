#!/usr/bin/env bash
# Measures the end-to-end storm the way docs/performance.md reports it: for each
# simulated duration, wall time, events, events per wall second, x real time and peak
# RSS of `k8s-netsim run`. Usage:
#   scripts/measure-storm.sh [SCENARIO] [DURATION...]
#   scripts/measure-storm.sh scenarios/flash-sale.yaml 120s 600s
# Prints one markdown table row per run. Say in any table you paste whether the machine
# was shared: run-to-run drift on a busy 2-vCPU VM reaches 2x, so compare binaries in
# interleaved runs (BIN=... to measure another build).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/flash-sale.yaml}
shift || true
durations=("$@")
[ ${#durations[@]} -gt 0 ] || durations=(120s)
bin=${BIN:-target/release/k8s-netsim}
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin k8s-netsim
fi
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian: apt-get install time)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| scenario | simulated | wall s | user s | events | M events/s (user) | x real time (wall) | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|"
for d in "${durations[@]}"; do
    /usr/bin/time -f '%e %U %M' -o "$tmp/time" "$bin" run "$scenario" --set "duration=$d" --json >"$tmp/report.json"
    read -r wall user rss_kb <"$tmp/time"
    python3 - "$tmp/report.json" "$scenario" "$d" "$wall" "$user" "$rss_kb" <<'PY'
import json, sys
report, scenario, d, wall, user, rss_kb = sys.argv[1:]
r = json.load(open(report))
events = r["engine"]["events"]
sim = float(r["duration_s"])
wall, user = float(wall), float(user)
print(f"| {scenario} | {d} | {wall:.1f} | {user:.1f} | {events:,} | {events / user / 1e6:.2f} | "
      f"{sim / wall:.2f}x | {int(rss_kb) / 1024:.0f} |")
PY
done
