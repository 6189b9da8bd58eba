//! Entry points for the cargo-fuzz targets in `fuzz/` (not a stable API).

/// Parses untrusted bytes as a quote and walks everything a verifier would read.
pub fn quote(data: &[u8]) {
    if let Ok(q) = crate::Quote::parse(data) {
        let _ = q.authenticated_ranges();
        let _ = q.body.report_data();
        if let Ok(ders) = q.signature.certification.pck_chain_der() {
            for d in ders {
                let _ = crate::PckExtensions::from_certificate(&d);
            }
        }
    }
    let _ = crate::RaTlsCertificate::parse(data);
}

/// Parses untrusted bytes as collateral (JSON layout, raw TCB info / QE identity text, CRLs).
pub fn collateral(data: &[u8]) {
    if let Ok(c) = crate::Collateral::from_json(data) {
        let _ = crate::tcb::TcbInfo::parse(c.tcb_info());
        let _ = crate::tcb::QeIdentity::parse(c.qe_identity());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::tcb::TcbInfo::parse(text);
        let _ = crate::tcb::QeIdentity::parse(text);
        let _ = crate::pki::split_certificates(data, "fuzz");
    }
    let r = crate::PcsResponses {
        tcb_info: data.to_vec(),
        qe_identity: data.to_vec(),
        pck_crl: data.to_vec(),
        root_ca_crl: data.to_vec(),
        ..Default::default()
    };
    let _ = crate::Collateral::from_pcs(&r);
    if let Ok(der) = crate::pki::crl_der(data, "PCK CRL") {
        use x509_parser::prelude::FromDer;
        let _ = x509_parser::revocation_list::CertificateRevocationList::from_der(&der);
    }
}
