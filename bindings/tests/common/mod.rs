//! What the Rust tests of the exported API share: the test network and a client over its
//! two emulated paths.
#![allow(dead_code)]

use braid_ffi::*;
use braid_ffi_testing::BraidTestNetwork;
use std::sync::Arc;

/// A client over the test network's WiFi and cellular paths with `service`.
pub fn client(net: &BraidTestNetwork, service: ServiceType) -> Arc<BraidClient> {
    let iface = |kind, name: &str| BraidInterface {
        kind,
        name: None,
        index: None,
        local_addr: Some("127.0.0.1".into()),
        via: Some(net.path_via(name.into()).unwrap()),
    };
    let config = BraidConfig {
        service_type: service,
        interfaces: vec![
            iface(InterfaceKind::Wifi, "wifi"),
            iface(InterfaceKind::Cellular, "cellular"),
        ],
        connect_timeout_ms: 5000,
        ..BraidConfig::default()
    };
    BraidClient::new(Some(config), None).unwrap()
}

/// A fresh test network (built off the async threads: it starts its own runtime).
pub async fn network() -> Arc<BraidTestNetwork> {
    tokio::task::spawn_blocking(BraidTestNetwork::new)
        .await
        .unwrap()
        .unwrap()
}
