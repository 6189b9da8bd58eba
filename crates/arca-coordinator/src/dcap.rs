//! The attestation implementations over `arca-attest`: marbles' quotes verified fully (chain, collateral,
//! TCB, QE identity, signature) with its warm cache, and the coordinator's own quotes from any
//! `arca_attest::Quoter` (the in-process simulation quoter until the simulation platform service exists).

use std::sync::Arc;

use arca_attest::{CollateralSource, Evidence, Policy, Quoter, RaTlsCertificate, Verifier};

use crate::attestation::{Attester, MarbleVerifier};
use crate::policy::Enclave;
use crate::Error;

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Verifies marbles with `arca-attest`.
pub struct DcapVerifier {
    verifier: Arc<Verifier>,
    collateral: Option<Arc<dyn CollateralSource>>,
    allow_simulation: bool,
    fixed_time: Option<i64>,
}

impl DcapVerifier {
    /// A verifier with `verifier`'s trust anchors (add the simulation root only with `allow_simulation`)
    /// and collateral from `collateral` (none: TCB status unknown, which no package accepts).
    pub fn new(
        verifier: Arc<Verifier>,
        collateral: Option<Arc<dyn CollateralSource>>,
        allow_simulation: bool,
    ) -> DcapVerifier {
        DcapVerifier {
            verifier,
            collateral,
            allow_simulation,
            fixed_time: None,
        }
    }

    /// Verifies at a fixed time (tests and replays of old vectors).
    pub fn at_time(mut self, at: i64) -> DcapVerifier {
        self.fixed_time = Some(at);
        self
    }
}

impl MarbleVerifier for DcapVerifier {
    fn verify_quote(&self, quote: &[u8]) -> Result<Enclave, Error> {
        let collateral = match &self.collateral {
            Some(c) => c
                .collateral_for(quote)
                .map_err(|e| Error::Refused(format!("collateral for the quote: {e}")))?,
            None => None,
        };
        // Only the trust options of the policy matter to `check`; the package policy is the coordinator's.
        let policy = Policy {
            allow_simulation: self.allow_simulation,
            ..Policy::default()
        };
        let at = self.fixed_time.unwrap_or_else(unix_now);
        let vq = self.verifier.check(&Evidence::new(quote, collateral.as_deref()), &policy, at).map_err(|e| {
            let text = e.to_string();
            if text.contains("simulation") && !self.allow_simulation {
                Error::Refused(format!(
                    "simulated quote refused: this coordinator was not started with --allow-simulation ({text})"
                ))
            } else {
                Error::Refused(format!("quote verification failed: {text}"))
            }
        })?;
        let (Some(mrenclave), Some(mrsigner), Some(isv_prod_id), Some(isv_svn)) =
            (vq.mrenclave(), vq.mrsigner(), vq.isv_prod_id(), vq.isv_svn())
        else {
            return Err(Error::Refused(
                "not an SGX quote (TDX quotes cannot activate marbles)".into(),
            ));
        };
        let (tcb_status, advisories) = match &vq.tcb {
            Some(t) => (t.status.to_string(), t.advisory_ids.clone()),
            None => ("Unknown (no collateral)".to_owned(), Vec::new()),
        };
        Ok(Enclave {
            mrenclave,
            mrsigner,
            isv_prod_id,
            isv_svn,
            debug: vq.debug(),
            report_data: vq.report_data(),
            tcb_status,
            advisories,
            simulated: vq.is_simulation(),
        })
    }

    fn verify_certificate_evidence(&self, cert_der: &[u8]) -> Result<Option<Enclave>, Error> {
        match RaTlsCertificate::parse(cert_der) {
            Ok(c) => self.verify_quote(c.quote()).map(Some),
            Err(e) if e.to_string().contains("carries no attestation evidence") => Ok(None),
            Err(e) => Err(Error::Refused(format!("the client certificate's evidence: {e}"))),
        }
    }
}

/// The coordinator's quotes from an `arca_attest::Quoter`.
pub struct QuoterAttester(pub Arc<dyn Quoter>);

impl Attester for QuoterAttester {
    fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, Error> {
        self.0.quote(report_data).map_err(|e| Error::Crypto {
            step: "quoting the coordinator",
            detail: e.to_string(),
        })
    }
}

/// Evidence for the coordinator's API certificate: TCG DICE, binding its key to a fresh quote.
pub fn dice_evidence(spki: &[u8], attester: &dyn Attester) -> Result<Vec<rcgen::CustomExtension>, Error> {
    struct Via<'a>(&'a dyn Attester);
    impl Quoter for Via<'_> {
        fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, arca_attest::Error> {
            self.0
                .quote(report_data)
                .map_err(|e| arca_attest::Error::RaTls(e.to_string()))
        }
    }
    let ext = arca_attest::dice_evidence_extension(&Via(attester), spki).map_err(|e| Error::Crypto {
        step: "making the RA-TLS evidence",
        detail: e.to_string(),
    })?;
    Ok(vec![ext])
}
