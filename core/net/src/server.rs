//! The listening side: accepts Braid connections on a UDP socket, or MPTCP connections on a
//! raw socket (`Server::bind_raw`).

use crate::connection::{ConnRef, Connection};
use crate::driver::{DriverStats, EndpointRef, NewSocket, Shared};
use crate::error::{Error, Result};
use crate::socket::{SocketOptions, open_listen_socket};
use braid_proto::endpoint::EndpointStats;
use braid_proto::random::SystemRandom;
use braid_proto::{ConnectionConfig, Endpoint, EndpointConfig, Framing};
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

/// Settings of a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Settings of each accepted connection.
    pub connection: ConnectionConfig,
    /// Most connections at once (the engine refuses more with a RST).
    pub max_connections: usize,
    /// Most handshakes in progress at once (SYN flood protection).
    pub max_half_open: usize,
    /// Established connections waiting for `accept`; more are aborted.
    pub backlog: usize,
    /// OS buffer size asked for the listening socket.
    pub socket_buffer: usize,
    /// How long a dropped connection may take to finish before it is aborted.
    pub linger: Duration,
    /// Send runs of datagrams to one peer as one GSO batch (UDP_SEGMENT). On by default;
    /// off sends one datagram per call everywhere (`--no-gso`). Even when on, a path whose
    /// batches keep getting lost falls back to single datagrams by itself.
    pub gso: bool,
    /// Share the listening port with other servers (SO_REUSEPORT, UDP carrier): each gets
    /// the flows the kernel hashes to it. Gateway workers do this.
    pub reuse_port: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            connection: ConnectionConfig::default(),
            max_connections: 4096,
            max_half_open: 256,
            backlog: 1024,
            socket_buffer: 8 << 20,
            linger: Duration::from_secs(30),
            gso: true,
            reuse_port: false,
        }
    }
}

impl ServerConfig {
    /// Sets both connection buffers (and the window scale that goes with them).
    pub fn with_buffers(mut self, bytes: usize) -> Self {
        self.connection.send_buffer = bytes;
        self.connection.receive_buffer = bytes;
        self.connection.subflow.window_scale =
            braid_proto::subflow::SubflowConfig::scale_for(bytes);
        self
    }
}

/// Accepts Braid connections. Dropping it stops accepting; open connections go on.
pub struct Server {
    endpoint: EndpointRef,
    local: SocketAddr,
}

impl Server {
    /// Listens on `addr` (port 0 picks one). Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, cfg: ServerConfig) -> Result<Server> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidArgument(
                "Server::bind must be called inside a tokio runtime".into(),
            ));
        }
        let (sock, local) = open_listen_socket(addr, Self::socket_options(&cfg))?;
        Self::start(NewSocket::Udp(sock), local, Framing::TcpInUdp, cfg)
    }

    /// Listens on `addr` with the raw carrier (Linux, CAP_NET_RAW and CAP_NET_ADMIN): genuine
    /// MPTCP on the wire, so Linux kernel MPTCP clients (and Braid clients with
    /// [`crate::Carrier::Raw`]) can connect. `addr` may be a wildcard address; port 0 picks
    /// one. The port is reserved with a kernel TCP socket that never listens and added to the
    /// firewall rule that drops the kernel's RSTs (see [`crate::raw`]). Must be called inside
    /// a tokio runtime.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn bind_raw(
        addr: SocketAddr,
        cfg: ServerConfig,
        raw: crate::raw::RawConfig,
    ) -> Result<Server> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidArgument(
                "Server::bind_raw must be called inside a tokio runtime".into(),
            ));
        }
        let (sock, local) = crate::raw::open_listen(addr, &raw, Self::socket_options(&cfg))?;
        Self::start(NewSocket::Raw(sock), local, Framing::Tcp, cfg)
    }

    /// The raw carrier exists on Linux only.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn bind_raw(
        _addr: SocketAddr,
        _cfg: ServerConfig,
        _raw: crate::raw::RawConfig,
    ) -> Result<Server> {
        Err(Error::Unsupported("the raw carrier outside Linux"))
    }

    fn socket_options(cfg: &ServerConfig) -> SocketOptions {
        SocketOptions {
            send_buffer: cfg.socket_buffer,
            recv_buffer: cfg.socket_buffer,
            reuse_port: cfg.reuse_port,
        }
    }

    fn start(
        sock: NewSocket,
        local: SocketAddr,
        framing: Framing,
        cfg: ServerConfig,
    ) -> Result<Server> {
        let ep = Endpoint::new(
            EndpointConfig {
                framing,
                connection: cfg.connection.clone(),
                listen: true,
                max_connections: cfg.max_connections,
                max_half_open: cfg.max_half_open,
                announce: Vec::new(),
                announce_arrivals: Vec::new(),
            },
            Box::new(SystemRandom::new()),
        );
        let shared = Shared::new(ep, cfg.linger, cfg.backlog);
        {
            let mut st = shared.lock();
            st.gso = cfg.gso;
            st.add_socket(&shared.wake, sock, local, None)?;
        }
        let endpoint = EndpointRef::spawn(shared);
        Ok(Server { endpoint, local })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Listens on `addr` too (UDP carrier; not shared with other servers): connections and
    /// joins arriving there reach this same endpoint. A gateway worker's own announced
    /// address. Returns the bound address (port 0 picks one).
    pub fn listen_also(&self, addr: SocketAddr, socket_buffer: usize) -> Result<SocketAddr> {
        let opts = SocketOptions {
            send_buffer: socket_buffer,
            recv_buffer: socket_buffer,
            reuse_port: false,
        };
        let (sock, local) = open_listen_socket(addr, opts)?;
        let shared = &self.endpoint.shared;
        shared
            .lock()
            .add_socket(&shared.wake, NewSocket::Udp(sock), local, None)
            .map_err(|e| Error::Listen { addr, source: e })?;
        shared.wake.wake_driver();
        Ok(local)
    }

    /// [`Server::listen_also`] for a server on the raw carrier: a second raw listening socket
    /// at `addr`, with its own firewall rule (see [`crate::raw`]).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn listen_also_raw(
        &self,
        addr: SocketAddr,
        raw: &crate::raw::RawConfig,
        socket_buffer: usize,
    ) -> Result<SocketAddr> {
        let opts = SocketOptions {
            send_buffer: socket_buffer,
            recv_buffer: socket_buffer,
            reuse_port: false,
        };
        let (sock, local) = crate::raw::open_listen(addr, raw, opts)?;
        let shared = &self.endpoint.shared;
        shared
            .lock()
            .add_socket(&shared.wake, NewSocket::Raw(sock), local, None)
            .map_err(|e| Error::Listen { addr, source: e })?;
        shared.wake.wake_driver();
        Ok(local)
    }

    /// Announces `addr` to every connection accepted from now on (ADD_ADDR, with the C flag
    /// in the SYN/ACK: joins go there, not to the listening address; see
    /// docs/ARCHITECTURE.md, "Announce and the C flag"). `arrives_at` is where segments sent
    /// to `addr` reach this server (the socket of [`Server::listen_also`]; behind a NAT it
    /// differs from `addr`).
    pub fn announce(&self, addr: SocketAddr, arrives_at: SocketAddr) {
        let shared = &self.endpoint.shared;
        shared.lock().ep.announce(1, addr, arrives_at);
    }

    /// The next established connection; `None` once the endpoint has stopped.
    pub async fn accept(&self) -> Option<Connection> {
        let shared: &std::sync::Arc<Shared> = &self.endpoint.shared;
        let h = std::future::poll_fn(|cx| {
            let mut st = shared.lock();
            while let Some(h) = st.incoming.pop_front() {
                if let Some(rt) = st.conns.get_mut(&h) {
                    rt.pending_accept = false;
                    rt.app_held = true;
                    return Poll::Ready(Some(h));
                }
            }
            if st.stopped {
                return Poll::Ready(None);
            }
            st.incoming_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        let remote = shared
            .lock()
            .ep
            .connection(h)
            .map(|c| c.remote())
            .unwrap_or(self.local);
        Some(Connection::new(ConnRef::new(
            shared.clone(),
            h,
            remote,
            None,
        )))
    }

    /// The engine's counters (segments, refusals, malformed input).
    pub fn endpoint_stats(&self) -> EndpointStats {
        self.endpoint.shared.lock().ep.stats()
    }

    /// The runtime's counters (datagrams, send calls, drops).
    pub fn driver_stats(&self) -> DriverStats {
        self.endpoint.shared.lock().stats
    }

    /// Connections the engine holds (any state).
    pub fn connection_count(&self) -> usize {
        self.endpoint.shared.lock().ep.connection_count()
    }

    /// A handle that reads this server's [`Census`] from elsewhere (a metrics scrape)
    /// without keeping its endpoint alive.
    pub fn probe(&self) -> ServerProbe {
        ServerProbe {
            shared: std::sync::Arc::downgrade(&self.endpoint.shared),
        }
    }
}

/// Reads a [`Server`]'s connections and counters while its endpoint runs.
#[derive(Clone)]
pub struct ServerProbe {
    shared: std::sync::Weak<Shared>,
}

/// What a server's endpoint holds at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Connections whose initial handshake is in progress.
    pub connecting: usize,
    /// Connections established and open for the application.
    pub established: usize,
    /// Over for the application, subflows still finishing.
    pub closing: usize,
    /// Live subflows over all connections.
    pub subflows: usize,
    /// The engine's counters.
    pub endpoint: EndpointStats,
    /// The runtime's counters.
    pub driver: DriverStats,
}

impl ServerProbe {
    /// The census now; `None` once the endpoint is gone. Walks every connection: meant for
    /// a scrape every few seconds, not for a hot path.
    pub fn census(&self) -> Option<Census> {
        let shared = self.shared.upgrade()?;
        let st = shared.lock();
        let mut c = Census {
            endpoint: st.ep.stats(),
            driver: st.stats,
            ..Census::default()
        };
        for h in st.ep.handles() {
            let Some(conn) = st.ep.connection(h) else {
                continue;
            };
            match conn.state() {
                braid_proto::conn::ConnState::Connecting => c.connecting += 1,
                braid_proto::conn::ConnState::Established => c.established += 1,
                braid_proto::conn::ConnState::Closed => c.closing += 1,
            }
            c.subflows += conn.stats().paths.len();
        }
        Some(c)
    }
}
