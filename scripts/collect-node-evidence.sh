#!/usr/bin/env bash
# scripts/collect-node-evidence.sh [--out DIR] [--tar] [--max-entries N] [--window SECONDS]
#
# Collects what operators look at when conntrack hurts on a Kubernetes node, into one
# directory (or, with --tar, one .tar.gz), for `k8s-netsim import`:
#
#   uname-r.txt, nproc.txt, meminfo.txt, hostname.txt    kernel release, CPUs, memory
#   conntrack-S.txt, nf_conntrack-stat.txt                the conntrack counters
#   sysctl.txt                                            net.netfilter.*, net.ipv4.*, net.core.*
#   dmesg-conntrack.txt                                   "table full", ratelimit lines
#   iptables-save.txt, nft-ruleset.txt, ipvsadm-Ln.txt    the node's rules
#   conntrack-L.txt (+ .stderr)                           the table, at most --max-entries lines
#   kube-proxy-config.yaml, kube-proxy.log                where they can be found
#   meta.txt, skipped.txt                                 what was collected, what was not and why
#
# Read-only: it changes no setting, rule or entry. (Listing the table with `conntrack
# -L` lets the kernel reap entries that had already expired, as any listing does.)
# Every command runs under `timeout`; a missing tool or an unreadable file is listed
# in skipped.txt and the rest is collected anyway. --window SECONDS snapshots the
# counters, waits (at most 3600 s), and collects the rest, so that `import` can give
# the counters over that window. Run it as root on the node (or inside a network
# namespace with `ip netns exec NS`, which is how the project records its test data).
set -uo pipefail

VERSION=1
OUT=""
TAR=0
MAX_ENTRIES=200000
WINDOW=0
T=30   # seconds any one command may take

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --tar) TAR=1; shift ;;
    --max-entries) MAX_ENTRIES=${2:?--max-entries needs a number}; shift 2 ;;
    --window) WINDOW=${2:?--window needs seconds}; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "collect-node-evidence.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
[[ $MAX_ENTRIES =~ ^[0-9]+$ && $MAX_ENTRIES -ge 1 ]] || { echo "--max-entries must be a positive number" >&2; exit 2; }
[[ $WINDOW =~ ^[0-9]+$ && $WINDOW -le 3600 ]] || { echo "--window must be 0..3600 seconds" >&2; exit 2; }

HOST=$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname 2>/dev/null || echo node)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
[[ -n $OUT ]] || OUT="node-evidence-$HOST-$STAMP"
if [[ -e $OUT ]]; then echo "collect-node-evidence.sh: $OUT exists; choose another --out" >&2; exit 2; fi
mkdir -p "$OUT" || exit 2

skip() { echo "$1: $2" >> "$OUT/skipped.txt"; }
have() { command -v "$1" >/dev/null 2>&1; }

# run NAME FILE CMD...: CMD's stdout into FILE; a missing tool, a failure or an empty
# output is recorded in skipped.txt (with the first line of its stderr).
run() {
  local name=$1 file=$2; shift 2
  if ! have "$1"; then skip "$name" "'$1' is not installed"; return 1; fi
  local err; err=$(mktemp)
  if timeout "$T" "$@" > "$OUT/$file" 2>"$err"; then
    if [[ ! -s $OUT/$file ]]; then
      rm -f "$OUT/$file"; skip "$name" "'$*' printed nothing${err:+ ($(head -c 200 "$err" | head -n1))}"
      rm -f "$err"; return 1
    fi
    rm -f "$err"; return 0
  fi
  local rc=$?
  rm -f "$OUT/$file"
  skip "$name" "'$*' failed (exit $rc): $(head -c 200 "$err" | head -n1)"
  rm -f "$err"; return 1
}

# copy NAME FILE SRC: a file of /proc or the host.
copy() {
  if [[ -r $3 ]]; then cat "$3" > "$OUT/$2" 2>/dev/null || skip "$1" "could not read $3"
  else skip "$1" "$3 is not readable here"; fi
}

counters() {  # counters SUFFIX
  run "conntrack -S" "conntrack-S$1.txt" conntrack -S
  copy "/proc/net/stat/nf_conntrack" "nf_conntrack-stat$1.txt" /proc/net/stat/nf_conntrack
}

if [[ $WINDOW -gt 0 ]]; then
  counters .before
  sleep "$WINDOW"
fi
counters ""

echo "$HOST" > "$OUT/hostname.txt"
run "uname -r" uname-r.txt uname -r
run "nproc" nproc.txt nproc
copy "/proc/meminfo" meminfo.txt /proc/meminfo
run "sysctl" sysctl.txt sysctl net.netfilter net.ipv4 net.core

if have dmesg; then
  if timeout "$T" dmesg > "$OUT/.dmesg" 2>/dev/null; then
    grep -E 'nf_conntrack|conntrack|net_ratelimit' "$OUT/.dmesg" > "$OUT/dmesg-conntrack.txt" || true
  else
    skip "dmesg" "not readable (dmesg_restrict? run as root)"
  fi
  rm -f "$OUT/.dmesg"
else
  skip "dmesg" "'dmesg' is not installed"
fi

run "iptables-save" iptables-save.txt iptables-save
run "nft list ruleset" nft-ruleset.txt nft list ruleset
run "ipvsadm -Ln" ipvsadm-Ln.txt ipvsadm -Ln

# The table, bounded: at most MAX_ENTRIES lines; the cap is reported in the file.
if have conntrack; then
  total=$(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo "?")
  timeout "$T" conntrack -L 2>"$OUT/conntrack-L.stderr" | head -n "$MAX_ENTRIES" > "$OUT/conntrack-L.txt"
  lines=$(wc -l < "$OUT/conntrack-L.txt")
  if [[ $lines -ge $MAX_ENTRIES ]]; then
    echo "# truncated at $MAX_ENTRIES lines (--max-entries); nf_conntrack_count was $total" >> "$OUT/conntrack-L.txt"
    skip "conntrack -L" "truncated at $MAX_ENTRIES of $total entries (--max-entries)"
  fi
  [[ -s $OUT/conntrack-L.stderr ]] || rm -f "$OUT/conntrack-L.stderr"
else
  skip "conntrack -L" "'conntrack' is not installed (conntrack-tools)"
fi

# kube-proxy: its configuration and log, where this node keeps them.
found_cfg=0
for f in /var/lib/kube-proxy/config.conf /var/lib/kube-proxy/config.yaml /etc/kubernetes/kube-proxy-config.yaml; do
  if [[ -r $f ]]; then cp "$f" "$OUT/kube-proxy-config.yaml"; found_cfg=1; break; fi
done
if [[ $found_cfg -eq 0 ]]; then
  if have kubectl && timeout 10 kubectl -n kube-system get configmap kube-proxy -o 'jsonpath={.data.config\.conf}' > "$OUT/kube-proxy-config.yaml" 2>/dev/null && [[ -s $OUT/kube-proxy-config.yaml ]]; then
    :
  else
    rm -f "$OUT/kube-proxy-config.yaml"
    skip "kube-proxy config" "not found in /var/lib/kube-proxy or /etc/kubernetes, nor through kubectl"
  fi
fi
if [[ -r /var/log/kube-proxy.log ]]; then
  tail -n 5000 /var/log/kube-proxy.log > "$OUT/kube-proxy.log"
elif have journalctl && timeout "$T" journalctl -u kube-proxy --no-pager -n 5000 2>/dev/null | grep -v -- '-- No entries --' > "$OUT/kube-proxy.log" && [[ -s $OUT/kube-proxy.log ]]; then
  :
elif have crictl && id=$(timeout 10 crictl ps --name kube-proxy -q 2>/dev/null | head -n1) && [[ -n $id ]]; then
  timeout "$T" crictl logs --tail 5000 "$id" > "$OUT/kube-proxy.log" 2>&1 || skip "kube-proxy log" "crictl logs failed"
else
  rm -f "$OUT/kube-proxy.log"
  skip "kube-proxy log" "not in /var/log/kube-proxy.log, journald or crictl"
fi

{
  echo "script_version=$VERSION"
  echo "collected_at=$STAMP"
  echo "hostname=$HOST"
  echo "window_s=$WINDOW"
  echo "max_entries=$MAX_ENTRIES"
} > "$OUT/meta.txt"
touch "$OUT/skipped.txt"

if [[ -s $OUT/skipped.txt ]]; then
  echo "skipped (listed in skipped.txt):"; sed 's/^/  /' "$OUT/skipped.txt"
fi
if [[ $TAR -eq 1 ]]; then
  tar -czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")" && rm -rf "$OUT"
  echo "wrote $OUT.tar.gz"
else
  echo "wrote $OUT/"
fi
