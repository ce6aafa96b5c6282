//! The demo's network, all on loopback: a TCP server (source and sink), a gateway that
//! allows only it, a WiFi-like and a cellular-like path emulator, and a client with one
//! interface through each.

use super::{
    CELL_BPS, CELL_DELAY, DemoArgs, SEED_DOWN, WIFI_BPS, WIFI_DELAY, amount, failure_text,
};
use crate::error::{Failure, Result};
use crate::progress::{Display, bytes};
use crate::report::PathNames;
use braid::emulator::PathEmulator;
use braid::gateway::{Gateway, GatewayConfig};
use braid::{Client, Interface, InterfaceKind, PathId};
use braid_proto::sim::link::LinkConfig;
use braid_testkit::transfer::{self as stream, Amount, Outcome};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn link(rate: u64, delay: Duration) -> LinkConfig {
    LinkConfig::new(rate, delay)
        .with_queue_bdp(1.0)
        .with_overhead(28)
}

/// What the TCP server saw.
pub(super) struct ServerSide {
    pub(super) received: Outcome,
    pub(super) sent: Outcome,
}

/// The running pieces and how to reach them.
pub(super) struct Network {
    /// Bytes the TCP server received (the upload) and the client received (the download).
    pub(super) up_rx: Arc<AtomicU64>,
    pub(super) down_rx: Arc<AtomicU64>,
    /// The TCP server's verdict, when its connection is over.
    pub(super) server_rx: oneshot::Receiver<std::io::Result<ServerSide>>,
    pub(super) tcp: SocketAddr,
    pub(super) gw_addr: SocketAddr,
    pub(super) wifi: PathEmulator,
    pub(super) cell: PathEmulator,
    pub(super) client: Client,
    pub(super) names: PathNames,
    pub(super) wifi_id: PathId,
    pub(super) cell_id: PathId,
}

impl Network {
    /// Starts every piece.
    pub(super) async fn start(a: &DemoArgs) -> Result<Self> {
        let lo: IpAddr = [127, 0, 0, 1].into();
        let any: SocketAddr = (lo, 0).into();

        // The pieces, all on loopback.
        let up_rx = Arc::new(AtomicU64::new(0));
        let down_rx = Arc::new(AtomicU64::new(0));
        let (server_tx, server_rx) = oneshot::channel();
        let (bytes_each, seconds) = (a.bytes, a.seconds);
        let amount_for = move || amount(bytes_each, seconds);
        let tcp = tcp_server(amount_for, up_rx.clone(), server_tx).await?;
        let gw = Gateway::bind(
            any,
            GatewayConfig {
                allow: vec![tcp.to_string()],
                ..GatewayConfig::default()
            },
        )
        .await?;
        let gw_addr = gw.local_addr();
        tokio::spawn(gw.run());
        let wifi = PathEmulator::start(
            any,
            gw_addr,
            link(WIFI_BPS, WIFI_DELAY),
            link(WIFI_BPS, WIFI_DELAY),
        )
        .await?;
        let cell = PathEmulator::start(
            any,
            gw_addr,
            link(CELL_BPS, CELL_DELAY),
            link(CELL_BPS, CELL_DELAY),
        )
        .await?;
        let client = Client::builder()
            .service(a.policy.into())
            .connect_timeout(Duration::from_secs(5))
            .interface(
                Interface::new(InterfaceKind::Wifi)
                    .with_local_addr(lo)
                    .with_via(wifi.local_addr()),
            )
            .interface(
                Interface::new(InterfaceKind::Cellular)
                    .with_local_addr(lo)
                    .with_via(cell.local_addr()),
            )
            .build()?;
        let mut names = PathNames::default();
        let mut wifi_id = None;
        let mut cell_id = None;
        for (id, i) in client.interfaces() {
            names.0.insert(id, i.kind.to_string());
            match i.kind {
                InterfaceKind::Wifi => wifi_id = Some(id),
                _ => cell_id = Some(id),
            }
        }
        let (Some(wifi_id), Some(cell_id)) = (wifi_id, cell_id) else {
            return Err(Failure::new("internal error: the client lost an interface"));
        };
        Ok(Self {
            up_rx,
            down_rx,
            server_rx,
            tcp,
            gw_addr,
            wifi,
            cell,
            client,
            names,
            wifi_id,
            cell_id,
        })
    }

    /// Prints what the demo is about to do.
    pub(super) fn describe(&self, a: &DemoArgs, out: &mut Display) {
        let (gw_addr, tcp) = (self.gw_addr, self.tcp);
        out.line(&format!(
            "braid demo: WiFi 40 Mbit/s 10 ms + cellular 20 Mbit/s 30 ms (emulated on loopback), \
             policy {}",
            braid::ServiceType::from(a.policy)
        ));
        out.line(&format!(
            "  client -> [wifi {} | cellular {}] -> gateway {gw_addr} -> TCP server {tcp}",
            self.wifi.local_addr(),
            self.cell.local_addr()
        ));
        let transfer = match a.bytes {
            Some(n) => format!("{} each way", bytes(n)),
            None => format!("{:.1} s each way", a.seconds.as_secs_f64()),
        };
        let fail_text = failure_text(a.failure);
        out.line(&format!(
            "  transfer: {transfer}, upload and download at once; {fail_text}"
        ));
    }
}

/// A TCP server: on its one connection, sends the download and sinks the upload.
async fn tcp_server(
    amount_for: impl Fn() -> Amount + Send + Sync + 'static,
    rx_count: Arc<AtomicU64>,
    done: oneshot::Sender<std::io::Result<ServerSide>>,
) -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        let r = async {
            let (s, _) = l.accept().await?;
            let (mut r, mut w) = s.into_split();
            let amount = amount_for();
            let writer = tokio::spawn(async move { stream::send(&mut w, SEED_DOWN, amount).await });
            let received = stream::recv(&mut r, Some(&rx_count), true).await?;
            let sent = writer.await.map_err(std::io::Error::other)??;
            Ok(ServerSide { received, sent })
        }
        .await;
        let _ = done.send(r);
    });
    Ok(addr)
}
