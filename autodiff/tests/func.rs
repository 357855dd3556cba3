//! Function transforms against independent values: central differences in f64, closed forms,
//! and plain loops over the samples (for `vmap`).

use graphgrad_autodiff::{func, ConvOptions, DType, Error, Generator, Result, Tensor};
use graphgrad_ops::testing::assert_close;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>(), shape).unwrap()
}

fn close(got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "shapes");
    assert_close(&got.to_f64_vec(), &want.to_f64_vec(), tol, tol);
}

/// A small two-layer network's scalar loss in (x, w1, w2): smooth, with every input mixed.
fn mlp_loss(v: &[Tensor]) -> Result<Tensor> {
    let h = v[0].matmul(&v[1])?.tanh();
    Ok(h.matmul(&v[2])?.softmax(-1)?.square().sum_all())
}

/// ∂y/∂x by central differences, `y.shape ++ x.shape`, with every other input fixed.
fn numeric_jacobian(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor], which: usize) -> Tensor {
    let eps = 1e-6;
    let x = &inputs[which];
    let base = x.to_f64_vec();
    let mut cols = Vec::new();
    for j in 0..base.len() {
        let at = |d: f64| {
            let mut v = base.clone();
            v[j] += d;
            let mut args = inputs.to_vec();
            args[which] = Tensor::from_vec(v, x.shape()).unwrap();
            f(&args).unwrap().to_f64_vec()
        };
        let (p, m) = (at(eps), at(-eps));
        cols.push(p.iter().zip(&m).map(|(p, m)| (p - m) / (2.0 * eps)).collect::<Vec<f64>>());
    }
    let y = f(inputs).unwrap();
    let rows = y.numel();
    let mut out = vec![0.0; rows * base.len()];
    for (j, col) in cols.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            out[i * base.len() + j] = *v;
        }
    }
    Tensor::from_vec(out, &[y.shape(), x.shape()].concat()).unwrap()
}

fn mlp_inputs() -> Vec<Tensor> {
    vec![randn(&[2, 3], 1), randn(&[3, 4], 2), randn(&[4, 3], 3)]
}

#[test]
fn jvp_matches_central_differences_and_does_not_run_backward() -> Result<()> {
    let inputs = mlp_inputs();
    let f = |v: &[Tensor]| -> Result<Tensor> { v[0].matmul(&v[1])?.tanh().matmul(&v[2])?.softmax(-1) };
    let tangents: Vec<Tensor> =
        inputs.iter().enumerate().map(|(i, x)| randn(x.shape(), 10 + i as u64)).collect();
    let (ys, ts) = func::jvp(|v| Ok(vec![f(v)?]), &inputs, &tangents)?;
    close(&ys[0], &f(&inputs)?, 1e-12);
    // J·t = Σ_i J_i·t_i from the numeric Jacobians
    let mut want = Tensor::zeros(ys[0].shape(), DType::F64)?;
    for (i, t) in tangents.iter().enumerate() {
        let j = numeric_jacobian(&f, &inputs, i);
        let jt = j.reshape(&[ys[0].numel(), t.numel()])?.matmul(&t.reshape(&[t.numel()])?)?;
        want = want.add(&jt.reshape(ys[0].shape())?)?;
    }
    close(&ts[0], &want, 1e-6);
    // the tangent is not a reverse pass: it needs no input to require grad
    assert!(!ts[0].requires_grad());
    Ok(())
}

#[test]
fn jacrev_and_jacfwd_match_central_differences() -> Result<()> {
    let inputs = mlp_inputs();
    let f = |v: &[Tensor]| -> Result<Tensor> { v[0].matmul(&v[1])?.tanh().matmul(&v[2])?.log_softmax(-1) };
    let rev = func::jacrev(f)(&inputs)?;
    let fwd = func::jacfwd(f)(&inputs)?;
    for (i, (r, w)) in rev.iter().zip(&fwd).enumerate() {
        let want = numeric_jacobian(&f, &inputs, i);
        close(r, &want, 1e-6);
        close(w, &want, 1e-6);
    }
    Ok(())
}

#[test]
fn hessian_and_hvp_match_the_closed_form() -> Result<()> {
    // f(x) = Σ xᵢ³ + x₀·x₁·x₂: H = diag(6x) + the mixed terms xₖ at (i, j) for {i, j, k} = {0, 1, 2}
    let f = |v: &[Tensor]| -> Result<Tensor> {
        let x = &v[0];
        let prod = x.narrow(0, 0, 1)?.mul(&x.narrow(0, 1, 1)?)?.mul(&x.narrow(0, 2, 1)?)?;
        x.pow_scalar(3.0).sum_all().add(&prod.sum_all())
    };
    let xs = [0.5, -1.5, 2.0];
    let x = Tensor::from_vec(xs.to_vec(), &[3])?;
    let h = func::hessian(f)(std::slice::from_ref(&x))?;
    let mut want = vec![0.0; 9];
    for i in 0..3 {
        want[i * 4] = 6.0 * xs[i];
        for j in 0..3 {
            if i != j {
                want[i * 3 + j] = xs[3 - i - j];
            }
        }
    }
    close(&h, &Tensor::from_vec(want.clone(), &[3, 3])?, 1e-12);
    let v = Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3])?;
    let hv = func::hvp(f, &[x], std::slice::from_ref(&v))?;
    let want_hv: Vec<f64> =
        (0..3).map(|i| (0..3).map(|j| want[i * 3 + j] * v.to_f64_vec()[j]).sum()).collect();
    close(&hv[0], &Tensor::from_vec(want_hv, &[3])?, 1e-12);
    Ok(())
}

#[test]
fn hessian_of_a_network_matches_differences_of_its_gradient() -> Result<()> {
    let inputs = mlp_inputs();
    // the Hessian in w1 with x and w2 fixed
    let loss = |v: &[Tensor]| mlp_loss(&[v[1].clone(), v[0].clone(), v[2].clone()]);
    let order = [inputs[1].clone(), inputs[0].clone(), inputs[2].clone()];
    let h = func::hessian(loss)(&order)?;
    let gradient = |v: &[Tensor]| -> Result<Tensor> { Ok(func::grad(loss)(v)?.remove(0)) };
    close(&h, &numeric_jacobian(&gradient, &order, 0), 1e-6);
    Ok(())
}

#[test]
fn grad_of_jvp_and_jvp_of_jvp_compose() -> Result<()> {
    // g(x) = J_f(x)·t for f(x) = x³ ⊙ tanh x: ∇ Σ g against differences of Σ g
    let t = randn(&[4], 5);
    let g = |v: &[Tensor]| -> Result<Tensor> {
        let f = |u: &[Tensor]| Ok(vec![u[0].pow_scalar(3.0).mul(&u[0].tanh())?]);
        Ok(func::jvp(f, v, std::slice::from_ref(&t))?.1.remove(0).sum_all())
    };
    let x = randn(&[4], 6);
    let grad = func::grad(g)(std::slice::from_ref(&x))?.remove(0);
    let want = numeric_jacobian(&g, std::slice::from_ref(&x), 0);
    close(&grad, &want, 1e-6);
    // second-order forward mode: jvp of jvp is tᵀ H s, here of Σ x⁴: 12 x² t s
    let s = randn(&[4], 7);
    let inner = |v: &[Tensor]| {
        Ok(func::jvp(|u| Ok(vec![u[0].pow_scalar(4.0).sum_all()]), v, std::slice::from_ref(&t))?.1)
    };
    let second = func::jvp(inner, std::slice::from_ref(&x), std::slice::from_ref(&s))?.1.remove(0);
    let (xv, tv, sv) = (x.to_f64_vec(), t.to_f64_vec(), s.to_f64_vec());
    let want: f64 = (0..4).map(|i| 12.0 * xv[i] * xv[i] * tv[i] * sv[i]).sum();
    assert!((second.item()? - want).abs() < 1e-10, "{} vs {want}", second.item()?);
    Ok(())
}

/// `f` on each sample in a plain loop, outputs stacked at axis 0.
fn looped(
    f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    inputs: &[Tensor],
    in_axes: &[Option<usize>],
) -> Vec<Tensor> {
    let size = inputs.iter().zip(in_axes).find_map(|(x, a)| a.map(|a| x.shape()[a])).unwrap();
    let mut per_output: Vec<Vec<Tensor>> = Vec::new();
    for b in 0..size {
        let sample: Vec<Tensor> = inputs
            .iter()
            .zip(in_axes)
            .map(|(x, a)| match a {
                Some(a) => x.narrow(*a as isize, b, 1).unwrap().squeeze(*a as isize).unwrap(),
                None => x.clone(),
            })
            .collect();
        for (k, y) in f(&sample).unwrap().into_iter().enumerate() {
            if per_output.len() <= k {
                per_output.push(Vec::new());
            }
            per_output[k].push(y);
        }
    }
    per_output.iter().map(|ys| Tensor::stack(ys, 0).unwrap()).collect()
}

type VFun = Box<dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>>;

/// A vmap case: its name, the function, the inputs and their batch axes.
type Case = (&'static str, VFun, Vec<Tensor>, Vec<Option<usize>>);

fn case(f: impl Fn(&[Tensor]) -> Result<Tensor> + 'static) -> VFun {
    Box::new(move |v| Ok(vec![f(v)?]))
}

#[test]
fn vmap_matches_a_loop_for_every_family() -> Result<()> {
    let conv = ConvOptions::default().padding(1);
    let labels = Tensor::from_indices(&[2, 0, 1, 2, 1], &[5, 1])?;
    let cases: Vec<Case> = vec![
        (
            "matmul shared weight",
            case(|v| v[0].matmul(&v[1])?.relu().sum(&[0], false)),
            vec![randn(&[5, 2, 3], 1), randn(&[3, 4], 2)],
            vec![Some(0), None],
        ),
        (
            "matmul both batched",
            case(|v| v[0].matmul(&v[1])),
            vec![randn(&[5, 2, 3], 3), randn(&[3, 5, 4], 4)],
            vec![Some(0), Some(1)],
        ),
        (
            "matmul batched weight",
            case(|v| v[0].matmul(&v[1])),
            vec![randn(&[2, 3], 5), randn(&[5, 3, 4], 6)],
            vec![None, Some(0)],
        ),
        (
            "vector·matrix",
            case(|v| v[0].matmul(&v[1])),
            vec![randn(&[5, 3], 7), randn(&[3, 4], 8)],
            vec![Some(0), None],
        ),
        (
            "broadcast binary",
            case(|v| v[0].sub(&v[1])?.mul(&v[0])?.div(&v[1].exp())),
            vec![randn(&[4, 1, 5], 9), randn(&[3, 5], 10)],
            vec![Some(2), Some(1)],
        ),
        (
            "where and max",
            case(|v| Tensor::where_(&v[0].gt_scalar(0.0), &v[0], &v[1].maximum_scalar(0.1))),
            vec![randn(&[5, 3], 11), randn(&[3], 12)],
            vec![Some(0), None],
        ),
        (
            "reductions",
            case(|v| v[0].max(&[0], true)?.add(&v[0].logsumexp(&[1], true)?)?.mean(&[1], false)),
            vec![randn(&[5, 3, 4], 13)],
            vec![Some(0)],
        ),
        (
            "softmax family",
            case(|v| v[0].softmax(0)?.add(&v[0].log_softmax(1)?)?.layer_norm(&[4], None, None, 1e-5)),
            vec![randn(&[3, 4, 5], 14)],
            vec![Some(2)],
        ),
        (
            "movement",
            case(|v| {
                let y = Tensor::cat(&[v[0].transpose(0, 1)?, v[1].expand(&[4, 3])?], 0)?;
                y.narrow(0, 1, 5)?.pad(&[(1, 0), (0, 2)], 0.5)?.reshape(&[30])
            }),
            vec![randn(&[5, 3, 2], 15), randn(&[3], 16)],
            vec![Some(0), None],
        ),
        (
            "index_select shared",
            case(|v| v[0].index_select(1, &Tensor::from_indices(&[2, 0, 2], &[3])?)),
            vec![randn(&[5, 2, 3], 17)],
            vec![Some(0)],
        ),
        (
            "per-sample labels",
            case(|v| v[0].log_softmax(-1)?.gather(0, &v[1], None)),
            vec![randn(&[5, 3], 18), labels.clone()],
            vec![Some(0), Some(0)],
        ),
        (
            "embedding rows per sample",
            case(|v| v[0].index_select(0, &v[1])),
            vec![randn(&[4, 3], 19), Tensor::from_indices(&[3, 1, 0, 2, 2], &[5, 1])?],
            vec![None, Some(0)],
        ),
        (
            "conv and pool",
            case(move |v| {
                v[0].conv2d(&v[1], None, conv)?.relu().max_pool2d((2, 2), (2, 2), (0, 0))?.avg_pool2d(
                    (1, 1),
                    (1, 1),
                    (0, 0),
                )
            }),
            vec![randn(&[5, 2, 2, 4, 4], 20), randn(&[3, 2, 3, 3], 21)],
            vec![Some(0), None],
        ),
        (
            "conv per-sample weights",
            case(move |v| v[0].conv2d(&v[1], None, conv)),
            vec![randn(&[2, 2, 4, 4], 22), randn(&[5, 3, 2, 3, 3], 23)],
            vec![None, Some(0)],
        ),
    ];
    for (name, f, inputs, in_axes) in cases {
        let want = looped(&*f, &inputs, &in_axes);
        let got = func::vmap(&*f, &in_axes, &[0])(&inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got[0].shape(), want[0].shape(), "{name}");
        assert_close(&got[0].to_f64_vec(), &want[0].to_f64_vec(), 1e-12, 1e-12);
    }
    Ok(())
}

#[test]
fn vmap_of_grad_gives_per_sample_gradients() -> Result<()> {
    // per-sample gradients of a cross-entropy-like loss in the weights, as a loop computes them
    let (w1, w2) = (randn(&[3, 4], 30), randn(&[4, 3], 31));
    let xs = randn(&[6, 3], 32);
    let labels = Tensor::from_indices(&[0, 2, 1, 1, 0, 2], &[6, 1])?;
    let loss = |v: &[Tensor]| -> Result<Tensor> {
        let logits = v[2].matmul(&v[0])?.tanh().matmul(&v[1])?;
        Ok(logits.log_softmax(-1)?.gather(0, &v[3], None)?.neg().sum_all())
    };
    let per_sample = |v: &[Tensor]| Ok(func::grad(loss)(v)?[..2].to_vec());
    let in_axes = [None, None, Some(0), Some(0)];
    let inputs = [w1, w2, xs, labels];
    let got = func::vmap(per_sample, &in_axes, &[0, 0])(&inputs)?;
    let want = looped(&per_sample, &inputs, &in_axes);
    assert_eq!(got[0].shape(), [6, 3, 4]);
    for (g, w) in got.iter().zip(&want) {
        close(g, w, 1e-12);
    }
    Ok(())
}

#[test]
fn nested_vmap_and_vmap_of_jvp_match_loops() -> Result<()> {
    // pairwise kernel exp(−|a − b|²): vmap over a inside vmap over b
    let k = |v: &[Tensor]| Ok(vec![v[0].sub(&v[1])?.square().sum_all().neg().exp()]);
    let (a, b) = (randn(&[4, 3], 40), randn(&[5, 3], 41));
    let inner = func::vmap(k, &[Some(0), None], &[0]);
    let outer = func::vmap(&inner, &[None, Some(0)], &[1]);
    let got = outer(&[a.clone(), b.clone()])?.remove(0);
    let mut want = vec![0.0; 20];
    let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
    for i in 0..4 {
        for j in 0..5 {
            let d: f64 = (0..3).map(|c| (av[i * 3 + c] - bv[j * 3 + c]).powi(2)).sum();
            want[i * 5 + j] = (-d).exp();
        }
    }
    close(&got, &Tensor::from_vec(want, &[4, 5])?, 1e-12);
    // a batch of Jacobian-vector products, one tangent per sample, against a loop of jvps
    let f = |u: &[Tensor]| Ok(vec![u[0].tanh().matmul(&u[1])?.softmax(0)?]);
    let jvp_one = move |v: &[Tensor]| Ok(func::jvp(f, &v[..2], &v[2..])?.1);
    let w = randn(&[3, 2], 42);
    let (xs, ts) = (randn(&[4, 3], 43), randn(&[4, 3], 44));
    let in_axes = [Some(0), None, Some(0), Some(0)];
    let inputs = [xs, w, ts, Tensor::zeros(&[4, 3, 2], DType::F64)?];
    let got = func::vmap(jvp_one, &in_axes, &[0])(&inputs)?;
    close(&got[0], &looped(&jvp_one, &inputs, &in_axes)[0], 1e-12);
    Ok(())
}

#[test]
fn vmap_moves_axes_and_shares_random_draws() -> Result<()> {
    let f = |v: &[Tensor]| Ok(vec![v[0].exp().sum(&[0], false)?]);
    let x = randn(&[3, 4, 5], 50);
    // batch along axis 1 of the input, placed at axis 1 of the output
    let got = func::vmap(f, &[Some(1)], &[1])(std::slice::from_ref(&x))?.remove(0);
    close(&got, &x.exp().sum(&[0], false)?.transpose(0, 1)?, 1e-12);
    // a draw inside the mapped function is the same for every sample
    let generator = Generator::new(3);
    let noisy = |v: &[Tensor]| Ok(vec![v[0].add(&generator.uniform(&[2], DType::F64)?)?]);
    let zeros = Tensor::zeros(&[4, 2], DType::F64)?;
    let y = func::vmap(noisy, &[Some(0)], &[0])(&[zeros])?.remove(0).to_f64_vec();
    assert!(y[0] != y[1] && (0..4).all(|b| y[2 * b..2 * b + 2] == y[..2]), "{y:?}");
    Ok(())
}

#[test]
fn bad_uses_are_errors_naming_the_shapes() {
    let f = |v: &[Tensor]| Ok(vec![v[0].sum_all()]);
    let x = randn(&[3, 2], 60);
    let message = |r: Result<Vec<Tensor>>| r.unwrap_err().to_string();
    let wrong_count = message(func::vmap(f, &[Some(0), None], &[0])(std::slice::from_ref(&x)));
    assert!(wrong_count.contains("vmap") && wrong_count.contains("[3, 2]"), "{wrong_count}");
    let out_of_range = func::vmap(f, &[Some(2)], &[0])(std::slice::from_ref(&x)).unwrap_err();
    assert!(matches!(out_of_range, Error::AxisOutOfRange { op: "vmap", axis: 2, .. }), "{out_of_range}");
    let g = |v: &[Tensor]| Ok(vec![v[0].add(&v[1])?]);
    let differ = message(func::vmap(g, &[Some(0), Some(1)], &[0])(&[x.clone(), randn(&[2, 2], 61)]));
    assert!(differ.contains("batch sizes differ") && differ.contains("[2, 2]"), "{differ}");
    let out_axis = func::vmap(f, &[Some(0)], &[1])(std::slice::from_ref(&x)).unwrap_err();
    assert!(matches!(out_axis, Error::AxisOutOfRange { op: "vmap", .. }), "{out_axis}");
    let tangent = func::jvp(f, std::slice::from_ref(&x), &[randn(&[2, 3], 62)]).unwrap_err();
    assert_eq!(tangent, Error::ShapeMismatch { op: "jvp", lhs: vec![3, 2], rhs: vec![2, 3] });
    let count = func::jvp(f, std::slice::from_ref(&x), &[]).unwrap_err().to_string();
    assert!(count.contains("jvp") && count.contains("[[3, 2]]"), "{count}");
    let vector =
        func::grad(|v: &[Tensor]| Ok(v[0].clone()))(std::slice::from_ref(&x)).unwrap_err().to_string();
    assert!(vector.contains("grad") && vector.contains("[3, 2]"), "{vector}");
}

/// Every op of the graph behind `t` (its inputs, recursively).
fn ops(t: &Tensor) -> Vec<String> {
    let (mut seen, mut names, mut stack) = (std::collections::HashSet::new(), Vec::new(), vec![t.clone()]);
    while let Some(t) = stack.pop() {
        if seen.insert(t.id()) {
            names.push(t.op().name().to_string());
            stack.extend(t.inputs().iter().cloned());
        }
    }
    names
}

#[test]
fn a_batched_matmul_is_one_product_not_a_loop() -> Result<()> {
    let f = |v: &[Tensor]| Ok(vec![v[0].matmul(&v[1])?]);
    let (a, b) = (randn(&[7, 2, 3], 70).requires_grad_(), randn(&[7, 3, 4], 71).requires_grad_());
    let y = func::vmap(f, &[Some(0), Some(0)], &[0])(&[a, b])?.remove(0);
    let names = ops(&y);
    assert_eq!(names.iter().filter(|n| *n == "matmul").count(), 1, "{names:?}");
    assert!(!names.iter().any(|n| n == "cat" || n == "narrow"), "{names:?}");
    Ok(())
}

#[test]
fn per_sample_gradients_through_a_checkpointed_segment() -> Result<()> {
    let w = randn(&[3, 2], 80);
    let loss = |v: &[Tensor]| -> Result<Tensor> {
        let h = graphgrad_autodiff::checkpoint(
            |u| Ok(vec![u[0].matmul(&u[1])?.tanh()]),
            &[v[0].unsqueeze(0)?, v[1].clone()],
        )?;
        Ok(h[0].square().sum_all())
    };
    let per_sample = func::grad_argnums(loss, &[1]);
    let xs = randn(&[5, 3], 81);
    let in_axes = [Some(0), None];
    let got = func::vmap(&per_sample, &in_axes, &[0])(&[xs.clone(), w.clone()])?;
    let want = looped(&per_sample, &[xs, w], &in_axes);
    close(&got[0], &want[0], 1e-12);
    Ok(())
}
