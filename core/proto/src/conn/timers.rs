//! Time-driven work: subflow timers, the MP_JOIN third-ACK and DATA_FIN retransmissions,
//! window probes, reinjection after a timeout, and giving up when no path is left.

use super::{CloseError, Connection, Timer};
use crate::random::Random;
use std::time::Instant;

/// Third-ACK retransmissions before the join is abandoned.
const JOIN_ACK_ATTEMPTS: u32 = 6;

impl Connection {
    /// Handles the timers due at `now`, each by name (each one handled is stopped or set
    /// later, so none stays due), then lets the paths react as after any input.
    pub(crate) fn handle_timeout(&mut self, now: Instant, rng: &mut dyn Random) {
        self.last_input = now;
        // A subflow may have closed outside a timer (a RST sent, say): account for it first.
        self.account_closed_subflows(now);
        let due: Vec<Timer> = self.timers.expired(now).collect();
        for timer in due {
            self.timers.stop(timer);
            match timer {
                Timer::Subflows => self.subflow_timers(now),
                Timer::JoinAck => self.join_ack_timers(now),
                // Resend the DATA_FIN (alone, or on the last data segment if that is
                // resent): a stopped `DataFinRtx` lets it go.
                Timer::DataFinRtx => {}
                Timer::Persist => self.probe_window = true,
                Timer::NoPath => {
                    if !self.subflows.iter().any(|e| !e.sf.is_closed()) {
                        self.close(CloseError::TimedOut);
                    }
                }
                // Silence on every path: the peer (a gateway, say) is gone. Fail now rather
                // than after every subflow's own retransmission limit.
                Timer::PeerSilence => self.abort_with(CloseError::TimedOut),
                Timer::Paths => self.paths.handle_timeout(now),
                // Handled with the path checks below.
                Timer::RemoveProbe => {}
            }
        }
        // Path checks that also act on state other than their own deadline (a probe
        // answered, a silence already handled): they run on every timer call, as they did
        // before the table, until the path manager takes them over.
        self.finish_remove_probes(now);
        self.reinject_silent(now);
        self.reap_dead_subflows(now);
        self.steer(now);
        self.manage_paths(now, rng);
        self.after_input(now);
        self.refresh_timers();
    }

    fn account_closed_subflows(&mut self, now: Instant) {
        for i in 0..self.subflows.len() {
            if self.subflows[i].sf.is_closed() {
                self.on_subflow_closed(now, i);
            }
        }
    }

    /// The `Subflows` timer: each subflow handles its own expired timers.
    fn subflow_timers(&mut self, now: Instant) {
        for i in 0..self.subflows.len() {
            if self.subflows[i].sf.handle_timeout(now) {
                self.on_subflow_rto(now, i);
            }
            if self.subflows[i].sf.is_closed() {
                self.on_subflow_closed(now, i);
            }
        }
    }

    /// The `JoinAck` timer: third ACKs not acknowledged within an RTO go again, up to a
    /// limit.
    fn join_ack_timers(&mut self, now: Instant) {
        for i in 0..self.subflows.len() {
            let e = &mut self.subflows[i];
            let Some(j) = e.join.as_mut() else { continue };
            if !j.awaiting_ack {
                continue;
            }
            if let Some(t) = j.third_ack_at
                && t + e.sf.rtt.rto() <= now
            {
                j.third_ack_at = Some(now);
                j.attempts += 1;
                if j.attempts > JOIN_ACK_ATTEMPTS {
                    e.rst_reason = Some(crate::wire::TcpRstReason::MptcpError);
                    e.sf.abort();
                    self.on_subflow_closed(now, i);
                } else {
                    e.sf.request_ack();
                }
            }
        }
    }

    /// A subflow's retransmission timer fired: if another subflow can carry its outstanding
    /// data, reinject it there instead of waiting for this path to recover.
    fn on_subflow_rto(&mut self, _now: Instant, idx: usize) {
        let others = self
            .subflows
            .iter()
            .enumerate()
            .any(|(j, e)| j != idx && e.usable() && self.paths.data_allowed(e));
        if !others || !self.is_mptcp() {
            return;
        }
        let ranges = self.subflows[idx].unacked_data(self.data_una).collect();
        self.queue_reinjection(ranges);
    }
}
