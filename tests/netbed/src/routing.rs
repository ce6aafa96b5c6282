//! Addresses, routes, policy rules and the kernel MPTCP path manager, set with `ip -n NS`.
//!
//! Phone routing (per link L with table T_L):
//! - table T_L: `PREFIX_L dev c-L src PHONE_L`, `default via SERVER_L dev c-L`, and an
//!   `unreachable default` with the highest metric, so that a flow pinned to L never falls back
//!   to the other link while L is down;
//! - rules: `from PHONE_L lookup T_L` (sockets bound to the address) and `oif c-L lookup T_L`
//!   (sockets bound to the device with SO_BINDTODEVICE);
//! - main table: the connected prefixes plus `default via SERVER_wifi` (metric 100) and
//!   `default via SERVER_cell` (metric 200): unbound traffic prefers WiFi.
//!
//! Server routing: the connected prefixes in main answer each phone address on its own link
//! whatever the server address was (a cell subflow to the server's WiFi address is answered
//! over cell). Device-bound sockets get `oif s-L lookup T_L`, with `default via PHONE_L`.
//!
//! `ip link set DEV down` removes every route through DEV; `restore_routes` puts them back.

use std::io;
use std::net::IpAddr;

use crate::cmd::ip_in;
use crate::{Link, Side};

/// Metric of the per-table fallback route: larger than anything real.
const FALLBACK_METRIC: &str = "4294967295";

/// Brings an interface up with its /24 address (MTU 1500, like Ethernet and WiFi).
pub(crate) fn configure_interface(ns: &str, side: Side, link: Link) -> io::Result<()> {
    let dev = link.iface(side);
    let addr = format!("{}/{}", link.addr(side), Link::PREFIX_LEN);
    ip_in(ns, &["link", "set", "dev", dev, "mtu", "1500"])?;
    ip_in(ns, &["addr", "replace", &addr, "dev", dev])?;
    ip_in(ns, &["link", "set", "dev", dev, "up"])?;
    Ok(())
}

/// Policy rules and per-link tables on one side. Call once, after the interfaces are up.
pub(crate) fn setup(ns: &str, side: Side, link: Link) -> io::Result<()> {
    let table = link.table().to_string();
    let dev = link.iface(side);
    ip_in(
        ns,
        &[
            "route",
            "replace",
            "unreachable",
            "default",
            "metric",
            FALLBACK_METRIC,
            "table",
            &table,
        ],
    )?;
    if side == Side::Phone {
        let from = link.addr(Side::Phone).to_string();
        let pref = link.rule_pref_from().to_string();
        ip_in(
            ns,
            &[
                "rule", "add", "pref", &pref, "from", &from, "lookup", &table,
            ],
        )?;
    }
    let pref = link.rule_pref_oif().to_string();
    ip_in(
        ns,
        &["rule", "add", "pref", &pref, "oif", dev, "lookup", &table],
    )?;
    restore_routes(ns, side, link)
}

/// (Re)installs the routes through `link`'s interface on `side` (after it went down and up).
pub(crate) fn restore_routes(ns: &str, side: Side, link: Link) -> io::Result<()> {
    let table = link.table().to_string();
    let dev = link.iface(side);
    let src = link.addr(side).to_string();
    let peer = link.addr(side.other()).to_string();
    let prefix = link.prefix();
    ip_in(
        ns,
        &[
            "route", "replace", &prefix, "dev", dev, "src", &src, "table", &table,
        ],
    )?;
    ip_in(
        ns,
        &[
            "route", "replace", "default", "via", &peer, "dev", dev, "table", &table,
        ],
    )?;
    if side == Side::Phone {
        let metric = link.default_metric().to_string();
        ip_in(
            ns,
            &[
                "route", "replace", "default", "via", &peer, "dev", dev, "metric", &metric,
            ],
        )?;
    }
    Ok(())
}

/// Whether the interface is administratively up (`UP` among its flags).
pub(crate) fn interface_is_up(ns: &str, dev: &str) -> io::Result<bool> {
    let out = ip_in(ns, &["-o", "link", "show", "dev", dev])?;
    let flags = out
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags)
        .ok_or_else(|| io::Error::other(format!("unexpected `ip link show` output: {out}")))?;
    Ok(flags.split(',').any(|f| f == "UP"))
}

/// `ip mptcp limits set subflows N add_addr_accepted M`.
pub(crate) fn mptcp_limits(ns: &str, subflows: u8, add_addr_accepted: u8) -> io::Result<()> {
    ip_in(
        ns,
        &[
            "mptcp",
            "limits",
            "set",
            "subflows",
            &subflows.to_string(),
            "add_addr_accepted",
            &add_addr_accepted.to_string(),
        ],
    )
    .map(|_| ())
}

/// An address of the kernel's in-kernel MPTCP path manager (`ip mptcp endpoint add`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: IpAddr,
    /// Interface the address belongs to (`dev`): subflows from it are bound to this device.
    pub dev: Option<String>,
    pub id: Option<u8>,
    pub port: Option<u16>,
    /// Announce the address to the peer (ADD_ADDR).
    pub signal: bool,
    /// Open a subflow from this address (client side).
    pub subflow: bool,
    /// Subflows from this address are backup (MP_PRIO / MP_JOIN backup bit).
    pub backup: bool,
    /// One subflow from this address to every address the peer announced.
    pub fullmesh: bool,
}

impl Endpoint {
    /// An endpoint for `addr` with no flags.
    pub fn new(addr: IpAddr) -> Self {
        Endpoint {
            addr,
            dev: None,
            id: None,
            port: None,
            signal: false,
            subflow: false,
            backup: false,
            fullmesh: false,
        }
    }

    /// The address of `link` on `side`, on its interface (`dev c-cell` etc.).
    pub fn on(side: Side, link: Link) -> Self {
        Endpoint::new(link.addr(side).into()).dev(link.iface(side))
    }

    pub fn dev(mut self, dev: &str) -> Self {
        self.dev = Some(dev.to_string());
        self
    }
    pub fn id(mut self, id: u8) -> Self {
        self.id = Some(id);
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn signal(mut self) -> Self {
        self.signal = true;
        self
    }
    pub fn subflow(mut self) -> Self {
        self.subflow = true;
        self
    }
    pub fn backup(mut self) -> Self {
        self.backup = true;
        self
    }
    pub fn fullmesh(mut self) -> Self {
        self.fullmesh = true;
        self
    }

    /// The arguments after `ip mptcp endpoint add`.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = vec![self.addr.to_string()];
        if let Some(port) = self.port {
            args.extend(["port".to_string(), port.to_string()]);
        }
        if let Some(dev) = &self.dev {
            args.extend(["dev".to_string(), dev.clone()]);
        }
        if let Some(id) = self.id {
            args.extend(["id".to_string(), id.to_string()]);
        }
        for (on, word) in [
            (self.signal, "signal"),
            (self.subflow, "subflow"),
            (self.backup, "backup"),
            (self.fullmesh, "fullmesh"),
        ] {
            if on {
                args.push(word.to_string());
            }
        }
        args
    }
}

/// `ip mptcp endpoint add …`.
pub(crate) fn endpoint_add(ns: &str, ep: &Endpoint) -> io::Result<()> {
    let args = ep.args();
    let mut all: Vec<&str> = vec!["mptcp", "endpoint", "add"];
    all.extend(args.iter().map(String::as_str));
    ip_in(ns, &all).map(|_| ())
}

/// `ip mptcp endpoint flush`.
pub(crate) fn endpoint_flush(ns: &str) -> io::Result<()> {
    ip_in(ns, &["mptcp", "endpoint", "flush"]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_arguments() {
        let ep = Endpoint::on(Side::Phone, Link::Cell).subflow().backup();
        assert_eq!(
            ep.args(),
            ["10.31.2.1", "dev", "c-cell", "subflow", "backup"]
        );
        let ep = Endpoint::new("10.31.2.2".parse().unwrap())
            .id(7)
            .port(5000)
            .signal();
        assert_eq!(
            ep.args(),
            ["10.31.2.2", "port", "5000", "id", "7", "signal"]
        );
    }
}
