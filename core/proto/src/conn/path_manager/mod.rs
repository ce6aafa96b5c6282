//! The path manager (docs/ARCHITECTURE.md, "Paths and service types"): one owner for which
//! paths exist, which one is active, backup flags, the cellular budget, failback, lazy
//! backups and the re-creation of dead subflows.
//!
//! It is fed events (`PmEvent`) and a snapshot of the subflows (`SubflowView`), and answers
//! with actions (`PmAction`) that the connection applies in one function
//! (`Connection::apply_path_actions`). The active path changes in exactly one place,
//! `PathManager::set_active`, and every change that moves traffic from one path to another
//! yields exactly one `PmAction::Switch` with its reason. The manager never touches a
//! subflow, so its decisions can be tested without a connection.

use super::SwitchReason;
use super::paths::AddrSignals;
use super::steering::PathQuality;
use crate::path::{InterfaceKind, PathId, PathSpec};
use crate::policy::{Policy, ServiceType};
use crate::subflow::CloseReason;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod open;
mod steer;
#[cfg(test)]
mod tests;

/// Recent losses mark a path lossy for this long.
pub(crate) const LOSSY_FOR: Duration = Duration::from_secs(2);

/// A local interface the connection may open subflows from.
#[derive(Clone, Debug)]
pub(crate) struct LocalPath {
    pub(crate) spec: PathSpec,
    addr_id: u8,
    /// The interface is up (not reported lost).
    available: bool,
    /// Earliest time a new subflow may be attempted (back-off after failures).
    retry_at: Option<Instant>,
    failures: u32,
    quality: PathQuality,
}

/// A remote address the peer announced.
#[derive(Clone, Debug)]
struct RemoteAddr {
    id: u8,
    addr: SocketAddr,
}

/// What the path manager sees of one subflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SubflowView {
    /// Index in the connection's subflow list (actions name subflows by it).
    pub index: usize,
    pub path: Option<PathId>,
    pub kind: InterfaceKind,
    pub remote: SocketAddr,
    /// May carry data now.
    pub usable: bool,
    pub closed: bool,
    pub synchronized: bool,
    /// We asked the peer to treat it as a backup.
    pub backup_local: bool,
    pub backup_remote: bool,
    /// Smoothed RTT, and whether it comes from a sample.
    pub srtt: Duration,
    pub rtt_sampled: bool,
    pub rto: Duration,
    /// Retransmission timeouts without progress since.
    pub rto_count: u32,
    pub rto_events: u64,
    /// Data in flight or marked lost.
    pub outstanding: bool,
    pub all_acked: bool,
    pub last_loss: Option<Instant>,
    /// When it counts as unresponsive (see `Connection::unresponsive_since`).
    pub unresponsive_at: Option<Instant>,
    /// Last segment sent or received.
    pub last_active: Instant,
    /// Bytes sent and received on it.
    pub bytes: u64,
}

impl SubflowView {
    fn unresponsive(&self, now: Instant) -> bool {
        self.unresponsive_at.is_some_and(|t| t <= now)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    path: Option<PathId>,
    usable: bool,
    closed: bool,
    synchronized: bool,
    backup: (bool, bool),
    /// Where the RTT and RTO stand against the policy's thresholds, and the RTT itself
    /// when comparisons between paths can matter.
    rtt: (u8, u8, bool, Option<Duration>),
    rto: (u32, u64),
    outstanding: bool,
    all_acked: bool,
    last_loss: Option<Instant>,
}

/// Connection facts the manager weighs besides its subflows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnFacts {
    /// This end steers (client, MPTCP, keys known, not closed).
    pub steer: bool,
    /// New subflows may be opened (`steer`, and the peer knows our key).
    pub open: bool,
    pub max_subflows: usize,
    /// The address the connection was opened to (remote address id 0).
    pub initial_remote: SocketAddr,
    /// Join addresses the peer announces.
    pub join_announced: bool,
}

/// What happened: the inputs of the path manager.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PmEvent {
    /// The OS reports an interface usable (again).
    InterfaceAvailable(PathSpec),
    /// The OS reports an interface gone (its subflows are already aborted).
    InterfaceLost(PathId),
    /// Quality hints for an interface.
    InterfaceQuality(PathId, PathQuality),
    /// The application changed the policy.
    PolicyChanged(Policy),
    /// The application pinned a path's backup flag (aggregate and redundant service).
    BackupPinned(PathId, bool),
    /// A subflow is gone.
    SubflowClosed {
        path: Option<PathId>,
        reason: Option<CloseReason>,
    },
    /// A segment arrived; the manager runs only if it changed something it reads (a
    /// subflow came up, an RTT sample, a timeout, a loss...).
    Segment,
    /// The peer announced an address we may join (ADD_ADDR, authenticated and accepted).
    AddAddr { id: u8, addr: SocketAddr },
    /// The peer withdrew addresses (REMOVE_ADDR).
    RemoveAddr(Vec<u8>),
    /// A timer of the connection fired (including `PathManager::next_deadline`).
    Timeout,
}

/// What the connection should do.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PmAction {
    /// Open a subflow (MP_JOIN) from `local` on `path` to `remote`.
    OpenSubflow {
        path: PathId,
        kind: InterfaceKind,
        local: SocketAddr,
        remote: SocketAddr,
        addr_id: u8,
        backup: bool,
    },
    /// Close subflow `index`: gracefully (FIN) or at once (`abort`, the path looks dead).
    CloseSubflow { index: usize, abort: bool },
    /// Ask the peer to treat subflow `index` as a backup or not (MP_PRIO).
    SetBackup { index: usize, backup: bool },
    /// Send again, on `onto`, the data still outstanding on every other path.
    Reinject { onto: PathId },
    /// The cellular budget ran out (`bytes` used): report it.
    BudgetExhausted { bytes: u64 },
    /// Traffic moved: report it (exactly once per switch).
    Switch {
        from: Option<PathId>,
        to: PathId,
        reason: SwitchReason,
    },
}

/// The path manager of one connection (see the module documentation).
#[derive(Debug)]
pub(crate) struct PathManager {
    policy: Policy,
    locals: Vec<LocalPath>,
    /// Addresses the peer announced (ADD_ADDR) that we may join.
    remotes: Vec<RemoteAddr>,
    /// ADD_ADDR / REMOVE_ADDR signalling.
    pub(crate) signals: AddrSignals,
    /// The MP_CAPABLE "C" flag of the server's SYN/ACK (RFC 8684 §3.1): no join goes to
    /// the address the connection was opened to, only to announced ones. A server sets it
    /// when it announces an address of its own (docs/ARCHITECTURE.md, "Announce and the
    /// C flag").
    pub(crate) initial_join_denied: bool,
    next_local_id: u8,
    /// The path carrying data under handover and interactive service.
    active: Option<PathId>,
    switched_at: Option<Instant>,
    /// Since when the preferred path has looked healthy (for failback).
    healthy_since: Option<Instant>,
    budget_exhausted: bool,
    /// Backup flags the application set per path.
    pinned_backup: Vec<(PathId, bool)>,
    /// The path traffic was on, and why it is being left, while no path is active (the
    /// interface went away, or the policy changed): the next decision chooses a path and
    /// reports the switch if it is another one.
    left: Option<(PathId, SwitchReason)>,
    /// Cellular bytes of subflows that are gone (still count against the budget); the
    /// connection adds a subflow's bytes when it closes.
    pub(crate) cellular_closed_bytes: u64,
    /// Something changed since the last steering / opening decision.
    steer_due: bool,
    open_due: bool,
    /// Segment-driven inputs at the last decision, to tell whether a segment changed any.
    marks: Vec<Mark>,
    /// Earliest time a decision may change with no new event (failback, idle backups,
    /// silence); not a timer: checked when the next segment arrives, as before.
    recheck_at: Option<Instant>,
    actions: VecDeque<PmAction>,
    /// Reused buffer for the connection's subflow snapshot.
    pub(crate) view_buf: Vec<SubflowView>,
}

impl PathManager {
    pub(crate) fn new(policy: &Policy) -> Self {
        Self {
            policy: policy.clone(),
            locals: Vec::new(),
            remotes: Vec::new(),
            signals: AddrSignals::default(),
            initial_join_denied: false,
            next_local_id: 0,
            active: None,
            switched_at: None,
            healthy_since: None,
            budget_exhausted: false,
            pinned_backup: Vec::new(),
            left: None,
            cellular_closed_bytes: 0,
            steer_due: true,
            open_due: true,
            marks: Vec::new(),
            recheck_at: None,
            actions: VecDeque::new(),
            view_buf: Vec::new(),
        }
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn active(&self) -> Option<PathId> {
        self.active
    }

    /// Whether the peer already announced address id `id`.
    pub(crate) fn remote_known(&self, id: u8) -> bool {
        self.remotes.iter().any(|r| r.id == id)
    }

    /// How many addresses the peer announced.
    pub(crate) fn remote_count(&self) -> usize {
        self.remotes.len()
    }

    pub(crate) fn local(&self, id: PathId) -> Option<&LocalPath> {
        self.locals.iter().find(|p| p.spec.id == id)
    }

    /// The next action for the connection to apply.
    pub(crate) fn next_action(&mut self) -> Option<PmAction> {
        self.actions.pop_front()
    }

    /// When the manager wants a `Timeout` even if nothing else happens: a path's re-creation
    /// back-off ends, or an ADD_ADDR is due again.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let retry = self
            .locals
            .iter()
            .filter(|p| p.available)
            .filter_map(|p| p.retry_at)
            .min();
        min_opt(retry, self.signals.next_deadline())
    }

    /// Takes an event in. `view` is the connection's subflows as they are now (after the
    /// event happened to them); `now` the time of the event.
    pub(crate) fn handle(&mut self, now: Instant, event: PmEvent, view: &mut [SubflowView]) {
        match event {
            PmEvent::InterfaceAvailable(spec) => self.add_local(spec),
            PmEvent::InterfaceLost(id) => self.lose_local(now, id, view),
            PmEvent::InterfaceQuality(id, q) => {
                if let Some(p) = self.locals.iter_mut().find(|p| p.spec.id == id) {
                    p.quality = q;
                }
            }
            PmEvent::PolicyChanged(policy) => {
                self.policy = policy;
                // Re-chosen under the new policy by the next decision; if that moves the
                // traffic, the switch says why.
                if let Some(from) = self.active {
                    self.left = Some((from, SwitchReason::PolicyChange));
                }
                self.set_active(now, None, None, view);
            }
            PmEvent::BackupPinned(path, backup) => {
                self.pinned_backup.retain(|&(p, _)| p != path);
                self.pinned_backup.push((path, backup));
                for v in view.iter_mut().filter(|v| v.path == Some(path)) {
                    self.set_backup(v, backup);
                }
            }
            PmEvent::SubflowClosed { path, reason } => self.subflow_closed(now, path, reason),
            PmEvent::Segment => {
                let precise = self.precise(view);
                let changed = self.marks.len() != view.len()
                    || (self.marks.iter().zip(view.iter()))
                        .any(|(m, v)| *m != self.mark(v, precise));
                let budget_crossed = self
                    .budget_used(view)
                    .is_some_and(|(used, budget)| used >= budget && !self.budget_exhausted);
                if !(changed || budget_crossed || self.recheck_at.is_some_and(|t| t <= now)) {
                    return;
                }
            }
            PmEvent::AddAddr { id, addr } => {
                if !self.remote_known(id) {
                    self.remotes.push(RemoteAddr { id, addr });
                }
            }
            PmEvent::RemoveAddr(ids) => self.remotes.retain(|r| !ids.contains(&r.id)),
            PmEvent::Timeout => self.timeout(now),
        }
        self.steer_due = true;
        self.open_due = true;
    }

    /// A subflow is gone (needs no snapshot).
    pub(crate) fn on_subflow_closed(
        &mut self,
        now: Instant,
        path: Option<PathId>,
        reason: Option<CloseReason>,
    ) {
        self.handle(now, PmEvent::SubflowClosed { path, reason }, &mut []);
    }

    /// A timer fired (needs no snapshot).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.handle(now, PmEvent::Timeout, &mut []);
    }

    /// Whether opening subflows waits for a decision (the connection skips building a
    /// snapshot otherwise).
    pub(crate) fn open_due(&self) -> bool {
        self.open_due
    }

    /// Whether steering waits for a decision.
    pub(crate) fn steer_due(&self) -> bool {
        self.steer_due
    }

    /// Runs the decisions an event made due: steering always, opening subflows when
    /// `open` (the connection can open one now).
    pub(crate) fn decide(
        &mut self,
        now: Instant,
        facts: &ConnFacts,
        view: &mut [SubflowView],
        open: bool,
    ) {
        if self.steer_due && facts.steer {
            self.steer_due = false;
            self.steer(now, view);
            let precise = self.precise(view);
            self.marks.clear();
            for v in view.iter() {
                let mark = self.mark(v, precise);
                self.marks.push(mark);
            }
            self.recheck(now, view);
        }
        if open && self.open_due && facts.open {
            self.open_due = false;
            self.open_subflows(now, facts, view);
        }
    }

    /// The inputs of a decision that change with segments rather than with time: when none
    /// of them changed, a segment is no reason to decide again. An RTT counts only where it
    /// stands against the thresholds, unless some path is near them (`precise`): then which
    /// path is faster can decide a switch.
    fn mark(&self, v: &SubflowView, precise: bool) -> Mark {
        let (rtt, rto) = (self.policy.rtt_threshold, self.policy.rto_threshold);
        let band = |x: Duration, limit: Duration| u8::from(x >= limit / 2) + u8::from(x >= limit);
        Mark {
            path: v.path,
            usable: v.usable,
            closed: v.closed,
            synchronized: v.synchronized,
            backup: (v.backup_local, v.backup_remote),
            rtt: (
                band(v.srtt, rtt),
                band(v.rto, rto),
                v.rtt_sampled,
                precise.then_some(v.srtt),
            ),
            rto: (v.rto_count, v.rto_events),
            outstanding: v.outstanding,
            all_acked: v.all_acked,
            last_loss: v.last_loss,
        }
    }

    /// Some path's RTT is at least half the threshold, or a path had timeouts: the RTTs
    /// themselves then matter (`HighRtt` and `Lossy` compare paths).
    fn precise(&self, view: &[SubflowView]) -> bool {
        let near = self.policy.rtt_threshold / 2;
        view.iter().any(|v| v.srtt >= near || v.rto_count > 0)
    }

    fn add_local(&mut self, spec: PathSpec) {
        if let Some(p) = self.locals.iter_mut().find(|p| p.spec.id == spec.id) {
            p.spec = spec;
            p.available = true;
            p.retry_at = None;
            p.failures = 0;
            let id = p.addr_id;
            self.signals.cancel_removal(id);
            return;
        }
        let addr_id = self.next_local_id;
        self.next_local_id = self.next_local_id.wrapping_add(1);
        self.locals.push(LocalPath {
            spec,
            addr_id,
            available: true,
            retry_at: None,
            failures: 0,
            quality: Default::default(),
        });
    }

    /// The interface is gone: no new subflows on it, the peer is told to drop the subflows
    /// from its address (REMOVE_ADDR), and traffic on it moves elsewhere.
    fn lose_local(&mut self, now: Instant, id: PathId, view: &mut [SubflowView]) {
        if let Some(p) = self.locals.iter_mut().find(|p| p.spec.id == id) {
            if p.available {
                self.signals.announce_removal(p.addr_id);
            }
            p.available = false;
        }
        if self.active == Some(id) {
            match self.best_alternative(id, view) {
                Some(to) => self.switch(now, to, SwitchReason::InterfaceLost, view),
                None => {
                    self.left = Some((id, SwitchReason::InterfaceLost));
                    self.set_active(now, None, None, view);
                }
            }
        }
    }

    fn subflow_closed(&mut self, now: Instant, path: Option<PathId>, reason: Option<CloseReason>) {
        let Some(path) = path else { return };
        let backoff = self.policy.recreate_backoff;
        if let Some(p) = self.locals.iter_mut().find(|p| p.spec.id == path) {
            if reason != Some(CloseReason::Finished) {
                p.failures += 1;
            }
            let shift = p.failures.min(6);
            p.retry_at = Some(now + backoff * (1 << shift) / 2);
        }
    }

    /// Lets paths whose back-off ended be tried (`retry_at` None means "may try now"), and
    /// ADD_ADDRs due again go out.
    fn timeout(&mut self, now: Instant) {
        self.signals.timeout(now);
        for p in &mut self.locals {
            if p.retry_at.is_some_and(|t| t <= now) {
                p.retry_at = None;
            }
        }
    }

    /// Cellular may carry data: allowed and within budget.
    pub(crate) fn cellular_allowed(&self) -> bool {
        self.policy.allow_cellular && !self.budget_exhausted
    }

    /// What the policy allows on a subflow of `kind` on `path` for data now: cost rules,
    /// and under handover and interactive service only the active path (the caller falls
    /// back to any subflow the cost rules allow when the active one has none).
    pub(crate) fn carries_data(&self, kind: InterfaceKind, path: Option<PathId>) -> bool {
        if kind.is_cellular() && !self.cellular_allowed() {
            return false;
        }
        match (self.policy.service, self.active, path) {
            (ServiceType::Handover | ServiceType::Interactive, Some(a), Some(p)) => a == p,
            _ => true,
        }
    }

    /// The preferred path: the first available non-cellular path in the order paths were
    /// added (usually WiFi), else the first available one.
    pub(crate) fn primary(&self) -> Option<PathId> {
        let mut avail = self.locals.iter().filter(|p| p.available);
        avail
            .clone()
            .find(|p| !p.spec.kind.is_cellular())
            .or_else(|| avail.next())
            .map(|p| p.spec.id)
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
