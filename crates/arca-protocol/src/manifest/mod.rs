//! MarbleRun manifests: types, decoding (Go's JSON rules) and full validation with the template dry run.

mod decode;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use decode::Problem;
use decode::{as_string, as_strings, as_uint, Obj, Path, Problems};
use template::{Kind, Part, Target, Template, ValueRef};

use crate::Error;

/// TCB statuses a package accepts when its manifest does not say (MarbleRun's default).
pub const DEFAULT_ACCEPTED_TCB_STATUSES: [&str; 2] = ["UpToDate", "SWHardeningNeeded"];

/// Every TCB status a DCAP verification can report.
pub const TCB_STATUSES: [&str; 7] = [
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
];

/// Feature gates this coordinator knows (`Config.FeatureGates`).
pub const FEATURE_GATES: [&str; 2] = ["SignQuoteEndpoint", "MonotonicCounter"];

/// The SHA-256 fingerprint of a manifest's exact bytes, lowercase hex (what clients compare).
pub fn fingerprint(manifest_bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(manifest_bytes))
}

/// A validated MarbleRun manifest.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// Enclave packages by name.
    pub packages: BTreeMap<String, Package>,
    /// Marble types by name.
    pub marbles: BTreeMap<String, Marble>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
    /// Recovery keys (RSA public keys) by name.
    pub recovery_keys: BTreeMap<String, RecoveryKey>,
    /// Transparent-TLS tags by name (validated and kept; the launcher does not implement TTLS).
    pub tls: BTreeMap<String, TlsTag>,
    /// Coordinator settings.
    pub config: Config,
}

/// An enclave package: which quotes a marble of this package must present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Package {
    /// Accept debug enclaves (never secure).
    pub debug: bool,
    /// Required MRENCLAVE.
    pub unique_id: Option<[u8; 32]>,
    /// Required MRSIGNER.
    pub signer_id: Option<[u8; 32]>,
    /// Required ISVPRODID.
    pub product_id: Option<u16>,
    /// Minimum ISVSVN.
    pub security_version: Option<u16>,
    /// TCB statuses accepted (default: UpToDate, SWHardeningNeeded).
    pub accepted_tcb_statuses: Vec<String>,
    /// Advisory IDs accepted for a status other than UpToDate.
    pub accepted_advisories: Vec<String>,
}

/// A marble type.
#[derive(Clone, Debug, Default)]
pub struct Marble {
    /// The package its quotes must match.
    pub package: String,
    /// At most this many activations (0: unlimited).
    pub max_activations: u64,
    /// Files, environment and arguments given at activation.
    pub parameters: Parameters,
    /// Transparent-TLS tags.
    pub tls: Vec<String>,
    /// MarbleRun's switch to skip binding secrets to the marble's TLS key (kept for compatibility).
    pub disable_secret_binding: bool,
}

/// A marble's parameters.
#[derive(Clone, Debug, Default)]
pub struct Parameters {
    /// Files by path.
    pub files: BTreeMap<String, Entry>,
    /// Environment variables by name.
    pub env: BTreeMap<String, Entry>,
    /// Arguments (`argv[0]` first); never templated.
    pub argv: Vec<String>,
}

/// A file or environment entry: decoded data, with its template unless `NoTemplates`.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// The data after decoding `Encoding`.
    pub data: Vec<u8>,
    /// The parsed template (`None` with `NoTemplates` or when the data has no action).
    pub template: Option<Template>,
}

impl Entry {
    /// Renders the entry: the template when there is one, the data otherwise.
    pub fn render<'v>(
        &self,
        target: Target,
        value_of: impl Fn(&ValueRef) -> Result<template::Value<'v>, String>,
    ) -> Result<Vec<u8>, template::TemplateError> {
        match &self.template {
            Some(t) => t.render(target, value_of),
            None => Ok(self.data.clone()),
        }
    }
}

/// Secret types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretType {
    /// `symmetric-key`.
    SymmetricKey,
    /// `cert-rsa`.
    CertRsa,
    /// `cert-ecdsa`.
    CertEcdsa,
    /// `cert-ed25519`.
    CertEd25519,
    /// `plain`: data a user uploads.
    Plain,
}

impl SecretType {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretType::SymmetricKey => "symmetric-key",
            SecretType::CertRsa => "cert-rsa",
            SecretType::CertEcdsa => "cert-ecdsa",
            SecretType::CertEd25519 => "cert-ed25519",
            SecretType::Plain => "plain",
        }
    }

    /// Parses the manifest spelling.
    pub fn parse(s: &str) -> Option<SecretType> {
        Some(match s {
            "symmetric-key" => SecretType::SymmetricKey,
            "cert-rsa" => SecretType::CertRsa,
            "cert-ecdsa" => SecretType::CertEcdsa,
            "cert-ed25519" => SecretType::CertEd25519,
            "plain" => SecretType::Plain,
            _ => return None,
        })
    }

    /// True for the certificate types.
    pub fn is_cert(self) -> bool {
        matches!(
            self,
            SecretType::CertRsa | SecretType::CertEcdsa | SecretType::CertEd25519
        )
    }
}

/// A secret's definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSpec {
    /// Its type.
    pub kind: SecretType,
    /// Size in bits (symmetric keys, RSA modulus, ECDSA curve; 0 for Ed25519 and plain).
    pub size: u32,
    /// One value for all marbles (true) or one per marble (false).
    pub shared: bool,
    /// Uploaded by a user instead of generated.
    pub user_defined: bool,
    /// Certificate validity in days (certificates; default 365).
    pub valid_for_days: Option<u64>,
    /// Certificate fields (Go `x509.Certificate` names).
    pub cert: CertSpec,
}

/// The certificate fields a manifest may set, named as Go's `x509.Certificate` JSON names them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertSpec {
    /// Subject.
    pub subject: Name,
    /// Subject alternative DNS names.
    pub dns_names: Vec<String>,
    /// Subject alternative IP addresses.
    pub ip_addresses: Vec<IpAddr>,
    /// Subject alternative e-mail addresses.
    pub email_addresses: Vec<String>,
    /// Subject alternative URIs.
    pub uris: Vec<String>,
    /// Fixed end of validity (exclusive with `ValidFor`).
    pub not_after: Option<OffsetDateTime>,
    /// Go's `x509.KeyUsage` bit set (DigitalSignature = 1, ContentCommitment = 2, KeyEncipherment = 4, …).
    pub key_usage: u32,
    /// Go's `x509.ExtKeyUsage` values (Any = 0, ServerAuth = 1, ClientAuth = 2, …).
    pub ext_key_usage: Vec<u8>,
    /// A CA certificate.
    pub is_ca: bool,
}

/// An X.500 name as Go's `pkix.Name` writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Name {
    /// C.
    pub country: Vec<String>,
    /// O.
    pub organization: Vec<String>,
    /// OU.
    pub organizational_unit: Vec<String>,
    /// L.
    pub locality: Vec<String>,
    /// ST.
    pub province: Vec<String>,
    /// street.
    pub street_address: Vec<String>,
    /// postalCode.
    pub postal_code: Vec<String>,
    /// serialNumber.
    pub serial_number: String,
    /// CN.
    pub common_name: String,
}

/// A user: a client certificate and its roles.
#[derive(Clone, Debug)]
pub struct User {
    /// The certificate as given (PEM).
    pub certificate_pem: String,
    /// Its DER (what TLS client certificates are compared with).
    pub certificate_der: Vec<u8>,
    /// Role names.
    pub roles: Vec<String>,
}

/// Resource types of roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    /// Packages (action `UpdateSecurityVersion`).
    Packages,
    /// Secrets (actions `ReadSecret`, `WriteSecret`).
    Secrets,
    /// The manifest (action `UpdateManifest`).
    Manifest,
}

/// Actions a role permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Read a secret.
    ReadSecret,
    /// Write a user-defined secret.
    WriteSecret,
    /// Raise a package's SecurityVersion.
    UpdateSecurityVersion,
    /// Propose or acknowledge a full manifest update.
    UpdateManifest,
}

impl Action {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReadSecret => "ReadSecret",
            Action::WriteSecret => "WriteSecret",
            Action::UpdateSecurityVersion => "UpdateSecurityVersion",
            Action::UpdateManifest => "UpdateManifest",
        }
    }
}

/// A role.
#[derive(Clone, Debug)]
pub struct Role {
    /// The resource type it covers.
    pub resource_type: ResourceType,
    /// Resource names (ignored for `Manifest`).
    pub resource_names: Vec<String>,
    /// Permitted actions.
    pub actions: Vec<Action>,
}

/// A recovery key: an RSA public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryKey {
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// Modulus size in bits.
    pub bits: usize,
}

/// A transparent-TLS tag.
#[derive(Clone, Debug, Default)]
pub struct TlsTag {
    /// Outgoing connections.
    pub outgoing: Vec<TlsEndpoint>,
    /// Incoming connections.
    pub incoming: Vec<TlsEndpoint>,
}

/// A transparent-TLS endpoint.
#[derive(Clone, Debug, Default)]
pub struct TlsEndpoint {
    /// Port.
    pub port: u16,
    /// Address (outgoing only).
    pub addr: String,
    /// Certificate secret to serve (incoming).
    pub cert: Option<String>,
    /// Accept clients without a certificate (incoming).
    pub disable_client_auth: bool,
}

/// `Config`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `SealMode`: "", "ProductKey", "UniqueKey" or "Disabled".
    pub seal_mode: String,
    /// Feature gates.
    pub feature_gates: Vec<String>,
    /// Acknowledgements needed to apply a multi-party manifest update (0: every user with `UpdateManifest`).
    pub update_threshold: u64,
    /// Recovery secrets needed to recover (0: every recovery key; k < n: Shamir k-of-n).
    pub recovery_threshold: u64,
}

/// A package update: new SecurityVersions by package name (`arca manifest update apply` with a
/// `{"Packages": {"name": {"SecurityVersion": N}}}` document).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageUpdate {
    /// New minimum SecurityVersion per package.
    pub security_versions: BTreeMap<String, u16>,
}

impl PackageUpdate {
    /// Parses a package update document.
    pub fn parse(bytes: &[u8]) -> Result<PackageUpdate, Error> {
        let json: Json = serde_json::from_slice(bytes).map_err(Error::Json)?;
        let mut p = Problems::default();
        let mut security_versions = BTreeMap::new();
        if let Some(root) = Obj::new(&json, Path::root(), &mut p) {
            let pkgs = root.map("Packages", &mut p);
            if pkgs.is_empty() && p.0.is_empty() {
                p.add(&Path::root().key("Packages"), "no package to update");
            }
            for (name, v, path) in pkgs {
                let Some(o) = Obj::new(v, path.clone(), &mut p) else {
                    continue;
                };
                match o.uint("SecurityVersion", &mut p) {
                    Some(n) => match u16::try_from(n) {
                        Ok(n) => {
                            security_versions.insert(name.to_owned(), n);
                        }
                        Err(_) => p.add(&path.key("SecurityVersion"), "exceeds 65535 (ISVSVN is 16 bits)"),
                    },
                    None => p.add(
                        &path.key("SecurityVersion"),
                        "missing: an update sets SecurityVersion",
                    ),
                }
            }
        } else {
            p.add(&Path::root(), "expected a JSON object");
        }
        if p.0.is_empty() {
            Ok(PackageUpdate { security_versions })
        } else {
            Err(Error::Invalid(p.0))
        }
    }
}

impl Manifest {
    /// Decodes and fully validates a manifest, including the dry run of every template. All problems are
    /// reported at once, each with its JSON path.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, Error> {
        let json: Json = serde_json::from_slice(bytes).map_err(Error::Json)?;
        let mut p = Problems::default();
        let m = decode_manifest(&json, &mut p);
        if p.0.is_empty() {
            m.validate(&mut p);
        }
        if p.0.is_empty() {
            Ok(m)
        } else {
            Err(Error::Invalid(p.0))
        }
    }

    /// The kind of value a template reference resolves to under this manifest (the dry run's oracle).
    pub fn kind_of(&self, r: &ValueRef) -> Result<Kind, String> {
        match r {
            ValueRef::Secret { name, part } => {
                let s = self
                    .secrets
                    .get(name)
                    .ok_or_else(|| format!("no secret named {name:?} in Secrets"))?;
                match (s.kind, part) {
                    (SecretType::SymmetricKey | SecretType::Plain, Part::Default) => Ok(if s.user_defined {
                        Kind::UserBytes
                    } else {
                        Kind::GeneratedBytes
                    }),
                    (SecretType::SymmetricKey | SecretType::Plain, _) => Err(format!(
                        "a {} secret has no .Cert, .Public or .Private",
                        s.kind.as_str()
                    )),
                    (_, Part::Default | Part::Public) => Ok(Kind::PublicKey),
                    (_, Part::Cert) => Ok(Kind::Cert),
                    (_, Part::Private) => Ok(Kind::PrivateKey),
                }
            }
            ValueRef::RootCa(Part::Cert) | ValueRef::IntermediateCa(Part::Cert) => Ok(Kind::Cert),
            ValueRef::RootCa(Part::Public) | ValueRef::IntermediateCa(Part::Public) => Ok(Kind::PublicKey),
            ValueRef::MarbleCert(Part::Cert) => Ok(Kind::Cert),
            ValueRef::MarbleCert(Part::Public) => Ok(Kind::PublicKey),
            ValueRef::MarbleCert(Part::Private) => Ok(Kind::PrivateKey),
            ValueRef::SealKey => Ok(Kind::GeneratedBytes),
            other => Err(format!("{other} is not available")),
        }
    }

    /// The users allowed `action` on resource `name` (of `resource_type`), sorted.
    pub fn users_permitted(&self, resource_type: ResourceType, name: &str, action: Action) -> Vec<String> {
        self.users
            .iter()
            .filter(|(_, u)| {
                u.roles.iter().filter_map(|r| self.roles.get(r)).any(|role| {
                    role.resource_type == resource_type
                        && role.actions.contains(&action)
                        && (resource_type == ResourceType::Manifest
                            || role.resource_names.iter().any(|n| n == name))
                })
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn validate(&self, p: &mut Problems) {
        let root = Path::root();
        if self.packages.is_empty() {
            p.add(&root.key("Packages"), "no package is defined");
        }
        if self.marbles.is_empty() {
            p.add(&root.key("Marbles"), "no marble is defined");
        }
        for (name, pkg) in &self.packages {
            validate_package(pkg, &root.key("Packages").key(name), p);
        }
        for (name, m) in &self.marbles {
            self.validate_marble(m, &root.key("Marbles").key(name), p);
        }
        for (name, s) in &self.secrets {
            validate_secret(s, &root.key("Secrets").key(name), p);
        }
        self.validate_users_and_roles(p);
        for (name, tag) in &self.tls {
            self.validate_tls(tag, &root.key("TLS").key(name), p);
        }
        let path = root.key("Config");
        if !["", "ProductKey", "UniqueKey", "Disabled"].contains(&self.config.seal_mode.as_str()) {
            p.add(
                &path.key("SealMode"),
                format!(
                    "unknown seal mode {:?}; expected ProductKey, UniqueKey or Disabled",
                    self.config.seal_mode
                ),
            );
        }
        for (i, g) in self.config.feature_gates.iter().enumerate() {
            if !FEATURE_GATES.contains(&g.as_str()) {
                p.add(
                    &path.key("FeatureGates").index(i),
                    format!("unknown feature gate {g:?}; known: {}", FEATURE_GATES.join(", ")),
                );
            }
        }
        let updaters = self
            .users_permitted(ResourceType::Manifest, "", Action::UpdateManifest)
            .len() as u64;
        if self.config.update_threshold > updaters {
            p.add(
                &path.key("UpdateThreshold"),
                format!(
                    "{} exceeds the {updaters} user(s) allowed to UpdateManifest",
                    self.config.update_threshold
                ),
            );
        }
        let keys = self.recovery_keys.len() as u64;
        if self.config.recovery_threshold > keys {
            p.add(
                &path.key("RecoveryThreshold"),
                format!(
                    "{} exceeds the {keys} recovery key(s)",
                    self.config.recovery_threshold
                ),
            );
        }
        if keys > 255 {
            p.add(&root.key("RecoveryKeys"), "at most 255 recovery keys");
        }
    }

    fn validate_marble(&self, m: &Marble, path: &Path, p: &mut Problems) {
        if !self.packages.contains_key(&m.package) {
            p.add(
                &path.key("Package"),
                format!("no package named {:?} in Packages", m.package),
            );
        }
        for (i, tag) in m.tls.iter().enumerate() {
            if !self.tls.contains_key(tag) {
                p.add(&path.key("TLS").index(i), format!("no TLS tag named {tag:?}"));
            }
        }
        let params = path.key("Parameters");
        for (name, e) in &m.parameters.files {
            let fp = params.key("Files").key(name);
            if name.is_empty() || name.contains('\0') {
                p.add(&fp, "a file path must be non-empty and hold no NUL byte");
            }
            if let Some(t) = &e.template {
                if let Err(err) = t.check(Target::File, |r| self.kind_of(r)) {
                    p.add(&fp, err.to_string());
                }
            }
        }
        for (name, e) in &m.parameters.env {
            let ep = params.key("Env").key(name);
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                p.add(
                    &ep,
                    "an environment name must be non-empty and hold no `=` or NUL",
                );
            }
            match &e.template {
                Some(t) => {
                    if let Err(err) = t.check(Target::Env, |r| self.kind_of(r)) {
                        p.add(&ep, err.to_string());
                    }
                }
                None if e.data.contains(&0) => p.add(&ep, "environment values cannot hold NUL bytes"),
                None => {}
            }
        }
        for (i, a) in m.parameters.argv.iter().enumerate() {
            if a.contains('\0') {
                p.add(&params.key("Argv").index(i), "arguments cannot hold NUL bytes");
            }
        }
    }

    fn validate_users_and_roles(&self, p: &mut Problems) {
        let root = Path::root();
        let mut certs: BTreeMap<&[u8], &str> = BTreeMap::new();
        for (name, u) in &self.users {
            let path = root.key("Users").key(name);
            if let Some(other) = certs.insert(&u.certificate_der, name) {
                p.add(
                    &path.key("Certificate"),
                    format!("the same certificate as user {other:?}"),
                );
            }
            for (i, r) in u.roles.iter().enumerate() {
                if !self.roles.contains_key(r) {
                    p.add(
                        &path.key("Roles").index(i),
                        format!("no role named {r:?} in Roles"),
                    );
                }
            }
        }
        for (name, role) in &self.roles {
            let path = root.key("Roles").key(name);
            for (i, n) in role.resource_names.iter().enumerate() {
                let exists = match role.resource_type {
                    ResourceType::Packages => self.packages.contains_key(n),
                    ResourceType::Secrets => self.secrets.contains_key(n),
                    ResourceType::Manifest => true,
                };
                if !exists {
                    let section = if role.resource_type == ResourceType::Packages {
                        "Packages"
                    } else {
                        "Secrets"
                    };
                    p.add(
                        &path.key("ResourceNames").index(i),
                        format!("no {n:?} in {section}"),
                    );
                }
            }
            for (i, a) in role.actions.iter().enumerate() {
                let fits = match role.resource_type {
                    ResourceType::Packages => *a == Action::UpdateSecurityVersion,
                    ResourceType::Secrets => matches!(a, Action::ReadSecret | Action::WriteSecret),
                    ResourceType::Manifest => *a == Action::UpdateManifest,
                };
                if !fits {
                    p.add(
                        &path.key("Actions").index(i),
                        format!(
                            "{} does not apply to resource type {:?}",
                            a.as_str(),
                            role.resource_type
                        ),
                    );
                }
            }
        }
    }

    fn validate_tls(&self, tag: &TlsTag, path: &Path, p: &mut Problems) {
        for (i, e) in tag.incoming.iter().enumerate() {
            if let Some(c) = &e.cert {
                match self.secrets.get(c) {
                    Some(s) if s.kind.is_cert() && s.shared => {}
                    Some(_) => p.add(
                        &path.key("Incoming").index(i).key("Cert"),
                        format!("secret {c:?} is not a shared certificate"),
                    ),
                    None => p.add(
                        &path.key("Incoming").index(i).key("Cert"),
                        format!("no secret named {c:?}"),
                    ),
                }
            }
        }
        for (i, e) in tag.outgoing.iter().enumerate() {
            if e.addr.is_empty() {
                p.add(&path.key("Outgoing").index(i).key("Addr"), "missing");
            }
        }
    }
}

fn looks_like_placeholder(s: &str) -> bool {
    let t = s.trim();
    (t.starts_with('<') && t.ends_with('>')) || t.to_ascii_lowercase().contains("replace")
}

fn hint(s: &str) -> &'static str {
    if looks_like_placeholder(s) {
        " (this looks like a placeholder: replace it with the real value)"
    } else {
        ""
    }
}

fn hex32(s: &str, path: &Path, what: &str, p: &mut Problems) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    match hex::decode_to_slice(s, &mut out) {
        Ok(()) => Some(out),
        Err(_) => {
            let shown: String = s.chars().take(80).collect();
            p.add(
                path,
                format!(
                    "expected {what} as 64 hex digits (32 bytes), found {shown:?}{}",
                    hint(s)
                ),
            );
            None
        }
    }
}

fn validate_package(pkg: &Package, path: &Path, p: &mut Problems) {
    if pkg.unique_id.is_none() && pkg.signer_id.is_none() {
        p.add(
            path,
            "neither UniqueID nor SignerID is set, so any enclave would match; set UniqueID (MRENCLAVE) or \
             SignerID (MRSIGNER) with ProductID and SecurityVersion",
        );
    }
    if pkg.signer_id.is_some() && pkg.unique_id.is_none() {
        if pkg.product_id.is_none() {
            p.add(
                &path.key("ProductID"),
                "missing: SignerID without UniqueID needs ProductID",
            );
        }
        if pkg.security_version.is_none() {
            p.add(
                &path.key("SecurityVersion"),
                "missing: SignerID without UniqueID needs SecurityVersion",
            );
        }
    }
    for (i, s) in pkg.accepted_tcb_statuses.iter().enumerate() {
        if !TCB_STATUSES.contains(&s.as_str()) {
            p.add(
                &path.key("AcceptedTCBStatuses").index(i),
                format!(
                    "unknown TCB status {s:?}; expected one of {}",
                    TCB_STATUSES.join(", ")
                ),
            );
        }
    }
}

fn validate_secret(s: &SecretSpec, path: &Path, p: &mut Problems) {
    let size = path.key("Size");
    match s.kind {
        SecretType::SymmetricKey => {
            if !s.size.is_multiple_of(8) || (s.size == 0 && !s.user_defined) {
                p.add(&size, format!("{} is not a positive multiple of 8 bits", s.size));
            }
            if s.size > 65536 {
                p.add(&size, "at most 65536 bits");
            }
        }
        SecretType::CertRsa => {
            if ![0, 2048, 3072, 4096].contains(&s.size) {
                p.add(
                    &size,
                    format!("RSA size {} not supported; use 2048, 3072 or 4096", s.size),
                );
            }
        }
        SecretType::CertEcdsa => match s.size {
            256 | 384 => {}
            224 | 521 => p.add(
                &size,
                format!(
                    "curve P-{} is valid in MarbleRun but not supported by Arca; use 256 or 384",
                    s.size
                ),
            ),
            0 => p.add(&size, "missing: cert-ecdsa needs 256 or 384"),
            n => p.add(&size, format!("no ECDSA curve of {n} bits; use 256 or 384")),
        },
        SecretType::CertEd25519 | SecretType::Plain => {
            if s.size != 0 {
                p.add(&size, format!("must be omitted for {}", s.kind.as_str()));
            }
        }
    }
    if s.kind == SecretType::Plain && !s.user_defined {
        p.add(
            &path.key("UserDefined"),
            "plain secrets are uploaded by users: set UserDefined to true",
        );
    }
    if !s.kind.is_cert() {
        if s.valid_for_days.is_some() {
            p.add(&path.key("ValidFor"), "only certificates have a validity");
        }
        if s.cert != CertSpec::default() {
            p.add(&path.key("Cert"), "only certificate secrets take Cert fields");
        }
    } else {
        if s.valid_for_days.is_some() && s.cert.not_after.is_some() {
            p.add(&path.key("ValidFor"), "cannot be combined with Cert.NotAfter");
        }
        if s.valid_for_days == Some(0) {
            p.add(&path.key("ValidFor"), "must be at least 1 day");
        }
    }
}

fn decode_manifest(json: &Json, p: &mut Problems) -> Manifest {
    let mut m = Manifest::default();
    let Some(root) = Obj::new(json, Path::root(), p) else {
        if !json.is_object() && p.0.is_empty() {
            p.add(&Path::root(), "expected a JSON object");
        }
        return m;
    };
    for (name, v, path) in root.map("Packages", p) {
        if let Some(pkg) = decode_package(v, path, p) {
            m.packages.insert(name.to_owned(), pkg);
        }
    }
    for (name, v, path) in root.map("Marbles", p) {
        if let Some(o) = Obj::new(v, path, p) {
            m.marbles.insert(name.to_owned(), decode_marble(&o, p));
        }
    }
    for (name, v, path) in root.map("Secrets", p) {
        if let Some(o) = Obj::new(v, path, p) {
            if let Some(s) = decode_secret(&o, p) {
                m.secrets.insert(name.to_owned(), s);
            }
        }
    }
    for (name, v, path) in root.map("Users", p) {
        if let Some(o) = Obj::new(v, path, p) {
            if let Some(u) = decode_user(&o, p) {
                m.users.insert(name.to_owned(), u);
            }
        }
    }
    for (name, v, path) in root.map("Roles", p) {
        if let Some(o) = Obj::new(v, path, p) {
            if let Some(r) = decode_role(&o, p) {
                m.roles.insert(name.to_owned(), r);
            }
        }
    }
    for (name, v, path) in root.map("RecoveryKeys", p) {
        if let Some(pem) = as_string(v, &path, p) {
            if let Some(k) = decode_recovery_key(&pem, &path, p) {
                m.recovery_keys.insert(name.to_owned(), k);
            }
        }
    }
    for (name, v, path) in root.map("TLS", p) {
        if let Some(o) = Obj::new(v, path, p) {
            m.tls.insert(name.to_owned(), decode_tls(&o, p));
        }
    }
    if let Some((v, path)) = root.field("Config") {
        if let Some(o) = Obj::new(v, path, p) {
            m.config = Config {
                seal_mode: o.string("SealMode", p).unwrap_or_default(),
                feature_gates: o.strings("FeatureGates", p).unwrap_or_default(),
                update_threshold: o.uint("UpdateThreshold", p).unwrap_or(0),
                recovery_threshold: o.uint("RecoveryThreshold", p).unwrap_or(0),
            };
        }
    }
    m
}

fn decode_package(v: &Json, path: Path, p: &mut Problems) -> Option<Package> {
    let o = Obj::new(v, path, p)?;
    let u16_field = |name: &str, p: &mut Problems| {
        let n = o.uint(name, p)?;
        match u16::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                p.add(
                    &o.path.key(name),
                    format!("{n} exceeds 65535 (the SGX field is 16 bits)"),
                );
                None
            }
        }
    };
    let id = |name: &str, what: &str, p: &mut Problems| {
        let s = o.string(name, p)?;
        hex32(&s, &o.path.key(name), what, p)
    };
    Some(Package {
        debug: o.bool("Debug", p),
        unique_id: id("UniqueID", "MRENCLAVE", p),
        signer_id: id("SignerID", "MRSIGNER", p),
        product_id: u16_field("ProductID", p),
        security_version: u16_field("SecurityVersion", p),
        accepted_tcb_statuses: o.strings("AcceptedTCBStatuses", p).unwrap_or_else(|| {
            DEFAULT_ACCEPTED_TCB_STATUSES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        }),
        accepted_advisories: o.strings("AcceptedAdvisories", p).unwrap_or_default(),
    })
}

fn decode_marble(o: &Obj<'_>, p: &mut Problems) -> Marble {
    let mut m = Marble {
        package: o.string("Package", p).unwrap_or_default(),
        max_activations: o.uint("MaxActivations", p).unwrap_or(0),
        tls: o.strings("TLS", p).unwrap_or_default(),
        disable_secret_binding: o.bool("DisableSecretBinding", p),
        ..Marble::default()
    };
    if m.package.is_empty() {
        p.add(&o.path.key("Package"), "missing: every marble names its package");
    }
    if let Some((v, path)) = o.field("Parameters") {
        if let Some(params) = Obj::new(v, path, p) {
            for (name, v, path) in params.map("Files", p) {
                if let Some(e) = decode_entry(v, &path, p) {
                    m.parameters.files.insert(name.to_owned(), e);
                }
            }
            for (name, v, path) in params.map("Env", p) {
                if let Some(e) = decode_entry(v, &path, p) {
                    m.parameters.env.insert(name.to_owned(), e);
                }
            }
            m.parameters.argv = params.strings("Argv", p).unwrap_or_default();
        }
    }
    m
}

fn decode_entry(v: &Json, path: &Path, p: &mut Problems) -> Option<Entry> {
    use base64::Engine as _;
    let (data, no_templates) = match v {
        Json::String(s) => (s.as_bytes().to_vec(), false),
        Json::Object(_) => {
            let o = Obj::new(v, path.clone(), p)?;
            let raw = o.string("Data", p).unwrap_or_default();
            let encoding = o.string("Encoding", p).unwrap_or_default();
            let data = match encoding.as_str() {
                "" | "string" => raw.into_bytes(),
                "base64" => match base64::engine::general_purpose::STANDARD.decode(raw.as_bytes()) {
                    Ok(d) => d,
                    Err(e) => {
                        p.add(&path.key("Data"), format!("not valid base64: {e}"));
                        return None;
                    }
                },
                "hex" => match hex::decode(raw.trim()) {
                    Ok(d) => d,
                    Err(e) => {
                        p.add(&path.key("Data"), format!("not valid hex: {e}"));
                        return None;
                    }
                },
                other => {
                    p.add(
                        &path.key("Encoding"),
                        format!("unknown encoding {other:?}; expected string, base64 or hex"),
                    );
                    return None;
                }
            };
            (data, o.bool("NoTemplates", p))
        }
        Json::Null => (Vec::new(), false),
        _ => {
            p.add(
                path,
                "expected a string or an object {Data, Encoding, NoTemplates}",
            );
            return None;
        }
    };
    let template = if no_templates {
        None
    } else {
        match Template::parse(&data) {
            Ok(t) if t.has_actions() => Some(t),
            Ok(_) => None,
            Err(e) => {
                p.add(path, e.to_string());
                return None;
            }
        }
    };
    Some(Entry { data, template })
}

fn decode_secret(o: &Obj<'_>, p: &mut Problems) -> Option<SecretSpec> {
    let type_path = o.path.key("Type");
    let kind = match o.string("Type", p) {
        None => {
            p.add(
                &type_path,
                "missing: one of symmetric-key, cert-rsa, cert-ecdsa, cert-ed25519, plain",
            );
            return None;
        }
        Some(t) => match SecretType::parse(&t) {
            Some(k) => k,
            None => {
                p.add(
                    &type_path,
                    format!(
                        "unknown secret type {t:?}; expected symmetric-key, cert-rsa, cert-ecdsa, cert-ed25519 or plain"
                    ),
                );
                return None;
            }
        },
    };
    let size = o.uint("Size", p).unwrap_or(0);
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    // Go []byte fields that a stored secret may carry: decoded (so a bad one is reported) and ignored.
    let _ = o.bytes("Private", p);
    let _ = o.bytes("Public", p);
    let cert = match o.field("Cert") {
        // MarbleRun writes a certificate as base64 of its DER (`Raw`); manifests usually give the fields.
        Some((Json::String(b64), path)) => cert_from_base64_der(b64, &path, p).unwrap_or_default(),
        Some((v, path)) => Obj::new(v, path, p)
            .map(|c| decode_cert(&c, p))
            .unwrap_or_default(),
        None => CertSpec::default(),
    };
    Some(SecretSpec {
        kind,
        size,
        shared: o.bool("Shared", p),
        user_defined: o.bool("UserDefined", p),
        valid_for_days: o.uint("ValidFor", p),
        cert,
    })
}

fn decode_name(o: &Obj<'_>, p: &mut Problems) -> Name {
    let list = |n: &str, p: &mut Problems| o.strings(n, p).unwrap_or_default();
    Name {
        country: list("Country", p),
        organization: list("Organization", p),
        organizational_unit: list("OrganizationalUnit", p),
        locality: list("Locality", p),
        province: list("Province", p),
        street_address: list("StreetAddress", p),
        postal_code: list("PostalCode", p),
        serial_number: o.string("SerialNumber", p).unwrap_or_default(),
        common_name: o.string("CommonName", p).unwrap_or_default(),
    }
}

fn decode_cert(o: &Obj<'_>, p: &mut Problems) -> CertSpec {
    let mut c = CertSpec::default();
    if let Some((v, path)) = o.field("Subject") {
        if let Some(s) = Obj::new(v, path, p) {
            c.subject = decode_name(&s, p);
        }
    }
    c.dns_names = o.strings("DNSNames", p).unwrap_or_default();
    c.email_addresses = o.strings("EmailAddresses", p).unwrap_or_default();
    if let Some((v, path)) = o.field("IPAddresses") {
        for (i, s) in as_strings(v, &path, p).unwrap_or_default().iter().enumerate() {
            match s.parse::<IpAddr>() {
                Ok(ip) => c.ip_addresses.push(ip),
                Err(_) => p.add(&path.index(i), format!("{s:?} is not an IP address")),
            }
        }
    }
    if let Some((v, path)) = o.field("URIs") {
        match v {
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = as_string(item, &path.index(i), p) {
                        c.uris.push(s);
                    }
                }
            }
            _ => p.add(&path, "expected an array of URI strings"),
        }
    }
    if let Some(s) = o.string("NotAfter", p) {
        match OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339) {
            // Go writes the zero time for "unset".
            Ok(t) if t.year() <= 1 => {}
            Ok(t) => c.not_after = Some(t),
            Err(e) => p.add(&o.path.key("NotAfter"), format!("not an RFC 3339 time: {e}")),
        }
    }
    if let Some(ku) = o.uint("KeyUsage", p) {
        match u32::try_from(ku) {
            Ok(ku) if ku < 512 => c.key_usage = ku,
            _ => p.add(
                &o.path.key("KeyUsage"),
                format!("{ku} is not a Go x509.KeyUsage bit set (< 512)"),
            ),
        }
    }
    if let Some((v, path)) = o.field("ExtKeyUsage") {
        if let Json::Array(items) = v {
            for (i, item) in items.iter().enumerate() {
                match as_uint(item, &path.index(i), p).map(u8::try_from) {
                    Some(Ok(n)) if n <= 13 => c.ext_key_usage.push(n),
                    Some(_) => p.add(&path.index(i), "not a Go x509.ExtKeyUsage value (0–13)"),
                    None => {}
                }
            }
        } else {
            p.add(&path, "expected an array of Go x509.ExtKeyUsage values");
        }
    }
    c.is_ca = o.bool("IsCA", p);
    let _ = o.bytes("Raw", p);
    let _ = o.bytes("SubjectKeyId", p);
    let _ = o.bytes("AuthorityKeyId", p);
    c
}

/// Reads a certificate written the way MarbleRun writes one (base64 DER) into the fields a new certificate
/// would copy: subject and subject alternative names.
fn cert_from_base64_der(b64: &str, path: &Path, p: &mut Problems) -> Option<CertSpec> {
    use base64::Engine as _;
    use x509_parser::extensions::GeneralName;
    let der = match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
        Ok(d) => d,
        Err(e) => {
            p.add(
                path,
                format!("expected Cert fields or base64 certificate DER: {e}"),
            );
            return None;
        }
    };
    let cert = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, c)) => c,
        Err(e) => {
            p.add(path, format!("base64 value is not an X.509 certificate: {e}"));
            return None;
        }
    };
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let subject = cert.subject();
    let mut spec = CertSpec {
        subject: Name {
            country: strings(&mut subject.iter_country()),
            organization: strings(&mut subject.iter_organization()),
            organizational_unit: strings(&mut subject.iter_organizational_unit()),
            locality: strings(&mut subject.iter_locality()),
            province: strings(&mut subject.iter_state_or_province()),
            common_name: strings(&mut subject.iter_common_name())
                .into_iter()
                .next()
                .unwrap_or_default(),
            ..Name::default()
        },
        is_ca: cert.is_ca(),
        ..CertSpec::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => spec.dns_names.push((*d).to_owned()),
                GeneralName::RFC822Name(e) => spec.email_addresses.push((*e).to_owned()),
                GeneralName::URI(u) => spec.uris.push((*u).to_owned()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => spec
                        .ip_addresses
                        .push(IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())),
                    16 => spec
                        .ip_addresses
                        .push(IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some(spec)
}

fn decode_user(o: &Obj<'_>, p: &mut Problems) -> Option<User> {
    let path = o.path.key("Certificate");
    let roles = o.strings("Roles", p).unwrap_or_default();
    let Some(pem) = o.string("Certificate", p) else {
        p.add(&path, "missing: a PEM-encoded X.509 certificate");
        return None;
    };
    let der = match x509_parser::pem::parse_x509_pem(pem.as_bytes()) {
        Ok((_, block)) if block.label == "CERTIFICATE" => block.contents,
        Ok((_, block)) => {
            p.add(
                &path,
                format!("expected a PEM CERTIFICATE, found {:?}", block.label),
            );
            return None;
        }
        Err(_) => {
            let shown: String = pem.chars().take(60).collect();
            p.add(
                &path,
                format!("not a PEM-encoded certificate: {shown:?}{}", hint(&pem)),
            );
            return None;
        }
    };
    if let Err(e) = x509_parser::parse_x509_certificate(&der) {
        p.add(&path, format!("not a valid X.509 certificate: {e}"));
        return None;
    }
    Some(User {
        certificate_pem: pem,
        certificate_der: der,
        roles,
    })
}

fn decode_role(o: &Obj<'_>, p: &mut Problems) -> Option<Role> {
    let rt_path = o.path.key("ResourceType");
    let resource_type = match o.string("ResourceType", p).as_deref() {
        Some(s) if s.eq_ignore_ascii_case("Packages") => ResourceType::Packages,
        Some(s) if s.eq_ignore_ascii_case("Secrets") => ResourceType::Secrets,
        Some(s) if s.eq_ignore_ascii_case("Manifest") => ResourceType::Manifest,
        Some(s) => {
            p.add(
                &rt_path,
                format!("unknown resource type {s:?}; expected Packages, Secrets or Manifest"),
            );
            return None;
        }
        None => {
            p.add(&rt_path, "missing: Packages, Secrets or Manifest");
            return None;
        }
    };
    let mut actions = Vec::new();
    if let Some((v, path)) = o.field("Actions") {
        for (i, a) in as_strings(v, &path, p).unwrap_or_default().iter().enumerate() {
            let action = [
                Action::ReadSecret,
                Action::WriteSecret,
                Action::UpdateSecurityVersion,
                Action::UpdateManifest,
            ]
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(a));
            match action {
                Some(x) => actions.push(x),
                None => p.add(
                    &path.index(i),
                    format!(
                        "unknown action {a:?}; expected ReadSecret, WriteSecret, UpdateSecurityVersion or UpdateManifest"
                    ),
                ),
            }
        }
    }
    Some(Role {
        resource_type,
        resource_names: o.strings("ResourceNames", p).unwrap_or_default(),
        actions,
    })
}

fn decode_recovery_key(pem: &str, path: &Path, p: &mut Problems) -> Option<RecoveryKey> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let der = match x509_parser::pem::parse_x509_pem(pem.as_bytes()) {
        Ok((_, block)) if block.label == "PUBLIC KEY" => block.contents,
        Ok((_, block)) => {
            p.add(
                path,
                format!(
                    "expected a PEM PUBLIC KEY (openssl rsa -pubout), found {:?}",
                    block.label
                ),
            );
            return None;
        }
        Err(_) => {
            p.add(path, format!("not a PEM-encoded RSA public key{}", hint(pem)));
            return None;
        }
    };
    let spki = match x509_parser::x509::SubjectPublicKeyInfo::from_der(&der) {
        Ok((_, spki)) => spki,
        Err(e) => {
            p.add(path, format!("not a SubjectPublicKeyInfo: {e}"));
            return None;
        }
    };
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < 2048 {
                p.add(path, format!("RSA key of {bits} bits; at least 2048 are needed"));
                return None;
            }
            Some(RecoveryKey {
                spki_der: der.clone(),
                bits,
            })
        }
        _ => {
            p.add(
                path,
                "not an RSA public key (recovery secrets are RSA-OAEP encrypted)",
            );
            None
        }
    }
}

fn decode_tls(o: &Obj<'_>, p: &mut Problems) -> TlsTag {
    let endpoints = |name: &str, p: &mut Problems| {
        let mut out = Vec::new();
        if let Some((v, path)) = o.field(name) {
            let Json::Array(items) = v else {
                p.add(&path, "expected an array");
                return out;
            };
            for (i, item) in items.iter().enumerate() {
                let Some(e) = Obj::new(item, path.index(i), p) else {
                    continue;
                };
                let port = e.string("Port", p).unwrap_or_default();
                let port = match port.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        p.add(
                            &e.path.key("Port"),
                            format!("{port:?} is not a port (a string \"1\"–\"65535\")"),
                        );
                        0
                    }
                };
                out.push(TlsEndpoint {
                    port,
                    addr: e.string("Addr", p).unwrap_or_default(),
                    cert: e.string("Cert", p).filter(|c| !c.is_empty()),
                    disable_client_auth: e.bool("DisableClientAuth", p),
                });
            }
        }
        out
    };
    TlsTag {
        outgoing: endpoints("Outgoing", p),
        incoming: endpoints("Incoming", p),
    }
}

/// Names of all secrets templates of a marble reference, with the parts used (for generating per-marble
/// values only when needed).
pub fn referenced_values(m: &Marble) -> BTreeSet<ValueRef> {
    m.parameters
        .files
        .values()
        .chain(m.parameters.env.values())
        .filter_map(|e| e.template.as_ref())
        .flat_map(|t| t.actions().map(|(_, _, v)| v.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
