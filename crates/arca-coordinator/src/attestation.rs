//! What the coordinator needs from attestation, as two small traits: quoting itself ([`Attester`]) and
//! verifying marbles ([`MarbleVerifier`]). The engine-specific implementations (simulation quoter, DCAP
//! verification, RA-TLS evidence) live in `arca-attest`; this crate depends only on these shapes.

use crate::crypto::sha256;
use crate::policy::Enclave;
use crate::Error;

/// Produces quotes for the coordinator's own enclave.
pub trait Attester: Send + Sync + 'static {
    /// A quote whose REPORTDATA is `report_data`.
    fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, Error>;
}

/// Verifies marbles' attestation evidence.
pub trait MarbleVerifier: Send + Sync + 'static {
    /// Fully verifies a quote (chain, collateral, TCB, QE identity, signature) and returns the enclave. A
    /// simulated quote is reported as such ([`Enclave::simulated`]); refusing it is the coordinator's job,
    /// so that the refusal can say why.
    fn verify_quote(&self, quote: &[u8]) -> Result<Enclave, Error>;

    /// Verifies the TCG DICE evidence of an RA-TLS client certificate, including that it binds the
    /// certificate's public key. `Ok(None)` when the certificate carries no evidence.
    fn verify_certificate_evidence(&self, cert_der: &[u8]) -> Result<Option<Enclave>, Error>;
}

/// Open Enclave's 16-byte evidence header: version 1, type 2 (remote), then the quote's size.
fn strip_oe_header(quote: &[u8]) -> &[u8] {
    if quote.len() > 16 {
        let version = u32::from_le_bytes([quote[0], quote[1], quote[2], quote[3]]);
        let kind = u32::from_le_bytes([quote[4], quote[5], quote[6], quote[7]]);
        let mut size = [0u8; 8];
        size.copy_from_slice(&quote[8..16]);
        if version == 1 && kind == 2 && u64::from_le_bytes(size) == (quote.len() - 16) as u64 {
            return &quote[16..];
        }
    }
    quote
}

/// Contract 6: the enclave behind an activation. Either the request carries a quote (MarbleRun style: raw
/// DCAP or behind the Open Enclave header) whose REPORTDATA[0..32] is SHA-256 of the client certificate's
/// DER, or the client certificate carries DICE evidence binding its key.
pub fn marble_enclave(
    verifier: &dyn MarbleVerifier,
    client_cert: Option<&[u8]>,
    request_quote: &[u8],
) -> Result<Enclave, Error> {
    let cert = client_cert.ok_or_else(|| {
        Error::Refused("activation needs a TLS client certificate (the marble's attested key)".into())
    })?;
    if request_quote.is_empty() {
        return verifier.verify_certificate_evidence(cert)?.ok_or_else(|| {
            Error::Refused(
                "no attestation: the request has no quote and the client certificate carries no DICE evidence"
                    .into(),
            )
        });
    }
    let enclave = verifier.verify_quote(strip_oe_header(request_quote))?;
    if enclave.report_data[..32] != sha256(&[cert])[..] {
        return Err(Error::Refused(
            "the quote is not bound to the TLS client certificate (REPORTDATA[0..32] must be SHA-256 of its DER)"
                .into(),
        ));
    }
    Ok(enclave)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_a_consistent_open_enclave_header() {
        let mut q = vec![1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"abc");
        assert_eq!(strip_oe_header(&q), b"abc");
        q[8] = 4;
        assert_eq!(strip_oe_header(&q).len(), 19);
    }
}
