//! Shared helpers for arca-image's integration tests: real images built with podman (no registry), a static
//! test launcher built with gcc, the development key as signing key, and independent validators.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use arca_image::{ConvertOptions, ImageRef, NoProgress, ReadOptions, SourceImage, Staging, WriteOptions};
use sha2::{Digest, Sha256};

pub const LAUNCHER_BANNER: &str = "arca test launcher";

/// Runs a command and returns stdout; panics with stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A unique name for podman images made by this test process (tests run in parallel threads, so a counter
/// keeps two calls with the same `name` apart).
pub fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("localhost/arca-test-{name}-{}-{n}", std::process::id())
}

/// Builds a statically linked test "launcher" (prints a banner; `r PATH` unlinks PATH, used by RUN steps).
pub fn static_launcher(dir: &Path) -> Option<PathBuf> {
    let gcc = arca_testkit::require_tool("gcc")?;
    let src = dir.join("launcher.c");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n#include <unistd.h>\nint main(int c, char **v) {{\n\
             if (c > 2 && v[1][0] == 'r') return unlink(v[2]);\n puts(\"{LAUNCHER_BANNER}\");\n return 0;\n}}\n"
        ),
    )
    .unwrap();
    let out = dir.join("launcher");
    run(Command::new(gcc)
        .arg("-static")
        .arg("-O2")
        .arg("-o")
        .arg(&out)
        .arg(&src));
    Some(out)
}

/// The public development key (RSA-3072, e = 3) used as the enclave signing key in tests.
pub fn signing_key() -> arca_sgx::SigningKey {
    let pem =
        std::fs::read_to_string(arca_testkit::testdata().join("../keys/arca-dev-coordinator.pem")).unwrap();
    arca_sgx::SigningKey::from_pem(&pem).unwrap()
}

/// podman with the adjustments this machine needs (docs/testing.md).
pub fn podman() -> Option<Command> {
    let bin = arca_testkit::require_tool("podman")?;
    let mut c = Command::new("unshare");
    c.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"",
    ]);
    c.arg(bin);
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        let conf = std::env::temp_dir().join("arca-test-containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
        )
        .unwrap();
        c.env("CONTAINERS_CONF", conf);
    }
    Some(c)
}

/// A tar of `root` made by the system tar (numeric owners root).
pub fn tar_dir(root: &Path, out: &Path) {
    run(Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
        .arg(out)
        .arg("."));
}

/// Imports a rootfs tar as an image with the given config changes (`CMD [...]`, `ENV K=V`, ...).
pub fn podman_import(tar: &Path, name: &str, changes: &[&str]) {
    let mut c = podman().unwrap();
    c.arg("import");
    for ch in changes {
        c.arg("--change").arg(ch);
    }
    run(c.arg(tar).arg(name));
}

/// `podman save` in a format (`docker-archive`, `oci-archive`, `oci-dir`).
pub fn podman_save(name: &str, format: &str, out: &Path) {
    run(podman()
        .unwrap()
        .args(["save", "--format", format, "-o"])
        .arg(out)
        .arg(name));
}

pub fn podman_rmi(name: &str) {
    if let Some(mut c) = podman() {
        let _ = c
            .args(["rmi", "-f", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Copies the files a dynamically linked executable needs (from `ldd`) into `root`.
pub fn copy_with_libs(exe: &Path, root: &Path) {
    copy_into(exe, root);
    let out = run(Command::new("ldd").arg(exe));
    for line in out.lines() {
        let path = line
            .split("=>")
            .nth(1)
            .unwrap_or(line)
            .split_whitespace()
            .next()
            .unwrap_or("");
        if path.starts_with('/') {
            copy_into(Path::new(path), root);
        }
    }
}

/// Copies a host file (following symlinks) to the same path under `root`.
pub fn copy_into(p: &Path, root: &Path) {
    let dest = root.join(p.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(p, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", p.display()));
}

pub fn options<'a>(launcher: &'a [u8], key: &'a arca_sgx::SigningKey) -> ConvertOptions<'a> {
    ConvertOptions {
        launcher,
        signer: key,
        encrypt: Vec::new(),
        pf_key: None,
        exclude: Vec::new(),
        allow_env: Vec::new(),
        allow_path: Vec::new(),
        coordinator: arca_enclave::CoordinatorPolicy::development(),
        isvprodid: 1,
        isvsvn: 1,
        debug: false,
        enclave_size: 1 << 30,
        threads: 4,
        date: 0,
        compression: arca_image::Compression::Gzip,
        level: None,
        jobs: 2,
        progress: &NoProgress,
    }
}

/// Converts `src` to `dst` with `opts`; returns the report and the output manifest digest.
pub fn convert(
    src: &str,
    dst: &str,
    opts: &ConvertOptions<'_>,
) -> (arca_image::ConvertReport, arca_image::Digest) {
    let src: ImageRef = src.parse().unwrap();
    let dst: ImageRef = dst.parse().unwrap();
    let image = SourceImage::open(&src, &ReadOptions::default()).unwrap();
    let staging = Staging::new(None).unwrap();
    let (staged, report) = arca_image::convert(&image, opts, &staging).unwrap();
    let written = arca_image::write_image(&staging, &staged, &dst, &WriteOptions::default()).unwrap();
    (report, written.manifest_digest)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decompresses a layer blob with the system tools (independent of arca-image's decoders).
pub fn decompress(blob: &Path) -> Vec<u8> {
    let mut head = [0u8; 4];
    std::fs::File::open(blob).unwrap().read_exact(&mut head).ok();
    let tool: &[&str] = match head {
        [0x1f, 0x8b, ..] => &["gzip", "-dc"],
        [0x28, 0xb5, 0x2f, 0xfd] => &["zstd", "-dcq"],
        _ => return std::fs::read(blob).unwrap(),
    };
    let out = Command::new(tool[0]).args(&tool[1..]).arg(blob).output().unwrap();
    assert!(
        out.status.success(),
        "{tool:?} {}: {}",
        blob.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Our own strict check of an OCI layout (what skopeo does not check): every blob's digest and size match
/// its descriptor, every layer decompresses (with the system gzip/zstd) to its config `diff_id`, the layer
/// count matches, and media types are OCI. Returns the decompressed layers.
pub fn strict_check_oci(dir: &Path) -> Vec<Vec<u8>> {
    let blob = |d: &str| dir.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut all_layers = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let check = |desc: &serde_json::Value| -> Vec<u8> {
            let d = desc["digest"].as_str().unwrap();
            let bytes = std::fs::read(blob(d)).unwrap();
            assert_eq!(format!("sha256:{}", sha256_hex(&bytes)), d, "digest of blob {d}");
            assert_eq!(
                bytes.len() as u64,
                desc["size"].as_u64().unwrap(),
                "size of blob {d}"
            );
            bytes
        };
        let manifest: serde_json::Value = serde_json::from_slice(&check(m)).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let config: serde_json::Value = serde_json::from_slice(&check(&manifest["config"])).unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(diff_ids.len(), layers.len(), "diff_ids vs layers");
        for (l, diff_id) in layers.iter().zip(diff_ids) {
            check(l);
            assert!(l["mediaType"]
                .as_str()
                .unwrap()
                .starts_with("application/vnd.oci.image.layer.v1.tar"));
            let plain = decompress(&blob(l["digest"].as_str().unwrap()));
            assert_eq!(
                format!("sha256:{}", sha256_hex(&plain)),
                diff_id.as_str().unwrap(),
                "diff_id of {}",
                l["digest"]
            );
            all_layers.push(plain);
        }
        if let Some(h) = config["history"].as_array() {
            let non_empty = h
                .iter()
                .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
                .count();
            assert_eq!(non_empty, layers.len(), "history entries vs layers");
        }
    }
    all_layers
}

/// skopeo inspect (validates manifests and config) and skopeo copy (validates every blob digest).
pub fn skopeo_validate(image: &str, scratch: &Path) {
    let Some(skopeo) = arca_testkit::require_tool("skopeo") else {
        return;
    };
    let out = run(Command::new(&skopeo).args(["inspect", "--tls-verify=false", image]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["Labels"]["dev.arca.mrenclave"].is_string(), "{out}");
    let copy = scratch.join(format!("skopeo-copy-{}", rand_name()));
    run(Command::new(&skopeo)
        .args(["copy", "--src-tls-verify=false", image])
        .arg(format!("oci:{}:copy", copy.display())));
}

/// umoci unpack (an independent OCI implementation) into a bundle; returns the rootfs path.
pub fn umoci_unpack(dir: &Path, tag: &str, scratch: &Path) -> Option<PathBuf> {
    let umoci = arca_testkit::require_tool("umoci")?;
    let bundle = scratch.join(format!("bundle-{}", rand_name()));
    run(Command::new(umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", dir.display()))
        .arg(&bundle));
    Some(bundle.join("rootfs"))
}

/// podman load of an archive; returns the loaded image's name.
pub fn podman_load(archive: &Path) -> Option<String> {
    let out = run(podman()?.arg("load").arg("-i").arg(archive));
    let name = out.lines().find_map(|l| {
        l.strip_prefix("Loaded image: ")
            .or_else(|| l.strip_prefix("Loaded image(s): "))
    })?;
    Some(name.trim().to_string())
}

/// podman run --network=none with extra args; returns stdout.
pub fn podman_run(args: &[&str]) -> Option<String> {
    let mut c = podman()?;
    c.args(["run", "--rm", "--pull=never", "--network=none"])
        .args(args);
    Some(run(&mut c))
}

pub fn rand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Writes `bytes` to `path`, creating parents.
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(path).unwrap().write_all(bytes).unwrap();
}
