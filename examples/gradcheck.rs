//! Checking a user-defined model's gradients numerically, and what a caught mistake looks like.
//!
//! Part 1 defines a small model of its own (a `Module` written here, not taken from `nn`): a
//! two-layer network with a custom activation built from tensor ops, swish_β(x) = x·σ(β·x),
//! and a custom loss, log-cosh, mean(ln cosh(prediction − target)). Everything is f64.
//! `graphgrad::autodiff::gradcheck` compares autodiff's gradient of the loss with respect to
//! every input and every parameter with central finite differences; `gradgradcheck` does the
//! same for second derivatives (the gradient of the gradient, built with `create_graph`).
//!
//! Part 2 shows a failure. A user who writes a derivative by hand (here for the activation,
//! plugged in as a custom gradient with the detach trick: value swish_β(x), gradient whatever
//! the user says) can check it the same way. The correct formula passes; a deliberately wrong
//! one (β forgotten in one term) is caught, and the report names the worst element, its
//! index, and the analytic and numeric values. The example succeeds when the mistake is caught
//! (and fails if it were not).
//!
//! ```text
//! cargo run --release --example gradcheck
//! cargo run --release --example gradcheck -- --seed 3 --batch 8 --hidden 6 --beta 1.5
//! ```
//!
//! Writes `manual_derivative.svg` (the correct and the wrong derivative against finite
//! differences) to `out/gradcheck` (or `--out DIR`).

mod common;

use common::{lines_and_points, output_dir, AnyResult, Flags, Series};
use graphgrad::autodiff::{gradcheck, gradgradcheck, DType, Error, GradcheckOptions, Result, Tensor, Var};
use graphgrad::nn::{Module, Visitor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::process::ExitCode;
use std::time::Instant;

/// How an activation computes its gradient.
#[derive(Clone, Copy)]
enum Activation {
    /// swish_β from tensor ops: autodiff derives the gradient.
    Autodiff,
    /// swish_β's value with a hand-written derivative as its gradient.
    Manual(fn(&Tensor, f64) -> Result<Tensor>),
}

/// swish_β(x) = x·σ(β·x), written from tensor ops.
fn swish(x: &Tensor, beta: f64) -> Result<Tensor> {
    x * (x * beta).sigmoid()
}

/// The right derivative: d/dx x·σ(βx) = σ(βx) + β·x·σ(βx)·(1 − σ(βx)).
fn swish_derivative(x: &Tensor, beta: f64) -> Result<Tensor> {
    let s = (x * beta).sigmoid();
    &s + ((x * &s)? * (1.0 - &s))? * beta
}

/// A plausible mistake: the chain rule's inner factor β is forgotten in the second term.
fn swish_derivative_wrong(x: &Tensor, beta: f64) -> Result<Tensor> {
    let s = (x * beta).sigmoid();
    &s + ((x * &s)? * (1.0 - &s))?
}

/// An op whose value is swish_β(x) and whose gradient is `derivative(x)`: the value is
/// detached, and (x − detach(x))·detach(d) adds exactly zero to it but carries ∂/∂x = d.
fn swish_with_manual_gradient(
    x: &Tensor,
    beta: f64,
    derivative: fn(&Tensor, f64) -> Result<Tensor>,
) -> Result<Tensor> {
    let value = swish(x, beta)?.detach();
    let d = derivative(x, beta)?.detach();
    ((x - x.detach())? * &d)? + &value
}

fn activate(x: &Tensor, beta: f64, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Autodiff => swish(x, beta),
        Activation::Manual(derivative) => swish_with_manual_gradient(x, beta, derivative),
    }
}

/// log-cosh loss: mean(ln cosh(p − t)), with cosh(d) = (eᵈ + e⁻ᵈ)/2.
fn log_cosh_loss(prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    let d = prediction.sub(target)?;
    Ok(((d.exp() + (-&d).exp())? * 0.5).log().mean_all())
}

/// The model's computation with explicit parameters `[w1, b1, w2, b2]`: gradcheck perturbs
/// them, and the `Module` below calls it with its own `Var`s.
fn forward_with(x: &Tensor, params: &[Tensor], beta: f64, activation: Activation) -> Result<Tensor> {
    let [w1, b1, w2, b2] = params else {
        return Err(Error::InvalidArgument { op: "SwishMlp", reason: "needs 4 parameters".into() });
    };
    let hidden = activate(&x.matmul(w1)?.add(b1)?, beta, activation)?;
    hidden.matmul(w2)?.add(b2)
}

/// in → hidden (swish_β) → out, parameters in f64.
struct SwishMlp {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    beta: f64,
}

impl SwishMlp {
    fn new(
        inputs: usize,
        hidden: usize,
        outputs: usize,
        beta: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<SwishMlp> {
        let (s1, s2) = (1.0 / (inputs as f64).sqrt(), 1.0 / (hidden as f64).sqrt());
        Ok(SwishMlp {
            w1: Var::new("w1", &Tensor::rand(&[inputs, hidden], -s1, s1, DType::F64, rng)?),
            b1: Var::new("b1", &Tensor::rand(&[hidden], -s1, s1, DType::F64, rng)?),
            w2: Var::new("w2", &Tensor::rand(&[hidden, outputs], -s2, s2, DType::F64, rng)?),
            b2: Var::new("b2", &Tensor::rand(&[outputs], -s2, s2, DType::F64, rng)?),
            beta,
        })
    }

    fn parameter_tensors(&self) -> Vec<Tensor> {
        self.parameters().iter().map(|v| v.tensor().clone()).collect()
    }
}

impl Module for SwishMlp {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        forward_with(input, &self.parameter_tensors(), self.beta, Activation::Autodiff)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        for var in [&self.w1, &self.b1, &self.w2, &self.b2] {
            v.parameter(var.name(), var);
        }
    }
}

/// Runs a check and prints its outcome; returns the error for the caller to judge.
fn report(what: &str, elements: usize, check: impl FnOnce() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    let result = check();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    match &result {
        Ok(()) => println!("  {what}: passed ({elements} elements, {ms:.1} ms)"),
        Err(e) => println!("  {what}: FAILED ({elements} elements, {ms:.1} ms)\n    {e}"),
    }
    result
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(&["seed", "batch", "hidden", "beta", "out"], &[])?;
    let seed: u64 = flags.get("seed", 0)?;
    let batch: usize = flags.get("batch", 5)?;
    let hidden: usize = flags.get("hidden", 4)?;
    let beta: f64 = flags.get("beta", 1.5)?;
    let out = output_dir(&flags, "gradcheck")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let options = GradcheckOptions::default();
    println!(
        "finite differences: central, ε = {:e}; an element passes when |analytic − numeric| ≤ {:e} + {:e}·|numeric|\n",
        options.eps, options.atol, options.rtol
    );

    // Part 1: a user-defined model, checked whole.
    let (n_in, n_out) = (3, 2);
    let model = SwishMlp::new(n_in, hidden, n_out, beta, &mut rng)?;
    let x = Tensor::randn(&[batch, n_in], 0.0, 1.0, DType::F64, &mut rng)?;
    let target = Tensor::randn(&[batch, n_out], 0.0, 1.0, DType::F64, &mut rng)?;
    println!(
        "part 1: model {n_in} → {hidden} (swish, β = {beta}) → {n_out}, log-cosh loss, batch of {batch}; loss {:.6}",
        log_cosh_loss(&model.forward(&x)?, &target)?.item()?
    );
    let mut inputs = vec![x.clone()];
    inputs.extend(model.parameter_tensors());
    let names = ["x", "w1", "b1", "w2", "b2"];
    let elements: usize = inputs.iter().map(Tensor::numel).sum();
    println!(
        "  checking ∂loss/∂({}) with shapes {:?}",
        names.join(", "),
        inputs.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>()
    );
    let loss_of =
        |xs: &[Tensor]| log_cosh_loss(&forward_with(&xs[0], &xs[1..], beta, Activation::Autodiff)?, &target);
    report("gradcheck (first derivatives)", elements, || gradcheck(loss_of, &inputs, options))?;
    report("gradgradcheck (second derivatives)", elements, || gradgradcheck(loss_of, &inputs, options))?;

    // Part 2: a hand-written derivative, right and wrong.
    println!("\npart 2: a hand-written derivative of swish_β, plugged in as the activation's gradient");
    let z = Tensor::randn(&[8], 0.0, 2.0, DType::F64, &mut rng)?;
    println!("  at z = {:.3?}", z.to_f64_vec());
    report("correct derivative σ(βz) + β·z·σ(βz)·(1 − σ(βz))", z.numel(), || {
        gradcheck(
            |xs| swish_with_manual_gradient(&xs[0], beta, swish_derivative),
            std::slice::from_ref(&z),
            options,
        )
    })?;
    let caught = report("wrong derivative σ(βz) + z·σ(βz)·(1 − σ(βz))", z.numel(), || {
        gradcheck(
            |xs| swish_with_manual_gradient(&xs[0], beta, swish_derivative_wrong),
            std::slice::from_ref(&z),
            options,
        )
    });
    match caught {
        Err(Error::GradcheckFailed { input, index, analytic, numeric, excess }) => println!(
            "  caught: worst element z[{index}] (input {input}) = {:.4}: hand-written {analytic:.6}, \
             finite differences {numeric:.6}, {excess:.2e} over the tolerance",
            z.to_f64_vec()[index]
        ),
        Err(other) => return Err(format!("the check failed for another reason: {other}").into()),
        Ok(()) => return Err("the wrong derivative was not caught".into()),
    }
    // The same mistake inside the model: the report names the parameter it shows up in.
    let buggy = Activation::Manual(swish_derivative_wrong);
    let caught = report("the model with the wrong derivative inside", elements, || {
        gradcheck(
            |xs| log_cosh_loss(&forward_with(&xs[0], &xs[1..], beta, buggy)?, &target),
            &inputs,
            options,
        )
    });
    match caught {
        Err(Error::GradcheckFailed { input, index, analytic, numeric, .. }) => {
            let shape = inputs[input].shape();
            let position: Vec<usize> = (0..shape.len())
                .map(|d| index / shape[d + 1..].iter().product::<usize>() % shape[d])
                .collect();
            println!(
                "  caught: worst element {}{position:?} (flat index {index}): autodiff with the hand-written \
                 derivative {analytic:.6}, finite differences {numeric:.6}",
                names[input]
            );
        }
        Err(other) => return Err(format!("the check failed for another reason: {other}").into()),
        Ok(()) => return Err("the wrong derivative inside the model was not caught".into()),
    }

    // Picture: the two hand-written derivatives against the finite-difference one.
    let grid: Vec<f64> = (0..=120).map(|i| -6.0 + 0.1 * i as f64).collect();
    let zs = Tensor::from_vec(grid.clone(), &[grid.len()])?;
    let eps = options.eps;
    let numeric: Vec<f64> =
        ((swish(&(&zs + eps), beta)? - swish(&(&zs - eps), beta)?)? * (0.5 / eps)).to_f64_vec();
    let curve = |values: Vec<f64>| grid.iter().copied().zip(values).collect::<Vec<_>>();
    let path = out.join("manual_derivative.svg");
    lines_and_points(
        &path,
        &format!("d/dz z·σ({beta}·z): hand-written derivatives against finite differences"),
        "z",
        "derivative",
        &[
            Series {
                label: "correct hand-written",
                points: curve(swish_derivative(&zs, beta)?.to_f64_vec()),
            },
            Series {
                label: "wrong hand-written (β forgotten)",
                points: curve(swish_derivative_wrong(&zs, beta)?.to_f64_vec()),
            },
        ],
        &[Series { label: "finite differences", points: curve(numeric).into_iter().step_by(4).collect() }],
    )?;
    println!("\nthe wrong derivative was caught, as it should be; wrote {}", path.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gradcheck: {e}");
            ExitCode::FAILURE
        }
    }
}
