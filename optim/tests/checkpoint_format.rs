//! Checkpoint files: a full round trip, each kind of damage reported by name (wrong magic,
//! truncated, bit-flipped, future version), tensor name/shape mismatches listed on restore,
//! and a fuzz of 10,000+ random mutations that must never panic nor load silently.

use graphgrad_autodiff::{DType, Tensor, Var};
use graphgrad_optim::{
    Adam, AdamConfig, Checkpoint, CosineAnnealingLr, Error, FormatError, LrScheduler, Optimizer,
    FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("graphgrad-optim-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn model(shapes: &[(&str, &[usize])], dtype: DType, seed: u64) -> Vec<(String, Var)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    shapes
        .iter()
        .map(|(name, shape)| {
            (name.to_string(), Var::new(*name, &Tensor::randn(shape, 0.0, 1.0, dtype, &mut rng).unwrap()))
        })
        .collect()
}

/// A checkpoint with every part filled: f32 and f64 tensors, Adam state, a schedule, RNG,
/// progress and metadata.
fn full_checkpoint() -> (Checkpoint, Vec<(String, Var)>) {
    let mut params = model(&[("layer.weight", &[3, 4]), ("layer.bias", &[4])], DType::F32, 1);
    params.extend(model(&[("scale", &[2])], DType::F64, 2));
    let mut opt = Adam::new(params.clone(), AdamConfig::new(0.01)).unwrap();
    let mut sched = LrScheduler::new(CosineAnnealingLr::new(10, 0.0), &mut opt).unwrap();
    for _ in 0..2 {
        opt.zero_grad();
        let loss = params
            .iter()
            .map(|(_, v)| v.to_dtype(DType::F64).square().sum_all())
            .fold(Tensor::scalar(0.0f64), |acc, t| acc.add(&t).unwrap());
        loss.backward().unwrap();
        opt.step().unwrap();
        sched.step(&mut opt).unwrap();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let _: u64 = rng.gen();
    let ckpt = Checkpoint::new(&params)
        .with_optimizer(&opt)
        .with_schedule(&sched)
        .with_rng(&rng)
        .with_progress(1, 2)
        .with_metadata("run", "unit")
        .with_metadata("note", "ünïcödé");
    (ckpt, params)
}

#[test]
fn round_trip_through_a_file_keeps_every_part() {
    let dir = scratch_dir("roundtrip");
    let path = dir.join("a.ckpt");
    let (ckpt, params) = full_checkpoint();
    ckpt.save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back, ckpt);
    assert_eq!(back.metadata["note"], "ünïcödé");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], &MAGIC);
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), FORMAT_VERSION);
    // Restoring into the live model after it drifted brings back the saved values.
    let saved = params[0].1.to_vec::<f32>().unwrap();
    params[0].1.set(&Tensor::zeros(&[3, 4], DType::F32).unwrap()).unwrap();
    back.restore_model(&params).unwrap();
    assert_eq!(params[0].1.to_vec::<f32>().unwrap(), saved);
    let mut rng = back.rng().unwrap();
    let mut original = ckpt.rng.clone().unwrap();
    assert_eq!(rng.gen::<u64>(), original.gen::<u64>());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn load_err(bytes: &[u8], dir: &std::path::Path, name: &str) -> (FormatError, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    match Checkpoint::load(&path) {
        Err(e @ Error::Checkpoint { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "the message names the file: {msg}");
            let Error::Checkpoint { problem, .. } = e else { unreachable!() };
            (problem, msg)
        }
        other => panic!("{name}: expected a checkpoint error, got {other:?}"),
    }
}

/// Re-seals `payload` with a valid header for `version` (how a newer build would write).
fn seal(payload: &[u8], version: u32) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn damaged_files_are_rejected_with_an_error_saying_which() {
    let dir = scratch_dir("damaged");
    let bytes = full_checkpoint().0.to_bytes().unwrap();

    let mut wrong_magic = bytes.clone();
    wrong_magic[..8].copy_from_slice(b"PK\x03\x04zip!");
    let (problem, msg) = load_err(&wrong_magic, &dir, "magic.ckpt");
    assert!(matches!(problem, FormatError::WrongMagic { .. }) && msg.contains("wrong magic"), "{msg}");

    let (problem, msg) = load_err(&bytes[..bytes.len() - 100], &dir, "truncated.ckpt");
    assert!(matches!(problem, FormatError::Truncated { .. }) && msg.contains("truncated"), "{msg}");
    let (problem, _) = load_err(&bytes[..20], &dir, "truncated-header.ckpt");
    assert_eq!(problem, FormatError::Truncated { expected: HEADER_LEN as u64, found: 20 });
    let (problem, _) = load_err(&[], &dir, "empty.ckpt");
    assert_eq!(problem, FormatError::Truncated { expected: HEADER_LEN as u64, found: 0 });

    let mut flipped = bytes.clone();
    let at = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
    flipped[at] ^= 0x04;
    let (problem, msg) = load_err(&flipped, &dir, "flipped.ckpt");
    assert!(
        matches!(problem, FormatError::ChecksumMismatch { .. }) && msg.contains("checksum mismatch"),
        "{msg}"
    );

    let mut header = bytes.clone();
    header[17] ^= 0x80; // the payload length field
    let (problem, msg) = load_err(&header, &dir, "header.ckpt");
    assert!(
        matches!(problem, FormatError::CorruptHeader { .. }) && msg.contains("corrupted header"),
        "{msg}"
    );

    let future = seal(&bytes[HEADER_LEN..], FORMAT_VERSION + 1);
    let (problem, msg) = load_err(&future, &dir, "future.ckpt");
    assert_eq!(problem, FormatError::FutureVersion { found: FORMAT_VERSION + 1, supported: FORMAT_VERSION });
    assert!(msg.contains("future format version 2"), "{msg}");

    let mut longer = bytes.clone();
    longer.extend_from_slice(b"junk");
    let (problem, _) = load_err(&longer, &dir, "longer.ckpt");
    assert!(matches!(problem, FormatError::TrailingBytes { .. }));

    let err = Checkpoint::load(dir.join("missing.ckpt")).unwrap_err().to_string();
    assert!(err.contains("missing.ckpt") && err.contains("cannot read"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A valid checksum over an inconsistent payload (a shape that does not match its data) is
/// still rejected, as malformed.
#[test]
fn inconsistent_payload_with_a_valid_checksum_is_malformed() {
    let mut ckpt = full_checkpoint().0;
    ckpt.model.get_mut("layer.bias").unwrap().shape = vec![5];
    let payload = bincode::DefaultOptions::new();
    let payload = bincode::Options::serialize(payload, &ckpt).unwrap();
    let err = Checkpoint::from_bytes(&seal(&payload, FORMAT_VERSION)).unwrap_err().to_string();
    assert!(err.contains("malformed payload: tensor `layer.bias` has shape [5] but 4 elements"), "{err}");
}

#[test]
fn restoring_into_another_model_lists_missing_unexpected_and_mismatched_tensors() {
    let saved =
        model(&[("enc.weight", &[4, 8]), ("enc.bias", &[8]), ("head.weight", &[8, 2])], DType::F32, 3);
    let ckpt = Checkpoint::new(&saved);
    let target =
        model(&[("enc.weight", &[8, 4]), ("enc.bias", &[8]), ("dec.weight", &[2, 8])], DType::F32, 4);
    let before: Vec<Vec<f32>> = target.iter().map(|(_, v)| v.to_vec().unwrap()).collect();
    let err = ckpt.restore_model(&target).unwrap_err().to_string();
    assert!(err.contains("missing: dec.weight"), "{err}");
    assert!(err.contains("unexpected: head.weight"), "{err}");
    assert!(err.contains("enc.weight: expected [8, 4] f32, found [4, 8] f32"), "{err}");
    let after: Vec<Vec<f32>> = target.iter().map(|(_, v)| v.to_vec().unwrap()).collect();
    assert_eq!(before, after, "nothing is written on error");
    // A dtype mismatch is listed too.
    let f64_target =
        model(&[("enc.weight", &[4, 8]), ("enc.bias", &[8]), ("head.weight", &[8, 2])], DType::F64, 5);
    let err = ckpt.restore_model(&f64_target).unwrap_err().to_string();
    assert!(err.contains("enc.bias: expected [8] f64, found [8] f32"), "{err}");
}

#[derive(Default, Debug)]
struct Tally {
    by_problem: BTreeMap<&'static str, usize>,
    identical: usize,
}

fn problem_name(p: &FormatError) -> &'static str {
    match p {
        FormatError::WrongMagic { .. } => "wrong magic",
        FormatError::Truncated { .. } => "truncated",
        FormatError::CorruptHeader { .. } => "corrupt header",
        FormatError::FutureVersion { .. } => "future version",
        FormatError::UnknownVersion { .. } => "unknown version",
        FormatError::TrailingBytes { .. } => "trailing bytes",
        FormatError::ChecksumMismatch { .. } => "checksum mismatch",
        FormatError::Malformed { .. } => "malformed",
    }
}

fn mutate(bytes: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut m = bytes.to_vec();
    let len = m.len();
    match rng.gen_range(0..6) {
        // 1–4 random bit flips anywhere
        0 => {
            for _ in 0..rng.gen_range(1..=4) {
                let at = rng.gen_range(0..len);
                m[at] ^= 1 << rng.gen_range(0..8);
            }
        }
        // truncation to any shorter length
        1 => m.truncate(rng.gen_range(0..len)),
        // overwrite 1–16 bytes with random bytes
        2 => {
            let at = rng.gen_range(0..len);
            for b in m.iter_mut().skip(at).take(rng.gen_range(1..=16)) {
                *b = rng.gen();
            }
        }
        // insertion of 1–16 random bytes
        3 => {
            let at = rng.gen_range(0..=len);
            let extra: Vec<u8> = (0..rng.gen_range(1..=16)).map(|_| rng.gen()).collect();
            m.splice(at..at, extra);
        }
        // deletion of 1–16 bytes
        4 => {
            let at = rng.gen_range(0..len);
            let end = (at + rng.gen_range(1..=16)).min(len);
            m.drain(at..end);
        }
        // a bit flip inside the header
        _ => {
            let at = rng.gen_range(0..HEADER_LEN);
            m[at] ^= 1 << rng.gen_range(0..8);
        }
    }
    m
}

/// 12,000 random mutations of a valid file: every one either is byte-identical to the
/// original (an overwrite with the same bytes) and loads equal, or is rejected with a
/// checkpoint error. None panics.
#[test]
fn fuzzed_files_never_panic_and_never_load_silently() {
    let (ckpt, _) = full_checkpoint();
    let bytes = ckpt.to_bytes().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut tally = Tally::default();
    for i in 0..12_000 {
        let m = mutate(&bytes, &mut rng);
        let result = catch_unwind(AssertUnwindSafe(|| Checkpoint::from_bytes(&m)))
            .unwrap_or_else(|_| panic!("mutation {i} made the loader panic"));
        match result {
            Ok(loaded) => {
                assert_eq!(m, bytes, "mutation {i} changed the file but it loaded without error");
                assert_eq!(loaded, ckpt);
                tally.identical += 1;
            }
            Err(Error::Checkpoint { problem, path: None }) => {
                *tally.by_problem.entry(problem_name(&problem)).or_default() += 1;
            }
            Err(other) => panic!("mutation {i}: unexpected error kind {other}"),
        }
    }
    println!("fuzz tally: {tally:?}");
    for kind in ["wrong magic", "truncated", "corrupt header", "trailing bytes", "checksum mismatch"] {
        assert!(
            tally.by_problem.get(kind).copied().unwrap_or(0) > 0,
            "no mutation produced `{kind}`: {tally:?}"
        );
    }
}

/// Mutations of the payload re-sealed with valid checksums (what a buggy writer could
/// produce): decoding must still never panic, and whatever loads is self-consistent.
#[test]
fn resealed_garbage_payloads_never_panic() {
    let (ckpt, params) = full_checkpoint();
    let bytes = ckpt.to_bytes().unwrap();
    let payload = &bytes[HEADER_LEN..];
    let mut rng = ChaCha8Rng::seed_from_u64(0xbad);
    let (mut loaded, mut rejected) = (0, 0);
    for i in 0..4_000 {
        let m = seal(&mutate(payload, &mut rng), FORMAT_VERSION);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            Checkpoint::from_bytes(&m).inspect(|c| {
                // Using what loaded must not panic either.
                let _ = c.restore_model(&params);
                let mut opt = Adam::new(params.clone(), AdamConfig::new(0.01)).unwrap();
                let _ = c.restore_optimizer(&mut opt);
            })
        }))
        .unwrap_or_else(|_| panic!("re-sealed mutation {i} made the loader panic"));
        match outcome {
            Ok(c) => {
                loaded += 1;
                assert!(c.model.iter().all(|(n, t)| t.validate(n).is_ok()));
            }
            Err(_) => rejected += 1,
        }
    }
    println!("re-sealed payloads: {loaded} decoded consistently, {rejected} rejected");
    assert!(rejected > 0);
}
