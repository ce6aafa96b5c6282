//! TLS over a Braid connection: rustls with the ring provider, through tokio-rustls.

use crate::connection::Connection;
use crate::error::{Error, Result};
use std::sync::Arc;

pub use rustls;
pub use rustls::RootCertStore;
pub use tokio_rustls::{
    client::TlsStream as ClientTlsStream, server::TlsStream as ServerTlsStream,
};

/// Which certificate authorities the client trusts.
pub enum TlsRoots {
    /// The operating system's trust store and revocation checks (rustls-platform-verifier;
    /// needs the crate feature `platform-verifier`).
    Platform,
    /// Exactly these roots.
    Custom(RootCertStore),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration with the ring provider and the given roots.
pub fn client_config(roots: TlsRoots) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    match roots {
        TlsRoots::Custom(store) => Ok(builder.with_root_certificates(store).with_no_client_auth()),
        TlsRoots::Platform => platform(builder),
    }
}

#[cfg(feature = "platform-verifier")]
fn platform(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>,
) -> Result<rustls::ClientConfig> {
    let verifier = rustls_platform_verifier::Verifier::new(provider())?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(not(feature = "platform-verifier"))]
fn platform(
    _builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>,
) -> Result<rustls::ClientConfig> {
    Err(Error::Unsupported(
        "TlsRoots::Platform without the `platform-verifier` feature",
    ))
}

/// A server configuration with the ring provider, from a certificate chain and its key.
pub fn server_config(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig> {
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?)
}

/// Runs a TLS client handshake over `conn`, verifying `server_name`.
pub async fn connect_tls(
    conn: Connection,
    server_name: &str,
    roots: TlsRoots,
) -> Result<ClientTlsStream<Connection>> {
    let cfg = client_config(roots)?;
    connect_tls_with(conn, server_name, Arc::new(cfg)).await
}

/// Same as [`connect_tls`] with a configuration of the caller's (ALPN, client auth, ...).
pub async fn connect_tls_with(
    conn: Connection,
    server_name: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> Result<ClientTlsStream<Connection>> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|_| {
        Error::InvalidArgument(format!("'{server_name}' is not a valid server name"))
    })?;
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, conn)
        .await
        .map_err(tls_io)
}

/// Runs a TLS server handshake over `conn`.
pub async fn accept_tls(
    conn: Connection,
    cfg: Arc<rustls::ServerConfig>,
) -> Result<ServerTlsStream<Connection>> {
    tokio_rustls::TlsAcceptor::from(cfg)
        .accept(conn)
        .await
        .map_err(tls_io)
}

/// tokio-rustls reports TLS failures as io errors wrapping `rustls::Error`: unwrap them.
fn tls_io(e: std::io::Error) -> Error {
    let is_tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if is_tls {
        if let Some(inner) = e.into_inner()
            && let Ok(t) = inner.downcast::<rustls::Error>()
        {
            return Error::Tls(*t);
        }
        return Error::Io(std::io::Error::other("TLS failure"));
    }
    Error::Io(e)
}
