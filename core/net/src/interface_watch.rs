//! Linux: the client follows its interfaces through rtnetlink by itself, the way the mobile
//! layers feed NWPathMonitor and ConnectivityManager events.

use crate::netlink::{self, Change};
use crate::{Client, Interface, PathId};
use tokio::sync::mpsc;

impl Client {
    /// Watches the kernel's link and address changes of this client's interfaces (those with
    /// an OS index) and applies them: an interface that goes down or loses its addresses of
    /// the family `ipv4` selects is lost at once (no timeout to wait for); one that comes back
    /// is available again, with its original configuration. Every change is also sent to the
    /// returned receiver (for logs); dropping it stops the watch. Call inside the runtime.
    pub fn watch_interfaces(&self, ipv4: bool) -> mpsc::UnboundedReceiver<Change> {
        let watched: Vec<Interface> = self
            .interfaces()
            .into_iter()
            .map(|(_, i)| i)
            .filter(|i| i.index.is_some() && i.name.is_some())
            .collect();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        if watched.is_empty() {
            return out_rx;
        }
        let list: Vec<(u32, String)> = watched
            .iter()
            .filter_map(|i| Some((i.index?, i.name.clone()?)))
            .collect();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            if let Err(e) = netlink::watch(list, ipv4, tx).await {
                log::warn!("cannot watch interface changes (rtnetlink): {e}");
            }
        });
        let client = self.clone();
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                match &change {
                    Change::Lost { index, name, why } => {
                        log::info!("interface {name} lost ({why})");
                        client.interface_lost(PathId::new(*index));
                    }
                    Change::Available { index, name } => {
                        let Some(mut iface) = watched
                            .iter()
                            .find(|i| i.name.as_deref() == Some(name.as_str()))
                            .cloned()
                        else {
                            continue;
                        };
                        // Re-created interfaces come back under a new index.
                        iface.index = Some(*index);
                        log::info!("interface {name} available");
                        if let Err(e) = client.interface_available(iface) {
                            log::warn!("interface {name}: {e}");
                        }
                    }
                }
                if out_tx.send(change).is_err() {
                    return;
                }
            }
        });
        out_rx
    }
}
