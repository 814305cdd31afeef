//! Server certificates checked against the system's roots, loaded on the
//! first TLS handshake rather than when the client is made.
//!
//! reqwest's own rustls set-up reads every root certificate of the system
//! (the bundle and each file of `/etc/ssl/certs`) while the client is built:
//! 5 to 9 ms on this project's CI machines, paid by every command, also when
//! every registry it talks to is plain HTTP on loopback (a warm rebuild
//! takes about 60 ms in all). No crate offers a lazily loaded platform
//! verifier, so this small wrapper defers `rustls_platform_verifier` to the
//! first handshake and hands it every check unchanged.

use std::sync::{Arc, OnceLock};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// The platform verifier, made on first use.
#[derive(Debug)]
pub(crate) struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    extra_roots: Vec<CertificateDer<'static>>,
    inner: OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error>>,
}

impl LazyVerifier {
    pub(crate) fn new(provider: Arc<CryptoProvider>, extra_roots: Vec<CertificateDer<'static>>) -> LazyVerifier {
        LazyVerifier { provider, extra_roots, inner: OnceLock::new() }
    }

    fn get(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        let made = self.inner.get_or_init(|| {
            rustls_platform_verifier::Verifier::new_with_extra_roots(self.extra_roots.clone(), self.provider.clone())
                .map(Arc::new)
        });
        made.as_deref().map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        // What the platform verifier answers, known without any root.
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS set-up of the shared client: TLS 1.2 and 1.3, HTTP/2 or 1.1 by
/// ALPN (as reqwest's own), server certificates checked by [`LazyVerifier`].
pub(crate) fn client_config(extra_roots: Vec<CertificateDer<'static>>) -> Result<rustls::ClientConfig, String> {
    let provider =
        CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = Arc::new(LazyVerifier::new(provider.clone(), extra_roots));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_root_is_read_until_a_certificate_is_checked() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = LazyVerifier::new(provider, Vec::new());
        assert!(!verifier.supported_verify_schemes().is_empty());
        assert!(verifier.inner.get().is_none(), "the roots were loaded before any handshake");
        let name = ServerName::try_from("example.invalid").unwrap();
        let bogus = CertificateDer::from(vec![0u8; 8]);
        assert!(verifier.verify_server_cert(&bogus, &[], &name, &[], UnixTime::now()).is_err());
        assert!(verifier.inner.get().is_some());
    }
}
