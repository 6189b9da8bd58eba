//! Activation throughput and latency: 1, 16 and 64 concurrent simulated marbles, each presenting a fresh
//! simulated quote (MarbleRun style: REPORTDATA = SHA-256 of its own client certificate) that is fully
//! verified (chain, CRLs, TCB info, QE identity, signatures; only the byte-keyed collateral and chain results
//! are cached), through the mesh service's `Activate` handler (everything the gRPC server does after TLS and
//! HTTP/2), with every activation durable (group commit) before it is answered.
//!
//! The marbles' certificates and quotes are made before the clock starts (they are the marbles' work, not
//! the coordinator's); TLS handshakes and HTTP/2 framing are not measured. Run:
//! `cargo bench -p arca-coordinator --bench activation` (`ARCA_BENCH_SCALE=0.2` for a shorter run).
//! It measures and prints; it asserts nothing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_attest::{CollateralSource, Quoter, ReportBody, SimPki, SimPkiOptions, SimQuoter, Verifier};
use arca_coordinator::{
    ClientCert, Coordinator, DcapVerifier, FileStore, MeshService, Options, SimKeySealer,
};
use arca_protocol::activation::marble_server::Marble as _;
use arca_protocol::activation::ActivationReq;
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

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let scale: f64 = std::env::var("ARCA_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let pki = Arc::new(SimPki::create(SimPkiOptions::at(now)).unwrap());
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
    let service = Arc::new(MeshService::new(coordinator, verifier));

    println!(
        "activation benchmark (scale {scale}); durable group commits in {}",
        dir.path().display()
    );
    println!(
        "{:>11} {:>12} {:>14} {:>10} {:>10} {:>10}",
        "concurrency", "activations", "activations/s", "p50 ms", "p99 ms", "max ms"
    );
    let mut next = 0usize;
    // Warm the collateral and chain caches (the byte-keyed caches a long-running coordinator has warm).
    for m in marbles(&pki, 4, next) {
        next += 1;
        rt.block_on(activate(&service, m)).unwrap();
    }
    for (concurrency, total) in [(1usize, 300usize), (16, 1600), (64, 3200)] {
        let total = ((total as f64 * scale) as usize).max(concurrency);
        let per_task = total / concurrency;
        let batches: Vec<Vec<Marble>> = (0..concurrency)
            .map(|_| {
                let b = marbles(&pki, per_task, next);
                next += per_task;
                b
            })
            .collect();
        let started = Instant::now();
        let mut latencies: Vec<Duration> = rt.block_on(async {
            let tasks: Vec<_> = batches
                .into_iter()
                .map(|batch| {
                    let service = service.clone();
                    tokio::spawn(async move {
                        let mut lat = Vec::with_capacity(batch.len());
                        for m in batch {
                            let t = Instant::now();
                            activate(&service, m).await.unwrap();
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
