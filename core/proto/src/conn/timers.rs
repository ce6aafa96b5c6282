//! Time-driven work: subflow timers, the MP_JOIN third-ACK and DATA_FIN retransmissions,
//! window probes, reinjection after a timeout, and giving up when no path is left.

use super::{CloseError, Connection};
use crate::random::Random;
use std::time::Instant;

/// Third-ACK retransmissions before the join is abandoned.
const JOIN_ACK_ATTEMPTS: u32 = 6;

impl Connection {
    pub(crate) fn handle_timeout(&mut self, now: Instant, rng: &mut dyn Random) {
        self.last_input = now;
        let mut i = 0;
        while i < self.subflows.len() {
            let rto = self.subflows[i].sf.handle_timeout(now);
            if rto {
                self.on_subflow_rto(now, i);
            }
            if self.subflows[i].sf.is_closed() {
                self.on_subflow_closed(now, i);
            }
            i += 1;
        }
        for i in 0..self.subflows.len() {
            let e = &mut self.subflows[i];
            let Some(j) = e.join.as_mut() else { continue };
            if !j.awaiting_ack {
                continue;
            }
            if let Some(t) = j.third_ack_at {
                if t + e.sf.rtt.rto() <= now {
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
        if self.data_fin_retransmit_at().is_some_and(|t| t <= now) {
            // Resend the DATA_FIN (alone, or on the last data segment if that is resent).
            self.data_fin_rtx_at = None;
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            self.probe_window = true;
        }
        if let Some(since) = self.no_path_since {
            let live = self.subflows.iter().any(|e| !e.sf.is_closed());
            if live {
                self.no_path_since = None;
            } else if since + self.cfg.no_path_timeout <= now {
                self.no_path_since = None;
                self.close(CloseError::TimedOut);
            }
        }
        if self.peer_silence_deadline().is_some_and(|t| t <= now) {
            // Silence on every path: the peer (a gateway, say) is gone. Fail now rather
            // than after every subflow's own retransmission limit.
            self.abort_with(CloseError::TimedOut);
        }
        self.paths.handle_timeout(now);
        self.finish_remove_probes(now);
        self.reinject_silent(now);
        self.reap_dead_subflows(now);
        self.steer(now);
        self.manage_paths(now, rng);
        self.after_input(now);
        self.timers_handled(now);
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
