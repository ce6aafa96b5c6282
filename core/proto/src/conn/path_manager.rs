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

#[derive(Debug)]
pub(crate) struct PathManager {
    policy: Policy,
    locals: Vec<LocalPath>,
    /// Addresses the peer announced (ADD_ADDR) that we may join.
    remotes: Vec<RemoteAddr>,
    /// ADD_ADDR / REMOVE_ADDR signalling.
    pub(crate) signals: AddrSignals,
    next_local_id: u8,
    /// The path carrying data under handover and interactive service.
    active: Option<PathId>,
    switched_at: Option<Instant>,
    /// Since when the preferred path has looked healthy (for failback).
    healthy_since: Option<Instant>,
    budget_exhausted: bool,
    /// Backup flags the application set per path.
    pinned_backup: Vec<(PathId, bool)>,
    /// The active path went away with no other ready yet: the switch is reported when the
    /// next path takes over.
    left: Option<(PathId, SwitchReason)>,
    /// Cellular bytes of subflows that are gone (still count against the budget).
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
    pub fn new(policy: &Policy) -> Self {
        Self {
            policy: policy.clone(),
            locals: Vec::new(),
            remotes: Vec::new(),
            signals: AddrSignals::default(),
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

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn active(&self) -> Option<PathId> {
        self.active
    }

    /// Whether the peer already announced address id `id`.
    pub fn remote_known(&self, id: u8) -> bool {
        self.remotes.iter().any(|r| r.id == id)
    }

    /// How many addresses the peer announced.
    pub fn remote_count(&self) -> usize {
        self.remotes.len()
    }

    pub fn local(&self, id: PathId) -> Option<&LocalPath> {
        self.locals.iter().find(|p| p.spec.id == id)
    }

    /// The next action for the connection to apply.
    pub fn next_action(&mut self) -> Option<PmAction> {
        self.actions.pop_front()
    }

    /// When the manager wants a `Timeout` even if nothing else happens: a path's re-creation
    /// back-off ends, or an ADD_ADDR is due again.
    pub fn next_deadline(&self) -> Option<Instant> {
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
    pub fn handle(&mut self, now: Instant, event: PmEvent, view: &mut [SubflowView]) {
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
    pub fn on_subflow_closed(
        &mut self,
        now: Instant,
        path: Option<PathId>,
        reason: Option<CloseReason>,
    ) {
        self.handle(now, PmEvent::SubflowClosed { path, reason }, &mut []);
    }

    /// A timer fired (needs no snapshot).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle(now, PmEvent::Timeout, &mut []);
    }

    /// Whether opening subflows waits for a decision (the connection skips building a
    /// snapshot otherwise).
    pub fn open_due(&self) -> bool {
        self.open_due
    }

    /// Whether steering waits for a decision.
    pub fn steer_due(&self) -> bool {
        self.steer_due
    }

    /// Runs the decisions an event made due: steering always, opening subflows when
    /// `open` (the connection can open one now).
    pub fn decide(
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
            let silence = view
                .iter()
                .filter_map(|v| v.unresponsive_at)
                .filter(|&t| t > now)
                .min();
            self.recheck(now, silence);
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
    pub fn cellular_allowed(&self) -> bool {
        self.policy.allow_cellular && !self.budget_exhausted
    }

    /// What the policy allows on a subflow of `kind` on `path` for data now: cost rules,
    /// and under handover and interactive service only the active path (the caller falls
    /// back to any subflow the cost rules allow when the active one has none).
    pub fn carries_data(&self, kind: InterfaceKind, path: Option<PathId>) -> bool {
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
    fn primary(&self) -> Option<PathId> {
        let mut avail = self.locals.iter().filter(|p| p.available);
        avail
            .clone()
            .find(|p| !p.spec.kind.is_cellular())
            .or_else(|| avail.next())
            .map(|p| p.spec.id)
    }

    /// The single place the active path changes. With a `reason`, a change that moves
    /// traffic from one path to another is a switch: flags follow, data outstanding
    /// elsewhere is reinjected on the new path, and it is reported once.
    fn set_active(
        &mut self,
        now: Instant,
        to: Option<PathId>,
        reason: Option<SwitchReason>,
        view: &mut [SubflowView],
    ) {
        let from = self.active;
        self.active = to;
        self.healthy_since = None;
        let (Some(to), Some(reason)) = (to, reason) else {
            return;
        };
        if from == Some(to) {
            return;
        }
        self.switched_at = Some(now);
        let handover = self.policy.service == ServiceType::Handover;
        for v in view.iter_mut() {
            self.set_backup(v, handover && v.path != Some(to));
        }
        self.actions.push_back(PmAction::Reinject { onto: to });
        if handover
            && matches!(
                reason,
                SwitchReason::Unresponsive | SwitchReason::RetransmissionTimeouts
            )
        {
            if let Some(old) = from {
                self.abandon_path(old, view);
            }
        }
        self.actions
            .push_back(PmAction::Switch { from, to, reason });
    }

    fn switch(&mut self, now: Instant, to: PathId, reason: SwitchReason, view: &mut [SubflowView]) {
        self.set_active(now, Some(to), Some(reason), view);
    }

    /// The path we left looks dead: tell the peer (REMOVE_ADDR) so it moves its sending at
    /// once instead of waiting for its own timeouts, and drop our subflows there. The path
    /// stays available: a subflow is re-created, which failback can use.
    fn abandon_path(&mut self, path: PathId, view: &mut [SubflowView]) {
        let Some(addr_id) = self.local(path).map(|p| p.addr_id) else {
            return;
        };
        self.signals.announce_removal(addr_id);
        for v in view.iter_mut().rev() {
            if v.path == Some(path) && !v.closed {
                v.closed = true;
                v.usable = false;
                self.actions.push_back(PmAction::CloseSubflow {
                    index: v.index,
                    abort: true,
                });
            }
        }
    }

    fn set_backup(&mut self, v: &mut SubflowView, backup: bool) {
        if v.backup_local != backup {
            v.backup_local = backup;
            self.actions.push_back(PmAction::SetBackup {
                index: v.index,
                backup,
            });
        }
    }

    /// A usable subflow on `path`.
    fn subflow_on(path: PathId, view: &[SubflowView]) -> Option<&SubflowView> {
        view.iter().find(|v| v.path == Some(path) && v.usable)
    }

    /// The best other path with a usable subflow that the cost rules allow.
    fn best_alternative(&self, not: PathId, view: &[SubflowView]) -> Option<PathId> {
        view.iter()
            .filter(|v| v.path.is_some_and(|p| p != not) && v.usable)
            .filter(|v| self.cellular_allowed() || !v.kind.is_cellular())
            .min_by_key(|v| (v.kind.is_cellular(), v.srtt))
            .and_then(|v| v.path)
    }

    /// Applies the policy: chooses (or changes) the active path, flips backup flags,
    /// closes idle backups.
    fn steer(&mut self, now: Instant, view: &mut [SubflowView]) {
        self.enforce_budget(now, view);
        match self.policy.service {
            ServiceType::Aggregate | ServiceType::Redundant => {
                self.set_active(now, None, None, view);
                self.left = None;
                for v in view.iter_mut() {
                    let pinned = v.path.and_then(|p| {
                        self.pinned_backup
                            .iter()
                            .find(|&&(q, _)| q == p)
                            .map(|&(_, b)| b)
                    });
                    self.set_backup(v, pinned.unwrap_or(false));
                }
            }
            ServiceType::Handover | ServiceType::Interactive => self.steer_single(now, view),
        }
        self.close_idle_backup(now, view);
    }

    fn steer_single(&mut self, now: Instant, view: &mut [SubflowView]) {
        let Some(primary) = self.primary() else {
            return;
        };
        let active = match self.active {
            Some(a) if self.local(a).is_some_and(|p| p.available) => a,
            _ => {
                let to = self.choose_active(primary, view);
                match self.left.take() {
                    Some((from, reason)) if from != to => {
                        self.active = Some(from);
                        self.switch(now, to, reason, view);
                    }
                    _ => self.set_active(now, Some(to), None, view),
                }
                to
            }
        };
        let handover = self.policy.service == ServiceType::Handover;
        // Flags follow the active path: it is regular, the others are backups (handover)
        // or regular standbys (interactive keeps both up and warm).
        for v in view.iter_mut() {
            self.set_backup(v, handover && v.path != Some(active));
        }
        if let Some(reason) = self.active_degraded(active, now, view) {
            if let Some(to) = self.best_alternative(active, view) {
                self.switch(now, to, reason, view);
                return;
            }
        }
        if active != primary {
            self.consider_failback(now, primary, view);
        }
    }

    /// The path to make active when none is: the preferred one, unless it has no usable
    /// subflow and the path traffic was on (left by a policy change) still carries it.
    fn choose_active(&self, primary: PathId, view: &[SubflowView]) -> PathId {
        let stay = self.left.and_then(|(from, _)| {
            let allowed = self.local(from).is_some_and(|p| {
                p.available && (self.cellular_allowed() || !p.spec.kind.is_cellular())
            });
            (allowed && Self::subflow_on(from, view).is_some()).then_some(from)
        });
        match stay {
            Some(from) if Self::subflow_on(primary, view).is_none() => from,
            _ => primary,
        }
    }

    /// Why the active path should be left, if it should (XNU's rules; docs/ARCHITECTURE.md,
    /// "Paths and service types").
    fn active_degraded(
        &self,
        active: PathId,
        now: Instant,
        view: &[SubflowView],
    ) -> Option<SwitchReason> {
        let Some(e) = Self::subflow_on(active, view) else {
            // No usable subflow on the active path (it died or is being re-created).
            return Some(SwitchReason::SubflowDied);
        };
        let policy = &self.policy;
        let weak = self.local(active).is_some_and(|p| p.quality.weak);
        let scale = if weak { 2 } else { 1 };
        let alt = view
            .iter()
            .filter(|o| o.path.is_some_and(|p| p != active) && o.usable)
            .min_by_key(|o| o.srtt);
        if e.outstanding && e.rto_count >= policy.rto_count_threshold {
            return Some(SwitchReason::RetransmissionTimeouts);
        }
        if e.unresponsive(now) {
            return Some(SwitchReason::Unresponsive);
        }
        if e.rtt_sampled
            && e.srtt >= policy.rtt_threshold / scale
            && alt.is_some_and(|a| a.rtt_sampled && a.srtt < e.srtt)
        {
            return Some(SwitchReason::HighRtt);
        }
        if policy.service == ServiceType::Interactive {
            if e.outstanding && e.rto >= policy.rto_threshold / scale {
                return Some(SwitchReason::RetransmissionTimeouts);
            }
            // WiFi with timeouts while the other path has none.
            if e.rto_events > 0
                && e.rto_count > 0
                && alt.is_some_and(|a| a.rto_count == 0 && a.rtt_sampled)
            {
                return Some(SwitchReason::Lossy);
            }
        }
        None
    }

    /// Moves back to the preferred path once it has looked healthy for `failback_after`.
    fn consider_failback(&mut self, now: Instant, primary: PathId, view: &mut [SubflowView]) {
        let healthy = Self::subflow_on(primary, view).is_some_and(|e| {
            e.rto_count == 0
                && (!e.rtt_sampled || e.srtt < self.policy.rtt_threshold)
                && e.last_loss
                    .is_none_or(|t| now.saturating_duration_since(t) > LOSSY_FOR)
        });
        if !healthy {
            self.healthy_since = None;
            return;
        }
        let since = *self.healthy_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.policy.failback_after {
            self.switch(now, primary, SwitchReason::Failback, view);
        }
    }

    /// Handover with a lazy backup: once traffic is back on the primary, close the backup
    /// subflow after it sat unused for `backup_idle_close`.
    fn close_idle_backup(&mut self, now: Instant, view: &mut [SubflowView]) {
        let policy = &self.policy;
        if policy.service != ServiceType::Handover || policy.eager_backup {
            return;
        }
        let Some(active) = self.active else {
            return;
        };
        if self.primary() != Some(active) || Self::subflow_on(active, view).is_none() {
            return;
        }
        let idle_for = policy.backup_idle_close;
        let settled = self
            .switched_at
            .is_none_or(|t| now.saturating_duration_since(t) >= idle_for);
        for v in view.iter_mut() {
            if v.path.is_some_and(|p| p != active)
                && v.usable
                && settled
                && v.all_acked
                && now.saturating_duration_since(v.last_active) >= idle_for
            {
                v.usable = false;
                self.actions.push_back(PmAction::CloseSubflow {
                    index: v.index,
                    abort: false,
                });
            }
        }
    }

    /// Counts cellular bytes against the budget; when it runs out, cellular stops carrying
    /// data and traffic on it moves to the preferred non-cellular path.
    fn enforce_budget(&mut self, now: Instant, view: &mut [SubflowView]) {
        let Some((used, budget)) = self.budget_used(view) else {
            return;
        };
        if used < budget || self.budget_exhausted {
            return;
        }
        self.budget_exhausted = true;
        self.actions
            .push_back(PmAction::BudgetExhausted { bytes: used });
        let on_cellular = self
            .active
            .is_some_and(|a| self.local(a).is_some_and(|p| p.spec.kind.is_cellular()));
        let to = self
            .primary()
            .filter(|p| self.local(*p).is_some_and(|l| !l.spec.kind.is_cellular()));
        if let (true, Some(to)) = (on_cellular, to) {
            self.switch(now, to, SwitchReason::CostControl, view);
        }
    }

    /// Cellular bytes used so far and the budget, when there is one.
    pub fn budget_used(&self, view: &[SubflowView]) -> Option<(u64, u64)> {
        let budget = self.policy.cellular_budget?;
        let used = view
            .iter()
            .filter(|v| v.kind.is_cellular())
            .map(|v| v.bytes)
            .sum::<u64>()
            + self.cellular_closed_bytes;
        Some((used, budget))
    }

    /// When a decision may change without any new segment: failback maturing, a loss
    /// ageing out, a backup turning idle, a subflow turning unresponsive.
    fn recheck(&mut self, now: Instant, silence: Option<Instant>) {
        let mut t = silence;
        if let Some(since) = self.healthy_since {
            t = min_opt(t, Some(since + self.policy.failback_after));
        }
        t = min_opt(
            t,
            self.switched_at.map(|s| s + self.policy.backup_idle_close),
        );
        let later = |x: &Instant| *x > now;
        let loss_ages = self.marks.iter().filter_map(|m| m.last_loss);
        t = min_opt(t, loss_ages.map(|l| l + LOSSY_FOR).filter(later).min());
        self.recheck_at = t.filter(later);
    }

    /// Paths waiting for a subflow get one (client side).
    fn open_subflows(&mut self, now: Instant, facts: &ConnFacts, view: &[SubflowView]) {
        let live = view.iter().filter(|v| !v.closed).count();
        let mut budget = facts.max_subflows.saturating_sub(live);
        let first_local = self.locals.first().map(|p| p.spec.id);
        let remotes = self.remotes.len();
        for li in 0..self.locals.len() {
            let lp = &self.locals[li];
            if !lp.available || lp.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            // A due retry is consumed whether or not a subflow can be opened now; the next
            // event looks again.
            self.locals[li].retry_at = None;
            let lp = &self.locals[li];
            if !self.wants_subflow(lp, now, view) {
                continue;
            }
            let backup = self.wants_backup(lp);
            for ri in 0..=remotes {
                let (rid, raddr) = match ri {
                    0 => (0, facts.initial_remote),
                    _ if !facts.join_announced => break,
                    _ => (self.remotes[ri - 1].id, self.remotes[ri - 1].addr),
                };
                if budget == 0 {
                    return;
                }
                // Announced addresses are joined from the first local path only.
                if rid != 0 && first_local != Some(lp.spec.id) {
                    continue;
                }
                if raddr.is_ipv4() != lp.spec.local.is_ipv4() {
                    continue;
                }
                let exists = view
                    .iter()
                    .any(|v| !v.closed && v.path == Some(lp.spec.id) && v.remote == raddr);
                if exists {
                    continue;
                }
                self.actions.push_back(PmAction::OpenSubflow {
                    path: lp.spec.id,
                    kind: lp.spec.kind,
                    local: lp.spec.local,
                    remote: raddr,
                    addr_id: lp.addr_id,
                    backup,
                });
                budget -= 1;
            }
        }
    }

    /// The backup flag a new subflow on `lp` asks for: under handover everything but the
    /// active path is a backup.
    fn wants_backup(&self, lp: &LocalPath) -> bool {
        match self.policy.service {
            ServiceType::Handover => {
                let active = self
                    .active
                    .or_else(|| self.locals.first().map(|p| p.spec.id));
                active != Some(lp.spec.id)
            }
            _ => false,
        }
    }

    /// Whether a new subflow on `lp` is wanted now (lazy backups wait for trouble).
    fn wants_subflow(&self, lp: &LocalPath, now: Instant, view: &[SubflowView]) -> bool {
        let policy = &self.policy;
        let path = lp.spec.id;
        if lp.spec.kind.is_cellular() && !self.cellular_allowed() {
            return false;
        }
        if policy.service != ServiceType::Handover || policy.eager_backup {
            return true;
        }
        let active = self.active.or_else(|| self.primary());
        if active == Some(path) || self.primary() == Some(path) {
            return true;
        }
        // Lazy: only when the active path shows trouble (a timeout or recent losses), or has
        // no subflow at all.
        match active.and_then(|a| Self::subflow_on(a, view)) {
            None => true,
            // Ordinary congestion losses are no reason; timeouts, silence and a high RTT are.
            Some(e) => e.rto_count > 0 || e.srtt >= policy.rtt_threshold / 2 || e.unresponsive(now),
        }
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    //! The manager's event → action logic, without a connection.
    use super::*;

    const WIFI: PathId = 1;
    const CELL: PathId = 2;

    fn facts() -> ConnFacts {
        ConnFacts {
            steer: true,
            open: true,
            max_subflows: 8,
            initial_remote: "203.0.113.1:443".parse().unwrap(),
            join_announced: true,
        }
    }

    fn spec(id: PathId) -> PathSpec {
        let (kind, local) = match id {
            WIFI => (InterfaceKind::Wifi, "192.0.2.10:0"),
            _ => (InterfaceKind::Cellular, "198.51.100.10:0"),
        };
        PathSpec::new(id, kind, local.parse().unwrap())
    }

    /// An established, healthy subflow on `path` at `index`.
    fn subflow(index: usize, path: PathId, t0: Instant) -> SubflowView {
        SubflowView {
            index,
            path: Some(path),
            kind: spec(path).kind,
            remote: facts().initial_remote,
            usable: true,
            closed: false,
            synchronized: true,
            backup_local: false,
            backup_remote: false,
            srtt: Duration::from_millis(if path == WIFI { 20 } else { 60 }),
            rtt_sampled: true,
            rto: Duration::from_millis(200),
            rto_count: 0,
            rto_events: 0,
            outstanding: true,
            all_acked: false,
            last_loss: None,
            unresponsive_at: None,
            last_active: t0,
            bytes: 0,
        }
    }

    fn drain(pm: &mut PathManager) -> Vec<PmAction> {
        std::iter::from_fn(|| pm.next_action()).collect()
    }

    fn switches(actions: &[PmAction]) -> Vec<(Option<PathId>, PathId, SwitchReason)> {
        actions
            .iter()
            .filter_map(|a| match *a {
                PmAction::Switch { from, to, reason } => Some((from, to, reason)),
                _ => None,
            })
            .collect()
    }

    /// A handover manager with WiFi and cellular up, one subflow each, WiFi active.
    fn on_wifi(policy: Policy, t0: Instant) -> (PathManager, Vec<SubflowView>) {
        let mut pm = PathManager::new(&policy);
        let mut view = vec![subflow(0, WIFI, t0), subflow(1, CELL, t0)];
        pm.handle(t0, PmEvent::InterfaceAvailable(spec(WIFI)), &mut view);
        pm.handle(t0, PmEvent::InterfaceAvailable(spec(CELL)), &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        let actions = drain(&mut pm);
        assert_eq!(pm.active(), Some(WIFI));
        assert_eq!(
            switches(&actions),
            vec![],
            "choosing the first path is no switch"
        );
        assert_eq!(
            actions,
            vec![PmAction::SetBackup {
                index: 1,
                backup: true
            }]
        );
        (pm, view)
    }

    /// Then WiFi is lost: one switch to cellular; WiFi comes back with a new subflow.
    fn on_cellular(policy: Policy, t0: Instant) -> (PathManager, Vec<SubflowView>) {
        let (mut pm, mut view) = on_wifi(policy, t0);
        view[0].usable = false;
        view[0].closed = true;
        pm.handle(t0, PmEvent::InterfaceLost(WIFI), &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        let actions = drain(&mut pm);
        assert_eq!(
            actions,
            vec![
                // The dead subflow's flag too (the connection sends no MP_PRIO on it).
                PmAction::SetBackup {
                    index: 0,
                    backup: true
                },
                PmAction::SetBackup {
                    index: 1,
                    backup: false
                },
                PmAction::Reinject { onto: CELL },
                PmAction::Switch {
                    from: Some(WIFI),
                    to: CELL,
                    reason: SwitchReason::InterfaceLost
                },
            ]
        );
        view[0] = subflow(0, WIFI, t0);
        view[0].backup_local = true;
        pm.handle(t0, PmEvent::InterfaceAvailable(spec(WIFI)), &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        assert_eq!(switches(&drain(&mut pm)), vec![]);
        assert_eq!(pm.active(), Some(CELL));
        (pm, view)
    }

    fn no_failback() -> Policy {
        let mut p = Policy::new(ServiceType::Handover);
        p.failback_after = Duration::from_secs(600);
        p
    }

    #[test]
    fn disallowing_cellular_while_on_it_switches_once_for_the_policy() {
        let t0 = Instant::now();
        let (mut pm, mut view) = on_cellular(no_failback(), t0);
        let mut policy = no_failback();
        policy.allow_cellular = false;
        pm.handle(t0, PmEvent::PolicyChanged(policy), &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        let actions = drain(&mut pm);
        assert_eq!(
            switches(&actions),
            vec![(Some(CELL), WIFI, SwitchReason::PolicyChange)]
        );
        assert!(actions.contains(&PmAction::Reinject { onto: WIFI }));
        assert!(!pm.carries_data(InterfaceKind::Cellular, Some(CELL)));
        // Nothing more to decide: no second report.
        pm.handle(t0, PmEvent::Timeout, &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        assert_eq!(switches(&drain(&mut pm)), vec![]);
    }

    #[test]
    fn a_policy_change_that_keeps_the_path_is_no_switch() {
        let t0 = Instant::now();
        let (mut pm, mut view) = on_wifi(Policy::new(ServiceType::Handover), t0);
        pm.handle(
            t0,
            PmEvent::PolicyChanged(Policy::new(ServiceType::Interactive)),
            &mut view,
        );
        pm.decide(t0, &facts(), &mut view, false);
        let actions = drain(&mut pm);
        assert_eq!(switches(&actions), vec![]);
        // Interactive keeps the other path a regular standby.
        assert_eq!(
            actions,
            vec![PmAction::SetBackup {
                index: 1,
                backup: false
            }]
        );
        assert_eq!(pm.active(), Some(WIFI));
    }

    #[test]
    fn a_policy_change_to_a_path_without_a_subflow_stays_where_traffic_is() {
        let t0 = Instant::now();
        let (mut pm, mut view) = on_cellular(no_failback(), t0);
        view[0].usable = false;
        pm.handle(
            t0,
            PmEvent::PolicyChanged(Policy::new(ServiceType::Interactive)),
            &mut view,
        );
        pm.decide(t0, &facts(), &mut view, false);
        assert_eq!(switches(&drain(&mut pm)), vec![]);
        assert_eq!(pm.active(), Some(CELL));
    }

    #[test]
    fn the_budget_running_out_on_cellular_is_one_cost_control_switch() {
        let t0 = Instant::now();
        let mut policy = no_failback();
        policy.cellular_budget = Some(1_000);
        let (mut pm, mut view) = on_cellular(policy, t0);
        view[1].bytes = 999;
        pm.handle(t0, PmEvent::Segment, &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        assert_eq!(drain(&mut pm), vec![]);
        view[1].bytes = 1_000;
        pm.handle(t0, PmEvent::Segment, &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        let actions = drain(&mut pm);
        assert_eq!(actions[0], PmAction::BudgetExhausted { bytes: 1_000 });
        assert_eq!(
            switches(&actions),
            vec![(Some(CELL), WIFI, SwitchReason::CostControl)]
        );
        view[1].bytes = 5_000;
        pm.handle(t0, PmEvent::Timeout, &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        assert_eq!(drain(&mut pm), vec![], "reported once");
    }

    #[test]
    fn timeouts_on_the_active_path_switch_once_and_abandon_it() {
        let t0 = Instant::now();
        let (mut pm, mut view) = on_wifi(Policy::new(ServiceType::Handover), t0);
        view[0].rto_count = 2;
        pm.handle(t0, PmEvent::Segment, &mut view);
        pm.decide(t0, &facts(), &mut view, false);
        let actions = drain(&mut pm);
        assert_eq!(
            switches(&actions),
            vec![(Some(WIFI), CELL, SwitchReason::RetransmissionTimeouts)]
        );
        assert!(actions.contains(&PmAction::CloseSubflow {
            index: 0,
            abort: true
        }));
        assert_eq!(
            pm.signals
                .next(t0, 1, 2)
                .map(|o| matches!(o, crate::wire::MptcpOption::RemoveAddr(_))),
            Some(true),
            "REMOVE_ADDR for the path left"
        );
    }

    #[test]
    fn a_segment_that_changes_nothing_the_manager_reads_runs_nothing() {
        let t0 = Instant::now();
        let (mut pm, mut view) = on_wifi(Policy::new(ServiceType::Handover), t0);
        view[0].bytes += 1_460;
        view[0].last_active = t0 + Duration::from_millis(5);
        pm.handle(t0, PmEvent::Segment, &mut view);
        assert!(!pm.steer_due(), "only counters and times moved");
        view[0].srtt += Duration::from_millis(1);
        pm.handle(t0, PmEvent::Segment, &mut view);
        assert!(!pm.steer_due(), "both RTTs far below the thresholds");
        view[0].srtt = Duration::from_millis(350);
        pm.handle(t0, PmEvent::Segment, &mut view);
        assert!(pm.steer_due(), "WiFi's RTT reached half the threshold");
        pm.decide(t0, &facts(), &mut view, false);
        view[1].srtt += Duration::from_millis(1);
        pm.handle(t0, PmEvent::Segment, &mut view);
        assert!(pm.steer_due(), "near the threshold, which path is faster matters");
        pm.decide(t0, &facts(), &mut view, false);
        view[0].rto_count = 1;
        pm.handle(t0, PmEvent::Segment, &mut view);
        assert!(pm.steer_due(), "a timeout is worth a decision");
    }

    #[test]
    fn failback_is_due_without_new_segments_once_the_preferred_path_stayed_healthy() {
        let t0 = Instant::now();
        let mut policy = Policy::new(ServiceType::Handover);
        policy.failback_after = Duration::from_secs(2);
        let (mut pm, mut view) = on_cellular(policy, t0);
        let t1 = t0 + Duration::from_secs(1);
        pm.handle(t1, PmEvent::Segment, &mut view);
        assert!(!pm.steer_due(), "healthy for 1 s of 2");
        let t2 = t0 + Duration::from_secs(2);
        pm.handle(t2, PmEvent::Segment, &mut view);
        pm.decide(t2, &facts(), &mut view, false);
        assert_eq!(
            switches(&drain(&mut pm)),
            vec![(Some(CELL), WIFI, SwitchReason::Failback)]
        );
    }

    #[test]
    fn paths_without_a_subflow_get_one_and_a_closed_one_waits_for_its_backoff() {
        let t0 = Instant::now();
        let mut pm = PathManager::new(&Policy::new(ServiceType::Handover));
        let mut view = Vec::new();
        pm.handle(t0, PmEvent::InterfaceAvailable(spec(WIFI)), &mut view);
        pm.handle(t0, PmEvent::InterfaceAvailable(spec(CELL)), &mut view);
        pm.decide(t0, &facts(), &mut view, true);
        let opens: Vec<(PathId, bool)> = drain(&mut pm)
            .into_iter()
            .filter_map(|a| match a {
                PmAction::OpenSubflow { path, backup, .. } => Some((path, backup)),
                _ => None,
            })
            .collect();
        assert_eq!(
            opens,
            vec![(WIFI, false), (CELL, true)],
            "cellular as a backup"
        );
        // Both exist; then cellular's dies and is re-created only after the back-off.
        let mut view = vec![subflow(0, WIFI, t0), subflow(1, CELL, t0)];
        view[1].closed = true;
        view[1].usable = false;
        pm.on_subflow_closed(t0, Some(CELL), Some(CloseReason::Reset));
        pm.decide(t0, &facts(), &mut view, true);
        assert!(
            drain(&mut pm)
                .iter()
                .all(|a| !matches!(a, PmAction::OpenSubflow { .. }))
        );
        let retry = pm.next_deadline().expect("a re-creation deadline");
        assert!(retry > t0);
        pm.handle_timeout(retry);
        pm.decide(retry, &facts(), &mut view, true);
        assert!(
            drain(&mut pm)
                .iter()
                .any(|a| matches!(a, PmAction::OpenSubflow { path: CELL, .. }))
        );
        assert_eq!(pm.next_deadline(), None);
    }

    #[test]
    fn an_announced_address_is_joined_from_the_first_path_and_forgotten_when_withdrawn() {
        let t0 = Instant::now();
        let (mut pm, mut view) = on_wifi(Policy::new(ServiceType::Handover), t0);
        let announced: SocketAddr = "203.0.113.2:443".parse().unwrap();
        let event = PmEvent::AddAddr {
            id: 5,
            addr: announced,
        };
        pm.handle(t0, event, &mut view);
        pm.decide(t0, &facts(), &mut view, true);
        let joins: Vec<(PathId, SocketAddr)> = drain(&mut pm)
            .into_iter()
            .filter_map(|a| match a {
                PmAction::OpenSubflow { path, remote, .. } => Some((path, remote)),
                _ => None,
            })
            .collect();
        assert_eq!(joins, vec![(WIFI, announced)]);
        assert!(pm.remote_known(5));
        pm.handle(t0, PmEvent::RemoveAddr(vec![5]), &mut view);
        assert!(!pm.remote_known(5));
        pm.decide(t0, &facts(), &mut view, true);
        assert_eq!(drain(&mut pm), vec![], "nothing left to join");
    }
}
