//! A round-based fluid model shared by the cc_* tests (included with `#[path]`).
//!
//! Each round the sender has exactly one window in flight; one RTT later that window is
//! acknowledged in MSS-sized ACKs spread evenly over the round (ACK clocking), and the sender
//! refills the window after each ACK. Losses are injected by the tests between rounds.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use braid_proto::cc::{Ack, CongestionControl, Coupling, PathState};

pub struct Model {
    pub now: Instant,
    pub mss: u64,
    /// The network's RTT for the next round.
    pub rtt: Duration,
    /// What the sender's estimator reports as srtt (the RTT if None).
    pub srtt: Option<Duration>,
    pub app_limited: bool,
    pub in_recovery: bool,
}

impl Model {
    pub fn new(mss: u64, rtt: Duration) -> Self {
        Self {
            now: Instant::now(),
            mss,
            rtt,
            srtt: None,
            app_limited: false,
            in_recovery: false,
        }
    }

    /// Seconds since `origin`.
    pub fn since(&self, origin: Instant) -> f64 {
        self.now.duration_since(origin).as_secs_f64()
    }

    /// One round on a single uncoupled subflow; returns the bytes acknowledged.
    pub fn round(&mut self, cc: &mut dyn CongestionControl) -> u64 {
        self.round_coupled(cc, &[], usize::MAX)
    }

    /// One round on subflow `me` of a coupled connection whose other subflows are `paths`
    /// (the entry at `me` is refreshed from `cc` before each ACK).
    pub fn round_coupled(
        &mut self,
        cc: &mut dyn CongestionControl,
        paths: &[PathState],
        me: usize,
    ) -> u64 {
        let mut paths: Vec<PathState> = paths.to_vec();
        let window = cc.window();
        let acks = window.div_ceil(self.mss).max(1);
        let start = self.now;
        let mut acked = 0;
        let srtt = self.srtt.unwrap_or(self.rtt);
        for j in 0..acks {
            let bytes = self.mss.min(window - acked);
            acked += bytes;
            let now = start + self.rtt * (j as u32 + 1) / acks as u32;
            let before = cc.window();
            if let Some(p) = paths.get_mut(me) {
                p.cwnd = before;
                p.loss_interval = cc.loss_interval();
            }
            let ack = Ack {
                now,
                newly_acked: bytes,
                in_flight: before.saturating_sub(bytes),
                rtt_sample: Some(self.rtt),
                srtt,
                min_rtt: srtt.min(self.rtt),
                app_limited: self.app_limited,
                in_recovery: self.in_recovery,
            };
            let coupling = Coupling { me, paths: &paths };
            cc.on_ack(&ack, &coupling);
        }
        self.now = start + self.rtt;
        acked
    }

    /// A loss detected with a full window in flight.
    pub fn loss(&mut self, cc: &mut dyn CongestionControl) {
        let w = cc.window();
        cc.on_congestion_event(self.now, w);
    }
}

pub fn path(cc: &dyn CongestionControl, srtt: Duration) -> PathState {
    PathState {
        cwnd: cc.window(),
        srtt,
        mss: 1000,
        loss_interval: cc.loss_interval(),
        active: true,
    }
}
