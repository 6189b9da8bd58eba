//! `arca coordinator` and `arca verify coordinator` from the command line: a real coordinator process in
//! simulation, verified by its quote (identity, simulation, binding to its root), then used with the saved
//! root; metrics on their own port; refusals with exit code 3.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/launcher.rs"]
mod support;
use cli::{arca, free_port, json, Running};

/// MRSIGNER of the public development key keys/arca-dev-coordinator.pem (docs/enclave-layout.md).
const DEV_MRSIGNER: &str = "6b4d582c0f9f6318cd09e2158918c3da2a1e92ba14b991b5ab596432699d111f";

fn verify(client: &str, pki: &Path, extra: &[&str]) -> Output {
    arca()
        .args([
            "--output",
            "json",
            "verify",
            "coordinator",
            client,
            "--collateral",
        ])
        .arg(pki)
        .arg("--sim-root")
        .arg(pki.join("root-ca.pem"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_coordinator_refuses_to_start_without_allow_simulation_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = arca()
        .arg("coordinator")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allow-simulation"),
        "{out:?}"
    );
}

#[test]
fn a_client_verifies_a_running_coordinator_saves_its_root_and_uses_it() {
    if support::launcher().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mesh, client, metrics) = (free_port(), free_port(), free_port());
    let child = arca()
        .args(["coordinator", "--allow-simulation", "--data-dir"])
        .arg(&data)
        .args(["--mesh-addr", &format!("127.0.0.1:{mesh}")])
        .args(["--client-addr", &format!("127.0.0.1:{client}")])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", client)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the coordinator did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let addr = format!("localhost:{client}");
    let pki = data.join("sim-pki");

    // Its identity, as `arca coordinator identity` prints it (the same executable: the same development identity).
    let id = json(
        &arca()
            .args(["--output", "json", "coordinator", "identity"])
            .output()
            .unwrap(),
    );
    let mrenclave = id["mrenclave"].as_str().unwrap().to_owned();
    assert!(id["policy_toml"].as_str().unwrap().contains("isvprodid = 49153"));

    // Simulated quotes are refused unless the client allows simulation.
    let out = verify(&addr, &pki, &["--mrenclave", &mrenclave]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v = json(&out);
    assert!(v["reasons"].to_string().contains("simulat"), "{v}");
    assert!(!v["reasons"].to_string().contains("development key"), "{v}");
    assert!(v["saved"].is_null());

    // The policy `arca coordinator identity` prints verifies it (simulation allowed, development noted).
    let policy = dir.path().join("coordinator-policy.toml");
    std::fs::write(&policy, id["policy_toml"].as_str().unwrap()).unwrap();
    let out = verify(
        &addr,
        &pki,
        &[
            "--allow-simulation",
            "--coordinator-policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert!(v["notes"].to_string().contains("development key"), "{v}");
    assert_eq!(v["mrsigner"], DEV_MRSIGNER);
    // A policy pinning another signer refuses it.
    std::fs::write(
        &policy,
        format!(
            "mrsigner = \"{}\"\nisvprodid = 49153\nmin_isvsvn = 1\nallow_simulation = true\n",
            "cd".repeat(32)
        ),
    )
    .unwrap();
    let out = verify(
        &addr,
        &pki,
        &[
            "--allow-simulation",
            "--coordinator-policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(json(&out)["reasons"]
        .to_string()
        .to_lowercase()
        .contains("mrsigner"));

    // A wrong identity is refused.
    let wrong = "ab".repeat(32);
    let out = verify(&addr, &pki, &["--allow-simulation", "--mrenclave", &wrong]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(json(&out)["reasons"]
        .to_string()
        .to_lowercase()
        .contains("mrenclave"));

    // The right identity verifies, and the root is saved.
    let root = dir.path().join("root.pem");
    let root_arg = root.to_str().unwrap();
    let out = verify(
        &addr,
        &pki,
        &[
            "--allow-simulation",
            "--mrenclave",
            &mrenclave,
            "--save",
            root_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["simulated"], true);
    assert_eq!(v["mrenclave"], mrenclave.as_str());
    assert!(std::fs::read_to_string(&root)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    // With the saved root: set a manifest, read the status.
    let manifest = dir.path().join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "Packages": {"app": {"SignerID": "11".repeat(32), "ProductID": 1, "SecurityVersion": 1}},
            "Marbles": {"m": {"Package": "app"}}
        })
        .to_string(),
    )
    .unwrap();
    let out = arca()
        .args(["manifest", "set"])
        .arg(&manifest)
        .args(["-c", &addr, "--root", root_arg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = json(
        &arca()
            .args(["--output", "json", "status", "-c", &addr, "--root", root_arg])
            .output()
            .unwrap(),
    );
    assert_eq!(s["status"], 3);

    // The expected manifest verifies; another one is refused.
    let m = manifest.to_str().unwrap();
    let out = verify(
        &addr,
        &pki,
        &["--allow-simulation", "--mrenclave", &mrenclave, "--manifest", m],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = verify(
        &addr,
        &pki,
        &["--allow-simulation", "--manifest-fingerprint", &"00".repeat(32)],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(json(&out)["reasons"].to_string().contains("not the expected"));

    // Metrics are plain HTTP on their own port.
    let mut tcp = TcpStream::connect(("127.0.0.1", metrics)).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("arca_coordinator_"), "{body}");
}

#[test]
fn a_signed_coordinator_has_the_operators_identity_and_a_sigstruct_for_another_build_is_refused() {
    if support::launcher().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("operator.pem");
    assert!(arca()
        .arg("keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap()
        .status
        .success());
    let sig = dir.path().join("coordinator.sig");
    let out = arca()
        .args([
            "--output",
            "json",
            "coordinator",
            "sign",
            "--date",
            "2026-11-28",
            "--isvsvn",
            "3",
            "--key",
        ])
        .arg(&key)
        .arg("-o")
        .arg(&sig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let signed = json(&out);
    let dev = json(
        &arca()
            .args(["--output", "json", "coordinator", "identity"])
            .output()
            .unwrap(),
    );
    assert_ne!(
        signed["mrenclave"], dev["mrenclave"],
        "the ISVSVN is in the coordinator's enclave manifest, so it is measured"
    );

    let id = json(
        &arca()
            .args(["--output", "json", "coordinator", "identity", "--sigstruct"])
            .arg(&sig)
            .output()
            .unwrap(),
    );
    assert_eq!(id["mrsigner"], signed["mrsigner"]);
    assert_eq!(id["mrenclave"], signed["mrenclave"]);
    assert_ne!(id["mrsigner"], dev["mrsigner"]);
    assert_eq!(id["isvsvn"], 3);
    assert_eq!(id["development"], false);
    let toml = id["policy_toml"].as_str().unwrap();
    assert!(
        toml.contains(&format!(
            "mrsigner = \"{}\"",
            signed["mrsigner"].as_str().unwrap()
        )),
        "{toml}"
    );
    assert!(toml.contains("min_isvsvn = 3"), "{toml}");

    // A SIGSTRUCT over another enclave is refused, naming both measurements.
    let other = dir.path().join("other.sig");
    let out = arca()
        .args([
            "sgx",
            "sign",
            "--date",
            "2026-11-28",
            "--isvprodid",
            "49153",
            "--enclave-hash",
            &"00".repeat(32),
            "--key",
        ])
        .arg(&key)
        .arg("-o")
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = arca()
        .args(["coordinator", "identity", "--sigstruct"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&"00".repeat(32)) && err.contains("measures"),
        "{err}"
    );

    // The operator-signed coordinator runs with that identity: its policy verifies it, the development
    // policy does not.
    let data = dir.path().join("data");
    let client = free_port();
    let child = arca()
        .args([
            "coordinator",
            "--allow-simulation",
            "--metrics-addr",
            "off",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--sigstruct")
        .arg(&sig)
        .args(["--mesh-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--client-addr", &format!("127.0.0.1:{client}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", client)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the coordinator did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let addr = format!("localhost:{client}");
    let pki = data.join("sim-pki");
    let policy = dir.path().join("operator-policy.toml");
    std::fs::write(&policy, toml).unwrap();
    let out = verify(
        &addr,
        &pki,
        &[
            "--allow-simulation",
            "--coordinator-policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["mrsigner"], signed["mrsigner"]);
    assert_eq!(v["mrenclave"], signed["mrenclave"]);
    assert_eq!(v["isv_svn"], 3);
    std::fs::write(&policy, dev["policy_toml"].as_str().unwrap()).unwrap();
    let out = verify(
        &addr,
        &pki,
        &[
            "--allow-simulation",
            "--coordinator-policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn the_coordinators_identity_is_its_arca_enclave_signed_with_the_development_key_by_default() {
    let Some(launcher) = support::launcher() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let enclave = dir.path().join("enclave");
    let out = arca()
        .args(["--output", "json", "coordinator", "identity", "--enclave-dir"])
        .arg(&enclave)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ONLY in simulation"));
    let id = json(&out);

    // Recomputed independently: the trusted list binds this executable, the manifest binds the list, and
    // MRENCLAVE is the identity function over the launcher and the manifest bytes.
    use sha2::Digest as _;
    let exe = std::fs::read(env!("CARGO_BIN_EXE_arca")).unwrap();
    let list = std::fs::read_to_string(enclave.join("trusted.list")).unwrap();
    assert_eq!(
        list,
        format!("{}  /arca/coordinator\n", hex::encode(sha2::Sha256::digest(&exe)))
    );
    let manifest = std::fs::read(enclave.join("enclave.toml")).unwrap();
    let m = arca_enclave::EnclaveManifest::from_toml(&manifest).unwrap();
    assert_eq!(
        m.files.trusted_list_sha256,
        hex::encode(sha2::Sha256::digest(list.as_bytes()))
    );
    assert_eq!(m.enclave.isvprodid, 0xC001);
    assert!(!m.enclave.debug);
    let expected = arca_enclave::mrenclave(&std::fs::read(&launcher).unwrap(), &manifest).unwrap();
    assert_eq!(id["mrenclave"], hex::encode(expected.as_bytes()));

    // Signed with the development key: exactly the policy images converted without --coordinator-policy pin.
    assert_eq!(id["mrsigner"], DEV_MRSIGNER);
    assert_eq!(id["development"], true);
    let policy = arca_enclave::CoordinatorPolicy::from_toml(id["policy_toml"].as_str().unwrap()).unwrap();
    assert_eq!(policy, arca_enclave::CoordinatorPolicy::development());

    // A development signature never makes a production policy.
    let out = arca()
        .args(["coordinator", "identity", "--production"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("development key"));

    // Another launcher is another enclave.
    let other = support::static_elf("other-launcher", "return 1;").unwrap();
    let id2 = json(
        &arca()
            .args(["--output", "json", "coordinator", "identity", "--launcher"])
            .arg(&other)
            .output()
            .unwrap(),
    );
    assert_ne!(id2["mrenclave"], id["mrenclave"]);
    assert_eq!(id2["mrsigner"], DEV_MRSIGNER);

    // Without a launcher there is no identity, and the error says what to give.
    let out = Command::new(env!("CARGO_BIN_EXE_arca"))
        .env_remove("ARCA_LAUNCHER")
        .args(["coordinator", "identity"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--launcher"),
        "{out:?}"
    );
}
