//! Which paths get a new subflow: re-creation after back-off, lazy backups, joins to the
//! addresses the peer announced.

use super::{ConnFacts, LocalPath, PathManager, PmAction, SubflowView};
use crate::policy::ServiceType;
use std::time::Instant;

impl PathManager {
    /// Paths waiting for a subflow get one (client side).
    pub(super) fn open_subflows(&mut self, now: Instant, facts: &ConnFacts, view: &[SubflowView]) {
        let live = view.iter().filter(|v| !v.closed).count();
        let mut budget = facts.max_subflows.saturating_sub(live);
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
            // Under the C flag the initial address takes no joins (its subflow, if any, is
            // the initial one); announced addresses are joined from every local path, so
            // each path has a subflow that does not depend on the initial one.
            let first = usize::from(self.initial_join_denied);
            for ri in first..=remotes {
                let raddr = match ri {
                    0 => facts.initial_remote,
                    _ if !facts.join_announced => break,
                    _ => self.remotes[ri - 1].addr,
                };
                if budget == 0 {
                    return;
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
    pub(super) fn wants_backup(&self, lp: &LocalPath) -> bool {
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
    pub(super) fn wants_subflow(&self, lp: &LocalPath, now: Instant, view: &[SubflowView]) -> bool {
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
