//! Connecting to PostgreSQL as libpq's `sslmode` and `sslrootcert` say,
//! over rustls.
//!
//! | `sslmode` | encrypted | certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | no | no |
//! | `prefer` (default) | when the server offers it | no | no |
//! | `require` | yes | only with `sslrootcert` (then as `verify-ca`) | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! `sslrootcert=<file>` names the PEM file of the trusted roots; without it
//! (or with `sslrootcert=system`) the verifying modes trust the system's
//! roots. Other URL parameters are tokio-postgres's.

use std::fmt;
use std::sync::Arc;

use diesel::ConnectionError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres::config::SslMode;

use crate::PgConn;

/// How a PostgreSQL URL asks to be reached.
#[derive(Clone)]
pub(crate) struct PgTarget {
    config: tokio_postgres::Config,
    mode: Mode,
    /// The `sslrootcert` setting, for error messages.
    root_cert: Option<String>,
    tls: Option<Arc<ClientConfig>>,
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode, String> {
        Ok(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        })
    }
}

impl PgTarget {
    /// Reads `url`: its `sslmode` and `sslrootcert` here, the rest through
    /// tokio-postgres. Fails, naming the setting, on an unknown mode or an
    /// unreadable root certificate file.
    pub(crate) fn parse(url: &str) -> Result<PgTarget, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = Mode::Prefer;
        let mut root_cert = None;
        let mut rest = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "sslmode" => mode = Mode::parse(&value)?,
                "sslrootcert" => root_cert = Some(value.into_owned()),
                _ => {
                    rest.append_pair(&key, &value);
                }
            }
        }
        let rest = rest.finish();
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{rest}")
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("invalid database URL: {e}"))?;
        // libpq: a root certificate turns `require` into `verify-ca`.
        if mode == Mode::Require && root_cert.as_deref().is_some_and(|r| r != "system") {
            mode = Mode::VerifyCa;
        }
        config.ssl_mode(match mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        });
        let tls = match mode {
            Mode::Disable => None,
            _ => Some(Arc::new(client_config(mode, root_cert.as_deref())?)),
        };
        Ok(PgTarget {
            config,
            mode,
            root_cert,
            tls,
        })
    }

    /// Opens one connection.
    pub(crate) async fn establish(&self) -> Result<PgConn, ConnectionError> {
        let failed = |e: tokio_postgres::Error| {
            ConnectionError::BadConnection(format!("{}{}", one_line(&e), self.settings()))
        };
        match &self.tls {
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(failed)?;
                PgConn::try_from_client_and_connection(client, connection).await
            }
            Some(tls) => {
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) = self.config.connect(connector).await.map_err(failed)?;
                PgConn::try_from_client_and_connection(client, connection).await
            }
        }
    }

    /// ` (sslmode=..., sslrootcert=...)`: what a TLS failure depends on.
    fn settings(&self) -> String {
        match &self.root_cert {
            Some(root) => format!(" (sslmode={}, sslrootcert={root})", self.mode),
            None => format!(" (sslmode={})", self.mode),
        }
    }
}

/// An error and its causes on one line.
fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.replace('\n', " ")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration of `mode`, trusting `root_cert`'s certificates
/// (or the system's).
fn client_config(mode: Mode, root_cert: Option<&str>) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("sslmode={mode}: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        Mode::Disable | Mode::Prefer | Mode::Require => Arc::new(AnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        }),
        Mode::VerifyCa | Mode::VerifyFull => {
            let roots = Arc::new(roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?;
            if mode == Mode::VerifyCa {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The trusted roots: the PEM file `path`, or the system's.
fn roots(path: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match path {
        Some(path) if path != "system" => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("sslrootcert={path}: cannot read the certificates: {e}"))?;
            if certs.is_empty() {
                return Err(format!("sslrootcert={path}: the file holds no certificate"));
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert={path}: {e}"))?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "sslrootcert: no system root certificates found; name a file with sslrootcert=<path>"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// `prefer` / `require`: encrypted, but any certificate is accepted (as libpq
/// does); the handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not
/// compared.
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
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_sslmode_names_the_setting_and_the_valid_values() {
        let error = PgTarget::parse("postgres://u@h/db?sslmode=strict")
            .err()
            .expect("refused");
        assert_eq!(
            error,
            "sslmode=strict: expected disable, prefer, require, verify-ca or verify-full"
        );
    }

    #[test]
    fn a_missing_root_certificate_file_names_the_setting() {
        let error = PgTarget::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nope.pem")
            .err()
            .expect("refused");
        assert!(error.starts_with("sslrootcert=/nope.pem: "), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn other_parameters_reach_tokio_postgres() {
        let target = PgTarget::parse("postgres://u@h/db?sslmode=disable&application_name=x")
            .expect("parses");
        assert_eq!(target.mode, Mode::Disable);
        assert_eq!(target.config.get_application_name(), Some("x"));
    }
}
