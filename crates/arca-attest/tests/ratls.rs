//! RA-TLS: certificates from Gramine, the Intel SGX SDK, Open Enclave and Arca, and a real mutual-TLS
//! handshake over loopback between two simulation-attested endpoints.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use arca_attest::{
    client_config, server_config, CollateralSource, Error, Evidence, HexBytes, Policy, Quote, Quoter,
    RaTlsCertificate, RaTlsFormat, RaTlsIdentity, RaTlsOptions, RaTlsVerifier, ReportBody, SimPki,
    SimPkiOptions, SimQuoter, Verifier,
};

fn pem_cert(name: &str) -> Vec<u8> {
    let text = std::fs::read(arca_testkit::vector(name)).unwrap();
    let first = pem::parse_many(&text)
        .unwrap()
        .into_iter()
        .find(|p| p.tag() == "CERTIFICATE")
        .unwrap();
    first.into_contents()
}

fn mrenclave_of(quote: &[u8]) -> [u8; 32] {
    let q = Quote::parse(quote).unwrap();
    q.body.sgx().unwrap().mrenclave.to_bytes()
}

fn mrsigner_of(quote: &[u8]) -> [u8; 32] {
    let q = Quote::parse(quote).unwrap();
    q.body.sgx().unwrap().mrsigner.to_bytes()
}

#[test]
fn gramine_certificate_binds_its_key_both_ways_and_its_quote_verifies() {
    let der = pem_cert("interoperable-ra-tls/gramine-cert.pem");
    let cert = RaTlsCertificate::parse(&der).unwrap();
    let formats: Vec<_> = cert.evidence.iter().map(|e| e.format).collect();
    assert!(
        formats.contains(&RaTlsFormat::TcgDice) && formats.contains(&RaTlsFormat::GramineLegacy),
        "{formats:?}"
    );
    let quote = cert.quote();
    assert!(hex::encode(mrenclave_of(quote)).starts_with("0866e7ca"));
    assert!(hex::encode(mrsigner_of(quote)).starts_with("adc53501"));
    let at = 1_700_000_000; // 2023-11-14, inside the PCK certificate's validity
    let v = Verifier::new()
        .check(&Evidence::new(quote, None), &Policy::default(), at)
        .unwrap();
    assert_eq!(hex::encode_upper(v.pck.fmspc), "00606A000000");
    // Without collateral: cryptographically sound, TCB status unknown, refused by any policy.
    let verdict =
        RaTlsVerifier::new(Arc::new(Verifier::new()), None, Policy::default()).verify_cert(&der, at);
    assert!(!verdict.accepted);
    assert!(
        verdict.reasons.iter().any(|r| r.contains("TCB status unknown")),
        "{:?}",
        verdict.reasons
    );
}

#[test]
fn intel_sgx_sdk_certificate_binds_its_key_through_the_dice_claims() {
    let der = pem_cert("interoperable-ra-tls/intel-sgxsdk-cert.pem");
    let cert = RaTlsCertificate::parse(&der).unwrap();
    let formats: Vec<_> = cert.evidence.iter().map(|e| e.format).collect();
    assert_eq!(formats, [RaTlsFormat::TcgDice, RaTlsFormat::IntelSgxSdk]);
    let quote = cert.quote();
    assert!(hex::encode(mrenclave_of(quote)).starts_with("09e218a4"));
    assert!(hex::encode(mrsigner_of(quote)).starts_with("e0c86c51"));
    let at = 1_704_067_200; // 2024-01-01
    Verifier::new()
        .check(&Evidence::new(quote, None), &Policy::default(), at)
        .unwrap();
}

#[test]
fn a_changed_byte_in_an_evidence_extension_is_refused() {
    let der = pem_cert("interoperable-ra-tls/gramine-cert.pem");
    // Flip a byte inside the DICE claims' pubkey hash: find the rats-tls prefix 82 01 58 20.
    let at = der
        .windows(4)
        .position(|w| w == [0x82, 0x01, 0x58, 0x20])
        .unwrap()
        + 4;
    let mut bad = der.clone();
    bad[at] ^= 1;
    let err = RaTlsCertificate::parse(&bad).unwrap_err();
    assert!(err.to_string().contains("key not bound"), "{err}");
}

// ── Arca's own certificates, with the simulation PKI ──

const NOW: i64 = 1_760_000_000;

fn body(mrenclave: u8) -> ReportBody {
    let mut b = [0u8; 384];
    b[48] = 0x05;
    b[64..96].copy_from_slice(&[mrenclave; 32]);
    b[128..160].copy_from_slice(&[0x51; 32]);
    ReportBody::parse(&b).unwrap()
}

struct Sim {
    pki: Arc<SimPki>,
}

impl Sim {
    fn new() -> Self {
        Sim {
            pki: Arc::new(SimPki::create(SimPkiOptions::at(NOW)).unwrap()),
        }
    }
    fn quoter(&self, mrenclave: u8) -> SimQuoter {
        SimQuoter::new(self.pki.clone(), body(mrenclave))
    }
    fn verifier(&self, expect_mrenclave: u8) -> Arc<RaTlsVerifier> {
        let verifier = Arc::new(Verifier::new().with_simulation_root(self.pki.root_anchor().unwrap()));
        let collateral: Arc<dyn CollateralSource> = Arc::new(Arc::new(self.pki.collateral().clone()));
        let policy = Policy {
            mrenclave: Some(HexBytes([expect_mrenclave; 32])),
            ..Policy::simulation()
        };
        Arc::new(RaTlsVerifier::new(verifier, Some(collateral), policy).at_time(NOW))
    }
}

#[test]
fn arca_certificate_with_dice_and_gramine_legacy_evidence_verifies() {
    let sim = Sim::new();
    let opts = RaTlsOptions {
        gramine_legacy: true,
        ..RaTlsOptions::valid_at("arca", NOW, 1)
    };
    let id = RaTlsIdentity::create(&sim.quoter(0xa1), &opts).unwrap();
    let cert = RaTlsCertificate::parse(id.cert_der()).unwrap();
    let formats: Vec<_> = cert.evidence.iter().map(|e| e.format).collect();
    assert_eq!(formats, [RaTlsFormat::TcgDice, RaTlsFormat::GramineLegacy]);
    let verdict = sim.verifier(0xa1).verify_cert(id.cert_der(), NOW);
    assert!(verdict.accepted, "{:?}", verdict.reasons);
    let verdict = sim.verifier(0xa2).verify_cert(id.cert_der(), NOW);
    assert!(!verdict.accepted);
    assert!(verdict.reasons[0].contains("MRENCLAVE"), "{:?}", verdict.reasons);
}

#[test]
fn open_enclave_style_certificate_is_understood() {
    let sim = Sim::new();
    let key = rcgen::KeyPair::generate().unwrap();
    use rcgen::PublicKeyData;
    let spki = key.subject_public_key_info();
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&ring::digest::digest(&ring::digest::SHA256, &spki).as_ref()[..32]);
    let quote = sim.quoter(0xa1).quote(&rd).unwrap();
    let mut ext = Vec::new();
    ext.extend_from_slice(&1u32.to_le_bytes());
    ext.extend_from_slice(&2u32.to_le_bytes());
    ext.extend_from_slice(&(quote.len() as u64).to_le_bytes());
    ext.extend_from_slice(&quote);
    let mut params = rcgen::CertificateParams::new(vec!["oe".to_string()]).unwrap();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 311, 105, 1],
            ext,
        ));
    params.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - 10).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let parsed = RaTlsCertificate::parse(cert.der()).unwrap();
    assert_eq!(parsed.evidence[0].format, RaTlsFormat::OpenEnclave);
    let verdict = sim.verifier(0xa1).verify_cert(cert.der(), NOW);
    assert!(verdict.accepted, "{:?}", verdict.reasons);
}

/// A quoter that ignores the REPORTDATA it is asked for: its quotes are not bound to the certificate key.
struct Unbound(SimQuoter);

impl Quoter for Unbound {
    fn quote(&self, _report_data: &[u8; 64]) -> Result<Vec<u8>, Error> {
        self.0.quote(&[0x42; 64])
    }
}

fn handshake(
    server_id: &RaTlsIdentity,
    server_checks_client: Arc<RaTlsVerifier>,
    client_id: &RaTlsIdentity,
    client_checks_server: Arc<RaTlsVerifier>,
) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_cfg = Arc::new(server_config(server_id, Some(server_checks_client)).unwrap());
    let server = std::thread::spawn(move || -> Result<(), String> {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ok();
        let conn = rustls::ServerConnection::new(server_cfg).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(b"pong").map_err(|e| e.to_string())?;
        tls.conn.send_close_notify();
        tls.flush().map_err(|e| e.to_string())?;
        Ok(())
    });
    let client_cfg = Arc::new(client_config(client_checks_server, Some(client_id)).unwrap());
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok();
    let conn = rustls::ClientConnection::new(client_cfg, "coordinator".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let client_result = (|| {
        tls.write_all(b"ping").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&buf).into_owned())
    })();
    drop(tls);
    let server_result = server.join().unwrap();
    match (client_result, server_result) {
        (Ok(reply), Ok(())) => Ok(reply),
        (c, s) => Err(format!("client: {:?}; server: {:?}", c.err(), s.err())),
    }
}

#[test]
fn mutual_ra_tls_handshake_between_two_simulated_enclaves_succeeds() {
    let sim = Sim::new();
    let server =
        RaTlsIdentity::create(&sim.quoter(0xc0), &RaTlsOptions::valid_at("coordinator", NOW, 1)).unwrap();
    let client = RaTlsIdentity::create(&sim.quoter(0xd0), &RaTlsOptions::valid_at("marble", NOW, 1)).unwrap();
    let reply = handshake(&server, sim.verifier(0xd0), &client, sim.verifier(0xc0)).unwrap();
    assert_eq!(reply, "pong");
}

#[test]
fn mutual_ra_tls_refuses_a_server_with_the_wrong_identity() {
    let sim = Sim::new();
    let server =
        RaTlsIdentity::create(&sim.quoter(0xee), &RaTlsOptions::valid_at("impostor", NOW, 1)).unwrap();
    let client = RaTlsIdentity::create(&sim.quoter(0xd0), &RaTlsOptions::valid_at("marble", NOW, 1)).unwrap();
    let err = handshake(&server, sim.verifier(0xd0), &client, sim.verifier(0xc0)).unwrap_err();
    assert!(err.contains("MRENCLAVE"), "{err}");
}

#[test]
fn mutual_ra_tls_refuses_a_client_with_the_wrong_identity() {
    let sim = Sim::new();
    let server =
        RaTlsIdentity::create(&sim.quoter(0xc0), &RaTlsOptions::valid_at("coordinator", NOW, 1)).unwrap();
    let client =
        RaTlsIdentity::create(&sim.quoter(0xee), &RaTlsOptions::valid_at("impostor", NOW, 1)).unwrap();
    let err = handshake(&server, sim.verifier(0xd0), &client, sim.verifier(0xc0)).unwrap_err();
    assert!(err.contains("server"), "{err}");
}

#[test]
fn mutual_ra_tls_refuses_a_stale_certificate() {
    let sim = Sim::new();
    let stale = RaTlsOptions {
        not_before: NOW - 10 * 86_400,
        not_after: NOW - 86_400,
        ..RaTlsOptions::valid_at("old", NOW, 1)
    };
    let server = RaTlsIdentity::create(&sim.quoter(0xc0), &stale).unwrap();
    let client = RaTlsIdentity::create(&sim.quoter(0xd0), &RaTlsOptions::valid_at("marble", NOW, 1)).unwrap();
    let err = handshake(&server, sim.verifier(0xd0), &client, sim.verifier(0xc0)).unwrap_err();
    assert!(err.contains("stale"), "{err}");
}

#[test]
fn mutual_ra_tls_refuses_a_key_not_bound_to_the_quote() {
    let sim = Sim::new();
    let server =
        RaTlsIdentity::create(&Unbound(sim.quoter(0xc0)), &RaTlsOptions::valid_at("c", NOW, 1)).err();
    // The certificate is made, but its quote does not bind the key: parsing says so, and the handshake fails.
    assert!(server.is_none());
    let server =
        RaTlsIdentity::create(&Unbound(sim.quoter(0xc0)), &RaTlsOptions::valid_at("c", NOW, 1)).unwrap();
    let err = RaTlsCertificate::parse(server.cert_der()).unwrap_err();
    assert!(err.to_string().contains("key not bound"), "{err}");
    let client = RaTlsIdentity::create(&sim.quoter(0xd0), &RaTlsOptions::valid_at("marble", NOW, 1)).unwrap();
    let err = handshake(&server, sim.verifier(0xd0), &client, sim.verifier(0xc0)).unwrap_err();
    assert!(err.contains("key not bound"), "{err}");
}
