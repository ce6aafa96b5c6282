//! What a run is: a stack, a workload, actions on the WiFi link; and what it produced.

use std::fmt;
use std::time::Duration;

use crate::transfer::Samples;

/// The MPTCP implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stack {
    /// The Linux kernel's MPTCP at both ends.
    Kernel,
    /// `braid bench` client and server, TCP-in-UDP carrier.
    BraidUdp,
    /// `braid bench` client and server, raw carrier (MPTCP on the wire).
    BraidRaw,
}

impl Stack {
    pub const ALL: [Stack; 3] = [Stack::Kernel, Stack::BraidUdp, Stack::BraidRaw];

    pub fn name(self) -> &'static str {
        match self {
            Stack::Kernel => "kernel",
            Stack::BraidUdp => "braid-udp",
            Stack::BraidRaw => "braid-raw",
        }
    }

    pub fn is_braid(self) -> bool {
        self != Stack::Kernel
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way the bulk data flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Server -> phone.
    Down,
    /// Phone -> server.
    Up,
}

impl Flow {
    pub fn name(self) -> &'static str {
        match self {
            Flow::Down => "down",
            Flow::Up => "up",
        }
    }

    pub fn link_direction(self) -> crate::Direction {
        match self {
            Flow::Down => crate::Direction::Down,
            Flow::Up => crate::Direction::Up,
        }
    }
}

/// Braid's service type for a run (the kernel has one behaviour, set by its endpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Aggregate,
    Handover,
    Interactive,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Aggregate => "aggregate",
            Policy::Handover => "handover",
            Policy::Interactive => "interactive",
        }
    }
}

/// What the application does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Workload {
    /// Send as fast as possible for `seconds`.
    Bulk { flow: Flow, seconds: f64 },
    /// `bytes`-byte requests `rate` times a second for `seconds`, each echoed.
    Echo { seconds: f64, bytes: u32, rate: f64 },
}

impl Workload {
    pub fn seconds(&self) -> f64 {
        match *self {
            Workload::Bulk { seconds, .. } | Workload::Echo { seconds, .. } => seconds,
        }
    }

    /// The direction whose link bytes matter (echo: the replies, downstream).
    pub fn flow(&self) -> Flow {
        match *self {
            Workload::Bulk { flow, .. } => flow,
            Workload::Echo { .. } => Flow::Down,
        }
    }
}

/// Something done to the WiFi link during a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Interface down on the phone and the link drops everything (the OS notices).
    LinkDown,
    LinkUp,
    /// Everything dropped, interfaces up (nobody is told).
    Silent(bool),
    /// One-way delay both ways, in milliseconds.
    Delay(u64),
    /// Random loss both ways, in percent.
    Loss(f64),
}

impl Action {
    pub fn label(&self) -> String {
        match self {
            Action::LinkDown => "wifi down".into(),
            Action::LinkUp => "wifi up".into(),
            Action::Silent(true) => "wifi silent".into(),
            Action::Silent(false) => "wifi back".into(),
            Action::Delay(ms) => format!("wifi delay {ms} ms"),
            Action::Loss(p) => format!("wifi loss {p} %"),
        }
    }
}

/// One run's description.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub stack: Stack,
    pub policy: Policy,
    /// For the kernel: the cellular endpoint carries the `backup` flag.
    pub kernel_backup: bool,
    /// For Braid: `--lazy-backup --backup-idle-close SECS` (handover).
    pub braid_lazy_backup: Option<f64>,
    pub workload: Workload,
    /// (seconds after the start, action).
    pub actions: Vec<(f64, Action)>,
}

/// Per-link wire bytes delivered in the workload's direction, sampled over time.
#[derive(Clone, Debug, Default)]
pub struct LinkSeries {
    /// (seconds since the trace origin, WiFi bytes, cellular bytes).
    pub points: Vec<(f64, u64, u64)>,
}

/// What one run produced, on one time axis: seconds since the receiver started counting.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The receiver's cumulative bytes on a 10 ms grid (bulk), or replies (echo).
    pub rx: Samples,
    /// When each action happened.
    pub actions: Vec<(f64, Action)>,
    pub links: LinkSeries,
    /// Echo: (request sent at, latency in seconds; None: no reply).
    pub echo: Vec<(f64, Option<f64>)>,
    /// Braid's connection events (time, text).
    pub events: Vec<(f64, String)>,
    /// Braid: live cellular subflows over time.
    pub cell_live: Vec<(f64, u64)>,
}

impl Trace {
    /// When the first action of this kind happened.
    pub fn action_at(&self, pred: impl Fn(&Action) -> bool) -> Option<f64> {
        self.actions.iter().find(|(_, a)| pred(a)).map(|(t, _)| *t)
    }

    pub fn sample_interval(&self) -> Duration {
        self.rx.interval
    }
}
