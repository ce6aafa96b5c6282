//! `--interface NAME[:KIND]`: parsing, the kind guessed from the name, the OS index.

use crate::error::{Failure, Result};
use braid::{Interface, InterfaceKind};

/// One `--interface` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceSpec {
    pub name: String,
    pub kind: InterfaceKind,
}

/// Parses `NAME` or `NAME:KIND`.
pub fn parse(arg: &str) -> Result<IfaceSpec> {
    let (name, kind) = match arg.rsplit_once(':') {
        Some((name, kind)) => {
            let kind = match kind {
                "wifi" | "wlan" => InterfaceKind::Wifi,
                "cellular" | "cell" | "mobile" => InterfaceKind::Cellular,
                "wired" | "ethernet" => InterfaceKind::Wired,
                "other" => InterfaceKind::Other,
                _ => {
                    return Err(Failure::usage(format!(
                        "--interface {arg}: unknown kind '{kind}' (expected wifi, cellular, \
                         wired or other)"
                    )));
                }
            };
            (name, kind)
        }
        None => (arg, guess_kind(arg)),
    };
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
        return Err(Failure::usage(format!(
            "--interface {arg}: '{name}' is not an interface name"
        )));
    }
    Ok(IfaceSpec {
        name: name.to_string(),
        kind,
    })
}

/// The kind an interface probably is, from the naming habits of Linux, Android and Apple.
pub fn guess_kind(name: &str) -> InterfaceKind {
    const WIFI: &[&str] = &["wlan", "wl", "wifi", "ath", "ra"];
    const CELL: &[&str] = &["rmnet", "wwan", "ccmni", "pdp_ip", "ppp", "usb_rmnet"];
    const WIRED: &[&str] = &["eth", "en", "em"];
    let starts = |list: &[&str]| list.iter().any(|p| name.starts_with(p));
    if starts(CELL) {
        InterfaceKind::Cellular
    } else if starts(WIFI) {
        InterfaceKind::Wifi
    } else if starts(WIRED) {
        InterfaceKind::Wired
    } else {
        InterfaceKind::Other
    }
}

/// The OS index of a named interface.
pub fn index_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call, which only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Checks that every interface exists and builds the runtime's descriptions. The path id of
/// each is its OS index, so link events (which carry indexes) map straight to paths.
pub fn resolve(args: &[String]) -> Result<Vec<(IfaceSpec, Interface)>> {
    let mut out: Vec<(IfaceSpec, Interface)> = Vec::new();
    for a in args {
        let spec = parse(a)?;
        let Some(index) = index_of(&spec.name) else {
            return Err(Failure::new(format!("unknown interface '{}'", spec.name)));
        };
        if out.iter().any(|(s, _)| s.name == spec.name) {
            return Err(Failure::usage(format!(
                "interface '{}' given twice",
                spec.name
            )));
        }
        let iface = Interface::new(spec.kind)
            .with_name(spec.name.clone())
            .with_index(index);
        out.push((spec, iface));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(guess_kind("wlan0"), InterfaceKind::Wifi);
        assert_eq!(guess_kind("wlp3s0"), InterfaceKind::Wifi);
        assert_eq!(guess_kind("rmnet_data0"), InterfaceKind::Cellular);
        assert_eq!(guess_kind("wwan0"), InterfaceKind::Cellular);
        assert_eq!(guess_kind("ccmni1"), InterfaceKind::Cellular);
        assert_eq!(guess_kind("eth0"), InterfaceKind::Wired);
        assert_eq!(guess_kind("enp0s31f6"), InterfaceKind::Wired);
        assert_eq!(guess_kind("lo"), InterfaceKind::Other);
        assert_eq!(guess_kind("veth12"), InterfaceKind::Other);
    }

    #[test]
    fn explicit_kind_wins() {
        let s = parse("eth1:cellular").unwrap();
        assert_eq!(s.name, "eth1");
        assert_eq!(s.kind, InterfaceKind::Cellular);
        assert_eq!(parse("wlan0").unwrap().kind, InterfaceKind::Wifi);
        assert_eq!(parse("x:wired").unwrap().kind, InterfaceKind::Wired);
    }

    #[test]
    fn bad_arguments() {
        assert!(parse("eth0:radio").is_err());
        assert!(parse(":wifi").is_err());
        assert!(parse("").is_err());
        assert!(parse("averyveryverylongname0").is_err());
    }

    #[test]
    fn loopback_exists_and_nosuch_does_not() {
        assert!(index_of("lo").is_some());
        assert!(index_of("nosuch0").is_none());
        let e = resolve(&["nosuch0".into()]).unwrap_err();
        assert_eq!(e.msg, "unknown interface 'nosuch0'");
    }
}
