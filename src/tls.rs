//! TLS on the main listener (rustls, ring): the certificate and key are
//! re-read when their files change, so a cert-manager renewal (a new Secret
//! projected into the pod) needs no restart; with a client CA, clients must
//! present a certificate it signed (mTLS), checked in the handshake.
//!
//! tonic's own `ServerTlsConfig` is static, so the handshake is done here
//! and the finished streams are handed to `serve_with_incoming`. tonic then
//! puts `TlsConnectInfo<TcpConnectInfo>` in each request's extensions.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// How often, at most, the files' modification times are looked at.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes waiting for a slot in the server's accept queue.
const ACCEPT_QUEUE: usize = 64;

/// Where the TLS material lives.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain (`WARDEN_TLS_CERT_FILE`).
    pub cert: PathBuf,
    /// PEM private key (`WARDEN_TLS_KEY_FILE`).
    pub key: PathBuf,
    /// PEM CA bundle for client certificates (`WARDEN_TLS_CLIENT_CA_FILE`).
    pub client_ca: Option<PathBuf>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS configuration. Every file is read now, so a missing or
/// unparsable one refuses the start with its setting and path.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = provider();
    let resolver = Arc::new(ReloadingCert::load(
        files.cert.clone(),
        files.key.clone(),
        provider.clone(),
    )?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        Some(path) => {
            let roots = load_roots(path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("WARDEN_TLS_CLIENT_CA_FILE {}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn load_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let what = || format!("WARDEN_TLS_CLIENT_CA_FILE {}", path.display());
    let certs = read_certs(path).with_context(what)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).with_context(what)?;
    }
    Ok(roots)
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .context("read PEM certificates")?
        .collect::<Result<Vec<_>, _>>()
        .context("parse PEM certificates")?;
    if certs.is_empty() {
        bail!("no PEM certificate in the file");
    }
    Ok(certs)
}

fn load_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain =
        read_certs(cert).with_context(|| format!("WARDEN_TLS_CERT_FILE {}", cert.display()))?;
    let what = || format!("WARDEN_TLS_KEY_FILE {}", key.display());
    let der = PrivateKeyDer::from_pem_file(key)
        .context("read a PEM private key")
        .with_context(what)?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .context("unsupported private key")
        .with_context(what)?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .context("the key does not belong to WARDEN_TLS_CERT_FILE's certificate")
        .with_context(what)?;
    Ok(Arc::new(certified))
}

/// The two files' modification times (following symlinks, as Kubernetes'
/// projected Secrets use).
fn stamps(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: Option<(SystemTime, SystemTime)>,
    checked: Instant,
}

/// Answers every handshake with the current certificate, re-reading the
/// files when their modification times change (checked at most once a
/// second). A rotation that fails to load keeps the previous certificate
/// and is logged.
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    fn load(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> anyhow::Result<Self> {
        let stamps = stamps(&cert, &key);
        let certified = load_key(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            loaded: Mutex::new(Loaded {
                key: certified,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = match self.loaded.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if loaded.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            loaded.checked = Instant::now();
            let now = stamps(&self.cert, &self.key);
            if now.is_some() && now != loaded.stamps {
                match load_key(&self.cert, &self.key, &self.provider) {
                    Ok(key) => {
                        tracing::info!("TLS certificate re-read");
                        loaded.key = key;
                        loaded.stamps = now;
                    }
                    Err(e) => {
                        // Half-written files get another look next time.
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "TLS certificate not re-read; keeping the previous one"
                        );
                    }
                }
            }
        }
        loaded.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Accepts connections on `listener` and hands the ones whose handshake
/// succeeds to the server; failed handshakes (plaintext, an untrusted or
/// missing client certificate) are dropped, each on its own task so a slow
/// client cannot hold up others. Ends when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> (
    ReceiverStream<io::Result<TlsStream<TcpStream>>>,
    tokio::task::JoinHandle<()>,
) {
    let acceptor = TlsAcceptor::from(config);
    let (sender, receiver) = mpsc::channel(ACCEPT_QUEUE);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if sender.is_closed() {
                return;
            }
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    (ReceiverStream::new(receiver), task)
}
