//! `arca coordinator` and `arca verify coordinator` from the command line: a real coordinator process in
//! simulation, verified by its quote (identity, simulation, binding to its root), then used with the saved
//! root; metrics on their own port; refusals with exit code 3.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

fn arca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arca"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

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
    assert!(v["saved"].is_null());

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
    assert_eq!(
        signed["mrenclave"], dev["mrenclave"],
        "the SIGSTRUCT signs this executable's MRENCLAVE"
    );

    let id = json(
        &arca()
            .args(["--output", "json", "coordinator", "identity", "--sigstruct"])
            .arg(&sig)
            .output()
            .unwrap(),
    );
    assert_eq!(id["mrsigner"], signed["mrsigner"]);
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
        err.contains(&"00".repeat(32)) && err.contains(dev["mrenclave"].as_str().unwrap()),
        "{err}"
    );
}
