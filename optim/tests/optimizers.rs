//! Optimisers beyond the two-element hand computations of the unit tests: many elements
//! against a scalar reference of PyTorch's formulas, parameter groups, learning-rate changes,
//! parameters without gradients, and state save/load (round trip and mismatch errors).

use graphgrad_autodiff::{DType, Tensor, Var};
use graphgrad_optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Error, Optimizer, ParamGroup, RmsProp,
    RmsPropConfig, Sgd, SgdConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sets `var`'s gradient to `values` through backward: d/dw Σ(w ⊙ c) = c exactly.
fn set_grad(var: &Var, values: &[f64]) {
    var.zero_grad();
    let c = Tensor::from_vec(values.to_vec(), var.shape()).unwrap().to_dtype(var.dtype());
    var.mul(&c).unwrap().sum_all().backward().unwrap();
}

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect()
}

/// One element's optimiser state for the scalar reference.
#[derive(Default, Clone)]
struct Ref {
    a: f64,
    b: f64,
    c: f64,
    step: u64,
}

/// PyTorch's single-tensor formulas, one scalar at a time (torch/optim/*.py).
fn reference(kind: &str, p: &mut f64, g: f64, s: &mut Ref) {
    s.step += 1;
    let t = s.step as f64;
    match kind {
        // SGD lr 0.05, momentum 0.8, dampening 0.2, wd 0.01
        "sgd" => {
            let d = g + 0.01 * *p;
            s.a = if s.step == 1 { d } else { 0.8 * s.a + 0.8 * d };
            *p -= 0.05 * s.a;
        }
        // Adam lr 0.01, betas (0.8, 0.9), eps 1e-6, wd 0.02, amsgrad
        "adam" => {
            let g = g + 0.02 * *p;
            s.a += (g - s.a) * 0.2;
            s.b = 0.9 * s.b + 0.1 * g * g;
            s.c = s.c.max(s.b);
            let denom = s.c.sqrt() / (1.0 - 0.9f64.powf(t)).sqrt() + 1e-6;
            *p -= 0.01 / (1.0 - 0.8f64.powf(t)) * s.a / denom;
        }
        // AdamW lr 0.01, defaults, wd 0.1
        "adamw" => {
            *p *= 1.0 - 0.01 * 0.1;
            s.a += (g - s.a) * 0.1;
            s.b = 0.999 * s.b + 0.001 * g * g;
            let denom = s.b.sqrt() / (1.0 - 0.999f64.powf(t)).sqrt() + 1e-8;
            *p -= 0.01 / (1.0 - 0.9f64.powf(t)) * s.a / denom;
        }
        // RMSprop lr 0.01, alpha 0.9, eps 1e-8, wd 0.05, momentum 0.5, centered
        "rmsprop" => {
            let g = g + 0.05 * *p;
            s.a = 0.9 * s.a + 0.1 * g * g;
            s.b += (g - s.b) * 0.1;
            let avg = (s.a - s.b * s.b).sqrt() + 1e-8;
            s.c = 0.5 * s.c + g / avg;
            *p -= 0.01 * s.c;
        }
        // Adagrad lr 0.1, lr_decay 0.1, wd 0.01, initial accumulator 0.5
        "adagrad" => {
            if s.step == 1 {
                s.a = 0.5;
            }
            let g = g + 0.01 * *p;
            let clr = 0.1 / (1.0 + (t - 1.0) * 0.1);
            s.a += g * g;
            *p -= clr * g / (s.a.sqrt() + 1e-10);
        }
        _ => unreachable!(),
    }
}

fn optimizer(kind: &str, params: Vec<(String, Var)>) -> Box<dyn Optimizer> {
    match kind {
        "sgd" => Box::new(
            Sgd::new(params, SgdConfig::new(0.05).momentum(0.8).dampening(0.2).weight_decay(0.01)).unwrap(),
        ),
        "adam" => Box::new(
            Adam::new(
                params,
                AdamConfig::new(0.01).betas(0.8, 0.9).eps(1e-6).weight_decay(0.02).amsgrad(true),
            )
            .unwrap(),
        ),
        "adamw" => Box::new(AdamW::new(params, AdamWConfig::new(0.01).weight_decay(0.1)).unwrap()),
        "rmsprop" => Box::new(
            RmsProp::new(
                params,
                RmsPropConfig::new(0.01).alpha(0.9).weight_decay(0.05).momentum(0.5).centered(true),
            )
            .unwrap(),
        ),
        "adagrad" => Box::new(
            Adagrad::new(
                params,
                AdagradConfig::new(0.1).lr_decay(0.1).weight_decay(0.01).initial_accumulator_value(0.5),
            )
            .unwrap(),
        ),
        _ => unreachable!(),
    }
}

const KINDS: [&str; 5] = ["sgd", "adam", "adamw", "rmsprop", "adagrad"];

/// Odd sizes (not multiples of any SIMD width), a size-1 and a zero-sized parameter: the fused
/// pass agrees with the scalar reference to 1e-12 in f64 over 6 steps.
#[test]
fn fused_updates_match_the_scalar_reference_on_many_elements() {
    for kind in KINDS {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let shapes: [&[usize]; 3] = [&[7, 13], &[1], &[0, 3]];
        let params: Vec<(String, Var)> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = s.iter().product();
                (
                    format!("p{i}"),
                    Var::new(format!("p{i}"), &Tensor::from_vec(random(n, &mut rng), s).unwrap()),
                )
            })
            .collect();
        let mut expected: Vec<Vec<f64>> = params.iter().map(|(_, v)| v.to_f64_vec()).collect();
        let mut states: Vec<Vec<Ref>> = expected.iter().map(|e| vec![Ref::default(); e.len()]).collect();
        let mut opt = optimizer(kind, params.clone());
        for _ in 0..6 {
            for (i, (_, var)) in params.iter().enumerate() {
                let g = random(var.numel(), &mut rng);
                set_grad(var, &g);
                for ((p, g), s) in expected[i].iter_mut().zip(&g).zip(&mut states[i]) {
                    reference(kind, p, *g, s);
                }
            }
            opt.step().unwrap();
        }
        for (i, (name, var)) in params.iter().enumerate() {
            for (j, (got, want)) in var.to_f64_vec().iter().zip(&expected[i]).enumerate() {
                assert!((got - want).abs() < 1e-12, "{kind} {name}[{j}]: fused {got} vs reference {want}");
            }
        }
    }
}

fn scalar_param(name: &str, value: f32) -> (String, Var) {
    (name.to_string(), Var::new(name, &Tensor::from_vec(vec![value], &[1]).unwrap()))
}

#[test]
fn groups_have_their_own_learning_rates_and_params_without_grad_are_skipped() {
    let (a, b, c) = (scalar_param("a", 1.0), scalar_param("b", 1.0), scalar_param("c", 1.0));
    let mut opt = Sgd::with_groups(vec![
        ParamGroup::new(vec![a.clone(), c.clone()], SgdConfig::new(0.1)),
        ParamGroup::new(vec![b.clone()], SgdConfig::new(0.5)),
    ])
    .unwrap();
    set_grad(&a.1, &[1.0]);
    set_grad(&b.1, &[1.0]);
    opt.step().unwrap();
    assert_eq!(a.1.to_vec::<f32>().unwrap(), vec![0.9]);
    assert_eq!(b.1.to_vec::<f32>().unwrap(), vec![0.5]);
    assert_eq!(c.1.to_vec::<f32>().unwrap(), vec![1.0], "no gradient: untouched");
    assert_eq!(opt.step_count("c"), 0);
    opt.set_group_lr(1, 0.25).unwrap();
    assert_eq!(opt.lrs(), vec![0.1, 0.25]);
    opt.set_lr(0.2).unwrap();
    assert_eq!(opt.lrs(), vec![0.2, 0.2]);
    assert!(opt.set_lr(f64::NAN).is_err());
    let err = opt.set_group_lr(5, 0.1).unwrap_err().to_string();
    assert!(err.contains("group 5 does not exist (2 groups)"), "{err}");
}

#[test]
fn duplicate_names_are_rejected() {
    let a = scalar_param("a", 1.0);
    let err = Adam::new(vec![a.clone(), a], AdamConfig::default()).unwrap_err().to_string();
    assert!(err.contains("`a` appears more than once"), "{err}");
}

/// Train 3 steps, save the state, train 3 more; a second optimiser loaded from the saved state
/// (over a copy of the parameters at that point) ends bit-identical.
#[test]
fn state_round_trip_continues_bit_identically() {
    for kind in KINDS {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let w = Var::new("w", &Tensor::from_vec(random(10, &mut rng), &[2, 5]).unwrap().to_dtype(DType::F32));
        let params = vec![("w".to_string(), w.clone())];
        let mut opt = optimizer(kind, params);
        let grads: Vec<Vec<f64>> = (0..6).map(|_| random(10, &mut rng)).collect();
        for g in &grads[..3] {
            set_grad(&w, g);
            opt.step().unwrap();
        }
        let state = opt.state();
        let w2 = Var::new("w", &w.detach());
        let mut opt2 = optimizer(kind, vec![("w".to_string(), w2.clone())]);
        opt2.load_state(&state).unwrap();
        assert_eq!(opt2.state(), state);
        for g in &grads[3..] {
            set_grad(&w, g);
            opt.step().unwrap();
            set_grad(&w2, g);
            opt2.step().unwrap();
        }
        let bits = |v: &Var| v.to_vec::<f32>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&w), bits(&w2), "{kind}");
    }
}

#[test]
fn loading_mismatched_state_lists_what_differs_and_changes_nothing() {
    let a = ("a".to_string(), Var::new("a", &Tensor::zeros(&[2, 3], DType::F32).unwrap()));
    let b = ("b".to_string(), Var::new("b", &Tensor::zeros(&[4], DType::F32).unwrap()));
    let mut opt = Adam::new(vec![a.clone(), b.clone()], AdamConfig::new(0.1)).unwrap();
    set_grad(&a.1, &[1.0; 6]);
    set_grad(&b.1, &[1.0; 4]);
    opt.step().unwrap();
    let state = opt.state();

    // Another kind of optimiser.
    let mut sgd = Sgd::new(vec![a.clone(), b.clone()], SgdConfig::new(0.1)).unwrap();
    let err = sgd.load_state(&state).unwrap_err().to_string();
    assert!(err.contains("cannot load state saved by Adam into SGD"), "{err}");

    // Other names and shapes.
    let a2 = ("a".to_string(), Var::new("a", &Tensor::zeros(&[3, 2], DType::F32).unwrap()));
    let c = ("c".to_string(), Var::new("c", &Tensor::zeros(&[4], DType::F32).unwrap()));
    let mut other = Adam::new(vec![a2, c], AdamConfig::new(0.5)).unwrap();
    let before = other.state();
    let err = other.load_state(&state).unwrap_err();
    assert!(matches!(err, Error::StateMismatch { .. }));
    let msg = err.to_string();
    assert!(msg.contains(r#"expected parameters ["a", "c"], found ["a", "b"]"#), "{msg}");
    assert!(msg.contains("state of parameter `b`"), "{msg}");
    assert!(msg.contains("`a` slot `exp_avg`: expected [3, 2] f32, found [2, 3] f32"), "{msg}");
    assert_eq!(other.state(), before, "a failed load changes nothing");

    // A damaged hyper-parameter.
    let mut bad = state.clone();
    bad.groups[0].hyper.insert("beta1".into(), 1.5);
    let err = opt.load_state(&bad).unwrap_err().to_string();
    assert!(err.contains("beta1 must be in"), "{err}");
}

#[test]
fn switching_amsgrad_on_mid_run_allocates_its_slot() {
    let w = ("w".to_string(), Var::new("w", &Tensor::ones(&[3], DType::F64).unwrap()));
    let mut opt = Adam::new(vec![w.clone()], AdamConfig::new(0.1)).unwrap();
    set_grad(&w.1, &[1.0, 2.0, 3.0]);
    opt.step().unwrap();
    opt.set_config(0, AdamConfig::new(0.1).amsgrad(true)).unwrap();
    set_grad(&w.1, &[1.0, 2.0, 3.0]);
    opt.step().unwrap();
    let state = opt.state();
    assert_eq!(state.params["w"].slots["max_exp_avg_sq"].data.len(), 3);
    assert!(w.1.to_f64_vec().iter().all(|x| x.is_finite() && *x < 1.0));
}
