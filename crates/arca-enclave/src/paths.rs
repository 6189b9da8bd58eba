//! In-image paths (contract 1), image labels, engine names, and the run-time allow-list (contract 11).

/// The directory that holds everything Arca adds to an image.
pub const ARCA_DIR: &str = "/arca";
/// The static launcher, PID 1 of a confidential container.
pub const LAUNCHER_PATH: &str = "/arca/launcher";
/// The enclave manifest; its bytes, exactly as stored, are measured.
pub const MANIFEST_PATH: &str = "/arca/enclave.toml";
/// The trusted-file list (sorted `sha256  path` lines); its SHA-256 is in the manifest.
pub const TRUSTED_LIST_PATH: &str = "/arca/trusted.list";
/// The SIGSTRUCT (1808 bytes) that signs the enclave's MRENCLAVE.
pub const SIGNATURE_PATH: &str = "/arca/enclave.sig";

/// Paths the sim engine's eager trusted-file check lets the app use although they are not in
/// `trusted.list` (contract 11). `arca convert --allow-path` adds to it, through the manifest.
pub const RUNTIME_ALLOW_LIST: [&str; 9] = [
    "/arca",
    "/tmp",
    "/proc",
    "/sys",
    "/dev",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/hostname",
    "/run/secrets/kubernetes.io",
];

/// The only host environment variables the launcher reads besides those the manifest allows (contract 4):
/// deploy-time settings, never measured.
pub const DEPLOY_ENV: [&str; 4] = [
    "ARCA_COORDINATOR_ADDR",
    "ARCA_MARBLE_TYPE",
    "ARCA_UUID_FILE",
    "ARCA_DNS_NAMES",
];

/// Image-config labels in which `arca convert` records the identity (read by `arca inspect` and tools).
pub mod labels {
    /// MRENCLAVE (64 hex digits) of the sim engine's layout.
    pub const MRENCLAVE: &str = "dev.arca.mrenclave";
    /// MRSIGNER (64 hex digits).
    pub const MRSIGNER: &str = "dev.arca.mrsigner";
    /// ISVPRODID (decimal).
    pub const ISVPRODID: &str = "dev.arca.isvprodid";
    /// ISVSVN (decimal).
    pub const ISVSVN: &str = "dev.arca.isvsvn";
    /// The enclave layout version the identity was computed with.
    pub const LAYOUT_VERSION: &str = "dev.arca.layout-version";
    /// The engine the image was converted for (`sim`).
    pub const ENGINE: &str = "dev.arca.engine";
    /// The digest of the image that was converted.
    pub const SOURCE_DIGEST: &str = "dev.arca.source";
}

/// How a confidential image is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The simulation engine: the app runs natively with simulated quotes (no SGX hardware).
    Sim,
    /// The hardware engine: a Gramine build context, signed with `gramine-sgx-sign` on an SGX host.
    Gramine,
}

impl Engine {
    /// The engine's name as written on the command line and in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sim => "sim",
            Engine::Gramine => "gramine",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Engine {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s {
            "sim" => Ok(Engine::Sim),
            "gramine" => Ok(Engine::Gramine),
            other => Err(crate::Error::ManifestValue {
                field: "engine",
                reason: format!("unknown engine `{other}` (expected `sim` or `gramine`)"),
            }),
        }
    }
}
