//! `arca quote inspect|verify`: look inside a DCAP quote, or verify it against collateral under a policy.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use arca_attest::{
    AnchorKind, Collateral, Evidence, HexBytes, PccsClient, PckExtensions, PlatformId, Policy, Quote,
    QuoteBody, TcbStatus, TdxPolicy, TrustAnchor, Verdict, VerifiedQuote, Verifier,
};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::output::{exit, Ctx};

/// Inspect and verify DCAP quotes (SGX and TDX, versions 3, 4 and 5).
#[derive(Subcommand, Debug)]
pub(crate) enum QuoteCmd {
    /// Print a quote's header, attested body, quoting enclave and PCK certificate, without verifying.
    #[command(
        after_help = "Examples:\n  arca quote inspect quote.bin\n  arca quote inspect quote.bin --output json | jq .body.mrenclave"
    )]
    Inspect(InspectArgs),
    /// Verify a quote's signatures, certificate chain and collateral at a time, then apply a policy.
    #[command(
        after_help = "Exit codes: 0 accepted, 3 refused (the reasons are printed), 1 error.\n\n\
Examples:\n  arca quote verify quote.bin --collateral collateral.json --at 2025-06-26T00:00:00Z\n  \
arca quote verify quote.bin --pccs https://pccs.example:8081 --mrsigner 83d7…9e --isv-prod-id 1 --min-isv-svn 2\n  \
arca quote verify quote.dat --collateral col.json --trust-root testRoot.pem --pck-cert pck-and-chain.pem --at 1600000000\n  \
arca quote verify sim-quote.bin --collateral /var/lib/arca/sim --allow-simulation --sim-root /var/lib/arca/sim/root-ca.pem"
    )]
    Verify(Box<VerifyArgs>),
}

/// Arguments of `arca quote inspect`.
#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// The quote file (raw bytes).
    file: PathBuf,
}

/// Where collateral comes from and what is trusted (shared with `arca ratls verify`).
#[derive(Args, Debug)]
pub(crate) struct TrustArgs {
    /// Collateral: a JSON file (dcap-qvl's QuoteCollateralV3 layout) or a directory of raw PCS responses.
    #[arg(long, value_name = "FILE", conflicts_with = "pccs")]
    collateral: Option<PathBuf>,
    /// Fetch collateral from this PCCS / Intel PCS v4 / Azure THIM base URL.
    #[arg(long, value_name = "URL")]
    pccs: Option<String>,
    /// Cache fetched collateral here (reused until its nextUpdate).
    #[arg(long, value_name = "DIR", requires = "pccs")]
    pccs_cache: Option<PathBuf>,
    /// Verification time: Unix seconds or RFC 3339 (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Trust this root certificate (PEM) instead of Intel's SGX Root CA.
    #[arg(long, value_name = "PEM")]
    trust_root: Option<PathBuf>,
    /// The Arca simulation root CA certificate (PEM); trusted only with --allow-simulation.
    #[arg(long, value_name = "PEM")]
    sim_root: Option<PathBuf>,
}

/// Policy flags (shared with `arca ratls verify`); they override `--policy FILE`.
#[derive(Args, Debug)]
pub(crate) struct PolicyArgs {
    /// A policy as JSON (see docs/attestation.md); the flags below override its fields.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Accept this TCB status (repeatable; Intel's spelling, e.g. UpToDate). Default: UpToDate, SWHardeningNeeded.
    #[arg(long = "accept-status", value_name = "STATUS")]
    accept_status: Vec<TcbStatus>,
    /// Accept only these advisory IDs (repeatable): any other advisory refuses the quote.
    #[arg(long = "accept-advisory", value_name = "ID")]
    accept_advisory: Vec<String>,
    /// Refuse the quote if this advisory applies (repeatable).
    #[arg(long = "reject-advisory", value_name = "ID")]
    reject_advisory: Vec<String>,
    /// Accept debug enclaves and TDs.
    #[arg(long)]
    allow_debug: bool,
    /// Expected MRENCLAVE (64 hex digits).
    #[arg(long, value_name = "HEX")]
    mrenclave: Option<HexBytes<32>>,
    /// Expected MRSIGNER (64 hex digits).
    #[arg(long, value_name = "HEX")]
    mrsigner: Option<HexBytes<32>>,
    /// Expected ISVPRODID.
    #[arg(long, value_name = "N")]
    isv_prod_id: Option<u16>,
    /// Minimum ISVSVN.
    #[arg(long, value_name = "N")]
    min_isv_svn: Option<u16>,
    /// Expected MRTD (TDX, 96 hex digits).
    #[arg(long, value_name = "HEX")]
    mrtd: Option<HexBytes<48>>,
    /// Accept simulated quotes signed under --sim-root (never in production).
    #[arg(long)]
    allow_simulation: bool,
    /// Anchor on the exact root certificate bytes, not on the root's name and key.
    #[arg(long)]
    exact_root: bool,
    /// TEST ONLY: ignore CRL validity dates.
    #[arg(long)]
    insecure_ignore_crl_dates: bool,
}

/// Arguments of `arca quote verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The quote file (raw bytes).
    file: PathBuf,
    /// PCK certificate and its chain (PEM), for quotes whose certification data holds no chain (types 1–3).
    #[arg(long, value_name = "PEM")]
    pck_cert: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    policy: PolicyArgs,
}

pub(crate) fn run(ctx: Ctx, cmd: QuoteCmd) -> anyhow::Result<i32> {
    match cmd {
        QuoteCmd::Inspect(a) => inspect(ctx, &a),
        QuoteCmd::Verify(a) => verify(ctx, &a),
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Parses TIME as Unix seconds or RFC 3339.
pub(crate) fn parse_time(s: &str) -> anyhow::Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .with_context(|| format!("`{s}` is neither Unix seconds nor RFC 3339"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

impl TrustArgs {
    /// `--at` when given.
    pub(crate) fn at_given(&self) -> anyhow::Result<Option<i64>> {
        self.at.as_deref().map(parse_time).transpose()
    }

    pub(crate) fn at(&self) -> anyhow::Result<i64> {
        self.at
            .as_deref()
            .map(parse_time)
            .transpose()
            .map(|t| t.unwrap_or_else(now))
    }

    pub(crate) fn verifier(&self, policy: &Policy) -> anyhow::Result<Verifier> {
        let mut v = match &self.trust_root {
            Some(p) => Verifier::with_anchors(vec![TrustAnchor::from_pem(&read(p)?, AnchorKind::Custom)
                .with_context(|| format!("loading the trust root {}", p.display()))?]),
            None => Verifier::new(),
        };
        match (&self.sim_root, policy.allow_simulation) {
            (Some(p), _) => {
                v = v.with_simulation_root(
                    TrustAnchor::from_pem(&read(p)?, AnchorKind::Simulation)
                        .with_context(|| format!("loading the simulation root {}", p.display()))?,
                )
            }
            (None, true) => bail!("--allow-simulation needs --sim-root PEM (the simulation root to trust)"),
            (None, false) => {}
        }
        Ok(v.without_cache())
    }

    /// Collateral for quotes checked during TLS handshakes (RA-TLS): the file, the PCCS, or none.
    pub(crate) fn collateral_source(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn arca_attest::CollateralSource>>> {
        if let Some(p) = &self.collateral {
            let c = Collateral::load(p).with_context(|| format!("loading collateral {}", p.display()))?;
            return Ok(Some(std::sync::Arc::new(std::sync::Arc::new(c))));
        }
        if let Some(url) = &self.pccs {
            let mut client = PccsClient::new(url);
            if let Some(dir) = &self.pccs_cache {
                client = client.with_cache_dir(dir.clone());
            }
            return Ok(Some(std::sync::Arc::new(client)));
        }
        Ok(None)
    }

    /// Collateral for a quote: from the file, from the PCCS, or none.
    pub(crate) fn collateral(&self, quote: &[u8], at: i64) -> anyhow::Result<Option<Collateral>> {
        if let Some(p) = &self.collateral {
            return Ok(Some(
                Collateral::load(p).with_context(|| format!("loading collateral {}", p.display()))?,
            ));
        }
        if let Some(url) = &self.pccs {
            let mut client = PccsClient::new(url);
            if let Some(dir) = &self.pccs_cache {
                client = client.with_cache_dir(dir.clone());
            }
            let platform = PlatformId::of_quote(quote).context("finding the quote's platform (FMSPC)")?;
            return Ok(Some(client.collateral(&platform, at)?));
        }
        Ok(None)
    }
}

impl PolicyArgs {
    pub(crate) fn policy(&self) -> anyhow::Result<Policy> {
        let mut p = match &self.policy {
            Some(path) => serde_json::from_slice(&read(path)?)
                .with_context(|| format!("parsing the policy {}", path.display()))?,
            None => Policy::default(),
        };
        if !self.accept_status.is_empty() {
            p.accepted_tcb_statuses = self.accept_status.clone();
        }
        if !self.accept_advisory.is_empty() {
            p.accepted_advisories = Some(self.accept_advisory.clone());
        }
        p.rejected_advisories.extend(self.reject_advisory.iter().cloned());
        p.allow_debug |= self.allow_debug;
        p.mrenclave = self.mrenclave.or(p.mrenclave);
        p.mrsigner = self.mrsigner.or(p.mrsigner);
        p.isv_prod_id = self.isv_prod_id.or(p.isv_prod_id);
        p.min_isv_svn = self.min_isv_svn.or(p.min_isv_svn);
        if let Some(mrtd) = self.mrtd {
            p.tdx.get_or_insert_with(TdxPolicy::default).mr_td = Some(mrtd);
        }
        p.allow_simulation |= self.allow_simulation;
        p.require_exact_root_certificate |= self.exact_root;
        p.insecure_ignore_crl_dates |= self.insecure_ignore_crl_dates;
        Ok(p)
    }
}

fn inspect(ctx: Ctx, a: &InspectArgs) -> anyhow::Result<i32> {
    let bytes = read(&a.file)?;
    let q = Quote::parse(&bytes).with_context(|| format!("parsing the quote {}", a.file.display()))?;
    let doc = quote_json(&q);
    ctx.emit(&doc, |out| print_json_as_text(out, &doc, 0))?;
    Ok(exit::OK)
}

/// The quote as a JSON document (schema in docs/cli-json.md).
pub(crate) fn quote_json(q: &Quote<'_>) -> Value {
    let sig = &q.signature;
    let qe = sig.qe_report.to_bytes();
    let mut pck = Value::Null;
    if let Ok(ders) = sig.certification.pck_chain_der() {
        if let Some(p) = ders.iter().find_map(|d| PckExtensions::from_certificate(d).ok()) {
            pck = json!(p);
        }
    }
    json!({
        "version": q.header.version,
        "tee": q.tee_type().name(),
        "attestation_key_type": q.header.attestation_key_type,
        "qe_svn": q.header.qe_svn,
        "pce_svn": q.header.pce_svn,
        "qe_vendor_id": hex::encode(q.header.qe_vendor_id),
        "user_data": hex::encode(q.header.user_data),
        "body": body_json(&q.body),
        "qe_report": {
            "mrenclave": hex::encode(&qe[64..96]),
            "mrsigner": hex::encode(&qe[128..160]),
            "isv_prod_id": u16::from_le_bytes([qe[256], qe[257]]),
            "isv_svn": u16::from_le_bytes([qe[258], qe[259]]),
        },
        "qe_auth_data_size": sig.qe_auth_data.len(),
        "certification_data_type": sig.certification.kind(),
        "pck": pck,
    })
}

fn body_json(body: &QuoteBody) -> Value {
    match body {
        QuoteBody::Sgx(r) => {
            let b = r.to_bytes();
            json!({
                "type": "sgx",
                "mrenclave": hex::encode(&b[64..96]),
                "mrsigner": hex::encode(&b[128..160]),
                "isv_prod_id": u16::from_le_bytes([b[256], b[257]]),
                "isv_svn": u16::from_le_bytes([b[258], b[259]]),
                "attributes": hex::encode(&b[48..64]),
                "debug": b[48] & 2 != 0,
                "cpusvn": hex::encode(&b[0..16]),
                "report_data": hex::encode(&b[320..384]),
            })
        }
        other => {
            let Some(td) = other.td() else { return Value::Null };
            let mut v = json!({
                "type": if matches!(other, QuoteBody::Td15(_)) { "td15" } else { "td10" },
                "tee_tcb_svn": hex::encode(td.tee_tcb_svn),
                "mr_seam": hex::encode(td.mr_seam),
                "mr_signer_seam": hex::encode(td.mr_signer_seam),
                "td_attributes": hex::encode(td.td_attributes),
                "debug": td.debug(),
                "xfam": hex::encode(td.xfam),
                "mr_td": hex::encode(td.mr_td),
                "mr_config_id": hex::encode(td.mr_config_id),
                "mr_owner": hex::encode(td.mr_owner),
                "mr_owner_config": hex::encode(td.mr_owner_config),
                "rtmr": td.rtmr.iter().map(hex::encode).collect::<Vec<_>>(),
                "report_data": hex::encode(td.report_data),
            });
            if let QuoteBody::Td15(t) = other {
                v["tee_tcb_svn2"] = json!(hex::encode(t.tee_tcb_svn2));
                v["mr_service_td"] = json!(hex::encode(t.mr_service_td));
            }
            v
        }
    }
}

/// A verdict as a JSON document (schema in docs/cli-json.md).
pub(crate) fn verdict_json(v: &Verdict) -> Value {
    json!({
        "accepted": v.accepted,
        "reasons": v.reasons,
        "notes": v.notes,
        "evidence": v.evidence.as_ref().map(evidence_json),
    })
}

fn evidence_json(e: &VerifiedQuote) -> Value {
    json!({
        "version": e.version,
        "tee": e.tee_type.name(),
        "anchor": e.anchor,
        "simulation": e.is_simulation(),
        "tcb_status": e.tcb.as_ref().map(|t| t.status.as_str()),
        "tcb_status_known": e.tcb.is_some(),
        "platform_tcb_status": e.tcb.as_ref().map(|t| t.platform_status.as_str()),
        "qe_tcb_status": e.tcb.as_ref().map(|t| t.qe_status.as_str()),
        "advisory_ids": e.tcb.as_ref().map(|t| t.advisory_ids.clone()).unwrap_or_default(),
        "tcb_date": e.tcb.as_ref().map(|t| t.tcb_date.clone()),
        "fmspc": hex::encode_upper(e.pck.fmspc),
        "pce_svn": e.pck.pcesvn,
        "qe_isv_svn": e.qe_isv_svn,
        "debug": e.debug(),
        "body": body_json(&e.body),
        "verified_at": rfc3339(e.verified_at),
        "valid_until": rfc3339(e.valid_until),
    })
}

fn verify(ctx: Ctx, a: &VerifyArgs) -> anyhow::Result<i32> {
    let quote = read(&a.file)?;
    let policy = a.policy.policy()?;
    let at = a.trust.at()?;
    let verifier = a.trust.verifier(&policy)?;
    let collateral = a.trust.collateral(&quote, at)?;
    let pck = a.pck_cert.as_deref().map(read).transpose()?;
    let evidence = Evidence {
        quote: &quote,
        collateral: collateral.as_ref(),
        pck_chain: pck.as_deref(),
    };
    let verdict = verifier.verify(&evidence, &policy, at);
    let doc = verdict_json(&verdict);
    ctx.emit(&doc, |out| print_verdict(out, &verdict, at))?;
    Ok(if verdict.accepted { exit::OK } else { exit::REFUSED })
}

/// Prints a verdict for people.
pub(crate) fn print_verdict(out: &mut dyn std::io::Write, v: &Verdict, at: i64) -> std::io::Result<()> {
    writeln!(
        out,
        "{} (checked at {})",
        if v.accepted { "ACCEPTED" } else { "REFUSED" },
        rfc3339(at)
    )?;
    for r in &v.reasons {
        writeln!(out, "  refused: {r}")?;
    }
    for n in &v.notes {
        writeln!(out, "  note: {n}")?;
    }
    if let Some(e) = &v.evidence {
        writeln!(out, "TEE:           {} (quote v{})", e.tee_type.name(), e.version)?;
        match &e.tcb {
            Some(t) => {
                writeln!(out, "TCB status:    {}", t.status)?;
                let adv = if t.advisory_ids.is_empty() {
                    "none".to_string()
                } else {
                    t.advisory_ids.join(", ")
                };
                writeln!(out, "Advisories:    {adv}")?;
            }
            None => writeln!(out, "TCB status:    unknown (no collateral)")?,
        }
        writeln!(
            out,
            "Root:          {:?}{}",
            e.anchor,
            if e.is_simulation() { " (SIMULATION)" } else { "" }
        )?;
        writeln!(out, "FMSPC:         {}", hex::encode_upper(e.pck.fmspc))?;
        if let (Some(mre), Some(mrs)) = (e.mrenclave(), e.mrsigner()) {
            writeln!(out, "MRENCLAVE:     {}", hex::encode(mre))?;
            writeln!(out, "MRSIGNER:      {}", hex::encode(mrs))?;
            writeln!(out, "ISVPRODID:     {}", e.isv_prod_id().unwrap_or_default())?;
            writeln!(out, "ISVSVN:        {}", e.isv_svn().unwrap_or_default())?;
        }
        if let Some(td) = e.body.td() {
            writeln!(out, "MRTD:          {}", hex::encode(td.mr_td))?;
        }
        writeln!(out, "Debug:         {}", e.debug())?;
        writeln!(out, "REPORTDATA:    {}", hex::encode(e.report_data()))?;
        writeln!(out, "Valid until:   {}", rfc3339(e.valid_until))?;
    }
    Ok(())
}

/// Prints a JSON document as indented `key: value` lines.
pub(crate) fn print_json_as_text(
    out: &mut dyn std::io::Write,
    v: &Value,
    indent: usize,
) -> std::io::Result<()> {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(_) => {
                        writeln!(out, "{pad}{k}:")?;
                        print_json_as_text(out, v, indent + 1)?;
                    }
                    Value::Array(items) => {
                        let parts: Vec<String> = items.iter().map(scalar).collect();
                        writeln!(out, "{pad}{k}: {}", parts.join(", "))?;
                    }
                    other => writeln!(out, "{pad}{k}: {}", scalar(other))?,
                }
            }
            Ok(())
        }
        other => writeln!(out, "{pad}{}", scalar(other)),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
