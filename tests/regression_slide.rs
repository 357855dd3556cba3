//! The course's regression slide, met: plain gradient descent run with graphgrad (autodiff
//! gradients, `Var` updates) on the data `linear_regression` generates follows the slide's
//! table within 0.01 at every listed step.

#[path = "../examples/common/slide.rs"]
mod slide;

use graphgrad::autodiff::{no_grad, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// (a, b) after steps 0..=`steps` of w ← w − γ·∂L/∂w on L = 1/(2n)·Σ(yᵢ − (a·xᵢ + b))², with
/// the gradients from `backward()`.
fn descend(xs: &[f64], ys: &[f64], steps: usize) -> Vec<(f64, f64)> {
    let x = Tensor::from_vec(xs.to_vec(), &[xs.len()]).expect("x");
    let y = Tensor::from_vec(ys.to_vec(), &[ys.len()]).expect("y");
    let a = Var::new("a", &Tensor::scalar(slide::START.0));
    let b = Var::new("b", &Tensor::scalar(slide::START.1));
    let mut path = vec![slide::START];
    for _ in 0..steps {
        let prediction = x.mul(&a).and_then(|p| p.add(&b)).expect("a·x + b");
        let loss = y.sub(&prediction).expect("residual").square().mean_all().mul_scalar(0.5);
        a.zero_grad();
        b.zero_grad();
        loss.backward().expect("backward");
        let (ga, gb) = (a.grad().expect("∂L/∂a"), b.grad().expect("∂L/∂b"));
        no_grad(|| {
            a.set(&a.sub(&ga.mul_scalar(slide::LEARNING_RATE)).expect("a − γ·∂L/∂a")).expect("set a");
            b.set(&b.sub(&gb.mul_scalar(slide::LEARNING_RATE)).expect("b − γ·∂L/∂b")).expect("set b");
        });
        path.push((a.item().expect("a"), b.item().expect("b")));
    }
    path
}

#[test]
fn descent_on_the_generated_data_follows_the_slide_within_a_hundredth() {
    let (moments, predicted) = slide::fit_moments();
    let (xs, ys) = slide::data_with_moments(&moments, 100, 0.5, &mut ChaCha8Rng::seed_from_u64(0));
    let path = descend(&xs, &ys, slide::SLIDE_A.len() - 1);
    for (k, &(a, b)) in path.iter().enumerate() {
        let (da, db) = (a - slide::SLIDE_A[k], b - slide::SLIDE_B[k]);
        assert!(
            da.abs() < 0.01,
            "step {k}: a = {a:.4}, the slide says {:.2} (Δ {da:+.4})",
            slide::SLIDE_A[k]
        );
        assert!(
            db.abs() < 0.01,
            "step {k}: b = {b:.4}, the slide says {:.2} (Δ {db:+.4})",
            slide::SLIDE_B[k]
        );
    }
    // The recurrence on the moments, which the solver minimised over, predicts what autodiff did.
    let (worst, _, _) = slide::worst_deviation(&path);
    assert!((worst - predicted).abs() < 1e-9, "worst deviation {worst} but the solver predicted {predicted}");
}

#[test]
fn the_generated_data_has_the_solved_moments_and_looks_like_a_noisy_line() {
    let (moments, _) = slide::fit_moments();
    let (xs, ys) = slide::data_with_moments(&moments, 100, 0.5, &mut ChaCha8Rng::seed_from_u64(0));
    let got = slide::Moments::of(&xs, &ys);
    for (name, g, w) in [
        ("E[x]", got.mean_x, moments.mean_x),
        ("E[x²]", got.mean_x2, moments.mean_x2),
        ("E[y]", got.mean_y, moments.mean_y),
        ("E[xy]", got.mean_xy, moments.mean_xy),
    ] {
        assert!((g - w).abs() < 1e-10 * w.abs().max(1.0), "{name}: data {g}, solver {w}");
    }
    // residuals about the least-squares line: noise of about the requested size, not zero
    let slope = (got.mean_xy - got.mean_x * got.mean_y) / (got.mean_x2 - got.mean_x * got.mean_x);
    let intercept = got.mean_y - slope * got.mean_x;
    let rms =
        (xs.iter().zip(&ys).map(|(x, y)| (y - slope * x - intercept).powi(2)).sum::<f64>() / 100.0).sqrt();
    assert!((0.35..0.65).contains(&rms), "noise rms {rms}");
}

#[test]
fn the_minimax_fit_is_a_vertex_of_three_equal_residuals() {
    // min over (u, v) of max(|u|, |v − 1|, |u + v − 3|). By hand: u + (v − 1) − (u + v − 3) = 2
    // for every (u, v), so one of the three is at least 2/3; u = 2/3, v = 5/3 makes them
    // 2/3, 2/3, −2/3, so the minimum is D = 2/3 there (and only there).
    let (u, v, d) = slide::chebyshev_2d(&[0.0, -1.0, -3.0], &[1.0, 0.0, 1.0], &[0.0, 1.0, 1.0]);
    assert!((d - 2.0 / 3.0).abs() < 1e-12, "D = {d}");
    assert!((u - 2.0 / 3.0).abs() < 1e-12 && (v - 5.0 / 3.0).abs() < 1e-12, "(u, v) = ({u}, {v})");
}
