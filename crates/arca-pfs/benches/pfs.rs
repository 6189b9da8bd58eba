//! Library-level throughput of the protected-files format against raw AES-128-GCM on this CPU (no FUSE, no
//! disk): encrypting and decrypting a 16 MiB file held in memory. Run: `cargo bench -p arca-pfs`.
//! The FUSE-level comparison with gocryptfs is `scripts/bench-pfs.sh`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, KeyInit, Nonce};
use arca_pfs::{decrypt_bytes, encrypt_bytes, BoundPath, Key, NodeKeys};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: usize = 16 << 20;

fn bench(c: &mut Criterion) {
    let plain: Vec<u8> = (0..SIZE).map(|i| (i * 7 + 3) as u8).collect();
    let key = Key::from_bytes([5; 16]);
    let path = BoundPath::new("/bench/file").unwrap();
    let mut g = c.benchmark_group("pfs_16MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);

    g.bench_function("raw_aes128_gcm_encrypt_4k_one_key", |b| {
        let cipher = Aes128Gcm::new(&[1u8; 16].into());
        let mut buf = plain.clone();
        b.iter(|| {
            for chunk in buf.chunks_mut(4096) {
                black_box(
                    cipher
                        .encrypt_inout_detached(&Nonce::default(), &[], chunk.into())
                        .unwrap(),
                );
            }
        })
    });
    g.bench_function("raw_aes128_gcm_encrypt_4k_key_per_node", |b| {
        let mut buf = plain.clone();
        b.iter(|| {
            for (i, chunk) in buf.chunks_mut(4096).enumerate() {
                let cipher = Aes128Gcm::new(&[i as u8; 16].into());
                black_box(
                    cipher
                        .encrypt_inout_detached(&Nonce::default(), &[], chunk.into())
                        .unwrap(),
                );
            }
        })
    });
    g.bench_function("pfs_encrypt_random_keys", |b| {
        b.iter(|| black_box(encrypt_bytes(&plain, &key, &path, NodeKeys::Random).unwrap()))
    });
    g.bench_function("pfs_encrypt_deterministic", |b| {
        b.iter(|| black_box(encrypt_bytes(&plain, &key, &path, NodeKeys::Deterministic).unwrap()))
    });
    let pf = encrypt_bytes(&plain, &key, &path, NodeKeys::Random).unwrap();
    g.bench_function("raw_aes128_gcm_decrypt_4k_key_per_node", |b| {
        let mut bufs: Vec<(Vec<u8>, [u8; 16], aes_gcm::Tag)> = plain
            .chunks(4096)
            .enumerate()
            .map(|(i, c)| {
                let mut v = c.to_vec();
                let k = [i as u8; 16];
                let tag = Aes128Gcm::new(&k.into())
                    .encrypt_inout_detached(&Nonce::default(), &[], v.as_mut_slice().into())
                    .unwrap();
                (v, k, tag)
            })
            .collect();
        b.iter(|| {
            for (v, k, tag) in bufs.iter_mut() {
                let cipher = Aes128Gcm::new(&(*k).into());
                let mut copy = v.clone();
                cipher
                    .decrypt_inout_detached(&Nonce::default(), &[], copy.as_mut_slice().into(), tag)
                    .unwrap();
                black_box(&copy);
            }
        })
    });
    g.bench_function("pfs_decrypt", |b| {
        b.iter(|| black_box(decrypt_bytes(&pf, &key, &path).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
