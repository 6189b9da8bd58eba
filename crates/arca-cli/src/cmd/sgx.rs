//! `arca sgx …`: enclave identity — measure SGXS streams, sign, inspect and verify SIGSTRUCTs.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use arca_sgx::{Attributes, MiscSelect, Mrenclave, Mrsigner, SigningKey, Sigstruct, SigstructFields};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output::{exit, Ctx};

/// Enclave identity: compute MRENCLAVE, sign SIGSTRUCTs, inspect and verify them.
///
/// An enclave is known by two 32-byte identities. MRENCLAVE is the SHA-256 measurement of how the enclave
/// was built (every page added, with its offset, permissions and, when measured, content). MRSIGNER is the
/// SHA-256 of the RSA-3072 modulus of the key that signed the enclave's SIGSTRUCT. None of these commands
/// needs SGX hardware: they compute what the CPU computes.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca sgx measure enclave.sgxs
  arca keygen -o signer.pem
  arca sgx sign --key signer.pem --sgxs enclave.sgxs --date 2026-11-28 --isvprodid 1 --isvsvn 2 -o enclave.sig
  arca sgx inspect enclave.sig
  arca sgx verify enclave.sig --sgxs enclave.sgxs --mrsigner $(arca --output json sgx inspect enclave.sig | jq -r .mrsigner)")]
pub(crate) struct SgxArgs {
    #[command(subcommand)]
    command: SgxCommand,
}

#[derive(Subcommand, Debug)]
enum SgxCommand {
    Measure(MeasureArgs),
    Sign(SignArgs),
    Inspect(InspectArgs),
    Verify(VerifyArgs),
}

pub(crate) fn run(ctx: Ctx, args: SgxArgs) -> anyhow::Result<i32> {
    match args.command {
        SgxCommand::Measure(a) => measure(ctx, a),
        SgxCommand::Sign(a) => sign(ctx, a),
        SgxCommand::Inspect(a) => inspect(ctx, a),
        SgxCommand::Verify(a) => verify(ctx, a),
    }
}

// ── measure ──

/// Compute the MRENCLAVE of an SGXS file by replaying its ECREATE/EADD/EEXTEND records.
///
/// An SGXS file (Fortanix's SGX stream format) holds an enclave's measurement records in load order. The
/// stream must be canonical (pages in increasing order, chunks inside the page of the preceding EADD);
/// UNMEASRD records are loaded but not hashed; an UNSIZED stream has no MRENCLAVE until it is sized.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca sgx measure enclave.sgxs
  arca --output json sgx measure enclave.sgxs | jq -r .mrenclave")]
struct MeasureArgs {
    /// The SGXS file to measure.
    file: PathBuf,
}

/// `arca sgx measure --output json` (schema in docs/cli-json.md).
#[derive(Serialize)]
struct MeasureJson {
    file: String,
    mrenclave: Mrenclave,
    ssaframesize: u32,
    size: u64,
    pages: u64,
    measured_chunks: u64,
    unmeasured_chunks: u64,
    stream_bytes: u64,
}

fn measure(ctx: Ctx, args: MeasureArgs) -> anyhow::Result<i32> {
    let m = measure_file(&args.file)?;
    let json = MeasureJson {
        file: args.file.display().to_string(),
        mrenclave: m.mrenclave,
        ssaframesize: m.ssaframesize,
        size: m.size,
        pages: m.pages,
        measured_chunks: m.measured_chunks,
        unmeasured_chunks: m.unmeasured_chunks,
        stream_bytes: m.stream_len,
    };
    ctx.emit(&json, |out| {
        writeln!(out, "MRENCLAVE  {}", m.mrenclave)?;
        writeln!(
            out,
            "enclave    size {:#x} ({}), SSA frame {} page(s)",
            m.size,
            human_size(m.size),
            m.ssaframesize
        )?;
        writeln!(
            out,
            "stream     {} pages added, {} chunks measured, {} loaded unmeasured ({} bytes)",
            m.pages, m.measured_chunks, m.unmeasured_chunks, m.stream_len
        )
    })?;
    Ok(exit::OK)
}

fn measure_file(path: &Path) -> anyhow::Result<arca_sgx::SgxsMeasurement> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    arca_sgx::measure_sgxs(BufReader::with_capacity(1 << 16, file))
        .with_context(|| format!("measuring {}", path.display()))
}

// ── sign ──

/// Sign an enclave: write its SIGSTRUCT (1808 bytes), signed with an RSA-3072 key of exponent 3.
///
/// The enclave is given as an SGXS file (measured here) or directly as its MRENCLAVE. Every field of the
/// SIGSTRUCT is an input, the DATE included, so signing twice with the same inputs gives the same bytes.
///
/// The ATTRIBUTES, XFRM and MISCSELECT options are the values stored in SIGSTRUCT, and each `--*-mask`
/// option is the mask stored in SIGSTRUCT beside it: EINIT compares the enclave's actual value with the
/// stored value on the bits set in the mask, and ignores the other bits. The defaults enforce every
/// attribute flag (so a production SIGSTRUCT cannot launch a debug enclave) and let the AVX/AVX-512 XFRM bits
/// vary with the machine.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca sgx sign --key signer.pem --sgxs enclave.sgxs --date 2026-11-28 -o enclave.sig
  arca sgx sign --key signer.pem --enclave-hash 784acfd7…98fc --date 20261128 --isvprodid 7 --isvsvn 3 -o app.sig
  arca sgx sign --key signer.pem --sgxs enclave.sgxs --date today --debug -o debug.sig

Exit codes: 0 written, 1 error (unreadable key or SGXS, invalid option).")]
struct SignArgs {
    /// The signing key: PEM, PKCS#1 or PKCS#8, RSA-3072 with public exponent 3 (`arca keygen`).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,

    /// Measure this SGXS file and sign its MRENCLAVE.
    #[arg(
        long,
        value_name = "FILE.sgxs",
        conflicts_with = "enclave_hash",
        required_unless_present = "enclave_hash"
    )]
    sgxs: Option<PathBuf>,

    /// Sign this MRENCLAVE (64 hex digits) without an SGXS file.
    #[arg(long, value_name = "HEX")]
    enclave_hash: Option<Mrenclave>,

    /// Where to write the SIGSTRUCT (replaced if it exists).
    #[arg(short = 'o', long = "out", value_name = "OUT.sig")]
    out: PathBuf,

    /// DATE stored in SIGSTRUCT: YYYY-MM-DD, YYYYMMDD, a raw 0xYYYYMMDD value, or `today` (UTC; makes the
    /// output depend on the day it is run).
    #[arg(long, value_name = "DATE")]
    date: String,

    /// ISVPRODID: the product id (0–65535).
    #[arg(long, default_value = "0", value_parser = parse_u16)]
    isvprodid: u16,

    /// ISVSVN: the security version number (0–65535); raise it with each security fix.
    #[arg(long, default_value = "0", value_parser = parse_u16)]
    isvsvn: u16,

    /// Set the DEBUG attribute: the enclave's memory can then be read by the host. Never for production.
    #[arg(long)]
    debug: bool,

    /// ATTRIBUTES flags stored in SIGSTRUCT (without DEBUG, which `--debug` adds). Default: MODE64BIT (0x4).
    #[arg(long, value_name = "FLAGS", default_value = "0x4", value_parser = parse_u64)]
    attributes: u64,

    /// ATTRIBUTEMASK flags stored in SIGSTRUCT: the flag bits EINIT enforces. Default: all.
    #[arg(long, value_name = "MASK", default_value = "0xffffffffffffffff", value_parser = parse_u64)]
    attributes_mask: u64,

    /// XFRM stored in SIGSTRUCT (the XSAVE features the enclave needs). Default: x87 + SSE (0x3).
    #[arg(long, value_name = "XFRM", default_value = "0x3", value_parser = parse_u64)]
    xfrm: u64,

    /// XFRM mask stored in SIGSTRUCT: the XFRM bits EINIT enforces. Default: all but AVX and AVX-512 (bits
    /// 0xe4), which may then differ between machines.
    #[arg(long, value_name = "MASK", default_value = "0xffffffffffffff1b", value_parser = parse_u64)]
    xfrm_mask: u64,

    /// MISCSELECT stored in SIGSTRUCT.
    #[arg(long, value_name = "BITS", default_value = "0", value_parser = parse_u32)]
    miscselect: u32,

    /// MISCMASK stored in SIGSTRUCT: the MISCSELECT bits EINIT enforces. Default: all.
    #[arg(long, value_name = "MASK", default_value = "0xffffffff", value_parser = parse_u32)]
    miscmask: u32,

    /// VENDOR: 0 for any software vendor (default), 0x8086 for Intel.
    #[arg(long, default_value = "0", value_parser = parse_u32)]
    vendor: u32,

    /// SWDEFINED: a 32-bit value free for the vendor.
    #[arg(long, default_value = "0", value_parser = parse_u32)]
    swdefined: u32,

    /// ISVFAMILYID (KSS), 32 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_hex16)]
    isvfamilyid: Option<[u8; 16]>,

    /// ISVEXTPRODID (KSS), 32 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_hex16)]
    isvextprodid: Option<[u8; 16]>,
}

/// `arca sgx sign --output json`.
#[derive(Serialize)]
struct SignJson {
    file: String,
    mrenclave: Mrenclave,
    mrsigner: Mrsigner,
    isvprodid: u16,
    isvsvn: u16,
    debug: bool,
    date: String,
}

fn sign(ctx: Ctx, args: SignArgs) -> anyhow::Result<i32> {
    let key = load_key(&args.key)?;
    let enclavehash = match (&args.sgxs, args.enclave_hash) {
        (Some(path), _) => measure_file(path)?.mrenclave,
        (None, Some(hash)) => hash,
        (None, None) => bail!("give the enclave with --sgxs FILE or --enclave-hash HEX"),
    };
    let date = parse_date(&args.date)?;
    let mut flags = args.attributes;
    if args.debug {
        flags |= Attributes::DEBUG;
    }
    let fields = SigstructFields {
        vendor: args.vendor,
        date,
        swdefined: args.swdefined,
        miscselect: MiscSelect(args.miscselect),
        miscmask: args.miscmask,
        cet_attributes: 0,
        cet_attributes_mask: 0,
        isvfamilyid: args.isvfamilyid.unwrap_or_default(),
        attributes: Attributes::new(flags, args.xfrm),
        attributemask: Attributes::new(args.attributes_mask, args.xfrm_mask),
        enclavehash,
        isvextprodid: args.isvextprodid.unwrap_or_default(),
        isvprodid: args.isvprodid,
        isvsvn: args.isvsvn,
    };
    let sigstruct = Sigstruct::sign(&fields, &key).context("signing the SIGSTRUCT")?;
    write_replacing(&args.out, &sigstruct.to_bytes())?;
    let json = SignJson {
        file: args.out.display().to_string(),
        mrenclave: enclavehash,
        mrsigner: sigstruct.mrsigner(),
        isvprodid: args.isvprodid,
        isvsvn: args.isvsvn,
        debug: fields.attributes.is_debug(),
        date: date_text(&fields),
    };
    ctx.emit(&json, |out| {
        writeln!(out, "wrote {} (SIGSTRUCT, 1808 bytes)", args.out.display())?;
        writeln!(out, "MRENCLAVE  {enclavehash}")?;
        writeln!(out, "MRSIGNER   {}", sigstruct.mrsigner())?;
        writeln!(
            out,
            "ISVPRODID  {}   ISVSVN {}   DATE {}",
            args.isvprodid,
            args.isvsvn,
            date_text(&fields)
        )?;
        writeln!(out, "DEBUG      {}", debug_words(&fields).1)
    })?;
    Ok(exit::OK)
}

// ── inspect ──

/// Show every field of a SIGSTRUCT, its MRSIGNER, whether it is a debug enclave, and whether its signature
/// holds.
///
/// Inspecting never refuses: a SIGSTRUCT whose signature fails is shown with the reason (use `arca sgx
/// verify` to check one, with an exit code).
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca sgx inspect enclave.sig
  arca --output json sgx inspect enclave.sig | jq -r .mrsigner")]
struct InspectArgs {
    /// The SIGSTRUCT file (1808 bytes).
    file: PathBuf,
}

/// `arca sgx inspect --output json`: bit fields as `0x…` strings (u64 values exceed JSON's safe integers).
#[derive(Serialize)]
struct InspectJson {
    file: String,
    mrenclave: Mrenclave,
    mrsigner: Mrsigner,
    signature_valid: bool,
    signature_error: Option<String>,
    debug: &'static str,
    vendor: String,
    date: String,
    date_raw: String,
    swdefined: String,
    isvprodid: u16,
    isvsvn: u16,
    attributes: AttributesJson,
    attributemask: AttributesJson,
    miscselect: String,
    miscmask: String,
    cet_attributes: String,
    cet_attributes_mask: String,
    isvfamilyid: String,
    isvextprodid: String,
    modulus: String,
    exponent: u32,
}

#[derive(Serialize)]
struct AttributesJson {
    flags: String,
    flag_names: Vec<String>,
    xfrm: String,
}

impl From<Attributes> for AttributesJson {
    fn from(a: Attributes) -> Self {
        AttributesJson {
            flags: format!("{:#018x}", a.flags),
            flag_names: a.flag_names(),
            xfrm: format!("{:#018x}", a.xfrm),
        }
    }
}

fn inspect(ctx: Ctx, args: InspectArgs) -> anyhow::Result<i32> {
    let s = read_sigstruct(&args.file)?;
    let f = &s.fields;
    let verdict = s.verify();
    let (debug_key, debug_text) = debug_words(f);
    let json = InspectJson {
        file: args.file.display().to_string(),
        mrenclave: f.enclavehash,
        mrsigner: s.mrsigner(),
        signature_valid: verdict.is_ok(),
        signature_error: verdict.as_ref().err().map(|e| e.to_string()),
        debug: debug_key,
        vendor: format!("{:#x}", f.vendor),
        date: date_text(f),
        date_raw: format!("{:#010x}", f.date),
        swdefined: format!("{:#x}", f.swdefined),
        isvprodid: f.isvprodid,
        isvsvn: f.isvsvn,
        attributes: f.attributes.into(),
        attributemask: f.attributemask.into(),
        miscselect: format!("{:#010x}", f.miscselect.0),
        miscmask: format!("{:#010x}", f.miscmask),
        cet_attributes: format!("{:#04x}", f.cet_attributes),
        cet_attributes_mask: format!("{:#04x}", f.cet_attributes_mask),
        isvfamilyid: hex(&f.isvfamilyid),
        isvextprodid: hex(&f.isvextprodid),
        modulus: hex(&s.modulus),
        exponent: Sigstruct::EXPONENT,
    };
    ctx.emit(&json, |out| {
        let vendor = match f.vendor {
            0 => "0 (any vendor)".to_string(),
            0x8086 => "0x8086 (Intel)".to_string(),
            v => format!("{v:#x}"),
        };
        let signature = match &verdict {
            Ok(()) => "valid (RSA-3072, exponent 3, PKCS#1 v1.5 SHA-256; Q1/Q2 consistent)".to_string(),
            Err(e) => format!("INVALID: {e}"),
        };
        writeln!(out, "SIGSTRUCT      {}", args.file.display())?;
        writeln!(
            out,
            "MRENCLAVE      {}   (ENCLAVEHASH: the enclave it signs)",
            f.enclavehash
        )?;
        writeln!(
            out,
            "MRSIGNER       {}   (SHA-256 of the signer's modulus)",
            s.mrsigner()
        )?;
        writeln!(out, "signature      {signature}")?;
        writeln!(out, "DEBUG          {debug_text}")?;
        writeln!(out, "ISVPRODID      {}", f.isvprodid)?;
        writeln!(out, "ISVSVN         {}", f.isvsvn)?;
        writeln!(out, "DATE           {} ({:#010x})", date_text(f), f.date)?;
        writeln!(out, "VENDOR         {vendor}")?;
        writeln!(out, "SWDEFINED      {:#x}", f.swdefined)?;
        writeln!(out, "ATTRIBUTES     {}", f.attributes)?;
        writeln!(
            out,
            "ATTRIBUTEMASK  flags {:#018x}, xfrm {:#018x}",
            f.attributemask.flags, f.attributemask.xfrm
        )?;
        writeln!(
            out,
            "MISCSELECT     {:#010x}   MISCMASK {:#010x}",
            f.miscselect.0, f.miscmask
        )?;
        writeln!(
            out,
            "CET            attributes {:#04x}, mask {:#04x}",
            f.cet_attributes, f.cet_attributes_mask
        )?;
        writeln!(out, "ISVFAMILYID    {}", hex(&f.isvfamilyid))?;
        writeln!(out, "ISVEXTPRODID   {}", hex(&f.isvextprodid))?;
        writeln!(
            out,
            "MODULUS        {}… (384 bytes, little-endian), EXPONENT 3",
            hex(&s.modulus[..16])
        )
    })?;
    Ok(exit::OK)
}

// ── verify ──

/// Verify a SIGSTRUCT: its RSA signature and Q1/Q2 and, when given, the enclave it signs and its signer.
///
/// Without `--sgxs`/`--enclave-hash` and `--mrsigner`, this only proves that the SIGSTRUCT is intact and
/// who signed it — not that the signer is one you trust. Pin both for a real check.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca sgx verify enclave.sig
  arca sgx verify enclave.sig --sgxs enclave.sgxs
  arca sgx verify enclave.sig --enclave-hash 784acfd7…98fc --mrsigner fb4bab3d…5542

Exit codes: 0 verified, 3 refused (signature, Q1/Q2, enclave or signer mismatch), 1 error (unreadable or
malformed file).")]
struct VerifyArgs {
    /// The SIGSTRUCT file (1808 bytes).
    file: PathBuf,

    /// Check that the SIGSTRUCT signs this SGXS file (measured here).
    #[arg(long, value_name = "FILE.sgxs", conflicts_with = "enclave_hash")]
    sgxs: Option<PathBuf>,

    /// Check that the SIGSTRUCT signs this MRENCLAVE (64 hex digits).
    #[arg(long, value_name = "HEX")]
    enclave_hash: Option<Mrenclave>,

    /// Check that the SIGSTRUCT was signed by this MRSIGNER (64 hex digits).
    #[arg(long, value_name = "HEX")]
    mrsigner: Option<Mrsigner>,
}

/// `arca sgx verify --output json`.
#[derive(Serialize)]
struct VerifyJson {
    file: String,
    verified: bool,
    error: Option<String>,
    mrenclave: Mrenclave,
    mrsigner: Mrsigner,
    expected_mrenclave: Option<Mrenclave>,
    expected_mrsigner: Option<Mrsigner>,
}

fn verify(ctx: Ctx, args: VerifyArgs) -> anyhow::Result<i32> {
    let s = read_sigstruct(&args.file)?;
    let expected_mrenclave = match (&args.sgxs, args.enclave_hash) {
        (Some(path), _) => Some(measure_file(path)?.mrenclave),
        (None, hash) => hash,
    };
    let mut result = match &expected_mrenclave {
        Some(m) => s.verify_enclave(m),
        None => s.verify(),
    }
    .map_err(|e| e.to_string());
    if let (Ok(()), Some(expected)) = (&result, args.mrsigner) {
        if expected != s.mrsigner() {
            result = Err(format!(
                "signed by MRSIGNER {}, expected {expected}",
                s.mrsigner()
            ));
        }
    }
    let json = VerifyJson {
        file: args.file.display().to_string(),
        verified: result.is_ok(),
        error: result.as_ref().err().cloned(),
        mrenclave: s.fields.enclavehash,
        mrsigner: s.mrsigner(),
        expected_mrenclave,
        expected_mrsigner: args.mrsigner,
    };
    ctx.emit(&json, |out| {
        match &result {
            Ok(()) => {
                writeln!(out, "verified: {}", args.file.display())?;
                writeln!(out, "  signature and Q1/Q2 hold")?;
                match expected_mrenclave {
                    Some(m) => writeln!(out, "  signs MRENCLAVE {m} (as expected)")?,
                    None => writeln!(
                        out,
                        "  signs MRENCLAVE {} (not compared: no --sgxs/--enclave-hash)",
                        s.fields.enclavehash
                    )?,
                }
                match args.mrsigner {
                    Some(m) => writeln!(out, "  signed by MRSIGNER {m} (as expected)")?,
                    None => writeln!(
                        out,
                        "  signed by MRSIGNER {} (not compared: no --mrsigner)",
                        s.mrsigner()
                    )?,
                }
            }
            Err(e) => writeln!(out, "REFUSED: {}: {e}", args.file.display())?,
        }
        Ok(())
    })?;
    Ok(if result.is_ok() { exit::OK } else { exit::REFUSED })
}

// ── helpers shared by the enclave-identity commands ──

pub(crate) fn load_key(path: &Path) -> anyhow::Result<SigningKey> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading the key {}", path.display()))?;
    SigningKey::from_pem(&pem).with_context(|| format!("loading the key {}", path.display()))
}

fn read_sigstruct(path: &Path) -> anyhow::Result<Sigstruct> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Sigstruct::parse(&bytes).with_context(|| format!("{} is not a valid SIGSTRUCT", path.display()))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a failure never leaves a
/// half-written file behind.
pub(crate) fn write_replacing(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// `(json key, words)` describing what the SIGSTRUCT says about debugging.
pub(crate) fn debug_words(f: &SigstructFields) -> (&'static str, &'static str) {
    let enforced = f.attributemask.flags & Attributes::DEBUG != 0;
    match (enforced, f.attributes.is_debug()) {
        (true, false) => (
            "production",
            "no — production enclave (DEBUG clear and enforced by ATTRIBUTEMASK)",
        ),
        (true, true) => (
            "debug",
            "YES — debug enclave: the host can read and change its memory; never trust it in production",
        ),
        (false, _) => (
            "either",
            "EITHER — ATTRIBUTEMASK does not enforce DEBUG, so this SIGSTRUCT also launches debug enclaves \
             (memory readable by the host)",
        ),
    }
}

pub(crate) fn date_text(f: &SigstructFields) -> String {
    f.date_ymd()
        .unwrap_or_else(|| format!("{:#010x} (not a BCD date)", f.date))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2026-11-28`, `20261128`, `0x20261128` (raw, not checked) or `today` (UTC).
pub(crate) fn parse_date(s: &str) -> anyhow::Result<u32> {
    if let Some(raw) = s.strip_prefix("0x") {
        return u32::from_str_radix(raw, 16).with_context(|| format!("--date {s}: not a 32-bit hex value"));
    }
    let (y, m, d) = if s == "today" {
        let now = time::OffsetDateTime::now_utc();
        (now.year(), u8::from(now.month()), now.day())
    } else {
        let digits: String = s.chars().filter(|c| *c != '-').collect();
        let ok = digits.len() == 8
            && digits.chars().all(|c| c.is_ascii_digit())
            && (s.len() == 8 || (s.len() == 10 && &s[4..5] == "-" && &s[7..8] == "-"));
        if !ok {
            bail!("--date {s}: expected YYYY-MM-DD, YYYYMMDD, 0xYYYYMMDD or today");
        }
        (
            digits[0..4].parse()?,
            digits[4..6].parse()?,
            digits[6..8].parse()?,
        )
    };
    let year = u16::try_from(y).with_context(|| format!("--date {s}: year out of range"))?;
    SigstructFields::bcd_date(year, m, d).with_context(|| format!("--date {s}"))
}

/// Parses a decimal or `0x` hexadecimal integer.
fn parse_int(s: &str) -> Result<u128, String> {
    let clean = s.replace('_', "");
    let parsed = match clean.strip_prefix("0x").or_else(|| clean.strip_prefix("0X")) {
        Some(hex) => u128::from_str_radix(hex, 16),
        None => clean.parse::<u128>(),
    };
    parsed.map_err(|_| format!("`{s}` is not a number (decimal, or hexadecimal with 0x)"))
}

fn parse_u64(s: &str) -> Result<u64, String> {
    u64::try_from(parse_int(s)?).map_err(|_| format!("`{s}` does not fit in 64 bits"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    u32::try_from(parse_int(s)?).map_err(|_| format!("`{s}` does not fit in 32 bits"))
}

fn parse_u16(s: &str) -> Result<u16, String> {
    u16::try_from(parse_int(s)?).map_err(|_| format!("`{s}` does not fit in 16 bits (0–65535)"))
}

fn parse_hex16(s: &str) -> Result<[u8; 16], String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 32 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("`{s}` is not 32 hexadecimal digits (16 bytes)"));
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// `262144` → `256 KiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024 && value.is_multiple_of(1024) && unit < UNITS.len() - 1 {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_accepted_in_three_spellings_and_bad_ones_refused() {
        assert_eq!(parse_date("2026-11-28").unwrap(), 0x2026_1128);
        assert_eq!(parse_date("20261128").unwrap(), 0x2026_1128);
        assert_eq!(parse_date("0x20161399").unwrap(), 0x2016_1399);
        assert!(parse_date("today").unwrap() >= 0x2026_0101);
        for bad in ["2026-13-01", "2026/11/28", "261128", "2026-1-28", "yesterday"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integers_are_decimal_or_hex_and_must_fit() {
        assert_eq!(parse_u64("0xffff_ffff_ffff_ffff").unwrap(), u64::MAX);
        assert_eq!(parse_u16("65535").unwrap(), 65535);
        assert!(parse_u16("65536").unwrap_err().contains("16 bits"));
        assert!(parse_u32("ten").is_err());
        assert_eq!(parse_hex16("000102030405060708090a0b0c0d0e0f").unwrap()[15], 15);
        assert!(parse_hex16("00").is_err());
    }
}
