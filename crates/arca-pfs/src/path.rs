//! The bound path: the normalised path string stored in (and authenticated by) a file's metadata.

use crate::format::MAX_PATH_LEN;
use crate::Error;

/// A normalised path bound into a protected file's metadata.
///
/// Normalised the way Gramine's callers normalise before `pf_open`: repeated `/` collapsed, `.` components
/// dropped, `..` resolved lexically (never above `/` for absolute paths; kept at the front of relative ones),
/// a trailing `/` removed; a relative path stays relative. Gramine then compares the stored path byte for
/// byte, and so does Arca. Inside Gramine the bound path is the normalised **host** path (the mount's `uri`
/// without `file:`, then `/`, then the path relative to the mount) — see `docs/protected-files.md`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BoundPath(String);

impl BoundPath {
    /// Normalises `path` and checks that it fits the 771-byte field and holds no NUL.
    pub fn new(path: &str) -> Result<Self, Error> {
        if path.is_empty() {
            return Err(Error::InvalidPath {
                path: path.into(),
                reason: "the path is empty",
            });
        }
        if path.contains('\0') {
            return Err(Error::InvalidPath {
                path: path.into(),
                reason: "the path contains a NUL byte",
            });
        }
        let absolute = path.starts_with('/');
        let mut parts: Vec<&str> = Vec::new();
        for comp in path.split('/') {
            match comp {
                "" | "." => {}
                ".." => match parts.last() {
                    Some(&last) if last != ".." => {
                        parts.pop();
                    }
                    _ if absolute => {}
                    _ => parts.push(".."),
                },
                c => parts.push(c),
            }
        }
        let joined = parts.join("/");
        let norm = match (absolute, joined.is_empty()) {
            (true, _) => format!("/{joined}"),
            (false, true) => ".".to_string(),
            (false, false) => joined,
        };
        if norm.len() > MAX_PATH_LEN {
            return Err(Error::InvalidPath {
                path: path.into(),
                reason: "the path is longer than 771 bytes",
            });
        }
        Ok(Self(norm))
    }

    /// Joins a mount's host directory and a path relative to the mount, as Gramine builds a bound path.
    pub fn in_mount(host_dir: &str, relative: &str) -> Result<Self, Error> {
        Self::new(&format!("{host_dir}/{relative}"))
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Builds a bound path from bytes read out of an authenticated metadata blob (not normalised again).
    pub(crate) fn from_stored(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Display for BoundPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        BoundPath::new(p).unwrap().as_str().to_string()
    }

    #[test]
    fn normalises_like_gramine_callers() {
        assert_eq!(norm("/app//data/./file.bin"), "/app/data/file.bin");
        assert_eq!(norm("/app/data/../data/file.bin/"), "/app/data/file.bin");
        assert_eq!(norm("/../x"), "/x");
        assert_eq!(norm("a/../../b"), "../b");
        assert_eq!(norm("./a/b/"), "a/b");
        assert_eq!(norm("/"), "/");
    }

    #[test]
    fn rejects_overlong_and_nul_paths() {
        assert!(BoundPath::new(&format!("/{}", "a".repeat(771))).is_err());
        assert!(BoundPath::new(&format!("/{}", "a".repeat(770))).is_ok());
        assert!(BoundPath::new("/a\0b").is_err());
    }
}
