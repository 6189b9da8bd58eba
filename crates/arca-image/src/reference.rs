//! Image references with their transport: `docker-archive:PATH[:NAME:TAG]`, `oci:DIR[:TAG]`,
//! `oci-archive:PATH[:TAG]`, `docker://HOST/REPO[:TAG|@DIGEST]` (the spellings skopeo and podman use).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::Error;

/// Where an image is read from or written to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageRef {
    /// A `docker save` tarball; `name` is the `REPO:TAG` inside it (`RepoTags`), if given.
    DockerArchive {
        /// The archive file.
        path: PathBuf,
        /// The tag to select (reading) or record (writing).
        name: Option<String>,
    },
    /// An OCI image layout directory; `tag` is the `org.opencontainers.image.ref.name` annotation.
    Oci {
        /// The layout directory.
        dir: PathBuf,
        /// The tag to select or write.
        tag: Option<String>,
    },
    /// A tar of an OCI image layout.
    OciArchive {
        /// The archive file.
        path: PathBuf,
        /// The tag to select or write.
        tag: Option<String>,
    },
    /// An image in a registry (OCI distribution API).
    Registry(RegistryRef),
}

/// A repository in a registry and a tag or digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// The registry host (and port), e.g. `127.0.0.1:5000`; Docker Hub is `docker.io`.
    pub host: String,
    /// The repository path, e.g. `library/python`.
    pub repository: String,
    /// The tag or digest.
    pub reference: Reference,
}

/// A tag or a manifest digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A tag such as `latest`.
    Tag(String),
    /// A manifest digest.
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

impl RegistryRef {
    /// The host to contact (`docker.io` is served by `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.host == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.host
        }
    }

    /// True for registries on the loopback interface, which Arca talks to over plain HTTP (as Docker does).
    pub fn is_loopback(&self) -> bool {
        let host = self.host.rsplit_once(':').map_or(self.host.as_str(), |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                self.host.as_str()
            }
        });
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}

fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn is_repo_component(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Splits `PATH[:TAG]`: the suffix after the last `:` is a tag only if it looks like one (no `/`).
fn split_path_tag(s: &str) -> (PathBuf, Option<String>) {
    if let Some((p, t)) = s.rsplit_once(':') {
        if !p.is_empty() && !t.contains('/') && is_tag(t) {
            return (PathBuf::from(p), Some(t.to_string()));
        }
    }
    (PathBuf::from(s), None)
}

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Reference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input.strip_prefix("docker://") {
            return parse_registry(rest).map(ImageRef::Registry).map_err(|r| bad(&r));
        }
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            // PATH[:REPO:TAG] — the name may itself contain one `:` (the tag) and `/`.
            let (path, name) = match rest.split_once(':') {
                Some((p, n)) if !n.is_empty() => (p, Some(n.to_string())),
                _ => (rest, None),
            };
            if path.is_empty() {
                return Err(bad("missing path after `docker-archive:`"));
            }
            return Ok(ImageRef::DockerArchive {
                path: PathBuf::from(path),
                name,
            });
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            if rest.is_empty() {
                return Err(bad("missing path after `oci-archive:`"));
            }
            let (path, tag) = split_path_tag(rest);
            return Ok(ImageRef::OciArchive { path, tag });
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            if rest.is_empty() {
                return Err(bad("missing directory after `oci:`"));
            }
            let (dir, tag) = split_path_tag(rest);
            return Ok(ImageRef::Oci { dir, tag });
        }
        Err(bad(
            "expected a transport prefix: docker://, docker-archive:, oci:, or oci-archive:",
        ))
    }
}

fn parse_registry(rest: &str) -> Result<RegistryRef, String> {
    let (name, reference) = if let Some((n, d)) = rest.split_once('@') {
        (n, Reference::Digest(d.parse().map_err(|e: Error| e.to_string())?))
    } else {
        match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => {
                if !is_tag(t) {
                    return Err(format!("invalid tag `{t}`"));
                }
                (n, Reference::Tag(t.to_string()))
            }
            _ => (rest, Reference::Tag("latest".into())),
        }
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    let host =
        if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
            parts.remove(0).to_string()
        } else {
            "docker.io".to_string()
        };
    if host == "docker.io" && parts.len() == 1 {
        parts.insert(0, "library");
    }
    if parts.is_empty() || !parts.iter().all(|p| is_repo_component(p)) {
        return Err(format!(
            "invalid repository `{}` (lowercase letters, digits, `._-`, separated by `/`)",
            parts.join("/")
        ));
    }
    Ok(RegistryRef {
        host,
        repository: parts.join("/"),
        reference,
    })
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::DockerArchive { path, name } => {
                write!(f, "docker-archive:{}", path.display())?;
                name.as_ref().map_or(Ok(()), |n| write!(f, ":{n}"))
            }
            ImageRef::Oci { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                tag.as_ref().map_or(Ok(()), |t| write!(f, ":{t}"))
            }
            ImageRef::OciArchive { path, tag } => {
                write!(f, "oci-archive:{}", path.display())?;
                tag.as_ref().map_or(Ok(()), |t| write!(f, ":{t}"))
            }
            ImageRef::Registry(r) => write!(f, "{r}"),
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Reference::Tag(t) => write!(f, "docker://{}/{}:{t}", self.host, self.repository),
            Reference::Digest(d) => write!(f, "docker://{}/{}@{d}", self.host, self.repository),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_transport() {
        assert_eq!(
            "oci:/tmp/x:v1".parse::<ImageRef>().unwrap(),
            ImageRef::Oci {
                dir: "/tmp/x".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            "oci:./dir".parse::<ImageRef>().unwrap(),
            ImageRef::Oci {
                dir: "./dir".into(),
                tag: None
            }
        );
        assert_eq!(
            "docker-archive:a.tar:app:1".parse::<ImageRef>().unwrap(),
            ImageRef::DockerArchive {
                path: "a.tar".into(),
                name: Some("app:1".into())
            }
        );
        assert_eq!(
            "oci-archive:/x/a.tar".parse::<ImageRef>().unwrap(),
            ImageRef::OciArchive {
                path: "/x/a.tar".into(),
                tag: None
            }
        );
        let ImageRef::Registry(r) = "docker://127.0.0.1:5000/team/app:v2".parse::<ImageRef>().unwrap() else {
            panic!()
        };
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.reference, Reference::Tag("v2".into()));
        assert!(r.is_loopback());
    }

    #[test]
    fn docker_hub_names_are_expanded() {
        let ImageRef::Registry(r) = "docker://python".parse::<ImageRef>().unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("docker.io", "library/python")
        );
        assert_eq!(r.reference, Reference::Tag("latest".into()));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert!(!r.is_loopback());
    }

    #[test]
    fn refuses_references_without_transport_or_with_bad_names() {
        assert!("python:3".parse::<ImageRef>().is_err());
        assert!("docker://localhost:5000/UPPER:1".parse::<ImageRef>().is_err());
        assert!("docker://localhost:5000/a@sha256:00".parse::<ImageRef>().is_err());
        assert!("oci:".parse::<ImageRef>().is_err());
    }
}
