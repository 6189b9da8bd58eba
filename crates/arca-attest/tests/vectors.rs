//! Every quote vector of `testdata/vectors/VECTORS.md`, with exactly the stated result at the stated time.
#![allow(clippy::unwrap_used)]

use arca_attest::{AnchorKind, Collateral, Error, Evidence, Policy, Quote, TcbStatus, TrustAnchor, Verifier};
use arca_testkit::vector;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vector(name)).unwrap()
}

fn collateral(name: &str) -> Collateral {
    Collateral::from_json(&read(name)).unwrap()
}

/// 2025-06-27T04:53:20Z, inside both dcap-qvl sample windows.
const IN_WINDOW: i64 = 1_751_000_000;

fn intel_test_root(path: &str) -> TrustAnchor {
    TrustAnchor::from_pem(&read(path), AnchorKind::Custom).unwrap()
}

#[test]
fn sample_sgx_quote_is_configuration_and_sw_hardening_needed_with_two_advisories() {
    let quote = read("dcap-qvl/sample_sgx_quote");
    let col = collateral("dcap-qvl/sample_sgx_quote_collateral.json");
    let v = Verifier::new()
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), IN_WINDOW)
        .unwrap();
    let tcb = v.tcb.clone().unwrap();
    assert_eq!(tcb.status, TcbStatus::ConfigurationAndSWHardeningNeeded);
    assert_eq!(tcb.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert_eq!(
        hex::encode(v.mrenclave().unwrap()),
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        hex::encode(v.mrsigner().unwrap()),
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    let mut rd = [0u8; 64];
    rd[..13].copy_from_slice(b"Hello, world!");
    assert_eq!(v.report_data(), rd);
    assert_eq!(hex::encode_upper(v.pck.fmspc), "00A067110000");
    assert_eq!(v.pck.pcesvn, 13);
    assert_eq!(v.qe_isv_svn, 10);
    assert_eq!(v.anchor, AnchorKind::Intel);
    // The default policy refuses that status, and says so.
    let verdict = Verifier::new().verify(&Evidence::new(&quote, Some(&col)), &Policy::default(), IN_WINDOW);
    assert!(!verdict.accepted);
    assert!(
        verdict.reasons[0].contains("ConfigurationAndSWHardeningNeeded"),
        "{:?}",
        verdict.reasons
    );
}

#[test]
fn sample_sgx_quote_holds_at_both_ends_of_its_window_and_not_beyond() {
    let quote = read("dcap-qvl/sample_sgx_quote");
    let col = collateral("dcap-qvl/sample_sgx_quote_collateral.json");
    let verifier = Verifier::new().without_cache();
    let start = 1_750_330_571; // 2025-06-19T10:56:11Z
    let end = 1_752_919_278; // 2025-07-19T10:01:18Z
    for at in [start, end] {
        verifier
            .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), at)
            .unwrap();
    }
    let before = verifier
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), start - 1)
        .unwrap_err();
    assert!(
        matches!(
            before,
            Error::CollateralValidity {
                what: "TCB info",
                state: "not yet valid",
                ..
            }
        ),
        "{before}"
    );
    let after = verifier
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), end + 1)
        .unwrap_err();
    assert!(
        matches!(
            after,
            Error::CollateralValidity {
                what: "QE identity",
                state: "expired",
                ..
            }
        ),
        "{after}"
    );
}

#[test]
fn sample_sgx_quote_is_rejected_in_october_2025_because_tcb_info_expired() {
    let quote = read("dcap-qvl/sample_sgx_quote");
    let col = collateral("dcap-qvl/sample_sgx_quote_collateral.json");
    let err = Verifier::new()
        .check(
            &Evidence::new(&quote, Some(&col)),
            &Policy::default(),
            1_760_000_000,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CollateralValidity {
                what: "TCB info",
                state: "expired",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("TCB info expired"), "{err}");
}

#[test]
fn sample_tdx_quote_is_up_to_date_without_advisories() {
    let quote = read("dcap-qvl/sample_tdx_quote");
    let col = collateral("dcap-qvl/sample_tdx_quote_collateral.json");
    let verdict = Verifier::new().verify(&Evidence::new(&quote, Some(&col)), &Policy::default(), IN_WINDOW);
    assert!(verdict.accepted, "{:?}", verdict.reasons);
    let v = verdict.evidence.unwrap();
    let tcb = v.tcb.unwrap();
    assert_eq!(tcb.status, TcbStatus::UpToDate);
    assert!(tcb.advisory_ids.is_empty());
    assert_eq!(hex::encode_upper(v.pck.fmspc), "B0C06F000000");
    assert_eq!(v.qe_isv_svn, 6);
}

#[test]
fn sample_tdx_quote_is_rejected_in_february_2025_because_tcb_info_is_not_yet_valid() {
    let quote = read("dcap-qvl/sample_tdx_quote");
    let col = collateral("dcap-qvl/sample_tdx_quote_collateral.json");
    let err = Verifier::new()
        .check(
            &Evidence::new(&quote, Some(&col)),
            &Policy::default(),
            1_740_000_000,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CollateralValidity {
                what: "TCB info",
                state: "not yet valid",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn outdated_tdx_v5_quote_verifies_cryptographically_but_no_tcb_level_matches() {
    let quote = read("dcap-qvl/sample_tdx_quote_outdated");
    let col = collateral("dcap-qvl/sample_tdx_quote_outdated_collateral.json");
    let at = 1_772_000_000; // 2026-02-25, inside [2026-02-18T10:58:51Z, 2026-03-20T10:41:15Z]
    let verifier = Verifier::new();
    // Without collateral every signature and chain checks out.
    let v = verifier
        .check(&Evidence::new(&quote, None), &Policy::default(), at)
        .unwrap();
    assert_eq!(v.version, 5);
    assert_eq!(hex::encode_upper(v.pck.fmspc), "90C06F000000");
    let err = verifier
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), at)
        .unwrap_err();
    assert!(matches!(err, Error::TcbNotSupported(_)), "{err}");
    assert!(err.to_string().contains("TCB not supported"));
}

#[test]
fn intel_sample_sgx_quote_with_out_of_band_pck_is_up_to_date_under_intels_test_root() {
    let quote = read("intel-qvl-sampledata/quote.dat");
    let col = collateral("intel-qvl-sampledata/derived_collateral_sgx.dcapqvl.json");
    let mut pck = read("intel-qvl-sampledata/pckCert.pem");
    pck.extend(read("intel-qvl-sampledata/pckSignChain.pem"));
    let at = 1_600_000_000;
    let evidence = Evidence {
        quote: &quote,
        collateral: Some(&col),
        pck_chain: Some(&pck),
    };
    let test_root = intel_test_root("intel-qvl-sampledata/trustedRootCaCert.pem");
    let verifier = Verifier::with_anchors(vec![test_root]);
    let verdict = verifier.verify(&evidence, &Policy::default(), at);
    assert!(verdict.accepted, "{:?}", verdict.reasons);
    assert_eq!(verdict.evidence.unwrap().tcb.unwrap().status, TcbStatus::UpToDate);
    // Intel's production root does not anchor Intel's test keys.
    let err = Verifier::new()
        .check(&evidence, &Policy::default(), at)
        .unwrap_err();
    assert!(matches!(err, Error::UntrustedChain { .. }), "{err}");
    // Without the out-of-band PCK certificate there is nothing to verify the QE report with.
    let err = verifier
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), at)
        .unwrap_err();
    assert!(
        matches!(err, Error::PckCertificateRequired { cert_type: 1 }),
        "{err}"
    );
}

#[test]
fn intel_sample_tdx_quote_with_der_chain_is_rejected_for_qe_identity_mismatch() {
    let quote = read("intel-qvl-sampledata/tdx/quote.dat");
    let col = collateral("intel-qvl-sampledata/tdx/derived_collateral_tdx.dcapqvl.json");
    let test_root = intel_test_root("intel-qvl-sampledata/tdx/trustedRootCaCert.pem");
    let verifier = Verifier::with_anchors(vec![test_root]);
    let at = 1_640_000_000;
    verifier
        .check(&Evidence::new(&quote, None), &Policy::default(), at)
        .unwrap();
    let err = verifier
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), at)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::QeIdentityMismatch {
                field: "MRSIGNER",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rust_sgx_debug_quote_is_refused_for_its_future_root_crl_unless_crl_dates_are_insecurely_ignored() {
    let quote = read("rust-sgx/pcs_tests_data_quote.bin");
    let col = collateral("rust-sgx/derived_collateral_pcs_quote.dcapqvl.json");
    let at = 1_590_000_000;
    let verifier = Verifier::new();
    let err = verifier
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), at)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Crl {
                crl: "root CA CRL",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not yet valid"), "{err}");
    let relaxed = Policy {
        insecure_ignore_crl_dates: true,
        ..Policy::default()
    };
    let verdict = verifier.verify(&Evidence::new(&quote, Some(&col)), &relaxed, at);
    let v = verdict.evidence.clone().unwrap();
    assert_eq!(v.tcb.as_ref().unwrap().status, TcbStatus::SWHardeningNeeded);
    assert_eq!(hex::encode_upper(v.pck.fmspc), "00906EA10000");
    assert!(v.debug());
    // SWHardeningNeeded is accepted by default, but the DEBUG attribute is not.
    assert!(!verdict.accepted);
    assert_eq!(verdict.reasons.len(), 1, "{:?}", verdict.reasons);
    assert!(verdict.reasons[0].contains("DEBUG"));
}

#[test]
fn quote_embedding_the_older_intel_root_is_accepted_by_key_and_refused_by_exact_certificate() {
    let quote = read("rust-sgx/dcap-ql_tests_quote_pck_cert_chain.bin");
    let q = Quote::parse(&quote).unwrap();
    let chain = q.signature.certification.pck_chain_der().unwrap();
    let root = chain.last().unwrap();
    assert_ne!(
        root.as_ref(),
        arca_attest::INTEL_SGX_ROOT_CA_DER,
        "the embedded root is the older certificate"
    );
    let at = 1_590_000_000;
    let verifier = Verifier::new();
    let v = verifier
        .check(&Evidence::new(&quote, None), &Policy::default(), at)
        .unwrap();
    assert_eq!(v.anchor, AnchorKind::Intel);
    assert!(v.tcb.is_none());
    let verdict = verifier.verify(&Evidence::new(&quote, None), &Policy::default(), at);
    assert!(!verdict.accepted);
    assert!(verdict.reasons.iter().any(|r| r.contains("TCB status unknown")));
    let exact = Policy {
        require_exact_root_certificate: true,
        ..Policy::default()
    };
    let err = verifier
        .check(&Evidence::new(&quote, None), &exact, at)
        .unwrap_err();
    assert!(matches!(err, Error::RootCertificateMismatch { .. }), "{err}");
}

#[test]
fn quote_with_encrypted_ppid_parses_but_needs_an_out_of_band_pck_certificate() {
    let quote = read("rust-sgx/dcap-ql_tests_quote_raw_tcb.bin");
    assert_eq!(Quote::parse(&quote).unwrap().signature.certification.kind(), 3);
    let err = Verifier::new()
        .check(&Evidence::new(&quote, None), &Policy::default(), IN_WINDOW)
        .unwrap_err();
    assert!(
        matches!(err, Error::PckCertificateRequired { cert_type: 3 }),
        "{err}"
    );
}

#[test]
fn collateral_for_another_platform_is_refused() {
    let quote = read("dcap-qvl/sample_sgx_quote");
    let col = collateral("dcap-qvl/sample_tdx_quote_collateral.json");
    let err = Verifier::new()
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), IN_WINDOW)
        .unwrap_err();
    assert!(matches!(err, Error::CollateralMismatch { .. }), "{err}");
}

#[test]
fn a_changed_character_in_tcb_info_is_refused_as_a_bad_signature() {
    let quote = read("dcap-qvl/sample_sgx_quote");
    let col = collateral("dcap-qvl/sample_sgx_quote_collateral.json");
    let tampered = col.with_tcb_info(col.tcb_info().replacen("\"svn\":11", "\"svn\":12", 1));
    assert_ne!(tampered.tcb_info(), col.tcb_info());
    let err = Verifier::new()
        .check(
            &Evidence::new(&quote, Some(&tampered)),
            &Policy::default(),
            IN_WINDOW,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::CollateralSignature { what: "TCB info" }),
        "{err}"
    );
}

#[test]
fn a_wrong_tcb_info_issuer_chain_is_refused_as_an_untrusted_chain() {
    let quote = read("dcap-qvl/sample_sgx_quote");
    let col = collateral("dcap-qvl/sample_sgx_quote_collateral.json");
    // Intel's test chain: valid certificates, but not under the production root.
    let chain = String::from_utf8(read("intel-qvl-sampledata/tcbSignChain.pem")).unwrap();
    let tampered = col.with_tcb_info_issuer_chain(chain);
    let err = Verifier::new()
        .check(
            &Evidence::new(&quote, Some(&tampered)),
            &Policy::default(),
            IN_WINDOW,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UntrustedChain { .. } | Error::CertificateValidity { .. }
        ),
        "{err}"
    );
    // The PCK CRL issuer chain in place of the TCB signing chain: anchored, but the wrong key.
    let tampered = col.with_tcb_info_issuer_chain(col.pck_crl_issuer_chain().to_string());
    let err = Verifier::new()
        .check(
            &Evidence::new(&quote, Some(&tampered)),
            &Policy::default(),
            IN_WINDOW,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::CollateralSignature { what: "TCB info" }),
        "{err}"
    );
}

#[test]
fn warm_verification_gives_the_same_result_as_cold() {
    for (q, c) in [
        (
            "dcap-qvl/sample_sgx_quote",
            "dcap-qvl/sample_sgx_quote_collateral.json",
        ),
        (
            "dcap-qvl/sample_tdx_quote",
            "dcap-qvl/sample_tdx_quote_collateral.json",
        ),
    ] {
        let quote = read(q);
        let col = collateral(c);
        let cold = Verifier::new().without_cache();
        let warm = Verifier::new();
        let e = Evidence::new(&quote, Some(&col));
        let a = cold.check(&e, &Policy::default(), IN_WINDOW).unwrap();
        let b = warm.check(&e, &Policy::default(), IN_WINDOW).unwrap();
        let c2 = warm.check(&e, &Policy::default(), IN_WINDOW).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c2);
        // The warm cache does not outlive the collateral's window.
        assert!(warm.check(&e, &Policy::default(), 1_760_000_000).is_err());
    }
}
