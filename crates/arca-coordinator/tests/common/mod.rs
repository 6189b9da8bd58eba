//! Shared helpers of the coordinator's integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use arca_coordinator::{Coordinator, Enclave, FileStore, Options, SimKeySealer};
use serde_json::{json, Value};

pub const SIGNER: [u8; 32] = {
    // The sample manifest's SignerID: 1f1e1d…00.
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = 31 - i as u8;
        i += 1;
    }
    s
};

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(arca_testkit::testdata().join("coordinator").join(name)).unwrap()
}

pub fn cert_der(name: &str) -> Vec<u8> {
    let pem = fixture(name);
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    block.contents
}

/// MarbleRun's sample manifest with its placeholder user certificates replaced by real ones.
pub fn sample_manifest() -> Value {
    let path = arca_testkit::testdata().join("marblerun/sample-manifest.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for (user, file) in [("Alice", "alice.crt"), ("Bob", "bob.crt"), ("Admin", "admin.crt")] {
        v["Users"][user]["Certificate"] = json!(fixture(file));
    }
    v
}

/// A small manifest: one package (SignerID, ProductID 7, SVN 2), a marble type with a shared and a per-marble
/// key, templates in Files and Env, users and recovery keys.
pub fn small_manifest(max_activations: u64, recovery_keys: &[&str], recovery_threshold: u64) -> Value {
    let mut keys = serde_json::Map::new();
    for (i, k) in recovery_keys.iter().enumerate() {
        keys.insert(format!("key{}", i + 1), json!(fixture(k)));
    }
    json!({
        "Packages": {"app": {"SignerID": hex::encode(SIGNER), "ProductID": 7, "SecurityVersion": 2}},
        "Marbles": {
            "server": {
                "Package": "app",
                "MaxActivations": max_activations,
                "Parameters": {
                    "Files": {
                        "/secrets/shared.key": "{{ raw .Secrets.shared }}",
                        "/secrets/own.key": "{{ hex .Secrets.own }}",
                        "/tls/cert.pem": "{{ pem .MarbleRun.MarbleCert.Cert }}",
                        "/tls/key.pem": "{{ pem .MarbleRun.MarbleCert.Private }}",
                        "/tls/ca.pem": "{{ pem .MarbleRun.RootCA.Cert }}"
                    },
                    "Env": {"SHARED_HEX": "{{ hex .Secrets.shared }}", "API_KEY": "{{ string .Secrets.apiKey }}"},
                    "Argv": ["server", "--serve"]
                }
            },
            "client": {
                "Package": "app",
                "Parameters": {"Env": {"SHARED_HEX": "{{ hex .Secrets.shared }}"}}
            }
        },
        "Secrets": {
            "shared": {"Type": "symmetric-key", "Size": 256, "Shared": true},
            "own": {"Type": "symmetric-key", "Size": 128},
            "apiKey": {"Type": "plain", "UserDefined": true}
        },
        "Users": {
            "alice": {"Certificate": fixture("alice.crt"), "Roles": ["updater", "secrets"]},
            "bob": {"Certificate": fixture("bob.crt"), "Roles": ["reader"]}
        },
        "Roles": {
            "updater": {"ResourceType": "Packages", "ResourceNames": ["app"], "Actions": ["UpdateSecurityVersion"]},
            "secrets": {"ResourceType": "Secrets", "ResourceNames": ["apiKey", "shared"], "Actions": ["ReadSecret", "WriteSecret"]},
            "reader": {"ResourceType": "Secrets", "ResourceNames": ["shared"], "Actions": ["ReadSecret"]}
        },
        "RecoveryKeys": keys,
        "Config": {"RecoveryThreshold": recovery_threshold}
    })
}

pub fn open(dir: &Path, allow_simulation: bool) -> Coordinator {
    let store = Arc::new(FileStore::open(dir).unwrap());
    let sealer = Arc::new(SimKeySealer::from_file(&dir.join("seal.key")).unwrap());
    Coordinator::open(store, sealer, Options { allow_simulation }).unwrap()
}

/// The identity a verified quote of package `app` would report.
pub fn app_enclave(svn: u16) -> Enclave {
    Enclave {
        mrenclave: [0xaa; 32],
        mrsigner: SIGNER,
        isv_prod_id: 7,
        isv_svn: svn,
        debug: false,
        report_data: [0; 64],
        tcb_status: "UpToDate".into(),
        advisories: vec![],
        simulated: true,
    }
}

pub fn uuid(i: u32) -> String {
    format!("{i:08x}-0000-4000-8000-000000000000")
}
