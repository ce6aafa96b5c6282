//! An established two-subflow connection (both directions moving data) fed forged segments,
//! structure-aware: each one goes on a real 4-tuple, impersonating one side, with sequence,
//! ACK, data sequence and DATA_ACK numbers a small fuzzer-chosen distance from what that side
//! last sent, the connection's real token or keys where an option carries one, arbitrary
//! flags, options (structured or raw) and payload. Real traffic runs between forgeries. Any
//! panic (overflow checks are on) or a node that never stops transmitting is a bug.
#![no_main]

#[path = "pair.rs"]
mod pair;

use braid_proto::wire::{
    self, AddAddr, DataSeq, Dss, DssMapping, MpCapable, MpCapableFlags, MpCapableKeys, MpFail,
    MpFastClose, MpJoin, MpPrio, MpTcpRst, MptcpOption, RemoveAddr, SeqNum, TcpFlags, TcpOptions,
    TcpRepr, TcpRstReason,
};
use libfuzzer_sys::fuzz_target;
use pair::{CELL, Pair, SERVER, WIFI, sa};

/// Reads the fuzz input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }
    /// A small signed distance, sometimes scaled up to reach window edges.
    fn delta(&mut self) -> i64 {
        let d = i64::from(self.u16() as i16);
        let shift = self.u8() % 20;
        if shift >= 12 { d << (shift - 12) } else { d }
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn shift32(v: u32, d: i64) -> u32 {
    v.wrapping_add(d as u32)
}

/// `v` moved by `d`, in its own width or widened: a 32-bit value is expanded with the high
/// bits of `idsn` (the IDSN of the space it belongs to), so a wide forgery lands near the
/// real position, below the IDSN (offsets near 2^64) for a large enough negative `d`.
fn shift_seq(v: Option<DataSeq>, d: i64, wide: bool, idsn: u64) -> DataSeq {
    match v {
        Some(DataSeq::Wide(x)) => DataSeq::Wide(x.wrapping_add(d as u64)),
        Some(DataSeq::Narrow(x)) if wide => {
            let off = u64::from(x.wrapping_sub(idsn as u32));
            DataSeq::Wide(idsn.wrapping_add(off).wrapping_add(d as u64))
        }
        Some(DataSeq::Narrow(x)) => DataSeq::Narrow(shift32(x, d)),
        None => DataSeq::Narrow(d as u32),
    }
}

/// One MPTCP option, its fields near the live connection's values.
fn option(
    inp: &mut Input,
    seen: &pair::Seen,
    peer_seen: &pair::Seen,
    keys: (u64, u64),
) -> MptcpOption {
    let kind = inp.u8();
    let (sender_key, receiver_key) = keys;
    let (tx_idsn, rx_idsn) = (wire::idsn(sender_key), wire::idsn(receiver_key));
    match kind % 12 {
        0..=2 => {
            let flags = inp.u8();
            let wide = flags & 0x80 != 0;
            let data_ack = (flags & 1 != 0).then(|| {
                let d = inp.delta();
                shift_seq(peer_seen.dsn_next, d, wide, rx_idsn)
            });
            let mapping = (flags & 2 != 0).then(|| {
                let d = inp.delta();
                DssMapping {
                    dsn: shift_seq(seen.dsn_next, d, wide, tx_idsn),
                    ssn: inp.u32() % 0x2_0000,
                    data_len: if flags & 4 != 0 { 0 } else { inp.u16() },
                    checksum: (flags & 8 != 0).then(|| inp.u16()),
                }
            });
            MptcpOption::Dss(Dss {
                data_ack,
                mapping,
                data_fin: flags & 16 != 0,
            })
        }
        3 => MptcpOption::AddAddr(AddAddr {
            addr_id: inp.u8(),
            addr: sa(CELL).ip(),
            port: (inp.u8() & 1 != 0).then(|| inp.u16()),
            hmac: (inp.u8() & 1 != 0).then(|| inp.u64()),
        }),
        4 => {
            let n = usize::from(inp.u8() % 8) + 1;
            let ids = inp.bytes(n).to_vec();
            RemoveAddr::new(&ids)
                .map(MptcpOption::RemoveAddr)
                .unwrap_or(MptcpOption::MpPrio(MpPrio { backup: true }))
        }
        5 => MptcpOption::MpPrio(MpPrio {
            backup: inp.u8() & 1 != 0,
        }),
        6 => {
            let d = inp.delta();
            MptcpOption::MpFail(MpFail {
                dsn: shift_seq(seen.dsn_next, d, true, tx_idsn).value(),
            })
        }
        7 => MptcpOption::MpFastClose(MpFastClose {
            receiver_key: if inp.u8() & 1 != 0 {
                receiver_key
            } else {
                inp.u64()
            },
        }),
        8 => MptcpOption::MpTcpRst(MpTcpRst {
            flags: inp.u8() & 0x0f,
            reason: TcpRstReason::from_u8(inp.u8()),
        }),
        9 => MptcpOption::MpJoin(MpJoin::Syn {
            backup: inp.u8() & 1 != 0,
            addr_id: inp.u8(),
            token: if inp.u8() & 1 != 0 {
                wire::token(receiver_key)
            } else {
                inp.u32()
            },
            nonce: inp.u32(),
        }),
        10 => MptcpOption::MpJoin(MpJoin::Ack {
            hmac: {
                let mut h = [0u8; 20];
                h.copy_from_slice(&{
                    let mut v = inp.bytes(20).to_vec();
                    v.resize(20, 0);
                    v
                });
                h
            },
        }),
        _ => MptcpOption::MpCapable(MpCapable {
            version: 1,
            flags: MpCapableFlags(inp.u8()),
            keys: match inp.u8() % 3 {
                0 => MpCapableKeys::Syn,
                1 => MpCapableKeys::Ack {
                    sender_key,
                    receiver_key,
                },
                _ => MpCapableKeys::AckData {
                    sender_key,
                    receiver_key,
                    data_len: inp.u16(),
                    checksum: None,
                },
            },
        }),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut p = Pair::new(2, [64 << 10, 64 << 10]);
    for _ in 0..3000 {
        p.step();
        if p.client_paths_up >= 2 && p.seen.len() >= 4 {
            break;
        }
    }
    let Some(keys) = p.client.connection(p.h).and_then(|c| c.mptcp_keys()) else {
        return;
    };
    if p.client_paths_up < 2 {
        return;
    }
    let mut inp = Input(data);
    let mut ops = 0;
    while !inp.is_empty() && ops < 64 {
        ops += 1;
        let op = inp.u8();
        if op & 3 == 0 {
            for _ in 0..=(op >> 2) % 8 {
                p.step();
            }
            continue;
        }
        // Whom to impersonate, on which subflow.
        let client = [sa(WIFI), sa(CELL)][usize::from(op >> 7)];
        let (src, dst, keys) = if op & 4 != 0 {
            (sa(SERVER), client, (keys.1, keys.0))
        } else {
            (client, sa(SERVER), keys)
        };
        let seen = p.seen.get(&(src, dst)).copied().unwrap_or_default();
        let peer_seen = p.seen.get(&(dst, src)).copied().unwrap_or_default();
        let flags = TcpFlags(inp.u8() & !TcpFlags::URG.0);
        let (ds, da) = (inp.delta(), inp.delta());
        let mut options = TcpOptions::default();
        let raw = op & 8 != 0;
        if !raw {
            for _ in 0..inp.u8() % 3 {
                let o = option(&mut inp, &seen, &peer_seen, keys);
                let _ = options.push_mptcp(o);
            }
            if inp.u8() & 1 != 0 {
                let l = shift32(seen.seq_next, inp.delta());
                let _ = options
                    .sack_blocks
                    .push((SeqNum(l), SeqNum(l.wrapping_add(u32::from(inp.u16())))));
            }
        }
        let repr = TcpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq: SeqNum(shift32(seen.seq_next, ds)),
            ack: SeqNum(shift32(seen.ack, da)),
            flags,
            window: inp.u16(),
            urgent: 0,
            options,
        };
        let mut dgram = vec![0u8; 64];
        let Ok(n) = wire::emit_udp_payload(&repr, &mut dgram) else {
            continue;
        };
        dgram.truncate(n);
        if raw {
            // Arbitrary option bytes in place of the structured ones (the data offset
            // covers them, whole words).
            let olen = usize::from(inp.u8() % 11) * 4;
            let mut o = inp.bytes(olen).to_vec();
            o.resize(olen, 1);
            dgram[0] = (((20 + olen) / 4) as u8) << 4;
            dgram.extend_from_slice(&o);
        }
        let plen = usize::from(inp.u8() % 65);
        let payload = inp.bytes(plen).to_vec();
        dgram.extend_from_slice(&payload);
        p.deliver(src, dst, &dgram);
    }
    for _ in 0..300 {
        p.step();
    }
});
