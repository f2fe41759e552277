//! TLS for the REST API and the gateway: one certificate chain and key,
//! from PEM files named in the config, served by rustls.
//!
//! Remote Spark Connect users need it: pyspark sends a token only over TLS
//! unless the host is literally `localhost`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `"tls": {"certificate": PATH, "key": PATH}` in the server's config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server's certificate, then any intermediates.
    pub certificate: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.certificate: cannot read certificates from {}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("tls.key: cannot read a private key from {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("tls: the certificate and key do not go together: {0}")]
    Mismatch(String),
}

/// Which application protocols a listener speaks, for ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/2 and HTTP/1.1 (the REST API).
    Http,
    /// HTTP/2 only (gRPC, the gateway).
    Http2,
}

impl TlsConfig {
    /// Reads the files and builds a server config offering `alpn`.
    pub fn load(&self, alpn: Alpn) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = certificates(&self.certificate)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| TlsError::Key {
            path: self.key.clone(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Mismatch(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Mismatch(e.to_string()))?;
        config.alpn_protocols = match alpn {
            Alpn::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::Http2 => vec![b"h2".to_vec()],
        };
        Ok(Arc::new(config))
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let failed = |reason: String| TlsError::Certificate {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if chain.is_empty() {
        return Err(failed("no PEM certificate in the file".into()));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig {
            certificate: dir.path().join("missing.pem"),
            key: dir.path().join("key.pem"),
        };
        let err = config.load(Alpn::Http).unwrap_err().to_string();
        assert!(err.starts_with("tls.certificate:"), "{err}");
        assert!(err.contains("missing.pem"), "{err}");

        std::fs::write(dir.path().join("empty.pem"), "not pem").unwrap();
        let config = TlsConfig {
            certificate: dir.path().join("empty.pem"),
            key: dir.path().join("key.pem"),
        };
        let err = config.load(Alpn::Http).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
