//! Tests of the classification losses: hand-derived values for each reduction, PyTorch's
//! weighting rules, and gradchecks in f64.

use super::*;
use crate::loss::tests::{assert_loss, check_grad, t};
use graphgrad_autodiff::{gradgradcheck, DType, GradcheckOptions};
use graphgrad_ops::testing::assert_close;

const ALL: [Reduction; 3] = [Reduction::None, Reduction::Sum, Reduction::Mean];

/// Logits whose softmax rows are easy fractions:
/// row 0 = [0, 0, 0] → p = [1/3, 1/3, 1/3];
/// row 1 = [ln 2, 0, ln 5] → e^x = [2, 1, 5], p = [2/8, 1/8, 5/8];
/// row 2 = [ln 6, 0, 0] → e^x = [6, 1, 1], p = [6/8, 1/8, 1/8].
fn logits() -> Tensor {
    let (l2, l5, l6) = (2f64.ln(), 5f64.ln(), 6f64.ln());
    t(&[0.0, 0.0, 0.0, l2, 0.0, l5, l6, 0.0, 0.0], &[3, 3])
}

/// log p of `logits()`, row-major.
fn log_p() -> [f64; 9] {
    let third = (1.0f64 / 3.0).ln();
    [
        third,
        third,
        third,
        0.25f64.ln(),
        0.125f64.ln(),
        0.625f64.ln(),
        0.75f64.ln(),
        0.125f64.ln(),
        0.125f64.ln(),
    ]
}

const TARGET: [usize; 3] = [1, 2, 0];

#[test]
fn cross_entropy_hand_computed() {
    // targets [1, 2, 0]: lᵢ = −ln pᵢ[yᵢ] = [ln 3, ln 8/5, ln 8/6]
    let l = [3f64.ln(), 1.6f64.ln(), (4.0f64 / 3.0).ln()];
    assert_loss(cross_entropy(&logits(), &TARGET, Reduction::None), &l);
    // sum = ln(3 · 1.6 · 4/3) = ln 6.4
    assert_loss(cross_entropy(&logits(), &TARGET, Reduction::Sum), &[6.4f64.ln()]);
    assert_loss(cross_entropy(&logits(), &TARGET, Reduction::Mean), &[6.4f64.ln() / 3.0]);
    assert_eq!(cross_entropy(&logits(), &TARGET, Reduction::None).unwrap().shape(), &[3]);
    // NLL on log-softmax is the same
    let lp = t(&log_p(), &[3, 3]);
    assert_loss(nll_loss(&lp, &TARGET, Reduction::Sum), &[6.4f64.ln()]);
    for r in ALL {
        check_grad(|v| cross_entropy(&v[0], &TARGET, r), &[logits()]);
        check_grad(|v| nll_loss(&v[0], &TARGET, r), std::slice::from_ref(&lp));
    }
}

#[test]
fn class_weights_follow_pytorch() {
    // w = [1, 2, 3] ⇒ w[yᵢ] = [2, 3, 1]; lᵢ = w[yᵢ]·[ln 3, ln 1.6, ln 4/3];
    // mean divides by Σ w[yᵢ] = 6, not by 3
    let w = t(&[1.0, 2.0, 3.0], &[3]);
    let l = [2.0 * 3f64.ln(), 3.0 * 1.6f64.ln(), (4.0f64 / 3.0).ln()];
    let ce = |r| CrossEntropyLoss::new().with_weight(w.clone()).with_reduction(r);
    assert_loss(ce(Reduction::None).forward(&logits(), &TARGET), &l);
    assert_loss(ce(Reduction::Sum).forward(&logits(), &TARGET), &[l.iter().sum()]);
    assert_loss(ce(Reduction::Mean).forward(&logits(), &TARGET), &[l.iter().sum::<f64>() / 6.0]);
    let nll = NllLoss::new().with_weight(w.clone());
    assert_loss(nll.forward(&t(&log_p(), &[3, 3]), &TARGET), &[l.iter().sum::<f64>() / 6.0]);
    for r in ALL {
        check_grad(|v| ce(r).forward(&v[0], &TARGET), &[logits()]);
    }
    // a wrong-sized weight is an error
    assert!(CrossEntropyLoss::new().with_weight(t(&[1.0, 2.0], &[2])).forward(&logits(), &TARGET).is_err());
}

#[test]
fn ignore_index_drops_samples() {
    // target [1, 7, 0] with ignore_index 7: sample 1 contributes 0 and is not counted;
    // mean = (ln 3 + ln 4/3)/2 = ln 4 / 2 = ln 2
    let target = [1, 7, 0];
    let ce = |r| CrossEntropyLoss::new().with_ignore_index(7).with_reduction(r);
    assert_loss(ce(Reduction::None).forward(&logits(), &target), &[3f64.ln(), 0.0, (4.0f64 / 3.0).ln()]);
    assert_loss(ce(Reduction::Sum).forward(&logits(), &target), &[4f64.ln()]);
    assert_loss(ce(Reduction::Mean).forward(&logits(), &target), &[2f64.ln()]);
    // with weights [1, 2, 3]: w[yᵢ] = [2, ·, 1]; mean = (2 ln 3 + ln 4/3)/3
    let weighted = ce(Reduction::Mean).with_weight(t(&[1.0, 2.0, 3.0], &[3]));
    assert_loss(weighted.forward(&logits(), &target), &[(2.0 * 3f64.ln() + (4.0f64 / 3.0).ln()) / 3.0]);
    for r in ALL {
        check_grad(|v| ce(r).with_label_smoothing(0.2).forward(&v[0], &target), &[logits()]);
    }
    // an out-of-range target that is not ignored is an error
    assert!(cross_entropy(&logits(), &[1, 3, 0], Reduction::Mean).is_err());
    assert!(cross_entropy(&logits(), &[1, 0], Reduction::Mean).is_err());
}

#[test]
fn label_smoothing_hand_computed() {
    // ε = 0.3, C = 3: lᵢ = 0.7·(−ln pᵢ[yᵢ]) + 0.1·Σ_c(−ln pᵢ[c])
    // row 0: 0.7 ln 3 + 0.1·3 ln 3 = ln 3
    // row 1: 0.7 ln 1.6 + 0.1·(ln 4 + ln 8 + ln 8/5) = 0.7 ln 1.6 + 0.1 ln 51.2
    // row 2: 0.7 ln 4/3 + 0.1·(ln 4/3 + 2 ln 8) = 0.7 ln 4/3 + 0.1 ln(256/3)
    let l = [
        3f64.ln(),
        0.7 * 1.6f64.ln() + 0.1 * 51.2f64.ln(),
        0.7 * (4.0f64 / 3.0).ln() + 0.1 * (256.0f64 / 3.0).ln(),
    ];
    let ce = |r| CrossEntropyLoss::new().with_label_smoothing(0.3).with_reduction(r);
    assert_loss(ce(Reduction::None).forward(&logits(), &TARGET), &l);
    assert_loss(ce(Reduction::Sum).forward(&logits(), &TARGET), &[l.iter().sum()]);
    assert_loss(ce(Reduction::Mean).forward(&logits(), &TARGET), &[l.iter().sum::<f64>() / 3.0]);
    // with class weights w = [1, 2, 3] (PyTorch): both parts are divided by Σ w[yᵢ] = 6:
    // mean = (0.7·Σᵢ w[yᵢ](−ln pᵢ[yᵢ]) + 0.1·Σᵢ Σ_c w[c](−ln pᵢ[c])) / 6
    let w = [1.0, 2.0, 3.0];
    let lp = log_p();
    let nll: f64 = TARGET.iter().enumerate().map(|(i, &y)| -w[y] * lp[i * 3 + y]).sum();
    let smooth: f64 = (0..9).map(|k| -w[k % 3] * lp[k]).sum();
    let weighted = ce(Reduction::Mean).with_weight(t(&w, &[3]));
    assert_loss(weighted.forward(&logits(), &TARGET), &[(0.7 * nll + 0.1 * smooth) / 6.0]);
    for r in ALL {
        check_grad(|v| ce(r).forward(&v[0], &TARGET), &[logits()]);
        check_grad(|v| ce(r).with_weight(t(&w, &[3])).forward(&v[0], &TARGET), &[logits()]);
    }
    assert!(ce(Reduction::Mean).with_label_smoothing(1.5).forward(&logits(), &TARGET).is_err());
}

#[test]
fn extra_axes_and_single_sample() {
    // [N 2, C 3, L 2] equals the [4, 3] rows (n, l) in row-major order
    let x = t(&(0..12).map(|i| (i as f64 * 0.37).sin()).collect::<Vec<_>>(), &[2, 3, 2]);
    let target = [0, 2, 1, 1];
    let rows = x.permute(&[0, 2, 1]).unwrap().reshape(&[4, 3]).unwrap();
    let expected = cross_entropy(&rows, &target, Reduction::None).unwrap().to_f64_vec();
    let per_position = cross_entropy(&x, &target, Reduction::None).unwrap();
    assert_eq!(per_position.shape(), &[2, 2]);
    assert_loss(Ok(per_position), &expected);
    check_grad(|v| cross_entropy(&v[0], &target, Reduction::Mean), std::slice::from_ref(&x));
    // a single sample [C] gives a scalar
    let single = cross_entropy(&t(&[0.0, 0.0], &[2]), &[1], Reduction::None).unwrap();
    assert_eq!(single.shape(), &[] as &[usize]);
    assert_loss(Ok(single), &[2f64.ln()]);
}

#[test]
fn binary_cross_entropy_hand_computed() {
    // x = [0.2, 0.9, 0.5], y = [0, 1, 0.25]:
    // l = −[ln 0.8, ln 0.9, 0.25 ln 0.5 + 0.75 ln 0.5] = [−ln 0.8, −ln 0.9, ln 2]
    let (x, y) = (t(&[0.2, 0.9, 0.5], &[3]), t(&[0.0, 1.0, 0.25], &[3]));
    let l = [-0.8f64.ln(), -0.9f64.ln(), 2f64.ln()];
    assert_loss(binary_cross_entropy(&x, &y, None, Reduction::None), &l);
    assert_loss(binary_cross_entropy(&x, &y, None, Reduction::Sum), &[l.iter().sum()]);
    assert_loss(binary_cross_entropy(&x, &y, None, Reduction::Mean), &[l.iter().sum::<f64>() / 3.0]);
    // weight [1, 2, 3] multiplies elementwise; mean still divides by 3
    let w = t(&[1.0, 2.0, 3.0], &[3]);
    let weighted = l[0] + 2.0 * l[1] + 3.0 * l[2];
    assert_loss(binary_cross_entropy(&x, &y, Some(&w), Reduction::Mean), &[weighted / 3.0]);
    for r in ALL {
        check_grad(|v| binary_cross_entropy(&v[0], &v[1], Some(&w), r), &[x.clone(), y.clone()]);
    }
    // logs clamp at −100: x = 0 with y = 1 costs 100, with a finite gradient
    let edge = t(&[0.0, 1.0], &[2]).requires_grad_();
    let loss = binary_cross_entropy(&edge, &t(&[1.0, 0.0], &[2]), None, Reduction::None).unwrap();
    assert_eq!(loss.to_f64_vec(), vec![100.0, 100.0]);
    loss.sum_all().backward().unwrap();
    assert!(edge.grad().unwrap().to_f64_vec().iter().all(|g| g.is_finite()));
    assert!(binary_cross_entropy(&t(&[1.5], &[1]), &t(&[1.0], &[1]), None, Reduction::Mean).is_err());
}

#[test]
fn binary_cross_entropy_with_logits_hand_computed() {
    // x = [0, ln 3, −ln 3] ⇒ σ = [1/2, 3/4, 1/4]; y = [1, 0, 1/2]:
    // l = [−ln 1/2, −ln 1/4, −(½ ln ¼ + ½ ln ¾)] = [ln 2, ln 4, ½ ln(16/3)]
    let l3 = 3f64.ln();
    let (x, y) = (t(&[0.0, l3, -l3], &[3]), t(&[1.0, 0.0, 0.5], &[3]));
    let l = [2f64.ln(), 4f64.ln(), 0.5 * (16.0f64 / 3.0).ln()];
    let bce = |r, pw: Option<&Tensor>| binary_cross_entropy_with_logits(&x, &y, None, pw, r);
    assert_loss(bce(Reduction::None, None), &l);
    assert_loss(bce(Reduction::Sum, None), &[l.iter().sum()]);
    assert_loss(bce(Reduction::Mean, None), &[l.iter().sum::<f64>() / 3.0]);
    // pos_weight 2: l = −(2y ln σ + (1 − y) ln(1 − σ)) = [2 ln 2, ln 4, ln 4 + ½ ln 4/3]
    let pw = t(&[2.0], &[1]);
    assert_loss(
        bce(Reduction::None, Some(&pw)),
        &[2.0 * 2f64.ln(), 4f64.ln(), 4f64.ln() + 0.5 * (4.0f64 / 3.0).ln()],
    );
    // agrees with BCE on σ(x)
    let probs = x.sigmoid();
    assert_loss(
        bce(Reduction::Mean, None),
        &binary_cross_entropy(&probs, &y, None, Reduction::Mean).unwrap().to_f64_vec(),
    );
    // stable for large logits: x = ±800 with the wrong label costs 800
    let big = binary_cross_entropy_with_logits(
        &t(&[800.0, -800.0], &[2]),
        &t(&[0.0, 1.0], &[2]),
        None,
        None,
        Reduction::None,
    );
    assert_loss(big, &[800.0, 800.0]);
    let w = t(&[0.5, 1.0, 2.0], &[3]);
    for r in ALL {
        check_grad(
            |v| binary_cross_entropy_with_logits(&v[0], &v[1], Some(&w), Some(&pw), r),
            &[x.clone(), y.clone()],
        );
    }
    assert!(
        binary_cross_entropy_with_logits(&x, &y, None, Some(&t(&[1.0, 2.0], &[2])), Reduction::Mean).is_err()
    );
}

#[test]
fn kl_div_hand_computed() {
    // target p = [[¼, ¾], [0, 1]], input = ln q with q = ½ everywhere:
    // p·(ln p − ln q) = [¼ ln ½, ¾ ln 1.5, 0, ln 2]; sum = ¾ ln 2 + ¾ ln 1.5 = ¾ ln 3
    let half = 0.5f64.ln();
    let input = t(&[half; 4], &[2, 2]);
    let p = t(&[0.25, 0.75, 0.0, 1.0], &[2, 2]);
    let l = [0.25 * half, 0.75 * 1.5f64.ln(), 0.0, 2f64.ln()];
    assert_loss(kl_div(&input, &p, Reduction::None, false), &l);
    assert_loss(kl_div(&input, &p, Reduction::Sum, false), &[0.75 * 3f64.ln()]);
    assert_loss(kl_div(&input, &p, Reduction::Mean, false), &[0.75 * 3f64.ln() / 4.0]);
    for r in ALL {
        check_grad(|v| kl_div(&v[0], &p, r, false), std::slice::from_ref(&input));
    }
    // log_target: the same divergence with the target given as ln p (p > 0 here)
    let p2 = t(&[0.25, 0.75, 0.5, 0.5], &[2, 2]);
    let log_p2 = t(&p2.to_f64_vec().iter().map(|v| v.ln()).collect::<Vec<_>>(), &[2, 2]);
    let direct = kl_div(&input, &p2, Reduction::Sum, false).unwrap().to_f64_vec();
    assert_loss(kl_div(&input, &log_p2, Reduction::Sum, true), &direct);
    for r in ALL {
        check_grad(|v| kl_div(&v[0], &v[1], r, true), &[input.clone(), log_p2.clone()]);
        check_grad(|v| kl_div(&v[0], &v[1], r, false), &[input.clone(), p2.clone()]);
    }
    assert!(kl_div(&input, &t(&[1.0], &[1]), Reduction::Mean, false).is_err());
}

#[test]
fn f32_works_too() {
    let x = logits().to_dtype(DType::F32);
    let loss = cross_entropy(&x, &TARGET, Reduction::Mean).unwrap();
    assert_eq!(loss.dtype(), DType::F32);
    assert!((loss.item().unwrap() - 6.4f64.ln() / 3.0).abs() < 1e-6);
}

#[test]
fn second_order_gradients() {
    // losses are built from differentiable ops, so Hessian-vector products check too
    let ce = CrossEntropyLoss::new().with_label_smoothing(0.1).with_weight(t(&[1.0, 2.0, 3.0], &[3]));
    gradgradcheck(
        |v| ce.forward(&v[0], &TARGET),
        std::slice::from_ref(&logits()),
        GradcheckOptions::default(),
    )
    .unwrap();
    let y = t(&[1.0, 0.0, 0.5], &[3]);
    let x = t(&[0.3, -1.2, 2.0], &[3]);
    gradgradcheck(
        |v| binary_cross_entropy_with_logits(&v[0], &y, None, None, Reduction::Mean),
        std::slice::from_ref(&x),
        GradcheckOptions::default(),
    )
    .unwrap();
}

/// Probability targets (soft labels) against torch 2.15's `F.cross_entropy(x, p, …)` in f64.
#[test]
fn cross_entropy_with_probability_targets_matches_pytorch() {
    let x = t(&[0.2, -1.0, 0.5, 1.5, 0.3, -0.7], &[2, 3]);
    let p = t(&[0.1, 0.6, 0.3, 0.5, 0.25, 0.25], &[2, 3]);
    let w = t(&[1.0, 2.0, 0.5], &[3]);
    assert_loss(cross_entropy(&x, &p, Reduction::Mean), &[1.399981101785676]);
    assert_loss(cross_entropy(&x, &p, Reduction::Sum), &[2.799962203571352]);
    let weighted = CrossEntropyLoss::new().with_weight(w.clone());
    assert_loss(weighted.forward(&x, &p), &[2.0359092401323844]);
    let unreduced = weighted.clone().with_reduction(Reduction::None);
    assert_loss(unreduced.forward(&x, &p), &[2.8086875440250645, 1.2631309362397038]);
    let smoothed = weighted.with_label_smoothing(0.2);
    assert_loss(smoothed.forward(&x, &p), &[1.9743896491892317]);
    let xg = x.requires_grad_();
    let g = graphgrad_autodiff::grad(&[smoothed.forward(&xg, &p).unwrap()], std::slice::from_ref(&xg), false)
        .unwrap();
    let torch_grad = [
        0.1894553251904259,
        -0.46751624376313816,
        0.2780609185727124,
        0.1679894159834654,
        -0.14579057746375523,
        -0.0221988385197102,
    ];
    assert_close(&g[0].to_f64_vec(), &torch_grad, 1e-12, 1e-10);
    check_grad(|xs| smoothed.forward(&xs[0], &xs[1]), &[x.clone(), p.clone()]);
    // the target must have the logits' shape and type, and nothing is ignored in it
    let short = t(&[0.5, 0.5], &[1, 2]);
    assert!(cross_entropy(&x, &short, Reduction::Mean).unwrap_err().to_string().contains("cross_entropy"));
    let ignoring = CrossEntropyLoss::new().with_ignore_index(0);
    assert!(ignoring.forward(&x, &p).unwrap_err().to_string().contains("ignore_index"));
}

/// Saturated probabilities against torch 2.15's `F.binary_cross_entropy(p, t, weight=w,
/// reduction='sum')` and its input gradient in f64: a probability of 0 with target 1 is pushed
/// up, one of 1 with target 0 down, as PyTorch's `(p − t)/max(p(1 − p), 1e-12)` does.
#[test]
fn binary_cross_entropy_at_saturated_probabilities_matches_pytorch() {
    let p = t(&[0.0, 1.0, 0.5, 0.0, 1.0, 1e-13, 0.3], &[7]).requires_grad_();
    let target = t(&[0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.2], &[7]);
    let w = t(&[1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0], &[7]);
    let loss = binary_cross_entropy(&p, &target, Some(&w), Reduction::Sum).unwrap();
    assert_close(&loss.to_f64_vec(), &[182.20515693753106], 1e-12, 1e-10);
    let g = graphgrad_autodiff::grad(&[loss], std::slice::from_ref(&p), false).unwrap();
    let torch_grad =
        [0.0, 0.0, -2.0, -500000001997.9014, 1000000003995.8029, -1000000003995.7028, 1.4285714285714284];
    assert_close(&g[0].to_f64_vec(), &torch_grad, 1e-12, 1e-10);
    // away from saturation the loss is twice differentiable, as before
    let inner = t(&[0.2, 0.7, 0.45], &[3]);
    let goal = t(&[0.0, 1.0, 0.3], &[3]);
    gradgradcheck(
        |xs| binary_cross_entropy(&xs[0], &xs[1], None, Reduction::Mean),
        &[inner, goal],
        GradcheckOptions::default(),
    )
    .unwrap();
}
