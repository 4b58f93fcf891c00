//! TLS with rustls and the *ring* provider: the listeners' server side (`[tls]`, optional
//! client certificates for mutual TLS) and the HTTPS client of the CLI commands.

mod client;
mod listener;
mod server;

pub use client::{ClientFiles, https_connector};
pub use listener::TlsListener;
pub use server::ServerTls;

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why TLS could not be set up; the message names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read `{key}` file {}: {source}", path.display())]
    Read {
        /// The setting naming the file, e.g. `tls.cert_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("invalid `{key}` file {}: {reason}", path.display())]
    Invalid {
        /// The setting naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "the key in `tls.key_file` {} does not belong to the certificate in `tls.cert_file` {}",
        key_file.display(),
        cert_file.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert_file: PathBuf,
        /// The key file.
        key_file: PathBuf,
    },
    /// rustls refused the settings.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The *ring* crypto provider every TLS configuration here is built with.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

/// Reads the PEM certificates of `path` (setting `key`): the file's bytes and the certificates,
/// at least one.
pub(crate) fn read_certs(
    key: &'static str,
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), TlsError> {
    let pem = read(key, path)?;
    let invalid = |reason: String| TlsError::Invalid {
        key,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("no `CERTIFICATE` PEM block".to_owned()));
    }
    Ok((pem, certs))
}

/// Reads the first PEM private key (PKCS#8, PKCS#1 or SEC1) of `path` (setting `key`): the
/// file's bytes and the key.
pub(crate) fn read_key(
    key: &'static str,
    path: &Path,
) -> Result<(Vec<u8>, PrivateKeyDer<'static>), TlsError> {
    let pem = read(key, path)?;
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Invalid {
        key,
        path: path.to_owned(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key PEM block (PKCS#8, PKCS#1 or SEC1)".to_owned()
            }
            other => format!("not PEM: {other}"),
        },
    })?;
    Ok((pem, private))
}

/// A root store holding the certificates of `path` (setting `key`).
pub(crate) fn read_roots(
    key: &'static str,
    path: &Path,
) -> Result<(Vec<u8>, rustls::RootCertStore), TlsError> {
    let (pem, certs) = read_certs(key, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            key,
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok((pem, roots))
}
