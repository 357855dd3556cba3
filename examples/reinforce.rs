//! Policy gradient (REINFORCE with a learned baseline) balances a pole on a cart.
//!
//! The CartPole simulation is written here: the classic Barto–Sutton–Anderson dynamics as in
//! Gym's CartPole-v1 (gravity 9.8, cart mass 1.0, pole mass 0.1, pole half-length 0.5, force
//! ±10, time step 0.02 s, Euler integration; an episode ends when the pole leans more than
//! 12° or the cart leaves |x| ≤ 2.4, or after 500 steps; reward 1 per step). The policy is a
//! small MLP from the 4 state variables to the logits of "push left" / "push right"; after each
//! episode it follows the gradient of Σₜ log π(aₜ|sₜ)·(Gₜ − V(sₜ)), where Gₜ is the discounted
//! return and V a value network trained on the returns (the baseline, which lowers the
//! variance without biasing the gradient); both with Adam. Training stops when the task is
//! solved (average return ≥ 475 over 100 consecutive episodes, as Gym's CartPole-v1) or the
//! episode budget is spent. Writes the returns curve.
//!
//! ```text
//! cargo run --release --example reinforce
//! cargo run --release --example reinforce -- --episodes 3000 --lr 0.005 --gamma 0.99 --seed 2
//! ```
//! Flags: `--episodes` (budget), `--lr` (policy), `--value-lr`, `--gamma`, `--hidden`,
//! `--seed`, `--out DIR`.

mod common;

use common::{line_chart, output_dir, progress, AnyResult, Flags, Series};
use graphgrad::autodiff::{no_grad, Tensor};
use graphgrad::nn::loss::mse_loss;
use graphgrad::nn::{LinearConfig, Module, ReLU, Reduction, Sequential, Tanh};
use graphgrad::optim::{Adam, AdamConfig, Optimizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::process::ExitCode;

/// Average return over `SOLVED_WINDOW` consecutive episodes that counts as solved.
const SOLVED_RETURN: f64 = 475.0;
const SOLVED_WINDOW: usize = 100;
/// Longest episode (CartPole-v1's time limit).
const MAX_STEPS: usize = 500;

/// The cart-pole system: state (x, ẋ, θ, θ̇) with θ = 0 upright.
struct CartPole {
    state: [f64; 4],
    steps: usize,
}

impl CartPole {
    const GRAVITY: f64 = 9.8;
    const CART_MASS: f64 = 1.0;
    const POLE_MASS: f64 = 0.1;
    const TOTAL_MASS: f64 = Self::CART_MASS + Self::POLE_MASS;
    /// Half the pole's length.
    const LENGTH: f64 = 0.5;
    const POLE_MASS_LENGTH: f64 = Self::POLE_MASS * Self::LENGTH;
    const FORCE: f64 = 10.0;
    const TAU: f64 = 0.02;
    const THETA_LIMIT: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
    const X_LIMIT: f64 = 2.4;

    /// A new episode: every state variable uniform in ±0.05.
    fn reset(rng: &mut ChaCha8Rng) -> CartPole {
        CartPole { state: std::array::from_fn(|_| rng.gen_range(-0.05..0.05)), steps: 0 }
    }

    /// Applies action 0 (push left) or 1 (push right) for one time step; returns whether the
    /// episode is over (the pole fell, the cart left the track, or the time limit).
    fn step(&mut self, action: usize) -> bool {
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if action == 1 { Self::FORCE } else { -Self::FORCE };
        let (sin, cos) = theta.sin_cos();
        let temp = (force + Self::POLE_MASS_LENGTH * theta_dot * theta_dot * sin) / Self::TOTAL_MASS;
        let theta_acc = (Self::GRAVITY * sin - cos * temp)
            / (Self::LENGTH * (4.0 / 3.0 - Self::POLE_MASS * cos * cos / Self::TOTAL_MASS));
        let x_acc = temp - Self::POLE_MASS_LENGTH * theta_acc * cos / Self::TOTAL_MASS;
        // Euler integration, as Gym's default.
        self.state = [
            x + Self::TAU * x_dot,
            x_dot + Self::TAU * x_acc,
            theta + Self::TAU * theta_dot,
            theta_dot + Self::TAU * theta_acc,
        ];
        self.steps += 1;
        let [x, _, theta, _] = self.state;
        x.abs() > Self::X_LIMIT || theta.abs() > Self::THETA_LIMIT || self.steps >= MAX_STEPS
    }
}

/// One episode's states, actions and rewards.
struct Episode {
    states: Vec<f32>,
    actions: Vec<usize>,
    rewards: Vec<f64>,
}

/// Runs one episode, sampling actions from the policy (no gradients are recorded here).
fn rollout(policy: &Sequential, rng: &mut ChaCha8Rng) -> AnyResult<Episode> {
    let mut env = CartPole::reset(rng);
    let mut episode = Episode { states: Vec::new(), actions: Vec::new(), rewards: Vec::new() };
    no_grad(|| -> AnyResult<()> {
        loop {
            let state: Vec<f32> = env.state.iter().map(|&v| v as f32).collect();
            let logits = policy.forward(&Tensor::from_slice(&state, &[1, 4])?)?;
            let p_right = logits.softmax(-1)?.to_f64_vec()[1];
            let action = usize::from(rng.gen::<f64>() < p_right);
            episode.states.extend(state);
            episode.actions.push(action);
            let done = env.step(action);
            episode.rewards.push(1.0);
            if done {
                return Ok(());
            }
        }
    })?;
    Ok(episode)
}

/// Gₜ = rₜ + γ·rₜ₊₁ + γ²·rₜ₊₂ + …
fn discounted_returns(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut returns = vec![0.0; rewards.len()];
    let mut g = 0.0;
    for t in (0..rewards.len()).rev() {
        g = rewards[t] + gamma * g;
        returns[t] = g;
    }
    returns
}

fn mlp(hidden: usize, outputs: usize, rng: &mut ChaCha8Rng) -> AnyResult<Sequential> {
    Ok(Sequential::new()
        .append(LinearConfig::new(4, hidden).init(rng)?)
        .append(Tanh)
        .append(LinearConfig::new(hidden, hidden).init(rng)?)
        .append(ReLU)
        .append(LinearConfig::new(hidden, outputs).init(rng)?))
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(&["episodes", "lr", "value-lr", "gamma", "hidden", "seed", "out"], &[])?;
    let fast = common::fast_mode();
    let budget: usize = flags.get("episodes", if fast { 5 } else { 3000 })?;
    let lr: f64 = flags.get("lr", 0.002)?;
    let value_lr: f64 = flags.get("value-lr", 0.005)?;
    let gamma: f64 = flags.get("gamma", 0.99)?;
    let hidden: usize = flags.get("hidden", 64)?;
    let seed: u64 = flags.get("seed", 0)?;
    if !(0.0..=1.0).contains(&gamma) || budget == 0 || hidden == 0 {
        return Err("--gamma must be in 0..1; --episodes and --hidden positive".into());
    }
    let out = output_dir(&flags, "reinforce")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let policy = mlp(hidden, 2, &mut rng)?;
    let value = mlp(hidden, 1, &mut rng)?;
    let mut policy_opt = Adam::new(policy.named_parameters(), AdamConfig::new(lr))?;
    let mut value_opt = Adam::new(value.named_parameters(), AdamConfig::new(value_lr))?;
    println!(
        "CartPole-v1 dynamics, episodes of at most {MAX_STEPS} steps; solved at an average return ≥ {SOLVED_RETURN} over {SOLVED_WINDOW} consecutive episodes"
    );
    println!(
        "policy 4 → {hidden} → {hidden} → 2 and baseline 4 → {hidden} → {hidden} → 1 (Adam, lr {lr} and {value_lr}), γ = {gamma}, budget {budget} episodes"
    );

    let (mut returns_curve, mut average_curve) = (Vec::new(), Vec::new());
    let mut window: VecDeque<f64> = VecDeque::with_capacity(SOLVED_WINDOW);
    let mut solved_at = None;
    let mut best_average = 0.0f64;
    let bar = progress(budget as u64, "episodes");
    for episode_no in 1..=budget {
        let episode = rollout(&policy, &mut rng)?;
        let total: f64 = episode.rewards.iter().sum();
        let t = episode.actions.len();

        // Baseline: the value network's estimate of each state's return (no gradient flows
        // into the policy through it); the advantage is normalised per episode.
        let states = Tensor::from_vec(episode.states, &[t, 4])?;
        let returns = discounted_returns(&episode.rewards, gamma);
        let returns_t = Tensor::from_vec(returns.iter().map(|&g| g as f32).collect(), &[t, 1])?;
        let v = value.forward(&states)?;
        let baseline = v.to_f64_vec();
        let mut advantage: Vec<f64> = returns.iter().zip(&baseline).map(|(g, b)| g - b).collect();
        let mean = advantage.iter().sum::<f64>() / t as f64;
        let std = (advantage.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / t as f64).sqrt();
        advantage.iter_mut().for_each(|a| *a = (*a - mean) / (std + 1e-8));
        let advantage = Tensor::from_vec(advantage.iter().map(|&a| a as f32).collect(), &[t, 1])?;

        // Policy: ascend Σₜ log π(aₜ|sₜ)·Aₜ, i.e. descend its negative mean.
        let log_probs =
            policy.forward(&states)?.log_softmax(-1)?.gather(1, &episode.actions, Some(&[t, 1]))?;
        let policy_loss = -(log_probs * &advantage)?.mean_all();
        policy_opt.zero_grad();
        policy_loss.backward()?;
        policy_opt.step()?;
        // Baseline: regress V(sₜ) on Gₜ.
        let value_loss = mse_loss(&v, &returns_t, Reduction::Mean)?;
        value_opt.zero_grad();
        value_loss.backward()?;
        value_opt.step()?;

        if window.len() == SOLVED_WINDOW {
            window.pop_front();
        }
        window.push_back(total);
        let average = window.iter().sum::<f64>() / window.len() as f64;
        best_average = best_average.max(if window.len() == SOLVED_WINDOW { average } else { 0.0 });
        returns_curve.push((episode_no as f64, total));
        average_curve.push((episode_no as f64, average));
        bar.set_message(format!("return {total:>3}, average of the last {} {average:.1}", window.len()));
        bar.inc(1);
        if bar.is_hidden() && episode_no % 100 == 0 {
            // Output to a file or pipe: no bar is drawn, so log a line now and then.
            println!("episode {episode_no:>5}: return {total:>3}, average of the last {SOLVED_WINDOW} {average:.1}");
        }
        if window.len() == SOLVED_WINDOW && average >= SOLVED_RETURN {
            solved_at = Some(episode_no);
            break;
        }
    }
    bar.finish();

    match solved_at {
        Some(n) => println!(
            "\nsolved after {n} episodes: episodes {}..{n} averaged {:.1} (≥ {SOLVED_RETURN})",
            n + 1 - SOLVED_WINDOW,
            window.iter().sum::<f64>() / window.len() as f64
        ),
        None if budget < SOLVED_WINDOW => println!(
            "\nnot solved: {budget} episodes (average return {:.1}) are fewer than the {SOLVED_WINDOW} the criterion averages over",
            window.iter().sum::<f64>() / window.len() as f64
        ),
        None => println!(
            "\nnot solved within {budget} episodes: best average over {SOLVED_WINDOW} consecutive episodes {best_average:.1} (needs ≥ {SOLVED_RETURN}; try more --episodes)"
        ),
    }

    // The final policy, acting greedily, on fresh episodes.
    let greedy: Vec<usize> = (0..if fast { 2 } else { 20 })
        .map(|_| -> AnyResult<usize> {
            let mut env = CartPole::reset(&mut rng);
            no_grad(|| -> AnyResult<usize> {
                loop {
                    let state: Vec<f32> = env.state.iter().map(|&v| v as f32).collect();
                    let logits = policy.forward(&Tensor::from_slice(&state, &[1, 4])?)?.to_f64_vec();
                    if env.step(usize::from(logits[1] > logits[0])) {
                        return Ok(env.steps);
                    }
                }
            })
        })
        .collect::<AnyResult<_>>()?;
    println!(
        "the final policy acting greedily (always its most likely action) on {} new episodes: mean return {:.1}, {} of them reached {MAX_STEPS}",
        greedy.len(),
        greedy.iter().sum::<usize>() as f64 / greedy.len() as f64,
        greedy.iter().filter(|&&r| r == MAX_STEPS).count()
    );

    let chart = out.join("returns.svg");
    let mut threshold = vec![(1.0, SOLVED_RETURN)];
    threshold.push((returns_curve.len().max(2) as f64, SOLVED_RETURN));
    line_chart(
        &chart,
        "REINFORCE with a baseline on CartPole",
        "episode",
        "return (steps balanced)",
        &[
            Series { label: "return", points: returns_curve },
            Series { label: "average of the last 100", points: average_curve },
            Series { label: "solved threshold", points: threshold },
        ],
    )?;
    println!("\nwrote {}", chart.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reinforce: {e}");
            ExitCode::FAILURE
        }
    }
}
