//! A sans-I/O model of one `getaddrinfo(AF_UNSPEC)` lookup through glibc's stub
//! resolver: search-list walk (`__res_context_search`), A+AAAA exchange per name
//! (`__res_context_query` with `T_QUERY_A_AND_AAAA`), tries and timeouts
//! (`__res_context_send`, `send_dg`).

use super::resolv::{DnsError, MAX_ATTEMPTS, MAX_NDOTS, MAX_TIMEOUT_SECS, ResolvConf, check_name};
use crate::time::{SimDuration, SimTime};
use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// DNS query type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum QType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
}

impl QType {
    fn index(self) -> usize {
        match self {
            QType::A => 0,
            QType::Aaaa => 1,
        }
    }
    fn other(self) -> QType {
        match self {
            QType::A => QType::Aaaa,
            QType::Aaaa => QType::A,
        }
    }
}

impl fmt::Display for QType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QType::A => "A",
            QType::Aaaa => "AAAA",
        })
    }
}

/// Response code of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Rcode {
    /// NOERROR: the name exists (with or without records of the type asked).
    NoError,
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// SERVFAIL: the server could not answer (also stands for REFUSED/NOTIMP, which
    /// `send_dg` handles the same way).
    ServFail,
}

/// An answer as the resolver sees it: the code and how many records of the asked
/// type it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Answer {
    /// Response code.
    pub rcode: Rcode,
    /// Records of the asked type in the answer section.
    pub records: u16,
}

impl Answer {
    fn has_data(self) -> bool {
        self.rcode == Rcode::NoError && self.records > 0
    }
}

/// Identifies one sent query, to match its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct QueryId(u32);

impl QueryId {
    /// The raw number (dense, from 0, per lookup).
    #[must_use]
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Which socket a query leaves from. Each new value is a new socket, so a new
/// ephemeral source port: conntrack sees a new UDP flow. Queries with the same slot
/// share a source port (the A/AAAA pair, retries within one name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SocketSlot(pub u32);

/// UDP, or TCP with `use-vc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Transport {
    /// Datagrams.
    Udp,
    /// A TCP connection per name (`send_vc`).
    Tcp,
}

/// A query the simulator must turn into a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Pass back to [`Lookup::on_answer`].
    pub id: QueryId,
    /// A or AAAA.
    pub qtype: QType,
    /// The name asked for (a search candidate, without trailing dot).
    pub name: Arc<str>,
    /// The socket it leaves from.
    pub socket: SocketSlot,
    /// UDP or TCP.
    pub transport: Transport,
    /// The nameserver (destination address, port 53).
    pub server: Ipv4Addr,
}

/// How a lookup ended (the `h_errno` / `EAI_*` class).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum LookupResult {
    /// Some candidate had A or AAAA records.
    Resolved {
        /// The candidate that answered (the FQDN).
        #[serde(serialize_with = "serialize_arc_str")]
        name: Arc<str>,
    },
    /// `HOST_NOT_FOUND`: NXDOMAIN (`EAI_NONAME`).
    NxDomain,
    /// `NO_DATA`: the name exists without addresses.
    NoData,
    /// `TRY_AGAIN` after SERVFAIL answers (`EAI_AGAIN`).
    ServFail,
    /// `TRY_AGAIN` after every try timed out (`EAI_AGAIN`).
    Timeout,
}

/// The end of a lookup.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LookupOutcome {
    /// How it ended.
    pub result: LookupResult,
    /// From [`Lookup::new`] to the end.
    pub elapsed: SimDuration,
    /// Queries sent, retries included.
    pub queries_sent: u32,
}

/// What the simulator must do next for a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this query now.
    Send(Query),
    /// Nothing to send: deliver answers as they arrive, and call
    /// [`Lookup::next_action`] again at `until` at the latest.
    Wait {
        /// The current try's deadline.
        until: SimTime,
    },
    /// The lookup is over (returned again on every later call).
    Done(LookupOutcome),
}

/// Whether an answer was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AnswerUse {
    /// It completed an outstanding query.
    Accepted,
    /// The socket it answers was closed, the name was already abandoned, or the
    /// query type was already answered: glibc drops it (a closed socket would make
    /// the kernel answer with ICMP port unreachable).
    Stale,
}

/// How A and AAAA are sent (`send_dg`; sticky once glibc switches, since it sets the
/// option bit in the resolver state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Both at once from one socket (`sendmmsg`).
    Parallel,
    /// AAAA after the A answer, same socket (`RES_SNGLKUP`).
    Single,
    /// AAAA after the A answer, from a new socket (`RES_SNGLKUPREOP`).
    SingleReopen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Idle,
    Sent,
    Got(Answer),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameResult {
    Success,
    NxDomain,
    NoData,
    ServFail,
    Timeout,
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    candidate: usize,
    qtype: QType,
    socket: SocketSlot,
}

/// One name lookup (`getaddrinfo` with `AF_UNSPEC`) as glibc performs it, driven by
/// the caller: sans-I/O, time injected.
///
/// Drive it with [`Lookup::next_action`] until it returns [`Action::Done`]: turn every
/// [`Action::Send`] into a packet, feed answers to [`Lookup::on_answer`], and on
/// [`Action::Wait`] call `next_action` again when an answer arrives or at `until`.
///
/// Behaviour (glibc 2.3x `resolv/`):
/// - names are tried in [`ResolvConf::candidates`] order; NXDOMAIN and NODATA move to
///   the next, SERVFAIL too; a timeout on a search suffix abandons the remaining
///   suffixes but the name as given is still tried if it has not been;
/// - per name, A and AAAA leave together from one socket unless `single-request`
///   (AAAA after the A answer) or `single-request-reopen` (AAAA from a new socket);
/// - each try waits `timeout` (5 s) for both answers, `attempts` (2) tries per
///   name, same socket; SERVFAIL on both starts the next try at once;
/// - when one answer came and the other did not, glibc switches to `single-request`
///   and retries, then to `single-request-reopen` and retries, then gives up on the
///   missing type and uses the answer it has: the 5, 10, 15 s steps of V05/V07;
/// - each name uses a new socket (glibc closes it after each `res_send`).
#[derive(Clone, Debug)]
pub struct Lookup {
    candidates: Vec<Arc<str>>,
    /// Candidate 0 is the name as given, tried first (dots >= ndots).
    as_is_first: bool,
    /// The last candidate is the name as given, tried after the suffixes.
    as_is_last: bool,
    absolute: bool,
    server: Ipv4Addr,
    timeout: SimDuration,
    attempts: u8,
    transport: Transport,
    mode: Mode,
    started: SimTime,
    candidate: usize,
    try_no: u8,
    deadline: SimTime,
    socket: SocketSlot,
    next_socket: u32,
    slots: [Slot; 2],
    queue: VecDeque<QType>,
    sent: Vec<Sent>,
    first_as_is: Option<NameResult>,
    got_nodata: bool,
    got_servfail: bool,
    last: NameResult,
    outcome: Option<LookupOutcome>,
}

impl Lookup {
    /// Starts looking up `name` with `conf` at `now`.
    ///
    /// # Errors
    /// [`DnsError::InvalidName`] when `name` is not a valid domain name.
    pub fn new(conf: &ResolvConf, name: &str, now: SimTime) -> Result<Lookup, DnsError> {
        check_name(name)?;
        let candidates: Vec<Arc<str>> = conf.candidates(name).into_iter().map(Arc::from).collect();
        let bare = name.strip_suffix('.').unwrap_or(name);
        let absolute = name.ends_with('.');
        let dots = name.bytes().filter(|b| *b == b'.').count();
        let as_is_first = absolute || dots >= usize::from(conf.ndots.min(MAX_NDOTS));
        let as_is_last = !as_is_first && candidates.last().is_some_and(|c| &**c == bare);
        let mode = if conf.single_request_reopen {
            Mode::SingleReopen
        } else if conf.single_request {
            Mode::Single
        } else {
            Mode::Parallel
        };
        let transport = if conf.use_vc {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let timeout = conf.timeout.min(SimDuration::from_secs(MAX_TIMEOUT_SECS));
        // `send_vc`: at most one attempt per server.
        let attempts = if conf.use_vc {
            1
        } else {
            conf.attempts.clamp(1, MAX_ATTEMPTS)
        };
        let mut lookup = Lookup {
            candidates,
            as_is_first,
            as_is_last,
            absolute,
            server: conf.nameserver,
            timeout,
            attempts,
            transport,
            mode,
            started: now,
            candidate: 0,
            try_no: 0,
            deadline: now,
            socket: SocketSlot(0),
            next_socket: 0,
            slots: [Slot::Idle; 2],
            queue: VecDeque::with_capacity(2),
            sent: Vec::with_capacity(16),
            first_as_is: None,
            got_nodata: false,
            got_servfail: false,
            last: NameResult::NxDomain,
            outcome: None,
        };
        lookup.start_name(now);
        Ok(lookup)
    }

    /// The names this lookup tries, in order.
    #[must_use]
    pub fn candidates(&self) -> &[Arc<str>] {
        &self.candidates
    }

    /// The outcome, once done.
    #[must_use]
    pub fn outcome(&self) -> Option<&LookupOutcome> {
        self.outcome.as_ref()
    }

    /// Carries glibc's learned fallback into `conf` for the same client's next
    /// lookups: once `send_dg` switches to single-request (or -reopen) it sets the
    /// option bit in the thread's resolver state, which later lookups inherit.
    pub fn apply_learned_options(&self, conf: &mut ResolvConf) {
        match self.mode {
            Mode::Parallel => {}
            Mode::Single => conf.single_request = true,
            Mode::SingleReopen => conf.single_request_reopen = true,
        }
    }

    /// Queries sent so far.
    #[must_use]
    pub fn queries_sent(&self) -> u32 {
        self.sent.len() as u32
    }

    /// The next thing to do at `now`: a query to send, a deadline to wait for, or the
    /// outcome. Call it repeatedly until it returns [`Action::Wait`] or
    /// [`Action::Done`]. Handles the try deadline itself when `now` has reached it.
    pub fn next_action(&mut self, now: SimTime) -> Action {
        loop {
            if let Some(o) = &self.outcome {
                return Action::Done(o.clone());
            }
            if let Some(qtype) = self.queue.pop_front() {
                return Action::Send(self.emit(qtype));
            }
            if now >= self.deadline {
                self.on_deadline(now);
                continue;
            }
            return Action::Wait { until: self.deadline };
        }
    }

    /// Delivers the answer to query `id` at `now`. Call [`Lookup::next_action`]
    /// afterwards.
    pub fn on_answer(&mut self, id: QueryId, answer: Answer, now: SimTime) -> AnswerUse {
        let Some(sent) = self.sent.get(id.0 as usize).copied() else {
            return AnswerUse::Stale;
        };
        if self.outcome.is_some() || sent.candidate != self.candidate || sent.socket != self.socket {
            return AnswerUse::Stale;
        }
        let i = sent.qtype.index();
        if matches!(self.slots[i], Slot::Got(_)) {
            return AnswerUse::Stale;
        }
        self.slots[i] = Slot::Got(answer);
        let other = sent.qtype.other();
        if self.slots[other.index()] == Slot::Idle && !self.queue.contains(&other) {
            // single-request: the second query goes out after the first answer.
            if self.mode == Mode::SingleReopen {
                self.socket = self.new_socket();
            }
            self.queue.push_back(other);
        }
        if let [Slot::Got(a), Slot::Got(b)] = self.slots {
            self.round_complete(a, b, now);
        }
        AnswerUse::Accepted
    }

    fn new_socket(&mut self) -> SocketSlot {
        let s = SocketSlot(self.next_socket);
        self.next_socket += 1;
        s
    }

    fn emit(&mut self, qtype: QType) -> Query {
        let id = QueryId(self.sent.len() as u32);
        self.sent.push(Sent {
            candidate: self.candidate,
            qtype,
            socket: self.socket,
        });
        self.slots[qtype.index()] = Slot::Sent;
        Query {
            id,
            qtype,
            name: Arc::clone(&self.candidates[self.candidate]),
            socket: self.socket,
            transport: self.transport,
            server: self.server,
        }
    }

    /// A new name: a new socket, first try.
    fn start_name(&mut self, now: SimTime) {
        self.socket = self.new_socket();
        self.try_no = 0;
        self.start_round(now);
    }

    /// (Re)sends the pair with a fresh deadline (`send_dg`'s `retry:` label).
    fn start_round(&mut self, now: SimTime) {
        self.deadline = now + self.timeout;
        self.slots = [Slot::Idle; 2];
        self.queue.clear();
        self.queue.push_back(QType::A);
        if self.mode == Mode::Parallel {
            self.queue.push_back(QType::Aaaa);
        }
    }

    fn on_deadline(&mut self, now: SimTime) {
        let useful = self.slots.iter().find_map(|s| match s {
            Slot::Got(a) if a.rcode != Rcode::ServFail => Some(*a),
            _ => None,
        });
        if let Some(answer) = useful {
            // One answer only: switch to single-request, then single-request-reopen,
            // then settle for the answer we have (`send_dg`, n == 0 branch).
            match self.mode {
                Mode::Parallel => {
                    self.mode = Mode::Single;
                    self.start_round(now);
                }
                Mode::Single => {
                    self.mode = Mode::SingleReopen;
                    self.socket = self.new_socket();
                    self.start_round(now);
                }
                Mode::SingleReopen => {
                    let result = if answer.has_data() {
                        NameResult::Success
                    } else if answer.rcode == Rcode::NxDomain {
                        NameResult::NxDomain
                    } else {
                        NameResult::NoData
                    };
                    self.name_done(result, now);
                }
            }
            return;
        }
        self.try_no += 1;
        if self.try_no < self.attempts {
            self.start_round(now);
        } else {
            self.name_done(NameResult::Timeout, now);
        }
    }

    /// Both answers are in (`__res_context_query`'s combination of the two).
    fn round_complete(&mut self, a: Answer, b: Answer, now: SimTime) {
        if a.has_data() || b.has_data() {
            return self.name_done(NameResult::Success, now);
        }
        let fail = |x: Answer| x.rcode == Rcode::ServFail;
        if fail(a) && fail(b) {
            // send_dg returns 0 with no second reply: next try, immediately.
            self.try_no += 1;
            if self.try_no < self.attempts {
                self.start_round(now);
            } else {
                self.name_done(NameResult::ServFail, now);
            }
            return;
        }
        let result = if a.rcode == Rcode::NxDomain || b.rcode == Rcode::NxDomain {
            NameResult::NxDomain
        } else {
            NameResult::NoData
        };
        self.name_done(result, now);
    }

    /// One candidate is finished (`__res_context_search` bookkeeping).
    fn name_done(&mut self, result: NameResult, now: SimTime) {
        self.queue.clear();
        if result == NameResult::Success {
            let name = Arc::clone(&self.candidates[self.candidate]);
            return self.finish(LookupResult::Resolved { name }, now);
        }
        let is_first_as_is = self.as_is_first && self.candidate == 0;
        let is_last_as_is = self.as_is_last && self.candidate + 1 == self.candidates.len();
        self.last = result;
        if is_first_as_is {
            self.first_as_is = Some(result);
        }
        if self.absolute {
            return self.finish(map(result), now);
        }
        let is_suffix = !is_first_as_is && !is_last_as_is;
        match result {
            NameResult::NoData if is_suffix => self.got_nodata = true,
            NameResult::ServFail if is_suffix => self.got_servfail = true,
            _ => {}
        }
        let mut next = self.candidate + 1;
        if result == NameResult::Timeout && is_suffix {
            // "anything else implies that we're done": abandon the other suffixes,
            // but still try the name as given if it has not been tried.
            next = if self.as_is_last {
                self.candidates.len() - 1
            } else {
                self.candidates.len()
            };
        }
        if next >= self.candidates.len() {
            let final_result = self
                .first_as_is
                .or(self.got_nodata.then_some(NameResult::NoData))
                .or(self.got_servfail.then_some(NameResult::ServFail))
                .unwrap_or(self.last);
            return self.finish(map(final_result), now);
        }
        self.candidate = next;
        self.start_name(now);
    }

    fn finish(&mut self, result: LookupResult, now: SimTime) {
        self.queue.clear();
        self.outcome = Some(LookupOutcome {
            result,
            elapsed: now.saturating_since(self.started),
            queries_sent: self.sent.len() as u32,
        });
    }
}

fn serialize_arc_str<S: serde::Serializer>(name: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name)
}

fn map(r: NameResult) -> LookupResult {
    match r {
        // Success finishes earlier; kept total for the match.
        NameResult::Success | NameResult::NxDomain => LookupResult::NxDomain,
        NameResult::NoData => LookupResult::NoData,
        NameResult::ServFail => LookupResult::ServFail,
        NameResult::Timeout => LookupResult::Timeout,
    }
}
