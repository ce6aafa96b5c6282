//! `BraidClient.connectTls`: TLS (rustls) inside a Braid connection through the gateway.

use crate::cancel::{BraidCancelToken, cancellable};
use crate::client::{BraidClient, open_via};
use crate::connection::BraidConnection;
use crate::error::BraidError;
use crate::runtime::run;
use crate::stream::Stream;
use braid::tls::rustls::pki_types::CertificateDer;
use braid::tls::rustls::pki_types::pem::PemObject;
use braid::tls::{RootCertStore, TlsRoots};
use std::sync::Arc;

/// How `connectTls` checks the server and what it offers.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BraidTlsOptions {
    /// Trust the operating system's certificate store (rustls-platform-verifier: Apple
    /// builds). Builds without it fail with `Unsupported` (Linux; on Android the Kotlin
    /// layer passes the system CAs as extra roots instead).
    #[uniffi(default = true)]
    pub use_system_roots: bool,
    /// CA certificates to trust, PEM text (one or more `BEGIN CERTIFICATE` blocks each).
    /// Only with `use_system_roots = false`: then these, and only these, are trusted.
    #[uniffi(default)]
    pub extra_roots_pem: Vec<String>,
    /// CA certificates to trust, DER bytes (same rule as `extra_roots_pem`).
    #[uniffi(default)]
    pub extra_roots_der: Vec<Vec<u8>>,
    /// Application protocols to offer (ALPN), most preferred first, e.g. "h2", "http/1.1".
    #[uniffi(default)]
    pub alpn: Vec<String>,
}

impl Default for BraidTlsOptions {
    fn default() -> Self {
        BraidTlsOptions {
            use_system_roots: true,
            extra_roots_pem: Vec::new(),
            extra_roots_der: Vec::new(),
            alpn: Vec::new(),
        }
    }
}

impl BraidTlsOptions {
    fn roots(&self) -> Result<TlsRoots, BraidError> {
        let extra = !self.extra_roots_pem.is_empty() || !self.extra_roots_der.is_empty();
        if self.use_system_roots {
            if extra {
                return Err(BraidError::InvalidArgument(
                    "extra roots replace the system's: set use_system_roots to false to trust them"
                        .into(),
                ));
            }
            return Ok(TlsRoots::Platform);
        }
        if !extra {
            return Err(BraidError::InvalidArgument(
                "no roots to trust: use_system_roots is false and no extra roots were given".into(),
            ));
        }
        let mut store = RootCertStore::empty();
        for (i, pem) in self.extra_roots_pem.iter().enumerate() {
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| {
                    BraidError::InvalidArgument(format!("extra_roots_pem[{i}]: {e}"))
                })?;
                add_root(&mut store, cert, &format!("extra_roots_pem[{i}]"))?;
                found += 1;
            }
            if found == 0 {
                return Err(BraidError::InvalidArgument(format!(
                    "extra_roots_pem[{i}] has no BEGIN CERTIFICATE block"
                )));
            }
        }
        for (i, der) in self.extra_roots_der.iter().enumerate() {
            let cert = CertificateDer::from(der.clone());
            add_root(&mut store, cert, &format!("extra_roots_der[{i}]"))?;
        }
        Ok(TlsRoots::Custom(store))
    }

    fn client_config(&self) -> Result<braid::tls::rustls::ClientConfig, BraidError> {
        let mut cfg = braid::tls::client_config(self.roots()?)?;
        for p in &self.alpn {
            if p.is_empty() || p.len() > 255 {
                return Err(BraidError::InvalidArgument(format!(
                    "ALPN protocol '{p}' must be 1 to 255 bytes"
                )));
            }
        }
        cfg.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(cfg)
    }
}

fn add_root(
    store: &mut RootCertStore,
    cert: CertificateDer<'static>,
    what: &str,
) -> Result<(), BraidError> {
    store
        .add(cert)
        .map_err(|e| BraidError::InvalidArgument(format!("{what} is not a usable CA: {e}")))
}

#[uniffi::export]
impl BraidClient {
    /// Connects to `target` (`host:port`) through the Braid gateway at `gateway`, then runs
    /// a TLS handshake (rustls, TLS 1.2/1.3) that checks the server's certificate for
    /// `server_name` (a DNS name or IP address). The connection then reads and writes
    /// plaintext; stats, paths, events and the service type work as for `connectVia`.
    /// A certificate that fails the check gives `CertificateRejected`; other handshake
    /// failures `Tls`. The connect timeout of the config applies to the gateway exchange
    /// and to the handshake, each.
    #[uniffi::method(default(options = None, cancel = None))]
    pub async fn connect_tls(
        self: Arc<Self>,
        gateway: String,
        target: String,
        server_name: String,
        options: Option<BraidTlsOptions>,
        cancel: Option<Arc<BraidCancelToken>>,
    ) -> Result<Arc<BraidConnection>, BraidError> {
        let client = self.client.clone();
        let deadline = self.connect_timeout;
        let policy = self.policy.clone();
        run(cancellable(cancel, async move {
            let cfg = Arc::new(options.unwrap_or_default().client_config()?);
            let conn = open_via(&client, deadline, &gateway, &target).await?;
            let tls = braid::tls::connect_tls_with(conn, server_name.trim(), cfg);
            let tls = tokio::time::timeout(deadline, tls).await.map_err(|_| {
                BraidError::Timeout(format!(
                    "TLS handshake with {target} did not finish within {deadline:?}"
                ))
            })??;
            Ok(BraidConnection::new(
                Stream::Tls(Box::new(tls)),
                client,
                target,
                policy,
            ))
        }))
        .await
    }
}
