//! Registry transport against Debian's `docker-registry` started by the test on 127.0.0.1: push with
//! existence checks, pull, byte-exact round trips, anonymous and basic authentication.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use arca_image::{Credentials, ImageRef, ReadOptions, SourceImage, Staging, WriteOptions};
use arca_testkit::{Registry, REGISTRY_PASSWORD, REGISTRY_USER};
use support::*;

fn image_archive(dir: &std::path::Path, launcher: &[u8]) -> Option<std::path::PathBuf> {
    podman()?;
    let root = dir.join("root");
    write(&root.join("bin/hello"), launcher);
    run(Command::new("chmod").arg("755").arg(root.join("bin/hello")));
    write(&root.join("srv/data.bin"), &vec![42u8; 300_000]);
    let tar = dir.join("rootfs.tar");
    tar_dir(&root, &tar);
    let name = unique("reg");
    podman_import(&tar, &name, &["CMD [\"/bin/hello\"]"]);
    let archive = dir.join("img.tar");
    podman_save(&name, "docker-archive", &archive);
    podman_rmi(&name);
    Some(archive)
}

fn blob_bytes(image: &SourceImage) -> Vec<Vec<u8>> {
    // Read every layer blob through the transport, as stored.
    image
        .layers
        .iter()
        .map(|l| {
            let d = l.digest.unwrap();
            let mut out = Vec::new();
            image.read_blob(&d, &mut out).unwrap();
            out
        })
        .collect()
}

#[test]
fn push_and_pull_round_trip_byte_for_byte_and_skip_existing_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let Some(launcher_path) = static_launcher(dir.path()) else {
        return;
    };
    let launcher = std::fs::read(launcher_path).unwrap();
    let Some(archive) = image_archive(dir.path(), &launcher) else {
        return;
    };
    let Some(registry) = Registry::start() else { return };
    let key = signing_key();
    let opts = options(&launcher, &key);
    let src: ImageRef = format!("docker-archive:{}", archive.display()).parse().unwrap();
    let image = SourceImage::open(&src, &ReadOptions::default()).unwrap();
    let staging = Staging::new(None).unwrap();
    let (staged, _) = arca_image::convert(&image, &opts, &staging).unwrap();

    let remote: ImageRef = format!("docker://{}/team/app:1", registry.addr).parse().unwrap();
    let first = arca_image::write_image(&staging, &staged, &remote, &WriteOptions::default()).unwrap();
    assert_eq!(first.manifest_digest, staged.manifest_digest);
    assert_eq!(first.blobs_written, staged.layers.len() + 1);
    let again = arca_image::write_image(&staging, &staged, &remote, &WriteOptions::default()).unwrap();
    assert_eq!(
        (again.blobs_written, again.blobs_existing),
        (0, staged.layers.len() + 1),
        "existing blobs are not re-uploaded"
    );

    // Pull back: same manifest digest, same blobs, byte for byte.
    let pulled = SourceImage::open(&remote, &ReadOptions::default()).unwrap();
    assert_eq!(pulled.manifest_digest, Some(staged.manifest_digest));
    pulled.verify().unwrap();
    for (bytes, desc) in blob_bytes(&pulled).iter().zip(&staged.layers) {
        assert_eq!(bytes, &std::fs::read(staging.blob_path(&desc.digest)).unwrap());
    }
    let config = std::fs::read(staging.blob_path(&staged.config.digest)).unwrap();
    assert_eq!(pulled.config_bytes, config);

    // An independent client sees the same image.
    if let Some(skopeo) = arca_testkit::require_tool("skopeo") {
        let out = run(Command::new(skopeo)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/team/app:1", registry.addr)));
        assert_eq!(out.as_bytes(), staged.manifest.as_slice());
        skopeo_validate(&format!("docker://{}/team/app:1", registry.addr), dir.path());
    }
    // Pulled again into an OCI layout, the image passes the strict check.
    let out = dir.path().join("pulled");
    let staging2 = Staging::new(None).unwrap();
    let copied = arca_image::copy_image(&pulled, &staging2).unwrap();
    arca_image::write_image(
        &staging2,
        &copied,
        &format!("oci:{}:x", out.display()).parse().unwrap(),
        &WriteOptions::default(),
    )
    .unwrap();
    assert_eq!(copied.manifest_digest, staged.manifest_digest);
    strict_check_oci(&out);
}

#[test]
fn basic_auth_registries_need_and_accept_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let Some(launcher_path) = static_launcher(dir.path()) else {
        return;
    };
    let launcher = std::fs::read(launcher_path).unwrap();
    let Some(archive) = image_archive(dir.path(), &launcher) else {
        return;
    };
    let Some(registry) = Registry::start_with_basic_auth() else {
        return;
    };
    let key = signing_key();
    let opts = options(&launcher, &key);
    let image = SourceImage::open(
        &format!("docker-archive:{}", archive.display()).parse().unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let staging = Staging::new(None).unwrap();
    let (staged, _) = arca_image::convert(&image, &opts, &staging).unwrap();
    let remote: ImageRef = format!("docker://{}/app:secure", registry.addr).parse().unwrap();

    let err = arca_image::write_image(&staging, &staged, &remote, &WriteOptions::default()).unwrap_err();
    assert!(err.to_string().contains("user name and password"), "{err}");
    let creds: Credentials = format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}").parse().unwrap();
    let wrong: Credentials = format!("{REGISTRY_USER}:nope").parse().unwrap();
    let err = arca_image::write_image(
        &staging,
        &staged,
        &remote,
        &WriteOptions {
            credentials: Some(wrong),
            insecure: false,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("access denied"), "{err}");
    arca_image::write_image(
        &staging,
        &staged,
        &remote,
        &WriteOptions {
            credentials: Some(creds.clone()),
            insecure: false,
        },
    )
    .unwrap();
    let pulled = SourceImage::open(
        &remote,
        &ReadOptions {
            credentials: Some(creds),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(pulled.manifest_digest, Some(staged.manifest_digest));
    pulled.verify().unwrap();
}

/// A bearer-token server for the registry: answers every `GET /token` with a JWT (RS256, `x5c` header)
/// granting pull and push, signed with a throw-away key whose certificate the registry trusts.
struct TokenServer {
    port: u16,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn b64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn token_server(dir: &std::path::Path, repo: &str) -> Option<TokenServer> {
    let openssl = arca_testkit::require_tool("openssl")?;
    let (key, cert, der) = (
        dir.join("token.key"),
        dir.join("token.crt"),
        dir.join("token.der"),
    );
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=arca-token",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    run(Command::new(&openssl)
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .arg("-out")
        .arg(&der));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let x5c = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&der).unwrap())
    };
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
    let claims = serde_json::json!({"iss": "arca-test-issuer", "sub": "arca", "aud": "arca-registry",
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "arca-test",
        "access": [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]});
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let input_file = dir.join("jwt.in");
    std::fs::write(&input_file, &signing_input).unwrap();
    let sig = Command::new(&openssl)
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg(&input_file)
        .output()
        .unwrap();
    assert!(sig.status.success());
    let token = format!("{signing_input}.{}", b64url(&sig.stdout));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&requests);
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = format!("{{\"token\":\"{token}\"}}");
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    Some(TokenServer { port, requests })
}

#[test]
fn bearer_token_registries_are_answered_through_the_realm() {
    let dir = tempfile::tempdir().unwrap();
    let Some(launcher_path) = static_launcher(dir.path()) else {
        return;
    };
    let launcher = std::fs::read(launcher_path).unwrap();
    let Some(archive) = image_archive(dir.path(), &launcher) else {
        return;
    };
    let Some(tokens) = token_server(dir.path(), "team/tokened") else {
        return;
    };
    let auth = format!(
        "  token:\n    realm: http://127.0.0.1:{}/token\n    service: arca-registry\n    issuer: arca-test-issuer\n    rootcertbundle: {}\n",
        tokens.port,
        dir.path().join("token.crt").display()
    );
    let Some(registry) = Registry::start_with_auth_yaml(&auth) else {
        return;
    };
    let key = signing_key();
    let opts = options(&launcher, &key);
    let image = SourceImage::open(
        &format!("docker-archive:{}", archive.display()).parse().unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let staging = Staging::new(None).unwrap();
    let (staged, _) = arca_image::convert(&image, &opts, &staging).unwrap();
    let remote: ImageRef = format!("docker://{}/team/tokened:1", registry.addr)
        .parse()
        .unwrap();
    arca_image::write_image(&staging, &staged, &remote, &WriteOptions::default())
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()));
    let pulled = SourceImage::open(&remote, &ReadOptions::default()).unwrap();
    assert_eq!(pulled.manifest_digest, Some(staged.manifest_digest));
    pulled.verify().unwrap();
    assert!(
        tokens.requests.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "push and pull each fetched a token"
    );
}
