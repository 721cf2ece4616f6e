//! Lookup state-machine tests, driven against a [`Zone`] with injected loss.

use super::*;
use crate::time::{SimDuration, SimTime};
use std::net::Ipv4Addr;

const KUBE_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn conf() -> ResolvConf {
    ResolvConf::kubernetes("shop", "cluster.local", KUBE_DNS).with_search_suffix("ec2.internal")
}

fn zone() -> Zone {
    let mut z = Zone::new("cluster.local");
    z.add_service("shop", "orders", Ipv4Addr::new(10, 96, 3, 4));
    z.add_external("api.example.com", vec![Ipv4Addr::new(93, 184, 216, 34)]);
    z
}

/// Sends logged by the driver: (time sent, query).
type Log = Vec<(SimTime, Query)>;

/// Runs `lookup` to completion against `zone`: every answer takes `rtt`; `lost`
/// decides (from the query and its 0-based send index) whether a query or its
/// answer is lost.
fn drive(
    mut lookup: Lookup,
    zone: &Zone,
    rtt: SimDuration,
    mut lost: impl FnMut(&Query, usize) -> bool,
) -> (LookupOutcome, Log) {
    let mut now = SimTime::ZERO;
    let mut inflight: Vec<(SimTime, QueryId, Answer)> = Vec::new();
    let mut log = Vec::new();
    for _ in 0..10_000 {
        match lookup.next_action(now) {
            Action::Send(q) => {
                if !lost(&q, log.len()) {
                    inflight.push((now + rtt, q.id, zone.answer(&q.name, q.qtype).to_answer()));
                }
                log.push((now, q));
            }
            Action::Wait { until } => {
                inflight.sort_by_key(|(t, id, _)| (*t, *id));
                if inflight.first().is_some_and(|(t, _, _)| *t <= until) {
                    let (t, id, answer) = inflight.remove(0);
                    now = t;
                    lookup.on_answer(id, answer, now);
                } else {
                    now = until;
                }
            }
            Action::Done(outcome) => return (outcome, log),
        }
    }
    panic!("lookup did not finish");
}

fn ms(n: u64) -> SimDuration {
    SimDuration::from_millis(n)
}

fn start(conf: &ResolvConf, name: &str) -> Lookup {
    Lookup::new(conf, name, SimTime::ZERO).unwrap()
}

#[test]
fn external_name_costs_ten_queries_with_three_cluster_and_one_cloud_suffix() {
    // docs/validation-targets.md §DNS query amplification and §V13: 2 × (4 suffixes + 1) = 10,
    // exact.
    let (o, log) = drive(start(&conf(), "api.example.com"), &zone(), ms(1), |_, _| false);
    assert_eq!(o.queries_sent, 10);
    assert_eq!(log.len(), 10);
    assert_eq!(
        o.result,
        LookupResult::Resolved {
            name: "api.example.com".into()
        }
    );
    assert_eq!(o.elapsed, ms(5), "five round trips, A and AAAA in parallel");
    // A and AAAA of each name share a socket; each name gets a new one.
    for pair in log.chunks(2) {
        assert_eq!((pair[0].1.qtype, pair[1].1.qtype), (QType::A, QType::Aaaa));
        assert_eq!(pair[0].1.socket, pair[1].1.socket);
        assert_eq!(pair[0].0, pair[1].0);
    }
    let sockets: std::collections::BTreeSet<_> = log.iter().map(|(_, q)| q.socket).collect();
    assert_eq!(sockets.len(), 5);
}

#[test]
fn service_short_name_resolves_on_the_first_suffix_with_two_queries() {
    let (o, log) = drive(start(&conf(), "orders"), &zone(), ms(1), |_, _| false);
    assert_eq!(o.queries_sent, 2);
    assert_eq!(&*log[0].1.name, "orders.shop.svc.cluster.local");
    assert_eq!(
        o.result,
        LookupResult::Resolved {
            name: "orders.shop.svc.cluster.local".into()
        }
    );
    assert!(
        log.iter()
            .all(|(_, q)| q.server == KUBE_DNS && q.transport == Transport::Udp)
    );
}

#[test]
fn fqdn_with_trailing_dot_costs_one_pair() {
    let (o, _) = drive(start(&conf(), "api.example.com."), &zone(), ms(1), |_, _| false);
    assert_eq!((o.queries_sent, o.elapsed), (2, ms(1)));
}

#[test]
fn unknown_name_tries_every_candidate_and_reports_nxdomain() {
    let (o, _) = drive(start(&conf(), "nothing.example.org"), &zone(), ms(1), |_, _| {
        false
    });
    assert_eq!((o.result, o.queries_sent), (LookupResult::NxDomain, 10));
}

#[test]
fn lost_a_query_costs_one_five_second_step_then_glibc_goes_single_request() {
    // V05: the A query of the first pair is dropped (conntrack race); the AAAA answer
    // arrives, glibc waits out the 5 s try, switches to single-request and resends.
    let (o, log) = drive(start(&conf(), "orders"), &zone(), ms(1), |q, i| {
        i == 0 && q.qtype == QType::A
    });
    assert_eq!(
        o.result,
        LookupResult::Resolved {
            name: "orders.shop.svc.cluster.local".into()
        }
    );
    assert_eq!(o.elapsed, SimDuration::from_secs(5) + ms(2));
    let times: Vec<_> = log.iter().map(|(t, q)| (*t, q.qtype)).collect();
    assert_eq!(
        times,
        vec![
            (SimTime::ZERO, QType::A),
            (SimTime::ZERO, QType::Aaaa),
            (SimTime::from_secs(5), QType::A),
            (SimTime::from_secs(5) + ms(1), QType::Aaaa),
        ]
    );
    assert!(
        log.iter().all(|(_, q)| q.socket == log[0].1.socket),
        "same socket: same conntrack tuple"
    );
}

#[test]
fn both_queries_lost_once_costs_five_seconds_and_a_parallel_resend() {
    let (o, log) = drive(start(&conf(), "orders"), &zone(), ms(1), |_, i| i < 2);
    assert_eq!(o.elapsed, SimDuration::from_secs(5) + ms(1));
    assert_eq!(log[2].0, log[3].0, "no answer at all: the retry stays parallel");
}

#[test]
fn every_query_lost_times_out_after_attempts_times_timeout() {
    let (o, log) = drive(start(&conf(), "api.example.com."), &zone(), ms(1), |_, _| true);
    assert_eq!(
        (o.result, o.elapsed, log.len()),
        (LookupResult::Timeout, SimDuration::from_secs(10), 4)
    );
    // A search-suffix timeout abandons the other suffixes but still tries the name as
    // given: two names × 10 s.
    let (o, log) = drive(start(&conf(), "orders"), &zone(), ms(1), |_, _| true);
    assert_eq!(
        (o.result, o.elapsed),
        (LookupResult::Timeout, SimDuration::from_secs(20))
    );
    assert_eq!(&*log.last().unwrap().1.name, "orders");
}

#[test]
fn aaaa_always_lost_gives_the_five_ten_fifteen_second_ladder() {
    // V07: parallel try, then single-request, then single-request-reopen, each 5 s;
    // glibc then settles for the A answer.
    let (o, log) = drive(start(&conf(), "orders"), &zone(), ms(1), |q, _| {
        q.qtype == QType::Aaaa
    });
    assert_eq!(
        o.result,
        LookupResult::Resolved {
            name: "orders.shop.svc.cluster.local".into()
        }
    );
    assert_eq!(o.elapsed, SimDuration::from_secs(15));
    let sockets: Vec<_> = log.iter().map(|(_, q)| q.socket).collect();
    assert_eq!(sockets.first(), sockets.get(3), "single-request keeps the socket");
    assert_ne!(sockets.last(), sockets.first(), "reopen moves to a new socket");
}

#[test]
fn learned_single_request_reopen_carries_over_to_the_next_lookup() {
    let mut c = conf();
    let mut l = start(&c, "orders");
    let mut now = SimTime::ZERO;
    loop {
        match l.next_action(now) {
            // every A is answered at once, every AAAA is lost
            Action::Send(q) if q.qtype == QType::A => {
                l.on_answer(
                    q.id,
                    Answer {
                        rcode: Rcode::NoError,
                        records: 1,
                    },
                    now,
                );
            }
            Action::Send(_) => {}
            Action::Wait { until } => {
                l.apply_learned_options(&mut c);
                now = until;
            }
            Action::Done(_) => break,
        }
    }
    assert!(c.single_request, "learned after the first 5 s step");
    l.apply_learned_options(&mut c);
    assert!(c.single_request_reopen, "learned after the second");
}

#[test]
fn single_request_reopen_sends_aaaa_after_the_a_answer_from_a_new_socket() {
    let mut c = conf();
    c.single_request_reopen = true;
    let (o, log) = drive(start(&c, "orders"), &zone(), ms(1), |_, _| false);
    assert_eq!(o.elapsed, ms(2));
    assert_eq!((log[0].1.qtype, log[1].1.qtype), (QType::A, QType::Aaaa));
    assert_eq!((log[0].0, log[1].0), (SimTime::ZERO, SimTime::ZERO + ms(1)));
    assert_ne!(log[0].1.socket, log[1].1.socket);
}

#[test]
fn single_request_keeps_the_socket() {
    let mut c = conf();
    c.single_request = true;
    let (o, log) = drive(start(&c, "orders"), &zone(), ms(1), |_, _| false);
    assert_eq!(o.elapsed, ms(2));
    assert_eq!(log[0].1.socket, log[1].1.socket);
}

#[test]
fn use_vc_sends_over_tcp_with_a_single_attempt() {
    let mut c = conf();
    c.use_vc = true;
    let (o, log) = drive(start(&c, "api.example.com."), &zone(), ms(1), |_, _| true);
    assert_eq!((o.elapsed, log.len()), (SimDuration::from_secs(5), 2));
    assert!(log.iter().all(|(_, q)| q.transport == Transport::Tcp));
}

#[test]
fn servfail_retries_at_once_then_moves_to_the_next_name() {
    // A zone that SERVFAILs the first suffix: emulate by rewriting answers.
    let mut l = start(&conf(), "orders");
    let mut sent = Vec::new();
    let now = SimTime::ZERO;
    while let Action::Send(q) = l.next_action(now) {
        sent.push(q);
    }
    for q in &sent {
        l.on_answer(
            q.id,
            Answer {
                rcode: Rcode::ServFail,
                records: 0,
            },
            now,
        );
    }
    // second attempt, immediately, same name and socket
    let Action::Send(retry) = l.next_action(now) else {
        panic!("expected a resend")
    };
    assert_eq!((&*retry.name, retry.socket), (&*sent[0].name, sent[0].socket));
    let Action::Send(retry2) = l.next_action(now) else {
        panic!("expected a resend")
    };
    for q in [&retry, &retry2] {
        l.on_answer(
            q.id,
            Answer {
                rcode: Rcode::ServFail,
                records: 0,
            },
            now,
        );
    }
    let Action::Send(next) = l.next_action(now) else {
        panic!("expected the next name")
    };
    assert_eq!(&*next.name, "orders.svc.cluster.local");
    assert_ne!(next.socket, sent[0].socket);
}

#[test]
fn late_answers_for_an_abandoned_name_are_stale() {
    let mut l = start(&conf(), "orders");
    let Action::Send(a) = l.next_action(SimTime::ZERO) else {
        panic!()
    };
    let Action::Send(aaaa) = l.next_action(SimTime::ZERO) else {
        panic!()
    };
    let nx = Answer {
        rcode: Rcode::NxDomain,
        records: 0,
    };
    assert_eq!(l.on_answer(a.id, nx, SimTime::ZERO + ms(1)), AnswerUse::Accepted);
    assert_eq!(
        l.on_answer(a.id, nx, SimTime::ZERO + ms(1)),
        AnswerUse::Stale,
        "duplicate"
    );
    assert_eq!(
        l.on_answer(aaaa.id, nx, SimTime::ZERO + ms(1)),
        AnswerUse::Accepted
    );
    // moved on to the next name; a repeated answer for the old one is stale
    assert_eq!(l.on_answer(aaaa.id, nx, SimTime::ZERO + ms(2)), AnswerUse::Stale);
    assert!(
        matches!(l.next_action(SimTime::ZERO + ms(2)), Action::Send(q) if &*q.name == "orders.svc.cluster.local")
    );
}

#[test]
fn lookup_rejects_invalid_names() {
    assert!(matches!(
        Lookup::new(&conf(), "bad..name", SimTime::ZERO),
        Err(DnsError::InvalidName { .. })
    ));
}

#[test]
fn done_is_returned_again_and_elapsed_counts_from_start() {
    let mut l = Lookup::new(&conf(), "api.example.com.", SimTime::from_secs(100)).unwrap();
    let (o, _) = {
        let mut now = SimTime::from_secs(100);
        let mut qs = Vec::new();
        while let Action::Send(q) = l.next_action(now) {
            qs.push(q);
        }
        now += ms(3);
        for q in &qs {
            l.on_answer(q.id, zone().answer(&q.name, q.qtype).to_answer(), now);
        }
        let Action::Done(o) = l.next_action(now) else {
            panic!()
        };
        (o, qs)
    };
    assert_eq!(o.elapsed, ms(3));
    assert_eq!(l.next_action(SimTime::from_secs(500)), Action::Done(o));
}
