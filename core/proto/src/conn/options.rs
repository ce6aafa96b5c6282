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

impl Connection {
    /// Adds the MPTCP options a segment of `kind` on subflow `idx` needs.
    pub(super) fn add_mptcp_options(
        &mut self,
        now: Instant,
        idx: usize,
        repr: &mut TcpRepr,
        kind: Seg,
    ) {
        let mut opts: [Option<MptcpOption>; 4] = [None; 4];
        self.mptcp_options_for(now, idx, kind, &mut opts);
        // An authenticated ADD_ADDR does not fit next to a DSS: like the kernel, send it on
        // a pure ACK without one (the next segment carries the DATA_ACK).
        let add_addr = opts
            .iter()
            .flatten()
            .any(|o| matches!(o, MptcpOption::AddAddr(a) if !a.is_echo()));
        for o in opts.into_iter().flatten() {
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
        }
    }

    fn mptcp_options_for(
        &mut self,
        now: Instant,
        idx: usize,
        kind: Seg,
        out: &mut [Option<MptcpOption>; 4],
    ) {
        let e = &self.subflows[idx];
        let mut n = 0;
        let mut push = |o: MptcpOption, out: &mut [Option<MptcpOption>; 4]| {
            if n < out.len() {
                out[n] = Some(o);
                n += 1;
            }
        };
        if let Seg::Rst = kind {
            if let Some(reason) = e.rst_reason {
                push(MptcpOption::MpTcpRst(MpTcpRst { flags: 0, reason }), out);
            }
            if e.fastclose {
                if let Some(k) = self.keys.remote {
                    push(
                        MptcpOption::MpFastClose(MpFastClose { receiver_key: k }),
                        out,
                    );
                }
            }
            return;
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
                    push(
                        MptcpOption::MpJoin(MpJoin::Syn {
                            backup: e.backup_local,
                            addr_id: e.local_addr_id,
                            token: self.keys.remote_token,
                            nonce: j.local_nonce,
                        }),
                        out,
                    );
                } else if let Some(rk) = self.keys.remote {
                    let hmac =
                        wire::join_synack_hmac(self.keys.local, rk, j.local_nonce, j.remote_nonce);
                    push(
                        MptcpOption::MpJoin(MpJoin::SynAck {
                            backup: e.backup_local,
                            addr_id: e.local_addr_id,
                            hmac,
                            nonce: j.local_nonce,
                        }),
                        out,
                    );
                }
            } else if self.mptcp && self.fallback.is_none() {
                let keys = if e.sf.state == State::SynSent {
                    MpCapableKeys::Syn
                } else {
                    MpCapableKeys::SynAck {
                        sender_key: self.keys.local,
                    }
                };
                push(
                    MptcpOption::MpCapable(MpCapable {
                        version: 1,
                        flags,
                        keys,
                    }),
                    out,
                );
            }
            return;
        }
        if let Some(fb) = self.fallback {
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
                    push(
                        MptcpOption::Dss(Dss {
                            data_ack: None,
                            mapping: Some(DssMapping {
                                dsn: DataSeq::Wide(self.keys.local_idsn.wrapping_add(dsn)),
                                ssn: ssn as u32,
                                data_len: (len + data_fin as u32) as u16,
                                checksum,
                            }),
                            data_fin,
                        }),
                        out,
                    );
                } else if fb.infinite_at == Some(ssn) {
                    let dsn = self
                        .keys
                        .local_idsn
                        .wrapping_add(ssn.wrapping_add(fb.tx_delta));
                    let checksum = self
                        .checksum
                        .then(|| wire::dss_checksum(dsn, ssn as u32, 0, &[]));
                    push(
                        MptcpOption::Dss(Dss {
                            data_ack: None,
                            mapping: Some(DssMapping {
                                dsn: DataSeq::Wide(dsn),
                                ssn: ssn as u32,
                                data_len: 0,
                                checksum,
                            }),
                            data_fin: false,
                        }),
                        out,
                    );
                }
            }
            // MP_FAIL rides on every segment until the peer's infinite mapping shows it
            // arrived; `fail_pending` only forces the first one out.
            if let Some(dsn) = self.rx_fail_dsn.filter(|_| fb.subflow == e.id) {
                if !matches!(kind, Seg::Fin) {
                    push(
                        MptcpOption::MpFail(MpFail {
                            dsn: self.keys.remote_idsn.wrapping_add(dsn),
                        }),
                        out,
                    );
                    self.subflows[idx].fail_pending = None;
                }
            }
            return;
        }
        let Some(remote_key) = self.keys.remote else {
            return;
        };
        // Client, initial subflow, before the server proved it has our key: repeat the keys.
        if e.initial && self.role == super::Role::Client && !self.fully_established {
            match kind {
                Seg::Data { dsn: 1, len, .. } => {
                    let checksum = self
                        .checksum
                        .then(|| self.mapping_checksum(1, 1, len, false));
                    push(
                        MptcpOption::MpCapable(MpCapable {
                            version: 1,
                            flags,
                            keys: MpCapableKeys::AckData {
                                sender_key: self.keys.local,
                                receiver_key: remote_key,
                                data_len: len as u16,
                                checksum,
                            },
                        }),
                        out,
                    );
                    return;
                }
                Seg::PureAck => {
                    push(
                        MptcpOption::MpCapable(MpCapable {
                            version: 1,
                            flags,
                            keys: MpCapableKeys::Ack {
                                sender_key: self.keys.local,
                                receiver_key: remote_key,
                            },
                        }),
                        out,
                    );
                    return;
                }
                _ => {}
            }
        }
        if let (Some(j), Seg::PureAck) = (e.join, kind) {
            if j.awaiting_ack {
                let hmac =
                    wire::join_ack_hmac(self.keys.local, remote_key, j.local_nonce, j.remote_nonce);
                push(MptcpOption::MpJoin(MpJoin::Ack { hmac }), out);
                return;
            }
        }
        if e.join.is_some_and(|j| !j.awaiting_ack) && e.sf.state == State::SynReceived {
            return;
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
        push(
            MptcpOption::Dss(Dss {
                data_ack: self.data_ack(),
                mapping,
                data_fin,
            }),
            out,
        );
        if let Seg::PureAck = kind {
            let e = &mut self.subflows[idx];
            if let Some(b) = e.prio_pending.take() {
                push(MptcpOption::MpPrio(MpPrio { backup: b }), out);
            }
            if self.signal_carrier() == Some(idx) {
                if let Some(o) = self.paths.next_signal(now, self.keys.local, remote_key) {
                    push(o, out);
                }
            }
        }
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
