//! The on-disk layout of Gramine's protected files (format v2, Gramine ≥ 1.9; v1 for reading), as exact types
//! and node-numbering functions. All integers are little-endian.
//!
//! ```text
//! metadata node (physical node 0, 4096 bytes)
//!   0..8      file id "GRAFS_PF" (0x46505f5346415247 LE)
//!   8         major version (2; v1 files: 1)
//!   9         minor version (0)
//!   10..42    KDF nonce
//!   42..58    GCM tag of the encrypted metadata blob       ← the file's "root MAC"
//!   58        flags (bit 0 = pending write)                 (v2 only)
//!   59..3943  encrypted metadata blob (3884 bytes)          (v1: 58..3942)
//!   3943..    zero padding (not authenticated)
//! metadata blob plaintext
//!   0..772    bound path, NUL-terminated, zero-filled
//!   772..780  plaintext size u64
//!   780..796  root MHT node key;  796..812 root MHT node tag
//!   812..3884 first 3072 plaintext bytes
//! MHT node plaintext: 96 data entries then 32 child-MHT entries, each key (16) ‖ tag (16)
//! ```

use crate::crypto::KEY_SIZE;

/// Size of every node of a protected file.
pub const NODE_SIZE: usize = 4096;
/// Plaintext bytes held by the metadata node.
pub const MD_DATA_SIZE: usize = 3072;
/// Data entries per MHT node.
pub const DATA_PER_MHT: u64 = 96;
/// Child-MHT entries per MHT node.
pub const CHILDREN_PER_MHT: u64 = 32;
/// Size of the bound-path field, including the terminating NUL.
pub(crate) const PATH_FIELD_SIZE: usize = 772;
/// Longest bound path, in bytes.
pub const MAX_PATH_LEN: usize = PATH_FIELD_SIZE - 1;

pub(crate) const FILE_ID: &[u8; 8] = b"GRAFS_PF";
pub(crate) const OFF_MAJOR: usize = 8;
pub(crate) const OFF_MINOR: usize = 9;
pub(crate) const OFF_NONCE: usize = 10;
pub(crate) const OFF_TAG: usize = 42;
pub(crate) const OFF_FLAGS_V2: usize = 58;
pub(crate) const OFF_BLOB_V1: usize = 58;
pub(crate) const OFF_BLOB_V2: usize = 59;
pub(crate) const BLOB_SIZE: usize = 3884;
pub(crate) const BLOB_OFF_SIZE: usize = 772;
pub(crate) const BLOB_OFF_ROOT_KEY: usize = 780;
pub(crate) const BLOB_OFF_ROOT_TAG: usize = 796;
pub(crate) const BLOB_OFF_DATA: usize = 812;
/// Flags bit 0: a write was in progress (set before nodes are written, cleared by the final metadata write).
pub(crate) const FLAG_PENDING_WRITE: u8 = 0x01;

/// Format version of a protected file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatVersion {
    /// Gramine ≤ 1.8: no flags byte; read only (Arca rewrites such a file as v2 on its first flush).
    V1,
    /// Gramine ≥ 1.9: the version Arca writes.
    V2,
}

impl FormatVersion {
    /// The major version byte.
    pub fn major(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    pub(crate) fn blob_offset(self) -> usize {
        match self {
            Self::V1 => OFF_BLOB_V1,
            Self::V2 => OFF_BLOB_V2,
        }
    }
}

/// One MHT entry: the key and GCM tag of a child node. All-zero means "no node written yet".
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: [u8; KEY_SIZE],
    pub(crate) tag: [u8; KEY_SIZE],
}

impl Entry {
    pub(crate) const SIZE: usize = 32;

    pub(crate) fn read(buf: &[u8], index: usize) -> Self {
        let at = index * Self::SIZE;
        let mut e = Self::default();
        e.key.copy_from_slice(&buf[at..at + KEY_SIZE]);
        e.tag.copy_from_slice(&buf[at + KEY_SIZE..at + Self::SIZE]);
        e
    }

    pub(crate) fn write(&self, buf: &mut [u8], index: usize) {
        let at = index * Self::SIZE;
        buf[at..at + KEY_SIZE].copy_from_slice(&self.key);
        buf[at + KEY_SIZE..at + Self::SIZE].copy_from_slice(&self.tag);
    }
}

/// Number of data nodes for a plaintext of `size` bytes.
pub(crate) fn data_nodes(size: u64) -> u64 {
    size.saturating_sub(MD_DATA_SIZE as u64)
        .div_ceil(NODE_SIZE as u64)
}

/// Number of MHT nodes for `n_data` data nodes.
pub(crate) fn mht_nodes(n_data: u64) -> u64 {
    n_data.div_ceil(DATA_PER_MHT)
}

/// Size in bytes of the protected file holding `plaintext_len` bytes, as Gramine writes it.
pub fn protected_size(plaintext_len: u64) -> u64 {
    let n_data = data_nodes(plaintext_len);
    (1 + mht_nodes(n_data) + n_data) * NODE_SIZE as u64
}

/// Physical node number of logical data node `d`.
pub(crate) fn data_physical(d: u64) -> u64 {
    d + 2 + d / DATA_PER_MHT
}

/// Physical node number of logical MHT node `l` (0 = root MHT = physical 1).
pub(crate) fn mht_physical(l: u64) -> u64 {
    1 + (DATA_PER_MHT + 1) * l
}

/// The MHT node holding data node `d`'s entry, and the entry index.
pub(crate) fn data_parent(d: u64) -> (u64, usize) {
    (d / DATA_PER_MHT, (d % DATA_PER_MHT) as usize)
}

/// The MHT node holding MHT node `l`'s entry (l ≥ 1), and the entry index (after the 96 data entries).
pub(crate) fn mht_parent(l: u64) -> (u64, usize) {
    (
        (l - 1) / CHILDREN_PER_MHT,
        (DATA_PER_MHT + (l - 1) % CHILDREN_PER_MHT) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_numbering_matches_gramine_layout() {
        assert_eq!(data_physical(0), 2);
        assert_eq!(data_physical(95), 97);
        assert_eq!(mht_physical(1), 98);
        assert_eq!(data_physical(96), 99);
        assert_eq!(mht_parent(1), (0, 96));
        assert_eq!(mht_parent(32), (0, 127));
        assert_eq!(mht_parent(33), (1, 96));
        assert_eq!(data_parent(97), (1, 1));
    }

    #[test]
    fn protected_size_matches_the_vector_table() {
        assert_eq!(protected_size(0), 4096);
        assert_eq!(protected_size(3072), 4096);
        assert_eq!(protected_size(3073), 12288);
        assert_eq!(protected_size(4096), 12288);
        assert_eq!(protected_size(100_000), 106_496);
        assert_eq!(protected_size(1_048_576), 1_064_960);
    }

    #[test]
    fn blob_fields_fill_the_metadata_node() {
        assert_eq!(BLOB_OFF_DATA + MD_DATA_SIZE, BLOB_SIZE);
        assert_eq!(OFF_BLOB_V2 + BLOB_SIZE, 3943);
        assert_eq!(
            Entry::SIZE * (DATA_PER_MHT + CHILDREN_PER_MHT) as usize,
            NODE_SIZE
        );
    }
}
