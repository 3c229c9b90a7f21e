//! TLS (feature `tls`): [`TlsConfig`] for [`Server::start_tls`](crate::Server::start_tls), the
//! client's configuration for `wss://`, and [`Session`], one connection's
//! TLS state as the transport reads and writes through it.
//!
//! Built on rustls with the `ring` crypto provider, passed explicitly to
//! every configuration we build: nothing depends on a process-wide default
//! provider being installed (rustls panics when none or two are).
//!
//! The locking and buffers of a session are in `session.rs`.

mod session;

pub(crate) use self::session::Session;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::Error;

/// The `ring` crypto provider, passed explicitly.
pub(super) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's TLS settings for [`Server::start_tls`](crate::Server::start_tls):
/// a certificate chain and its private key (from PEM files), or a whole
/// `rustls::ServerConfig` of the caller's. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first, then
    /// any intermediates) and a PEM private key (PKCS#8, PKCS#1 or SEC1),
    /// and builds a configuration with rustls's safe defaults (TLS 1.2 and
    /// 1.3), the `ring` provider, and ALPN `http/1.1`.
    ///
    /// # Errors
    /// [`Error::Tls`] naming the file when it cannot be read, holds no
    /// certificate (or no key) or bad PEM, or when the key does not match
    /// the certificate.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsConfig, Error> {
        let (cert_path, key_path) = (cert_chain.as_ref(), key.as_ref());
        let certs = read_certs(cert_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| pem_error(key_path, "private key", e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                Error::Tls(format!(
                    "the key in {} does not fit the certificate in {}: {e}",
                    key_path.display(),
                    cert_path.display()
                ))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            config: Arc::new(config),
        })
    }

    /// Uses the caller's own rustls configuration (client certificates,
    /// several certificates by SNI, another crypto provider...). Its
    /// `alpn_protocols` should be empty or offer `http/1.1`: wsportal speaks
    /// HTTP/1.1 only.
    pub fn from_server_config(config: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig { config }
    }

    /// A new server session for one connection.
    pub(crate) fn session(&self) -> Result<Session, rustls::Error> {
        let conn = rustls::ServerConnection::new(Arc::clone(&self.config))?;
        Ok(Session::new(conn.into()))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, "certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

fn pem_error(path: &Path, what: &str, e: rustls::pki_types::pem::Error) -> Error {
    use rustls::pki_types::pem::Error as Pem;
    Error::Tls(match e {
        Pem::Io(e) => format!("cannot read {}: {e}", path.display()),
        Pem::NoItemsFound => format!("no {what} in {}", path.display()),
        e => format!("bad PEM in {}: {e}", path.display()),
    })
}

/// Parses PEM root certificates (for `Client::add_root_certificate`).
pub(crate) fn parse_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("bad PEM in a root certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(
            "no certificate in a root certificate's PEM".into(),
        ));
    }
    Ok(certs)
}

/// The client configuration: the bundled Mozilla roots (`webpki-roots`) and
/// any `extra` roots, the `ring` provider, ALPN `http/1.1`.
pub(crate) fn client_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, Error> {
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if extra.is_empty() {
        if let Some(c) = DEFAULT.get() {
            return Ok(Arc::clone(c));
        }
    }
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| Error::Tls(format!("unusable root certificate: {e}")))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    if extra.is_empty() {
        return Ok(Arc::clone(DEFAULT.get_or_init(|| config)));
    }
    Ok(config)
}

/// A new client session for `host` (a DNS name, sent as SNI and verified
/// against the certificate, or an IP address, verified without SNI).
pub(crate) fn client_session(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<Session, Error> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| Error::InvalidInput("the url's host is not a valid TLS server name"))?;
    let conn = rustls::ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Session::new(conn.into()))
}

/// The reason in a TLS error the transport reported, if it is one.
pub(crate) fn reason(e: &io::Error) -> Option<String> {
    e.get_ref()?
        .downcast_ref::<rustls::Error>()
        .map(ToString::to_string)
}
