//! End to end over real sockets, with simulated marbles whose quotes are fully verified (simulation PKI,
//! collateral, chain, signatures): an outside client verifies the coordinator's quote and saves its root →
//! sets the manifest → two marbles activate over attested TLS (one with DICE evidence in its client
//! certificate, one MarbleRun-style with the quote in the request) → both get certificates and rendered
//! parameters → they complete an mTLS handshake with their issued certificates → a user bumps the package's
//! SecurityVersion → the old marbles are refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arca_attest::{
    CollateralSource, Evidence, PeerCertVerifier, Policy, Quoter, RaTlsIdentity, RaTlsOptions, RaTlsVerifier,
    ReportBody, SimPki, SimPkiOptions, SimQuoter, Verifier,
};
use arca_coordinator::client::{Client, Trust};
use arca_coordinator::{
    dice_evidence, serve, Attester, DcapVerifier, Listeners, QuoterAttester, ServeConfig, ServerCerts,
};
use arca_protocol::activation::marble_client::MarbleClient;
use arca_protocol::activation::{ActivationReq, ActivationResp};
use arca_protocol::api::{
    paths, ManifestRequest, ManifestSetResponse, QuoteResponse, SecretsRequest, StatusResponse, UserSecret,
};
use base64::Engine as _;
use common::*;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::Digest as _;

const COORDINATOR_MRENCLAVE: [u8; 32] = [0xc0; 32];

fn identity(mrenclave: [u8; 32], mrsigner: [u8; 32], prod: u16, svn: u16) -> ReportBody {
    let mut r = ReportBody::parse(&[0u8; 384]).unwrap();
    r.mrenclave = mrenclave.into();
    r.mrsigner = mrsigner.into();
    r.isvprodid = prod;
    r.isvsvn = svn;
    r
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

struct Deployment {
    pki: Arc<SimPki>,
    mesh: String,
    client: String,
    _dir: tempfile::TempDir,
}

async fn start(allow_simulation: bool) -> Deployment {
    let pki = Arc::new(SimPki::create(SimPkiOptions::at(now())).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let coordinator = open(dir.path(), allow_simulation);
    let quoter = SimQuoter::new(pki.clone(), identity(COORDINATOR_MRENCLAVE, [0xc1; 32], 1, 1));
    let attester: Arc<dyn Attester> = Arc::new(QuoterAttester(Arc::new(quoter)));
    let mut verifier = Verifier::new();
    if allow_simulation {
        verifier = verifier.with_simulation_root(pki.root_anchor().unwrap());
    }
    let collateral: Arc<dyn CollateralSource> = Arc::new(Arc::new(pki.collateral().clone()));
    let verifier = Arc::new(DcapVerifier::new(
        Arc::new(verifier),
        Some(collateral),
        allow_simulation,
    ));
    let cfg = ServeConfig {
        mesh_addr: "127.0.0.1:0".parse().unwrap(),
        client_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: None,
        dns_names: vec!["localhost".into(), "127.0.0.1".into()],
    };
    let certs = ServerCerts::new(
        coordinator.clone(),
        attester.clone(),
        Arc::new(dice_evidence),
        cfg.dns_names.clone(),
    )
    .unwrap();
    let listeners = Listeners::bind(&cfg).await.unwrap();
    let mesh = format!("localhost:{}", listeners.mesh.local_addr().unwrap().port());
    let client = format!("localhost:{}", listeners.client.local_addr().unwrap().port());
    tokio::spawn(async move { serve(coordinator, attester, verifier, &certs, listeners).await });
    Deployment {
        pki,
        mesh,
        client,
        _dir: dir,
    }
}

/// The launcher's view of the coordinator (contract 5): an RA-TLS server verifier pinning its MRENCLAVE.
fn coordinator_policy(pki: &SimPki) -> Arc<RaTlsVerifier> {
    let verifier = Arc::new(Verifier::new().with_simulation_root(pki.root_anchor().unwrap()));
    let collateral: Arc<dyn CollateralSource> = Arc::new(Arc::new(pki.collateral().clone()));
    let policy = Policy {
        mrenclave: Some(arca_attest::HexBytes(COORDINATOR_MRENCLAVE)),
        ..Policy::simulation()
    };
    Arc::new(RaTlsVerifier::new(verifier, Some(collateral), policy))
}

/// Connects to the mesh API with `client_cert`/`key`, verifying the coordinator by its RA-TLS evidence.
async fn mesh_client(
    d: &Deployment,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> MarbleClient<tonic::transport::Channel> {
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerCertVerifier::new(coordinator_policy(&d.pki))))
            .with_client_auth_cert(chain, key)
            .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let cfg = Arc::new(cfg);
    let addr = d.mesh.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let cfg = cfg.clone();
            let addr = addr.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = tokio_rustls::TlsConnector::from(cfg)
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap();
    MarbleClient::new(channel)
}

fn csr(names: &[&str]) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.serialize_request(&key).unwrap().der().to_vec()
}

/// An Arca launcher: DICE evidence in its client certificate.
async fn activate_dice(
    d: &Deployment,
    marble_type: &str,
    id: u32,
    svn: u16,
) -> Result<ActivationResp, tonic::Status> {
    activate_dice_as(d, marble_type, id, identity([0xaa; 32], SIGNER, 7, svn)).await
}

/// An Arca launcher whose enclave has the identity `report`.
async fn activate_dice_as(
    d: &Deployment,
    marble_type: &str,
    id: u32,
    report: ReportBody,
) -> Result<ActivationResp, tonic::Status> {
    let quoter = SimQuoter::new(d.pki.clone(), report);
    let ra = RaTlsIdentity::create(&quoter, &RaTlsOptions::valid_at("marble", now(), 1)).unwrap();
    let (chain, key) = ra.rustls_parts();
    let mut c = mesh_client(d, chain, key).await;
    let req = ActivationReq {
        csr: csr(&["server.local"]),
        marble_type: marble_type.into(),
        uuid: uuid(id),
        quote: vec![],
    };
    c.activate(req).await.map(|r| r.into_inner())
}

/// A MarbleRun marble: a self-signed client certificate and the quote in the request, bound to its DER.
async fn activate_marblerun_style(
    d: &Deployment,
    marble_type: &str,
    id: u32,
    svn: u16,
    oe_header: bool,
) -> Result<ActivationResp, tonic::Status> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["marble".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&sha2::Sha256::digest(cert.der()));
    let quoter = SimQuoter::new(d.pki.clone(), identity([0xaa; 32], SIGNER, 7, svn));
    let mut quote = quoter.quote(&rd).unwrap();
    if oe_header {
        let mut h = vec![1, 0, 0, 0, 2, 0, 0, 0];
        h.extend_from_slice(&(quote.len() as u64).to_le_bytes());
        h.extend_from_slice(&quote);
        quote = h;
    }
    let chain = vec![cert.der().clone()];
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let mut c = mesh_client(d, chain, key).await;
    let req = ActivationReq {
        csr: vec![],
        marble_type: marble_type.into(),
        uuid: uuid(id),
        quote,
    };
    c.activate(req).await.map(|r| r.into_inner())
}

fn user(name: &str) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    let key = PrivateKeyDer::from_pem_slice(fixture(&format!("{name}.key")).as_bytes()).unwrap();
    Some((vec![cert_der(&format!("{name}.crt"))], key.secret_der().to_vec()))
}

/// An mTLS handshake between two marbles, each with the certificate the coordinator issued it.
async fn mtls(server: &ActivationResp, client: &ActivationResp) -> (String, String) {
    let root = CertificateDer::from_pem_slice(server.root_ca_pem.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let parts = |r: &ActivationResp| {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(r.marble_cert_chain_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
        (
            chain,
            PrivateKeyDer::from_pem_slice(r.marble_key_pem.as_bytes()).unwrap(),
        )
    };
    let (schain, skey) = parts(server);
    let (cchain, ckey) = parts(client);
    let scfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .unwrap(),
        )
        .with_single_cert(schain, skey)
        .unwrap();
    let ccfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(cchain, ckey)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let srv = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = tokio_rustls::TlsAcceptor::from(Arc::new(scfg))
            .accept(tcp)
            .await
            .unwrap();
        let peer = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        tls.write_all(b"pong").await.unwrap();
        tls.shutdown().await.ok();
        cn(&peer)
    });
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(ccfg))
        .connect(ServerName::try_from("server.local").unwrap(), tcp)
        .await
        .unwrap();
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    (srv.await.unwrap(), cn(&peer))
}

fn cn(der: &[u8]) -> String {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    let name = c
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_marbles_activate_talk_mtls_and_are_refused_after_a_security_version_bump() {
    let d = start(true).await;

    // 1. An outside client verifies the coordinator: quote over SHA-256(root ‖ nonce), identity pinned.
    let nonce = b"fresh-nonce-0123";
    let anon = Client::new(&d.client, Trust::VerifiedByQuote, None).unwrap();
    let q: QuoteResponse = anon
        .get(&format!(
            "{}?nonce={}",
            paths::QUOTE,
            base64::engine::general_purpose::URL_SAFE.encode(nonce)
        ))
        .await
        .unwrap();
    let root = CertificateDer::pem_slice_iter(q.cert.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let quote = base64::engine::general_purpose::STANDARD
        .decode(&q.quote)
        .unwrap();
    let verifier = Verifier::new().with_simulation_root(d.pki.root_anchor().unwrap());
    let policy = Policy {
        mrenclave: Some(arca_attest::HexBytes(COORDINATOR_MRENCLAVE)),
        ..Policy::simulation()
    };
    let verdict = verifier.verify(&Evidence::new(&quote, Some(d.pki.collateral())), &policy, now());
    assert!(verdict.accepted, "{:?}", verdict.reasons);
    let rd = verdict.evidence.unwrap().report_data();
    assert_eq!(
        rd[..32],
        sha2::Sha256::new()
            .chain_update(&root)
            .chain_update(nonce)
            .finalize()[..]
    );
    // From now on the client trusts the saved root.
    let trusted = Client::new(&d.client, Trust::Root(root.clone()), None).unwrap();
    let s: StatusResponse = trusted.get(paths::STATUS).await.unwrap();
    assert_eq!(s.status, 2);

    // 2. Set the manifest; Alice sets the user-defined secret.
    let manifest = serde_json::to_vec(&small_manifest(0, &[], 0)).unwrap();
    let _: ManifestSetResponse = trusted
        .post(
            paths::MANIFEST,
            &ManifestRequest {
                manifest: base64::engine::general_purpose::STANDARD.encode(&manifest),
            },
        )
        .await
        .unwrap();
    let alice = Client::new(&d.client, Trust::Root(root.clone()), user("alice")).unwrap();
    let secret = UserSecret {
        key: Some(base64::engine::general_purpose::STANDARD.encode("api-key")),
        ..Default::default()
    };
    let _: serde_json::Value = alice
        .post(
            paths::SECRETS,
            &SecretsRequest {
                secrets: BTreeMap::from([("apiKey".into(), secret)]),
            },
        )
        .await
        .unwrap();

    // 3. Two marbles activate, each way of contract 6.
    let server = activate_dice(&d, "server", 1, 2).await.unwrap();
    let client = activate_marblerun_style(&d, "client", 2, 2, true).await.unwrap();
    let params = server.parameters.as_ref().unwrap();
    assert_eq!(params.argv, ["server", "--serve"]);
    assert_eq!(params.env["API_KEY"], b"api-key");
    assert!(String::from_utf8_lossy(&params.files["/tls/cert.pem"]).contains("BEGIN CERTIFICATE"));
    assert_eq!(
        params.env["SHARED_HEX"],
        client.parameters.as_ref().unwrap().env["SHARED_HEX"],
        "both marbles get the same shared key"
    );
    // The marble certificate carries the CSR's name.
    let leaf = CertificateDer::pem_slice_iter(server.marble_cert_chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let san = parsed
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>();
    assert!(san.iter().any(|s| s.contains("server.local")), "{san:?}");

    // 4. The two marbles complete an mTLS handshake with their issued certificates.
    let (seen_by_server, seen_by_client) = mtls(&server, &client).await;
    assert_eq!(seen_by_server, uuid(2));
    assert_eq!(seen_by_client, uuid(1));

    // 5. A user bumps the SecurityVersion; marbles at the old version are refused, with the reason.
    let bump = br#"{"Packages": {"app": {"SecurityVersion": 3}}}"#;
    let _: serde_json::Value = alice
        .post(
            paths::UPDATE,
            &ManifestRequest {
                manifest: base64::engine::general_purpose::STANDARD.encode(bump),
            },
        )
        .await
        .unwrap();
    let refused = activate_dice(&d, "server", 3, 2).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused
            .message()
            .contains("SecurityVersion 2 is lower than package \"app\" requires (3)"),
        "{}",
        refused.message()
    );
    let refused = activate_marblerun_style(&d, "client", 4, 2, false)
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("SecurityVersion 2"),
        "{}",
        refused.message()
    );
    activate_dice(&d, "client", 5, 3).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_over_the_wire_say_why() {
    let d = start(false).await;
    let anon = Client::new(&d.client, Trust::VerifiedByQuote, None).unwrap();
    let q: QuoteResponse = anon.get(paths::QUOTE).await.unwrap();
    let root = CertificateDer::pem_slice_iter(q.cert.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let trusted = Client::new(&d.client, Trust::Root(root.clone()), None).unwrap();
    let manifest = serde_json::to_vec(&small_manifest(0, &[], 0)).unwrap();
    let _: ManifestSetResponse = trusted
        .post(
            paths::MANIFEST,
            &ManifestRequest {
                manifest: base64::engine::general_purpose::STANDARD.encode(&manifest),
            },
        )
        .await
        .unwrap();
    // A simulated quote at a coordinator started without --allow-simulation.
    let e = activate_marblerun_style(&d, "client", 1, 2, false)
        .await
        .unwrap_err();
    assert!(e.message().contains("--allow-simulation"), "{}", e.message());
    // Unauthenticated and unauthorised client calls.
    let e = trusted
        .get::<serde_json::Value>(&format!("{}?s=shared", paths::SECRETS))
        .await
        .unwrap_err();
    assert!(matches!(e, arca_coordinator::Error::Unauthenticated(_)), "{e}");
    let bob = Client::new(&d.client, Trust::Root(root.clone()), user("bob")).unwrap();
    let bump = br#"{"Packages": {"app": {"SecurityVersion": 3}}}"#;
    let e = bob
        .post::<_, serde_json::Value>(
            paths::UPDATE,
            &ManifestRequest {
                manifest: base64::engine::general_purpose::STANDARD.encode(bump),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, arca_coordinator::Error::Forbidden(_)), "{e}");
    let e = trusted
        .post::<_, serde_json::Value>(
            paths::MANIFEST,
            &ManifestRequest {
                manifest: base64::engine::general_purpose::STANDARD.encode(&manifest),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, arca_coordinator::Error::WrongState(_)), "{e}");
    // A client trusting another root refuses the coordinator.
    let other = arca_attest::SimPki::create(SimPkiOptions::at(now())).unwrap();
    let wrong_root = CertificateDer::pem_slice_iter(other.root_pem().as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let e = Client::new(&d.client, Trust::Root(wrong_root), None)
        .unwrap()
        .get::<StatusResponse>(paths::STATUS)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("TLS handshake"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_quotes_with_the_wrong_identity_are_refused_over_the_wire() {
    let d = start(true).await;
    let anon = Client::new(&d.client, Trust::VerifiedByQuote, None).unwrap();
    let q: QuoteResponse = anon.get(paths::QUOTE).await.unwrap();
    let root = CertificateDer::pem_slice_iter(q.cert.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let trusted = Client::new(&d.client, Trust::Root(root), None).unwrap();
    let mut manifest = small_manifest(0, &[], 0);
    manifest["Packages"]["pinned"] = serde_json::json!({"UniqueID": hex::encode([0xbb; 32])});
    manifest["Marbles"]["pinned"] = serde_json::json!({"Package": "pinned"});
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let _: ManifestSetResponse = trusted
        .post(
            paths::MANIFEST,
            &ManifestRequest {
                manifest: base64::engine::general_purpose::STANDARD.encode(&manifest),
            },
        )
        .await
        .unwrap();

    let mut debug = identity([0xaa; 32], SIGNER, 7, 2);
    debug.attributes.flags |= 2; // ATTRIBUTES.DEBUG
    let cases = [
        ("client", identity([0xaa; 32], [9; 32], 7, 2), "MRSIGNER"),
        (
            "client",
            identity([0xaa; 32], SIGNER, 7, 1),
            "SecurityVersion 1 is lower",
        ),
        ("client", debug, "debug enclave refused"),
        ("pinned", identity([0xaa; 32], SIGNER, 7, 2), "MRENCLAVE"),
    ];
    for (i, (marble_type, report, reason)) in cases.into_iter().enumerate() {
        let e = activate_dice_as(&d, marble_type, 10 + i as u32, report)
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::PermissionDenied,
            "{reason}: {}",
            e.message()
        );
        assert!(
            e.message().contains(reason),
            "expected {reason:?}: {}",
            e.message()
        );
    }
    // The right identities pass, for both packages.
    activate_dice_as(&d, "client", 20, identity([0xaa; 32], SIGNER, 7, 2))
        .await
        .unwrap();
    activate_dice_as(&d, "pinned", 21, identity([0xbb; 32], [9; 32], 1, 0))
        .await
        .unwrap();
}

/// MaxActivations is exact over the wire: 64 simulated marbles, each with its own attested TLS connection
/// and fresh quote, activate at once against MaxActivations 10; exactly 10 succeed, the rest are refused
/// with the reason, and a later marble is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_activations_is_exact_under_64_concurrent_activators_over_the_wire() {
    let d = Arc::new(start(true).await);
    let anon = Client::new(&d.client, Trust::VerifiedByQuote, None).unwrap();
    let q: QuoteResponse = anon.get(paths::QUOTE).await.unwrap();
    let root = CertificateDer::pem_slice_iter(q.cert.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let trusted = Client::new(&d.client, Trust::Root(root), None).unwrap();
    // The `client` type (no user-defined secret to set first), limited to 10 activations.
    let mut m = small_manifest(0, &[], 0);
    m["Marbles"]["client"]["MaxActivations"] = serde_json::json!(10);
    let manifest = serde_json::to_vec(&m).unwrap();
    let _: ManifestSetResponse = trusted
        .post(
            paths::MANIFEST,
            &ManifestRequest {
                manifest: base64::engine::general_purpose::STANDARD.encode(&manifest),
            },
        )
        .await
        .unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64u32)
        .map(|i| {
            let d = d.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                // Each marble's own quote and connection, made before the start line.
                let quoter = SimQuoter::new(d.pki.clone(), identity([0xaa; 32], SIGNER, 7, 2));
                let ra = RaTlsIdentity::create(&quoter, &RaTlsOptions::valid_at("marble", now(), 1)).unwrap();
                let (chain, key) = ra.rustls_parts();
                let mut c = mesh_client(&d, chain, key).await;
                let req = ActivationReq {
                    csr: csr(&["client.local"]),
                    marble_type: "client".into(),
                    uuid: uuid(1000 + i),
                    quote: vec![],
                };
                barrier.wait().await;
                c.activate(req).await.map(|r| r.into_inner())
            })
        })
        .collect();
    let mut activated = Vec::new();
    let mut refused = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(resp) => {
                assert!(resp.marble_cert_chain_pem.contains("BEGIN CERTIFICATE"));
                activated.push(i as u32);
            }
            Err(e) => {
                assert!(e.message().contains("MaxActivations"), "{}", e.message());
                refused += 1;
            }
        }
    }
    assert_eq!(activated.len(), 10, "activated: {activated:?}");
    assert_eq!(refused, 54);

    // The limit holds afterwards (no reservation leaked either way).
    let e = activate_dice(&d, "client", 5000, 2).await.unwrap_err();
    assert!(e.message().contains("MaxActivations"), "{}", e.message());
}

/// Connections that stay idle, or stall in the middle of their handshake, do not hold back other clients:
/// an idle connection takes no handshake turn, and a client waits at most about a second for its turn
/// (without that bound, the stalled handshakes would hold every turn until their 10 s timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_do_not_hold_back_other_clients() {
    use tokio::io::AsyncWriteExt as _;
    let d = start(true).await;
    let mut held = Vec::new();
    for i in 0..40 {
        let mut tcp = tokio::net::TcpStream::connect(&d.client).await.unwrap();
        if i % 2 == 1 {
            // The header of a TLS handshake record, and nothing more.
            tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.unwrap();
        }
        held.push(tcp);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let anon = Client::new(&d.client, Trust::VerifiedByQuote, None).unwrap();
    let _: QuoteResponse = anon.get(paths::QUOTE).await.unwrap();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    drop(held);
}

/// The coordinator picks the SHA-256 suite (hardware SHA) even when the client prefers SHA-384, and
/// sends no session tickets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_prefers_aes_128_gcm_sha256_and_sends_no_tickets() {
    use tokio::io::AsyncReadExt as _;
    let d = start(true).await;
    // ring's default order puts TLS13_AES_256_GCM_SHA384 first.
    let provider = rustls::crypto::ring::default_provider();
    assert_eq!(
        provider.cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
    );
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerCertVerifier::new(coordinator_policy(&d.pki))))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&d.mesh).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    );
    // Whatever arrives after the handshake is processed (tickets would be); nothing is expected.
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(std::time::Duration::from_millis(300), tls.read(&mut buf)).await;
    assert_eq!(tls.get_ref().1.tls13_tickets_received(), 0);
}
