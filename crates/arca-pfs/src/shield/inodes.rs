//! Inode numbers for a path-based view: the root is 1; every path looked up gets a stable number.

use std::collections::HashMap;

/// Path ↔ inode table. Paths are relative to the view's root ("" is the root).
#[derive(Debug, Default)]
pub(crate) struct Inodes {
    by_ino: HashMap<u64, String>,
    by_path: HashMap<String, u64>,
    next: u64,
}

impl Inodes {
    pub(crate) fn new() -> Self {
        let mut me = Self {
            next: 2,
            ..Self::default()
        };
        me.by_ino.insert(1, String::new());
        me.by_path.insert(String::new(), 1);
        me
    }

    pub(crate) fn path(&self, ino: u64) -> Option<&str> {
        self.by_ino.get(&ino).map(String::as_str)
    }

    pub(crate) fn ino(&mut self, path: &str) -> u64 {
        if let Some(&i) = self.by_path.get(path) {
            return i;
        }
        let i = self.next;
        self.next += 1;
        self.by_ino.insert(i, path.to_string());
        self.by_path.insert(path.to_string(), i);
        i
    }

    pub(crate) fn lookup(&self, path: &str) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    pub(crate) fn child(&self, parent: u64, name: &str) -> Option<String> {
        let p = self.path(parent)?;
        Some(if p.is_empty() {
            name.to_string()
        } else {
            format!("{p}/{name}")
        })
    }

    /// Moves `from` (and everything below it) to `to`; an inode previously at `to` is dropped.
    pub(crate) fn rename(&mut self, from: &str, to: &str) {
        if let Some(old) = self.by_path.remove(to) {
            self.by_ino.remove(&old);
        }
        let below = format!("{from}/");
        let moved: Vec<(String, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.as_str() == from || p.starts_with(&below))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        for (p, i) in moved {
            let np = format!("{to}{}", &p[from.len()..]);
            self.by_path.remove(&p);
            self.by_path.insert(np.clone(), i);
            self.by_ino.insert(i, np);
        }
    }

    pub(crate) fn remove(&mut self, path: &str) {
        if let Some(i) = self.by_path.remove(path) {
            self.by_ino.remove(&i);
        }
    }
}
