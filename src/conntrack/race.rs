//! The insertion race: does the second of two packets that need the same conntrack
//! slot reach its deciding hook before the first packet is confirmed?
//!
//! A new entry is allocated at the first conntrack hook and becomes visible to other
//! CPUs only at `__nf_conntrack_confirm`, the last hook (kernel-semantics.md §Allocation and confirm). Two
//! packets processed on different CPUs inside that window both miss each other and
//! meet at confirm, where the clash is resolved (`clash_resolve`) or the loser dropped
//! (`insert_failed` + `drop`); which of these the table decides, this module only
//! decides *whether* the pair races. Packets handled one after the other on one CPU
//! never race: a local sender's packet crosses the veth into the host namespace in the
//! softirq of its own CPU before `send()` returns, so one thread's two sends (two
//! `send()`s or one `sendmmsg()`, as glibc's and musl's resolvers do) are serialised.
//!
//! The window is not a constant: it is the first packet's trip through the stack,
//! which varies packet by packet and from one period to the next with what else the
//! machine does. It is modelled as a fitted curve per kind ([`RaceCurve`]: a Weibull
//! window scaled by a per-period [`WindowFactor`]), measured on a real 6.18 kernel
//! (2 vCPUs) by the oracle experiments `k-race-gap` and `l-syn-race`
//! (`validation/traces/`, `docs/model.md`, "The insertion race"). The model is pure:
//! every draw comes from the caller's seeded stream.

use crate::rng::SimRng;
use crate::time::SimDuration;

/// How the two sending threads of a pair sit on CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadPlacement {
    /// One CPU: one thread sending both (back-to-back `send()`s or one `sendmmsg()`,
    /// glibc and musl), or two threads pinned to one CPU. Never races.
    Same,
    /// Two threads pinned to two different CPUs.
    Different,
    /// Two threads the scheduler places: each on a CPU drawn independently and
    /// uniformly among the node's CPUs, so they share one with probability 1 / CPUs.
    Scheduler,
}

impl ThreadPlacement {
    /// The name used in scenario files and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ThreadPlacement::Same => "same",
            ThreadPlacement::Different => "different",
            ThreadPlacement::Scheduler => "scheduler",
        }
    }

    /// Parses [`ThreadPlacement::name`].
    #[must_use]
    pub fn parse(text: &str) -> Option<ThreadPlacement> {
        match text {
            "same" => Some(ThreadPlacement::Same),
            "different" => Some(ThreadPlacement::Different),
            "scheduler" => Some(ThreadPlacement::Scheduler),
            _ => None,
        }
    }
}

/// The mechanism behind one clash at confirm (`insert_failed` or `clash_resolve`), in
/// operators' terms: what two packets met, and why their entries collided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClashKind {
    /// Two packets of one UDP socket (a resolver's A/AAAA pair) raced and were DNATed
    /// to different backends: the entries share the ORIGINAL tuple but not the reply.
    UdpPairDifferentBackends,
    /// Two packets of one UDP socket raced and got the same translation (same backend,
    /// or no NAT): identical entries, merged where the kernel allows.
    UdpPairSameBackend,
    /// Two flows that SNAT/MASQUERADE mapped to one reply tuple (the XING race: each
    /// kept or picked a source port the other's unconfirmed entry also held).
    SnatPortCollision,
    /// A TCP packet whose original tuple a confirmed entry already held (two SYNs of one
    /// tuple, a port reused while the old entry lived), without source NAT.
    TcpTupleReuse,
    /// A hash chain walked at confirm was longer than the kernel's limit (6.x).
    HashChainTooLong,
}

impl ClashKind {
    /// The name used in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ClashKind::UdpPairDifferentBackends => "udp-pair-different-backends",
            ClashKind::UdpPairSameBackend => "udp-pair-same-backend",
            ClashKind::SnatPortCollision => "snat-port-collision",
            ClashKind::TcpTupleReuse => "tcp-tuple-reuse",
            ClashKind::HashChainTooLong => "hash-chain-too-long",
        }
    }

    /// One line on the mechanism.
    #[must_use]
    pub fn mechanism(self) -> &'static str {
        match self {
            ClashKind::UdpPairDifferentBackends => {
                "a UDP pair from one socket (DNS A/AAAA) raced and was DNATed to different backends"
            }
            ClashKind::UdpPairSameBackend => {
                "a UDP pair from one socket (DNS A/AAAA) raced and was DNATed to the same backend"
            }
            ClashKind::SnatPortCollision => {
                "two flows SNATed to the same reply tuple (port collision, the XING race)"
            }
            ClashKind::TcpTupleReuse => "a TCP SYN met an entry holding its original tuple",
            ClashKind::HashChainTooLong => "a conntrack hash chain over the kernel's length limit at confirm",
        }
    }

    /// Classifies a clash from the loser's entry as it was before confirm and what
    /// confirm did: `merged_into_other` when the packet went on in another (the
    /// winner's) entry, `dropped` when it was dropped for the clash, `chain_too_long`
    /// when the walk hit the chain limit.
    #[must_use]
    pub fn classify(
        proto: crate::packet::Proto,
        src_nat: bool,
        merged_into_other: bool,
        chain_too_long: bool,
    ) -> ClashKind {
        use crate::packet::Proto;
        if chain_too_long {
            return ClashKind::HashChainTooLong;
        }
        if src_nat {
            return ClashKind::SnatPortCollision;
        }
        match proto {
            // A merge needs identical translations (`nf_ct_match`); a reply-only insert
            // (6.x) or a drop (5.4) follows from different ones.
            Proto::Udp if merged_into_other => ClashKind::UdpPairSameBackend,
            Proto::Udp => ClashKind::UdpPairDifferentBackends,
            _ => ClashKind::TcpTupleReuse,
        }
    }
}

/// Which window a pair can race in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RaceKind {
    /// Both packets create the same entry (same original tuple: the A and AAAA
    /// queries of one UDP socket). The second misses at its *first* hook (the lookup
    /// in `nf_conntrack_in`) while the first is unconfirmed: the window is the first
    /// packet's whole trip from `__nf_conntrack_alloc` to `__nf_conntrack_confirm`.
    SameTuple,
    /// Two different flows that SNAT/MASQUERADE maps to one reply tuple (the XING
    /// race: two containers' SYNs with the same source port). The second's port
    /// choice in POSTROUTING (`nf_nat_used_tuple`) must come before the first's
    /// confirm: only the tail of the trip, a much shorter window.
    SnatReply,
}

/// How fast the machine processes packets in a period, as a factor on the window:
/// 1 is the median condition the curves were fitted around, 2 a period in which
/// every packet's trip takes twice as long (a busier CPU, a preempted vCPU).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct WindowFactor(pub f64);

impl WindowFactor {
    /// The median condition.
    pub const TYPICAL: WindowFactor = WindowFactor(1.0);
}

/// Quadrature of a standard normal: 33 points on [-4, 4] with normalised density
/// weights (exact to ~1e-4 for the smooth integrands used here).
fn normal_nodes() -> [(f64, f64); 33] {
    let mut nodes = [(0.0, 0.0); 33];
    let mut total = 0.0;
    for (k, n) in nodes.iter_mut().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let z = -4.0 + 0.25 * k as f64;
        let w = (-0.5 * z * z).exp();
        *n = (z, w);
        total += w;
    }
    for n in &mut nodes {
        n.1 /= total;
    }
    nodes
}

/// The race probability of two packets on two different CPUs as a function of the
/// gap between their sends.
///
/// In a period whose [`WindowFactor`] is `f`, two sends `gap` apart race with
/// probability `in_flight(f) × exp(-(gap / (f × scale))^shape)`: the survival
/// function of a Weibull-distributed window (how long the first packet stays
/// unconfirmed, seen from the second sender), times the probability `in_flight(f)`
/// that both packets were processed as they were sent (a packet delayed between its
/// send and the first hook, e.g. its thread interrupted, misses the pairing even at
/// gap 0), with `logit in_flight(f) = logit in_flight + in_flight_slope × ln f` (the
/// recordings with longer windows also pair more often at gap 0). The factor varies
/// from period to period with what else the machine does: `ln f` is normal with
/// standard deviation `factor_sigma`. [`RaceCurve::probability`] is the average over
/// periods.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RaceCurve {
    /// Race probability at gap 0 in the median period (`f` = 1).
    pub in_flight: f64,
    /// Change of `logit in_flight` per unit of `ln f`.
    pub in_flight_slope: f64,
    /// Weibull scale of the window in the median period, nanoseconds.
    pub scale_ns: f64,
    /// Weibull shape (above 1: a plateau, then a fall).
    pub shape: f64,
    /// Standard deviation of `ln f` between periods.
    pub factor_sigma: f64,
}

impl RaceCurve {
    /// The race probability of two sends `gap` apart (either order) on two
    /// different CPUs in a period with window factor `f`.
    #[must_use]
    pub fn probability_given(&self, gap: SimDuration, f: WindowFactor) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let g = gap.as_nanos() as f64;
        self.in_flight_given(f) * (-(g / (f.0 * self.scale_ns)).powf(self.shape)).exp()
    }

    /// `in_flight(f)`: the race probability at gap 0 in a period with factor `f`.
    #[must_use]
    pub fn in_flight_given(&self, f: WindowFactor) -> f64 {
        let p = self.in_flight.clamp(1e-9, 1.0 - 1e-9);
        let logit = (p / (1.0 - p)).ln() + self.in_flight_slope * f.0.max(1e-9).ln();
        1.0 / (1.0 + (-logit).exp())
    }

    /// The race probability averaged over periods (the window factor unknown).
    #[must_use]
    pub fn probability(&self, gap: SimDuration) -> f64 {
        normal_nodes()
            .iter()
            .map(|(z, w)| w * self.probability_given(gap, WindowFactor((self.factor_sigma * z).exp())))
            .sum()
    }

    /// The window's median in the median period, nanoseconds.
    #[must_use]
    pub fn median_window_ns(&self) -> f64 {
        self.scale_ns * std::f64::consts::LN_2.powf(1.0 / self.shape)
    }

    /// Draws the window factor of one period.
    pub fn draw_factor(&self, rng: &mut SimRng) -> WindowFactor {
        WindowFactor((self.factor_sigma * rng.standard_normal()).exp())
    }

    /// Draws one window in a period with factor `f`: `None` when the packets were
    /// not both in flight (no race at any gap), else the window length.
    pub fn draw_window(&self, f: WindowFactor, rng: &mut SimRng) -> Option<SimDuration> {
        if !rng.chance(self.in_flight_given(f)) {
            return None;
        }
        let u = 1.0 - rng.unit(); // (0, 1]
        let w = f.0 * self.scale_ns * (-u.ln()).powf(1.0 / self.shape);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(SimDuration::from_nanos(w.min(1e15) as u64))
    }
}

/// The race model: one curve per kind for two sends on different CPUs, and the
/// placement rule for CPUs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RaceModel {
    /// Same-tuple pairs (UDP A/AAAA from one socket).
    pub same_tuple: RaceCurve,
    /// SNAT reply-tuple pairs (the XING race).
    pub snat_reply: RaceCurve,
}

impl RaceModel {
    /// Fitted to `validation/traces/k-race-gap` and `l-syn-race` (Linux 6.18.44,
    /// 2 vCPUs, a machine shared with other jobs: load averages in the meta.json);
    /// `tests/it/race_fit.rs` refits them from the recordings and checks these values.
    pub const MEASURED_6_18: RaceModel = RaceModel {
        same_tuple: RaceCurve {
            in_flight: 0.952,
            in_flight_slope: 8.899,
            scale_ns: 8_780.0,
            shape: 1.21,
            factor_sigma: 0.217,
        },
        snat_reply: RaceCurve {
            in_flight: 1.0,
            in_flight_slope: 8.899,
            scale_ns: 565.0,
            shape: 0.501,
            factor_sigma: 0.217,
        },
    };

    /// The curve of `kind`.
    #[must_use]
    pub fn curve(&self, kind: RaceKind) -> &RaceCurve {
        match kind {
            RaceKind::SameTuple => &self.same_tuple,
            RaceKind::SnatReply => &self.snat_reply,
        }
    }

    /// The CPUs of the two sends under `placement` on a node with `cpus` CPUs
    /// (`Different` takes CPUs 0 and 1; one CPU makes every placement `Same`). Draws
    /// from `rng` only for [`ThreadPlacement::Scheduler`].
    pub fn cpus(&self, placement: ThreadPlacement, cpus: u16, rng: &mut SimRng) -> [u16; 2] {
        let n = u64::from(cpus.max(1));
        match placement {
            _ if n == 1 => [0, 0],
            ThreadPlacement::Same => [0, 0],
            ThreadPlacement::Different => [0, 1],
            ThreadPlacement::Scheduler => {
                let a = u16::try_from(rng.below(n)).unwrap_or(0);
                let b = u16::try_from(rng.below(n)).unwrap_or(0);
                [a, b]
            }
        }
    }

    /// The probability that the pair races, given the CPUs its sends ran on, the gap
    /// between them (either order) and the period's window factor: 0 on one CPU.
    #[must_use]
    pub fn race_probability(&self, kind: RaceKind, cpus: [u16; 2], gap: SimDuration, f: WindowFactor) -> f64 {
        if cpus[0] == cpus[1] {
            return 0.0;
        }
        self.curve(kind).probability_given(gap, f)
    }

    /// The race probability of a pair under `placement` on a node with `node_cpus`
    /// CPUs, averaged over CPU draws and periods (the scheduler shares a CPU with
    /// probability 1 / CPUs).
    #[must_use]
    pub fn expected_probability(
        &self,
        kind: RaceKind,
        placement: ThreadPlacement,
        node_cpus: u16,
        gap: SimDuration,
    ) -> f64 {
        let n = f64::from(node_cpus.max(1));
        let p_different = match placement {
            _ if node_cpus <= 1 => 0.0,
            ThreadPlacement::Same => 0.0,
            ThreadPlacement::Different => 1.0,
            ThreadPlacement::Scheduler => 1.0 - 1.0 / n,
        };
        p_different * self.curve(kind).probability(gap)
    }

    /// Does the second packet race the first? `cpus` from [`RaceModel::cpus`] (or as
    /// recorded), `gap` between the two sends, `f` the period's factor (from
    /// [`RaceCurve::draw_factor`], or [`WindowFactor::TYPICAL`]); one draw from `rng`
    /// when the sends are on different CPUs, none otherwise.
    pub fn races(
        &self,
        kind: RaceKind,
        cpus: [u16; 2],
        gap: SimDuration,
        f: WindowFactor,
        rng: &mut SimRng,
    ) -> bool {
        let p = self.race_probability(kind, cpus, gap, f);
        p > 0.0 && rng.chance(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: RaceModel = RaceModel::MEASURED_6_18;
    const F1: WindowFactor = WindowFactor::TYPICAL;

    #[test]
    fn one_cpu_never_races() {
        let mut rng = SimRng::from_seed(1);
        for kind in [RaceKind::SameTuple, RaceKind::SnatReply] {
            assert!(!M.races(kind, [1, 1], SimDuration::ZERO, F1, &mut rng));
        }
        assert_eq!(M.cpus(ThreadPlacement::Same, 8, &mut rng), [0, 0]);
        assert_eq!(M.cpus(ThreadPlacement::Different, 8, &mut rng), [0, 1]);
        assert_eq!(M.cpus(ThreadPlacement::Different, 1, &mut rng), [0, 0]);
        assert_eq!(
            M.expected_probability(RaceKind::SameTuple, ThreadPlacement::Same, 8, SimDuration::ZERO),
            0.0
        );
    }

    #[test]
    fn the_race_probability_falls_with_the_gap() {
        let c = M.same_tuple;
        assert!((c.probability_given(SimDuration::ZERO, F1) - c.in_flight).abs() < 1e-12);
        let avg = c.probability(SimDuration::ZERO);
        assert!(avg > 0.0 && avg < 1.0);
        let mut last = 1.0;
        for us in [1, 5, 10, 20, 40, 80] {
            let p = c.probability(SimDuration::from_micros(us));
            assert!(p < last, "{us} µs: {p} not below {last}");
            last = p;
        }
        // The SNAT window (POSTROUTING to confirm) is the shorter one.
        let g = SimDuration::from_micros(3);
        assert!(M.snat_reply.probability(g) < c.probability(g));
        // A slower period widens the window.
        assert!(c.probability_given(g, WindowFactor(2.0)) > c.probability_given(g, F1));
    }

    #[test]
    fn drawn_windows_follow_the_curve() {
        let c = M.same_tuple;
        let mut rng = SimRng::from_seed(7);
        let gap = SimDuration::from_nanos(c.median_window_ns() as u64);
        let n = 40_000;
        let hits = (0..n)
            .filter(|_| c.draw_window(F1, &mut rng).is_some_and(|w| w > gap))
            .count();
        let p = hits as f64 / f64::from(n);
        assert!((p - c.probability_given(gap, F1)).abs() < 0.01);
        // The gap is the median rounded down to whole nanoseconds (the curve falls by
        // about 6e-5 per nanosecond there).
        assert!((c.probability_given(gap, F1) - c.in_flight_given(F1) / 2.0).abs() < 1e-4);
        assert!((c.in_flight_given(F1) - c.in_flight).abs() < 1e-9);
        // Averaged over drawn factors, the marginal curve.
        let hits = (0..n)
            .filter(|_| {
                let f = c.draw_factor(&mut rng);
                c.draw_window(f, &mut rng).is_some_and(|w| w > gap)
            })
            .count();
        let p = hits as f64 / f64::from(n);
        assert!(
            (p - c.probability(gap)).abs() < 0.01,
            "{p} vs {}",
            c.probability(gap)
        );
    }

    #[test]
    fn the_scheduler_shares_a_cpu_one_time_in_cpus() {
        let mut rng = SimRng::from_seed(3);
        let n = 20_000;
        let shared = (0..n)
            .filter(|_| {
                let c = M.cpus(ThreadPlacement::Scheduler, 4, &mut rng);
                c[0] == c[1]
            })
            .count();
        assert!((shared as f64 / f64::from(n) - 0.25).abs() < 0.015);
        let g = SimDuration::from_micros(2);
        let e = M.expected_probability(RaceKind::SameTuple, ThreadPlacement::Scheduler, 4, g);
        assert!((e - 0.75 * M.same_tuple.probability(g)).abs() < 1e-12);
    }

    #[test]
    fn placements_round_trip_their_names() {
        for p in [
            ThreadPlacement::Same,
            ThreadPlacement::Different,
            ThreadPlacement::Scheduler,
        ] {
            assert_eq!(ThreadPlacement::parse(p.name()), Some(p));
        }
        assert_eq!(ThreadPlacement::parse("pinned"), None);
    }

    #[test]
    fn clash_kinds_follow_proto_nat_and_outcome() {
        use crate::packet::Proto;
        let k = ClashKind::classify;
        assert_eq!(
            k(Proto::Udp, false, false, false),
            ClashKind::UdpPairDifferentBackends
        );
        assert_eq!(k(Proto::Udp, false, true, false), ClashKind::UdpPairSameBackend);
        assert_eq!(k(Proto::Tcp, true, false, false), ClashKind::SnatPortCollision);
        assert_eq!(k(Proto::Udp, true, true, false), ClashKind::SnatPortCollision);
        assert_eq!(k(Proto::Tcp, false, false, false), ClashKind::TcpTupleReuse);
        assert_eq!(k(Proto::Tcp, true, false, true), ClashKind::HashChainTooLong);
        for kind in [
            ClashKind::UdpPairDifferentBackends,
            ClashKind::UdpPairSameBackend,
            ClashKind::SnatPortCollision,
            ClashKind::TcpTupleReuse,
            ClashKind::HashChainTooLong,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }
}
