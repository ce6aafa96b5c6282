//! Per-subflow TCP settings.

use crate::cc::Algorithm;
use std::time::Duration;

/// Per-subflow TCP settings: MSS, options offered, timers, congestion control.
#[derive(Clone, Debug)]
pub struct SubflowConfig {
    /// MSS we advertise: the path MTU minus 40 (IPv4 + TCP, or IPv4 + UDP + framing).
    pub mss: u16,
    /// Our receive window scale shift (RFC 7323), sized for the receive buffer.
    pub window_scale: u8,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Offer timestamps (RFC 7323).
    pub timestamps: bool,
    /// Retransmission timeout before the first RTT sample (RFC 6298).
    pub initial_rto: Duration,
    /// Smallest retransmission timeout.
    pub min_rto: Duration,
    /// Largest retransmission timeout, after backoff.
    pub max_rto: Duration,
    /// Longest an ACK for in-order data may be held back.
    pub delayed_ack: Duration,
    /// The congestion controller each subflow runs.
    pub congestion_control: Algorithm,
    /// Idle time before a keepalive probe (NAT bindings on UDP paths die after ~30 s).
    pub keepalive: Option<Duration>,
    /// Unanswered keepalive probes before the subflow is declared dead.
    pub keepalive_probes: u32,
    /// SYN retransmissions before the handshake is given up.
    pub syn_retries: u32,
    /// Consecutive retransmission timeouts after which the subflow is declared dead.
    pub max_rto_count: u32,
    /// How long a closed subflow stays in TIME_WAIT.
    pub time_wait: Duration,
    /// Pace transmissions at a multiple of cwnd/srtt instead of sending in bursts.
    pub pacing: bool,
}

impl Default for SubflowConfig {
    fn default() -> Self {
        Self {
            mss: 1460,
            window_scale: 8,
            sack: true,
            timestamps: true,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            delayed_ack: Duration::from_millis(25),
            congestion_control: Algorithm::Cubic,
            keepalive: Some(Duration::from_secs(25)),
            keepalive_probes: 4,
            syn_retries: 4,
            max_rto_count: 8,
            time_wait: Duration::from_secs(2),
            pacing: true,
        }
    }
}

impl SubflowConfig {
    /// A window scale large enough to advertise `buffer` bytes.
    pub fn scale_for(buffer: usize) -> u8 {
        let mut shift = 0u8;
        while shift < 14 && (buffer >> shift) > 0xffff {
            shift += 1;
        }
        shift
    }
}
