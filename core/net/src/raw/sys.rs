//! Raw IP sockets carrying TCP segments (Linux).

use super::{RawConfig, firewall};
use crate::error::Error;
use crate::socket::{PathInfo, SocketBinder, SocketOptions};
use braid_proto::random::{Random, SystemRandom};
use socket2::{Domain, MaybeUninitSlice, MsgHdr, MsgHdrMut, Protocol, SockAddr, SockFilter};
use socket2::{Socket, Type};
use std::io::{self, IoSlice, Read};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll, ready};
use tokio::io::unix::AsyncFd;

const NEED_RAW: &str = "raw sockets need CAP_NET_RAW (run as root, or `setcap cap_net_raw,cap_net_admin+ep` on the program)";
const NEED_MARK: &str = "SO_MARK on raw sockets needs CAP_NET_ADMIN (run as root, or `setcap cap_net_raw,cap_net_admin+ep` on the program)";

/// A segment received on a raw socket: where it went, where it came from, and where the TCP
/// segment lies in the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Received {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub start: usize,
    pub end: usize,
}

/// One raw socket serving one local TCP port (a client path, or a listening server).
pub(crate) struct RawSocket {
    fd: AsyncFd<Socket>,
    /// Bound address (the IP may be unspecified for a server) and the TCP port served.
    local: SocketAddr,
    /// A kernel TCP socket bound to the same address and port, never listening: it keeps
    /// the port ours.
    _reservation: Socket,
    /// Server: the listen port to take out of the firewall rule when the socket goes.
    release: Option<RawConfig>,
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        if let Some(cfg) = &self.release {
            let p = self.local.port();
            if let Err(e) = firewall::remove_ports(cfg, &(p..=p)) {
                log::debug!("raw carrier: port {p} left in the firewall rule: {e}");
            }
        }
    }
}

impl std::fmt::Debug for RawSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSocket")
            .field("local", &self.local)
            .finish()
    }
}

fn domain_of(ip: IpAddr) -> Domain {
    if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

fn is_perm(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// A raw TCP socket for `domain` with the stack's mark.
fn new_raw(domain: Domain, mark: u32) -> Result<Socket, Error> {
    let s = Socket::new(domain, Type::RAW, Some(Protocol::TCP)).map_err(|e| {
        if is_perm(&e) {
            Error::NotPermitted { what: NEED_RAW }
        } else {
            Error::Io(io::Error::new(e.kind(), format!("raw socket: {e}")))
        }
    })?;
    s.set_mark(mark).map_err(|e| {
        if is_perm(&e) {
            Error::NotPermitted { what: NEED_MARK }
        } else {
            Error::Io(io::Error::new(e.kind(), format!("SO_MARK: {e}")))
        }
    })?;
    Ok(s)
}

/// Checks what every raw socket will need (CAP_NET_RAW, SO_MARK) and that the firewall
/// rule covers the client-port range.
pub(crate) fn prepare(cfg: &RawConfig) -> Result<(), Error> {
    if cfg.ports.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "raw carrier: empty port range {:?}",
            cfg.ports
        )));
    }
    new_raw(Domain::IPV4, cfg.mark)?;
    warn_if_ephemeral(&cfg.ports);
    firewall::ensure(cfg, &cfg.ports)
}

/// The kernel may hand out ports of its ephemeral range to its own connections, whose RSTs
/// the rule would then drop: say so when the ranges overlap.
fn warn_if_ephemeral(ports: &RangeInclusive<u16>) {
    let Ok(s) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return;
    };
    let mut it = s.split_whitespace().filter_map(|w| w.parse::<u16>().ok());
    if let (Some(lo), Some(hi)) = (it.next(), it.next())
        && *ports.start() <= hi
        && lo <= *ports.end()
    {
        log::warn!(
            "raw carrier: ports {}-{} overlap the kernel's ephemeral range {lo}-{hi}",
            ports.start(),
            ports.end()
        );
    }
}

/// Binds a kernel TCP socket (no listen) to `addr`: the port stays ours while it is open.
fn reserve(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        let _ = s.set_only_v6(true);
    }
    s.bind(&addr.into())?;
    Ok(s)
}

/// A free port of `range` on `ip`, reserved; the search starts at a random place.
fn reserve_in(ip: IpAddr, range: &RangeInclusive<u16>) -> Result<(Socket, u16), Error> {
    let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
    let n = hi - lo + 1;
    let first = SystemRandom::new().next_u32() % n;
    for i in 0..n {
        let port = (lo + (first + i) % n) as u16;
        match reserve(SocketAddr::new(ip, port)) {
            Ok(s) => return Ok((s, port)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => {
                return Err(Error::Io(io::Error::new(
                    e.kind(),
                    format!("reserving raw carrier port {ip}:{port}: {e}"),
                )));
            }
        }
    }
    Err(Error::Io(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "every raw carrier port {}-{} on {ip} is in use",
            range.start(),
            range.end()
        ),
    )))
}

// Classic BPF, for the port filter.
const BPF_LD_H_ABS: u16 = 0x28;
const BPF_LD_H_IND: u16 = 0x48;
const BPF_LDX_B_MSH: u16 = 0xb1;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

/// Keeps only TCP segments to `port`. IPv4 raw sockets see the IP header first (its length
/// is in the low nibble of byte 0); IPv6 ones start at the TCP header.
fn port_filter(v6: bool, port: u16) -> Vec<SockFilter> {
    let mut f = Vec::new();
    if v6 {
        f.push(SockFilter::new(BPF_LD_H_ABS, 0, 0, 2));
    } else {
        f.push(SockFilter::new(BPF_LDX_B_MSH, 0, 0, 0));
        f.push(SockFilter::new(BPF_LD_H_IND, 0, 0, 2));
    }
    f.push(SockFilter::new(BPF_JEQ_K, 0, 1, u32::from(port)));
    f.push(SockFilter::new(BPF_RET_K, 0, 0, u32::MAX));
    f.push(SockFilter::new(BPF_RET_K, 0, 0, 0));
    f
}

/// Opens the raw socket serving `local` (IP possibly unspecified), already reserved.
fn open(
    local: SocketAddr,
    reservation: Socket,
    cfg: &RawConfig,
    opts: SocketOptions,
    bind_device: impl FnOnce(&Socket) -> Result<(), Error>,
) -> Result<RawSocket, Error> {
    let s = new_raw(domain_of(local.ip()), cfg.mark)?;
    let v6 = local.is_ipv6();
    if v6 {
        let _ = s.set_only_v6(true);
        if local.ip().is_unspecified() {
            set_recv_pktinfo_v6(&s)?;
        }
    }
    s.attach_filter(&port_filter(v6, local.port()))
        .map_err(|e| Error::Io(io::Error::new(e.kind(), format!("port filter: {e}"))))?;
    bind_device(&s)?;
    s.bind(&SocketAddr::new(local.ip(), 0).into())
        .map_err(|e| Error::Io(io::Error::new(e.kind(), format!("bind raw {local}: {e}"))))?;
    let _ = s.set_send_buffer_size(opts.send_buffer);
    let _ = s.set_recv_buffer_size(opts.recv_buffer);
    s.set_nonblocking(true)?;
    // SAFETY: a socket2 `Socket` owns its descriptor, keeps it open until it is dropped and
    // always returns the same one; the `AsyncFd` owns the socket from here on.
    let fd = unsafe { AsyncFd::register(s) }.map_err(|e| Error::Io(e.into_parts().1))?;
    Ok(RawSocket {
        fd,
        local,
        _reservation: reservation,
        release: None,
    })
}

/// The raw socket of a client path: bound to the path's interface and source address, with
/// a port of `cfg.ports`. Must be called inside a tokio runtime.
pub(crate) fn open_path(
    info: &PathInfo,
    binder: &dyn SocketBinder,
    cfg: &RawConfig,
    opts: SocketOptions,
) -> Result<(RawSocket, SocketAddr), Error> {
    if info.interface.via.is_some() {
        return Err(Error::InvalidArgument(format!(
            "interface {}: relays (via) work with the UDP carrier only",
            info.interface.label()
        )));
    }
    let ip = crate::socket::source_ip(info, binder)?;
    let (reservation, port) = reserve_in(ip, &cfg.ports)?;
    let local = SocketAddr::new(ip, port);
    let iface = info.interface.clone();
    let sock = open(local, reservation, cfg, opts, |s| {
        binder
            .bind(s.as_raw_fd(), info)
            .map_err(|e| crate::socket::bind_error(&iface, e))
    })?;
    Ok((sock, local))
}

/// The raw socket of a listening server on `addr` (port 0: the kernel picks one). The port
/// is added to the firewall rule, and taken out again when the socket goes.
pub(crate) fn open_listen(
    addr: SocketAddr,
    cfg: &RawConfig,
    opts: SocketOptions,
) -> Result<(RawSocket, SocketAddr), Error> {
    // Privileges first: a missing capability is the likelier problem and the clearer error.
    new_raw(domain_of(addr.ip()), cfg.mark)?;
    let reservation = reserve(addr).map_err(|e| Error::Listen { addr, source: e })?;
    let local = reservation
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    let port = local.port();
    firewall::ensure(cfg, &(port..=port))?;
    let mut sock = open(local, reservation, cfg, opts, |_| Ok(()))?;
    if cfg.firewall == super::FirewallMode::Install {
        sock.release = Some(cfg.clone());
    }
    Ok((sock, local))
}

fn set_recv_pktinfo_v6(s: &Socket) -> Result<(), Error> {
    let on: libc::c_int = 1;
    // SAFETY: the descriptor belongs to `s`, alive for the call; the option value points at
    // a live c_int whose size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVPKTINFO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(Error::Io(io::Error::new(
            e.kind(),
            format!("IPV6_RECVPKTINFO: {e}"),
        )));
    }
    Ok(())
}

/// Views an initialised buffer as "maybe uninitialised" for socket2's receive calls.
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: MaybeUninit<u8> has the size, alignment and validity of u8; the kernel only
    // writes initialised bytes into it, so the bytes stay initialised for the caller.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

// Control messages, laid out as the kernel's `struct cmsghdr` (size_t length, int level,
// int type, data aligned to size_t).
const ALIGN: usize = std::mem::size_of::<usize>();

const fn cmsg_align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

const CMSG_HDR: usize = cmsg_align(std::mem::size_of::<usize>() + 8);

fn push_cmsg(out: &mut Vec<u8>, level: i32, ty: i32, data: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&(CMSG_HDR + data.len()).to_ne_bytes());
    out.extend_from_slice(&level.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.resize(start + CMSG_HDR, 0);
    out.extend_from_slice(data);
    out.resize(start + cmsg_align(CMSG_HDR + data.len()), 0);
}

/// (level, type, data) of each control message in `buf`.
fn cmsgs(buf: &[u8]) -> impl Iterator<Item = (i32, i32, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let hdr = buf.get(off..off + CMSG_HDR)?;
        let len = usize::from_ne_bytes(hdr[..ALIGN].try_into().ok()?);
        let level = i32::from_ne_bytes(hdr[ALIGN..ALIGN + 4].try_into().ok()?);
        let ty = i32::from_ne_bytes(hdr[ALIGN + 4..ALIGN + 8].try_into().ok()?);
        if len < CMSG_HDR {
            return None;
        }
        let data = buf.get(off + CMSG_HDR..off + len)?;
        off += cmsg_align(len);
        Some((level, ty, data))
    })
}

/// `IP_PKTINFO` / `IPV6_PKTINFO` choosing the source address of a sent segment.
fn source_cmsg(src: IpAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match src {
        IpAddr::V4(a) => {
            // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
            let mut data = [0u8; 12];
            data[4..8].copy_from_slice(&a.octets());
            push_cmsg(&mut out, libc::IPPROTO_IP, libc::IP_PKTINFO, &data);
        }
        IpAddr::V6(a) => {
            // struct in6_pktinfo { in6_addr addr; unsigned ifindex; }
            let mut data = [0u8; 20];
            data[..16].copy_from_slice(&a.octets());
            push_cmsg(&mut out, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &data);
        }
    }
    out
}

/// Where the TCP segment lies in a received IPv4 packet, with the packet's addresses.
fn parse_v4(pkt: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, usize, usize)> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != libc::IPPROTO_TCP as u8 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    // The kernel hands raw sockets reassembled packets; anything else is not for us.
    let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff;
    if ihl < 20 || frag != 0 {
        return None;
    }
    let end = total.min(pkt.len());
    if end < ihl + 20 {
        return None;
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    Some((src, dst, ihl, end))
}

fn ports(seg: &[u8]) -> Option<(u16, u16)> {
    Some((
        u16::from_be_bytes(seg.get(0..2)?.try_into().ok()?),
        u16::from_be_bytes(seg.get(2..4)?.try_into().ok()?),
    ))
}

impl RawSocket {
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }

    /// Receives one packet. `Ok(None)`: something not for this socket (filtered out).
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<Option<Received>>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| self.recv_one(fd.get_ref(), buf)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn recv_one(&self, s: &Socket, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let (src, dst, start, end) = if self.local.is_ipv4() {
            let n = (&*s).read(buf)?;
            let Some((src, dst, start, end)) = parse_v4(&buf[..n]) else {
                return Ok(None);
            };
            (IpAddr::V4(src), IpAddr::V4(dst), start, end)
        } else {
            let mut from = SockAddr::from(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)));
            let mut ctrl = [0u8; 64];
            let (n, ctrl_len) = {
                let mut bufs = [MaybeUninitSlice::new(as_uninit(buf))];
                let mut msg = MsgHdrMut::new()
                    .with_addr(&mut from)
                    .with_buffers(&mut bufs)
                    .with_control(as_uninit(&mut ctrl));
                let n = s.recvmsg(&mut msg, 0)?;
                (n, msg.control_len())
            };
            let Some(src) = from.as_socket().map(|a| a.ip()) else {
                return Ok(None);
            };
            let dst = cmsgs(&ctrl[..ctrl_len.min(ctrl.len())])
                .find(|(l, t, d)| {
                    *l == libc::IPPROTO_IPV6 && *t == libc::IPV6_PKTINFO && d.len() >= 16
                })
                .and_then(|(_, _, d)| <[u8; 16]>::try_from(&d[..16]).ok())
                .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                .unwrap_or(self.local.ip());
            (src, dst, 0, n.min(buf.len()))
        };
        let Some((sport, dport)) = ports(&buf[start..end]) else {
            return Ok(None);
        };
        let bound = self.local.ip();
        if dport != self.local.port() || (!bound.is_unspecified() && dst != bound) {
            return Ok(None);
        }
        Ok(Some(Received {
            local: SocketAddr::new(dst, dport),
            remote: SocketAddr::new(src, sport),
            start,
            end,
        }))
    }

    /// Sends one segment from `local` to `remote` (whose ports are in the segment).
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &[u8],
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| self.send_one(fd.get_ref(), local, remote, seg)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn send_one(
        &self,
        s: &Socket,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &[u8],
    ) -> io::Result<()> {
        // Raw sockets take no port in the destination (IPv6 would reject one).
        let to = SockAddr::from(SocketAddr::new(remote.ip(), 0));
        let bufs = [IoSlice::new(seg)];
        let ctrl;
        let mut msg = MsgHdr::new().with_addr(&to).with_buffers(&bufs);
        if self.local.ip().is_unspecified() {
            // A wildcard-bound server answers from the address the peer used.
            ctrl = source_cmsg(local.ip());
            msg = msg.with_control(&ctrl);
        }
        s.sendmsg(&msg, 0).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip() {
        let mut buf = source_cmsg("10.0.0.7".parse().unwrap());
        buf.extend(source_cmsg("2001:db8::1".parse().unwrap()));
        let all: Vec<_> = cmsgs(&buf).collect();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].0, all[0].1), (libc::IPPROTO_IP, libc::IP_PKTINFO));
        assert_eq!(&all[0].2[4..8], &[10, 0, 0, 7]);
        assert_eq!(
            (all[1].0, all[1].1),
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
        );
        assert_eq!(all[1].2.len(), 20);
        assert_eq!(all[1].2[0..2], [0x20, 0x01]);
        // Truncated input ends the iteration instead of panicking.
        assert_eq!(cmsgs(&buf[..10]).count(), 0);
    }

    #[test]
    fn ipv4_header_is_stripped() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 31, 1, 2]);
        p[16..20].copy_from_slice(&[10, 31, 1, 1]);
        p[20..22].copy_from_slice(&5201u16.to_be_bytes());
        p[22..24].copy_from_slice(&61000u16.to_be_bytes());
        let (src, dst, start, end) = parse_v4(&p).unwrap();
        assert_eq!((src, dst), ([10, 31, 1, 2].into(), [10, 31, 1, 1].into()));
        assert_eq!((start, end), (20, 40));
        assert_eq!(ports(&p[start..end]), Some((5201, 61000)));
        // A fragment, a UDP packet, a short packet: not ours.
        let mut frag = p.clone();
        frag[6] = 0x20;
        assert!(parse_v4(&frag).is_none());
        let mut udp = p.clone();
        udp[9] = 17;
        assert!(parse_v4(&udp).is_none());
        assert!(parse_v4(&p[..30]).is_none());
    }
}
