//! SYN cookies: under a SYN flood the listening endpoint answers SYNs without keeping state,
//! and rebuilds the connection from the ACK that completes the handshake.
//!
//! The initial sequence number of our SYN/ACK carries what must survive the round trip
//! (RFC 4987 §3.6): a time slot, the MSS (as an index into a small table), the window scale
//! and SACK, under a MAC keyed with a random secret. The MPTCP key of such a connection is
//! derived from the same secret and the cookie, so the MP_CAPABLE third ACK, which echoes
//! both keys (RFC 8684 §3.1), proves it too. See docs/ARCHITECTURE.md, "Security".

#![warn(missing_docs, unreachable_pub)]

use crate::random::Random;
use crate::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr, hmac_sha256};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// MSS values a cookie can carry; a SYN's MSS is rounded down to one of them.
const MSS_TABLE: [u16; 4] = [536, 1200, 1360, 1460];
/// A cookie is valid in its slot and the next one: 64 to 128 s.
const SLOT: Duration = Duration::from_secs(64);
/// The longest a cookie is valid.
pub const VALIDITY: Duration = Duration::from_secs(2 * 64);
/// Low bits: 2 slot, 2 MSS index, 4 window scale (15 = none), 1 SACK; the MAC fills the rest.
const DATA_BITS: u32 = 9;

/// What a valid cookie says about the SYN it answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieSyn {
    /// The SYN's MSS, rounded down to an entry of the small table the cookie indexes.
    pub mss: u16,
    /// The SYN's window scale, if it offered one.
    pub window_scale: Option<u8>,
    /// Whether the SYN offered SACK.
    pub sack: bool,
}

/// Stateless SYN cookies: a time slot and the SYN's options under a MAC keyed with a secret,
/// carried in the SYN/ACK's initial sequence number, so a flood of SYNs costs no state.
pub struct SynCookies {
    secret: [u8; 32],
    epoch: Option<Instant>,
}

impl SynCookies {
    /// Cookies under a fresh random secret.
    pub fn new(rng: &mut dyn Random) -> Self {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        Self {
            secret,
            epoch: None,
        }
    }

    fn slot(&mut self, now: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(now);
        (now.saturating_duration_since(epoch).as_secs() / SLOT.as_secs()) as u32
    }

    fn mac(&self, local: SocketAddr, remote: SocketAddr, client_isn: u32, low: u32) -> u32 {
        let mut msg = Vec::with_capacity(48);
        msg.extend_from_slice(b"syn-cookie");
        push_addr(&mut msg, local);
        push_addr(&mut msg, remote);
        msg.extend_from_slice(&client_isn.to_be_bytes());
        msg.extend_from_slice(&low.to_be_bytes());
        let h = hmac_sha256(&self.secret, &msg);
        u32::from_be_bytes([h[0], h[1], h[2], h[3]])
    }

    /// The ISS to answer `syn` with, and what it will say when it comes back.
    pub fn encode(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr,
    ) -> (u32, CookieSyn) {
        let slot = self.slot(now) & 3;
        let mss = syn.options.mss.unwrap_or(536);
        let mss_idx = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0);
        let ws = syn.options.window_scale.map(|w| w.min(14));
        let sack = syn.options.sack_permitted;
        let low = slot | (mss_idx as u32) << 2 | ws.map_or(15, u32::from) << 4 | (sack as u32) << 8;
        let mac = self.mac(local, remote, syn.seq.0, low);
        let said = CookieSyn {
            mss: MSS_TABLE[mss_idx],
            window_scale: ws,
            sack,
        };
        ((mac << DATA_BITS) | low, said)
    }

    /// Checks the cookie `iss` (the ACK number minus one) for the client ISN `client_isn`.
    pub fn decode(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        client_isn: u32,
        iss: u32,
    ) -> Option<CookieSyn> {
        let low = iss & ((1 << DATA_BITS) - 1);
        let slot_now = self.slot(now);
        let slot = low & 3;
        let fresh = slot == slot_now & 3 || slot == slot_now.wrapping_sub(1) & 3;
        let mac = self.mac(local, remote, client_isn, low);
        let expected = (mac << DATA_BITS) | low;
        if !fresh || !crate::wire::constant_time_eq(&expected.to_be_bytes(), &iss.to_be_bytes()) {
            return None;
        }
        let ws = (low >> 4) & 0xf;
        Some(CookieSyn {
            mss: MSS_TABLE[((low >> 2) & 3) as usize],
            window_scale: (ws != 15).then_some(ws as u8),
            sack: low >> 8 & 1 == 1,
        })
    }

    /// The MPTCP key of the connection answered with cookie `iss`.
    pub fn key(&self, local: SocketAddr, remote: SocketAddr, iss: u32) -> u64 {
        let mut msg = Vec::with_capacity(48);
        msg.extend_from_slice(b"syn-cookie-key");
        push_addr(&mut msg, local);
        push_addr(&mut msg, remote);
        msg.extend_from_slice(&iss.to_be_bytes());
        let h = hmac_sha256(&self.secret, &msg);
        u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
    }
}

impl CookieSyn {
    /// The SYN the cookie stands for, as the connection is built from it both when the
    /// SYN/ACK is written and when the final ACK brings the cookie back: same ports, ISN and
    /// window as `seg` (the SYN, or the ACK with its sequence number moved back by one), and
    /// only the options the cookie carries (timestamps are known from the segment itself).
    pub fn syn(&self, seg: &TcpRepr, isn: u32) -> TcpRepr {
        let mut o = TcpOptions::new();
        o.mss = Some(self.mss);
        o.window_scale = self.window_scale;
        o.sack_permitted = self.sack;
        o.timestamps = seg.options.timestamps.map(|(v, _)| (v, 0));
        TcpRepr {
            src_port: seg.src_port,
            dst_port: seg.dst_port,
            seq: SeqNum(isn),
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window: seg.window,
            urgent: 0,
            options: o,
        }
    }
}

fn push_addr(msg: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(v) => msg.extend_from_slice(&v.ip().octets()),
        SocketAddr::V6(v) => msg.extend_from_slice(&v.ip().octets()),
    }
    msg.extend_from_slice(&a.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    fn syn(mss: u16, ws: Option<u8>, sack: bool) -> TcpRepr {
        let mut o = TcpOptions::new();
        o.mss = Some(mss);
        o.window_scale = ws;
        o.sack_permitted = sack;
        TcpRepr {
            src_port: 1000,
            dst_port: 443,
            seq: SeqNum(0xdead_beef),
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window: 65535,
            urgent: 0,
            options: o,
        }
    }

    #[test]
    fn cookie_round_trips_and_rejects_forgeries_and_age() {
        let mut c = SynCookies::new(&mut SeededRandom::new(1));
        let (l, r): (SocketAddr, SocketAddr) = (
            "10.0.0.1:443".parse().unwrap(),
            "10.0.1.2:1000".parse().unwrap(),
        );
        let t0 = Instant::now();
        let s = syn(1400, Some(7), true);
        let (iss, said) = c.encode(t0, l, r, &s);
        let got = c.decode(t0 + Duration::from_secs(1), l, r, s.seq.0, iss);
        assert_eq!(got, Some(said), "decodes to what encode said");
        assert_eq!(
            got,
            Some(CookieSyn {
                mss: 1360,
                window_scale: Some(7),
                sack: true
            })
        );
        assert_eq!(
            c.decode(t0, l, r, s.seq.0 + 1, iss),
            None,
            "other client ISN"
        );
        let other: SocketAddr = "10.0.1.3:1000".parse().unwrap();
        assert_eq!(c.decode(t0, l, other, s.seq.0, iss), None, "other address");
        assert_eq!(
            c.decode(t0, l, r, s.seq.0, iss ^ 0x100_0000),
            None,
            "flipped bit"
        );
        assert!(
            c.decode(t0 + SLOT, l, r, s.seq.0, iss).is_some(),
            "next slot"
        );
        assert_eq!(c.decode(t0 + SLOT * 2, l, r, s.seq.0, iss), None, "too old");
        let plain = syn(536, None, false);
        let (iss, _) = c.encode(t0, l, r, &plain);
        let got = c.decode(t0, l, r, plain.seq.0, iss).unwrap();
        assert_eq!((got.mss, got.window_scale, got.sack), (536, None, false));
        assert_ne!(c.key(l, r, iss), c.key(l, r, iss ^ 1));
    }

    #[test]
    fn blind_guesses_almost_never_pass() {
        let mut c = SynCookies::new(&mut SeededRandom::new(2));
        let mut rng = SeededRandom::new(3);
        let (l, r): (SocketAddr, SocketAddr) = (
            "10.0.0.1:443".parse().unwrap(),
            "10.0.1.2:1000".parse().unwrap(),
        );
        let t0 = Instant::now();
        c.encode(t0, l, r, &syn(1460, None, false));
        let passed = (0..200_000)
            .filter(|_| c.decode(t0, l, r, 7, rng.next_u32()).is_some())
            .count();
        assert!(passed <= 2, "{passed} random cookies accepted");
    }
}
