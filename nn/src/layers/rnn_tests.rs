//! Tests of the recurrent layers: a plain-loop reference of every cell (all steps, layers and
//! directions), a hand-computed step, PyTorch names and shapes, gradchecks.

use super::*;
use crate::layers::testing::check_module_gradients;
use graphgrad_ops::testing::{assert_close, random_vec};
use rand::SeedableRng;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// y[r] = Σ_c w[r, c]·x[c] (+ b[r])
fn matvec(w: &[f64], x: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    let cols = x.len();
    (0..w.len() / cols)
        .map(|r| (0..cols).map(|c| w[r * cols + c] * x[c]).sum::<f64>() + b.map_or(0.0, |b| b[r]))
        .collect()
}

/// The whole stack with scalar loops: returns (output [batch][seq][D·H], h_n, c_n as
/// [layer·D + dir][batch][H]).
#[allow(clippy::type_complexity)]
fn reference(
    inner: &Recurrent,
    x: &[f64],
    batch: usize,
    seq: usize,
) -> (Vec<f64>, Vec<Vec<Vec<f64>>>, Vec<Vec<Vec<f64>>>) {
    let hs = inner.hidden_size;
    let d = inner.directions;
    // layer input per batch per step
    let mut input: Vec<Vec<Vec<f64>>> = (0..batch)
        .map(|b| {
            (0..seq).map(|t| x[(b * seq + t) * inner.input_size..][..inner.input_size].to_vec()).collect()
        })
        .collect();
    let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
    for layer in 0..inner.num_layers {
        let mut out = vec![vec![vec![0.0; d * hs]; seq]; batch];
        for dir in 0..d {
            let cell = &inner.cells[layer * d + dir];
            let w_ih = cell.weight_ih.to_f64_vec();
            let w_hh = cell.weight_hh.to_f64_vec();
            let b_ih = cell.bias_ih.as_ref().map(|b| b.to_f64_vec());
            let b_hh = cell.bias_hh.as_ref().map(|b| b.to_f64_vec());
            let (mut hl, mut cl) = (Vec::new(), Vec::new());
            for b in 0..batch {
                let (mut h, mut c) = (vec![0.0; hs], vec![0.0; hs]);
                let steps: Vec<usize> = if dir == 0 { (0..seq).collect() } else { (0..seq).rev().collect() };
                for t in steps {
                    let xi = matvec(&w_ih, &input[b][t], b_ih.as_deref());
                    let hh = matvec(&w_hh, &h, b_hh.as_deref());
                    for k in 0..hs {
                        match inner.kind {
                            CellKind::Rnn(RnnNonlinearity::Tanh) => h[k] = (xi[k] + hh[k]).tanh(),
                            CellKind::Rnn(RnnNonlinearity::Relu) => h[k] = (xi[k] + hh[k]).max(0.0),
                            CellKind::Lstm => {
                                let i = sigmoid(xi[k] + hh[k]);
                                let f = sigmoid(xi[hs + k] + hh[hs + k]);
                                let g = (xi[2 * hs + k] + hh[2 * hs + k]).tanh();
                                let o = sigmoid(xi[3 * hs + k] + hh[3 * hs + k]);
                                c[k] = f * c[k] + i * g;
                                h[k] = o * c[k].tanh();
                            }
                            CellKind::Gru => {
                                let r = sigmoid(xi[k] + hh[k]);
                                let z = sigmoid(xi[hs + k] + hh[hs + k]);
                                let n = (xi[2 * hs + k] + r * hh[2 * hs + k]).tanh();
                                h[k] = (1.0 - z) * n + z * h[k];
                            }
                        }
                    }
                    out[b][t][dir * hs..(dir + 1) * hs].copy_from_slice(&h);
                }
                hl.push(h);
                cl.push(c);
            }
            h_n.push(hl);
            c_n.push(cl);
        }
        input = out;
    }
    (input.into_iter().flatten().flatten().collect(), h_n, c_n)
}

fn check_against_reference(inner: &Recurrent, seed: u64) {
    let (batch, seq) = (2, 3);
    let x = Tensor::from_vec(
        random_vec::<f64>(batch * seq * inner.input_size, seed),
        &[batch, seq, inner.input_size],
    )
    .unwrap();
    let (out, h, c) = inner.run(&x, None, None).unwrap();
    let (expected, h_n, c_n) = reference(inner, &x.to_f64_vec(), batch, seq);
    let what = format!("{:?} layers {} directions {}", inner.kind, inner.num_layers, inner.directions);
    assert_eq!(out.shape(), &[batch, seq, inner.directions * inner.hidden_size], "{what}");
    assert_close(&out.to_f64_vec(), &expected, 1e-12, 1e-10);
    let flat = |s: Vec<Vec<Vec<f64>>>| s.into_iter().flatten().flatten().collect::<Vec<f64>>();
    assert_close(&h.to_f64_vec(), &flat(h_n), 1e-12, 1e-10);
    if inner.kind == CellKind::Lstm {
        assert_close(&c.to_f64_vec(), &flat(c_n), 1e-12, 1e-10);
    }
}

#[test]
fn every_cell_matches_the_reference_loop() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (layers, bidirectional, bias) in [(1, false, true), (2, true, true), (2, false, false)] {
        let rnn = RnnConfig::new(3, 4)
            .with_num_layers(layers)
            .with_bidirectional(bidirectional)
            .with_bias(bias)
            .with_dtype(DType::F64);
        check_against_reference(&rnn.init(&mut rng).unwrap().inner, 1);
        let relu = rnn.clone().with_nonlinearity(RnnNonlinearity::Relu);
        check_against_reference(&relu.init(&mut rng).unwrap().inner, 2);
        let lstm =
            LstmConfig::new(3, 4).with_num_layers(layers).with_bidirectional(bidirectional).with_bias(bias);
        check_against_reference(&lstm.with_dtype(DType::F64).init(&mut rng).unwrap().inner, 3);
        let gru =
            GruConfig::new(3, 4).with_num_layers(layers).with_bidirectional(bidirectional).with_bias(bias);
        check_against_reference(&gru.with_dtype(DType::F64).init(&mut rng).unwrap().inner, 4);
    }
}

/// Sets every parameter of a one-layer, hidden-1 cell to `value`.
fn constant(inner: &Recurrent, value: f64) {
    for (_, p) in inner.named_parameters() {
        p.set(&Tensor::full(p.shape(), value, DType::F64).unwrap()).unwrap();
    }
}

#[test]
fn one_hand_computed_step_of_each_cell() {
    // input 1, hidden 1, every weight and bias 0.5, x = 2, h0 = 0 (c0 = 0):
    // every gate pre-activation is a = 0.5·2 + 0.5 + 0.5·0 + 0.5 = 2.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Tensor::from_vec(vec![2.0f64], &[1, 1, 1]).unwrap();
    let (s, t) = (sigmoid(2.0), 2f64.tanh());
    let lstm = LstmConfig::new(1, 1).with_dtype(DType::F64).init(&mut rng).unwrap();
    constant(&lstm.inner, 0.5);
    // LSTM: c = σ(2)·tanh(2) (f·c0 = 0), h = σ(2)·tanh(c)
    let (out, state) = lstm.forward_with_state(&x, None).unwrap();
    assert_close(&state.c.to_f64_vec(), &[s * t], 1e-15, 1e-14);
    assert_close(&out.to_f64_vec(), &[s * (s * t).tanh()], 1e-15, 1e-14);
    // GRU: r = z = σ(2); n = tanh(0.5·2 + 0.5 + r·0.5) = tanh(1.5 + 0.5σ(2)); h = (1 − z)·n
    let gru = GruConfig::new(1, 1).with_dtype(DType::F64).init(&mut rng).unwrap();
    constant(&gru.inner, 0.5);
    let n = (1.5 + 0.5 * s).tanh();
    assert_close(&gru.forward(&x).unwrap().to_f64_vec(), &[(1.0 - s) * n], 1e-15, 1e-14);
    // RNN: h = tanh(2)
    let rnn = RnnConfig::new(1, 1).with_dtype(DType::F64).init(&mut rng).unwrap();
    constant(&rnn.inner, 0.5);
    assert_close(&rnn.forward(&x).unwrap().to_f64_vec(), &[t], 1e-15, 1e-14);
}

#[test]
fn initial_state_is_used_and_checked() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let lstm = LstmConfig::new(2, 3).with_dtype(DType::F64).init(&mut rng).unwrap();
    let x = Tensor::from_vec(random_vec::<f64>(2 * 4 * 2, 5), &[2, 4, 2]).unwrap();
    // running 4 steps equals running 2, then 2 more from the state reached
    let (full, end) = lstm.forward_with_state(&x, None).unwrap();
    let (first, mid) = lstm.forward_with_state(&x.narrow(1, 0, 2).unwrap(), None).unwrap();
    let (second, end2) = lstm.forward_with_state(&x.narrow(1, 2, 2).unwrap(), Some(&mid)).unwrap();
    let joined = Tensor::cat(&[first, second], 1).unwrap();
    assert_close(&joined.to_f64_vec(), &full.to_f64_vec(), 1e-14, 1e-12);
    assert_close(&end2.h.to_f64_vec(), &end.h.to_f64_vec(), 1e-14, 1e-12);
    let bad = LstmState {
        h: Tensor::zeros(&[1, 3, 3], DType::F64).unwrap(),
        c: Tensor::zeros(&[1, 2, 3], DType::F64).unwrap(),
    };
    assert!(lstm.forward_with_state(&x, Some(&bad)).is_err());
    assert!(lstm.forward(&Tensor::zeros(&[2, 4, 3], DType::F64).unwrap()).is_err(), "wrong feature size");
    assert!(lstm.forward(&Tensor::zeros(&[2, 4, 2], DType::F32).unwrap()).is_err(), "wrong dtype");
    assert!(lstm.forward(&Tensor::zeros(&[2, 0, 2], DType::F64).unwrap()).is_err(), "empty sequence");
    assert!(LstmConfig::new(0, 3).init(&mut rng).is_err());
}

#[test]
fn pytorch_names_and_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let lstm = LstmConfig::new(3, 5).with_num_layers(2).with_bidirectional(true).init(&mut rng).unwrap();
    let named: Vec<(String, Vec<usize>)> =
        lstm.named_parameters().into_iter().map(|(n, v)| (n, v.shape().to_vec())).collect();
    let expected = [
        ("weight_ih_l0", vec![20, 3]),
        ("weight_hh_l0", vec![20, 5]),
        ("bias_ih_l0", vec![20]),
        ("bias_hh_l0", vec![20]),
        ("weight_ih_l0_reverse", vec![20, 3]),
        ("weight_hh_l0_reverse", vec![20, 5]),
        ("bias_ih_l0_reverse", vec![20]),
        ("bias_hh_l0_reverse", vec![20]),
        ("weight_ih_l1", vec![20, 10]),
        ("weight_hh_l1", vec![20, 5]),
        ("bias_ih_l1", vec![20]),
        ("bias_hh_l1", vec![20]),
        ("weight_ih_l1_reverse", vec![20, 10]),
        ("weight_hh_l1_reverse", vec![20, 5]),
        ("bias_ih_l1_reverse", vec![20]),
        ("bias_hh_l1_reverse", vec![20]),
    ];
    assert_eq!(named, expected.map(|(n, s)| (n.to_string(), s)).to_vec());
    let gru = GruConfig::new(3, 5).with_bias(false).init(&mut rng).unwrap();
    assert_eq!(
        gru.named_parameters().iter().map(|(n, v)| (n.as_str(), v.shape()[0])).collect::<Vec<_>>(),
        [("weight_ih_l0", 15), ("weight_hh_l0", 15)]
    );
    // U(−1/√5, 1/√5)
    let bound = 1.0 / 5f64.sqrt();
    assert!(lstm.parameters().iter().flat_map(|p| p.to_f64_vec()).all(|v| v.abs() <= bound));
    let again = LstmConfig::new(3, 5).with_num_layers(2).with_bidirectional(true);
    let a = again.init(&mut ChaCha8Rng::seed_from_u64(9)).unwrap().state_dict();
    let b = again.init(&mut ChaCha8Rng::seed_from_u64(9)).unwrap().state_dict();
    assert!(
        a.iter().zip(&b).all(|((_, x), (_, y))| x.to_f64_vec() == y.to_f64_vec()),
        "same seed, same model"
    );
}

#[test]
fn gradcheck_every_cell() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let x = Tensor::from_vec(random_vec::<f64>(2 * 3 * 2, 8), &[2, 3, 2]).unwrap();
    let rnn = RnnConfig::new(2, 2).with_dtype(DType::F64).with_bidirectional(true).init(&mut rng).unwrap();
    check_module_gradients(&rnn, &x);
    let lstm = LstmConfig::new(2, 2).with_num_layers(2).with_dtype(DType::F64).init(&mut rng).unwrap();
    check_module_gradients(&lstm, &x);
    let gru = GruConfig::new(2, 2).with_dtype(DType::F64).with_bidirectional(true).init(&mut rng).unwrap();
    check_module_gradients(&gru, &x);
    // gradients through the initial and final LSTM states too
    let lstm1 = LstmConfig::new(2, 2).with_dtype(DType::F64).init(&mut rng).unwrap();
    let h0 = Tensor::from_vec(random_vec::<f64>(4, 9), &[1, 2, 2]).unwrap();
    let c0 = Tensor::from_vec(random_vec::<f64>(4, 10), &[1, 2, 2]).unwrap();
    graphgrad_autodiff::gradcheck(
        |t| {
            let (out, s) =
                lstm1.forward_with_state(&t[0], Some(&LstmState { h: t[1].clone(), c: t[2].clone() }))?;
            out.sum_all().add(&s.c.sum_all())
        },
        &[x, h0, c0],
        Default::default(),
    )
    .unwrap();
}
