//! A real registry for tests: Debian's `docker-registry` (the CNCF distribution server) on 127.0.0.1, on a
//! free port, with its storage and config in a temporary directory. Killed and removed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user name of a registry started with [`Registry::start_with_basic_auth`].
pub const REGISTRY_USER: &str = "arca";
/// Its password.
pub const REGISTRY_PASSWORD: &str = "arca-test-password";
/// bcrypt of [`REGISTRY_PASSWORD`] (cost 5), the htpasswd entry the registry checks.
const REGISTRY_BCRYPT: &str = "$2b$05$8maETOD1mege9CWwkuMLFu6yl4q7EopDip7y0UR6tpTp9izP90iOC";

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Child,
    dir: PathBuf,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn answers_http(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read(&mut buf)
        .is_ok_and(|n| n >= 12 && buf.starts_with(b"HTTP/1."))
}

impl Registry {
    /// Starts an anonymous registry. Returns `None` (test skipped) when `docker-registry` is missing outside
    /// strict mode.
    pub fn start() -> Option<Registry> {
        Self::start_inner(None)
    }

    /// Starts a registry that requires HTTP Basic authentication ([`REGISTRY_USER`] / [`REGISTRY_PASSWORD`]).
    pub fn start_with_basic_auth() -> Option<Registry> {
        Self::start_inner(Some("basic"))
    }

    /// Starts a registry with an extra `auth:` section (YAML, indented by two spaces) — e.g. token auth.
    pub fn start_with_auth_yaml(auth: &str) -> Option<Registry> {
        Self::start_inner(Some(auth))
    }

    fn start_inner(auth: Option<&str>) -> Option<Registry> {
        let bin = crate::require_tool("docker-registry")?;
        let dir = std::env::temp_dir().join(format!("arca-registry-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("data")).expect("registry dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth_yaml = match auth {
            None => String::new(),
            Some("basic") => {
                std::fs::write(
                    dir.join("htpasswd"),
                    format!("{REGISTRY_USER}:{REGISTRY_BCRYPT}\n"),
                )
                .expect("htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: arca-test\n    path: {}\n",
                    dir.join("htpasswd").display()
                )
            }
            Some(yaml) => format!("auth:\n{yaml}"),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: arca-test-secret\n{auth_yaml}",
            dir.join("data").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry { addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers_http(&reg.addr) {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start; log:\n{}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(reg)
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Its working directory (config, storage, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
