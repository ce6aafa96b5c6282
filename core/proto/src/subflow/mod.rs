//! One TCP subflow: handshake, sequence spaces, SACK, RTT/RTO, RACK loss detection,
//! congestion control, delayed ACKs, keepalive, FIN/RST and TIME_WAIT.
//!
//! The subflow knows nothing of data sequence numbers beyond what it is told: the connection
//! decides what to send on it and where received bytes go. Sequence numbers are unwrapped
//! 64-bit offsets from the ISNs (the SYN is offset 0, the first data byte offset 1), converted
//! to 32-bit wire values only when a header is written or read.

mod config;
mod rx;
mod sent;
mod tx;

pub use config::SubflowConfig;
pub(crate) use rx::RxOutcome;
pub(crate) use sent::{SentQueue, SentSeg};
pub(crate) use tx::Control;

use crate::cc::{CongestionControl, Pacer, RttEstimator};
use crate::range_set::RangeSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    Closing,
    TimeWait,
    CloseWait,
    LastAck,
    Closed,
}

impl State {
    /// Data may be sent in this state.
    pub(crate) fn can_send(self) -> bool {
        matches!(self, State::Established | State::CloseWait)
    }

    /// The peer may still send us data.
    pub(crate) fn can_receive(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }

    pub(crate) fn is_synchronized(self) -> bool {
        !matches!(self, State::SynSent | State::SynReceived | State::Closed)
    }
}

/// Why a subflow stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both FINs exchanged.
    Finished,
    /// The peer reset it.
    Reset,
    /// Too many retransmission timeouts, unanswered keepalives or SYN retries.
    TimedOut,
    /// We reset it (bad HMAC, policy, abort).
    Aborted,
}

/// Timers a subflow runs; the earliest one is reported by `poll_timeout`.
#[derive(Clone, Copy, Debug, Default)]
struct Timers {
    rto: Option<Instant>,
    rack: Option<Instant>,
    delayed_ack: Option<Instant>,
    keepalive: Option<Instant>,
    time_wait: Option<Instant>,
    pacing: Option<Instant>,
}

/// RACK state (RFC 8985): the most recently sent segment known to be delivered.
#[derive(Clone, Copy, Debug, Default)]
struct Rack {
    xmit: Option<Instant>,
    end: u64,
    rtt: Duration,
    reordering_seen: bool,
}

/// Counters a subflow keeps for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SubflowCounters {
    pub segments_sent: u64,
    pub segments_received: u64,
    pub bytes_sent: u64,
    pub bytes_retransmitted: u64,
    pub bytes_received: u64,
    pub bytes_acked: u64,
    pub retransmissions: u64,
    pub rto_events: u64,
    pub fast_recoveries: u64,
    /// Segments that failed the sequence/ACK checks (RFC 5961) and were ignored.
    pub segments_rejected: u64,
}

pub(crate) struct Subflow {
    pub cfg: SubflowConfig,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: State,
    pub close_reason: Option<CloseReason>,
    pub created: Instant,
    pub established_at: Option<Instant>,

    iss: u32,
    irs: u32,
    snd_una: u64,
    snd_nxt: u64,
    pub sent: SentQueue,
    /// The subflow should send a FIN once the connection has nothing more for it.
    fin_wanted: bool,
    fin_ssn: Option<u64>,
    /// Right edge of the peer's window in our subflow sequence space.
    peer_wnd_edge: u64,
    /// Last raw window field and the scale it is read with.
    pub peer_window: u64,
    /// Largest window the peer has offered (RFC 5961 §5.2: how old an ACK may be).
    max_peer_window: u64,
    /// When the last challenge ACK went out (they are rate limited, RFC 5961 §7).
    last_challenge: Option<Instant>,
    snd_wscale: u8,
    rcv_wscale: u8,
    pub peer_mss: u16,
    sack_ok: bool,
    ts_ok: bool,
    ts_recent: u32,

    rcv_nxt: u64,
    rcv_ooo: RangeSet,
    last_ooo: Option<Range<u64>>,
    peer_fin: Option<u64>,

    ack_now: bool,
    ack_pending: bool,
    unacked_segments: u32,
    /// ACK every segment for a while after start and after loss (quick ACK mode).
    quickacks: u32,
    dup_data_seen: bool,

    timers: Timers,
    pub rtt: RttEstimator,
    pub cc: Box<dyn CongestionControl>,
    pacer: Pacer,
    recovery_until: Option<u64>,
    /// After a retransmission timeout: the send point then. Until it is acknowledged, more
    /// losses are part of the same congestion event and do not reduce the window again.
    timeout_epoch_until: Option<u64>,
    /// Consecutive retransmission timeouts without progress.
    pub rto_count: u32,
    rack: Rack,
    pub last_received: Instant,
    pub last_sent: Instant,
    /// Last time new data was cumulatively acknowledged.
    pub last_progress: Instant,
    /// Last time a loss was detected (RACK, or a retransmission timeout).
    pub last_loss: Option<Instant>,
    keepalives_unanswered: u32,
    keepalive_due: bool,
    /// When the oldest keepalive probe still unanswered went out.
    probe_sent_at: Option<Instant>,
    syn_count: u32,
    rst_pending: bool,
    pub counters: SubflowCounters,
}

impl std::fmt::Debug for Subflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subflow")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("state", &self.state)
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("rcv_nxt", &self.rcv_nxt)
            .field("cwnd", &self.cc.window())
            .field("in_flight", &self.sent.in_flight)
            .finish()
    }
}

impl Subflow {
    fn new(
        now: Instant,
        cfg: SubflowConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        state: State,
    ) -> Self {
        let mss = cfg.mss as u64;
        let cc = cfg.congestion_control.build(mss, now);
        let rtt = RttEstimator::new()
            .with_initial_rto(cfg.initial_rto)
            .with_min_rto(cfg.min_rto)
            .with_max_rto(cfg.max_rto);
        Self {
            local,
            remote,
            state,
            close_reason: None,
            created: now,
            established_at: None,
            iss,
            irs: 0,
            snd_una: 0,
            snd_nxt: 0,
            sent: SentQueue::default(),
            fin_wanted: false,
            fin_ssn: None,
            peer_wnd_edge: 1,
            peer_window: 0,
            max_peer_window: 0,
            last_challenge: None,
            snd_wscale: 0,
            rcv_wscale: 0,
            peer_mss: 536,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            rcv_nxt: 0,
            rcv_ooo: RangeSet::new(),
            last_ooo: None,
            peer_fin: None,
            ack_now: false,
            ack_pending: false,
            unacked_segments: 0,
            quickacks: 16,
            dup_data_seen: false,
            timers: Timers::default(),
            rtt,
            cc,
            pacer: Pacer::new(),
            recovery_until: None,
            timeout_epoch_until: None,
            rto_count: 0,
            rack: Rack::default(),
            last_received: now,
            last_sent: now,
            last_progress: now,
            last_loss: None,
            keepalives_unanswered: 0,
            keepalive_due: false,
            probe_sent_at: None,
            syn_count: 0,
            rst_pending: false,
            counters: SubflowCounters::default(),
            cfg,
        }
    }

    /// An active open: the SYN goes out on the next poll.
    pub(crate) fn connect(
        now: Instant,
        cfg: SubflowConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
    ) -> Self {
        let mut sf = Self::new(now, cfg, local, remote, iss, State::SynSent);
        sf.queue_syn(now);
        sf
    }

    /// A passive open from a received SYN: the SYN/ACK goes out on the next poll.
    pub(crate) fn accept(
        now: Instant,
        cfg: SubflowConfig,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        syn: &crate::wire::TcpRepr,
    ) -> Self {
        let mut sf = Self::new(now, cfg, local, remote, iss, State::SynReceived);
        sf.irs = syn.seq.0;
        sf.rcv_nxt = 1;
        sf.take_syn_options(syn);
        sf.peer_window = syn.window as u64;
        sf.max_peer_window = sf.peer_window;
        sf.queue_syn(now);
        sf
    }

    /// The SYN (or SYN/ACK) already went out (a SYN cookie answer): it is not sent again,
    /// and, as its send time is unknown, it gives no RTT sample.
    pub(crate) fn syn_sent_before(&mut self, now: Instant) {
        if self.sent.front().is_some_and(|s| s.syn) {
            self.sent.retransmitted(0, now);
            self.timers.rto = Some(now + self.rtt.rto());
        }
    }

    /// The SYN (or SYN/ACK) occupies offset 0 and is retransmitted like data.
    fn queue_syn(&mut self, now: Instant) {
        self.sent.push(SentSeg {
            ssn: 0,
            len: 0,
            dsn: 0,
            data_fin: false,
            fin: false,
            syn: true,
            sent_at: now,
            retransmitted: false,
            sacked: false,
            lost: false,
        });
        // Queued as "lost" so the normal retransmission path sends it the first time.
        self.sent.mark_lost(0);
        self.snd_nxt = 1;
    }

    fn take_syn_options(&mut self, syn: &crate::wire::TcpRepr) {
        let o = &syn.options;
        self.peer_mss = o.mss.unwrap_or(536).max(64);
        if let Some(ws) = o.window_scale {
            self.snd_wscale = ws.min(14);
            self.rcv_wscale = self.cfg.window_scale;
        }
        self.sack_ok = self.cfg.sack && o.sack_permitted;
        if let (true, Some((tsval, _))) = (self.cfg.timestamps, o.timestamps) {
            self.ts_ok = true;
            self.ts_recent = tsval;
        }
        let mss = self.effective_mss() as u64;
        self.cc.set_mss(mss);
    }

    /// Whether `seg` acknowledges our SYN (or SYN/ACK) exactly: only such a segment may
    /// complete the handshake, and only then do its MPTCP options count.
    pub(crate) fn completes_handshake(&self, seg: &crate::wire::TcpRepr) -> bool {
        let acks_syn =
            seg.flags.contains(crate::wire::TcpFlags::ACK) && seg.ack.0 == self.iss.wrapping_add(1);
        match self.state {
            State::SynSent | State::SynReceived => acks_syn,
            _ => true,
        }
    }

    /// Largest payload a segment may carry before options are accounted for.
    pub(crate) fn effective_mss(&self) -> u16 {
        self.peer_mss.min(self.cfg.mss)
    }

    pub(crate) fn irs(&self) -> u32 {
        self.irs
    }

    pub(crate) fn snd_una(&self) -> u64 {
        self.snd_una
    }

    pub(crate) fn snd_nxt(&self) -> u64 {
        self.snd_nxt
    }

    pub(crate) fn rcv_nxt(&self) -> u64 {
        self.rcv_nxt
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.sent.in_flight
    }

    pub(crate) fn cwnd(&self) -> u64 {
        self.cc.window()
    }

    pub(crate) fn srtt(&self) -> Duration {
        self.rtt.srtt()
    }

    pub(crate) fn has_rtt_sample(&self) -> bool {
        self.rtt.has_samples()
    }

    pub(crate) fn in_recovery(&self) -> bool {
        self.recovery_until.is_some()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether nothing sent is still waiting for acknowledgement.
    pub(crate) fn all_acked(&self) -> bool {
        self.sent.is_empty()
    }

    /// Outstanding segments waiting for retransmission.
    pub(crate) fn has_lost(&self) -> bool {
        self.sent.lost_count > 0
    }

    /// Peer's FIN seen and all data before it received.
    pub(crate) fn peer_finished(&self) -> bool {
        self.peer_fin.is_some_and(|f| self.rcv_nxt > f)
    }

    /// When the segment at `snd_una` (the oldest waiting for an ACK) was last sent.
    pub(crate) fn oldest_unacked_sent_at(&self) -> Option<Instant> {
        self.sent.front().map(|s| s.sent_at)
    }

    /// Out-of-order data is held: ACKs should carry SACK blocks now.
    pub(crate) fn has_sack_info(&self) -> bool {
        self.sack_ok && !self.rcv_ooo.is_empty()
    }

    /// Forgets a RST we meant to send (the peer reset us first).
    pub(crate) fn drop_pending_rst(&mut self) {
        self.rst_pending = false;
    }

    /// Asks for an ACK to go out immediately (e.g. after a window update or an MPTCP
    /// option that needs an answer).
    pub(crate) fn request_ack(&mut self) {
        self.ack_now = true;
    }

    /// When the oldest unanswered keepalive probe went out, once a second one is
    /// unanswered too (one lost probe or answer proves nothing).
    pub(crate) fn probes_unanswered_since(&self) -> Option<Instant> {
        self.probe_sent_at
            .filter(|_| self.keepalives_unanswered >= 2)
    }

    /// Sends a keepalive probe now (the peer answers it with an ACK if it is there).
    pub(crate) fn probe_now(&mut self) {
        if self.state.is_synchronized() && self.state != State::TimeWait {
            self.keepalive_due = true;
        }
    }

    /// Asks for the subflow to be closed with a FIN once the connection gives it no more data.
    pub(crate) fn close(&mut self) {
        if matches!(self.state, State::SynSent | State::SynReceived) {
            self.abort();
            return;
        }
        self.fin_wanted = true;
    }

    /// Resets the subflow: a RST goes out on the next poll and it is closed.
    pub(crate) fn abort(&mut self) {
        if self.state != State::Closed {
            self.rst_pending = true;
            self.enter_closed(CloseReason::Aborted);
        }
    }

    fn enter_closed(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.close_reason.get_or_insert(reason);
        self.timers = Timers::default();
    }

    fn enter_established(&mut self, now: Instant) {
        self.state = State::Established;
        self.established_at = Some(now);
        self.last_progress = now;
        self.arm_keepalive(now);
    }

    fn arm_keepalive(&mut self, now: Instant) {
        self.timers.keepalive = self.cfg.keepalive.map(|d| now + d);
    }

    /// Earliest timer, for the connection's `poll_timeout`.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timers;
        [
            t.rto,
            t.rack,
            t.delayed_ack,
            t.keepalive,
            t.time_wait,
            t.pacing,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// TSval for outgoing segments: a millisecond clock since the subflow started.
    fn ts_now(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.created).as_millis() as u32
    }

    /// Copies the state a coupled congestion controller needs.
    pub(crate) fn path_state(&self, active: bool) -> crate::cc::PathState {
        crate::cc::PathState {
            cwnd: self.cc.window(),
            srtt: self.rtt.srtt(),
            mss: self.effective_mss() as u64,
            loss_interval: self.cc.loss_interval(),
            active,
        }
    }
}
