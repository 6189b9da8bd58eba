//! The client REST API (`/api/v2/…`, port 4433): request and response bodies, and the JSend envelope.
//!
//! Field names follow MarbleRun's documented v2 API (camelCase); bodies that MarbleRun decodes with Go's
//! case-insensitive rules also accept their capitalised spellings. Binary values are standard base64.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every path of the client API, in one place for the server and its clients.
pub mod paths {
    /// `GET` the coordinator's quote and certificate chain (`?nonce=` base64url).
    pub const QUOTE: &str = "/api/v2/quote";
    /// `GET` the manifest with its fingerprint and signature; `POST` to set it.
    pub const MANIFEST: &str = "/api/v2/manifest";
    /// `GET` the state.
    pub const STATUS: &str = "/api/v2/status";
    /// `GET` (`?s=NAME&s=…`) or `POST` secrets.
    pub const SECRETS: &str = "/api/v2/secrets";
    /// `GET` the update log; `POST` a package update (SecurityVersion bump).
    pub const UPDATE: &str = "/api/v2/update";
    /// `GET` the pending multi-party manifest update; `POST` to propose or acknowledge it.
    pub const UPDATE_MANIFEST: &str = "/api/v2/update-manifest";
    /// `POST` to cancel the pending manifest update.
    pub const UPDATE_CANCEL: &str = "/api/v2/update-cancel";
    /// `POST` a recovery secret.
    pub const RECOVER: &str = "/api/v2/recover";
    /// `GET` the audit log (`?from=N`) with its signed head.
    pub const AUDIT: &str = "/api/v2/audit";
    /// `GET` monotonic counters (users with the manifest's `ReadSecret`… see docs).
    pub const COUNTERS: &str = "/api/v2/counters";
    /// `POST` a quote for verification and signing (feature gate `SignQuoteEndpoint`).
    pub const SIGN_QUOTE: &str = "/api/v2/sign-quote";
}

/// A JSend envelope: `{"status": "success", "data": …}`, `{"status": "fail", "message": …, "data"?: …}` or
/// `{"status": "error", "message": …}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JSend<T> {
    /// "success", "fail" (the request was refused) or "error" (the server failed).
    pub status: String,
    /// The result (success) or details (fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// A human-readable reason (fail, error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl<T> JSend<T> {
    /// A success envelope.
    pub fn success(data: T) -> Self {
        JSend {
            status: "success".into(),
            data: Some(data),
            message: None,
        }
    }

    /// A fail envelope (the client's request was refused).
    pub fn fail(message: impl Into<String>) -> Self {
        JSend {
            status: "fail".into(),
            data: None,
            message: Some(message.into()),
        }
    }

    /// An error envelope (the server failed).
    pub fn error(message: impl Into<String>) -> Self {
        JSend {
            status: "error".into(),
            data: None,
            message: Some(message.into()),
        }
    }

    /// The data of a success, or the message of a fail/error.
    pub fn into_result(self) -> Result<T, String> {
        match (self.status.as_str(), self.data) {
            ("success", Some(d)) => Ok(d),
            _ => Err(self
                .message
                .unwrap_or_else(|| format!("the server answered {:?}", self.status))),
        }
    }
}

/// `GET /api/v2/quote`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuoteResponse {
    /// PEM chain: the root CA certificate, then the intermediate CA certificate.
    pub cert: String,
    /// Base64 DCAP quote; REPORTDATA[0..32] = SHA-256(root certificate DER ‖ nonce).
    pub quote: String,
}

/// `GET /api/v2/manifest`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestResponse {
    /// Base64 ECDSA (P-384, SHA-256, ASN.1 DER) signature of the manifest bytes by the root key.
    #[serde(rename = "manifestSignatureRootECDSA")]
    pub manifest_signature_root_ecdsa: String,
    /// Hex SHA-256 of the manifest bytes.
    pub manifest_fingerprint: String,
    /// Base64 manifest bytes, exactly as set.
    pub manifest: String,
}

/// `POST /api/v2/manifest`, `/update`, `/update-manifest`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestRequest {
    /// Base64 manifest bytes.
    #[serde(alias = "Manifest")]
    pub manifest: String,
}

/// `POST /api/v2/manifest` answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSetResponse {
    /// Per recovery key: the base64 recovery secret encrypted to it (RSA-OAEP, SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_keys: Option<BTreeMap<String, String>>,
}

/// `GET /api/v2/status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusResponse {
    /// 1 recovery, 2 accepting a manifest, 3 accepting marbles (MarbleRun's codes).
    pub status: i32,
    /// Human-readable state.
    pub message: String,
}

/// A secret as MarbleRun writes it (Go field names; binary values base64).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SecretObject {
    /// symmetric-key, cert-rsa, cert-ecdsa, cert-ed25519 or plain.
    #[serde(alias = "type")]
    pub r#type: String,
    /// Size in bits.
    #[serde(default, alias = "size")]
    pub size: u32,
    /// Shared by all marbles.
    #[serde(default, alias = "shared")]
    pub shared: bool,
    /// Uploaded by a user.
    #[serde(default, alias = "userDefined")]
    pub user_defined: bool,
    /// Base64 certificate DER (MarbleRun writes the certificate's `Raw`).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "cert")]
    pub cert: Option<String>,
    /// Validity in days.
    #[serde(default, alias = "validFor")]
    pub valid_for: u64,
    /// Base64 private key (PKCS#8) or symmetric key / plain data.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "private")]
    pub private: Option<String>,
    /// Base64 public key (SubjectPublicKeyInfo) or symmetric key / plain data.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "public")]
    pub public: Option<String>,
}

/// `GET /api/v2/secrets` answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretsResponse {
    /// Secrets by name.
    pub secrets: BTreeMap<String, SecretObject>,
}

/// A user-defined secret's value (`POST /api/v2/secrets`): `Key` alone, or `Cert` (and `Private`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct UserSecret {
    /// Base64 symmetric key or plain data.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "key")]
    pub key: Option<String>,
    /// Base64 certificate DER.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "cert")]
    pub cert: Option<String>,
    /// Base64 private key (PKCS#8 DER).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "private")]
    pub private: Option<String>,
}

/// `POST /api/v2/secrets`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretsRequest {
    /// Secrets by name.
    #[serde(alias = "Secrets")]
    pub secrets: BTreeMap<String, UserSecret>,
}

/// `GET /api/v2/update` answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateLogResponse {
    /// One JSON document per update.
    pub update_log: Vec<String>,
}

/// `GET`/`POST /api/v2/update-manifest` answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingUpdateResponse {
    /// Human-readable progress.
    pub message: String,
    /// Users whose acknowledgement is still missing.
    pub missing_users: Vec<String>,
    /// Base64 pending manifest (GET only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

/// `POST /api/v2/recover`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecoverRequest {
    /// Base64 decrypted recovery secret (or share).
    #[serde(alias = "RecoverySecret")]
    pub recovery_secret: String,
    /// Optional base64 RSA-PSS (SHA-256) signature of the secret by the recovery key's private half.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "RecoverySecretSignature"
    )]
    pub recovery_secret_signature: Option<String>,
}

/// `POST /api/v2/recover` answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecoverResponse {
    /// Secrets still needed.
    pub remaining: u32,
    /// Human-readable progress.
    pub message: String,
}

/// `POST /api/v2/sign-quote`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SignQuoteRequest {
    /// Base64 quote.
    pub sgx_quote: String,
}

/// `POST /api/v2/sign-quote` answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SignQuoteResponse {
    /// Base64 signature by the root key over SHA-256(base64(quote) ‖ TCB status).
    pub signature: String,
    /// The quote's TCB status.
    pub tcb_status: String,
}

/// `GET /api/v2/audit` answer: entries from `from` on, and the signed head of the whole log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditResponse {
    /// Audit entries, one JSON line each, exactly as hashed.
    pub entries: Vec<String>,
    /// The signed head (a JSON document, see the coordinator's `audit` module).
    pub head: String,
}

/// `GET /api/v2/counters` answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CountersResponse {
    /// Counter values by marble type, then name.
    pub counters: BTreeMap<String, BTreeMap<String, u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsend_round_trips_and_maps_failures_to_messages() {
        let s = serde_json::to_string(&JSend::success(StatusResponse {
            status: 3,
            message: "ok".into(),
        }))
        .unwrap();
        assert_eq!(s, r#"{"status":"success","data":{"status":3,"message":"ok"}}"#);
        let f: JSend<StatusResponse> = serde_json::from_str(r#"{"status":"fail","message":"no"}"#).unwrap();
        assert_eq!(f.into_result().unwrap_err(), "no");
    }

    #[test]
    fn user_secrets_accept_marblerun_lowercase_and_go_spellings() {
        let a: SecretsRequest = serde_json::from_str(r#"{"secrets":{"k":{"key":"QQ=="}}}"#).unwrap();
        let b: SecretsRequest = serde_json::from_str(r#"{"Secrets":{"k":{"Key":"QQ=="}}}"#).unwrap();
        assert_eq!(a, b);
    }
}
