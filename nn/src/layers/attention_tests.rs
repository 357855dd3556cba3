//! Tests of the attention layers: plain-loop references with masks, exact zeros at masked
//! positions, PyTorch names, gradchecks (inputs and parameters, masked).

use super::*;
use crate::layers::testing::check_module_gradients;
use graphgrad_autodiff::{gradcheck, GradcheckOptions};
use graphgrad_ops::testing::{assert_close, random_vec};
use rand::SeedableRng;

fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(random_vec::<f64>(shape.iter().product(), seed), shape).unwrap()
}

/// y[b, t, :] = W·x[b, t, :] + bias for a row-major `[rows, cols]` W.
fn affine(x: &[f64], w: &[f64], bias: Option<&[f64]>, cols: usize) -> Vec<f64> {
    let rows = w.len() / cols;
    x.chunks(cols)
        .flat_map(|xr| {
            (0..rows).map(move |r| {
                (0..cols).map(|c| w[r * cols + c] * xr[c]).sum::<f64>() + bias.map_or(0.0, |b| b[r])
            })
        })
        .collect()
}

/// Multi-head attention with loops; `masked(b, i, j)` says whether query i of batch b may not
/// see key j. Returns (output [B, T, E], weights [B, H, T, S]).
fn mha_reference(
    mha: &MultiheadAttention,
    q: &Tensor,
    kv: &Tensor,
    masked: impl Fn(usize, usize, usize) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let (e, h) = (mha.embed_dim(), mha.num_heads());
    let dh = e / h;
    let (b, t, s) = (q.shape()[0], q.shape()[1], kv.shape()[1]);
    let w = mha.in_proj_weight.to_f64_vec();
    let bias = mha.in_proj_bias.as_ref().map(|b| b.to_f64_vec()).unwrap_or(vec![0.0; 3 * e]);
    let qp = affine(&q.to_f64_vec(), &w[..e * e], Some(&bias[..e]), e);
    let kp = affine(&kv.to_f64_vec(), &w[e * e..2 * e * e], Some(&bias[e..2 * e]), e);
    let vp = affine(&kv.to_f64_vec(), &w[2 * e * e..], Some(&bias[2 * e..]), e);
    let mut ctx = vec![0.0; b * t * e];
    let mut weights = vec![0.0; b * h * t * s];
    for bb in 0..b {
        for hh in 0..h {
            for i in 0..t {
                let scores: Vec<f64> = (0..s)
                    .map(|j| {
                        if masked(bb, i, j) {
                            return f64::NEG_INFINITY;
                        }
                        let dot: f64 = (0..dh)
                            .map(|d| qp[(bb * t + i) * e + hh * dh + d] * kp[(bb * s + j) * e + hh * dh + d])
                            .sum();
                        dot / (dh as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                for j in 0..s {
                    let p = exps[j] / total;
                    weights[((bb * h + hh) * t + i) * s + j] = p;
                    for d in 0..dh {
                        ctx[(bb * t + i) * e + hh * dh + d] += p * vp[(bb * s + j) * e + hh * dh + d];
                    }
                }
            }
        }
    }
    let wo = mha.out_proj.weight.to_f64_vec();
    let bo = mha.out_proj.bias.as_ref().map(|b| b.to_f64_vec());
    (affine(&ctx, &wo, bo.as_deref(), e), weights)
}

fn mha(seed: u64) -> MultiheadAttention {
    let layer = MultiheadAttentionConfig::new(4, 2)
        .with_dtype(DType::F64)
        .init(&mut ChaCha8Rng::seed_from_u64(seed))
        .unwrap();
    // non-zero biases so the reference checks they are used
    for (_, p) in layer.named_parameters().into_iter().filter(|(n, _)| n.contains("bias")) {
        p.set(&rand_t(p.shape(), seed + 100)).unwrap();
    }
    layer
}

#[test]
fn multihead_matches_reference_with_padding_and_causal_masks() {
    let layer = mha(1);
    // cross-attention: 2 queries over 3 keys, key 2 of batch 1 padded
    let (q, kv) = (rand_t(&[2, 2, 4], 2), rand_t(&[2, 3, 4], 3));
    let pad = padding_mask(&[3, 2], 3, DType::F64).unwrap();
    let out = layer.forward_attention(&q, &kv, &kv, &AttentionMasks::none().with_key_padding(pad)).unwrap();
    let (expected, weights) = mha_reference(&layer, &q, &kv, |b, _, j| b == 1 && j == 2);
    assert_close(&out.output.to_f64_vec(), &expected, 1e-12, 1e-10);
    assert_close(&out.weights.to_f64_vec(), &weights, 1e-12, 1e-10);
    // causal self-attention over 3 positions, plus a general mask hiding key 0 from query 2
    let x = rand_t(&[2, 3, 4], 4);
    let mut hide = vec![0.0f64; 9];
    hide[2 * 3] = 1.0;
    let masks = AttentionMasks::causal().with_attn(Tensor::from_vec(hide, &[3, 3]).unwrap());
    let out = layer.forward_attention(&x, &x, &x, &masks).unwrap();
    let (expected, weights) = mha_reference(&layer, &x, &x, |_, i, j| j > i || (i == 2 && j == 0));
    assert_close(&out.output.to_f64_vec(), &expected, 1e-12, 1e-10);
    assert_close(&out.weights.to_f64_vec(), &weights, 1e-12, 1e-10);
    // unmasked self-attention through Module::forward
    let (expected, _) = mha_reference(&layer, &x, &x, |_, _, _| false);
    assert_close(&layer.forward(&x).unwrap().to_f64_vec(), &expected, 1e-12, 1e-10);
}

#[test]
fn masked_positions_get_exactly_zero_weight() {
    let layer = MultiheadAttentionConfig::new(4, 2).init(&mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    let x = Tensor::from_vec(random_vec::<f32>(2 * 4 * 4, 6), &[2, 4, 4]).unwrap();
    let pad = padding_mask(&[4, 2], 4, DType::F32).unwrap();
    let out = layer.forward_attention(&x, &x, &x, &AttentionMasks::causal().with_key_padding(pad)).unwrap();
    let w = out.weights.to_vec::<f32>().unwrap(); // [2, 2, 4, 4]
    for b in 0..2 {
        for h in 0..2 {
            for i in 0..4 {
                let row = &w[((b * 2 + h) * 4 + i) * 4..][..4];
                for (j, &p) in row.iter().enumerate() {
                    let hidden = j > i || (b == 1 && j >= 2);
                    if hidden {
                        assert_eq!(p, 0.0, "b {b} h {h} query {i} key {j}");
                    } else {
                        assert!(p > 0.0);
                    }
                }
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
    }
    // changing a padded key's value does not change any output
    let mut changed = x.to_vec::<f32>().unwrap();
    changed[(4 + 3) * 4] += 10.0; // batch 1, position 3 (padded)
    let x2 = Tensor::from_vec(changed, &[2, 4, 4]).unwrap();
    let pad = padding_mask(&[4, 2], 4, DType::F32).unwrap();
    let out2 =
        layer.forward_attention(&x, &x2, &x2, &AttentionMasks::none().with_key_padding(pad.clone())).unwrap();
    let out1 = layer.forward_attention(&x, &x, &x, &AttentionMasks::none().with_key_padding(pad)).unwrap();
    assert_eq!(out1.output.to_vec::<f32>().unwrap(), out2.output.to_vec::<f32>().unwrap());
}

#[test]
fn names_init_and_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let layer = MultiheadAttentionConfig::new(6, 3).init(&mut rng).unwrap();
    let named: Vec<(String, Vec<usize>)> =
        layer.named_parameters().into_iter().map(|(n, v)| (n, v.shape().to_vec())).collect();
    assert_eq!(
        named,
        vec![
            ("in_proj_weight".to_string(), vec![18, 6]),
            ("in_proj_bias".to_string(), vec![18]),
            ("out_proj.weight".to_string(), vec![6, 6]),
            ("out_proj.bias".to_string(), vec![6]),
        ]
    );
    // Xavier bound √(6 / (6 + 18)) = 0.5; biases zero
    assert!(layer.in_proj_weight.to_f64_vec().iter().all(|v| v.abs() <= 0.5));
    assert!(layer.in_proj_bias.as_ref().unwrap().to_f64_vec().iter().all(|&v| v == 0.0));
    assert!(MultiheadAttentionConfig::new(6, 4).init(&mut rng).is_err());
    assert!(MultiheadAttentionConfig::new(0, 1).init(&mut rng).is_err());
    let x = Tensor::zeros(&[1, 3, 6], DType::F32).unwrap();
    assert!(layer.forward(&Tensor::zeros(&[1, 3, 5], DType::F32).unwrap()).is_err());
    let short = Tensor::zeros(&[1, 2, 6], DType::F32).unwrap();
    assert!(
        layer.forward_attention(&x, &short, &short, &AttentionMasks::causal()).is_err(),
        "causal needs tgt = src"
    );
    let bad_pad = AttentionMasks::none().with_key_padding(Tensor::zeros(&[1, 4], DType::F32).unwrap());
    assert!(layer.forward_attention(&x, &x, &x, &bad_pad).is_err());
    let bad_attn = AttentionMasks::none().with_attn(Tensor::zeros(&[2, 3], DType::F32).unwrap());
    assert!(layer.forward_attention(&x, &x, &x, &bad_attn).is_err());
    assert!(padding_mask(&[4], 3, DType::F32).is_err());
    assert_eq!(causal_mask(3, DType::F64).to_f64_vec(), vec![0., 1., 1., 0., 0., 1., 0., 0., 0.]);
}

/// Multi-head attention with fixed keys/values and masks, as a one-input module.
struct Masked<'a> {
    layer: &'a MultiheadAttention,
    kv: Option<Tensor>,
    masks: AttentionMasks,
}

impl Module for Masked<'_> {
    fn forward(&self, q: &Tensor) -> Result<Tensor> {
        let kv = self.kv.clone().unwrap_or_else(|| q.clone());
        Ok(self.layer.forward_attention(q, &kv, &kv, &self.masks)?.output)
    }

    fn visit(&self, v: &mut dyn crate::Visitor) {
        self.layer.visit(v);
    }
}

#[test]
fn gradcheck_multihead() {
    let layer = mha(7);
    let x = rand_t(&[2, 3, 4], 8);
    check_module_gradients(&layer, &x);
    let pad = padding_mask(&[3, 2], 3, DType::F64).unwrap();
    let masks = AttentionMasks::causal().with_key_padding(pad.clone());
    check_module_gradients(&Masked { layer: &layer, kv: None, masks: masks.clone() }, &x);
    let kv = rand_t(&[2, 3, 4], 9);
    let cross = AttentionMasks::none().with_key_padding(pad);
    check_module_gradients(
        &Masked { layer: &layer, kv: Some(kv.clone()), masks: cross.clone() },
        &rand_t(&[2, 2, 4], 10),
    );
    // gradients with respect to distinct keys and values
    gradcheck(
        |t| Ok(layer.forward_attention(&t[0], &t[1], &t[2], &cross)?.output),
        &[rand_t(&[2, 2, 4], 11), kv.clone(), rand_t(&[2, 3, 4], 12)],
        GradcheckOptions::default(),
    )
    .unwrap();
}

#[test]
fn additive_attention_matches_reference_and_masks() {
    let att = AdditiveAttentionConfig::new(3, 2, 4)
        .with_dtype(DType::F64)
        .init(&mut ChaCha8Rng::seed_from_u64(3))
        .unwrap();
    let (q, keys, values) = (rand_t(&[2, 2, 3], 1), rand_t(&[2, 3, 2], 2), rand_t(&[2, 3, 5], 3));
    let pad = padding_mask(&[3, 1], 3, DType::F64).unwrap();
    let out = att.forward_attention(&q, &keys, &values, Some(&pad)).unwrap();
    assert_eq!((out.output.shape(), out.weights.shape()), (&[2, 2, 5][..], &[2, 2, 3][..]));
    // reference: e_ij = v·tanh(W_q q_i + W_k k_j + b), masked → −∞, softmax over j
    let (wq, wk) = (att.query_proj.weight.to_f64_vec(), att.key_proj.weight.to_f64_vec());
    let (bk, v) = (att.key_proj.bias.as_ref().unwrap().to_f64_vec(), att.score.weight.to_f64_vec());
    let qp = affine(&q.to_f64_vec(), &wq, None, 3);
    let kp = affine(&keys.to_f64_vec(), &wk, Some(&bk), 2);
    let vals = values.to_f64_vec();
    let (mut expected_w, mut expected_out) = (vec![], vec![]);
    for b in 0..2 {
        for i in 0..2 {
            let scores: Vec<f64> = (0..3)
                .map(|j| {
                    if b == 1 && j >= 1 {
                        return f64::NEG_INFINITY;
                    }
                    (0..4).map(|h| v[h] * (qp[(b * 2 + i) * 4 + h] + kp[(b * 3 + j) * 4 + h]).tanh()).sum()
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            let w: Vec<f64> = exps.iter().map(|x| x / total).collect();
            expected_out
                .extend((0..5).map(|d| (0..3).map(|j| w[j] * vals[(b * 3 + j) * 5 + d]).sum::<f64>()));
            expected_w.extend(w);
        }
    }
    assert_close(&out.weights.to_f64_vec(), &expected_w, 1e-12, 1e-10);
    assert_close(&out.output.to_f64_vec(), &expected_out, 1e-12, 1e-10);
    // batch 1 sees only key 0: its weights are exactly [1, 0, 0]
    assert_eq!(&out.weights.to_f64_vec()[6..9], &[1.0, 0.0, 0.0]);
    // a single query per sample drops the tgt axis
    let one =
        att.forward_attention(&q.narrow(1, 0, 1).unwrap().squeeze(1).unwrap(), &keys, &values, None).unwrap();
    assert_eq!((one.output.shape(), one.weights.shape()), (&[2, 5][..], &[2, 3][..]));
    let names: Vec<String> = att.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["query_proj.weight", "key_proj.weight", "key_proj.bias", "score.weight"]);
    assert!(att.forward_attention(&q, &keys, &rand_t(&[2, 4, 5], 4), None).is_err());
}

#[test]
fn gradcheck_additive_attention() {
    let att = AdditiveAttentionConfig::new(2, 2, 3)
        .with_dtype(DType::F64)
        .init(&mut ChaCha8Rng::seed_from_u64(4))
        .unwrap();
    check_module_gradients(&att, &rand_t(&[2, 3, 2], 5));
    let pad = padding_mask(&[3, 2], 3, DType::F64).unwrap();
    gradcheck(
        |t| Ok(att.forward_attention(&t[0], &t[1], &t[2], Some(&pad))?.output),
        &[rand_t(&[2, 2, 2], 6), rand_t(&[2, 3, 2], 7), rand_t(&[2, 3, 3], 8)],
        GradcheckOptions::default(),
    )
    .unwrap();
}
