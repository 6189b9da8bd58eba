//! The enclave manifest (`/arca/enclave.toml`, format 1): everything the launcher needs, measured byte for
//! byte into MRENCLAVE.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::policy::CoordinatorPolicy;

/// The manifest format this crate reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// The first line of every manifest Arca writes.
const HEADER: &str =
    "# Arca enclave manifest (format 1, see docs/enclave-layout.md). Measured byte for byte: do not edit.\n";

/// The smallest enclave size accepted (1 MiB).
pub const MIN_ENCLAVE_SIZE: u64 = 1 << 20;
/// The largest enclave size accepted (64 GiB; the SGX2 EPC of current servers is at most 512 GiB per socket).
pub const MAX_ENCLAVE_SIZE: u64 = 1 << 36;
/// The largest thread count accepted.
pub const MAX_THREADS: u32 = 1024;

/// The enclave manifest. Serialise it with [`EnclaveManifest::to_toml`] (the exact bytes that are measured)
/// and read it with [`EnclaveManifest::from_toml`], which validates every field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveManifest {
    /// Format version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// What to run.
    pub process: Process,
    /// Enclave settings (identity fields and resources).
    pub enclave: EnclaveSettings,
    /// File protection.
    pub files: Files,
    /// What the host may still influence.
    #[serde(default)]
    pub host: HostSettings,
    /// The coordinator the launcher is allowed to talk to (contract 5).
    pub coordinator: CoordinatorPolicy,
}

/// The app process, from the image config (entrypoint, cmd, env, working directory, user).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Absolute path of the program to execute (argv\[0\] resolved through the image's `PATH` at convert time).
    pub exec: String,
    /// The full argument vector (entrypoint followed by cmd), argv\[0\] included.
    pub argv: Vec<String>,
    /// The environment, as `NAME=VALUE` strings, in the image's order.
    #[serde(default)]
    pub env: Vec<String>,
    /// The working directory (absolute).
    pub workdir: String,
    /// The user as the image names it: `NAME`, `UID`, `NAME:GROUP` or `UID:GID` (resolved through the image's
    /// `/etc/passwd` and `/etc/group` at run time); empty means root.
    #[serde(default)]
    pub user: String,
}

/// Settings that end up in the enclave's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveSettings {
    /// ISVPRODID written into the SIGSTRUCT.
    pub isvprodid: u16,
    /// ISVSVN written into the SIGSTRUCT.
    pub isvsvn: u16,
    /// DEBUG attribute (a debug enclave's memory is readable by the host).
    pub debug: bool,
    /// Enclave size in bytes (ECREATE SIZE; a power of two).
    pub size: u64,
    /// Number of enclave threads (TCS pages).
    pub threads: u32,
}

/// Trusted and protected files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    /// SHA-256 (hex) of `/arca/trusted.list`.
    pub trusted_list_sha256: String,
    /// Number of entries in the list (informative; the hash is what binds it).
    pub trusted_files: u64,
    /// Paths the app may use that are not in the list, beyond the built-in allow-list (`--allow-path`).
    #[serde(default)]
    pub allow_paths: Vec<String>,
    /// Encrypted (protected-file) mounts.
    #[serde(default)]
    pub protected: Vec<ProtectedMount>,
}

/// A protected-files mount: every file under `path` is encrypted with the key named `key`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedMount {
    /// Absolute path of a directory or file in the image.
    pub path: String,
    /// Key name: the coordinator delivers the key as `/dev/attestation/keys/NAME` (contract 8).
    pub key: String,
}

/// What the host environment may still set (contract 4); everything else from the host is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// Environment variable names the host may set or override (`--allow-env`).
    #[serde(default)]
    pub allow_env: Vec<String>,
    /// Whether extra arguments from the host are appended to argv.
    #[serde(default)]
    pub allow_argv: bool,
}

fn value_err(field: &'static str, reason: impl Into<String>) -> Error {
    Error::ManifestValue {
        field,
        reason: reason.into(),
    }
}

/// True for `/a/b` paths without `.`/`..` components, empty components, NULs or newlines.
pub fn is_clean_absolute_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains(['\0', '\n'])
        && (p == "/" || p[1..].split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True for key names the coordinator can deliver (`[A-Za-z0-9_.-]`, 1–64 characters).
pub fn is_key_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl EnclaveManifest {
    /// Checks every value; [`EnclaveManifest::from_toml`] and [`EnclaveManifest::to_toml`] call it.
    pub fn validate(&self) -> Result<(), Error> {
        if self.format != MANIFEST_FORMAT {
            return Err(Error::UnsupportedFormat {
                found: self.format,
                supported: MANIFEST_FORMAT,
            });
        }
        let p = &self.process;
        if !is_clean_absolute_path(&p.exec) {
            return Err(value_err(
                "process.exec",
                format!("`{}` is not a clean absolute path", p.exec),
            ));
        }
        if p.argv.is_empty() {
            return Err(value_err(
                "process.argv",
                "empty: the image has no entrypoint or cmd",
            ));
        }
        if let Some(bad) = p
            .env
            .iter()
            .find(|e| e.split_once('=').is_none_or(|(n, _)| n.is_empty()))
        {
            return Err(value_err("process.env", format!("`{bad}` is not NAME=VALUE")));
        }
        if !is_clean_absolute_path(&p.workdir) {
            return Err(value_err(
                "process.workdir",
                format!("`{}` is not a clean absolute path", p.workdir),
            ));
        }
        let e = &self.enclave;
        if !e.size.is_power_of_two() || !(MIN_ENCLAVE_SIZE..=MAX_ENCLAVE_SIZE).contains(&e.size) {
            return Err(value_err(
                "enclave.size",
                format!(
                    "{} is not a power of two between {MIN_ENCLAVE_SIZE} and {MAX_ENCLAVE_SIZE}",
                    e.size
                ),
            ));
        }
        if !(1..=MAX_THREADS).contains(&e.threads) {
            return Err(value_err(
                "enclave.threads",
                format!("{} is not between 1 and {MAX_THREADS}", e.threads),
            ));
        }
        let f = &self.files;
        if f.trusted_list_sha256.len() != 64
            || !f
                .trusted_list_sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(value_err(
                "files.trusted_list_sha256",
                "expected 64 lowercase hex digits",
            ));
        }
        if let Some(bad) = f.allow_paths.iter().find(|p| !is_clean_absolute_path(p)) {
            return Err(value_err(
                "files.allow_paths",
                format!("`{bad}` is not a clean absolute path"),
            ));
        }
        for (i, m) in f.protected.iter().enumerate() {
            if !is_clean_absolute_path(&m.path) || m.path == "/" {
                return Err(value_err(
                    "files.protected.path",
                    format!("`{}` is not a clean absolute path below /", m.path),
                ));
            }
            if !is_key_name(&m.key) {
                return Err(value_err(
                    "files.protected.key",
                    format!("`{}` is not a key name ([A-Za-z0-9_.-], 1–64)", m.key),
                ));
            }
            for other in &f.protected[i + 1..] {
                let nested = |a: &str, b: &str| a == b || b.starts_with(&format!("{a}/"));
                if nested(&m.path, &other.path) || nested(&other.path, &m.path) {
                    return Err(value_err(
                        "files.protected.path",
                        format!("`{}` and `{}` overlap", m.path, other.path),
                    ));
                }
            }
        }
        if let Some(bad) = self.host.allow_env.iter().find(|n| !is_env_name(n)) {
            return Err(value_err(
                "host.allow_env",
                format!("`{bad}` is not an environment variable name"),
            ));
        }
        Ok(())
    }

    /// The manifest's bytes as Arca writes them (a header comment, then TOML in field order). These bytes
    /// are what the converter stores in `/arca/enclave.toml` and what MRENCLAVE measures.
    pub fn to_toml(&self) -> Result<String, Error> {
        self.validate()?;
        let body = toml::to_string(self).map_err(|e| Error::ManifestSyntax(e.to_string()))?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Reads and validates manifest bytes (UTF-8 TOML). Unknown keys are refused: a manifest from a newer
    /// format must not be half-understood.
    pub fn from_toml(bytes: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(bytes).map_err(|_| Error::ManifestSyntax("not UTF-8".into()))?;
        #[derive(Deserialize)]
        struct Probe {
            format: Option<u32>,
        }
        if let Ok(Probe { format: Some(f) }) = toml::from_str::<Probe>(text) {
            if f != MANIFEST_FORMAT {
                return Err(Error::UnsupportedFormat {
                    found: f,
                    supported: MANIFEST_FORMAT,
                });
            }
        }
        let m: EnclaveManifest = toml::from_str(text).map_err(|e| Error::ManifestSyntax(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The key names the protected mounts need (sorted, unique).
    pub fn key_names(&self) -> Vec<String> {
        let mut k: Vec<String> = self.files.protected.iter().map(|m| m.key.clone()).collect();
        k.sort();
        k.dedup();
        k
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> EnclaveManifest {
        EnclaveManifest {
            format: MANIFEST_FORMAT,
            process: Process {
                exec: "/usr/bin/python3".into(),
                argv: vec!["python3".into(), "/app/main.py".into()],
                env: vec!["PATH=/usr/local/bin:/usr/bin".into(), "LANG=C.UTF-8".into()],
                workdir: "/app".into(),
                user: "1000:1000".into(),
            },
            enclave: EnclaveSettings {
                isvprodid: 1,
                isvsvn: 1,
                debug: false,
                size: 1 << 30,
                threads: 8,
            },
            files: Files {
                trusted_list_sha256: "ab".repeat(32),
                trusted_files: 1234,
                allow_paths: vec!["/var/cache/app".into()],
                protected: vec![ProtectedMount {
                    path: "/data".into(),
                    key: "default".into(),
                }],
            },
            host: HostSettings {
                allow_env: vec!["LOG_LEVEL".into()],
                allow_argv: false,
            },
            coordinator: CoordinatorPolicy::development(),
        }
    }

    #[test]
    fn round_trips_through_its_exact_bytes() {
        let m = sample();
        let text = m.to_toml().unwrap();
        assert!(text.starts_with("# Arca enclave manifest (format 1"));
        assert_eq!(EnclaveManifest::from_toml(text.as_bytes()).unwrap(), m);
        assert_eq!(
            EnclaveManifest::from_toml(text.as_bytes())
                .unwrap()
                .to_toml()
                .unwrap(),
            text
        );
        for key in [
            "[process]",
            "[enclave]",
            "[files]",
            "[[files.protected]]",
            "[host]",
            "[coordinator]",
        ] {
            assert!(text.contains(key), "{key} missing in\n{text}");
        }
    }

    #[test]
    fn refuses_unknown_keys_and_future_formats() {
        let text = sample().to_toml().unwrap();
        let extra = text.replace("[enclave]\n", "[enclave]\nturbo = true\n");
        assert!(matches!(
            EnclaveManifest::from_toml(extra.as_bytes()),
            Err(Error::ManifestSyntax(_))
        ));
        let future = text.replace("format = 1", "format = 2");
        assert!(matches!(
            EnclaveManifest::from_toml(future.as_bytes()),
            Err(Error::UnsupportedFormat { found: 2, .. })
        ));
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        type Mutation = Box<dyn Fn(&mut EnclaveManifest)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("process.exec", Box::new(|m| m.process.exec = "python3".into())),
            (
                "process.exec",
                Box::new(|m| m.process.exec = "/usr/../bin/sh".into()),
            ),
            ("process.argv", Box::new(|m| m.process.argv.clear())),
            ("process.env", Box::new(|m| m.process.env.push("NOEQUALS".into()))),
            ("enclave.size", Box::new(|m| m.enclave.size = 3 << 20)),
            ("enclave.size", Box::new(|m| m.enclave.size = 4096)),
            ("enclave.threads", Box::new(|m| m.enclave.threads = 0)),
            (
                "files.trusted_list_sha256",
                Box::new(|m| m.files.trusted_list_sha256 = "AB".repeat(32)),
            ),
            (
                "files.protected.key",
                Box::new(|m| m.files.protected[0].key = "a/b".into()),
            ),
            (
                "files.protected.path",
                Box::new(|m| {
                    m.files.protected.push(ProtectedMount {
                        path: "/data/x".into(),
                        key: "k".into(),
                    })
                }),
            ),
            (
                "host.allow_env",
                Box::new(|m| m.host.allow_env.push("A-B".into())),
            ),
        ];
        for (field, mutate) in cases {
            let mut m = sample();
            mutate(&mut m);
            let err = m.validate().unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
            assert!(m.to_toml().is_err());
        }
    }

    #[test]
    fn clean_paths_are_recognised() {
        assert!(is_clean_absolute_path("/"));
        assert!(is_clean_absolute_path("/a/b"));
        for bad in ["", "a", "/a/", "//a", "/a/./b", "/a/../b", "/a\nb"] {
            assert!(!is_clean_absolute_path(bad), "{bad:?}");
        }
    }
}
