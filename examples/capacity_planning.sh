#!/usr/bin/env sh
# Capacity planning with k8s-netsim: the four questions of docs/capacity-planning.md.
set -eu
N="cargo run --release --quiet --"
S=scenarios/flash-sale.yaml
FAST="--set backgroundServices.count=100"

echo "== How many QPS can this node take before drops? (runs must outlast TIME_WAIT: 130 s)"
$N plan $S --until 'drop>0' --range 800/s..1600/s --seeds 3 --set duration=130s $FAST

echo "== What nf_conntrack_max do I need for 30k QPS of short connections?"
$N recommend $S --for conntrack --headroom 25 --set duration=130s $FAST

echo "== How big a pool makes 30k QPS safe?"
$N recommend $S --for pool --set duration=20s $FAST

echo "== Does nftables or IPVS help my 10k-Service cluster?"
$N recommend $S --for proxy-mode --modes ipvs,nftables --services 100,1000,10000 \
  --set duration=10s --set workloads.0.rate=5k/s --set clusterCIDR=10.0.0.0/12

echo "== Rate x table size heatmap"
$N sweep $S --set duration=130s $FAST --param workloads.0.rate=500/s..2k/s:8 \
  --param nodes.0.sysctl.net.netfilter.nf_conntrack_max,nodes.1.sysctl.net.netfilter.nf_conntrack_max=65536..262144:4 \
  --out target/sweep-example
