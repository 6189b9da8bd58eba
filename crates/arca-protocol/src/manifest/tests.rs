use serde_json::json;

use super::template::Value as TValue;
use super::*;

fn sample(name: &str) -> Json {
    let path = arca_testkit::testdata().join("marblerun").join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(arca_testkit::testdata().join("coordinator").join(name)).unwrap()
}

fn parse(v: &Json) -> Result<Manifest, Error> {
    Manifest::parse(&serde_json::to_vec(v).unwrap())
}

fn paths(e: &Error) -> Vec<String> {
    e.problems().iter().map(|p| p.path.clone()).collect()
}

/// Renders every Files/Env entry of every marble with stand-in values of the right kind.
fn render_all(m: &Manifest) -> usize {
    let mut n = 0;
    for marble in m.marbles.values() {
        for (target, entries) in [
            (Target::File, &marble.parameters.files),
            (Target::Env, &marble.parameters.env),
        ] {
            for e in entries.values() {
                let out = e
                    .render(target, |r| {
                        Ok(match m.kind_of(r)? {
                            Kind::GeneratedBytes => TValue::Bytes(b"\x00\x01generated"),
                            Kind::UserBytes => TValue::Bytes(b"user"),
                            Kind::Cert => TValue::Cert(b"cert"),
                            Kind::PublicKey => TValue::PublicKey(b"pub"),
                            Kind::PrivateKey => TValue::PrivateKey(b"priv"),
                        })
                    })
                    .unwrap();
                if e.template.is_some() {
                    assert!(
                        !out.windows(2).any(|w| w == b"{{"),
                        "unrendered template left: {out:?}"
                    );
                }
                n += 1;
            }
        }
    }
    n
}

#[test]
fn sample_manifest_is_refused_naming_each_placeholder_user_certificate() {
    let err = parse(&sample("sample-manifest.json")).unwrap_err();
    let mut p = paths(&err);
    p.sort();
    assert_eq!(
        p,
        [
            "Users.Admin.Certificate",
            "Users.Alice.Certificate",
            "Users.Bob.Certificate"
        ]
    );
    assert!(err.to_string().contains("\"cert-alice\""), "{err}");
}

#[test]
fn sample_manifest_is_accepted_with_real_certificates_and_renders_every_template() {
    let mut v = sample("sample-manifest.json");
    for (user, file) in [("Alice", "alice.crt"), ("Bob", "bob.crt"), ("Admin", "admin.crt")] {
        v["Users"][user]["Certificate"] = json!(fixture(file));
    }
    let m = parse(&v).unwrap();
    assert_eq!(m.marbles.len(), 3);
    assert_eq!(m.packages["backend"].product_id, Some(45));
    assert_eq!(m.secrets["certShared"].kind, SecretType::CertEd25519);
    // backendFirst: 5 files + 5 env; backendOther: 2 env.
    assert_eq!(render_all(&m), 12);
    // NoTemplates keeps the action as text.
    let enc = &m.marbles["backendFirst"].parameters.files["/tmp/enc.key"];
    assert!(enc.template.is_none());
    assert_eq!(enc.data, b"{{ raw .Secrets.symmetricKeyShared }}");
    assert_eq!(
        m.marbles["backendFirst"].parameters.files["/tmp/jkl.mno"].data,
        b"bar"
    );
    assert_eq!(
        m.users_permitted(ResourceType::Secrets, "symmetricKeyShared", Action::ReadSecret),
        ["Admin", "Alice", "Bob"]
    );
}

#[test]
fn helloworld_manifest_is_refused_naming_the_unique_id_placeholder() {
    let err = parse(&sample("helloworld_manifest.json")).unwrap_err();
    assert_eq!(paths(&err), ["Packages.world.UniqueID"]);
    assert!(err.to_string().contains("placeholder"), "{err}");
    let mut v = sample("helloworld_manifest.json");
    v["Packages"]["world"]["UniqueID"] = json!("ab".repeat(32));
    let m = parse(&v).unwrap();
    assert_eq!(m.packages["world"].unique_id, Some([0xab; 32]));
    assert_eq!(m.marbles["hello"].parameters.argv, ["foo", "bar"]);
}

#[test]
fn gramine_redis_manifest_is_accepted_and_renders_every_template() {
    let m = parse(&sample("gramine-redis_manifest.json")).unwrap();
    assert!(m.packages["redis-package"].debug);
    assert_eq!(render_all(&m), 10);
}

#[test]
fn field_names_are_case_insensitive_but_map_keys_are_not() {
    let v = json!({
        "packages": {"P": {"uniqueid": "00".repeat(32), "DEBUG": true}},
        "MARBLES": {"m": {"package": "P", "parameters": {"env": {"k": "{{ hex .Secrets.S }}"}}}},
        "secrets": {"S": {"type": "symmetric-key", "size": 128}},
        "SomethingNew": {"ignored": true}
    });
    let m = parse(&v).unwrap();
    assert!(m.packages["P"].debug);
    let v2 = json!({
        "Packages": {"P": {"UniqueID": "00".repeat(32)}},
        "Marbles": {"m": {"Package": "p"}}
    });
    assert_eq!(paths(&parse(&v2).unwrap_err()), ["Marbles.m.Package"]);
}

#[test]
fn reports_every_problem_with_its_json_path() {
    let v = json!({
        "Packages": {
            "a": {"SignerID": "zz", "ProductID": 70000},
            "b": {},
            "c": {"UniqueID": "00".repeat(32), "AcceptedTCBStatuses": ["Fine"]}
        },
        "Marbles": {
            "m": {
                "Package": "nope",
                "TLS": ["t"],
                "Parameters": {
                    "Files": {"/f": "{{ pem .Secrets.k }}", "/g": {"Encoding": "base64", "Data": "!!"}},
                    "Env": {"E": "{{ raw .Secrets.k }}", "A=B": "x", "S": "{{ string .Secrets.k }}"}
                }
            },
            "n": {"Package": "c", "Parameters": {"Env": {"X": "{{ hex .Secrets.missing }}"}}}
        },
        "Secrets": {
            "k": {"Type": "symmetric-key", "Size": 12},
            "e": {"Type": "cert-ecdsa", "Size": 521},
            "p": {"Type": "plain"},
            "t": {"Type": "secret-sauce"}
        },
        "Roles": {"r": {"ResourceType": "Packages", "ResourceNames": ["zzz"], "Actions": ["ReadSecret"]}},
        "Users": {"u": {"Certificate": "cert-u", "Roles": ["r"]}},
        "RecoveryKeys": {"k1": "<public key>"},
        "Config": {"SealMode": "Sometimes", "RecoveryThreshold": 2}
    });
    let err = parse(&v).unwrap_err();
    let p = paths(&err);
    for expected in [
        "Packages.a.SignerID",
        "Packages.a.ProductID",
        "Marbles.m.Parameters.Files[\"/g\"].Data",
        "Secrets.t.Type",
        "Users.u.Certificate",
        "RecoveryKeys.k1",
    ] {
        assert!(p.contains(&expected.to_owned()), "missing {expected} in {p:?}");
    }
    // Decoding problems stop before validation; fix them and the validation problems show.
    let mut v = v;
    v["Packages"]["a"] = json!({"SignerID": "11".repeat(32)});
    v["Marbles"]["m"]["Parameters"]["Files"]["/g"] = json!("plain");
    v["Secrets"]["t"] = json!({"Type": "plain", "UserDefined": true});
    v["Users"]["u"]["Certificate"] = json!(fixture("alice.crt"));
    v["RecoveryKeys"]["k1"] = json!(fixture("recovery1.pub"));
    let err = parse(&v).unwrap_err();
    let p = paths(&err);
    for expected in [
        "Packages.a.ProductID",
        "Packages.a.SecurityVersion",
        "Packages.b",
        "Packages.c.AcceptedTCBStatuses[0]",
        "Marbles.m.Package",
        "Marbles.m.TLS[0]",
        "Marbles.m.Parameters.Files[\"/f\"]",
        "Marbles.m.Parameters.Env.E",
        "Marbles.m.Parameters.Env[\"A=B\"]",
        "Marbles.m.Parameters.Env.S",
        "Marbles.n.Parameters.Env.X",
        "Secrets.k.Size",
        "Secrets.e.Size",
        "Secrets.p.UserDefined",
        "Roles.r.ResourceNames[0]",
        "Roles.r.Actions[0]",
        "Config.SealMode",
        "Config.RecoveryThreshold",
    ] {
        assert!(
            p.contains(&expected.to_owned()),
            "missing {expected} in {p:?}\n{err}"
        );
    }
}

#[test]
fn refuses_packages_that_would_match_any_enclave() {
    let v = json!({"Packages": {"p": {"Debug": true}}, "Marbles": {"m": {"Package": "p"}}});
    let err = parse(&v).unwrap_err();
    assert_eq!(paths(&err), ["Packages.p"]);
    assert!(err.to_string().contains("any enclave"));
}

#[test]
fn refuses_non_json_and_non_objects_without_panicking() {
    assert!(matches!(Manifest::parse(b"{"), Err(Error::Json(_))));
    assert!(matches!(Manifest::parse(b"[]"), Err(Error::Invalid(_))));
    assert!(matches!(Manifest::parse(b"null"), Err(Error::Invalid(_))));
}

#[test]
fn recovery_keys_and_thresholds_are_checked() {
    let v = json!({
        "Packages": {"p": {"UniqueID": "00".repeat(32)}},
        "Marbles": {"m": {"Package": "p"}},
        "RecoveryKeys": {"a": fixture("recovery1.pub"), "b": fixture("recovery2.pub"), "c": fixture("recovery3.pub")},
        "Config": {"RecoveryThreshold": 2}
    });
    let m = parse(&v).unwrap();
    assert_eq!(m.recovery_keys["a"].bits, 2048);
    assert_eq!(m.config.recovery_threshold, 2);
}

#[test]
fn package_updates_parse_security_versions() {
    let u = PackageUpdate::parse(br#"{"packages": {"backend": {"securityversion": 5}}}"#).unwrap();
    assert_eq!(u.security_versions["backend"], 5);
    assert!(PackageUpdate::parse(br#"{"Packages": {"backend": {}}}"#).is_err());
    assert!(PackageUpdate::parse(br#"{"Packages": {}}"#).is_err());
}

#[test]
fn fingerprint_is_sha256_of_the_exact_bytes() {
    assert_eq!(
        fingerprint(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
