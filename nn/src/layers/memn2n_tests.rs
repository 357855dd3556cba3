//! Tests of the memory network: a plain-loop reference of every hop for both tyings (with PE,
//! TE and padding), hand-computed PE, tying structure, masks, gradchecks.

use super::*;
use crate::layers::testing::check_parameter_gradients;
use graphgrad_ops::testing::assert_close;
use rand::SeedableRng;

/// Row `i` of a row-major `[rows, d]` table.
fn row(t: &[f64], i: usize, d: usize) -> &[f64] {
    &t[i * d..(i + 1) * d]
}

/// Σⱼ lⱼ ⊙ table[xⱼ] with padding words skipped.
fn encode_ref(net: &MemN2N, table: &[f64], words: &[usize]) -> Vec<f64> {
    let cfg = net.config();
    let d = cfg.embed_dim;
    let pe = position_encoding(words.len(), d, DType::F64).to_f64_vec();
    let mut out = vec![0.0; d];
    for (j, &w) in words.iter().enumerate() {
        if Some(w) == cfg.padding_idx {
            continue;
        }
        for k in 0..d {
            let l = if cfg.position_encoding { pe[j * d + k] } else { 1.0 };
            out[k] += l * table[w * d + k];
        }
    }
    out
}

/// The whole network for one sample with loops; returns (logits, attention per hop).
fn reference(net: &MemN2N, story: &[Vec<usize>], query: &[usize]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let cfg = net.config();
    let d = cfg.embed_dim;
    let hops = &net.hops;
    let mut u = encode_ref(net, &hops.query_embedding.to_f64_vec(), query);
    let empty: Vec<bool> = story.iter().map(|s| s.iter().all(|&w| Some(w) == cfg.padding_idx)).collect();
    let all_empty = empty.iter().all(|&e| e);
    let mut attention = Vec::new();
    for k in 0..cfg.hops {
        let (a, c) = (hops.memory_in[k].to_f64_vec(), hops.memory_out[k].to_f64_vec());
        let mems: Vec<(Vec<f64>, Vec<f64>)> = story
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (mut m, mut cc) = (encode_ref(net, &a, s), encode_ref(net, &c, s));
                if cfg.temporal_encoding {
                    let (ta, tc) = (hops.temporal_in[k].to_f64_vec(), hops.temporal_out[k].to_f64_vec());
                    m.iter_mut().zip(row(&ta, i, d)).for_each(|(x, t)| *x += t);
                    cc.iter_mut().zip(row(&tc, i, d)).for_each(|(x, t)| *x += t);
                }
                (m, cc)
            })
            .collect();
        let scores: Vec<f64> = mems.iter().map(|(m, _)| m.iter().zip(&u).map(|(x, y)| x * y).sum()).collect();
        let exps: Vec<f64> =
            scores.iter().zip(&empty).map(|(s, &e)| if e && !all_empty { 0.0 } else { s.exp() }).collect();
        let total: f64 = exps.iter().sum();
        let p: Vec<f64> = exps.iter().map(|e| e / total).collect();
        let o: Vec<f64> = (0..d).map(|j| p.iter().zip(&mems).map(|(pi, (_, c))| pi * c[j]).sum()).collect();
        u = match &hops.h {
            Some(h) => {
                let hw = h.weight.to_f64_vec();
                (0..d).map(|r| (0..d).map(|c| hw[r * d + c] * u[c]).sum::<f64>() + o[r]).collect()
            }
            None => u.iter().zip(&o).map(|(x, y)| x + y).collect(),
        };
        attention.push(p);
    }
    let w = hops.answer.to_f64_vec();
    let logits =
        (0..cfg.vocab_size).map(|v| row(&w, v, d).iter().zip(&u).map(|(x, y)| x * y).sum()).collect();
    (logits, attention)
}

/// Two samples, 3 slots of 3 words; sample 1's slot 2 is all padding.
const STORY: [usize; 18] = [1, 2, 3, 4, 5, 0, 6, 0, 0, 2, 7, 1, 3, 3, 0, 0, 0, 0];
const QUERY: [usize; 4] = [5, 6, 1, 0];

fn check_reference(config: MemN2NConfig, seed: u64) {
    let net = config.with_dtype(DType::F64).init(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
    let out = net.forward_story(&STORY, [2, 3, 3], &QUERY).unwrap();
    for b in 0..2 {
        let story: Vec<Vec<usize>> = STORY[b * 9..(b + 1) * 9].chunks(3).map(<[usize]>::to_vec).collect();
        let (logits, attention) = reference(&net, &story, &QUERY[b * 2..(b + 1) * 2]);
        let got = out.logits.to_f64_vec();
        assert_close(&got[b * 8..(b + 1) * 8], &logits, 1e-12, 1e-10);
        for (k, p) in attention.iter().enumerate() {
            assert_close(&out.attention[k].to_f64_vec()[b * 3..(b + 1) * 3], p, 1e-12, 1e-10);
        }
    }
}

#[test]
fn matches_the_reference_for_every_option() {
    for tying in [WeightTying::Adjacent, WeightTying::LayerWise] {
        for (pe, te) in [(true, true), (false, false), (true, false)] {
            let config = MemN2NConfig::new(8, 3, 4)
                .with_hops(2)
                .with_tying(tying)
                .with_position_encoding(pe)
                .with_temporal_encoding(te);
            check_reference(config.clone(), 1);
            check_reference(config.with_padding_idx(None), 2);
        }
    }
}

#[test]
fn position_encoding_by_hand() {
    // J = 2, d = 2: j = 1 → (1 − 1/2) − (k/2)(1 − 1) = 0.5 for k = 1, 2;
    //               j = 2 → (1 − 1) − (k/2)(1 − 2) = k/2 → 0.5, 1.0
    assert_eq!(position_encoding(2, 2, DType::F64).to_f64_vec(), vec![0.5, 0.5, 0.5, 1.0]);
}

#[test]
fn tying_structure_and_names() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let adj = MemN2NConfig::new(8, 3, 4).with_hops(3).init(&mut rng).unwrap();
    let names: Vec<String> = adj.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "embeddings.0",
            "embeddings.1",
            "embeddings.2",
            "embeddings.3",
            "temporal.0",
            "temporal.1",
            "temporal.2",
            "temporal.3"
        ]
    );
    let h = &adj.hops;
    // A¹ = B, Aᵏ⁺¹ = Cᵏ, W = Cᴷ: the same tensors, not copies
    assert_eq!(h.query_embedding.id(), h.memory_in[0].id());
    for k in 0..2 {
        assert_eq!(h.memory_in[k + 1].id(), h.memory_out[k].id());
        assert_eq!(h.temporal_in[k + 1].id(), h.temporal_out[k].id());
    }
    assert_eq!(h.answer.id(), h.memory_out[2].id());
    let lw = MemN2NConfig::new(8, 3, 4).with_tying(WeightTying::LayerWise).init(&mut rng).unwrap();
    let names: Vec<String> = lw.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["query_embedding", "memory_in", "memory_out", "temporal_in", "temporal_out", "h.weight", "answer"]
    );
    assert!(lw.hops.memory_in.iter().all(|a| a.id() == lw.hops.memory_in[0].id()));
    // N(0, 0.1²): a sample std near 0.1
    let v = lw.hops.answer.to_f64_vec();
    let std = (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
    assert!((0.03..0.2).contains(&std), "std {std}");
    assert!(MemN2NConfig::new(8, 3, 4).with_padding_idx(Some(8)).init(&mut rng).is_err());
    assert!(MemN2NConfig::new(8, 0, 4).init(&mut rng).is_err());
}

#[test]
fn padding_is_ignored_and_empty_slots_get_zero_attention() {
    let net =
        MemN2NConfig::new(8, 3, 4).with_dtype(DType::F64).init(&mut ChaCha8Rng::seed_from_u64(4)).unwrap();
    let out = net.forward_story(&STORY, [2, 3, 3], &QUERY).unwrap();
    for p in &out.attention {
        assert_eq!(p.to_f64_vec()[5], 0.0, "sample 1, slot 2 is empty");
    }
    // the padding word's embedding rows do not matter (except as W's row for answering
    // word 0, since W = Cᴷ under adjacent tying: compare the other logits)
    for (_, p) in net.named_parameters().into_iter().filter(|(n, _)| n.starts_with("embeddings")) {
        let mut v = p.to_f64_vec();
        v[..3].iter_mut().for_each(|x| *x += 5.0);
        p.set(&Tensor::from_vec(v, p.shape()).unwrap()).unwrap();
    }
    let again = net.forward_story(&STORY, [2, 3, 3], &QUERY).unwrap();
    let not_word_0 =
        |t: &Tensor| t.to_f64_vec().chunks(8).flat_map(|r| r[1..].to_vec()).collect::<Vec<f64>>();
    assert_eq!(not_word_0(&again.logits), not_word_0(&out.logits));
    // a story with only empty slots is left unmasked (uniform-ish weights, no NaN)
    let blank = net.forward_story(&[0; 6], [1, 2, 3], &[1]).unwrap();
    assert!(blank.logits.to_f64_vec().iter().all(|v| v.is_finite()));
    // linear start: raw scores, no softmax
    net.set_linear_start(true);
    let ls = net.forward_story(&STORY, [2, 3, 3], &QUERY).unwrap();
    let p = ls.attention[0].to_f64_vec();
    assert!((p[..3].iter().sum::<f64>() - 1.0).abs() > 1e-6, "not normalised");
    assert_eq!(p[5], 0.0);
    net.set_linear_start(false);
}

#[test]
fn packed_module_input_and_errors() {
    let net =
        MemN2NConfig::new(8, 3, 4).with_dtype(DType::F64).init(&mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    // pack: story rows then the query (padded to 3 words) as the last row
    let mut packed = Vec::new();
    for b in 0..2 {
        packed.extend(STORY[b * 9..(b + 1) * 9].iter().map(|&w| w as f64));
        packed.extend([QUERY[2 * b] as f64, QUERY[2 * b + 1] as f64, 0.0]);
    }
    let logits = net.forward(&Tensor::from_vec(packed, &[2, 4, 3]).unwrap()).unwrap();
    let query3 = [5, 6, 0, 1, 0, 0];
    let direct = net.forward_story(&STORY, [2, 3, 3], &query3).unwrap();
    assert_eq!(logits.to_f64_vec(), direct.logits.to_f64_vec());
    assert!(net.forward(&Tensor::from_vec(vec![0.5f64; 6], &[1, 2, 3]).unwrap()).is_err());
    assert!(net.forward_story(&STORY, [2, 3, 3], &[9, 1]).is_err(), "word out of the vocabulary");
    assert!(net.forward_story(&[1; 15], [1, 5, 3], &[1]).is_err(), "more memories than memory_size");
    assert!(net.forward_story(&STORY, [2, 3, 2], &QUERY).is_err());
    assert!(net.forward_story(&STORY, [2, 3, 3], &[1, 2, 3]).is_err());
}

#[test]
fn gradcheck_parameters_of_both_tyings() {
    let mut packed = Vec::new();
    for b in 0..2 {
        packed.extend(STORY[b * 9..(b + 1) * 9].iter().map(|&w| w as f64));
        packed.extend([QUERY[2 * b] as f64, QUERY[2 * b + 1] as f64, 0.0]);
    }
    let x = Tensor::from_vec(packed, &[2, 4, 3]).unwrap();
    for tying in [WeightTying::Adjacent, WeightTying::LayerWise] {
        let config = MemN2NConfig::new(8, 3, 3).with_hops(2).with_tying(tying).with_dtype(DType::F64);
        let net = config.init(&mut ChaCha8Rng::seed_from_u64(6)).unwrap();
        check_parameter_gradients(&net, &x);
    }
}
