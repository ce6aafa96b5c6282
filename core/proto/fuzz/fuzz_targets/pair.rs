//! Two sans-IO endpoints wired back to back (a client with up to two paths, a listening
//! server), delivering every datagram at once and advancing a virtual clock by 1 ms per
//! round. Records what each side last sent on every 4-tuple, so forgeries can use sequence
//! numbers that the live connection will find plausible.

use braid_proto::random::SeededRandom;
use braid_proto::wire::{self, DataSeq, MpCapable, MpCapableKeys};
use braid_proto::{
    ConnectionHandle, Endpoint, EndpointConfig, Event, InterfaceKind, PathId, PathSpec,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const SERVER: &str = "10.0.0.1:443";
pub const WIFI: &str = "10.0.1.2:40001";
pub const CELL: &str = "10.0.2.2:40002";

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// What one side last sent on one 4-tuple.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// Sequence number just after its last segment, and its ACK field.
    pub seq_next: u32,
    pub ack: u32,
    /// End of its last DSS mapping (next data sequence number), with the wire width.
    pub dsn_next: Option<DataSeq>,
    pub data_ack: Option<DataSeq>,
}

pub struct Pair {
    pub client: Endpoint,
    pub server: Endpoint,
    pub now: Instant,
    pub h: ConnectionHandle,
    pub sh: Option<ConnectionHandle>,
    /// (sender, receiver) -> what the sender last sent.
    pub seen: HashMap<(SocketAddr, SocketAddr), Seen>,
    pub client_paths_up: usize,
    pub closed: bool,
    /// Bytes the client and the server still write.
    pub to_write: [usize; 2],
    buf: Vec<u8>,
}

fn observe(seen: &mut Seen, bytes: &[u8], src: SocketAddr, dst: SocketAddr) {
    let Ok((seg, off)) = wire::parse_udp_payload(bytes, src.port(), dst.port()) else {
        return;
    };
    let len = (bytes.len() - off) as u32;
    seen.seq_next = seg
        .seq
        .0
        .wrapping_add(len + u32::from(seg.flags.contains(wire::TcpFlags::SYN)));
    seen.ack = seg.ack.0;
    if let Some(d) = seg.options.dss() {
        if let Some(a) = d.data_ack {
            seen.data_ack = Some(a);
        }
        if let Some(m) = d.mapping {
            let add = u64::from(m.data_len);
            seen.dsn_next = Some(match m.dsn {
                DataSeq::Wide(v) => DataSeq::Wide(v.wrapping_add(add)),
                DataSeq::Narrow(v) => DataSeq::Narrow(v.wrapping_add(add as u32)),
            });
        }
    }
    if let Some(MpCapable {
        keys:
            MpCapableKeys::AckData {
                sender_key,
                data_len,
                ..
            },
        ..
    }) = seg.options.mp_capable()
        && seen.dsn_next.is_none()
    {
        let v = wire::idsn(*sender_key).wrapping_add(1 + u64::from(*data_len));
        seen.dsn_next = Some(DataSeq::Wide(v));
    }
}

impl Pair {
    pub fn new(paths: usize, to_write: [usize; 2]) -> Pair {
        let mut server = Endpoint::new(
            EndpointConfig {
                listen: true,
                ..EndpointConfig::default()
            },
            Box::new(SeededRandom::new(1)),
        );
        let mut client = Endpoint::new(EndpointConfig::default(), Box::new(SeededRandom::new(2)));
        let _ = &mut server;
        let now = Instant::now();
        let h = client.connect(
            now,
            None,
            PathSpec::new(PathId::new(1), InterfaceKind::Wifi, sa(WIFI)),
            sa(SERVER),
        );
        if paths > 1 {
            client.add_path(now, h, PathSpec::new(PathId::new(2), InterfaceKind::Cellular, sa(CELL)));
        }
        Pair {
            client,
            server,
            now,
            h,
            sh: None,
            seen: HashMap::new(),
            client_paths_up: 0,
            closed: false,
            to_write,
            buf: vec![0u8; 65536],
        }
    }

    /// Hands `bytes` from `src` to whichever endpoint owns `dst`.
    pub fn deliver(&mut self, src: SocketAddr, dst: SocketAddr, bytes: &[u8]) {
        let ep = if dst == sa(SERVER) {
            &mut self.server
        } else {
            &mut self.client
        };
        let _ = ep.handle_segment(self.now, dst, src, bytes);
    }

    /// One round: applications write and read, every pending datagram is delivered, the
    /// clock moves 1 ms and due timers run.
    pub fn step(&mut self) {
        self.apps();
        for _ in 0..4 {
            let mut moved = false;
            for from_server in [false, true] {
                for _ in 0..512 {
                    let ep = if from_server {
                        &mut self.server
                    } else {
                        &mut self.client
                    };
                    let Some(t) = ep.poll_transmit(self.now, &mut self.buf) else {
                        break;
                    };
                    moved = true;
                    let bytes = self.buf[..t.len].to_vec();
                    let seen = self.seen.entry((t.local, t.remote)).or_default();
                    observe(seen, &bytes, t.local, t.remote);
                    self.deliver(t.local, t.remote, &bytes);
                }
            }
            if !moved {
                break;
            }
        }
        self.now += Duration::from_millis(1);
        for ep in [&mut self.client, &mut self.server] {
            if ep.poll_timeout().is_some_and(|t| t <= self.now) {
                ep.handle_timeout(self.now);
            }
        }
        self.apps();
    }

    fn apps(&mut self) {
        if self.sh.is_none() {
            self.sh = self.server.accept();
        }
        while let Some((_, e)) = self.client.poll_event() {
            match e {
                Event::PathUp { .. } => self.client_paths_up += 1,
                Event::Closed(_) => self.closed = true,
                _ => {}
            }
        }
        while self.server.poll_event().is_some() {}
        let chunk = [0xa5u8; 4096];
        let mut sink = [0u8; 8192];
        let hs = [(0, Some(self.h)), (1, self.sh)];
        for (i, h) in hs {
            let ep = if i == 0 {
                &mut self.client
            } else {
                &mut self.server
            };
            let Some(c) = h.and_then(|h| ep.connection_mut(h)) else {
                continue;
            };
            while self.to_write[i] > 0 {
                let n = self.to_write[i].min(chunk.len());
                match c.write(&chunk[..n]) {
                    Ok(k) if k > 0 => self.to_write[i] -= k,
                    _ => break,
                }
            }
            if self.to_write[i] == 0 {
                c.shutdown();
            }
            while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
        }
    }
}
