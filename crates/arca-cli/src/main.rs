//! `arca` — turn container images into SGX confidential containers, run them, and orchestrate them.
//!
//! The binary is thin: every command parses its arguments (the `*Args` structs in `cmd/`) and calls the
//! library crates. Conventions shared by all commands live in [`output`]: `--output json`, exit codes
//! (0 ok, 1 error, 2 usage, 3 refused), and quiet exit on a broken pipe.

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{exit, Ctx, OutputFormat};

/// Arca: run unmodified container images as Intel SGX confidential containers.
///
/// No machine needs an SGX CPU to build, convert, sign or verify: only running on hardware does. Results from
/// the simulation engine are always labelled as simulated.
#[derive(Parser, Debug)]
#[command(name = "arca", version, propagate_version = true, max_term_width = 110)]
struct Cli {
    /// Output format: human-readable text, or one JSON document for scripts (`--output json`). `-o` is
    /// not its short form: commands use `-o FILE` for the file they write.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human, env = "ARCA_OUTPUT")]
    output: OutputFormat,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

// Each area adds its commands in its own section below (and in `run`), so parallel work merges cleanly.
#[derive(Subcommand, Debug)]
enum Command {
    // ── enclave identity (arca-sgx) ──
    /// Show enclave identity at work: measure, verify and sign a real enclave embedded in the binary.
    Demo(cmd::demo::DemoArgs),
    /// Generate an enclave signing key (RSA-3072, exponent 3) and print its MRSIGNER.
    Keygen(cmd::keygen::KeygenArgs),
    /// Enclave identity: MRENCLAVE of SGXS files, SIGSTRUCT signing, inspection and verification.
    Sgx(cmd::sgx::SgxArgs),
    // ── attestation (arca-attest) ──
    /// Inspect and verify DCAP quotes (SGX and TDX).
    #[command(subcommand)]
    Quote(cmd::quote::QuoteCmd),
    /// Inspect and verify RA-TLS certificates.
    #[command(subcommand)]
    Ratls(cmd::ratls::RatlsCmd),
    // ── protected files (arca-pfs) ──
    /// Protected files: encrypt, decrypt, check, mount (Gramine-compatible encrypted files).
    Fs(cmd::fs::FsArgs),
    // ── images and conversion (arca-image, arca-enclave) ──
    /// Convert a container image into a signed confidential (SGX) image.
    Convert(Box<cmd::image::ConvertArgs>),
    /// Show a converted image's enclave identity and check it.
    Inspect(cmd::image::InspectArgs),
    /// Explain why two converted images have different enclave identities.
    Diff(cmd::image::DiffArgs),
    // ── coordinator and its clients (arca-coordinator) ──
    /// Run the coordinator (mesh and client APIs over RA-TLS, metrics), or print its identity policy.
    Coordinator(cmd::coordinator::CoordinatorArgs),
    /// Verify a remote party: `arca verify coordinator ADDR` checks its quote and manifest, saves its root.
    #[command(subcommand)]
    Verify(cmd::verify::VerifyCmd),
    /// MarbleRun manifests: check offline; set, get, verify, log and update on a coordinator.
    Manifest(cmd::manifest::ManifestArgs),
    /// The coordinator's state.
    Status(cmd::coord_ops::StatusArgs),
    /// The coordinator's root and intermediate CA certificates.
    Certificate(cmd::coord_ops::CertificateArgs),
    /// Read and set the manifest's secrets (users only).
    Secret(cmd::coord_ops::SecretArgs),
    /// Recover a coordinator that cannot unseal its state, with your recovery key.
    Recover(cmd::coord_ops::RecoverArgs),
    /// Verify the coordinator's audit log (hash chain, signed head, truncation).
    Audit(cmd::coord_ops::AuditArgs),
}

fn run(ctx: Ctx, command: Command) -> anyhow::Result<i32> {
    match command {
        // ── enclave identity ──
        Command::Demo(args) => cmd::demo::run(ctx, args),
        Command::Keygen(args) => cmd::keygen::run(ctx, args),
        Command::Sgx(args) => cmd::sgx::run(ctx, args),
        // ── attestation ──
        Command::Quote(c) => cmd::quote::run(ctx, c),
        Command::Ratls(c) => cmd::ratls::run(ctx, c),
        // ── protected files ──
        Command::Fs(args) => cmd::fs::run(ctx, args),
        // ── images and conversion ──
        Command::Convert(args) => cmd::image::convert(ctx, *args),
        Command::Inspect(args) => cmd::image::inspect(ctx, args),
        Command::Diff(args) => cmd::image::diff(ctx, args),
        // ── coordinator ──
        Command::Coordinator(args) => cmd::coordinator::run(ctx, args),
        Command::Verify(c) => cmd::verify::run(ctx, c),
        Command::Manifest(args) => cmd::manifest::run(ctx, args),
        Command::Status(args) => cmd::coord_ops::status(ctx, args),
        Command::Certificate(args) => cmd::coord_ops::certificate(ctx, args),
        Command::Secret(args) => cmd::coord_ops::secret(ctx, args),
        Command::Recover(args) => cmd::coord_ops::recover(ctx, args),
        Command::Audit(args) => cmd::coord_ops::audit(ctx, args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let ctx = Ctx { output: cli.output };
    match run(ctx, cli.command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) if output::is_broken_pipe(&err) => ExitCode::from(exit::OK as u8),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit::ERROR as u8)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
