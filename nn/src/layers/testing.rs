//! Test helpers for layers: gradient checks of a module's input and of its parameters.

use crate::Module;
use graphgrad_autodiff::{gradcheck, no_grad, GradcheckOptions, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// L = Σ v ⊙ y with a fixed pseudo-random v in [0.5, 1.5).
fn project(y: &Tensor) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let v: Vec<f64> = (0..y.numel()).map(|_| rng.gen_range(0.5..1.5)).collect();
    y.mul(&Tensor::from_vec(v, y.shape()).unwrap()).unwrap().sum_all()
}

/// Gradchecks `module` (f64 parameters) at input `x`: the input gradient with
/// [`gradcheck`], then every parameter's gradient from `backward` against central
/// differences made by overwriting the parameter in place.
#[track_caller]
pub(crate) fn check_module_gradients(module: &dyn Module, x: &Tensor) {
    gradcheck(|t| module.forward(&t[0]), std::slice::from_ref(x), GradcheckOptions::default())
        .unwrap_or_else(|e| panic!("input gradient: {e}"));
    check_parameter_gradients(module, x);
}

/// The parameter half of [`check_module_gradients`] (for modules whose input is not
/// differentiable, such as embedding indices).
#[track_caller]
pub(crate) fn check_parameter_gradients(module: &dyn Module, x: &Tensor) {
    let params = module.named_parameters();
    if params.is_empty() {
        return;
    }
    params.iter().for_each(|(_, p)| p.zero_grad());
    project(&module.forward(x).unwrap()).backward().unwrap();
    let eps = 1e-6;
    for (name, p) in &params {
        let analytic = p.grad().map(|g| g.to_f64_vec()).unwrap_or_else(|| vec![0.0; p.numel()]);
        let base = p.detach();
        for (k, &a) in analytic.iter().enumerate() {
            let at = |delta: f64| {
                let mut v = base.to_f64_vec();
                v[k] += delta;
                p.set(&Tensor::from_vec(v, p.shape()).unwrap()).unwrap();
                no_grad(|| project(&module.forward(x).unwrap()).item().unwrap())
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            p.set(&base).unwrap();
            assert!(
                (a - numeric).abs() <= 1e-5 + 1e-3 * numeric.abs(),
                "gradient of {name}[{k}]: analytic {a} vs numeric {numeric}"
            );
        }
        p.zero_grad();
    }
}

/// A plain-loop 2-d convolution (cross-correlation with zero padding, dilation and groups):
/// the values and the output shape.
pub(crate) fn conv2d_reference(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: graphgrad_autodiff::ConvOptions,
) -> (Vec<f64>, Vec<usize>) {
    let (xv, wv) = (x.to_f64_vec(), w.to_f64_vec());
    let (n, c, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (oc, cpg, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
    let out_h = (h + 2 * o.padding.0 - o.dilation.0 * (kh - 1) - 1) / o.stride.0 + 1;
    let out_w = (wd + 2 * o.padding.1 - o.dilation.1 * (kw - 1) - 1) / o.stride.1 + 1;
    let opg = oc / o.groups;
    let b = bias.map(|b| b.to_f64_vec()).unwrap_or_else(|| vec![0.0; oc]);
    let mut y = vec![0.0; n * oc * out_h * out_w];
    for bn in 0..n {
        for f in 0..oc {
            let g = f / opg;
            for i in 0..out_h {
                for j in 0..out_w {
                    let mut acc = b[f];
                    for ci in 0..cpg {
                        for a in 0..kh {
                            for bb in 0..kw {
                                let r = (i * o.stride.0 + a * o.dilation.0) as isize - o.padding.0 as isize;
                                let s = (j * o.stride.1 + bb * o.dilation.1) as isize - o.padding.1 as isize;
                                if r < 0 || s < 0 || r as usize >= h || s as usize >= wd {
                                    continue;
                                }
                                let xi = ((bn * c + g * cpg + ci) * h + r as usize) * wd + s as usize;
                                acc += wv[((f * cpg + ci) * kh + a) * kw + bb] * xv[xi];
                            }
                        }
                    }
                    y[((bn * oc + f) * out_h + i) * out_w + j] = acc;
                }
            }
        }
    }
    (y, vec![n, oc, out_h, out_w])
}
