//! A statically linked stand-in for the Arca launcher (the coordinator's enclave is the launcher plus its
//! own manifest; the real launcher is not built into `arca` yet), compiled once per test binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A static ELF executable built from `main_body`, or `None` (test skipped) without gcc.
pub(crate) fn static_elf(name: &str, main_body: &str) -> Option<PathBuf> {
    let gcc = arca_testkit::require_tool("gcc")?;
    let dir = std::env::temp_dir().join(format!("arca-test-launchers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, format!("int main(void){{{main_body}}}\n")).unwrap();
    let out = dir.join(name);
    assert!(Command::new(gcc)
        .arg("-static")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap()
        .success());
    Some(out)
}

/// The launcher every coordinator of this test binary runs with.
pub(crate) fn launcher() -> Option<PathBuf> {
    static L: OnceLock<Option<PathBuf>> = OnceLock::new();
    L.get_or_init(|| static_elf("launcher", "return 0;")).clone()
}
