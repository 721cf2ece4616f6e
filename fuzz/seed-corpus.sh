#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the project's own files (scenarios, error fixtures,
# iptables-save dumps, overrides and units from the docs, the recorded evidence bundle).
# Idempotent; files are named by content hash, as libFuzzer names its own.
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

# Evidence parsers: the recorded bundle (tests/fixtures/evidence), the parsers' own
# unit-test texts, and listings the project's `rules` command prints (when a release
# build is at ../target/release or K8S_NETSIM names one).
ev="$root/tests/fixtures/evidence/storm-r100"
for f in sysctl.txt meminfo.txt nproc.txt uname-r.txt; do add evidence_sysctl "$ev/$f"; done
for t in 'net.netfilter.nf_conntrack_max = 262144
sysctl: permission denied on key '"'x'"'
net.ipv4.ip_local_port_range = 32768	60999
' 'MemFree: 1 kB
MemTotal:       24573712 kB
' 'MemTotal: 12 MB
' 12 0 5.10.0-28-amd64 5.15.0-1034-aws 3.10.0-1160.el7.x86_64 4.14.355-275.570.amzn2.x86_64 Linux; do
    add_text evidence_sysctl "$t"
done
for f in conntrack-S.txt conntrack-S.before.txt nf_conntrack-stat.txt nf_conntrack-stat.before.txt; do
    add evidence_ctstat "$ev/$f"
done
add_text evidence_ctstat 'cpu=0 found=0 invalid=685 ignore=11379 insert=0 insert_failed=0 drop=0 early_drop=0 error=677 search_restart=3
cpu=1 found=2 invalid=1 ignore=1 insert=0 insert_failed=4 drop=5 early_drop=0 error=0 search_restart=0
'
add_text evidence_ctstat 'cpu=0   	found=0 invalid=0 insert=0 insert_failed=3 drop=3 early_drop=0 error=0 search_restart=0 clash_resolve=7 chaintoolong=0 
'
add_text evidence_ctstat 'entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000010  00000000 00000005 00000000 00000000 0000000a 00000000 00000000 00000000 00000000 00000002 00000000 00000000  00000000 00000000 00000000 00000000
'
# conntrack -L: the first byte sets the target's cap and slices (0x48: 32 entries,
# 4 slices a group); the recorded listing's head, tail and a mixed listing.
ct() { # text
    local f
    f=$(mktemp)
    printf 'H%s' "$1" >"$f"
    add evidence_ctlist "$f"
    rm -f "$f"
}
ct "$(head -40 "$ev/conntrack-L.txt")"
ct "$(tail -20 "$ev/conntrack-L.txt")"
ct 'tcp      6 115 TIME_WAIT src=10.10.1.2 dst=10.96.0.10 sport=40001 dport=80 src=10.10.2.2 dst=10.10.1.2 sport=8080 dport=40001 [ASSURED] mark=0 use=1
udp      17 29 src=10.10.1.2 dst=10.96.0.10 sport=5000 dport=53 [UNREPLIED] src=10.10.2.2 dst=10.10.1.2 sport=53 dport=5000 mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.10.1.2 dst=10.96.0.10 sport=40003 dport=80 src=10.10.2.2 dst=10.10.1.2 sport=8080 dport=40003 [ASSURED] mark=0 use=1
ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1 mark=0 use=1
ipv6     10 tcp      6 1 ESTABLISHED src=::1 dst=::1 sport=1 dport=2
sctp     132 3 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2
garbage here
# truncated at 3 lines of 9
conntrack v1.4.7 (conntrack-tools): 9 flow entries have been shown.
'
for f in iptables-save.txt nft-ruleset.txt; do add evidence_rules "$ev/$f"; done
for f in "$root"/src/netfilter/testdata/*.iptables-save; do add evidence_rules "$f"; done
add_text evidence_rules 'IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.10:80 rr
  -> 10.244.1.5:8080              Masq    1      0          0
  -> 10.244.2.5:8080              Masq    1      0          0
'
add_text evidence_rules 'table ip kube-proxy {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.10 . tcp . 80 : goto service-ULMVA6XW-default/echo/tcp/http }
	}
	chain endpoint-5OJB2KTY-default/echo/tcp/http__10.244.1.5/8080 {
	}
}
table inet filter {
}
'
bin=${K8S_NETSIM:-$root/target/release/k8s-netsim}
if [ -x "$bin" ]; then
    for m in "--mode ipvs" "--format nft" "--mode iptables"; do
        t=$(mktemp)
        # shellcheck disable=SC2086 # $m is two words on purpose
        "$bin" rules $m --services 3 --endpoints 2 --nodeport >"$t"
        add evidence_rules "$t"
        rm -f "$t"
    done
fi
# A whole bundle for `import`: its files after `==> NAME <==` lines (the listing cut to
# its head), then the same without the listing and the counters.
bundle() { # files...
    local t f
    t=$(mktemp)
    for f in "$@"; do
        printf '==> %s <==\n' "$f" >>"$t"
        if [ "$f" = conntrack-L.txt ]; then head -30 "$ev/$f" >>"$t"; else cat "$ev/$f" >>"$t"; fi
    done
    add evidence_import "$t"
    rm -f "$t"
}
bundle meta.txt skipped.txt hostname.txt uname-r.txt nproc.txt meminfo.txt sysctl.txt iptables-save.txt \
    nft-ruleset.txt conntrack-S.txt conntrack-S.before.txt nf_conntrack-stat.txt nf_conntrack-stat.before.txt \
    dmesg-conntrack.txt conntrack-L.txt
bundle hostname.txt uname-r.txt nproc.txt meminfo.txt iptables-save.txt
bundle uname-r.txt nft-ruleset.txt nf_conntrack-stat.txt
