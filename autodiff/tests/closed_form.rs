//! Gradients against closed forms: the course's linear regression, and second derivatives.

use graphgrad_autodiff::{grad, Tensor, Var};

/// y = a·x + b, L = 1/(2n)·Σ(yᵢ* − (a·xᵢ + b))²: ∂L/∂a = 1/n·Σ(a·xᵢ+b−yᵢ*)·xᵢ and
/// ∂L/∂b = 1/n·Σ(a·xᵢ+b−yᵢ*).
#[test]
fn linear_regression_gradients_match_the_closed_form() {
    let xs: Vec<f64> = (0..20).map(|i| i as f64 * 0.25 - 1.0).collect();
    let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x + 0.5 + 0.1 * (x * 7.0).sin()).collect();
    let n = xs.len() as f64;
    let x = Tensor::from_vec(xs.clone(), &[20]).unwrap();
    let y = Tensor::from_vec(ys.clone(), &[20]).unwrap();
    let a = Var::new("a", &Tensor::scalar(0.58f64));
    let b = Var::new("b", &Tensor::scalar(0.25f64));
    for _step in 0..5 {
        let (av, bv) = (a.item().unwrap(), b.item().unwrap());
        let pred = x.mul(&a).unwrap().add(&b).unwrap();
        let loss = y.sub(&pred).unwrap().square().sum_all().mul_scalar(1.0 / (2.0 * n));
        a.zero_grad();
        b.zero_grad();
        loss.backward().unwrap();
        let residual = |i: usize| av * xs[i] + bv - ys[i];
        let da: f64 = (0..xs.len()).map(|i| residual(i) * xs[i]).sum::<f64>() / n;
        let db: f64 = (0..xs.len()).map(residual).sum::<f64>() / n;
        let (ga, gb) = (a.grad().unwrap().item().unwrap(), b.grad().unwrap().item().unwrap());
        assert!((ga - da).abs() < 1e-12 * (1.0 + da.abs()), "∂L/∂a {ga} vs {da}");
        assert!((gb - db).abs() < 1e-12 * (1.0 + db.abs()), "∂L/∂b {gb} vs {db}");
        a.set(&Tensor::scalar(av - 0.01 * ga)).unwrap();
        b.set(&Tensor::scalar(bv - 0.01 * gb)).unwrap();
    }
}

/// f(x) = sin-free polynomial e^x·x²: f' = e^x(x² + 2x), f'' = e^x(x² + 4x + 2).
#[test]
fn second_derivative_matches_the_closed_form() {
    for x0 in [-1.3f64, 0.0, 0.7, 2.1] {
        let x = Tensor::from_vec(vec![x0], &[1]).unwrap().requires_grad_();
        let f = x.exp().mul(&x.square()).unwrap().sum_all();
        let d1 = grad(&[f], std::slice::from_ref(&x), true).unwrap().remove(0);
        let d2 = grad(&[d1.sum_all()], &[x], false).unwrap().remove(0);
        let e = x0.exp();
        assert!((d1.item().unwrap() - e * (x0 * x0 + 2.0 * x0)).abs() < 1e-12);
        assert!((d2.item().unwrap() - e * (x0 * x0 + 4.0 * x0 + 2.0)).abs() < 1e-12);
    }
}

/// Gradients accumulate across backward calls until cleared, like PyTorch's.
#[test]
fn backward_accumulates_into_leaves() {
    let w = Var::new("w", &Tensor::from_vec(vec![1.0f64, -2.0], &[2]).unwrap());
    for _ in 0..3 {
        w.mul(&w).unwrap().sum_all().backward().unwrap();
    }
    assert_eq!(w.grad().unwrap().to_vec::<f64>().unwrap(), vec![6.0, -12.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
}

/// PyTorch 2.15's gradients at the kinks, in f64: `x.clamp(1., 2.)` on [0, 1, 1.5, 2, 3] gives
/// [0, 0, 1, 0, 0] (0 on the bounds), and `hardtanh` the same.
#[test]
fn clamp_and_hardtanh_have_pytorch_gradients_on_their_bounds() {
    for f in [|x: &Tensor| x.clamp(1.0, 2.0), |x: &Tensor| x.hardtanh(1.0, 2.0)] {
        let x = Tensor::from_vec(vec![0.0f64, 1.0, 1.5, 2.0, 3.0], &[5]).unwrap().requires_grad_();
        let y = f(&x).unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![1.0, 1.0, 1.5, 2.0, 2.0]);
        let g = grad(&[y.sum_all()], &[x], false).unwrap();
        assert_eq!(g[0].to_vec::<f64>().unwrap(), vec![0.0, 0.0, 1.0, 0.0, 0.0]);
    }
    let err = Tensor::scalar(0.5f64).hardtanh(1.0, 0.0).unwrap_err().to_string();
    assert!(err.starts_with("hardtanh"), "{err}");
}

/// PyTorch 2.15's relu gradient (`threshold_backward` on the result): the upstream gradient
/// where the output is positive, 0 elsewhere, also at 0, −0 and NaN (NaN > 0 is false).
#[test]
fn relu_has_pytorch_gradients_at_its_kink_and_at_nan() {
    let x = Tensor::from_vec(vec![-2.0f64, -0.0, 0.0, 1e-300, 3.0, f64::NAN], &[6]).unwrap().requires_grad_();
    let weights = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[6]).unwrap();
    let y = x.relu();
    let g = grad(&[y.mul(&weights).unwrap().sum_all()], &[x], false).unwrap();
    assert_eq!(g[0].to_vec::<f64>().unwrap(), vec![0.0, 0.0, 0.0, 4.0, 5.0, 0.0]);
}

/// PyTorch 2.15's gradients of powers at a zero base, in f64: `x ** 0` has gradient 0 even at
/// x = 0 (not 0·0⁻¹ = NaN); for `a ** b` at a = 0, ∂/∂a is 0 where b = 0 and b·a^{b−1} otherwise,
/// and ∂/∂b is 0 where b ≥ 0 (not a^b·ln a = 0·(−∞)).
#[test]
fn powers_at_a_zero_base_have_pytorch_gradients() {
    let x = Tensor::from_vec(vec![0.0f64, 2.0], &[2]).unwrap().requires_grad_();
    let g = grad(&[x.pow_scalar(0.0).sum_all()], &[x], false).unwrap();
    assert_eq!(g[0].to_vec::<f64>().unwrap(), vec![0.0, 0.0]);
    // a = [0, 0, 0, 2], b = [2, 1, 0, 0.5]: ∂/∂a = [0, 1, 0, 0.5/√2], ∂/∂b = [0, 0, 0, √2·ln 2]
    let a = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 2.0], &[4]).unwrap().requires_grad_();
    let b = Tensor::from_vec(vec![2.0f64, 1.0, 0.0, 0.5], &[4]).unwrap().requires_grad_();
    let y = a.pow(&b).unwrap();
    assert_eq!(y.to_vec::<f64>().unwrap(), vec![0.0, 0.0, 1.0, 2f64.sqrt()]);
    let g = grad(&[y.sum_all()], &[a, b], false).unwrap();
    let (ga, gb) = (g[0].to_vec::<f64>().unwrap(), g[1].to_vec::<f64>().unwrap());
    assert_eq!((&ga[..3], &gb[..3]), (&[0.0, 1.0, 0.0][..], &[0.0, 0.0, 0.0][..]));
    assert!((ga[3] - 0.5 / 2f64.sqrt()).abs() < 1e-15, "{ga:?}");
    assert!((gb[3] - 2f64.sqrt() * 2f64.ln()).abs() < 1e-15, "{gb:?}");
}
