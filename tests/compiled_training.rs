//! The training step compiled as written: for every optimiser, schedule, clipping mode, dropout
//! and BatchNorm, N compiled steps equal N eager steps from the same seeds; integer labels are
//! runtime inputs; new shapes and guards re-trace; the cache is bounded; bad uses are errors.

use graphgrad::autodiff::compile::{compile, compile_if, compile_with, CompileOptions};
use graphgrad::autodiff::{DType, Error, Tensor};
use graphgrad::nn::loss::{cross_entropy, Reduction};
use graphgrad::nn::{BatchNormConfig, DropoutConfig, LinearConfig, Module, ReLU, Sequential};
use graphgrad::optim::{
    clip_grad_norm, clip_grad_value, Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig,
    CosineAnnealingLr, LrScheduler, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig, StepLr,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Result<T> = std::result::Result<T, graphgrad::optim::Error>;

/// What a step does after backward and before the update.
#[derive(Clone, Copy, Debug)]
enum Clip {
    None,
    Norm(f64),
    Value(f64),
}

/// 6 → 8 → 3, f64, with optional dropout and BatchNorm; the same seed builds the same model.
fn model(seed: u64, dropout: bool, batch_norm: bool) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m =
        Sequential::new().append(LinearConfig::new(6, 8).with_dtype(DType::F64).init(&mut rng).unwrap());
    if batch_norm {
        m = m.append(BatchNormConfig::new(8).with_dtype(DType::F64).init_1d(&mut rng).unwrap());
    }
    m = m.append(ReLU);
    if dropout {
        m = m.append(DropoutConfig::new(0.3).init(&mut rng).unwrap());
    }
    m.append(LinearConfig::new(8, 3).with_dtype(DType::F64).init(&mut rng).unwrap())
}

/// Batch `i`: inputs `[5, 6]` and i64 labels, different at every call.
fn batch(i: u64) -> [Tensor; 2] {
    let mut rng = ChaCha8Rng::seed_from_u64(100 + i);
    let x = Tensor::randn(&[5, 6], 0.0, 1.0, DType::F64, &mut rng).unwrap();
    let labels: Vec<usize> = (0..5).map(|_| rng.gen_range(0..3)).collect();
    [x, Tensor::from_indices(&labels, &[5]).unwrap()]
}

/// Trains `steps` steps eagerly or compiled and returns every loss, the final parameters and
/// buffers, and how many times the step was traced.
fn train(
    compiled: bool,
    dropout: bool,
    batch_norm: bool,
    clip: Clip,
    make: &dyn Fn(Vec<(String, graphgrad::autodiff::Var)>) -> Box<dyn Optimizer>,
    schedule: bool,
) -> (Vec<f64>, Vec<Vec<f64>>, usize) {
    const STEPS: u64 = 6;
    let net = model(7, dropout, batch_norm);
    let params = net.named_parameters();
    let optimizer = std::cell::RefCell::new(make(params.clone()));
    let mut sched =
        schedule.then(|| LrScheduler::new(StepLr::new(2, 0.5), &mut **optimizer.borrow_mut()).unwrap());
    let mut step = compile_if(compiled, |io: &[Tensor]| -> Result<Tensor> {
        let mut opt = optimizer.borrow_mut();
        opt.zero_grad();
        let loss = cross_entropy(&net.forward(&io[0])?, &io[1], Reduction::Mean)?;
        loss.backward()?;
        match clip {
            Clip::None => {}
            Clip::Norm(max) => _ = clip_grad_norm(&params, max)?,
            Clip::Value(v) => clip_grad_value(&params, v)?,
        }
        opt.step()?;
        Ok(loss)
    });
    let mut losses = Vec::new();
    for i in 0..STEPS {
        losses.push(step.call(&batch(i)).unwrap()[0].item().unwrap());
        if let Some(s) = &mut sched {
            s.step(&mut **optimizer.borrow_mut()).unwrap();
        }
    }
    let mut state: Vec<Vec<f64>> = net.named_parameters().iter().map(|(_, v)| v.to_f64_vec()).collect();
    state.extend(net.named_buffers().iter().map(|(_, v)| v.to_f64_vec()));
    // the optimiser's own state (moments, step counts) must match too
    for saved in optimizer.borrow().state().params.values() {
        state.push(vec![saved.step as f64]);
        state.extend(saved.slots.values().map(|t| t.to_tensor().unwrap().to_f64_vec()));
    }
    (losses, state, step.trace_count())
}

fn assert_same(
    what: &str,
    eager: &(Vec<f64>, Vec<Vec<f64>>, usize),
    compiled: &(Vec<f64>, Vec<Vec<f64>>, usize),
) {
    // float tolerance: fused kernels sum in another order, and Adam's normalisation by √v
    // amplifies the last-bit differences of tiny gradients
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-8 * (1.0 + a.abs());
    for (i, (a, b)) in eager.0.iter().zip(&compiled.0).enumerate() {
        assert!(close(*a, *b), "{what}: loss {i}: eager {a} compiled {b}");
    }
    assert_eq!(eager.1.len(), compiled.1.len(), "{what}: state tensors");
    for (t, (a, b)) in eager.1.iter().zip(&compiled.1).enumerate() {
        assert_eq!(a.len(), b.len(), "{what}: state tensor {t}");
        for (x, y) in a.iter().zip(b) {
            assert!(close(*x, *y), "{what}: state tensor {t}: eager {x} compiled {y}");
        }
    }
    assert_eq!(compiled.2, 1, "{what}: traced once, replayed after");
}

fn check(
    what: &str,
    dropout: bool,
    batch_norm: bool,
    clip: Clip,
    schedule: bool,
    make: &dyn Fn(Vec<(String, graphgrad::autodiff::Var)>) -> Box<dyn Optimizer>,
) {
    let eager = train(false, dropout, batch_norm, clip, make, schedule);
    let compiled = train(true, dropout, batch_norm, clip, make, schedule);
    assert_same(what, &eager, &compiled);
    assert!(eager.0.iter().all(|l| l.is_finite()) && eager.0[0] != eager.0[5], "{what}: it trains");
}

#[test]
fn every_optimiser_compiled_equals_eager() {
    check("sgd", false, false, Clip::None, false, &|p| Box::new(Sgd::new(p, SgdConfig::new(0.1)).unwrap()));
    check("sgd momentum nesterov wd", false, false, Clip::None, false, &|p| {
        Box::new(Sgd::new(p, SgdConfig::new(0.1).momentum(0.9).nesterov(true).weight_decay(0.01)).unwrap())
    });
    check("sgd dampening", false, false, Clip::None, false, &|p| {
        Box::new(Sgd::new(p, SgdConfig::new(0.1).momentum(0.8).dampening(0.3)).unwrap())
    });
    check("adam", false, false, Clip::None, false, &|p| {
        Box::new(Adam::new(p, AdamConfig::new(0.01)).unwrap())
    });
    check("adam l2 amsgrad", false, false, Clip::None, false, &|p| {
        Box::new(Adam::new(p, AdamConfig::new(0.01).weight_decay(0.1).amsgrad(true)).unwrap())
    });
    check("adamw", false, false, Clip::None, false, &|p| {
        Box::new(AdamW::new(p, AdamWConfig::new(0.01).weight_decay(0.1)).unwrap())
    });
    check("rmsprop centred momentum", false, false, Clip::None, false, &|p| {
        Box::new(RmsProp::new(p, RmsPropConfig::new(0.01).centered(true).momentum(0.5)).unwrap())
    });
    check("adagrad", false, false, Clip::None, false, &|p| {
        Box::new(Adagrad::new(p, AdagradConfig::new(0.1).lr_decay(0.1)).unwrap())
    });
}

#[test]
fn schedules_clipping_dropout_and_batch_norm_compiled_equal_eager() {
    let adam = |p| -> Box<dyn Optimizer> { Box::new(Adam::new(p, AdamConfig::new(0.05)).unwrap()) };
    check("step schedule", false, false, Clip::None, true, &adam);
    check("clip by norm", false, false, Clip::Norm(0.05), false, &adam);
    check("clip by value", false, false, Clip::Value(0.01), false, &adam);
    check("dropout", true, false, Clip::None, false, &adam);
    check("batch norm", false, true, Clip::None, false, &adam);
    check("everything", true, true, Clip::Norm(0.5), true, &adam);
}

#[test]
fn a_schedule_changes_the_rate_without_recompiling() {
    // Cosine annealing to zero over 4 steps: compiled and eager agree, and the last steps
    // barely move the weights.
    let w = graphgrad::autodiff::Var::new("w", &Tensor::from_vec(vec![1.0f64, -1.0], &[2]).unwrap());
    let params = vec![("w".to_string(), w.clone())];
    let mut opt = Sgd::new(params, SgdConfig::new(0.5)).unwrap();
    let mut sched = LrScheduler::new(CosineAnnealingLr::new(4, 0.0), &mut opt).unwrap();
    let opt = std::cell::RefCell::new(opt);
    let mut step = compile(|_: &[Tensor]| -> Result<Tensor> {
        let mut o = opt.borrow_mut();
        o.zero_grad();
        let loss = w.square().sum_all();
        loss.backward()?;
        o.step()?;
        Ok(loss)
    });
    let mut expected = vec![1.0f64, -1.0];
    for t in 0..4u64 {
        let lr = 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / 4.0).cos()) / 2.0;
        expected.iter_mut().for_each(|v| *v -= lr * 2.0 * *v);
        step.call(&[]).unwrap();
        sched.step(&mut *opt.borrow_mut()).unwrap();
        let got = w.to_vec::<f64>().unwrap();
        assert!(
            (got[0] - expected[0]).abs() < 1e-15 && (got[1] - expected[1]).abs() < 1e-15,
            "{got:?} {expected:?}"
        );
    }
    assert_eq!(step.trace_count(), 1);
}

#[test]
fn integer_labels_are_runtime_inputs() {
    // The same logits with two different label tensors: the replay reads the new labels.
    let logits = Tensor::from_vec(vec![2.0f64, 0.0, -1.0, 0.5, 1.5, -0.5], &[2, 3]).unwrap();
    let mut f = compile(|io: &[Tensor]| cross_entropy(&io[0], &io[1], Reduction::None));
    for labels in [[0usize, 1], [2, 0], [1, 2]] {
        let y = Tensor::from_indices(&labels, &[2]).unwrap();
        let got = f.call(&[logits.clone(), y]).unwrap()[0].to_vec::<f64>().unwrap();
        let rows = logits.to_vec::<f64>().unwrap();
        for (i, &c) in labels.iter().enumerate() {
            let row = &rows[3 * i..3 * i + 3];
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            assert!((got[i] - (lse - row[c])).abs() < 1e-14, "row {i}: {} vs {}", got[i], lse - row[c]);
        }
    }
    assert_eq!(f.trace_count(), 1);
    // a label out of range is an error at replay time, naming the op
    let bad = Tensor::from_indices(&[0, 3], &[2]).unwrap();
    let err = f.call(&[logits.clone(), bad]).unwrap_err().to_string();
    assert!(err.contains("gather") && err.contains("index 3"), "{err}");
    // a float tensor where labels are needed is refused with the dtype
    let err = f.call(&[logits.clone(), Tensor::zeros(&[2], DType::F64).unwrap()]).unwrap_err().to_string();
    assert!(err.contains("i64") && err.contains("f64"), "{err}");
}

#[test]
fn new_shapes_and_failed_guards_retrace() {
    // Rust control flow on a value read with `item`: each call checks the value; a new one
    // re-traces (and the old program is kept for when the value comes back).
    let mut f = compile(|io: &[Tensor]| -> std::result::Result<Tensor, Error> {
        let positive = io[0].sum_all().item()? > 0.0;
        Ok(if positive { io[0].mul_scalar(2.0) } else { io[0].neg() })
    });
    let pos = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
    let neg = Tensor::from_vec(vec![-1.0f64, -2.0], &[2]).unwrap();
    assert_eq!(f.call(std::slice::from_ref(&pos)).unwrap()[0].to_vec::<f64>().unwrap(), [2.0, 4.0]);
    assert_eq!(f.call(std::slice::from_ref(&neg)).unwrap()[0].to_vec::<f64>().unwrap(), [1.0, 2.0]);
    assert_eq!(f.trace_count(), 2);
    assert!(
        f.log().iter().any(|l| l.contains("recompiling") && l.contains("compiled_training.rs")),
        "{:?}",
        f.log()
    );
    // the value flips back: its program is reused, no third trace
    assert_eq!(f.call(std::slice::from_ref(&pos)).unwrap()[0].to_vec::<f64>().unwrap(), [2.0, 4.0]);
    assert_eq!(f.trace_count(), 2);
    // a new shape is a new signature
    f.call(&[Tensor::ones(&[3], DType::F64).unwrap()]).unwrap();
    assert_eq!(f.trace_count(), 3);
}

#[test]
fn a_value_that_changes_every_call_is_an_error_after_the_retrace_limit() {
    let options = CompileOptions { max_retraces: 3, ..CompileOptions::default() };
    let mut f = compile_with(
        |io: &[Tensor]| -> std::result::Result<Tensor, Error> {
            let scale = io[0].sum_all().item()?;
            Ok(io[0].mul_scalar(scale))
        },
        options,
    );
    let mut last = None;
    for i in 0..6 {
        last = Some(f.call(&[Tensor::full(&[2], i as f64, DType::F64).unwrap()]));
    }
    let err = last.unwrap().unwrap_err().to_string();
    assert!(err.contains("retraces in a row") && err.contains("compiled_training.rs"), "{err}");
}

#[test]
fn the_cache_holds_at_most_its_size_and_logs_evictions() {
    let options = CompileOptions { cache_size: 2, ..CompileOptions::default() };
    let mut f = compile_with(|io: &[Tensor]| Ok::<_, Error>(io[0].exp().sum_all()), options);
    for n in [1, 2, 3, 1] {
        f.call(&[Tensor::ones(&[n], DType::F64).unwrap()]).unwrap();
    }
    assert_eq!(f.programs().count(), 2);
    assert_eq!(f.trace_count(), 4, "[1] was evicted by [3] and traced again");
    assert_eq!(f.log().iter().filter(|l| l.contains("evicted")).count(), 2, "{:?}", f.log());
}

#[test]
fn gradients_accumulate_across_calls_as_eagerly() {
    // A step without zero_grad accumulates into .grad(); the update is a step of its own. The
    // first call sees empty slots, later ones full slots: one more trace, then replays, and the
    // same numbers as eager (a program traced on empty slots must not overwrite full ones).
    let run = |compiled: bool| -> (Vec<Vec<f64>>, usize) {
        let net = model(11, false, false);
        let optimizer =
            std::cell::RefCell::new(Sgd::new(net.named_parameters(), SgdConfig::new(0.1)).unwrap());
        let mut accumulate = compile_if(compiled, |io: &[Tensor]| -> Result<Tensor> {
            let loss = cross_entropy(&net.forward(&io[0])?, &io[1], Reduction::Mean)?;
            loss.backward()?;
            Ok(loss)
        });
        let mut update = compile_if(compiled, |_: &[Tensor]| -> Result<()> {
            let mut opt = optimizer.borrow_mut();
            opt.step()?;
            opt.zero_grad();
            Ok(())
        });
        for group in 0..3 {
            for i in 0..3 {
                accumulate.call(&batch(3 * group + i)).unwrap();
            }
            update.call(&[]).unwrap();
        }
        let params = net.named_parameters().iter().map(|(_, v)| v.to_f64_vec()).collect();
        (params, accumulate.trace_count())
    };
    let (eager, _) = run(false);
    let (compiled, traces) = run(true);
    for (a, b) in eager.iter().flatten().zip(compiled.iter().flatten()) {
        assert!((a - b).abs() <= 1e-10 * (1.0 + a.abs()), "eager {a} compiled {b}");
    }
    assert_eq!(traces, 2, "one trace on empty gradient slots, one on full ones");
}

#[test]
fn embedding_takes_float_indices_inside_a_compiled_step() {
    // A data set's features are floats: the program casts them and checks they are whole.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let table = graphgrad::nn::EmbeddingConfig::new(5, 3).init(&mut rng).unwrap();
    let mut f = compile(|io: &[Tensor]| table.forward(&io[0]));
    for ids in [[0.0f32, 4.0, 2.0], [1.0, 1.0, 3.0]] {
        let x = Tensor::from_vec(ids.to_vec(), &[3]).unwrap();
        let compiled = f.call(std::slice::from_ref(&x)).unwrap()[0].to_vec::<f32>().unwrap();
        assert_eq!(compiled, table.forward(&x).unwrap().to_vec::<f32>().unwrap());
    }
    assert_eq!(f.trace_count(), 1);
    let fractional = f.call(&[Tensor::from_vec(vec![0.0f32, 1.5, 2.0], &[3]).unwrap()]);
    assert!(fractional.unwrap_err().to_string().contains("not a whole number"));
    let outside = f.call(&[Tensor::from_vec(vec![0.0f32, 5.0, 2.0], &[3]).unwrap()]);
    assert!(outside.is_err(), "index 5 of a table of 5 rows");
}

#[test]
fn a_profile_times_every_kernel_of_the_step() {
    let net = model(5, false, false);
    let optimizer = std::cell::RefCell::new(Sgd::new(net.named_parameters(), SgdConfig::new(0.1)).unwrap());
    let body = |io: &[Tensor]| -> Result<Tensor> {
        let mut opt = optimizer.borrow_mut();
        opt.zero_grad();
        let loss = cross_entropy(&net.forward(&io[0])?, &io[1], Reduction::Mean)?;
        loss.backward()?;
        opt.step()?;
        Ok(loss)
    };
    let mut step = compile(body);
    let inputs = batch(0);
    let before = net.named_parameters()[0].1.to_f64_vec();
    let profile = step.profile(&inputs, 10).unwrap();
    assert_eq!(profile.calls, 10);
    assert!(profile.kernels.iter().any(|k| k.kernel.starts_with("matmul")), "{profile}");
    let kernel_time: std::time::Duration = profile.kernels.iter().map(|k| k.mean).sum();
    assert!(kernel_time <= profile.per_call, "{profile}");
    assert_eq!(step.trace_count(), 1);
    // the profiled calls are steps: the weights moved
    assert_ne!(before, net.named_parameters()[0].1.to_f64_vec());
    let text = profile.to_string();
    assert!(text.contains("slowest first") && text.contains("outputs and updates"), "{text}");
    // an eager step has no program to profile
    let mut eager = compile_if(false, body);
    let err = eager.profile(&inputs, 1).unwrap_err().to_string();
    assert!(err.contains("nothing is compiled"), "{err}");
}

#[test]
fn training_mode_is_a_guard() {
    // Switching the model to eval mode between calls must not replay the training program.
    let net = model(3, true, false);
    let mut f = compile(|io: &[Tensor]| net.forward(&io[0]));
    let [x, _] = batch(0);
    f.call(std::slice::from_ref(&x)).unwrap();
    net.set_training(false);
    let eval = f.call(std::slice::from_ref(&x)).unwrap()[0].to_vec::<f64>().unwrap();
    assert_eq!(eval, net.forward(&x).unwrap().to_vec::<f64>().unwrap());
    assert_eq!(f.trace_count(), 2);
}

#[test]
fn bad_uses_are_errors() {
    let w = graphgrad::autodiff::Var::new("w", &Tensor::ones(&[2], DType::F64).unwrap());
    // reading a parameter after updating it in the same step
    let mut f = compile(|_: &[Tensor]| -> std::result::Result<Tensor, Error> {
        w.set(&w.mul_scalar(2.0))?;
        Ok(w.sum_all()) // an op that cannot fail: the misuse is reported when the trace ends
    });
    let err = f.call(&[]).unwrap_err().to_string();
    assert!(err.contains("read after it was updated"), "{err}");
    assert_eq!(w.to_vec::<f64>().unwrap(), [1.0, 1.0], "a failed trace writes nothing");
    // assigning to an op's result
    let y = w.mul_scalar(3.0);
    let err = y.assign(&Tensor::ones(&[2], DType::F64).unwrap()).unwrap_err().to_string();
    assert!(err.contains("assign") && err.contains("leaf"), "{err}");
    // an index list inside a compiled step
    let mut g = compile(|io: &[Tensor]| cross_entropy(&io[0], &[0usize, 1][..], Reduction::Mean));
    let err = g.call(&[Tensor::zeros(&[2, 3], DType::F64).unwrap()]).unwrap_err().to_string();
    assert!(err.contains("i64 tensor input"), "{err}");
    // integers where a float is needed
    let err = Tensor::from_indices(&[1, 2], &[2]).unwrap().sum(&[0], false).unwrap_err().to_string();
    assert!(err.contains("float") && err.contains("i64"), "{err}");
    // a compiled step called inside a traced step runs as written, part of the outer trace
    let mut outer = compile(|io: &[Tensor]| -> std::result::Result<Tensor, Error> {
        let mut inner = compile(|io: &[Tensor]| Ok::<_, Error>(io[0].exp()));
        Ok(inner.call(io)?.remove(0))
    });
    for x in [1.0, 2.0] {
        let y = outer.call(&[Tensor::full(&[1], x, DType::F64).unwrap()]).unwrap()[0].item().unwrap();
        assert!((y - x.exp()).abs() < 1e-12 * x.exp(), "{y} vs {}", x.exp());
    }
}
