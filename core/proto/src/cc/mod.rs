//! Congestion control: per-subflow Reno and CUBIC, coupled LIA (RFC 6356) and OLIA, the RFC 6298
//! RTT estimator, and the pacer.
//!
//! The subflow owns one boxed controller (`Algorithm::build`) and tells it about ACKs,
//! congestion events and retransmission timeouts. Coupled controllers also see every subflow
//! of the connection. The subflow also owns an `RttEstimator` (it must apply Karn's rule: no
//! samples from retransmitted segments) and a `Pacer`, which it asks before each transmission.
//!
//! All windows are in bytes. Windows never drop below 2 MSS on a loss, nor below 1 MSS on a
//! timeout, never exceed `MAX_WINDOW`, and never grow on ACKs that are application-limited or
//! arrive during recovery.

#![warn(missing_docs, unreachable_pub)]

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

mod aimd;
mod coupled;
mod cubic;
mod hystart;
mod pacer;
mod reno;
mod rtt;

pub use coupled::{Lia, Olia};
pub use cubic::Cubic;
pub use pacer::Pacer;
pub use reno::Reno;
pub use rtt::RttEstimator;

/// Largest window any controller reports (1 TiB): far above any real bandwidth-delay product,
/// and small enough that window arithmetic in `f64` stays exact to the byte.
pub const MAX_WINDOW: u64 = 1 << 40;

/// Largest MSS the controllers accept; larger values are clamped so that products such as
/// `10 * mss` can never overflow.
pub const MAX_MSS: u64 = 1 << 20;

/// Initial window per RFC 6928: `min(10 * MSS, max(2 * MSS, 14600))`.
pub fn initial_window(mss: u64) -> u64 {
    let mss = clamp_mss(mss);
    (10 * mss).min((2 * mss).max(14_600))
}

/// The smallest window a congestion event may leave (2 MSS, RFC 5681 eq. 4). Only a
/// retransmission timeout goes lower, to the 1-MSS loss window.
pub fn minimum_window(mss: u64) -> u64 {
    2 * clamp_mss(mss)
}

/// An MSS of zero would stall every controller and a huge one would overflow window
/// arithmetic: keep it in `1..=MAX_MSS`.
pub(crate) fn clamp_mss(mss: u64) -> u64 {
    mss.clamp(1, MAX_MSS)
}

/// Converts a window computed in floating point back to bytes, mapping NaN and infinities to
/// the bounds instead of letting them leak into the sender.
pub(crate) fn window_from_f64(bytes: f64) -> u64 {
    if bytes.is_nan() {
        0
    } else {
        // `as` saturates; the clamp keeps the value inside the reported range.
        (bytes.max(0.0) as u64).min(MAX_WINDOW)
    }
}

/// One ACK's worth of news for a subflow's controller.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    /// When the ACK arrived.
    pub now: Instant,
    /// Bytes newly acknowledged by this ACK, cumulatively or by SACK.
    pub newly_acked: u64,
    /// Bytes still in flight after the ACK was processed.
    pub in_flight: u64,
    /// The RTT sample this ACK produced, if any (Karn: none for retransmitted data).
    pub rtt_sample: Option<Duration>,
    /// Smoothed RTT after this ACK.
    pub srtt: Duration,
    /// Lowest RTT seen recently.
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
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// Maximum segment size in bytes.
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
    /// Which of `paths` is the subflow asking.
    pub me: usize,
    /// Every subflow of the connection.
    pub paths: &'a [PathState],
}

/// A subflow's congestion controller (Reno, CUBIC, LIA, OLIA): told about ACKs, losses and
/// timeouts, it answers how many bytes may be in flight.
pub trait CongestionControl: Send + std::fmt::Debug {
    /// Congestion window in bytes.
    fn window(&self) -> u64;
    /// Slow-start threshold in bytes.
    fn ssthresh(&self) -> u64;
    /// Whether the window is below the slow-start threshold.
    fn in_slow_start(&self) -> bool {
        self.window() < self.ssthresh()
    }
    /// New data was acknowledged.
    fn on_ack(&mut self, ack: &Ack, coupling: &Coupling<'_>);
    /// Loss detected (SACK, RACK or duplicate ACKs). The subflow calls this once per
    /// recovery episode, with the bytes in flight when the loss was detected.
    fn on_congestion_event(&mut self, now: Instant, in_flight: u64);
    /// The retransmission timer expired.
    fn on_retransmission_timeout(&mut self, now: Instant);
    /// The subflow, idle until now, takes over `window` bytes another path had in flight
    /// (a handover): in its first slow start the window starts there rather than at the
    /// initial window, so the first round trip carries what the receiver is missing and not
    /// only data it already has. The pacer spreads it over the RTT. Returns whether the
    /// window grew.
    fn take_over(&mut self, window: u64) -> bool;
    /// The path MSS changed (or was negotiated).
    fn set_mss(&mut self, mss: u64);
    /// OLIA's inter-loss byte count; other algorithms report 0.
    fn loss_interval(&self) -> u64 {
        0
    }
    /// The algorithm's name, for statistics and logs.
    fn name(&self) -> &'static str;
}

/// The congestion controllers a subflow can run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// NewReno-style AIMD (RFC 5681, RFC 3465 byte counting).
    Reno,
    /// CUBIC (RFC 9438) with a delay-based slow-start exit (see `hystart`): the default, as
    /// on Linux, Windows and Apple.
    #[default]
    Cubic,
    /// Linked Increases (RFC 6356): coupled, fair to single-path TCP at shared bottlenecks.
    Lia,
    /// Opportunistic Linked Increases (Khalili et al., CoNEXT 2012): coupled, Pareto-optimal.
    Olia,
}

impl Algorithm {
    /// Every algorithm, for tests and benchmarks that compare them.
    pub const ALL: [Algorithm; 4] = [Self::Reno, Self::Cubic, Self::Lia, Self::Olia];

    /// A fresh controller for a subflow with this MSS. `now` is the subflow's creation time;
    /// today's controllers start their clocks at the first ACK and do not need it.
    pub fn build(self, mss: u64, now: Instant) -> Box<dyn CongestionControl> {
        let _ = now;
        match self {
            Self::Reno => Box::new(Reno::new(mss)),
            Self::Cubic => Box::new(Cubic::new(mss)),
            Self::Lia => Box::new(Lia::new(mss)),
            Self::Olia => Box::new(Olia::new(mss)),
        }
    }

    /// Coupled controllers need every subflow's `PathState` in `Coupling`; the others ignore it.
    pub fn is_coupled(self) -> bool {
        matches!(self, Self::Lia | Self::Olia)
    }

    /// The algorithm's name (`reno`, `cubic`, `lia`, `olia`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reno => "reno",
            Self::Cubic => "cubic",
            Self::Lia => "lia",
            Self::Olia => "olia",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A congestion-control name that is not one of `reno`, `cubic`, `lia`, `olia`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseAlgorithmError {
    input: String,
}

impl fmt::Display for ParseAlgorithmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown congestion control algorithm {:?} (expected one of: reno, cubic, lia, olia)",
            self.input
        )
    }
}

impl std::error::Error for ParseAlgorithmError {}

impl FromStr for Algorithm {
    type Err = ParseAlgorithmError;

    /// Case-insensitive, surrounding whitespace ignored (names come from CLI flags and config).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| ParseAlgorithmError {
                input: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_windows_are_bounded() {
        assert_eq!(window_from_f64(f64::NAN), 0);
        assert_eq!(window_from_f64(f64::INFINITY), MAX_WINDOW);
        assert_eq!(window_from_f64(-5.0), 0);
        assert_eq!(window_from_f64(1234.9), 1234);
    }

    #[test]
    fn mss_is_clamped() {
        assert_eq!(clamp_mss(0), 1);
        assert_eq!(clamp_mss(u64::MAX), MAX_MSS);
        assert_eq!(initial_window(u64::MAX), 2 * MAX_MSS);
    }
}
