//! TLS of an `https://` endpoint: the CA and client certificate files, read and checked when
//! the agent starts so a bad file is an error from `build`/`init`, never a panic or a silent
//! stream of failed exports.

use std::path::Path;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::InitError;
use crate::config::TlsFiles;

const CA: &str = "CA certificate (OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE, Builder::ca_file)";
const CLIENT_CERT: &str = "client certificate (OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE, \
                           Builder::client_identity)";
const CLIENT_KEY: &str =
    "client key (OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY, Builder::client_identity)";

/// The tonic TLS settings for `files`: only the CA file's certificates are trusted when it is
/// set, else the system's roots; the client identity is presented when set.
pub(crate) fn client_config(files: &TlsFiles) -> Result<ClientTlsConfig, InitError> {
    let mut tls = ClientTlsConfig::new();
    tls = match &files.ca_file {
        Some(path) => tls.ca_certificate(Certificate::from_pem(certificates(CA, path)?)),
        None => tls.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&files.client_cert_file, &files.client_key_file) {
        tls = tls.identity(Identity::from_pem(
            certificates(CLIENT_CERT, cert)?,
            private_key(key)?,
        ));
    }
    Ok(tls)
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, InitError> {
    std::fs::read(path).map_err(|e| InitError::Tls {
        setting,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The file's bytes, once checked to hold at least one PEM certificate.
fn certificates(setting: &'static str, path: &Path) -> Result<Vec<u8>, InitError> {
    let pem = read(setting, path)?;
    let invalid = |reason: String| InitError::Tls {
        setting,
        path: path.to_owned(),
        reason,
    };
    let count = CertificateDer::pem_slice_iter(&pem)
        .try_fold(0usize, |n, cert| cert.map(|_| n + 1))
        .map_err(|e| invalid(format!("not PEM: {e}")))?;
    if count == 0 {
        return Err(invalid("no `CERTIFICATE` PEM block".to_owned()));
    }
    Ok(pem)
}

/// The file's bytes, once checked to hold a PEM private key.
fn private_key(path: &Path) -> Result<Vec<u8>, InitError> {
    let pem = read(CLIENT_KEY, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| InitError::Tls {
        setting: CLIENT_KEY,
        path: path.to_owned(),
        reason: format!("no private key PEM block (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_errors_naming_the_setting_and_the_file() {
        let dir = std::env::temp_dir().join(format!("headlight-agent-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let files = |ca: &Path| TlsFiles {
            ca_file: Some(ca.to_owned()),
            ..TlsFiles::default()
        };
        let err = client_config(&files(&missing)).unwrap_err().to_string();
        assert!(
            err.contains("OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE"),
            "{err}"
        );
        assert!(err.contains("missing.pem"), "{err}");
        let err = client_config(&files(&garbage)).unwrap_err().to_string();
        assert!(err.contains("no `CERTIFICATE` PEM block"), "{err}");
        let err = client_config(&TlsFiles {
            client_cert_file: Some(garbage.clone()),
            client_key_file: Some(garbage.clone()),
            ..TlsFiles::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("CLIENT_CERTIFICATE"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
