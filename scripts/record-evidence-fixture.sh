#!/usr/bin/env bash
# scripts/record-evidence-fixture.sh [OUT_DIR]   (as root)
#
# Records the evidence bundle the tests import (tests/fixtures/evidence/storm-r100 by
# default): a node-like network namespace with kube-proxy-shaped iptables rules takes
# a short-connection storm that fills its conntrack table, and
# scripts/collect-node-evidence.sh, run inside that namespace, collects its evidence.
#
#   nse-cli 10.10.1.2 --veth-- nse-rtr 10.10.1.1 | 10.10.2.1 --veth-- nse-srv 10.10.2.2
#
# nse-rtr plays the node's host namespace: kube-proxy's chains for Service
# default/echo (10.96.0.10:80 -> 10.10.2.2:8080, :81 -> 10.10.2.2:9090, a black
# hole), forwarding, and one filter rule the model does not implement (a rate-limited
# LOG). The storm is oracle experiment i at 100/s: 2,000 short connections over 20 s
# (server closes first, 3 s connect timeout) with nf_conntrack_max = 1000, then 4 s of
# quiet. The collector starts before the storm with `--window 26`, so the bundle holds
# the counters before and after.
#
# Safety: only the nse-* namespaces it creates and addresses inside them; no route
# leads out of them. nf_conntrack_max is global: it is lowered for the storm only, and
# an EXIT trap restores it (and checks it) and deletes the namespaces, whatever
# happens. Every step is bounded (`timeout`, a 400 s hard limit on the whole run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/tests/fixtures/evidence/storm-r100}
BIN=${NSO_BIN:-$ROOT/target/release/netsim-oracle}
COLLECT=$ROOT/scripts/collect-node-evidence.sh
NS=(nse-cli nse-rtr nse-srv)
MAXFILE=/proc/sys/net/netfilter/nf_conntrack_max
RATE=100
SECONDS_OF_LOAD=20

die() { echo "record-evidence-fixture.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -x $BIN ]] || die "no $BIN: cargo build --release --bin netsim-oracle"
for t in ip iptables-restore nft conntrack timeout; do command -v "$t" >/dev/null || die "'$t' not found"; done
[[ -r $MAXFILE ]] || die "nf_conntrack is not loaded"
[[ ! -e $OUT ]] || die "$OUT exists; remove it first"

if [[ -z ${RECORD_CHILD:-} ]]; then
  # The whole recording under a hard limit; the child's traps clean up.
  RECORD_CHILD=1 exec timeout --kill-after=10 400 "$0" "$@"
fi

ORIG_MAX=$(cat $MAXFILE)
cleanup() {
  local ns pid
  echo "$ORIG_MAX" > $MAXFILE || true
  [[ $(cat $MAXFILE) == "$ORIG_MAX" ]] && echo "nf_conntrack_max restored to $ORIG_MAX (checked)" >&2 \
    || echo "record-evidence-fixture.sh: FAILED to restore nf_conntrack_max to $ORIG_MAX" >&2
  for ns in "${NS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  done
  sleep 0.5
  for ns in "${NS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for ns in "${NS[@]}"; do
  ip netns list | awk '{print $1}' | grep -qx "$ns" && die "namespace $ns exists (another recording?)"
done
for ns in "${NS[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add nse-c0 netns nse-cli type veth peer name nse-r1 netns nse-rtr
ip link add nse-s0 netns nse-srv type veth peer name nse-r2 netns nse-rtr
ip -n nse-cli addr add 10.10.1.2/24 dev nse-c0
ip -n nse-rtr addr add 10.10.1.1/24 dev nse-r1
ip -n nse-rtr addr add 10.10.2.1/24 dev nse-r2
ip -n nse-srv addr add 10.10.2.2/24 dev nse-s0
for l in "nse-cli nse-c0" "nse-rtr nse-r1" "nse-rtr nse-r2" "nse-srv nse-s0"; do
  read -r ns dev <<<"$l"; ip -n "$ns" link set "$dev" up
done
ip -n nse-cli route add default via 10.10.1.1
ip -n nse-srv route add default via 10.10.2.1
ip netns exec nse-rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0

# kube-proxy's iptables-mode chains for default/echo (names as kube-proxy hashes them).
ip netns exec nse-rtr iptables-restore <<'RULES'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-7ZB4JWBQFS3NR4XT - [0:0]
:KUBE-SEP-QJ2UUX4MM3K6KCQP - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-KHFWJ2CCLDUXD4NQ - [0:0]
:KUBE-SVC-PZ5SOWB7VCH4CSIE - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-7ZB4JWBQFS3NR4XT -s 10.10.2.2/32 -m comment --comment "default/echo:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-7ZB4JWBQFS3NR4XT -p tcp -m comment --comment "default/echo:http" -m tcp -j DNAT --to-destination 10.10.2.2:8080
-A KUBE-SEP-QJ2UUX4MM3K6KCQP -s 10.10.2.2/32 -m comment --comment "default/echo:probe" -j KUBE-MARK-MASQ
-A KUBE-SEP-QJ2UUX4MM3K6KCQP -p tcp -m comment --comment "default/echo:probe" -m tcp -j DNAT --to-destination 10.10.2.2:9090
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/echo:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-KHFWJ2CCLDUXD4NQ
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/echo:probe cluster IP" -m tcp --dport 81 -j KUBE-SVC-PZ5SOWB7VCH4CSIE
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-KHFWJ2CCLDUXD4NQ ! -s 10.10.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/echo:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-KHFWJ2CCLDUXD4NQ -m comment --comment "default/echo:http -> 10.10.2.2:8080" -j KUBE-SEP-7ZB4JWBQFS3NR4XT
-A KUBE-SVC-PZ5SOWB7VCH4CSIE ! -s 10.10.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/echo:probe cluster IP" -m tcp --dport 81 -j KUBE-MARK-MASQ
-A KUBE-SVC-PZ5SOWB7VCH4CSIE -m comment --comment "default/echo:probe -> 10.10.2.2:9090" -j KUBE-SEP-QJ2UUX4MM3K6KCQP
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m limit --limit 5/min -j LOG --log-prefix "ssh: "
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
RULES
ip netns exec nse-srv nft -f - <<'NFT'
table inet nse {
  chain in {
    type filter hook input priority 0; policy accept;
    tcp dport 9090 counter drop
  }
}
NFT

ip netns exec nse-srv "$BIN" server --listen 10.10.2.2:8080 --close server --duration 90s >/dev/null 2>&1 &
sleep 0.5
echo 1000 > $MAXFILE
mkdir -p "$(dirname "$OUT")"
# The collector: counters now, then everything else after the storm and the quiet.
ip netns exec nse-rtr timeout 120 "$COLLECT" --out "$OUT" --window $((SECONDS_OF_LOAD + 6)) >"$OUT.collect.log" 2>&1 &
collector=$!
sleep 1
ip netns exec nse-cli timeout 60 "$BIN" tcp-storm --dst 10.96.0.10:80 --close server --connect-timeout 3s \
  --step "load:$((RATE * SECONDS_OF_LOAD))@$RATE" --step sleep:4s > "$OUT.storm.json"
wait "$collector"
echo "$ORIG_MAX" > $MAXFILE
mv "$OUT.storm.json" "$OUT/storm-summary.json"
mv "$OUT.collect.log" "$OUT/collect.log"
{
  echo "# How this bundle was recorded (scripts/record-evidence-fixture.sh)"
  echo "rate_per_s=$RATE"
  echo "load_s=$SECONDS_OF_LOAD"
  echo "connect_timeout_s=3"
  echo "closer=server"
  echo "target=echo:http"
  echo "nf_conntrack_max=1000"
} > "$OUT/recording.txt"
echo "recorded $OUT" >&2
