//! The explanations of `docs/validation.md`: per-group notes (how the replay is done)
//! and known disagreements (what in the model differs and what it would take).

/// Known disagreements and unmodelled behaviour: (row id prefix, explanation). A
/// failing row whose id starts with a prefix here is a known failure; the explanation
/// is printed in the notes. `tests/it/validation.rs` asserts that each entry still
/// matches a row that fails (or is not modelled), so a fixed model forces the note out.
pub(crate) const KNOWN_FAILURES: &[(&str, &str)] = &[
    (
        "f/",
        "the model fires SYN retransmissions on the kernel's timer wheel (`src/socket/syn.rs`, \
         `timer_wheel_expiry`, following `calc_wheel_index` at HZ 250: a 1 s RTO on an 8-jiffy (32 ms) \
         boundary, 4-16 s on 64-jiffy (256 ms) ones, 32-64 s on 512-jiffy (2.048 s) ones) and arms each \
         timer when the previous SYN left, so the lateness accumulates as in the recording; the 1-5 s \
         retransmissions agree within ±50 ms. What remains is the wheel's phase: which boundary a timer \
         lands on depends on the absolute jiffies value at the connect, which the model starts at 0 at \
         simulated time 0 and the recording does not capture. On the 2.048 s level (the 32 s and 64 s \
         RTOs) that alone moves a SYN by up to 2 s. What it would take: record the jiffies phase (e.g. \
         from `/proc/timer_list`) in the oracle and start the model's clock at that phase.",
    ),
    (
        "k/different-b2-r2/",
        "the recording with the longest window of the six the same-tuple curve is fitted to (94 % raced \
         at 1-4 µs, 83 % at 7 µs, 57 % at 10 µs; its most likely window factor is 1.54, against 0.78-1.01 \
         for the other five). The fitted period-to-period spread (`factor_sigma` 0.217 from six \
         recordings) puts a factor of 1.54 at the 97.5th percentile of periods, and with it the model's \
         range of raced pairs ends just below the recording (1,666 vs 1,746 in total; 315 vs 358 at 4 µs). \
         The counter rows of this recording follow its race count; the mechanism agrees (every race \
         resolved on 6.18 with no insert_failed or drop, all answers un-NATed, and 5.4 would drop the \
         races DNATed to different backends: 860 of 1,746 in the recording, 617.5 of 1,230.9 in the \
         model, both about half). What it would take: \
         more recordings spread over time (the spread is estimated from six), or a covariate for the \
         period's condition recorded with each run (e.g. the median duration of the first send, which \
         contains the packet's trip).",
    ),
    (
        "i/r200/scenario-ok",
        "the conntrack side is exact (the replay with the recorded client ports gives 1,299 ok, 8,103 \
         drops); the difference is in the simulated client's port choice. Once the table is full only \
         connections that reuse a port whose conntrack entry is still in TIME_WAIT succeed \
         (docs/kernel-semantics.md §Port reuse over a TIME_WAIT entry: kill-and-recreate). The \
         recording got 299 such reuses in 4,000 connections at 200/s, the simulator ~185 (scaled): \
         its `__inet_hash_connect` port sequence (`src/socket/ports.rs`, \
         `SocketTable::connect`: per-destination offset, `table_perturb` advance per connect, 10 s \
         re-key) revisits recent ports less often than 6.18 does at this rate (at 100/s it agrees, \
         -2 %). Arrivals are Poisson in the scenario, constant-rate in the recording. What it would take: \
         compare the simulator's port sequence with the `local_port` column of \
         `validation/traces/i-storm-tw/r200.conns.csv` (offset step per connect and the random even \
         increment of `table_perturb`).",
    ),
    (
        "V01/",
        "the mechanism is modelled (the 4.19 profile's shared rover, `nat_sequential_rover`, gives two \
         SNATs that race between NAT and confirm the same port, and `--random-fully` never collides), but \
         XING did not publish the test's connection rate or timing, and under the documented assumptions \
         (5 connections/s per connector at independent random phases, a 2 µs race window, ports free at \
         the start) no race meets a taken original port. Two facts bound any such replay: the race share \
         is about 2 × window × aggregate rate (< 0.2 % at the ≤ 537/s that 64,512 ports held 120 s in \
         TIME_WAIT allow to one destination), and a SNAT search only starts when the original port is \
         taken. 2-4 % therefore needs synchronised starts (threads released together) or a far wider \
         window than XING's 0-2 µs. What it would take: the repro's timing (rerun \
         maxlaverse/snat-race-conn-test on a 4.19 VM in the oracle, recording send times, ports and \
         insert_failed) and a replay of that recording instead of assumed arrivals.",
    ),
];

/// The explanation of a failing row, if it is a known disagreement.
pub(crate) fn known_failure(id: &str) -> Option<&'static str> {
    KNOWN_FAILURES
        .iter()
        .find(|(prefix, _)| id.starts_with(prefix))
        .map(|(_, why)| *why)
}

/// How each group is replayed (printed under the group's notes).
pub(crate) const GROUP_NOTES: &[(&str, &str)] = &[
    (
        "a-full-assured",
        "Conntrack-level replay: every recorded connection at its recorded start time and, when it \
         succeeded, its recorded client port (failed connections have none recorded; they get unused \
         ports from 61000 up). A SYN that passes conntrack is answered; the whole exchange (handshake, \
         16-byte request and answer, server-first close) follows 40 µs apart; a dropped SYN is \
         retransmitted on the 6.18 schedule until the 0.3 s connect timeout. The gc worker runs from \
         t = 0 at the times it asks for; the trim time depends on its phase (docs/kernel-semantics.md \
         §Expired entries leave in steps) and is checked as a window, the trimmed count is phase-free.",
    ),
    (
        "b-early-drop",
        "Conntrack-level replay of the udp-flood tuples (same index sequence, same rates). Which probe \
         finds an evictable entry in its 8 buckets depends on the hash key, random per boot and namespace; \
         how many probes meet a full table at all depends on the gc worker's phase: a failed early_drop \
         among the fill's last datagrams arms the 95 % trim, and a pass between the end of the fill and \
         the end of the probes kills down to 95 % of max, at most about 257 entries per arming at HZ 250, \
         and that many probes go in without early_drop or drop (re-recordings: 2 of 16 runs had such a \
         pass, 101 probes at max 2,000 and 257 at 20,000). So the rows are early_drop's share of \
         early_drop + drop (hash key) and early_drop + drop itself (gc phase; early_drop counts evicted \
         entries, so it can exceed the probes by one or two). The model runs 200 draws, a key each and gc \
         phases spread evenly over the 60 s idle interval; the recording is one draw and is compared with \
         the model's 0.5-99.5 % range (docs/oracle.md, Re-recording in CI).",
    ),
    (
        "c-tw-expiry",
        "Conntrack-level replay of the 50 connections with `nf_conntrack_tcp_timeout_time_wait` 10 or 20 s. \
         The time the count reaches 0 is the first gc pass after the last expiry, so it depends on the gc \
         phase: both values must fall within one gc interval (60 s + 1 s) of the expiry. That the entries \
         stay counted after expiry and leave in one step are phase-free.",
    ),
    (
        "d-udp-race",
        "NAT-level replay: per pair one fresh client port, two datagrams to VIP:53 with the recorded send \
         gap; the statistic rule picks a backend per new entry. Whether a pair races (both allocated and \
         DNATed on two CPUs before either confirms) comes from the race model (`conntrack::RaceModel`, \
         fitted to experiment k, `docs/model.md`, \"The insertion race\"), with one window factor drawn \
         per recording, at the gap between the starts of the two sends. d's tool stamped the ends (after \
         each `send()` returned), which include the variable rest of each packet's trip: in k, pairs race \
         at every end gap up to 60 µs, so the end gap does not carry the start gap. The two threads left a \
         spin barrier together, so a pair recorded under 1 ms apart (both threads ran, on two CPUs) is \
         replayed as started together, and one above 1 ms (a thread was descheduled in between) at its \
         recorded gap; sequential sends never race (one CPU). 40 seeds; the race-dependent counts are \
         compared with the model's 2.5-97.5 % range, which includes the period-to-period variation of \
         the window. Answers are sent back from the backend address and must be un-NATed to VIP:53.",
    ),
    (
        "e-snat-collision",
        "NAT-level replay with the recorded SNAT range; holds at their recorded times, `try` connections \
         one after the other as the model's own outcomes allow (each next one 1 µs after the previous \
         ended, so its SYN meets the previous entry mid-close, as in the recording). Whether a TIME_WAIT \
         holder is evicted depends on ISNs (random per connection) and the search's random start: 200 \
         seeds, recording compared with the model's 2.5-97.5 % range.",
    ),
    (
        "f-syn-schedule",
        "Socket-level: `SynTimer` (timer-wheel rounding at HZ 250) with the recorded `tcp_syn_retries` and \
         `tcp_syn_linear_timeouts`; SYN times relative to the first recorded SYN.",
    ),
    (
        "g-lazy-reap",
        "Conntrack-level replay of ballast (300 s timeout), the 2,840 entries with a 3 s timeout, the wait \
         and N new flows; survivors = count before minus after `conntrack -L`. The model's gc worker runs \
         at t = 0 and next at 60 s, so no pass falls in the window (the oracle retried attempts where one \
         did).",
    ),
    (
        "h-netns-max",
        "Conntrack-level: one table, two namespaces (nso-cli with conntrack but no nat table, nso-rtr with \
         null NAT bindings), one global max. The recording's two extra successful sends came from early \
         drop or a gc trim in nso-cli, whose timing the model does not share; the ±2 tolerance covers it.",
    ),
    (
        "i-storm-tw",
        "Two levels. `replay-*`: conntrack-level with the recorded start times and client ports. \
         `scenario-*`: `scenarios/validation/i-storm-r*.yaml` through `sim::run`, with the simulator's own \
         client ports and Poisson arrivals; counts are scaled to the recorded number of connections.",
    ),
    (
        "j-storm-snat",
        "NAT-level replay with recorded start times and ports, DNAT to the backend and SNAT to the \
         recorded range, client closes first; 20 seeds (ISNs, random search offsets).",
    ),
    (
        "k-race-gap",
        "Per pair the recorded gap and CPUs of the two sends decide, through the race model \
         (`conntrack::RaceModel::MEASURED_6_18`, fitted to these recordings and l: `docs/model.md`, \"The \
         insertion race\"), whether the pair races; one window factor is drawn per recording (the \
         machine's condition), then one Bernoulli draw per pair: 400 draws give the model's 2.5-97.5 % \
         range of raced pairs, in total and per gap target (pairs on two CPUs). Sends on one CPU (`same`, \
         `one-thread`, `sendmmsg`, and the scheduler's pairs that shared a CPU) never race. The \
         conntrack-level rows replay every pair through `nso-rtr`'s hooks (40 seeds): a racing pair is \
         allocated and DNATed twice before either confirms, on the 6.18 profile (clash_resolve, answers \
         un-NATed) and on the 5.4 profile, whose insert_failed is compared with what 5.4 would have \
         counted in the recording: the raced pairs whose two datagrams were answered by different \
         backends (one backend: none).",
    ),
    (
        "l-syn-race",
        "Per pair two SYNs (10.10.1.2:P and 10.10.1.3:P to 10.10.2.2:7070) through MASQUERADE to \
         10.10.2.1, which keeps P when the reply tuple is free. The race model's SNAT curve \
         (`RaceKind::SnatReply`: the second SYN's port choice in POSTROUTING before the first confirms) \
         decides at the recorded gap and CPUs which pairs race; a racing pair is NATed twice before either \
         confirms, so both keep P and the second loses at confirm (TCP allows no clash: insert_failed + \
         drop). Non-racing pairs see P taken and move the second to another port. 40 seeds, compared \
         with the model's 2.5-97.5 % range.",
    ),
    (
        "V04",
        "Socket-level: 200,000 connects per profile, each SYN dropped with probability 0.02, latency = \
         time of the first SYN that gets through plus 0.2 ms.",
    ),
    (
        "V23",
        "Scenario level: `scenarios/validation/v23-iptables-10k.yaml` (1,000 new connections/s, one \
         Service of 10 endpoints among 10,000 x 10), its keep-alive variant (pool of 10, 100 requests per \
         connection) and `kubeProxy.mode=ipvs`. CPU is the client node's packet-processing time from the \
         cost model, as a share of one core. The scenario carries its own `cost:` section calibrated to \
         Tigera's testbed (three figures fit three constants: keep-alive -> perPacket 8 µs, IPVS -> \
         perConntrackInsert 20 µs, iptables -> perRule 54 ns = (350 - 80) µs / 5,009 extra rules, the \
         rules this Service's first packet tests in our kube-proxy layout at the median KUBE-SERVICES \
         position (seed 80); Tigera's older layout evaluated ~20,000, hence the 13 ns default): the rows check the fit and the mode ordering, the \
         keep-alive ratio is the independent check. The crossover near 1,000 Services is not checked.",
    ),
    (
        "V01",
        "Conntrack-level on the 4.19 profile: k containers (own address each, own ephemeral sequence) open \
         TCP connections to one ip:port through MASQUERADE to the node address, 5 per second each at \
         random phases for 10 s; SYNs less than 2 µs apart race.",
    ),
];

/// The notes of a group.
pub(crate) fn group_notes(group: &str) -> impl Iterator<Item = &'static str> + '_ {
    GROUP_NOTES
        .iter()
        .filter(move |(g, _)| *g == group)
        .map(|(_, n)| *n)
}
