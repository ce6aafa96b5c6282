//! A connection's named timers (see docs/ARCHITECTURE.md, "Timers and the endpoint").
//!
//! Each timer is one slot, set and stopped where the state it guards changes, and
//! dispatched by name when it expires. Subflow timers (RTO, TLP, delayed ACK, keepalive,
//! TIME_WAIT) stay inside each subflow, which knows best when they move (every segment sent
//! or acknowledged); the connection registers the earliest of them as the one `Subflows`
//! entry and refreshes it after each call, so the table keeps a fixed size however many
//! subflows there are. The path deadlines (failback, steering, silence, dead subflows) are
//! likewise one `Paths` entry until the path manager reports its own deadline.

use std::time::Instant;

/// A named connection timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Earliest timer of any subflow.
    Subflows,
    /// Earliest MP_JOIN third-ACK retransmission (RFC 8684 §3.2).
    JoinAck,
    /// A DATA_FIN not acknowledged within an RTO is sent again.
    DataFinRtx,
    /// Zero-window probe.
    Persist,
    /// No subflow left for `no_path_timeout`: the connection fails.
    NoPath,
    /// The peer silent on every path for `peer_silence_timeout`: the connection fails.
    PeerSilence,
    /// Earliest REMOVE_ADDR probe deadline (RFC 8684 §3.4.2).
    RemoveProbe,
    /// Earliest path deadline: failback, steering, silent and dead subflows.
    Paths,
}

impl Timer {
    const COUNT: usize = 8;

    /// Every timer, in the order `handle_timeout` dispatches them.
    pub(crate) const ALL: [Timer; Timer::COUNT] = [
        Timer::Subflows,
        Timer::JoinAck,
        Timer::DataFinRtx,
        Timer::Persist,
        Timer::NoPath,
        Timer::PeerSilence,
        Timer::RemoveProbe,
        Timer::Paths,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// One deadline per named timer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    at: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arms `timer` for `at` (replacing any earlier setting).
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer.slot()] = Some(at);
    }

    /// Arms `timer` for `at`, or stops it when `at` is None.
    pub(crate) fn set_or_stop(&mut self, timer: Timer, at: Option<Instant>) {
        self.at[timer.slot()] = at;
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer.slot()] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer.slot()]
    }

    pub(crate) fn is_set(&self, timer: Timer) -> bool {
        self.at[timer.slot()].is_some()
    }

    /// The earliest deadline of all timers.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Timers due at `now`, in dispatch order (they stay set: the caller stops each as it
    /// handles it).
    pub(crate) fn expired(&self, now: Instant) -> impl Iterator<Item = Timer> + '_ {
        Timer::ALL
            .into_iter()
            .filter(move |t| self.get(*t).is_some_and(|at| at <= now))
    }

    /// Stops every timer but `keep`.
    pub(crate) fn stop_all_but(&mut self, keep: Timer) {
        for t in Timer::ALL {
            if t != keep {
                self.stop(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_the_earliest_set_timer() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::Persist, t0 + Duration::from_secs(3));
        table.set(Timer::NoPath, t0 + Duration::from_secs(1));
        table.set(Timer::Paths, t0 + Duration::from_secs(2));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(1)));
        table.stop(Timer::NoPath);
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(2)));
        // Setting again replaces, even with a later deadline.
        table.set(Timer::Paths, t0 + Duration::from_secs(5));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(3)));
        table.set_or_stop(Timer::Persist, None);
        table.set_or_stop(Timer::Paths, None);
        assert_eq!(table.next(), None);
    }

    #[test]
    fn expired_lists_due_timers_in_dispatch_order() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        table.set(Timer::Paths, t0);
        table.set(Timer::Subflows, t0 - Duration::from_millis(5));
        table.set(Timer::DataFinRtx, t0 + Duration::from_millis(1));
        table.set(Timer::Persist, t0);
        let due: Vec<_> = table.expired(t0).collect();
        assert_eq!(due, vec![Timer::Subflows, Timer::Persist, Timer::Paths]);
        assert!(table.is_set(Timer::Persist), "expiry alone stops nothing");
        let later: Vec<_> = table.expired(t0 + Duration::from_millis(1)).collect();
        assert!(later.contains(&Timer::DataFinRtx));
    }

    #[test]
    fn stop_all_but_keeps_one() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        for t in Timer::ALL {
            table.set(t, t0);
        }
        table.stop_all_but(Timer::Subflows);
        assert_eq!(table.expired(t0).collect::<Vec<_>>(), vec![Timer::Subflows]);
    }

    #[test]
    fn every_timer_has_its_own_slot() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        for (i, t) in Timer::ALL.into_iter().enumerate() {
            table.set(t, t0 + Duration::from_secs(i as u64));
        }
        for (i, t) in Timer::ALL.into_iter().enumerate() {
            assert_eq!(table.get(t), Some(t0 + Duration::from_secs(i as u64)));
        }
    }
}
