//! Installs the system packages the tests need, only when they are missing.

use crate::sh::{self, Result};
use std::process::Command;

/// Debian packages: (a command or file that proves it is installed, the package).
const APT: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("nft", "nftables"),
    ("ethtool", "ethtool"),
    // The proxy's real-client test: curl through `braid proxy` to nginx behind the gateway.
    ("nginx", "nginx"),
    ("curl", "curl"),
    ("openssl", "openssl"),
];

pub fn install_all() -> Result {
    install_apt(APT)
}

/// Installs the packages whose marker is missing. Without root it says what is missing and
/// leaves it to the caller (tests that need those tools skip loudly or fail in CI).
pub fn install_apt(wanted: &[(&str, &str)]) -> Result {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(marker, _)| !present(marker))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !sh::is_root() {
        eprintln!(
            "xtask: not root, cannot install {}; tests needing them will skip",
            missing.join(" ")
        );
        return Ok(());
    }
    let mut update = Command::new("apt-get");
    update
        .args(["-qq", "update"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    sh::run(&mut update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["-qq", "install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    sh::run(&mut install)
}

fn present(marker: &str) -> bool {
    if marker.starts_with('/') {
        std::path::Path::new(marker).exists()
    } else {
        sh::have(marker)
    }
}
