//! Library-level throughput of the protected-files format against raw AES-128-GCM on this CPU (no FUSE, no
//! disk): encrypting and decrypting a 16 MiB file held in memory. Run: `cargo bench -p arca-pfs`.
//! The FUSE-level comparison with gocryptfs is `scripts/bench-pfs.sh`.
//!
//! Peers: `ring` (the backend the format uses) and RustCrypto `aes-gcm` (the portable one), each per 4 KiB
//! chunk with one key, and with a fresh key per chunk as the format does (a key schedule per node).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, KeyInit, Nonce};
use arca_pfs::{decrypt_bytes, encrypt_bytes, BoundPath, Key, NodeKeys};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ring::aead::{Aad, LessSafeKey, UnboundKey, AES_128_GCM};

fn ring_key(k: [u8; 16]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &k).unwrap())
}

fn zero_nonce() -> ring::aead::Nonce {
    ring::aead::Nonce::assume_unique_for_key([0; 12])
}

const SIZE: usize = 16 << 20;

fn bench(c: &mut Criterion) {
    let plain: Vec<u8> = (0..SIZE).map(|i| (i * 7 + 3) as u8).collect();
    let key = Key::from_bytes([5; 16]);
    let path = BoundPath::new("/bench/file").unwrap();
    let mut g = c.benchmark_group("pfs_16MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);

    g.bench_function("raw_ring_gcm_encrypt_4k_one_key", |b| {
        let cipher = ring_key([1; 16]);
        let mut buf = plain.clone();
        b.iter(|| {
            for chunk in buf.chunks_mut(4096) {
                let tag = cipher
                    .seal_in_place_separate_tag(zero_nonce(), Aad::empty(), chunk)
                    .unwrap();
                black_box(tag.as_ref());
            }
        })
    });
    g.bench_function("raw_ring_gcm_encrypt_4k_key_per_node", |b| {
        let mut buf = plain.clone();
        b.iter(|| {
            for (i, chunk) in buf.chunks_mut(4096).enumerate() {
                let tag = ring_key([i as u8; 16])
                    .seal_in_place_separate_tag(zero_nonce(), Aad::empty(), chunk)
                    .unwrap();
                black_box(tag.as_ref());
            }
        })
    });
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
    g.bench_function("raw_ring_gcm_decrypt_4k_key_per_node", |b| {
        let bufs: Vec<(Vec<u8>, [u8; 16], ring::aead::Tag)> = plain
            .chunks(4096)
            .enumerate()
            .map(|(i, c)| {
                let mut v = c.to_vec();
                let k = [i as u8; 16];
                let tag = ring_key(k)
                    .seal_in_place_separate_tag(zero_nonce(), Aad::empty(), &mut v)
                    .unwrap();
                (v, k, tag)
            })
            .collect();
        b.iter(|| {
            for (v, k, tag) in bufs.iter() {
                let mut copy = v.clone();
                ring_key(*k)
                    .open_in_place_separate_tag(zero_nonce(), Aad::empty(), *tag, &mut copy, 0..)
                    .unwrap();
                black_box(&copy);
            }
        })
    });
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
