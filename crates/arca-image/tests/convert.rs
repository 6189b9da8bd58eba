//! End-to-end conversions of real images built without a registry (podman import/build), checked by
//! independent validators: skopeo inspect/copy, umoci unpack, podman load/run, and our own strict check of
//! digests, diff_ids and sizes.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use arca_image::{EncryptPath, ImageRef, ReadOptions, SourceImage};
use support::*;

struct Fixture {
    dir: tempfile::TempDir,
    launcher: Vec<u8>,
    key: arca_sgx::SigningKey,
}

fn fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let launcher_path = static_launcher(dir.path())?;
    podman()?;
    Some(Fixture {
        launcher: std::fs::read(launcher_path).unwrap(),
        key: signing_key(),
        dir,
    })
}

/// A minimal image: the static test program as /bin/hello, saved by podman as a docker archive.
fn static_image(f: &Fixture, name: &str) -> std::path::PathBuf {
    let root = f.dir.path().join(format!("root-{name}"));
    write(&root.join("bin/hello"), &f.launcher);
    run(Command::new("chmod").arg("755").arg(root.join("bin/hello")));
    write(&root.join("etc/greeting"), b"hello static\n");
    let tar = f.dir.path().join(format!("{name}-rootfs.tar"));
    tar_dir(&root, &tar);
    let image = unique(name);
    podman_import(
        &tar,
        &image,
        &["CMD [\"/bin/hello\"]", "ENV PATH=/bin", "WORKDIR /"],
    );
    let archive = f.dir.path().join(format!("{name}.tar"));
    podman_save(&image, "docker-archive", &archive);
    podman_rmi(&image);
    archive
}

fn all_validators(f: &Fixture, oci_dir: &Path, tag: &str) -> Vec<Vec<u8>> {
    let layers = strict_check_oci(oci_dir);
    skopeo_validate(&format!("oci:{}:{tag}", oci_dir.display()), f.dir.path());
    let rootfs = umoci_unpack(oci_dir, tag, f.dir.path()).unwrap();
    assert_eq!(std::fs::read(rootfs.join("arca/launcher")).unwrap(), f.launcher);
    assert!(rootfs.join("arca/enclave.toml").is_file() && rootfs.join("arca/trusted.list").is_file());
    assert_eq!(
        std::fs::metadata(rootfs.join("arca/enclave.sig")).unwrap().len(),
        1808
    );
    layers
}

#[test]
fn converts_a_static_binary_image_that_every_validator_accepts() {
    let Some(f) = fixture() else { return };
    let archive = static_image(&f, "static");
    let out = f.dir.path().join("out");
    let opts = options(&f.launcher, &f.key);
    let (report, digest) = convert(
        &format!("docker-archive:{}", archive.display()),
        &format!("oci:{}:app", out.display()),
        &opts,
    );
    assert_eq!(report.exec, "/bin/hello");
    assert!(report.development_coordinator);
    let layers = all_validators(&f, &out, "app");
    assert_eq!(layers.len(), 2, "one input layer + the /arca layer");

    // The identity recorded in the image is the one the identity function recomputes.
    let image = SourceImage::open(
        &format!("oci:{}:app", out.display()).parse().unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(image.manifest_digest, Some(digest));
    let inspection = arca_image::inspect(&image).unwrap();
    assert!(inspection.ok(), "{:?}", inspection.checks);
    assert_eq!(inspection.mrenclave, Some(report.mrenclave));
    assert_eq!(inspection.mrsigner, signing_key_mrsigner());
    assert_eq!(inspection.trusted_files, 2); // /bin/hello, /etc/greeting

    // podman loads and runs both archive kinds: the entrypoint is the launcher; the app is intact.
    for (kind, dst) in [
        ("oci-archive", "conv-oci.tar:app"),
        ("docker-archive", "conv-docker.tar:localhost/conv-static:1"),
    ] {
        let path = f.dir.path().join(dst.split(':').next().unwrap());
        convert(
            &format!("docker-archive:{}", archive.display()),
            &format!("{kind}:{}", f.dir.path().join(dst).display()),
            &opts,
        );
        let loaded = podman_load(&path).unwrap();
        let banner = podman_run(&[&loaded]).unwrap();
        assert!(banner.contains(LAUNCHER_BANNER), "{banner}");
        let app = podman_run(&["--entrypoint", "/bin/hello", &loaded]).unwrap();
        assert!(app.contains(LAUNCHER_BANNER), "{app}");
        podman_rmi(&loaded);
    }
}

fn signing_key_mrsigner() -> arca_sgx::Mrsigner {
    signing_key().mrsigner()
}

#[test]
fn encrypts_data_in_every_layer_of_a_podman_build_with_whiteouts() {
    let Some(f) = fixture() else { return };
    let base_tar = f.dir.path().join("base.tar");
    let root = f.dir.path().join("base");
    write(&root.join("bin/hello"), &f.launcher);
    run(Command::new("chmod").arg("755").arg(root.join("bin/hello")));
    tar_dir(&root, &base_tar);
    let base = unique("wh-base");
    podman_import(&base_tar, &base, &["CMD [\"/bin/hello\"]"]);
    let ctx = f.dir.path().join("ctx");
    write(&ctx.join("a.txt"), b"MARKER-ALPHA-deleted-later\n");
    write(&ctx.join("b.txt"), b"MARKER-BRAVO-kept\n");
    write(&ctx.join("c1.txt"), b"MARKER-CHARLIE-v1-shadowed\n");
    write(&ctx.join("c2.txt"), b"MARKER-CHARLIE-v2-final\n");
    write(&ctx.join("Containerfile"), format!(
        "FROM {base}\nCOPY a.txt /data/a.txt\nCOPY b.txt /data/b.txt\nCOPY c1.txt /data/sub/c.txt\nCOPY c2.txt /data/sub/c.txt\n\
         RUN [\"/bin/hello\", \"r\", \"/data/a.txt\"]\nCOPY b.txt /etc/public.txt\n").as_bytes());
    let image = unique("wh");
    run(podman()
        .unwrap()
        .args(["build", "--network=none", "-t", &image])
        .arg(&ctx));
    let archive = f.dir.path().join("wh.tar");
    podman_save(&image, "oci-archive", &archive);
    podman_rmi(&image);
    podman_rmi(&base);

    let key = arca_pfs::Key::from_bytes([7; 16]);
    let mut opts = options(&f.launcher, &f.key);
    opts.encrypt = vec!["/data".parse::<EncryptPath>().unwrap()];
    opts.pf_key = Some(&key);
    let out = f.dir.path().join("out");
    let (report, _) = convert(
        &format!("oci-archive:{}", archive.display()),
        &format!("oci:{}:app", out.display()),
        &opts,
    );
    assert_eq!(report.encrypted_files, 4, "a, b and both versions of c");
    assert!(
        report.rewritten_layers.len() >= 4,
        "{:?}",
        report.rewritten_layers
    );

    // No plaintext of an encrypted file in any decompressed layer; the public copy of b is untouched.
    let layers = all_validators(&f, &out, "app");
    let whole: Vec<u8> = layers.concat();
    for marker in ["MARKER-ALPHA", "MARKER-CHARLIE-v1", "MARKER-CHARLIE-v2"] {
        assert!(!contains(&whole, marker.as_bytes()), "{marker} leaked");
    }
    let with_b = layers.iter().filter(|l| contains(l, b"MARKER-BRAVO")).count();
    assert_eq!(
        with_b, 1,
        "only the unencrypted /etc/public.txt copy holds MARKER-BRAVO"
    );

    // The whiteout still applies; the encrypted files decrypt, bound to their in-image paths.
    let rootfs = umoci_unpack(&out, "app", f.dir.path()).unwrap();
    assert!(!rootfs.join("data/a.txt").exists());
    let bound = arca_pfs::BoundPath::new("/data/sub/c.txt").unwrap();
    let c = arca_pfs::decrypt_bytes(
        &std::fs::read(rootfs.join("data/sub/c.txt")).unwrap(),
        &key,
        &bound,
    )
    .unwrap();
    assert_eq!(c, b"MARKER-CHARLIE-v2-final\n");
    let trusted = std::fs::read_to_string(rootfs.join("arca/trusted.list")).unwrap();
    assert!(!trusted.contains("/data/"), "{trusted}");
    assert!(trusted.contains("/etc/public.txt"), "{trusted}");
    let manifest =
        arca_enclave::EnclaveManifest::from_toml(&std::fs::read(rootfs.join("arca/enclave.toml")).unwrap())
            .unwrap();
    assert_eq!(
        manifest.files.protected,
        vec![arca_enclave::ProtectedMount {
            path: "/data".into(),
            key: "default".into()
        }]
    );

    // podman loads the converted multi-layer image too, and runs it (the entrypoint is the launcher).
    let conv = f.dir.path().join("wh-conv.tar");
    convert(
        &format!("oci-archive:{}", archive.display()),
        &format!("oci-archive:{}:wh", conv.display()),
        &opts,
    );
    let loaded = podman_load(&conv).unwrap();
    let banner = podman_run(&[&loaded]).unwrap();
    assert!(banner.contains(LAUNCHER_BANNER), "{banner}");
    podman_rmi(&loaded);
}

#[test]
fn converts_a_python_app_with_the_host_python_and_stdlib() {
    let Some(f) = fixture() else { return };
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();
    let root = f.dir.path().join("py");
    copy_with_libs(&python, &root);
    std::os::unix::fs::symlink(python.file_name().unwrap(), root.join("usr/bin/python3")).unwrap();
    let stdlib = Path::new("/usr/lib").join(python.file_name().unwrap());
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(&stdlib)
        .arg(root.join("usr/lib/")));
    for so in std::fs::read_dir(stdlib.join("lib-dynload")).unwrap() {
        copy_with_libs(&so.unwrap().path(), &root);
    }
    write(&root.join("app/main.py"), b"import json, hashlib\nprint(json.dumps({'app': 'python', 'sha': hashlib.sha256(b'x').hexdigest()[:8]}))\n");
    let tar = f.dir.path().join("py.tar");
    tar_dir(&root, &tar);
    let image = unique("py");
    podman_import(
        &tar,
        &image,
        &[
            "CMD [\"python3\", \"/app/main.py\"]",
            "ENV PATH=/usr/local/bin:/usr/bin",
            "WORKDIR /app",
        ],
    );
    let archive = f.dir.path().join("py-oci.tar");
    podman_save(&image, "oci-archive", &archive);
    podman_rmi(&image);

    let opts = options(&f.launcher, &f.key);
    let out = f.dir.path().join("out");
    let (report, _) = convert(
        &format!("oci-archive:{}", archive.display()),
        &format!("oci:{}:py", out.display()),
        &opts,
    );
    assert_eq!(report.exec, "/usr/bin/python3");
    assert!(report.trusted_files > 500, "{}", report.trusted_files);
    all_validators(&f, &out, "py");

    let conv = f.dir.path().join("py-conv.tar");
    convert(
        &format!("oci-archive:{}", archive.display()),
        &format!("oci-archive:{}:py", conv.display()),
        &opts,
    );
    let loaded = podman_load(&conv).unwrap();
    let app = podman_run(&["--entrypoint", "/usr/bin/python3", &loaded, "/app/main.py"]).unwrap();
    assert!(app.contains("\"app\": \"python\""), "{app}");
    podman_rmi(&loaded);
}

#[test]
fn converts_a_java_app_with_the_host_jdk() {
    let Some(f) = fixture() else { return };
    let (Some(jlink), Some(javac)) = (
        arca_testkit::require_tool("jlink"),
        arca_testkit::require_tool("javac"),
    ) else {
        return;
    };
    let root = f.dir.path().join("java");
    let jre = root.join("opt/jre");
    std::fs::create_dir_all(root.join("opt")).unwrap();
    run(Command::new(jlink)
        .args([
            "--add-modules",
            "java.base",
            "--no-header-files",
            "--no-man-pages",
            "--strip-debug",
            "--output",
        ])
        .arg(&jre));
    write(&f.dir.path().join("src/Hello.java"), b"public class Hello { public static void main(String[] a) { System.out.println(\"Hello from Java \" + Runtime.version().feature()); } }\n");
    run(Command::new(javac)
        .arg("-d")
        .arg(root.join("app"))
        .arg(f.dir.path().join("src/Hello.java")));
    for exe in [jre.join("bin/java"), jre.join("lib/server/libjvm.so")] {
        let out = run(Command::new("ldd").arg(&exe));
        for line in out.lines() {
            let p = line
                .split("=>")
                .nth(1)
                .unwrap_or(line)
                .split_whitespace()
                .next()
                .unwrap_or("");
            if p.starts_with('/') && !p.starts_with(jre.to_str().unwrap()) {
                copy_into(Path::new(p), &root);
            }
        }
    }
    let tar = f.dir.path().join("java.tar");
    tar_dir(&root, &tar);
    let image = unique("java");
    podman_import(
        &tar,
        &image,
        &[
            "ENTRYPOINT [\"/opt/jre/bin/java\"]",
            "CMD [\"-cp\", \"/app\", \"Hello\"]",
        ],
    );
    let archive = f.dir.path().join("java-docker.tar");
    podman_save(&image, "docker-archive", &archive);
    podman_rmi(&image);

    let opts = options(&f.launcher, &f.key);
    let out = f.dir.path().join("out");
    let (report, _) = convert(
        &format!("docker-archive:{}", archive.display()),
        &format!("oci:{}:java", out.display()),
        &opts,
    );
    assert_eq!(report.exec, "/opt/jre/bin/java");
    all_validators(&f, &out, "java");
    let manifest = arca_enclave::EnclaveManifest::from_toml(&report.manifest).unwrap();
    assert_eq!(
        manifest.process.argv,
        ["/opt/jre/bin/java", "-cp", "/app", "Hello"]
    );

    let conv = f.dir.path().join("java-conv.tar");
    convert(
        &format!("docker-archive:{}", archive.display()),
        &format!("oci-archive:{}:java", conv.display()),
        &opts,
    );
    let loaded = podman_load(&conv).unwrap();
    let app = podman_run(&[
        "--entrypoint",
        "/opt/jre/bin/java",
        &loaded,
        "-cp",
        "/app",
        "Hello",
    ])
    .unwrap();
    assert!(app.contains("Hello from Java"), "{app}");
    podman_rmi(&loaded);
}

#[test]
fn two_conversions_give_identical_bytes_whatever_the_thread_count() {
    let Some(f) = fixture() else { return };
    let archive = static_image(&f, "det");
    let src = format!("docker-archive:{}", archive.display());
    let mut opts = options(&f.launcher, &f.key);
    let key = arca_pfs::Key::from_bytes([1; 16]);
    opts.encrypt = vec!["/etc".parse().unwrap()];
    opts.pf_key = Some(&key);
    for codec in [arca_image::Compression::Gzip, arca_image::Compression::Zstd] {
        opts.compression = codec;
        opts.jobs = 1;
        let (r1, d1) = convert(
            &src,
            &format!("oci:{}:a", f.dir.path().join(format!("d1-{codec}")).display()),
            &opts,
        );
        opts.jobs = 4;
        let (r2, d2) = convert(
            &src,
            &format!("oci:{}:a", f.dir.path().join(format!("d2-{codec}")).display()),
            &opts,
        );
        assert_eq!(d1, d2, "{codec}: manifest digests differ");
        assert_eq!(r1.mrenclave, r2.mrenclave);
        let blobs = |d: &str| {
            let mut v: Vec<_> = std::fs::read_dir(f.dir.path().join(d).join("blobs/sha256"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        assert_eq!(blobs(&format!("d1-{codec}")), blobs(&format!("d2-{codec}")));
        strict_check_oci(&f.dir.path().join(format!("d2-{codec}")));
    }
}

#[test]
fn refuses_a_corrupted_or_truncated_layer_blob_and_writes_nothing() {
    let Some(f) = fixture() else { return };
    let archive = static_image(&f, "corrupt");
    let opts = options(&f.launcher, &f.key);
    // An OCI layout of the same image (gzip layers), made by our own writer from the docker archive.
    let oci = f.dir.path().join("src-oci");
    let (_, _) = convert(
        &format!("docker-archive:{}", archive.display()),
        &format!("oci:{}:good", oci.display()),
        &opts,
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("blobs/sha256").join(&manifest_digest)).unwrap())
            .unwrap();
    let layer = oci.join("blobs/sha256").join(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let good = std::fs::read(&layer).unwrap();
    for (what, bad) in [
        ("flipped byte", {
            let mut b = good.clone();
            let n = b.len() / 2;
            b[n] ^= 0x40;
            b
        }),
        ("truncated", good[..good.len() - 9].to_vec()),
    ] {
        std::fs::write(&layer, &bad).unwrap();
        let image = SourceImage::open(
            &format!("oci:{}:good", oci.display()).parse().unwrap(),
            &ReadOptions::default(),
        )
        .unwrap();
        let staging = arca_image::Staging::new(None).unwrap();
        let err = match arca_image::convert(&image, &opts, &staging) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{what}: a corrupted layer was accepted"),
        };
        assert!(err.contains("layer 1"), "{what}: {err}");
        assert!(image.verify().is_err(), "{what}");
    }
    std::fs::write(&layer, &good).unwrap();
    let dst = f.dir.path().join("never-written");
    assert!(!dst.exists());
}

#[test]
fn gramine_engine_writes_a_build_context_with_a_valid_gramine_manifest() {
    let Some(f) = fixture() else { return };
    let archive = static_image(&f, "gramine");
    let image = SourceImage::open(
        &format!("docker-archive:{}", archive.display())
            .parse::<ImageRef>()
            .unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let key = arca_pfs::Key::from_bytes([3; 16]);
    let mut opts = options(&f.launcher, &f.key);
    opts.encrypt = vec!["/etc:secrets".parse().unwrap()];
    opts.pf_key = Some(&key);
    opts.allow_env = vec!["LOG_LEVEL".into()];
    let dir = f.dir.path().join("ctx");
    let (report, ctx) = arca_image::gramine_context(&image, &opts, &dir).unwrap();
    assert!(ctx.warning.contains("UNVERIFIED"));
    let text = std::fs::read_to_string(&ctx.manifest).unwrap();
    let m: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(m["libos"]["entrypoint"].as_str(), Some("/arca/launcher"));
    assert_eq!(
        m["loader"]["entrypoint"]["uri"].as_str(),
        Some("file:{{ gramine.libos }}")
    );
    assert_eq!(
        m["loader"]["argv_src_file"].as_str(),
        Some("file:/arca/gramine/argv")
    );
    assert_eq!(m["loader"]["env"]["PATH"].as_str(), Some("/bin"));
    assert_eq!(
        m["loader"]["env"]["LOG_LEVEL"]["passthrough"].as_bool(),
        Some(true)
    );
    assert_eq!(
        m["loader"]["env"]["ARCA_COORDINATOR_ADDR"]["passthrough"].as_bool(),
        Some(true)
    );
    assert_eq!(m["sgx"]["remote_attestation"].as_str(), Some("dcap"));
    assert_eq!(m["sgx"]["enclave_size"].as_str(), Some("1G"));
    assert_eq!(m["sgx"]["max_threads"].as_integer(), Some(4));
    assert_eq!(m["sgx"]["isvprodid"].as_integer(), Some(1));
    assert_eq!(m["sgx"]["debug"].as_bool(), Some(false));
    assert_eq!(m["fs"]["root"]["uri"].as_str(), Some("file:/arca/rootfs"));
    let mounts = m["fs"]["mounts"].as_array().unwrap();
    let enc = mounts
        .iter()
        .find(|x| x.get("type").and_then(|t| t.as_str()) == Some("encrypted"))
        .unwrap();
    assert_eq!(enc["path"].as_str(), Some("/etc"));
    assert_eq!(enc["uri"].as_str(), Some("file:/arca/rootfs/etc"));
    assert_eq!(enc["key_name"].as_str(), Some("secrets"));
    let trusted = m["sgx"]["trusted_files"].as_array().unwrap();
    let hello = trusted
        .iter()
        .find(|t| t["uri"].as_str() == Some("file:/arca/rootfs/bin/hello"))
        .unwrap();
    assert_eq!(hello["sha256"].as_str().unwrap().len(), 64);
    assert!(!trusted
        .iter()
        .any(|t| t["uri"].as_str().unwrap().starts_with("file:/arca/rootfs/etc/")));
    assert_eq!(report.encrypted_files, 1);
    // Protected files are bound to the host path Gramine opens.
    let enc_file = std::fs::read(dir.join("rootfs/etc/greeting")).unwrap();
    let bound = arca_pfs::BoundPath::new("/arca/rootfs/etc/greeting").unwrap();
    assert_eq!(
        arca_pfs::decrypt_bytes(&enc_file, &key, &bound).unwrap(),
        b"hello static\n"
    );
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("gramine-sgx-sign") && dockerfile.contains("UNVERIFIED"));
    assert_eq!(
        std::fs::read(dir.join("rootfs/arca/launcher")).unwrap(),
        f.launcher
    );
}

#[test]
fn diff_explains_which_settings_and_files_changed_the_identity() {
    let Some(f) = fixture() else { return };
    let archive = static_image(&f, "diff");
    let src = format!("docker-archive:{}", archive.display());
    let opts = options(&f.launcher, &f.key);
    let a = f.dir.path().join("a");
    convert(&src, &format!("oci:{}:x", a.display()), &opts);
    let mut opts2 = options(&f.launcher, &f.key);
    opts2.allow_env = vec!["LOG_LEVEL".into()];
    opts2.isvsvn = 2;
    opts2.exclude = vec!["/etc/greeting".into()];
    let b = f.dir.path().join("b");
    convert(&src, &format!("oci:{}:x", b.display()), &opts2);
    let open = |d: &Path| {
        arca_image::inspect(
            &SourceImage::open(
                &format!("oci:{}:x", d.display()).parse().unwrap(),
                &ReadOptions::default(),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let (ia, ib) = (open(&a), open(&b));
    let d = arca_image::diff(&ia, &ib);
    assert!(!d.same_identity);
    let whats: Vec<&str> = d.differences.iter().map(|x| x.what.as_str()).collect();
    assert!(whats.contains(&"host.allow_env"), "{whats:?}");
    assert!(whats.contains(&"enclave.isvsvn"), "{whats:?}");
    assert!(whats.contains(&"file /etc/greeting"), "{whats:?}");
    assert!(!whats.contains(&"launcher"), "{whats:?}");
    let same = arca_image::diff(&ia, &open(&a));
    assert!(
        same.same_identity && same.differences.is_empty(),
        "{:?}",
        same.differences
    );
}
