//! The testbed: two namespaces, two emulated links, routing, MPTCP settings, live control.

use std::io;
use std::net::Ipv4Addr;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use braid_proto::sim::link::LinkConfig;

use crate::cmd::{self, ip_in};
use crate::ns::{self, Netns};
use crate::probe::{self, Bind, RttStats};
use crate::relay::{LinkCounters, LinkFiles, Relay};
use crate::routing::{self, Endpoint};
use crate::{Direction, Link, Side, tun};

/// The link model for `rate_bps` and one-way `delay`, with the testbed's default drop-tail
/// queue: max(20 ms, 2 × delay) worth of bytes at that rate.
pub fn default_link_config(rate_bps: u64, delay: Duration) -> LinkConfig {
    let queue_ms = (2 * delay.as_millis() as u64).max(20);
    LinkConfig::new(rate_bps, delay).with_queue_ms(queue_ms)
}

/// Both directions of one link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSetup {
    /// Phone -> server.
    pub up: LinkConfig,
    /// Server -> phone.
    pub down: LinkConfig,
}

impl LinkSetup {
    /// The same rate and one-way delay both ways, default queue.
    pub fn symmetric(rate_bps: u64, delay: Duration) -> Self {
        let cfg = default_link_config(rate_bps, delay);
        LinkSetup {
            up: cfg.clone(),
            down: cfg,
        }
    }

    /// 40 Mbit/s, 10 ms one way.
    pub fn wifi() -> Self {
        Self::symmetric(40_000_000, Duration::from_millis(10))
    }

    /// 20 Mbit/s, 30 ms one way.
    pub fn cell() -> Self {
        Self::symmetric(20_000_000, Duration::from_millis(30))
    }

    pub fn get(&self, dir: Direction) -> &LinkConfig {
        match dir {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }

    pub fn get_mut(&mut self, dir: Direction) -> &mut LinkConfig {
        match dir {
            Direction::Up => &mut self.up,
            Direction::Down => &mut self.down,
        }
    }
}

/// How to build a testbed. `Default` is the standard two-path phone.
#[derive(Clone, Debug)]
pub struct TestbedConfig {
    /// Phone namespace name; `None`: `brp-<pid>-<n>`, unique per instance.
    pub phone_ns: Option<String>,
    /// Server namespace name; `None`: `brs-<pid>-<n>`.
    pub server_ns: Option<String>,
    pub wifi: LinkSetup,
    pub cell: LinkSetup,
    /// Seed of the link models' randomness (loss, reordering, duplication).
    pub seed: u64,
    /// `ip mptcp limits set subflows N add_addr_accepted M` in both namespaces.
    pub mptcp_subflows: u8,
    pub mptcp_add_addr_accepted: u8,
}

impl Default for TestbedConfig {
    fn default() -> Self {
        TestbedConfig {
            phone_ns: None,
            server_ns: None,
            wifi: LinkSetup::wifi(),
            cell: LinkSetup::cell(),
            seed: 1,
            mptcp_subflows: 4,
            mptcp_add_addr_accepted: 4,
        }
    }
}

impl TestbedConfig {
    pub fn link(&self, link: Link) -> &LinkSetup {
        match link {
            Link::Wifi => &self.wifi,
            Link::Cell => &self.cell,
        }
    }

    pub fn link_mut(&mut self, link: Link) -> &mut LinkSetup {
        match link {
            Link::Wifi => &mut self.wifi,
            Link::Cell => &mut self.cell,
        }
    }
}

/// A running testbed. Dropping it (also while unwinding from a panic) stops the relay, kills
/// processes left in the namespaces and deletes them; `down()` does the same and reports
/// errors.
pub struct Testbed {
    // Field order is drop order: the relay (and the TUN devices it holds) first.
    relay: Option<Relay>,
    phone: Netns,
    server: Netns,
}

impl Testbed {
    /// Builds the namespaces, the links and the routing, and starts the relay.
    pub fn up(cfg: TestbedConfig) -> io::Result<Testbed> {
        if !cmd::is_root() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "braid-netbed needs root (network namespaces, TUN devices)",
            ));
        }
        cmd::check_prerequisites()?;
        ns::remove_stale_once();
        let (phone_name, server_name) = match (&cfg.phone_ns, &cfg.server_ns) {
            (Some(p), Some(s)) => (p.clone(), s.clone()),
            (None, None) => ns::unique_names(),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "name both namespaces or neither",
                ));
            }
        };
        // On any error below, the values built so far are dropped, which undoes them.
        let phone = Netns::create(&phone_name)?;
        let server = Netns::create(&server_name)?;
        for ns in [&phone, &server] {
            ip_in(ns.name(), &["link", "set", "dev", "lo", "up"])?;
            // Before the TUN devices exist, so that they inherit the defaults (no IPv6:
            // no router solicitations or DAD packets on the emulated links).
            ns.sysctls(&[
                ("net.ipv6.conf.all.disable_ipv6", "1"),
                ("net.ipv6.conf.default.disable_ipv6", "1"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
                ("net.ipv4.tcp_no_metrics_save", "1"),
                ("net.mptcp.enabled", "1"),
            ])?;
        }
        let open_pair = |side: Side| {
            let ns = match side {
                Side::Phone => &phone,
                Side::Server => &server,
            };
            ns.run(move || {
                Ok([
                    tun::open(Link::Wifi.iface(side))?,
                    tun::open(Link::Cell.iface(side))?,
                ])
            })
        };
        let [phone_wifi, phone_cell] = open_pair(Side::Phone)?;
        let [server_wifi, server_cell] = open_pair(Side::Server)?;
        let relay = Relay::start(
            &phone_name,
            [
                LinkFiles {
                    phone: phone_wifi,
                    server: server_wifi,
                },
                LinkFiles {
                    phone: phone_cell,
                    server: server_cell,
                },
            ],
            [
                [cfg.wifi.up.clone(), cfg.wifi.down.clone()],
                [cfg.cell.up.clone(), cfg.cell.down.clone()],
            ],
            cfg.seed,
        )?;
        let tb = Testbed {
            relay: Some(relay),
            phone,
            server,
        };
        for side in [Side::Phone, Side::Server] {
            let ns = tb.ns(side);
            for link in Link::ALL {
                routing::configure_interface(ns.name(), side, link)?;
            }
            let key = |link: Link| format!("net.ipv4.conf.{}.rp_filter", link.iface(side));
            let (kw, kc) = (key(Link::Wifi), key(Link::Cell));
            ns.sysctls(&[(kw.as_str(), "0"), (kc.as_str(), "0")])?;
            for link in Link::ALL {
                routing::setup(ns.name(), side, link)?;
            }
            routing::mptcp_limits(ns.name(), cfg.mptcp_subflows, cfg.mptcp_add_addr_accepted)?;
        }
        Ok(tb)
    }

    fn ns(&self, side: Side) -> &Netns {
        match side {
            Side::Phone => &self.phone,
            Side::Server => &self.server,
        }
    }

    fn relay(&self) -> &Relay {
        self.relay
            .as_ref()
            .expect("the relay lives as long as the testbed")
    }

    /// Tears everything down and reports the first error. `Drop` does the same silently.
    pub fn down(mut self) -> io::Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> io::Result<()> {
        if let Some(mut relay) = self.relay.take() {
            relay.stop();
        }
        let a = self.phone.delete();
        let b = self.server.delete();
        a.and(b)
    }

    /// Namespace name of `side` (for `ip netns exec NAME`, `ip -n NAME`).
    pub fn ns_name(&self, side: Side) -> &str {
        self.ns(side).name()
    }

    /// The address of `link` on `side` (fixed: 10.31.{1 wifi, 2 cell}.{1 phone, 2 server}).
    pub fn addr(&self, side: Side, link: Link) -> Ipv4Addr {
        link.addr(side)
    }

    // ---- link control ----

    /// A real link loss: the relay drops everything on `link` both ways (including what is in
    /// flight), then the phone's interface goes down (`ip link set c-LINK down`), which the
    /// phone's kernel sees as an interface event and which removes the routes through it.
    pub fn link_down(&self, link: Link) -> io::Result<()> {
        self.relay().set_admin_down(link, true);
        ip_in(
            self.phone.name(),
            &["link", "set", "dev", link.iface(Side::Phone), "down"],
        )
        .map(|_| ())
    }

    /// Undoes `link_down`: interface up, its routes back, the relay passes traffic again.
    pub fn link_up(&self, link: Link) -> io::Result<()> {
        ip_in(
            self.phone.name(),
            &["link", "set", "dev", link.iface(Side::Phone), "up"],
        )?;
        routing::restore_routes(self.phone.name(), Side::Phone, link)?;
        self.relay().set_admin_down(link, false);
        Ok(())
    }

    /// Silent loss: the relay drops everything on `link` both ways while both interfaces stay
    /// up (a WiFi that still associates but passes nothing).
    pub fn silent_loss(&self, link: Link, on: bool) {
        self.relay().set_silent_loss(link, on);
    }

    pub fn is_silent(&self, link: Link) -> bool {
        self.relay().is_silent(link)
    }

    /// Whether the interface of `link` on `side` is administratively up.
    pub fn interface_is_up(&self, side: Side, link: Link) -> io::Result<bool> {
        routing::interface_is_up(self.ns(side).name(), link.iface(side))
    }

    /// Replaces the model of one direction of `link`, live (packets already accepted keep
    /// their delivery times).
    pub fn set_link(&self, link: Link, dir: Direction, cfg: LinkConfig) {
        self.relay().set_config(link, dir, cfg);
    }

    pub fn link_config(&self, link: Link, dir: Direction) -> LinkConfig {
        self.relay().config(link, dir)
    }

    /// Packets and bytes offered, delivered and dropped on `link`, per direction, since `up`.
    pub fn counters(&self, link: Link) -> LinkCounters {
        self.relay().counters(link)
    }

    // ---- running code ----

    /// Spawns a thread that first enters `side`'s namespace, then runs `f`. Sockets it
    /// creates and threads it spawns live in that namespace. Returns once the thread is in.
    pub fn spawn_in<F, T>(&self, side: Side, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.ns(side).spawn(format!("nb-{}", side.name()), f)
    }

    /// Runs `f` on a thread inside `side`'s namespace and waits for it.
    pub fn run_in<T: Send>(
        &self,
        side: Side,
        f: impl FnOnce() -> io::Result<T> + Send,
    ) -> io::Result<T> {
        self.ns(side).run(f)
    }

    /// `ip netns exec NS PROGRAM`: add arguments and spawn as usual. Processes still in the
    /// namespace when the testbed goes down are killed.
    pub fn command(&self, side: Side, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(side).name(), program]);
        c
    }

    // ---- MPTCP ----

    /// `ip mptcp endpoint add …` on `side`.
    pub fn add_endpoint(&self, side: Side, ep: &Endpoint) -> io::Result<()> {
        routing::endpoint_add(self.ns(side).name(), ep)
    }

    /// `ip mptcp endpoint flush` on `side`.
    pub fn flush_endpoints(&self, side: Side) -> io::Result<()> {
        routing::endpoint_flush(self.ns(side).name())
    }

    /// `ip mptcp limits set subflows N add_addr_accepted M` on `side`.
    pub fn set_mptcp_limits(
        &self,
        side: Side,
        subflows: u8,
        add_addr_accepted: u8,
    ) -> io::Result<()> {
        routing::mptcp_limits(self.ns(side).name(), subflows, add_addr_accepted)
    }

    /// `net.mptcp.checksum_enabled` on `side` (DSS checksums for connections made afterwards).
    pub fn set_mptcp_checksum(&self, side: Side, on: bool) -> io::Result<()> {
        self.sysctl(
            side,
            "net.mptcp.checksum_enabled",
            if on { "1" } else { "0" },
        )
    }

    /// Sets a sysctl (`net.…` key) in `side`'s namespace.
    pub fn sysctl(&self, side: Side, key: &str, value: &str) -> io::Result<()> {
        self.ns(side).sysctls(&[(key, value)])
    }

    /// Reads a sysctl in `side`'s namespace.
    pub fn read_sysctl(&self, side: Side, key: &str) -> io::Result<String> {
        self.ns(side).read_sysctl(key)
    }

    // ---- probes ----

    /// UDP echo RTT over `link`: from the phone, bound to its interface, to the server's
    /// address on that link; `count` probes 20 ms apart.
    pub fn ping(&self, link: Link, count: u32) -> io::Result<RttStats> {
        self.ping_from(Bind::Device(link), link.addr(Side::Server), count)
    }

    /// UDP echo RTT from the phone (bound as `bind` says) to server address `dst`.
    pub fn ping_from(&self, bind: Bind, dst: Ipv4Addr, count: u32) -> io::Result<RttStats> {
        probe::udp_rtt(self, bind, dst, count, Duration::from_millis(20))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("braid-netbed: teardown: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_queue_is_max_of_20ms_and_twice_the_delay() {
        let wifi = default_link_config(40_000_000, Duration::from_millis(10));
        assert_eq!(wifi.queue_limit_bytes, 100_000); // 20 ms at 5 MB/s
        let cell = default_link_config(20_000_000, Duration::from_millis(30));
        assert_eq!(cell.queue_limit_bytes, 150_000); // 60 ms at 2.5 MB/s
    }
}
