//! `k8s-netsim trace`: one connection's first packet, hop by hop, in the spirit of
//! `xtables-monitor --trace`: every namespace crossed, every table run with the rules
//! it evaluated and the one that decided, conntrack and NAT decisions, and the reply's
//! way back through the stored bindings.

use super::SimError;
use super::hops::{self, Hop, Hops, Step, Walked};
use super::world::{PodRole, World};
use crate::datapath::{Confirmed, DropReason, HalfVerdict, PathObserver};
use crate::netfilter::{
    CtStateMatch, EvalContext, EvalState, Evaluation, Hook, LocalAddrs, NatAction, TableKind, Trace, Verdict,
};
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::scenario::Scenario;
use crate::service::node::ProxyImpl;
use crate::service::proxy::FlowOrigin;
use crate::time::SimTime;
use crate::topology::{Forwarding, NetnsId, RouteDecision};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

/// What happened in one namespace, recorded while the datapath runs and rendered
/// afterwards (when the ruleset can be borrowed to print the matched rules).
enum Record {
    Table {
        hook: Hook,
        table: TableKind,
        summary: String,
        chains: Vec<(u32, u32, Option<u32>)>,
    },
    Note {
        hook: Hook,
        text: String,
    },
}

#[derive(Default)]
struct Recorder {
    steps: Vec<Record>,
}

impl PathObserver for Recorder {
    const TRACING: bool = true;

    fn table(&mut self, hook: Hook, table: TableKind, ev: &Evaluation, trace: Option<&Trace>) {
        let summary = format!(
            "{} rules evaluated -> {}{}{}",
            ev.rules_evaluated,
            verdict_text(ev.verdict),
            ev.nat.map(|n| format!(", {}", nat_text(n))).unwrap_or_default(),
            if ev.notrack { ", NOTRACK" } else { "" }
        );
        // Per chain visited, in order: (chain, rules tested, matched rule).
        let mut chains: Vec<(u32, u32, Option<u32>)> = Vec::new();
        if let Some(t) = trace {
            for s in &t.steps {
                let c = u32::try_from(s.chain.index()).unwrap_or(u32::MAX);
                match chains.last_mut() {
                    Some(last) if last.0 == c && last.2.is_none() => {
                        last.1 += 1;
                        if s.matched {
                            last.2 = Some(s.rule);
                        }
                    }
                    _ => chains.push((c, 1, s.matched.then_some(s.rule))),
                }
            }
        }
        self.steps.push(Record::Table {
            hook,
            table,
            summary,
            chains,
        });
    }

    fn note(&mut self, hook: Hook, text: std::fmt::Arguments<'_>) {
        self.steps.push(Record::Note {
            hook,
            text: text.to_string(),
        });
    }
}

/// `ACCEPT`, `DROP`, `REJECT`, as iptables prints targets.
fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Accept => "ACCEPT",
        Verdict::Drop => "DROP",
        Verdict::Reject => "REJECT",
    }
}

/// A NAT decision as iptables writes its target.
fn nat_text(n: NatAction) -> String {
    let ports = |p: Option<crate::netfilter::PortRange>| {
        p.map(|p| {
            if p.first == p.last {
                format!(":{}", p.first)
            } else {
                format!(":{}-{}", p.first, p.last)
            }
        })
        .unwrap_or_default()
    };
    match n {
        NatAction::Dnat { addr, port } => format!(
            "DNAT to {addr}{}",
            port.map(|p| format!(":{p}")).unwrap_or_default()
        ),
        NatAction::Snat { range } => {
            let addrs = if range.min_addr == range.max_addr {
                range.min_addr.to_string()
            } else {
                format!("{}-{}", range.min_addr, range.max_addr)
            };
            format!(
                "SNAT to {addrs}{}{}{}",
                ports(range.ports),
                if range.random { " --random" } else { "" },
                if range.random_fully { " --random-fully" } else { "" }
            )
        }
        NatAction::Masquerade {
            ports: p,
            random,
            random_fully,
        } => format!(
            "MASQUERADE{}{}{}",
            p.map(|_| format!(" --to-ports {}", &ports(p)[1..]))
                .unwrap_or_default(),
            if random { " --random" } else { "" },
            if random_fully { " --random-fully" } else { "" }
        ),
    }
}

fn render(rs: &crate::netfilter::Ruleset, steps: &[Record], out: &mut String) {
    for s in steps {
        match s {
            Record::Note { hook, text } => {
                let _ = writeln!(out, "    {:<11} {text}", hook.chain_name());
            }
            Record::Table {
                hook,
                table,
                summary,
                chains,
            } => {
                let _ = writeln!(out, "    {:<11} {table:<6} {summary}", hook.chain_name());
                let t = rs.table(*table);
                for (chain, tested, matched) in chains {
                    let Some(c) = t
                        .chains()
                        .find(|(id, _)| id.index() == *chain as usize)
                        .map(|(_, c)| c)
                    else {
                        continue;
                    };
                    match matched.and_then(|r| c.rules().get(r as usize).map(|rule| (r, rule))) {
                        Some((r, rule)) => {
                            let _ = writeln!(
                                out,
                                "      {:<28} {tested:>6} tested, matched #{}: {}",
                                c.name(),
                                r + 1,
                                crate::netfilter::export::rule_to_string(rs, *table, c.name(), rule)
                            );
                        }
                        None => {
                            let _ = writeln!(out, "      {:<28} {tested:>6} tested, none matched", c.name());
                        }
                    }
                }
            }
        }
    }
}

fn netns_label(world: &World, netns: NetnsId) -> String {
    let name = world
        .topo
        .netns(netns)
        .map_or("?", crate::topology::Netns::name)
        .to_string();
    match world.host_of_netns.get(netns.index()).copied().flatten() {
        Some(_) => format!("node {name} (host namespace)"),
        None => format!("pod {name}"),
    }
}

/// One packet's walk as `trace` runs it: every namespace and table written to `out`,
/// each new entry confirmed as soon as its first half ends (no concurrency).
struct TraceWalk<'a> {
    world: &'a mut World,
    rng: &'a mut SimRng,
    out: &'a mut String,
    /// Show the proxy data plane's rules for packets that open a flow (the first walk).
    explain: bool,
}

impl Hops for TraceWalk<'_> {
    type Suspend = std::convert::Infallible;

    fn world(&self) -> &World {
        self.world
    }

    fn entered(&mut self, hop: Hop, pkt: &Packet) {
        let label = netns_label(self.world, hop.netns);
        let dev = hop
            .in_dev
            .and_then(|d| self.world.topo.device(d))
            .map(|d| format!(" in {}", d.name()))
            .unwrap_or_default();
        let _ = writeln!(self.out, "  {label}{dev}: {}", pkt.tuple);
    }

    fn host(&mut self, node: u16, hop: Hop, pkt: Packet, t: SimTime) -> Step<Self::Suspend> {
        let n = usize::from(node);
        if self.explain {
            let origin = if hop.in_dev.is_none() {
                FlowOrigin::Host
            } else {
                FlowOrigin::Pod
            };
            explain_proxy(self.world, n, origin, &pkt, t, self.out);
        }
        let mut rec = Recorder::default();
        let world = &mut *self.world;
        let node_ref = &mut world.nodes[n];
        let half = node_ref.host.first_half(
            &mut node_ref.ct,
            &world.topo,
            hop.entry(&world.topo),
            pkt,
            0,
            self.rng,
            t,
            &mut rec,
        );
        let confirmed = node_ref.host.confirm(&mut node_ref.ct, &half, 0, t, &mut rec);
        render(&world.nodes[n].host.ruleset, &rec.steps, self.out);
        let _ = writeln!(
            self.out,
            "    total: {} rules evaluated in this namespace",
            half.rules_evaluated
        );
        if let Confirmed::Dropped(reason) = confirmed {
            let _ = writeln!(self.out, "  DROPPED at confirm: {}", reason.describe());
            return Step::Dropped {
                node: Some(node),
                reason,
            };
        }
        match half.verdict {
            HalfVerdict::Dropped(reason) => {
                let _ = writeln!(self.out, "  DROPPED: {}", reason.describe());
                Step::Dropped {
                    node: Some(node),
                    reason,
                }
            }
            HalfVerdict::Local => Step::Delivered { pkt: half.pkt, t },
            HalfVerdict::Forward { decision } => Step::Forward {
                pkt: half.pkt,
                t,
                decision,
            },
        }
    }

    fn routed(&mut self, decision: &RouteDecision) {
        match decision {
            RouteDecision::Local { .. } => {}
            RouteDecision::Forward(_) => {
                let _ = writeln!(
                    self.out,
                    "    OUTPUT, POSTROUTING: no rules, no conntrack in this namespace"
                );
            }
            RouteDecision::Unreachable(u) => {
                let _ = writeln!(self.out, "  UNREACHABLE: {}", unreachable_text(*u));
            }
        }
    }

    fn leaves(&mut self, decision: &Forwarding) {
        let out_name = self
            .world
            .topo
            .device(decision.out_dev)
            .map_or("?", crate::topology::Device::name)
            .to_string();
        let encap = match decision.encap {
            crate::topology::Encap::None => String::new(),
            e @ crate::topology::Encap::Vxlan => format!(" (VXLAN, +{} bytes)", e.overhead_bytes()),
            e @ crate::topology::Encap::Ipip => format!(" (IP-in-IP, +{} bytes)", e.overhead_bytes()),
        };
        let _ = writeln!(self.out, "    -> out {out_name}{encap}");
    }
}

/// Why a route lookup failed, as `ip route get` would say it.
fn unreachable_text(u: crate::topology::Unreachable) -> &'static str {
    match u {
        crate::topology::Unreachable::NoRoute => "no route (ENETUNREACH)",
        crate::topology::Unreachable::Blackhole => "blackhole route",
        crate::topology::Unreachable::NoNeighbour => "no neighbour answers for the next hop (EHOSTUNREACH)",
    }
}

/// The rules a node's proxy data plane tests for a packet that opens a flow, chain by
/// chain: nftables' base and regular chains (replayed on a copy of the data plane's random
/// stream, so the choice shown is the one the packet gets), IPVS mode's ipset-matched
/// iptables rules. iptables mode needs nothing here: its rules are the namespace's
/// tables, shown with them.
fn explain_proxy(
    world: &mut World,
    n: usize,
    origin: FlowOrigin,
    pkt: &Packet,
    t: SimTime,
    out: &mut String,
) {
    let node_ip = world.nodes[n].host.local.0.clone();
    let Some(np) = world.nodes[n].host.proxy.as_mut() else {
        return;
    };
    let hook = match origin {
        FlowOrigin::Host => Hook::Output,
        FlowOrigin::Pod => Hook::Prerouting,
    };
    let mut rng = np.rng.clone();
    match &mut np.imp {
        ProxyImpl::Nftables(p) => {
            let (fp, steps) = p.first_packet_explained(origin, pkt.tuple, &mut rng, t);
            let _ = writeln!(
                out,
                "    {:<11} nftables table ip kube-proxy: {} rules tested, base chains {}",
                hook.chain_name(),
                fp.cost.rules_evaluated,
                match fp.note {
                    crate::service::proxy::ModeNote::Nftables { base_chains } => base_chains.to_string(),
                    _ => String::new(),
                }
            );
            for st in steps {
                match &st.matched {
                    Some((pos, rule)) => {
                        let _ = writeln!(
                            out,
                            "      {:<28} {:>6} tested, matched #{pos}: {rule}",
                            st.label(),
                            st.tested
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "      {:<28} {:>6} tested, none matched",
                            st.label(),
                            st.tested
                        );
                    }
                }
            }
        }
        ProxyImpl::Ipvs(p) => {
            let rs = p.ruleset();
            let mut local = node_ip;
            local.push(pkt.tuple.dst);
            let local = LocalAddrs(local);
            let mut state = EvalState::new();
            let mut records = Vec::new();
            let filter_hook = match origin {
                FlowOrigin::Host => Hook::Output,
                FlowOrigin::Pod => Hook::Input,
            };
            for (table, h) in [(TableKind::Nat, hook), (TableKind::Filter, filter_hook)] {
                let cx = EvalContext::new(CtStateMatch::NEW, &local, t);
                let (ev, trace) = rs.evaluate_traced(table, h, pkt, &cx, &mut state, &mut rng);
                let mut rec = Recorder::default();
                rec.table(h, table, &ev, Some(&trace));
                records.extend(rec.steps);
            }
            let _ = writeln!(
                out,
                "    IPVS mode's iptables rules (ipsets; the virtual server then picks the real server):"
            );
            render(rs, &records, out);
        }
        ProxyImpl::Ebpf(_) => {}
    }
}

/// Walks `pkt` from `from` and writes every step into `out`; returns the namespace where it
/// was delivered and the packet as delivered.
fn walk(
    world: &mut World,
    from: NetnsId,
    pkt: Packet,
    rng: &mut SimRng,
    out: &mut String,
    explain: bool,
) -> Option<(NetnsId, Packet)> {
    let mut w = TraceWalk {
        world,
        rng,
        out,
        explain,
    };
    match hops::walk(&mut w, Hop::origin(from), pkt, SimTime::ZERO) {
        Walked::Delivered { netns, pkt, .. } => Some((netns, pkt)),
        Walked::Dropped {
            reason: DropReason::LeftCluster,
            ..
        } => {
            let _ = writeln!(w.out, "  leaves the cluster");
            None
        }
        Walked::Dropped {
            reason: DropReason::RoutingLoop,
            ..
        } => {
            let _ = writeln!(w.out, "  DROPPED: routing loop");
            None
        }
        Walked::Dropped { .. } => None,
        Walked::Suspended(never) => match never {},
    }
}

/// Traces a connection's first packet from client pod `from` (or, given a node's name,
/// from that node's host namespace and address, entering at OUTPUT) to `to` (`SERVICE:PORT`,
/// `SERVICE.NS:PORT` or `IP:PORT`) and its answer back, on a fresh copy of the
/// scenario's world: a TCP SYN and SYN-ACK, or a UDP datagram and its reply. `proto`
/// defaults to the Service port's protocol (TCP for `IP:PORT`); a Service port of
/// another protocol is refused, naming the one it has.
///
/// # Errors
/// [`SimError::UnknownName`] for an unknown pod or destination, or a protocol the
/// Service port does not serve.
pub fn trace(scenario: &Scenario, from: &str, to: &str, proto: Option<Proto>) -> Result<String, SimError> {
    let mut world = World::build(scenario)?;
    let client = world.topo.netns_by_name(from).filter(|n| {
        matches!(
            world
                .pod_of_netns
                .get(n.index())
                .copied()
                .flatten()
                .map(|p| world.pods[p as usize].role),
            Some(PodRole::Client { .. })
        )
    });
    // A node's name: a host-network flow, from the node's own address through OUTPUT.
    let host = scenario.nodes.iter().find(|n| n.name == from).and_then(|n| {
        world
            .topo
            .netns_by_name(&n.name)
            .filter(|ns| world.host_of(*ns).is_some())
            .map(|ns| (ns, n.ip))
    });
    let (from_netns, src_ip) = match (client, host) {
        (Some(ns), _) => (
            ns,
            world.pods[world.pod_of_netns[ns.index()].unwrap_or(0) as usize].ip,
        ),
        (None, Some(h)) => h,
        (None, None) => return Err(unknown_pod(&world, scenario, from)),
    };
    let (dst, proto) = resolve_target(scenario, to, proto)?;
    let mut rng = SimRng::stream(scenario.seed, "trace");
    let sport = 40_000;
    let tuple = Tuple::new(proto, src_ip, sport, *dst.ip(), dst.port());
    let (first, answer, flags, answer_flags) = match proto {
        Proto::Udp => ("UDP", "reply", TcpFlags::NONE, TcpFlags::NONE),
        _ => ("SYN", "SYN-ACK", TcpFlags::SYN, TcpFlags::SYN_ACK),
    };
    let mut out = String::new();
    let _ = writeln!(out, "{first} {tuple}");
    let Some((at, delivered)) = walk(
        &mut world,
        from_netns,
        Packet::new(tuple, flags),
        &mut rng,
        &mut out,
        true,
    ) else {
        return Ok(out);
    };
    let _ = writeln!(
        out,
        "  delivered to {} as {}",
        netns_label(&world, at),
        delivered.tuple
    );
    let _ = writeln!(out, "\n{answer} {}", delivered.tuple.reversed());
    if let Some((back, pkt)) = walk(
        &mut world,
        at,
        Packet::new(delivered.tuple.reversed(), answer_flags),
        &mut rng,
        &mut out,
        false,
    ) {
        let _ = writeln!(
            out,
            "  delivered to {} as {}",
            netns_label(&world, back),
            pkt.tuple
        );
        let ok = pkt.tuple == tuple.reversed();
        let _ = writeln!(
            out,
            "  reply un-NAT {}: the client sees {}:{} answering",
            if ok {
                "restores the original tuple"
            } else {
                "does NOT restore the original tuple"
            },
            pkt.tuple.src,
            pkt.tuple.sport
        );
    }
    Ok(out)
}

/// `--from` names no client pod: suggest the client pods, those whose name is closest
/// first (a case-insensitive match, then a shared prefix).
fn unknown_pod(world: &World, scenario: &Scenario, from: &str) -> SimError {
    let mut names: Vec<String> = world
        .pods
        .iter()
        .filter(|p| matches!(p.role, PodRole::Client { .. }))
        .filter_map(|p| world.topo.netns(p.netns).map(|n| n.name().to_owned()))
        .collect();
    let lower = from.to_ascii_lowercase();
    let score = |n: &String| {
        let nl = n.to_ascii_lowercase();
        let common = nl.chars().zip(lower.chars()).take_while(|(a, b)| a == b).count();
        (nl != lower, usize::MAX - common)
    };
    names.sort_by_key(|n| score(n));
    let hint = match names.first() {
        Some(n) if n.eq_ignore_ascii_case(from) => format!(" (did you mean `{n}`?)"),
        _ => String::new(),
    };
    let workloads: Vec<String> = scenario
        .workloads
        .iter()
        .map(|w| {
            let on: Vec<&str> = w.nodes.iter().map(|n| scenario.node(*n).name.as_str()).collect();
            format!(
                "{}-0..{}-{} on {} {}",
                w.name,
                w.name,
                w.pods.len().saturating_sub(1),
                if on.len() == 1 { "node" } else { "nodes" },
                on.join(", ")
            )
        })
        .collect();
    SimError::UnknownName {
        flag: "--from",
        message: format!(
            "no client pod or node named `{from}`{hint}; client pods are {}; a node's name ({}) traces a host-network flow",
            workloads.join(", "),
            scenario
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .trim_end()
        .to_owned(),
    }
}

fn resolve_target(
    scenario: &Scenario,
    to: &str,
    proto: Option<Proto>,
) -> Result<(SocketAddrV4, Proto), SimError> {
    if let Ok(a) = to.parse::<SocketAddrV4>() {
        return Ok((a, proto.unwrap_or(Proto::Tcp)));
    }
    let (name, port) = to
        .rsplit_once(':')
        .ok_or_else(|| to_error(to, "expected SERVICE:PORT or IP:PORT".into()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| to_error(to, format!("`{port}` is not a port")))?;
    let (svc, ns) = match name.split_once('.') {
        Some((s, n)) => (s, Some(n)),
        None => (name, None),
    };
    let s = scenario
        .services
        .iter()
        .find(|s| s.name == svc && ns.is_none_or(|n| s.namespace == n))
        .ok_or_else(|| to_error(to, format!("no Service `{name}` in the scenario")))?;
    let p = s
        .ports
        .iter()
        .find(|p| p.port == port && proto.is_none_or(|x| x == p.protocol))
        .ok_or_else(|| match (proto, s.ports.iter().find(|p| p.port == port)) {
            (Some(want), Some(have)) => to_error(
                to,
                format!(
                    "Service `{}` port {port} is {}, not {}; use --proto {}",
                    s.name,
                    have.protocol.as_str().to_ascii_uppercase(),
                    want.as_str().to_ascii_uppercase(),
                    have.protocol.as_str()
                ),
            ),
            _ => to_error(to, format!("Service `{}` has no port {port}", s.name)),
        })?;
    let addr = match s.cluster_ip {
        Some(ip) => SocketAddrV4::new(ip, p.port),
        None => SocketAddrV4::new(
            s.endpoints.first().map_or(Ipv4Addr::UNSPECIFIED, |e| e.ip),
            p.target_port,
        ),
    };
    Ok((addr, p.protocol))
}

fn to_error(to: &str, what: String) -> SimError {
    SimError::UnknownName {
        flag: "--to",
        message: format!("`{to}`: {what}"),
    }
}
