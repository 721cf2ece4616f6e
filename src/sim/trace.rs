//! `k8s-netsim trace`: one connection's first packet, hop by hop, in the spirit of
//! `xtables-monitor --trace`: every namespace crossed, every table run with the rules
//! it evaluated and the one that decided, conntrack and NAT decisions, and the reply's
//! way back through the stored bindings.

use super::SimError;
use super::hops::{self, Hop, Hops, Step, Walked};
use super::world::World;
use crate::datapath::{Confirmed, DropReason, HalfVerdict, PathObserver};
use crate::netfilter::{Evaluation, Hook, TableKind, Trace};
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::scenario::Scenario;
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
            "{} rules evaluated -> {:?}{}{}",
            ev.rules_evaluated,
            ev.verdict,
            ev.nat.map(|n| format!(", {n:?}")).unwrap_or_default(),
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
                let _ = writeln!(self.out, "  UNREACHABLE: {u:?}");
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
            e => format!(" ({e:?}, +{} bytes)", e.overhead_bytes()),
        };
        let _ = writeln!(self.out, "    -> out {out_name}{encap}");
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
) -> Option<(NetnsId, Packet)> {
    let mut w = TraceWalk { world, rng, out };
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

/// Traces a TCP connection's SYN from pod `from` to `to` (`SERVICE:PORT`, `SERVICE.NS:PORT`
/// or `IP:PORT`) and its SYN-ACK back, on a fresh copy of the scenario's world.
///
/// # Errors
/// [`SimError::UnknownName`] for an unknown pod or destination.
pub fn trace(scenario: &Scenario, from: &str, to: &str) -> Result<String, SimError> {
    let mut world = World::build(scenario)?;
    let from_netns = world
        .topo
        .netns_by_name(from)
        .filter(|n| world.pod_of_netns.get(n.index()).copied().flatten().is_some())
        .ok_or_else(|| {
            let pods: Vec<&str> = world
                .pods
                .iter()
                .take(3)
                .filter_map(|p| world.topo.netns(p.netns).map(crate::topology::Netns::name))
                .collect();
            SimError::UnknownName {
                flag: "--from",
                message: format!("no pod named `{from}` (pods are named like {})", pods.join(", ")),
            }
        })?;
    let dst = resolve_target(scenario, to)?;
    let pod_ip = world.pods[world.pod_of_netns[from_netns.index()].unwrap_or(0) as usize].ip;
    let mut rng = SimRng::stream(scenario.seed, "trace");
    let sport = 40_000;
    let tuple = Tuple::new(Proto::Tcp, pod_ip, sport, *dst.ip(), dst.port());
    let mut out = String::new();
    let _ = writeln!(out, "SYN {tuple}");
    let Some((at, delivered)) = walk(
        &mut world,
        from_netns,
        Packet::new(tuple, TcpFlags::SYN),
        &mut rng,
        &mut out,
    ) else {
        return Ok(out);
    };
    let _ = writeln!(
        out,
        "  delivered to {} as {}",
        netns_label(&world, at),
        delivered.tuple
    );
    let _ = writeln!(out, "\nSYN-ACK {}", delivered.tuple.reversed());
    if let Some((back, pkt)) = walk(
        &mut world,
        at,
        Packet::new(delivered.tuple.reversed(), TcpFlags::SYN_ACK),
        &mut rng,
        &mut out,
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

fn resolve_target(scenario: &Scenario, to: &str) -> Result<SocketAddrV4, SimError> {
    if let Ok(a) = to.parse::<SocketAddrV4>() {
        return Ok(a);
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
        .find(|p| p.port == port)
        .ok_or_else(|| to_error(to, format!("Service `{}` has no port {port}", s.name)))?;
    match s.cluster_ip {
        Some(ip) => Ok(SocketAddrV4::new(ip, p.port)),
        None => Ok(SocketAddrV4::new(
            s.endpoints.first().map_or(Ipv4Addr::UNSPECIFIED, |e| e.ip),
            p.target_port,
        )),
    }
}

fn to_error(to: &str, what: String) -> SimError {
    SimError::UnknownName {
        flag: "--to",
        message: format!("`{to}`: {what}"),
    }
}
