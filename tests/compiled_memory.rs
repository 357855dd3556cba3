//! A long compiled training holds no more memory than its first steps: 10,000 compiled steps
//! of the digits MLP (forward, loss and gradients compiled, the optimiser stepping eagerly on
//! the gradients the program returns, as the Trainer's compiled mode runs) leave
//! the resident size flat after warm-up, and the program cache stays within its bound.
//! (Alone in its test binary: other tests would move the resident size.)

use graphgrad::autodiff::compile::{compile, compile_with};
use graphgrad::autodiff::{grad, CompileOptions, DType, Tensor};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::{LinearConfig, Module, ReLU, Reduction, Sequential};
use graphgrad::optim::{Adam, AdamConfig, Optimizer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Resident set size in KiB (Linux), None elsewhere.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn ten_thousand_compiled_steps_keep_memory_flat() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let model = Sequential::new()
        .append(LinearConfig::new(64, 128).init(&mut rng)?)
        .append(ReLU)
        .append(LinearConfig::new(128, 10).init(&mut rng)?);
    let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(1e-3))?;
    let x = Tensor::randn(&[32, 64], 0.0, 1.0, DType::F32, &mut rng)?;
    let labels = Tensor::from_indices(&(0..32).map(|i| i % 10).collect::<Vec<_>>(), &[32])?;
    let params = model.named_parameters();
    let vars: Vec<Tensor> = params.iter().map(|(_, v)| v.tensor().clone()).collect();
    // the Trainer's compiled step: the loss and the gradients as outputs
    let mut step = compile(|io: &[Tensor]| -> graphgrad::autodiff::Result<Vec<Tensor>> {
        let loss = cross_entropy(&model.forward(&io[0])?, &io[1], Reduction::Mean)?;
        let mut outputs = grad(std::slice::from_ref(&loss), &vars, false)?;
        outputs.insert(0, loss);
        Ok(outputs)
    });
    let mut train = |steps: usize| -> Result<(), Box<dyn std::error::Error>> {
        for _ in 0..steps {
            let outputs = step.call(&[x.clone(), labels.clone()])?;
            for ((_, var), g) in params.iter().zip(&outputs[1..]) {
                var.set_grad(Some(g))?;
            }
            optimizer.step()?;
        }
        Ok(())
    };
    train(1_000)?;
    let Some(before) = resident_kib() else { return Ok(()) };
    train(10_000)?;
    let after = resident_kib().expect("read before");
    println!("resident memory: {before} KiB after warm-up, {after} KiB after 10,000 more steps");
    // One gradient per step (the first layer's is 32 KiB) kept would add over 300 MiB.
    assert!(after < before + 4096, "resident memory grew from {before} KiB to {after} KiB");
    Ok(())
}

#[test]
fn the_program_cache_is_bounded() -> Result<(), Box<dyn std::error::Error>> {
    let options = CompileOptions { cache_size: 3, ..CompileOptions::default() };
    let mut f =
        compile_with(|io: &[Tensor]| Ok::<_, graphgrad::autodiff::Error>(io[0].square().sum_all()), options);
    for n in 1..=20 {
        let y = f.call(&[Tensor::ones(&[n], DType::F32)?])?;
        assert_eq!(y[0].item()?, n as f64);
        let cached = f.programs().count();
        assert!(cached <= 3, "{cached} programs cached after {n} input shapes");
    }
    Ok(())
}
