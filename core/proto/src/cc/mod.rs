//! Congestion control: per-subflow Reno and CUBIC, coupled LIA (RFC 6356) and OLIA, the RFC 6298
//! RTT estimator, and the pacer.
//!
//! The subflow owns one boxed controller and tells it about ACKs, congestion events and
//! retransmission timeouts. Coupled controllers also see every subflow of the connection.

use std::time::{Duration, Instant};

/// One ACK's worth of news for a subflow's controller.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    pub now: Instant,
    /// Bytes newly acknowledged by this ACK, cumulatively or by SACK.
    pub newly_acked: u64,
    /// Bytes still in flight after the ACK was processed.
    pub in_flight: u64,
    /// The RTT sample this ACK produced, if any (Karn: none for retransmitted data).
    pub rtt_sample: Option<Duration>,
    pub srtt: Duration,
    pub min_rtt: Duration,
    /// The sender had less than a full window in flight (application- or receive-window
    /// limited): the window must not grow on such ACKs (RFC 7661).
    pub app_limited: bool,
    /// The subflow is in loss recovery: the window is not grown.
    pub in_recovery: bool,
}

/// What a coupled controller needs to know about one subflow of the connection.
#[derive(Clone, Copy, Debug)]
pub struct PathState {
    pub cwnd: u64,
    pub srtt: Duration,
    pub mss: u64,
    /// OLIA's l_r: bytes acknowledged between the last two losses (or since the last one,
    /// whichever is larger). Zero for uncoupled controllers.
    pub loss_interval: u64,
    /// The subflow is established and allowed to carry data (not a standby backup).
    pub active: bool,
}

/// The connection's subflows as seen by a coupled controller; `me` indexes `paths`.
#[derive(Clone, Copy, Debug)]
pub struct Coupling<'a> {
    pub me: usize,
    pub paths: &'a [PathState],
}

pub trait CongestionControl: Send + std::fmt::Debug {
    /// Congestion window in bytes.
    fn window(&self) -> u64;
    fn ssthresh(&self) -> u64;
    fn in_slow_start(&self) -> bool {
        self.window() < self.ssthresh()
    }
    fn on_ack(&mut self, ack: &Ack, coupling: &Coupling<'_>);
    /// Loss detected (SACK, RACK or duplicate ACKs). The subflow calls this once per
    /// recovery episode, with the bytes in flight when the loss was detected.
    fn on_congestion_event(&mut self, now: Instant, in_flight: u64);
    /// The retransmission timer expired.
    fn on_retransmission_timeout(&mut self, now: Instant);
    /// The path MSS changed (or was negotiated).
    fn set_mss(&mut self, mss: u64);
    /// OLIA's inter-loss byte count; other algorithms report 0.
    fn loss_interval(&self) -> u64 {
        0
    }
    fn name(&self) -> &'static str;
}
