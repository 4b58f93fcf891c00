//! The HTTPS connector of the CLI commands: `https://` checked against the system's roots or
//! only the CAs of `--ca-file`, with an optional client certificate for mutual TLS; `http://`
//! stays plain.

use std::path::Path;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

use super::{TlsError, provider, read_certs, read_key, read_roots};

/// The files of an HTTPS client, each with the setting that names it in errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientFiles<'a> {
    /// CA certificates (PEM) the server's certificate must chain to; `None`: the system's.
    pub ca_file: Option<(&'a Path, &'static str)>,
    /// The client certificate (PEM) presented to a server requiring mutual TLS.
    pub cert_file: Option<(&'a Path, &'static str)>,
    /// Its private key (PEM).
    pub key_file: Option<(&'a Path, &'static str)>,
}

/// A connector for `http://` and `https://` URLs with the settings of `files`. Without a CA
/// file and with no system roots found, every `https://` server is refused as of an unknown
/// issuer.
pub fn https_connector(files: ClientFiles<'_>) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let roots = match files.ca_file {
        Some((path, key)) => read_roots(key, path)?.1,
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(
                added,
                ignored,
                errors = found.errors.len(),
                "system root certificates"
            );
            roots
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (files.cert_file, files.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some((cert, cert_key)), Some((key, key_key))) => {
            let certs = read_certs(cert_key, cert)?.1;
            let private = read_key(key_key, key)?.1;
            builder
                .with_client_auth_cert(certs, private)
                .map_err(|e| TlsError::Invalid {
                    key: key_key,
                    path: key.to_owned(),
                    reason: e.to_string(),
                })?
        }
        (Some((_, setting)), None) | (None, Some((_, setting))) => {
            return Err(TlsError::Setup(format!(
                "{setting} needs its pair: give both the client certificate and its key"
            )));
        }
    };
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build())
}
