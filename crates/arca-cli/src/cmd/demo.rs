//! `arca demo`: measure, verify and sign a real enclave from the repository's test data, offline.

use std::path::PathBuf;

use anyhow::{ensure, Context};
use arca_sgx::{measure_sgxs, Mrenclave, Mrsigner, SigningKey, Sigstruct, SigstructFields};
use clap::Args;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cmd::sgx::{date_text, debug_words, write_replacing};
use crate::output::{exit, Ctx};

/// Fortanix's test enclave (rust-sgx, MPL-2.0; see testdata/vectors/VECTORS.md), embedded in the binary.
const ENCLAVE: &[u8] =
    include_bytes!("../../../../testdata/vectors/rust-sgx/sgxs-tools_src_sgx_detect_tests_test_enclave.sgxs");
const ENCLAVE_NAME: &str = "testdata/vectors/rust-sgx/sgxs-tools_src_sgx_detect_tests_test_enclave.sgxs";
/// The SIGSTRUCT Fortanix published with it.
const SIGSTRUCT: &[u8] =
    include_bytes!("../../../../testdata/vectors/rust-sgx/sgxs-tools_src_sgx_detect_tests_test_enclave.sig");
const SIGSTRUCT_NAME: &str = "testdata/vectors/rust-sgx/sgxs-tools_src_sgx_detect_tests_test_enclave.sig";
/// Arca's public development key (keys/README.md): never trusted in production.
const DEV_KEY: &str = include_str!("../../../../keys/arca-dev-coordinator.pem");
/// A fixed DATE, so the demo's SIGSTRUCT is the same on every run.
const DEMO_DATE: (u16, u8, u8) = (2026, 1, 1);
/// A byte inside the data of the first EEXTEND record (ECREATE 64 + EADD 64 + EEXTEND header 64 + 10).
const TAMPER_AT: usize = 64 + 64 + 64 + 10;

/// Show what Arca does with enclave identities, on a real enclave embedded in the binary.
///
/// The demo measures Fortanix's published test enclave by replaying its records through Arca's MRENCLAVE
/// builder, verifies the SIGSTRUCT published with it, signs the same enclave with Arca's public development
/// key (with a fixed DATE, so the output is the same on every run), and shows that changing one byte of the
/// enclave changes MRENCLAVE and makes the original signature refuse it. No SGX CPU is used or needed.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca demo
  arca demo --keep /tmp/arca-demo && arca sgx inspect /tmp/arca-demo/arca-dev.sig
  arca --output json demo | jq .measured.mrenclave")]
pub(crate) struct DemoArgs {
    /// Also write the enclave and both SIGSTRUCTs into this directory, to try `arca sgx` commands on them.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

#[derive(Serialize)]
struct DemoJson {
    hardware: &'static str,
    measured: Measured,
    published_sigstruct: Published,
    arca_sigstruct: Signed,
    tampered: Tampered,
    kept_in: Option<String>,
}

#[derive(Serialize)]
struct Measured {
    source: &'static str,
    bytes: usize,
    mrenclave: Mrenclave,
    pages: u64,
    measured_chunks: u64,
    size: u64,
}

#[derive(Serialize)]
struct Published {
    source: &'static str,
    verified: bool,
    enclavehash_matches: bool,
    mrsigner: Mrsigner,
    debug: &'static str,
    isvprodid: u16,
    isvsvn: u16,
    date: String,
}

#[derive(Serialize)]
struct Signed {
    key: &'static str,
    mrsigner: Mrsigner,
    date: String,
    sha256: String,
    verified: bool,
}

#[derive(Serialize)]
struct Tampered {
    byte: usize,
    mrenclave: Mrenclave,
    refused: bool,
    reason: String,
}

pub(crate) fn run(ctx: Ctx, args: DemoArgs) -> anyhow::Result<i32> {
    // 1. Measure by replaying ECREATE/EADD/EEXTEND through the builder.
    let m = measure_sgxs(ENCLAVE).context("measuring the embedded test enclave")?;

    // 2. The published SIGSTRUCT: signature, Q1/Q2, and that it signs exactly what was measured.
    let published = Sigstruct::parse(SIGSTRUCT).context("parsing the embedded SIGSTRUCT")?;
    published
        .verify_enclave(&m.mrenclave)
        .context("verifying the published SIGSTRUCT")?;

    // 3. Sign the same enclave with the development key, every field an explicit input.
    let key = SigningKey::from_pem(DEV_KEY).context("loading the development key")?;
    let (y, mo, d) = DEMO_DATE;
    let fields = SigstructFields {
        date: SigstructFields::bcd_date(y, mo, d)?,
        ..published.fields
    };
    let ours = Sigstruct::sign(&fields, &key).context("signing with the development key")?;
    let ours_bytes = ours.to_bytes();
    Sigstruct::parse(&ours_bytes)?
        .verify_enclave(&m.mrenclave)
        .context("verifying Arca's SIGSTRUCT")?;

    // 4. Tamper with one byte of enclave code: another MRENCLAVE, which the published SIGSTRUCT refuses.
    let mut tampered = ENCLAVE.to_vec();
    ensure!(tampered.len() > TAMPER_AT, "the embedded enclave is too short");
    tampered[TAMPER_AT] ^= 0x01;
    let t = measure_sgxs(tampered.as_slice()).context("measuring the tampered enclave")?;
    let refusal = published.verify_enclave(&t.mrenclave).err();
    ensure!(
        t.mrenclave != m.mrenclave,
        "changing a measured byte did not change MRENCLAVE"
    );
    let Some(refusal) = refusal else {
        anyhow::bail!("the tampered enclave was not refused")
    };

    let kept_in = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            write_replacing(&dir.join("test_enclave.sgxs"), ENCLAVE)?;
            write_replacing(&dir.join("published.sig"), SIGSTRUCT)?;
            write_replacing(&dir.join("arca-dev.sig"), &ours_bytes)?;
            Some(dir.display().to_string())
        }
        None => None,
    };

    let (debug_key, debug_text) = debug_words(&published.fields);
    let json = DemoJson {
        hardware: "none: identities are computed offline, exactly as the CPU computes them; nothing ran in an enclave",
        measured: Measured {
            source: ENCLAVE_NAME,
            bytes: ENCLAVE.len(),
            mrenclave: m.mrenclave,
            pages: m.pages,
            measured_chunks: m.measured_chunks,
            size: m.size,
        },
        published_sigstruct: Published {
            source: SIGSTRUCT_NAME,
            verified: true,
            enclavehash_matches: true,
            mrsigner: published.mrsigner(),
            debug: debug_key,
            isvprodid: published.fields.isvprodid,
            isvsvn: published.fields.isvsvn,
            date: date_text(&published.fields),
        },
        arca_sigstruct: Signed {
            key: "keys/arca-dev-coordinator.pem (public development key: simulation only)",
            mrsigner: key.mrsigner(),
            date: date_text(&fields),
            sha256: hex_string(&Sha256::digest(ours_bytes)),
            verified: true,
        },
        tampered: Tampered { byte: TAMPER_AT, mrenclave: t.mrenclave, refused: true, reason: refusal.to_string() },
        kept_in,
    };
    ctx.emit(&json, |out| {
        writeln!(
            out,
            "Arca demo: enclave identity, computed offline (no SGX CPU is used or needed)"
        )?;
        writeln!(out)?;
        writeln!(out, "1. Measure the enclave {ENCLAVE_NAME}")?;
        writeln!(
            out,
            "   ({} bytes, embedded in this binary): replayed 1 ECREATE, {} EADD and {} EEXTEND records",
            ENCLAVE.len(),
            m.pages,
            m.measured_chunks
        )?;
        writeln!(
            out,
            "   through the MRENCLAVE builder (enclave size {:#x})",
            m.size
        )?;
        writeln!(out, "   MRENCLAVE  {}", m.mrenclave)?;
        writeln!(out)?;
        writeln!(
            out,
            "2. Verify the SIGSTRUCT published with it ({SIGSTRUCT_NAME})"
        )?;
        writeln!(
            out,
            "   RSA-3072 signature, Q1 and Q2 hold, and its ENCLAVEHASH is the MRENCLAVE measured above"
        )?;
        writeln!(
            out,
            "   MRSIGNER   {}  (Fortanix's test key)",
            published.mrsigner()
        )?;
        writeln!(
            out,
            "   ISVPRODID {}, ISVSVN {}, DATE {}",
            published.fields.isvprodid,
            published.fields.isvsvn,
            date_text(&published.fields)
        )?;
        writeln!(out, "   DEBUG      {debug_text}")?;
        writeln!(out)?;
        writeln!(
            out,
            "3. Sign the same enclave with Arca's development key (keys/arca-dev-coordinator.pem)"
        )?;
        writeln!(
            out,
            "   same fields, DATE fixed at {}, so these 1808 bytes are identical on every run",
            date_text(&fields)
        )?;
        writeln!(
            out,
            "   MRSIGNER   {}  (public key: simulation only)",
            key.mrsigner()
        )?;
        writeln!(
            out,
            "   SHA-256    {}  (of the SIGSTRUCT; verified)",
            hex_string(&Sha256::digest(ours_bytes))
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "4. Change one byte of the enclave's code (stream byte {TAMPER_AT})"
        )?;
        writeln!(out, "   MRENCLAVE  {}  (different)", t.mrenclave)?;
        writeln!(out, "   the published SIGSTRUCT now refuses it: {refusal}")?;
        writeln!(out)?;
        if let Some(dir) = &args.keep {
            writeln!(
                out,
                "Files written to {}: test_enclave.sgxs, published.sig, arca-dev.sig",
                dir.display()
            )?;
            writeln!(out, "  try: arca sgx inspect {}/arca-dev.sig", dir.display())?;
        }
        writeln!(
            out,
            "Next: `arca sgx --help` (measure, sign, inspect, verify) and `arca keygen --help`."
        )
    })?;
    Ok(exit::OK)
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
