//! Function transforms inside `compile`: the compiled program gives what the eager transform
//! gives, on inputs other than those it was traced with.

use graphgrad_autodiff::{compile, func, Result, Tensor};
use graphgrad_ops::testing::assert_close;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>(), shape).unwrap()
}

fn same(got: &[Tensor], want: &[Tensor]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.shape(), w.shape());
        assert_close(&g.to_f64_vec(), &w.to_f64_vec(), 1e-12, 1e-12);
    }
}

/// A two-layer network's scalar loss in (x, w1, w2).
fn loss(v: &[Tensor]) -> Result<Tensor> {
    Ok(v[0].matmul(&v[1])?.tanh().matmul(&v[2])?.log_softmax(-1)?.square().sum_all())
}

/// Runs `step` eagerly and compiled on two sets of inputs (the second not traced).
fn check(step: impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Clone, sets: [Vec<Tensor>; 2]) -> Result<()> {
    let mut compiled = compile(step.clone());
    for inputs in &sets {
        same(&compiled.call(inputs)?, &step(inputs)?);
    }
    assert_eq!(compiled.programs().count(), 1, "one program for one signature");
    Ok(())
}

fn inputs(seed: u64) -> Vec<Tensor> {
    vec![randn(&[4, 3], seed), randn(&[3, 5], seed + 1), randn(&[5, 2], seed + 2)]
}

#[test]
fn jvp_compiles() -> Result<()> {
    let step = |io: &[Tensor]| -> Result<Vec<Tensor>> {
        let f = |v: &[Tensor]| Ok(vec![v[0].matmul(&v[1])?.tanh().matmul(&v[2])?.softmax(-1)?]);
        let (y, t) = func::jvp(f, &io[..3], &io[3..])?;
        Ok(vec![y[0].clone(), t[0].clone()])
    };
    let with_tangents = |seed| [inputs(seed), inputs(seed + 10)].concat();
    check(step, [with_tangents(1), with_tangents(100)])
}

#[test]
fn hvp_compiles() -> Result<()> {
    let step = |io: &[Tensor]| func::hvp(loss, &io[..3], &io[3..]);
    let with_tangents = |seed| [inputs(seed), inputs(seed + 10)].concat();
    check(step, [with_tangents(1), with_tangents(100)])
}

#[test]
fn per_sample_gradients_compile() -> Result<()> {
    // io: a batch of inputs [6, 3], w1, w2; per-sample gradients of w1 and w2
    let step = |io: &[Tensor]| -> Result<Vec<Tensor>> {
        let per_sample = |v: &[Tensor]| {
            Ok(func::grad(loss)(&[v[0].unsqueeze(0)?, v[1].clone(), v[2].clone()])?[1..].to_vec())
        };
        func::vmap(per_sample, &[Some(0), None, None], &[0, 0])(io)
    };
    let set = |seed| vec![randn(&[6, 3], seed), randn(&[3, 5], seed + 1), randn(&[5, 2], seed + 2)];
    check(step, [set(1), set(100)])
}

#[test]
fn jacobians_and_hessians_compile() -> Result<()> {
    let step = |io: &[Tensor]| -> Result<Vec<Tensor>> {
        let f = |v: &[Tensor]| v[0].matmul(&v[1])?.tanh().sum(&[0], false);
        let mut out = func::jacrev(f)(io)?;
        out.extend(func::jacfwd(f)(io)?);
        out.push(func::hessian(|v: &[Tensor]| Ok(f(v)?.square().sum_all()))(io)?);
        Ok(out)
    };
    let set = |seed| vec![randn(&[2, 3], seed), randn(&[3, 2], seed + 1)];
    check(step, [set(1), set(100)])
}
