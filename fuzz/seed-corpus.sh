#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the project's own files (scenarios, error fixtures,
# iptables-save dumps, overrides and units from the docs). Idempotent; files are named
# by content hash, as libFuzzer names its own.
set -euo pipefail
cd "$(dirname "$0")"
root=..
add() { # target file
    mkdir -p "corpus/$1"
    local h
    h=$(sha1sum "$2" | cut -c1-40)
    cp "$2" "corpus/$1/$h"
}
add_text() { # target text
    local f
    f=$(mktemp)
    printf '%s' "$2" >"$f"
    add "$1" "$f"
    rm -f "$f"
}
for f in "$root"/scenarios/*.yaml "$root"/scenarios/validation/*.yaml "$root"/tests/it/fixtures/bad/*.yaml; do
    [ -f "$f" ] && add scenario_yaml "$f"
done
# JSON seeds: the bundled scenarios through a YAML -> JSON conversion when python3 has
# PyYAML, else a small hand-written one.
if python3 -c 'import yaml' 2>/dev/null; then
    for f in "$root"/scenarios/*.yaml; do
        t=$(mktemp)
        python3 -c 'import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout, indent=1)' "$f" >"$t"
        add scenario_json "$t"
        rm -f "$t"
    done
fi
add_text scenario_json '{"version": 1, "name": "j", "duration": "1s", "kernel": "6.18", "nodes": [{"name": "a", "cpus": 2, "memory": "4Gi"}]}'
for o in 'workloads.0.rate=10k/s' 'nodes.0.sysctl.net.netfilter.nf_conntrack_max=524288' \
    'workloads.0.connection.mode=pool' 'kubeProxy.mode=ipvs' 'sampleInterval=1ns' \
    'workloads.0.pods=100000000' 'duration=1000000000s' 'backgroundServices.count=5000' \
    'services.0.endpoints.0.count=7' 'workloads.0.dns.parallelAAAA=false' 'seed=[1,' \
    'workloads.7.rate=1k/s' 'nodes.0.sysctl.net.ipv4.ip_local_port_range=1024 65535'; do
    add_text overrides "$o"
done
for u in 150ms 1.5s 120s 5m 24h 100us 1500ns 500/s 1.5k/s 30k/s 2M/s 600/min 16Gi 512Mi 64Ki \
    16G 4096 '32768 60999' 10.96.0.0/12 10.244.1.0/24 0.5/s 1/min; do
    add_text units "$u"
done
for f in "$root"/src/netfilter/testdata/*.iptables-save; do
    add iptables_save "$f"
done
