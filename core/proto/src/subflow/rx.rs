//! Receiving a segment on a subflow: state transitions, ACK and SACK processing, RACK loss
//! detection, the retransmission timer, and which payload bytes are new.

use super::sent::SentSeg;
use super::{CloseReason, Rack, State, Subflow};
use crate::cc::{Ack, Coupling};
use crate::seq::from_wire;
use crate::wire::{TcpFlags, TcpRepr};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Most out-of-order ranges a subflow records (for SACK). Loss leaves a handful per window;
/// the limit keeps a peer that scatters 1-byte segments from making every insert slow.
const MAX_OOO_RANGES: usize = 256;

/// What an incoming segment did to the subflow, for the connection to act on.
#[derive(Clone, Debug, Default)]
pub(crate) struct RxOutcome {
    /// The segment was not acceptable and was ignored (an ACK may be due).
    pub dropped: bool,
    /// The subflow became established with this segment.
    pub established: bool,
    /// Payload bytes at or beyond `rcv_nxt`: subflow offset of the first one and the offset
    /// into the payload where it starts.
    pub data: Option<(u64, usize)>,
    /// The peer reset the subflow.
    pub reset: bool,
    /// The subflow closed (any reason) while handling this segment.
    pub closed: bool,
    pub ack: AckOutcome,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AckOutcome {
    /// The ACK field was processed (new or duplicate, not stale or bogus).
    pub valid: bool,
    pub newly_acked: u64,
    pub newly_sacked: u64,
    /// Segments were newly declared lost.
    pub loss: bool,
    /// The window field, scaled, as sent with this segment.
    pub window: u64,
}

impl Subflow {
    /// Processes the TCP part of an incoming segment. `coupling` describes every subflow of
    /// the connection for coupled congestion control (`me` is this one); `rcv_window` is the
    /// largest window the connection advertises (its receive buffer).
    pub(crate) fn on_segment(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        payload_len: usize,
        rcv_window: u64,
        coupling: Coupling<'_>,
    ) -> RxOutcome {
        let mut out = RxOutcome::default();
        self.counters.segments_received += 1;
        let flags = seg.flags;
        let wnd = rcv_window;
        match self.state {
            State::Closed => {
                out.dropped = true;
                return out;
            }
            State::SynSent => {
                let out = self.on_segment_syn_sent(now, seg, out);
                if !out.dropped {
                    self.note_alive(now);
                }
                return out;
            }
            _ => {}
        }

        // Everything below acts only on segments that pass the checks of RFC 9293 §3.10.7.4
        // and RFC 5961: someone who knows the address pair but not the sequence numbers
        // can neither reset the subflow nor get its options acted on.
        let seq = from_wire(self.irs, seg.seq.0, self.rcv_nxt);
        let seg_end = seq + payload_len as u64;
        if flags.contains(TcpFlags::RST) {
            if seq == self.rcv_nxt {
                self.enter_closed(CloseReason::Reset);
                out.reset = true;
                out.closed = true;
            } else {
                if self.seq_in_window(seq, seg_end, payload_len, wnd) {
                    self.challenge_ack(now);
                }
                self.counters.segments_rejected += 1;
                out.dropped = true;
            }
            return out;
        }
        if flags.contains(TcpFlags::SYN) {
            if self.state == State::SynReceived && seg.seq.0 == self.irs {
                // The peer did not see our SYN/ACK: send it again now.
                self.retransmit_syn_now();
            } else if self.state != State::SynReceived {
                // A SYN on a synchronized subflow (RFC 5961 §4), or a retransmitted
                // SYN/ACK whose ACK from us was lost: answer with an ACK, nothing else.
                self.challenge_ack(now);
            }
            out.dropped = true;
            return out;
        }
        if !flags.contains(TcpFlags::ACK) {
            out.dropped = true;
            return out;
        }
        let ack = from_wire(self.iss, seg.ack.0, self.snd_una);
        let ack_ok = ack <= self.snd_nxt && ack + self.max_peer_window.max(1 << 16) >= self.snd_una;
        if !ack_ok || !self.seq_in_window(seq, seg_end, payload_len, wnd) {
            self.counters.segments_rejected += 1;
            if ack_ok && seg_end <= self.rcv_nxt {
                // An old duplicate (the peer's timer fired early) or a keepalive probe: a
                // duplicate ACK at once tells the peer what we have.
                self.ack_now = true;
                self.dup_data_seen |= payload_len > 0;
            } else {
                self.challenge_ack(now);
            }
            out.dropped = true;
            return out;
        }
        if self.state == State::SynReceived {
            if ack != 1 {
                out.dropped = true;
                return out;
            }
            self.enter_established(now);
            out.established = true;
        }
        self.note_alive(now);

        if self.ts_ok
            && let Some((tsval, _)) = seg.options.timestamps
        {
            // RFC 7323: remember the TSval of the segment that covers rcv_nxt.
            if seq <= self.rcv_nxt && tsval.wrapping_sub(self.ts_recent) as i32 >= 0 {
                self.ts_recent = tsval;
            }
        }

        out.ack = self.process_ack(now, seg, coupling);

        if payload_len > 0 {
            // The window check let through only segments with something new.
            self.counters.bytes_received += payload_len as u64;
            if self.state.can_receive() {
                let skip = self.rcv_nxt.saturating_sub(seq) as usize;
                out.data = Some((seq + skip as u64, skip));
            }
        }
        if flags.contains(TcpFlags::FIN) && self.peer_fin.is_none() && self.state.can_receive() {
            self.peer_fin = Some(seg_end);
            self.advance_fin(now);
        }
        if self.state == State::Closed {
            out.closed = true;
        }
        out
    }

    /// A segment passed the checks: the peer is there.
    fn note_alive(&mut self, now: Instant) {
        self.last_received = now;
        self.keepalives_unanswered = 0;
        self.probe_sent_at = None;
        if self.state != State::Closed {
            self.arm_keepalive(now);
        }
    }

    /// RFC 9293 §3.10.7.4: whether a segment covering subflow offsets `seq..seg_end` brings
    /// anything at or after `rcv_nxt` and starts inside the receive window (`wnd`, the largest
    /// window we advertise).
    fn seq_in_window(&self, seq: u64, seg_end: u64, payload_len: usize, wnd: u64) -> bool {
        let new_enough = if payload_len == 0 {
            seq >= self.rcv_nxt
        } else {
            seg_end > self.rcv_nxt
        };
        new_enough && seq <= self.rcv_nxt + wnd
    }

    /// An ACK in answer to a segment that failed the checks (RFC 5961 §3.2, §4.2, §5.2): a
    /// genuine peer learns where we are, a blind attacker learns nothing. At most one per
    /// 50 ms, so a flood of forgeries is not reflected.
    fn challenge_ack(&mut self, now: Instant) {
        if self
            .last_challenge
            .is_some_and(|t| now < t + Duration::from_millis(50))
        {
            return;
        }
        self.last_challenge = Some(now);
        self.ack_now = true;
    }

    fn on_segment_syn_sent(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        mut out: RxOutcome,
    ) -> RxOutcome {
        let flags = seg.flags;
        let ack_ok = flags.contains(TcpFlags::ACK) && seg.ack.0 == self.iss.wrapping_add(1);
        if flags.contains(TcpFlags::RST) {
            if ack_ok {
                self.enter_closed(CloseReason::Reset);
                out.reset = true;
                out.closed = true;
            } else {
                out.dropped = true;
            }
            return out;
        }
        if !flags.contains(TcpFlags::SYN) || !ack_ok {
            // Simultaneous open is not supported; anything else is stray.
            out.dropped = true;
            return out;
        }
        self.irs = seg.seq.0;
        self.rcv_nxt = 1;
        self.take_syn_options(seg);
        // The SYN/ACK's window is never scaled.
        self.peer_window = seg.window as u64;
        self.max_peer_window = self.peer_window;
        self.peer_wnd_edge = 1 + seg.window as u64;
        if let Some(syn) = self.sent.front()
            && !syn.retransmitted
        {
            let sample = now.saturating_duration_since(syn.sent_at);
            self.rtt.update(sample);
        }
        self.sent.ack_to(1, |_, _| {});
        self.snd_una = 1;
        self.timers.rto = None;
        self.rto_count = 0;
        self.enter_established(now);
        self.ack_now = true;
        out.established = true;
        out.ack.valid = true;
        out.ack.window = self.peer_window;
        out
    }

    fn process_ack(&mut self, now: Instant, seg: &TcpRepr, coupling: Coupling<'_>) -> AckOutcome {
        let mut out = AckOutcome::default();
        let ack = from_wire(self.iss, seg.ack.0, self.snd_una);
        if ack < self.snd_una {
            // Older than what we know (reordered): acceptable, but says nothing new.
            return out;
        }
        out.valid = true;
        let window = (seg.window as u64) << self.snd_wscale;
        out.window = window;
        self.peer_window = window;
        self.max_peer_window = self.max_peer_window.max(window);
        self.peer_wnd_edge = ack + window;

        let in_flight_before = self.sent.in_flight;
        // RTT: the newest never-retransmitted segment this ACK newly delivered. A cumulative
        // ACK that also covers retransmitted data gives no sample (Karn, RFC 6298 §3): what
        // it covers may have sat out of order at the receiver for a long time.
        let mut newest_sent: Option<Instant> = None;
        let mut karn_blocked = false;
        fn sample_from(newest: &mut Option<Instant>, seg: &SentSeg) {
            if !seg.retransmitted && newest.is_none_or(|t| seg.sent_at > t) {
                *newest = Some(seg.sent_at);
            }
        }
        let mut rack = self.rack;
        let update_rack = |rack: &mut Rack, sent_at: Instant, end: u64, retransmitted: bool| {
            let newer = match rack.xmit {
                None => true,
                Some(x) => sent_at > x || (sent_at == x && end > rack.end),
            };
            if newer && !retransmitted {
                rack.xmit = Some(sent_at);
                rack.end = end;
                rack.rtt = now.saturating_duration_since(sent_at);
            } else if !newer && !retransmitted && rack.xmit.is_some() {
                // Delivered out of order with respect to what we already saw delivered.
                rack.reordering_seen = true;
            }
        };
        if ack > self.snd_una {
            let newly = ack - self.snd_una;
            out.newly_acked = newly;
            self.sent.ack_to(ack, |seg, _| {
                if !seg.sacked {
                    karn_blocked |= seg.retransmitted;
                    sample_from(&mut newest_sent, seg);
                }
                update_rack(&mut rack, seg.sent_at, seg.end(), seg.retransmitted);
            });
            self.snd_una = ack;
            self.counters.bytes_acked += newly;
            self.rto_count = 0;
            self.last_progress = now;
        }
        if karn_blocked {
            newest_sent = None;
        }
        if self.sack_ok {
            for &(l, r) in seg.options.sack_blocks.iter() {
                let l = from_wire(self.iss, l.0, self.snd_una);
                let r = from_wire(self.iss, r.0, self.snd_una);
                if l >= r || l < self.snd_una || r > self.snd_nxt {
                    continue;
                }
                let mut sacked = 0;
                self.sent.sack(l, r, |seg| {
                    sacked += seg.seq_len();
                    sample_from(&mut newest_sent, seg);
                    update_rack(&mut rack, seg.sent_at, seg.end(), seg.retransmitted);
                });
                out.newly_sacked += sacked;
            }
        }
        self.rack = rack;
        let rtt_sample = newest_sent.map(|t| now.saturating_duration_since(t));
        if let Some(s) = rtt_sample {
            self.rtt.update(s);
        }

        out.loss = self.rack_detect(now);
        if out.loss {
            self.last_loss = Some(now);
        }
        if let Some(e) = self.timeout_epoch_until
            && self.snd_una >= e
        {
            self.timeout_epoch_until = None;
        }
        if out.loss && self.recovery_until.is_none() && self.timeout_epoch_until.is_none() {
            self.recovery_until = Some(self.snd_nxt);
            self.cc.on_congestion_event(now, in_flight_before);
            self.counters.fast_recoveries += 1;
            // Quick ACKs help the peer's recovery from our side too.
            self.quickacks = self.quickacks.max(4);
        }
        if let Some(r) = self.recovery_until
            && self.snd_una >= r
        {
            self.recovery_until = None;
        }

        let delivered = out.newly_acked + out.newly_sacked;
        if delivered > 0 {
            let ack_info = Ack {
                now,
                newly_acked: delivered,
                in_flight: self.sent.in_flight,
                rtt_sample,
                srtt: self.rtt.srtt(),
                min_rtt: self.rtt.min_rtt(),
                app_limited: in_flight_before.saturating_add(delivered) < self.cc.window() / 2,
                in_recovery: self.recovery_until.is_some(),
            };
            self.cc.on_ack(&ack_info, &coupling);
        }

        // Retransmission timer: restart on progress, stop when nothing is outstanding.
        if self.sent.is_empty() {
            self.timers.rto = None;
        } else if out.newly_acked > 0 || self.timers.rto.is_none() {
            self.timers.rto = Some(now + self.rtt.rto());
        }

        if let Some(f) = self.fin_ssn
            && self.snd_una > f
        {
            self.on_fin_acked(now);
        }
        out
    }

    /// RACK reordering window: a quarter of the minimum RTT, zero once enough segments were
    /// SACKed past a hole and no reordering was ever seen (RFC 8985 §6.2).
    fn reo_wnd(&self) -> Duration {
        if !self.rack.reordering_seen && (self.in_recovery() || self.sent.sacked_count >= 3) {
            return Duration::ZERO;
        }
        (self.rtt.min_rtt() / 4).min(self.rtt.srtt())
    }

    /// Marks segments lost that were sent before the most recently delivered one and have
    /// had an RTT plus the reordering window to arrive. Arms the RACK timer for the rest.
    fn rack_detect(&mut self, now: Instant) -> bool {
        let Some(rack_xmit) = self.rack.xmit else {
            return false;
        };
        let reo = self.reo_wnd();
        let mut lost = false;
        let mut next: Option<Instant> = None;
        let mut i = 0;
        while let Some(seg) = self.sent.get(i) {
            if seg.ssn >= self.rack.end {
                break;
            }
            if !seg.sacked && !seg.lost && !seg.syn && seg.sent_at <= rack_xmit {
                let deadline = seg.sent_at + self.rack.rtt + reo;
                if deadline <= now {
                    self.sent.mark_lost(i);
                    lost = true;
                } else {
                    next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
                }
            }
            i += 1;
        }
        self.timers.rack = next;
        lost
    }

    /// The connection accepted the subflow bytes `range` (placed, or already held at the
    /// data level): move `rcv_nxt`, record out-of-order ranges for SACK, schedule the ACK.
    pub(crate) fn commit_received(&mut self, now: Instant, range: Range<u64>, full_sized: bool) {
        if range.start >= range.end {
            return;
        }
        if range.end <= self.rcv_nxt {
            self.ack_now = true;
            return;
        }
        let in_order = range.start <= self.rcv_nxt;
        if in_order {
            self.rcv_nxt = range.end;
            let had_ooo = !self.rcv_ooo.is_empty();
            if let Some(r) = self.rcv_ooo.range_containing(self.rcv_nxt) {
                self.rcv_nxt = r.end;
            }
            self.rcv_ooo.remove_below(self.rcv_nxt);
            if had_ooo {
                // Filling a hole: tell the sender at once (RFC 5681 §4.2).
                self.ack_now = true;
            }
        } else {
            let touches = self
                .rcv_ooo
                .range_containing(range.start.saturating_sub(1))
                .is_some()
                || self.rcv_ooo.range_containing(range.end).is_some();
            if self.rcv_ooo.len() >= MAX_OOO_RANGES && !touches {
                // Only a peer that scatters tiny pieces gets here: not recording this one
                // means it is not SACKed, and it is simply sent again.
                self.ack_now = true;
                return;
            }
            self.rcv_ooo.insert(range.clone());
            self.last_ooo = self.rcv_ooo.range_containing(range.start);
            self.ack_now = true;
        }
        self.unacked_segments += 1;
        if self.quickacks > 0 {
            self.quickacks -= 1;
            self.ack_now = true;
        } else if self.unacked_segments >= 2 && full_sized {
            self.ack_now = true;
        } else if !self.ack_now && self.timers.delayed_ack.is_none() {
            self.timers.delayed_ack = Some(now + self.cfg.delayed_ack);
        }
        self.ack_pending = true;
        self.advance_fin(now);
    }

    /// Consumes the peer's FIN once every byte before it has arrived.
    fn advance_fin(&mut self, now: Instant) {
        let Some(fin) = self.peer_fin else { return };
        if self.rcv_nxt != fin {
            return;
        }
        self.rcv_nxt = fin + 1;
        self.ack_now = true;
        self.state = match self.state {
            State::Established => State::CloseWait,
            State::FinWait1 => State::Closing,
            State::FinWait2 => {
                self.timers.time_wait = Some(now + self.cfg.time_wait);
                State::TimeWait
            }
            s => s,
        };
    }

    fn on_fin_acked(&mut self, now: Instant) {
        self.state = match self.state {
            State::FinWait1 => State::FinWait2,
            State::Closing => {
                self.timers.time_wait = Some(now + self.cfg.time_wait);
                State::TimeWait
            }
            State::LastAck => {
                self.enter_closed(CloseReason::Finished);
                State::Closed
            }
            s => s,
        };
    }

    /// Handles expired timers. Returns true if the retransmission timer fired (the
    /// connection counts those to judge the path).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        let mut rto_fired = false;
        if self.timers.time_wait.is_some_and(|t| t <= now) {
            self.enter_closed(CloseReason::Finished);
            return false;
        }
        if self.timers.delayed_ack.is_some_and(|t| t <= now) {
            self.timers.delayed_ack = None;
            if self.ack_pending {
                self.ack_now = true;
            }
        }
        if self.timers.pacing.is_some_and(|t| t <= now) {
            self.timers.pacing = None;
        }
        if self.timers.rack.is_some_and(|t| t <= now) {
            self.timers.rack = None;
            let in_flight = self.sent.in_flight;
            if self.rack_detect(now)
                && self.recovery_until.is_none()
                && self.timeout_epoch_until.is_none()
            {
                self.recovery_until = Some(self.snd_nxt);
                self.cc.on_congestion_event(now, in_flight);
                self.counters.fast_recoveries += 1;
            }
        }
        if self.timers.rto.is_some_and(|t| t <= now) {
            rto_fired = true;
            self.on_rto(now);
        }
        if self.timers.keepalive.is_some_and(|t| t <= now) {
            self.on_keepalive_timer(now);
        }
        rto_fired
    }

    fn on_rto(&mut self, now: Instant) {
        self.timers.rto = None;
        if self.sent.is_empty() {
            return;
        }
        self.rto_count += 1;
        self.counters.rto_events += 1;
        self.rtt.on_timeout();
        let handshaking = matches!(self.state, State::SynSent | State::SynReceived);
        if !handshaking {
            // A SYN lost while a link comes up says nothing about the path once it works
            // (the failback rules look at recent losses).
            self.last_loss = Some(now);
        }
        if handshaking {
            self.syn_count += 1;
            if self.syn_count > self.cfg.syn_retries {
                self.enter_closed(CloseReason::TimedOut);
                return;
            }
        } else if self.rto_count > self.cfg.max_rto_count {
            self.enter_closed(CloseReason::TimedOut);
            return;
        } else {
            self.cc.on_retransmission_timeout(now);
        }
        for i in 0..self.sent.len() {
            self.sent.mark_lost(i);
        }
        // Slow start from here (RFC 5681 §3.1): not fast recovery, which would hold the
        // window at one segment until everything sent before the timeout is acknowledged.
        // Losses among that data belong to this congestion event, not a new one.
        self.recovery_until = None;
        self.timeout_epoch_until = Some(self.snd_nxt);
        // A timeout invalidates what RACK knew; the next delivered segment re-arms it.
        self.rack.xmit = None;
        self.timers.rack = None;
        self.timers.rto = Some(now + self.rtt.rto());
    }

    fn on_keepalive_timer(&mut self, now: Instant) {
        self.timers.keepalive = None;
        if !self.state.is_synchronized() || self.state == State::TimeWait {
            return;
        }
        if !self.sent.is_empty() {
            // Outstanding data: the retransmission timer judges liveness.
            self.arm_keepalive(now);
            return;
        }
        if self.keepalives_unanswered >= self.cfg.keepalive_probes {
            self.enter_closed(CloseReason::TimedOut);
            return;
        }
        self.keepalive_due = true;
        self.keepalives_unanswered += 1;
        let idle = self.cfg.keepalive.unwrap_or(Duration::from_secs(25));
        // Probes after the first come faster: a quarter of the idle time, or two RTOs if
        // that is sooner (a dead peer is then noticed seconds after the first probe).
        let again = (idle / 4).min((self.rtt.rto() * 2).max(Duration::from_secs(1)));
        self.timers.keepalive = Some(now + again);
    }

    fn retransmit_syn_now(&mut self) {
        let syn_at = self.sent.iter().position(|s| s.syn);
        if let Some(i) = syn_at {
            self.sent.mark_lost(i);
        }
    }
}
