//! Service-type steering, the connection's side (docs/ARCHITECTURE.md, "Paths and service
//! types"): the application's path API turned into path manager events, the snapshot of the
//! subflows the manager decides on, and the one function that applies its actions. Also
//! silence detection (how a dead path is noticed early), which every role uses.
//!
//! The client decides; the server follows the client's MP_PRIO and judges dead subflows on
//! its own (see `data_candidates` in `conn/tx.rs`).

use super::path_manager::{ConnFacts, LOSSY_FOR, PmAction, PmEvent, SubflowView};
use super::{ConnState, Connection, Event, Role, SubflowEntry};
use crate::path::{PathId, PathSpec};
use crate::policy::{Policy, ServiceType};
use crate::random::Random;
use std::time::{Duration, Instant};

/// What the OS says about an interface besides up/down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathQuality {
    /// The link is poor (weak WiFi signal): switching thresholds are halved.
    pub weak: bool,
    /// The link costs money (metered).
    pub expensive: bool,
}

/// Unacknowledged data up to this size counts as a small, latency-critical write.
const SMALL_WRITE: u64 = 16 * 1024;
/// How many initial windows an idle subflow taking over reinjected data may start with.
const TAKEOVER_WINDOWS: u64 = 4;
/// Shortest silence that counts as unresponsive, whatever the RTT.
const UNRESPONSIVE_MIN: Duration = Duration::from_millis(60);

impl Connection {
    /// The interface behind `spec.id` is (again) usable: a subflow follows.
    pub fn interface_available(&mut self, now: Instant, spec: PathSpec) {
        self.run_path_manager(now, Some(PmEvent::InterfaceAvailable(spec)), None);
    }

    /// The OS reports the interface gone: its subflows are dropped at once (no waiting for
    /// timeouts) and traffic moves to another path.
    pub fn interface_lost(&mut self, now: Instant, id: PathId) {
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
        // Their data was queued for reinjection as they closed.
        self.warm_takeover();
        self.run_path_manager(now, Some(PmEvent::InterfaceLost(id)), None);
    }

    /// Quality hints from the OS (weak signal, metered).
    pub fn interface_quality(&mut self, now: Instant, id: PathId, q: PathQuality) {
        self.run_path_manager(now, Some(PmEvent::InterfaceQuality(id, q)), None);
    }

    /// Changes the service type and its settings on a live connection. If that moves the
    /// traffic to another path, `Event::PathSwitched` says so with `PolicyChange`.
    pub fn set_policy(&mut self, now: Instant, policy: Policy) {
        self.run_path_manager(now, Some(PmEvent::PolicyChanged(policy)), None);
    }

    /// The service type and settings in force.
    pub fn policy(&self) -> &Policy {
        self.paths.policy()
    }

    /// Asks the peer to treat the subflows on `path` as backup (or not) with MP_PRIO, and
    /// honours it for what we send. Under handover and interactive service the policy sets
    /// these flags itself; this is for aggregate and redundant service, or tests.
    pub fn set_path_backup(&mut self, path: PathId, backup: bool) {
        let now = self.last_input;
        self.run_path_manager(now, Some(PmEvent::BackupPinned(path, backup)), None);
    }

    /// The path that carries the data under handover and interactive service.
    pub fn active_path(&self) -> Option<PathId> {
        self.paths.active()
    }

    /// After every segment: the path manager decides again only if the segment changed
    /// something it reads (see `PmEvent::Segment`).
    pub(crate) fn steer(&mut self, now: Instant) {
        if !self.path_facts().steer {
            return;
        }
        if self.paths.policy().cellular_budget.is_some() {
            self.stats.cellular_bytes = self
                .subflows
                .iter()
                .filter(|e| e.kind.is_cellular())
                .map(|e| e.sf.counters.bytes_sent + e.sf.counters.bytes_received)
                .sum::<u64>()
                + self.paths.cellular_closed_bytes;
        }
        self.run_path_manager(now, Some(PmEvent::Segment), None);
    }

    /// What the path manager needs to know of the connection itself.
    pub(super) fn path_facts(&self) -> ConnFacts {
        let steer = self.role == Role::Client
            && self.is_mptcp()
            && self.keys.remote.is_some()
            && self.state != ConnState::Closed;
        ConnFacts {
            steer,
            open: steer
                && self.fully_established_for_joins()
                && self.state == ConnState::Established,
            max_subflows: self.cfg.max_subflows,
            initial_remote: self.remote,
            join_announced: self.cfg.join_announced,
        }
    }

    /// Feeds `event` (if any) to the path manager with a snapshot of the subflows, lets it
    /// decide what is due (opening subflows only with `rng`) and applies its actions.
    pub(super) fn run_path_manager(
        &mut self,
        now: Instant,
        event: Option<PmEvent>,
        rng: Option<&mut dyn Random>,
    ) {
        let facts = self.path_facts();
        let mut view = std::mem::take(&mut self.paths.view_buf);
        view.clear();
        view.extend(
            self.subflows
                .iter()
                .enumerate()
                .map(|(i, e)| self.subflow_view(i, e)),
        );
        if let Some(event) = event {
            self.paths.handle(now, event, &mut view);
        }
        self.paths.decide(now, &facts, &mut view, rng.is_some());
        self.paths.view_buf = view;
        self.apply_path_actions(now, rng);
    }

    fn subflow_view(&self, index: usize, e: &SubflowEntry) -> SubflowView {
        let c = &e.sf.counters;
        SubflowView {
            index,
            path: e.path,
            kind: e.kind,
            remote: e.sf.remote,
            usable: e.usable(),
            closed: e.sf.is_closed(),
            synchronized: e.sf.state.is_synchronized(),
            backup_local: e.backup_local,
            backup_remote: e.backup_remote,
            srtt: e.sf.srtt(),
            rtt_sampled: e.sf.has_rtt_sample(),
            rto: e.sf.rtt.rto(),
            rto_count: e.sf.rto_count,
            rto_events: c.rto_events,
            outstanding: e.sf.in_flight() > 0 || e.sf.has_lost(),
            all_acked: e.sf.all_acked(),
            last_loss: e.sf.last_loss,
            unresponsive_at: self.unresponsive_since(e),
            last_active: e.sf.last_sent.max(e.sf.last_received),
            bytes: c.bytes_sent + c.bytes_received,
        }
    }

    /// The one place the path manager's actions take effect: subflows opened and closed,
    /// MP_PRIO flags, reinjection, and the events that report switches.
    fn apply_path_actions(&mut self, now: Instant, mut rng: Option<&mut dyn Random>) {
        while let Some(action) = self.paths.next_action() {
            match action {
                PmAction::OpenSubflow {
                    path,
                    kind,
                    local,
                    remote,
                    addr_id,
                    backup,
                } => {
                    if let Some(rng) = rng.as_deref_mut() {
                        self.open_join(now, path, kind, local, remote, addr_id, backup, rng);
                    }
                }
                PmAction::CloseSubflow { index, abort } => {
                    if abort {
                        self.abort_subflow(now, index);
                        self.warm_takeover();
                    } else {
                        self.subflows[index].sf.close();
                    }
                }
                PmAction::SetBackup { index, backup } => self.set_backup_flag(index, backup),
                PmAction::Reinject { onto } => {
                    // Data stuck on the other paths goes out again on the new one.
                    let data_una = self.data_una;
                    let ranges = self
                        .subflows
                        .iter()
                        .filter(|e| e.path.is_some_and(|p| p != onto))
                        .flat_map(|e| e.unacked_data(data_una))
                        .collect();
                    self.queue_reinjection(ranges);
                }
                PmAction::BudgetExhausted { bytes } => {
                    self.events.push_back(Event::BudgetExhausted { bytes });
                }
                PmAction::Switch { from, to, reason } => {
                    self.events
                        .push_back(Event::PathSwitched { from, to, reason });
                }
            }
        }
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

    /// Another path's data was just queued for reinjection: idle subflows that may take it
    /// start with a window that covers the queue, up to `TAKEOVER_WINDOWS` initial windows
    /// (docs/ARCHITECTURE.md, "Handing traffic over"). The old path's sender learns what
    /// arrived only an ACK's trip late, so the reinjection starts with data the receiver
    /// already has; from an initial window the first round trip of the new path would carry
    /// only that. Only subflows with an RTT sample, which the pacer spreads the window over.
    pub(crate) fn warm_takeover(&mut self) {
        let bytes = self.reinject.covered();
        if bytes == 0 {
            return;
        }
        for e in &mut self.subflows {
            if !e.usable() || e.sf.in_flight() > 0 || e.sf.has_lost() || !e.sf.has_rtt_sample() {
                continue;
            }
            let mss = e.sf.effective_mss() as u64;
            let cap = crate::cc::initial_window(mss) * TAKEOVER_WINDOWS;
            e.sf.cc.take_over(bytes.min(cap));
        }
    }

    /// Earliest time a silent subflow would be declared dead.
    pub(crate) fn dead_subflow_deadline(&self) -> Option<std::time::Instant> {
        let dead_after = self.paths.policy().dead_after;
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
        let dead_after = self.paths.policy().dead_after;
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
        if !dead.is_empty() {
            self.warm_takeover();
        }
    }

    /// The next time the active path should be checked for silence.
    pub(crate) fn steering_deadline(&self) -> Option<std::time::Instant> {
        if self.role != Role::Client
            || !matches!(
                self.paths.policy().service,
                ServiceType::Handover | ServiceType::Interactive
            )
        {
            return None;
        }
        let active = self.paths.active()?;
        let e = self
            .subflows
            .iter()
            .find(|e| e.path == Some(active) && e.usable())?;
        // Only worth a timer when there is somewhere to go.
        let cellular_ok = self.paths.cellular_allowed();
        self.subflows.iter().find(|o| {
            o.path.is_some_and(|p| p != active)
                && o.usable()
                && (cellular_ok || !o.kind.is_cellular())
        })?;
        self.unresponsive_since(e)
    }

    /// Small writes (what is left to send fits in a few segments) also go on the other
    /// paths while one of them is lossy (or, at the client, while traffic is off the
    /// preferred path), so a loss costs no retransmission delay and each
    /// write arrives by whichever path is faster at that moment: a lossy WiFi still
    /// delivers most copies in its own short RTT, cellular covers the rest. The client does
    /// this under interactive service — whichever path is active, so it goes on after
    /// traffic moved to cellular. The server cannot see the service type; it duplicates when
    /// the client keeps more than one subflow regular (interactive or aggregate service,
    /// not handover).
    pub(crate) fn duplicate_small_write(&self, now: Instant) -> bool {
        let wanted = match self.role {
            Role::Client => self.paths.policy().service == ServiceType::Interactive,
            Role::Server => {
                self.subflows
                    .iter()
                    .filter(|e| e.usable() && !e.backup_remote)
                    .count()
                    > 1
            }
        };
        let backlog = self.data_end().saturating_sub(self.data_una);
        // A client whose traffic left the preferred path keeps copying onto it: the copies
        // arrive first whenever it delivers, and they keep its losses visible. Without
        // them, a path left on silence alone (a lost ACK, no loss detected yet) carries
        // nothing, so no loss is ever seen and the copies never start: replies then wait
        // for cellular both ways (BENCHMARKS.md section 4, the 41 ms medians).
        let off_preferred = self.role == Role::Client
            && self
                .paths
                .active()
                .is_some_and(|a| self.paths.primary() != Some(a));
        wanted
            && backlog <= SMALL_WRITE
            && (off_preferred
                || self.subflows.iter().any(|e| {
                    e.usable()
                        && e.sf
                            .last_loss
                            .is_some_and(|t| now.saturating_duration_since(t) < LOSSY_FOR)
                }))
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
            // A pending MP_PRIO means the peer still holds the opposite of `backup_local`,
            // i.e. the flag we now return to: flipping back cancels it instead of sending
            // news that is none (a spurious MP_PRIO).
            e.prio_pending = match e.prio_pending {
                Some(_) => None,
                None => Some(backup),
            };
            if let Some(path) = e.path {
                self.events
                    .push_back(Event::PathBackupChanged { path, backup });
            }
        }
    }
}
