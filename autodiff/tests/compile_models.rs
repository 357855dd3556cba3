//! Compiled and eager training agree: the same models (an MLP, a small CNN with max-pooling,
//! an attention block), the same seeds and data, several SGD steps with the update inside
//! the compiled step; losses, every parameter gradient and the updated parameters are
//! compared after each step.

use graphgrad_autodiff::compile::{compile_with, CompileOptions};
use graphgrad_autodiff::{grad, no_grad, ConvOptions, DType, Result, Tensor, Var};
use graphgrad_ops::testing::assert_close;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const LR: f64 = 0.1;

/// A model: its parameters and its loss on (input, target).
struct Model {
    params: Vec<Var>,
    loss: fn(&[Var], &Tensor, &Tensor) -> Result<Tensor>,
}

fn var(name: &str, shape: &[usize], std: f64, rng: &mut ChaCha8Rng) -> Var {
    Var::new(name, &Tensor::randn(shape, 0.0, std, DType::F32, rng).unwrap())
}

/// Mean cross-entropy of `logits` [n, c] against one-hot `target` [n, c].
fn cross_entropy(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let n = logits.shape()[0] as f64;
    Ok(logits.log_softmax(-1)?.mul(target)?.sum_all().mul_scalar(-1.0 / n))
}

fn one_hot(n: usize, classes: usize, rng: &mut ChaCha8Rng) -> Tensor {
    use rand::Rng;
    let mut v = vec![0.0f32; n * classes];
    for i in 0..n {
        v[i * classes + rng.gen_range(0..classes)] = 1.0;
    }
    Tensor::from_vec(v, &[n, classes]).unwrap()
}

fn mlp(rng: &mut ChaCha8Rng) -> Model {
    let params = vec![
        var("w1", &[12, 16], 0.3, rng),
        var("b1", &[16], 0.1, rng),
        var("w2", &[16, 4], 0.3, rng),
        var("b2", &[4], 0.1, rng),
    ];
    fn loss(p: &[Var], x: &Tensor, t: &Tensor) -> Result<Tensor> {
        let h = x.matmul(&p[0])?.add(&p[1])?.relu();
        cross_entropy(&h.matmul(&p[2])?.add(&p[3])?, t)
    }
    Model { params, loss }
}

fn cnn(rng: &mut ChaCha8Rng) -> Model {
    let params = vec![
        var("conv.w", &[4, 1, 3, 3], 0.3, rng),
        var("conv.b", &[4], 0.1, rng),
        var("fc.w", &[3, 64], 0.2, rng),
        var("fc.b", &[3], 0.1, rng),
    ];
    fn loss(p: &[Var], x: &Tensor, t: &Tensor) -> Result<Tensor> {
        let options = ConvOptions::default().padding(1);
        let h = x.conv2d(&p[0], Some(&p[1]), options)?.relu().max_pool2d((2, 2), (2, 2), (0, 0))?;
        let flat = h.reshape(&[x.shape()[0], 64])?;
        cross_entropy(&flat.matmul_with(&p[2], false, true)?.add(&p[3])?, t)
    }
    Model { params, loss }
}

fn attention(rng: &mut ChaCha8Rng) -> Model {
    let d = 8;
    let params = vec![
        var("wq", &[d, d], 0.3, rng),
        var("wk", &[d, d], 0.3, rng),
        var("wv", &[d, d], 0.3, rng),
        var("ln.w", &[d], 0.1, rng),
        var("ff.w", &[d, 3], 0.3, rng),
    ];
    fn loss(p: &[Var], x: &Tensor, t: &Tensor) -> Result<Tensor> {
        // x: [batch, seq, d]
        let (q, k, v) = (x.matmul(&p[0])?, x.matmul(&p[1])?, x.matmul(&p[2])?);
        let scores = q.matmul(&k.transpose(1, 2)?)?.mul_scalar(1.0 / 8f64.sqrt());
        let attended = scores.softmax(-1)?.matmul(&v)?;
        let h = x.add(&attended)?.layer_norm(&[8], Some(&p[3].add_scalar(1.0)), None, 1e-5)?.gelu();
        let pooled = h.mean(&[1], false)?; // [batch, d]
        cross_entropy(&pooled.matmul(&p[4])?, t)
    }
    Model { params, loss }
}

fn copy_params(params: &[Var]) -> Vec<Var> {
    params.iter().map(|p| Var::new(p.name(), &p.detach())).collect()
}

/// Runs `steps` SGD steps eagerly and compiled on the same data and compares everything.
fn check_model(
    make: fn(&mut ChaCha8Rng) -> Model,
    x_shape: &[usize],
    classes: usize,
    options: CompileOptions,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let eager = make(&mut rng);
    let compiled_params = copy_params(&eager.params);
    let loss_fn = eager.loss;
    let step_params = compiled_params.clone();
    let mut step = compile_with(
        move |io: &[Tensor]| {
            let loss = loss_fn(&step_params, &io[0], &io[1])?;
            let leaves: Vec<Tensor> = step_params.iter().map(|p| p.tensor().clone()).collect();
            let grads = grad(std::slice::from_ref(&loss), &leaves, false)?;
            for (p, g) in step_params.iter().zip(&grads) {
                p.set(&p.sub(&g.mul_scalar(LR))?)?;
            }
            Ok::<_, graphgrad_autodiff::Error>(std::iter::once(loss).chain(grads).collect::<Vec<_>>())
        },
        options,
    );
    for it in 0..4 {
        let x = Tensor::randn(x_shape, 0.0, 1.0, DType::F32, &mut rng).unwrap();
        let t = one_hot(x_shape[0], classes, &mut rng);
        // eager
        let loss = (eager.loss)(&eager.params, &x, &t).unwrap();
        let leaves: Vec<Tensor> = eager.params.iter().map(|p| p.tensor().clone()).collect();
        let grads = grad(std::slice::from_ref(&loss), &leaves, false).unwrap();
        no_grad(|| {
            for (p, g) in eager.params.iter().zip(&grads) {
                p.set(&p.sub(&g.mul_scalar(LR)).unwrap()).unwrap();
            }
        });
        // compiled
        let out = step.call(&[x, t]).unwrap();
        assert_close(&out[0].to_vec::<f32>().unwrap(), &loss.to_vec::<f32>().unwrap(), 1e-5, 1e-4);
        for (i, g) in grads.iter().enumerate() {
            let got = out[1 + i].to_vec::<f32>().unwrap();
            assert_eq!(got.len(), g.numel(), "step {it}: gradient {i} length");
            assert_close(&got, &g.to_vec::<f32>().unwrap(), 1e-5, 1e-3);
        }
        for (e, c) in eager.params.iter().zip(&compiled_params) {
            assert_close(&c.to_vec::<f32>().unwrap(), &e.to_vec::<f32>().unwrap(), 1e-5, 1e-3);
        }
    }
    assert_eq!(step.trace_count(), 1, "one signature, one trace");
}

#[test]
fn mlp_compiled_matches_eager() {
    check_model(mlp, &[8, 12], 4, CompileOptions::default());
}

#[test]
fn mlp_unoptimized_matches_eager() {
    check_model(mlp, &[8, 12], 4, CompileOptions::unoptimized());
}

#[test]
fn cnn_compiled_matches_eager() {
    check_model(cnn, &[2, 1, 8, 8], 3, CompileOptions::default());
}

#[test]
fn attention_compiled_matches_eager() {
    check_model(attention, &[2, 5, 8], 3, CompileOptions::default());
}

#[test]
fn attention_without_fusion_matches_eager() {
    let options = CompileOptions { fuse_elementwise: false, ..CompileOptions::default() };
    check_model(attention, &[2, 5, 8], 3, options);
}
