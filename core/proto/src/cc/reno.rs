//! NewReno-style AIMD (RFC 5681) with appropriate byte counting (RFC 3465).

use std::time::Instant;

use super::aimd::Aimd;
use super::{Ack, CongestionControl, Coupling};

/// Slow start by `min(acked, 2·MSS)` per ACK, +1 MSS per window in congestion avoidance,
/// halve on loss, one MSS after an RTO. The reference single-path TCP that LIA and OLIA are
/// meant to be fair to.
#[derive(Clone, Debug)]
pub struct Reno {
    w: Aimd,
}

impl Reno {
    /// A Reno controller for a subflow with this MSS.
    pub fn new(mss: u64) -> Self {
        Self { w: Aimd::new(mss) }
    }
}

impl CongestionControl for Reno {
    fn window(&self) -> u64 {
        self.w.cwnd
    }

    fn ssthresh(&self) -> u64 {
        self.w.ssthresh
    }

    fn on_ack(&mut self, ack: &Ack, _coupling: &Coupling<'_>) {
        let acked = self.w.grow(ack);
        if acked > 0 {
            self.w.reno_increase(acked);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: u64) {
        self.w.reduce(in_flight, 0.5);
    }

    fn on_retransmission_timeout(&mut self, _now: Instant) {
        self.w.timeout(0.5);
    }

    fn take_over(&mut self, window: u64) -> bool {
        self.w.take_over(window)
    }

    fn set_mss(&mut self, mss: u64) {
        self.w.set_mss(mss);
    }

    fn name(&self) -> &'static str {
        "reno"
    }
}
