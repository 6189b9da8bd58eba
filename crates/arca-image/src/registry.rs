//! A small client for the OCI distribution API: manifests (with index → platform selection), blobs (pulled
//! as verified streams, pushed with existence checks), and the three ways registries authenticate —
//! anonymous, HTTP Basic, and bearer tokens obtained from the realm a `WWW-Authenticate` challenge names.
//!
//! Loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) are spoken to over plain HTTP, as Docker does;
//! any other registry needs HTTPS unless the caller passes `insecure`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use oci_spec::image::ImageIndex;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{Reference, RegistryRef};
use crate::source::{pick_platform, BlobLoc, Blobs, Platform, INDEX_TYPES, MANIFEST_TYPES, MAX_DOCUMENT};

/// A user name and password (or token) for a registry.
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl std::str::FromStr for Credentials {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (u, p) = s.split_once(':').ok_or_else(|| Error::Reference {
            input: "<credentials>".into(),
            reason: "expected USER:PASSWORD".into(),
        })?;
        Ok(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })
    }
}

impl Credentials {
    /// Looks `host` up in the usual auth files: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`
    /// (podman, skopeo), `~/.docker/config.json` (Docker). Only inline `auth` entries are read (no helpers).
    pub fn from_auth_files(host: &str) -> Option<Credentials> {
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(p.into());
        }
        if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
            files.push(Path::new(&p).join("containers/auth.json"));
        }
        if let Some(h) = std::env::var_os("HOME") {
            files.push(Path::new(&h).join(".docker/config.json"));
        }
        files.iter().find_map(|f| {
            let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(f).ok()?).ok()?;
            let auths = doc.get("auths")?.as_object()?;
            let entry = auths
                .get(host)
                .or_else(|| auths.get(&format!("https://{host}")))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(entry.get("auth")?.as_str()?)
                .ok()?;
            String::from_utf8(decoded).ok()?.parse().ok()
        })
    }

    fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

enum Body<'a> {
    None,
    Bytes(&'a [u8], &'a str),
    File(&'a Path),
}

/// A client for one repository of one registry.
pub(crate) struct RegistryClient {
    base: String,
    repository: String,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    /// The `Authorization` value that worked last (basic or bearer).
    auth: Mutex<Option<String>>,
    push: bool,
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Parses `Bearer realm="…",service="…",scope="…"` into its parameters.
fn parse_challenge(value: &str) -> (String, Vec<(String, String)>) {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (v, next) = if let Some(stripped) = after.strip_prefix('"') {
            match stripped.find('"') {
                Some(end) => (&stripped[..end], &stripped[end + 1..]),
                None => (stripped, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.push((k, v.to_string()));
        rest = next.trim_start_matches(',').trim();
    }
    (scheme.to_ascii_lowercase(), params)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl RegistryClient {
    pub(crate) fn new(r: &RegistryRef, credentials: Option<Credentials>, insecure: bool) -> Result<Self> {
        let scheme = if r.is_loopback() || insecure {
            "http"
        } else {
            "https"
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .user_agent(concat!("arca/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let credentials = credentials.or_else(|| Credentials::from_auth_files(&r.host));
        Ok(RegistryClient {
            base: format!("{scheme}://{}", r.api_host()),
            repository: r.repository.clone(),
            agent,
            credentials,
            auth: Mutex::new(None),
            push: false,
        })
    }

    /// A client allowed to push (asks bearer tokens for `pull,push`).
    pub(crate) fn for_push(mut self) -> Self {
        self.push = true;
        self
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.repository)
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        accept: Option<&str>,
        body: &Body<'_>,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let auth = self.auth.lock().ok().and_then(|a| a.clone());
        macro_rules! with_headers {
            ($req:expr) => {{
                let mut req = $req;
                if let Some(a) = &auth {
                    req = req.header("Authorization", a.as_str());
                }
                if let Some(a) = accept {
                    req = req.header("Accept", a);
                }
                req
            }};
        }
        match method {
            "GET" => with_headers!(self.agent.get(url)).call(),
            "HEAD" => with_headers!(self.agent.head(url)).call(),
            "POST" => with_headers!(self.agent.post(url)).send_empty(),
            "PUT" => {
                let req = with_headers!(self.agent.put(url));
                match body {
                    Body::None => req.header("Content-Length", "0").send_empty(),
                    Body::Bytes(b, ct) => req.header("Content-Type", *ct).send(*b),
                    Body::File(p) => {
                        let f = File::open(p).map_err(ureq::Error::Io)?;
                        req.header("Content-Type", "application/octet-stream").send(f)
                    }
                }
            }
            _ => Err(ureq::Error::BadUri(format!("unsupported method {method}"))),
        }
    }

    /// Sends a request; on `401` answers the challenge (basic or bearer) once and retries.
    fn send(
        &self,
        step: &'static str,
        method: &str,
        url: &str,
        accept: Option<&str>,
        body: Body<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let fail = |reason: String| Error::Registry {
            step,
            url: url.to_string(),
            reason,
        };
        let resp = self
            .send_once(method, url, accept, &body)
            .map_err(|e| fail(e.to_string()))?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        let challenge = header(&resp, "www-authenticate")
            .ok_or_else(|| fail("401 Unauthorized without a WWW-Authenticate challenge".into()))?;
        let (scheme, params) = parse_challenge(&challenge);
        let value = match scheme.as_str() {
            "basic" => {
                let c = self.credentials.as_ref().ok_or_else(|| {
                    fail("the registry requires a user name and password (--creds USER:PASS)".into())
                })?;
                c.basic_header()
            }
            "bearer" => format!(
                "Bearer {}",
                self.fetch_token(&params)
                    .map_err(|r| fail(format!("bearer token: {r}")))?
            ),
            other => return Err(fail(format!("unsupported authentication scheme `{other}`"))),
        };
        if let Ok(mut a) = self.auth.lock() {
            *a = Some(value);
        }
        let resp = self
            .send_once(method, url, accept, &body)
            .map_err(|e| fail(e.to_string()))?;
        if resp.status() == 401 || resp.status() == 403 {
            return Err(fail(format!(
                "{} after authenticating: access denied",
                resp.status()
            )));
        }
        Ok(resp)
    }

    fn fetch_token(&self, params: &[(String, String)]) -> std::result::Result<String, String> {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let realm = get("realm").ok_or("challenge without realm")?;
        let actions = if self.push { "pull,push" } else { "pull" };
        let scope = format!("repository:{}:{actions}", self.repository);
        let mut url = format!(
            "{realm}{}scope={}",
            if realm.contains('?') { '&' } else { '?' },
            percent_encode(&scope)
        );
        if let Some(service) = get("service") {
            url.push_str(&format!("&service={}", percent_encode(&service)));
        }
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.credentials {
            req = req.header("Authorization", c.basic_header());
        }
        let mut resp = req.call().map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("token endpoint {realm} answered {}", resp.status()));
        }
        let doc: serde_json::Value = serde_json::from_slice(
            &resp
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_vec()
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        doc.get("token")
            .or_else(|| doc.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| "token endpoint answered without a token".to_string())
    }

    fn error_text(resp: &mut ureq::http::Response<ureq::Body>) -> String {
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        format!("HTTP {status}: {}", body.trim())
    }

    fn get_document(
        &self,
        tail: &str,
        accept: &str,
        step: &'static str,
    ) -> Result<(Vec<u8>, Option<String>)> {
        let url = self.url(tail);
        let mut resp = self.send(step, "GET", &url, Some(accept), Body::None)?;
        if resp.status() != 200 {
            return Err(Error::Registry {
                step,
                url,
                reason: Self::error_text(&mut resp),
            });
        }
        let ct = header(&resp, "content-type");
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .map_err(|e| Error::Registry {
                step,
                url: url.clone(),
                reason: e.to_string(),
            })?;
        Ok((bytes, ct))
    }

    /// Fetches the manifest `reference` names, following an index to `platform`; checks digests.
    pub(crate) fn fetch_manifest(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(Digest, Vec<u8>)> {
        let accept = [
            MANIFEST_TYPES[0],
            MANIFEST_TYPES[1],
            INDEX_TYPES[0],
            INDEX_TYPES[1],
        ]
        .join(", ");
        let mut tail = format!("manifests/{reference}");
        let mut expected = match reference {
            Reference::Digest(d) => Some(*d),
            Reference::Tag(_) => None,
        };
        for _ in 0..3 {
            let (bytes, ct) = self.get_document(&tail, &accept, "fetch manifest")?;
            let digest = Digest::of(&bytes);
            if let Some(e) = expected {
                crate::digest::check(&format!("manifest {tail}"), &e, None, &digest, bytes.len() as u64)?;
            }
            let mt = ct.unwrap_or_default();
            let probe: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| Error::json("fetch manifest", &tail, e))?;
            let is_index = INDEX_TYPES.iter().any(|t| mt.starts_with(t))
                || probe.get("manifests").is_some()
                || probe
                    .get("mediaType")
                    .and_then(|m| m.as_str())
                    .is_some_and(|m| INDEX_TYPES.contains(&m));
            if !is_index {
                return Ok((digest, bytes));
            }
            let index: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| Error::json("fetch index", &tail, e))?;
            let (d, _, _) = pick_platform(&index, platform, &format!("index {digest}"))?;
            tail = format!("manifests/{d}");
            expected = Some(d);
        }
        Err(Error::image(tail, "indexes nested too deeply"))
    }

    /// True if the repository already has the blob.
    pub(crate) fn blob_exists(&self, d: &Digest) -> Result<bool> {
        let url = self.url(&format!("blobs/{d}"));
        let mut resp = self.send("check blob", "HEAD", &url, None, Body::None)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(Error::Registry {
                step: "check blob",
                url,
                reason: Self::error_text(&mut resp),
            }),
        }
    }

    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Uploads the blob in `path` unless the registry has it; returns true if it was uploaded.
    pub(crate) fn push_blob(&self, d: &Digest, path: &Path) -> Result<bool> {
        if self.blob_exists(d)? {
            return Ok(false);
        }
        let url = self.url("blobs/uploads/");
        let mut resp = self.send("start upload", "POST", &url, None, Body::None)?;
        if resp.status() != 202 {
            return Err(Error::Registry {
                step: "start upload",
                url,
                reason: Self::error_text(&mut resp),
            });
        }
        let location = header(&resp, "location").ok_or_else(|| Error::Registry {
            step: "start upload",
            url: url.clone(),
            reason: "no Location".into(),
        })?;
        let mut put = self.resolve(&location);
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str(&format!("digest={}", percent_encode(&d.to_string())));
        let mut resp = self.send("upload blob", "PUT", &put, None, Body::File(path))?;
        if resp.status() != 201 {
            return Err(Error::Registry {
                step: "upload blob",
                url: put,
                reason: Self::error_text(&mut resp),
            });
        }
        Ok(true)
    }

    /// Stores a manifest under `reference`; returns the digest the registry reports (or the computed one).
    pub(crate) fn put_manifest(&self, reference: &str, bytes: &[u8], media_type: &str) -> Result<Digest> {
        let url = self.url(&format!("manifests/{reference}"));
        let mut resp = self.send("push manifest", "PUT", &url, None, Body::Bytes(bytes, media_type))?;
        if resp.status() != 201 {
            return Err(Error::Registry {
                step: "push manifest",
                url,
                reason: Self::error_text(&mut resp),
            });
        }
        let computed = Digest::of(bytes);
        if let Some(reported) = header(&resp, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok())
        {
            if reported != computed {
                return Err(Error::Registry {
                    step: "push manifest",
                    url,
                    reason: format!("registry stored digest {reported}, expected {computed}"),
                });
            }
        }
        Ok(computed)
    }
}

impl Blobs for RegistryClient {
    fn open(&self, loc: &BlobLoc) -> Result<Box<dyn Read + Send + '_>> {
        let BlobLoc::Digest(d) = loc else {
            return Err(Error::image("registry", "blobs are named by digest"));
        };
        let url = self.url(&format!("blobs/{d}"));
        let mut resp = self.send("fetch blob", "GET", &url, None, Body::None)?;
        if resp.status() != 200 {
            return Err(Error::Registry {
                step: "fetch blob",
                url,
                reason: Self::error_text(&mut resp),
            });
        }
        Ok(Box::new(resp.into_body().into_reader()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(
            p[0],
            ("realm".to_string(), "https://auth.example/token".to_string())
        );
        assert_eq!(p[1].1, "registry.example");
        assert_eq!(p[2].1, "repository:a/b:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "basic");
        assert_eq!(p[0].1, "Registry Realm");
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c: Credentials = "user:s3cret".parse().unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
