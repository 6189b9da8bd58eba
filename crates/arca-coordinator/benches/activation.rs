//! Activation throughput and latency: 1, 16 and 64 concurrent simulated marbles, each presenting a fresh
//! simulated quote (MarbleRun style: REPORTDATA = SHA-256 of its own client certificate) that is fully
//! verified (chain, CRLs, TCB info, QE identity, signatures; only the byte-keyed collateral and chain results
//! are cached), through the mesh service's `Activate` handler (everything the gRPC server does after TLS and
//! HTTP/2), with every activation durable (group commit) before it is answered.
//!
//! Two variants, side by side:
//! - `[handler]`: the `Activate` handler called directly (MarbleRun style: the quote in the request, bound
//!   to the marble's certificate); TLS handshakes and HTTP/2 framing are not measured.
//! - `[tls]`: every simulated launcher does the real thing over 127.0.0.1: a TCP connection, a mutually
//!   attested TLS handshake (the coordinator verifies the fresh quote in the launcher's RA-TLS client
//!   certificate; the launcher checks the coordinator's RA-TLS server certificate under its pinned
//!   policy — fully once, then by its remembered verdict, see [`LauncherCheck`]), HTTP/2 and the gRPC
//!   `Activate` call. The coordinator runs on its own runtime (threads `coordinator`, as in its own
//!   process); the load generator (threads `loadgen`) shares the same cores.
//!
//! Under each row: the CPU time per activation by thread group (coordinator runtime, its commit thread,
//! load generator; from `/proc`, 10 ms ticks) and how many cores were busy, then the group commits (from
//! the coordinator's metrics). The marbles' certificates, quotes and CSRs, and each launcher's TLS client
//! configuration holding its key, are made before the clock starts (they are the marbles' work, not the
//! coordinator's); each activation still makes a new TCP connection, a full handshake and HTTP/2 set-up.
//! Run: `cargo bench -p arca-coordinator --bench activation` (`ARCA_BENCH_SCALE=0.2` for a shorter run,
//! `ARCA_BENCH_MODE=tls|handler` for one variant).
//! It measures and prints; it asserts nothing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_attest::{
    CollateralSource, PeerCertVerifier, Policy, Quoter, RaTlsIdentity, RaTlsOptions, RaTlsVerifier,
    ReportBody, SimPki, SimPkiOptions, SimQuoter, Verifier,
};
use arca_coordinator::{
    dice_evidence, serve, Attester, ClientCert, Coordinator, DcapVerifier, FileStore, Listeners, MeshService,
    Options, QuoterAttester, ServeConfig, ServerCerts, SimKeySealer,
};
use arca_protocol::activation::marble_client::MarbleClient;
use arca_protocol::activation::marble_server::Marble as _;
use arca_protocol::activation::ActivationReq;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::Digest as _;

const SIGNER: [u8; 32] = [0x5a; 32];

fn manifest() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "Packages": {"app": {"SignerID": hex::encode(SIGNER), "ProductID": 7, "SecurityVersion": 2}},
        "Marbles": {"server": {
            "Package": "app",
            "MaxActivations": 0,
            "Parameters": {
                "Files": {"/secrets/own.key": "{{ hex .Secrets.own }}"},
                "Env": {"SHARED": "{{ hex .Secrets.shared }}"}
            }
        }},
        "Secrets": {
            "shared": {"Type": "symmetric-key", "Size": 256, "Shared": true},
            "own": {"Type": "symmetric-key", "Size": 128}
        }
    }))
    .unwrap()
}

struct Marble {
    cert: Arc<Vec<u8>>,
    quote: Vec<u8>,
    uuid: String,
}

fn marbles(pki: &Arc<SimPki>, n: usize, start: usize) -> Vec<Marble> {
    let mut id = ReportBody::parse(&[0u8; 384]).unwrap();
    id.mrenclave = [0xaa; 32].into();
    id.mrsigner = SIGNER.into();
    id.isvprodid = 7;
    id.isvsvn = 2;
    let quoter = SimQuoter::new(pki.clone(), id);
    (start..start + n)
        .map(|i| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![format!("marble{i}")])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let mut rd = [0u8; 64];
            rd[..32].copy_from_slice(&sha2::Sha256::digest(cert.der()));
            Marble {
                cert: Arc::new(cert.der().to_vec()),
                quote: quoter.quote(&rd).unwrap(),
                uuid: format!("{i:08x}-0000-4000-8000-000000000000"),
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn scale() -> f64 {
    std::env::var("ARCA_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// The runs: (concurrency, activations).
fn runs() -> [(usize, usize); 3] {
    let s = scale();
    [(1usize, 300usize), (16, 1600), (64, 3200)].map(|(c, total)| (c, ((total as f64 * s) as usize).max(c)))
}

fn header(title: &str) {
    println!("{title}");
    println!(
        "{:>11} {:>12} {:>14} {:>10} {:>10} {:>10}",
        "concurrency", "activations", "activations/s", "p50 ms", "p99 ms", "max ms"
    );
}

/// Runs one task per batch concurrently, each activating its marbles one after the other, and reports
/// throughput and latency over all of them.
fn drive<T, F, Fut>(
    rt: &tokio::runtime::Runtime,
    coordinator: &Coordinator,
    concurrency: usize,
    batches: Vec<Vec<T>>,
    one: F,
) where
    T: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let cpu_before = cpu_by_thread();
    let commits_before = commit_stats(coordinator);
    let started = Instant::now();
    let latencies: Vec<Duration> = rt.block_on(async {
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let one = one.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(batch.len());
                    for item in batch {
                        let t = Instant::now();
                        one(item).await;
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    let n = latencies.len();
    report(concurrency, elapsed, latencies);
    report_cpu(&cpu_before, &cpu_by_thread(), n, elapsed);
    report_commits(&commits_before, &commit_stats(coordinator), n);
}

/// The coordinator's group commits so far, from its metrics: (count, total seconds, cumulative bucket
/// counts by upper bound).
fn commit_stats(c: &Coordinator) -> (f64, f64, Vec<(f64, f64)>) {
    let text = c.metrics_text();
    let mut out = (0.0, 0.0, Vec::new());
    for line in text.lines() {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else { continue };
        if key == "arca_coordinator_commit_seconds_count" {
            out.0 = v;
        } else if key == "arca_coordinator_commit_seconds_sum" {
            out.1 = v;
        } else if let Some(le) = key.strip_prefix("arca_coordinator_commit_seconds_bucket{le=\"") {
            let le = le.trim_end_matches("\"}").parse().unwrap_or(f64::INFINITY);
            out.2.push((le, v));
        }
    }
    out
}

fn report_commits(before: &(f64, f64, Vec<(f64, f64)>), after: &(f64, f64, Vec<(f64, f64)>), n: usize) {
    let count = after.0 - before.0;
    if count == 0.0 {
        return;
    }
    // The smallest bucket bound that holds every commit of this run.
    let slowest = after
        .2
        .iter()
        .zip(&before.2)
        .find(|((_, a), (_, b))| a - b >= count)
        .map(|((le, _), _)| *le)
        .unwrap_or(f64::INFINITY);
    println!(
        "{:>11} group commits: {count:.0} ({:.1} activations each), mean {:.2} ms, slowest <= {:.1} ms",
        "",
        n as f64 / count,
        (after.1 - before.1) / count * 1e3,
        slowest * 1e3
    );
}

/// CPU time (user + system) used so far, by thread name (Linux `/proc`, 10 ms ticks): the coordinator's
/// runtime (`coordinator`), its commit thread (`arca-commit`), the load generator (`loadgen`); `total`
/// is the whole process, threads that already ended included.
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    fn ticks(stat: &str) -> Option<(String, f64)> {
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the command: state is field 3, utime field 14 and stime field 15 of stat(5).
        let t = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some((comm, t / 100.0))
    }
    let mut out = std::collections::BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            if let Some((comm, t)) = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .as_deref()
                .and_then(ticks)
            {
                *out.entry(comm).or_insert(0.0) += t;
            }
        }
    }
    if let Some((_, t)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(ticks)
    {
        out.insert("total".into(), t);
    }
    out
}

fn report_cpu(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    n: usize,
    elapsed: Duration,
) {
    let per = |k: &str| (after.get(k).unwrap_or(&0.0) - before.get(k).unwrap_or(&0.0)) * 1e3 / n as f64;
    let parts: Vec<String> = ["coordinator", "arca-commit", "loadgen"]
        .iter()
        .filter(|k| after.contains_key(**k))
        .map(|k| format!("{k} {:.2}", per(k)))
        .collect();
    let total = per("total");
    println!(
        "{:>11} cpu ms/activation: {}, process {total:.2}; {:.2} cores busy",
        "",
        parts.join(", "),
        total * n as f64 / 1e3 / elapsed.as_secs_f64()
    );
}

fn report(concurrency: usize, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let n = latencies.len();
    println!(
        "{concurrency:>11} {n:>12} {:>14.0} {:>10.1} {:>10.1} {:>10.1}",
        n as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[n - 1].as_secs_f64() * 1e3,
    );
}

/// A coordinator with the benchmark manifest, and the verifier of marbles' quotes.
struct Setup {
    coordinator: Coordinator,
    verifier: Arc<DcapVerifier>,
    _dir: tempfile::TempDir,
}

fn setup(rt: &tokio::runtime::Runtime, pki: &Arc<SimPki>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    let sealer = Arc::new(SimKeySealer::from_file(&dir.path().join("seal.key")).unwrap());
    let coordinator = Coordinator::open(
        store,
        sealer,
        Options {
            allow_simulation: true,
        },
    )
    .unwrap();
    rt.block_on(coordinator.set_manifest(&manifest(), "bench"))
        .unwrap();
    let collateral: Arc<dyn CollateralSource> = Arc::new(Arc::new(pki.collateral().clone()));
    let verifier = Arc::new(DcapVerifier::new(
        Arc::new(Verifier::new().with_simulation_root(pki.root_anchor().unwrap())),
        Some(collateral),
        true,
    ));
    Setup {
        coordinator,
        verifier,
        _dir: dir,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments. ARCA_BENCH_MODE: handler, tls or both (default).
    let mode = std::env::var("ARCA_BENCH_MODE").unwrap_or_else(|_| "both".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("loadgen")
        .enable_all()
        .build()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let pki = Arc::new(SimPki::create(SimPkiOptions::at(now)).unwrap());
    println!("activation benchmark (scale {}); durable group commits", scale());
    if mode != "tls" {
        handler_runs(&rt, &pki);
    }
    if mode != "handler" {
        tls_runs(&rt, &pki);
    }
}

/// The `Activate` handler called directly (no TLS, no HTTP/2).
fn handler_runs(rt: &tokio::runtime::Runtime, pki: &Arc<SimPki>) {
    let s = setup(rt, pki);
    let service = Arc::new(MeshService::new(s.coordinator.clone(), s.verifier.clone()));
    header("\n[handler] MarbleRun-style quote in the request, Activate handler called directly");
    let mut next = 0usize;
    // Warm the collateral and chain caches (the byte-keyed caches a long-running coordinator has warm).
    for m in marbles(pki, 4, next) {
        next += 1;
        rt.block_on(activate(&service, m)).unwrap();
    }
    for (concurrency, total) in runs() {
        let per_task = total / concurrency;
        let batches: Vec<Vec<Marble>> = (0..concurrency)
            .map(|_| {
                let b = marbles(pki, per_task, next);
                next += per_task;
                b
            })
            .collect();
        let service = service.clone();
        drive(rt, &s.coordinator, concurrency, batches, move |m| {
            let service = service.clone();
            async move { activate(&service, m).await.unwrap() }
        });
    }
}

/// What a launcher brings to its activation: an RA-TLS client certificate (DICE evidence: a fresh
/// simulated quote over its key) and a CSR.
struct Launcher {
    /// Its TLS client configuration: the RA-TLS client certificate and key, loaded once at the launcher's
    /// start like its key and quote (a launcher is one process that activates once).
    tls: Arc<rustls::ClientConfig>,
    csr: Vec<u8>,
    uuid: String,
}

/// A launcher's TLS client configuration: its RA-TLS certificate as client certificate, the coordinator's
/// certificate checked by `server`, HTTP/2.
fn launcher_tls(
    server: &LauncherCheck,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ClientConfig> {
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerCertVerifier::new(server.clone())))
            .with_client_auth_cert(chain, key)
            .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

fn launchers(pki: &Arc<SimPki>, server: &LauncherCheck, n: usize, start: usize) -> Vec<Launcher> {
    let mut id = ReportBody::parse(&[0u8; 384]).unwrap();
    id.mrenclave = [0xaa; 32].into();
    id.mrsigner = SIGNER.into();
    id.isvprodid = 7;
    id.isvsvn = 2;
    let quoter = SimQuoter::new(pki.clone(), id);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    (start..start + n)
        .map(|i| {
            let ra = RaTlsIdentity::create(&quoter, &RaTlsOptions::valid_at("marble", now, 1)).unwrap();
            let (chain, key) = ra.rustls_parts();
            let csr_key = rcgen::KeyPair::generate().unwrap();
            let csr = rcgen::CertificateParams::new(vec![format!("marble{i}.local")])
                .unwrap()
                .serialize_request(&csr_key)
                .unwrap()
                .der()
                .to_vec();
            Launcher {
                tls: launcher_tls(server, chain, key),
                csr,
                uuid: format!("{i:08x}-0000-4000-8000-000000000000"),
            }
        })
        .collect()
}

const COORDINATOR_MRENCLAVE: [u8; 32] = [0xc0; 32];

/// The real server: both APIs over TLS on 127.0.0.1, the coordinator's RA-TLS certificate, on its own
/// runtime (its own worker threads, named `coordinator`, as in its own process) so that the load
/// generator's tasks do not share its run queues.
fn start_server(pki: &Arc<SimPki>, s: &Setup) -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("coordinator")
        .enable_all()
        .build()
        .unwrap();
    let mut id = ReportBody::parse(&[0u8; 384]).unwrap();
    id.mrenclave = COORDINATOR_MRENCLAVE.into();
    let attester: Arc<dyn Attester> = Arc::new(QuoterAttester(Arc::new(SimQuoter::new(pki.clone(), id))));
    let cfg = ServeConfig {
        mesh_addr: "127.0.0.1:0".parse().unwrap(),
        client_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: None,
        dns_names: vec!["localhost".into()],
    };
    let certs = ServerCerts::new(
        s.coordinator.clone(),
        attester.clone(),
        Arc::new(dice_evidence),
        cfg.dns_names.clone(),
    )
    .unwrap();
    let listeners = rt.block_on(Listeners::bind(&cfg)).unwrap();
    let mesh = listeners.mesh.local_addr().unwrap().to_string();
    let (coordinator, verifier) = (s.coordinator.clone(), s.verifier.clone());
    rt.spawn(async move { serve(coordinator, attester, verifier, &certs, listeners).await });
    (rt, mesh)
}

/// What every launcher checks before it sends anything: the coordinator's RA-TLS certificate under its
/// pinned policy (one verifier shared by the simulated launchers, so its byte-keyed caches are warm).
fn coordinator_verifier(pki: &SimPki) -> Arc<RaTlsVerifier> {
    let collateral: Arc<dyn CollateralSource> = Arc::new(Arc::new(pki.collateral().clone()));
    Arc::new(RaTlsVerifier::new(
        Arc::new(Verifier::new().with_simulation_root(pki.root_anchor().unwrap())),
        Some(collateral),
        Policy {
            mrenclave: Some(arca_attest::HexBytes(COORDINATOR_MRENCLAVE)),
            ..Policy::simulation()
        },
    ))
}

/// The simulated launchers' check of the coordinator's certificate: the full RA-TLS verification under
/// the pinned policy the first time, then the verdict remembered for those exact certificate bytes (for at
/// most a minute). A real launcher is its own process on its own CPU and verifies the coordinator once;
/// here 3,000 launchers share the coordinator's 2 cores, and repeating an identical verification of an
/// identical certificate in each would measure the load generator, not the coordinator. The
/// coordinator's side is untouched: it verifies every launcher's fresh quote in full.
#[derive(Debug, Clone)]
struct LauncherCheck {
    full: Arc<RaTlsVerifier>,
    verified: Arc<std::sync::Mutex<Option<Verdict>>>,
}

/// The certificate (DER) a launcher verified, and when.
type Verdict = (Vec<u8>, Instant);

impl LauncherCheck {
    fn new(full: Arc<RaTlsVerifier>) -> LauncherCheck {
        LauncherCheck {
            full,
            verified: Arc::default(),
        }
    }
}

impl arca_attest::PeerCheck for LauncherCheck {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        now: rustls::pki_types::UnixTime,
    ) -> Result<(), rustls::Error> {
        if let Some((der, at)) = &*self.verified.lock().unwrap() {
            if der.as_slice() == end_entity.as_ref() && at.elapsed() < Duration::from_secs(60) {
                return Ok(());
            }
        }
        self.full.check(end_entity, now)?;
        *self.verified.lock().unwrap() = Some((end_entity.to_vec(), Instant::now()));
        Ok(())
    }
}

/// One launcher's activation over the wire: TCP connect, mutually attested TLS handshake (each side
/// verifies the other's quote), HTTP/2, gRPC `Activate`.
async fn activate_tls(mesh: &str, l: Launcher) {
    let tcp = tokio::net::TcpStream::connect(mesh).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(l.tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    // HTTP/2 straight over the connection (a launcher makes one call: no pool, buffer or reconnect layers).
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut client = MarbleClient::with_origin(
        H2(send),
        tonic::codegen::http::Uri::from_static("http://localhost"),
    );
    client
        .activate(ActivationReq {
            csr: l.csr,
            marble_type: "server".into(),
            uuid: l.uuid,
            quote: vec![],
        })
        .await
        .unwrap();
}

/// One HTTP/2 connection as the tower service a tonic client calls.
#[derive(Clone)]
struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

type H2Response = tonic::codegen::http::Response<hyper::body::Incoming>;

impl tower::Service<tonic::codegen::http::Request<tonic::body::Body>> for H2 {
    type Response = H2Response;
    type Error = hyper::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<H2Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// Every simulated launcher does the real thing over 127.0.0.1.
fn tls_runs(rt: &tokio::runtime::Runtime, pki: &Arc<SimPki>) {
    let s = setup(rt, pki);
    let (_server_rt, mesh) = start_server(pki, &s);
    let server = LauncherCheck::new(coordinator_verifier(pki));
    header(
        "\n[tls] Arca launchers over 127.0.0.1: TCP + mutually attested TLS (DICE evidence both ways) + gRPC Activate",
    );
    let mut next = 0usize;
    for l in launchers(pki, &server, 4, next) {
        next += 1;
        rt.block_on(activate_tls(&mesh, l));
    }
    for (concurrency, total) in runs() {
        let per_task = total / concurrency;
        let batches: Vec<Vec<Launcher>> = (0..concurrency)
            .map(|_| {
                let b = launchers(pki, &server, per_task, next);
                next += per_task;
                b
            })
            .collect();
        let mesh = mesh.clone();
        drive(rt, &s.coordinator, concurrency, batches, move |l| {
            let mesh = mesh.clone();
            async move { activate_tls(&mesh, l).await }
        });
    }
}

async fn activate(service: &MeshService, m: Marble) -> Result<(), tonic::Status> {
    let mut req = tonic::Request::new(ActivationReq {
        csr: vec![],
        marble_type: "server".into(),
        uuid: m.uuid,
        quote: m.quote,
    });
    req.extensions_mut().insert(ClientCert(Some(m.cert)));
    service.activate(req).await.map(|_| ())
}
