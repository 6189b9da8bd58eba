//! The mesh API (gRPC, port 2001): MarbleRun's `rpc.Marble/Activate` and monotonic counters.

use std::sync::Arc;

use arca_protocol::activation::marble_server::{Marble, MarbleServer};
use arca_protocol::activation::{
    ActivationReq, ActivationResp, Parameters, SetMonotonicCounterReq, SetMonotonicCounterResp,
};
use tonic::{Request, Response, Status};

use crate::api::client::ClientCert;
use crate::attestation::{marble_enclave, MarbleVerifier};
use crate::{ActivationRequest, Coordinator, Error};

/// The activation service.
#[derive(Clone)]
pub struct MeshService {
    coordinator: Coordinator,
    verifier: Arc<dyn MarbleVerifier>,
    turns: crate::api::Turns,
}

/// Activations in their CPU-bound part at once, per core (quote verification, key generation, rendering,
/// up to recording; not the wait for the group commit); the rest wait in arrival order.
const TURNS_PER_CORE: usize = 8;
/// The longest an activation waits for its turn before it goes ahead regardless.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl MeshService {
    /// A service over `coordinator`, verifying marbles with `verifier`.
    pub fn new(coordinator: Coordinator, verifier: Arc<dyn MarbleVerifier>) -> MeshService {
        MeshService {
            coordinator,
            verifier,
            turns: crate::api::Turns::per_core(TURNS_PER_CORE, MAX_WAIT),
        }
    }

    /// The tonic server.
    pub fn into_server(self) -> MarbleServer<MeshService> {
        MarbleServer::new(self)
    }
}

/// Maps an error to a gRPC status whose message is the reason.
pub(crate) fn status(e: Error) -> Status {
    match &e {
        Error::Refused(_) | Error::Forbidden(_) => Status::permission_denied(e.to_string()),
        Error::Unauthenticated(_) => Status::unauthenticated(e.to_string()),
        Error::BadRequest(_) | Error::Manifest(_) => Status::invalid_argument(e.to_string()),
        Error::WrongState(_) => Status::failed_precondition(e.to_string()),
        Error::NotFound(_) => Status::not_found(e.to_string()),
        _ => {
            tracing::error!("mesh API: {e}");
            Status::internal("internal error (see the coordinator's log)")
        }
    }
}

/// The DNS names (and IP addresses) a CSR asks for; its signature must verify.
pub(crate) fn csr_names(csr: &[u8]) -> Result<Vec<String>, Error> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    if csr.is_empty() {
        return Ok(Vec::new());
    }
    let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(csr)
        .map_err(|e| Error::BadRequest(format!("the CSR is not a PKCS#10 request: {e}")))?;
    req.verify_signature()
        .map_err(|_| Error::BadRequest("the CSR's signature does not verify".into()))?;
    let mut names = Vec::new();
    for ext in req.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for n in &san.general_names {
                match n {
                    GeneralName::DNSName(d) => names.push((*d).to_owned()),
                    GeneralName::IPAddress(ip) if ip.len() == 4 => {
                        let b: [u8; 4] = [ip[0], ip[1], ip[2], ip[3]];
                        names.push(std::net::IpAddr::from(b).to_string());
                    }
                    GeneralName::IPAddress(ip) if ip.len() == 16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        names.push(std::net::IpAddr::from(b).to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(names)
}

#[tonic::async_trait]
impl Marble for MeshService {
    async fn activate(&self, request: Request<ActivationReq>) -> Result<Response<ActivationResp>, Status> {
        let cert = request.extensions().get::<ClientCert>().and_then(|c| c.0.clone());
        let req = request.into_inner();
        // Take a turn (see `Turns`); given up once the activation is recorded, before the commit wait.
        let turn = self.turns.take().await;
        let verifier = self.verifier.clone();
        let quote = req.quote;
        let cert_for_check = cert.clone();
        let enclave = tokio::task::spawn_blocking(move || {
            marble_enclave(
                verifier.as_ref(),
                cert_for_check.as_deref().map(Vec::as_slice),
                &quote,
            )
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)?;
        let dns_names = csr_names(&req.csr).map_err(status)?;
        let act = self
            .coordinator
            .activate_then_release(
                &ActivationRequest {
                    marble_type: req.marble_type,
                    uuid: req.uuid,
                    dns_names,
                },
                &enclave,
                turn,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ActivationResp {
            parameters: Some(Parameters {
                files: act.files.into_iter().collect(),
                env: act.env.into_iter().collect(),
                argv: act.argv,
            }),
            marble_cert_chain_pem: act.cert_chain_pem,
            marble_key_pem: act.key_pem.to_string(),
            root_ca_pem: act.root_pem,
        }))
    }

    async fn set_monotonic_counter(
        &self,
        request: Request<SetMonotonicCounterReq>,
    ) -> Result<Response<SetMonotonicCounterResp>, Status> {
        let cert = request
            .extensions()
            .get::<ClientCert>()
            .and_then(|c| c.0.clone())
            .ok_or_else(|| {
                Status::unauthenticated("counters need the marble certificate as TLS client certificate")
            })?;
        let req = request.into_inner();
        let previous = self
            .coordinator
            .set_counter(&cert, &req.name, req.value)
            .await
            .map_err(status)?;
        Ok(Response::new(SetMonotonicCounterResp { value: previous }))
    }
}
