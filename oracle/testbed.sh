#!/usr/bin/env bash
# oracle/testbed.sh up|down|status
#
# The three-namespace topology of docs/kernel-semantics.md §Measurements on 6.18 (see also
# docs/oracle.md, "Topology"), with every name prefixed `nso-` and every address inside
# 10.10.x.x / 10.96.x.x:
#
#   nso-cli (10.10.1.2) --veth-- nso-rtr (10.10.1.1 | 10.10.2.1) --veth-- nso-srv (10.10.2.2)
#
# nso-rtr plays the node's host namespace: it forwards, and its nat table holds
# kube-proxy-like DNAT rules (which also enables conntrack there):
#   10.96.0.10:80/tcp -> 10.10.2.2:8080 (backend)
#   10.96.0.10:81/tcp -> 10.10.2.2:9090 (black hole: dropped by nft in nso-srv)
# nso-srv drops tcp dport 9090 and udp dports 9000-9999 with counters (unanswered
# flows). Links are created directly inside the namespaces: nothing is added to
# the initial namespace, and no route leads outside the three namespaces.
#
# Idempotent: `up` tears down any previous instance first; `down` kills only the
# processes found inside nso-* namespaces (by PID) and deletes the namespaces.
set -euo pipefail

NS_CLI=nso-cli
NS_RTR=nso-rtr
NS_SRV=nso-srv
ALL_NS=("$NS_CLI" "$NS_RTR" "$NS_SRV")

die() { echo "testbed.sh: $*" >&2; exit 1; }

preflight() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, iptables, sysctl)"
  command -v ip >/dev/null || die "iproute2 'ip' not found"
  ip netns list >/dev/null 2>&1 || die "'ip netns' is unavailable on this system"
  for t in iptables nft conntrack sysctl; do
    command -v "$t" >/dev/null || die "'$t' not found (apt-get install -y conntrack iptables nftables iproute2 procps)"
  done
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

down() {
  local ns pid
  for ns in "${ALL_NS[@]}"; do
    ns_exists "$ns" || continue
    # Kill only processes living in our namespaces, each by its PID.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill "$pid" 2>/dev/null || true
    done
  done
  for ns in "${ALL_NS[@]}"; do
    ns_exists "$ns" || continue
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && break
      sleep 0.2
    done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -9 "$pid" 2>/dev/null || true
    done
    ip netns delete "$ns" 2>/dev/null || true
  done
}

up() {
  down
  local ns
  for ns in "${ALL_NS[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  # veth pairs created with both ends directly inside the target namespaces.
  ip link add nso-c0 netns "$NS_CLI" type veth peer name nso-r1 netns "$NS_RTR"
  ip link add nso-s0 netns "$NS_SRV" type veth peer name nso-r2 netns "$NS_RTR"
  ip -n "$NS_CLI" addr add 10.10.1.2/24 dev nso-c0
  ip -n "$NS_RTR" addr add 10.10.1.1/24 dev nso-r1
  ip -n "$NS_RTR" addr add 10.10.2.1/24 dev nso-r2
  ip -n "$NS_SRV" addr add 10.10.2.2/24 dev nso-s0
  ip -n "$NS_CLI" link set nso-c0 up
  ip -n "$NS_RTR" link set nso-r1 up
  ip -n "$NS_RTR" link set nso-r2 up
  ip -n "$NS_SRV" link set nso-s0 up
  ip -n "$NS_CLI" route add default via 10.10.1.1
  ip -n "$NS_SRV" route add default via 10.10.2.1
  ip netns exec "$NS_RTR" sysctl -qw net.ipv4.ip_forward=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  # kube-proxy-like Service rules (nat table => conntrack enabled in nso-rtr).
  ip netns exec "$NS_RTR" iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 \
    -j DNAT --to-destination 10.10.2.2:8080
  ip netns exec "$NS_RTR" iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p tcp --dport 81 \
    -j DNAT --to-destination 10.10.2.2:9090
  # Black holes in the server namespace (filter only: no conntrack there).
  ip netns exec "$NS_SRV" nft -f - <<'NFT'
table inet nso {
  chain in {
    type filter hook input priority 0; policy accept;
    tcp dport 9090 counter drop
    udp dport 9000-9999 counter drop
  }
}
NFT
}

status() {
  local ns
  for ns in "${ALL_NS[@]}"; do
    if ns_exists "$ns"; then
      echo "$ns: up, nf_conntrack_count=$(ip netns exec "$ns" cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo n/a)"
    else
      echo "$ns: absent"
    fi
  done
}

preflight
case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
