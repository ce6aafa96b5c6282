//! One MPTCP connection: keys and tokens, the data sequence space, send and receive buffers,
//! DATA_ACK and DATA_FIN, subflows and the scheduler that feeds them, reinjection, and the
//! fallback to plain TCP.
//!
//! Data sequence numbers are kept as offsets from the IDSN of their direction (the first
//! data byte is offset 1), so that like subflow sequence numbers they never wrap inside the
//! engine; the wire form is `idsn + offset`.

mod events;
mod fallback;
mod handshake;
mod mapping;
mod options;
mod path_manager;
mod paths;
mod placement;
mod recv_buf;
mod rx;
mod send_buf;
mod steering;
mod timer_table;
mod timers;
mod tx;

pub use events::{CloseError, ConnectionStats, Event, PathStats, SwitchReason};
pub use mapping::{MappingTable, RxMapping};
pub use recv_buf::{Inserted, Reassembly};
pub use send_buf::SendBuffer;
pub use steering::PathQuality;
pub use tx::Transmit;

use crate::frame::Framing;
use crate::path::{InterfaceKind, PathId, PathSpec};
use crate::policy::Policy;
use crate::range_set::RangeSet;
use crate::sched::{Scheduler, SchedulerKind};
use crate::subflow::{Subflow, SubflowConfig};
use crate::wire::TcpRstReason;
use fallback::Fallback;
use path_manager::PathManager;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use timer_table::{Timer, TimerTable};

/// Identifies a subflow within its connection (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubflowId(pub u32);

/// Which side of the handshake a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sent the first SYN (MP_CAPABLE).
    Client,
    /// Accepted the connection on a listening endpoint.
    Server,
}

/// Settings of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Settings every subflow of the connection starts with (MSS, timers, congestion control).
    pub subflow: SubflowConfig,
    /// Bytes the application may have written and not yet seen acknowledged at the data level.
    pub send_buffer: usize,
    /// Bytes of the receive window: data received and not yet read, in order or not.
    pub receive_buffer: usize,
    /// Ask for DSS checksums (RFC 8684 §3.3.1). Either side asking turns them on.
    pub checksum: bool,
    /// Most subflows at once, the initial one included.
    pub max_subflows: usize,
    /// How new data is spread over the usable subflows.
    pub scheduler: SchedulerKind,
    /// How paths are used: handover, interactive, aggregate, redundant.
    pub policy: Policy,
    /// Speak plain TCP to a peer that does not answer MP_CAPABLE (otherwise: fail).
    pub allow_fallback: bool,
    /// Open subflows to addresses the peer announces with ADD_ADDR.
    pub join_announced: bool,
    /// How long the connection survives with no subflow at all (waiting for an interface).
    pub no_path_timeout: Duration,
    /// How long the peer may stay silent on every path at once — data or a keepalive
    /// unanswered everywhere — before the connection fails (None: only the retransmission
    /// and keepalive limits of each subflow apply). A dead gateway is reported this fast.
    pub peer_silence_timeout: Option<Duration>,
    /// Offer MPTCP at all (a plain TCP client when false).
    pub mptcp: bool,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        let buffer = 4 << 20;
        Self {
            subflow: SubflowConfig {
                window_scale: SubflowConfig::scale_for(buffer),
                ..SubflowConfig::default()
            },
            send_buffer: buffer,
            receive_buffer: buffer,
            checksum: false,
            max_subflows: 8,
            scheduler: SchedulerKind::MinRtt,
            policy: Policy::default(),
            allow_fallback: true,
            join_announced: true,
            no_path_timeout: Duration::from_secs(30),
            peer_silence_timeout: Some(Duration::from_secs(10)),
            mptcp: true,
        }
    }
}

/// Where the MP_JOIN handshake of a subflow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JoinState {
    pub local_nonce: u32,
    pub remote_nonce: u32,
    /// We sent the third ACK (client) and the peer has not acknowledged it yet: no data
    /// may go on this subflow (RFC 8684 §3.2).
    pub awaiting_ack: bool,
    pub third_ack_at: Option<Instant>,
    pub attempts: u32,
}

/// A subflow's lifecycle as the connection reports it (the TCP states are the subflow's
/// own `State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubflowPhase {
    /// Handshake, or join confirmation, in progress.
    Opening,
    /// Reported up (`Event::PathUp`).
    Up,
    /// Its end was accounted for: what it carried reinjected, `Event::PathDown` if it was
    /// up.
    Closed { was_up: bool },
}

/// A subflow with the MPTCP state that belongs to it.
pub(crate) struct SubflowEntry {
    pub id: SubflowId,
    pub sf: Subflow,
    pub path: Option<PathId>,
    pub kind: InterfaceKind,
    pub initial: bool,
    pub local_addr_id: u8,
    pub remote_addr_id: u8,
    /// We asked the peer to treat this subflow as backup.
    pub backup_local: bool,
    /// The peer asked us to treat it as backup: we send data on it only when nothing else can.
    pub backup_remote: bool,
    pub join: Option<JoinState>,
    pub rx_maps: MappingTable,
    /// Checksum mode: received bytes in subflow order, until their mapping can be verified.
    pub checked_rx: Option<Reassembly>,
    /// Data this subflow must send (redundant copies, reinjection targeted at it).
    pub own_queue: RangeSet,
    /// Data offsets this subflow carried that the peer has not acknowledged at the data
    /// level: what must be reinjected if it dies (a subflow ACK alone proves nothing — the
    /// peer may have dropped the bytes, e.g. on a checksum failure).
    pub carried: RangeSet,
    /// MP_PRIO to send (the backup flag we want the peer to use for this subflow).
    pub prio_pending: Option<bool>,
    /// MP_FAIL to send (data offset of the mapping that failed its checksum).
    pub fail_pending: Option<u64>,
    /// Reason to put in MP_TCPRST when we reset this subflow.
    pub rst_reason: Option<TcpRstReason>,
    /// The RST carries MP_FASTCLOSE (connection abort).
    pub fastclose: bool,
    /// Where the subflow stands as the application sees it.
    pub phase: SubflowPhase,
    /// The silence (last segment received at this time) whose outstanding data was already
    /// reinjected elsewhere.
    pub silence_handled: Option<Instant>,
    /// The peer withdrew this subflow's remote address (REMOVE_ADDR) at this time: a probe
    /// went out, and unless the subflow answers by the deadline it is closed (RFC 8684
    /// §3.4.2).
    pub remove_probe: Option<(Instant, Instant)>,
    /// A join that arrived on the address pair of this live subflow (the peer re-creating
    /// it from the same port): the old one stays until this one's HMAC is verified.
    pub replaces: Option<SubflowId>,
}

impl SubflowEntry {
    /// Data this subflow sent that neither it (SACK) nor the connection (DATA_ACK at
    /// `data_una`) has seen acknowledged: what a reinjection sends again elsewhere.
    pub(crate) fn unacked_data(
        &self,
        data_una: u64,
    ) -> impl Iterator<Item = std::ops::Range<u64>> + '_ {
        self.sf
            .sent
            .iter()
            .filter(|seg| seg.len > 0 && !seg.syn && !seg.sacked)
            .map(|seg| (seg.dsn, seg.dsn + seg.len as u64))
            .filter(move |&(_, end)| end > data_una)
            .map(move |(start, end)| start.max(data_una)..end)
    }

    fn new(id: SubflowId, sf: Subflow, path: Option<PathId>, kind: InterfaceKind) -> Self {
        Self {
            id,
            sf,
            path,
            kind,
            initial: false,
            local_addr_id: 0,
            remote_addr_id: 0,
            backup_local: false,
            backup_remote: false,
            join: None,
            rx_maps: MappingTable::default(),
            checked_rx: None,
            own_queue: RangeSet::new(),
            carried: RangeSet::new(),
            prio_pending: None,
            fail_pending: None,
            rst_reason: None,
            fastclose: false,
            phase: SubflowPhase::Opening,
            silence_handled: None,
            remove_probe: None,
            replaces: None,
        }
    }

    /// May carry data now (established, join confirmed, not closing).
    pub(crate) fn usable(&self) -> bool {
        self.sf.accepts_new_data()
            && !self.join.is_some_and(|j| j.awaiting_ack)
            && self.remove_probe.is_none()
    }
}

/// What a connection tells its endpoint; the endpoint drains these after every call into
/// the connection (docs/ARCHITECTURE.md, "Timers and the endpoint").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointEvent {
    /// Segments on this address pair go to subflow `id`.
    TupleAdded {
        local: SocketAddr,
        remote: SocketAddr,
        id: SubflowId,
    },
    /// Subflow `id` is gone: its address pair no longer leads to it.
    TupleRemoved {
        local: SocketAddr,
        remote: SocketAddr,
        id: SubflowId,
    },
}

/// MPTCP keys and what derives from them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Keys {
    pub local: u64,
    pub remote: Option<u64>,
    pub local_token: u32,
    pub local_idsn: u64,
    pub remote_token: u32,
    pub remote_idsn: u64,
}

/// Whether the connection speaks MPTCP (RFC 8684 §3.1, §3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// MP_CAPABLE offered (client) or accepted (server); the peer's key is not known yet.
    Negotiating,
    /// Both keys known: data goes with DSS mappings on any subflow.
    Mptcp,
    /// Plain TCP on one subflow. `options_read`: the peer still sends MPTCP options there
    /// (the fallback followed an MP_FAIL, whose answer is the peer's infinite mapping);
    /// false when it never did or a middlebox strips them.
    Fallback { fb: Fallback, options_read: bool },
}

impl Mode {
    /// Plain TCP on subflow `id` from its first byte.
    pub(crate) fn plain(id: SubflowId) -> Self {
        Mode::Fallback {
            fb: Fallback::from_start(id),
            options_read: false,
        }
    }

    pub(crate) fn fallback(&self) -> Option<Fallback> {
        match self {
            Mode::Fallback { fb, .. } => Some(*fb),
            _ => None,
        }
    }

    pub(crate) fn fallback_mut(&mut self) -> Option<&mut Fallback> {
        match self {
            Mode::Fallback { fb, .. } => Some(fb),
            _ => None,
        }
    }

    /// The peer's MPTCP options are read.
    pub(crate) fn reads_options(&self) -> bool {
        !matches!(
            self,
            Mode::Fallback {
                options_read: false,
                ..
            }
        )
    }
}

/// How far the sending direction has closed (RFC 8684 §3.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendClose {
    /// The application may write.
    Open,
    /// `shutdown` was called: a DATA_FIN follows the buffered data.
    FinQueued,
    /// Our DATA_FIN went out at least once (a DATA_ACK may now cover it).
    FinSent,
    /// The peer acknowledged our DATA_FIN.
    FinAcked,
}

impl SendClose {
    /// The application closed its sending direction.
    pub(crate) fn app_closed(self) -> bool {
        self != SendClose::Open
    }

    /// A DATA_ACK may cover our DATA_FIN.
    pub(crate) fn fin_sent(self) -> bool {
        matches!(self, SendClose::FinSent | SendClose::FinAcked)
    }
}

/// Connection-level state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// The initial subflow's handshake is in progress.
    Connecting,
    /// The handshake completed; data may flow.
    Established,
    /// Over for the application; subflows may still be finishing.
    Closed,
}

/// One MPTCP connection (or its fallback to plain TCP), sans-IO: the endpoint feeds it segments
/// and time, the application reads and writes bytes, and it chooses the subflow for each
/// segment it sends (docs/ARCHITECTURE.md, "Connections and subflows").
pub struct Connection {
    pub(crate) role: Role,
    pub(crate) cfg: ConnectionConfig,
    pub(crate) framing: Framing,
    pub(crate) state: ConnState,
    pub(crate) close_error: Option<CloseError>,
    pub(crate) keys: Keys,
    /// MPTCP being negotiated, in use, or given up for plain TCP.
    pub(crate) mode: Mode,
    pub(crate) checksum: bool,
    /// The peer has shown it holds our key: it sent a DSS (client side) or the third ACK /
    /// first data carried both keys (server side).
    pub(crate) fully_established: bool,
    /// Received some DSS from the peer on the initial subflow (else a data segment without
    /// one means options are being stripped: fall back).
    pub(crate) seen_dss: bool,
    pub(crate) remote: SocketAddr,

    // Data level, sending.
    pub(crate) send_buf: SendBuffer,
    /// Next new data offset to send.
    pub(crate) data_nxt: u64,
    /// Oldest data offset not acknowledged by DATA_ACK.
    pub(crate) data_una: u64,
    /// Right edge of the peer's connection-level receive window.
    pub(crate) peer_wnd_end: u64,
    /// Ranges any subflow may (re)send: data stranded on a dead subflow.
    pub(crate) reinject: RangeSet,
    pub(crate) send_close: SendClose,
    /// Send one segment past the peer's window to learn whether it reopened.
    pub(crate) probe_window: bool,

    // Data level, receiving.
    pub(crate) recv: Reassembly,
    /// Data offset of the peer's DATA_FIN once known.
    pub(crate) peer_fin: Option<u64>,
    pub(crate) peer_fin_consumed: bool,
    /// We sent MP_FAIL for the mapping at this data offset: data from there on is dropped
    /// until the peer's infinite mapping says where its plain stream resumes.
    pub(crate) rx_fail_dsn: Option<u64>,
    pub(crate) fell_back_reported: bool,
    /// Highest data offset ever sent (a fallback may rewind `data_nxt`).
    pub(crate) sent_high: u64,
    /// Time of the last segment or timer the connection handled (reads have no clock).
    pub(crate) last_input: Instant,
    /// Time of the last segment that passed its subflow's checks (idle timeouts count from
    /// here: junk that fails the checks does not keep a connection alive).
    pub(crate) last_valid_input: Instant,
    /// Named timers (docs/ARCHITECTURE.md, "Timers and the endpoint"). `DataFinRtx` armed:
    /// our DATA_FIN is not due again yet; stopped: send it when possible.
    pub(crate) timers: TimerTable,

    pub(crate) subflows: Vec<SubflowEntry>,
    pub(crate) next_subflow_id: u32,
    pub(crate) scheduler: Box<dyn Scheduler>,
    pub(crate) paths: PathManager,
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: ConnectionStats,
    /// Final statistics of subflows that are gone (most recent last, bounded).
    pub(crate) closed_paths: Vec<PathStats>,
    /// What the endpoint must learn (address pairs to route), drained after every call.
    pub(crate) endpoint_events: VecDeque<EndpointEvent>,
    pub(crate) rr_cursor: usize,
    pub(crate) was_writable: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("mode", &self.mode)
            .field("send_close", &self.send_close)
            .field("data_una", &self.data_una)
            .field("data_nxt", &self.data_nxt)
            .field("subflows", &self.subflows.len())
            .finish()
    }
}

/// Why a write was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The send buffer is full: wait for `Event::Writable`.
    Blocked,
    /// `shutdown` was called already.
    Closed,
    /// The connection is over.
    ConnectionLost(CloseError),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Blocked => f.write_str("send buffer full"),
            WriteError::Closed => f.write_str("write side already shut down"),
            WriteError::ConnectionLost(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Result of a read that produced no bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing to read yet: wait for `Event::Readable`.
    Blocked,
    /// The connection ended (or was reset) before more data arrived; the reason says how.
    ConnectionLost(CloseError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Blocked => f.write_str("nothing to read yet"),
            ReadError::ConnectionLost(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl Connection {
    /// Queues `ranges` to be sent again on whichever subflow the scheduler picks.
    pub(crate) fn queue_reinjection(&mut self, ranges: Vec<std::ops::Range<u64>>) {
        for r in ranges {
            self.stats.bytes_reinjected += r.end - r.start;
            self.reinject.insert(r);
        }
        self.warm_takeover();
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        now: Instant,
        role: Role,
        cfg: ConnectionConfig,
        framing: Framing,
        local_key: u64,
        remote: SocketAddr,
    ) -> Self {
        let keys = Keys {
            local: local_key,
            local_token: crate::wire::token(local_key),
            local_idsn: crate::wire::idsn(local_key),
            ..Keys::default()
        };
        let scheduler = cfg.scheduler.build();
        let paths = PathManager::new(&cfg.policy);
        Self {
            role,
            framing,
            state: ConnState::Connecting,
            close_error: None,
            keys,
            // A plain TCP connection becomes `Mode::Fallback` with its first subflow.
            mode: Mode::Negotiating,
            checksum: cfg.checksum,
            fully_established: false,
            seen_dss: false,
            remote,
            send_buf: SendBuffer::new(1, cfg.send_buffer),
            data_nxt: 1,
            data_una: 1,
            peer_wnd_end: 1,
            reinject: RangeSet::new(),
            send_close: SendClose::Open,
            probe_window: false,
            recv: Reassembly::new(1, cfg.receive_buffer),
            peer_fin: None,
            peer_fin_consumed: false,
            rx_fail_dsn: None,
            fell_back_reported: false,
            sent_high: 1,
            last_input: now,
            last_valid_input: now,
            timers: TimerTable::default(),
            subflows: Vec::new(),
            next_subflow_id: 0,
            scheduler,
            paths,
            events: VecDeque::new(),
            stats: ConnectionStats::default(),
            closed_paths: Vec::new(),
            endpoint_events: VecDeque::new(),
            rr_cursor: 0,
            was_writable: true,
            cfg,
        }
    }

    pub(crate) fn alloc_subflow_id(&mut self) -> SubflowId {
        let id = SubflowId(self.next_subflow_id);
        self.next_subflow_id += 1;
        id
    }

    pub(crate) fn index_of(&self, id: SubflowId) -> Option<usize> {
        self.subflows.iter().position(|e| e.id == id)
    }

    /// Whether this side opened the connection or accepted it.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the connection stands as the application sees it.
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// Whether MPTCP is in use (false: plain TCP, from the start or after a fallback).
    pub fn is_mptcp(&self) -> bool {
        matches!(self.mode, Mode::Negotiating | Mode::Mptcp)
    }

    /// The connection is over for the application (`close_error` says why).
    pub fn is_closed(&self) -> bool {
        self.state == ConnState::Closed
    }

    /// Why the connection ended, once it has.
    pub fn close_error(&self) -> Option<&CloseError> {
        self.close_error.as_ref()
    }

    /// Our token (RFC 8684 §3.2): the peer names the connection with it in MP_JOIN.
    pub fn local_token(&self) -> u32 {
        self.keys.local_token
    }

    /// The peer's address and port of the initial subflow.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The MPTCP keys (local, remote) once both are known; None for plain TCP.
    pub fn mptcp_keys(&self) -> Option<(u64, u64)> {
        if !self.is_mptcp() {
            return None;
        }
        self.keys.remote.map(|r| (self.keys.local, r))
    }

    /// When the peer last sent a segment that passed its subflow's sequence and
    /// acknowledgement checks (the connection's creation before any).
    pub fn last_activity(&self) -> Instant {
        self.last_valid_input
    }

    /// Writes application data; returns how much was buffered.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        if let Some(e) = &self.close_error {
            return Err(WriteError::ConnectionLost(e.clone()));
        }
        if self.send_close.app_closed() {
            return Err(WriteError::Closed);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.send_buf.write(data);
        if n == 0 {
            self.was_writable = false;
            return Err(WriteError::Blocked);
        }
        self.stats.bytes_sent += n as u64;
        Ok(n)
    }

    /// Free space in the send buffer.
    pub fn send_capacity(&self) -> usize {
        self.send_buf.free()
    }

    /// Reads in-order data. `Ok(0)` means the peer finished sending (end of stream).
    pub fn read(&mut self, dst: &mut [u8]) -> Result<usize, ReadError> {
        let window_before = self.recv.window();
        let n = self.recv.read(dst);
        if n > 0 && self.checksum {
            // Verified mappings may have been waiting for window space.
            for i in 0..self.subflows.len() {
                if self.subflows[i].checked_rx.is_some() {
                    self.drain_checked(self.last_input, i);
                }
            }
        }
        if n > 0 {
            self.stats.bytes_received += n as u64;
            self.maybe_window_update(window_before);
            return Ok(n);
        }
        if self.peer_fin_consumed || self.fallback_peer_finished() {
            return Ok(0);
        }
        if let Some(e) = &self.close_error {
            return Err(ReadError::ConnectionLost(e.clone()));
        }
        Err(ReadError::Blocked)
    }

    /// Bytes ready to read.
    pub fn readable(&self) -> usize {
        self.recv.readable()
    }

    /// The peer will send no more data.
    pub fn peer_finished(&self) -> bool {
        self.peer_fin_consumed || self.fallback_peer_finished()
    }

    fn fallback_peer_finished(&self) -> bool {
        let Some(fb) = self.mode.fallback() else {
            return false;
        };
        self.index_of(fb.subflow)
            .is_some_and(|i| self.subflows[i].sf.peer_finished() && self.recv.readable() == 0)
    }

    /// A window update is worth sending when reading opened a window that was nearly shut.
    fn maybe_window_update(&mut self, before: u64) {
        let after = self.recv.window();
        let mss = self.cfg.subflow.mss as u64;
        if before < 2 * mss || (before < self.recv.capacity() as u64 / 4 && after >= before * 2) {
            for e in &mut self.subflows {
                if e.sf.state.can_receive() {
                    e.sf.request_ack();
                }
            }
        }
    }

    /// Closes the sending direction: a DATA_FIN follows the buffered data.
    pub fn shutdown(&mut self) {
        if self.send_close.app_closed() || self.close_error.is_some() {
            return;
        }
        self.send_close = SendClose::FinQueued;
    }

    /// Plain TCP: the subflow FIN ends the stream, once every byte before it was sent.
    pub(crate) fn fallback_fin_if_done(&mut self) {
        let Some(fb) = self.mode.fallback() else {
            return;
        };
        if !self.send_close.app_closed()
            || self.data_nxt < self.data_end()
            || !self.reinject.is_empty()
        {
            return;
        }
        if let Some(i) = self.index_of(fb.subflow) {
            self.subflows[i].sf.close();
        }
    }

    /// Aborts: MP_FASTCLOSE (or RST for plain TCP) on every subflow, then closed.
    pub fn abort(&mut self) {
        self.abort_with(CloseError::Aborted);
    }

    /// Resets every subflow (with MP_FASTCLOSE when the peer has our key) and closes with
    /// `err`.
    pub(crate) fn abort_with(&mut self, err: CloseError) {
        if self.state == ConnState::Closed {
            return;
        }
        let fastclose = self.is_mptcp() && self.keys.remote.is_some();
        for e in &mut self.subflows {
            e.fastclose = fastclose;
            e.sf.abort();
        }
        self.close(err);
    }

    pub(crate) fn close(&mut self, err: CloseError) {
        if self.state == ConnState::Closed {
            return;
        }
        self.state = ConnState::Closed;
        // Only subflows still finishing need time now.
        self.timers.stop_all_but(Timer::Subflows);
        self.close_error = Some(err.clone());
        self.events.push_back(Event::Closed(err));
    }

    /// The next event for the application, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// DSN one past the last byte written by the application (the DATA_FIN's offset).
    pub(crate) fn data_end(&self) -> u64 {
        self.send_buf.end()
    }

    /// Everything we wrote (and the DATA_FIN) is acknowledged.
    pub fn all_acked(&self) -> bool {
        self.data_una >= self.data_end()
            && matches!(self.send_close, SendClose::Open | SendClose::FinAcked)
    }

    /// Earliest timer of the connection (as of the last call into it).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Re-reads the timers that are derived from subflow and path state (see
    /// `timer_table`); the endpoint calls it after every call into the connection. Once
    /// the connection is closed only subflows still finishing (RST, FIN, TIME_WAIT) need
    /// time.
    pub(crate) fn refresh_timers(&mut self) {
        let subflows = self
            .subflows
            .iter()
            .filter_map(|e| e.sf.poll_timeout())
            .min();
        self.timers.set_or_stop(Timer::Subflows, subflows);
        if self.state == ConnState::Closed {
            self.timers.stop_all_but(Timer::Subflows);
            return;
        }
        let join_ack = self
            .subflows
            .iter()
            .filter_map(|e| {
                let j = e.join.filter(|j| j.awaiting_ack)?;
                Some(j.third_ack_at? + e.sf.rtt.rto())
            })
            .min();
        self.timers.set_or_stop(Timer::JoinAck, join_ack);
        let remove_probe = self
            .subflows
            .iter()
            .filter_map(|e| e.remove_probe.map(|(_, deadline)| deadline))
            .min();
        self.timers.set_or_stop(Timer::RemoveProbe, remove_probe);
        self.timers
            .set_or_stop(Timer::PeerSilence, self.peer_silence_deadline());
        let paths = [
            self.paths.poll_timeout(),
            self.steering_deadline(),
            self.silence_deadline(),
            self.dead_subflow_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        self.timers.set_or_stop(Timer::Paths, paths);
    }

    #[doc(hidden)]
    pub fn debug_timers(&self) -> String {
        let mut out = format!("timers {:?}\n", self.timers)
            + &format!(
                "recv rcv_nxt {} reinject {:?} peer_wnd_end {}\n",
                self.recv.rcv_nxt(),
                self.reinject.first(),
                self.peer_wnd_end
            );
        for e in &self.subflows {
            out += &format!(
                "  sf {:?} {:?} join {:?} t {:?} rcv_nxt {} checked {:?} carried {:?}\n",
                e.id,
                e.sf.state,
                e.join,
                e.sf.poll_timeout(),
                e.sf.rcv_nxt(),
                e.checked_rx
                    .as_ref()
                    .map(|b| (b.read_pos(), b.readable(), b.buffered())),
                e.carried.first()
            );
        }
        out
    }

    /// Records that the DATA_FIN went out: it is due again after an RTO unless acknowledged.
    pub(crate) fn on_data_fin_sent(&mut self, now: Instant) {
        let rto = self
            .subflows
            .iter()
            .map(|e| e.sf.rtt.rto())
            .min()
            .unwrap_or(Duration::from_secs(1));
        if self.send_close == SendClose::FinAcked {
            return;
        }
        self.send_close = SendClose::FinSent;
        if self.mode.fallback().is_none() {
            self.timers.set(Timer::DataFinRtx, now + rto);
        }
    }

    /// Statistics, with one entry per subflow.
    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats.clone();
        s.mptcp = self.is_mptcp();
        s.established = self.state == ConnState::Established;
        s.bytes_acked = self.data_una.saturating_sub(1);
        s.paths = self.subflows.iter().map(path_stats).collect();
        s.closed_paths = self.closed_paths.clone();
        s.reassembly_refused = self.recv.pieces_refused();
        s
    }

    /// The (local, remote) address pairs of every subflow, for the endpoint's demultiplexer.
    pub(crate) fn tuples(&self) -> impl Iterator<Item = (SocketAddr, SocketAddr, SubflowId)> + '_ {
        self.subflows
            .iter()
            .map(|e| (e.sf.local, e.sf.remote, e.id))
    }

    /// The next thing the endpoint must learn.
    pub(crate) fn poll_endpoint_event(&mut self) -> Option<EndpointEvent> {
        self.endpoint_events.pop_front()
    }

    /// Adds a subflow; the endpoint routes its address pair to it, unless it is a
    /// replacement join: that shares its pair with the subflow it replaces, which keeps the
    /// pair until the join is verified (`route` picks between them).
    pub(crate) fn push_subflow(&mut self, e: SubflowEntry) {
        let routed = e.replaces.is_none();
        self.subflows.push(e);
        self.stats.subflows_opened += 1;
        // A subflow exists again: the no-path timeout restarts if it fails too.
        self.timers.stop(Timer::NoPath);
        if routed {
            self.route_to_subflow(self.subflows.len() - 1);
        }
    }

    /// Tells the endpoint to route subflow `idx`'s address pair to it.
    pub(crate) fn route_to_subflow(&mut self, idx: usize) {
        let e = &self.subflows[idx];
        self.endpoint_events.push_back(EndpointEvent::TupleAdded {
            local: e.sf.local,
            remote: e.sf.remote,
            id: e.id,
        });
    }

    /// Removes subflow `idx`; the endpoint stops routing its address pair to it.
    pub(crate) fn remove_subflow(&mut self, idx: usize) {
        let e = self.subflows.remove(idx);
        self.endpoint_events.push_back(EndpointEvent::TupleRemoved {
            local: e.sf.local,
            remote: e.sf.remote,
            id: e.id,
        });
    }

    /// The subflow a segment on subflow `id`'s address pair belongs to: a pending
    /// replacement join if the segment continues that join's handshake, else `id`.
    pub(crate) fn route(&self, id: SubflowId, seg: &crate::wire::TcpRepr) -> SubflowId {
        let joiner = self.subflows.iter().find(|e| {
            e.replaces == Some(id)
                && !e.sf.is_closed()
                && (e.sf.completes_handshake(seg)
                    && !seg.flags.contains(crate::wire::TcpFlags::SYN)
                    || seg.flags.contains(crate::wire::TcpFlags::SYN) && seg.seq.0 == e.sf.irs())
        });
        joiner.map_or(id, |e| e.id)
    }

    /// Whether a replacement join is already pending for subflow `id`.
    pub(crate) fn replacement_pending(&self, id: SubflowId) -> bool {
        self.subflows
            .iter()
            .any(|e| e.replaces == Some(id) && !e.sf.is_closed())
    }

    /// Whether a SYN with sequence number `seq` on subflow `id`'s address pair starts a new
    /// subflow (the old one is synchronized and this is not its own SYN again).
    pub(crate) fn subflow_replaced_by_syn(&self, id: SubflowId, seq: u32) -> bool {
        self.index_of(id).is_some_and(|i| {
            let sf = &self.subflows[i].sf;
            sf.state.is_synchronized() && sf.irs() != seq || sf.is_closed()
        })
    }

    pub(crate) fn subflow_is_closed(&self, id: SubflowId) -> bool {
        self.index_of(id)
            .is_some_and(|i| self.subflows[i].sf.is_closed())
    }

    /// Forgets a subflow the peer has abandoned, reinjecting what it carried.
    pub(crate) fn drop_subflow(&mut self, now: Instant, id: SubflowId) {
        if let Some(i) = self.index_of(id) {
            let e = &mut self.subflows[i];
            if !e.sf.is_closed() {
                e.sf.abort();
                e.sf.drop_pending_rst();
            }
            self.on_subflow_closed(now, i);
            self.remove_subflow(i);
        }
    }

    /// Paths the connection may use (client side); same as `interface_available`.
    pub fn add_path(&mut self, now: Instant, spec: PathSpec) {
        self.interface_available(now, spec);
    }

    /// Same as `interface_lost`.
    pub fn remove_path(&mut self, now: Instant, id: PathId) {
        self.interface_lost(now, id);
    }
}

/// A subflow's statistics as the application sees them.
pub(crate) fn path_stats(e: &SubflowEntry) -> PathStats {
    let c = &e.sf.counters;
    PathStats {
        path: e.path,
        kind: Some(e.kind),
        local: Some(e.sf.local),
        remote: Some(e.sf.remote),
        state: state_name(e.sf.state),
        backup: e.backup_local || e.backup_remote,
        bytes_sent: c.bytes_sent,
        bytes_received: c.bytes_received,
        bytes_retransmitted: c.bytes_retransmitted,
        segments_sent: c.segments_sent,
        segments_received: c.segments_received,
        retransmissions: c.retransmissions,
        rto_events: c.rto_events,
        srtt: e.sf.srtt(),
        cwnd: e.sf.cwnd(),
        in_flight: e.sf.in_flight(),
    }
}

pub(crate) fn state_name(s: crate::subflow::State) -> &'static str {
    use crate::subflow::State::*;
    match s {
        SynSent => "syn-sent",
        SynReceived => "syn-received",
        Established => "established",
        FinWait1 => "fin-wait-1",
        FinWait2 => "fin-wait-2",
        Closing => "closing",
        TimeWait => "time-wait",
        CloseWait => "close-wait",
        LastAck => "last-ack",
        Closed => "closed",
    }
}
