//! The gradcheck table: every differentiable op is checked against central differences in
//! f64, and against second differences (gradgradcheck) where it is twice differentiable.
//! Every row's function and its gradient function are also jvpchecked: their forward-mode
//! tangents against central differences, so each op's tangent rule is checked on the same
//! graphs. `every_op_has_a_row` fails when an op kind (or unary/binary/reduce variant) is never
//! exercised by a row, forward or backward, so an op without a checked VJP and JVP fails it.

use graphgrad_autodiff::{
    func, grad, gradcheck, gradgradcheck, jvpcheck, ConvOptions, GradcheckOptions, Op, Result, Tensor,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

type Fun = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

struct Row {
    name: &'static str,
    f: Fun,
    inputs: Vec<Tensor>,
    /// Also run gradgradcheck.
    twice: bool,
}

/// Uniform values in [lo, hi).
fn uniform(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.gen_range(lo..hi)).collect::<Vec<f64>>(), shape).unwrap()
}

/// Values in ±[0.2, 1.2): away from the kinks of relu, abs, clamp at 0.
fn signed(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f64> =
        (0..n).map(|_| rng.gen_range(0.2..1.2) * if rng.gen_bool(0.5) { 1.0 } else { -1.0 }).collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Distinct values (a shuffled ramp with spacing 0.1): no ties for max, min, max-pool.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - n as f64 * 0.05).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.gen_range(0..=i));
    }
    Tensor::from_vec(v, shape).unwrap()
}

fn row(
    name: &'static str,
    inputs: Vec<Tensor>,
    twice: bool,
    f: impl Fn(&[Tensor]) -> Result<Tensor> + 'static,
) -> Row {
    Row { name, f: Box::new(f), inputs, twice }
}

fn unary_row(name: &'static str, x: Tensor, twice: bool, f: fn(&Tensor) -> Tensor) -> Row {
    row(name, vec![x], twice, move |xs| Ok(f(&xs[0])))
}

fn table() -> Vec<Row> {
    let conv = ConvOptions::default().stride((2, 1)).padding((1, 2)).dilation((1, 2)).groups(2);
    vec![
        // ---- unary ----
        unary_row("neg", signed(&[7], 1), true, Tensor::neg),
        unary_row("abs", signed(&[7], 2), true, Tensor::abs),
        unary_row("exp", signed(&[7], 3), true, Tensor::exp),
        unary_row("log", uniform(&[7], 4, 0.3, 2.0), true, Tensor::log),
        unary_row("sqrt", uniform(&[7], 5, 0.3, 2.0), true, Tensor::sqrt),
        unary_row("recip", uniform(&[7], 6, 0.3, 2.0), true, Tensor::recip),
        unary_row("square", signed(&[7], 7), true, Tensor::square),
        unary_row("relu", signed(&[7], 8), true, Tensor::relu),
        unary_row("sigmoid", signed(&[7], 9), true, Tensor::sigmoid),
        unary_row("tanh", signed(&[7], 10), true, Tensor::tanh),
        unary_row("gelu", signed(&[7], 11), true, Tensor::gelu),
        unary_row("erf", signed(&[7], 12), true, Tensor::erf),
        unary_row("softplus", signed(&[7], 13), true, Tensor::softplus),
        unary_row("leaky_relu", signed(&[7], 14), true, |x| x.leaky_relu(0.1)),
        unary_row("elu", signed(&[7], 15), true, |x| x.elu(0.7)),
        unary_row("add_scalar", signed(&[7], 16), true, |x| x.add_scalar(1.5)),
        unary_row("mul_scalar", signed(&[7], 17), true, |x| x.mul_scalar(-2.5)),
        unary_row("pow_scalar", uniform(&[7], 18, 0.3, 2.0), true, |x| x.pow_scalar(2.7)),
        unary_row("clamp", distinct(&[9], 19), true, |x| x.clamp(-0.22, 0.17).unwrap()),
        unary_row("silu", signed(&[7], 90), true, Tensor::silu),
        unary_row("log_sigmoid", signed(&[7], 91), true, Tensor::log_sigmoid),
        unary_row("hardtanh", distinct(&[9], 92), true, |x| x.hardtanh(-0.22, 0.17).unwrap()),
        // ---- binary, with broadcasting ----
        row("add", vec![signed(&[3, 4], 20), signed(&[4], 21)], true, |x| x[0].add(&x[1])),
        row("sub", vec![signed(&[3, 1], 22), signed(&[2, 1, 5], 23)], true, |x| x[0].sub(&x[1])),
        row("mul", vec![signed(&[2, 3], 24), signed(&[2, 1], 25)], true, |x| x[0].mul(&x[1])),
        row("div", vec![signed(&[2, 3], 26), uniform(&[3], 27, 0.5, 2.0)], true, |x| x[0].div(&x[1])),
        row("pow", vec![uniform(&[2, 3], 28, 0.5, 2.0), signed(&[3], 29)], true, |x| x[0].pow(&x[1])),
        row("maximum", vec![distinct(&[2, 3], 30), distinct(&[3], 31)], true, |x| x[0].maximum(&x[1])),
        row("minimum", vec![distinct(&[2, 3], 32), distinct(&[3], 33)], true, |x| x[0].minimum(&x[1])),
        row("where", vec![signed(&[2, 3], 34), signed(&[3], 35)], true, |x| {
            let cond = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 0.0, 0.0, 1.0], &[2, 3])?;
            Tensor::where_(&cond, &x[0], &x[1].mul(&x[1])?)
        }),
        row("masked_fill", vec![signed(&[2, 3], 36)], true, |x| {
            let mask = Tensor::from_vec(vec![0.0f64, 1.0, 0.0], &[3])?;
            x[0].masked_fill(&mask, 2.0)?.square().pipe(Ok)
        }),
        row("cast", vec![signed(&[4], 37)], false, |x| {
            Ok(x[0]
                .to_dtype(graphgrad_autodiff::DType::F32)
                .mul_scalar(2.0)
                .to_dtype(graphgrad_autodiff::DType::F64))
        }),
        // ---- reductions ----
        row("sum", vec![signed(&[2, 3, 4], 40)], true, |x| x[0].square().sum(&[1], false)),
        row("mean", vec![signed(&[2, 3, 4], 41)], true, |x| x[0].square().mean(&[0, 2], true)),
        row("max", vec![distinct(&[3, 4], 42)], true, |x| x[0].max(&[1], false)),
        row("min", vec![distinct(&[3, 4], 43)], true, |x| x[0].min(&[0], true)),
        row("logsumexp", vec![signed(&[3, 4], 44)], true, |x| x[0].logsumexp(&[-1], false)),
        row("var", vec![signed(&[3, 4], 45)], true, |x| x[0].var(&[1], false, true)),
        row("sum_all", vec![signed(&[2, 3], 46)], true, |x| Ok(x[0].exp().sum_all())),
        // ---- matrix products ----
        row("matmul", vec![signed(&[3, 4], 50), signed(&[4, 5], 51)], true, |x| x[0].matmul(&x[1])),
        row("matmul_batched", vec![signed(&[2, 3, 4], 52), signed(&[4, 2], 53)], true, |x| {
            x[0].matmul(&x[1])
        }),
        row("matmul_broadcast", vec![signed(&[2, 1, 2, 3], 54), signed(&[3, 3, 2], 55)], true, |x| {
            x[0].matmul(&x[1])
        }),
        row("matmul_vector", vec![signed(&[4], 56), signed(&[4, 3], 57)], true, |x| x[0].matmul(&x[1])),
        row("matmul_ta", vec![signed(&[4, 3], 58), signed(&[4, 2], 59)], true, |x| {
            x[0].matmul_with(&x[1], true, false)
        }),
        row("matmul_tb", vec![signed(&[3, 4], 60), signed(&[2, 4], 61)], true, |x| {
            x[0].matmul_with(&x[1], false, true)
        }),
        row("matmul_tab", vec![signed(&[2, 4, 3], 62), signed(&[2, 4], 63)], true, |x| {
            x[0].matmul_with(&x[1], true, true)
        }),
        // ---- movement ----
        row("reshape", vec![signed(&[2, 6], 70)], true, |x| x[0].reshape(&[3, 4])?.square().pipe(Ok)),
        row("permute", vec![signed(&[2, 3, 4], 71)], true, |x| {
            x[0].permute(&[2, 0, 1])?.mul(&signed(&[4, 2, 3], 72))
        }),
        row("transpose", vec![signed(&[2, 3], 73)], true, |x| {
            x[0].transpose(0, 1)?.matmul(&signed(&[2, 2], 74))
        }),
        row("expand", vec![signed(&[3, 1], 75)], true, |x| {
            x[0].expand(&[2, 3, 4])?.mul(&signed(&[2, 3, 4], 76))
        }),
        row("cat", vec![signed(&[2, 3], 77), signed(&[2, 2], 78)], true, |x| {
            Tensor::cat(&[x[0].clone(), x[1].square()], 1)
        }),
        row("stack", vec![signed(&[3], 79), signed(&[3], 80)], true, |x| {
            Tensor::stack(&[x[0].clone(), x[1].exp()], 0)
        }),
        row("narrow", vec![signed(&[4, 5], 81)], true, |x| x[0].narrow(1, 1, 3)?.square().pipe(Ok)),
        row("split", vec![signed(&[5, 2], 82)], true, |x| {
            let parts = x[0].split(2, 0)?;
            Tensor::cat(&[parts[0].exp(), parts[1].clone(), parts[2].square()], 0)
        }),
        row("squeeze_unsqueeze", vec![signed(&[3, 1], 83)], true, |x| {
            x[0].squeeze(1)?.unsqueeze(0)?.exp().pipe(Ok)
        }),
        row("pad", vec![signed(&[2, 3], 84)], true, |x| x[0].pad(&[(1, 0), (2, 1)], 0.5)?.square().pipe(Ok)),
        // ---- indexing ----
        row("index_select", vec![signed(&[4, 3], 90)], true, |x| {
            x[0].index_select(0, &[3, 0, 3, 1])?.square().pipe(Ok)
        }),
        row("index_add", vec![signed(&[3, 2], 91), signed(&[4, 2], 92)], true, |x| {
            x[0].index_add(0, &[2, 0, 2, 1], &x[1].square())
        }),
        row("gather", vec![signed(&[3, 4], 93)], true, |x| {
            x[0].gather(1, &[0, 3, 3, 1, 2, 2], Some(&[3, 2]))?.square().pipe(Ok)
        }),
        row("scatter_add", vec![signed(&[3, 4], 94), signed(&[3, 2], 95)], true, |x| {
            x[0].scatter_add(1, &[0, 3, 3, 3, 2, 1], &x[1].square())
        }),
        row("embedding", vec![signed(&[5, 3], 96)], true, |x| {
            x[0].embedding(&Tensor::from_indices(&[4, 0, 4, 2], &[2, 2])?)?.tanh().pipe(Ok)
        }),
        // ---- normalisation ----
        row("softmax", vec![signed(&[3, 4], 100)], true, |x| x[0].softmax(1)),
        row("softmax_axis0", vec![signed(&[3, 2, 2], 101)], true, |x| x[0].softmax(0)),
        row("log_softmax", vec![signed(&[3, 4], 102)], true, |x| x[0].log_softmax(-1)),
        row("layer_norm", vec![signed(&[3, 5], 103), signed(&[5], 104), signed(&[5], 105)], true, |x| {
            x[0].layer_norm(&[5], Some(&x[1]), Some(&x[2]), 1e-5)
        }),
        row("layer_norm_2d", vec![signed(&[2, 2, 3], 106)], true, |x| {
            x[0].layer_norm(&[2, 3], None, None, 1e-3)
        }),
        // A nonlinearity after each: the gradient reaching the fused backward ops then depends
        // on the input, so gradgradcheck also checks their derivative in that gradient.
        row("softmax_squared", vec![signed(&[3, 4], 108)], true, |x| x[0].softmax(1)?.square().pipe(Ok)),
        row("log_softmax_squared", vec![signed(&[3, 4], 109)], true, |x| {
            x[0].log_softmax(0)?.square().pipe(Ok)
        }),
        row("layer_norm_squared", vec![signed(&[3, 5], 110)], true, |x| {
            x[0].layer_norm(&[5], None, None, 1e-5)?.square().pipe(Ok)
        }),
        row("checkpoint", vec![signed(&[3, 4], 115), signed(&[4, 2], 116)], true, |x| {
            let outs = graphgrad_autodiff::checkpoint(|v| Ok(vec![v[0].matmul(&v[1])?.tanh()]), x)?;
            outs[0].square().pipe(Ok)
        }),
        row("dropout", vec![signed(&[4, 5], 107)], true, |x| {
            // a fresh generator per evaluation: the same mask at every point
            x[0].dropout(0.3, true, &graphgrad_autodiff::Generator::new(7))
        }),
        // ---- convolution and pooling ----
        row(
            "conv2d",
            vec![signed(&[2, 4, 5, 6], 110), signed(&[4, 2, 3, 2], 111), signed(&[4], 112)],
            true,
            move |x| x[0].conv2d(&x[1], Some(&x[2]), conv),
        ),
        row("conv1d", vec![signed(&[2, 3, 7], 113), signed(&[2, 3, 3], 114)], true, |x| {
            x[0].conv1d(&x[1], None, ConvOptions::default().stride(2).padding(1))
        }),
        row(
            "conv_transpose2d",
            vec![signed(&[1, 2, 3, 3], 115), signed(&[2, 3, 3, 3], 116), signed(&[3], 117)],
            true,
            |x| {
                let options = ConvOptions::default().stride(2).padding(1).output_padding((1, 0));
                x[0].conv_transpose2d(&x[1], Some(&x[2]), options)
            },
        ),
        row("max_pool2d", vec![distinct(&[2, 2, 5, 5], 118)], true, |x| {
            x[0].max_pool2d((3, 3), (2, 2), (1, 1))
        }),
        row("avg_pool2d", vec![signed(&[2, 2, 5, 4], 119)], true, |x| {
            x[0].avg_pool2d((3, 2), (2, 2), (1, 1))
        }),
    ]
}

/// `x.pipe(f)` = `f(x)`, for ending a row's chain in `Ok`.
trait Pipe: Sized {
    fn pipe<R>(self, f: impl FnOnce(Self) -> R) -> R {
        f(self)
    }
}
impl Pipe for Tensor {}

#[test]
fn every_row_passes_gradcheck() {
    let options = GradcheckOptions::default();
    let cast_options = GradcheckOptions { eps: 1e-2, atol: 1e-3, rtol: 1e-3 };
    for r in table() {
        let opts = if r.name == "cast" { cast_options } else { options };
        if let Err(e) = gradcheck(&r.f, &r.inputs, opts) {
            panic!("{}: {e}", r.name);
        }
    }
}

#[test]
fn twice_differentiable_rows_pass_gradgradcheck() {
    let options = GradcheckOptions { eps: 1e-5, atol: 1e-4, rtol: 1e-3 };
    for r in table().into_iter().filter(|r| r.twice) {
        if let Err(e) = gradgradcheck(&r.f, &r.inputs, options) {
            panic!("{}: {e}", r.name);
        }
    }
}

/// `x ↦ ∇ₓ Σ v ⊙ f(x)`, every input's gradient flattened and concatenated (a fixed `v`, so the
/// gradient depends on the input even for linear `f`), through `func::grad` so it composes.
fn gradient_of(f: &Fun) -> impl Fn(&[Tensor]) -> Result<Tensor> + '_ {
    move |xs: &[Tensor]| {
        let g = func::grad(|v: &[Tensor]| {
            let out = f(v)?;
            let weights: Vec<f64> = (0..out.numel()).map(|i| 0.5 + (i % 7) as f64 * 0.15).collect();
            Ok(out.mul(&Tensor::from_vec(weights, out.shape())?)?.sum_all())
        })(xs)?;
        let flat = g.iter().map(|g| g.reshape(&[g.numel()])).collect::<Result<Vec<_>>>()?;
        Tensor::cat(&flat, 0)
    }
}

#[test]
fn every_row_passes_jvpcheck() {
    let options = GradcheckOptions { eps: 1e-5, atol: 1e-5, rtol: 1e-4 };
    let cast_options = GradcheckOptions { eps: 1e-2, atol: 1e-3, rtol: 1e-3 };
    for r in table() {
        let opts = if r.name == "cast" { cast_options } else { options };
        if let Err(e) = jvpcheck(&r.f, &r.inputs, opts) {
            panic!("{}: {e}", r.name);
        }
        if let Err(e) = jvpcheck(gradient_of(&r.f), &r.inputs, opts) {
            panic!("{} (gradient): {e}", r.name);
        }
    }
}

fn collect(t: &Tensor, seen: &mut BTreeSet<String>, visited: &mut BTreeSet<usize>) {
    let mut stack = vec![t.clone()];
    while let Some(t) = stack.pop() {
        if visited.insert(t.id()) {
            seen.insert(t.op().name().to_string());
            stack.extend(t.inputs().iter().cloned());
        }
    }
}

#[test]
fn every_op_has_a_row() {
    let mut seen = BTreeSet::new();
    let mut visited = BTreeSet::new();
    let mut keep_alive = Vec::new(); // node ids must stay unique while collecting
    for r in table() {
        let leaves: Vec<Tensor> = r.inputs.iter().map(Tensor::requires_grad_).collect();
        let out = (r.f)(&leaves).unwrap();
        collect(&out, &mut seen, &mut visited);
        // The first-order gradient graph holds the backward-only ops (conv adjoints, ...).
        let loss = out.mul(&out).unwrap().sum_all();
        for g in grad(&[loss], &leaves, true).unwrap() {
            collect(&g, &mut seen, &mut visited);
            keep_alive.push(g);
        }
        keep_alive.push(out);
    }
    // Every differentiable op of every family's facts table; comparisons, `sign` and
    // max-pool's indices carry no gradient.
    let expected: Vec<String> =
        Op::all().iter().filter(|op| op.is_differentiable()).map(|op| op.name().to_string()).collect();
    let missing: Vec<&String> = expected.iter().filter(|e| !seen.contains(*e)).collect();
    assert!(missing.is_empty(), "ops without a gradcheck row: {missing:?}");
}
