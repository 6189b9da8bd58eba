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
