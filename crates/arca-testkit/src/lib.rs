//! Test support shared by Arca's crates (a dev-dependency only; never linked into `arca`).
//!
//! Its one job: let tests use the real external components this machine can run (podman, skopeo, umoci,
//! the Debian `docker-registry`, etcd, sqlite3, FUSE, …) and fail loudly when the suite is run in strict mode
//! (`ARCA_TEST_STRICT=1`, set by `scripts/test.sh` and `.ci/run`) but a tool is missing. Outside strict mode
//! a missing tool skips the test with a message on stderr, so a developer without podman can still run
//! `cargo test`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

mod registry;
pub use registry::{free_port, Registry, REGISTRY_PASSWORD, REGISTRY_USER};

/// True when missing external tools must fail tests instead of skipping them.
pub fn strict() -> bool {
    std::env::var_os("ARCA_TEST_STRICT").is_some_and(|v| v == "1")
}

/// Finds `tool` on `PATH`. In strict mode a missing tool panics (fails the test); otherwise it returns `None`
/// after printing why the calling test is skipped.
pub fn require_tool(tool: &str) -> Option<PathBuf> {
    if let Some(found) = which(tool) {
        return Some(found);
    }
    let msg = format!("`{tool}` is not installed (run scripts/setup.sh)");
    if strict() {
        panic!("{msg}; ARCA_TEST_STRICT=1 forbids skipping this test");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Like [`require_tool`] for a condition that is not a tool on `PATH` (root, `/dev/fuse`, …).
pub fn require(condition: bool, what: &str) -> bool {
    if condition {
        return true;
    }
    if strict() {
        panic!("{what} is required; ARCA_TEST_STRICT=1 forbids skipping this test");
    }
    eprintln!("SKIPPED: {what} is not available");
    false
}

/// Looks a program up on `PATH` (also `/usr/sbin`, `/sbin`, where Debian puts some daemons).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The repository's `testdata/` directory (vectors copied from public sources, with their notes).
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A file under `testdata/vectors/` (see `testdata/vectors/VECTORS.md` for sources and expected results).
pub fn vector(rel: &str) -> PathBuf {
    testdata().join("vectors").join(rel)
}
