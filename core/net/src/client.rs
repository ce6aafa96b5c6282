//! The client: an endpoint with a set of interfaces, opening connections over all of them.

use crate::connection::{ConnRef, Connection, PathFactory, wait_connected};
use crate::convert;
use crate::driver::{ConnRt, EndpointRef, Shared};
use crate::error::{Error, Result};
use crate::raw::RawConfig;
use crate::socket::{DefaultBinder, Interface, SocketBinder, SocketOptions};
use braid_proto::random::SystemRandom;
use braid_proto::{
    ConnectionConfig, Endpoint, EndpointConfig, Framing, PathId, PathSpec, Policy, ServiceType,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How segments travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Carrier {
    /// TCP-in-UDP on ordinary UDP sockets: no privileges needed.
    #[default]
    Udp,
    /// Genuine TCP on raw IP sockets (Linux, CAP_NET_RAW and CAP_NET_ADMIN): real MPTCP on
    /// the wire, to the Linux kernel or any MPTCP peer. See [`crate::raw`].
    Raw,
}

impl std::str::FromStr for Carrier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "udp" => Ok(Carrier::Udp),
            "raw" => Ok(Carrier::Raw),
            _ => Err(format!("unknown carrier '{s}' (expected udp or raw)")),
        }
    }
}

/// Settings of a [`Client`].
pub struct ClientBuilder {
    policy: Policy,
    interfaces: Vec<Interface>,
    carrier: Carrier,
    connect_timeout: Duration,
    linger: Duration,
    connection: ConnectionConfig,
    socket_buffer: usize,
    binder: Arc<dyn SocketBinder>,
    raw: RawConfig,
    token: Option<Arc<[u8]>>,
    convert_timeout: Duration,
    gso: bool,
    resolve_on_gateway: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            interfaces: Vec::new(),
            carrier: Carrier::Udp,
            connect_timeout: Duration::from_secs(15),
            linger: Duration::from_secs(30),
            connection: ConnectionConfig::default(),
            socket_buffer: 4 << 20,
            binder: Arc::new(DefaultBinder),
            raw: RawConfig::default(),
            token: None,
            convert_timeout: Duration::from_secs(10),
            gso: true,
            resolve_on_gateway: true,
        }
    }
}

impl ClientBuilder {
    /// Service type and thresholds (docs/ARCHITECTURE.md, "Paths and service types").
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Service type with default thresholds.
    pub fn service(mut self, service: ServiceType) -> Self {
        self.policy = Policy::new(service);
        self
    }

    /// An interface to use; the first is the preferred one. Without any, one path follows
    /// the OS's default route.
    pub fn interface(mut self, iface: Interface) -> Self {
        self.interfaces.push(iface);
        self
    }

    /// Which carrier the paths use (TCP-in-UDP or raw TCP).
    pub fn carrier(mut self, carrier: Carrier) -> Self {
        self.carrier = carrier;
        self
    }

    /// How long `connect` waits for the handshake.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long a dropped connection may take to deliver what it has before it is aborted.
    pub fn linger(mut self, d: Duration) -> Self {
        self.linger = d;
        self
    }

    /// Connection send buffer (bytes written and not yet acknowledged).
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.connection.send_buffer = bytes;
        self
    }

    /// Connection receive buffer (also the advertised window).
    pub fn receive_buffer(mut self, bytes: usize) -> Self {
        self.connection.receive_buffer = bytes;
        self.connection.subflow.window_scale =
            braid_proto::subflow::SubflowConfig::scale_for(bytes);
        self
    }

    /// OS socket buffers asked for each UDP socket.
    pub fn socket_buffer(mut self, bytes: usize) -> Self {
        self.socket_buffer = bytes;
        self
    }

    /// Send runs of datagrams as GSO batches (UDP_SEGMENT; on by default). `false` sends
    /// one datagram per call on every path. Even when on, a path whose batches keep getting
    /// lost while single datagrams arrive falls back by itself
    /// ([`crate::ConnectionEvent::GsoDisabled`]).
    pub fn gso(mut self, on: bool) -> Self {
        self.gso = on;
        self
    }

    /// Every engine setting at once (policy is still taken from `policy`).
    pub fn connection_config(mut self, cfg: ConnectionConfig) -> Self {
        self.connection = cfg;
        self
    }

    /// How sockets get bound to interfaces (Android: `Network.bindSocket`).
    pub fn binder(mut self, binder: Arc<dyn SocketBinder>) -> Self {
        self.binder = binder;
        self
    }

    /// The secret shared with gateways that require client tokens (`braid gateway
    /// --token-file`). It never goes on the wire: `connect_via` sends an HMAC of it over the
    /// connection's MPTCP keys, which is worthless on any other connection.
    pub fn token(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.token = Some(Arc::from(secret.as_ref()));
        self
    }

    /// How long `connect_via` waits for the gateway's answer to the Convert message, after
    /// the handshake.
    pub fn convert_timeout(mut self, d: Duration) -> Self {
        self.convert_timeout = d;
        self
    }

    /// Where `connect_via` resolves a target given by name (on by default: the gateway).
    ///
    /// On the gateway, the name travels in the Convert message and the gateway's resolver
    /// answers: the address suits the gateway's network, the allowlist is checked on the
    /// address actually connected to, and the phone's WiFi or cellular DNS never sees the
    /// name (the gateway does). `false` resolves with the OS resolver here and sends the
    /// first address, as a gateway without name support needs.
    pub fn resolve_on_gateway(mut self, on: bool) -> Self {
        self.resolve_on_gateway = on;
        self
    }

    /// Asks for DSS checksums (RFC 8684 §3.3.1); either side asking turns them on.
    pub fn dss_checksum(mut self, on: bool) -> Self {
        self.connection.checksum = on;
        self
    }

    /// Raw carrier settings: mark, client port range, firewall handling.
    pub fn raw_config(mut self, raw: RawConfig) -> Self {
        self.raw = raw;
        self
    }

    /// Starts the client's driver. Must be called inside a tokio runtime.
    ///
    /// With [`Carrier::Raw`], checks the privileges and the firewall rule now (see
    /// [`crate::raw`]): `Error::NotPermitted` or `Error::FirewallRuleMissing` say what is
    /// missing.
    pub fn build(self) -> Result<Client> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidArgument(
                "Client::build must be called inside a tokio runtime".into(),
            ));
        }
        let framing = match self.carrier {
            Carrier::Udp => Framing::TcpInUdp,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Carrier::Raw => {
                crate::raw::prepare(&self.raw)?;
                Framing::Tcp
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Carrier::Raw => return Err(Error::Unsupported("the raw carrier outside Linux")),
        };
        if self.convert_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "connect and Convert timeouts must be more than zero".into(),
            ));
        }
        let mut connection = self.connection;
        connection.policy = self.policy;
        let ep = Endpoint::new(
            EndpointConfig {
                framing,
                connection: connection.clone(),
                listen: false,
                ..EndpointConfig::default()
            },
            Box::new(SystemRandom::new()),
        );
        let shared = Shared::new(ep, self.linger, 0);
        shared.lock().gso = self.gso;
        let endpoint = EndpointRef::spawn(shared);
        let mut ifaces = if self.interfaces.is_empty() {
            vec![Interface::default()]
        } else {
            self.interfaces
        };
        let mut listed = Vec::new();
        {
            let mut st = endpoint.shared.lock();
            for iface in ifaces.drain(..) {
                let id = st.path_id_for(iface.index);
                listed.push((id, iface));
            }
        }
        let configured = listed.iter().map(|(_, i)| i.clone()).collect();
        Ok(Client {
            inner: Arc::new(ClientInner {
                configured,
                endpoint,
                connection,
                connect_timeout: self.connect_timeout,
                convert_timeout: self.convert_timeout,
                token: self.token,
                resolve_on_gateway: self.resolve_on_gateway,
                interfaces: Mutex::new(listed),
                paths: Arc::new(PathFactory {
                    binder: self.binder,
                    opts: SocketOptions {
                        send_buffer: self.socket_buffer,
                        recv_buffer: self.socket_buffer,
                        reuse_port: false,
                    },
                    raw: (self.carrier == Carrier::Raw).then_some(self.raw),
                }),
            }),
        })
    }
}

struct ClientInner {
    /// The interfaces as configured, most preferred first: one that comes back takes its
    /// place again (see [`Client::interface_available`]).
    configured: Vec<Interface>,
    endpoint: EndpointRef,
    connection: ConnectionConfig,
    connect_timeout: Duration,
    convert_timeout: Duration,
    token: Option<Arc<[u8]>>,
    resolve_on_gateway: bool,
    interfaces: Mutex<Vec<(PathId, Interface)>>,
    paths: Arc<PathFactory>,
}

/// Opens Braid connections over every available interface. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl Client {
    /// A builder: interfaces, service type, carrier, timeouts.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Interfaces in use, with their path ids.
    pub fn interfaces(&self) -> Vec<(PathId, Interface)> {
        crate::driver::lock(&self.inner.interfaces).clone()
    }

    /// Connects to a Braid server or, with the raw carrier, to any MPTCP (or TCP) server.
    pub async fn connect(&self, remote: SocketAddr) -> Result<Connection> {
        let ifaces = self.interfaces();
        let shared = &self.inner.endpoint.shared;
        // Open every path's socket first; an interface that cannot be used is skipped.
        let mut opened = Vec::new();
        let mut first_err = None;
        for (id, iface) in &ifaces {
            let info = crate::socket::PathInfo {
                id: *id,
                interface: iface.clone(),
                remote: iface.via.unwrap_or(remote),
            };
            match self.inner.paths.open(&info) {
                Ok((sock, local)) => opened.push((*id, iface.clone(), sock, local)),
                Err(e) => {
                    log::warn!("interface {} unusable for {remote}: {e}", iface.label());
                    first_err.get_or_insert(e);
                }
            }
        }
        if opened.is_empty() {
            return Err(first_err.unwrap_or(Error::NoUsableInterface(remote)));
        }
        let h = {
            let mut st = shared.lock();
            if st.stopped {
                return Err(Error::EndpointClosed);
            }
            let now = Instant::now();
            let mut socks = Vec::new();
            let mut specs = Vec::new();
            for (id, iface, sock, local) in opened {
                let via = iface.via.map(|v| (v, remote));
                let sid = st.add_socket(&shared.wake, sock, local, via)?;
                socks.push((id, sid));
                specs.push(PathSpec::new(id, iface.kind, local));
            }
            let mut specs = specs.into_iter();
            let first = specs.next().ok_or(Error::NoUsableInterface(remote))?;
            let h = st
                .ep
                .connect(now, Some(self.inner.connection.clone()), first, remote);
            for spec in specs {
                st.ep.add_path(now, h, spec);
            }
            let mut rt = ConnRt::new(true);
            rt.client_managed = true;
            for &(id, sid) in &socks {
                st.set_socket_owner(sid, (h, id));
            }
            rt.socks = socks;
            st.conns.insert(h, rt);
            h
        };
        shared.wake.wake_driver();
        let conn = Connection::new(ConnRef::new(
            shared.clone(),
            h,
            remote,
            Some(self.inner.paths.clone()),
        ));
        let timeout = self.inner.connect_timeout;
        match tokio::time::timeout(timeout, wait_connected(shared, h, remote)).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                conn.abort();
                Err(Error::ConnectTimeout {
                    remote,
                    after: timeout,
                })
            }
        }
    }

    /// Connects to `target` (`host:port`, `[v6]:port`) through a Braid gateway (RFC 8803
    /// Convert).
    ///
    /// An IP literal goes in a Connect TLV. A host name goes to the gateway to resolve (a
    /// Host TLV) unless [`ClientBuilder::resolve_on_gateway`] is off, in which case it is
    /// resolved here with the OS resolver and the first address is sent. With a
    /// [`ClientBuilder::token`], the message carries the client token for this connection.
    /// Returns once the gateway has connected to the target, with the stream positioned after
    /// the gateway's answer. The gateway's refusals come back as distinct errors:
    /// [`Error::NotAllowed`], [`Error::Resolve`] (no address for the name),
    /// [`Error::Gateway`] (refused, unreachable, timed out); no answer within the Convert
    /// timeout is [`Error::ConvertTimeout`].
    pub async fn connect_via(&self, gateway: SocketAddr, target: &str) -> Result<Connection> {
        let dest = self.destination(target).await?;
        let mut conn = self.connect(gateway).await?;
        let after = self.inner.convert_timeout;
        match tokio::time::timeout(after, self.convert(&mut conn, gateway, &dest)).await {
            Ok(Ok(())) => Ok(conn),
            // Dropped: closed gracefully, so the gateway sees its answer was read.
            Ok(Err(e)) => Err(e),
            Err(_) => {
                conn.abort();
                Err(Error::ConvertTimeout { gateway, after })
            }
        }
    }

    /// What the Convert message names for `target`.
    async fn destination(&self, target: &str) -> Result<Dest> {
        if let Ok(a) = target.parse::<SocketAddr>() {
            return Ok(Dest::Addr(a));
        }
        if !self.inner.resolve_on_gateway {
            return resolve(target).await.map(Dest::Addr);
        }
        let bad = |reason: String| Error::InvalidArgument(format!("target '{target}': {reason}"));
        let (host, port) = target
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port".into()))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| bad(format!("bad port '{port}'")))?;
        let hp = convert::HostPort {
            host: host.to_string(),
            port,
        };
        convert::check_host(&hp.host).map_err(|e| bad(e.to_string()))?;
        Ok(Dest::Name(hp))
    }

    /// The Convert exchange on a fresh connection to a gateway.
    async fn convert(&self, conn: &mut Connection, gateway: SocketAddr, dest: &Dest) -> Result<()> {
        let token = match &self.inner.token {
            None => None,
            Some(secret) => {
                let Some((client_key, server_key)) = conn.mptcp_keys() else {
                    return Err(Error::TokenUnusable { gateway });
                };
                Some(convert::token_mac(secret, client_key, server_key))
            }
        };
        let request = match dest {
            Dest::Addr(a) => convert::encode_connect_with_token(*a, token.as_ref()),
            Dest::Name(hp) => convert::encode_connect_host(hp, token.as_ref())?,
        };
        conn.write_all(&request).await.map_err(Error::Io)?;
        let mut header = [0u8; convert::HEADER_LEN];
        conn.read_exact(&mut header).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Convert(convert::ConvertError::Malformed(
                    "gateway closed the connection before answering",
                ))
            } else {
                Error::Io(e)
            }
        })?;
        let len = convert::message_len(&header)?;
        let mut msg = vec![0u8; len];
        msg[..convert::HEADER_LEN].copy_from_slice(&header);
        conn.read_exact(&mut msg[convert::HEADER_LEN..])
            .await
            .map_err(Error::Io)?;
        let m = convert::decode(&msg)?;
        let target = dest.to_string();
        match m.error {
            None => Ok(()),
            Some((convert::ErrorCode::MissingCookie, _)) => Err(Error::TokenRequired { gateway }),
            Some((convert::ErrorCode::NotAuthorized, convert::TLV_TOKEN)) => {
                Err(Error::TokenRejected { gateway })
            }
            Some((convert::ErrorCode::NotAuthorized, _)) => Err(Error::NotAllowed { target }),
            Some((convert::ErrorCode::DestinationUnreachable, convert::UNREACHABLE_NO_ADDRESS)) => {
                Err(Error::Resolve {
                    host: target,
                    reason: format!("the gateway {gateway} found no address for it"),
                })
            }
            Some((code, value)) => Err(Error::Gateway {
                target,
                code,
                timed_out: code == convert::ErrorCode::DestinationUnreachable
                    && value == convert::UNREACHABLE_TIMEOUT,
            }),
        }
    }

    /// A new interface came up: every live connection opens a path on it. One of the
    /// configured interfaces takes its configured place in the preference order again.
    pub fn interface_available(&self, iface: Interface) -> Result<PathId> {
        let shared = &self.inner.endpoint.shared;
        let id = {
            let mut st = shared.lock();
            st.path_id_for(iface.index)
        };
        {
            // Back in its configured place, not last: the first interface is the preferred
            // one (the first path of new connections), and a WiFi that flapped must stay so.
            let configured = &self.inner.configured;
            let rank = |i: &Interface| {
                configured
                    .iter()
                    .position(|c| same_interface(c, i))
                    .unwrap_or(usize::MAX)
            };
            let r = rank(&iface);
            let mut list = crate::driver::lock(&self.inner.interfaces);
            list.retain(|(p, _)| *p != id);
            let at = list
                .iter()
                .position(|(_, i)| rank(i) > r)
                .unwrap_or(list.len());
            list.insert(at, (id, iface.clone()));
        }
        let conns: Vec<_> = {
            let st = shared.lock();
            st.conns
                .iter()
                .filter(|(_, rt)| rt.client_managed && rt.closed.is_none())
                .map(|(h, _)| *h)
                .collect()
        };
        for h in conns {
            let remote = match shared.lock().ep.connection(h) {
                Some(c) => c.remote(),
                None => continue,
            };
            if let Err(e) = self.inner.paths.add_path(shared, h, id, &iface, remote) {
                log::warn!("interface {}: no path for {remote}: {e}", iface.label());
            }
        }
        Ok(id)
    }

    /// An interface went away: its paths are dropped from every connection at once.
    pub fn interface_lost(&self, id: PathId) {
        crate::driver::lock(&self.inner.interfaces).retain(|(p, _)| *p != id);
        let shared = &self.inner.endpoint.shared;
        let mut st = shared.lock();
        let now = Instant::now();
        let conns: Vec<_> = st
            .conns
            .iter()
            .filter(|(_, rt)| rt.client_managed)
            .map(|(h, _)| *h)
            .collect();
        for h in conns {
            st.drop_path(now, h, id);
        }
        drop(st);
        shared.wake.wake_driver();
    }

    /// Runtime counters of the client's endpoint.
    pub fn driver_stats(&self) -> crate::driver::DriverStats {
        self.inner.endpoint.shared.lock().stats
    }
}

/// Whether two interface descriptions are the same interface: by OS name when either has
/// one, else by kind, local address and relay.
fn same_interface(a: &Interface, b: &Interface) -> bool {
    if a.name.is_some() || b.name.is_some() {
        a.name == b.name
    } else {
        (a.kind, a.local_addr, a.via) == (b.kind, b.local_addr, b.via)
    }
}

/// What a Convert request names.
enum Dest {
    Addr(SocketAddr),
    Name(convert::HostPort),
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Addr(a) => a.fmt(f),
            Dest::Name(hp) => hp.fmt(f),
        }
    }
}

/// Resolves `host:port` to one address.
pub(crate) async fn resolve(target: &str) -> Result<SocketAddr> {
    if let Ok(a) = target.parse::<SocketAddr>() {
        return Ok(a);
    }
    let mut addrs = tokio::net::lookup_host(target)
        .await
        .map_err(|e| Error::Resolve {
            host: target.to_string(),
            reason: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| Error::Resolve {
        host: target.to_string(),
        reason: "no addresses".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_proto::InterfaceKind;

    fn via(port: u16, kind: InterfaceKind) -> Interface {
        Interface::new(kind)
            .with_local_addr("127.0.0.1".parse().unwrap())
            .with_via(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[tokio::test]
    async fn an_interface_that_comes_back_keeps_its_preference() {
        let wifi = via(1, InterfaceKind::Wifi);
        let cell = via(2, InterfaceKind::Cellular);
        let client = Client::builder()
            .interface(wifi.clone())
            .interface(cell.clone())
            .build()
            .unwrap();
        let kinds = |c: &Client| {
            c.interfaces()
                .into_iter()
                .map(|(_, i)| i.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(&client),
            [InterfaceKind::Wifi, InterfaceKind::Cellular]
        );
        let wifi_id = client.interfaces()[0].0;
        client.interface_lost(wifi_id);
        assert_eq!(kinds(&client), [InterfaceKind::Cellular]);
        client.interface_available(wifi).unwrap();
        assert_eq!(
            kinds(&client),
            [InterfaceKind::Wifi, InterfaceKind::Cellular]
        );
        // One never configured goes last.
        client
            .interface_available(via(3, InterfaceKind::Wired))
            .unwrap();
        assert_eq!(
            kinds(&client),
            [
                InterfaceKind::Wifi,
                InterfaceKind::Cellular,
                InterfaceKind::Wired
            ]
        );
        // So does cellular's return after its loss: its place is after WiFi anyway.
        let cell_id = client.interfaces()[1].0;
        client.interface_lost(cell_id);
        client.interface_available(cell).unwrap();
        assert_eq!(
            kinds(&client)[..2],
            [InterfaceKind::Wifi, InterfaceKind::Cellular]
        );
    }
}
