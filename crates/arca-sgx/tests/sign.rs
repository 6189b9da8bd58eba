//! SIGSTRUCT signing and verification against Fortanix's signed vectors and keys made by openssl.
#![allow(clippy::unwrap_used)] // test helpers, outside #[test] functions

use arca_sgx::{Attributes, Error, MiscSelect, Mrenclave, SigningKey, Sigstruct, SigstructFields};
use rand::SeedableRng;

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(arca_testkit::vector(&format!("rust-sgx/{name}"))).unwrap()
}

fn sig1_key() -> SigningKey {
    SigningKey::from_pem(&String::from_utf8(vector("sgxs-tools_tests_data_sig1.key.pem")).unwrap()).unwrap()
}

/// The stored field values of `sig1.sigstruct.bin`, as listed in VECTORS.md (not read from the file).
fn sig1_fields() -> SigstructFields {
    SigstructFields {
        vendor: 0,
        date: 0x2016_0109,
        swdefined: 0,
        miscselect: MiscSelect(0),
        miscmask: 0xFFFF_FFFF,
        cet_attributes: 0,
        cet_attributes_mask: 0,
        isvfamilyid: [0; 16],
        attributes: Attributes::new(0x4, 0x3),
        attributemask: Attributes::new(0xFFFF_FFFF_FFFF_FFFD, 0xFFFF_FFFF_FFFF_FF1B),
        enclavehash: "c50673624a6cb17c1c6c2a4e6906f47a170c4629b8723781d1017ef376f1a75d"
            .parse()
            .unwrap(),
        isvextprodid: [0; 16],
        isvprodid: 0,
        isvsvn: 0,
    }
}

const TEST_ENCLAVE_SIG: &str = "sgxs-tools_src_sgx_detect_tests_test_enclave.sig";

#[test]
fn resigning_sig1_with_its_key_and_stored_fields_reproduces_the_file_byte_for_byte() {
    let signed = Sigstruct::sign(&sig1_fields(), &sig1_key()).unwrap();
    let expected = vector("sgxs-tools_tests_data_sig1.sigstruct.bin");
    assert_eq!(signed.to_bytes().as_slice(), expected.as_slice());
    assert_eq!(
        signed.mrsigner().to_string(),
        "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"
    );
    assert_eq!(sig1_key().mrsigner(), signed.mrsigner());
}

#[test]
fn test_enclave_sigstruct_verifies_and_names_its_signer_and_enclave() {
    let s = Sigstruct::parse(&vector(TEST_ENCLAVE_SIG)).unwrap();
    s.verify().unwrap();
    let mrenclave: Mrenclave = "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc"
        .parse()
        .unwrap();
    s.verify_enclave(&mrenclave).unwrap();
    assert_eq!(
        s.mrsigner().to_string(),
        "fb4bab3d6036ac1d730fa83d7366df1dd2dfeac194ef335d6854d8a6c6475542"
    );
}

#[test]
fn verify_enclave_refuses_another_enclave_hash() {
    let s = Sigstruct::parse(&vector(TEST_ENCLAVE_SIG)).unwrap();
    let other = Mrenclave::new([7; 32]);
    let err = s.verify_enclave(&other).unwrap_err();
    assert!(err.is_verification_failure());
    assert!(matches!(err, Error::EnclaveHashMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("expected 0707"), "{err}");
}

#[test]
fn flipping_any_byte_of_the_signed_regions_makes_verification_fail() {
    for name in [TEST_ENCLAVE_SIG, "sgxs-tools_tests_data_sig1.sigstruct.bin"] {
        let good = vector(name);
        Sigstruct::parse(&good).unwrap().verify().unwrap();
        let mut refused_by_signature = 0;
        for offset in (0..128).chain(900..1028) {
            for bit in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad[offset] ^= bit;
                // Constant and reserved bytes are refused when parsing; every other byte by the signature.
                match Sigstruct::parse(&bad) {
                    Err(Error::SigstructHeader { .. } | Error::ReservedNotZero { .. }) => {}
                    Err(other) => panic!("{name} byte {offset}: unexpected parse error {other}"),
                    Ok(s) => {
                        let err = s.verify().unwrap_err();
                        assert!(
                            matches!(err, Error::BadSignature { .. }),
                            "{name} byte {offset}: {err:?}"
                        );
                        assert!(err.is_verification_failure());
                        refused_by_signature += 1;
                    }
                }
            }
        }
        // VENDOR, DATE, SWDEFINED (12 bytes) and [900..1028] less its 18 reserved bytes (110), two flips each.
        assert_eq!(refused_by_signature, 2 * (12 + 110), "{name}");
    }
}

#[test]
fn flipping_the_modulus_or_signature_makes_verification_fail() {
    let good = vector(TEST_ENCLAVE_SIG);
    for offset in [128, 300, 511, 516, 700, 899] {
        let mut bad = good.clone();
        bad[offset] ^= 1;
        let err = Sigstruct::parse(&bad).unwrap().verify().unwrap_err();
        assert!(err.is_verification_failure(), "byte {offset}: {err:?}");
    }
}

#[test]
fn bad_q1_or_q2_is_refused_naming_the_field() {
    let good = vector(TEST_ENCLAVE_SIG);
    for (offset, field) in [(1040, "Q1"), (1423, "Q1"), (1424, "Q2"), (1807, "Q2")] {
        let mut bad = good.clone();
        bad[offset] ^= 0x10;
        let err = Sigstruct::parse(&bad).unwrap().verify().unwrap_err();
        assert!(
            matches!(err, Error::BadQ { field: f } if f == field),
            "byte {offset}: {err:?}"
        );
        assert!(err.to_string().contains(field));
    }
}

#[test]
fn a_non_bcd_date_is_signed_and_verifies() {
    let mut fields = sig1_fields();
    fields.date = 0x2016_13ff; // month 13, day "ff": what some real signers write
    let s = Sigstruct::sign(&fields, &sig1_key()).unwrap();
    let reparsed = Sigstruct::parse(&s.to_bytes()).unwrap();
    reparsed.verify().unwrap();
    assert_eq!(reparsed.fields.date, 0x2016_13ff);
    assert_eq!(reparsed.fields.date_ymd(), None, "not a calendar date: shown raw");
}

#[test]
fn openssl_genrsa_keys_load_in_pkcs1_and_pkcs8() {
    // The repository's development coordinator key (PKCS#8, written by `openssl genrsa -3 3072`).
    let pem =
        std::fs::read_to_string(arca_testkit::testdata().join("../keys/arca-dev-coordinator.pem")).unwrap();
    assert!(pem.contains("BEGIN PRIVATE KEY"));
    let dev = SigningKey::from_pem(&pem).unwrap();
    // Fortanix's PKCS#1 key.
    let sig1 = sig1_key();
    for key in [&dev, &sig1] {
        let pkcs1 = SigningKey::from_pem(&key.to_pkcs1_pem().unwrap()).unwrap();
        let pkcs8 = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(pkcs1.mrsigner(), key.mrsigner());
        assert_eq!(pkcs8.mrsigner(), key.mrsigner());
        assert!(key
            .to_pkcs1_pem()
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    }
    assert_ne!(dev.mrsigner(), sig1.mrsigner());
}

#[test]
fn keys_that_sgx_cannot_use_are_refused_with_the_reason() {
    let Some(openssl) = arca_testkit::require_tool("openssl") else {
        return;
    };
    let genrsa = |args: &[&str]| {
        let out = std::process::Command::new(&openssl)
            .arg("genrsa")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let err = SigningKey::from_pem(&genrsa(&["2048"])).unwrap_err();
    assert!(
        err.to_string().contains("public exponent is 65537, SGX needs 3"),
        "{err}"
    );
    let err = SigningKey::from_pem(&genrsa(&["-3", "2048"])).unwrap_err();
    assert!(
        err.to_string()
            .contains("modulus has 2048 bits, SGX needs exactly 3072"),
        "{err}"
    );
    // A fresh `openssl genrsa -3 3072` key signs SIGSTRUCTs that verify.
    let key = SigningKey::from_pem(&genrsa(&["-3", "3072"])).unwrap();
    Sigstruct::sign(&sig1_fields(), &key).unwrap().verify().unwrap();

    assert!(SigningKey::from_pem("hello")
        .unwrap_err()
        .to_string()
        .contains("no PEM private key"));
    let broken = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert!(SigningKey::from_pem(broken)
        .unwrap_err()
        .to_string()
        .contains("not a valid PKCS#1"));
}

#[test]
fn generated_keys_have_exponent_3_and_sign_verifiable_sigstructs() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let key = SigningKey::generate_with(&mut rng).unwrap();
    let s = Sigstruct::sign(&sig1_fields(), &key).unwrap();
    s.verify().unwrap();
    assert_eq!(s.mrsigner(), key.mrsigner());
    let reloaded = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
    assert_eq!(Sigstruct::sign(&sig1_fields(), &reloaded).unwrap(), s);
    assert!(
        !format!("{key:?}").contains("BEGIN"),
        "Debug must not print the key"
    );
}

#[test]
fn assemble_refuses_a_signature_made_over_other_fields() {
    let key = sig1_key();
    let good = Sigstruct::sign(&sig1_fields(), &key).unwrap();
    let mut other = sig1_fields();
    other.isvsvn = 1;
    let err = Sigstruct::assemble(&other, good.modulus, good.signature).unwrap_err();
    assert!(err.is_verification_failure(), "{err:?}");
    Sigstruct::assemble(&sig1_fields(), good.modulus, good.signature).unwrap();
}
