//! `functional_call` with function transforms: per-sample gradients of a model by
//! `vmap(grad(functional_call))` against a loop of ordinary backward passes, one per sample.

use graphgrad_autodiff::{func, DType, Result, Tensor};
use graphgrad_nn::loss::cross_entropy;
use graphgrad_nn::{functional_call, LinearConfig, Module, Reduction, Sequential, Tanh};
use graphgrad_ops::testing::assert_close;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn per_sample_gradients_of_a_model_match_a_loop_of_backward_passes() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let model = Sequential::new()
        .append(LinearConfig::new(4, 5).with_dtype(DType::F64).init(&mut rng)?)
        .append(Tanh)
        .append(LinearConfig::new(5, 3).with_dtype(DType::F64).init(&mut rng)?);
    let batch = 6;
    let xs = Tensor::from_vec(
        (0..batch * 4).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>(),
        &[batch, 4],
    )?;
    let labels: Vec<usize> = (0..batch).map(|i| i % 3).collect();
    let named = model.named_parameters();
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let params: Vec<Tensor> = named.iter().map(|(_, v)| v.tensor().detach()).collect();

    // inputs: the parameters (shared), one sample [4] and its label [1]
    let loss = |v: &[Tensor]| -> Result<Tensor> {
        let given: Vec<(String, Tensor)> = names.iter().cloned().zip(v[2..].iter().cloned()).collect();
        let logits = functional_call(&model, &given, &v[0].unsqueeze(0)?)?;
        cross_entropy(&logits, &v[1], Reduction::Sum)
    };
    let per_sample = |v: &[Tensor]| Ok(func::grad(loss)(v)?[2..].to_vec());
    let mut inputs = vec![xs.clone(), Tensor::from_indices(&labels, &[batch, 1])?];
    inputs.extend(params.iter().cloned());
    let mut in_axes = vec![Some(0), Some(0)];
    in_axes.extend(params.iter().map(|_| None));
    let out_axes = vec![0; params.len()];
    let grads = func::vmap(per_sample, &in_axes, &out_axes)(&inputs)?;

    for (b, &label) in labels.iter().enumerate() {
        model.parameters().iter().for_each(|p| p.zero_grad());
        let logits = model.forward(&xs.narrow(0, b, 1)?)?;
        cross_entropy(&logits, &[label], Reduction::Sum)?.backward()?;
        for (g, p) in grads.iter().zip(model.parameters()) {
            let mine = g.narrow(0, b, 1)?.squeeze(0)?;
            assert_close(&mine.to_f64_vec(), &p.grad().unwrap().to_f64_vec(), 1e-12, 1e-12);
        }
    }
    // the module's own parameters were not replaced
    for (p, (_, v)) in params.iter().zip(model.named_parameters()) {
        assert_eq!(p.to_f64_vec(), v.to_f64_vec());
    }
    Ok(())
}

#[test]
fn unknown_names_and_wrong_shapes_are_errors() -> Result<()> {
    let layer = LinearConfig::new(2, 1).with_dtype(DType::F64).init(&mut ChaCha8Rng::seed_from_u64(1))?;
    let x = Tensor::zeros(&[1, 2], DType::F64)?;
    let unknown = functional_call(&layer, &[("wieght".into(), Tensor::zeros(&[1, 2], DType::F64)?)], &x);
    assert!(unknown.unwrap_err().to_string().contains("wieght"));
    let shape = functional_call(&layer, &[("weight".into(), Tensor::zeros(&[2, 1], DType::F64)?)], &x);
    let message = shape.unwrap_err().to_string();
    assert!(message.contains("[1, 2]") && message.contains("[2, 1]"), "{message}");
    Ok(())
}

#[test]
fn an_ensemble_runs_as_one_vmap_over_stacked_parameters() -> Result<()> {
    // three models of the same shape, their parameters stacked along a new axis 0
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let models: Vec<Sequential> = (0..3)
        .map(|_| -> Result<Sequential> {
            Ok(Sequential::new()
                .append(LinearConfig::new(4, 5).with_dtype(DType::F64).init(&mut rng)?)
                .append(Tanh)
                .append(LinearConfig::new(5, 2).with_dtype(DType::F64).init(&mut rng)?))
        })
        .collect::<Result<_>>()?;
    let names: Vec<String> = models[0].named_parameters().into_iter().map(|(n, _)| n).collect();
    let stacked: Vec<Tensor> = (0..names.len())
        .map(|k| {
            Tensor::stack(&models.iter().map(|m| m.parameters()[k].tensor().detach()).collect::<Vec<_>>(), 0)
        })
        .collect::<Result<_>>()?;
    let x = Tensor::from_vec((0..8).map(|i| i as f64 * 0.1 - 0.3).collect::<Vec<f64>>(), &[2, 4])?;
    let run = |p: &[Tensor]| {
        let given: Vec<(String, Tensor)> = names.iter().cloned().zip(p.iter().cloned()).collect();
        Ok(vec![functional_call(&models[0], &given, &x)?])
    };
    let outputs = func::vmap(run, &vec![Some(0); names.len()], &[0])(&stacked)?.remove(0);
    assert_eq!(outputs.shape(), [3, 2, 2]);
    for (k, m) in models.iter().enumerate() {
        let want = m.forward(&x)?;
        assert_close(&outputs.narrow(0, k, 1)?.squeeze(0)?.to_f64_vec(), &want.to_f64_vec(), 1e-12, 1e-12);
    }
    Ok(())
}
