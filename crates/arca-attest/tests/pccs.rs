//! The PCCS / PCS v4 client against a real HTTP server on 127.0.0.1 serving recorded responses, and its
//! on-disk cache honouring nextUpdate.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arca_attest::{
    AnchorKind, Evidence, PccsClient, PckCa, PlatformId, Policy, TcbStatus, TeeType, TrustAnchor, Verifier,
};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(arca_testkit::vector(name)).unwrap()
}

/// Percent-encodes like PCS does for issuer-chain headers.
fn url_encode(s: &[u8]) -> String {
    s.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Serves Intel's recorded sample responses for FMSPC 00707F000000; counts requests.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        let tcb_chain = url_encode(&read("intel-qvl-sampledata/tcbSignChain.pem"));
        let crl_chain = url_encode(&read("intel-qvl-sampledata/pckSignChain.pem"));
        // Bounded: serves at most 64 requests, then stops.
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, header, body) = match path.as_str() {
                "/sgx/certification/v4/tcb?fmspc=00707F000000" => (
                    "200 OK",
                    format!("TCB-Info-Issuer-Chain: {tcb_chain}\r\n"),
                    read("intel-qvl-sampledata/tcbInfo.json"),
                ),
                "/sgx/certification/v4/qe/identity" => (
                    "200 OK",
                    format!("SGX-Enclave-Identity-Issuer-Chain: {tcb_chain}\r\n"),
                    read("intel-qvl-sampledata/qeIdentity.json"),
                ),
                "/sgx/certification/v4/pckcrl?ca=processor&encoding=der" => (
                    "200 OK",
                    format!("SGX-PCK-CRL-Issuer-Chain: {crl_chain}\r\n"),
                    read("intel-qvl-sampledata/intermediateCaCrl.der"),
                ),
                "/sgx/certification/v4/rootcacrl" => (
                    "200 OK",
                    String::new(),
                    read("intel-qvl-sampledata/rootCaCrl.der"),
                ),
                _ => ("404 Not Found", String::new(), b"no such collateral".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|_| stream.write_all(&body));
        }
    });
    (base, hits)
}

fn platform() -> PlatformId {
    PlatformId {
        fmspc: [0x00, 0x70, 0x7f, 0, 0, 0],
        tee: TeeType::SGX,
        ca: PckCa::Processor,
    }
}

#[test]
fn fetched_collateral_verifies_the_intel_sample_quote() {
    let (base, _) = serve();
    let collateral = PccsClient::new(&base)
        .collateral(&platform(), 1_600_000_000)
        .unwrap();
    let quote = read("intel-qvl-sampledata/quote.dat");
    let mut pck = read("intel-qvl-sampledata/pckCert.pem");
    pck.extend(read("intel-qvl-sampledata/pckSignChain.pem"));
    let root = TrustAnchor::from_pem(
        &read("intel-qvl-sampledata/trustedRootCaCert.pem"),
        AnchorKind::Custom,
    )
    .unwrap();
    let evidence = Evidence {
        quote: &quote,
        collateral: Some(&collateral),
        pck_chain: Some(&pck),
    };
    let v = Verifier::with_anchors(vec![root])
        .check(&evidence, &Policy::default(), 1_600_000_000)
        .unwrap();
    assert_eq!(v.tcb.unwrap().status, TcbStatus::UpToDate);
}

#[test]
fn cached_collateral_is_reused_until_next_update_then_fetched_again() {
    let (base, hits) = serve();
    let dir = tempfile::tempdir().unwrap();
    let client = PccsClient::new(&base).with_cache_dir(dir.path().to_path_buf());
    let first = client.collateral(&platform(), 1_600_000_000).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    let again = client.collateral(&platform(), 1_600_000_100).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 4, "served from the cache");
    assert_eq!(first.fingerprint(), again.fingerprint());
    // A fresh client over the same directory also uses the cache (it is on disk).
    let other = PccsClient::new("http://127.0.0.1:9").with_cache_dir(dir.path().to_path_buf());
    other.collateral(&platform(), 1_600_000_200).unwrap();
    // Past the earliest nextUpdate (the sample CRLs'), the cache is stale and the service is asked again.
    client.collateral(&platform(), 4_000_000_000).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 8);
}

#[test]
fn an_unknown_fmspc_is_an_http_error_naming_the_url() {
    let (base, _) = serve();
    let p = PlatformId {
        fmspc: [1; 6],
        ..platform()
    };
    let err = PccsClient::new(&base).collateral(&p, 1_600_000_000).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("fmspc=010101010101") && msg.contains("404"), "{msg}");
}
