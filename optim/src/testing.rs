//! Test helpers: run an optimiser on a two-element parameter with given gradients and compare
//! each step with hand-computed values, in f64 and f32.

use crate::grad::replace_grad;
use crate::{Optimizer, ParamOptimizer, UpdateRule};
use graphgrad_autodiff::{DType, Tensor, Var};

/// A starting parameter and the gradients of successive steps.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) p0: [f64; 2],
    pub(crate) grads: Vec<[f64; 2]>,
}

impl Case {
    /// p0 = [1, −2]; gradients [0.5, 1] then [−0.25, 0.5].
    pub(crate) fn standard() -> Case {
        Case { p0: [1.0, -2.0], grads: vec![[0.5, 1.0], [-0.25, 0.5]] }
    }
}

/// Runs `config` over `case` in f64 (tolerance 1e-12) and f32 (2e-6, relative to the f64
/// reference), checking the parameter after every step against `expected`.
pub(crate) fn assert_steps<R: UpdateRule>(config: R, case: Case, expected: &[[f64; 2]]) {
    assert_eq!(case.grads.len(), expected.len(), "one expected value per step");
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-6)] {
        let start = Tensor::from_vec(case.p0.to_vec(), &[2]).unwrap().to_dtype(dtype);
        let var = Var::new("p", &start);
        let mut opt = ParamOptimizer::new(vec![("p".into(), var.clone())], config.clone()).unwrap();
        for (step, (g, want)) in case.grads.iter().zip(expected).enumerate() {
            let grad = Tensor::from_vec(g.to_vec(), &[2]).unwrap().to_dtype(dtype);
            replace_grad(&var, &grad).unwrap();
            opt.step().unwrap();
            let got = var.to_f64_vec();
            for i in 0..2 {
                assert!(
                    (got[i] - want[i]).abs() <= tol * (1.0 + want[i].abs()),
                    "{} {dtype} step {}: element {i} is {:.17} but the hand computation gives {:.17}",
                    R::NAME,
                    step + 1,
                    got[i],
                    want[i]
                );
            }
        }
    }
}
