//! A client of the coordinator's REST API (what the CLI uses): HTTP/1.1 over TLS, JSend envelopes.
//!
//! The server is trusted through the coordinator's root certificate (saved by `arca verify coordinator`),
//! or — for the one call that establishes that trust, fetching the quote — not at the TLS layer at all
//! ([`Trust::VerifiedByQuote`]): the answer is then checked against the quote by the caller. In recovery
//! mode the coordinator cannot use its CA keys, so clients trust it by the RA-TLS evidence of its
//! certificate under a policy ([`Trust::Attested`]).

use std::sync::Arc;

use arca_attest::{PeerCertVerifier, PeerCheck};
use arca_protocol::api::JSend;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// A user's TLS identity: certificate chain (DER) and private key (DER: PKCS#8, SEC1 or PKCS#1).
pub type UserIdentity = (Vec<Vec<u8>>, Vec<u8>);

/// How the client trusts the server.
pub enum Trust {
    /// The coordinator's root certificate (DER): the server certificate must chain to it.
    Root(Vec<u8>),
    /// No TLS-level check: only for fetching the quote, whose content the caller verifies.
    VerifiedByQuote,
    /// The RA-TLS evidence in the server's certificate, verified under a policy (works in every state,
    /// including recovery mode, where the coordinator serves a temporary self-issued certificate because
    /// its CA keys are sealed away).
    Attested(Arc<arca_attest::RaTlsVerifier>),
}

/// A client API client.
pub struct Client {
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
}

fn cerr(step: &'static str) -> impl Fn(String) -> Error {
    move |detail| Error::Server { step, detail }
}

impl Client {
    /// A client for `addr` (`host:port`), with an optional user certificate chain and PKCS#8 key.
    pub fn new(addr: &str, trust: Trust, user: Option<UserIdentity>) -> Result<Client, Error> {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| {
                Some((
                    h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    p.parse().ok()?,
                ))
            })
            .ok_or_else(|| Error::BadRequest(format!("{addr:?} is not HOST:PORT")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| cerr("configuring TLS")(e.to_string()))?;
        let builder = match trust {
            Trust::Root(der) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from(der))
                    .map_err(|e| cerr("loading the root certificate")(e.to_string()))?;
                builder.with_root_certificates(roots)
            }
            Trust::VerifiedByQuote => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PeerCertVerifier::new(QuoteChecksIt))),
            Trust::Attested(v) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PeerCertVerifier::new(v))),
        };
        let mut cfg = match user {
            Some((chain, key)) => builder
                .with_client_auth_cert(
                    chain.into_iter().map(CertificateDer::from).collect(),
                    PrivateKeyDer::try_from(key).map_err(|e| cerr("loading the user key")(e.to_string()))?,
                )
                .map_err(|e| cerr("loading the user certificate")(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            host,
            port,
            tls: Arc::new(cfg),
        })
    }

    /// `GET path`, returning the JSend data.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call("GET", path, None).await
    }

    /// `POST path` with a JSON body, returning the JSend data.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, Error> {
        let body = serde_json::to_vec(body).map_err(|e| Error::BadRequest(e.to_string()))?;
        self.call("POST", path, Some(body)).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| cerr("connecting")(format!("{addr}: {e}")))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| cerr("server name")(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| cerr("TLS handshake with the coordinator")(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| cerr("HTTP handshake")(e.to_string()))?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| cerr("building the request")(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| cerr("sending the request")(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| cerr("reading the answer")(e.to_string()))?
            .to_bytes();
        let env: JSend<T> = serde_json::from_slice(&bytes).map_err(|e| {
            cerr("reading the answer")(format!(
                "HTTP {status}: not a JSend answer ({e}): {}",
                String::from_utf8_lossy(&bytes)
            ))
        })?;
        let failed = env.status == "fail";
        env.into_result().map_err(|m| {
            if failed {
                match status.as_u16() {
                    401 => Error::Unauthenticated(m),
                    403 => Error::Forbidden(m),
                    404 => Error::NotFound(m),
                    409 => Error::WrongState(m),
                    _ => Error::BadRequest(m),
                }
            } else {
                Error::Server {
                    step: "the coordinator answered with an error",
                    detail: m,
                }
            }
        })
    }
}

/// Accepts any server certificate: the caller verifies the quote the server returns instead.
#[derive(Debug)]
struct QuoteChecksIt;

impl PeerCheck for QuoteChecksIt {
    fn check(&self, _end_entity: &CertificateDer<'_>, _now: UnixTime) -> Result<(), rustls::Error> {
        Ok(())
    }
}
