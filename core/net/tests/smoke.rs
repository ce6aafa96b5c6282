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
