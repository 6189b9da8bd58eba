//! The client REST API (`/api/v2/…`, JSend envelopes). Built by [`app`] so that tests call it without
//! sockets; the TLS server adds the caller's client certificate to each request as a [`ClientCert`].

use std::collections::BTreeMap;
use std::sync::Arc;

use arca_protocol::api::{
    paths, AuditResponse, CountersResponse, JSend, ManifestRequest, ManifestResponse, ManifestSetResponse,
    PendingUpdateResponse, QuoteResponse, RecoverRequest, RecoverResponse, SecretsRequest, SecretsResponse,
    SignQuoteRequest, SignQuoteResponse, StatusResponse, UpdateLogResponse,
};
use arca_protocol::manifest::template::pem_encode;
use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde::Deserialize;

use crate::attestation::{Attester, MarbleVerifier};
use crate::crypto::sha256;
use crate::{Coordinator, Error};

/// The TLS client certificate (DER) of the connection a request came on, if any.
#[derive(Clone, Debug, Default)]
pub struct ClientCert(pub Option<Arc<Vec<u8>>>);

/// What the client API needs.
#[derive(Clone)]
pub struct ApiState {
    /// The coordinator.
    pub coordinator: Coordinator,
    /// Quotes for `/quote`.
    pub attester: Arc<dyn Attester>,
    /// Verifies quotes for `/sign-quote`.
    pub verifier: Arc<dyn MarbleVerifier>,
}

/// An error as the API answers it: "fail" with the reason for refused requests, "error" otherwise.
pub(crate) struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match &e {
            Error::Manifest(_) | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::Refused(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::WrongState(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body: JSend<()> = if e.is_client_error() {
            JSend::fail(e.to_string())
        } else {
            tracing::error!("client API: {e}");
            // Server failures are logged in full; clients learn only the kind.
            let kind = match &e {
                Error::Poisoned(_) => "the coordinator's storage failed; it must be restarted",
                Error::AuditTampered(_) => "the audit log does not verify",
                _ => "internal error (see the coordinator's log)",
            };
            JSend::error(kind)
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<Json<JSend<T>>, ApiError>;

fn ok<T>(t: T) -> ApiResult<T> {
    Ok(Json(JSend::success(t)))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn decode_b64(what: &str, s: &str) -> Result<Vec<u8>, Error> {
    b64()
        .decode(s.as_bytes())
        .map_err(|e| Error::BadRequest(format!("{what} is not base64: {e}")))
}

fn cert(c: &Option<Extension<ClientCert>>) -> Option<&[u8]> {
    c.as_ref()
        .and_then(|Extension(ClientCert(c))| c.as_deref().map(Vec::as_slice))
}

/// The client API router.
pub fn app(state: ApiState) -> Router {
    Router::new()
        .route(paths::STATUS, get(status))
        .route(paths::QUOTE, get(quote))
        .route(paths::MANIFEST, get(get_manifest).post(set_manifest))
        .route(paths::SECRETS, get(get_secrets).post(set_secrets))
        .route(paths::UPDATE, get(update_log).post(update_packages))
        .route(paths::UPDATE_MANIFEST, get(pending_update).post(update_manifest))
        .route(paths::UPDATE_CANCEL, post(cancel_update))
        .route(paths::RECOVER, post(recover))
        .route(paths::AUDIT, get(audit))
        .route(paths::COUNTERS, get(counters))
        .route(paths::SIGN_QUOTE, post(sign_quote))
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(JSend::<()>::fail("no such API path"))) })
        .with_state(state)
}

async fn status(State(s): State<ApiState>) -> ApiResult<StatusResponse> {
    let st = s.coordinator.status();
    ok(StatusResponse {
        status: st.code(),
        message: st.message().into(),
    })
}

#[derive(Deserialize)]
struct NonceQuery {
    nonce: Option<String>,
}

async fn quote(State(s): State<ApiState>, Query(q): Query<NonceQuery>) -> ApiResult<QuoteResponse> {
    let nonce = match q.nonce.as_deref() {
        Some(n) => base64::engine::general_purpose::URL_SAFE
            .decode(n.as_bytes())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n.as_bytes()))
            .map_err(|e| Error::BadRequest(format!("nonce is not base64url: {e}")))?,
        None => Vec::new(),
    };
    let (root, inter) = s.coordinator.ca_certs()?;
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&sha256(&[&root, &nonce]));
    let attester = s.attester.clone();
    let quote = tokio::task::spawn_blocking(move || attester.quote(&rd))
        .await
        .map_err(|e| Error::Server {
            step: "quoting",
            detail: e.to_string(),
        })??;
    ok(QuoteResponse {
        cert: pem_encode("CERTIFICATE", &root) + &pem_encode("CERTIFICATE", &inter),
        quote: b64().encode(quote),
    })
}

async fn get_manifest(State(s): State<ApiState>) -> ApiResult<ManifestResponse> {
    let m = s.coordinator.manifest()?;
    ok(ManifestResponse {
        manifest_signature_root_ecdsa: b64().encode(&m.signature),
        manifest_fingerprint: m.fingerprint,
        manifest: b64().encode(&m.raw),
    })
}

async fn set_manifest(
    State(s): State<ApiState>,
    c: Option<Extension<ClientCert>>,
    Json(req): Json<ManifestRequest>,
) -> ApiResult<ManifestSetResponse> {
    let raw = decode_b64("manifest", &req.manifest)?;
    let actor = match cert(&c) {
        Some(der) => format!("client:{}", hex::encode(&sha256(&[der])[..8])),
        None => "anonymous".into(),
    };
    let secrets = s.coordinator.set_manifest(&raw, &actor).await?;
    let recovery_keys =
        (!secrets.is_empty()).then(|| secrets.into_iter().map(|(k, v)| (k, b64().encode(v))).collect());
    ok(ManifestSetResponse { recovery_keys })
}

fn secret_names(q: Option<String>) -> Result<Vec<String>, Error> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
        .map_err(|e| Error::BadRequest(format!("query: {e}")))?;
    Ok(pairs
        .into_iter()
        .filter(|(k, _)| k == "s")
        .map(|(_, v)| v)
        .collect())
}

async fn get_secrets(
    State(s): State<ApiState>,
    c: Option<Extension<ClientCert>>,
    RawQuery(q): RawQuery,
) -> ApiResult<SecretsResponse> {
    let names = secret_names(q)?;
    let secrets = s.coordinator.read_secrets(cert(&c), &names).await?;
    ok(SecretsResponse { secrets })
}

async fn set_secrets(
    State(s): State<ApiState>,
    c: Option<Extension<ClientCert>>,
    Json(req): Json<SecretsRequest>,
) -> ApiResult<BTreeMap<String, String>> {
    s.coordinator.write_secrets(cert(&c), &req.secrets).await?;
    ok(BTreeMap::from([(
        "message".to_owned(),
        format!("{} secret(s) set", req.secrets.len()),
    )]))
}

async fn update_log(State(s): State<ApiState>) -> ApiResult<UpdateLogResponse> {
    ok(UpdateLogResponse {
        update_log: s.coordinator.update_log()?,
    })
}

async fn update_packages(
    State(s): State<ApiState>,
    c: Option<Extension<ClientCert>>,
    Json(req): Json<ManifestRequest>,
) -> ApiResult<BTreeMap<String, String>> {
    let raw = decode_b64("manifest", &req.manifest)?;
    s.coordinator.update_packages(cert(&c), &raw).await?;
    ok(BTreeMap::from([(
        "message".to_owned(),
        "update applied".to_owned(),
    )]))
}

async fn pending_update(State(s): State<ApiState>) -> ApiResult<PendingUpdateResponse> {
    match s.coordinator.pending_update()? {
        None => Err(Error::NotFound("no manifest update is pending".into()).into()),
        Some((raw, missing)) => ok(PendingUpdateResponse {
            message: format!("{} user(s) still need to acknowledge the update", missing.len()),
            missing_users: missing,
            manifest: Some(b64().encode(raw)),
        }),
    }
}

async fn update_manifest(
    State(s): State<ApiState>,
    c: Option<Extension<ClientCert>>,
    Json(req): Json<ManifestRequest>,
) -> ApiResult<PendingUpdateResponse> {
    let raw = decode_b64("manifest", &req.manifest)?;
    let missing = s.coordinator.update_manifest(cert(&c), &raw).await?;
    let message = if missing.is_empty() {
        "manifest update applied".to_owned()
    } else {
        format!("{} user(s) still need to acknowledge the update", missing.len())
    };
    ok(PendingUpdateResponse {
        message,
        missing_users: missing,
        manifest: None,
    })
}

async fn cancel_update(
    State(s): State<ApiState>,
    c: Option<Extension<ClientCert>>,
) -> ApiResult<BTreeMap<String, String>> {
    s.coordinator.cancel_update(cert(&c)).await?;
    ok(BTreeMap::from([(
        "message".to_owned(),
        "update cancelled".to_owned(),
    )]))
}

async fn recover(State(s): State<ApiState>, Json(req): Json<RecoverRequest>) -> ApiResult<RecoverResponse> {
    let secret = decode_b64("recoverySecret", &req.recovery_secret)?;
    let sig = req
        .recovery_secret_signature
        .as_deref()
        .map(|s| decode_b64("recoverySecretSignature", s))
        .transpose()?;
    let remaining = s.coordinator.recover(&secret, sig.as_deref()).await?;
    let message = if remaining == 0 {
        "recovery complete: the coordinator is running again".to_owned()
    } else {
        format!("secret accepted; {remaining} more needed")
    };
    ok(RecoverResponse { remaining, message })
}

#[derive(Deserialize)]
struct FromQuery {
    from: Option<u64>,
}

async fn audit(State(s): State<ApiState>, Query(q): Query<FromQuery>) -> ApiResult<AuditResponse> {
    let (entries, head) = s.coordinator.audit(q.from.unwrap_or(0))?;
    let head = serde_json::to_string(&head).map_err(|e| Error::Corrupt(e.to_string()))?;
    ok(AuditResponse { entries, head })
}

async fn counters(
    State(s): State<ApiState>,
    c: Option<Extension<ClientCert>>,
) -> ApiResult<CountersResponse> {
    s.coordinator.user_of(cert(&c))?;
    ok(CountersResponse {
        counters: s.coordinator.counters()?,
    })
}

async fn sign_quote(
    State(s): State<ApiState>,
    Json(req): Json<SignQuoteRequest>,
) -> ApiResult<SignQuoteResponse> {
    let manifest = s.coordinator.manifest()?;
    let m = arca_protocol::Manifest::parse(&manifest.raw).map_err(Error::from)?;
    if !m.config.feature_gates.iter().any(|g| g == "SignQuoteEndpoint") {
        return Err(Error::Forbidden(
            "the manifest does not enable the SignQuoteEndpoint feature gate".into(),
        )
        .into());
    }
    let quote = decode_b64("sgxQuote", &req.sgx_quote)?;
    let verifier = s.verifier.clone();
    let enclave = tokio::task::spawn_blocking(move || verifier.verify_quote(&quote))
        .await
        .map_err(|e| Error::Server {
            step: "verifying a quote",
            detail: e.to_string(),
        })??;
    if enclave.simulated && !s.coordinator.options().allow_simulation {
        return Err(Error::Refused(
            "simulated quote refused: the coordinator runs without --allow-simulation".into(),
        )
        .into());
    }
    let msg = format!("{}{}", req.sgx_quote, enclave.tcb_status);
    let sig = s.coordinator.sign_with_root(msg.as_bytes())?;
    ok(SignQuoteResponse {
        signature: b64().encode(sig),
        tcb_status: enclave.tcb_status,
    })
}
