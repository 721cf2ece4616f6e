#!/usr/bin/env bash
# oracle/run.sh [EXPERIMENT...]   (as root: sudo oracle/run.sh)
#
# Runs the real-kernel experiments of docs/oracle.md inside the nso-* namespaces
# of oracle/testbed.sh and writes validation/traces/<experiment>/<param>.csv (time
# series), auxiliary <param>.<kind>.csv files and one meta.json per experiment.
# With no argument every experiment runs (about 12 minutes).
#
# Safety: only nso-* namespaces and 10.10.x.x / 10.96.x.x addresses inside them;
# every experiment runs in a child with a hard timeout; namespaces are deleted
# after every parameter and on any exit; the global nf_conntrack_max is restored
# by EXIT traps (child and parent) and the restore is checked.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB="$ROOT/oracle/testbed.sh"
OUT="${NSO_OUT:-$ROOT/validation/traces}"
PROFILE="${NSO_PROFILE:-release}"
ALL=(a-full-assured b-early-drop c-tw-expiry d-udp-race e-snat-collision f-syn-schedule
     g-lazy-reap h-netns-max i-storm-tw j-storm-snat k-race-gap l-syn-race)
declare -A LIMIT=([a-full-assured]=220 [b-early-drop]=150 [c-tw-expiry]=300 [d-udp-race]=120
  [e-snat-collision]=150 [f-syn-schedule]=240 [g-lazy-reap]=150 [h-netns-max]=90
  [i-storm-tw]=150 [j-storm-snat]=120 [k-race-gap]=420 [l-syn-race]=150)
MAXFILE=/proc/sys/net/netfilter/nf_conntrack_max

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*" >&2; }

preflight() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (sudo oracle/run.sh)"
  ip netns list >/dev/null 2>&1 || die "'ip netns' is unavailable"
  for t in iptables iptables-save nft conntrack sysctl jq timeout dmesg; do
    command -v "$t" >/dev/null || die "'$t' not found"
  done
  [[ -r $MAXFILE ]] || die "nf_conntrack is not loaded ($MAXFILE missing)"
}

find_bin() {
  if [[ -n ${NSO_BIN:-} ]]; then BIN=$NSO_BIN; return; fi
  local flag=(); [[ $PROFILE == release ]] && flag=(--release)
  if command -v cargo >/dev/null; then
    (cd "$ROOT" && cargo build -q "${flag[@]}" --bin netsim-oracle) || die "cargo build failed"
  fi
  BIN="$ROOT/target/$PROFILE/netsim-oracle"
  [[ -x $BIN ]] || die "no $BIN: build it with 'cargo build --release --bin netsim-oracle' or set NSO_BIN"
}

# ---------------------------------------------------------------- global max
set_max() { sysctl -qw net.netfilter.nf_conntrack_max="$1"; }
restore_max() {
  [[ -n ${ORIG_MAX:-} ]] || return 0
  sysctl -qw net.netfilter.nf_conntrack_max="$ORIG_MAX" || true
  local now; now=$(cat $MAXFILE)
  [[ $now == "$ORIG_MAX" ]] || { echo "run.sh: FAILED to restore nf_conntrack_max ($now != $ORIG_MAX)" >&2; return 1; }
}

# ---------------------------------------------------------------- helpers
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
rtr() { in_ns nso-rtr "$@"; }
nso() { local ns=$1; shift; ip netns exec "$ns" "$BIN" "$@"; }
bg_server() { local ns=$1; shift; ip netns exec "$ns" "$BIN" "$@" --duration 400s >/dev/null 2>&1 & sleep 0.3; }
or_null() { local v; v=$(cat); echo "${v:-null}"; }
table_full_lines() { dmesg 2>/dev/null | grep -c 'table full' || true; }
sysctl_json() {
  in_ns "$1" sysctl -a 2>/dev/null |
    grep -E '^(net\.netfilter\.|net\.ipv4\.(tcp_|ip_local_port_range|ip_forward)|net\.core\.(somaxconn|netdev_max_backlog|message_))' |
    jq -R -n '[inputs | capture("^(?<k>[^ ]+) = ?(?<v>.*)$")] | map({(.k): .v}) | add // {}'
}

# begin_param NAME: fresh testbed, remember the log-line count.
begin_param() {
  P=$1
  log "$EXP/$P"
  "$TB" up
  LOG0=$(table_full_lines)
  rm -f "$D/$P".*
}

# end_param PARAMS_JSON DERIVED_JQ: snapshot sysctls and rules, merge the tool
# summary ($D/.$P.summary.json) and the derived numbers, tear the testbed down.
end_param() {
  local params=$1 derived_jq=${2:-'{}'} summary='{}'
  [[ -s $D/.$P.summary.json ]] && summary=$(cat "$D/.$P.summary.json")
  local derived; derived=$(jq -c "$derived_jq" <<<"$summary")
  jq -n --arg name "$P" --argjson params "$params" --argjson summary "$summary" \
    --argjson derived "$derived" --argjson extra "$EXTRA" \
    --argjson max "$(cat $MAXFILE)" --argjson buckets "$(cat /proc/sys/net/netfilter/nf_conntrack_buckets)" \
    --argjson log_lines "$(( $(table_full_lines) - LOG0 ))" \
    --argjson sysctl_rtr "$(sysctl_json nso-rtr)" --argjson sysctl_cli "$(sysctl_json nso-cli)" \
    --arg ipt_rtr "$(rtr iptables-save 2>/dev/null | grep -v '^#')" \
    --arg ipt_cli "$(in_ns nso-cli iptables-save 2>/dev/null | grep -v '^#')" \
    --arg nft_srv "$(in_ns nso-srv nft list ruleset)" \
    --arg files "$(cd "$D" && ls "$P".*.csv "$P.csv" 2>/dev/null | tr '\n' ' ')" \
    '{($name): {params: $params, nf_conntrack_max: $max, nf_conntrack_buckets: $buckets,
       derived: $derived, extra: $extra, table_full_log_lines: $log_lines,
       files: ($files | split(" ") | map(select(. != ""))),
       sysctl_rtr: $sysctl_rtr, sysctl_cli: $sysctl_cli,
       rules: {iptables_rtr: $ipt_rtr, iptables_cli: $ipt_cli, nft_srv: $nft_srv},
       summary: $summary}}' > "$D/.run-$P.json"
  rm -f "$D/.$P.summary.json"
  EXTRA='{}'
  restore_max
  "$TB" down
}

finish_experiment() {
  local desc=$1
  jq -n --arg exp "$EXP" --arg desc "$desc" \
    --arg release "$(uname -r)" --arg version "$(uname -v)" --arg machine "$(uname -m)" \
    --arg hz "$( (zcat /proc/config.gz 2>/dev/null || cat "/boot/config-$(uname -r)" 2>/dev/null) | sed -n 's/^CONFIG_HZ=//p')" \
    --argjson cpus "$(nproc)" --arg mem "$(awk '/MemTotal/{print $2}' /proc/meminfo)" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg date "$(date -u +%FT%TZ)" \
    --arg ipt "$(iptables --version)" --arg nft "$(nft --version)" --arg ct "$(conntrack --version)" \
    --argjson orig_max "$ORIG_MAX" \
    --slurpfile runs <(cat "$D"/.run-*.json) \
    '{experiment: $exp, description: $desc, date_utc: $date,
      kernel: {release: $release, version: $version, machine: $machine, hz: ($hz | tonumber? // null)},
      host: {cpus: $cpus, mem_kb: ($mem | tonumber), loadavg_at_end: $load},
      tools: {iptables: $ipt, nft: $nft, conntrack: $ct},
      global: {nf_conntrack_max_original: $orig_max},
      topology: {
        namespaces: {"nso-cli": "client, 10.10.1.2/24 on nso-c0, default via 10.10.1.1",
                     "nso-rtr": "plays the node host namespace: 10.10.1.1/24 nso-r1, 10.10.2.1/24 nso-r2, ip_forward=1, rp_filter=0, nat table (conntrack on)",
                     "nso-srv": "backends 10.10.2.2/24 (+10.10.2.3 in d) on nso-s0, default via 10.10.2.1; nft drops tcp 9090 and udp 9000-9999"},
        services: {"10.96.0.10:80/tcp": "DNAT 10.10.2.2:8080", "10.96.0.10:81/tcp": "DNAT 10.10.2.2:9090 (black hole)"}},
      csv_columns: ["t_s","count","found","invalid","insert","insert_failed","drop","early_drop","clash_resolve","chaintoolong","search_restart","error","started","ok","fail"],
      runs: ($runs | add)}' > "$D/meta.json"
  rm -f "$D"/.run-*.json
}

ts_opts() { echo --ct-netns nso-rtr --sample-interval "$1" --sample-out "$D/$P.csv"; }

# ---------------------------------------------------------------- experiments
exp_a-full-assured() {
  for M in 100 200; do
    begin_param "max$M"
    bg_server nso-srv server --listen 10.10.2.2:8080 --close server
    set_max "$M"
    nso nso-cli tcp-storm --dst 10.96.0.10:80 --close server --connect-timeout 300ms \
      --step "load:$((M * 3 / 2))@50" --step sleep:62s --step load:20@10 --step sleep:2s \
      $(ts_opts 250ms) --conn-log "$D/$P.conns.csv" > "$D/.$P.summary.json"
    end_param "{\"max\": $M, \"connections\": $((M * 3 / 2)), \"rate_per_s\": 50, \"connect_timeout_s\": 0.3, \"closer\": \"server\", \"later_connections\": 20, \"later_rate_per_s\": 10, \"idle_s\": 62}" \
      '{fill_ok: .steps[0].ok, fill_fail: .steps[0].fail, count_after_fill: .steps[0].ct_after.count,
        drop_fill: (.steps[0].ct_after.drop - .steps[0].ct_before.drop),
        early_drop_fill: (.steps[0].ct_after.early_drop - .steps[0].ct_before.early_drop),
        insert_failed_total: .steps[-1].ct_after.insert_failed,
        count_after_idle: .steps[1].ct_after.count,
        later_ok: .steps[2].ok, later_fail: .steps[2].fail, count_end: .steps[-1].ct_after.count,
        drop_total: .steps[-1].ct_after.drop}'
  done
  finish_experiment "Table full of ASSURED TIME_WAIT entries: short connections (server closes first) until count = max; new SYNs dropped (drop, no early_drop); then 62 s idle (gc 95% trim) and 20 more connections."
}

exp_b-early-drop() {
  for M in 2000 20000 65536; do
    begin_param "max$M"
    set_max "$M"
    nso nso-cli udp-flood --src 10.10.1.2 --dst 10.10.2.2 --dports 9000-9099 \
      --step "load:$((M + 50))@10000" --step sleep:1s --step load:2000@4000 --step sleep:1s \
      $(ts_opts 100ms) > "$D/.$P.summary.json"
    end_param "{\"max\": $M, \"fill_datagrams\": $((M + 50)), \"fill_rate_per_s\": 10000, \"probe_datagrams\": 2000, \"probe_rate_per_s\": 4000, \"entries\": \"unreplied UDP (non-ASSURED), one per new 5-tuple\"}" \
      '(.steps[2]) as $p | {count_after_fill: .steps[0].ct_after.count,
        probe_early_drop: ($p.ct_after.early_drop - $p.ct_before.early_drop),
        probe_drop: ($p.ct_after.drop - $p.ct_before.drop),
        probe_sent: $p.ok,
        success_rate: (1 - ($p.ct_after.drop - $p.ct_before.drop) / $p.ok),
        count_end: .steps[-1].ct_after.count}
        | .model_success_rate = (1 - ((-16 * '"$M"' / '"$BUCKETS"') | exp))'
  done
  finish_experiment "Early drop of non-ASSURED entries, sparse vs dense: fill the table (max M, 262144 buckets) with unreplied UDP entries, then send 2000 new flows at 4000/s and count early_drop vs drop."
}

exp_c-tw-expiry() {
  for V in tw10 tw20 tw10-list; do
    begin_param "$V"
    local T=${V#tw}; T=${T%-list}
    bg_server nso-srv server --listen 10.10.2.2:8080 --close server
    rtr sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait="$T"
    local tail=(--step until-count:0:95s)
    [[ $V == *-list ]] && tail=(--step "sleep:$((T + 1))s" --step "exec:ip netns exec nso-rtr conntrack -L" --step until-count:0:10s)
    nso nso-cli tcp-storm --dst 10.96.0.10:80 --close server --connect-timeout 1s \
      --step load:50@50 "${tail[@]}" --step sleep:1s $(ts_opts 250ms) --conn-log "$D/$P.conns.csv" > "$D/.$P.summary.json"
    end_param "{\"tcp_timeout_time_wait_s\": $T, \"connections\": 50, \"rate_per_s\": 50, \"closer\": \"server\", \"listing\": $([[ $V == *-list ]] && echo true || echo false)}" \
      '{ok: .steps[0].ok, count_after_load: .steps[0].ct_after.count, last_close_s: .steps[0].end_s, count_end: .steps[-1].ct_after.count}'
    # Time at which the count first reached 0 (from the time series).
    jq --arg p "$P" --argjson t0 "$(awk -F, 'NR>1 && $2==0 && seen {print $1; exit} NR>1 && $2>0 {seen=1}' "$D/$P.csv" | or_null)" \
      '.[$p].derived.count_zero_at_s = $t0' "$D/.run-$P.json" > "$D/.tmp" && mv "$D/.tmp" "$D/.run-$P.json"
  done
  finish_experiment "When expired conntrack TIME_WAIT entries leave nf_conntrack_count: 50 short connections with tcp_timeout_time_wait T, count polled every 250 ms until 0 (passive: gc worker), and a variant listing the table (conntrack -L) at T+1 s."
}

exp_d-udp-race() {
  for V in backends2 backends1 backends2-seq; do
    begin_param "$V"
    ip -n nso-srv addr add 10.10.2.3/24 dev nso-s0
    bg_server nso-srv udp-echo --listen 10.10.2.2:5353 --listen 10.10.2.3:5353
    if [[ $V == backends1 ]]; then
      rtr iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p udp --dport 53 -j DNAT --to-destination 10.10.2.2:5353
    else
      rtr iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p udp --dport 53 \
        -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.10.2.2:5353
      rtr iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p udp --dport 53 -j DNAT --to-destination 10.10.2.3:5353
    fi
    local mode=threads; [[ $V == *-seq ]] && mode=sequential
    nso nso-cli udp-race --dst 10.96.0.10:53 --mode "$mode" --step load:3000@1000 --step sleep:0.5s \
      --step "exec:ip netns exec nso-rtr conntrack -L" $(ts_opts 100ms) --pair-log "$D/$P.pairs.csv" > "$D/.$P.summary.json"
    end_param "{\"pairs\": 3000, \"pair_rate_per_s\": 1000, \"backends\": $([[ $V == backends1 ]] && echo 1 || echo 2), \"mode\": \"$mode\"}" \
      '{pairs: .result.pairs, pairs_with_both_answers: .result.pairs_with_both_answers,
        clash_resolve: .steps[0].ct_after.clash_resolve, insert_failed: .steps[0].ct_after.insert_failed,
        drop: .steps[0].ct_after.drop, count_before_listing: .steps[2].ct_before.count,
        listed_entries: .steps[2].note.stdout_lines, send_gap_ns: .result.send_gap_ns}'
  done
  finish_experiment "A/AAAA race: per pair one connected UDP socket sends two datagrams to the DNAT'd VIP 10.96.0.10:53 from two threads released by a spin barrier (or back to back in -seq); one or two backends (statistic random DNAT); counts clash_resolve, insert_failed, drop, answers, hidden entries."
}

exp_e-snat-collision() {
  for V in ports1 ports2 ports200-hold195; do
    begin_param "$V"
    bg_server nso-srv server --listen 10.10.2.2:7070 --close client
    local range=10.10.2.1:40000 steps=(--step hold:1 --step try:1 --step release --step sleep:1s --step try:8)
    [[ $V == ports2 ]] && { range=10.10.2.1:40000-40001; steps=(--step hold:2 --step try:1 --step release --step sleep:1s --step try:8); }
    [[ $V == ports200-hold195 ]] && { range=10.10.2.1:40000-40199; steps=(--step hold:195 --step release --step sleep:1s); }
    rtr iptables -t nat -A POSTROUTING -p tcp -d 10.10.2.2 --dport 7070 -j SNAT --to-source "$range"
    nso nso-cli tcp-storm --dst 10.10.2.2:7070 --close client --connect-timeout 2500ms \
      "${steps[@]}" $(ts_opts 100ms) --conn-log "$D/$P.conns.csv" > "$D/.$P.summary.json"
    end_param "{\"snat_to_source\": \"$range\", \"connect_timeout_s\": 2.5, \"closer\": \"client\"}" \
      '[.steps[] | {step, ok, fail, found: (.ct_after.found - .ct_before.found),
        insert_failed: (.ct_after.insert_failed - .ct_before.insert_failed),
        drop: (.ct_after.drop - .ct_before.drop), count: .ct_after.count}]
       | {per_step: ., try_outcomes_in_order: null}'
    jq --arg p "$P" --argjson o "$(awk -F, 'NR>1 {print $8}' "$D/$P.conns.csv" | jq -R . | jq -s -c .)" \
      '.[$p].derived.try_outcomes_in_order = $o' "$D/.run-$P.json" > "$D/.tmp" && mv "$D/.tmp" "$D/.run-$P.json"
  done
  finish_experiment "SNAT port collision: SNAT to 1, 2 or 200 ports; hold K connections (client closes first), try one more (2.5 s connect timeout), release, then try 8 one by one (previous holders in conntrack TIME_WAIT: evictable by the NAT port search); found, insert_failed and drop per step."
}

exp_f-syn-schedule() {
  for V in linear exp-retries4; do
    begin_param "$V"
    local wait=140
    if [[ $V == exp-retries4 ]]; then
      in_ns nso-cli sysctl -qw net.ipv4.tcp_syn_linear_timeouts=0 net.ipv4.tcp_syn_retries=4
      wait=36
    fi
    nso nso-rtr sample --ct-netns . --sample-interval 250ms --sample-out "$D/$P.csv" --step "sleep:${wait}s" > /dev/null &
    local spid=$!
    nso nso-cli syn-probe --dst 10.96.0.10:81 --out "$D/$P.syns.csv" > "$D/.$P.summary.json"
    wait "$spid" || true
    end_param "{\"dst\": \"10.96.0.10:81 (DNAT to black hole 10.10.2.2:9090)\", \"connect_timeout\": \"none (kernel ETIMEDOUT)\", \"tcp_syn_retries\": $(in_ns nso-cli sysctl -n net.ipv4.tcp_syn_retries), \"tcp_syn_linear_timeouts\": $(in_ns nso-cli sysctl -n net.ipv4.tcp_syn_linear_timeouts)}" \
      '{syn_times_s: .result.syn_times_s, outcome: .result.outcome, connect_elapsed_s: .result.elapsed_s}'
  done
  finish_experiment "SYN retransmission schedule: one blocking connect() to a black-holed VIP; each SYN seen as a Tcp OutSegs increment (2 ms polling) in the client namespace; default 6.18 schedule (tcp_syn_linear_timeouts=4, tcp_syn_retries=6) and exponential with 4 retries."
}

exp_g-lazy-reap() {
  # A ballast of long-lived entries keeps the gc worker's adaptive interval near its
  # 60 s maximum (it follows the mean remaining lifetime of live entries); a gc pass
  # inside the measurement window still reaps every survivor at once, so such an
  # attempt (0 survivors) is repeated, at most 3 times, and counted in the meta.
  for N in 50000 100000; do
    local attempt
    for attempt in 1 2 3; do
      begin_param "n$N"
      rtr sysctl -qw net.netfilter.nf_conntrack_udp_timeout=300
      nso nso-cli udp-flood --src 10.10.1.2 --dst 10.10.2.2 --dports 9000-9099 \
        --step load:20000@20000 \
        --step "exec:ip netns exec nso-rtr sysctl -qw net.netfilter.nf_conntrack_udp_timeout=3" \
        --step load:2840@5000 --step sleep:4s \
        --step "exec:ip netns exec nso-rtr sysctl -qw net.netfilter.nf_conntrack_udp_timeout=30" \
        --step "load:$N@20000" --step sleep:0.5s --step "exec:ip netns exec nso-rtr conntrack -L" --step sleep:0.5s \
        $(ts_opts 100ms) > "$D/.$P.summary.json"
      [[ $(jq '.steps[7].ct_before.count - .steps[7].ct_after.count' "$D/.$P.summary.json") -gt 0 ]] && break
      log "$EXP/$P: a gc pass reaped every survivor inside the window (attempt $attempt)"
      [[ $attempt -lt 3 ]] && "$TB" down
    done
    end_param "{\"ballast_entries\": 20000, \"ballast_udp_timeout_s\": 300, \"expired_entries\": 2840, \"udp_timeout_fill_s\": 3, \"wait_s\": 4, \"new_flows\": $N, \"new_flow_rate_per_s\": 20000, \"udp_timeout_new_s\": 30, \"buckets\": $BUCKETS, \"attempt\": $attempt}" \
      '{ballast: .steps[0].ct_after.count, expired_before: (.steps[2].ct_after.count - .steps[0].ct_after.count),
        count_after_wait: .steps[3].ct_after.count,
        new_flows_sent: .steps[5].ok, new_flow_drops: (.steps[5].ct_after.drop - .steps[5].ct_before.drop),
        count_before_listing: .steps[7].ct_before.count, count_after_listing: .steps[7].ct_after.count,
        survivors_reaped_by_listing: (.steps[7].ct_before.count - .steps[7].ct_after.count)}
       | .survived_fraction = (.survivors_reaped_by_listing / .expired_before)
       | .model_survived_fraction = ((-4 * '"$N"' / '"$BUCKETS"') | exp)'
  done
  finish_experiment "Lazy reaping by lookups: 20000 long-lived ballast entries, then 2840 unreplied UDP entries with a 3 s timeout expire; 4 s later N new UDP flows (timeout 30 s) walk their buckets; expired entries still counted are measured by the drop of the count when conntrack -L reaps them."
}

exp_h-netns-max() {
  begin_param max100
  set_max 100
  in_ns nso-cli iptables -A OUTPUT -m conntrack --ctstate NEW -j ACCEPT
  nso nso-cli udp-flood --src 10.10.1.2 --dst 10.10.2.2 --dports 9000-9099 \
    --step load:150@1000 --step sleep:1s --step load:1@10 --step sleep:0.5s $(ts_opts 100ms) > "$D/.$P.summary.json"
  local werr; werr=$(rtr sh -c 'ls -l /proc/sys/net/netfilter/nf_conntrack_max; echo 50 > /proc/sys/net/netfilter/nf_conntrack_max' 2>&1 || true)
  EXTRA=$(jq -n --argjson rtr "$(rtr cat /proc/sys/net/netfilter/nf_conntrack_count)" \
    --argjson cli "$(in_ns nso-cli cat /proc/sys/net/netfilter/nf_conntrack_count)" \
    --argjson srv "$(in_ns nso-srv cat /proc/sys/net/netfilter/nf_conntrack_count)" \
    --argjson init "$(cat /proc/sys/net/netfilter/nf_conntrack_count)" --arg werr "$werr" \
    '{counts: {"nso-rtr": $rtr, "nso-cli": $cli, "nso-srv": $srv, init: $init}, write_max_in_nso_rtr: $werr}')
  end_param '{"max": 100, "datagrams": 150, "then": 1, "conntrack_in_cli": "iptables -A OUTPUT -m conntrack --ctstate NEW -j ACCEPT"}' \
    '{sent_ok: ([.steps[].ok] | add), send_errors: .result.send_errors, rtr_count: .steps[-1].ct_after.count}'
  finish_experiment "Global max, per-namespace counts: max 100 with conntrack on in nso-cli and nso-rtr; 150 + 1 new UDP flows from nso-cli; counts per namespace, EPERM for the local sender, and a write to nf_conntrack_max from nso-rtr."
}

exp_i-storm-tw() {
  for R in 100 200; do
    begin_param "r$R"
    bg_server nso-srv server --listen 10.10.2.2:8080 --close server
    set_max 1000
    nso nso-cli tcp-storm --dst 10.96.0.10:80 --close server --connect-timeout 3s \
      --step "load:$((R * 20))@$R" --step sleep:4s $(ts_opts 200ms) --conn-log "$D/$P.conns.csv" > "$D/.$P.summary.json"
    EXTRA=$(jq -n --argjson onset "$(awk -F, 'NR>1 && $7>0 {print $1; exit}' "$D/$P.csv" | or_null)" \
      --argjson full "$(awk -F, 'NR>1 && $2>=1000 {print $1; exit}' "$D/$P.csv" | or_null)" \
      '{first_sample_with_drop_s: $onset, first_sample_at_max_s: $full}')
    end_param "{\"max\": 1000, \"rate_per_s\": $R, \"duration_s\": 20, \"connections\": $((R * 20)), \"connect_timeout_s\": 3, \"closer\": \"server\", \"expected_full_at_s\": $(jq -n "1000 / $R")}" \
      '{ok: .steps[0].ok, fail: .steps[0].fail, outcomes: .result.outcomes, drop: .steps[-1].ct_after.drop,
        early_drop: .steps[-1].ct_after.early_drop, insert_failed: .steps[-1].ct_after.insert_failed,
        count_end: .steps[-1].ct_after.count, max_start_lateness_s: .result.max_start_lateness_s}'
  done
  finish_experiment "Short-connection storm filling the table with ASSURED TIME_WAIT entries: rate R for 20 s with max 1000 (rate x duration > max), server closes first, 3 s connect timeout; onset of drop and client failures over time."
}

exp_j-storm-snat() {
  for V in ports64-r20 ports16-r10; do
    begin_param "$V"
    local ports=${V%%-*}; ports=${ports#ports}; local R=${V##*-r}
    bg_server nso-srv server --listen 10.10.2.2:8080 --close client
    rtr iptables -t nat -A POSTROUTING -p tcp -d 10.10.2.2 --dport 8080 -j SNAT --to-source "10.10.2.1:40000-$((40000 + ports - 1))"
    nso nso-cli tcp-storm --dst 10.96.0.10:80 --close client --connect-timeout 3s \
      --step "load:$((R * 20))@$R" --step sleep:4s $(ts_opts 200ms) --conn-log "$D/$P.conns.csv" > "$D/.$P.summary.json"
    end_param "{\"snat_ports\": $ports, \"snat_to_source\": \"10.10.2.1:40000-$((40000 + ports - 1))\", \"rate_per_s\": $R, \"duration_s\": 20, \"connect_timeout_s\": 3, \"closer\": \"client\"}" \
      '{ok: .steps[0].ok, fail: .steps[0].fail, outcomes: .result.outcomes, found: .steps[-1].ct_after.found,
        insert_failed: .steps[-1].ct_after.insert_failed, drop: .steps[-1].ct_after.drop, count_end: .steps[-1].ct_after.count}'
  done
  finish_experiment "Short-connection storm through SNAT with a small port range (64 or 16 ports, client closes first): the NAT port search probes taken ports (found), evicts SNATed TIME_WAIT entries or fails at confirm (insert_failed + drop)."
}

# ---------------------------------------------------------------- race pairs (k, l)
RACE_GAPS=(1us 2us 4us 7us 10us 15us 25us 50us)
loadavg_json() { jq -R 'split(" ") | {load1: (.[0] | tonumber), load5: (.[1] | tonumber), load15: (.[2] | tonumber), running: (.[3] | split("/")[0] | tonumber)}' < /proc/loadavg; }

# rtr_pid: a sleeping process inside nso-rtr whose /proc/PID/net is nso-rtr's, so
# race-pairs reads the router's counters without spawning a process per pair.
rtr_pid() {
  ip netns exec nso-rtr sleep 280 >/dev/null 2>&1 &
  RTR_PID=$!
  sleep 0.1
  [[ -r /proc/$RTR_PID/net/stat/nf_conntrack ]] || die "no /proc/$RTR_PID/net/stat/nf_conntrack"
}

race_derived='{pairs: .result.pairs, placement: .result.placement, per_gap: .result.per_gap,
  clash_resolve: .steps[0].ct_after.clash_resolve, insert_failed: .steps[0].ct_after.insert_failed,
  drop: .steps[0].ct_after.drop}'

exp_k-race-gap() {
  local V placement B gaps
  # The pinned runs are repeated at the end (-r2): the window varies with the machine's
  # condition from minute to minute, and the fit needs several conditions.
  for V in different-b1 different-b2 same-b1 same-b2 scheduler-b1 scheduler-b2 one-thread-b1 one-thread-b2 \
      sendmmsg-b1 sendmmsg-b2 different-b1-r2 different-b2-r2; do
    begin_param "$V"
    placement=${V%-b*}; B=${V#*-b}; B=${B%%-*}
    ip -n nso-srv addr add 10.10.2.3/24 dev nso-s0
    bg_server nso-srv udp-echo --tag --listen 10.10.2.2:5353 --listen 10.10.2.3:5353
    if [[ $B == 1 ]]; then
      rtr iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p udp --dport 53 -j DNAT --to-destination 10.10.2.2:5353
    else
      rtr iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p udp --dport 53 \
        -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.10.2.2:5353
      rtr iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p udp --dport 53 -j DNAT --to-destination 10.10.2.3:5353
    fi
    rtr_pid
    gaps=(); for g in "${RACE_GAPS[@]}"; do gaps+=(--gap "$g"); done
    [[ $placement == sendmmsg ]] && gaps=(--gap 0us)
    local before; before=$(loadavg_json)
    nso nso-cli race-pairs --proto udp --dst 10.96.0.10:53 --placement "$placement" "${gaps[@]}" \
      --ct-stat-file "/proc/$RTR_PID/net/stat/nf_conntrack" --step load:3200@500 --step sleep:0.3s \
      --ct-netns nso-rtr --sample-interval 1s --sample-out "$D/$P.csv" --pair-log "$D/$P.race.csv" > "$D/.$P.summary.json"
    EXTRA=$(jq -n --argjson b "$before" --argjson a "$(loadavg_json)" '{loadavg_before: $b, loadavg_after: $a}')
    end_param "{\"pairs\": 3200, \"pair_rate_per_s\": 500, \"backends\": $B, \"placement\": \"$placement\", \"gap_targets\": \"$(IFS=,; echo "${RACE_GAPS[*]}")\", \"cpus\": [0, 1]}" "$race_derived"
  done
  finish_experiment "Insertion race pair by pair: two datagrams of one connected UDP socket to the DNAT'd VIP 10.96.0.10:53 (1 or 2 backends), sent from two threads pinned to different CPUs, to the same CPU, left to the scheduler, from one thread (send, gap, send) or in one sendmmsg; gap targets 1-50 us interleaved pair by pair; per pair the send times, CPUs, answering backends and the clash counters of nso-rtr read around it."
}

exp_l-syn-race() {
  local V
  for V in different same; do
    begin_param "$V"
    local N=4000; [[ $V == same ]] && N=1000
    ip -n nso-cli addr add 10.10.1.3/24 dev nso-c0
    bg_server nso-srv server --listen 10.10.2.2:7070 --close client
    rtr iptables -t nat -A POSTROUTING -p tcp -d 10.10.2.2 --dport 7070 -j MASQUERADE
    rtr_pid
    local gaps=(); for g in "${RACE_GAPS[@]}"; do gaps+=(--gap "$g"); done
    local before; before=$(loadavg_json)
    nso nso-cli race-pairs --proto tcp --dst 10.10.2.2:7070 --placement "$V" "${gaps[@]}" \
      --src-ips 10.10.1.2 10.10.1.3 --sport-base 20000 \
      --ct-stat-file "/proc/$RTR_PID/net/stat/nf_conntrack" --step "load:$N@250" --step sleep:0.3s \
      --ct-netns nso-rtr --sample-interval 1s --sample-out "$D/$P.csv" --pair-log "$D/$P.race.csv" > "$D/.$P.summary.json"
    EXTRA=$(jq -n --argjson b "$before" --argjson a "$(loadavg_json)" '{loadavg_before: $b, loadavg_after: $a}')
    end_param "{\"pairs\": $N, \"pair_rate_per_s\": 250, \"placement\": \"$V\", \"snat\": \"MASQUERADE to 10.10.2.1 (keeps the source port when free)\", \"src_ips\": [\"10.10.1.2\", \"10.10.1.3\"], \"sport_base\": 20000, \"gap_targets\": \"$(IFS=,; echo "${RACE_GAPS[*]}")\", \"cpus\": [0, 1]}" "$race_derived"
  done
  finish_experiment "XING race: per pair two SYNs to 10.10.2.2:7070 from 10.10.1.2:P and 10.10.1.3:P (P new per pair), MASQUERADEd by nso-rtr to 10.10.2.1, which keeps P when free; sent from two threads pinned to different CPUs or the same CPU, gap targets 1-50 us interleaved; a race gives both the same reply tuple, the loser is dropped at confirm (insert_failed + drop)."
}

# ---------------------------------------------------------------- driver
run_one() {
  EXP=$1; D="$OUT/$EXP"; EXTRA='{}'
  ORIG_MAX=$2
  trap 'restore_max; "$TB" down' EXIT
  trap 'exit 1' INT TERM
  BUCKETS=$(cat /proc/sys/net/netfilter/nf_conntrack_buckets)
  rm -rf "$D"; mkdir -p "$D"
  "exp_$EXP"
}

main() {
  preflight
  if [[ ${1:-} == __one ]]; then
    BIN=$3; run_one "$2" "$4"; return
  fi
  local sel=("$@"); [[ ${#sel[@]} -eq 0 ]] && sel=("${ALL[@]}")
  local e; for e in "${sel[@]}"; do [[ -n ${LIMIT[$e]:-} ]] || die "unknown experiment '$e' (known: ${ALL[*]})"; done
  find_bin
  ORIG_MAX=$(cat $MAXFILE)
  trap 'restore_max; "$TB" down' EXIT
  local failed=()
  for e in "${sel[@]}"; do
    log "== $e (hard limit ${LIMIT[$e]} s)"
    if ! timeout --kill-after=10 "${LIMIT[$e]}" "$0" __one "$e" "$BIN" "$ORIG_MAX"; then
      failed+=("$e"); log "!! $e failed or timed out"
      "$TB" down; restore_max
    fi
  done
  restore_max && log "nf_conntrack_max restored to $ORIG_MAX (checked)"
  [[ ${#failed[@]} -eq 0 ]] || die "failed: ${failed[*]}"
}

main "$@"
