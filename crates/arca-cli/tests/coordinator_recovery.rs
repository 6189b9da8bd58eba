//! Recovery over the wire: a real `arca coordinator` process whose sealed state cannot be opened any more
//! (its sealing key is lost) starts in recovery mode, serves a temporary self-issued RA-TLS certificate,
//! answers status (recovery) and refuses everything else with a clear reason; `arca recover` (which checks
//! the coordinator's identity first) brings it back with one key, or with two of three under a 2-of-3
//! threshold; afterwards the root, manifest, secrets and audit chain are what they were.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/launcher.rs"]
mod support;
use cli::{arca, free_port, json, Running};

fn fixture(name: &str) -> PathBuf {
    arca_testkit::testdata().join("coordinator").join(name)
}

fn ok(out: Output) -> Output {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    out
}

/// A test deployment: a data directory, fixed ports, and the files clients keep.
struct Deployment {
    dir: tempfile::TempDir,
    client_port: u16,
    mesh_port: u16,
}

impl Deployment {
    fn new() -> Deployment {
        Deployment {
            dir: tempfile::tempdir().unwrap(),
            client_port: free_port(),
            mesh_port: free_port(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn addr(&self) -> String {
        format!("localhost:{}", self.client_port)
    }

    /// Starts the coordinator and waits until its client API accepts connections.
    fn start(&self) -> Running {
        let child = arca()
            .args([
                "coordinator",
                "--allow-simulation",
                "--metrics-addr",
                "off",
                "--data-dir",
            ])
            .arg(self.data())
            .args(["--mesh-addr", &format!("127.0.0.1:{}", self.mesh_port)])
            .args(["--client-addr", &format!("127.0.0.1:{}", self.client_port)])
            .stderr(std::fs::File::create(self.path("coordinator.log")).unwrap())
            .spawn()
            .unwrap();
        let running = Running(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the coordinator did not start: {}",
                std::fs::read_to_string(self.path("coordinator.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        running
    }

    /// `--sim-root … --collateral …` of the simulation PKI the coordinator created.
    fn sim_trust(&self) -> Vec<String> {
        let pki = self.data().join("sim-pki");
        vec![
            "--allow-simulation".into(),
            "--sim-root".into(),
            pki.join("root-ca.pem").display().to_string(),
            "--collateral".into(),
            pki.display().to_string(),
        ]
    }

    /// The coordinator's identity policy, as `arca coordinator identity` prints it, saved to a file.
    fn policy(&self) -> PathBuf {
        let id = json(&ok(arca()
            .args(["--output", "json", "coordinator", "identity"])
            .output()
            .unwrap()));
        let path = self.path("coordinator-policy.toml");
        std::fs::write(&path, id["policy_toml"].as_str().unwrap()).unwrap();
        path
    }

    /// `arca verify coordinator`, pinning the identity of `arca coordinator identity --pin-enclave`.
    fn verify(&self, extra: &[&str]) -> Output {
        let id = json(&ok(arca()
            .args(["--output", "json", "coordinator", "identity"])
            .output()
            .unwrap()));
        arca()
            .args(["--output", "json", "verify", "coordinator", &self.addr()])
            .args(self.sim_trust())
            .args(["--mrenclave", id["mrenclave"].as_str().unwrap(), "--save"])
            .arg(self.path("root.pem"))
            .args(extra)
            .output()
            .unwrap()
    }

    /// A client command trusting the saved root, as alice.
    fn as_alice(&self, args: &[&str]) -> Output {
        arca()
            .args(["--output", "json"])
            .args(args)
            .args(["-c", &self.addr(), "--root"])
            .arg(self.path("root.pem"))
            .arg("--cert")
            .arg(fixture("alice.crt"))
            .arg("--key")
            .arg(fixture("alice.key"))
            .output()
            .unwrap()
    }

    fn status_attested(&self, policy: &Path) -> Output {
        arca()
            .args(["--output", "json", "status", "--attest", "-c", &self.addr()])
            .args(self.sim_trust())
            .arg("--coordinator-policy")
            .arg(policy)
            .output()
            .unwrap()
    }

    fn recover(&self, key: &str, name: &str, policy: &Path) -> Output {
        arca()
            .args(["--output", "json", "recover", "-c", &self.addr(), "--key"])
            .arg(fixture(key))
            .arg("--secrets")
            .arg(self.path("recovery.json"))
            .args(["--name", name])
            .args(self.sim_trust())
            .arg("--coordinator-policy")
            .arg(policy)
            .output()
            .unwrap()
    }
}

/// A manifest with a shared and a user-defined secret, alice allowed to read and write them, and recovery keys.
fn manifest(recovery_keys: &[&str], threshold: u64) -> serde_json::Value {
    let mut keys = serde_json::Map::new();
    for (i, k) in recovery_keys.iter().enumerate() {
        keys.insert(
            format!("key{}", i + 1),
            serde_json::json!(std::fs::read_to_string(fixture(k)).unwrap()),
        );
    }
    serde_json::json!({
        "Packages": {"app": {"SignerID": "11".repeat(32), "ProductID": 7, "SecurityVersion": 2}},
        "Marbles": {"server": {"Package": "app", "Parameters": {"Env": {"K": "{{ hex .Secrets.shared }}"}}}},
        "Secrets": {
            "shared": {"Type": "symmetric-key", "Size": 256, "Shared": true},
            "apiKey": {"Type": "plain", "UserDefined": true}
        },
        "Users": {"alice": {
            "Certificate": std::fs::read_to_string(fixture("alice.crt")).unwrap(),
            "Roles": ["secrets"]
        }},
        "Roles": {"secrets": {
            "ResourceType": "Secrets", "ResourceNames": ["apiKey", "shared"], "Actions": ["ReadSecret", "WriteSecret"]
        }},
        "RecoveryKeys": keys,
        "Config": {"RecoveryThreshold": threshold}
    })
}

/// What must survive recovery.
#[derive(Debug, PartialEq)]
struct Snapshot {
    root_fingerprint: String,
    manifest_fingerprint: String,
    secrets: serde_json::Value,
}

fn snapshot(d: &Deployment) -> Snapshot {
    let v =
        json(&ok(d.verify(&[
            "--manifest",
            d.path("manifest.json").to_str().unwrap(),
        ])));
    let secrets = json(&ok(d.as_alice(&["secret", "get", "shared", "apiKey"])));
    Snapshot {
        root_fingerprint: v["root_fingerprint"].as_str().unwrap().to_owned(),
        manifest_fingerprint: v["manifest_fingerprint"].as_str().unwrap().to_owned(),
        secrets: secrets["secrets"].clone(),
    }
}

/// Sets up a deployment with `keys` (threshold `threshold`), records its state, stops it and loses its
/// sealing key; returns the state recorded and the audit entries saved before.
fn seal_then_lose_the_key(d: &Deployment, keys: &[&str], threshold: u64) -> (Snapshot, u64) {
    let running = d.start();
    ok(d.verify(&[]));
    std::fs::write(d.path("manifest.json"), manifest(keys, threshold).to_string()).unwrap();
    ok(arca()
        .args(["manifest", "set"])
        .arg(d.path("manifest.json"))
        .arg("--recovery-out")
        .arg(d.path("recovery.json"))
        .args(["-c", &d.addr(), "--root"])
        .arg(d.path("root.pem"))
        .output()
        .unwrap());
    std::fs::write(d.path("api.key"), b"the user's api key").unwrap();
    ok(d.as_alice(&[
        "secret",
        "set",
        "apiKey",
        "--from-file",
        d.path("api.key").to_str().unwrap(),
    ]));
    let before = snapshot(d);
    let api_key = before.secrets["apiKey"].to_string();
    assert!(api_key.contains("dGhlIHVzZXIncyBhcGkga2V5"), "{api_key}"); // base64 of the value set
    assert!(!before.secrets["shared"].is_null());
    let audit = json(&ok(arca()
        .args(["--output", "json", "audit", "verify", "--save"])
        .arg(d.path("audit-before.json"))
        .args(["-c", &d.addr(), "--root"])
        .arg(d.path("root.pem"))
        .output()
        .unwrap()));
    assert_eq!(audit["valid"], true, "{audit}");
    drop(running); // kill -9
    std::fs::remove_file(d.data().join("seal.key")).unwrap();
    (before, audit["entries"].as_u64().unwrap())
}

/// After recovery: the saved root trusts the coordinator again, the state is intact, the audit log extends
/// the copy saved before with a `recovery` entry.
fn assert_intact(d: &Deployment, before: &Snapshot, entries_before: u64) {
    let s = json(&ok(arca()
        .args(["--output", "json", "status", "-c", &d.addr(), "--root"])
        .arg(d.path("root.pem"))
        .output()
        .unwrap()));
    assert_eq!(s["status"], 3, "{s}");
    assert_eq!(&snapshot(d), before);
    let audit = json(&ok(arca()
        .args(["--output", "json", "audit", "verify"])
        .arg(d.path("audit-before.json"))
        .args(["-c", &d.addr(), "--root"])
        .arg(d.path("root.pem"))
        .output()
        .unwrap()));
    assert_eq!(audit["valid"], true, "{audit}");
    assert!(
        audit["live_entries"].as_u64().unwrap() > entries_before,
        "{audit}"
    );
    let live = arca()
        .args(["--output", "json", "audit", "verify", "--save"])
        .arg(d.path("audit-after.json"))
        .args(["-c", &d.addr(), "--root"])
        .arg(d.path("root.pem"))
        .output()
        .unwrap();
    assert_eq!(json(&ok(live))["valid"], true);
    let saved = std::fs::read_to_string(d.path("audit-after.json")).unwrap();
    assert!(saved.contains("recovery"), "{saved}");
}

/// In recovery mode: status says so (only through attestation: the saved root cannot verify a temporary
/// certificate, and the error says why), everything else is refused with the reason.
fn assert_in_recovery(d: &Deployment, policy: &Path) {
    let out = arca()
        .args(["status", "-c", &d.addr(), "--root"])
        .arg(d.path("root.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recovery mode") && err.contains("--attest"), "{err}");

    let s = json(&ok(d.status_attested(policy)));
    assert_eq!(s["status"], 1, "{s}");
    assert!(s["message"].as_str().unwrap().contains("recovery"), "{s}");

    // Other endpoints answer with the reason (here the quote, fetched by `arca verify coordinator`).
    let out = d.verify(&[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recovery mode"), "{err}");
}

#[test]
fn a_coordinator_whose_sealing_key_is_lost_serves_in_recovery_mode_and_one_key_recovers_it() {
    if support::launcher().is_none() {
        return;
    }
    let d = Deployment::new();
    let (before, entries) = seal_then_lose_the_key(&d, &["recovery1.pub"], 0);
    let _running = d.start();
    let policy = d.policy();
    assert_in_recovery(&d, &policy);

    // The secret is sent only to the pinned identity: another MRENCLAVE refuses the TLS handshake.
    let wrong = d.path("wrong-policy.toml");
    std::fs::write(
        &wrong,
        format!("mrenclave = \"{}\"\nallow_simulation = true\n", "ab".repeat(32)),
    )
    .unwrap();
    let out = d.recover("recovery1.key", "key1", &wrong);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("mrenclave"),
        "{out:?}"
    );
    assert_eq!(json(&ok(d.status_attested(&policy)))["status"], 1);

    // Without an identity to pin, `arca recover` refuses to send anything.
    let out = arca()
        .args(["recover", "-c", &d.addr(), "--key"])
        .arg(fixture("recovery1.key"))
        .arg("--secrets")
        .arg(d.path("recovery.json"))
        .args(["--name", "key1"])
        .args(d.sim_trust())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("pin the coordinator's identity"));

    let r = json(&ok(d.recover("recovery1.key", "key1", &policy)));
    assert_eq!(r["remaining"], 0, "{r}");
    assert_intact(&d, &before, entries);
}

#[test]
fn under_a_two_of_three_threshold_one_secret_is_not_enough_and_two_recover() {
    if support::launcher().is_none() {
        return;
    }
    let d = Deployment::new();
    let (before, entries) =
        seal_then_lose_the_key(&d, &["recovery1.pub", "recovery2.pub", "recovery3.pub"], 2);
    let _running = d.start();
    let policy = d.policy();
    assert_in_recovery(&d, &policy);

    let r = json(&ok(d.recover("recovery3.key", "key3", &policy)));
    assert_eq!(r["remaining"], 1, "{r}");
    assert_eq!(json(&ok(d.status_attested(&policy)))["status"], 1);
    // A secret decrypted with the wrong key (key1's ciphertext with key2's private key) is refused.
    let out = d.recover("recovery2.key", "key1", &policy);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(json(&ok(d.status_attested(&policy)))["status"], 1);

    let r = json(&ok(d.recover("recovery1.key", "key1", &policy)));
    assert_eq!(r["remaining"], 0, "{r}");
    assert_intact(&d, &before, entries);
}
