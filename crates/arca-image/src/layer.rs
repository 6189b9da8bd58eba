//! Safe layer semantics: entry names, whiteouts, the merged file tree, and unpacking onto a directory.
//!
//! Layers are applied with overlay semantics, which is what podman and containerd give at run time: a path
//! inside a layer is **never resolved through a symlink**. If a lower layer has `lib -> usr/lib` and an upper
//! layer holds `lib/x`, the upper layer's implicit directory `lib` replaces the symlink (overlayfs hides a
//! lower non-directory under an upper directory). So no symlink is ever followed while applying, and no
//! symlink target can make a write land outside the root. Names are refused when absolute, when they contain
//! a `..` component, a NUL or a newline, or are not UTF-8; hard-link targets obey the same rules and must
//! name an existing non-directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::tar::{Header, Kind, TarReader};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What one tar entry does to the tree.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// The root itself (`./`): nothing to do.
    Root,
    /// Delete this path (and everything under it) from lower layers.
    Whiteout(String),
    /// Hide everything lower layers put under this directory.
    Opaque(String),
    /// Create or replace this path.
    Put(String),
    /// An overlay/aufs metadata entry (`.wh..wh.plnk`, ...): ignored.
    Ignore,
}

/// Normalises a name from a tar header into `a/b/c` (no leading slash, no `.` components, no trailing
/// slash); `""` is the root. Refuses unsafe names with the reason.
pub(crate) fn normalize(name: &[u8]) -> std::result::Result<String, String> {
    let s = std::str::from_utf8(name).map_err(|_| "name is not UTF-8 (not supported)".to_string())?;
    if s.contains('\0') || s.contains('\n') {
        return Err("name contains a NUL or newline".into());
    }
    if s.starts_with('/') {
        return Err("absolute name (would be written outside the layer's root)".into());
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("name contains a `..` component (path escape)".into()),
            c if c.len() > 255 => return Err("a name component is longer than 255 bytes".into()),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// Classifies an entry; `what` names the layer in errors.
pub(crate) fn classify(h: &Header, what: &str) -> Result<Op> {
    let unsafe_entry = |reason: String| Error::UnsafeEntry {
        what: what.to_string(),
        entry: String::from_utf8_lossy(&h.name).into_owned(),
        reason,
    };
    let path = normalize(&h.name).map_err(unsafe_entry)?;
    if path.is_empty() {
        return Ok(Op::Root);
    }
    let (parent, base) = split_parent(&path);
    if base == OPAQUE {
        return Ok(Op::Opaque(parent.to_string()));
    }
    if base.starts_with(".wh..wh.") {
        return Ok(Op::Ignore);
    }
    if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() {
            return Err(unsafe_entry("empty whiteout name".into()));
        }
        let target = if parent.is_empty() {
            hidden.to_string()
        } else {
            format!("{parent}/{hidden}")
        };
        return Ok(Op::Whiteout(target));
    }
    if h.kind == Kind::HardLink {
        let target = normalize(&h.link).map_err(|r| unsafe_entry(format!("hard-link target: {r}")))?;
        if target.is_empty() {
            return Err(unsafe_entry("hard link to the root directory".into()));
        }
    }
    Ok(Op::Put(path))
}

/// One node of the merged tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    /// The index of the layer that last wrote this path.
    pub(crate) layer: usize,
}

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// A regular file with its content's SHA-256 and size.
    File {
        sha256: [u8; 32],
        size: u64,
    },
    Dir,
    Symlink(String),
    Special,
}

/// The merged view of an image's layers, built while streaming them (no unpacking to disk).
#[derive(Default, Debug)]
pub(crate) struct Tree {
    pub(crate) nodes: BTreeMap<String, Node>,
}

fn descendants_range(path: &str) -> (String, String) {
    // Every key under `path/` sorts between `path/` and `path0` ('0' is '/' + 1).
    (format!("{path}/"), format!("{path}0"))
}

impl Tree {
    fn remove_subtree(&mut self, path: &str, below_layer: Option<usize>) {
        let (lo, hi) = descendants_range(path);
        let doomed: Vec<String> = self
            .nodes
            .range(lo..hi)
            .filter(|(_, n)| below_layer.is_none_or(|l| n.layer < l))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    fn ensure_parents(&mut self, path: &str, layer: usize) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let dir = &path[..end + i];
            match self.nodes.get(dir) {
                Some(n) if n.kind == NodeKind::Dir => {}
                Some(_) => {
                    // An upper directory hides a lower non-directory (overlay semantics).
                    self.nodes.insert(
                        dir.to_string(),
                        Node {
                            kind: NodeKind::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                            layer,
                        },
                    );
                }
                None => {
                    self.nodes.insert(
                        dir.to_string(),
                        Node {
                            kind: NodeKind::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                            layer,
                        },
                    );
                }
            }
            end += i + 1;
        }
    }

    /// Applies a whiteout or opaque marker of `layer`.
    pub(crate) fn apply_op(&mut self, op: &Op, layer: usize) {
        match op {
            Op::Whiteout(p) => {
                self.nodes.remove(p);
                self.remove_subtree(p, None);
            }
            Op::Opaque(d) => {
                self.remove_subtree(d, Some(layer));
            }
            _ => {}
        }
    }

    /// Puts a node at `path`, replacing what lower entries had there.
    pub(crate) fn put(&mut self, path: &str, node: Node) {
        self.ensure_parents(path, node.layer);
        let keep_children =
            node.kind == NodeKind::Dir && self.nodes.get(path).is_some_and(|n| n.kind == NodeKind::Dir);
        if !keep_children {
            self.remove_subtree(path, None);
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// Resolves a hard link: the node its target names, which must exist and not be a directory.
    pub(crate) fn link_target(&self, target: &str) -> Option<&Node> {
        self.nodes.get(target).filter(|n| n.kind != NodeKind::Dir)
    }

    /// Regular files, by path (sorted).
    pub(crate) fn files(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n.kind, NodeKind::File { .. }))
    }
}

/// Statistics of an unpack.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries written (files, directories, links).
    pub entries: u64,
    /// Whiteouts and opaque markers applied.
    pub whiteouts: u64,
    /// Device nodes and FIFOs skipped because the process is not root.
    pub skipped_special: u64,
}

/// Unpacks layers onto a directory, with the same safe overlay semantics as the merged tree.
pub struct Unpacker {
    root: PathBuf,
    is_root: bool,
    /// Directory modes, applied at the end so that read-only directories can still be filled.
    dir_modes: BTreeMap<String, u32>,
    stats: UnpackStats,
    layers_applied: usize,
}

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| Error::io(step, path, e)
}

impl Unpacker {
    /// Unpacks onto `root`, which must be an existing directory (normally empty).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let meta = fs::symlink_metadata(&root).map_err(|e| Error::io("open unpack root", &root, e))?;
        if !meta.is_dir() {
            return Err(Error::Convert {
                reason: format!("unpack root {} is not a directory", root.display()),
            });
        }
        Ok(Unpacker {
            root,
            is_root: rustix::process::geteuid().is_root(),
            dir_modes: BTreeMap::new(),
            stats: UnpackStats::default(),
            layers_applied: 0,
        })
    }

    /// Makes every parent of `rel` a real directory (replacing a non-directory, never following one) and
    /// returns the host path of `rel`.
    fn prepare_parents(&self, rel: &str) -> Result<PathBuf> {
        let mut host = self.root.clone();
        let (parent, base) = split_parent(rel);
        if !parent.is_empty() {
            for c in parent.split('/') {
                host.push(c);
                match fs::symlink_metadata(&host) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&host).map_err(io_err("replace non-directory parent", &host))?;
                        fs::create_dir(&host).map_err(io_err("create parent directory", &host))?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        fs::create_dir(&host).map_err(io_err("create parent directory", &host))?;
                    }
                    Err(e) => return Err(Error::io("inspect parent", &host, e)),
                }
            }
        }
        host.push(base);
        Ok(host)
    }

    /// The host path of `rel` if every parent is a real directory (no symlink followed), for link targets.
    fn existing(&self, rel: &str) -> Option<PathBuf> {
        let mut host = self.root.clone();
        let (parent, base) = split_parent(rel);
        if !parent.is_empty() {
            for c in parent.split('/') {
                host.push(c);
                if !fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
                    return None;
                }
            }
        }
        host.push(base);
        fs::symlink_metadata(&host)
            .ok()
            .filter(|m| !m.is_dir())
            .map(|_| host)
    }

    fn remove_existing(path: &Path, keep_dir: bool) -> Result<()> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                if !keep_dir {
                    fs::remove_dir_all(path).map_err(io_err("replace directory", path))?;
                }
            }
            Ok(_) => fs::remove_file(path).map_err(io_err("replace file", path))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("inspect", path, e)),
        }
        Ok(())
    }

    /// Applies one layer (an uncompressed tar stream; wrap compressed blobs with a decoder first).
    pub fn apply(&mut self, tar: impl io::Read, what: &str) -> Result<()> {
        self.layers_applied += 1;
        let mut reader = TarReader::new(tar, what);
        // Paths this layer wrote, so an opaque marker (which may come after them) spares them.
        let mut written: std::collections::BTreeSet<String> = Default::default();
        while let Some(h) = reader.next_header()? {
            let op = classify(&h, what)?;
            match op {
                Op::Root | Op::Ignore => {}
                Op::Whiteout(ref p) => {
                    self.stats.whiteouts += 1;
                    let host = self.prepare_parents(p)?;
                    Self::remove_existing(&host, false)?;
                    let (lo, hi) = descendants_range(p);
                    let gone: Vec<String> = self.dir_modes.range(lo..hi).map(|(k, _)| k.clone()).collect();
                    for k in gone {
                        self.dir_modes.remove(&k);
                    }
                    self.dir_modes.remove(p);
                }
                Op::Opaque(ref d) => {
                    self.stats.whiteouts += 1;
                    let marker = if d.is_empty() {
                        OPAQUE.to_string()
                    } else {
                        format!("{d}/{OPAQUE}")
                    };
                    let dir = self
                        .prepare_parents(&marker)?
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| self.root.clone());
                    if let Ok(rd) = fs::read_dir(&dir) {
                        for ent in rd {
                            let ent = ent.map_err(io_err("list opaque directory", &dir))?;
                            let name = ent.file_name();
                            let rel = match name.to_str() {
                                Some(n) if d.is_empty() => n.to_string(),
                                Some(n) => format!("{d}/{n}"),
                                None => continue,
                            };
                            if written.contains(&rel) {
                                continue;
                            }
                            Self::remove_existing(&ent.path(), false)?;
                        }
                    }
                }
                Op::Put(ref p) => {
                    self.put(&h, p, &mut reader, what)?;
                    written.insert(p.clone());
                    self.stats.entries += 1;
                }
            }
        }
        reader.drain()?;
        Ok(())
    }

    fn put<R: io::Read>(
        &mut self,
        h: &Header,
        rel: &str,
        reader: &mut TarReader<R>,
        what: &str,
    ) -> Result<()> {
        let host = self.prepare_parents(rel)?;
        match h.kind {
            Kind::Directory => {
                Self::remove_existing(&host, true)?;
                if !host.is_dir() {
                    fs::create_dir(&host).map_err(io_err("create directory", &host))?;
                }
                self.dir_modes.insert(rel.to_string(), h.mode);
            }
            Kind::File => {
                Self::remove_existing(&host, false)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&host)
                    .map_err(io_err("create file", &host))?;
                reader.copy_data(&mut f)?;
                f.set_permissions(fs::Permissions::from_mode(h.mode))
                    .map_err(io_err("set mode", &host))?;
            }
            Kind::Symlink => {
                Self::remove_existing(&host, false)?;
                let target = std::str::from_utf8(&h.link).map_err(|_| Error::UnsafeEntry {
                    what: what.to_string(),
                    entry: rel.to_string(),
                    reason: "symlink target is not UTF-8".into(),
                })?;
                symlink(target, &host).map_err(io_err("create symlink", &host))?;
            }
            Kind::HardLink => {
                let target_rel = normalize(&h.link).map_err(|r| Error::UnsafeEntry {
                    what: what.to_string(),
                    entry: rel.to_string(),
                    reason: r,
                })?;
                let Some(target) = self.existing(&target_rel) else {
                    return Err(Error::UnsafeEntry {
                        what: what.to_string(),
                        entry: rel.to_string(),
                        reason: format!("hard-link target `{target_rel}` does not exist (or is a directory, or lies behind a symlink)"),
                    });
                };
                if target == host {
                    return Ok(());
                }
                Self::remove_existing(&host, false)?;
                fs::hard_link(&target, &host).map_err(io_err("create hard link", &host))?;
                return Ok(());
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo => {
                Self::remove_existing(&host, false)?;
                if !self.is_root && h.kind != Kind::Fifo {
                    self.stats.skipped_special += 1;
                    tracing::warn!("{what}: skipped device node {rel} (not root)");
                    return Ok(());
                }
                let ftype = match h.kind {
                    Kind::CharDevice => rustix::fs::FileType::CharacterDevice,
                    Kind::BlockDevice => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &host,
                    ftype,
                    rustix::fs::Mode::from_raw_mode(h.mode),
                    rustix::fs::makedev(h.devmajor, h.devminor),
                )
                .map_err(|e| Error::io("create special file", &host, e.into()))?;
            }
        }
        if self.is_root {
            let uid = u32::try_from(h.uid).ok();
            let gid = u32::try_from(h.gid).ok();
            std::os::unix::fs::lchown(&host, uid, gid).map_err(io_err("set owner", &host))?;
        }
        Ok(())
    }

    /// Applies the recorded directory modes and returns the statistics.
    pub fn finish(self) -> Result<UnpackStats> {
        // Deepest first, so that making a parent read-only cannot block its children.
        for (rel, mode) in self.dir_modes.iter().rev() {
            let host = self.root.join(rel);
            if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
                fs::set_permissions(&host, fs::Permissions::from_mode(*mode))
                    .map_err(io_err("set directory mode", &host))?;
            }
        }
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names_and_refuses_escapes() {
        assert_eq!(normalize(b"./usr/bin/").unwrap(), "usr/bin");
        assert_eq!(normalize(b"./").unwrap(), "");
        assert_eq!(normalize(b"a//b/./c").unwrap(), "a/b/c");
        assert!(normalize(b"/etc/passwd").unwrap_err().contains("absolute"));
        assert!(normalize(b"a/../../etc").unwrap_err().contains(".."));
        assert!(normalize(b"..").unwrap_err().contains(".."));
        assert!(normalize(b"a\nb").is_err());
        assert!(normalize(&[b'a', 0xff]).unwrap_err().contains("UTF-8"));
    }

    fn file(layer: usize) -> Node {
        Node {
            kind: NodeKind::File {
                sha256: [layer as u8; 32],
                size: 1,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            layer,
        }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        let mut t = Tree::default();
        t.put("a/x", file(0));
        t.put("a/y", file(0));
        t.put("b/z", file(0));
        t.put("a/new", file(1));
        t.apply_op(&Op::Opaque("a".into()), 1);
        t.apply_op(&Op::Whiteout("b".into()), 1);
        let names: Vec<_> = t.files().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a/new"]);
    }

    #[test]
    fn an_upper_directory_replaces_a_lower_symlink_instead_of_following_it() {
        let mut t = Tree::default();
        t.put(
            "lib",
            Node {
                kind: NodeKind::Symlink("/etc".into()),
                mode: 0o777,
                uid: 0,
                gid: 0,
                layer: 0,
            },
        );
        t.put("lib/x", file(1));
        assert_eq!(t.nodes["lib"].kind, NodeKind::Dir);
        assert!(t.nodes.contains_key("lib/x"));
    }
}
