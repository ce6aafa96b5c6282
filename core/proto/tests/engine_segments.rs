//! Segment-by-segment tests of the endpoint, smoltcp style: each test starts from a state,
//! feeds hand-built segments (from templates) and checks the exact segments that come out.
//! The MP_CAPABLE and MP_JOIN handshakes are replayed with the keys and nonces of a real
//! Linux kernel capture (`fixtures/kernel-mptcp-v1.json`).

use braid_proto::PathId;
use braid_proto::random::{Random, SeededRandom};
use braid_proto::wire::*;
use braid_proto::{
    CloseError, ConnectionHandle, Endpoint, EndpointConfig, Event, Framing, InterfaceKind, PathSpec,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CLIENT: &str = "10.31.1.1:54258";
const CLIENT_CELL: &str = "10.31.2.1:52735";
const SERVER: &str = "10.31.1.2:5499";

// From the kernel capture.
const CLIENT_KEY: u64 = 0x950b1aee0b6f9012;
const SERVER_KEY: u64 = 0xd648f4ddcfd867eb;
const JOIN_CLIENT_NONCE: u32 = 0x1f0a2c2a;
const JOIN_SERVER_NONCE: u32 = 0xf3798643;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Hands out chosen values first, then a seeded stream: lets a test fix keys and nonces.
struct Scripted {
    values: VecDeque<u64>,
    rest: SeededRandom,
}

impl Scripted {
    fn new(values: &[u64]) -> Self {
        Self {
            values: values.iter().copied().collect(),
            rest: SeededRandom::new(9),
        }
    }
}

impl Random for Scripted {
    fn fill(&mut self, dest: &mut [u8]) {
        self.rest.fill(dest)
    }
    fn next_u32(&mut self) -> u32 {
        self.values
            .pop_front()
            .map_or_else(|| self.rest.next_u32(), |v| v as u32)
    }
    fn next_u64(&mut self) -> u64 {
        self.values
            .pop_front()
            .unwrap_or_else(|| self.rest.next_u64())
    }
}

struct Peer {
    ep: Endpoint,
    now: Instant,
}

impl Peer {
    fn server(values: &[u64]) -> Self {
        let cfg = EndpointConfig {
            listen: true,
            ..EndpointConfig::default()
        };
        Self {
            ep: Endpoint::new(cfg, Box::new(Scripted::new(values))),
            now: Instant::now(),
        }
    }

    fn client(values: &[u64]) -> Self {
        Self {
            ep: Endpoint::new(EndpointConfig::default(), Box::new(Scripted::new(values))),
            now: Instant::now(),
        }
    }

    /// Delivers `seg` (with `payload`) as sent from `from` to `to`.
    fn send(&mut self, from: &str, to: &str, seg: &TcpRepr, payload: &[u8]) {
        let mut buf = vec![0u8; 2048];
        let n = Framing::TcpInUdp
            .encode(
                seg,
                payload.len(),
                |o| o.copy_from_slice(payload),
                sa(to),
                sa(from),
                &mut buf,
            )
            .unwrap();
        let _ = self
            .ep
            .handle_segment(self.now, sa(to), sa(from), &buf[..n]);
    }

    /// Everything the endpoint wants to send now, decoded.
    fn recv(&mut self) -> Vec<(SocketAddr, SocketAddr, TcpRepr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Some(t) = self.ep.poll_transmit(self.now, &mut buf) {
            let (repr, off) =
                parse_udp_payload(&buf[..t.len], t.local.port(), t.remote.port()).unwrap();
            out.push((t.local, t.remote, repr, buf[off..t.len].to_vec()));
        }
        out
    }

    fn recv_one(&mut self) -> TcpRepr {
        let mut v = self.recv();
        assert_eq!(v.len(), 1, "expected exactly one segment, got {:#?}", v);
        v.remove(0).2
    }

    fn events(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some((_, e)) = self.ep.poll_event() {
            v.push(e);
        }
        v
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.ep.handle_timeout(self.now);
    }
}

fn mpc(keys: MpCapableKeys) -> MptcpOption {
    MptcpOption::MpCapable(MpCapable {
        version: 1,
        flags: MpCapableFlags::H,
        keys,
    })
}

/// The client's SYN as the kernel sent it (same options).
fn syn_template() -> TcpRepr {
    let mut o = TcpOptions::new();
    o.mss = Some(1460);
    o.sack_permitted = true;
    o.timestamps = Some((800468702, 0));
    o.window_scale = Some(10);
    o.push_mptcp(mpc(MpCapableKeys::Syn)).unwrap();
    TcpRepr {
        src_port: 54258,
        dst_port: 5499,
        seq: SeqNum(1000),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 64240,
        urgent: 0,
        options: o,
    }
}

fn ack_template(seq: u32, ack: u32) -> TcpRepr {
    let mut o = TcpOptions::new();
    o.timestamps = Some((800468722, 0));
    TcpRepr {
        src_port: 54258,
        dst_port: 5499,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags: TcpFlags::ACK,
        window: 502,
        urgent: 0,
        options: o,
    }
}

fn mptcp_of(r: &TcpRepr) -> Vec<MptcpOption> {
    r.options.mptcp.iter().copied().collect()
}

/// LISTEN -> SYN_RECEIVED: SYN/ACK with our key, and the TCP options negotiated.
fn server_after_syn(values: &[u64]) -> (Peer, TcpRepr) {
    let mut p = Peer::server(values);
    p.send(CLIENT, SERVER, &syn_template(), &[]);
    let synack = p.recv_one();
    (p, synack)
}

#[test]
fn listen_syn_gets_syn_ack_with_server_key() {
    let (_p, synack) = server_after_syn(&[SERVER_KEY]);
    assert!(synack.flags.contains(TcpFlags::SYN) && synack.flags.contains(TcpFlags::ACK));
    assert_eq!(synack.ack, SeqNum(1001));
    assert_eq!(synack.options.mss, Some(1460));
    assert!(synack.options.sack_permitted);
    assert!(synack.options.window_scale.is_some());
    assert_eq!(
        synack.options.timestamps.map(|t| t.1),
        Some(800468702),
        "echoes TSval"
    );
    let opts = mptcp_of(&synack);
    assert_eq!(
        opts,
        vec![mpc(MpCapableKeys::SynAck {
            sender_key: SERVER_KEY
        })]
    );
    // Byte-exact against the kernel's SYN/ACK option.
    let mut b = [0u8; 12];
    opts[0].emit(&mut b).unwrap();
    assert_eq!(hex(&b), "1e0c0101d648f4ddcfd867eb");
}

#[test]
fn listen_plain_syn_is_answered_as_plain_tcp() {
    let mut p = Peer::server(&[]);
    let mut syn = syn_template();
    syn.options.mptcp.clear();
    p.send(CLIENT, SERVER, &syn, &[]);
    let synack = p.recv_one();
    assert!(synack.options.mptcp.is_empty());
}

#[test]
fn listen_v0_syn_is_answered_without_mptcp() {
    let mut p = Peer::server(&[]);
    // An RFC 6824 (v0) MP_CAPABLE SYN carries the sender's key: 12 bytes, version 0.
    let mut raw = vec![0u8; 64];
    let mut syn = syn_template();
    syn.options.mptcp.clear();
    let hlen = syn.emit(&mut raw).unwrap();
    let mut seg = raw[..hlen].to_vec();
    seg.extend_from_slice(&[0x1e, 0x0c, 0x00, 0x81, 1, 2, 3, 4, 5, 6, 7, 8]);
    seg[12] = (((seg.len()) / 4) as u8) << 4;
    // Re-frame as TCP-in-UDP by parsing the header back.
    let (parsed, _) = TcpRepr::parse(&seg).unwrap();
    assert_eq!(
        parsed.options.mptcp_rejected,
        Some(WireError::UnsupportedMptcpVersion(0))
    );
    p.send(CLIENT, SERVER, &parsed, &[]);
    let synack = p.recv_one();
    assert!(
        synack.options.mptcp.is_empty(),
        "v0 is not accepted: plain TCP"
    );
}

/// SYN_RECEIVED + the kernel's third ACK (client key, our key) -> ESTABLISHED.
fn server_established() -> (Peer, TcpRepr) {
    let (mut p, synack) = server_after_syn(&[SERVER_KEY]);
    let mut ack = ack_template(1001, synack.seq.0.wrapping_add(1));
    ack.options
        .push_mptcp(mpc(MpCapableKeys::Ack {
            sender_key: CLIENT_KEY,
            receiver_key: SERVER_KEY,
        }))
        .unwrap();
    p.send(CLIENT, SERVER, &ack, &[]);
    (p, synack)
}

#[test]
fn third_ack_with_kernel_keys_establishes() {
    let (mut p, _) = server_established();
    let ev = p.events();
    assert!(ev.contains(&Event::Connected), "{ev:?}");
    assert!(!ev.contains(&Event::FellBackToTcp));
    assert!(p.recv().is_empty(), "nothing to say after a pure third ACK");
}

#[test]
fn third_ack_without_mp_capable_falls_back() {
    let (mut p, synack) = server_after_syn(&[SERVER_KEY]);
    let ack = ack_template(1001, synack.seq.0.wrapping_add(1));
    p.send(CLIENT, SERVER, &ack, &[]);
    let ev = p.events();
    assert!(ev.contains(&Event::FellBackToTcp), "{ev:?}");
    assert!(ev.contains(&Event::Connected));
}

#[test]
fn first_data_with_mp_capable_is_delivered_and_data_acked_in_kernel_numbers() {
    let (mut p, synack) = server_after_syn(&[SERVER_KEY]);
    // Third ACK lost: the first data carries the keys and the data-level length.
    let mut data = ack_template(1001, synack.seq.0.wrapping_add(1));
    data.flags.insert(TcpFlags::PSH);
    data.options
        .push_mptcp(mpc(MpCapableKeys::AckData {
            sender_key: CLIENT_KEY,
            receiver_key: SERVER_KEY,
            data_len: 5,
            checksum: None,
        }))
        .unwrap();
    p.send(CLIENT, SERVER, &data, b"hello");
    let ev = p.events();
    assert!(
        ev.contains(&Event::Connected) && ev.contains(&Event::Readable),
        "{ev:?}"
    );
    let h = p.ep.accept().unwrap();
    let mut buf = [0u8; 16];
    let n = p.ep.connection_mut(h).unwrap().read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    let ack = p.recv_one();
    assert_eq!(ack.ack, SeqNum(1006));
    let dss = *ack.options.dss().expect("DSS on the ACK");
    // Client IDSN from the capture is 2c7bc4579e85ee19; first byte is IDSN + 1.
    assert_eq!(
        dss.data_ack,
        Some(DataSeq::Narrow((0x2c7bc4579e85ee19u64 + 1 + 5) as u32))
    );
}

fn dss_data(seq: u32, ack: u32, dsn: u64, ssn: u32, len: u16, fin: bool) -> TcpRepr {
    let mut s = ack_template(seq, ack);
    s.options
        .push_mptcp(Dss {
            data_ack: Some(DataSeq::Wide(0x205945d5950e15aa + 1)),
            mapping: Some(DssMapping {
                dsn: DataSeq::Wide(dsn),
                ssn,
                data_len: len + fin as u16,
                checksum: None,
            }),
            data_fin: fin,
        })
        .unwrap();
    s
}

const CLIENT_IDSN: u64 = 0x2c7bc4579e85ee19;

#[test]
fn out_of_order_data_is_sacked_then_reassembled() {
    let (mut p, synack) = server_established();
    let h = p.ep.accept().unwrap();
    let iss = synack.seq.0.wrapping_add(1);
    // Second segment first.
    p.send(
        CLIENT,
        SERVER,
        &dss_data(1006, iss, CLIENT_IDSN + 6, 6, 5, false),
        b"world",
    );
    let ack = p.recv_one();
    assert_eq!(ack.ack, SeqNum(1001), "cumulative ACK stays");
    assert_eq!(
        ack.options.sack_blocks.as_slice(),
        &[(SeqNum(1006), SeqNum(1011))]
    );
    p.send(
        CLIENT,
        SERVER,
        &dss_data(1001, iss, CLIENT_IDSN + 1, 1, 5, false),
        b"hello",
    );
    let ack = p.recv_one();
    assert_eq!(ack.ack, SeqNum(1011));
    assert!(ack.options.sack_blocks.is_empty());
    let mut buf = [0u8; 32];
    let n = p.ep.connection_mut(h).unwrap().read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"helloworld");
}

#[test]
fn data_fin_ends_the_stream_and_is_acked() {
    let (mut p, synack) = server_established();
    let h = p.ep.accept().unwrap();
    let iss = synack.seq.0.wrapping_add(1);
    p.send(
        CLIENT,
        SERVER,
        &dss_data(1001, iss, CLIENT_IDSN + 1, 1, 3, true),
        b"bye",
    );
    let ack = p.recv_one();
    let dss = *ack.options.dss().unwrap();
    assert_eq!(
        dss.data_ack,
        Some(DataSeq::Narrow((CLIENT_IDSN + 1 + 3 + 1) as u32)),
        "DATA_FIN acked"
    );
    let c = p.ep.connection_mut(h).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf), Ok(3));
    assert_eq!(c.read(&mut buf), Ok(0), "end of stream");
}

#[test]
fn mp_fastclose_with_our_key_resets_the_connection() {
    let (mut p, synack) = server_established();
    let h = p.ep.accept().unwrap();
    let iss = synack.seq.0.wrapping_add(1);
    // A wrong key is ignored.
    let mut rst = ack_template(1001, iss);
    rst.flags = TcpFlags::RST | TcpFlags::ACK;
    rst.options
        .push_mptcp(MptcpOption::MpFastClose(MpFastClose { receiver_key: 1234 }))
        .unwrap();
    let mut ack = ack_template(1001, iss);
    ack.options
        .push_mptcp(MptcpOption::MpFastClose(MpFastClose { receiver_key: 1234 }))
        .unwrap();
    p.send(CLIENT, SERVER, &ack, &[]);
    assert!(!p.ep.connection(h).unwrap().is_closed());
    let mut fc = ack_template(1001, iss);
    fc.flags = TcpFlags::RST | TcpFlags::ACK;
    fc.options
        .push_mptcp(MptcpOption::MpFastClose(MpFastClose {
            receiver_key: SERVER_KEY,
        }))
        .unwrap();
    p.send(CLIENT, SERVER, &fc, &[]);
    let ev = p.events();
    assert!(ev.contains(&Event::Closed(CloseError::Reset)), "{ev:?}");
    let _ = rst;
}

#[test]
fn segment_for_no_connection_gets_a_rst() {
    let mut p = Peer::server(&[]);
    let seg = ack_template(5000, 7000);
    p.send(CLIENT, SERVER, &seg, b"x");
    let rst = p.recv_one();
    assert!(rst.flags.contains(TcpFlags::RST));
    assert_eq!(
        rst.seq,
        SeqNum(7000),
        "RST takes the segment's ACK as its sequence"
    );
}

fn join_syn(token: u32) -> TcpRepr {
    let mut s = syn_template();
    s.src_port = 52735;
    s.options.mptcp.clear();
    s.options
        .push_mptcp(MptcpOption::MpJoin(MpJoin::Syn {
            backup: false,
            addr_id: 1,
            token,
            nonce: JOIN_CLIENT_NONCE,
        }))
        .unwrap();
    s
}

#[test]
fn kernel_mp_join_is_answered_with_the_kernels_hmac_and_accepted() {
    // Server key, ISN of the initial subflow, then for the join: ISN, nonce.
    let (mut p, synack) = server_after_syn(&[SERVER_KEY, 0, 77, JOIN_SERVER_NONCE as u64]);
    let mut ack = ack_template(1001, synack.seq.0.wrapping_add(1));
    ack.options
        .push_mptcp(mpc(MpCapableKeys::Ack {
            sender_key: CLIENT_KEY,
            receiver_key: SERVER_KEY,
        }))
        .unwrap();
    p.send(CLIENT, SERVER, &ack, &[]);
    p.send(CLIENT_CELL, SERVER, &join_syn(0xf67bddb8), &[]);
    let out = p.recv();
    assert_eq!(out.len(), 1, "{out:#?}");
    let synack = &out[0].2;
    let opts = mptcp_of(synack);
    let mut b = [0u8; 16];
    opts[0].emit(&mut b).unwrap();
    // Exactly the kernel's SYN/ACK option: same keys and nonces give the same HMAC.
    assert_eq!(hex(&b), "1e101000a3adb9b760100b77f3798643");
    // The kernel's third ACK is accepted: the server ACKs it at once.
    let mut third = ack_template(0, synack.seq.0.wrapping_add(1));
    third.src_port = 52735;
    let hmac: [u8; 20] = unhex("30c26988c1f2bbb98dd59aac7290fa5328bcd29e")
        .try_into()
        .unwrap();
    third
        .options
        .push_mptcp(MptcpOption::MpJoin(MpJoin::Ack { hmac }))
        .unwrap();
    third.seq = SeqNum(join_syn(0).seq.0.wrapping_add(1));
    p.send(CLIENT_CELL, SERVER, &third, &[]);
    let out = p.recv();
    assert_eq!(
        out.len(),
        1,
        "the join's third ACK is acknowledged: {out:#?}"
    );
    assert!(!out[0].2.flags.contains(TcpFlags::RST));
    let h = p.ep.accept().unwrap();
    assert_eq!(p.ep.connection(h).unwrap().stats().paths.len(), 2);
}

#[test]
fn forged_join_hmac_is_reset_with_mp_tcprst() {
    let (mut p, synack) = server_after_syn(&[SERVER_KEY, 0, 77, JOIN_SERVER_NONCE as u64]);
    let mut ack = ack_template(1001, synack.seq.0.wrapping_add(1));
    ack.options
        .push_mptcp(mpc(MpCapableKeys::Ack {
            sender_key: CLIENT_KEY,
            receiver_key: SERVER_KEY,
        }))
        .unwrap();
    p.send(CLIENT, SERVER, &ack, &[]);
    p.send(CLIENT_CELL, SERVER, &join_syn(0xf67bddb8), &[]);
    let synack = p.recv_one();
    let mut third = ack_template(
        join_syn(0).seq.0.wrapping_add(1),
        synack.seq.0.wrapping_add(1),
    );
    third.src_port = 52735;
    third
        .options
        .push_mptcp(MptcpOption::MpJoin(MpJoin::Ack { hmac: [7; 20] }))
        .unwrap();
    p.send(CLIENT_CELL, SERVER, &third, &[]);
    let rst = p.recv_one();
    assert!(rst.flags.contains(TcpFlags::RST));
    assert!(mptcp_of(&rst).iter().any(|o| matches!(
        o,
        MptcpOption::MpTcpRst(MpTcpRst {
            reason: TcpRstReason::MptcpError,
            ..
        })
    )));
    let h = p.ep.accept().unwrap();
    assert_eq!(
        p.ep.connection(h).unwrap().stats().paths.len(),
        1,
        "forged join not attached"
    );
}

#[test]
fn join_with_unknown_token_is_refused() {
    let mut p = Peer::server(&[SERVER_KEY]);
    p.send(CLIENT_CELL, SERVER, &join_syn(0xdeadbeef), &[]);
    let rst = p.recv_one();
    assert!(rst.flags.contains(TcpFlags::RST));
    assert!(
        mptcp_of(&rst)
            .iter()
            .any(|o| matches!(o, MptcpOption::MpTcpRst(_)))
    );
    assert_eq!(p.ep.connection_count(), 0);
}

#[test]
fn client_handshake_against_the_kernels_syn_ack() {
    let mut c = Peer::client(&[CLIENT_KEY, 999]);
    let h: ConnectionHandle = c.ep.connect(
        c.now,
        None,
        PathSpec::new(PathId::new(1), InterfaceKind::Wifi, sa(CLIENT)),
        sa(SERVER),
    );
    let syn = c.recv_one();
    let mut b = [0u8; 4];
    mptcp_of(&syn)[0].emit(&mut b).unwrap();
    assert_eq!(hex(&b), "1e040101", "the kernel's MP_CAPABLE SYN option");
    assert_eq!(syn.seq, SeqNum(999));
    // The kernel's SYN/ACK.
    let mut sa_ = syn_template();
    sa_.src_port = 5499;
    sa_.dst_port = 54258;
    sa_.flags = TcpFlags::SYN | TcpFlags::ACK;
    sa_.seq = SeqNum(5555);
    sa_.ack = SeqNum(1000);
    sa_.options.mptcp.clear();
    sa_.options
        .push_mptcp(mpc(MpCapableKeys::SynAck {
            sender_key: SERVER_KEY,
        }))
        .unwrap();
    c.send(SERVER, CLIENT, &sa_, &[]);
    assert!(c.events().contains(&Event::Connected));
    let third = c.recv_one();
    assert_eq!(third.ack, SeqNum(5556));
    let mut b = [0u8; 20];
    mptcp_of(&third)[0].emit(&mut b).unwrap();
    assert_eq!(
        hex(&b),
        "1e140101950b1aee0b6f9012d648f4ddcfd867eb",
        "the kernel's third ACK"
    );
    // First data repeats MP_CAPABLE with the data-level length.
    c.ep.connection_mut(h).unwrap().write(b"abc").unwrap();
    let data = c.recv_one();
    assert!(matches!(
        mptcp_of(&data)[0],
        MptcpOption::MpCapable(MpCapable {
            keys: MpCapableKeys::AckData { data_len: 3, .. },
            ..
        })
    ));
}

#[test]
fn client_falls_back_when_syn_ack_has_no_mp_capable() {
    let mut c = Peer::client(&[CLIENT_KEY, 999]);
    let h = c.ep.connect(
        c.now,
        None,
        PathSpec::new(PathId::new(1), InterfaceKind::Wifi, sa(CLIENT)),
        sa(SERVER),
    );
    let _syn = c.recv_one();
    let mut sa_ = syn_template();
    sa_.src_port = 5499;
    sa_.dst_port = 54258;
    sa_.flags = TcpFlags::SYN | TcpFlags::ACK;
    sa_.seq = SeqNum(5555);
    sa_.ack = SeqNum(1000);
    sa_.options.mptcp.clear();
    c.send(SERVER, CLIENT, &sa_, &[]);
    let ev = c.events();
    assert!(
        ev.contains(&Event::FellBackToTcp) && ev.contains(&Event::Connected),
        "{ev:?}"
    );
    c.ep.connection_mut(h).unwrap().write(b"plain").unwrap();
    let out = c.recv();
    let data = out.iter().find(|s| !s.3.is_empty()).expect("data segment");
    assert!(
        data.2.options.mptcp.is_empty(),
        "plain TCP carries no MPTCP option"
    );
    assert_eq!(data.3, b"plain");
}

#[test]
fn syn_is_retransmitted_with_backoff_then_connect_fails() {
    let mut c = Peer::client(&[CLIENT_KEY, 999]);
    c.ep.connect(
        c.now,
        None,
        PathSpec::new(PathId::new(1), InterfaceKind::Wifi, sa(CLIENT)),
        sa(SERVER),
    );
    let _ = c.recv_one();
    let mut gaps = Vec::new();
    let mut last = c.now;
    for _ in 0..400 {
        c.advance(Duration::from_millis(100));
        let out = c.recv();
        if !out.is_empty() {
            assert!(out[0].2.flags.contains(TcpFlags::SYN));
            gaps.push(c.now - last);
            last = c.now;
        }
        if c.events()
            .contains(&Event::Closed(CloseError::ConnectFailed))
        {
            assert!(gaps.len() >= 3, "{gaps:?}");
            assert!(
                gaps.windows(2).all(|w| w[1] >= w[0]),
                "backoff grows: {gaps:?}"
            );
            return;
        }
    }
    panic!("connect never failed; retransmissions at {gaps:?}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A client established against the kernel's keys, ready to receive signalling.
fn client_established() -> (Peer, ConnectionHandle, u32, u32) {
    client_established_with(MpCapableFlags::H)
}

/// A client established against the kernel's keys, the server's SYN/ACK carrying `flags`.
fn client_established_with(flags: MpCapableFlags) -> (Peer, ConnectionHandle, u32, u32) {
    let mut c = Peer::client(&[CLIENT_KEY, 999]);
    let h = c.ep.connect(
        c.now,
        None,
        PathSpec::new(PathId::new(1), InterfaceKind::Wifi, sa(CLIENT)),
        sa(SERVER),
    );
    let _syn = c.recv_one();
    let mut sa_ = syn_template();
    sa_.src_port = 5499;
    sa_.dst_port = 54258;
    sa_.flags = TcpFlags::SYN | TcpFlags::ACK;
    sa_.seq = SeqNum(5555);
    sa_.ack = SeqNum(1000);
    sa_.options.mptcp.clear();
    sa_.options
        .push_mptcp(MptcpOption::MpCapable(MpCapable {
            version: 1,
            flags,
            keys: MpCapableKeys::SynAck {
                sender_key: SERVER_KEY,
            },
        }))
        .unwrap();
    c.send(SERVER, CLIENT, &sa_, &[]);
    let _third = c.recv_one();
    c.events();
    (c, h, 5556, 1000)
}

fn server_ack(seq: u32, ack: u32) -> TcpRepr {
    let mut s = ack_template(seq, ack);
    s.src_port = 5499;
    s.dst_port = 54258;
    s.options
        .push_mptcp(Dss {
            data_ack: Some(DataSeq::Wide(CLIENT_IDSN + 1)),
            mapping: None,
            data_fin: false,
        })
        .unwrap();
    s
}

#[test]
fn forged_add_addr_is_ignored_and_a_genuine_one_is_echoed_and_joined() {
    let (mut c, h, seq, ack) = client_established();
    // Server proves it has our key (DSS), so joins are allowed.
    c.send(SERVER, CLIENT, &server_ack(seq, ack), &[]);
    let _ = c.recv();
    let announced: std::net::IpAddr = "10.31.1.3".parse().unwrap();
    // Like the kernel, the ADD_ADDR goes on an ACK without DSS (no room for both).
    let mut forged = ack_template(seq, ack);
    forged.src_port = 5499;
    forged.dst_port = 54258;
    forged
        .options
        .push_mptcp(MptcpOption::AddAddr(AddAddr {
            addr_id: 5,
            addr: announced,
            port: Some(5499),
            hmac: Some(0x1122_3344_5566_7788),
        }))
        .unwrap();
    c.send(SERVER, CLIENT, &forged, &[]);
    assert!(
        !c.events()
            .iter()
            .any(|e| matches!(e, Event::AddressAnnounced { .. }))
    );
    assert!(
        c.recv().iter().all(|s| !s.2.flags.contains(TcpFlags::SYN)),
        "no join to a forged address"
    );

    let hmac = add_addr_hmac(SERVER_KEY, CLIENT_KEY, 5, announced, Some(5499));
    let mut genuine = ack_template(seq, ack);
    genuine.src_port = 5499;
    genuine.dst_port = 54258;
    genuine
        .options
        .push_mptcp(MptcpOption::AddAddr(AddAddr {
            addr_id: 5,
            addr: announced,
            port: Some(5499),
            hmac: Some(hmac),
        }))
        .unwrap();
    c.send(SERVER, CLIENT, &genuine, &[]);
    assert!(c.events().contains(&Event::AddressAnnounced {
        addr: sa("10.31.1.3:5499")
    }));
    let out = c.recv();
    let echo = out.iter().find_map(|s| {
        s.2.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::AddAddr(a) if a.is_echo() => Some(*a),
            _ => None,
        })
    });
    assert_eq!(
        echo.map(|a| a.addr_id),
        Some(5),
        "ADD_ADDR echoed: {out:#?}"
    );
    let join = out
        .iter()
        .find(|s| s.2.flags.contains(TcpFlags::SYN) && s.1 == sa("10.31.1.3:5499"))
        .expect("a join SYN to the announced address");
    assert!(matches!(
        mptcp_of(&join.2)[0],
        MptcpOption::MpJoin(MpJoin::Syn {
            token: 0xf67bddb8,
            ..
        })
    ));
    let _ = h;
}

#[test]
fn replayed_join_never_attaches() {
    // The kernel's join goes through (its nonces), then an attacker who captured it replays
    // the SYN and the third ACK from another port: the server answers with a fresh nonce, so
    // the captured HMAC no longer matches.
    let (mut p, synack) = server_after_syn(&[SERVER_KEY, 0, 77, JOIN_SERVER_NONCE as u64]);
    let mut ack = ack_template(1001, synack.seq.0.wrapping_add(1));
    ack.options
        .push_mptcp(mpc(MpCapableKeys::Ack {
            sender_key: CLIENT_KEY,
            receiver_key: SERVER_KEY,
        }))
        .unwrap();
    p.send(CLIENT, SERVER, &ack, &[]);
    let hmac: [u8; 20] = unhex("30c26988c1f2bbb98dd59aac7290fa5328bcd29e")
        .try_into()
        .unwrap();
    for (from, port) in [(CLIENT_CELL, 52735u16), ("10.31.2.1:40000", 40000)] {
        let mut syn = join_syn(0xf67bddb8);
        syn.src_port = port;
        p.send(from, SERVER, &syn, &[]);
        let out = p.recv();
        let synack = out
            .iter()
            .find(|s| s.2.flags.contains(TcpFlags::SYN) && s.1 == sa(from))
            .map(|s| s.2)
            .expect("SYN/ACK for the join");
        let mut third = ack_template(syn.seq.0.wrapping_add(1), synack.seq.0.wrapping_add(1));
        third.src_port = port;
        third
            .options
            .push_mptcp(MptcpOption::MpJoin(MpJoin::Ack { hmac }))
            .unwrap();
        p.send(from, SERVER, &third, &[]);
    }
    let out = p.recv();
    let rsts: Vec<_> = out
        .iter()
        .filter(|s| s.2.flags.contains(TcpFlags::RST))
        .collect();
    assert_eq!(rsts.len(), 1, "only the replay is refused: {out:#?}");
    assert_eq!(rsts[0].1, sa("10.31.2.1:40000"));
    let h = p.ep.accept().unwrap();
    assert_eq!(
        p.ep.connection(h).unwrap().stats().paths.len(),
        2,
        "the genuine join only"
    );
}

#[test]
fn a_pressured_syn_queue_answers_with_cookies_and_keeps_no_state() {
    let cfg = EndpointConfig {
        listen: true,
        max_half_open: 4,
        ..EndpointConfig::default()
    };
    let mut p = Peer {
        ep: Endpoint::new(cfg, Box::new(Scripted::new(&[]))),
        now: Instant::now(),
    };
    // Five SYNs that never complete, from five ports: two get state (half the queue), the
    // rest are answered statelessly. Nothing is refused or reset.
    for (i, port) in [40001u16, 40002, 40003, 40005, 40006]
        .into_iter()
        .enumerate()
    {
        let mut syn = syn_template();
        syn.src_port = port;
        p.send(&format!("10.31.1.1:{port}"), SERVER, &syn, &[]);
        p.advance(Duration::from_millis(1));
        let out = p.recv();
        let syn_acks: Vec<_> = out
            .iter()
            .filter(|(_, _, r, _)| r.flags.contains(TcpFlags::SYN | TcpFlags::ACK))
            .collect();
        assert_eq!(syn_acks.len(), 1, "SYN {i} answered: {out:#?}");
        assert_eq!(syn_acks[0].1.port(), port);
        let mpc_in_syn_ack = syn_acks[0].2.options.mptcp.iter().any(|o| {
            matches!(
                o,
                MptcpOption::MpCapable(MpCapable {
                    keys: MpCapableKeys::SynAck { .. },
                    ..
                })
            )
        });
        assert!(
            mpc_in_syn_ack,
            "SYN {i}: the cookie SYN/ACK offers MPTCP too"
        );
        assert!(
            out.iter()
                .all(|(_, _, r, _)| !r.flags.contains(TcpFlags::RST))
        );
    }
    let s = p.ep.stats();
    assert_eq!(
        (p.ep.connection_count(), s.syn_cookies_sent),
        (2, 3),
        "{s:?}"
    );
    assert_eq!((s.refused, s.half_open_evicted), (0, 0));
    // An ACK with a made-up cookie is not a connection.
    let mut bogus = ack_template(1001, 0x1234_5678);
    bogus.src_port = 40007;
    p.send("10.31.1.1:40007", SERVER, &bogus, &[]);
    assert_eq!(p.ep.connection_count(), 2);
    // The honest client completes its handshake with the SYN/ACK it got.
    let mut syn = syn_template();
    syn.src_port = 40004;
    p.send("10.31.1.1:40004", SERVER, &syn, &[]);
    let out = p.recv();
    let (_, _, syn_ack, _) = out
        .iter()
        .find(|(_, remote, r, _)| remote.port() == 40004 && r.flags.contains(TcpFlags::SYN))
        .expect("a SYN/ACK for the honest client");
    let server_key = syn_ack
        .options
        .mptcp
        .iter()
        .find_map(|o| match o {
            MptcpOption::MpCapable(MpCapable {
                keys: MpCapableKeys::SynAck { sender_key },
                ..
            }) => Some(*sender_key),
            _ => None,
        })
        .expect("the server's key");
    let mut ack = ack_template(1001, syn_ack.seq.0.wrapping_add(1));
    ack.src_port = 40004;
    ack.options
        .push_mptcp(mpc(MpCapableKeys::Ack {
            sender_key: CLIENT_KEY,
            receiver_key: server_key,
        }))
        .unwrap();
    p.send("10.31.1.1:40004", SERVER, &ack, &[]);
    let established = p
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Connected))
        .count();
    assert_eq!(established, 1, "the honest client got in");
}

#[test]
fn mappings_near_the_end_of_the_64_bit_dsn_space_are_ignored_without_overflow() {
    let (mut p, synack) = server_established();
    let h = p.ep.accept().unwrap();
    let iss = synack.seq.0.wrapping_add(1);
    // Valid TCP numbers, but DSNs that put the data 2^64 - k bytes ahead (with and without a
    // DATA_FIN): in a debug build any unchecked addition would panic here.
    for (k, fin) in [(1u64, false), (3, true), (100, true), (1 << 40, false)] {
        let dsn = CLIENT_IDSN.wrapping_sub(k);
        p.send(CLIENT, SERVER, &dss_data(1001, iss, dsn, 1, 3, fin), b"abc");
        p.recv();
    }
    let stats = p.ep.connection(h).unwrap().stats();
    assert!(stats.signals_ignored >= 4, "{stats:?}");
    // The stream is intact: the real first bytes still go where they belong.
    p.send(
        CLIENT,
        SERVER,
        &dss_data(1001, iss, CLIENT_IDSN + 1, 1, 3, true),
        b"bye",
    );
    let c = p.ep.connection_mut(h).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf), Ok(3));
    assert_eq!(&buf[..3], b"bye");
    assert_eq!(c.read(&mut buf), Ok(0), "end of stream");
}

// Announce and the C flag (docs/ARCHITECTURE.md, "Announce and the C flag"): a server that
// announces its own address sets C in its SYN/ACK, sends ADD_ADDR once established, and
// takes joins only there; a client under C joins only announced addresses.

const ANNOUNCED: &str = "10.31.1.3:6001";

/// A listening endpoint announcing `ANNOUNCED` (id 1).
fn announcing_server(values: &[u64]) -> Peer {
    let cfg = EndpointConfig {
        listen: true,
        announce: vec![(1, sa(ANNOUNCED))],
        ..EndpointConfig::default()
    };
    Peer {
        ep: Endpoint::new(cfg, Box::new(Scripted::new(values))),
        now: Instant::now(),
    }
}

fn mpc_flags(r: &TcpRepr) -> Option<MpCapableFlags> {
    mptcp_of(r).iter().find_map(|o| match o {
        MptcpOption::MpCapable(m) => Some(m.flags),
        _ => None,
    })
}

/// The third ACK with the kernel's keys, for a server whose SYN/ACK was `synack`.
fn third_ack(synack: &TcpRepr) -> TcpRepr {
    let mut ack = ack_template(1001, synack.seq.0.wrapping_add(1));
    ack.options
        .push_mptcp(mpc(MpCapableKeys::Ack {
            sender_key: CLIENT_KEY,
            receiver_key: SERVER_KEY,
        }))
        .unwrap();
    ack
}

#[test]
fn syn_ack_carries_c_only_when_the_server_announces() {
    let (_p, plain) = server_after_syn(&[SERVER_KEY]);
    let flags = mpc_flags(&plain).expect("MP_CAPABLE in the SYN/ACK");
    assert!(!flags.contains(MpCapableFlags::C), "no announce, no C");

    let mut p = announcing_server(&[SERVER_KEY]);
    p.send(CLIENT, SERVER, &syn_template(), &[]);
    let synack = p.recv_one();
    let flags = mpc_flags(&synack).expect("MP_CAPABLE in the SYN/ACK");
    assert!(flags.contains(MpCapableFlags::C), "announcing: C set");
    assert!(flags.contains(MpCapableFlags::H));

    // A client that came in at the announced address may join it there: no C.
    let mut p = announcing_server(&[SERVER_KEY]);
    let mut syn = syn_template();
    syn.dst_port = 6001;
    p.send(CLIENT, ANNOUNCED, &syn, &[]);
    let synack = p.recv_one();
    let flags = mpc_flags(&synack).expect("MP_CAPABLE in the SYN/ACK");
    assert!(
        !flags.contains(MpCapableFlags::C),
        "at the announced address: no C"
    );
}

#[test]
fn add_addr_follows_establishment_with_a_valid_hmac() {
    let mut p = announcing_server(&[SERVER_KEY]);
    p.send(CLIENT, SERVER, &syn_template(), &[]);
    let synack = p.recv_one();
    assert!(
        !mptcp_of(&synack)
            .iter()
            .any(|o| matches!(o, MptcpOption::AddAddr(_))),
        "no ADD_ADDR before the client's key is known"
    );
    p.send(CLIENT, SERVER, &third_ack(&synack), &[]);
    // Right after the third ACK, with no data or timer in between.
    let out = p.recv();
    let add = out
        .iter()
        .find_map(|s| {
            mptcp_of(&s.2).into_iter().find_map(|o| match o {
                MptcpOption::AddAddr(a) => Some(a),
                _ => None,
            })
        })
        .unwrap_or_else(|| panic!("ADD_ADDR right after the third ACK: {out:#?}"));
    let announced = sa(ANNOUNCED);
    assert_eq!(
        (add.addr_id, add.addr, add.port),
        (1, announced.ip(), Some(6001))
    );
    let hmac = add.hmac.expect("ADD_ADDR carries an HMAC");
    assert!(verify_add_addr_hmac(
        SERVER_KEY,
        CLIENT_KEY,
        1,
        announced.ip(),
        Some(6001),
        hmac
    ));
}

#[test]
fn a_join_at_the_shared_address_is_refused_and_counted_under_c() {
    let mut p = announcing_server(&[SERVER_KEY, 0, 77, JOIN_SERVER_NONCE as u64]);
    p.send(CLIENT, SERVER, &syn_template(), &[]);
    let synack = p.recv_one();
    p.send(CLIENT, SERVER, &third_ack(&synack), &[]);
    let _ = p.recv();
    // The right token, at the shared (initial) address: refused.
    p.send(CLIENT_CELL, SERVER, &join_syn(0xf67bddb8), &[]);
    let rst = p.recv_one();
    assert!(rst.flags.contains(TcpFlags::RST));
    assert!(
        mptcp_of(&rst).iter().any(|o| matches!(
            o,
            MptcpOption::MpTcpRst(MpTcpRst {
                reason: TcpRstReason::AdministrativelyProhibited,
                ..
            })
        )),
        "{rst:#?}"
    );
    let st = p.ep.stats();
    assert_eq!((st.joins_rejected, st.joins_rejected_unannounced), (1, 1));
    // The same join at the announced address is answered.
    let mut join = join_syn(0xf67bddb8);
    join.dst_port = 6001;
    p.send(CLIENT_CELL, ANNOUNCED, &join, &[]);
    let out = p.recv();
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].2.flags.contains(TcpFlags::SYN | TcpFlags::ACK));
    assert!(matches!(
        mptcp_of(&out[0].2)[0],
        MptcpOption::MpJoin(MpJoin::SynAck { .. })
    ));
    assert_eq!(p.ep.stats().joins_rejected, 1, "nothing more refused");
}

#[test]
fn a_join_behind_a_nat_arrives_at_its_announced_port() {
    let mut p = announcing_server(&[SERVER_KEY, 0, 77, JOIN_SERVER_NONCE as u64]);
    // A balancer rewrites ANNOUNCED to this host's own address, port kept.
    p.ep.announce(1, sa(ANNOUNCED), sa("0.0.0.0:6001"));
    p.send(CLIENT, SERVER, &syn_template(), &[]);
    let synack = p.recv_one();
    p.send(CLIENT, SERVER, &third_ack(&synack), &[]);
    let _ = p.recv();
    let mut join = join_syn(0xf67bddb8);
    join.dst_port = 6001;
    p.send(CLIENT_CELL, "10.31.1.2:6001", &join, &[]);
    let out = p.recv_one();
    assert!(
        out.flags.contains(TcpFlags::SYN | TcpFlags::ACK),
        "{out:#?}"
    );
    assert_eq!(p.ep.stats().joins_rejected, 0);
}

/// A client whose server set C, established, with a cellular path as well.
fn client_under_c() -> (Peer, ConnectionHandle, u32, u32) {
    let (mut c, h, seq, ack) = client_established_with(MpCapableFlags::H | MpCapableFlags::C);
    c.send(SERVER, CLIENT, &server_ack(seq, ack), &[]);
    let _ = c.recv();
    let now = c.now;
    c.ep.add_path(
        now,
        h,
        PathSpec::new(PathId::new(2), InterfaceKind::Cellular, sa(CLIENT_CELL)),
    );
    c.events();
    (c, h, seq, ack)
}

#[test]
fn under_c_the_client_never_joins_the_initial_address_and_joins_announced_from_every_path() {
    let (mut c, _h, seq, ack) = client_under_c();
    let out = c.recv();
    assert!(
        out.iter().all(|s| !s.2.flags.contains(TcpFlags::SYN)),
        "no join to the initial address under C: {out:#?}"
    );
    c.advance(Duration::from_secs(3));
    assert!(c.recv().iter().all(|s| !s.2.flags.contains(TcpFlags::SYN)));

    let announced = sa(ANNOUNCED);
    let hmac = add_addr_hmac(SERVER_KEY, CLIENT_KEY, 1, announced.ip(), Some(6001));
    let mut add = ack_template(seq, ack);
    add.src_port = 5499;
    add.dst_port = 54258;
    add.options
        .push_mptcp(MptcpOption::AddAddr(AddAddr {
            addr_id: 1,
            addr: announced.ip(),
            port: Some(6001),
            hmac: Some(hmac),
        }))
        .unwrap();
    c.send(SERVER, CLIENT, &add, &[]);
    let out = c.recv();
    let mut joins: Vec<(SocketAddr, SocketAddr)> = out
        .iter()
        .filter(|s| s.2.flags.contains(TcpFlags::SYN))
        .map(|s| (s.0, s.1))
        .collect();
    joins.sort();
    assert_eq!(
        joins,
        vec![(sa(CLIENT), announced), (sa(CLIENT_CELL), announced)],
        "one join from each local path, both to the announced address"
    );
}

#[test]
fn under_c_losing_the_first_path_before_add_addr_is_reported() {
    let (mut c, h, _, _) = client_under_c();
    let _ = c.recv();
    let now = c.now;
    c.ep.remove_path(now, h, PathId::new(1));
    let ev = c.events();
    assert!(
        ev.contains(&Event::Closed(CloseError::InitialPathLost)),
        "{ev:?}"
    );
    let out = c.recv();
    assert!(
        out.iter().all(|s| !s.2.flags.contains(TcpFlags::SYN)),
        "nothing to join: {out:#?}"
    );
}
