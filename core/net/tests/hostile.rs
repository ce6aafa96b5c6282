//! A hostile peer that knows only the UDP 4-tuple of one subflow (WiFi), no keys and no
//! sequence numbers, forges TCP-in-UDP segments in both directions (as the client to the
//! gateway, as the gateway to the client) while a multi-megabyte transfer runs through the
//! gateway to a TCP server over two emulated paths. Whatever it sends, the transfer must
//! finish with identical bytes and no subflow may go down.

mod common;

use braid::ConnectionEvent;
use braid::emulator::{PathEmulator, Tap, Way};
use braid_proto::wire::{
    self, DataSeq, Dss, DssMapping, MpJoin, MpPrio, MptcpOption, RemoveAddr, SeqNum, TcpFlags,
    TcpOptions, TcpRepr,
};
use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the attacker sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    /// One DSS with DATA_FIN each way.
    DataFin,
    /// One DSS with an infinite mapping (data-level length 0) each way.
    InfiniteMapping,
    /// One REMOVE_ADDR naming every address id each way.
    RemoveAddr,
    /// One MP_PRIO asking for the WiFi subflow to become a backup, each way.
    MpPrio,
    /// DATA_ACKs each way; the four values are 2^30 apart in the 32-bit space, so whatever
    /// the real data sequence number, one of them is 1 to 2 GB ahead of it.
    DataAck,
    /// Eight RSTs with random sequence numbers each way.
    Rsts,
    /// A SYN with MP_JOIN carrying the gateway's token (seen in the cellular subflow's own
    /// join), sent to the gateway on the WiFi subflow's 4-tuple.
    JoinSyn,
}

/// A small xorshift generator: the attacker's "random" numbers, reproducible per test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn u32(&mut self) -> u32 {
        (self.next() >> 16) as u32
    }
}

/// A TCP-in-UDP payload (ports live in the UDP header) built with the codec's own emitter.
fn forge(flags: TcpFlags, seq: u32, ack: u32, mptcp: &[MptcpOption], payload: &[u8]) -> Vec<u8> {
    let mut options = TcpOptions::default();
    for &m in mptcp {
        options.push_mptcp(m).expect("forged options fit");
    }
    let repr = TcpRepr {
        src_port: 0,
        dst_port: 0,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65535,
        urgent: 0,
        options,
    };
    let mut buf = vec![0u8; 64 + payload.len()];
    let n = wire::emit_udp_payload(&repr, &mut buf).expect("forged header encodes");
    buf.truncate(n);
    buf.extend_from_slice(payload);
    buf
}

/// The datagrams of `attack` for one direction.
fn forgeries(attack: Attack, rng: &mut Rng, token: Option<u32>) -> Vec<Vec<u8>> {
    let ack = TcpFlags::ACK;
    match attack {
        Attack::DataFin => {
            let dss = Dss {
                data_ack: Some(DataSeq::Narrow(rng.u32())),
                mapping: Some(DssMapping {
                    dsn: DataSeq::Narrow(rng.u32()),
                    ssn: 0,
                    data_len: 1,
                    checksum: None,
                }),
                data_fin: true,
            };
            vec![forge(ack, rng.u32(), rng.u32(), &[dss.into()], &[])]
        }
        Attack::InfiniteMapping => {
            let dss = Dss {
                data_ack: None,
                mapping: Some(DssMapping {
                    dsn: DataSeq::Narrow(rng.u32()),
                    ssn: rng.u32(),
                    data_len: 0,
                    checksum: None,
                }),
                data_fin: false,
            };
            vec![forge(
                ack,
                rng.u32(),
                rng.u32(),
                &[dss.into()],
                &[0x42; 100],
            )]
        }
        Attack::RemoveAddr => {
            let ids: Vec<u8> = (0..8).collect();
            let r = RemoveAddr::new(&ids).expect("eight ids fit");
            vec![forge(ack, rng.u32(), rng.u32(), &[r.into()], &[])]
        }
        Attack::MpPrio => {
            let p = MpPrio { backup: true };
            vec![forge(ack, rng.u32(), rng.u32(), &[p.into()], &[])]
        }
        Attack::DataAck => {
            let base = rng.u32();
            (0..4u32)
                .map(|k| {
                    let dss = Dss {
                        data_ack: Some(DataSeq::Narrow(base.wrapping_add(k << 30))),
                        mapping: None,
                        data_fin: false,
                    };
                    forge(ack, rng.u32(), rng.u32(), &[dss.into()], &[])
                })
                .collect()
        }
        Attack::Rsts => (0..8)
            .map(|_| forge(TcpFlags::RST | ack, rng.u32(), rng.u32(), &[], &[]))
            .collect(),
        Attack::JoinSyn => {
            let Some(token) = token else {
                return Vec::new();
            };
            let j = MpJoin::Syn {
                backup: false,
                addr_id: 3,
                token,
                nonce: rng.u32(),
            };
            vec![forge(TcpFlags::SYN, rng.u32(), 0, &[j.into()], &[])]
        }
    }
}

/// Watches the cellular path for the client's MP_JOIN SYN and keeps the token it carries.
fn token_sniffer(found: Arc<Mutex<Option<u32>>>) -> Tap {
    Arc::new(move |way: Way, data: &[u8]| {
        if way != Way::Up {
            return;
        }
        let Ok((seg, _)) = wire::parse_udp_payload(data, 0, 0) else {
            return;
        };
        if let Some(MpJoin::Syn { token, .. }) = seg.options.mp_join() {
            *found.lock().unwrap() = Some(*token);
        }
    })
}

fn total_delivered(w: &PathEmulator, c: &PathEmulator) -> u64 {
    let (wu, wd) = w.stats();
    let (cu, cd) = c.stats();
    wu.delivered.bytes + wd.delivered.bytes + cu.delivered.bytes + cd.delivered.bytes
}

async fn attacked_transfer(attack: Attack, seed: u64) {
    init_log();
    let len: u64 = std::env::var("BRAID_ATTACK_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000_000);
    let (tcp, mut seen) = tcp_source_sink(len, seed).await;
    let (gw, _gstats, _gw_task, _stop) = gateway(vec![format!("{tcp}")], Default::default()).await;
    let (wifi_emu, cell_emu) = two_paths(gw).await;
    let token = Arc::new(Mutex::new(None));
    cell_emu.set_tap(Some(token_sniffer(token.clone())));
    let client = common::two_path_client(&wifi_emu, &cell_emu)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let conn = client.connect_via(gw, &tcp.to_string()).await.unwrap();
    let mut events = conn.events();
    let monitor = conn.monitor();
    // Every event up to the connection's end, with when it came.
    let log = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(e) = events.recv().await {
            let end = matches!(e, ConnectionEvent::Closed(_));
            all.push((Instant::now(), e));
            if end {
                break;
            }
        }
        all
    });
    let start = Instant::now();
    let (mut r, mut w) = conn.into_split();
    let writer =
        tokio::spawn(async move { send_stream(&mut w, seed + 1, len).await.map(|s| (s, w)) });
    let reader = tokio::spawn(async move { recv_stream(&mut r).await });

    // Attack once a quarter of the bytes moved and both subflows (and the join token) exist.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let both = wifi_emu.clients().len() == 1 && cell_emu.clients().len() == 1;
        let have_token = attack != Attack::JoinSyn || token.lock().unwrap().is_some();
        if both && have_token && total_delivered(&wifi_emu, &cell_emu) >= len / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transfer never got going before the attack (delivered {} B)",
            total_delivered(&wifi_emu, &cell_emu)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = wifi_emu.clients()[0];
    let before = wifi_emu.stats();
    let attacked_at = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
    let tok = *token.lock().unwrap();
    let mut sent = 0;
    for d in forgeries(attack, &mut rng, tok) {
        // The WiFi emulator has one flow: the victim subflow's.
        assert_eq!(wifi_emu.inject_up(&d), 1, "inject towards the gateway");
        sent += 1;
    }
    if attack != Attack::JoinSyn {
        for d in forgeries(attack, &mut rng, tok) {
            wifi_emu
                .inject_down(victim, &d)
                .expect("inject towards the client");
            sent += 1;
        }
    }
    eprintln!(
        "{attack:?}: {sent} forged datagrams on {victim}'s 4-tuple at {:?}",
        attacked_at - start
    );

    let (recv_len, recv_sha) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap_or_else(|_| panic!("{attack:?}: download stalled"))
        .unwrap()
        .unwrap_or_else(|e| panic!("{attack:?}: download failed: {e}"));
    let (sent_sha, _w) = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .unwrap_or_else(|_| panic!("{attack:?}: upload stalled"))
        .unwrap()
        .unwrap_or_else(|e| panic!("{attack:?}: upload failed: {e}"));
    let server = tokio::time::timeout(Duration::from_secs(30), seen.recv())
        .await
        .unwrap_or_else(|_| panic!("{attack:?}: the TCP server never saw the upload end"))
        .expect("server side result");
    let after = wifi_emu.stats();
    let stats = monitor.stats();
    let evs = tokio::time::timeout(Duration::from_secs(10), log)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let elapsed = start.elapsed();

    // Events up to the end of the connection: its own close reports paths down too.
    let live: Vec<&ConnectionEvent> = evs
        .iter()
        .map(|(_, e)| e)
        .take_while(|e| !matches!(e, ConnectionEvent::Closed(_)))
        .collect();
    let wifi_up = after.0.delivered.bytes - before.0.delivered.bytes;
    let wifi_down = after.1.delivered.bytes - before.1.delivered.bytes;
    eprintln!(
        "{attack:?}: {len} B each way in {elapsed:?}; WiFi after the attack: up {wifi_up} B, \
         down {wifi_down} B; events {live:?}; closed {:?}",
        evs.last().map(|(_, e)| e)
    );
    assert_eq!(recv_len, len, "{attack:?}: download length");
    assert_eq!(recv_sha, server.sent_sha, "{attack:?}: download corrupted");
    assert_eq!(server.received, len, "{attack:?}: upload length");
    assert_eq!(
        server.received_sha, sent_sha,
        "{attack:?}: upload corrupted"
    );
    let downs: Vec<_> = live
        .iter()
        .filter(|e| matches!(e, ConnectionEvent::PathDown { .. }))
        .collect();
    assert!(downs.is_empty(), "{attack:?}: paths went down: {downs:?}");
    let prio: Vec<_> = live
        .iter()
        .filter(|e| matches!(e, ConnectionEvent::BackupChanged { .. }))
        .collect();
    assert!(
        prio.is_empty(),
        "{attack:?}: backup flags changed: {prio:?}"
    );
    if let Some(s) = stats {
        assert_eq!(
            s.subflows_closed, 0,
            "{attack:?}: subflows torn down before the end: {:?}",
            s.closed_paths
        );
    }
    // The attacked subflow keeps carrying its share both ways: WiFi has the lower RTT, so
    // a healthy WiFi subflow moves well over a fifth of what is left after the attack.
    let left = 2 * len - (before.0.delivered.bytes + before.1.delivered.bytes).min(2 * len);
    let wifi_after = wifi_up + wifi_down;
    assert!(
        wifi_up > 0 && wifi_down > 0 && wifi_after * 5 >= left,
        "{attack:?}: the attacked WiFi subflow stopped carrying data (up {wifi_up} B, down \
         {wifi_down} B of about {left} B left)"
    );
    drop(cell_emu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_data_fin_changes_nothing() {
    attacked_transfer(Attack::DataFin, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_infinite_mapping_changes_nothing() {
    attacked_transfer(Attack::InfiniteMapping, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_remove_addr_changes_nothing() {
    attacked_transfer(Attack::RemoveAddr, 13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_mp_prio_changes_nothing() {
    attacked_transfer(Attack::MpPrio, 14).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_data_ack_changes_nothing() {
    attacked_transfer(Attack::DataAck, 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_random_rsts_change_nothing() {
    attacked_transfer(Attack::Rsts, 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_syn_with_the_known_token_changes_nothing() {
    attacked_transfer(Attack::JoinSyn, 17).await;
}
