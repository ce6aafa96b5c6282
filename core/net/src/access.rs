//! Who may use a gateway and where it may connect: the destination allowlist, client tokens,
//! per-source limits, and a log that speaks once per source instead of once per attempt.

use crate::error::{Error, Result};
use braid_proto::addr_scope::prefix_eq;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// One allowlist entry: addresses (a prefix) and a port (or any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// The network address of the prefix.
    pub net: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
    /// The port (`None`: any port).
    pub port: Option<u16>,
}

// Ranges that a wide rule (`*`, `0.0.0.0/0`, `::/0`, or any prefix that merely contains
// them) does not reach: the gateway's own host, its LAN and whatever sits behind it
// (`braid_proto::addr_scope`, every range not of global scope). A rule reaches an address in
// one of them only if the rule lies inside that range, e.g. `127.0.0.1:9000`,
// `10.0.0.0/8:443` or a host name that resolves there.
fn special_range(ip: IpAddr) -> Option<(IpAddr, u8)> {
    braid_proto::addr_scope::special_range(ip).map(|(net, len, _)| (net, len))
}

impl AllowRule {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => prefix_eq(&n.octets(), &i.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix_eq(&n.octets(), &i.octets(), self.prefix),
            _ => false,
        }
    }

    /// Whether the rule allows connecting to `a`.
    pub fn matches(&self, a: &SocketAddr) -> bool {
        if self.port.is_some_and(|p| p != a.port()) {
            return false;
        }
        let ip = canonical(a.ip());
        if !self.contains(ip) {
            return false;
        }
        match special_range(ip) {
            None => true,
            // Only a rule that lies inside the special range reaches into it.
            Some((net, len)) => {
                self.prefix >= len
                    && AllowRule {
                        net,
                        prefix: len,
                        port: None,
                    }
                    .contains(self.net)
            }
        }
    }

    fn is_host(&self) -> bool {
        self.prefix == if self.net.is_ipv4() { 32 } else { 128 }
    }

    fn host(ip: IpAddr, port: Option<u16>) -> AllowRule {
        let ip = canonical(ip);
        AllowRule {
            net: ip,
            prefix: if ip.is_ipv4() { 32 } else { 128 },
            port,
        }
    }
}

pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A host name entry of the allowlist and what it resolved to last.
#[derive(Debug)]
struct HostEntry {
    host: String,
    port: Option<u16>,
    rules: Vec<AllowRule>,
}

/// Destinations the gateway may connect to. Host names are resolved when the list is made
/// and again by [`Allowlist::refresh`] (the gateway does so on a schedule); the decision is
/// always on the address the gateway is about to connect to.
///
/// The gateway host's own public addresses are special too: only an entry naming that very
/// address (or a host name resolving to it) reaches them, so `*` cannot be used to reach
/// services bound to the gateway's public address.
#[derive(Debug, Default)]
pub struct Allowlist {
    fixed: Vec<AllowRule>,
    hosts: RwLock<Vec<HostEntry>>,
    own: RwLock<Vec<IpAddr>>,
}

impl Allowlist {
    /// Parses `HOST_OR_CIDR:PORT` entries (`*` for any port; `*` as host for any public
    /// address; IPv6 in brackets: `[2001:db8::/32]:443`). Host names are resolved now; one
    /// that does not resolve is an error.
    pub async fn parse(entries: &[String]) -> Result<Allowlist> {
        let mut fixed = Vec::new();
        let mut hosts = Vec::new();
        for e in entries {
            let bad = |why: &str| Error::InvalidArgument(format!("allow entry '{e}': {why}"));
            let (host, port) = e
                .rsplit_once(':')
                .ok_or_else(|| bad("expected HOST_OR_CIDR:PORT"))?;
            let port = match port {
                "*" => None,
                p => Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
            };
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(bad("no host (use * for any public address)"));
            }
            if host == "*" {
                for net in [IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])] {
                    fixed.push(AllowRule {
                        net,
                        prefix: 0,
                        port,
                    });
                }
                continue;
            }
            if let Some((ip, len)) = host.split_once('/') {
                let ip: IpAddr = ip.parse().map_err(|_| bad("bad network address"))?;
                let mapped = matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
                let ip = canonical(ip);
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let mut prefix: u8 = len.parse().map_err(|_| bad("bad prefix length"))?;
                if mapped {
                    // ::ffff:a.b.c.d/n counts the 96 bits before the IPv4 address.
                    prefix = prefix
                        .checked_sub(96)
                        .ok_or_else(|| bad("IPv4-mapped prefix shorter than 96"))?;
                }
                if prefix > max {
                    return Err(bad("prefix length too long"));
                }
                fixed.push(AllowRule {
                    net: ip,
                    prefix,
                    port,
                });
            } else if let Ok(ip) = host.parse::<IpAddr>() {
                fixed.push(AllowRule::host(ip, port));
            } else {
                if host.contains(|c: char| c.is_whitespace() || c == '/') {
                    return Err(bad("not an address, a network or a host name"));
                }
                let rules = resolve(host, port).await.map_err(|reason| Error::Resolve {
                    host: host.to_string(),
                    reason,
                })?;
                hosts.push(HostEntry {
                    host: host.to_string(),
                    port,
                    rules,
                });
            }
        }
        Ok(Allowlist {
            fixed,
            hosts: RwLock::new(hosts),
            own: RwLock::new(own_addresses()),
        })
    }

    /// Whether the gateway may connect to `target`.
    pub fn permits(&self, target: &SocketAddr) -> bool {
        let ip = canonical(target.ip());
        // One of the host's own public addresses: only a rule for exactly that address
        // (its private and loopback ones are special ranges already).
        let own = special_range(ip).is_none() && read(&self.own).contains(&ip);
        let ok = |r: &AllowRule| r.matches(target) && (!own || r.net == ip && r.is_host());
        self.fixed.iter().any(ok) || read(&self.hosts).iter().any(|h| h.rules.iter().any(ok))
    }

    /// Replaces the host's own addresses (normally read from the interfaces).
    pub fn set_own_addresses(&self, addrs: Vec<IpAddr>) {
        *self.own.write().unwrap_or_else(|e| e.into_inner()) =
            addrs.into_iter().map(canonical).collect();
    }

    /// Every rule, host names as last resolved.
    pub fn rules(&self) -> Vec<AllowRule> {
        let mut all = self.fixed.clone();
        for h in read(&self.hosts).iter() {
            all.extend(h.rules.iter().cloned());
        }
        all
    }

    /// Whether some entries are host names (worth re-resolving).
    pub fn has_host_names(&self) -> bool {
        !read(&self.hosts).is_empty()
    }

    /// Resolves the host names again and reads the host's own addresses again. A name that
    /// fails keeps its previous addresses (a DNS hiccup must not cut off a destination); each
    /// failure is logged.
    pub async fn refresh(&self) {
        let own = own_addresses();
        if !own.is_empty() {
            self.set_own_addresses(own);
        }
        self.refresh_with(|host, port| async move { resolve(&host, port).await })
            .await
    }

    async fn refresh_with<F, Fut>(&self, resolve: F)
    where
        F: Fn(String, Option<u16>) -> Fut,
        Fut: Future<Output = std::result::Result<Vec<AllowRule>, String>>,
    {
        let names: Vec<(String, Option<u16>)> = read(&self.hosts)
            .iter()
            .map(|h| (h.host.clone(), h.port))
            .collect();
        for (i, (host, port)) in names.into_iter().enumerate() {
            match resolve(host.clone(), port).await {
                Ok(rules) => {
                    let mut g = self.hosts.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(h) = g.get_mut(i)
                        && h.rules != rules
                    {
                        log::info!(
                            "allowlist: {host} now resolves to {}",
                            rules
                                .iter()
                                .map(|r| r.net.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        h.rules = rules;
                    }
                }
                Err(e) => log::warn!(
                    "allowlist: cannot resolve {host} again ({e}): keeping its previous addresses"
                ),
            }
        }
    }
}

/// The addresses of this host's interfaces (empty if they cannot be read).
#[cfg(unix)]
fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and then free once.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says which type it is.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: AF_INET: the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: AF_INET6: the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(canonical(IpAddr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out.sort();
    out.dedup();
    out
}

#[cfg(not(unix))]
fn own_addresses() -> Vec<IpAddr> {
    Vec::new()
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

async fn resolve(host: &str, port: Option<u16>) -> std::result::Result<Vec<AllowRule>, String> {
    let addrs = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| e.to_string())?;
    let mut rules: Vec<AllowRule> = addrs.map(|a| AllowRule::host(a.ip(), port)).collect();
    rules.sort_by_key(|r| r.net);
    rules.dedup();
    if rules.is_empty() {
        return Err("no addresses".into());
    }
    Ok(rules)
}

/// The secrets a gateway accepts client tokens for. Its `Debug` shows how many there are,
/// never what they are.
#[derive(Clone, Default)]
pub struct Tokens {
    secrets: Vec<Arc<[u8]>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} secrets)", self.secrets.len())
    }
}

impl Tokens {
    /// Secrets as given (each one is the HMAC key, byte for byte).
    pub fn new<I, S>(secrets: I) -> Tokens
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        Tokens {
            secrets: secrets.into_iter().map(|s| Arc::from(s.as_ref())).collect(),
        }
    }

    /// Reads a token file: one secret per line, surrounding spaces trimmed, blank lines and
    /// lines starting with `#` ignored. A file that cannot be read, is not UTF-8 or holds no
    /// secret is an error.
    pub fn from_file(path: &Path) -> Result<Tokens> {
        let err = |reason: String| Error::TokenFile {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| {
            err(match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".into(),
                std::io::ErrorKind::PermissionDenied => "permission denied".into(),
                std::io::ErrorKind::IsADirectory => "is a directory".into(),
                _ => {
                    let s = e.to_string();
                    s.split(" (os error").next().unwrap_or(&s).to_string()
                }
            })
        })?;
        let text = String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
        let tokens = Tokens::parse(&text);
        if tokens.is_empty() {
            return Err(err(
                "holds no token (only blank lines and # comments)".into()
            ));
        }
        Ok(tokens)
    }

    /// The secrets of a token file's text (see [`Tokens::from_file`]).
    pub fn parse(text: &str) -> Tokens {
        Tokens::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        )
    }

    /// Whether no secret is configured.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// How many secrets are configured.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Length of the shortest secret (0 without any): short ones can be guessed offline from
    /// one token seen on the wire.
    pub fn shortest(&self) -> usize {
        self.secrets.iter().map(|s| s.len()).min().unwrap_or(0)
    }

    /// Whether `token` was made with one of the secrets for these keys. Every secret is
    /// tried and compared in constant time, so the time taken says nothing about which
    /// secret came close.
    pub fn check(
        &self,
        token: &[u8; crate::convert::TOKEN_LEN],
        client_key: u64,
        server_key: u64,
    ) -> bool {
        let mut ok = false;
        for s in &self.secrets {
            let want = crate::convert::token_mac(s, client_key, server_key);
            ok |= braid_proto::wire::crypto::constant_time_eq(&want, token);
        }
        ok
    }
}

/// What counts as one source: an IPv4 address, or an IPv6 /64 (what one subscriber gets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Source(IpAddr);

impl Source {
    pub(crate) fn of(ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Source(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            v4 => Source(v4),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// Counts something per source with a ceiling (the gateway: connections in the Convert
/// phase). Entries go away at zero, so the map holds no more than what is counted.
#[derive(Debug)]
pub(crate) struct PerSource {
    max: usize,
    counts: Mutex<HashMap<Source, usize>>,
}

/// One counted unit; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    owner: Arc<PerSource>,
    src: Source,
}

impl PerSource {
    pub(crate) fn new(max: usize) -> Arc<PerSource> {
        Arc::new(PerSource {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn try_acquire(self: &Arc<Self>, src: Source) -> Option<SourceSlot> {
        let mut g = crate::driver::lock(&self.counts);
        let n = g.entry(src).or_insert(0);
        if *n >= self.max {
            if *n == 0 {
                g.remove(&src);
            }
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            owner: self.clone(),
            src,
        })
    }

    #[cfg(test)]
    fn held(&self, src: Source) -> usize {
        crate::driver::lock(&self.counts)
            .get(&src)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut g = crate::driver::lock(&self.owner.counts);
        if let Some(n) = g.get_mut(&self.src) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                g.remove(&self.src);
            }
        }
    }
}

/// Most (source, kind) pairs remembered by [`SourceLog`].
const LOG_SOURCES: usize = 4096;

/// A log that says each kind of thing once per source per period, with how many times it
/// happened in between: a flood of bad attempts costs a line a minute, not a line each.
#[derive(Debug)]
pub(crate) struct SourceLog {
    every: Duration,
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    seen: HashMap<(Source, &'static str), (Instant, u64)>,
    /// Lines not written because the table was full of recent sources.
    held_back: u64,
}

impl SourceLog {
    pub(crate) fn new(every: Duration) -> SourceLog {
        SourceLog {
            every,
            inner: Mutex::new(LogInner::default()),
        }
    }

    /// Logs `msg()` at info level unless this source said `kind` within the period.
    /// Returns whether a line was written.
    pub(crate) fn note(
        &self,
        now: Instant,
        src: Source,
        kind: &'static str,
        msg: impl FnOnce() -> String,
    ) -> bool {
        let mut g = crate::driver::lock(&self.inner);
        let every = self.every;
        let key = (src, kind);
        let since = match g.seen.get_mut(&key) {
            Some((last, n)) if now.saturating_duration_since(*last) < every => {
                *n += 1;
                return false;
            }
            Some((_, n)) => *n,
            None => {
                if g.seen.len() >= LOG_SOURCES {
                    g.seen
                        .retain(|_, (t, _)| now.saturating_duration_since(*t) < every);
                }
                if g.seen.len() >= LOG_SOURCES {
                    g.held_back += 1;
                    return false;
                }
                0
            }
        };
        g.seen.insert(key, (now, 0));
        let held = std::mem::take(&mut g.held_back);
        drop(g);
        let mut line = format!("gateway: {src}: {}", msg());
        if since > 0 {
            line.push_str(&format!(
                " ({since} more from this source since the last such line)"
            ));
        }
        if held > 0 {
            line.push_str(&format!(
                " ({held} lines about other sources held back: too many sources)"
            ));
        }
        log::info!("{line}");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    async fn list(entries: &[&str]) -> Allowlist {
        Allowlist::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn wide_rules_skip_special_ranges() {
        let any = list(&["*:*"]).await;
        for ok in ["93.184.216.34:443", "[2606:2800:220:1::1]:80", "8.8.8.8:53"] {
            assert!(any.permits(&sa(ok)), "{ok}");
        }
        for no in [
            "127.0.0.1:80",
            "127.1.2.3:80",
            "0.0.0.0:80",
            "10.1.2.3:443",
            "172.16.0.1:443",
            "172.31.255.255:1",
            "192.168.1.1:80",
            "100.64.0.1:80",
            "169.254.169.254:80",
            "224.0.0.1:5353",
            "255.255.255.255:9",
            "[::1]:80",
            "[::]:80",
            "[::ffff:127.0.0.1]:80",
            "[fd00::1]:80",
            "[fe80::1]:80",
            "[ff02::1]:80",
        ] {
            assert!(!any.permits(&sa(no)), "{no}");
        }
        // 172.32/12 is public; the private block is only 172.16/12.
        assert!(any.permits(&sa("172.32.0.1:80")));
        let wide = list(&["0.0.0.0/0:443", "[::/0]:443", "0.0.0.0/1:80"]).await;
        assert!(wide.permits(&sa("1.1.1.1:443")));
        assert!(!wide.permits(&sa("10.0.0.1:443")));
        assert!(!wide.permits(&sa("[fc00::1]:443")));
        // 0.0.0.0/1 holds 10/8 and 127/8 but is not inside either.
        assert!(!wide.permits(&sa("127.0.0.1:80")));
        assert!(wide.permits(&sa("64.0.0.1:80")));
    }

    #[tokio::test]
    async fn explicit_rules_reach_special_ranges() {
        let l = list(&[
            "127.0.0.1:9000",
            "10.0.0.0/8:443",
            "[fd00::/8]:*",
            "192.168.1.0/24:*",
            "[::1]:22",
        ])
        .await;
        assert!(l.permits(&sa("127.0.0.1:9000")));
        assert!(!l.permits(&sa("127.0.0.1:9001")));
        assert!(!l.permits(&sa("127.0.0.2:9000")));
        assert!(l.permits(&sa("10.200.0.1:443")));
        assert!(l.permits(&sa("[fd12::1]:1")));
        assert!(l.permits(&sa("192.168.1.77:80")));
        assert!(!l.permits(&sa("192.168.2.1:80")));
        assert!(l.permits(&sa("[::1]:22")));
        assert!(l.permits(&sa("[::ffff:10.0.0.1]:443")));
        // A rule wider than the special range it overlaps does not reach into it.
        let l = list(&["8.0.0.0/5:*"]).await;
        assert!(l.permits(&sa("9.9.9.9:53")));
        assert!(!l.permits(&sa("10.0.0.1:53")));
        // A host name counts as explicit: it resolved there because the operator named it.
        let l = list(&["localhost:7"]).await;
        assert!(l.permits(&sa("127.0.0.1:7")));
        assert!(!l.permits(&sa("127.0.0.1:8")));
    }

    #[tokio::test]
    async fn own_addresses_need_an_exact_rule() {
        assert!(
            own_addresses().iter().any(|a| a.is_loopback()),
            "the interfaces were not read: {:?}",
            own_addresses()
        );
        let l = list(&["*:*", "198.51.100.0/24:*", "203.0.113.7:22"]).await;
        l.set_own_addresses(vec![
            "198.51.100.9".parse().unwrap(),
            "203.0.113.7".parse().unwrap(),
        ]);
        assert!(l.permits(&sa("198.51.100.8:22")), "a neighbour is fine");
        assert!(
            !l.permits(&sa("198.51.100.9:22")),
            "* and the /24 do not reach the host"
        );
        assert!(l.permits(&sa("203.0.113.7:22")), "an exact rule does");
        assert!(!l.permits(&sa("203.0.113.7:23")));
    }

    #[tokio::test]
    async fn bad_entries_are_clear_errors() {
        for (e, says) in [
            ("10.0.0.0/99:80", "prefix length too long"),
            ("10.0.0.0/x:80", "bad prefix length"),
            ("nohostport", "expected HOST_OR_CIDR:PORT"),
            ("1.2.3.4:99999", "bad port"),
            (":80", "no host"),
            ("10.0.0.300/8:80", "bad network address"),
            ("bad host:80", "not an address"),
        ] {
            let err = Allowlist::parse(&[e.to_string()]).await.unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(says), "{e}: {msg}");
            assert!(msg.contains(e), "{e}: {msg}");
        }
        let err = Allowlist::parse(&["no-such-host.invalid:80".into()])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Resolve { .. }), "{err}");
    }

    #[tokio::test]
    async fn refresh_replaces_addresses_and_keeps_them_on_failure() {
        let l = list(&["localhost:80"]).await;
        assert!(l.has_host_names());
        assert!(l.permits(&sa("127.0.0.1:80")));
        l.refresh_with(|_, port| async move {
            Ok(vec![AllowRule::host("192.0.2.1".parse().unwrap(), port)])
        })
        .await;
        assert!(l.permits(&sa("192.0.2.1:80")));
        assert!(!l.permits(&sa("127.0.0.1:80")), "the old address is gone");
        l.refresh_with(|_, _| async { Err("SERVFAIL".to_string()) })
            .await;
        assert!(
            l.permits(&sa("192.0.2.1:80")),
            "a failure keeps the last answer"
        );
    }

    #[test]
    fn token_files() {
        let dir = std::env::temp_dir().join(format!("braid-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tokens");
        std::fs::write(
            &f,
            "# the clients\n\n  alpha-secret-0001 \r\nbeta-secret-00002\n",
        )
        .unwrap();
        let t = Tokens::from_file(&f).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.shortest(), 17);
        assert_eq!(format!("{t:?}"), "Tokens(2 secrets)");
        let tok = crate::convert::token_mac(b"beta-secret-00002", 5, 6);
        assert!(t.check(&tok, 5, 6));
        assert!(!t.check(&tok, 6, 5));
        assert!(!t.check(&tok, 5, 7));
        assert!(!Tokens::new(["gamma"]).check(&tok, 5, 6));

        std::fs::write(&f, "# nothing\n\n   \n").unwrap();
        let e = Tokens::from_file(&f).unwrap_err().to_string();
        assert!(e.contains("holds no token"), "{e}");
        let e = Tokens::from_file(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file") && e.contains("missing"), "{e}");
        std::fs::write(&f, [0xff, 0xfe, b'\n']).unwrap();
        let e = Tokens::from_file(&f).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        let e = Tokens::from_file(&dir).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn per_source_counts_and_releases() {
        let p = PerSource::new(2);
        let a = Source::of("192.0.2.1".parse().unwrap());
        let b = Source::of("192.0.2.2".parse().unwrap());
        let s1 = p.try_acquire(a).unwrap();
        let _s2 = p.try_acquire(a).unwrap();
        assert!(p.try_acquire(a).is_none());
        assert!(p.try_acquire(b).is_some(), "another source is not affected");
        drop(s1);
        assert_eq!(p.held(a), 1);
        assert!(p.try_acquire(a).is_some());
        // One IPv6 /64 is one source.
        let x = Source::of("2001:db8::1".parse().unwrap());
        let y = Source::of("2001:db8::ffff:1".parse().unwrap());
        let z = Source::of("2001:db8:0:1::1".parse().unwrap());
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_eq!(
            Source::of("::ffff:192.0.2.1".parse().unwrap()),
            Source::of("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn source_log_speaks_once_per_period() {
        let log = SourceLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = Source::of("192.0.2.1".parse().unwrap());
        let b = Source::of("192.0.2.2".parse().unwrap());
        assert!(log.note(t0, a, "bad token", || "x".into()));
        for i in 0..100 {
            assert!(!log.note(t0 + Duration::from_millis(i), a, "bad token", || "x".into()));
        }
        assert!(log.note(t0, a, "no token", || "x".into()), "another kind");
        assert!(
            log.note(t0, b, "bad token", || "x".into()),
            "another source"
        );
        assert!(log.note(t0 + Duration::from_secs(61), a, "bad token", || "x".into()));
        // A flood of distinct sources is bounded too.
        let mut written = 0;
        for i in 0..(LOG_SOURCES as u32 * 2) {
            let s = Source::of(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()));
            written += log.note(t0, s, "k", || "x".into()) as usize;
        }
        assert!(written <= LOG_SOURCES, "{written}");
    }
}
