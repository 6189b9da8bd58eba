//! The coordinator's operations through its library API: manifest, activation, secrets, users, updates,
//! durability across restarts, recovery and the audit log. (Quote verification itself is `arca-attest`'s;
//! here activations start from the identity a verified quote reports. The end-to-end tests go through it.)

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arca_coordinator::{verify_log, ActivationRequest, Error, SignedHead, Status};
use arca_protocol::api::UserSecret;
use base64::Engine as _;
use common::*;

fn req(marble_type: &str, i: u32) -> ActivationRequest {
    ActivationRequest {
        marble_type: marble_type.into(),
        uuid: uuid(i),
        dns_names: vec!["server.local".into()],
    }
}

fn raw(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

async fn set_api_key(c: &arca_coordinator::Coordinator) {
    let alice = cert_der("alice.crt");
    let v = UserSecret {
        key: Some(base64::engine::general_purpose::STANDARD.encode("s3cret")),
        ..Default::default()
    };
    c.write_secrets(Some(&alice), &BTreeMap::from([("apiKey".to_owned(), v)]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_fresh_coordinator_accepts_a_manifest_then_marbles() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    assert_eq!(c.status(), Status::AcceptingManifest);
    let m = raw(&small_manifest(0, &[], 0));
    c.set_manifest(&m, "anonymous").await.unwrap();
    assert_eq!(c.status(), Status::AcceptingMarbles);
    let info = c.manifest().unwrap();
    assert_eq!(info.raw, m);
    let (root, _) = c.ca_certs().unwrap();
    arca_coordinator::verify_root_signature(&root, &m, &info.signature).unwrap();
    assert!(matches!(
        c.set_manifest(&m, "anonymous").await,
        Err(Error::WrongState(_))
    ));
}

#[tokio::test]
async fn activation_renders_files_env_and_argv_with_shared_and_per_marble_keys() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    c.set_manifest(&raw(&small_manifest(0, &[], 0)), "anonymous")
        .await
        .unwrap();
    // apiKey is user-defined and unset: the activation says so.
    let err = c.activate(&req("server", 1), &app_enclave(2)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("user-defined secret \"apiKey\" has not been set"),
        "{err}"
    );
    set_api_key(&c).await;
    let a = c.activate(&req("server", 1), &app_enclave(2)).await.unwrap();
    let shared = c.shared_secret_bytes("shared").unwrap().unwrap();
    assert_eq!(a.files["/secrets/shared.key"], shared);
    assert_eq!(a.env["SHARED_HEX"], hex::encode(&shared).into_bytes());
    assert_eq!(a.env["API_KEY"], b"s3cret");
    assert_eq!(a.argv, ["server", "--serve"]);
    assert!(String::from_utf8(a.files["/tls/cert.pem"].clone())
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(String::from_utf8(a.files["/tls/key.pem"].clone())
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(a.env["MARBLE_PREDEFINED_ROOT_CA"], a.files["/tls/ca.pem"]);
    // Per-marble keys: stable for a UUID, different across UUIDs.
    let own1 = a.files["/secrets/own.key"].clone();
    let again = c.activate(&req("server", 1), &app_enclave(2)).await.unwrap();
    assert_eq!(again.files["/secrets/own.key"], own1);
    let other = c.activate(&req("server", 2), &app_enclave(2)).await.unwrap();
    assert_ne!(other.files["/secrets/own.key"], own1);
    assert_eq!(other.files["/secrets/shared.key"], shared);
    assert_eq!(c.activations().unwrap()["server"], 3);
}

#[tokio::test]
async fn activations_are_refused_with_clear_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), false);
    let e = c.activate(&req("client", 1), &app_enclave(2)).await.unwrap_err();
    assert!(e.to_string().contains("--allow-simulation"), "{e}");
    let mut hw = app_enclave(2);
    hw.simulated = false;
    let e = c.activate(&req("client", 1), &hw).await.unwrap_err();
    assert!(e.to_string().contains("no manifest is set"), "{e}");
    c.set_manifest(&raw(&small_manifest(0, &[], 0)), "anonymous")
        .await
        .unwrap();
    c.activate(&req("client", 1), &hw).await.unwrap();
    let refusals = [
        (
            {
                let mut e = hw.clone();
                e.mrsigner = [9; 32];
                e
            },
            "MRSIGNER",
        ),
        (
            {
                let mut e = hw.clone();
                e.isv_svn = 1;
                e
            },
            "SecurityVersion 1 is lower",
        ),
        (
            {
                let mut e = hw.clone();
                e.isv_prod_id = 8;
                e
            },
            "ProductID 8",
        ),
        (
            {
                let mut e = hw.clone();
                e.debug = true;
                e
            },
            "debug enclave refused",
        ),
        (
            {
                let mut e = hw.clone();
                e.tcb_status = "OutOfDate".into();
                e
            },
            "TCB status OutOfDate",
        ),
    ];
    for (enclave, reason) in refusals {
        let e = c.activate(&req("client", 1), &enclave).await.unwrap_err();
        assert!(
            matches!(e, Error::Refused(_)) && e.to_string().contains(reason),
            "{e}"
        );
    }
    let e = c.activate(&req("nope", 1), &hw).await.unwrap_err();
    assert!(e.to_string().contains("unknown marble type"), "{e}");
    let e = c
        .activate(
            &ActivationRequest {
                marble_type: "client".into(),
                uuid: "x".into(),
                dns_names: vec![],
            },
            &hw,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a UUID"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_activations_is_exact_under_64_concurrent_activators() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    c.set_manifest(&raw(&small_manifest(10, &[], 0)), "anonymous")
        .await
        .unwrap();
    set_api_key(&c).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.activate(&req("server", i), &app_enclave(2)).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.to_string().contains("MaxActivations (10)"), "{e}"),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(c.activations().unwrap()["server"], 10);
    // And after a restart the count holds.
    drop(c);
    let c = open(dir.path(), true);
    assert_eq!(c.activations().unwrap()["server"], 10);
    assert!(c.activate(&req("server", 99), &app_enclave(2)).await.is_err());
}

#[tokio::test]
async fn a_security_version_bump_refuses_old_marbles_and_rotates_the_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    c.set_manifest(&raw(&small_manifest(0, &[], 0)), "anonymous")
        .await
        .unwrap();
    c.activate(&req("client", 1), &app_enclave(2)).await.unwrap();
    let (_, inter_before) = c.ca_certs().unwrap();
    let update = br#"{"Packages": {"app": {"SecurityVersion": 3}}}"#;
    // Bob may not; nobody anonymous may; Alice may.
    let e = c
        .update_packages(Some(&cert_der("bob.crt")), update)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
    let e = c.update_packages(None, update).await.unwrap_err();
    assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
    c.update_packages(Some(&cert_der("alice.crt")), update)
        .await
        .unwrap();
    let e = c.activate(&req("client", 2), &app_enclave(2)).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("SecurityVersion 2 is lower than package \"app\" requires (3)"),
        "{e}"
    );
    c.activate(&req("client", 2), &app_enclave(3)).await.unwrap();
    assert_ne!(c.ca_certs().unwrap().1, inter_before);
    // A bump must raise the version.
    let e = c
        .update_packages(Some(&cert_der("alice.crt")), update)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not raise"), "{e}");
    // It survives a restart, and is in the update log.
    drop(c);
    let c = open(dir.path(), true);
    assert_eq!(c.security_versions().unwrap()["app"], Some(3));
    assert!(c
        .update_log()
        .unwrap()
        .iter()
        .any(|l| l.contains("package-update")));
}

#[tokio::test]
async fn secrets_need_a_user_with_the_right_role() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    c.set_manifest(&raw(&small_manifest(0, &[], 0)), "anonymous")
        .await
        .unwrap();
    let names = vec!["shared".to_owned()];
    let e = c.read_secrets(None, &names).await.unwrap_err();
    assert!(matches!(e, Error::Unauthenticated(_)));
    let e = c
        .read_secrets(Some(&cert_der("admin.crt")), &names)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("belongs to no user"), "{e}");
    let got = c.read_secrets(Some(&cert_der("bob.crt")), &names).await.unwrap();
    let shared = c.shared_secret_bytes("shared").unwrap().unwrap();
    assert_eq!(
        got["shared"].private.as_deref(),
        Some(base64::engine::general_purpose::STANDARD.encode(&shared).as_str())
    );
    let e = c
        .read_secrets(Some(&cert_der("bob.crt")), &["apiKey".to_owned()])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
    let v = UserSecret {
        key: Some("QQ==".into()),
        ..Default::default()
    };
    let e = c
        .write_secrets(
            Some(&cert_der("bob.crt")),
            &BTreeMap::from([("apiKey".to_owned(), v.clone())]),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
    let e = c
        .write_secrets(
            Some(&cert_der("alice.crt")),
            &BTreeMap::from([("shared".to_owned(), v)]),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not user-defined"), "{e}");
    let e = c
        .read_secrets(Some(&cert_der("alice.crt")), &["own".to_owned()])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not shared") || matches!(e, Error::Forbidden(_)),
        "{e}"
    );
}

#[tokio::test]
async fn the_audit_log_records_every_change_and_verifies_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    c.set_manifest(&raw(&small_manifest(0, &[], 0)), "anonymous")
        .await
        .unwrap();
    set_api_key(&c).await;
    c.activate(&req("server", 1), &app_enclave(2)).await.unwrap();
    c.read_secrets(Some(&cert_der("bob.crt")), &["shared".to_owned()])
        .await
        .unwrap();
    let (lines, head) = c.audit(0).unwrap();
    let events: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<arca_coordinator::AuditEntry>(l)
                .unwrap()
                .event
        })
        .collect();
    assert_eq!(
        events,
        ["manifest-set", "secret-write", "activation", "secret-read"]
    );
    let (root, _) = c.ca_certs().unwrap();
    let r = verify_log(&lines, Some((&head, &root))).unwrap();
    assert_eq!(r.covered, 4);
    // Truncated or edited copies are refused.
    assert!(verify_log(&lines[..3], Some((&head, &root))).is_err());
    let mut edited = lines.clone();
    edited[2] = edited[2].replace("server", "client");
    assert!(verify_log(&edited, Some((&head, &root))).is_err());
    // An edited log on disk stops the coordinator from starting.
    drop(c);
    let path = dir.path().join("audit.log");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("secret-read", "secret-reed")).unwrap();
    let store = Arc::new(arca_coordinator::FileStore::open(dir.path()).unwrap());
    let sealer = Arc::new(arca_coordinator::SimKeySealer::from_file(&dir.path().join("seal.key")).unwrap());
    let err = arca_coordinator::Coordinator::open(store, sealer, Default::default())
        .err()
        .unwrap();
    assert!(matches!(err, Error::AuditTampered(_)), "{err}");
    let _: Option<SignedHead> = None;
}

async fn recover_with(keys: &[&str], threshold: u64, use_keys: &[usize]) {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    let secrets = c
        .set_manifest(&raw(&small_manifest(0, keys, threshold)), "anonymous")
        .await
        .unwrap();
    set_api_key(&c).await;
    c.activate(&req("server", 1), &app_enclave(2)).await.unwrap();
    let shared = c.shared_secret_bytes("shared").unwrap().unwrap();
    drop(c);
    // The seal key is lost (another machine, a new enclave): the state cannot be unsealed.
    std::fs::remove_file(dir.path().join("seal.key")).unwrap();
    let c = open(dir.path(), true);
    assert_eq!(c.status(), Status::Recovery);
    assert!(matches!(
        c.activate(&req("server", 2), &app_enclave(2)).await,
        Err(Error::WrongState(_))
    ));
    for (n, &i) in use_keys.iter().enumerate() {
        let name = format!("key{}", i + 1);
        let private = fixture(&keys[i].replace(".pub", ".key"));
        let secret = arca_coordinator::rsa_oaep_decrypt(&private, &secrets[&name]).unwrap();
        let sig = arca_coordinator::rsa_pss_sign(&private, &secret).unwrap();
        let remaining = c.recover(&secret, Some(&sig)).await.unwrap();
        assert_eq!(remaining as usize, use_keys.len() - n - 1);
    }
    assert_eq!(c.status(), Status::AcceptingMarbles);
    assert_eq!(c.shared_secret_bytes("shared").unwrap().unwrap(), shared);
    assert_eq!(c.activations().unwrap()["server"], 1);
    c.activate(&req("server", 2), &app_enclave(2)).await.unwrap();
    // Re-sealed under the new key: a restart needs no recovery.
    drop(c);
    let c = open(dir.path(), true);
    assert_eq!(c.status(), Status::AcceptingMarbles);
    let (lines, head) = c.audit(0).unwrap();
    verify_log(&lines, Some((&head, &c.ca_certs().unwrap().0))).unwrap();
    assert!(lines.iter().any(|l| l.contains("\"recovery\"")));
}

#[tokio::test]
async fn recovery_with_one_key() {
    recover_with(&["recovery1.pub"], 0, &[0]).await;
}

#[tokio::test]
async fn recovery_with_two_of_three_keys() {
    recover_with(&["recovery1.pub", "recovery2.pub", "recovery3.pub"], 2, &[2, 0]).await;
}

#[tokio::test]
async fn recovery_refuses_a_secret_signed_by_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    let keys = ["recovery1.pub", "recovery2.pub"];
    let secrets = c
        .set_manifest(&raw(&small_manifest(0, &keys, 0)), "anonymous")
        .await
        .unwrap();
    drop(c);
    std::fs::remove_file(dir.path().join("seal.key")).unwrap();
    let c = open(dir.path(), true);
    let secret = arca_coordinator::rsa_oaep_decrypt(&fixture("recovery1.key"), &secrets["key1"]).unwrap();
    let wrong_sig = arca_coordinator::rsa_pss_sign(&fixture("recovery2.key"), &secret).unwrap();
    assert!(matches!(
        c.recover(&secret, Some(&wrong_sig)).await,
        Err(Error::Unauthenticated(_))
    ));
    assert_eq!(c.recover(&secret, None).await.unwrap(), 1);
}

#[tokio::test]
async fn multi_party_manifest_update_needs_every_acknowledgement_and_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    let mut m = small_manifest(0, &[], 0);
    m["Roles"]["manifest"] = serde_json::json!({"ResourceType": "Manifest", "Actions": ["UpdateManifest"]});
    m["Users"]["alice"]["Roles"]
        .as_array_mut()
        .unwrap()
        .push("manifest".into());
    m["Users"]["bob"]["Roles"]
        .as_array_mut()
        .unwrap()
        .push("manifest".into());
    c.set_manifest(&raw(&m), "anonymous").await.unwrap();
    let shared = c.shared_secret_bytes("shared").unwrap().unwrap();
    let mut next = m.clone();
    next["Marbles"]["client"]["Parameters"]["Argv"] = serde_json::json!(["client", "v2"]);
    let next = raw(&next);
    let alice = cert_der("alice.crt");
    let bob = cert_der("bob.crt");
    assert_eq!(c.update_manifest(Some(&alice), &next).await.unwrap(), ["bob"]);
    assert_eq!(c.pending_update().unwrap().unwrap().1, ["bob"]);
    // A different proposal while one is pending is refused; cancel works.
    let e = c.update_manifest(Some(&bob), &raw(&m)).await.unwrap_err();
    assert!(e.to_string().contains("pending"), "{e}");
    c.cancel_update(Some(&bob)).await.unwrap();
    assert!(c.pending_update().unwrap().is_none());
    assert_eq!(c.update_manifest(Some(&alice), &next).await.unwrap(), ["bob"]);
    assert!(c.update_manifest(Some(&bob), &next).await.unwrap().is_empty());
    assert_eq!(c.manifest().unwrap().raw, next);
    // Unchanged secrets keep their values.
    assert_eq!(c.shared_secret_bytes("shared").unwrap().unwrap(), shared);
    let a = c.activate(&req("client", 1), &app_enclave(2)).await.unwrap();
    assert_eq!(a.argv, ["client", "v2"]);
}

#[tokio::test]
async fn the_sample_manifest_is_set_and_its_marbles_activate_with_every_template_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), true);
    c.set_manifest(&raw(&sample_manifest()), "anonymous")
        .await
        .unwrap();
    let admin = cert_der("admin.crt");
    let e = c
        .activate(&req("backendFirst", 1), &app_enclave(2))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ProductID 7"), "{e}");
    let mut backend = app_enclave(2);
    backend.isv_prod_id = 45;
    // backendFirst needs the user-defined secrets hello and apiKey; only a user with WriteSecret sets them,
    // and the sample's roles give none for them: the activation refuses, naming the secret.
    let e = c.activate(&req("backendFirst", 1), &backend).await.unwrap_err();
    assert!(e.to_string().contains("has not been set"), "{e}");
    let a = c.activate(&req("backendOther", 1), &backend).await.unwrap();
    assert!(String::from_utf8(a.env["TEST_SECRET_CERT"].clone())
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(String::from_utf8(a.env["TEST_SECRET_PRIVATE_CERT"].clone())
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let got = c
        .read_secrets(
            Some(&admin),
            &["certShared".to_owned(), "symmetricKeyShared".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(got["certShared"].r#type, "cert-ed25519");
    assert!(got["certShared"].cert.is_some());
}
