//! Notices a path that loses the datagrams sent in GSO batches while those sent one by one
//! get through, and turns GSO off for it.
//!
//! Why: a UDP GSO batch is cut into datagrams by the sending host's kernel, after netfilter.
//! Linux 6.18 gets the UDP checksum of those datagrams wrong when the socket's reply is
//! rewritten by a local NAT (a DNAT in front of the gateway, kube-proxy) and the egress
//! device has no checksum offload (veth with `tx off`, TUN): the receiver drops every one of
//! them, nothing is reported to the sender, and the connection starves (docs/ARCHITECTURE.md,
//! "GSO behind a NAT"). A middlebox that drops large bursts would look the same.
//!
//! How: the driver tells the guard about every data-carrying TCP-in-UDP datagram it sent,
//! whether it went in a batch, and its sequence number. The engine sends a sequence number
//! again only when it thinks the first copy was lost, so a repeat is a loss of the first
//! copy's class. When batched copies are lost far more often than single ones, the flow
//! falls back to one datagram per send call, for good (GSO only saves CPU; losing it never
//! costs correctness).

use braid_proto::endpoint::hash::{HandleHasher, KeyedMap};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Losses of batched datagrams before the guard judges (a few bursts' worth).
const MIN_BATCHED_LOSSES: u64 = 12;
/// Batched datagrams lost, at least this share, to call the batches broken.
const BROKEN_SHARE: f64 = 0.25;
/// Single datagrams must do this many times better than batched ones.
const SINGLE_ADVANTAGE: f64 = 4.0;
/// Counters are halved past this many datagrams so they describe the recent past.
const WINDOW: u64 = 8192;
/// Sequence numbers remembered per flow (about a 12 MB window of 1400-byte datagrams).
const MAX_TRACKED: usize = 8192;
/// A flow nobody sent on for this long is forgotten.
const IDLE: Duration = Duration::from_secs(120);
/// Flows from one local address that lost their batches before every new flow from that
/// address starts without GSO (a gateway behind a NAT would otherwise pay the losses that
/// teach the guard once per client).
const LOCAL_VERDICTS: u32 = 3;

/// Sent and lost datagrams of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Count {
    pub sent: u64,
    pub lost: u64,
}

impl Count {
    fn share(self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 / self.sent as f64
        }
    }
}

/// Why a flow stopped using GSO: the counts that decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub batched: Count,
    pub single: Count,
    /// This verdict made every flow from the same local address go unbatched.
    pub whole_local: bool,
}

impl Verdict {
    pub(crate) fn reason(&self) -> String {
        format!(
            "{} of {} datagrams sent in GSO batches were lost against {} of {} sent one by one",
            self.batched.lost, self.batched.sent, self.single.lost, self.single.sent
        )
    }
}

#[derive(Debug)]
struct Flow {
    /// Sequence number of each data datagram in flight -> it went in a batch.
    /// Our own sequence numbers: hashed cheaply (nobody else picks them).
    seqs: HashMap<u32, bool, BuildHasherDefault<HandleHasher>>,
    batched: Count,
    single: Count,
    off: bool,
    last: Instant,
}

/// Per (local, remote) flow health of GSO batches.
#[derive(Debug, Default)]
pub(crate) struct GsoGuard {
    flows: KeyedMap<(SocketAddr, SocketAddr), Flow>,
    /// Verdicts per local address; at `LOCAL_VERDICTS` the address sends unbatched.
    locals: KeyedMap<SocketAddr, u32>,
    last_sweep: Option<Instant>,
}

impl GsoGuard {
    /// True when the flow must be sent one datagram at a time.
    pub(crate) fn is_off(&self, key: &(SocketAddr, SocketAddr)) -> bool {
        self.local_off(&key.0) || self.flows.get(key).is_some_and(|f| f.off)
    }

    fn local_off(&self, local: &SocketAddr) -> bool {
        self.locals.get(local).is_some_and(|n| *n >= LOCAL_VERDICTS)
    }

    /// Records one sent TCP-in-UDP datagram. Returns the verdict when this send made the
    /// guard turn GSO off for the flow (once per flow).
    #[cfg(test)]
    pub(crate) fn on_sent(
        &mut self,
        now: Instant,
        key: (SocketAddr, SocketAddr),
        datagram: &[u8],
        batched: bool,
    ) -> Option<Verdict> {
        self.on_sent_batch(now, key, [datagram], batched)
    }

    /// Records the TCP-in-UDP datagrams of one send call (one flow looked up per batch, not
    /// per datagram). Returns the verdict when they made the guard turn GSO off for the flow
    /// (once per flow).
    pub(crate) fn on_sent_batch<'a>(
        &mut self,
        now: Instant,
        key: (SocketAddr, SocketAddr),
        datagrams: impl IntoIterator<Item = &'a [u8]>,
        batched: bool,
    ) -> Option<Verdict> {
        let mut seqs = datagrams.into_iter().filter_map(data_seq).peekable();
        seqs.peek()?;
        if self.local_off(&key.0) {
            return None;
        }
        self.sweep(now);
        let flow = self.flows.entry(key).or_insert_with(|| Flow {
            seqs: HashMap::default(),
            batched: Count::default(),
            single: Count::default(),
            off: false,
            last: now,
        });
        flow.last = now;
        if flow.off {
            return None;
        }
        for seq in seqs {
            if flow.seqs.len() >= MAX_TRACKED {
                // Bounded memory: older history goes; what follows is judged afresh.
                flow.seqs.clear();
            }
            if let Some(first_batched) = flow.seqs.insert(seq, batched) {
                if first_batched {
                    flow.batched.lost += 1;
                } else {
                    flow.single.lost += 1;
                }
            }
            if batched {
                flow.batched.sent += 1;
            } else {
                flow.single.sent += 1;
            }
            if flow.batched.sent + flow.single.sent > WINDOW {
                for c in [&mut flow.batched, &mut flow.single] {
                    c.sent /= 2;
                    c.lost /= 2;
                }
            }
            let (b, s) = (flow.batched, flow.single);
            let broken = b.lost >= MIN_BATCHED_LOSSES
                && b.share() >= BROKEN_SHARE
                && s.share() * SINGLE_ADVANTAGE <= b.share();
            if broken {
                flow.off = true;
                flow.seqs = HashMap::default();
                let n = self.locals.entry(key.0).or_insert(0);
                *n += 1;
                return Some(Verdict {
                    batched: b,
                    single: s,
                    whole_local: *n == LOCAL_VERDICTS,
                });
            }
        }
        None
    }

    /// Forgets flows idle for long (the gateway sees many peers come and go).
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < IDLE)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.flows
            .retain(|_, f| now.saturating_duration_since(f.last) < IDLE);
    }
}

/// The sequence number of a TCP-in-UDP datagram that carries data (or SYN/FIN, which also
/// take sequence space and are retransmitted); `None` for pure ACKs and anything too short.
fn data_seq(d: &[u8]) -> Option<u32> {
    const SYN: u8 = 0x02;
    const FIN: u8 = 0x01;
    if d.len() < 12 {
        return None;
    }
    // Framed header: TCP header length (data offset) minus the 8 bytes the UDP header holds.
    let header = usize::from(d[0] >> 4) * 4;
    let framed = header.checked_sub(8)?;
    let carries = d.len() > framed || d[1] & (SYN | FIN) != 0;
    carries.then(|| u32::from_be_bytes([d[4], d[5], d[6], d[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (SocketAddr, SocketAddr) {
        (
            "10.0.0.2:7001".parse().unwrap(),
            "10.0.0.1:40000".parse().unwrap(),
        )
    }

    /// A framed data segment: 20-byte TCP header (12 framed bytes), `len` bytes of data.
    fn seg(seq: u32, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; 12 + len];
        d[0] = 5 << 4;
        d[1] = 0x10;
        d[4..8].copy_from_slice(&seq.to_be_bytes());
        d
    }

    #[test]
    fn pure_acks_and_garbage_are_ignored() {
        assert_eq!(data_seq(&seg(7, 0)), None);
        assert_eq!(data_seq(&[0u8; 5]), None);
        // Data offset below the fixed header: not a TCP-in-UDP datagram.
        let mut bad = seg(7, 100);
        bad[0] = 1 << 4;
        assert_eq!(data_seq(&bad), None);
        assert_eq!(data_seq(&seg(7, 100)), Some(7));
        let mut fin = seg(9, 0);
        fin[1] |= 0x01;
        assert_eq!(data_seq(&fin), Some(9));
    }

    /// Every batched datagram lost and sent again (singly), single ones fine: GSO goes off
    /// after a dozen losses, once.
    #[test]
    fn lost_batches_with_healthy_singles_turn_gso_off() {
        let mut g = GsoGuard::default();
        let now = Instant::now();
        let mut seq = 0u32;
        let mut verdict = None;
        for round in 0..50 {
            // Ten single datagrams that arrive.
            for _ in 0..10 {
                assert!(g.on_sent(now, key(), &seg(seq, 1400), false).is_none());
                seq = seq.wrapping_add(1400);
            }
            // A batch of four, all lost, then retransmitted one by one.
            let first = seq;
            for _ in 0..4 {
                assert!(g.on_sent(now, key(), &seg(seq, 1400), true).is_none());
                seq = seq.wrapping_add(1400);
            }
            for k in 0..4 {
                if let Some(v) = g.on_sent(now, key(), &seg(first + k * 1400, 1400), false) {
                    verdict = Some((round, v));
                }
            }
            if verdict.is_some() {
                break;
            }
        }
        let (round, v) = verdict.expect("GSO must go off");
        assert!(round < 5, "took {round} rounds");
        assert!(v.batched.lost >= MIN_BATCHED_LOSSES);
        assert_eq!(v.single.lost, 0);
        assert!(g.is_off(&key()));
        assert!(v.reason().contains("GSO batches were lost"));
        // Once off, no second verdict.
        assert!(
            g.on_sent(now, key(), &seg(first_free(seq), 1400), true)
                .is_none()
        );
    }

    fn first_free(seq: u32) -> u32 {
        seq.wrapping_add(1_000_000)
    }

    /// Congestion-like loss hitting both classes alike never turns GSO off.
    #[test]
    fn loss_on_both_classes_keeps_gso() {
        let mut g = GsoGuard::default();
        let now = Instant::now();
        let mut seq = 0u32;
        for i in 0..20_000u32 {
            let batched = i % 3 != 0;
            assert!(g.on_sent(now, key(), &seg(seq, 1400), batched).is_none());
            if i % 10 == 0 {
                // One in ten lost, whatever its class, and sent again.
                assert!(g.on_sent(now, key(), &seg(seq, 1400), false).is_none());
            }
            seq = seq.wrapping_add(1400);
        }
        assert!(!g.is_off(&key()));
    }

    /// A dead path (everything lost) is not a GSO problem.
    #[test]
    fn everything_lost_keeps_gso() {
        let mut g = GsoGuard::default();
        let now = Instant::now();
        for round in 0..200u32 {
            let seq = (round % 20) * 1400;
            assert!(
                g.on_sent(now, key(), &seg(seq, 1400), round % 2 == 0)
                    .is_none()
            );
        }
        assert!(!g.is_off(&key()));
    }

    /// After a few flows from one local address lost their batches, new flows from it start
    /// unbatched; other local addresses are not affected.
    #[test]
    fn repeated_verdicts_turn_gso_off_for_the_local_address() {
        let mut g = GsoGuard::default();
        let now = Instant::now();
        let local: SocketAddr = "10.0.0.2:7001".parse().unwrap();
        let mut whole = Vec::new();
        for peer in 0..LOCAL_VERDICTS {
            let key = (local, SocketAddr::from(([10, 0, 1, peer as u8], 5000)));
            assert!(!g.is_off(&key));
            let mut v = None;
            for i in 0..100u32 {
                // Every batched datagram sent twice (lost once), singles fine.
                g.on_sent(now, key, &seg(i * 2800, 1400), false);
                v = v.or(g.on_sent(now, key, &seg(i * 2800 + 1400, 1400), true));
                v = v.or(g.on_sent(now, key, &seg(i * 2800 + 1400, 1400), true));
            }
            whole.push(v.expect("verdict").whole_local);
        }
        assert_eq!(whole.last(), Some(&true));
        assert!(whole[..whole.len() - 1].iter().all(|w| !w));
        let fresh = (local, "10.0.2.1:6000".parse().unwrap());
        assert!(g.is_off(&fresh));
        let other = ("10.0.9.2:7001".parse().unwrap(), fresh.1);
        assert!(!g.is_off(&other));
    }

    #[test]
    fn idle_flows_are_forgotten_and_memory_is_bounded() {
        let mut g = GsoGuard::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 * 2) {
            g.on_sent(t0, key(), &seg(i * 1400, 1400), true);
        }
        assert!(g.flows[&key()].seqs.len() <= MAX_TRACKED);
        let other = (key().0, "10.0.0.9:1".parse().unwrap());
        g.on_sent(t0 + IDLE * 2, other, &seg(1, 10), false);
        assert!(!g.flows.contains_key(&key()));
        assert!(g.flows.contains_key(&other));
    }
}
