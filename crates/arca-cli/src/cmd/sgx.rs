//! `arca sgx …`: enclave identity — measure SGXS streams, sign, inspect and verify SIGSTRUCTs.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output::{exit, Ctx};

/// Enclave identity: compute MRENCLAVE, sign SIGSTRUCTs, inspect and verify them.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca sgx measure enclave.sgxs
  arca sgx measure enclave.sgxs --output json")]
pub(crate) struct SgxArgs {
    #[command(subcommand)]
    command: SgxCommand,
}

#[derive(Subcommand, Debug)]
enum SgxCommand {
    Measure(MeasureArgs),
}

/// Compute the MRENCLAVE of an SGXS file by replaying its ECREATE/EADD/EEXTEND records.
///
/// An SGXS file (Fortanix's SGX stream format) holds an enclave's measurement records in load order. The
/// stream must be canonical (pages in increasing order, chunks inside the page of the preceding EADD);
/// UNMEASRD records are loaded but not hashed; an UNSIZED stream has no MRENCLAVE until it is sized.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca sgx measure enclave.sgxs
  arca sgx measure enclave.sgxs --output json | jq -r .mrenclave")]
struct MeasureArgs {
    /// The SGXS file to measure.
    file: PathBuf,
}

/// `arca sgx measure --output json` (schema in docs/cli-json.md).
#[derive(Serialize)]
struct MeasureJson {
    file: String,
    mrenclave: arca_sgx::Mrenclave,
    ssaframesize: u32,
    size: u64,
    pages: u64,
    measured_chunks: u64,
    unmeasured_chunks: u64,
    stream_bytes: u64,
}

pub(crate) fn run(ctx: Ctx, args: SgxArgs) -> anyhow::Result<i32> {
    match args.command {
        SgxCommand::Measure(a) => measure(ctx, a),
    }
}

fn measure(ctx: Ctx, args: MeasureArgs) -> anyhow::Result<i32> {
    let file = File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let m = arca_sgx::measure_sgxs(BufReader::with_capacity(1 << 16, file))
        .with_context(|| format!("measuring {}", args.file.display()))?;
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
