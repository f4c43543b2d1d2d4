//! TLS to PostgreSQL, with rustls, as libpq's `sslmode` and `sslrootcert` ask for it in a URL's query:
//!
//! | `sslmode`           | TLS                      | the server's certificate                               |
//! |---------------------|--------------------------|--------------------------------------------------------|
//! | `disable`           | never                    | -                                                      |
//! | `prefer` (default)  | where the server has it  | not checked                                            |
//! | `require`           | always                   | not checked; with `sslrootcert`, as `verify-ca`        |
//! | `verify-ca`         | always                   | signed by `sslrootcert` (else the platform's roots)    |
//! | `verify-full`       | always                   | as `verify-ca`, and issued for the host connected to   |
//!
//! tokio-postgres knows only the first three modes, so both settings are taken out of the URL here.

use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a connection uses TLS: libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// The mode tokio-postgres negotiates with; what this module checks of the certificate beyond that
    /// is the verifier's.
    pub fn negotiated(self) -> postgres::config::SslMode {
        use postgres::config::SslMode as Negotiated;
        match self {
            SslMode::Disable => Negotiated::Disable,
            SslMode::Prefer => Negotiated::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Negotiated::Require,
        }
    }
}

/// A URL's TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    /// The certificates (PEM) a server's chain must lead to.
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of `url`'s query: the URL as tokio-postgres reads it, and the
/// TLS settings. Errors never hold the URL (it may hold a password).
pub fn split_url(url: &str) -> Result<(String, Tls), String> {
    let mut tls = Tls { mode: SslMode::Prefer, root_cert: None };
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), tls)) };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("the URL's {key} is not UTF-8"))
        };
        match key {
            "sslmode" => tls.mode = SslMode::parse(&decoded()?)?,
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(decoded()?)),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, tls))
}

/// The connector for `tls`: its certificate checks, over aws-lc-rs.
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let verify = match (tls.mode, &tls.root_cert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => None,
        (SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull, _) => {
            let roots = Arc::new(roots(tls.root_cert.as_ref())?);
            Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("TLS: {e}"))?,
            )
        }
    };
    let config = match verify {
        Some(full) if tls.mode == SslMode::VerifyFull => builder.with_webpki_verifier(full),
        Some(chain) => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyName(chain))),
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(Unchecked(
            provider.signature_verification_algorithms,
        ))),
    }
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates of `root_cert`, or the platform's where none is named.
fn roots(root_cert: Option<&PathBuf>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let read = |e: &dyn std::fmt::Display| format!("sslrootcert {}: {e}", path.display());
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| read(&e))?
                .collect::<Result<_, _>>()
                .map_err(|e| read(&e))?;
            if certificates.is_empty() {
                return Err(read(&"holds no PEM certificate"));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|e| read(&e))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no sslrootcert was named and the platform has no root certificates to check the server's against"
                        .to_string(),
                );
            }
        }
    }
    Ok(roots)
}

/// `verify-ca`: the chain is checked, the name the certificate was issued for is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate, as libpq: the connection is encrypted, and the
/// server proves it holds its certificate's key, but the certificate itself is taken as it comes.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_settings_are_taken_out_of_the_url_and_the_rest_kept() {
        let (url, tls) = split_url(
            "postgres://a:pw@db/x?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://a:pw@db/x?connect_timeout=5");
        assert_eq!(tls, Tls { mode: SslMode::VerifyFull, root_cert: Some("/etc/ca.pem".into()) });
        let (url, tls) = split_url("postgres://db/x").unwrap();
        assert_eq!((url.as_str(), tls.mode), ("postgres://db/x", SslMode::Prefer));
        let (url, _) = split_url("postgres://db/x?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://db/x");
        let refused = split_url("postgres://a:pw@db/x?sslmode=verify").unwrap_err();
        assert!(refused.contains("sslmode `verify`") && !refused.contains("pw"), "{refused}");
    }

    #[test]
    fn a_root_cert_that_is_missing_or_holds_no_certificate_is_named() {
        let missing = Tls { mode: SslMode::VerifyFull, root_cert: Some("/nonexistent/ca.pem".into()) };
        assert!(connector(&missing).err().unwrap().contains("/nonexistent/ca.pem"));
        let empty = tempfile::NamedTempFile::new().unwrap();
        let empty = Tls { mode: SslMode::VerifyCa, root_cert: Some(empty.path().into()) };
        assert!(connector(&empty).err().unwrap().contains("holds no PEM certificate"));
    }
}
