//! The endpoint: owns connections, demultiplexes incoming segments to them (by address pair,
//! or by token for MP_JOIN), accepts new connections when listening, and answers stray
//! segments with RSTs.
//!
//! After every call into a connection the endpoint settles it (see `settle`): drains the
//! events it queued for the endpoint (address pairs to route) and for the application, and
//! files its earliest timer in `deadlines`, so nothing ever walks every connection
//! (docs/ARCHITECTURE.md, "Timers and the endpoint").

mod deadlines;
mod half_open;
pub mod hash;

use crate::conn::{Connection, ConnectionConfig, EndpointEvent, Event, Role, SubflowId, Transmit};
use crate::frame::Framing;
use crate::path::{InterfaceKind, PathSpec};
use crate::random::Random;
use crate::seq::to_wire;
use crate::syn_cookie::SynCookies;
use crate::wire::{
    self, MpJoin, MpTcpRst, MptcpOption, SeqNum, TcpFlags, TcpOptions, TcpRepr, TcpRstReason,
};
use deadlines::Deadlines;
use half_open::HalfOpen;
use hash::{HandleMap, KeyedMap};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// Refers to a connection of an endpoint. Handles are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub u64);

/// Settings of an [`Endpoint`]: its role, framing, limits and the connection defaults.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// How segments are carried: TCP-in-UDP datagrams or whole TCP segments (raw sockets).
    pub framing: Framing,
    /// Settings for connections this endpoint opens or accepts.
    pub connection: ConnectionConfig,
    /// Accept incoming connections (server role).
    pub listen: bool,
    /// Most connections at once; SYNs beyond are refused with a RST.
    pub max_connections: usize,
    /// Most connections still in their handshake (SYN flood protection).
    pub max_half_open: usize,
    /// Addresses a server announces to every client (ADD_ADDR), with their ids. When there
    /// is any, the server takes joins only there and sets the C flag in the SYN/ACKs of
    /// connections that came in anywhere else (see
    /// [`EndpointConfig::announce_arrivals`]; docs/ARCHITECTURE.md, "Announce and the C
    /// flag").
    pub announce: Vec<(u8, SocketAddr)>,
    /// Where segments sent to the announced addresses arrive, when a NAT in front of the
    /// server (a balancer's static DNAT) rewrites them; an unspecified IP stands for any
    /// address with that port. Joins are taken here and at the announced addresses.
    pub announce_arrivals: Vec<SocketAddr>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            framing: Framing::TcpInUdp,
            connection: ConnectionConfig::default(),
            listen: false,
            max_connections: 4096,
            max_half_open: 256,
            announce: Vec::new(),
            announce_arrivals: Vec::new(),
        }
    }
}

/// Why a segment was not handed to any connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dropped {
    /// The segment could not be parsed.
    Malformed(wire::WireError),
    /// No connection matched its address pair, and it did not open one (answered with a RST
    /// unless it was one).
    NoConnection,
    /// An MP_JOIN named a token no connection has, or its connection refused the join.
    UnknownToken,
    /// A join at an address the endpoint does not announce, while it announces one (the
    /// C flag told the client not to send it).
    JoinNotAnnounced,
    /// A SYN arrived while the endpoint held its most connections (`max_connections`).
    TooManyConnections,
}

/// Counters over the endpoint's life, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Segments handed to `handle_segment`.
    pub segments_in: u64,
    /// Segments `poll_transmit` returned (connections' segments, RSTs and cookie SYN/ACKs).
    pub segments_out: u64,
    /// Segments that could not be parsed.
    pub malformed: u64,
    /// Segments that matched no connection and opened none.
    pub no_connection: u64,
    /// RSTs the endpoint itself sent (for segments matching nothing, or refused SYNs and
    /// joins).
    pub rsts_sent: u64,
    /// Connections accepted by a listening endpoint.
    pub accepted: u64,
    /// SYNs refused because the endpoint was full.
    pub refused: u64,
    /// Half-open connections reset to make room for newer SYNs (SYN-flood defence).
    pub half_open_evicted: u64,
    /// MP_JOIN SYNs refused, for any reason: unknown token, not at an announced address,
    /// or the connection would not take the subflow.
    pub joins_rejected: u64,
    /// Of `joins_rejected`, those that arrived at an address this endpoint does not
    /// announce (the shared listening address behind a balancer): with announcements,
    /// joins the C flag told the client not to send (refused "administratively
    /// prohibited"); without, mostly joins for connections another instance owns.
    pub joins_rejected_unannounced: u64,
    /// SYNs answered statelessly (the half-open queue was under pressure).
    pub syn_cookies_sent: u64,
    /// Connections rebuilt from a valid cookie in the handshake's final ACK.
    pub syn_cookies_accepted: u64,
    /// Times the endpoint re-read a connection's earliest timer (after a call into it):
    /// proportional to the work done, not to the number of idle connections.
    pub deadline_reads: u64,
    /// Connections whose timers `handle_timeout` handled.
    pub timer_wakes: u64,
}

/// A connection with the endpoint's bookkeeping about it.
struct Slot {
    conn: Connection,
    /// In the `ready` queue.
    queued: bool,
    /// Touched since its deadline was last filed (see `touched`).
    touched: bool,
    /// Counted in `half_open` (an accepted connection still in its handshake): settling an
    /// established connection then costs no lookup there.
    half_open: bool,
}

/// Half-open connections one source address may hold before its further SYNs are answered
/// with cookies.
const HALF_OPEN_PER_SOURCE: usize = 16;
/// Stateless SYN/ACKs waiting to go out, at most.
const MAX_QUEUED_COOKIES: usize = 256;

/// Many connections behind one set of addresses: routes each incoming segment to its connection
/// (by address pair, or by token for an MP_JOIN), accepts new ones when listening, and collects
/// what all of them send, their timers and events (docs/ARCHITECTURE.md, "Timers and the
/// endpoint").
pub struct Endpoint {
    cfg: EndpointConfig,
    rng: Box<dyn Random>,
    conns: HandleMap<Slot>,
    /// Each connection's earliest timer.
    deadlines: Deadlines,
    /// Connections the application may have changed through `connection_mut` or that sent
    /// since they were last settled.
    touched: Vec<ConnectionHandle>,
    /// Server connections still in their handshake.
    half_open: HalfOpen,
    next_handle: u64,
    by_tuple: KeyedMap<(SocketAddr, SocketAddr), (ConnectionHandle, SubflowId)>,
    by_token: KeyedMap<u32, ConnectionHandle>,
    /// RSTs to send for segments that matched nothing (or refused joins).
    rsts: VecDeque<(SocketAddr, SocketAddr, TcpRepr)>,
    /// Connections that may have something to send, in round-robin order.
    ready: VecDeque<ConnectionHandle>,
    events: VecDeque<(ConnectionHandle, Event)>,
    accepted: VecDeque<ConnectionHandle>,
    stats: EndpointStats,
    cookies: SynCookies,
    /// Encoded stateless SYN/ACKs to send.
    cookie_out: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    last_cookie_at: Option<Instant>,
}

impl Endpoint {
    /// An endpoint with settings `cfg`; `rng` supplies keys, nonces and initial sequence
    /// numbers.
    pub fn new(cfg: EndpointConfig, mut rng: Box<dyn Random>) -> Self {
        let cookies = SynCookies::new(&mut *rng);
        Self {
            cookies,
            cookie_out: VecDeque::new(),
            last_cookie_at: None,
            cfg,
            rng,
            conns: HandleMap::default(),
            deadlines: Deadlines::default(),
            touched: Vec::new(),
            half_open: HalfOpen::default(),
            next_handle: 1,
            by_tuple: KeyedMap::default(),
            by_token: KeyedMap::default(),
            rsts: VecDeque::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            accepted: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// The settings the endpoint was created with.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// A copy of the endpoint's counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Connections held, closed ones not yet released included.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn new_handle(&mut self) -> ConnectionHandle {
        let h = ConnectionHandle(self.next_handle);
        self.next_handle += 1;
        h
    }

    /// A key whose token no other connection of this endpoint uses (RFC 8684 §3.1).
    fn unique_key(&mut self) -> u64 {
        loop {
            let key = self.rng.next_u64();
            if !self.by_token.contains_key(&wire::token(key)) {
                return key;
            }
        }
    }

    /// Opens a connection to `remote` from `path` (the first path; more can be added).
    pub fn connect(
        &mut self,
        now: Instant,
        cfg: Option<ConnectionConfig>,
        path: PathSpec,
        remote: SocketAddr,
    ) -> ConnectionHandle {
        let cfg = cfg.unwrap_or_else(|| self.cfg.connection.clone());
        let key = self.unique_key();
        let h = self.new_handle();
        let mut conn = Connection::new(now, Role::Client, cfg, self.cfg.framing, key, remote);
        conn.add_path(now, path.clone());
        let iss = self.rng.next_u32();
        conn.open_initial(now, Some(path.id), path.kind, path.local, iss);
        self.by_token.insert(conn.local_token(), h);
        self.insert(h, conn, false);
        self.after_conn_input(h);
        h
    }

    fn insert(&mut self, h: ConnectionHandle, conn: Connection, half_open: bool) {
        let slot = Slot {
            conn,
            queued: false,
            touched: false,
            half_open,
        };
        self.conns.insert(h, slot);
    }

    /// Read access to a connection (state, statistics); `None` once released.
    pub fn connection(&self, h: ConnectionHandle) -> Option<&Connection> {
        self.conns.get(&h).map(|s| &s.conn)
    }

    /// Mutable access for application reads and writes; the connection is then polled.
    pub fn connection_mut(&mut self, h: ConnectionHandle) -> Option<&mut Connection> {
        if self.conns.contains_key(&h) {
            self.mark_ready(h);
            self.touch(h);
        }
        self.conns.get_mut(&h).map(|s| &mut s.conn)
    }

    /// Connections accepted by a listening endpoint, oldest first.
    pub fn accept(&mut self) -> Option<ConnectionHandle> {
        self.accepted.pop_front()
    }

    /// Forgets a closed connection (its subflows are reset if still open).
    pub fn release(&mut self, h: ConnectionHandle) {
        if let Some(Slot {
            mut conn,
            half_open,
            ..
        }) = self.conns.remove(&h)
        {
            if !conn.is_closed() {
                conn.abort();
            }
            self.by_token.remove(&conn.local_token());
            // Pairs of subflows already gone, then those of the ones left.
            while let Some(ev) = conn.poll_endpoint_event() {
                route(&mut self.by_tuple, h, ev);
            }
            for (l, r, _) in conn.tuples() {
                if self.by_tuple.get(&(l, r)).is_some_and(|v| v.0 == h) {
                    self.by_tuple.remove(&(l, r));
                }
            }
            self.deadlines.set(h, None);
            if half_open {
                self.half_open.remove(h);
            }
        }
    }

    fn mark_ready(&mut self, h: ConnectionHandle) {
        if let Some(slot) = self.conns.get_mut(&h)
            && !slot.queued
        {
            slot.queued = true;
            self.ready.push_back(h);
        }
    }

    /// Notes that `h` changed outside the endpoint's sight: it is settled before the next
    /// deadline is read.
    fn touch(&mut self, h: ConnectionHandle) {
        if let Some(slot) = self.conns.get_mut(&h)
            && !slot.touched
        {
            slot.touched = true;
            self.touched.push(h);
        }
    }

    fn settle_touched(&mut self) {
        for h in std::mem::take(&mut self.touched) {
            self.settle(h);
        }
    }

    /// Brings the endpoint's view of `h` up to date after a call into it: the address
    /// pairs it routes, its events, whether it is still half-open, and its earliest timer.
    fn settle(&mut self, h: ConnectionHandle) {
        let Some(slot) = self.conns.get_mut(&h) else {
            return;
        };
        slot.touched = false;
        let c = &mut slot.conn;
        while let Some(ev) = c.poll_endpoint_event() {
            route(&mut self.by_tuple, h, ev);
        }
        while let Some(e) = c.poll_event() {
            self.events.push_back((h, e));
        }
        if slot.half_open && c.state() != crate::conn::ConnState::Connecting {
            slot.half_open = false;
            self.half_open.remove(h);
        }
        c.refresh_timers();
        self.stats.deadline_reads += 1;
        self.deadlines.set(h, c.poll_timeout());
    }

    /// Handles one received datagram (TCP-in-UDP payload) or raw TCP segment sent by
    /// `remote` to `local`.
    pub fn handle_segment(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Dropped> {
        self.stats.segments_in += 1;
        let (repr, off) = match self.cfg.framing.decode(bytes, local, remote) {
            Ok(x) => x,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(Dropped::Malformed(e));
            }
        };
        let payload = &bytes[off..];
        if let Some(&(h, id)) = self.by_tuple.get(&(local, remote)) {
            if self.is_new_join_on_old_tuple(h, id, &repr) {
                // The peer re-creates a subflow from the same address and port (UDP
                // carrier: one socket per path). A closed old one goes at once; a live one
                // stays until the new join's HMAC proves the SYN genuine.
                let closed = self
                    .conns
                    .get(&h)
                    .map(|s| &s.conn)
                    .is_some_and(|c| c.subflow_is_closed(id));
                if closed {
                    if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
                        c.drop_subflow(now, id);
                    }
                    self.settle(h);
                    return self.on_syn(now, local, remote, &repr, None);
                }
                return self.on_syn(now, local, remote, &repr, Some(id));
            }
            let id = self
                .conns
                .get(&h)
                .map(|s| &s.conn)
                .map_or(id, |c| c.route(id, &repr));
            if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
                if c.subflow_is_closed(id) && !repr.flags.contains(TcpFlags::RST) {
                    // RFC 9293 §3.10.7.1: a closed subflow answers with a RST the sender
                    // accepts (a challenge ACK for our own RST lands here, say).
                    self.queue_rst(local, remote, &repr, payload.len(), None);
                    return Ok(());
                }
                c.handle_segment(now, id, &repr, payload);
                c.manage_paths(now, &mut *self.rng);
                self.after_conn_input(h);
                return Ok(());
            }
        }
        if repr.flags.contains(TcpFlags::SYN) && !repr.flags.contains(TcpFlags::ACK) {
            return self.on_syn(now, local, remote, &repr, None);
        }
        if self.cfg.listen && self.accept_cookie(now, local, remote, &repr, payload) {
            return Ok(());
        }
        self.stats.no_connection += 1;
        // While cookies are out, a client whose cookie ACK was lost sends later segments
        // that cannot be matched: a RST would kill it, silence lets it resend the first.
        if !repr.flags.contains(TcpFlags::RST) && !self.cookies_live(now) {
            self.queue_rst(local, remote, &repr, payload.len(), None);
        }
        Err(Dropped::NoConnection)
    }

    /// A SYN with MP_JOIN for the same connection, on the address pair of a subflow that is
    /// past its handshake (not a retransmission of that subflow's own SYN).
    fn is_new_join_on_old_tuple(&self, h: ConnectionHandle, id: SubflowId, seg: &TcpRepr) -> bool {
        if !seg.flags.contains(TcpFlags::SYN) || seg.flags.contains(TcpFlags::ACK) {
            return false;
        }
        let Some(c) = self.conns.get(&h).map(|s| &s.conn) else {
            return false;
        };
        let joins_us = seg.options.mptcp.iter().any(|o| {
            matches!(o, MptcpOption::MpJoin(MpJoin::Syn { token, .. }) if *token == c.local_token())
        });
        joins_us && c.subflow_replaced_by_syn(id, seg.seq.0) && !c.replacement_pending(id)
    }

    /// After a call into `h`: settled, and polled for something to send.
    fn after_conn_input(&mut self, h: ConnectionHandle) {
        self.settle(h);
        self.mark_ready(h);
    }

    fn on_syn(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr,
        replaces: Option<SubflowId>,
    ) -> Result<(), Dropped> {
        let join = syn.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::MpJoin(MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce,
            }) => Some((*backup, *addr_id, *token, *nonce)),
            _ => None,
        });
        if let Some((backup, addr_id, token, nonce)) = join {
            let announced = self.is_announced(local);
            if !announced && !self.cfg.announce.is_empty() {
                // Our SYN/ACKs carried C: joins belong at the announced addresses.
                self.refuse_join(
                    local,
                    remote,
                    syn,
                    false,
                    TcpRstReason::AdministrativelyProhibited,
                );
                return Err(Dropped::JoinNotAnnounced);
            }
            let Some(&h) = self.by_token.get(&token) else {
                self.refuse_join(local, remote, syn, announced, TcpRstReason::MptcpError);
                return Err(Dropped::UnknownToken);
            };
            let rng = &mut *self.rng;
            let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) else {
                return Err(Dropped::UnknownToken);
            };
            match c.accept_join(
                now, local, remote, syn, backup, addr_id, nonce, replaces, rng,
            ) {
                Ok(_) => {
                    self.after_conn_input(h);
                    return Ok(());
                }
                Err(reason) => {
                    self.refuse_join(local, remote, syn, announced, reason);
                    return Err(Dropped::UnknownToken);
                }
            }
        }
        if !self.cfg.listen {
            self.queue_rst(local, remote, syn, 0, None);
            return Err(Dropped::NoConnection);
        }
        let half_open = self.half_open.len();
        let from_source = self.half_open.count_from(remote.ip());
        if half_open >= self.cfg.max_half_open / 2 || from_source >= HALF_OPEN_PER_SOURCE {
            // Under pressure (a flood, or one source opening many): no state until the
            // client proves it can receive our SYN/ACK.
            self.send_cookie(now, local, remote, syn);
            return Ok(());
        }
        if half_open >= self.cfg.max_half_open && self.conns.len() < self.cfg.max_connections {
            // A full SYN queue drops its oldest entry (RFC 4987 §3.4) rather than refuse: a
            // flood of SYNs that never complete then cannot lock honest clients out.
            if let Some(old) = self.half_open.oldest() {
                if let Some(c) = self.conns.get_mut(&old).map(|s| &mut s.conn) {
                    c.abort();
                }
                self.after_conn_input(old);
                self.stats.half_open_evicted += 1;
            }
        }
        if self.conns.len() >= self.cfg.max_connections || self.cfg.max_half_open == 0 {
            self.stats.refused += 1;
            self.queue_rst(local, remote, syn, 0, Some(TcpRstReason::LackOfResources));
            return Err(Dropped::TooManyConnections);
        }
        let mp_capable = syn.options.mp_capable().copied().filter(|m| m.version >= 1);
        let key = self.unique_key();
        let iss = self.rng.next_u32();
        let (conn, _) = self.server_connection(now, local, remote, syn, mp_capable, key, iss);
        let h = self.install(conn);
        self.after_conn_input(h);
        Ok(())
    }

    /// Answers a join SYN with MP_TCPRST `reason` and a RST, and counts it.
    fn refuse_join(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr,
        announced: bool,
        reason: TcpRstReason,
    ) {
        self.stats.joins_rejected += 1;
        if !announced {
            self.stats.joins_rejected_unannounced += 1;
        }
        self.queue_rst(local, remote, syn, 0, Some(reason));
    }

    /// Whether segments to `local` were sent to an address this endpoint announces.
    fn is_announced(&self, local: SocketAddr) -> bool {
        let arrives =
            |a: &SocketAddr| *a == local || (a.ip().is_unspecified() && a.port() == local.port());
        self.cfg.announce.iter().any(|(_, a)| *a == local)
            || self.cfg.announce_arrivals.iter().any(arrives)
    }

    /// Announces `addr` (ADD_ADDR id `id`) to every connection accepted from now on; its
    /// segments arrive at `arrives_at` (see [`EndpointConfig::announce_arrivals`]).
    pub fn announce(&mut self, id: u8, addr: SocketAddr, arrives_at: SocketAddr) {
        if !self.cfg.announce.iter().any(|&(i, a)| i == id || a == addr) {
            self.cfg.announce.push((id, addr));
        }
        if arrives_at != addr && !self.cfg.announce_arrivals.contains(&arrives_at) {
            self.cfg.announce_arrivals.push(arrives_at);
        }
    }

    /// A server connection for `syn`, with the addresses this endpoint announces.
    #[allow(clippy::too_many_arguments)]
    fn server_connection(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr,
        mp_capable: Option<crate::wire::MpCapable>,
        key: u64,
        iss: u32,
    ) -> (Connection, SubflowId) {
        let mut conn = Connection::new(
            now,
            Role::Server,
            self.cfg.connection.clone(),
            self.cfg.framing,
            key,
            remote,
        );
        let id = conn.accept_initial(now, local, syn, mp_capable, iss);
        for &(aid, addr) in &self.cfg.announce {
            if addr != local {
                conn.announce_address(aid, addr);
            }
        }
        // C exactly when the address the SYN came to takes no joins (see `on_syn`): a
        // client that came in at an announced address may join it there.
        if !self.cfg.announce.is_empty() && !self.is_announced(local) {
            conn.deny_initial_join();
        }
        (conn, id)
    }

    /// Takes an accepted connection in: demultiplexed by token, offered to `accept`.
    fn install(&mut self, conn: Connection) -> ConnectionHandle {
        let h = self.new_handle();
        self.by_token.insert(conn.local_token(), h);
        let half_open = conn.state() == crate::conn::ConnState::Connecting;
        if half_open {
            self.half_open.insert(h, conn.remote().ip());
        }
        self.insert(h, conn, half_open);
        self.stats.accepted += 1;
        self.accepted.push_back(h);
        h
    }

    /// Whether a cookie sent recently may still come back.
    fn cookies_live(&self, now: Instant) -> bool {
        self.last_cookie_at
            .is_some_and(|t| now < t + crate::syn_cookie::VALIDITY)
    }

    /// Answers `syn` with a SYN/ACK whose ISS is a cookie, keeping nothing.
    fn send_cookie(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, syn: &TcpRepr) {
        if self.cookie_out.len() >= MAX_QUEUED_COOKIES {
            return;
        }
        let (iss, cookie) = self.cookies.encode(now, local, remote, syn);
        // The SYN as the cookie will remember it, so the SYN/ACK promises nothing more.
        let remembered = cookie.syn(syn, syn.seq.0);
        let mp_capable = syn.options.mp_capable().copied().filter(|m| m.version >= 1);
        let key = self.cookies.key(local, remote, iss);
        let (mut conn, _) =
            self.server_connection(now, local, remote, &remembered, mp_capable, key, iss);
        let mut buf = vec![0u8; 1500];
        if let Some(t) = conn.poll_transmit(now, &mut buf) {
            buf.truncate(t.len);
            self.cookie_out.push_back((t.local, t.remote, buf));
            self.stats.syn_cookies_sent += 1;
            self.last_cookie_at = Some(now);
        }
    }

    /// An ACK for no connection: if it completes a cookie handshake, the connection is
    /// rebuilt from the cookie and the ACK handed to it. Returns whether that happened.
    fn accept_cookie(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpRepr,
        payload: &[u8],
    ) -> bool {
        if !seg.flags.contains(TcpFlags::ACK)
            || seg.flags.contains(TcpFlags::RST)
            || seg.flags.contains(TcpFlags::SYN)
            || !self.cookies_live(now)
        {
            return false;
        }
        let iss = seg.ack.0.wrapping_sub(1);
        let client_isn = seg.seq.0.wrapping_sub(1);
        let Some(cookie) = self.cookies.decode(now, local, remote, client_isn, iss) else {
            return false;
        };
        let mp_capable = seg
            .options
            .mp_capable()
            .copied()
            .filter(|m| m.version >= 1)
            .map(|m| crate::wire::MpCapable {
                keys: crate::wire::MpCapableKeys::Syn,
                ..m
            });
        let key = self.cookies.key(local, remote, iss);
        if self.conns.len() >= self.cfg.max_connections
            || self.by_token.contains_key(&wire::token(key))
        {
            return false;
        }
        let syn = cookie.syn(seg, client_isn);
        let (mut conn, id) = self.server_connection(now, local, remote, &syn, mp_capable, key, iss);
        // Our SYN/ACK went out statelessly: mark it sent (and give no RTT sample).
        conn.syn_ack_sent_statelessly(now);
        let h = self.install(conn);
        self.stats.syn_cookies_accepted += 1;
        if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
            c.handle_segment(now, id, seg, payload);
            c.manage_paths(now, &mut *self.rng);
        }
        self.after_conn_input(h);
        true
    }

    /// RFC 9293 §3.10.7.1: a RST that the sender of `seg` will accept.
    fn queue_rst(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpRepr,
        payload_len: usize,
        reason: Option<TcpRstReason>,
    ) {
        if self.rsts.len() >= 64 {
            return; // Under a flood, answering everything only amplifies it.
        }
        let mut options = TcpOptions::default();
        if let Some(reason) = reason {
            let _ = options.push_mptcp(MptcpOption::MpTcpRst(MpTcpRst { flags: 0, reason }));
        }
        let (seq, ack, flags) = if seg.flags.contains(TcpFlags::ACK) {
            (seg.ack, SeqNum(0), TcpFlags::RST)
        } else {
            let len = seg.segment_len(payload_len) as u64;
            (
                SeqNum(0),
                SeqNum(to_wire(seg.seq.0, len)),
                TcpFlags::RST | TcpFlags::ACK,
            )
        };
        let rst = TcpRepr {
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq,
            ack,
            flags,
            window: 0,
            urgent: 0,
            options,
        };
        self.rsts.push_back((local, remote, rst));
    }

    /// The next datagram or segment to send, written into `buf`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while let Some((local, remote, bytes)) = self.cookie_out.pop_front() {
            if let Some(dst) = buf.get_mut(..bytes.len()) {
                dst.copy_from_slice(&bytes);
                self.stats.segments_out += 1;
                return Some(Transmit {
                    local,
                    remote,
                    len: bytes.len(),
                });
            }
        }
        if let Some((local, remote, rst)) = self.rsts.pop_front()
            && let Ok(len) = self.cfg.framing.encode(&rst, 0, |_| {}, local, remote, buf)
        {
            self.stats.rsts_sent += 1;
            self.stats.segments_out += 1;
            return Some(Transmit { local, remote, len });
        }
        while let Some(h) = self.ready.pop_front() {
            let Some(slot) = self.conns.get_mut(&h) else {
                continue;
            };
            if let Some(t) = slot.conn.poll_transmit(now, buf) {
                // Keep it at the back of the queue: it may have more. Sending armed timers
                // and may have retired subflows: settled before the next deadline is read.
                self.ready.push_back(h);
                self.stats.segments_out += 1;
                self.touch(h);
                return Some(t);
            }
            slot.queued = false;
            self.settle(h);
        }
        None
    }

    /// The earliest timer of any connection.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.settle_touched();
        self.deadlines.next()
    }

    /// Handles the timers due at `now`; only connections with one due are visited.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.settle_touched();
        for h in self.deadlines.take_due(now) {
            if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
                self.stats.timer_wakes += 1;
                c.handle_timeout(now, &mut *self.rng);
            }
            self.after_conn_input(h);
        }
    }

    /// The next event from any connection.
    pub fn poll_event(&mut self) -> Option<(ConnectionHandle, Event)> {
        self.events.pop_front()
    }

    /// Adds a local path to a connection (a new interface); a subflow follows.
    pub fn add_path(&mut self, now: Instant, h: ConnectionHandle, path: PathSpec) {
        if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
            c.add_path(now, path);
            c.manage_paths(now, &mut *self.rng);
        }
        self.after_conn_input(h);
    }

    /// The interface behind `path` is gone: its subflows are dropped at once.
    pub fn remove_path(&mut self, now: Instant, h: ConnectionHandle, path: crate::path::PathId) {
        if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
            c.remove_path(now, path);
            // A lazy backup may be needed now.
            c.manage_paths(now, &mut *self.rng);
        }
        self.after_conn_input(h);
    }

    /// Quality hints for `path` on connection `h` (weak signal, metered).
    pub fn interface_quality(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        path: crate::path::PathId,
        q: crate::conn::PathQuality,
    ) {
        if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
            c.interface_quality(now, path, q);
        }
        self.after_conn_input(h);
    }

    /// Changes the service type of a live connection.
    pub fn set_policy(&mut self, now: Instant, h: ConnectionHandle, policy: crate::policy::Policy) {
        if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
            c.set_policy(now, policy);
            c.manage_paths(now, &mut *self.rng);
        }
        self.after_conn_input(h);
    }

    /// Asks the peer to treat `path`'s subflows as backup (MP_PRIO), and honours it locally.
    pub fn set_path_backup(
        &mut self,
        h: ConnectionHandle,
        path: crate::path::PathId,
        backup: bool,
    ) {
        if let Some(c) = self.conns.get_mut(&h).map(|s| &mut s.conn) {
            c.set_path_backup(path, backup);
        }
        self.after_conn_input(h);
    }

    /// The connection whose subflow uses this address pair, with that subflow's path (a
    /// listener's subflows have none).
    pub fn connection_by_tuple(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<(ConnectionHandle, Option<crate::path::PathId>)> {
        let (h, id) = *self.by_tuple.get(&(local, remote))?;
        let c = self.conns.get(&h).map(|s| &s.conn)?;
        let path = c.index_of(id).and_then(|i| c.subflows[i].path);
        Some((h, path))
    }

    /// Handles for every live connection.
    pub fn handles(&self) -> Vec<ConnectionHandle> {
        self.conns.keys().copied().collect()
    }

    /// Interface kind helper for callers that only know a name.
    pub fn kind_of(&self, h: ConnectionHandle, path: crate::path::PathId) -> Option<InterfaceKind> {
        self.conns
            .get(&h)
            .map(|s| &s.conn)?
            .paths
            .local(path)
            .map(|p| p.spec.kind)
    }
}

/// Applies what connection `h` said about its address pairs to the demultiplexer.
fn route(
    by_tuple: &mut KeyedMap<(SocketAddr, SocketAddr), (ConnectionHandle, SubflowId)>,
    h: ConnectionHandle,
    ev: EndpointEvent,
) {
    match ev {
        EndpointEvent::TupleAdded { local, remote, id } => {
            by_tuple.insert((local, remote), (h, id));
        }
        EndpointEvent::TupleRemoved { local, remote, id } => {
            // A replacement join may have taken the pair over already.
            if by_tuple.get(&(local, remote)) == Some(&(h, id)) {
                by_tuple.remove(&(local, remote));
            }
        }
    }
}
