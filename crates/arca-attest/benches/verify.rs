//! Side-by-side benchmarks (one run): cold and warm quote verification against dcap-qvl 0.7.1, and an RA-TLS
//! mutual-TLS handshake against a plain rustls mutual-TLS handshake (both in memory, ring provider, TLS 1.3).
//! They measure; they assert nothing. Results go in BENCHMARKS.md.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arca_attest::{
    client_config, server_config, Collateral, CollateralSource, Evidence, HexBytes, Policy, RaTlsIdentity,
    RaTlsOptions, RaTlsVerifier, ReportBody, SimPki, SimPkiOptions, SimQuoter, Verifier,
};
use criterion::{criterion_group, criterion_main, Criterion};

const AT: i64 = 1_751_000_000;

fn read(name: &str) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors");
    std::fs::read(dir.join(name)).unwrap()
}

fn verify(c: &mut Criterion) {
    for (name, q, col) in [
        (
            "sgx",
            "dcap-qvl/sample_sgx_quote",
            "dcap-qvl/sample_sgx_quote_collateral.json",
        ),
        (
            "tdx",
            "dcap-qvl/sample_tdx_quote",
            "dcap-qvl/sample_tdx_quote_collateral.json",
        ),
    ] {
        let quote = read(q);
        let col_json = read(col);
        let ours = Collateral::from_json(&col_json).unwrap();
        let theirs: dcap_qvl::QuoteCollateralV3 = serde_json::from_slice(&col_json).unwrap();
        dcap_qvl::verify::verify(&quote, &theirs, AT as u64).unwrap();
        let mut g = c.benchmark_group(format!("verify_{name}"));
        g.bench_function("dcap-qvl", |b| {
            b.iter(|| dcap_qvl::verify::verify(&quote, &theirs, AT as u64).unwrap())
        });
        let cold = Verifier::new().without_cache();
        g.bench_function("arca-cold", |b| {
            b.iter(|| {
                cold.check(&Evidence::new(&quote, Some(&ours)), &Policy::default(), AT)
                    .unwrap()
            })
        });
        let warm = Verifier::new();
        warm.check(&Evidence::new(&quote, Some(&ours)), &Policy::default(), AT)
            .unwrap();
        g.bench_function("arca-warm", |b| {
            b.iter(|| {
                warm.check(&Evidence::new(&quote, Some(&ours)), &Policy::default(), AT)
                    .unwrap()
            })
        });
        g.finish();
    }
}

/// Runs a TLS handshake between two in-memory connections.
fn handshake(client: Arc<rustls::ClientConfig>, server: Arc<rustls::ServerConfig>) {
    let mut c = rustls::ClientConnection::new(client, "server".try_into().unwrap()).unwrap();
    let mut s = rustls::ServerConnection::new(server).unwrap();
    let mut buf = Vec::new();
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().unwrap();
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().unwrap();
    }
}

fn plain_configs() -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaf = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_cert.der().to_vec())).unwrap();
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .unwrap();
    let (scert, skey) = leaf("server");
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(scert, skey)
        .unwrap();
    let (ccert, ckey) = leaf("client");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(ccert, ckey)
        .unwrap();
    (Arc::new(client), Arc::new(server))
}

fn ratls_configs() -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let pki = Arc::new(SimPki::create(SimPkiOptions::at(now)).unwrap());
    let body = |m: u8| {
        let mut b = [0u8; 384];
        b[64..96].copy_from_slice(&[m; 32]);
        ReportBody::parse(&b).unwrap()
    };
    let server_id = RaTlsIdentity::create(
        &SimQuoter::new(pki.clone(), body(1)),
        &RaTlsOptions::valid_at("s", now, 1),
    )
    .unwrap();
    let client_id = RaTlsIdentity::create(
        &SimQuoter::new(pki.clone(), body(2)),
        &RaTlsOptions::valid_at("c", now, 1),
    )
    .unwrap();
    let verifier = Arc::new(Verifier::new().with_simulation_root(pki.root_anchor().unwrap()));
    let collateral: Arc<dyn CollateralSource> = Arc::new(Arc::new(pki.collateral().clone()));
    let expect = |m: u8| {
        let policy = Policy {
            mrenclave: Some(HexBytes([m; 32])),
            ..Policy::simulation()
        };
        Arc::new(RaTlsVerifier::new(
            verifier.clone(),
            Some(collateral.clone()),
            policy,
        ))
    };
    let server = server_config(&server_id, Some(expect(2))).unwrap();
    let client = client_config(expect(1), Some(&client_id)).unwrap();
    (Arc::new(client), Arc::new(server))
}

fn tls(c: &mut Criterion) {
    let (pc, ps) = plain_configs();
    let (rc, rs) = ratls_configs();
    handshake(pc.clone(), ps.clone());
    handshake(rc.clone(), rs.clone());
    let mut g = c.benchmark_group("mtls_handshake");
    g.bench_function("plain-rustls", |b| b.iter(|| handshake(pc.clone(), ps.clone())));
    g.bench_function("ra-tls", |b| b.iter(|| handshake(rc.clone(), rs.clone())));
    g.finish();
}

criterion_group!(benches, verify, tls);
criterion_main!(benches);
