//! Service-type steering (docs/ARCHITECTURE.md, "Paths and service types"): which path carries
//! the data, when to switch, when to move back, lazy and eager backups, MP_PRIO flips so the peer
//! follows, interface events from the OS, and cellular cost controls.
//!
//! The client decides; the server follows the client's MP_PRIO and judges dead subflows on
//! its own (see `pick_subflow`).

use super::{Connection, Event, Role, SubflowEntry, SwitchReason};
use crate::path::{PathId, PathSpec};
use crate::policy::{Policy, ServiceType};
use std::time::{Duration, Instant};

/// What the OS says about an interface besides up/down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathQuality {
    /// The link is poor (weak WiFi signal): switching thresholds are halved.
    pub weak: bool,
    /// The link costs money (metered).
    pub expensive: bool,
}

/// Recent losses mark a path lossy for this long.
const LOSSY_FOR: Duration = Duration::from_secs(2);
/// Unacknowledged data up to this size counts as a small, latency-critical write.
const SMALL_WRITE: u64 = 16 * 1024;
/// Shortest silence that counts as unresponsive, whatever the RTT.
const UNRESPONSIVE_MIN: Duration = Duration::from_millis(60);

impl Connection {
    /// The interface behind `spec.id` is (again) usable: a subflow follows.
    pub fn interface_available(&mut self, now: Instant, spec: PathSpec) {
        self.paths.add_local(now, spec);
    }

    /// The OS reports the interface gone: its subflows are dropped at once (no waiting for
    /// timeouts) and traffic moves to another path.
    pub fn interface_lost(&mut self, now: Instant, id: PathId) {
        self.paths.remove_local(now, id);
        let victims: Vec<usize> = (0..self.subflows.len())
            .filter(|&i| self.subflows[i].path == Some(id) && !self.subflows[i].sf.is_closed())
            .collect();
        for &i in victims.iter().rev() {
            // The interface is gone: nothing can be sent on it, not even a RST.
            self.subflows[i].sf.abort();
            self.subflows[i].sf.drop_pending_rst();
        }
        for i in (0..self.subflows.len()).rev() {
            if victims.contains(&i) {
                self.on_subflow_closed(now, i);
            }
        }
        if self.paths.active == Some(id) {
            if let Some(to) = self.best_alternative(id) {
                self.switch_to(now, to, SwitchReason::InterfaceLost);
            } else {
                // Nothing to move to yet (a lazy backup is about to open): the switch is
                // reported when the next path takes over.
                self.paths.active = None;
                self.paths.left = Some((id, SwitchReason::InterfaceLost));
            }
        }
    }

    /// Quality hints from the OS (weak signal, metered).
    pub fn interface_quality(&mut self, _now: Instant, id: PathId, q: PathQuality) {
        if let Some(p) = self.paths.locals.iter_mut().find(|p| p.spec.id == id) {
            p.quality = q;
        }
    }

    /// Changes the service type and its settings on a live connection.
    pub fn set_policy(&mut self, now: Instant, policy: Policy) {
        self.paths.policy = policy;
        self.paths.active = None;
        self.steer(now);
    }

    pub fn policy(&self) -> &Policy {
        &self.paths.policy
    }

    /// Asks the peer to treat the subflows on `path` as backup (or not) with MP_PRIO, and
    /// honours it for what we send. Under handover and interactive service the policy sets
    /// these flags itself; this is for aggregate and redundant service, or tests.
    pub fn set_path_backup(&mut self, path: PathId, backup: bool) {
        for i in 0..self.subflows.len() {
            if self.subflows[i].path == Some(path) {
                self.set_backup_flag(i, backup);
            }
        }
        self.paths.pinned_backup.retain(|&(p, _)| p != path);
        self.paths.pinned_backup.push((path, backup));
    }

    /// The path that carries the data under handover and interactive service.
    pub fn active_path(&self) -> Option<PathId> {
        self.paths.active
    }

    /// The preferred path: the first available non-cellular path in the order paths were
    /// added (usually WiFi), else the first available one.
    fn primary(&self) -> Option<PathId> {
        let avail = self.paths.locals.iter().filter(|p| p.available);
        avail
            .clone()
            .find(|p| !p.spec.kind.is_cellular())
            .or_else(|| avail.clone().next())
            .map(|p| p.spec.id)
    }

    /// A usable subflow on `path`.
    fn subflow_on(&self, path: PathId) -> Option<&SubflowEntry> {
        self.subflows
            .iter()
            .find(|e| e.path == Some(path) && e.usable())
    }

    /// The best other path with a usable subflow that the cost rules allow.
    fn best_alternative(&self, not: PathId) -> Option<PathId> {
        self.subflows
            .iter()
            .filter(|e| e.path.is_some_and(|p| p != not) && e.usable())
            .filter(|e| self.paths.cellular_allowed() || !e.kind.is_cellular())
            .min_by_key(|e| (e.kind.is_cellular(), e.sf.srtt()))
            .and_then(|e| e.path)
    }

    /// Applies the policy: chooses (or changes) the active path, flips backup flags, opens
    /// or closes backup subflows. Runs after every input and timer on client connections.
    pub(crate) fn steer(&mut self, now: Instant) {
        if self.role != Role::Client || !self.is_mptcp() || self.keys.remote.is_none() {
            return;
        }
        self.enforce_budget();
        match self.paths.policy.service {
            ServiceType::Aggregate | ServiceType::Redundant => {
                self.paths.active = None;
                for i in 0..self.subflows.len() {
                    let pinned = self.subflows[i].path.and_then(|p| {
                        self.paths
                            .pinned_backup
                            .iter()
                            .find(|&&(q, _)| q == p)
                            .map(|&(_, b)| b)
                    });
                    self.set_backup_flag(i, pinned.unwrap_or(false));
                }
            }
            ServiceType::Handover | ServiceType::Interactive => self.steer_single(now),
        }
        self.close_idle_backup(now);
    }

    fn steer_single(&mut self, now: Instant) {
        let Some(primary) = self.primary() else {
            return;
        };
        let active = match self.paths.active {
            Some(a) if self.paths.local(a).is_some_and(|p| p.available) => a,
            _ => {
                self.paths.active = Some(primary);
                self.paths.healthy_since = None;
                if let Some((from, reason)) = self.paths.left.take() {
                    if from != primary {
                        self.paths.switched_at = Some(now);
                        self.events.push_back(Event::PathSwitched {
                            from: Some(from),
                            to: primary,
                            reason,
                        });
                    }
                }
                primary
            }
        };
        let handover = self.paths.policy.service == ServiceType::Handover;
        // Flags follow the active path: it is regular, the others are backups (handover)
        // or regular standbys (interactive keeps both up and warm).
        for i in 0..self.subflows.len() {
            let on_active = self.subflows[i].path == Some(active);
            self.set_backup_flag(i, handover && !on_active);
        }
        if let Some(reason) = self.active_degraded(active, now) {
            if let Some(to) = self.best_alternative(active) {
                self.switch_to(now, to, reason);
                return;
            }
        }
        if active != primary {
            self.consider_failback(now, primary);
        }
    }

    /// Why the active path should be left, if it should (XNU's rules; docs/ARCHITECTURE.md,
    /// "Paths and service types").
    fn active_degraded(&self, active: PathId, now: Instant) -> Option<SwitchReason> {
        let Some(e) = self.subflow_on(active) else {
            // No usable subflow on the active path (it died or is being re-created).
            return Some(SwitchReason::SubflowDied);
        };
        let policy = &self.paths.policy;
        let weak = self.paths.local(active).is_some_and(|p| p.quality.weak);
        let scale = if weak { 2 } else { 1 };
        let alt = self
            .subflows
            .iter()
            .filter(|o| o.path.is_some_and(|p| p != active) && o.usable())
            .min_by_key(|o| o.sf.srtt());
        let outstanding = e.sf.in_flight() > 0 || e.sf.has_lost();
        if outstanding && e.sf.rto_count >= policy.rto_count_threshold {
            return Some(SwitchReason::RetransmissionTimeouts);
        }
        if self.unresponsive_since(e).is_some_and(|t| t <= now) {
            return Some(SwitchReason::Unresponsive);
        }
        if e.sf.has_rtt_sample()
            && e.sf.srtt() >= policy.rtt_threshold / scale
            && alt.is_some_and(|a| a.sf.has_rtt_sample() && a.sf.srtt() < e.sf.srtt())
        {
            return Some(SwitchReason::HighRtt);
        }
        if policy.service == ServiceType::Interactive {
            if outstanding && e.sf.rtt.rto() >= policy.rto_threshold / scale {
                return Some(SwitchReason::RetransmissionTimeouts);
            }
            // WiFi with timeouts while the other path has none.
            if e.sf.counters.rto_events > 0
                && e.sf.rto_count > 0
                && alt.is_some_and(|a| a.sf.rto_count == 0 && a.sf.has_rtt_sample())
            {
                return Some(SwitchReason::Lossy);
            }
        }
        None
    }

    /// When subflow `e` counts as unresponsive: data outstanding and nothing heard for two
    /// smoothed RTTs plus four deviations plus a delayed ACK — an RTO without the 200 ms
    /// floor. A blackholed WiFi link is noticed in tens of milliseconds instead of after
    /// the retransmission timeouts (the kernel needs 0.14-0.37 s).
    pub(crate) fn unresponsive_since(&self, e: &SubflowEntry) -> Option<std::time::Instant> {
        if let Some(probe) = e.sf.probes_unanswered_since() {
            // An idle subflow whose keepalives go unanswered.
            return Some(probe + (e.sf.rtt.rto() * 4).max(Duration::from_secs(2)));
        }
        if !e.sf.has_rtt_sample() || (e.sf.in_flight() == 0 && !e.sf.has_lost()) {
            return None;
        }
        // A receiver acknowledges at least every second full segment at once (RFC 9293
        // §3.8.6.3): only a lone segment may wait for its delayed ACK.
        let mss = e.sf.effective_mss() as u64;
        let delack = if e.sf.in_flight() >= 2 * mss {
            Duration::ZERO
        } else {
            e.sf.cfg.delayed_ack
        };
        let quiet = (e.sf.srtt() * 2 + e.sf.rtt.rttvar() * 4 + delack).max(UNRESPONSIVE_MIN);
        let since = e.sf.last_received.max(e.sf.oldest_unacked_sent_at()?);
        Some(since + quiet)
    }

    /// When the connection fails because the peer answers on no path (a dead gateway): every
    /// live subflow unresponsive, and nothing heard on any for `peer_silence_timeout`.
    pub(crate) fn peer_silence_deadline(&self) -> Option<std::time::Instant> {
        let limit = self.cfg.peer_silence_timeout?;
        if self.state != super::ConnState::Established {
            return None;
        }
        let mut silent_at = None;
        let mut last_heard = None;
        for e in &self.subflows {
            if e.sf.is_closed() || !e.sf.state.is_synchronized() {
                continue;
            }
            let t = self.unresponsive_since(e)?;
            silent_at = Some(silent_at.map_or(t, |s: std::time::Instant| s.max(t)));
            let h = e.sf.last_received;
            last_heard = Some(last_heard.map_or(h, |l: std::time::Instant| l.max(h)));
        }
        Some(silent_at?.max(last_heard? + limit))
    }

    /// Earliest time a subflow with data outstanding turns unresponsive and its data should
    /// be reinjected on another one (every policy, client and server side).
    pub(crate) fn silence_deadline(&self) -> Option<std::time::Instant> {
        if !self.is_mptcp() {
            return None;
        }
        let others = self.subflows.iter().filter(|e| e.usable()).count() > 1;
        if !others {
            return None;
        }
        self.subflows
            .iter()
            .filter(|e| e.usable() && e.silence_handled != Some(e.sf.last_received))
            .filter_map(|e| self.unresponsive_since(e))
            .min()
    }

    /// Reinjects the outstanding data of subflows that went silent onto the others, once per
    /// silence: a blackholed path then costs little more than an RTT of the healthy one,
    /// instead of a retransmission timeout of the dead one.
    pub(crate) fn reinject_silent(&mut self, now: std::time::Instant) {
        if !self.is_mptcp() {
            return;
        }
        let data_una = self.data_una;
        let mut ranges = Vec::new();
        for i in 0..self.subflows.len() {
            let e = &self.subflows[i];
            if !e.usable() || e.silence_handled == Some(e.sf.last_received) {
                continue;
            }
            if self.unresponsive_since(e).is_none_or(|t| t > now) {
                continue;
            }
            let healthy_other = self.subflows.iter().enumerate().any(|(j, o)| {
                j != i && o.usable() && self.unresponsive_since(o).is_none_or(|t| t > now)
            });
            // Handled either way: with nowhere healthy to go, the timers judge this silence.
            let heard = e.sf.last_received;
            self.subflows[i].silence_handled = Some(heard);
            if !healthy_other {
                continue;
            }
            ranges.extend(self.subflows[i].unacked_data(data_una));
        }
        self.queue_reinjection(ranges);
    }

    /// Earliest time a silent subflow would be declared dead.
    pub(crate) fn dead_subflow_deadline(&self) -> Option<std::time::Instant> {
        let dead_after = self.paths.policy.dead_after;
        // Only while some other subflow answers: otherwise there is nothing to fall back to
        // and the retransmission timers judge the connection.
        let now = self.last_input;
        let answering = self
            .subflows
            .iter()
            .filter(|e| e.usable() && self.unresponsive_since(e).is_none_or(|t| t > now))
            .count();
        if answering == 0 {
            return None;
        }
        self.subflows
            .iter()
            .filter(|e| e.sf.state.is_synchronized() && !e.sf.is_closed())
            .filter_map(|e| self.unresponsive_since(e))
            .map(|t| t + dead_after)
            .min()
    }

    /// Closes subflows that have been silent for `dead_after` with data outstanding, when
    /// another subflow can carry the connection; their data is reinjected.
    pub(crate) fn reap_dead_subflows(&mut self, now: std::time::Instant) {
        let dead_after = self.paths.policy.dead_after;
        let dead: Vec<usize> = (0..self.subflows.len())
            .filter(|&i| {
                let e = &self.subflows[i];
                e.sf.state.is_synchronized()
                    && !e.sf.is_closed()
                    && self
                        .unresponsive_since(e)
                        .is_some_and(|t| t + dead_after <= now)
                    && self.subflows.iter().enumerate().any(|(j, o)| {
                        j != i && o.usable() && self.unresponsive_since(o).is_none_or(|t| t > now)
                    })
            })
            .collect();
        for &i in dead.iter().rev() {
            self.subflows[i].sf.abort();
            self.on_subflow_closed(now, i);
        }
    }

    /// The next time the active path should be checked for silence.
    pub(crate) fn steering_deadline(&self) -> Option<std::time::Instant> {
        if self.role != Role::Client
            || !matches!(
                self.paths.policy.service,
                ServiceType::Handover | ServiceType::Interactive
            )
        {
            return None;
        }
        let active = self.paths.active?;
        let e = self.subflow_on(active)?;
        // Only worth a timer when there is somewhere to go.
        self.best_alternative(active)?;
        self.unresponsive_since(e)
    }

    /// Moves back to the preferred path once it has looked healthy for `failback_after`.
    fn consider_failback(&mut self, now: Instant, primary: PathId) {
        let healthy = self.subflow_on(primary).is_some_and(|e| {
            e.sf.rto_count == 0
                && (!e.sf.has_rtt_sample() || e.sf.srtt() < self.paths.policy.rtt_threshold)
                && e.sf
                    .last_loss
                    .is_none_or(|t| now.saturating_duration_since(t) > LOSSY_FOR)
        });
        if !healthy {
            self.paths.healthy_since = None;
            return;
        }
        let since = *self.paths.healthy_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.paths.policy.failback_after {
            self.switch_to(now, primary, SwitchReason::Failback);
        }
    }

    /// Makes `to` the active path: flags and MP_PRIO so both ends send there, and data still
    /// outstanding elsewhere is reinjected on it.
    pub(crate) fn switch_to(&mut self, now: Instant, to: PathId, reason: SwitchReason) {
        let from = self.paths.active;
        if from == Some(to) {
            return;
        }
        self.paths.active = Some(to);
        self.paths.switched_at = Some(now);
        self.paths.healthy_since = None;
        let handover = self.paths.policy.service == ServiceType::Handover;
        for i in 0..self.subflows.len() {
            let on_to = self.subflows[i].path == Some(to);
            self.set_backup_flag(i, handover && !on_to);
        }
        // Data stuck on the old path goes out again on the new one.
        let data_una = self.data_una;
        let mut ranges = Vec::new();
        for e in &self.subflows {
            if e.path == Some(to) || e.path.is_none() {
                continue;
            }
            ranges.extend(e.unacked_data(data_una));
        }
        self.queue_reinjection(ranges);
        if handover
            && matches!(
                reason,
                SwitchReason::Unresponsive | SwitchReason::RetransmissionTimeouts
            )
        {
            if let Some(old) = from {
                self.abandon_path(now, old);
            }
        }
        self.events
            .push_back(Event::PathSwitched { from, to, reason });
    }

    /// The path we left looks dead: tell the peer (REMOVE_ADDR) so it moves its sending at
    /// once instead of waiting for its own timeouts, and drop our subflows there. The path
    /// stays available: the path manager re-creates a subflow, which failback can use.
    fn abandon_path(&mut self, now: Instant, path: PathId) {
        let Some(addr_id) = self.paths.local(path).map(|p| p.addr_id) else {
            return;
        };
        self.paths.announce_removal(addr_id);
        let victims: Vec<usize> = (0..self.subflows.len())
            .filter(|&i| self.subflows[i].path == Some(path) && !self.subflows[i].sf.is_closed())
            .collect();
        for &i in victims.iter().rev() {
            self.subflows[i].sf.abort();
            self.on_subflow_closed(now, i);
        }
    }

    /// Small writes (what is left to send fits in a few segments) also go on the other
    /// paths while one of them is lossy, so a loss costs no retransmission delay and each
    /// write arrives by whichever path is faster at that moment: a lossy WiFi still
    /// delivers most copies in its own short RTT, cellular covers the rest. The client does
    /// this under interactive service — whichever path is active, so it goes on after
    /// traffic moved to cellular. The server cannot see the service type; it duplicates when
    /// the client keeps more than one subflow regular (interactive or aggregate service,
    /// not handover).
    pub(crate) fn duplicate_small_write(&self, now: Instant) -> bool {
        let wanted = match self.role {
            Role::Client => self.paths.policy.service == ServiceType::Interactive,
            Role::Server => {
                self.subflows
                    .iter()
                    .filter(|e| e.usable() && !e.backup_remote)
                    .count()
                    > 1
            }
        };
        let backlog = self.data_end().saturating_sub(self.data_una);
        wanted
            && backlog <= SMALL_WRITE
            && self.subflows.iter().any(|e| {
                e.usable()
                    && e.sf
                        .last_loss
                        .is_some_and(|t| now.saturating_duration_since(t) < LOSSY_FOR)
            })
    }

    /// Sets whether we ask the peer to treat subflow `i` as a backup, with MP_PRIO when it
    /// changes on an established subflow.
    fn set_backup_flag(&mut self, i: usize, backup: bool) {
        let e = &mut self.subflows[i];
        if e.backup_local == backup {
            return;
        }
        e.backup_local = backup;
        if e.sf.state.is_synchronized() && !e.sf.is_closed() {
            e.prio_pending = Some(backup);
            if let Some(path) = e.path {
                self.events
                    .push_back(Event::PathBackupChanged { path, backup });
            }
        }
    }

    /// Handover with a lazy backup: once traffic is back on the primary, close the backup
    /// subflow after it sat unused for `backup_idle_close`.
    fn close_idle_backup(&mut self, now: Instant) {
        let policy = &self.paths.policy;
        if policy.service != ServiceType::Handover || policy.eager_backup {
            return;
        }
        let Some(active) = self.paths.active else {
            return;
        };
        if self.primary() != Some(active) || self.subflow_on(active).is_none() {
            return;
        }
        let idle_for = policy.backup_idle_close;
        let settled = self
            .paths
            .switched_at
            .is_none_or(|t| now.saturating_duration_since(t) >= idle_for);
        for e in &mut self.subflows {
            if e.path.is_some_and(|p| p != active)
                && e.usable()
                && settled
                && e.sf.all_acked()
                && now.saturating_duration_since(e.sf.last_sent.max(e.sf.last_received)) >= idle_for
            {
                e.sf.close();
            }
        }
    }

    /// Whether a new subflow on `path` is wanted now (lazy backups wait for trouble).
    pub(crate) fn wants_subflow(&self, path: PathId, now: Instant) -> bool {
        let policy = &self.paths.policy;
        let Some(lp) = self.paths.local(path) else {
            return false;
        };
        if lp.spec.kind.is_cellular() && !self.paths.cellular_allowed() {
            return false;
        }
        if policy.service != ServiceType::Handover || policy.eager_backup {
            return true;
        }
        let active = self.paths.active.or_else(|| self.primary());
        if active == Some(path) || self.primary() == Some(path) {
            return true;
        }
        // Lazy: only when the active path shows trouble (a timeout or recent losses), or has
        // no subflow at all.
        match active.and_then(|a| self.subflow_on(a)) {
            None => true,
            // Ordinary congestion losses are no reason; timeouts, silence and a high RTT are.
            Some(e) => {
                e.sf.rto_count > 0
                    || e.sf.srtt() >= policy.rtt_threshold / 2
                    || self.unresponsive_since(e).is_some_and(|t| t <= now)
            }
        }
    }

    /// Counts cellular bytes against the budget; when it runs out, cellular stops carrying
    /// data and the application hears about it once.
    fn enforce_budget(&mut self) {
        let Some(budget) = self.paths.policy.cellular_budget else {
            return;
        };
        let used: u64 = self
            .subflows
            .iter()
            .filter(|e| e.kind.is_cellular())
            .map(|e| e.sf.counters.bytes_sent + e.sf.counters.bytes_received)
            .sum::<u64>()
            + self.paths.cellular_closed_bytes;
        self.stats.cellular_bytes = used;
        if used >= budget && !self.paths.budget_exhausted {
            self.paths.budget_exhausted = true;
            self.events
                .push_back(Event::BudgetExhausted { bytes: used });
            if self.paths.active.is_some_and(|a| {
                self.paths
                    .local(a)
                    .is_some_and(|p| p.spec.kind.is_cellular())
            }) {
                if let Some(to) = self.primary().filter(|p| {
                    self.paths
                        .local(*p)
                        .is_some_and(|l| !l.spec.kind.is_cellular())
                }) {
                    self.paths.active = Some(to);
                }
            }
        }
    }
}
