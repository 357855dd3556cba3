//! A physics-informed network solving the 1-d heat equation, against its closed form.
//!
//! u_t = u_xx on x ∈ [0, 1], t ∈ [0, T], with u(x, 0) = sin(πx) and u(0, t) = u(1, t) = 0,
//! has the solution u = e^{−π²t}·sin(πx). The network N(x, t) (2→32→32→1, tanh, f64) enters
//! the trial solution u = x·(1 − x)·N(x, t), which meets the boundary conditions by
//! construction; the loss is the mean squared residual (u_t − u_xx)² at collocation points
//! plus the mean squared miss of the initial condition at t = 0. The derivatives in the inputs are forward mode: u_t is `func::jvp` of
//! u along the t direction, u_xx a `jvp` of a `jvp` along x (each point's row is independent,
//! so one tangent of ones in a column gives every point's derivative). Training
//! differentiates that loss in the weights (reverse over forward) and takes Adam steps.
//!
//! ```text
//! cargo run --release --example pinn_heat
//! cargo run --release --example pinn_heat -- --steps 3000 --hidden 32
//! ```
//!
//! Writes `solution.txt` (network, closed form and error on a grid) to `out/pinn_heat` (or
//! `--out DIR`).

mod common;

use common::{fast_mode, output_dir, AnyResult, Flags};
use graphgrad::autodiff::{func, DType, Result, Tensor};
use graphgrad::nn::{LinearConfig, Module, Sequential, Tanh};
use graphgrad::optim::{Adam, AdamConfig, Optimizer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;
use std::fmt::Write as _;

/// The final time.
const T: f64 = 0.2;

/// Points `[n, 2]` of (x, t) on a grid of `nx`×`nt` in (0, 1) × (0, T].
fn grid(nx: usize, nt: usize) -> Result<Tensor> {
    let mut v = Vec::with_capacity(nx * nt * 2);
    for i in 0..nx {
        for j in 0..nt {
            v.push((i as f64 + 0.5) / nx as f64);
            v.push(T * (j as f64 + 1.0) / nt as f64);
        }
    }
    Tensor::from_vec(v, &[nx * nt, 2])
}

/// A tangent of ones in column `column` of `points` (every point moved along x or t).
fn direction(points: &Tensor, column: usize) -> Result<Tensor> {
    let n = points.shape()[0];
    let v: Vec<f64> = (0..n).flat_map(|_| [(column == 0) as u8 as f64, (column == 1) as u8 as f64]).collect();
    Tensor::from_vec(v, &[n, 2])
}

/// The trial solution at `points` `[n, 2]`: u = x·(1 − x)·N(x, t), `[n, 1]`.
fn solution(net: &Sequential, points: &Tensor) -> Result<Tensor> {
    let x = points.narrow(1, 0, 1)?;
    (&x * (1.0 - &x))? * net.forward(points)?
}

/// The heat equation's residual u_t − u_xx at `points`, by forward mode in the inputs.
fn residual(net: &Sequential, points: &Tensor) -> Result<Tensor> {
    let (along_x, along_t) = (direction(points, 0)?, direction(points, 1)?);
    let u = |v: &[Tensor]| Ok(vec![solution(net, &v[0])?]);
    let u_t = func::jvp(u, std::slice::from_ref(points), std::slice::from_ref(&along_t))?.1.remove(0);
    let u_x = |v: &[Tensor]| Ok(func::jvp(u, v, std::slice::from_ref(&along_x))?.1);
    let u_xx = func::jvp(u_x, std::slice::from_ref(points), std::slice::from_ref(&along_x))?.1.remove(0);
    u_t - u_xx
}

fn main() -> AnyResult<()> {
    let flags = Flags::parse(&["seed", "steps", "hidden", "lr", "out"], &[])?;
    let seed: u64 = flags.get("seed", 0)?;
    let steps: usize = flags.get("steps", if fast_mode() { 500 } else { 3000 })?;
    let hidden: usize = flags.get("hidden", 32)?;
    let lr: f64 = flags.get("lr", 3e-3)?;
    let out = output_dir(&flags, "pinn_heat")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let net = Sequential::new()
        .append(LinearConfig::new(2, hidden).with_dtype(DType::F64).init(&mut rng)?)
        .append(Tanh)
        .append(LinearConfig::new(hidden, hidden).with_dtype(DType::F64).init(&mut rng)?)
        .append(Tanh)
        .append(LinearConfig::new(hidden, 1).with_dtype(DType::F64).init(&mut rng)?);
    let mut optimizer = Adam::new(net.named_parameters(), AdamConfig::new(lr))?;
    let collocation = grid(16, 8)?;
    let n0 = 32;
    let initial_points: Vec<f64> = (0..n0).flat_map(|i| [(i as f64 + 0.5) / n0 as f64, 0.0]).collect();
    let initial_values: Vec<f64> = initial_points.chunks(2).map(|p| (PI * p[0]).sin()).collect();
    let (initial_points, initial_values) =
        (Tensor::from_vec(initial_points, &[n0, 2])?, Tensor::from_vec(initial_values, &[n0, 1])?);

    // the error against e^{−π²t}·sin(πx) on a finer grid
    let test = grid(25, 10)?;
    let exact: Vec<f64> =
        test.to_f64_vec().chunks(2).map(|p| (-PI * PI * p[1]).exp() * (PI * p[0]).sin()).collect();
    let max_error = |net: &Sequential| -> Result<f64> {
        let u = solution(net, &test)?.to_f64_vec();
        Ok(u.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max))
    };
    let error_before = max_error(&net)?;
    let mut first_loss = None;
    let mut loss_value = 0.0;
    for step in 0..steps {
        optimizer.zero_grad();
        let miss = (solution(&net, &initial_points)? - &initial_values)?.square().mean_all();
        let loss = (residual(&net, &collocation)?.square().mean_all() + miss)?;
        loss.backward()?;
        optimizer.step()?;
        loss_value = loss.item()?;
        first_loss.get_or_insert(loss_value);
        if step % 500 == 0 {
            println!("step {step:5}  loss {loss_value:.3e}");
        }
    }
    let error_after = max_error(&net)?;
    let first_loss = first_loss.unwrap_or(0.0);
    let mut report = format!(
        "heat equation u_t = u_xx, {steps} Adam steps: loss {first_loss:.3e} -> {loss_value:.3e}\n\
         max |u − e^(−π²t)·sin(πx)| on a 25×10 grid: {error_before:.3e} untrained -> {error_after:.3e}\n"
    );
    let u = solution(&net, &test)?.to_f64_vec();
    for (k, p) in test.to_f64_vec().chunks(2).enumerate().step_by(23) {
        writeln!(report, "x {:.3} t {:.3}: network {:.5} closed form {:.5}", p[0], p[1], u[k], exact[k])?;
    }
    print!("{report}");
    std::fs::write(out.join("solution.txt"), &report)?;
    // the full run must solve the equation; a fast run must at least be on its way
    let bound = if fast_mode() { 0.1 * error_before } else { 1e-2 };
    if !(error_after < bound && loss_value < first_loss) {
        return Err(format!("the network's error {error_after:.3e} is not below {bound:.3e}").into());
    }
    println!("the network matches the closed form to {error_after:.3e}");
    Ok(())
}
