//! Service types, as on iOS: what an application wants from its paths. Each maps to path
//! manager and scheduler settings (docs/ARCHITECTURE.md, "Paths and service types"); defaults
//! follow XNU's thresholds.

use std::time::Duration;

/// What the application wants from its paths (as iOS's multipath service types).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ServiceType {
    /// Everything on the preferred interface; cellular as a backup, used only when WiFi fails.
    #[default]
    Handover,
    /// Lowest latency: both paths up, switch as soon as the preferred one degrades.
    Interactive,
    /// Use every path at once for throughput.
    Aggregate,
    /// Every byte on every path.
    Redundant,
}

impl ServiceType {
    /// The lower-case name, as the command line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Handover => "handover",
            ServiceType::Interactive => "interactive",
            ServiceType::Aggregate => "aggregate",
            ServiceType::Redundant => "redundant",
        }
    }
}

impl std::fmt::Display for ServiceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ServiceType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "handover" => Ok(ServiceType::Handover),
            "interactive" => Ok(ServiceType::Interactive),
            "aggregate" => Ok(ServiceType::Aggregate),
            "redundant" => Ok(ServiceType::Redundant),
            _ => Err(format!(
                "unknown policy '{s}' (expected handover, interactive, aggregate or redundant)"
            )),
        }
    }
}

/// The tunable part of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The service type; the other fields tune it.
    pub service: ServiceType,
    /// Open the backup subflow at once (true) or only when the primary degrades (false).
    pub eager_backup: bool,
    /// Switch away when the primary's RTO reaches this (XNU: 1.5 s).
    pub rto_threshold: Duration,
    /// Switch away when the primary's smoothed RTT reaches this and the other path is better
    /// (XNU: 600 ms).
    pub rtt_threshold: Duration,
    /// Retransmission timeouts with data outstanding that count as failure (XNU: 2).
    pub rto_count_threshold: u32,
    /// How long the preferred path must look healthy before traffic moves back to it.
    pub failback_after: Duration,
    /// Close an unused lazy backup after it has been idle this long.
    pub backup_idle_close: Duration,
    /// Cellular may be used at all.
    pub allow_cellular: bool,
    /// Most bytes this connection may send and receive over cellular (None: no limit).
    pub cellular_budget: Option<u64>,
    /// Minimum delay between attempts to re-create a subflow that died.
    pub recreate_backoff: Duration,
    /// A subflow silent this long with data outstanding, while another subflow works, is
    /// declared dead (its data is reinjected and the path manager re-creates it later).
    pub dead_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            service: ServiceType::Handover,
            eager_backup: true,
            rto_threshold: Duration::from_millis(1500),
            rtt_threshold: Duration::from_millis(600),
            rto_count_threshold: 2,
            failback_after: Duration::from_secs(5),
            backup_idle_close: Duration::from_secs(30),
            allow_cellular: true,
            cellular_budget: None,
            recreate_backoff: Duration::from_millis(500),
            dead_after: Duration::from_secs(5),
        }
    }
}

impl Policy {
    /// `service` with the default settings (XNU's thresholds).
    pub fn new(service: ServiceType) -> Self {
        Self {
            service,
            ..Self::default()
        }
    }
}
