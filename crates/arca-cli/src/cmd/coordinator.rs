//! `arca coordinator`: run the coordinator (both APIs over RA-TLS, metrics on their own port);
//! `arca coordinator sign`: sign its enclave with the operator's key; `arca coordinator identity`: print the
//! identity policy that launchers and clients pin (contract 5).
//!
//! The coordinator is an Arca enclave like any other (contract 5): the Arca launcher (`--launcher`, the one
//! `arca convert --launcher` uses; until the launcher is built into `arca`) plus the coordinator's own
//! enclave manifest ([`coordinator_manifest`]), whose trusted-file list binds this executable
//! (`/arca/coordinator`) by its SHA-256. Its MRENCLAVE is `arca_enclave::mrenclave(launcher, manifest)`, the
//! identity function `arca convert` uses. Its SIGSTRUCT comes from `--sigstruct` (made by
//! `arca coordinator sign --key K`); without one, it signs itself at start with the **public development
//! key** `keys/arca-dev-coordinator.pem` (built in), the identity that images converted without
//! `--coordinator-policy` pin and that works only in simulation.
//!
//! This machine has no SGX: the coordinator quotes itself with the in-process simulation quoter of
//! `arca-attest` over the simulation PKI (created in the data directory on first start), so it runs only with
//! `--allow-simulation`, and then also verifies marbles' simulated quotes fully against that PKI's root and
//! collateral. Until the simulation platform's quoting service exists, nothing measures the coordinator
//! independently: the identity is what this process computes for itself (as any in-process simulation
//! quoter's is).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use arca_attest::{CollateralSource, SimPki, SimPkiOptions, SimQuoter, Verifier};
use arca_coordinator::{
    dice_evidence, serve, Attester, Coordinator, DcapVerifier, FileStore, Listeners, Options, QuoterAttester,
    ServeConfig, ServerCerts, SimKeySealer,
};
use arca_enclave::{
    CoordinatorIdentity, CoordinatorPolicy, EnclaveManifest, EnclaveSettings, Files, HostSettings, Process,
    COORDINATOR_ISVPRODID, COORDINATOR_MIN_ISVSVN, DEV_COORDINATOR_MRSIGNER,
};
use arca_sgx::{Attributes, Mrenclave, ReportBody, SigningKey, Sigstruct, SigstructFields};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::output::{exit, Ctx};

/// The public development signing key (contract 5): development builds sign the coordinator with it.
const DEV_KEY: &str = include_str!("../../../../keys/arca-dev-coordinator.pem");

/// Where the coordinator executable lives in the coordinator's enclave (its trusted-file list names it).
const COORDINATOR_EXEC: &str = "/arca/coordinator";

/// Enclave size and threads of the coordinator enclave.
const COORDINATOR_ENCLAVE_SIZE: u64 = 1 << 32;
const COORDINATOR_THREADS: u32 = 64;

/// Run the Arca coordinator, or print its identity.
///
/// Without a subcommand, runs the coordinator: the mesh (activation, gRPC) API and the client (REST) API, both
/// over TLS with an RA-TLS server certificate issued by the coordinator's intermediate CA and carrying its
/// quote (TCG DICE evidence), and Prometheus metrics over plain HTTP on their own port. State is sealed in
/// the data directory (the data key in DATA_DIR/seal.key, mode 0600, or ARCA_SEAL_KEY).
#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
Identity: the coordinator is an Arca enclave made of the Arca launcher (--launcher or ARCA_LAUNCHER) and its own \
enclave manifest, which binds this executable by its SHA-256. Without --sigstruct it is signed with the PUBLIC \
development key (keys/arca-dev-coordinator.pem): the identity images converted without --coordinator-policy pin, \
simulation only.

Simulation: this build has no SGX quoting, so the coordinator runs only with --allow-simulation. It then \
accepts marbles whose simulated quotes verify fully against the simulation root and collateral in \
DATA_DIR/sim-pki (or --sim-pki), and refuses everything else.

Recovery: when the sealed state cannot be opened (its data key cannot be unsealed), the coordinator starts in \
recovery mode and serves a temporary self-issued RA-TLS certificate; only status and recover work until \
`arca recover` uploads the recovery secrets.

Examples:
  arca coordinator --allow-simulation --launcher arca-launcher --data-dir /var/lib/arca/coordinator
  arca coordinator --allow-simulation --launcher arca-launcher --sigstruct coordinator.sig \\
      --mesh-addr 0.0.0.0:2001 --client-addr 0.0.0.0:4433
  arca coordinator --config coordinator.json
  arca coordinator sign --launcher arca-launcher --key operator.pem --date 2026-11-28 -o coordinator.sig
  arca coordinator identity --launcher arca-launcher --sigstruct coordinator.sig > coordinator-policy.toml

Exit codes: 1 when the coordinator cannot start or stops on an error (a failed commit stops it rather than \
answering from state that may not be on disk), 2 usage."
)]
pub(crate) struct CoordinatorArgs {
    #[command(subcommand)]
    command: Option<CoordinatorCmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum CoordinatorCmd {
    /// Print the coordinator's identity as the policy launchers pin (`arca convert --coordinator-policy`)
    /// and clients check (`arca verify coordinator`).
    #[command(after_help = "\
The policy is TOML: mrsigner, isvprodid and min_isvsvn (survives rebuilds), or with --pin-enclave the exact \
mrenclave; allow_simulation says whether a simulated quote is acceptable. Without --sigstruct the identity is the \
development-key signature, which --production refuses: a development signature never passes a production policy.

Examples:
  arca coordinator identity --launcher arca-launcher --sigstruct coordinator.sig
  arca coordinator identity --launcher arca-launcher --sigstruct coordinator.sig --pin-enclave --production
  arca coordinator identity --launcher arca-launcher --enclave-dir coordinator-enclave/
  arca --output json coordinator identity --launcher arca-launcher")]
    Identity(IdentityArgs),
    /// Sign this coordinator executable's enclave with your key: writes its SIGSTRUCT for `--sigstruct`.
    #[command(after_help = "\
The SIGSTRUCT signs the MRENCLAVE of the coordinator's enclave (the launcher plus the coordinator's enclave \
manifest, which binds this executable and the ISVSVN), ISVPRODID 0xC001 (49153) and the ISVSVN you give; raise \
--isvsvn with every security fix so that policies can refuse older coordinators. The DATE is an input, so signing \
twice gives the same bytes.

Examples:
  arca keygen -o operator.pem
  arca coordinator sign --launcher arca-launcher --key operator.pem --date 2026-11-28 --isvsvn 2 -o coordinator.sig
  arca coordinator identity --launcher arca-launcher --sigstruct coordinator.sig > coordinator-policy.toml")]
    Sign(SignArgs),
}

/// Settings of a running coordinator; flags override the `--config` file.
#[derive(Args, Debug, Default)]
struct RunArgs {
    /// A JSON file with any of: data_dir, allow_simulation, mesh_addr, client_addr, metrics_addr (null
    /// disables metrics), dns_names, sim_pki, sigstruct, launcher. Flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Accept simulated quotes (the coordinator's own and marbles'), verified fully against the simulation
    /// root and collateral. Never in production.
    #[arg(long)]
    allow_simulation: bool,
    /// Where the sealed state, the audit log and the simulation PKI live (default ./arca-coordinator).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Mesh (activation) API address (default 0.0.0.0:2001).
    #[arg(long, value_name = "ADDR")]
    mesh_addr: Option<SocketAddr>,
    /// Client (REST) API address (default 0.0.0.0:4433).
    #[arg(long, value_name = "ADDR")]
    client_addr: Option<SocketAddr>,
    /// Prometheus metrics address, plain HTTP (default 0.0.0.0:9090; `off` disables).
    #[arg(long, value_name = "ADDR|off")]
    metrics_addr: Option<String>,
    /// A DNS name or IP address for the server certificate (repeatable; default localhost and 127.0.0.1).
    #[arg(long = "dns-name", value_name = "NAME")]
    dns_names: Vec<String>,
    /// The simulation PKI directory (default DATA_DIR/sim-pki; created when missing).
    #[arg(long, value_name = "DIR")]
    sim_pki: Option<PathBuf>,
    /// The coordinator enclave's SIGSTRUCT (1808 bytes, from `arca coordinator sign`): its identity.
    /// Default: a signature with the public development key, simulation only.
    #[arg(long, value_name = "FILE")]
    sigstruct: Option<PathBuf>,
    /// The Arca launcher (statically linked; the one `arca convert --launcher` uses): with the
    /// coordinator's enclave manifest it gives the coordinator's MRENCLAVE.
    #[arg(long, value_name = "PATH", env = "ARCA_LAUNCHER")]
    launcher: Option<PathBuf>,
}

/// `--config` file (JSON). Every field is optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    allow_simulation: bool,
    mesh_addr: Option<SocketAddr>,
    client_addr: Option<SocketAddr>,
    #[serde(default = "default_metrics")]
    metrics_addr: Option<SocketAddr>,
    #[serde(default)]
    dns_names: Vec<String>,
    sim_pki: Option<PathBuf>,
    sigstruct: Option<PathBuf>,
    launcher: Option<PathBuf>,
}

fn default_metrics() -> Option<SocketAddr> {
    ServeConfig::default().metrics_addr
}

#[derive(Args, Debug)]
struct IdentityArgs {
    /// The Arca launcher (statically linked; the one `arca convert --launcher` uses).
    #[arg(long, value_name = "PATH", env = "ARCA_LAUNCHER")]
    launcher: Option<PathBuf>,
    /// The coordinator enclave's SIGSTRUCT (default: a signature with the public development key).
    #[arg(long, value_name = "FILE")]
    sigstruct: Option<PathBuf>,
    /// Also write the coordinator's enclave files here: enclave.toml (its manifest, measured byte for byte)
    /// and trusted.list (binding this executable), so that anyone can recompute MRENCLAVE.
    #[arg(long, value_name = "DIR")]
    enclave_dir: Option<PathBuf>,
    /// Pin the exact MRENCLAVE instead of signer, product and minimum security version.
    #[arg(long)]
    pin_enclave: bool,
    /// Do not allow a simulated coordinator (for images that will run on SGX hardware).
    #[arg(long)]
    production: bool,
}

#[derive(Args, Debug)]
struct SignArgs {
    /// The Arca launcher (statically linked; the one `arca convert --launcher` uses).
    #[arg(long, value_name = "PATH", env = "ARCA_LAUNCHER")]
    launcher: Option<PathBuf>,
    /// The operator's signing key: RSA-3072, exponent 3, PEM (`arca keygen`).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// Where to write the SIGSTRUCT (replaced if it exists).
    #[arg(short = 'o', long = "out", value_name = "OUT.sig")]
    out: PathBuf,
    /// DATE stored in the SIGSTRUCT, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    date: String,
    /// ISVSVN: the coordinator's security version.
    #[arg(long, default_value_t = 1)]
    isvsvn: u16,
}

pub(crate) fn run(ctx: Ctx, args: CoordinatorArgs) -> anyhow::Result<i32> {
    match args.command {
        Some(CoordinatorCmd::Identity(a)) => identity(ctx, &a),
        Some(CoordinatorCmd::Sign(a)) => sign(ctx, &a),
        None => run_coordinator(args.run),
    }
}

/// The coordinator enclave's identity, as its quotes report it.
struct EnclaveIdentity {
    report: ReportBody,
    /// Where the signature comes from, for people.
    source: String,
    /// True when signed with the public development key.
    development: bool,
    enclave: CoordinatorEnclave,
}

/// The coordinator's enclave: its manifest and trusted-file list, and the MRENCLAVE they give with the
/// launcher.
struct CoordinatorEnclave {
    manifest: EnclaveManifest,
    manifest_toml: String,
    trusted_list: String,
    mrenclave: Mrenclave,
    launcher: PathBuf,
    exe: PathBuf,
    exe_sha256: String,
}

/// The launcher's bytes (checked to be a statically linked ELF, as the layout requires).
fn read_launcher(path: Option<&Path>) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    let Some(path) = path else {
        bail!(
            "--launcher PATH (or ARCA_LAUNCHER) is required: the coordinator is an Arca enclave made of the Arca \
launcher and its own enclave manifest (contract 5), and the launcher is not built into this `arca` yet. Give the \
statically linked launcher that `arca convert --launcher` uses"
        );
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading the launcher {}", path.display()))?;
    arca_enclave::inspect_launcher(&bytes).with_context(|| format!("--launcher {}", path.display()))?;
    Ok((path.to_owned(), bytes))
}

/// The running executable and its SHA-256 (hex).
fn this_executable() -> anyhow::Result<(PathBuf, String)> {
    let exe = std::env::current_exe().context("finding the running executable")?;
    let bytes = std::fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?;
    Ok((exe, hex::encode(sha2::Sha256::digest(&bytes))))
}

/// The coordinator's enclave manifest (format 1) for the executable with SHA-256 `exe_sha256` at security
/// version `isvsvn`, and its trusted-file list (which binds the executable). Deterministic: every party
/// derives the same bytes from the same executable.
pub(crate) fn coordinator_manifest(exe_sha256: &str, isvsvn: u16) -> (EnclaveManifest, String) {
    let trusted_list = format!("{exe_sha256}  {COORDINATOR_EXEC}\n");
    let manifest = EnclaveManifest {
        format: arca_enclave::MANIFEST_FORMAT,
        process: Process {
            exec: COORDINATOR_EXEC.into(),
            argv: vec!["arca".into(), "coordinator".into()],
            env: Vec::new(),
            workdir: "/".into(),
            user: String::new(),
        },
        enclave: EnclaveSettings {
            isvprodid: COORDINATOR_ISVPRODID,
            isvsvn,
            debug: false,
            size: COORDINATOR_ENCLAVE_SIZE,
            threads: COORDINATOR_THREADS,
        },
        files: Files {
            trusted_list_sha256: hex::encode(sha2::Sha256::digest(trusted_list.as_bytes())),
            trusted_files: 1,
            allow_paths: Vec::new(),
            protected: Vec::new(),
        },
        host: HostSettings::default(),
        // The coordinator talks to no coordinator: pin nothing that exists.
        coordinator: CoordinatorPolicy {
            identity: CoordinatorIdentity::Enclave(Mrenclave::from([0u8; 32])),
            allow_simulation: false,
            allow_debug: false,
        },
    };
    (manifest, trusted_list)
}

fn coordinator_enclave(
    launcher: &(PathBuf, Vec<u8>),
    exe: &(PathBuf, String),
    isvsvn: u16,
) -> anyhow::Result<CoordinatorEnclave> {
    let (manifest, trusted_list) = coordinator_manifest(&exe.1, isvsvn);
    let manifest_toml = manifest
        .to_toml()
        .context("writing the coordinator's enclave manifest")?;
    let mrenclave = arca_enclave::mrenclave(&launcher.1, manifest_toml.as_bytes())
        .context("measuring the coordinator's enclave")?;
    Ok(CoordinatorEnclave {
        manifest,
        manifest_toml,
        trusted_list,
        mrenclave,
        launcher: launcher.0.clone(),
        exe: exe.0.clone(),
        exe_sha256: exe.1.clone(),
    })
}

/// The identity the coordinator runs with: its SIGSTRUCT (`sigstruct`, or a development-key signature made
/// now) over its measured enclave.
fn enclave_identity(launcher: Option<&Path>, sigstruct: Option<&Path>) -> anyhow::Result<EnclaveIdentity> {
    let launcher = read_launcher(launcher)?;
    let exe = this_executable()?;
    let (sig, enclave, source) = match sigstruct {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let sig = Sigstruct::parse(&bytes)
                .with_context(|| format!("parsing the SIGSTRUCT {}", path.display()))?;
            sig.verify()
                .with_context(|| format!("the SIGSTRUCT {} is not validly signed", path.display()))?;
            let enclave = coordinator_enclave(&launcher, &exe, sig.fields.isvsvn)?;
            if sig.fields.isvprodid != COORDINATOR_ISVPRODID {
                bail!(
                    "the SIGSTRUCT {} is for ISVPRODID {}, not the coordinator's {COORDINATOR_ISVPRODID}",
                    path.display(),
                    sig.fields.isvprodid
                );
            }
            if sig.fields.enclavehash != enclave.mrenclave {
                bail!(
                    "the SIGSTRUCT {} signs MRENCLAVE {}, but this coordinator ({} with launcher {}, ISVSVN {}) \
measures {}: sign this build with `arca coordinator sign`",
                    path.display(),
                    hex::encode(sig.fields.enclavehash.as_bytes()),
                    exe.0.display(),
                    launcher.0.display(),
                    sig.fields.isvsvn,
                    hex::encode(enclave.mrenclave.as_bytes())
                );
            }
            (sig, enclave, format!("SIGSTRUCT {}", path.display()))
        }
        None => {
            let enclave = coordinator_enclave(&launcher, &exe, COORDINATOR_MIN_ISVSVN)?;
            let key = SigningKey::from_pem(DEV_KEY).context("loading the built-in development key")?;
            let fields = arca_enclave::sigstruct_fields(&enclave.manifest, enclave.mrenclave, 0);
            let sig = Sigstruct::sign(&fields, &key).context("signing with the development key")?;
            (
                sig,
                enclave,
                "development signature (PUBLIC key keys/arca-dev-coordinator.pem)".to_owned(),
            )
        }
    };
    let mut report = ReportBody::parse(&[0u8; ReportBody::SIZE]).context("an empty REPORT body")?;
    report.mrenclave = sig.fields.enclavehash;
    report.mrsigner = sig.mrsigner();
    report.isvprodid = sig.fields.isvprodid;
    report.isvsvn = sig.fields.isvsvn;
    report.attributes = Attributes {
        flags: sig.fields.attributes.flags | Attributes::INIT,
        ..sig.fields.attributes
    };
    report.miscselect = sig.fields.miscselect;
    Ok(EnclaveIdentity {
        development: report.mrsigner == DEV_COORDINATOR_MRSIGNER,
        report,
        source,
        enclave,
    })
}

/// The identity as a policy in the enclave manifest's TOML `[coordinator]` format.
fn policy_toml(id: &EnclaveIdentity, pin_enclave: bool, allow_simulation: bool) -> anyhow::Result<String> {
    let r = &id.report;
    let policy = CoordinatorPolicy {
        identity: if pin_enclave {
            CoordinatorIdentity::Enclave(r.mrenclave)
        } else {
            CoordinatorIdentity::Signer {
                mrsigner: r.mrsigner,
                isvprodid: r.isvprodid,
                min_isvsvn: r.isvsvn,
            }
        },
        allow_simulation,
        allow_debug: false,
    };
    let mut s = format!("# Arca coordinator identity ({})\n", id.source);
    s += &format!("# MRENCLAVE {}\n", hex::encode(r.mrenclave.as_bytes()));
    if id.development {
        s += "# DEVELOPMENT key: anyone can sign as it; this policy works ONLY in simulation.\n";
    }
    s += &policy.to_toml().context("writing the policy")?;
    Ok(s)
}

#[derive(Serialize)]
struct IdentityJson {
    mrenclave: String,
    mrsigner: String,
    isvprodid: u16,
    isvsvn: u16,
    debug: bool,
    development: bool,
    source: String,
    launcher: PathBuf,
    executable: PathBuf,
    executable_sha256: String,
    enclave_manifest_sha256: String,
    policy_toml: String,
}

fn identity(ctx: Ctx, a: &IdentityArgs) -> anyhow::Result<i32> {
    let id = enclave_identity(a.launcher.as_deref(), a.sigstruct.as_deref())?;
    if id.development && a.production {
        bail!(
            "--production refused: this coordinator is signed with the PUBLIC development key \
(keys/arca-dev-coordinator.pem), which must never pass a production policy. Sign it with your own key \
(arca coordinator sign --key K) and pass --sigstruct"
        );
    }
    if let Some(dir) = &a.enclave_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("enclave.toml"), &id.enclave.manifest_toml)
            .with_context(|| format!("writing {}", dir.join("enclave.toml").display()))?;
        std::fs::write(dir.join("trusted.list"), &id.enclave.trusted_list)
            .with_context(|| format!("writing {}", dir.join("trusted.list").display()))?;
    }
    let toml = policy_toml(&id, a.pin_enclave, !a.production)?;
    let r = &id.report;
    let doc = IdentityJson {
        mrenclave: hex::encode(r.mrenclave.as_bytes()),
        mrsigner: hex::encode(r.mrsigner.as_bytes()),
        isvprodid: r.isvprodid,
        isvsvn: r.isvsvn,
        debug: r.attributes.flags & Attributes::DEBUG != 0,
        development: id.development,
        source: id.source.clone(),
        launcher: id.enclave.launcher.clone(),
        executable: id.enclave.exe.clone(),
        executable_sha256: id.enclave.exe_sha256.clone(),
        enclave_manifest_sha256: hex::encode(sha2::Sha256::digest(id.enclave.manifest_toml.as_bytes())),
        policy_toml: toml.clone(),
    };
    if id.development {
        eprintln!(
            "WARNING: development coordinator identity (signed with the PUBLIC key \
keys/arca-dev-coordinator.pem): it works ONLY in simulation."
        );
    }
    ctx.emit(&doc, |w| write!(w, "{toml}"))?;
    Ok(exit::OK)
}

#[derive(Serialize)]
struct SignJson {
    file: PathBuf,
    mrenclave: String,
    mrsigner: String,
    isvprodid: u16,
    isvsvn: u16,
}

fn sign(ctx: Ctx, a: &SignArgs) -> anyhow::Result<i32> {
    let pem =
        std::fs::read_to_string(&a.key).with_context(|| format!("reading the key {}", a.key.display()))?;
    let key = SigningKey::from_pem(&pem).with_context(|| format!("loading the key {}", a.key.display()))?;
    let date = a
        .date
        .split('-')
        .map(|p| p.parse::<u16>().ok())
        .collect::<Option<Vec<_>>>()
        .filter(|p| p.len() == 3)
        .and_then(|p| {
            SigstructFields::bcd_date(p[0], u8::try_from(p[1]).ok()?, u8::try_from(p[2]).ok()?).ok()
        })
        .with_context(|| format!("--date {:?} is not a date YYYY-MM-DD", a.date))?;
    let launcher = read_launcher(a.launcher.as_deref())?;
    let enclave = coordinator_enclave(&launcher, &this_executable()?, a.isvsvn)?;
    let fields = arca_enclave::sigstruct_fields(&enclave.manifest, enclave.mrenclave, date);
    let sig = Sigstruct::sign(&fields, &key).context("signing the coordinator's SIGSTRUCT")?;
    std::fs::write(&a.out, sig.to_bytes()).with_context(|| format!("writing {}", a.out.display()))?;
    let doc = SignJson {
        file: a.out.clone(),
        mrenclave: hex::encode(enclave.mrenclave.as_bytes()),
        mrsigner: hex::encode(sig.mrsigner().as_bytes()),
        isvprodid: COORDINATOR_ISVPRODID,
        isvsvn: a.isvsvn,
    };
    if sig.mrsigner() == DEV_COORDINATOR_MRSIGNER {
        eprintln!("WARNING: signed with the PUBLIC development key: this identity works ONLY in simulation.");
    }
    ctx.emit(&doc, |w| {
        writeln!(w, "wrote {} (the coordinator's SIGSTRUCT)", a.out.display())?;
        writeln!(w, "MRENCLAVE  {}\nMRSIGNER   {}", doc.mrenclave, doc.mrsigner)?;
        writeln!(w, "ISVPRODID  {}   ISVSVN {}", doc.isvprodid, doc.isvsvn)
    })?;
    Ok(exit::OK)
}

/// Settings after merging the config file and the flags.
struct Settings {
    data_dir: PathBuf,
    allow_simulation: bool,
    serve: ServeConfig,
    sim_pki: PathBuf,
    sigstruct: Option<PathBuf>,
    launcher: Option<PathBuf>,
}

impl RunArgs {
    fn settings(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(p) => serde_json::from_slice::<ConfigFile>(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("parsing the configuration {}", p.display()))?,
            None => ConfigFile {
                metrics_addr: default_metrics(),
                ..ConfigFile::default()
            },
        };
        let defaults = ServeConfig::default();
        let metrics_addr = match self.metrics_addr.as_deref() {
            Some("off") => None,
            Some(a) => Some(
                a.parse()
                    .with_context(|| format!("--metrics-addr {a:?} is not ADDR:PORT or off"))?,
            ),
            None => file.metrics_addr,
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("arca-coordinator"));
        let dns_names = match (self.dns_names.is_empty(), file.dns_names.is_empty()) {
            (false, _) => self.dns_names,
            (true, false) => file.dns_names,
            (true, true) => defaults.dns_names,
        };
        Ok(Settings {
            sim_pki: self
                .sim_pki
                .or(file.sim_pki)
                .unwrap_or_else(|| data_dir.join("sim-pki")),
            allow_simulation: self.allow_simulation || file.allow_simulation,
            serve: ServeConfig {
                mesh_addr: self.mesh_addr.or(file.mesh_addr).unwrap_or(defaults.mesh_addr),
                client_addr: self
                    .client_addr
                    .or(file.client_addr)
                    .unwrap_or(defaults.client_addr),
                metrics_addr,
                dns_names,
            },
            sigstruct: self.sigstruct.or(file.sigstruct),
            launcher: self.launcher.or(file.launcher),
            data_dir,
        })
    }
}

/// The simulation PKI in `dir`, created (valid ten years) when the directory holds none.
fn sim_pki(dir: &Path) -> anyhow::Result<SimPki> {
    if dir.join("root-ca.pem").exists() {
        return SimPki::load(dir).with_context(|| format!("loading the simulation PKI {}", dir.display()));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let pki = SimPki::create(SimPkiOptions::at(now)).context("creating the simulation PKI")?;
    pki.save(dir)
        .with_context(|| format!("saving the simulation PKI in {}", dir.display()))?;
    eprintln!(
        "created the simulation PKI in {} (its root: root-ca.pem)",
        dir.display()
    );
    Ok(pki)
}

fn run_coordinator(args: RunArgs) -> anyhow::Result<i32> {
    let s = args.settings()?;
    if !s.allow_simulation {
        bail!(
            "this build has no SGX quoting service, so the coordinator cannot produce a hardware quote: start it \
with --allow-simulation (it then quotes itself with the simulation PKI and accepts only marbles whose \
simulated quotes verify fully against that PKI)"
        );
    }
    std::fs::create_dir_all(&s.data_dir).with_context(|| format!("creating {}", s.data_dir.display()))?;
    let id = enclave_identity(s.launcher.as_deref(), s.sigstruct.as_deref())?;
    let pki = Arc::new(sim_pki(&s.sim_pki)?);
    let store = Arc::new(FileStore::open(&s.data_dir.join("state")).context("opening the state store")?);
    let sealer = Arc::new(SimKeySealer::from_env_or_dir(&s.data_dir).context("opening the sealing key")?);
    let coordinator = Coordinator::open(
        store,
        sealer,
        Options {
            allow_simulation: s.allow_simulation,
        },
    )
    .context("opening the coordinator state")?;

    let attester: Arc<dyn Attester> =
        Arc::new(QuoterAttester(Arc::new(SimQuoter::new(pki.clone(), id.report))));
    let anchor = pki
        .root_anchor()
        .context("the simulation root as a trust anchor")?;
    let collateral: Arc<dyn CollateralSource> = Arc::new(Arc::new(pki.collateral().clone()));
    let verifier = Arc::new(DcapVerifier::new(
        Arc::new(Verifier::new().with_simulation_root(anchor)),
        Some(collateral),
        s.allow_simulation,
    ));
    // In recovery mode the CA keys are sealed away: the certificate is a temporary self-issued one with
    // RA-TLS evidence, replaced by a CA-issued one once recovery completes.
    let certs = ServerCerts::new(
        coordinator.clone(),
        attester.clone(),
        Arc::new(dice_evidence),
        s.serve.dns_names.clone(),
    )
    .context("issuing the RA-TLS server certificate")?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let listeners = Listeners::bind(&s.serve).await?;
        let r = &id.report;
        eprintln!(
            "arca coordinator: SIMULATION mode (quotes signed by the simulation PKI {})",
            s.sim_pki.display()
        );
        if id.development {
            eprintln!(
                "WARNING: development identity (signed with the PUBLIC key keys/arca-dev-coordinator.pem): it \
works ONLY in simulation."
            );
        }
        eprintln!(
            "identity: MRENCLAVE {} MRSIGNER {} ISVPRODID {} ISVSVN {} ({})",
            hex::encode(r.mrenclave.as_bytes()),
            hex::encode(r.mrsigner.as_bytes()),
            r.isvprodid,
            r.isvsvn,
            id.source
        );
        eprintln!(
            "state: {} ({})",
            s.data_dir.display(),
            coordinator.status().message()
        );
        if certs.is_temporary() {
            eprintln!(
                "RECOVERY MODE: serving a temporary self-issued RA-TLS certificate; only status and recover \
work until the recovery secrets are uploaded (arca recover --attest …)"
            );
        }
        eprintln!(
            "mesh API {}  client API {}",
            listeners.mesh.local_addr()?,
            listeners.client.local_addr()?
        );
        if let Some(m) = &listeners.metrics {
            eprintln!("metrics http://{}/metrics", m.local_addr()?);
        }
        serve(coordinator, attester, verifier, &certs, listeners).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
