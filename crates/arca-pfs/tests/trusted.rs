//! Trusted files: the list's byte form and hash, strict parsing, eager and lazy verification.

#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::fs;

use arca_pfs::{AllowList, Error, TrustedList, Violation};

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join("usr/bin")).unwrap();
    fs::create_dir_all(d.path().join("etc")).unwrap();
    fs::create_dir_all(d.path().join("tmp")).unwrap();
    fs::write(d.path().join("usr/bin/app"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::write(d.path().join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(d.path().join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(d.path().join("tmp/scratch"), b"x").unwrap();
    std::os::unix::fs::symlink("app", d.path().join("usr/bin/link")).unwrap();
    d
}

#[test]
fn list_is_sorted_sha256sum_lines_and_its_hash_is_over_those_bytes() {
    let d = tree();
    let list = TrustedList::hash_tree(d.path(), &AllowList::sim_default()).unwrap();
    let text = String::from_utf8(list.to_bytes()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with("  /etc/passwd"));
    assert!(lines[1].ends_with("  /usr/bin/app"));
    // Same bytes as coreutils would print for the file.
    let digest = arca_pfs::hash_file(&d.path().join("usr/bin/app")).unwrap().0;
    assert_eq!(&lines[1][..64], hex::encode(digest));
    use sha2::Digest;
    assert_eq!(
        list.digest(),
        <[u8; 32]>::from(sha2::Sha256::digest(text.as_bytes()))
    );
    assert_eq!(TrustedList::parse(text.as_bytes()).unwrap(), list);
}

#[test]
fn parse_refuses_unsorted_duplicate_and_malformed_lines() {
    let h = "0".repeat(64);
    for (bad, line) in [
        (format!("{h}  /b\n{h}  /a\n"), 2),
        (format!("{h}  /a\n{h}  /a\n"), 2),
        (format!("{h} /a\n"), 1),
        (format!("{}  /a\n", "A".repeat(64)), 1),
        (format!("{h}  a\n"), 1),
        (format!("{h}  /a"), 1),
    ] {
        match TrustedList::parse(bad.as_bytes()) {
            Err(Error::TrustedList { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn eager_verification_accepts_the_tree_it_listed() {
    let d = tree();
    let list = TrustedList::hash_tree(d.path(), &AllowList::sim_default()).unwrap();
    let report = list.verify_eager(d.path(), &AllowList::sim_default()).unwrap();
    assert_eq!(report.files, 2);
}

#[test]
fn eager_verification_reports_modified_missing_and_unlisted_files() {
    let d = tree();
    let list = TrustedList::hash_tree(d.path(), &AllowList::sim_default()).unwrap();
    fs::write(d.path().join("usr/bin/app"), b"#!/bin/sh\necho pwned\n").unwrap();
    fs::remove_file(d.path().join("etc/passwd")).unwrap();
    fs::write(d.path().join("etc/ld.so.preload"), b"/evil.so\n").unwrap();
    fs::write(d.path().join("tmp/allowed"), b"fine").unwrap();
    let Err(Error::TrustedFilesRejected { violations }) =
        list.verify_eager(d.path(), &AllowList::sim_default())
    else {
        panic!("tampered tree accepted")
    };
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert!(violations
        .iter()
        .any(|v| matches!(v, Violation::Modified { path, .. } if path == "/usr/bin/app")));
    assert!(violations
        .iter()
        .any(|v| matches!(v, Violation::Missing { path } if path == "/etc/passwd")));
    assert!(violations
        .iter()
        .any(|v| matches!(v, Violation::Unlisted { path } if path == "/etc/ld.so.preload")));
    // An extra allowed path silences the unlisted file.
    let allow = AllowList::sim_default().with("/etc/ld.so.preload");
    let Err(Error::TrustedFilesRejected { violations }) = list.verify_eager(d.path(), &allow) else {
        panic!()
    };
    assert_eq!(violations.len(), 2);
}

#[test]
fn lazy_verification_checks_one_file() {
    let d = tree();
    let list = TrustedList::hash_tree(d.path(), &AllowList::sim_default()).unwrap();
    list.verify_file(d.path(), "/usr/bin/app").unwrap();
    fs::write(d.path().join("usr/bin/app"), b"changed").unwrap();
    let e = list.verify_file(d.path(), "/usr/bin/app").unwrap_err();
    assert!(e.to_string().contains("/usr/bin/app was modified"), "{e}");
    assert!(list.verify_file(d.path(), "/etc/hosts").is_err(), "unlisted");
}

#[test]
fn allow_list_matches_whole_components_only() {
    let a = AllowList::sim_default();
    assert!(a.allows("/tmp"));
    assert!(a.allows("/tmp/x/y"));
    assert!(!a.allows("/tmpfoo"));
    assert!(a.allows("/etc/hosts"));
    assert!(!a.allows("/etc/hosts.allow"));
}
