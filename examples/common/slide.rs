//! The course's regression slide as numbers: its table of gradient-descent steps, the
//! closed-form recurrence that full-batch descent follows on four moments of the data, the
//! minimax search for the moments that follow the table most closely, and data sets that have
//! given moments exactly.
//!
//! # Why four moments
//!
//! For L(a, b) = 1/(2n)·Σᵢ (yᵢ − (a·xᵢ + b))² the gradient is
//! ∂L/∂a = a·E[x²] + b·E[x] − E[xy] and ∂L/∂b = a·E[x] + b − E[y] (E the mean over the n
//! points). One step of w ← w − γ·∇L is therefore the affine map
//!
//! ```text
//! a' = a − γ·(m₂·a + m₁·b − m_xy)
//! b' = b − γ·(m₁·a + b − m_y)
//! ```
//!
//! with m₁ = E[x], m₂ = E[x²], m_y = E[y], m_xy = E[xy]: the whole trajectory from
//! (0.58, 0.25) is a function of these four numbers and of nothing else in the data.
//!
//! # The minimax search
//!
//! We want the moments that minimise the worst deviation from the slide,
//! D = max over steps k = 1..9 of max(|a_k − A_k|, |b_k − B_k|). Two facts make this easy:
//!
//! 1. For fixed (m₁, m₂) the map above is affine in the forcing (m_xy, m_y), so every a_k and
//!    b_k is affine in (m_xy, m_y): r = r₀ + m_xy·t₁ + m_y·t₂, where r₀ is the deviation
//!    vector (18 entries) with zero forcing and t₁, t₂ are the trajectories started from
//!    (0, 0) with forcing (1, 0) and (0, 1) (read off by running the recurrence three times).
//!    Minimising max|rᵢ| over (m_xy, m_y) is a linear Chebyshev problem in two unknowns, a
//!    linear programme in (m_xy, m_y, D) whose optimum lies at a vertex where three residuals
//!    reach ±D ([`chebyshev_2d`] solves every 3×3 system of three residuals with signs and
//!    keeps the best point: exact, and 3 264 small solves).
//! 2. What is left, the worst deviation as a function of (m₁, m₂) alone, is a smooth-ish 2-d
//!    landscape searched by a grid over m₁ ∈ [−4, 10], m₂ ∈ [5, 120] (with m₂ > m₁², a
//!    positive variance) followed by repeated zooms around the best cell ([`fit_moments`]).
//!
//! The result (printed by the example) has a worst deviation of about 0.008, so every listed
//! a and b is met within 0.01, though not every one rounds to the slide's two decimals.

#![allow(dead_code)] // the example and the test each use a part

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The slide's a after steps 0..=9.
pub const SLIDE_A: [f64; 10] = [0.58, 1.50, 2.10, 2.48, 2.73, 2.89, 2.99, 3.06, 3.10, 3.13];
/// The slide's b after steps 0..=9.
pub const SLIDE_B: [f64; 10] = [0.25, 0.35, 0.40, 0.43, 0.46, 0.47, 0.48, 0.49, 0.49, 0.50];
/// The slide's starting point (a, b).
pub const START: (f64, f64) = (0.58, 0.25);
/// The slide's learning rate γ.
pub const LEARNING_RATE: f64 = 0.01;

/// The four moments of (x, y) that full-batch descent on the squared error depends on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    /// E[x].
    pub mean_x: f64,
    /// E[x²].
    pub mean_x2: f64,
    /// E[y].
    pub mean_y: f64,
    /// E[x·y].
    pub mean_xy: f64,
}

impl Moments {
    /// The moments of the points (x, y) (population means).
    pub fn of(x: &[f64], y: &[f64]) -> Moments {
        let n = x.len() as f64;
        let mean = |f: &dyn Fn(f64, f64) -> f64| x.iter().zip(y).map(|(&a, &b)| f(a, b)).sum::<f64>() / n;
        Moments {
            mean_x: mean(&|x, _| x),
            mean_x2: mean(&|x, _| x * x),
            mean_y: mean(&|_, y| y),
            mean_xy: mean(&|x, y| x * y),
        }
    }
}

/// (a, b) after steps 0..=`steps` of full-batch descent from `start` with rate `lr`, by the
/// closed-form recurrence on the moments (no data needed).
pub fn trajectory(m: &Moments, start: (f64, f64), lr: f64, steps: usize) -> Vec<(f64, f64)> {
    let mut path = vec![start];
    let (mut a, mut b) = start;
    for _ in 0..steps {
        let grad_a = m.mean_x2 * a + m.mean_x * b - m.mean_xy;
        let grad_b = m.mean_x * a + b - m.mean_y;
        (a, b) = (a - lr * grad_a, b - lr * grad_b);
        path.push((a, b));
    }
    path
}

/// The deviations a_k − A_k and b_k − B_k of a path of (a, b) from the slide, steps 1..=9,
/// interleaved (a₁, b₁, a₂, b₂, ...).
pub fn deviations(path: &[(f64, f64)]) -> Vec<f64> {
    (1..SLIDE_A.len()).flat_map(|k| [path[k].0 - SLIDE_A[k], path[k].1 - SLIDE_B[k]]).collect()
}

/// The largest |deviation| of `path` from the slide, and where: (value, step, "a" or "b").
pub fn worst_deviation(path: &[(f64, f64)]) -> (f64, usize, &'static str) {
    let (mut worst, mut at) = (0.0, (1, "a"));
    for (i, d) in deviations(path).into_iter().enumerate() {
        if d.abs() > worst {
            worst = d.abs();
            at = (i / 2 + 1, if i % 2 == 0 { "a" } else { "b" });
        }
    }
    (worst, at.0, at.1)
}

/// min over (u, v) of max over i of |r0ᵢ + u·t1ᵢ + v·t2ᵢ|: returns (u, v, the minimum).
///
/// The linear programme min D s.t. ±(r0ᵢ + u·t1ᵢ + v·t2ᵢ) ≤ D has its optimum at a vertex
/// where three constraints are active, sᵢ·(r0ᵢ + u·t1ᵢ + v·t2ᵢ) = D with signs sᵢ = ±1. Every
/// such 3×3 system is solved (up to a global sign flip, which only negates D) and the
/// candidate with the smallest true max|rᵢ| wins.
pub fn chebyshev_2d(r0: &[f64], t1: &[f64], t2: &[f64]) -> (f64, f64, f64) {
    let n = r0.len();
    let max_abs = |u: f64, v: f64| (0..n).map(|i| (r0[i] + u * t1[i] + v * t2[i]).abs()).fold(0.0, f64::max);
    let mut best = (0.0, 0.0, max_abs(0.0, 0.0));
    for i in 0..n {
        for j in i + 1..n {
            for k in j + 1..n {
                for signs in [[1.0, 1.0, 1.0], [1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]] {
                    // rows: [s·t1, s·t2, −1] · (u, v, D) = −s·r0
                    let rows: Vec<[f64; 4]> = [i, j, k]
                        .iter()
                        .zip(signs)
                        .map(|(&r, s)| [s * t1[r], s * t2[r], -1.0, -s * r0[r]])
                        .collect();
                    if let Some([u, v, _]) = solve_3x3(&rows) {
                        let value = max_abs(u, v);
                        if value < best.2 {
                            best = (u, v, value);
                        }
                    }
                }
            }
        }
    }
    best
}

/// Solves a 3×3 system given as augmented rows by Cramer's rule; `None` when singular.
fn solve_3x3(rows: &[[f64; 4]]) -> Option<[f64; 3]> {
    let det = |c: [usize; 3]| {
        let m = |r: usize, k: usize| rows[r][c[k]];
        m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0))
            + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0))
    };
    let d = det([0, 1, 2]);
    if d.abs() < 1e-14 {
        return None;
    }
    Some([det([3, 1, 2]) / d, det([0, 3, 2]) / d, det([0, 1, 3]) / d])
}

/// For fixed E[x] and E[x²], the (E[xy], E[y]) whose path deviates least from the slide, and
/// that worst deviation (fact 1 of the module docs).
pub fn best_forcing(mean_x: f64, mean_x2: f64) -> (Moments, f64) {
    let steps = SLIDE_A.len() - 1;
    let with = |mean_xy, mean_y| Moments { mean_x, mean_x2, mean_y, mean_xy };
    let zero = trajectory(&with(0.0, 0.0), START, LEARNING_RATE, steps);
    let r0 = deviations(&zero);
    // t₁, t₂: the part of the path each unit of forcing adds (paths from (0, 0), no start).
    let flat = |m: Moments| -> Vec<f64> {
        trajectory(&m, (0.0, 0.0), LEARNING_RATE, steps)[1..].iter().flat_map(|&(a, b)| [a, b]).collect()
    };
    let (t1, t2) = (flat(with(1.0, 0.0)), flat(with(0.0, 1.0)));
    let (mean_xy, mean_y, worst) = chebyshev_2d(&r0, &t1, &t2);
    (with(mean_xy, mean_y), worst)
}

/// The moments whose descent path deviates least from the slide in the worst step, and that
/// deviation: a grid over (E[x], E[x²]) and six zooms around the best cell, each point solved
/// exactly in (E[xy], E[y]) by [`best_forcing`] (fact 2 of the module docs).
pub fn fit_moments() -> (Moments, f64) {
    let search = |x_range: (f64, f64), x2_range: (f64, f64), points: usize, best: &mut (Moments, f64)| {
        for i in 0..points {
            let mean_x = x_range.0 + (x_range.1 - x_range.0) * i as f64 / (points - 1) as f64;
            for j in 0..points {
                let mean_x2 = x2_range.0 + (x2_range.1 - x2_range.0) * j as f64 / (points - 1) as f64;
                if mean_x2 <= mean_x * mean_x + 1e-6 {
                    continue; // the variance E[x²] − E[x]² must be positive
                }
                let candidate = best_forcing(mean_x, mean_x2);
                if candidate.1 < best.1 {
                    *best = candidate;
                }
            }
        }
    };
    let mut best = (Moments { mean_x: 0.0, mean_x2: 1.0, mean_y: 0.0, mean_xy: 0.0 }, f64::MAX);
    let (mut dx, mut dx2) = (7.0, 57.5);
    search((3.0 - dx, 3.0 + dx), (62.5 - dx2, 62.5 + dx2), 41, &mut best);
    for _ in 0..6 {
        // zoom: a tenth of the previous half-width (1–2 cells of the previous grid) around the best point
        (dx, dx2) = (dx / 10.0, dx2 / 10.0);
        let (cx, cx2) = (best.0.mean_x, best.0.mean_x2);
        search((cx - dx, cx + dx), (cx2 - dx2, cx2 + dx2), 21, &mut best);
    }
    best
}

/// `n` points whose moments are exactly `m` (to rounding): x spread uniformly over a range
/// and then shifted and scaled to the wanted E[x] and variance, y = slope·x + intercept plus
/// Gaussian noise of standard deviation `noise` made orthogonal to 1 and x (so it moves
/// neither E[y] nor E[xy]), with slope and intercept the least-squares line the moments imply.
pub fn data_with_moments(m: &Moments, n: usize, noise: f64, rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<f64>) {
    let centred = |v: &mut Vec<f64>| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter_mut().for_each(|x| *x -= mean);
    };
    let variance = m.mean_x2 - m.mean_x * m.mean_x;
    let mut x: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    centred(&mut x);
    let scale = (variance / (x.iter().map(|v| v * v).sum::<f64>() / n as f64)).sqrt();
    x.iter_mut().for_each(|v| *v *= scale); // mean 0, variance exactly `variance`
    let mut e: Vec<f64> = (0..n).map(|_| noise * standard_normal(rng)).collect();
    centred(&mut e);
    let along_x = e.iter().zip(&x).map(|(e, x)| e * x).sum::<f64>() / x.iter().map(|v| v * v).sum::<f64>();
    e.iter_mut().zip(&x).for_each(|(e, x)| *e -= along_x * x); // Σe = 0, Σe·x = 0
    let slope = (m.mean_xy - m.mean_x * m.mean_y) / variance;
    let intercept = m.mean_y - slope * m.mean_x;
    let xs: Vec<f64> = x.iter().map(|v| v + m.mean_x).collect();
    let ys = xs.iter().zip(&e).map(|(x, e)| slope * x + intercept + e).collect();
    (xs, ys)
}

/// One N(0, 1) draw (Box–Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    let v: f64 = rng.gen::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}
