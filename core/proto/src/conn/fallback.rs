//! Plain TCP inside an MPTCP connection (RFC 8684 §3.7): from the handshake when the peer or
//! a middlebox does not carry MPTCP options, midstream when DSS options vanish before any was
//! seen, or after a DSS checksum failure on the only subflow (MP_FAIL and the infinite
//! mapping). Afterwards the data stream is one subflow's byte stream, offset by a constant.

use super::{Connection, Event, Mode, SubflowId, Timer};

/// How the data stream maps onto the one remaining subflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fallback {
    pub subflow: SubflowId,
    /// Our data offset = subflow offset + `tx_delta`, for subflow offsets from `tx_from` on.
    /// Segments below `tx_from` were sent with DSS mappings and are resent with them.
    pub tx_delta: u64,
    pub tx_from: u64,
    /// Subflow offset of the segment that carries our infinite mapping (RFC 8684 §3.7), when
    /// the peer must be told where the plain stream starts.
    pub infinite_at: Option<u64>,
    /// The peer's data offset = subflow offset + delta from subflow offset `from` on; None
    /// until its infinite mapping arrives.
    pub rx: Option<(u64, u64)>,
}

impl Fallback {
    /// Plain TCP from the first byte: data offsets equal subflow offsets both ways.
    pub(crate) fn from_start(subflow: SubflowId) -> Self {
        Self {
            subflow,
            tx_delta: 0,
            tx_from: 0,
            infinite_at: None,
            rx: Some((0, 0)),
        }
    }

    /// The peer's data offset of subflow offset `ssn`, if the plain stream covers it.
    pub(crate) fn rx_dsn(&self, ssn: u64) -> Option<u64> {
        let (from, delta) = self.rx?;
        (ssn >= from).then(|| ssn.wrapping_add(delta))
    }
}

impl Connection {
    /// Switches our sending on subflow `idx` to plain TCP from its next new byte, which
    /// carries data offset `dsn` and our infinite mapping.
    pub(crate) fn fall_back_tx(&mut self, idx: usize, dsn: u64, announce: bool) {
        let e = &self.subflows[idx];
        let snd_nxt = e.sf.snd_nxt();
        let rx = self.mode.fallback().and_then(|f| f.rx);
        let fb = Fallback {
            subflow: e.id,
            tx_delta: dsn.wrapping_sub(snd_nxt),
            tx_from: snd_nxt,
            infinite_at: announce.then_some(snd_nxt),
            rx,
        };
        // The peer keeps its options (MP_FAIL, the infinite mapping) unless they were
        // never there.
        let options_read = self.mode.reads_options();
        self.mode = Mode::Fallback { fb, options_read };
        // Plain TCP ends with the subflow FIN: no DATA_FIN is resent.
        self.timers.stop(Timer::DataFinRtx);
        self.data_nxt = dsn;
        self.reinject.clear();
        for e in &mut self.subflows {
            e.own_queue.clear();
        }
        if !self.fell_back_reported {
            self.fell_back_reported = true;
            self.events.push_back(Event::FellBackToTcp);
        }
    }

    /// DSS options vanished before any was seen: a middlebox strips them both ways, so
    /// both directions continue as the plain byte stream from where they are.
    pub(crate) fn fall_back_midstream(&mut self, idx: usize) {
        let rx_delta = self
            .recv
            .rcv_nxt()
            .wrapping_sub(self.subflows[idx].sf.rcv_nxt());
        let dsn = self.data_nxt;
        self.fall_back_tx(idx, dsn, false);
        if let Mode::Fallback { fb, options_read } = &mut self.mode {
            fb.rx = Some((0, rx_delta));
            *options_read = false;
        }
    }

    /// The DSS checksum failed for the mapping at data offset `dsn` on the only subflow:
    /// ask the peer to fall back (MP_FAIL), drop what follows until its infinite mapping,
    /// and switch our own direction too.
    pub(crate) fn fail_rx(&mut self, idx: usize, dsn: u64) {
        self.subflows[idx].fail_pending = Some(dsn);
        self.rx_fail_dsn = Some(dsn);
        let next = self.data_nxt;
        self.fall_back_tx(idx, next, true);
        if let Some(f) = self.mode.fallback_mut() {
            f.rx = None;
        }
        self.subflows[idx].sf.request_ack();
    }

    /// The peer's infinite mapping: its plain stream starts at subflow offset `ssn` with
    /// data offset `dsn`.
    pub(crate) fn on_infinite_mapping(&mut self, idx: usize, ssn: u64, dsn: u64) {
        if self.mode.fallback().is_none() {
            // The peer fell back first (it got corrupted data from us or saw a failure):
            // follow, announcing our own switch.
            let next = self.data_nxt;
            self.fall_back_tx(idx, next, true);
        }
        if let Some(f) = self.mode.fallback_mut() {
            f.rx = Some((ssn, dsn.wrapping_sub(ssn)));
        }
        self.rx_fail_dsn = None;
        self.subflows[idx].fail_pending = None;
    }

    /// MP_FAIL from the peer: our data from `dsn` on failed its checksum. With other
    /// subflows the peer resets the bad one and we reinject; alone, we resend from `dsn`
    /// as plain TCP behind an infinite mapping.
    pub(crate) fn on_mp_fail(&mut self, idx: usize, dsn: u64) {
        let off = dsn.wrapping_sub(self.keys.local_idsn);
        let highest = self.data_nxt.max(self.data_una);
        // Only checksums can fail (RFC 8684 §3.7), and only for data sent and not yet
        // acknowledged.
        if !self.checksum || off < self.data_una || off > highest.max(self.sent_high) {
            self.stats.signals_ignored += 1;
            return;
        }
        let others = self
            .subflows
            .iter()
            .enumerate()
            .any(|(i, e)| i != idx && e.usable());
        if others {
            return;
        }
        // Everything before the failed mapping arrived (the peer checks in order).
        self.on_data_ack_offset(off, 0);
        self.fall_back_tx(idx, off, true);
    }

    /// Plain TCP: a subflow ACK past our switch point acknowledges data.
    pub(crate) fn fallback_ack(&mut self, idx: usize, valid: bool, window: u64) {
        let Some(fb) = self.mode.fallback() else {
            return;
        };
        if self.subflows[idx].id != fb.subflow || !valid {
            return;
        }
        let una = self.subflows[idx].sf.snd_una();
        if una > fb.tx_from {
            let ack = una.wrapping_add(fb.tx_delta).min(self.data_end());
            self.on_data_ack_offset(ack, window);
        }
    }

    /// Places plain-stream bytes; returns the subflow offset up to which bytes were taken.
    pub(crate) fn place_plain(&mut self, fb: &Fallback, ssn: u64, data: &[u8]) -> Option<u64> {
        let dsn = fb.rx_dsn(ssn)?;
        let took = self.insert_data(dsn, data);
        Some(ssn + took)
    }
}
