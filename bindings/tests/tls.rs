//! `connectTls` driven from Rust the way the bindings drive it: TLS through the gateway to
//! the test network's TLS echo server.

mod common;

use braid_ffi::*;
use braid_ffi_testing::BraidTestNetwork;
use common::{client, network};
use std::sync::Arc;

/// `connectTls` through the test network's gateway to its TLS echo server, checking `name`.
async fn to_tls_echo(
    c: &Arc<BraidClient>,
    net: &BraidTestNetwork,
    name: &str,
    opts: Option<BraidTlsOptions>,
) -> Result<Arc<BraidConnection>, BraidError> {
    c.clone()
        .connect_tls(
            net.gateway(),
            net.tls_echo_target(),
            name.to_string(),
            opts,
            None,
        )
        .await
}

fn trusting(pem: Vec<String>, der: Vec<Vec<u8>>, alpn: &[&str]) -> Option<BraidTlsOptions> {
    Some(BraidTlsOptions {
        use_system_roots: false,
        extra_roots_pem: pem,
        extra_roots_der: der,
        alpn: alpn.iter().map(|s| s.to_string()).collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_echo_with_the_test_ca_keeps_every_connection_feature() {
    let net = network().await;
    let c = client(&net, ServiceType::Aggregate);
    let conn = to_tls_echo(
        &c,
        &net,
        "localhost",
        trusting(vec![net.test_ca_pem()], vec![], &["http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(conn.alpn_protocol().as_deref(), Some("http/1.1"));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let w = conn.clone();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(50_000) {
            w.clone().write(chunk.to_vec(), None).await.unwrap();
        }
        w.finish().unwrap();
    });
    let mut got = Vec::new();
    loop {
        let b = conn.clone().read(65536, None).await.unwrap();
        if b.is_empty() {
            break;
        }
        got.extend_from_slice(&b);
    }
    writer.await.unwrap();
    assert_eq!(got, data, "the TLS echo came back different");
    // The Braid connection under TLS is still there: stats count the records (more than
    // the plaintext), and the service type can change live.
    let stats = conn.stats();
    assert!(stats.mptcp, "{stats:?}");
    assert!(stats.bytes_received > data.len() as u64, "{stats:?}");
    assert!(!conn.paths().is_empty());
    conn.set_service_type(ServiceType::Handover).unwrap();
    conn.clone().close().await;
    assert!(conn.stats().bytes_sent > data.len() as u64);
    assert!(conn.alpn_protocol().is_none(), "no ALPN once closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_checks_fail_with_certificate_rejected() {
    let net = network().await;
    let c = client(&net, ServiceType::Aggregate);
    let attempt = |name: &'static str, opts| to_tls_echo(&c, &net, name, opts);
    // Not the server's CA.
    let e = attempt("localhost", trusting(vec![], vec![net.wrong_ca_der()], &[]))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, BraidError::CertificateRejected(m) if m.contains("UnknownIssuer")),
        "{e:?}"
    );
    // The right CA, the wrong name.
    let e = attempt(
        "example.com",
        trusting(vec![], vec![net.test_ca_der()], &[]),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(&e, BraidError::CertificateRejected(_)), "{e:?}");
    // The IP address in the certificate is a valid server name too; DER roots work.
    let ok = attempt("127.0.0.1", trusting(vec![], vec![net.test_ca_der()], &[]))
        .await
        .unwrap();
    assert!(ok.alpn_protocol().is_none(), "no ALPN offered, none chosen");
    ok.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_options_are_invalid_arguments() {
    let net = network().await;
    let c = client(&net, ServiceType::Aggregate);
    let cases = [
        ("no roots", trusting(vec![], vec![], &[])),
        ("not PEM", trusting(vec!["hello".into()], vec![], &[])),
        ("not DER", trusting(vec![], vec![vec![1, 2, 3]], &[])),
        (
            "empty ALPN",
            trusting(vec![net.test_ca_pem()], vec![], &[""]),
        ),
        (
            "system roots and extra roots",
            Some(BraidTlsOptions {
                extra_roots_der: vec![net.test_ca_der()],
                ..BraidTlsOptions::default()
            }),
        ),
    ];
    for (what, opts) in cases {
        let r = to_tls_echo(&c, &net, "localhost", opts).await;
        assert!(
            matches!(r, Err(BraidError::InvalidArgument(_))),
            "{what}: {:?}",
            r.err()
        );
    }
    let r = to_tls_echo(
        &c,
        &net,
        "not a name!",
        trusting(vec![net.test_ca_pem()], vec![], &[]),
    )
    .await;
    assert!(
        matches!(r, Err(BraidError::InvalidArgument(_))),
        "{:?}",
        r.err()
    );
    // This build has no platform verifier: asking for it says so.
    #[cfg(not(target_vendor = "apple"))]
    {
        let r = to_tls_echo(&c, &net, "localhost", None).await;
        assert!(
            matches!(r, Err(BraidError::Unsupported(_))),
            "{:?}",
            r.err()
        );
    }
}
