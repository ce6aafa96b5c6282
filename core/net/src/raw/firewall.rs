//! The firewall rule of the raw carrier: drop the kernel's TCP RSTs from Braid's ports.
//!
//! The kernel sees the segments our raw sockets exchange, finds no socket of its own for
//! them and answers each with a RST, which would tear the peer's connection down. The rule
//! drops outgoing RSTs whose source port is one of Braid's and that do **not** carry the
//! stack's mark, so the stack's own RSTs (marked with `SO_MARK`) still go out.
//!
//! With `nft` (one table per mark, shared by every Braid process of the namespace):
//!
//! ```text
//! table inet braid_b4a1d {
//!     set ports { type inet_service; flags interval; }      # 61000-61999, listen ports
//!     chain output {
//!         type filter hook output priority filter; policy accept;
//!         tcp flags & rst == rst meta mark != 0x000b4a1d tcp sport @ports drop
//!     }
//! }
//! ```
//!
//! With `iptables` (and `ip6tables`), one rule per port range:
//! `iptables -I OUTPUT -p tcp --sport 61000:61999 --tcp-flags RST RST -m mark ! --mark 0xb4a1d
//! -m comment --comment braid-raw -j DROP`.
//!
//! Rules live in the network namespace of the thread that installs them. The client-port
//! range stays installed (other Braid processes may use it); a server's listen port is
//! removed when the server goes away. [`remove`] deletes everything of a mark.

use super::{FirewallBackend, FirewallMode, RawConfig};
use crate::error::Error;
use std::io;
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Firewall changes of this process, one at a time.
static LOCK: Mutex<()> = Mutex::new(());

const COMMENT: &str = "braid-raw";

/// The tool that was found (or asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Nft,
    Iptables,
}

/// The nft table of `mark`: `braid_<mark in hex>`.
pub fn nft_table(mark: u32) -> String {
    format!("braid_{mark:x}")
}

fn span(ports: &RangeInclusive<u16>, sep: char) -> String {
    if ports.start() == ports.end() {
        ports.start().to_string()
    } else {
        format!("{}{sep}{}", ports.start(), ports.end())
    }
}

/// The `nft` command that installs the rule for `ports` (idempotent apart from the rule
/// itself, which is only added when missing).
fn nft_install_script(mark: u32, ports: &RangeInclusive<u16>, with_rule: bool) -> String {
    let t = nft_table(mark);
    let mut s = format!(
        "add table inet {t}; \
         add set inet {t} ports {{ type inet_service; flags interval; }}; \
         add chain inet {t} output {{ type filter hook output priority filter; policy accept; }}; "
    );
    if with_rule {
        s.push_str(&format!(
            "add rule inet {t} output tcp flags & rst == rst meta mark != {mark:#010x} \
             tcp sport @ports drop; "
        ));
    }
    s.push_str(&format!(
        "add element inet {t} ports {{ {} }}",
        span(ports, '-')
    ));
    s
}

fn iptables_rule(mark: u32, ports: &RangeInclusive<u16>) -> Vec<String> {
    [
        "OUTPUT",
        "-p",
        "tcp",
        "--sport",
        &span(ports, ':'),
        "--tcp-flags",
        "RST",
        "RST",
        "-m",
        "mark",
        "!",
        "--mark",
        &format!("{mark:#x}"),
        "-m",
        "comment",
        "--comment",
        COMMENT,
        "-j",
        "DROP",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The exact command (one line, for a shell) that installs the rule for `ports`.
pub fn install_command(cfg: &RawConfig, ports: &RangeInclusive<u16>) -> String {
    match resolve(cfg.backend) {
        Ok(Tool::Iptables) => {
            let rule = iptables_rule(cfg.mark, ports).join(" ");
            format!("iptables -w -I {rule} && ip6tables -w -I {rule}")
        }
        _ => format!("nft '{}'", nft_install_script(cfg.mark, ports, true)),
    }
}

fn find_tool(name: &str) -> bool {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    in_path
        || ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(name).is_file())
}

fn resolve(backend: FirewallBackend) -> Result<Tool, String> {
    match backend {
        FirewallBackend::Nft => Ok(Tool::Nft),
        FirewallBackend::Iptables => Ok(Tool::Iptables),
        FirewallBackend::Auto if find_tool("nft") => Ok(Tool::Nft),
        FirewallBackend::Auto if find_tool("iptables") => Ok(Tool::Iptables),
        FirewallBackend::Auto => {
            Err("neither nft nor iptables is installed (apt-get install nftables)".into())
        }
    }
}

/// Runs a tool; on failure, its first stderr line (or why it could not start).
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!("{program} failed: {}", line.trim()))
    }
}

fn nft_rule_present(mark: u32) -> bool {
    let t = nft_table(mark);
    run("nft", &["list", "chain", "inet", &t, "output"]).is_ok_and(|out| {
        out.lines()
            .any(|l| l.contains(&format!("meta mark != {mark:#010x}")) && l.contains("@ports drop"))
    })
}

fn nft_ports_present(mark: u32, ports: &RangeInclusive<u16>) -> bool {
    let t = nft_table(mark);
    let elem = format!("{{ {} }}", span(ports, '-'));
    run("nft", &["get", "element", "inet", &t, "ports", &elem]).is_ok()
}

fn iptables_present(tool: &str, mark: u32, ports: &RangeInclusive<u16>) -> bool {
    let rule = iptables_rule(mark, ports);
    let mut args = vec!["-w", "-C"];
    args.extend(rule.iter().map(String::as_str));
    run(tool, &args).is_ok()
}

/// Whether the rule covering `ports` is in place (in this thread's network namespace).
pub fn is_installed(cfg: &RawConfig, ports: &RangeInclusive<u16>) -> io::Result<bool> {
    let tool = resolve(cfg.backend).map_err(io::Error::other)?;
    Ok(match tool {
        Tool::Nft => nft_rule_present(cfg.mark) && nft_ports_present(cfg.mark, ports),
        Tool::Iptables => iptables_present("iptables", cfg.mark, ports),
    })
}

/// Makes sure the rule covers `ports`, as `cfg.firewall` says: installs what is missing,
/// only checks, or does nothing.
pub fn ensure(cfg: &RawConfig, ports: &RangeInclusive<u16>) -> Result<(), Error> {
    if cfg.firewall == FirewallMode::Unmanaged {
        return Ok(());
    }
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let missing = |reason: String| Error::FirewallRuleMissing {
        rule: install_command(cfg, ports),
        reason,
    };
    let tool = resolve(cfg.backend).map_err(missing)?;
    match tool {
        Tool::Nft => {
            let rule = nft_rule_present(cfg.mark);
            if rule && nft_ports_present(cfg.mark, ports) {
                return Ok(());
            }
            if cfg.firewall == FirewallMode::Require {
                return Err(missing("not installed".into()));
            }
            run("nft", &[&nft_install_script(cfg.mark, ports, !rule)]).map_err(missing)?;
            if !(nft_rule_present(cfg.mark) && nft_ports_present(cfg.mark, ports)) {
                return Err(missing("nft accepted the rule but it is not listed".into()));
            }
        }
        Tool::Iptables => {
            let rule = iptables_rule(cfg.mark, ports);
            for (i, t) in ["iptables", "ip6tables"].into_iter().enumerate() {
                if iptables_present(t, cfg.mark, ports) {
                    continue;
                }
                if cfg.firewall == FirewallMode::Require {
                    if i == 0 {
                        return Err(missing("not installed".into()));
                    }
                    continue;
                }
                let mut args = vec!["-w", "-I"];
                args.extend(rule.iter().map(String::as_str));
                match run(t, &args) {
                    Ok(_) => {}
                    // IPv4 is required; without ip6tables only IPv6 paths are at risk.
                    Err(e) if i == 0 => return Err(missing(e)),
                    Err(e) => log::warn!("raw carrier: no IPv6 RST rule: {e}"),
                }
            }
        }
    }
    log::info!(
        "raw carrier: kernel RSTs from ports {} without mark {:#x} are dropped",
        span(ports, '-'),
        cfg.mark
    );
    Ok(())
}

/// Takes `ports` out of the rule (a server's listen port when the server goes away).
pub fn remove_ports(cfg: &RawConfig, ports: &RangeInclusive<u16>) -> io::Result<()> {
    if cfg.firewall != FirewallMode::Install {
        return Ok(());
    }
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match resolve(cfg.backend).map_err(io::Error::other)? {
        Tool::Nft => {
            let t = nft_table(cfg.mark);
            let elem = format!("{{ {} }}", span(ports, '-'));
            run("nft", &["delete", "element", "inet", &t, "ports", &elem])
                .map(|_| ())
                .map_err(io::Error::other)
        }
        Tool::Iptables => {
            let rule = iptables_rule(cfg.mark, ports);
            let mut args = vec!["-w", "-D"];
            args.extend(rule.iter().map(String::as_str));
            let v4 = run("iptables", &args);
            let _ = run("ip6tables", &args);
            v4.map(|_| ()).map_err(io::Error::other)
        }
    }
}

/// Removes everything the raw carrier installed for `cfg.mark` (the nft table, or every
/// iptables rule with the mark and Braid's comment).
pub fn remove(cfg: &RawConfig) -> io::Result<()> {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match resolve(cfg.backend).map_err(io::Error::other)? {
        Tool::Nft => {
            let t = nft_table(cfg.mark);
            if run("nft", &["list", "table", "inet", &t]).is_err() {
                return Ok(());
            }
            run("nft", &["delete", "table", "inet", &t])
                .map(|_| ())
                .map_err(io::Error::other)
        }
        Tool::Iptables => {
            for t in ["iptables", "ip6tables"] {
                let Ok(rules) = run(t, &["-w", "-S", "OUTPUT"]) else {
                    continue;
                };
                let mark = format!("--mark {:#x}", cfg.mark);
                for line in rules.lines() {
                    if !(line.contains(COMMENT) && line.contains(&mark)) {
                        continue;
                    }
                    // "-A OUTPUT ..." -> "-D OUTPUT ...": quotes never appear in our rules.
                    let Some(spec) = line.strip_prefix("-A ") else {
                        continue;
                    };
                    let mut args = vec!["-w", "-D"];
                    args.extend(spec.split_whitespace());
                    run(t, &args).map_err(io::Error::other)?;
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_script_names_the_mark_and_the_ports() {
        let s = nft_install_script(0xb4a1d, &(61000..=61999), true);
        assert!(s.contains("add table inet braid_b4a1d;"), "{s}");
        assert!(
            s.contains("meta mark != 0x000b4a1d tcp sport @ports drop"),
            "{s}"
        );
        assert!(s.ends_with("ports { 61000-61999 }"), "{s}");
        let s = nft_install_script(7, &(7000..=7000), false);
        assert!(!s.contains("add rule"), "{s}");
        assert!(s.ends_with("ports { 7000 }"), "{s}");
    }

    #[test]
    fn iptables_rule_matches_rsts_without_the_mark() {
        let r = iptables_rule(0xb4a1d, &(61000..=61999)).join(" ");
        assert_eq!(
            r,
            "OUTPUT -p tcp --sport 61000:61999 --tcp-flags RST RST -m mark ! --mark 0xb4a1d \
             -m comment --comment braid-raw -j DROP"
        );
    }
}
