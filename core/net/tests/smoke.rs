use braid::{Client, Server, ServerConfig};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_echo_small() {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).unwrap();
    let addr = server.local_addr();
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                let n = tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
                eprintln!("server echoed {n}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    let client = Client::builder().build().unwrap();
    let conn = client.connect(addr).await.unwrap();
    let (mut r, mut w) = conn.into_split();
    let len = 8 << 20;
    let t0 = Instant::now();
    let writer = tokio::spawn(async move {
        let buf = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while sent < len {
            w.write_all(&buf).await.unwrap();
            sent += buf.len();
        }
        w.shutdown().await.unwrap();
        w
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    let _w = writer.await.unwrap();
    eprintln!("echoed {got} bytes in {:?}", t0.elapsed());
    assert_eq!(got, len);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_connection_delivers_what_was_written_then_closes() {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut conn = server.accept().await.unwrap();
        let mut got = Vec::new();
        let r = conn.read_to_end(&mut got).await;
        let _ = tx.send((r.map(|_| got.len()), conn.stats()));
        drop(conn);
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let client = Client::builder().build().unwrap();
    let mut conn = client.connect(addr).await.unwrap();
    conn.write_all(&vec![1u8; 3_000_000]).await.unwrap();
    drop(conn);
    drop(client);
    let (n, _stats) = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        n.unwrap(),
        3_000_000,
        "everything written before the drop arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback() {
    let Ok(server) = Server::bind("[::1]:0".parse().unwrap(), ServerConfig::default()) else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    let addr = server.local_addr();
    tokio::spawn(async move {
        let conn = server.accept().await.unwrap();
        let (mut r, mut w) = conn.into_split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let client = Client::builder().build().unwrap();
    let mut conn = client.connect(addr).await.unwrap();
    conn.write_all(b"over v6").await.unwrap();
    conn.finish();
    let mut back = Vec::new();
    conn.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"over v6");
    assert!(conn.paths()[0].1.is_ipv6());
}
