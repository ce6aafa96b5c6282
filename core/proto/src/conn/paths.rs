//! Addresses: local paths (interfaces) the connection may use, remote addresses the peer
//! announced, and the ADD_ADDR / REMOVE_ADDR signalling. Which of them carry subflows is
//! the path manager's decision (`path_manager/`).

use super::path_manager::{PathManager, PmEvent};
use super::{Connection, Event, Role, SubflowEntry};
use crate::random::Random;
use crate::wire::{self, AddAddr, MptcpOption, RemoveAddr};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// An address we announce, until the peer echoes it.
#[derive(Clone, Debug)]
struct Announcement {
    id: u8,
    addr: SocketAddr,
    echoed: bool,
    sent_at: Option<Instant>,
    attempts: u32,
}

/// ADD_ADDR retransmissions before giving up on an echo.
const ADD_ADDR_ATTEMPTS: u32 = 4;
const ADD_ADDR_RETRY: Duration = Duration::from_millis(500);

/// ADD_ADDR / REMOVE_ADDR signalling: our announcements until echoed, echoes of the peer's,
/// and removals to send.
#[derive(Debug, Default)]
pub(crate) struct AddrSignals {
    announcements: Vec<Announcement>,
    echoes: VecDeque<AddAddr>,
    removals: VecDeque<u8>,
    /// Forged or unacceptable ADD_ADDRs ignored.
    rejected_add_addr: u64,
}

impl AddrSignals {
    /// Queues a REMOVE_ADDR for one of our address ids.
    pub(crate) fn announce_removal(&mut self, addr_id: u8) {
        if !self.removals.contains(&addr_id) {
            self.removals.push_back(addr_id);
        }
    }

    /// The interface came back: a REMOVE_ADDR for it that has not gone out yet is moot.
    pub(crate) fn cancel_removal(&mut self, addr_id: u8) {
        self.removals.retain(|&id| id != addr_id);
    }

    /// The address id a server uses for one of its addresses (0 unless announced).
    pub(crate) fn server_addr_id(&self, local: SocketAddr) -> u8 {
        self.announcements
            .iter()
            .find(|a| a.addr == local)
            .map_or(0, |a| a.id)
    }

    /// When an unechoed ADD_ADDR is due again.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.announcements
            .iter()
            .filter(|a| !a.echoed && a.attempts < ADD_ADDR_ATTEMPTS)
            .filter_map(|a| a.sent_at.map(|t| t + ADD_ADDR_RETRY))
            .min()
    }

    /// Queues an ADD_ADDR for `addr` (server side, or a client announcing a new address).
    pub(crate) fn announce(&mut self, id: u8, addr: SocketAddr) {
        if self.announcements.iter().any(|a| a.addr == addr) {
            return;
        }
        self.announcements.push(Announcement {
            id,
            addr,
            echoed: false,
            sent_at: None,
            attempts: 0,
        });
    }

    pub(crate) fn withdraw(&mut self, addr: SocketAddr) {
        if let Some(i) = self.announcements.iter().position(|a| a.addr == addr) {
            let a = self.announcements.remove(i);
            self.removals.push_back(a.id);
        }
    }

    /// An ADD_ADDR, echo or REMOVE_ADDR is waiting to go out.
    pub(crate) fn pending(&self) -> bool {
        !self.echoes.is_empty()
            || !self.removals.is_empty()
            || self.due_announcement(None).is_some()
    }

    fn due_announcement(&self, now: Option<Instant>) -> Option<usize> {
        self.announcements.iter().position(|a| {
            !a.echoed
                && a.attempts < ADD_ADDR_ATTEMPTS
                && match (a.sent_at, now) {
                    (None, _) => true,
                    (Some(t), Some(now)) => t + ADD_ADDR_RETRY <= now,
                    (Some(_), None) => false,
                }
        })
    }

    /// Marks an announcement whose retransmission time came as due again.
    pub(crate) fn timeout(&mut self, now: Instant) {
        if let Some(i) = self.due_announcement(Some(now)) {
            self.announcements[i].sent_at = None;
        }
    }

    /// The next signalling option to send. `local_key`/`remote_key` authenticate ADD_ADDR.
    pub(crate) fn next(
        &mut self,
        now: Instant,
        local_key: u64,
        remote_key: u64,
    ) -> Option<MptcpOption> {
        if let Some(echo) = self.echoes.pop_front() {
            return Some(MptcpOption::AddAddr(echo));
        }
        if let Some(id) = self.removals.pop_front() {
            return RemoveAddr::new(&[id]).ok().map(MptcpOption::RemoveAddr);
        }
        let i = self.due_announcement(None)?;
        let a = &mut self.announcements[i];
        a.attempts += 1;
        a.sent_at = Some(now);
        let port = Some(a.addr.port());
        let hmac = wire::add_addr_hmac(local_key, remote_key, a.id, a.addr.ip(), port);
        Some(MptcpOption::AddAddr(AddAddr {
            addr_id: a.id,
            addr: a.addr.ip(),
            port,
            hmac: Some(hmac),
        }))
    }
}

/// What other parts of the connection ask the path manager about addresses and signals.
impl PathManager {
    pub(crate) fn server_addr_id(&self, local: SocketAddr) -> u8 {
        self.signals.server_addr_id(local)
    }

    pub(crate) fn has_signal(&self) -> bool {
        self.signals.pending()
    }

    pub(crate) fn next_signal(
        &mut self,
        now: Instant,
        local_key: u64,
        remote_key: u64,
    ) -> Option<MptcpOption> {
        self.signals.next(now, local_key, remote_key)
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline()
    }

    /// What the policy allows on this subflow for data now (see `carries_data`).
    pub(crate) fn data_allowed(&self, e: &SubflowEntry) -> bool {
        self.carries_data(e.kind, e.path)
    }
}

impl Connection {
    /// Paths waiting for a subflow get one (client side): the path manager's decisions,
    /// opening included, applied. Called after every input; cheap when nothing is due.
    pub(crate) fn manage_paths(&mut self, now: Instant, rng: &mut dyn Random) {
        let facts = self.path_facts();
        if !(facts.open && self.paths.open_due() || facts.steer && self.paths.steer_due()) {
            return;
        }
        self.run_path_manager(now, None, Some(rng));
    }

    /// Whether the peer can take a join: it knows our key once it sent a DSS (client
    /// side; RFC 8684 §3.2 has the same precondition).
    pub(super) fn fully_established_for_joins(&self) -> bool {
        self.fully_established || self.role == Role::Server
    }

    /// Client under the C flag with no announced address yet: once the initial subflow is
    /// gone no subflow can ever be opened again, so waiting for one is pointless.
    pub(crate) fn nothing_to_join(&self) -> bool {
        self.role == Role::Client
            && self.paths.initial_join_denied
            && self.paths.remote_count() == 0
    }

    /// ADD_ADDR from the peer: authenticate, echo, remember, maybe join.
    pub(crate) fn on_add_addr(&mut self, now: Instant, a: &AddAddr) {
        let Some(remote_key) = self.keys.remote else {
            return;
        };
        if a.is_echo() {
            // Our own announcement coming back.
            for ann in &mut self.paths.signals.announcements {
                if ann.id == a.addr_id && ann.addr.ip() == a.addr {
                    ann.echoed = true;
                }
            }
            return;
        }
        let ok = a.hmac.is_some_and(|h| {
            wire::verify_add_addr_hmac(remote_key, self.keys.local, a.addr_id, a.addr, a.port, h)
        });
        if !ok {
            self.paths.signals.rejected_add_addr += 1;
            return;
        }
        let addr = SocketAddr::new(a.addr, a.port.unwrap_or(self.remote.port()));
        self.paths.signals.echoes.push_back(AddAddr {
            addr_id: a.addr_id,
            addr: a.addr,
            port: a.port,
            hmac: None,
        });
        let known = self.paths.remote_known(a.addr_id);
        let acceptable =
            join_target_allowed(self.remote, addr) && self.paths.remote_count() < MAX_REMOTES;
        if !known && !acceptable {
            // A (possibly malicious) server must not make us connect anywhere: only
            // addresses like its own, and only a few (see docs/ARCHITECTURE.md, "Security").
            self.paths.signals.rejected_add_addr += 1;
            return;
        }
        if !known {
            self.events.push_back(Event::AddressAnnounced { addr });
            let event = PmEvent::AddAddr {
                id: a.addr_id,
                addr,
            };
            self.paths.handle(now, event, &mut []);
        }
    }

    /// REMOVE_ADDR from the peer: forget the addresses, stop sending on the subflows to them
    /// (their outstanding data goes out elsewhere at once) and probe them; those that do
    /// not answer within an RTO are closed (RFC 8684 §3.4.2). One that still answers is
    /// used again: the address is evidently still there.
    pub(crate) fn on_remove_addr(&mut self, now: Instant, ids: &[u8]) {
        self.paths
            .handle(now, PmEvent::RemoveAddr(ids.to_vec()), &mut []);
        let alone = self.subflows.len() <= 1;
        let mut moved = Vec::new();
        for e in &mut self.subflows {
            let target = ids.contains(&e.remote_addr_id) && !(e.initial && alone);
            if target && !e.sf.is_closed() && e.remove_probe.is_none() {
                let wait = e.sf.rtt.rto().max(std::time::Duration::from_millis(200));
                e.remove_probe = Some((now, now + wait));
                e.sf.probe_now();
                moved.extend(e.unacked_data(self.data_una));
            }
        }
        if self.subflows.iter().any(|e| e.usable()) {
            self.queue_reinjection(moved);
        }
    }

    /// Closes the subflows whose REMOVE_ADDR probe went unanswered.
    pub(crate) fn finish_remove_probes(&mut self, now: Instant) {
        for i in 0..self.subflows.len() {
            let e = &mut self.subflows[i];
            let Some((sent, deadline)) = e.remove_probe else {
                continue;
            };
            if e.sf.last_received > sent {
                e.remove_probe = None;
            } else if deadline <= now {
                e.remove_probe = None;
                self.abort_subflow(now, i);
            }
        }
    }

    /// Announces one of our addresses to the peer (ADD_ADDR).
    pub fn announce_address(&mut self, id: u8, addr: SocketAddr) {
        self.paths.signals.announce(id, addr);
    }

    /// Server side: the SYN/ACK carries C, so the client joins only announced addresses.
    pub(crate) fn deny_initial_join(&mut self) {
        self.paths.initial_join_denied = true;
    }

    /// Withdraws an announced address (REMOVE_ADDR).
    /// Our subflows on that address are reset too: the peer checks a REMOVE_ADDR by probing
    /// the subflows it names, and keeps any that still answers.
    pub fn withdraw_address(&mut self, addr: SocketAddr) {
        self.paths.signals.withdraw(addr);
        let now = self.last_input;
        for i in 0..self.subflows.len() {
            let e = &self.subflows[i];
            if e.sf.local == addr && !e.sf.is_closed() {
                self.abort_subflow(now, i);
            }
        }
    }
}

/// Most addresses a peer may announce to one connection.
const MAX_REMOTES: usize = 8;

/// Whether we may open a subflow to `target`, announced by the peer at `server`: not
/// loopback, unspecified, multicast or broadcast, not port 0, and of the same family and
/// scope (global, private, link-local, loopback) as the address we reached the peer on.
pub(crate) fn join_target_allowed(server: SocketAddr, target: SocketAddr) -> bool {
    use crate::addr_scope::{Scope, scope};
    let (s, t) = (scope(server.ip()), scope(target.ip()));
    target.port() != 0 && server.is_ipv4() == target.is_ipv4() && t != Scope::Unroutable && s == t
}

#[cfg(test)]
mod tests {
    use super::join_target_allowed;

    #[test]
    fn announced_addresses_must_look_like_the_servers() {
        let ok = |s: &str, t: &str| join_target_allowed(s.parse().unwrap(), t.parse().unwrap());
        assert!(ok("203.0.113.5:443", "198.51.100.7:443"));
        assert!(ok("203.0.113.5:443", "198.51.100.7:8443"));
        assert!(
            !ok("203.0.113.5:443", "127.0.0.1:22"),
            "loopback from a public server"
        );
        assert!(
            !ok("203.0.113.5:443", "10.0.0.1:443"),
            "private from a public server"
        );
        assert!(!ok("203.0.113.5:443", "169.254.1.1:443"));
        assert!(!ok("203.0.113.5:443", "100.64.0.1:443"), "CGNAT space");
        assert!(!ok("203.0.113.5:443", "224.0.0.1:443"));
        assert!(!ok("203.0.113.5:443", "0.0.0.0:443"));
        assert!(!ok("203.0.113.5:443", "198.51.100.7:0"));
        assert!(!ok("203.0.113.5:443", "[2001:db8::1]:443"), "other family");
        assert!(
            ok("10.0.0.1:443", "10.0.0.2:443"),
            "a private server may name its neighbours"
        );
        assert!(ok("127.0.0.1:7000", "127.0.0.2:7001"));
        assert!(!ok("10.0.0.1:443", "127.0.0.1:443"));
        assert!(ok("[2001:db8::1]:443", "[2001:db8::2]:443"));
        assert!(!ok("[2001:db8::1]:443", "[fe80::1]:443"));
        assert!(!ok("[2001:db8::1]:443", "[::1]:443"));
        assert!(!ok("[2001:db8::1]:443", "[ff02::1]:443"));
    }
}
