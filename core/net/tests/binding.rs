//! Interface binding: a named interface is used, a missing one is a clear error, and a
//! custom `SocketBinder` is called for every path socket.

mod common;

use braid::{
    Client, Error, Interface, InterfaceKind, PathInfo, Server, ServerConfig, SocketBinder,
};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn echo_server() -> std::net::SocketAddr {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).unwrap();
    let addr = server.local_addr();
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_interface_is_named_in_the_error() {
    let addr = echo_server().await;
    let client = Client::builder()
        .interface(Interface::new(InterfaceKind::Wifi).with_name("braidnope0"))
        .build()
        .unwrap();
    match client.connect(addr).await {
        Err(e @ Error::InterfaceNotFound(_)) => {
            assert!(e.to_string().contains("braidnope0"), "{e}");
        }
        other => panic!("expected InterfaceNotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_to_loopback_by_name() {
    let addr = echo_server().await;
    let client = Client::builder()
        .interface(Interface::new(InterfaceKind::Wired).with_name("lo"))
        .build()
        .unwrap();
    match client.connect(addr).await {
        Ok(mut c) => {
            c.write_all(b"ping").await.unwrap();
            c.finish();
            let mut back = Vec::new();
            c.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"ping");
        }
        // SO_BINDTOIFINDEX needs no privilege on current kernels, but older ones want
        // CAP_NET_RAW: then the error must say so.
        Err(e @ Error::PermissionDenied { .. }) => eprintln!("skipped: {e}"),
        Err(e) => panic!("binding to lo failed: {e}"),
    }
}

struct Counting(AtomicUsize);

impl SocketBinder for Counting {
    fn bind(&self, _fd: RawFd, path: &PathInfo) -> std::io::Result<()> {
        assert_eq!(path.interface.kind, InterfaceKind::Cellular);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_binder_is_used() {
    let addr = echo_server().await;
    let binder = Arc::new(Counting(AtomicUsize::new(0)));
    let client = Client::builder()
        .interface(Interface::new(InterfaceKind::Cellular))
        .binder(binder.clone())
        .build()
        .unwrap();
    let _c = client.connect(addr).await.unwrap();
    // The probe socket that learns the source address, then the path's socket.
    assert_eq!(binder.0.load(Ordering::Relaxed), 2);
}
