//! TLS with rustls (ring provider): the server's certificate ([`TlsSettings`]) and the clients'
//! trust roots ([`client_config`]).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS setting could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no usable item.
    #[error("cannot read {what}: {detail}")]
    Pem {
        /// Which input (`certificate`, `private key`, `root certificates`).
        what: &'static str,
        /// The reason.
        detail: String,
    },
    /// rustls refused the certificate/key pair or the roots.
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS settings: a certificate chain and its private key.
///
/// ```no_run
/// use callapi_signal_ws::tls::TlsSettings;
/// let tls = TlsSettings::from_pem_files("cert.pem".as_ref(), "key.pem".as_ref())?;
/// # Ok::<(), callapi_signal_ws::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct TlsSettings {
    pub(crate) config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings").finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// From PEM files (`--tls-cert`, `--tls-key`): the chain (leaf first) and a PKCS#8, PKCS#1
    /// or SEC1 private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |what: &'static str, p: &Path| {
            std::fs::read(p).map_err(|e| TlsError::Pem {
                what,
                detail: format!("{}: {e}", p.display()),
            })
        };
        Self::from_pem(&read("certificate", cert)?, &read("private key", key)?)
    }

    /// From PEM text.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let certs = parse_certs(cert_pem, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
            what: "private key",
            detail: e.to_string(),
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// From a ready rustls configuration.
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        Self { config }
    }
}

fn parse_certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            detail: "no certificate in the PEM input".into(),
        });
    }
    Ok(certs)
}

/// A client configuration trusting the Mozilla roots (`webpki-roots`) plus the certificates in
/// `extra_roots_pem` (for example a private CA or a self-signed test certificate).
pub fn client_config(
    extra_roots_pem: Option<&[u8]>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_roots_pem {
        for cert in parse_certs(pem, "root certificates")? {
            roots
                .add(cert)
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
