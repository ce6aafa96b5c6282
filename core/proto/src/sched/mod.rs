//! Packet schedulers: which subflow gets the next chunk of data.
//!
//! The connection filters the candidates first (usable subflows the path manager lets carry
//! data; backups only when no regular subflow is usable; stale subflows only when nothing fresh
//! is left) and the scheduler picks among what remains. `Scheduler::pick` sees nothing else: it
//! is the same for new and reinjected data (docs/ARCHITECTURE.md, "Paths and service types").

use std::time::Duration;

/// What a scheduler sees of one candidate subflow.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedView {
    /// Index of the subflow in the connection (opaque to the scheduler).
    pub index: usize,
    /// Smoothed round-trip time.
    pub srtt: Duration,
    /// `srtt` comes from a sample (false: the initial guess).
    pub rtt_known: bool,
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// Bytes sent and not yet acknowledged.
    pub in_flight: u64,
    /// Bytes it may send now (congestion and receive windows).
    pub room: u64,
    /// Largest payload of one segment.
    pub mss: u64,
    /// Had a retransmission timeout without progress since.
    pub stale: bool,
    /// Either side asked that the subflow be used only as a backup.
    pub backup: bool,
}

/// Connection-level facts a scheduler may weigh.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedContext {
    /// Bytes the peer's connection-level receive window still allows.
    pub send_window: u64,
}

/// Chooses the subflow for each chunk of data among the candidates the connection offers.
pub trait Scheduler: Send + std::fmt::Debug {
    /// The subflow for the next chunk, or None to wait (e.g. the best one is full).
    fn pick(&mut self, candidates: &[SchedView], ctx: SchedContext) -> Option<SchedView>;
    /// Every chunk goes on every subflow.
    fn redundant(&self) -> bool {
        false
    }
    /// The lower-case name, for logs and statistics.
    fn name(&self) -> &'static str;
}

/// The schedulers a connection can be configured with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SchedulerKind {
    /// Lowest RTT with room in its window; spill to the next when it is full (default).
    #[default]
    MinRtt,
    /// Take turns among subflows with room.
    RoundRobin,
    /// Every chunk on every subflow.
    Redundant,
    /// MinRTT that holds back a slow subflow when using it would block the fast one
    /// (BLEST-like head-of-line avoidance).
    Blest,
}

impl SchedulerKind {
    /// A new scheduler of this kind.
    pub fn build(self) -> Box<dyn Scheduler> {
        match self {
            SchedulerKind::MinRtt => Box::new(MinRtt),
            SchedulerKind::RoundRobin => Box::new(RoundRobin::default()),
            SchedulerKind::Redundant => Box::new(Redundant),
            SchedulerKind::Blest => Box::new(Blest),
        }
    }

    /// The lower-case name, as the command line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::MinRtt => "minrtt",
            SchedulerKind::RoundRobin => "roundrobin",
            SchedulerKind::Redundant => "redundant",
            SchedulerKind::Blest => "blest",
        }
    }
}

impl std::str::FromStr for SchedulerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minrtt" | "default" => Ok(SchedulerKind::MinRtt),
            "roundrobin" | "rr" => Ok(SchedulerKind::RoundRobin),
            "redundant" => Ok(SchedulerKind::Redundant),
            "blest" => Ok(SchedulerKind::Blest),
            _ => Err(format!(
                "unknown scheduler '{s}' (expected minrtt, roundrobin, redundant or blest)"
            )),
        }
    }
}

/// RTT used for ordering: unknown RTTs sort last but still get used when nothing else can.
fn rtt_key(v: &SchedView) -> (bool, Duration) {
    (!v.rtt_known, v.srtt)
}

/// Lowest RTT first; a subflow whose window is full is skipped (spill-over).
#[derive(Debug, Default)]
pub struct MinRtt;

impl Scheduler for MinRtt {
    fn pick(&mut self, c: &[SchedView], _ctx: SchedContext) -> Option<SchedView> {
        c.iter()
            .filter(|v| v.room > 0)
            .min_by_key(|v| rtt_key(v))
            .copied()
    }
    fn name(&self) -> &'static str {
        "minrtt"
    }
}

/// Takes turns: the next subflow (by index) with room after the one picked last.
#[derive(Debug, Default)]
pub struct RoundRobin {
    last: usize,
}

impl Scheduler for RoundRobin {
    fn pick(&mut self, c: &[SchedView], _ctx: SchedContext) -> Option<SchedView> {
        let mut with_room: Vec<&SchedView> = c.iter().filter(|v| v.room > 0).collect();
        with_room.sort_by_key(|v| v.index);
        let next = with_room
            .iter()
            .find(|v| v.index > self.last)
            .or_else(|| with_room.first())
            .copied()
            .copied();
        if let Some(v) = next {
            self.last = v.index;
        }
        next
    }
    fn name(&self) -> &'static str {
        "roundrobin"
    }
}

/// Sends each chunk on the fastest subflow with room; the connection copies it to the
/// others.
#[derive(Debug, Default)]
pub struct Redundant;

impl Scheduler for Redundant {
    fn pick(&mut self, c: &[SchedView], ctx: SchedContext) -> Option<SchedView> {
        MinRtt.pick(c, ctx)
    }
    fn redundant(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "redundant"
    }
}

/// BLEST (Ferlin et al., IFIP Networking 2016): before spilling onto a slower subflow,
/// estimate how much the fastest one could send during one slow-path RTT; if that would not
/// fit in the connection's send window next to the slow segment, sending on the slow path
/// risks head-of-line blocking at the receiver, so wait for the fast one instead.
#[derive(Debug, Default)]
pub struct Blest;

impl Scheduler for Blest {
    fn pick(&mut self, c: &[SchedView], ctx: SchedContext) -> Option<SchedView> {
        let fastest = c.iter().min_by_key(|v| rtt_key(v))?;
        if fastest.room > 0 {
            return Some(*fastest);
        }
        let slow = MinRtt.pick(c, ctx)?;
        if !slow.rtt_known || !fastest.rtt_known || fastest.srtt.is_zero() {
            return Some(slow);
        }
        let ratio = slow.srtt.as_secs_f64() / fastest.srtt.as_secs_f64();
        let mss = fastest.mss.max(1) as f64;
        let cwnd_segments = fastest.cwnd as f64 / mss;
        // Bytes the fast subflow sends while one slow segment is in flight (its window
        // growing by about half a segment per RTT meanwhile).
        let fast_bytes = mss * (cwnd_segments + (ratio - 1.0) / 2.0) * ratio;
        if fast_bytes > ctx.send_window.saturating_sub(slow.mss) as f64 {
            None
        } else {
            Some(slow)
        }
    }
    fn name(&self) -> &'static str {
        "blest"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(index: usize, rtt_ms: u64, room: u64) -> SchedView {
        SchedView {
            index,
            srtt: Duration::from_millis(rtt_ms),
            rtt_known: true,
            cwnd: 100_000,
            in_flight: 100_000 - room,
            room,
            mss: 1400,
            stale: false,
            backup: false,
        }
    }

    #[test]
    fn minrtt_prefers_fast_and_spills_when_full() {
        let mut s = MinRtt;
        let ctx = SchedContext::default();
        assert_eq!(
            s.pick(&[v(0, 60, 5000), v(1, 20, 5000)], ctx)
                .unwrap()
                .index,
            1
        );
        assert_eq!(
            s.pick(&[v(0, 60, 5000), v(1, 20, 0)], ctx).unwrap().index,
            0
        );
        assert!(s.pick(&[v(0, 60, 0), v(1, 20, 0)], ctx).is_none());
    }

    #[test]
    fn round_robin_alternates() {
        let mut s = RoundRobin::default();
        let c = [v(0, 60, 5000), v(1, 20, 5000)];
        let a = s.pick(&c, SchedContext::default()).unwrap().index;
        let b = s.pick(&c, SchedContext::default()).unwrap().index;
        assert_ne!(a, b);
    }

    #[test]
    fn blest_holds_back_the_slow_path_only_when_the_window_is_tight() {
        let mut s = Blest;
        let fast = v(1, 10, 0);
        let slow = v(0, 200, 5000);
        // Fast path: 100 kB window, 20x faster: it would send ~2 MB during one slow RTT.
        let tight = SchedContext {
            send_window: 500_000,
        };
        assert!(s.pick(&[slow, fast], tight).is_none());
        let roomy = SchedContext {
            send_window: 8_000_000,
        };
        assert_eq!(s.pick(&[slow, fast], roomy).unwrap().index, 0);
        // The fast path has room: always it.
        assert_eq!(s.pick(&[slow, v(1, 10, 3000)], tight).unwrap().index, 1);
    }
}
