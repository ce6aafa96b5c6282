//! Link and address changes from the Linux kernel (rtnetlink), for [`Client::watch_interfaces`](crate::Client::watch_interfaces).
//!
//! A NETLINK_ROUTE socket joined to RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
//! reports RTM_NEWLINK/RTM_DELLINK (flags IFF_UP, IFF_RUNNING) and RTM_NEWADDR/RTM_DELADDR.
//! At start the socket dumps every link and address, so the [`Watcher`] knows the state of
//! the interfaces it watches; afterwards it turns events into "lost" and "available".
//!
//! The parser is plain code over bytes (tested with hand-built messages); only the socket
//! is Linux-specific.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// Kernel ABI values (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h).
/// An error or acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// The end of a multipart dump.
pub const NLMSG_DONE: u16 = 3;
/// A link appeared or changed.
pub const RTM_NEWLINK: u16 = 16;
/// A link went away.
pub const RTM_DELLINK: u16 = 17;
/// Request: dump the links.
pub const RTM_GETLINK: u16 = 18;
/// An address was added.
pub const RTM_NEWADDR: u16 = 20;
/// An address was removed.
pub const RTM_DELADDR: u16 = 21;
/// Request: dump the addresses.
pub const RTM_GETADDR: u16 = 22;
/// Link attribute: the interface name.
pub const IFLA_IFNAME: u16 = 3;
/// Address attribute: the (peer) address.
pub const IFA_ADDRESS: u16 = 1;
/// Address attribute: the local address.
pub const IFA_LOCAL: u16 = 2;
/// Link flag: administratively up.
pub const IFF_UP: u32 = 0x1;
/// Link flag: carrier present (operationally up).
pub const IFF_RUNNING: u32 = 0x40;
/// Address family IPv4.
pub const AF_INET: u8 = 2;
/// Address family IPv6.
pub const AF_INET6: u8 = 10;
/// Multicast group: link changes.
pub const RTMGRP_LINK: u32 = 0x1;
/// Multicast group: IPv4 address changes.
pub const RTMGRP_IPV4_IFADDR: u32 = 0x10;
/// Multicast group: IPv6 address changes.
pub const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;

/// One rtnetlink message, as far as Braid cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A link (interface) and its state.
    Link {
        /// Interface index.
        index: u32,
        /// Interface name, when the message carries it.
        name: Option<String>,
        /// `IFF_*` flags.
        flags: u32,
        /// Whether the link went away (`RTM_DELLINK`).
        deleted: bool,
    },
    /// An address on an interface.
    Addr {
        /// Interface index.
        index: u32,
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// Whether it was removed (`RTM_DELADDR`).
        deleted: bool,
    },
    /// The end of a dump.
    Done,
    /// An error (errno, positive) or, with 0, an acknowledgement.
    Error(i32),
    /// Anything else (message type).
    Other(u16),
}

/// A message that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad netlink message: {}", self.0)
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Every message in one datagram from the socket. Stops at the first malformed one.
pub fn parse(buf: &[u8]) -> Result<Vec<Message>, ParseError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32_at(buf, at).ok_or(ParseError("truncated header"))? as usize;
        let ty = u16_at(buf, at + 4).ok_or(ParseError("truncated header"))?;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return Err(ParseError("length out of bounds"));
        }
        let body = &buf[at + NLMSG_HDRLEN..at + len];
        out.push(parse_one(ty, body)?);
        at += align4(len);
    }
    Ok(out)
}

fn parse_one(ty: u16, body: &[u8]) -> Result<Message, ParseError> {
    Ok(match ty {
        NLMSG_DONE => Message::Done,
        NLMSG_ERROR => {
            let e = u32_at(body, 0).ok_or(ParseError("truncated error"))? as i32;
            Message::Error(-e)
        }
        RTM_NEWLINK | RTM_DELLINK => {
            if body.len() < IFINFOMSG_LEN {
                return Err(ParseError("truncated ifinfomsg"));
            }
            let index = u32_at(body, 4).ok_or(ParseError("truncated ifinfomsg"))?;
            let flags = u32_at(body, 8).ok_or(ParseError("truncated ifinfomsg"))?;
            let mut name = None;
            for (t, v) in attrs(&body[IFINFOMSG_LEN..])? {
                if t == IFLA_IFNAME {
                    let v = v.split(|&c| c == 0).next().unwrap_or(&[]);
                    name = Some(String::from_utf8_lossy(v).into_owned());
                }
            }
            Message::Link {
                index,
                name,
                flags,
                deleted: ty == RTM_DELLINK,
            }
        }
        RTM_NEWADDR | RTM_DELADDR => {
            if body.len() < IFADDRMSG_LEN {
                return Err(ParseError("truncated ifaddrmsg"));
            }
            let family = body[0];
            let prefix = body[1];
            let index = u32_at(body, 4).ok_or(ParseError("truncated ifaddrmsg"))?;
            let (mut local, mut address) = (None, None);
            for (t, v) in attrs(&body[IFADDRMSG_LEN..])? {
                let ip = match (family, v.len()) {
                    (AF_INET, 4) => IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                    (AF_INET6, 16) => {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(v);
                        IpAddr::V6(Ipv6Addr::from(o))
                    }
                    _ => continue,
                };
                match t {
                    IFA_LOCAL => local = Some(ip),
                    IFA_ADDRESS => address = Some(ip),
                    _ => {}
                }
            }
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
            // point-to-point links and the same address elsewhere.
            let Some(addr) = local.or(address) else {
                return Ok(Message::Other(ty));
            };
            Message::Addr {
                index,
                addr,
                prefix,
                deleted: ty == RTM_DELADDR,
            }
        }
        other => Message::Other(other),
    })
}

/// Route attributes: (type, payload).
fn attrs(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, ParseError> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16_at(b, 0).ok_or(ParseError("truncated attribute"))? as usize;
        let ty = u16_at(b, 2).ok_or(ParseError("truncated attribute"))? & 0x3fff;
        if len < 4 || len > b.len() {
            return Err(ParseError("attribute length out of bounds"));
        }
        out.push((ty, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    Ok(out)
}

/// A dump request (RTM_GETLINK or RTM_GETADDR) for every family.
pub fn dump_request(ty: u16, seq: u32) -> Vec<u8> {
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    let body = if ty == RTM_GETLINK {
        IFINFOMSG_LEN
    } else {
        IFADDRMSG_LEN
    };
    let len = NLMSG_HDRLEN + body;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.resize(len, 0);
    m
}

/// What happened to a watched interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The interface can no longer carry traffic.
    Lost {
        /// Interface index.
        index: u32,
        /// Interface name.
        name: String,
        /// Why (link down, address gone…).
        why: &'static str,
    },
    /// The interface can carry traffic (again).
    Available {
        /// Interface index.
        index: u32,
        /// Interface name.
        name: String,
    },
}

#[derive(Debug)]
struct Watched {
    name: String,
    index: u32,
    /// IFF_UP and IFF_RUNNING; unknown (taken as up) until the kernel says.
    link_up: Option<bool>,
    addrs: HashSet<IpAddr>,
    usable: bool,
    why_not: &'static str,
}

/// Follows the state of some interfaces through rtnetlink messages.
#[derive(Debug)]
pub struct Watcher {
    watched: Vec<Watched>,
    v4: bool,
    /// Addresses are counted only once a full dump has been seen.
    addrs_known: bool,
}

impl Watcher {
    /// Watches `(index, name)` interfaces for paths of the given address family. They are
    /// taken as usable until the messages say otherwise.
    pub fn new(list: &[(u32, String)], v4: bool) -> Self {
        Self {
            watched: list
                .iter()
                .map(|(index, name)| Watched {
                    name: name.clone(),
                    index: *index,
                    link_up: None,
                    addrs: HashSet::new(),
                    usable: true,
                    why_not: "",
                })
                .collect(),
            v4,
            addrs_known: false,
        }
    }

    /// Forgets the addresses seen so far (a dump of them starts).
    pub fn start_addr_dump(&mut self) {
        for w in &mut self.watched {
            w.addrs.clear();
        }
        self.addrs_known = false;
    }

    /// The address dump ended: from now on an interface without addresses is unusable.
    pub fn finish_addr_dump(&mut self) -> Vec<Change> {
        self.addrs_known = true;
        self.evaluate_all()
    }

    fn family_ok(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.v4,
            // Link-local addresses cannot reach a remote server.
            IpAddr::V6(v6) => !self.v4 && (v6.segments()[0] & 0xffc0) != 0xfe80,
        }
    }

    /// Applies one message; returns what changed for the watched interfaces.
    pub fn apply(&mut self, m: &Message) -> Vec<Change> {
        match m {
            Message::Link {
                index,
                name,
                flags,
                deleted,
            } => {
                let up = !deleted && flags & IFF_UP != 0 && flags & IFF_RUNNING != 0;
                let mut touched = Vec::new();
                for (i, w) in self.watched.iter_mut().enumerate() {
                    let same_index = w.index == *index;
                    // An interface re-created under its name gets a new index.
                    let renumbered =
                        !deleted && !same_index && name.as_deref() == Some(w.name.as_str());
                    if same_index && *deleted {
                        w.link_up = Some(false);
                        w.addrs.clear();
                        touched.push(i);
                    } else if same_index || renumbered {
                        if renumbered {
                            w.index = *index;
                            w.addrs.clear();
                        }
                        w.link_up = Some(up);
                        touched.push(i);
                    }
                }
                touched
                    .into_iter()
                    .filter_map(|i| self.evaluate(i))
                    .collect()
            }
            Message::Addr {
                index,
                addr,
                deleted,
                ..
            } => {
                if !self.family_ok(addr) {
                    return Vec::new();
                }
                let Some(i) = self.watched.iter().position(|w| w.index == *index) else {
                    return Vec::new();
                };
                if *deleted {
                    self.watched[i].addrs.remove(addr);
                } else {
                    self.watched[i].addrs.insert(*addr);
                }
                self.evaluate(i).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    fn evaluate_all(&mut self) -> Vec<Change> {
        (0..self.watched.len())
            .filter_map(|i| self.evaluate(i))
            .collect()
    }

    fn evaluate(&mut self, i: usize) -> Option<Change> {
        let addrs_known = self.addrs_known;
        let w = &mut self.watched[i];
        let (usable, why) = if w.link_up == Some(false) {
            (false, "link down")
        } else if addrs_known && w.addrs.is_empty() {
            (false, "no address")
        } else {
            (true, "")
        };
        if usable == w.usable {
            return None;
        }
        w.usable = usable;
        w.why_not = why;
        Some(if usable {
            Change::Available {
                index: w.index,
                name: w.name.clone(),
            }
        } else {
            Change::Lost {
                index: w.index,
                name: w.name.clone(),
                why,
            }
        })
    }
}

#[cfg(target_os = "linux")]
pub use sys::watch;

#[cfg(target_os = "linux")]
mod sys {
    use super::*;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;
    use tokio::sync::mpsc;

    /// A NETLINK_ROUTE socket subscribed to link and address changes.
    pub(crate) struct NetlinkSocket {
        fd: AsyncFd<OwnedFd>,
    }

    impl NetlinkSocket {
        pub(crate) fn open() -> io::Result<Self> {
            // SAFETY: plain socket(2) call; the result is checked before use.
            let raw = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    libc::NETLINK_ROUTE,
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
            let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
            // SAFETY: `sa` is a valid sockaddr_nl and the length matches it.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is an open socket owned by the AsyncFd from now on, so it stays
            // open and the same for the AsyncFd's whole life.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(io::Error::from)?;
            Ok(Self { fd })
        }

        pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
            // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
            let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            // SAFETY: `msg` and `sa` are valid for the lengths given.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }

        /// One datagram (possibly several messages).
        pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                let mut guard = self.fd.readable().await?;
                let r = guard.try_io(|fd| {
                    // SAFETY: `buf` is valid for writes of its length.
                    let n = unsafe {
                        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                });
                match r {
                    Ok(res) => return res,
                    Err(_would_block) => continue,
                }
            }
        }

        /// Messages until the dump ends, applied to the watcher.
        async fn dump(
            &self,
            ty: u16,
            seq: u32,
            watcher: &mut Watcher,
            tx: &mpsc::UnboundedSender<Change>,
        ) -> io::Result<()> {
            self.send(&dump_request(ty, seq))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = self.recv(&mut buf).await?;
                let msgs = parse(&buf[..n]).map_err(|e| io::Error::other(e.to_string()))?;
                for m in &msgs {
                    match m {
                        Message::Done => return Ok(()),
                        Message::Error(e) if *e != 0 => {
                            return Err(io::Error::from_raw_os_error(*e));
                        }
                        m => {
                            for c in watcher.apply(m) {
                                let _ = tx.send(c);
                            }
                        }
                    }
                }
            }
        }

        /// Dumps links, then addresses, bringing the watcher up to date.
        pub(crate) async fn sync(
            &self,
            watcher: &mut Watcher,
            tx: &mpsc::UnboundedSender<Change>,
        ) -> io::Result<()> {
            self.dump(RTM_GETLINK, 1, watcher, tx).await?;
            watcher.start_addr_dump();
            self.dump(RTM_GETADDR, 2, watcher, tx).await?;
            for c in watcher.finish_addr_dump() {
                let _ = tx.send(c);
            }
            Ok(())
        }
    }

    /// Watches the interfaces and sends their changes until the receiver is dropped.
    /// Returns an error only if the socket cannot be opened or the first dump fails.
    pub async fn watch(
        list: Vec<(u32, String)>,
        v4: bool,
        tx: mpsc::UnboundedSender<Change>,
    ) -> io::Result<()> {
        let sock = NetlinkSocket::open()?;
        let mut watcher = Watcher::new(&list, v4);
        sock.sync(&mut watcher, &tx).await?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if tx.is_closed() {
                return Ok(());
            }
            let n = match sock.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Events were lost: read the state again.
                    log::debug!("netlink: overrun, resynchronising");
                    if let Err(e) = sock.sync(&mut watcher, &tx).await {
                        log::warn!("netlink: resynchronising failed: {e}");
                    }
                    continue;
                }
                Err(e) => {
                    log::warn!("netlink: {e}; no more interface events");
                    return Ok(());
                }
            };
            match parse(&buf[..n]) {
                Ok(msgs) => {
                    for m in &msgs {
                        for c in watcher.apply(m) {
                            if tx.send(c).is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
                Err(e) => log::debug!("netlink: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one netlink message: header, fixed part, attributes.
    fn msg(ty: u16, fixed: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = fixed.to_vec();
        for (t, v) in attrs {
            let len = 4 + v.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(v);
            body.resize(align4(body.len()), 0);
        }
        let len = NLMSG_HDRLEN + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&body);
        m
    }

    fn ifinfo(index: u32, flags: u32) -> Vec<u8> {
        let mut f = vec![0u8, 0];
        f.extend_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
        f.extend_from_slice(&index.to_ne_bytes());
        f.extend_from_slice(&flags.to_ne_bytes());
        f.extend_from_slice(&0xffff_ffffu32.to_ne_bytes());
        f
    }

    fn ifaddr(family: u8, prefix: u8, index: u32) -> Vec<u8> {
        let mut f = vec![family, prefix, 0, 0];
        f.extend_from_slice(&index.to_ne_bytes());
        f
    }

    fn link(index: u32, name: &str, flags: u32, ty: u16) -> Vec<u8> {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        msg(
            ty,
            &ifinfo(index, flags),
            &[(IFLA_IFNAME, &n), (4, &1500u32.to_ne_bytes())],
        )
    }

    fn addr4(index: u32, ip: [u8; 4], ty: u16) -> Vec<u8> {
        msg(
            ty,
            &ifaddr(AF_INET, 24, index),
            &[(IFA_ADDRESS, &ip), (IFA_LOCAL, &ip), (3, b"wlan0\0")],
        )
    }

    #[test]
    fn parses_link_messages() {
        let m = link(3, "wlan0", IFF_UP | IFF_RUNNING, RTM_NEWLINK);
        assert_eq!(
            parse(&m).unwrap(),
            vec![Message::Link {
                index: 3,
                name: Some("wlan0".into()),
                flags: IFF_UP | IFF_RUNNING,
                deleted: false
            }]
        );
        let m = link(3, "wlan0", 0, RTM_DELLINK);
        assert!(matches!(
            parse(&m).unwrap()[0],
            Message::Link { deleted: true, .. }
        ));
    }

    #[test]
    fn parses_address_messages_and_prefers_ifa_local() {
        let m = addr4(4, [10, 0, 0, 2], RTM_NEWADDR);
        assert_eq!(
            parse(&m).unwrap(),
            vec![Message::Addr {
                index: 4,
                addr: "10.0.0.2".parse().unwrap(),
                prefix: 24,
                deleted: false
            }]
        );
        // Point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours.
        let m = msg(
            RTM_DELADDR,
            &ifaddr(AF_INET, 32, 9),
            &[(IFA_ADDRESS, &[10, 64, 0, 1]), (IFA_LOCAL, &[10, 64, 0, 2])],
        );
        assert_eq!(
            parse(&m).unwrap()[0],
            Message::Addr {
                index: 9,
                addr: "10.64.0.2".parse().unwrap(),
                prefix: 32,
                deleted: true
            }
        );
        let v6: [u8; 16] = "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets();
        let m = msg(RTM_NEWADDR, &ifaddr(AF_INET6, 64, 2), &[(IFA_ADDRESS, &v6)]);
        assert!(matches!(
            parse(&m).unwrap()[0],
            Message::Addr {
                addr: IpAddr::V6(_),
                index: 2,
                ..
            }
        ));
    }

    #[test]
    fn several_messages_in_one_datagram_with_done_and_error() {
        let mut d = link(1, "lo", IFF_UP | IFF_RUNNING, RTM_NEWLINK);
        // A name of odd length exercises attribute padding.
        d.extend(link(12, "rmnet_data0", IFF_UP, RTM_NEWLINK));
        d.extend(msg(NLMSG_DONE, &0u32.to_ne_bytes(), &[]));
        d.extend(msg(NLMSG_ERROR, &(-(libc::EBUSY)).to_ne_bytes(), &[]));
        d.extend(msg(RTM_NEWLINK + 100, &[1, 2, 3, 4], &[]));
        let m = parse(&d).unwrap();
        assert_eq!(m.len(), 5);
        assert!(
            matches!(&m[1], Message::Link { index: 12, name: Some(n), .. } if n == "rmnet_data0")
        );
        assert_eq!(m[2], Message::Done);
        assert_eq!(m[3], Message::Error(libc::EBUSY));
        assert_eq!(m[4], Message::Other(RTM_NEWLINK + 100));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = link(3, "wlan0", IFF_UP, RTM_NEWLINK);
        // Every truncation and a few corruptions.
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[0] = 0xff; // length past the end
        assert!(parse(&bad).is_err());
        let mut bad = good.clone();
        bad[NLMSG_HDRLEN + IFINFOMSG_LEN] = 200; // attribute length past the end
        assert!(parse(&bad).is_err());
        let short = msg(RTM_NEWADDR, &[2, 24], &[]);
        assert!(parse(&short).is_err());
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut b = good.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % b.len();
                b[i] = (x >> 8) as u8;
            }
            let _ = parse(&b);
        }
    }

    #[test]
    fn dump_requests_are_well_formed() {
        let r = dump_request(RTM_GETADDR, 5);
        assert_eq!(r.len(), 24);
        assert_eq!(u32_at(&r, 0), Some(24));
        assert_eq!(u16_at(&r, 4), Some(RTM_GETADDR));
        assert_eq!(u16_at(&r, 6), Some(0x301));
        assert_eq!(dump_request(RTM_GETLINK, 1).len(), 32);
    }

    fn lost(index: u32, name: &str, why: &'static str) -> Change {
        Change::Lost {
            index,
            name: name.into(),
            why,
        }
    }

    fn avail(index: u32, name: &str) -> Change {
        Change::Available {
            index,
            name: name.into(),
        }
    }

    fn apply_all(w: &mut Watcher, d: &[u8]) -> Vec<Change> {
        parse(d).unwrap().iter().flat_map(|m| w.apply(m)).collect()
    }

    #[test]
    fn watcher_follows_link_and_addresses() {
        let mut w = Watcher::new(&[(3, "wlan0".into()), (5, "rmnet0".into())], true);
        // Initial dump: both up, wlan0 has an address, rmnet0 only an IPv6 one.
        let mut d = link(3, "wlan0", IFF_UP | IFF_RUNNING, RTM_NEWLINK);
        d.extend(link(5, "rmnet0", IFF_UP | IFF_RUNNING, RTM_NEWLINK));
        d.extend(link(7, "eth9", 0, RTM_NEWLINK));
        assert!(apply_all(&mut w, &d).is_empty());
        w.start_addr_dump();
        let mut d = addr4(3, [192, 168, 1, 5], RTM_NEWADDR);
        let v6: [u8; 16] = "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets();
        d.extend(msg(
            RTM_NEWADDR,
            &ifaddr(AF_INET6, 64, 5),
            &[(IFA_ADDRESS, &v6)],
        ));
        assert!(apply_all(&mut w, &d).is_empty());
        assert_eq!(w.finish_addr_dump(), vec![lost(5, "rmnet0", "no address")]);

        // rmnet0 gets an IPv4 address: available.
        let d = addr4(5, [10, 1, 2, 3], RTM_NEWADDR);
        assert_eq!(apply_all(&mut w, &d), vec![avail(5, "rmnet0")]);
        // Unrelated interfaces change nothing.
        assert!(apply_all(&mut w, &link(7, "eth9", IFF_UP | IFF_RUNNING, RTM_NEWLINK)).is_empty());
        assert!(apply_all(&mut w, &addr4(7, [1, 1, 1, 1], RTM_DELADDR)).is_empty());
        // WiFi loses carrier (UP without RUNNING): lost once, not twice.
        let d = link(3, "wlan0", IFF_UP, RTM_NEWLINK);
        assert_eq!(apply_all(&mut w, &d), vec![lost(3, "wlan0", "link down")]);
        assert!(apply_all(&mut w, &d).is_empty());
        // Carrier back: available (it kept its address).
        let d = link(3, "wlan0", IFF_UP | IFF_RUNNING, RTM_NEWLINK);
        assert_eq!(apply_all(&mut w, &d), vec![avail(3, "wlan0")]);
        // Its address goes: lost; comes back: available.
        let d = addr4(3, [192, 168, 1, 5], RTM_DELADDR);
        assert_eq!(apply_all(&mut w, &d), vec![lost(3, "wlan0", "no address")]);
        let d = addr4(3, [192, 168, 1, 6], RTM_NEWADDR);
        assert_eq!(apply_all(&mut w, &d), vec![avail(3, "wlan0")]);
    }

    #[test]
    fn watcher_follows_an_interface_recreated_under_a_new_index() {
        let mut w = Watcher::new(&[(5, "wwan0".into())], true);
        w.start_addr_dump();
        assert!(apply_all(&mut w, &addr4(5, [10, 0, 0, 1], RTM_NEWADDR)).is_empty());
        assert!(w.finish_addr_dump().is_empty());
        let d = link(5, "wwan0", 0, RTM_DELLINK);
        assert_eq!(apply_all(&mut w, &d), vec![lost(5, "wwan0", "link down")]);
        // Plugged in again as index 9: up, but no address yet.
        let d = link(9, "wwan0", IFF_UP | IFF_RUNNING, RTM_NEWLINK);
        assert!(apply_all(&mut w, &d).is_empty());
        let d = addr4(9, [10, 0, 0, 7], RTM_NEWADDR);
        assert_eq!(apply_all(&mut w, &d), vec![avail(9, "wwan0")]);
    }

    #[test]
    fn ipv6_paths_ignore_ipv4_and_link_local_addresses() {
        let mut w = Watcher::new(&[(2, "wlan0".into())], false);
        w.start_addr_dump();
        apply_all(&mut w, &addr4(2, [10, 0, 0, 1], RTM_NEWADDR));
        let ll: [u8; 16] = "fe80::1".parse::<Ipv6Addr>().unwrap().octets();
        apply_all(
            &mut w,
            &msg(RTM_NEWADDR, &ifaddr(AF_INET6, 64, 2), &[(IFA_ADDRESS, &ll)]),
        );
        assert_eq!(w.finish_addr_dump(), vec![lost(2, "wlan0", "no address")]);
    }
}
