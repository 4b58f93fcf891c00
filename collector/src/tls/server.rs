//! The listeners' TLS settings, loaded once from `[tls]`.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::{HANDSHAKE_TIMEOUT, TlsError, provider, read_certs, read_key, read_roots};
use crate::config::TlsConfig;

/// The server side of `[tls]`: one certificate for all three listeners and, with
/// `client_ca_file`, the CA client certificates must chain to.
#[derive(Debug, Clone)]
pub struct ServerTls {
    http: Arc<ServerConfig>,
    grpc: ServerTlsConfig,
    mutual: bool,
}

impl ServerTls {
    /// Reads and checks the files of `config`: each must hold PEM certificates (or a key),
    /// and the key must belong to the certificate.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let (cert_pem, certs) = read_certs("tls.cert_file", &config.cert_file)?;
        let (key_pem, key) = read_key("tls.key_file", &config.key_file)?;
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let mut grpc = ServerTlsConfig::new()
            .identity(Identity::from_pem(&cert_pem, &key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        let builder = match &config.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let (ca_pem, roots) = read_roots("tls.client_ca_file", path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::Invalid {
                            key: "tls.client_ca_file",
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                grpc = grpc.client_ca_root(Certificate::from_pem(ca_pem));
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut http = builder.with_single_cert(certs, key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert_file: config.cert_file.clone(),
                key_file: config.key_file.clone(),
            },
            other => TlsError::Invalid {
                key: "tls.key_file",
                path: config.key_file.clone(),
                reason: other.to_string(),
            },
        })?;
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            http: Arc::new(http),
            grpc,
            mutual: config.client_ca_file.is_some(),
        })
    }

    /// The rustls configuration of the HTTP listeners (ALPN `h2` and `http/1.1`).
    pub fn http(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.http)
    }

    /// The settings of the OTLP/gRPC listener (tonic's own TLS acceptor).
    pub fn grpc(&self) -> ServerTlsConfig {
        self.grpc.clone()
    }

    /// Whether clients must present a certificate (`client_ca_file` is set).
    pub fn mutual(&self) -> bool {
        self.mutual
    }
}
