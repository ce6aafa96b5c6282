//! Steering decisions: the active path and the one place it changes, switches and their
//! reasons, backup flags, failback, idle lazy backups, the cellular budget.

use super::{LOSSY_FOR, PathManager, PmAction, SubflowView};
use crate::conn::SwitchReason;
use crate::path::PathId;
use crate::policy::ServiceType;
use std::time::Instant;

impl PathManager {
    /// The single place the active path changes. With a `reason`, a change that moves
    /// traffic from one path to another is a switch: flags follow, data outstanding
    /// elsewhere is reinjected on the new path, and it is reported once.
    pub(super) fn set_active(
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
            && let Some(old) = from
        {
            self.abandon_path(old, view);
        }
        self.actions
            .push_back(PmAction::Switch { from, to, reason });
    }

    pub(super) fn switch(
        &mut self,
        now: Instant,
        to: PathId,
        reason: SwitchReason,
        view: &mut [SubflowView],
    ) {
        self.set_active(now, Some(to), Some(reason), view);
    }

    /// The path we left looks dead: tell the peer (REMOVE_ADDR) so it moves its sending at
    /// once instead of waiting for its own timeouts, and drop our subflows there. The path
    /// stays available: a subflow is re-created, which failback can use.
    pub(super) fn abandon_path(&mut self, path: PathId, view: &mut [SubflowView]) {
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

    pub(super) fn set_backup(&mut self, v: &mut SubflowView, backup: bool) {
        if v.backup_local != backup {
            v.backup_local = backup;
            self.actions.push_back(PmAction::SetBackup {
                index: v.index,
                backup,
            });
        }
    }

    /// A usable subflow on `path`.
    pub(super) fn subflow_on(path: PathId, view: &[SubflowView]) -> Option<&SubflowView> {
        view.iter().find(|v| v.path == Some(path) && v.usable)
    }

    /// The best other path with a usable subflow that the cost rules allow.
    pub(super) fn best_alternative(&self, not: PathId, view: &[SubflowView]) -> Option<PathId> {
        view.iter()
            .filter(|v| v.path.is_some_and(|p| p != not) && v.usable)
            .filter(|v| self.cellular_allowed() || !v.kind.is_cellular())
            .min_by_key(|v| (v.kind.is_cellular(), v.srtt))
            .and_then(|v| v.path)
    }

    /// Applies the policy: chooses (or changes) the active path, flips backup flags,
    /// closes idle backups.
    pub(super) fn steer(&mut self, now: Instant, view: &mut [SubflowView]) {
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

    pub(super) fn steer_single(&mut self, now: Instant, view: &mut [SubflowView]) {
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
        if let Some(reason) = self.active_degraded(active, now, view)
            && let Some(to) = self.best_alternative(active, view)
        {
            self.switch(now, to, reason, view);
            return;
        }
        if active != primary {
            self.consider_failback(now, primary, view);
        }
    }

    /// The path to make active when none is: the preferred one, unless it has no usable
    /// subflow and the path traffic was on (left by a policy change) still carries it.
    pub(super) fn choose_active(&self, primary: PathId, view: &[SubflowView]) -> PathId {
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
    pub(super) fn active_degraded(
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
    pub(super) fn consider_failback(
        &mut self,
        now: Instant,
        primary: PathId,
        view: &mut [SubflowView],
    ) {
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
    pub(super) fn close_idle_backup(&mut self, now: Instant, view: &mut [SubflowView]) {
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
    pub(super) fn enforce_budget(&mut self, now: Instant, view: &mut [SubflowView]) {
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
    pub(crate) fn budget_used(&self, view: &[SubflowView]) -> Option<(u64, u64)> {
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
    pub(super) fn recheck(&mut self, now: Instant, view: &[SubflowView]) {
        let silence = view.iter().filter_map(|v| v.unresponsive_at);
        let failback = self.healthy_since.map(|s| s + self.policy.failback_after);
        let idle_for = self.policy.backup_idle_close;
        let lazy = self.policy.service == ServiceType::Handover && !self.policy.eager_backup;
        let settled = self.switched_at.map(|s| s + idle_for);
        let idle_backups = view
            .iter()
            .filter(|v| lazy && v.usable && v.path != self.active)
            .map(|v| v.last_active + idle_for);
        let loss_ages = self
            .marks
            .iter()
            .filter_map(|m| m.last_loss.map(|l| l + LOSSY_FOR));
        // Only what is still ahead: a past time would make every segment a decision.
        self.recheck_at = [failback, settled]
            .into_iter()
            .flatten()
            .chain(silence)
            .chain(idle_backups)
            .chain(loss_ages)
            .filter(|&t| t > now)
            .min();
    }
}
