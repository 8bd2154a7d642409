//! Mutual TLS between agents and clients (rustls): every side presents a certificate signed by
//! the cluster's CA and accepts only peers whose certificates are. An agent refuses a peer or a
//! client without one. Certificates name the cluster's service as [`SERVER_NAME`] (and
//! `localhost`, 127.0.0.1, ::1), which every client verifies.
//!
//! [`generate`] makes a local CA and certificates for trying it (`tenure certs`): `ca.pem`
//! (and `ca.key`, kept beside it to sign more), `agent-N.pem`/`.key` for each agent, and
//! `client.pem`/`.key`. Private keys are written readable by their owner only.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The name every certificate carries and every client verifies.
pub const SERVER_NAME: &str = "tenure";

/// A stream, plain or encrypted.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("TLS: {0}")]
    Config(String),
}

/// One side's TLS settings: the CA it trusts, its certificate and key.
#[derive(Clone)]
pub struct Tls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// ring's provider: it builds with a C compiler alone (aws-lc, rustls's default, needs cmake).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Reads the CA (`ca`), this side's certificate chain (`cert`) and key (`key`), PEM.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let file = |path: &Path, why: String| TlsError::File {
            path: path.to_path_buf(),
            why,
        };
        let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let all: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
                .map_err(|e| file(path, e.to_string()))?
                .collect();
            let all = all.map_err(|e| file(path, e.to_string()))?;
            if all.is_empty() {
                return Err(file(path, "no certificate in it (PEM expected)".into()));
            }
            Ok(all)
        };
        let mut roots = RootCertStore::empty();
        for c in certs(ca)? {
            roots
                .add(c)
                .map_err(|e| file(ca, format!("not a CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        let chain = certs(cert)?;
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| file(key, format!("no private key: {e}")))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key_der.clone_key())
            .map_err(|e| {
                file(
                    cert,
                    format!("the certificate and key do not go together: {e}"),
                )
            })?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der)
            .map_err(|e| {
                file(
                    cert,
                    format!("the certificate and key do not go together: {e}"),
                )
            })?;
        Ok(Tls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The files [`generate`] wrote in `dir` for `who` (`agent-N` or `client`).
    pub fn from_dir(dir: &Path, who: &str) -> Result<Tls, TlsError> {
        Tls::load(
            &dir.join("ca.pem"),
            &dir.join(format!("{who}.pem")),
            &dir.join(format!("{who}.key")),
        )
    }

    /// The listening side of a connection.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<Box<dyn Io>> {
        let s = tokio_rustls::TlsAcceptor::from(self.server.clone())
            .accept(stream)
            .await?;
        Ok(Box::new(s))
    }

    /// The dialling side of a connection.
    pub async fn connect(&self, stream: TcpStream) -> std::io::Result<Box<dyn Io>> {
        let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
        let s = tokio_rustls::TlsConnector::from(self.client.clone())
            .connect(name, stream)
            .await?;
        Ok(Box::new(s))
    }
}

/// How a connection is secured: mutual TLS, or plaintext (only when asked for).
#[derive(Clone, Debug)]
pub enum Security {
    Tls(Tls),
    Plaintext,
}

impl Security {
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<Box<dyn Io>> {
        match self {
            Security::Tls(t) => t.accept(stream).await,
            Security::Plaintext => Ok(Box::new(stream)),
        }
    }
    pub async fn connect(&self, stream: TcpStream) -> std::io::Result<Box<dyn Io>> {
        match self {
            Security::Tls(t) => t.connect(stream).await,
            Security::Plaintext => Ok(Box::new(stream)),
        }
    }
}

/// Makes a CA and certificates in `dir` (created private): `ca.pem`/`.key`, `agent-1` to
/// `agent-N`, `client`. Existing files are not overwritten (an error names the first).
pub fn generate(dir: &Path, agents: usize) -> Result<Vec<PathBuf>, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let cfg = |e: rcgen::Error| TlsError::Config(e.to_string());
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| TlsError::File {
        path: dir.to_path_buf(),
        why: e.to_string(),
    })?;
    let mut names = vec!["ca".to_string(), "client".to_string()];
    names.extend((1..=agents).map(|i| format!("agent-{i}")));
    for n in &names {
        for ext in ["pem", "key"] {
            let p = dir.join(format!("{n}.{ext}"));
            if p.exists() {
                return Err(TlsError::File {
                    path: p,
                    why: "already exists: not overwritten".into(),
                });
            }
        }
    }
    let ca_key = KeyPair::generate().map_err(cfg)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cfg)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tenure cluster CA");
    let ca = ca_params.self_signed(&ca_key).map_err(cfg)?;
    let mut written = Vec::new();
    let mut write = |name: &str, cert: String, key: String| -> Result<(), TlsError> {
        for (ext, body, private) in [("pem", cert, false), ("key", key, true)] {
            let p = dir.join(format!("{name}.{ext}"));
            write_file(&p, body.as_bytes(), private)?;
            written.push(p);
        }
        Ok(())
    };
    write("ca", ca.pem(), ca_key.serialize_pem())?;
    for n in names.iter().skip(1) {
        let key = KeyPair::generate().map_err(cfg)?;
        let mut p = CertificateParams::new(vec![SERVER_NAME.to_string(), "localhost".into()])
            .map_err(cfg)?;
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        p.subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        p.distinguished_name.push(DnType::CommonName, n.as_str());
        let cert = p.signed_by(&key, &ca, &ca_key).map_err(cfg)?;
        write(n, cert.pem(), key.serialize_pem())?;
    }
    Ok(written)
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(if private { 0o600 } else { 0o644 });
    }
    let _ = private;
    let err = |e: std::io::Error| TlsError::File {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    let mut f = o.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}
