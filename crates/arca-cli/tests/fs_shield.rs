//! The FUSE shield with unmodified programs: sqlite3 and Python on an encrypted mount (the files on disk are
//! ciphertext), crash safety under `kill -9`, and the trusted-files view. Needs root, /dev/fuse and
//! fusermount3 (`arca_testkit::require*`).

#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ARCA: &str = env!("CARGO_BIN_EXE_arca");
const MARKER: &str = "PLAINTEXT-MARKER-7f3a";

fn fuse_available() -> bool {
    arca_testkit::require(Path::new("/dev/fuse").exists(), "/dev/fuse")
        && arca_testkit::require_tool("fusermount3").is_some()
}

fn is_mounted(mnt: &Path) -> bool {
    let m = fs::canonicalize(mnt).unwrap_or_else(|_| mnt.to_path_buf());
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == m.to_str())
}

struct Mount {
    child: Child,
    mnt: PathBuf,
}

impl Mount {
    fn start(args: &[&str], dir: &Path, mnt: &Path) -> Self {
        fs::create_dir_all(mnt).unwrap();
        let child = Command::new(ARCA)
            .args(["fs", "mount"])
            .args(args)
            .arg(dir)
            .arg(mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !is_mounted(mnt) {
            assert!(start.elapsed() < Duration::from_secs(20), "mount did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            mnt: mnt.to_path_buf(),
        }
    }

    fn encrypted(t: &Path) -> Self {
        Self::start(
            &["--key", t.join("key").to_str().unwrap()],
            &t.join("enc"),
            &t.join("mnt"),
        )
    }

    fn unmount(mut self) {
        let ok = Command::new(ARCA)
            .args(["fs", "umount"])
            .arg(&self.mnt)
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "shield exited with {status}");
        std::mem::forget(self);
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
        let _ = Command::new("fusermount3").arg("-uz").arg(&self.mnt).status();
        std::mem::forget(self);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-uz").arg(&self.mnt).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("enc")).unwrap();
    fs::write(t.path().join("key"), [0x11u8; 16]).unwrap();
    t
}

fn assert_no_plaintext(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            assert_no_plaintext(&p);
        } else {
            let b = fs::read(&p).unwrap();
            assert!(
                !b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                "plaintext found in {}",
                p.display()
            );
        }
    }
}

#[test]
fn sqlite3_creates_fills_and_queries_a_database_on_the_shield() {
    if !fuse_available() || arca_testkit::require_tool("sqlite3").is_none() {
        return;
    }
    let t = setup();
    let m = Mount::encrypted(t.path());
    let db = t.path().join("mnt/app.db");
    let sql = format!(
        "create table t(id integer primary key, v text);
         with recursive c(x) as (select 1 union all select x+1 from c where x < 5000)
         insert into t(v) select '{MARKER}-' || x from c;
         create index tv on t(v);
         select count(*), sum(id) from t where v like '{MARKER}%';"
    );
    let out = Command::new("sqlite3").arg(&db).arg(&sql).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5000|12502500");
    m.unmount();
    assert_no_plaintext(&t.path().join("enc"));
    // Remount: the database is intact (and the integrity check of sqlite agrees).
    let m = Mount::encrypted(t.path());
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("pragma integrity_check; update t set v = 'x' where id % 2 = 0; select count(*) from t where v = 'x';")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok\n2500");
    m.unmount();
}

#[test]
fn python_writes_rereads_and_mmaps_a_file_on_the_shield() {
    if !fuse_available() || arca_testkit::require_tool("python3").is_none() {
        return;
    }
    let t = setup();
    let m = Mount::encrypted(t.path());
    let script = format!(
        r#"
import mmap, os, sys
d = sys.argv[1]
os.makedirs(os.path.join(d, "sub"), exist_ok=True)
p = os.path.join(d, "sub", "data.txt")
lines = ["{MARKER} line %d\n" % i for i in range(100000)]
with open(p, "w") as f:
    f.writelines(lines)
with open(p) as f:
    assert f.readlines() == lines, "re-read differs"
with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
    assert mm[:len(lines[0])] == lines[0].encode(), "mmap differs"
    assert mm.find(b"line 99999") > 0
with open(p, "r+") as f:
    f.truncate(100)
os.rename(p, os.path.join(d, "moved.txt"))
assert open(os.path.join(d, "moved.txt")).read() == "".join(lines)[:100]
os.rmdir(os.path.join(d, "sub"))
print("ok")
"#
    );
    run_python_ok(&script, &t.path().join("mnt"));
    m.unmount();
    assert_no_plaintext(&t.path().join("enc"));
    let m = Mount::encrypted(t.path());
    let back = fs::read_to_string(t.path().join("mnt/moved.txt")).unwrap();
    assert_eq!(back.len(), 100);
    assert!(back.starts_with(MARKER));
    m.unmount();
}

#[test]
fn writes_through_a_shared_mapping_and_read_only_closes_in_between_all_reach_the_volume() {
    // What a shared writable mapping (outliving its descriptor) and a writable descriptor wrote reaches the
    // volume, whatever read-only descriptors are opened and closed in between (their FLUSH, if any, must
    // neither lose nor corrupt the writer's data).
    if !fuse_available() || arca_testkit::require_tool("python3").is_none() {
        return;
    }
    let t = setup();
    let m = Mount::encrypted(t.path());
    let script = format!(
        r#"
import mmap, os, sys
p = os.path.join(sys.argv[1], "mapped.bin")
with open(p, "wb") as f:
    f.write(b"\0" * 300000)
fd = os.open(p, os.O_RDWR)
mm = mmap.mmap(fd, 300000, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
os.close(fd)  # the mapping keeps the writable descriptor alive
mm[1000:1000 + len(b"{MARKER}")] = b"{MARKER}"
mm[250000:250004] = b"tail"
with open(p, "rb") as r:  # a read-only open and close while the mapping is dirty
    r.read(10)
mm.flush()
mm.close()
w = open(p, "r+b")
w.seek(299990)
w.write(b"0123456789")
w.flush()  # out of Python's buffer: the write reaches the shield, the writer stays open
with open(p, "rb") as r:  # read-only close while the writer is still open
    assert r.read()[-10:] == b"0123456789", "a read-only descriptor does not see the writer's data"
w.close()
print("ok")
"#
    );
    run_python_ok(&script, &t.path().join("mnt"));
    m.unmount();
    assert_no_plaintext(&t.path().join("enc"));
    let m = Mount::encrypted(t.path());
    let back = fs::read(t.path().join("mnt/mapped.bin")).unwrap();
    assert_eq!(back.len(), 300000);
    assert_eq!(&back[1000..1000 + MARKER.len()], MARKER.as_bytes());
    assert_eq!(&back[250000..250004], b"tail");
    assert_eq!(&back[299990..], b"0123456789");
    assert!(back[..1000].iter().all(|&b| b == 0));
    m.unmount();
}

#[test]
fn kill_9_mid_writes_keeps_fsynced_data_and_other_files_intact() {
    if !fuse_available() || arca_testkit::require_tool("python3").is_none() {
        return;
    }
    let t = setup();
    let m = Mount::encrypted(t.path());
    let mnt = t.path().join("mnt");
    let quiet: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(mnt.join("quiet.bin"), &quiet).unwrap();
    // The writer rewrites `busy.bin` (200 kB, one write per version) and fsyncs; it prints each fsynced
    // version. It also appends to `log.bin` without fsync.
    let script = r#"
import os, sys
d = sys.argv[1]
log = open(os.path.join(d, "log.bin"), "ab")
fd = os.open(os.path.join(d, "busy.bin"), os.O_RDWR | os.O_CREAT, 0o644)
v = 0
while True:
    v += 1
    os.pwrite(fd, (b"version %08d|" % v) * 13333, 0)
    os.fsync(fd)
    print(v, flush=True)
    log.write(b"x" * 10000)
"#;
    let mut writer = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&mnt)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    let mut last = 0u64;
    while last < 30 {
        last = lines.next().unwrap().unwrap().trim().parse().unwrap();
    }
    m.kill9();
    let _ = writer.kill();
    let _ = writer.wait();
    for l in lines.map_while(Result::ok) {
        if let Ok(v) = l.trim().parse::<u64>() {
            last = last.max(v);
        }
    }

    let m = Mount::encrypted(t.path());
    assert_eq!(
        fs::read(mnt.join("quiet.bin")).unwrap(),
        quiet,
        "a file not being written is intact"
    );
    match fs::read(mnt.join("busy.bin")) {
        Ok(b) => {
            assert_eq!(b.len(), 17 * 13333, "busy.bin has the size of one version");
            let v: u64 = std::str::from_utf8(&b[8..16]).unwrap().parse().unwrap();
            assert!(
                v == last || v == last + 1,
                "busy.bin holds version {v}; last fsynced {last}"
            );
            assert_eq!(
                b,
                format!("version {v:08}|").repeat(13333).into_bytes(),
                "one whole version"
            );
        }
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "only a reported corruption is acceptable: {e}"
        ),
    }
    if let Ok(b) = fs::read(mnt.join("log.bin")) {
        assert!(
            b.iter().all(|&c| c == b'x'),
            "log.bin holds only what was written"
        );
    }
    m.unmount();
}

#[test]
fn trusted_view_serves_matching_files_and_refuses_a_modified_one() {
    if !fuse_available() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("app")).unwrap();
    fs::write(root.join("app/main.py"), b"print('hello')\n").unwrap();
    fs::write(root.join("app/lib.py"), b"X = 1\n").unwrap();
    let list = arca_pfs_list(&root);
    fs::write(t.path().join("trusted.list"), list).unwrap();
    fs::write(root.join("app/extra.py"), b"unlisted\n").unwrap();
    let m = Mount::start(
        &["--trusted-list", t.path().join("trusted.list").to_str().unwrap()],
        &root,
        &t.path().join("mnt"),
    );
    let mnt = t.path().join("mnt");
    assert_eq!(fs::read(mnt.join("app/main.py")).unwrap(), b"print('hello')\n");
    fs::write(root.join("app/lib.py"), b"X = 2\n").unwrap();
    let e = fs::read(mnt.join("app/lib.py")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    let e = fs::read(mnt.join("app/extra.py")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "unlisted file: {e}");
    assert!(fs::write(mnt.join("app/new.py"), b"x").is_err(), "read-only view");
    m.unmount();
}

/// The trusted list of `root`, made by hashing (as the converter does) through the library.
fn arca_pfs_list(root: &Path) -> Vec<u8> {
    arca_pfs::TrustedList::hash_tree(root, &arca_pfs::AllowList::none())
        .unwrap()
        .to_bytes()
}

/// A file renamed while open keeps being written under its new name; a file unlinked while open keeps
/// working for its holder and does not disturb a new file of the same name; no journal is left behind.
#[test]
fn files_renamed_or_unlinked_while_open_leave_no_stray_journal() {
    if !fuse_available() || arca_testkit::require_tool("python3").is_none() {
        return;
    }
    let t = setup();
    let m = Mount::encrypted(t.path());
    let script = r#"
import os, sys
d = sys.argv[1]
big = os.urandom(6 << 20)
f = open(os.path.join(d, "gone"), "wb"); f.write(big)
os.unlink(os.path.join(d, "gone"))
f.write(big); f.close()
open(os.path.join(d, "gone"), "wb").write(b"new file")
g = open(os.path.join(d, "g"), "wb"); g.write(big)
os.rename(os.path.join(d, "g"), os.path.join(d, "h"))
g.write(big); g.close()
assert open(os.path.join(d, "gone"), "rb").read() == b"new file"
assert open(os.path.join(d, "h"), "rb").read() == big + big
print("ok")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(t.path().join("mnt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    m.unmount();
    let names: Vec<String> = fs::read_dir(t.path().join("enc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".arca-journal")), "{names:?}");
    let m = Mount::encrypted(t.path());
    assert_eq!(fs::read(t.path().join("mnt/gone")).unwrap(), b"new file");
    assert_eq!(fs::metadata(t.path().join("mnt/h")).unwrap().len(), 12 << 20);
    m.unmount();
}

fn concurrent_pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

/// Several threads write their own files (sequential appends, rewrites of odd ranges, small and 1 MiB
/// writes) while others read a shared file at odd offsets: every byte read is right, during the run, after
/// it through the page cache, and after a remount from the ciphertext.
#[test]
fn concurrent_readers_and_writers_see_exactly_their_data() {
    if !fuse_available() {
        return;
    }
    let t = setup();
    let m = Mount::encrypted(t.path());
    let mnt = t.path().join("mnt");
    let shared = concurrent_pattern(200, 5 << 20);
    fs::write(mnt.join("shared.bin"), &shared).unwrap();
    let expected: Vec<Vec<u8>> = (0..4u8)
        .map(|w| {
            let mut v = concurrent_pattern(w, (3 << 20) + 12345);
            // The rewrite each writer makes after its appends.
            let fix = concurrent_pattern(w.wrapping_add(100), 70_000);
            v[1_000_000..1_070_000].copy_from_slice(&fix);
            v
        })
        .collect();
    std::thread::scope(|s| {
        for w in 0..4u8 {
            let (mnt, expected) = (&mnt, &expected);
            s.spawn(move || {
                use std::io::Write;
                use std::os::unix::fs::FileExt;
                let data = concurrent_pattern(w, (3 << 20) + 12345);
                let path = mnt.join(format!("w{w}.bin"));
                let mut f = fs::File::create(&path).unwrap();
                // Odd chunk sizes: 1 MiB, then small writes that straddle nodes.
                let (big, small) = data.split_at(1 << 20);
                f.write_all(big).unwrap();
                for c in small.chunks(if w % 2 == 0 { 4096 } else { 7777 }) {
                    f.write_all(c).unwrap();
                }
                let fix = concurrent_pattern(w.wrapping_add(100), 70_000);
                f.write_all_at(&fix, 1_000_000).unwrap();
                if w == 0 {
                    f.sync_all().unwrap();
                }
                drop(f);
                assert!(
                    fs::read(&path).unwrap() == expected[w as usize],
                    "writer {w} reads back its file"
                );
            });
        }
        for r in 0..3u64 {
            let (mnt, shared) = (&mnt, &shared);
            s.spawn(move || {
                use std::os::unix::fs::FileExt;
                let f = fs::File::open(mnt.join("shared.bin")).unwrap();
                let mut state = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(r + 1);
                for _ in 0..300 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let len = [1usize, 4096, 5000, 65_536, 1 << 20][(state % 5) as usize];
                    let off = (state >> 8) as usize % (shared.len() - len);
                    let mut buf = vec![0u8; len];
                    f.read_exact_at(&mut buf, off as u64).unwrap();
                    assert!(buf == shared[off..off + len], "reader {r} at {off}+{len}");
                }
            });
        }
    });
    m.unmount();
    let m = Mount::encrypted(t.path());
    for (w, want) in expected.iter().enumerate() {
        assert!(
            fs::read(mnt.join(format!("w{w}.bin"))).unwrap() == *want,
            "w{w}.bin after remount"
        );
    }
    assert!(fs::read(mnt.join("shared.bin")).unwrap() == shared);
    m.unmount();
}

/// Host files of `enc` that the shield process still holds open although they were deleted.
fn deleted_files_held(m: &Mount, enc: &Path) -> Vec<String> {
    let enc = fs::canonicalize(enc).unwrap();
    fs::read_dir(format!("/proc/{}/fd", m.child.id()))
        .unwrap()
        .filter_map(|e| fs::read_link(e.unwrap().path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.starts_with(enc.to_str().unwrap()) && p.ends_with(" (deleted)"))
        .collect()
}

/// Waits (the kernel sends `release` after `close` returns) until the shield holds no deleted host file.
fn assert_no_deleted_file_held(m: &Mount, enc: &Path) {
    let start = Instant::now();
    loop {
        let held = deleted_files_held(m, enc);
        if held.is_empty() {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still held: {held:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Through a descriptor opened before the unlink: fstat reports the right size, writes extend the file,
/// reads see every byte, ftruncate shrinks it — as POSIX requires until the last close.
fn exercise_orphan(f: &fs::File, mut expected: Vec<u8>) {
    use std::os::unix::fs::FileExt;
    assert_eq!(
        f.metadata().unwrap().len(),
        expected.len() as u64,
        "fstat after unlink"
    );
    let more = concurrent_pattern(77, 200_000);
    f.write_all_at(&more, expected.len() as u64).unwrap();
    expected.extend_from_slice(&more);
    f.write_all_at(b"patched", 10).unwrap();
    expected[10..17].copy_from_slice(b"patched");
    assert_eq!(
        f.metadata().unwrap().len(),
        expected.len() as u64,
        "fstat after writes"
    );
    let mut back = vec![0u8; expected.len()];
    f.read_exact_at(&mut back, 0).unwrap();
    assert!(back == expected, "read back after unlink");
    f.set_len(5000).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 5000, "fstat after ftruncate");
    let mut back = vec![0u8; 6000];
    assert_eq!(f.read_at(&mut back, 0).unwrap(), 5000);
    assert!(back[..5000] == expected[..5000], "read back after ftruncate");
    f.sync_all().unwrap();
}

/// A file unlinked, or replaced by a rename, while it is open keeps working through its descriptor (fstat,
/// write, read, ftruncate, fsync) until the last close; then its ciphertext is gone: not in the backing
/// directory, not held open by the shield, and the names now hold exactly what they should.
#[test]
fn files_unlinked_or_replaced_while_open_keep_working_until_the_last_close() {
    if !fuse_available() {
        return;
    }
    let t = setup();
    let enc = t.path().join("enc");
    let m = Mount::encrypted(t.path());
    let mnt = t.path().join("mnt");
    let open_rw = |p: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .unwrap()
    };

    // Unlinked while open (written before the unlink, partly flushed by a second descriptor's close).
    let data = concurrent_pattern(1, 300_000);
    let f = open_rw(&mnt.join("gone"));
    {
        use std::io::Write;
        (&f).write_all(&data).unwrap();
    }
    drop(open_rw(&mnt.join("gone")));
    fs::remove_file(mnt.join("gone")).unwrap();
    assert!(!enc.join("gone").exists(), "ciphertext name removed at unlink");
    fs::write(mnt.join("gone"), b"a new file of the same name").unwrap();
    exercise_orphan(&f, data);
    drop(f);
    assert_no_deleted_file_held(&m, &enc);

    // Replaced by a rename while open.
    let old = concurrent_pattern(2, 150_000);
    fs::write(mnt.join("target"), &old).unwrap();
    let f = open_rw(&mnt.join("target"));
    fs::write(mnt.join("src"), b"the replacement").unwrap();
    fs::rename(mnt.join("src"), mnt.join("target")).unwrap();
    exercise_orphan(&f, old);
    assert_eq!(fs::read(mnt.join("target")).unwrap(), b"the replacement");
    drop(f);
    assert_no_deleted_file_held(&m, &enc);

    assert_eq!(
        fs::read(mnt.join("gone")).unwrap(),
        b"a new file of the same name"
    );
    assert_eq!(fs::read(mnt.join("target")).unwrap(), b"the replacement");
    m.unmount();
    let mut names: Vec<String> = fs::read_dir(&enc)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".arca-volume"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["gone", "target"],
        "only the live files remain in the backing directory"
    );
    let m = Mount::encrypted(t.path());
    assert_eq!(
        fs::read(mnt.join("gone")).unwrap(),
        b"a new file of the same name"
    );
    assert_eq!(fs::read(mnt.join("target")).unwrap(), b"the replacement");
    m.unmount();
}

/// Runs a Python script with the mount point as its argument; it must succeed and print "ok".
fn run_python_ok(script: &str, mnt: &Path) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
