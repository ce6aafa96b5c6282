//! The MPTCP options each segment carries: MP_CAPABLE and MP_JOIN in handshakes, DSS with the
//! DATA_ACK and mappings (with checksums when negotiated), signals on pure ACKs (MP_PRIO,
//! ADD_ADDR, REMOVE_ADDR), MP_TCPRST and MP_FASTCLOSE on resets, and what a fallback still
//! needs (mappings of segments sent before it, the infinite mapping, MP_FAIL).

use super::Connection;
use super::tx::Seg;
use crate::subflow::State;
use crate::wire::{
    self, DataSeq, Dss, DssMapping, MpCapable, MpCapableFlags, MpCapableKeys, MpFail, MpFastClose,
    MpJoin, MpPrio, MpTcpRst, MptcpOption, TcpRepr,
};
use std::time::Instant;

/// The MPTCP options planned for one segment. Planning changes nothing; once the segment
/// went out, `commit_mptcp_options` consumes what it carried (a pending MP_PRIO or MP_FAIL).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PlannedOptions {
    opts: [Option<MptcpOption>; 4],
    /// A pure ACK on the signal carrier with DSS: ADD_ADDR and REMOVE_ADDR may ride on it.
    signal_slot: bool,
}

impl PlannedOptions {
    fn push(&mut self, o: MptcpOption) {
        if let Some(slot) = self.opts.iter_mut().find(|s| s.is_none()) {
            *slot = Some(o);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &MptcpOption> {
        self.opts.iter().flatten()
    }

    /// Writes the options into `repr`; returns those that fitted.
    pub(super) fn write(&self, repr: &mut TcpRepr) -> PlannedOptions {
        let mut written = PlannedOptions::default();
        // An authenticated ADD_ADDR does not fit next to a DSS: like the kernel, send it on
        // a pure ACK without one (the next segment carries the DATA_ACK).
        let add_addr = self
            .iter()
            .any(|o| matches!(o, MptcpOption::AddAddr(a) if !a.is_echo()));
        for &o in self.iter() {
            if add_addr && matches!(o, MptcpOption::Dss(_)) {
                continue;
            }
            if repr.options.push_mptcp(o).is_err() {
                // IPv6 ADD_ADDR with a port only fits without the timestamp.
                repr.options.timestamps = None;
                if repr.options.push_mptcp(o).is_err() {
                    break;
                }
            }
            written.push(o);
        }
        written
    }
}

impl Connection {
    /// Adds the MPTCP options a segment of `kind` on subflow `idx` needs and returns what
    /// was written, for `commit_mptcp_options` once the segment is out. Only a path signal
    /// (ADD_ADDR, REMOVE_ADDR) is taken from the path manager here, by the one pure ACK
    /// that carries it.
    pub(super) fn add_mptcp_options(
        &mut self,
        now: Instant,
        idx: usize,
        repr: &mut TcpRepr,
        kind: Seg,
    ) -> PlannedOptions {
        let mut plan = self.plan_mptcp_options(idx, kind);
        if plan.signal_slot
            && let Some(remote_key) = self.keys.remote
            && let Some(o) = self.paths.next_signal(now, self.keys.local, remote_key)
        {
            plan.push(o);
        }
        plan.write(repr)
    }

    /// A segment carrying `sent` (from `add_mptcp_options`) went out on subflow `idx`: the
    /// MP_PRIO and MP_FAIL it carried are no longer pending.
    pub(super) fn commit_mptcp_options(&mut self, idx: usize, sent: &PlannedOptions) {
        let e = &mut self.subflows[idx];
        for o in sent.iter() {
            match o {
                MptcpOption::MpPrio(p) if e.prio_pending == Some(p.backup) => {
                    e.prio_pending = None;
                }
                MptcpOption::MpFail(_) => e.fail_pending = None,
                _ => {}
            }
        }
    }

    /// The MPTCP options a segment of `kind` on subflow `idx` needs (no path signal: see
    /// `add_mptcp_options`).
    pub(super) fn plan_mptcp_options(&self, idx: usize, kind: Seg) -> PlannedOptions {
        let mut out = PlannedOptions::default();
        let e = &self.subflows[idx];
        if let Seg::Rst = kind {
            if let Some(reason) = e.rst_reason {
                out.push(MptcpOption::MpTcpRst(MpTcpRst { flags: 0, reason }));
            }
            if e.fastclose
                && let Some(k) = self.keys.remote
            {
                out.push(MptcpOption::MpFastClose(MpFastClose { receiver_key: k }));
            }
            return out;
        }
        let flags = {
            let mut f = MpCapableFlags::H;
            if self.checksum {
                f.insert(MpCapableFlags::A);
            }
            f
        };
        if let Seg::Syn = kind {
            if let Some(j) = e.join {
                if e.sf.state == State::SynSent {
                    out.push(MptcpOption::MpJoin(MpJoin::Syn {
                        backup: e.backup_local,
                        addr_id: e.local_addr_id,
                        token: self.keys.remote_token,
                        nonce: j.local_nonce,
                    }));
                } else if let Some(rk) = self.keys.remote {
                    let hmac =
                        wire::join_synack_hmac(self.keys.local, rk, j.local_nonce, j.remote_nonce);
                    out.push(MptcpOption::MpJoin(MpJoin::SynAck {
                        backup: e.backup_local,
                        addr_id: e.local_addr_id,
                        hmac,
                        nonce: j.local_nonce,
                    }));
                }
            } else if self.mode.reads_options() && self.mode.fallback().is_none() {
                let mut flags = flags;
                let keys = if e.sf.state == State::SynSent {
                    MpCapableKeys::Syn
                } else {
                    // C: "do not join my source address" when the server announces its
                    // own (RFC 8684 §3.1; docs/ARCHITECTURE.md, "Announce and the C flag").
                    if self.paths.initial_join_denied {
                        flags.insert(MpCapableFlags::C);
                    }
                    MpCapableKeys::SynAck {
                        sender_key: self.keys.local,
                    }
                };
                out.push(MptcpOption::MpCapable(MpCapable {
                    version: 1,
                    flags,
                    keys,
                }));
            }
            return out;
        }
        if let Some(fb) = self.mode.fallback() {
            // Plain TCP, except what RFC 8684 §3.7 needs around the switch: segments sent
            // before it keep their mappings, the first one after it carries the infinite
            // mapping, and MP_FAIL goes out once.
            if let Seg::Data {
                dsn,
                ssn,
                len,
                data_fin,
            } = kind
            {
                if ssn < fb.tx_from && self.mptcp_was_negotiated() {
                    let checksum = self
                        .checksum
                        .then(|| self.mapping_checksum(dsn, ssn, len, data_fin));
                    out.push(MptcpOption::Dss(Dss {
                        data_ack: None,
                        mapping: Some(DssMapping {
                            dsn: DataSeq::Wide(self.keys.local_idsn.wrapping_add(dsn)),
                            ssn: ssn as u32,
                            data_len: (len + data_fin as u32) as u16,
                            checksum,
                        }),
                        data_fin,
                    }));
                } else if fb.infinite_at == Some(ssn) {
                    let dsn = self
                        .keys
                        .local_idsn
                        .wrapping_add(ssn.wrapping_add(fb.tx_delta));
                    let checksum = self
                        .checksum
                        .then(|| wire::dss_checksum(dsn, ssn as u32, 0, &[]));
                    out.push(MptcpOption::Dss(Dss {
                        data_ack: None,
                        mapping: Some(DssMapping {
                            dsn: DataSeq::Wide(dsn),
                            ssn: ssn as u32,
                            data_len: 0,
                            checksum,
                        }),
                        data_fin: false,
                    }));
                }
            }
            // MP_FAIL rides on every segment until the peer's infinite mapping shows it
            // arrived; `fail_pending` only forces the first one out.
            if let Some(dsn) = self.rx_fail_dsn.filter(|_| fb.subflow == e.id)
                && !matches!(kind, Seg::Fin)
            {
                out.push(MptcpOption::MpFail(MpFail {
                    dsn: self.keys.remote_idsn.wrapping_add(dsn),
                }));
            }
            return out;
        }
        let Some(remote_key) = self.keys.remote else {
            return out;
        };
        // Client, initial subflow, before the server proved it has our key: repeat the keys.
        if e.initial && self.role == super::Role::Client && !self.fully_established {
            match kind {
                Seg::Data { dsn: 1, len, .. } => {
                    let checksum = self
                        .checksum
                        .then(|| self.mapping_checksum(1, 1, len, false));
                    out.push(MptcpOption::MpCapable(MpCapable {
                        version: 1,
                        flags,
                        keys: MpCapableKeys::AckData {
                            sender_key: self.keys.local,
                            receiver_key: remote_key,
                            data_len: len as u16,
                            checksum,
                        },
                    }));
                    return out;
                }
                Seg::PureAck => {
                    out.push(MptcpOption::MpCapable(MpCapable {
                        version: 1,
                        flags,
                        keys: MpCapableKeys::Ack {
                            sender_key: self.keys.local,
                            receiver_key: remote_key,
                        },
                    }));
                    return out;
                }
                _ => {}
            }
        }
        if let (Some(j), Seg::PureAck) = (e.join, kind)
            && j.awaiting_ack
        {
            let hmac =
                wire::join_ack_hmac(self.keys.local, remote_key, j.local_nonce, j.remote_nonce);
            out.push(MptcpOption::MpJoin(MpJoin::Ack { hmac }));
            return out;
        }
        if e.join.is_some_and(|j| !j.awaiting_ack) && e.sf.state == State::SynReceived {
            return out;
        }
        let mapping = match kind {
            Seg::Data {
                dsn,
                ssn,
                len,
                data_fin,
            } => Some(DssMapping {
                // 32 bits, like the DATA_ACK: the receiver expands them near what it has
                // received, and no window comes near 2^31 bytes.
                dsn: DataSeq::Narrow(self.keys.local_idsn.wrapping_add(dsn) as u32),
                ssn: ssn as u32,
                data_len: (len + data_fin as u32) as u16,
                checksum: self
                    .checksum
                    .then(|| self.mapping_checksum(dsn, ssn, len, data_fin)),
            }),
            _ => None,
        };
        let data_fin = matches!(kind, Seg::Data { data_fin: true, .. });
        out.push(MptcpOption::Dss(Dss {
            data_ack: self.data_ack(),
            mapping,
            data_fin,
        }));
        if let Seg::PureAck = kind {
            if let Some(b) = e.prio_pending {
                out.push(MptcpOption::MpPrio(MpPrio { backup: b }));
            }
            out.signal_slot = self.signal_carrier() == Some(idx);
        }
        out
    }

    /// MPTCP was agreed at the handshake (the peer understands DSS), even if we fell back
    /// since.
    fn mptcp_was_negotiated(&self) -> bool {
        self.keys.remote.is_some()
    }

    /// DSS checksum of the mapping for `len` bytes at data offset `dsn`, subflow offset `ssn`.
    fn mapping_checksum(&self, dsn: u64, ssn: u64, len: u32, data_fin: bool) -> u16 {
        let mut payload = vec![0u8; len as usize];
        // The caller checked that the bytes are held (`bytes_held`).
        self.send_buf.copy_out(dsn, &mut payload);
        wire::dss_checksum(
            self.keys.local_idsn.wrapping_add(dsn),
            ssn as u32,
            (len + data_fin as u32) as u16,
            &payload,
        )
    }
}
