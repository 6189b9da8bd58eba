//! `arca coordinator`: run the coordinator (both APIs over RA-TLS, metrics on their own port);
//! `arca coordinator sign`: sign its enclave with the operator's key; `arca coordinator identity`: print the
//! identity policy that launchers and clients pin (contract 5).
//!
//! This machine has no SGX: the coordinator quotes itself with the in-process simulation quoter of
//! `arca-attest` over the simulation PKI (created in the data directory on first start), so it runs only with
//! `--allow-simulation`, and then also verifies marbles' simulated quotes fully against that PKI's root and
//! collateral. The enclave identity in its quotes comes from its SIGSTRUCT (`--sigstruct`), or, without one,
//! from an unsigned development identity (MRSIGNER zero). Its MRENCLAVE, in simulation, is SHA-256 of the
//! running executable — a stand-in until `arca-enclave`'s identity function (contract 2) covers the
//! coordinator — and a SIGSTRUCT is accepted only when it signs exactly that value, as EINIT would. Until the
//! simulation platform's quoting service exists, nothing measures the coordinator independently: the identity
//! is what this process claims (as any in-process simulation quoter's is).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use arca_attest::{CollateralSource, SimPki, SimPkiOptions, SimQuoter, Verifier};
use arca_coordinator::{
    dice_evidence, serve, Attester, Coordinator, DcapVerifier, FileStore, Listeners, Options, QuoterAttester,
    ServeConfig, ServerIdentity, SimKeySealer,
};
use arca_sgx::{Attributes, MiscSelect, Mrenclave, ReportBody, SigningKey, Sigstruct, SigstructFields};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::output::{exit, Ctx};

/// ISVPRODID of the Arca coordinator enclave (`0xC001`), as the enclave crate's default policy pins it.
const COORDINATOR_ISVPRODID: u16 = 0xC001;

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
Simulation: this build has no SGX quoting, so the coordinator runs only with --allow-simulation. It then \
accepts marbles whose simulated quotes verify fully against the simulation root and collateral in \
DATA_DIR/sim-pki (or --sim-pki), and refuses everything else.

Examples:
  arca coordinator --allow-simulation --data-dir /var/lib/arca/coordinator
  arca coordinator --allow-simulation --sigstruct coordinator.sig --mesh-addr 0.0.0.0:2001 --client-addr 0.0.0.0:4433
  arca coordinator --config coordinator.json
  arca coordinator sign --key operator.pem --date 2026-11-28 -o coordinator.sig
  arca coordinator identity --sigstruct coordinator.sig > coordinator-policy.toml

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
mrenclave; allow_simulation says whether a simulated quote is acceptable.

Examples:
  arca coordinator identity --sigstruct coordinator.sig
  arca coordinator identity --sigstruct coordinator.sig --pin-enclave --production
  arca --output json coordinator identity")]
    Identity(IdentityArgs),
    /// Sign this coordinator executable's enclave with your key: writes its SIGSTRUCT for `--sigstruct`.
    #[command(after_help = "\
The SIGSTRUCT signs this executable's MRENCLAVE (in simulation: SHA-256 of the executable), ISVPRODID 0xC001 \
(49153) and the ISVSVN you give; raise --isvsvn with every security fix so that policies can refuse older \
coordinators. The DATE is an input, so signing twice gives the same bytes.

Examples:
  arca keygen -o operator.pem
  arca coordinator sign --key operator.pem --date 2026-11-28 --isvsvn 2 -o coordinator.sig
  arca coordinator identity --sigstruct coordinator.sig > coordinator-policy.toml")]
    Sign(SignArgs),
}

/// Settings of a running coordinator; flags override the `--config` file.
#[derive(Args, Debug, Default)]
struct RunArgs {
    /// A JSON file with any of: data_dir, allow_simulation, mesh_addr, client_addr, metrics_addr (null
    /// disables metrics), dns_names, sim_pki, sigstruct. Flags given on the command line win.
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
    /// The coordinator enclave's SIGSTRUCT (1808 bytes): its identity. Default: an unsigned development
    /// identity, simulation only.
    #[arg(long, value_name = "FILE")]
    sigstruct: Option<PathBuf>,
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
}

fn default_metrics() -> Option<SocketAddr> {
    ServeConfig::default().metrics_addr
}

#[derive(Args, Debug)]
struct IdentityArgs {
    /// The coordinator enclave's SIGSTRUCT (default: the unsigned development identity).
    #[arg(long, value_name = "FILE")]
    sigstruct: Option<PathBuf>,
    /// Pin the exact MRENCLAVE instead of signer, product and minimum security version.
    #[arg(long)]
    pin_enclave: bool,
    /// Do not allow a simulated coordinator (for images that will run on SGX hardware).
    #[arg(long)]
    production: bool,
}

#[derive(Args, Debug)]
struct SignArgs {
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
    /// Where it comes from, for people.
    source: String,
    /// True for the unsigned development identity.
    development: bool,
}

/// The coordinator enclave's MRENCLAVE in simulation: SHA-256 of the running executable (see the module doc).
fn coordinator_mrenclave() -> anyhow::Result<(Mrenclave, PathBuf)> {
    let exe = std::env::current_exe().context("finding the running executable")?;
    let bytes = std::fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?;
    Ok((<[u8; 32]>::from(sha2::Sha256::digest(&bytes)).into(), exe))
}

fn enclave_identity(sigstruct: Option<&Path>) -> anyhow::Result<EnclaveIdentity> {
    let mut report = ReportBody::parse(&[0u8; ReportBody::SIZE]).context("an empty REPORT body")?;
    let (measured, exe) = coordinator_mrenclave()?;
    match sigstruct {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let sig = Sigstruct::parse(&bytes)
                .with_context(|| format!("parsing the SIGSTRUCT {}", path.display()))?;
            sig.verify()
                .with_context(|| format!("the SIGSTRUCT {} is not validly signed", path.display()))?;
            if sig.fields.enclavehash != measured {
                bail!(
                    "the SIGSTRUCT {} signs MRENCLAVE {}, but this coordinator ({}) measures {}: sign this \
build with `arca coordinator sign`",
                    path.display(),
                    hex::encode(sig.fields.enclavehash.as_bytes()),
                    exe.display(),
                    hex::encode(measured.as_bytes())
                );
            }
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
                report,
                source: format!("SIGSTRUCT {}", path.display()),
                development: false,
            })
        }
        None => {
            report.mrenclave = measured;
            report.mrsigner = [0u8; 32].into();
            report.isvprodid = COORDINATOR_ISVPRODID;
            report.isvsvn = 1;
            report.attributes = Attributes {
                flags: Attributes::INIT,
                xfrm: 3,
            };
            Ok(EnclaveIdentity {
                report,
                source: format!("UNSIGNED development identity (SHA-256 of {})", exe.display()),
                development: true,
            })
        }
    }
}

/// The identity as a policy in the enclave manifest's TOML `[coordinator]` format.
fn policy_toml(id: &EnclaveIdentity, pin_enclave: bool, allow_simulation: bool) -> String {
    let r = &id.report;
    let mut s = format!("# Arca coordinator identity from {}\n", id.source);
    if pin_enclave {
        s += &format!("mrenclave = \"{}\"\n", hex::encode(r.mrenclave.as_bytes()));
    } else {
        s += &format!("# mrenclave = \"{}\"\n", hex::encode(r.mrenclave.as_bytes()));
        s += &format!("mrsigner = \"{}\"\n", hex::encode(r.mrsigner.as_bytes()));
        s += &format!("isvprodid = {}\nmin_isvsvn = {}\n", r.isvprodid, r.isvsvn);
    }
    s += &format!("allow_simulation = {allow_simulation}\nallow_debug = false\n");
    s
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
    policy_toml: String,
}

fn identity(ctx: Ctx, a: &IdentityArgs) -> anyhow::Result<i32> {
    let id = enclave_identity(a.sigstruct.as_deref())?;
    if id.development && a.production {
        bail!("--production needs --sigstruct: the unsigned development identity works only in simulation");
    }
    let toml = policy_toml(&id, a.pin_enclave, !a.production);
    let r = &id.report;
    let doc = IdentityJson {
        mrenclave: hex::encode(r.mrenclave.as_bytes()),
        mrsigner: hex::encode(r.mrsigner.as_bytes()),
        isvprodid: r.isvprodid,
        isvsvn: r.isvsvn,
        debug: r.attributes.flags & Attributes::DEBUG != 0,
        development: id.development,
        source: id.source.clone(),
        policy_toml: toml.clone(),
    };
    if id.development {
        eprintln!("WARNING: unsigned development coordinator identity: it works ONLY in simulation.");
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
    let (enclavehash, _) = coordinator_mrenclave()?;
    let fields = SigstructFields {
        vendor: 0,
        date,
        swdefined: 0,
        miscselect: MiscSelect(0),
        miscmask: u32::MAX,
        cet_attributes: 0,
        cet_attributes_mask: 0,
        isvfamilyid: [0; 16],
        attributes: Attributes::new(Attributes::MODE64BIT, 0x3),
        attributemask: Attributes::new(u64::MAX, 0xffff_ffff_ffff_ff1b),
        enclavehash,
        isvextprodid: [0; 16],
        isvprodid: COORDINATOR_ISVPRODID,
        isvsvn: a.isvsvn,
    };
    let sig = Sigstruct::sign(&fields, &key).context("signing the coordinator's SIGSTRUCT")?;
    std::fs::write(&a.out, sig.to_bytes()).with_context(|| format!("writing {}", a.out.display()))?;
    let doc = SignJson {
        file: a.out.clone(),
        mrenclave: hex::encode(enclavehash.as_bytes()),
        mrsigner: hex::encode(sig.mrsigner().as_bytes()),
        isvprodid: COORDINATOR_ISVPRODID,
        isvsvn: a.isvsvn,
    };
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
    let id = enclave_identity(s.sigstruct.as_deref())?;
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
    let server_identity = ServerIdentity::issue(
        &coordinator,
        attester.as_ref(),
        &dice_evidence,
        &s.serve.dns_names,
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
            eprintln!("WARNING: unsigned development identity: it works ONLY in simulation.");
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
        eprintln!(
            "mesh API {}  client API {}",
            listeners.mesh.local_addr()?,
            listeners.client.local_addr()?
        );
        if let Some(m) = &listeners.metrics {
            eprintln!("metrics http://{}/metrics", m.local_addr()?);
        }
        serve(coordinator, attester, verifier, &server_identity, listeners).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
