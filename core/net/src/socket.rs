//! The UDP carrier: one socket per path, bound to the path's interface and local address.
//!
//! A subflow's local TCP port is its UDP socket's port (TCP-in-UDP), so the engine must be
//! told the socket's concrete address: we learn the source IP the OS would use on the
//! interface with a throwaway connected socket, then bind the real socket to that IP.

use crate::error::Error;
use braid_proto::{InterfaceKind, PathId};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// A local network interface a connection may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    /// OS name (`wlan0`, `en0`): the socket is bound to it when given.
    pub name: Option<String>,
    /// OS interface index; found from `name` when only the name is given.
    pub index: Option<u32>,
    /// What kind of network it is (decides which path is preferred).
    pub kind: InterfaceKind,
    /// Source address to use; learned from the OS routing for this interface when absent.
    pub local_addr: Option<IpAddr>,
    /// Send this path's datagrams to this address instead of the remote, and treat what
    /// comes back from it as coming from the remote: for relays and path emulators that
    /// stand in for the network between the interface and the peer.
    pub via: Option<SocketAddr>,
}

impl Interface {
    /// An interface of this kind; everything else found from the OS.
    pub fn new(kind: InterfaceKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// Bound to the OS interface with this name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Bound to the OS interface with this index.
    pub fn with_index(mut self, index: u32) -> Self {
        self.index = Some(index);
        self
    }

    /// With this source address.
    pub fn with_local_addr(mut self, ip: IpAddr) -> Self {
        self.local_addr = Some(ip);
        self
    }

    /// Through this relay or emulator (see `via`).
    pub fn with_via(mut self, via: SocketAddr) -> Self {
        self.via = Some(via);
        self
    }

    /// How the interface is named in errors and logs.
    pub fn label(&self) -> String {
        match (&self.name, self.index, self.local_addr) {
            (Some(n), _, _) => n.clone(),
            (None, Some(i), _) => format!("#{i}"),
            (None, None, Some(ip)) => ip.to_string(),
            (None, None, None) => format!("default {} route", self.kind),
        }
    }
}

/// What a [`SocketBinder`] is asked to bind a socket for.
#[derive(Clone, Debug)]
pub struct PathInfo {
    /// The path the socket serves.
    pub id: PathId,
    /// The interface it goes through.
    pub interface: Interface,
    /// Where the socket will send to (the remote, or the interface's `via`).
    pub remote: SocketAddr,
}

/// Binds a freshly created socket to the path's network before it is used. Android apps
/// implement it with `Network.bindSocket` (the fd is a plain datagram socket).
pub trait SocketBinder: Send + Sync {
    /// Binds `fd` to the network of `path`; an error fails that path.
    fn bind(&self, fd: RawFd, path: &PathInfo) -> io::Result<()>;
}

/// Binds to the interface by index: `SO_BINDTOIFINDEX` on Linux, `IP_BOUND_IF`/
/// `IPV6_BOUND_IF` on Apple platforms. Does nothing for an interface without name or index.
/// On Android it refuses named interfaces: apps may not bind by index there, and doing so
/// would bypass per-network routing; a `SocketBinder` using `Network.bindSocket` must be
/// given instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultBinder;

impl SocketBinder for DefaultBinder {
    fn bind(&self, fd: RawFd, path: &PathInfo) -> io::Result<()> {
        let Some(index) = interface_index(&path.interface)? else {
            return Ok(());
        };
        // SAFETY: the runtime calls binders with a socket it owns and keeps open for the
        // whole call; the borrow does not outlive it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = SockRef::from(&fd);
        bind_to_index(&sock, index, path.remote.is_ipv4())
    }
}

#[cfg(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
))]
fn bind_to_index(sock: &SockRef<'_>, index: NonZeroU32, v4: bool) -> io::Result<()> {
    if v4 {
        sock.bind_device_by_index_v4(Some(index))
    } else {
        sock.bind_device_by_index_v6(Some(index))
    }
}

#[cfg(target_os = "android")]
fn bind_to_index(_sock: &SockRef<'_>, index: NonZeroU32, _v4: bool) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "interface #{index}: on Android a path is bound to its Network by a SocketBinder \
             (Network.bindSocket, e.g. BraidNetworkMonitor.binder), never by interface index"
        ),
    ))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
)))]
fn bind_to_index(_sock: &SockRef<'_>, _index: NonZeroU32, _v4: bool) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "binding a socket to an interface is not supported on this platform",
    ))
}

/// The interface's index: given, or looked up by name.
pub(crate) fn interface_index(iface: &Interface) -> io::Result<Option<NonZeroU32>> {
    if let Some(i) = iface.index {
        return Ok(NonZeroU32::new(i));
    }
    let Some(name) = &iface.name else {
        return Ok(None);
    };
    let c = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string that lives across the call;
    // if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    match NonZeroU32::new(index) {
        Some(i) => Ok(Some(i)),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface named {name}"),
        )),
    }
}

/// Socket buffer sizes asked of the OS (it may grant less).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketOptions {
    pub send_buffer: usize,
    pub recv_buffer: usize,
    /// SO_REUSEPORT on a listening socket: several endpoints (gateway workers) share its
    /// port, the kernel spreading flows over them by a hash of the 4-tuple.
    pub reuse_port: bool,
}

/// Turns an OS error while binding into the error the application sees.
pub(crate) fn bind_error(iface: &Interface, e: io::Error) -> Error {
    let name = iface.label();
    match e.kind() {
        io::ErrorKind::NotFound => Error::InterfaceNotFound(name),
        io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            interface: name,
            source: e,
        },
        _ if e.raw_os_error() == Some(libc::ENODEV) || e.raw_os_error() == Some(libc::ENXIO) => {
            Error::InterfaceNotFound(name)
        }
        _ if e.raw_os_error() == Some(libc::EPERM) => Error::PermissionDenied {
            interface: name,
            source: e,
        },
        _ if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Error::AddressNotAvailable {
            interface: name,
            source: e,
        },
        _ => Error::Bind {
            interface: name,
            source: e,
        },
    }
}

fn new_udp(domain: Domain) -> io::Result<Socket> {
    Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
}

/// Creates, binds and configures the socket for one path. Returns the std socket (non
/// blocking) and its concrete local address.
pub(crate) fn open_path_socket(
    path: &PathInfo,
    binder: &dyn SocketBinder,
    opts: SocketOptions,
) -> Result<(std::net::UdpSocket, SocketAddr), Error> {
    let iface = &path.interface;
    let domain = if path.remote.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let ip = source_ip(path, binder)?;
    let sock = new_udp(domain).map_err(|e| bind_error(iface, e))?;
    if domain == Domain::IPV6 {
        let _ = sock.set_only_v6(true);
    }
    binder
        .bind(sock.as_raw_fd(), path)
        .map_err(|e| bind_error(iface, e))?;
    sock.bind(&SocketAddr::new(ip, 0).into())
        .map_err(|e| bind_error(iface, e))?;
    configure(&sock, opts);
    let local = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| bind_error(iface, io::Error::other("socket has no local address")))?;
    Ok((sock.into(), local))
}

/// The source address of a path: the interface's own, or the one the OS would use on the
/// interface for the remote (learned with a throwaway connected UDP socket).
pub(crate) fn source_ip(path: &PathInfo, binder: &dyn SocketBinder) -> Result<IpAddr, Error> {
    let iface = &path.interface;
    if let Some(ip) = iface.local_addr {
        if ip.is_ipv4() != path.remote.is_ipv4() {
            return Err(Error::InvalidArgument(format!(
                "interface {} has address {ip}, which cannot reach {}",
                iface.label(),
                path.remote
            )));
        }
        return Ok(ip);
    }
    let domain = if path.remote.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    // Ask the OS which source address this interface would use for the remote.
    let probe = new_udp(domain).map_err(|e| bind_error(iface, e))?;
    binder
        .bind(probe.as_raw_fd(), path)
        .map_err(|e| bind_error(iface, e))?;
    probe
        .connect(&path.remote.into())
        .map_err(|e| bind_error(iface, e))?;
    probe
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip())
        .ok_or_else(|| {
            bind_error(
                iface,
                io::Error::other("could not learn the interface's source address"),
            )
        })
}

/// A listening socket for a server or gateway.
pub(crate) fn open_listen_socket(
    addr: SocketAddr,
    opts: SocketOptions,
) -> Result<(std::net::UdpSocket, SocketAddr), Error> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = new_udp(domain)?;
    if domain == Domain::IPV6 {
        let _ = sock.set_only_v6(true);
    }
    if opts.reuse_port {
        set_reuse_port(&sock).map_err(|e| Error::Listen { addr, source: e })?;
    }
    sock.bind(&addr.into())
        .map_err(|e| Error::Listen { addr, source: e })?;
    configure(&sock, opts);
    let local = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    Ok((sock.into(), local))
}

#[cfg(unix)]
fn set_reuse_port(sock: &Socket) -> io::Result<()> {
    sock.set_reuse_port(true)
}

#[cfg(not(unix))]
fn set_reuse_port(_: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT exists on Unix only",
    ))
}

fn configure(sock: &Socket, opts: SocketOptions) {
    // Best effort: the OS caps these (net.core.rmem_max) and that is fine.
    let _ = sock.set_send_buffer_size(opts.send_buffer);
    let _ = sock.set_recv_buffer_size(opts.recv_buffer);
    let _ = sock.set_nonblocking(true);
}
