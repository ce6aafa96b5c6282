//! Opening subflows: MP_CAPABLE on the initial subflow (keys), MP_JOIN on the others
//! (token + HMACs both ways), and the fallback to plain TCP when the peer or a middlebox does
//! not carry MPTCP.

use super::{
    ConnState, Connection, Event, JoinState, Mode, Role, SubflowEntry, SubflowId, SubflowPhase,
    Timer,
};
use crate::path::{InterfaceKind, PathId};
use crate::random::Random;
use crate::subflow::{State, Subflow};
use crate::wire::{
    self, MpCapable, MpCapableFlags, MpCapableKeys, MpJoin, MptcpOption, TcpRepr, TcpRstReason,
};
use std::net::SocketAddr;
use std::time::Instant;

/// Joins in their handshake a connection holds at once.
const MAX_HALF_OPEN_JOINS: usize = 8;

/// What the handshake logic decided about a segment.
pub(crate) enum Verdict {
    Continue,
    /// Ignore the segment entirely (no TCP processing).
    Drop,
    /// Reset the subflow, with this MP_TCPRST reason.
    Reset(TcpRstReason),
}

impl Connection {
    /// The client side: the initial subflow on `path` towards `remote`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_initial(
        &mut self,
        now: Instant,
        path: Option<PathId>,
        kind: InterfaceKind,
        local: SocketAddr,
        iss: u32,
    ) -> SubflowId {
        let sf = Subflow::connect(now, self.cfg.subflow.clone(), local, self.remote, iss);
        let id = self.alloc_subflow_id();
        let mut e = SubflowEntry::new(id, sf, path, kind);
        e.initial = true;
        if !self.cfg.mptcp {
            self.mode = Mode::plain(id);
        }
        self.push_subflow(e);
        id
    }

    /// The server side: a connection created from a SYN. `mp_capable` is the SYN's option
    /// (None: the client does not offer MPTCP, or offered a version we do not speak).
    pub(crate) fn accept_initial(
        &mut self,
        now: Instant,
        local: SocketAddr,
        syn: &TcpRepr,
        mp_capable: Option<MpCapable>,
        iss: u32,
    ) -> SubflowId {
        let sf = Subflow::accept(now, self.cfg.subflow.clone(), local, self.remote, iss, syn);
        let id = self.alloc_subflow_id();
        let mut e = SubflowEntry::new(id, sf, None, InterfaceKind::Other);
        e.initial = true;
        match mp_capable {
            Some(mpc) if self.cfg.mptcp => {
                self.checksum = self.cfg.checksum || mpc.flags.contains(MpCapableFlags::A);
            }
            _ => {
                self.mode = Mode::plain(id);
            }
        }
        self.push_subflow(e);
        id
    }

    /// A connection rebuilt from a SYN cookie: its SYN/ACK was sent before it existed.
    pub(crate) fn syn_ack_sent_statelessly(&mut self, now: Instant) {
        if let Some(e) = self.subflows.first_mut() {
            e.sf.syn_sent_before(now);
        }
    }

    /// The client side: a new subflow with MP_JOIN.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_join(
        &mut self,
        now: Instant,
        path: PathId,
        kind: InterfaceKind,
        local: SocketAddr,
        remote: SocketAddr,
        local_addr_id: u8,
        backup: bool,
        rng: &mut dyn Random,
    ) -> SubflowId {
        let sf = Subflow::connect(now, self.cfg.subflow.clone(), local, remote, rng.next_u32());
        let id = self.alloc_subflow_id();
        let mut e = SubflowEntry::new(id, sf, Some(path), kind);
        e.local_addr_id = local_addr_id;
        e.backup_local = backup;
        e.join = Some(JoinState {
            local_nonce: rng.next_u32(),
            remote_nonce: 0,
            awaiting_ack: false,
            third_ack_at: None,
            attempts: 0,
        });
        self.push_subflow(e);
        id
    }

    /// The server side: a SYN with MP_JOIN for this connection's token. Refuses (with the
    /// MP_TCPRST reason to send) when no more subflows are allowed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accept_join(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr,
        backup: bool,
        addr_id: u8,
        remote_nonce: u32,
        replaces: Option<SubflowId>,
        rng: &mut dyn Random,
    ) -> Result<SubflowId, TcpRstReason> {
        if !self.is_mptcp() || self.state == ConnState::Closed || self.keys.remote.is_none() {
            return Err(TcpRstReason::MptcpError);
        }
        // Only verified subflows count toward the limit: joins still in their handshake
        // (unverified, possibly forged by someone who saw the token) have their own cap.
        let live = self
            .subflows
            .iter()
            .filter(|e| e.sf.state.is_synchronized() && !e.sf.is_closed())
            .count();
        let half_open = self
            .subflows
            .iter()
            .filter(|e| e.sf.state == State::SynReceived)
            .count();
        if live >= self.cfg.max_subflows || half_open >= MAX_HALF_OPEN_JOINS {
            return Err(TcpRstReason::AdministrativelyProhibited);
        }
        let sf = Subflow::accept(
            now,
            self.cfg.subflow.clone(),
            local,
            remote,
            rng.next_u32(),
            syn,
        );
        let id = self.alloc_subflow_id();
        let mut e = SubflowEntry::new(id, sf, None, InterfaceKind::Other);
        e.remote_addr_id = addr_id;
        e.backup_remote = backup;
        e.replaces = replaces;
        e.local_addr_id = self.paths.server_addr_id(local);
        e.join = Some(JoinState {
            local_nonce: rng.next_u32(),
            remote_nonce,
            awaiting_ack: false,
            third_ack_at: None,
            attempts: 0,
        });
        self.push_subflow(e);
        Ok(id)
    }

    /// MPTCP checks on segments that complete a handshake, before TCP processing.
    pub(crate) fn handshake_segment(&mut self, idx: usize, seg: &TcpRepr) -> Verdict {
        let state = self.subflows[idx].sf.state;
        let syn_ack =
            seg.flags.contains(wire::TcpFlags::SYN) && seg.flags.contains(wire::TcpFlags::ACK);
        if !self.subflows[idx].sf.completes_handshake(seg) {
            // Not an answer to our SYN (or SYN/ACK): TCP processing drops it, and its
            // MPTCP options must not act (a forged SYN/ACK must not reset the subflow).
            return Verdict::Continue;
        }
        match (state, self.subflows[idx].join.is_some()) {
            (State::SynSent, false) if syn_ack => self.client_got_syn_ack(idx, seg),
            (State::SynSent, true) if syn_ack => self.joiner_got_syn_ack(idx, seg),
            (State::SynReceived, false) if is_ack_only(seg) => self.server_got_third_ack(idx, seg),
            (State::SynReceived, true) if is_ack_only(seg) => self.joinee_got_third_ack(idx, seg),
            _ => Verdict::Continue,
        }
    }

    fn client_got_syn_ack(&mut self, idx: usize, seg: &TcpRepr) -> Verdict {
        if self.mode.fallback().is_some() {
            return Verdict::Continue;
        }
        let key = seg.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::MpCapable(MpCapable {
                flags,
                keys: MpCapableKeys::SynAck { sender_key },
                ..
            }) => Some((*sender_key, *flags)),
            _ => None,
        });
        match key {
            Some((k, flags)) => {
                self.set_remote_key(k);
                self.checksum = self.cfg.checksum || flags.contains(MpCapableFlags::A);
                // C: the server takes joins only at the addresses it announces.
                self.paths.initial_join_denied = flags.contains(MpCapableFlags::C);
            }
            None if self.cfg.allow_fallback => self.fall_back_at_start(idx),
            None => {
                self.close(super::CloseError::ConnectFailed);
                return Verdict::Reset(TcpRstReason::MptcpError);
            }
        }
        Verdict::Continue
    }

    fn joiner_got_syn_ack(&mut self, idx: usize, seg: &TcpRepr) -> Verdict {
        let Some(remote_key) = self.keys.remote else {
            return Verdict::Reset(TcpRstReason::MptcpError);
        };
        let local_key = self.keys.local;
        let e = &mut self.subflows[idx];
        let Some(join) = e.join.as_mut() else {
            return Verdict::Continue;
        };
        let synack = seg.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::MpJoin(MpJoin::SynAck {
                backup,
                addr_id,
                hmac,
                nonce,
            }) => Some((*backup, *addr_id, *hmac, *nonce)),
            _ => None,
        });
        let Some((backup, addr_id, hmac, nonce)) = synack else {
            return Verdict::Reset(TcpRstReason::MptcpError);
        };
        if !wire::verify_join_synack_hmac(remote_key, local_key, nonce, join.local_nonce, hmac) {
            return Verdict::Reset(TcpRstReason::MptcpError);
        }
        join.remote_nonce = nonce;
        join.awaiting_ack = true;
        e.remote_addr_id = addr_id;
        e.backup_remote = backup;
        Verdict::Continue
    }

    fn server_got_third_ack(&mut self, idx: usize, seg: &TcpRepr) -> Verdict {
        if self.mode.fallback().is_some() {
            return Verdict::Continue;
        }
        let keys = seg.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::MpCapable(m) => Some((m.sender_key(), m.receiver_key(), m.keys)),
            _ => None,
        });
        match keys {
            Some((Some(a), Some(b), form)) if b == self.keys.local => {
                self.set_remote_key(a);
                self.fully_established = true;
                if let MpCapableKeys::AckData {
                    data_len, checksum, ..
                } = form
                {
                    // The first data carries its mapping implicitly: data offset 1 at
                    // subflow offset 1.
                    self.subflows[idx].rx_maps.insert(super::RxMapping {
                        ssn: 1,
                        dsn: 1,
                        len: data_len as u64,
                        checksum,
                        fin: false,
                    });
                }
            }
            _ if seg.options.dss().is_some() => {
                // The client speaks MPTCP but its third ACK (with its key) was lost: we
                // cannot place its data without the key. Wait for the segment that carries
                // MP_CAPABLE (the first data, or an ACK answering our SYN/ACK).
                return Verdict::Drop;
            }
            _ => {
                // MP_CAPABLE stripped (or keys that are not ours): plain TCP.
                self.fall_back_at_start(idx);
            }
        }
        Verdict::Continue
    }

    fn joinee_got_third_ack(&mut self, idx: usize, seg: &TcpRepr) -> Verdict {
        let Some(remote_key) = self.keys.remote else {
            return Verdict::Reset(TcpRstReason::MptcpError);
        };
        let local_key = self.keys.local;
        let e = &mut self.subflows[idx];
        let Some(join) = e.join else {
            return Verdict::Continue;
        };
        let hmac = seg.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::MpJoin(MpJoin::Ack { hmac }) => Some(*hmac),
            _ => None,
        });
        match hmac {
            Some(h)
                if wire::verify_join_ack_hmac(
                    remote_key,
                    local_key,
                    join.remote_nonce,
                    join.local_nonce,
                    &h,
                ) =>
            {
                // Acknowledge the third ACK at once: the joiner may not send data before.
                e.sf.request_ack();
                e.join = None;
                Verdict::Continue
            }
            _ => Verdict::Reset(TcpRstReason::MptcpError),
        }
    }

    pub(crate) fn set_remote_key(&mut self, key: u64) {
        self.keys.remote = Some(key);
        self.keys.remote_token = wire::token(key);
        self.keys.remote_idsn = wire::idsn(key);
        if self.mode == Mode::Negotiating {
            self.mode = Mode::Mptcp;
        }
    }

    /// The peer (or the path) does not do MPTCP: continue as plain TCP on this subflow.
    pub(crate) fn fall_back_at_start(&mut self, idx: usize) {
        let id = self.subflows[idx].id;
        self.mode = Mode::plain(id);
        self.timers.stop(Timer::DataFinRtx);
        self.fell_back_reported = true;
        self.events.push_back(Event::FellBackToTcp);
    }

    /// The initial subflow (or a join) became established.
    pub(crate) fn on_subflow_established(&mut self, now: Instant, idx: usize) {
        let e = &mut self.subflows[idx];
        if self.state == ConnState::Connecting && e.initial {
            self.state = ConnState::Established;
            self.events.push_back(Event::Connected);
            if self.role == Role::Client && self.mode.fallback().is_none() {
                // Third ACK with both keys goes out now.
                e.sf.request_ack();
            }
        }
        if let Some(j) = e.join.as_mut()
            && self.role == Role::Client
            && j.awaiting_ack
        {
            j.third_ack_at = Some(now);
            e.sf.request_ack();
        }
        self.timers.stop(Timer::NoPath);
        self.report_path_up(idx);
    }

    pub(crate) fn report_path_up(&mut self, idx: usize) {
        let e = &mut self.subflows[idx];
        if e.phase != SubflowPhase::Opening || e.join.is_some_and(|j| j.awaiting_ack) {
            return;
        }
        e.phase = SubflowPhase::Up;
        if let Some(path) = e.path {
            let kind = e.kind;
            self.events.push_back(Event::PathUp { path, kind });
        }
    }
}

fn is_ack_only(seg: &TcpRepr) -> bool {
    use wire::TcpFlags;
    seg.flags.contains(TcpFlags::ACK)
        && !seg.flags.contains(TcpFlags::SYN)
        && !seg.flags.contains(TcpFlags::RST)
}
