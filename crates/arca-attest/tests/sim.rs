//! The simulation PKI: its quotes verify with the same verifier only when simulation is allowed.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arca_attest::{
    AnchorKind, Error, Evidence, Policy, Quoter, ReportBody, SimPki, SimPkiOptions, SimQuoter, TcbStatus,
    Verifier,
};

const NOW: i64 = 1_760_000_000;

fn identity() -> ReportBody {
    let mut b = [0u8; 384];
    b[48] = 0x05; // INIT | MODE64BIT, not DEBUG
    b[64..96].copy_from_slice(&[0xaa; 32]); // MRENCLAVE
    b[128..160].copy_from_slice(&[0xbb; 32]); // MRSIGNER
    b[256..258].copy_from_slice(&7u16.to_le_bytes()); // ISVPRODID
    b[258..260].copy_from_slice(&3u16.to_le_bytes()); // ISVSVN
    ReportBody::parse(&b).unwrap()
}

fn setup() -> (Arc<SimPki>, SimQuoter) {
    let pki = Arc::new(SimPki::create(SimPkiOptions::at(NOW)).unwrap());
    let quoter = SimQuoter::new(pki.clone(), identity());
    (pki, quoter)
}

#[test]
fn simulated_quote_is_up_to_date_when_simulation_is_allowed() {
    let (pki, quoter) = setup();
    let quote = quoter.quote(&[7u8; 64]).unwrap();
    let verifier = Verifier::new().with_simulation_root(pki.root_anchor().unwrap());
    let policy = Policy {
        mrenclave: Some(arca_attest::HexBytes([0xaa; 32])),
        ..Policy::simulation()
    };
    let verdict = verifier.verify(&Evidence::new(&quote, Some(pki.collateral())), &policy, NOW);
    assert!(verdict.accepted, "{:?}", verdict.reasons);
    assert!(verdict.notes.iter().any(|n| n.contains("simulation quote")));
    let v = verdict.evidence.unwrap();
    assert_eq!(v.anchor, AnchorKind::Simulation);
    assert_eq!(v.tcb.as_ref().unwrap().status, TcbStatus::UpToDate);
    assert_eq!(v.report_data(), [7u8; 64]);
    assert_eq!(v.isv_prod_id(), Some(7));
    assert_eq!(v.pck.fmspc, arca_attest::SIM_FMSPC);
}

#[test]
fn simulated_quote_is_refused_as_simulation_quote_by_default() {
    let (pki, quoter) = setup();
    let quote = quoter.quote(&[0u8; 64]).unwrap();
    let e = Evidence::new(&quote, Some(pki.collateral()));
    // The production verifier does not know the simulation root.
    let err = Verifier::new().check(&e, &Policy::default(), NOW).unwrap_err();
    assert!(matches!(err, Error::SimulationQuote { .. }), "{err}");
    assert!(err.to_string().contains("simulation quote"));
    // Even a verifier that knows it refuses unless the policy allows simulation.
    let verifier = Verifier::new().with_simulation_root(pki.root_anchor().unwrap());
    let err = verifier.check(&e, &Policy::default(), NOW).unwrap_err();
    assert!(matches!(err, Error::SimulationQuote { .. }), "{err}");
    let verdict = Verifier::new().verify(&e, &Policy::simulation(), NOW);
    assert!(!verdict.accepted);
    assert!(
        verdict.reasons[0].contains("simulation quote"),
        "{:?}",
        verdict.reasons
    );
}

#[test]
fn a_revoked_simulated_pck_certificate_is_refused() {
    let (pki, quoter) = setup();
    let quote = quoter.quote(&[0u8; 64]).unwrap();
    let mut revoked = SimPki::load(&save(&pki).path().join("pki")).unwrap();
    revoked.revoke_pck().unwrap();
    let verifier = Verifier::new().with_simulation_root(pki.root_anchor().unwrap());
    let err = verifier
        .check(
            &Evidence::new(&quote, Some(revoked.collateral())),
            &Policy::simulation(),
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Revoked { crl: "PCK CRL", .. }), "{err}");
}

fn save(pki: &SimPki) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    pki.save(&dir.path().join("pki")).unwrap();
    dir
}

#[test]
fn a_saved_pki_loads_and_signs_quotes_the_original_root_accepts() {
    let (pki, _) = setup();
    let dir = save(&pki);
    let key_mode = std::fs::metadata(dir.path().join("pki/root-ca.key.pem")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key_mode.permissions().mode() & 0o777, 0o600);
    let loaded = Arc::new(SimPki::load(&dir.path().join("pki")).unwrap());
    assert_eq!(loaded.collateral().fingerprint(), pki.collateral().fingerprint());
    let quote = SimQuoter::new(loaded.clone(), identity())
        .quote(&[1u8; 64])
        .unwrap();
    let verifier = Verifier::new().with_simulation_root(pki.root_anchor().unwrap());
    let verdict = verifier.verify(
        &Evidence::new(&quote, Some(loaded.collateral())),
        &Policy::simulation(),
        NOW,
    );
    assert!(verdict.accepted, "{:?}", verdict.reasons);
}

#[test]
fn simulated_quotes_expire_with_the_simulation_pki() {
    let (pki, quoter) = setup();
    let quote = quoter.quote(&[0u8; 64]).unwrap();
    let verifier = Verifier::new().with_simulation_root(pki.root_anchor().unwrap());
    let late = pki.validity().1 + 1;
    let err = verifier
        .check(
            &Evidence::new(&quote, Some(pki.collateral())),
            &Policy::simulation(),
            late,
        )
        .unwrap_err();
    assert!(matches!(err, Error::CollateralValidity { .. }), "{err}");
}

#[test]
fn a_debug_identity_is_refused_by_default_even_in_simulation() {
    let (pki, _) = setup();
    let mut b = identity().to_bytes();
    b[48] |= 0x02;
    let quote = SimQuoter::new(pki.clone(), ReportBody::parse(&b).unwrap())
        .quote(&[0u8; 64])
        .unwrap();
    let verifier = Verifier::new().with_simulation_root(pki.root_anchor().unwrap());
    let verdict = verifier.verify(
        &Evidence::new(&quote, Some(pki.collateral())),
        &Policy::simulation(),
        NOW,
    );
    assert!(!verdict.accepted);
    assert!(verdict.reasons.iter().any(|r| r.contains("DEBUG")));
}

#[test]
fn simulation_collateral_whose_crl_ends_in_a_zero_or_whitespace_byte_verifies() {
    // Regression (found by the RA-TLS benchmark): DER CRLs were trimmed of trailing "padding" before their
    // length was read, so a CRL whose signature ended in 0x00 or an ASCII whitespace byte (~1 PKI in 20)
    // lost its last byte and every quote of that PKI was refused. Create PKIs until one has such a CRL.
    let ends_in_padding = |b: &[u8]| matches!(b.last(), Some(0 | b'\t' | b'\n' | 0x0c | b'\r' | b' '));
    let pki = (0..2000)
        .map(|_| SimPki::create(SimPkiOptions::at(NOW)).unwrap())
        .find(|p| ends_in_padding(p.collateral().root_ca_crl()) || ends_in_padding(p.collateral().pck_crl()))
        .expect("no simulation PKI in 2000 had a CRL ending in a padding byte: CRLs are being trimmed");
    let pki = Arc::new(pki);
    let quote = SimQuoter::new(pki.clone(), identity()).quote(&[1u8; 64]).unwrap();
    let verifier = Verifier::new().with_simulation_root(pki.root_anchor().unwrap());
    let v = verifier
        .check(
            &Evidence::new(&quote, Some(pki.collateral())),
            &Policy::simulation(),
            NOW,
        )
        .unwrap();
    assert_eq!(v.tcb.unwrap().status, TcbStatus::UpToDate);
}
