//! The enclave layout (format version 1) and the identity function (contract 2).
//!
//! The layout says which pages an Arca enclave is made of, at which offsets, with which SECINFO flags, and
//! which of them are measured. `docs/enclave-layout.md` is its specification; this module is its one
//! implementation, called by the converter, the launcher, the simulation platform and `arca inspect`.
//!
//! ```text
//! offset 0          header page     REG  r--  measured   layout description (below)
//! 0x1000            launcher        REG  r-x  measured   the launcher file, page by page, zero-padded
//! next page         manifest        REG  r--  measured   /arca/enclave.toml bytes, zero-padded
//! per thread t:     TCS             TCS  ---  measured   OSSA, NSSA = 2, OENTRY = launcher + e_entry
//!                   SSA (2 pages)   REG  rw-  unmeasured
//! up to SIZE        not added: heap and stacks are dynamic memory (SGX2 EAUG) at run time
//! ```
//! ECREATE: SSAFRAMESIZE = 1 page, SIZE = `enclave.size` from the manifest.

use std::io::{self, Write};

use arca_sgx::{
    Attributes, MeasurementBuilder, MiscSelect, Mrenclave, PageType, SecinfoFlags, SigstructFields,
};

use crate::error::Error;
use crate::manifest::EnclaveManifest;

/// The layout version this module implements (recorded in the header page and in image labels).
pub const LAYOUT_VERSION: u32 = 1;
/// Pages per SSA frame (ECREATE SSAFRAMESIZE).
pub const SSAFRAMESIZE: u32 = 1;
/// SSA frames per thread (TCS.NSSA).
pub const NSSA: u32 = 2;
/// The header page's magic bytes.
pub const HEADER_MAGIC: [u8; 8] = *b"ARCAENCL";
/// Largest launcher accepted (256 MiB).
pub const MAX_LAUNCHER: usize = 256 << 20;
/// Largest manifest accepted (16 MiB).
pub const MAX_MANIFEST: usize = 16 << 20;

const PAGE: u64 = 4096;
const PAGE_USIZE: usize = 4096;

/// What a region of the layout holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// The layout description page.
    Header,
    /// The launcher executable.
    Launcher,
    /// The enclave manifest.
    Manifest,
    /// The thread control structure of a thread.
    Tcs(u32),
    /// The state save area of a thread.
    Ssa(u32),
}

/// A run of pages with the same flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// What it holds.
    pub kind: RegionKind,
    /// Offset of its first page from the enclave base.
    pub offset: u64,
    /// Number of pages.
    pub pages: u64,
    /// SECINFO flags of its pages (what EADD measures).
    pub flags: SecinfoFlags,
    /// True when its pages' contents are EEXTENDed.
    pub measured: bool,
}

/// Facts about the launcher read from its ELF header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LauncherInfo {
    /// The entry point (`e_entry`), relative to the file's load address.
    pub entry: u64,
    /// True for a position-independent executable (`ET_DYN`, i.e. static-pie).
    pub pie: bool,
}

fn rd<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Checks that `elf` is a statically linked x86-64 ELF executable (no `PT_INTERP`: nothing the enclave does
/// not measure is loaded at run time) and returns its entry point.
pub fn inspect_launcher(elf: &[u8]) -> Result<LauncherInfo, Error> {
    let bad = |r: &str| Error::Launcher(r.to_string());
    if elf.len() > MAX_LAUNCHER {
        return Err(bad("larger than 256 MiB"));
    }
    if elf.get(0..4) != Some(b"\x7fELF") {
        return Err(bad("not an ELF file"));
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(bad("not a 64-bit little-endian ELF file"));
    }
    let e_type = u16::from_le_bytes(rd(elf, 16).ok_or_else(|| bad("truncated ELF header"))?);
    let machine = u16::from_le_bytes(rd(elf, 18).ok_or_else(|| bad("truncated ELF header"))?);
    if machine != 0x3e {
        return Err(bad(&format!("ELF machine {machine:#x} is not x86-64")));
    }
    let pie = match e_type {
        2 => false,
        3 => true,
        t => return Err(bad(&format!("ELF type {t} is not an executable"))),
    };
    let entry = u64::from_le_bytes(rd(elf, 24).ok_or_else(|| bad("truncated ELF header"))?);
    let phoff = u64::from_le_bytes(rd(elf, 32).ok_or_else(|| bad("truncated ELF header"))?);
    let phentsize = u16::from_le_bytes(rd(elf, 54).ok_or_else(|| bad("truncated ELF header"))?);
    let phnum = u16::from_le_bytes(rd(elf, 56).ok_or_else(|| bad("truncated ELF header"))?);
    if phentsize < 56 {
        return Err(bad("program header entries are too small"));
    }
    let mut has_load = false;
    for i in 0..u64::from(phnum) {
        let at = phoff
            .checked_add(i * u64::from(phentsize))
            .and_then(|a| usize::try_from(a).ok())
            .ok_or_else(|| bad("program headers out of range"))?;
        let p_type = u32::from_le_bytes(rd(elf, at).ok_or_else(|| bad("program headers out of range"))?);
        match p_type {
            1 => has_load = true,
            3 => return Err(bad("dynamically linked (it has an interpreter, PT_INTERP): the launcher must be statically linked")),
            _ => {}
        }
    }
    if !has_load {
        return Err(bad("no loadable segment"));
    }
    Ok(LauncherInfo { entry, pie })
}

/// The layout of one enclave: a launcher and a manifest, placed as `docs/enclave-layout.md` specifies.
#[derive(Debug)]
pub struct EnclaveLayout<'a> {
    launcher: &'a [u8],
    manifest_bytes: &'a [u8],
    manifest: EnclaveManifest,
    info: LauncherInfo,
    regions: Vec<Region>,
}

fn pages_for(len: usize) -> u64 {
    (len as u64).div_ceil(PAGE).max(1)
}

impl<'a> EnclaveLayout<'a> {
    /// Lays out an enclave from the launcher's bytes and the manifest's bytes (as stored in the image).
    /// Validates both; the manifest gives the enclave size and thread count.
    pub fn new(launcher: &'a [u8], manifest_bytes: &'a [u8]) -> Result<Self, Error> {
        let info = inspect_launcher(launcher)?;
        if manifest_bytes.len() > MAX_MANIFEST {
            return Err(Error::Layout("the manifest is larger than 16 MiB".into()));
        }
        let manifest = EnclaveManifest::from_toml(manifest_bytes)?;
        let r = |flags| SecinfoFlags::page(PageType::REG, flags);
        let mut regions = Vec::new();
        let mut at = 0;
        let mut push = |kind, pages, flags, measured| {
            regions.push(Region {
                kind,
                offset: at,
                pages,
                flags,
                measured,
            });
            at += pages * PAGE;
        };
        push(RegionKind::Header, 1, r(SecinfoFlags::R), true);
        push(
            RegionKind::Launcher,
            pages_for(launcher.len()),
            r(SecinfoFlags::R | SecinfoFlags::X),
            true,
        );
        push(
            RegionKind::Manifest,
            pages_for(manifest_bytes.len()),
            r(SecinfoFlags::R),
            true,
        );
        for t in 0..manifest.enclave.threads {
            push(
                RegionKind::Tcs(t),
                1,
                SecinfoFlags::page(PageType::TCS, SecinfoFlags::NONE),
                true,
            );
            push(
                RegionKind::Ssa(t),
                u64::from(NSSA * SSAFRAMESIZE),
                r(SecinfoFlags::R | SecinfoFlags::W),
                false,
            );
        }
        let used = at;
        if used > manifest.enclave.size / 2 {
            return Err(Error::Layout(format!(
                "launcher, manifest and {} threads take {used} bytes: more than half of enclave.size ({}); \
                 raise the enclave size",
                manifest.enclave.threads, manifest.enclave.size
            )));
        }
        Ok(EnclaveLayout {
            launcher,
            manifest_bytes,
            manifest,
            info,
            regions,
        })
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &EnclaveManifest {
        &self.manifest
    }

    /// The regions in load (and measurement) order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The enclave size (ECREATE SIZE).
    pub fn size(&self) -> u64 {
        self.manifest.enclave.size
    }

    /// Bytes of the enclave that are added at build time (the rest is dynamic memory).
    pub fn added_bytes(&self) -> u64 {
        self.regions.last().map_or(0, |r| r.offset + r.pages * PAGE)
    }

    fn region(&self, kind: RegionKind) -> Option<&Region> {
        self.regions.iter().find(|r| r.kind == kind)
    }

    /// The contents of page `i` of region `r` (zeros for unmeasured pages).
    fn page(&self, r: &Region, i: u64) -> [u8; PAGE_USIZE] {
        let mut page = [0u8; PAGE_USIZE];
        let slice = |bytes: &[u8], page: &mut [u8; PAGE_USIZE]| {
            let start = usize::try_from(i * PAGE).unwrap_or(usize::MAX).min(bytes.len());
            let end = start.saturating_add(PAGE_USIZE).min(bytes.len());
            page[..end - start].copy_from_slice(&bytes[start..end]);
        };
        match r.kind {
            RegionKind::Header => page = self.header_page(),
            RegionKind::Launcher => slice(self.launcher, &mut page),
            RegionKind::Manifest => slice(self.manifest_bytes, &mut page),
            RegionKind::Tcs(t) => page = self.tcs_page(t),
            RegionKind::Ssa(_) => {}
        }
        page
    }

    /// The header page: magic @0, layout version u32 @8, threads u32 @12, launcher length u64 @16, manifest
    /// length u64 @24, launcher offset u64 @32, manifest offset u64 @40, first TCS offset u64 @48, enclave size
    /// u64 @56, SSAFRAMESIZE u32 @64, NSSA u32 @68; zeros after.
    fn header_page(&self) -> [u8; PAGE_USIZE] {
        let mut p = [0u8; PAGE_USIZE];
        let off = |k| self.region(k).map_or(0, |r| r.offset);
        p[0..8].copy_from_slice(&HEADER_MAGIC);
        p[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        p[12..16].copy_from_slice(&self.manifest.enclave.threads.to_le_bytes());
        p[16..24].copy_from_slice(&(self.launcher.len() as u64).to_le_bytes());
        p[24..32].copy_from_slice(&(self.manifest_bytes.len() as u64).to_le_bytes());
        p[32..40].copy_from_slice(&off(RegionKind::Launcher).to_le_bytes());
        p[40..48].copy_from_slice(&off(RegionKind::Manifest).to_le_bytes());
        p[48..56].copy_from_slice(&off(RegionKind::Tcs(0)).to_le_bytes());
        p[56..64].copy_from_slice(&self.manifest.enclave.size.to_le_bytes());
        p[64..68].copy_from_slice(&SSAFRAMESIZE.to_le_bytes());
        p[68..72].copy_from_slice(&NSSA.to_le_bytes());
        p
    }

    /// A TCS page (SDM layout): FLAGS @8 = 0, OSSA @16, CSSA @24 = 0, NSSA @28, OENTRY @32, OFSBASE @48 = 0,
    /// OGSBASE @56 = 0, FSLIMIT @64 = 0xfff, GSLIMIT @68 = 0xfff; zeros elsewhere.
    fn tcs_page(&self, t: u32) -> [u8; PAGE_USIZE] {
        let mut p = [0u8; PAGE_USIZE];
        let ossa = self.region(RegionKind::Ssa(t)).map_or(0, |r| r.offset);
        let oentry = self
            .region(RegionKind::Launcher)
            .map_or(0, |r| r.offset)
            .wrapping_add(self.info.entry);
        p[16..24].copy_from_slice(&ossa.to_le_bytes());
        p[28..32].copy_from_slice(&NSSA.to_le_bytes());
        p[32..40].copy_from_slice(&oentry.to_le_bytes());
        p[64..68].copy_from_slice(&0xfffu32.to_le_bytes());
        p[68..72].copy_from_slice(&0xfffu32.to_le_bytes());
        p
    }

    /// MRENCLAVE: the layout replayed through the `arca-sgx` measurement builder.
    pub fn mrenclave(&self) -> Result<Mrenclave, Error> {
        let mut b = MeasurementBuilder::ecreate(SSAFRAMESIZE, self.size())?;
        for r in &self.regions {
            for i in 0..r.pages {
                let offset = r.offset + i * PAGE;
                if r.measured {
                    b.add_measured_page(offset, r.flags, &self.page(r, i))?;
                } else {
                    b.add_unmeasured_page(offset, r.flags)?;
                }
            }
        }
        Ok(b.finish())
    }

    /// Writes the layout as a canonical SGXS stream (the measured records, in order): `sha256` of it is
    /// MRENCLAVE, and `arca sgx measure` reads it.
    pub fn write_sgxs(&self, out: &mut impl Write) -> io::Result<()> {
        let mut rec = [0u8; 64];
        rec[0..8].copy_from_slice(b"ECREATE\0");
        rec[8..12].copy_from_slice(&SSAFRAMESIZE.to_le_bytes());
        rec[12..20].copy_from_slice(&self.size().to_le_bytes());
        out.write_all(&rec)?;
        for r in &self.regions {
            for i in 0..r.pages {
                let offset = r.offset + i * PAGE;
                let mut rec = [0u8; 64];
                rec[0..8].copy_from_slice(b"EADD\0\0\0\0");
                rec[8..16].copy_from_slice(&offset.to_le_bytes());
                rec[16..24].copy_from_slice(&r.flags.bits().to_le_bytes());
                out.write_all(&rec)?;
                if r.measured {
                    let page = self.page(r, i);
                    for (c, chunk) in page.chunks(256).enumerate() {
                        let mut rec = [0u8; 64];
                        rec[0..8].copy_from_slice(b"EEXTEND\0");
                        rec[8..16].copy_from_slice(&(offset + c as u64 * 256).to_le_bytes());
                        out.write_all(&rec)?;
                        out.write_all(chunk)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The identity function (contract 2): MRENCLAVE of the enclave made of this launcher and this manifest.
///
/// `launcher` is the launcher file's bytes (`/arca/launcher`, or `/proc/PID/exe` for the simulation platform);
/// `manifest` is the bytes of `/arca/enclave.toml` exactly as stored.
pub fn mrenclave(launcher: &[u8], manifest: &[u8]) -> Result<Mrenclave, Error> {
    EnclaveLayout::new(launcher, manifest)?.mrenclave()
}

/// The SIGSTRUCT fields of an Arca enclave (everything but the key): fixed by the manifest, MRENCLAVE and the
/// DATE the caller chooses (`0` unless the user asks for one: no wall clock in signed data).
///
/// ATTRIBUTES = MODE64BIT (+ DEBUG when `enclave.debug`), XFRM = x87|SSE; ATTRIBUTEMASK enforces every flag
/// bit and the x87|SSE XFRM bits; MISCSELECT = 0 with a full mask; VENDOR, SWDEFINED, ISVFAMILYID and
/// ISVEXTPRODID are zero.
pub fn sigstruct_fields(manifest: &EnclaveManifest, mrenclave: Mrenclave, date: u32) -> SigstructFields {
    let mut flags = Attributes::MODE64BIT;
    if manifest.enclave.debug {
        flags |= Attributes::DEBUG;
    }
    SigstructFields {
        vendor: 0,
        date,
        swdefined: 0,
        miscselect: MiscSelect(0),
        miscmask: u32::MAX,
        cet_attributes: 0,
        cet_attributes_mask: 0,
        isvfamilyid: [0; 16],
        attributes: Attributes::new(flags, Attributes::XFRM_LEGACY),
        attributemask: Attributes::new(u64::MAX, Attributes::XFRM_LEGACY),
        enclavehash: mrenclave,
        isvextprodid: [0; 16],
        isvprodid: manifest.enclave.isvprodid,
        isvsvn: manifest.enclave.isvsvn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;
    use sha2::{Digest, Sha256};

    /// A minimal static x86-64 ELF: header + one PT_LOAD program header, entry 0x1000.
    pub(crate) fn tiny_elf(extra: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56];
        e[0..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[6] = 1;
        e[16..18].copy_from_slice(&3u16.to_le_bytes());
        e[18..20].copy_from_slice(&0x3eu16.to_le_bytes());
        e[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[56..58].copy_from_slice(&1u16.to_le_bytes());
        e[64..68].copy_from_slice(&1u32.to_le_bytes());
        e.extend_from_slice(extra);
        e
    }

    fn manifest_bytes() -> Vec<u8> {
        let mut m = sample();
        m.enclave.size = 1 << 24;
        m.enclave.threads = 2;
        m.to_toml().unwrap().into_bytes()
    }

    #[test]
    fn lays_out_header_launcher_manifest_and_threads_in_order() {
        let elf = tiny_elf(&[0x90; 5000]);
        let man = manifest_bytes();
        let l = EnclaveLayout::new(&elf, &man).unwrap();
        let kinds: Vec<_> = l.regions().iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                RegionKind::Header,
                RegionKind::Launcher,
                RegionKind::Manifest,
                RegionKind::Tcs(0),
                RegionKind::Ssa(0),
                RegionKind::Tcs(1),
                RegionKind::Ssa(1)
            ]
        );
        assert_eq!(l.regions()[1].offset, 0x1000);
        assert_eq!(l.regions()[1].pages, 2); // 5120 bytes
        assert_eq!(l.regions()[1].flags.bits(), 0x205);
        assert_eq!(l.regions()[3].flags.bits(), 0x100);
        assert!(!l.regions()[4].measured);
    }

    #[test]
    fn mrenclave_equals_the_sha256_of_the_sgxs_stream() {
        let elf = tiny_elf(&[0xcc; 10_000]);
        let man = manifest_bytes();
        let l = EnclaveLayout::new(&elf, &man).unwrap();
        let mut sgxs = Vec::new();
        l.write_sgxs(&mut sgxs).unwrap();
        let direct: [u8; 32] = Sha256::digest(&sgxs).into();
        assert_eq!(l.mrenclave().unwrap().to_bytes(), direct);
        assert_eq!(mrenclave(&elf, &man).unwrap(), l.mrenclave().unwrap());
    }

    #[test]
    fn every_input_byte_changes_the_identity() {
        let elf = tiny_elf(&[1; 300]);
        let man = manifest_bytes();
        let base = mrenclave(&elf, &man).unwrap();
        let mut elf2 = elf.clone();
        *elf2.last_mut().unwrap() ^= 1;
        assert_ne!(mrenclave(&elf2, &man).unwrap(), base);
        // A trailing zero byte would hide in the page padding without the lengths in the header page.
        let mut elf3 = elf.clone();
        elf3.push(0);
        assert_ne!(mrenclave(&elf3, &man).unwrap(), base);
        let mut man2 = man.clone();
        man2.extend_from_slice(b"\n");
        assert_ne!(mrenclave(&elf, &man2).unwrap(), base);
        let man3 = String::from_utf8(man.clone())
            .unwrap()
            .replace("threads = 2", "threads = 3");
        assert_ne!(mrenclave(&elf, man3.as_bytes()).unwrap(), base);
    }

    #[test]
    fn refuses_dynamic_or_foreign_executables() {
        let mut dynamic = tiny_elf(&[]);
        dynamic.extend_from_slice(&[0u8; 56]);
        dynamic[56..58].copy_from_slice(&2u16.to_le_bytes());
        dynamic[120..124].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        assert!(inspect_launcher(&dynamic)
            .unwrap_err()
            .to_string()
            .contains("statically linked"));
        assert!(inspect_launcher(b"#!/bin/sh\n").is_err());
        let mut arm = tiny_elf(&[]);
        arm[18] = 0xb7;
        assert!(inspect_launcher(&arm).unwrap_err().to_string().contains("x86-64"));
        assert!(inspect_launcher(&tiny_elf(&[])[..40]).is_err());
    }

    #[test]
    fn refuses_a_layout_that_does_not_fit_the_enclave() {
        let elf = tiny_elf(&vec![0; 1 << 20]);
        let mut m = sample();
        m.enclave.size = 1 << 21;
        let man = m.to_toml().unwrap();
        assert!(EnclaveLayout::new(&elf, man.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("enclave size"));
    }

    #[test]
    fn sigstruct_fields_follow_the_manifest() {
        let mut m = sample();
        m.enclave.debug = true;
        m.enclave.isvprodid = 7;
        m.enclave.isvsvn = 9;
        let f = sigstruct_fields(&m, Mrenclave::new([1; 32]), 0);
        assert!(f.attributes.flags & Attributes::DEBUG != 0);
        assert_eq!((f.isvprodid, f.isvsvn, f.date), (7, 9, 0));
        assert_eq!(f.enclavehash, Mrenclave::new([1; 32]));
    }
}
