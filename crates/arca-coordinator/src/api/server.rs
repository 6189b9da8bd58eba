//! The TLS server of both APIs, and the plain-HTTP metrics endpoint.
//!
//! Both APIs use one server certificate, issued by the intermediate CA (so clients that saved the root
//! certificate can verify it) and carrying RA-TLS evidence that binds its key to the coordinator's quote (so
//! launchers can verify the coordinator's identity before sending anything, contract 5). Client certificates
//! are optional at the TLS layer and any certificate is accepted there — the handshake still proves the
//! client holds its key. Who the client is gets decided per request: a user by the exact certificate in the
//! manifest, a marble by the attestation its certificate or request carries.

use std::net::SocketAddr;
use std::sync::Arc;

use arca_attest::{PeerCertVerifier, PeerCheck};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::PublicKeyData as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use zeroize::Zeroizing;

use crate::api::client::{app, ApiState, ClientCert};
use crate::api::mesh::MeshService;
use crate::attestation::{Attester, MarbleVerifier};
use crate::crypto::{generate_pkcs8, rcgen_key, sha256, KeyAlg};
use crate::pki::{issue_server_cert, self_issued_server_cert};
use crate::{Coordinator, Error, Status};

/// Where the coordinator listens (contract 10: mesh 2001, client 4433, metrics 9090).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Mesh (activation) API.
    pub mesh_addr: SocketAddr,
    /// Client API.
    pub client_addr: SocketAddr,
    /// Prometheus metrics (plain HTTP); `None` to disable.
    pub metrics_addr: Option<SocketAddr>,
    /// Names in the server certificate.
    pub dns_names: Vec<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            mesh_addr: SocketAddr::from(([0, 0, 0, 0], 2001)),
            client_addr: SocketAddr::from(([0, 0, 0, 0], 4433)),
            metrics_addr: Some(SocketAddr::from(([0, 0, 0, 0], 9090))),
            dns_names: vec!["localhost".into(), "127.0.0.1".into()],
        }
    }
}

/// Builds the RA-TLS evidence extension for the server certificate, given the SubjectPublicKeyInfo DER of
/// its key and a quote over it (the evidence format belongs to `arca-attest`).
pub type EvidenceFn =
    dyn Fn(&[u8], &dyn Attester) -> Result<Vec<rcgen::CustomExtension>, Error> + Send + Sync;

/// The TLS server certificate and key, with evidence.
pub struct ServerIdentity {
    /// Certificate chain: server certificate, intermediate CA (just the self-issued certificate when
    /// [`ServerIdentity::temporary`]).
    pub chain: Vec<Vec<u8>>,
    /// True for the self-issued certificate of recovery mode: it chains to nothing, clients trust it only
    /// through its RA-TLS evidence.
    pub temporary: bool,
    key: PrivatePkcs8KeyDer<'static>,
}

/// A fresh P-256 server key (PKCS#8 and rcgen forms) and the evidence extensions binding it to the quote.
type AttestedKey = (Zeroizing<Vec<u8>>, rcgen::KeyPair, Vec<rcgen::CustomExtension>);

fn attested_key(attester: &dyn Attester, evidence: &EvidenceFn) -> Result<AttestedKey, Error> {
    let pkcs8 = generate_pkcs8(KeyAlg::P256)?;
    let key = rcgen_key(KeyAlg::P256, &pkcs8)?;
    let ext = evidence(&key.subject_public_key_info(), attester)?;
    Ok((pkcs8, key, ext))
}

impl ServerIdentity {
    /// Issues a fresh server certificate under the coordinator's intermediate CA, with evidence.
    pub fn issue(
        coordinator: &Coordinator,
        attester: &dyn Attester,
        evidence: &EvidenceFn,
        names: &[String],
    ) -> Result<ServerIdentity, Error> {
        let (pkcs8, key, ext) = attested_key(attester, evidence)?;
        let intermediate = coordinator.intermediate()?;
        let cert = issue_server_cert(&intermediate, &key, names, ext, time::OffsetDateTime::now_utc())?;
        Ok(ServerIdentity {
            chain: vec![cert, intermediate.cert_der.clone()],
            temporary: false,
            key: PrivatePkcs8KeyDer::from(pkcs8.to_vec()),
        })
    }

    /// A temporary self-issued server certificate with evidence, for recovery mode: the CA keys are sealed
    /// in the state that cannot be opened yet, so nothing can issue a certificate that chains to the root
    /// (MarbleRun does the same). Clients verify it by its RA-TLS evidence alone.
    pub fn self_issued(
        attester: &dyn Attester,
        evidence: &EvidenceFn,
        names: &[String],
    ) -> Result<ServerIdentity, Error> {
        let (pkcs8, key, ext) = attested_key(attester, evidence)?;
        let cert = self_issued_server_cert(&key, names, ext, time::OffsetDateTime::now_utc())?;
        Ok(ServerIdentity {
            chain: vec![cert],
            temporary: true,
            key: PrivatePkcs8KeyDer::from(pkcs8.to_vec()),
        })
    }

    /// The certificate the coordinator serves in its current state: issued by the intermediate CA, or
    /// self-issued in recovery mode.
    pub fn for_state(
        coordinator: &Coordinator,
        attester: &dyn Attester,
        evidence: &EvidenceFn,
        names: &[String],
    ) -> Result<ServerIdentity, Error> {
        if coordinator.status() == Status::Recovery {
            ServerIdentity::self_issued(attester, evidence, names)
        } else {
            ServerIdentity::issue(coordinator, attester, evidence, names)
        }
    }

    fn certified_key(&self) -> Result<Arc<CertifiedKey>, Error> {
        let provider = rustls::crypto::ring::default_provider();
        let key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(self.key.clone_key()))
            .map_err(|e| Error::Server {
                step: "loading the server key",
                detail: e.to_string(),
            })?;
        let chain = self
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        Ok(Arc::new(CertifiedKey::new(chain, key)))
    }

    /// The rustls server configuration (h2 and http/1.1, optional client certificates), always presenting
    /// this certificate.
    pub fn tls_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        tls_config_with(Arc::new(FixedCert(self.certified_key()?)))
    }
}

/// The server's TLS provider: ring, with the SHA-256 suites preferred. Every handshake hashes its whole
/// transcript, and both RA-TLS certificates (each carrying a quote and its PCK chain) make it several
/// kilobytes: SHA-256 runs on the SHA extensions of current x86 CPUs, SHA-384 in software, four times
/// slower here. AES-128-GCM matches the 128-bit security of the P-256 and X25519 keys around it.
fn server_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
}

fn tls_config_with(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(server_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Server {
            step: "configuring TLS",
            detail: e.to_string(),
        })?
        .with_client_cert_verifier(Arc::new(PeerCertVerifier::optional(AnyClientCert)))
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Our preference (SHA-256 first) over the client's.
    cfg.ignore_client_order = true;
    // No session tickets: launchers (and CLI runs) connect once per process, so a ticket would never be
    // used, and each costs a message and a cache entry on every handshake.
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The server certificate of a running coordinator: the temporary self-issued one while in recovery mode,
/// replaced by one issued under the (recovered) intermediate CA at the first handshake after recovery, so
/// clients that saved the root trust the coordinator again without a restart.
pub struct ServerCerts {
    coordinator: Coordinator,
    attester: Arc<dyn Attester>,
    evidence: Arc<EvidenceFn>,
    names: Vec<String>,
    current: std::sync::RwLock<(Arc<CertifiedKey>, bool)>,
    reissue: std::sync::Mutex<()>,
}

impl std::fmt::Debug for ServerCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCerts")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl ServerCerts {
    /// Issues the certificate for the coordinator's current state ([`ServerIdentity::for_state`]).
    pub fn new(
        coordinator: Coordinator,
        attester: Arc<dyn Attester>,
        evidence: Arc<EvidenceFn>,
        names: Vec<String>,
    ) -> Result<Arc<ServerCerts>, Error> {
        let id = ServerIdentity::for_state(&coordinator, attester.as_ref(), evidence.as_ref(), &names)?;
        Ok(Arc::new(ServerCerts {
            current: std::sync::RwLock::new((id.certified_key()?, id.temporary)),
            reissue: std::sync::Mutex::new(()),
            coordinator,
            attester,
            evidence,
            names,
        }))
    }

    /// True while the served certificate is the temporary one of recovery mode.
    pub fn is_temporary(&self) -> bool {
        self.current.read().map(|c| c.1).unwrap_or(true)
    }

    /// The certificate to present now (replacing the temporary one once recovery is complete).
    fn get(&self) -> Option<Arc<CertifiedKey>> {
        let (key, temporary) = self.current.read().ok()?.clone();
        if !temporary || self.coordinator.status() == Status::Recovery {
            return Some(key);
        }
        let _one = self.reissue.lock().ok()?;
        if let Ok(cur) = self.current.read() {
            if !cur.1 {
                return Some(cur.0.clone());
            }
        }
        match ServerIdentity::issue(
            &self.coordinator,
            self.attester.as_ref(),
            self.evidence.as_ref(),
            &self.names,
        )
        .and_then(|id| id.certified_key())
        {
            Ok(k) => {
                if let Ok(mut cur) = self.current.write() {
                    *cur = (k.clone(), false);
                }
                tracing::info!("recovered: serving a certificate issued by the intermediate CA again");
                Some(k)
            }
            Err(e) => {
                tracing::error!("re-issuing the server certificate after recovery: {e}");
                Some(key)
            }
        }
    }

    /// The rustls server configuration presenting the current certificate.
    pub fn tls_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, Error> {
        tls_config_with(Arc::new(Resolver(self.clone())))
    }
}

#[derive(Debug)]
struct Resolver(Arc<ServerCerts>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.get()
    }
}

/// Accepts any client certificate at the TLS layer (the handshake signature is still verified, proving
/// possession of its key); authorisation happens per request.
#[derive(Debug)]
struct AnyClientCert;

impl PeerCheck for AnyClientCert {
    fn check(&self, _end_entity: &CertificateDer<'_>, _now: UnixTime) -> Result<(), rustls::Error> {
        Ok(())
    }
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest a connection waits for its turn to handshake before it goes ahead regardless (so that
/// clients that stall their handshakes can delay others by this much at most).
const HANDSHAKE_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Handshakes in progress at once, per core: a few keep every core busy while others wait for the network.
const HANDSHAKES_PER_CORE: usize = 4;

/// Serves `router` over TLS on `listener`, adding each connection's client certificate to its requests.
///
/// Handshakes take turns: a connection that has sent its first bytes waits (first come, first served)
/// for one of a few turns (`Turns`), then handshakes. Each handshake is mostly CPU (key exchange, signatures, the
/// client's evidence); when a burst of connections all handshake at once they share the cores and all
/// finish late, while in turns each finishes soon after it starts, so the slowest connections of a
/// burst wait far less. A connection that waited [`HANDSHAKE_MAX_WAIT`] goes ahead without a turn, so
/// stalled clients cannot hold the others back for longer.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
) -> Result<(), Error> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let turns = crate::api::Turns::per_core(HANDSHAKES_PER_CORE, HANDSHAKE_MAX_WAIT);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let turns = turns.clone();
        tokio::spawn(async move {
            let handshake = async {
                // An idle connection holds no turn.
                tcp.readable().await?;
                let turn = turns.take().await;
                let tls = acceptor.accept(tcp).await;
                drop(turn);
                tls
            };
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::new(c.to_vec()));
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientCert(cert.clone()));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), svc).await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

/// The mesh API router (gRPC).
pub fn mesh_router(coordinator: Coordinator, verifier: Arc<dyn MarbleVerifier>) -> Router {
    tonic::service::Routes::new(MeshService::new(coordinator, verifier).into_server()).into_axum_router()
}

/// The metrics router (`GET /metrics`).
pub fn metrics_router(coordinator: Coordinator) -> Router {
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let c = coordinator.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    c.metrics_text(),
                )
            }
        }),
    )
}

/// Bound listeners, so callers can learn the ports before serving (tests bind port 0).
pub struct Listeners {
    /// Mesh API.
    pub mesh: TcpListener,
    /// Client API.
    pub client: TcpListener,
    /// Metrics.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(cfg: &ServeConfig) -> Result<Listeners, Error> {
        let bind = |a: SocketAddr| async move {
            TcpListener::bind(a).await.map_err(|e| Error::Server {
                step: "binding",
                detail: format!("{a}: {e}"),
            })
        };
        Ok(Listeners {
            mesh: bind(cfg.mesh_addr).await?,
            client: bind(cfg.client_addr).await?,
            metrics: match cfg.metrics_addr {
                Some(a) => Some(bind(a).await?),
                None => None,
            },
        })
    }
}

/// Serves the three endpoints until one fails.
pub async fn serve(
    coordinator: Coordinator,
    attester: Arc<dyn Attester>,
    verifier: Arc<dyn MarbleVerifier>,
    certs: &Arc<ServerCerts>,
    listeners: Listeners,
) -> Result<(), Error> {
    let tls = certs.tls_config()?;
    let client = app(ApiState {
        coordinator: coordinator.clone(),
        attester,
        verifier: verifier.clone(),
    });
    let mesh = mesh_router(coordinator.clone(), verifier);
    let metrics = listeners.metrics.map(|l| {
        let r = metrics_router(coordinator.clone());
        async move {
            axum::serve(l, r).await.map_err(|e| Error::Server {
                step: "serving metrics",
                detail: e.to_string(),
            })
        }
    });
    let mesh = serve_tls(listeners.mesh, tls.clone(), mesh);
    let client = serve_tls(listeners.client, tls, client);
    match metrics {
        Some(m) => tokio::try_join!(mesh, client, m).map(|_| ()),
        None => tokio::try_join!(mesh, client).map(|_| ()),
    }
}

/// SHA-256 of a certificate's DER (how clients pin a coordinator's root).
pub fn cert_fingerprint(der: &[u8]) -> String {
    hex::encode(sha256(&[der]))
}
