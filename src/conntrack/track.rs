//! Per-packet tracking of a confirmed entry (`nf_conntrack_in` after the lookup):
//! UDP stream detection and the TCP state machine's window and timeout updates.

use super::table::{ConntrackTable, seq_end, status};
use super::tcp::{self, CtState, Next};
use super::{ConnId, CtError, TrackVerdict};
use crate::kernel::CtTimeouts;
use crate::packet::{Direction, Packet, Proto};
use crate::time::SimTime;

impl ConntrackTable {
    /// Runs the L4 tracker for a packet of an existing, confirmed entry
    /// (`nf_conntrack_handle_packet`), then marks `IPS_SEEN_REPLY` for accepted REPLY
    /// packets as `nf_conntrack_in` does.
    ///
    /// # Errors
    /// [`CtError::UnknownConn`] for a stale handle, [`CtError::UnknownCpu`].
    pub fn packet(
        &mut self,
        id: ConnId,
        dir: Direction,
        cpu: u16,
        pkt: &Packet,
        now: SimTime,
    ) -> Result<TrackVerdict, CtError> {
        self.check_cpu(cpu)?;
        let idx = self.slot(id)?;
        let e = self.entries[idx as usize];
        let ns = e.ns;
        let t = self.timeouts(ns);
        let verdict = match e.original().proto {
            Proto::Tcp => self.tcp_packet(idx, dir, pkt, &t, now),
            Proto::Udp => {
                self.udp_packet(idx, &t, now);
                TrackVerdict::Accept
            }
            Proto::Icmp => {
                self.refresh(idx, t.icmp, now);
                TrackVerdict::Accept
            }
        };
        match verdict {
            TrackVerdict::Invalid => self.stat(ns, cpu).invalid += 1,
            TrackVerdict::Accept if dir == Direction::Reply => {
                self.entries[idx as usize].status |= status::SEEN_REPLY;
            }
            _ => {}
        }
        Ok(verdict)
    }

    /// `nf_conntrack_udp_packet`.
    fn udp_packet(&mut self, idx: u32, t: &CtTimeouts, now: SimTime) {
        let e = self.entries[idx as usize];
        if e.has(status::SEEN_REPLY) {
            let mut extra = t.udp;
            let mut stream = false;
            if now.as_nanos() > e.aux {
                extra = t.udp_stream;
                stream = !e.has(status::ASSURED);
            }
            self.refresh(idx, extra, now);
            // Never ASSURED for IPS_NAT_CLASH entries.
            if stream && !e.has(status::NAT_CLASH) {
                self.assure(idx);
            }
        } else {
            self.refresh(idx, t.udp, now);
        }
    }

    /// `nf_conntrack_tcp_packet` without window tracking (every segment is in window).
    fn tcp_packet(
        &mut self,
        idx: u32,
        dir: Direction,
        pkt: &Packet,
        t: &CtTimeouts,
        now: SimTime,
    ) -> TrackVerdict {
        if !tcp::valid_flags(pkt.flags) {
            return TrackVerdict::Invalid;
        }
        let e = self.entries[idx as usize];
        let index = tcp::flag_index(pkt.flags);
        let old = e.tcp_state();
        let mut new = match tcp::transition(dir, index, old) {
            Next::Invalid => return TrackVerdict::Invalid,
            Next::State(CtState::SynSent) if old >= CtState::TimeWait => {
                if e.tcp.any_close_init() || (e.tcp.last_dir() == dir && e.tcp.last_index() == tcp::RST_SET) {
                    self.free_entry(idx);
                    return TrackVerdict::Repeat;
                }
                // Fall through to the ignore case.
                self.entries[idx as usize].tcp.set_last(index, dir);
                return TrackVerdict::Accept;
            }
            Next::Ignore => {
                // Record and let it through without touching state or timeout.
                self.entries[idx as usize].tcp.set_last(index, dir);
                return TrackVerdict::Accept;
            }
            Next::State(s) => s,
        };
        let ent = &mut self.entries[idx as usize];
        match new {
            CtState::SynSent2 => ent.tcp.set_simultaneous_open(),
            CtState::SynRecv
                if dir == Direction::Reply && index == tcp::ACK_SET && ent.tcp.simultaneous_open() =>
            {
                new = CtState::Established;
            }
            _ => {}
        }
        // in_window:
        if dir == Direction::Original {
            let end = seq_end(pkt);
            #[allow(clippy::cast_possible_truncation)]
            let cur = ent.aux as u32;
            #[allow(clippy::cast_possible_wrap)]
            if (end.wrapping_sub(cur) as i32) > 0 {
                ent.aux = u64::from(end);
            }
        }
        ent.tcp.set_last(index, dir);
        ent.state = new as u8;
        if old != new && new == CtState::FinWait {
            ent.tcp.set_close_init(dir);
        }
        let mut timeout = if index == tcp::RST_SET {
            t.tcp_close
        } else {
            new.timeout(t)
        };
        if !ent.has(status::SEEN_REPLY) {
            if index == tcp::RST_SET {
                // Only reply is an RST: delete at once (nf_ct_kill_acct).
                self.free_entry(idx);
                return TrackVerdict::AcceptDeleted;
            }
            if index == tcp::SYN_SET && old == CtState::SynSent {
                // Do not renew the timeout on SYN retransmits.
                return TrackVerdict::Accept;
            }
            if new == CtState::Established && timeout > t.tcp_unacknowledged {
                timeout = t.tcp_unacknowledged;
            }
        } else if !ent.has(status::ASSURED)
            && (old == CtState::SynRecv || old == CtState::Established)
            && new == CtState::Established
        {
            self.assure(idx);
        }
        self.refresh(idx, timeout, now);
        TrackVerdict::Accept
    }

    // ----- dumps -----
}
