//! An in-tree mutation fuzzer for the byte parsers of this crate: checkpoints and safetensors.
//! Valid files are mutated (bit flips, overwritten, inserted and removed bytes, truncation,
//! extreme length fields) for a fixed count from a fixed seed, and every result is parsed and,
//! when it parses, restored into a model and an optimiser: each must return `Ok` or `Err`,
//! never panic or abort. Checkpoint payloads are re-sealed with a valid header after
//! mutation, so the decoder behind the checksums is what gets exercised.

use graphgrad_autodiff::{DType, Tensor, Var};
use graphgrad_ops::testing::assert_mutants_never_panic;
use graphgrad_optim::{
    from_safetensors_bytes, seal_payload, to_safetensors_bytes, Adam, AdamConfig, Checkpoint, Optimizer,
    FORMAT_VERSION, HEADER_LEN,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Mutated inputs per parser.
const CASES: usize = 3000;

fn model() -> Vec<(String, Var)> {
    let w = Tensor::from_vec((0..6).map(|i| i as f32 * 0.5).collect::<Vec<_>>(), &[2, 3]).unwrap();
    let b = Tensor::from_vec(vec![1.0f32, -1.0], &[2]).unwrap();
    vec![("weight".into(), Var::new("weight", &w)), ("bias".into(), Var::new("bias", &b))]
}

/// One random mutation of `bytes`.
fn mutate(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    let len = bytes.len().max(1);
    match rng.gen_range(0..7) {
        0 => {
            let i = rng.gen_range(0..len).min(bytes.len().saturating_sub(1));
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << rng.gen_range(0..8);
            }
        }
        1 => {
            let i = rng.gen_range(0..len).min(bytes.len().saturating_sub(1));
            if let Some(b) = bytes.get_mut(i) {
                *b = [0, 0xff, 0x7f, 0x80][rng.gen_range(0..4)];
            }
        }
        2 => {
            // an extreme 8-byte little-endian integer (lengths, counts, dimensions)
            let i = rng.gen_range(0..len);
            let v: u64 = [u64::MAX, u64::MAX / 2, 1 << 40, 1 << 62, 0][rng.gen_range(0..5)];
            for (k, byte) in v.to_le_bytes().into_iter().enumerate() {
                if let Some(b) = bytes.get_mut(i + k) {
                    *b = byte;
                }
            }
        }
        3 => bytes.truncate(rng.gen_range(0..len)),
        4 => {
            let i = rng.gen_range(0..=bytes.len());
            bytes.insert(i, rng.gen());
        }
        5 => {
            if !bytes.is_empty() {
                bytes.remove(rng.gen_range(0..bytes.len()));
            }
        }
        _ => {
            // a chunk copied over another place
            let (a, b) = (rng.gen_range(0..len), rng.gen_range(0..len));
            let n = rng.gen_range(1..=16).min(bytes.len().saturating_sub(a.max(b)));
            let chunk = bytes[a..a + n].to_vec();
            bytes[b..b + n].copy_from_slice(&chunk);
        }
    }
}

/// Runs `parse` on `CASES` mutants of `valid`; none may panic.
fn fuzz(name: &str, valid: &[u8], seed: u64, parse: impl Fn(&[u8])) {
    assert_mutants_never_panic(name, valid, seed, CASES, mutate, parse);
}

#[test]
fn mutated_checkpoints_are_errors_not_panics() {
    let params = model();
    let mut adam = Adam::new(params.clone(), AdamConfig::new(1e-2)).unwrap();
    for (_, v) in &params {
        v.set_grad(Some(&Tensor::ones(v.shape(), DType::F32).unwrap())).unwrap();
    }
    adam.step().unwrap();
    let bytes = Checkpoint::new(&params).with_optimizer(&adam).with_progress(3, 7).to_bytes().unwrap();
    let payload = bytes[HEADER_LEN..].to_vec();
    let restore = |bytes: &[u8]| {
        if let Ok(checkpoint) = Checkpoint::from_bytes(bytes) {
            let params = model();
            let _ = checkpoint.restore_model(&params);
            let mut adam = Adam::new(params, AdamConfig::new(1e-2)).unwrap();
            if checkpoint.restore_optimizer(&mut adam).is_ok() {
                let _ = adam.step();
            }
        }
    };
    fuzz("checkpoint (whole file)", &bytes, 1, restore);
    fuzz("checkpoint (payload, re-sealed)", &payload, 2, |p| restore(&seal_payload(p, FORMAT_VERSION)));
}

#[test]
fn mutated_safetensors_are_errors_not_panics() {
    let params = model();
    let state = params.iter().map(|(n, v)| (n.clone(), v.tensor().clone())).collect();
    let bytes = to_safetensors_bytes(&state).unwrap();
    fuzz("safetensors", &bytes, 3, |b| {
        if let Ok(state) = from_safetensors_bytes(b) {
            let _ = graphgrad_autodiff::load_state(&model(), &state);
        }
    });
}
