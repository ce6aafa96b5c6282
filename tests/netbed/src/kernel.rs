//! The Linux kernel's MPTCP, from Rust: listeners and connections as std `TcpStream`s, and the
//! MPTCP socket options that tell what the kernel did (`MPTCP_INFO`, `MPTCP_SUBFLOW_ADDRS`,
//! `TCP_IS_MPTCP`).
//!
//! An MPTCP socket is `socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP = 262)`; afterwards it is
//! used exactly like a TCP socket. Create it from a thread inside the namespace where it
//! should live (`Testbed::spawn_in`). A listener must stay open while its connections run:
//! the kernel accepts MP_JOIN SYNs for additional subflows through it.
//!
//! ## `struct mptcp_info` (include/uapi/linux/mptcp.h), byte offsets
//!
//! | off | type | field | since |
//! |----:|------|-------|-------|
//! | 0 | u8 | subflows (additional subflows, not counting the first) | 5.9 |
//! | 1 | u8 | add_addr_signal | 5.9 |
//! | 2 | u8 | add_addr_accepted | 5.9 |
//! | 3 | u8 | subflows_max | 5.9 |
//! | 4 | u8 | add_addr_signal_max | 5.9 |
//! | 5 | u8 | add_addr_accepted_max | 5.9 |
//! | 6 | – | 2 bytes padding | |
//! | 8 | u32 | flags (bit 0 fallback to TCP, bit 1 remote key received) | 5.9 |
//! | 12 | u32 | token | 5.9 |
//! | 16 | u64 | write_seq | 5.9 |
//! | 24 | u64 | snd_una | 5.9 |
//! | 32 | u64 | rcv_nxt | 5.9 |
//! | 40 | u8 | local_addr_used | 5.12 |
//! | 41 | u8 | local_addr_max | 5.12 |
//! | 42 | u8 | csum_enabled | 5.14 |
//! | 43 | – | 1 byte padding | |
//! | 44 | u32 | retransmits | 6.5 |
//! | 48 | u64 | bytes_retrans | 6.5 |
//! | 56 | u64 | bytes_sent | 6.5 |
//! | 64 | u64 | bytes_received | 6.5 |
//! | 72 | u64 | bytes_acked | 6.5 |
//! | 80 | u8 | subflows_total (all subflows, the first included) | 6.8 |
//! | 81 | – | 3 reserved bytes | |
//! | 84 | u32 | last_data_sent (ms ago) | 6.10 |
//! | 88 | u32 | last_data_recv (ms ago) | 6.10 |
//! | 92 | u32 | last_ack_recv (ms ago) | 6.10 |
//!
//! The kernel copies `min(our length, its size)` bytes and returns the length it wrote, so
//! fields past that length are absent (older kernels): they parse as `None`.
//!
//! ## `MPTCP_SUBFLOW_ADDRS`
//!
//! In-out: the buffer starts with `struct mptcp_subflow_data { u32 size_subflow_data (16),
//! u32 num_subflows (kernel), u32 size_kernel (kernel), u32 size_user }`, followed by
//! `num_subflows` elements of `size_user` bytes, each `struct mptcp_subflow_addrs`: the local
//! address as a 128-byte `sockaddr_storage`, then the remote one (256 bytes in all).

use std::io;
use std::net::{
    Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

pub const IPPROTO_MPTCP: i32 = 262;
pub const SOL_MPTCP: i32 = 284;
pub const MPTCP_INFO: i32 = 1;
pub const MPTCP_TCPINFO: i32 = 2;
pub const MPTCP_SUBFLOW_ADDRS: i32 = 3;
/// At level SOL_TCP: 1 on an MPTCP socket that has not fallen back to TCP, 0 otherwise.
pub const TCP_IS_MPTCP: i32 = 43;

pub const MPTCP_INFO_FLAG_FALLBACK: u32 = 1 << 0;
pub const MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED: u32 = 1 << 1;

const SOCKADDR_STORAGE_LEN: usize = 128;
const SUBFLOW_ADDRS_LEN: usize = 2 * SOCKADDR_STORAGE_LEN;
const SUBFLOW_DATA_LEN: usize = 16;
const MAX_SUBFLOWS: usize = 16;

/// A new kernel MPTCP stream socket for `addr`'s family.
pub fn mptcp_socket(addr: &SocketAddr) -> io::Result<Socket> {
    Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::from(IPPROTO_MPTCP)),
    )
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("socket(IPPROTO_MPTCP): {e} (is net.mptcp.enabled=1?)"),
        )
    })
}

/// A kernel MPTCP listening socket.
#[derive(Debug)]
pub struct MptcpListener {
    inner: TcpListener,
}

impl MptcpListener {
    /// Binds (with SO_REUSEADDR) and listens, backlog 128.
    pub fn bind(addr: SocketAddr) -> io::Result<MptcpListener> {
        let s = mptcp_socket(&addr)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())
            .map_err(|e| io::Error::new(e.kind(), format!("bind MPTCP listener {addr}: {e}")))?;
        s.listen(128)?;
        Ok(MptcpListener { inner: s.into() })
    }

    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.inner.accept()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    pub fn as_std(&self) -> &TcpListener {
        &self.inner
    }

    pub fn into_std(self) -> TcpListener {
        self.inner
    }
}

/// Connects a kernel MPTCP socket to `remote`, optionally bound to `local_bind` first.
pub fn mptcp_connect(local_bind: Option<SocketAddr>, remote: SocketAddr) -> io::Result<TcpStream> {
    mptcp_connect_timeout(local_bind, remote, Duration::from_secs(10))
}

/// `mptcp_connect` with a connect timeout.
pub fn mptcp_connect_timeout(
    local_bind: Option<SocketAddr>,
    remote: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let s = mptcp_socket(&remote)?;
    if let Some(local) = local_bind {
        s.bind(&local.into())
            .map_err(|e| io::Error::new(e.kind(), format!("bind {local}: {e}")))?;
    }
    s.connect_timeout(&remote.into(), timeout)
        .map_err(|e| io::Error::new(e.kind(), format!("MPTCP connect to {remote}: {e}")))?;
    Ok(s.into())
}

/// Reads a socket option into `buf` (whose initial content the kernel may read, for in-out
/// options) and returns the length the kernel reports.
fn getsockopt_bytes(sock: &impl AsFd, level: i32, name: i32, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is valid for writes of `len` bytes and `len` points at a live socklen_t;
    // the descriptor is borrowed from a live socket for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
}

/// What `getsockopt(SOL_MPTCP, MPTCP_INFO)` returns; see the module docs for the layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MptcpInfo {
    /// Additional subflows (the first one not counted).
    pub subflows: u8,
    pub add_addr_signal: u8,
    pub add_addr_accepted: u8,
    pub subflows_max: u8,
    pub add_addr_signal_max: u8,
    pub add_addr_accepted_max: u8,
    pub flags: u32,
    pub token: u32,
    pub write_seq: u64,
    pub snd_una: u64,
    pub rcv_nxt: u64,
    pub local_addr_used: u8,
    pub local_addr_max: u8,
    pub csum_enabled: u8,
    pub retransmits: Option<u32>,
    pub bytes_retrans: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    pub bytes_acked: Option<u64>,
    /// All subflows including the first (kernel >= 6.8).
    pub subflows_total: Option<u8>,
    pub last_data_sent_ms: Option<u32>,
    pub last_data_recv_ms: Option<u32>,
    pub last_ack_recv_ms: Option<u32>,
    /// Bytes the kernel filled in.
    pub len: usize,
}

impl MptcpInfo {
    /// Parses the first `buf.len()` bytes the kernel wrote; `None` if shorter than the 5.9
    /// structure (40 bytes).
    pub fn parse(buf: &[u8]) -> Option<MptcpInfo> {
        let u8_at = |off: usize| buf.get(off).copied();
        let u32_at = |off: usize| {
            buf.get(off..off + 4)
                .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
        };
        let u64_at = |off: usize| {
            buf.get(off..off + 8)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        };
        if buf.len() < 40 {
            return None;
        }
        Some(MptcpInfo {
            subflows: buf[0],
            add_addr_signal: buf[1],
            add_addr_accepted: buf[2],
            subflows_max: buf[3],
            add_addr_signal_max: buf[4],
            add_addr_accepted_max: buf[5],
            flags: u32_at(8)?,
            token: u32_at(12)?,
            write_seq: u64_at(16)?,
            snd_una: u64_at(24)?,
            rcv_nxt: u64_at(32)?,
            local_addr_used: u8_at(40).unwrap_or(0),
            local_addr_max: u8_at(41).unwrap_or(0),
            csum_enabled: u8_at(42).unwrap_or(0),
            retransmits: u32_at(44),
            bytes_retrans: u64_at(48),
            bytes_sent: u64_at(56),
            bytes_received: u64_at(64),
            bytes_acked: u64_at(72),
            subflows_total: u8_at(80),
            last_data_sent_ms: u32_at(84),
            last_data_recv_ms: u32_at(88),
            last_ack_recv_ms: u32_at(92),
            len: buf.len(),
        })
    }

    /// The connection fell back to plain TCP.
    pub fn is_fallback(&self) -> bool {
        self.flags & MPTCP_INFO_FLAG_FALLBACK != 0
    }

    pub fn remote_key_received(&self) -> bool {
        self.flags & MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED != 0
    }

    /// Subflows in use, the first included: `subflows_total` where the kernel reports it,
    /// else `subflows + 1`.
    pub fn total_subflows(&self) -> u8 {
        self.subflows_total
            .unwrap_or_else(|| self.subflows.saturating_add(1))
    }
}

/// `getsockopt(SOL_MPTCP, MPTCP_INFO)`. Fails on plain TCP sockets and on MPTCP sockets that
/// fell back to TCP (the kernel hands the call to the TCP subflow, which does not know it).
pub fn mptcp_info(sock: &impl AsFd) -> io::Result<MptcpInfo> {
    let mut buf = [0u8; 256];
    let len = getsockopt_bytes(sock, SOL_MPTCP, MPTCP_INFO, &mut buf)
        .map_err(|e| io::Error::new(e.kind(), format!("getsockopt(SOL_MPTCP, MPTCP_INFO): {e}")))?;
    MptcpInfo::parse(&buf[..len.min(buf.len())]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("MPTCP_INFO: only {len} bytes"),
        )
    })
}

/// True when `sock` is an MPTCP connection (created with IPPROTO_MPTCP and not fallen back to
/// TCP): `getsockopt(SOL_TCP, TCP_IS_MPTCP)` is 1. A plain TCP socket answers 0 (or, before
/// kernel 5.16, fails), both false.
pub fn is_mptcp(sock: &impl AsFd) -> bool {
    let mut buf = [0u8; 4];
    match getsockopt_bytes(sock, libc::SOL_TCP, TCP_IS_MPTCP, &mut buf) {
        Ok(4) => u32::from_ne_bytes(buf) != 0,
        _ => false,
    }
}

/// The addresses of one subflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubflowAddrs {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// `getsockopt(SOL_MPTCP, MPTCP_SUBFLOW_ADDRS)`: the subflows of an MPTCP connection (at most
/// 16 are listed).
pub fn subflow_addrs(sock: &impl AsFd) -> io::Result<Vec<SubflowAddrs>> {
    let mut buf = vec![0u8; SUBFLOW_DATA_LEN + MAX_SUBFLOWS * SUBFLOW_ADDRS_LEN];
    buf[0..4].copy_from_slice(&(SUBFLOW_DATA_LEN as u32).to_ne_bytes());
    buf[12..16].copy_from_slice(&(SUBFLOW_ADDRS_LEN as u32).to_ne_bytes());
    let len = getsockopt_bytes(sock, SOL_MPTCP, MPTCP_SUBFLOW_ADDRS, &mut buf).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("getsockopt(SOL_MPTCP, MPTCP_SUBFLOW_ADDRS): {e}"),
        )
    })?;
    parse_subflow_addrs(&buf[..len.min(buf.len())])
}

fn parse_subflow_addrs(buf: &[u8]) -> io::Result<Vec<SubflowAddrs>> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("MPTCP_SUBFLOW_ADDRS: {what}"),
        )
    };
    if buf.len() < SUBFLOW_DATA_LEN {
        return Err(bad("short header"));
    }
    let word = |off: usize| u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes"));
    let header = word(0) as usize;
    let count = word(4) as usize;
    let elem_kernel = word(8) as usize;
    let elem_user = word(12) as usize;
    // Elements are laid out every `size_user` bytes, each holding min(size_user, size_kernel).
    let elem = elem_user;
    if header < SUBFLOW_DATA_LEN || elem_user.min(elem_kernel) < SUBFLOW_ADDRS_LEN {
        return Err(bad("unexpected sizes"));
    }
    let mut out = Vec::new();
    for i in 0..count {
        let start = header + i * elem;
        let Some(e) = buf.get(start..start + SUBFLOW_ADDRS_LEN) else {
            break; // more subflows than fit in the buffer
        };
        let local =
            parse_sockaddr(&e[..SOCKADDR_STORAGE_LEN]).ok_or_else(|| bad("local address"))?;
        let remote =
            parse_sockaddr(&e[SOCKADDR_STORAGE_LEN..]).ok_or_else(|| bad("remote address"))?;
        out.push(SubflowAddrs { local, remote });
    }
    Ok(out)
}

/// A `sockaddr_in` / `sockaddr_in6` in a `sockaddr_storage`.
fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_mptcp_info() {
        let mut b = [0u8; 96];
        b[0] = 1;
        b[2] = 1;
        b[3] = 4;
        b[8..12].copy_from_slice(&MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED.to_ne_bytes());
        b[12..16].copy_from_slice(&0xdead_beef_u32.to_ne_bytes());
        b[42] = 1;
        b[44..48].copy_from_slice(&7u32.to_ne_bytes());
        b[56..64].copy_from_slice(&1_000_000u64.to_ne_bytes());
        b[64..72].copy_from_slice(&2_000u64.to_ne_bytes());
        b[80] = 2;
        b[92..96].copy_from_slice(&5u32.to_ne_bytes());
        let i = MptcpInfo::parse(&b).unwrap();
        assert_eq!((i.subflows, i.add_addr_accepted, i.subflows_max), (1, 1, 4));
        assert_eq!(i.token, 0xdead_beef);
        assert!(i.remote_key_received() && !i.is_fallback());
        assert_eq!(i.csum_enabled, 1);
        assert_eq!(i.retransmits, Some(7));
        assert_eq!(i.bytes_sent, Some(1_000_000));
        assert_eq!(i.bytes_received, Some(2_000));
        assert_eq!(i.subflows_total, Some(2));
        assert_eq!(i.last_ack_recv_ms, Some(5));
        assert_eq!(i.total_subflows(), 2);
    }

    #[test]
    fn old_kernels_give_shorter_info() {
        let mut b = [0u8; 43];
        b[0] = 1;
        let i = MptcpInfo::parse(&b).unwrap();
        assert_eq!(i.bytes_sent, None);
        assert_eq!(i.subflows_total, None);
        assert_eq!(i.total_subflows(), 2);
        assert!(MptcpInfo::parse(&b[..39]).is_none());
    }

    #[test]
    fn parses_subflow_addrs() {
        let mut b = vec![0u8; SUBFLOW_DATA_LEN + 2 * SUBFLOW_ADDRS_LEN];
        b[0..4].copy_from_slice(&16u32.to_ne_bytes());
        b[4..8].copy_from_slice(&2u32.to_ne_bytes());
        b[8..12].copy_from_slice(&(SUBFLOW_ADDRS_LEN as u32).to_ne_bytes());
        b[12..16].copy_from_slice(&(SUBFLOW_ADDRS_LEN as u32).to_ne_bytes());
        let put = |b: &mut [u8], off: usize, ip: [u8; 4], port: u16| {
            b[off..off + 2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[off + 2..off + 4].copy_from_slice(&port.to_be_bytes());
            b[off + 4..off + 8].copy_from_slice(&ip);
        };
        put(&mut b, 16, [10, 31, 1, 1], 40000);
        put(&mut b, 16 + 128, [10, 31, 1, 2], 5201);
        put(&mut b, 16 + 256, [10, 31, 2, 1], 40001);
        put(&mut b, 16 + 256 + 128, [10, 31, 1, 2], 5201);
        let s = parse_subflow_addrs(&b).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].local, "10.31.2.1:40001".parse().unwrap());
        assert_eq!(s[1].remote, "10.31.1.2:5201".parse().unwrap());
    }
}
