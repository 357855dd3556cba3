//! `#[derive(Module)]`: names, buffers, training flags and random streams follow from the
//! fields, and every provided method (parameters, buffers, train/eval, state dict, random
//! state) works on a derived model without any hand-written traversal.

use graphgrad_autodiff::{DType, Flag, Generator, Result, Tensor, Var};
use graphgrad_nn::{
    BatchNorm1d, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, Module, ReLU, Sequential,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Module)]
struct Block {
    linear: Linear,
    norm: BatchNorm1d,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.norm.forward(&self.linear.forward(x)?)?.relu())
    }
}

#[derive(Module)]
struct Net {
    blocks: Vec<Block>,
    dropout: Dropout,
    head: Option<Linear>,
    scale: Var,
    #[module(buffer)]
    calls: Var,
    #[module(training)]
    noisy: Flag,
    #[module(rng)]
    noise: Generator,
    #[module(skip)]
    width: usize,
    tail: Sequential,
}

impl Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        h = self.dropout.forward(&h)?;
        if self.noisy.get() {
            let noise = self.noise.normal(h.shape(), h.dtype())?.mul_scalar(0.01);
            h = h.add(&noise)?;
        }
        let h = self.head.as_ref().map_or(Ok(h.clone()), |head| head.forward(&h))?;
        self.tail.forward(&h.mul(&self.scale)?)
    }
}

fn net(seed: u64) -> Net {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let f64 = DType::F64;
    let width = 4;
    let block = |rng: &mut ChaCha8Rng, i: usize| Block {
        linear: LinearConfig::new(if i == 0 { 3 } else { width }, width).with_dtype(f64).init(rng).unwrap(),
        norm: BatchNormConfig::new(width).with_dtype(f64).init_1d(rng).unwrap(),
    };
    Net {
        blocks: vec![block(&mut rng, 0), block(&mut rng, 1)],
        dropout: DropoutConfig::new(0.3).init(&mut rng).unwrap(),
        head: Some(LinearConfig::new(width, 2).with_dtype(f64).init(&mut rng).unwrap()),
        scale: Var::new("scale", &Tensor::ones(&[2], f64).unwrap()),
        calls: Var::new("calls", &Tensor::zeros(&[], f64).unwrap()),
        noisy: Flag::new(true),
        noise: Generator::new(seed + 100),
        width,
        tail: Sequential::new()
            .append(ReLU)
            .append(LinearConfig::new(2, 1).with_dtype(f64).init(&mut rng).unwrap()),
    }
}

#[test]
fn names_follow_the_fields() {
    let m = net(0);
    assert_eq!(m.width, 4);
    let params: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        params,
        [
            "blocks.0.linear.weight",
            "blocks.0.linear.bias",
            "blocks.0.norm.weight",
            "blocks.0.norm.bias",
            "blocks.1.linear.weight",
            "blocks.1.linear.bias",
            "blocks.1.norm.weight",
            "blocks.1.norm.bias",
            "head.weight",
            "head.bias",
            "scale",
            "tail.1.weight",
            "tail.1.bias",
        ]
    );
    let buffers: Vec<String> = m.named_buffers().into_iter().map(|(n, _)| n).collect();
    let norm_buffers = ["running_mean", "running_var", "num_batches_tracked"];
    let mut expected: Vec<String> = Vec::new();
    for b in 0..2 {
        expected.extend(norm_buffers.iter().map(|n| format!("blocks.{b}.norm.{n}")));
    }
    expected.push("calls".into());
    assert_eq!(buffers, expected);
    // the state dict holds both, so a checkpoint keeps batch norm's running statistics
    assert_eq!(m.state_dict().len(), params.len() + buffers.len());
    let streams: Vec<String> = m.random_state().into_keys().collect();
    assert_eq!(streams, ["dropout.generator", "noise"]);
}

#[test]
fn eval_reaches_every_flag_and_train_restores_them() {
    let m = net(1);
    let x = Tensor::from_vec((0..15).map(|i| (i as f64 * 0.37).sin()).collect::<Vec<_>>(), &[5, 3]).unwrap();
    assert!(m.is_training());
    m.eval();
    assert!(
        !m.is_training() && !m.noisy.get() && !m.dropout.is_training() && !m.blocks[1].norm.is_training()
    );
    // eval is deterministic: dropout off, running statistics, no noise
    assert_eq!(m.forward(&x).unwrap().to_f64_vec(), m.forward(&x).unwrap().to_f64_vec());
    m.train();
    assert!(m.noisy.get() && m.dropout.is_training() && m.blocks[0].norm.is_training());
}

#[test]
fn state_and_random_streams_round_trip() {
    let (a, b) = (net(2), net(3));
    let x = Tensor::from_vec((0..15).map(|i| (i as f64 * 0.21).cos()).collect::<Vec<_>>(), &[5, 3]).unwrap();
    a.forward(&x).unwrap(); // moves running statistics and both random streams
    b.load_state_dict(&a.state_dict()).unwrap();
    b.load_random_state(&a.random_state()).unwrap();
    // same weights, statistics and streams: the next training step draws the same masks
    assert_eq!(a.forward(&x).unwrap().to_f64_vec(), b.forward(&x).unwrap().to_f64_vec());
    let mut wrong = a.random_state();
    let stream = wrong.remove("noise").unwrap();
    wrong.insert("nosie".into(), stream);
    let err = b.load_random_state(&wrong).unwrap_err().to_string();
    assert!(err.contains("missing: noise") && err.contains("unexpected: nosie"), "{err}");
}

/// A tuple struct and a derived module used as a child of a hand-written one.
#[derive(Module)]
struct Pair(Linear, #[module(skip)] f64);

impl Pair {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.0.forward(x)?.mul_scalar(self.1))
    }
}

#[test]
fn tuple_fields_are_named_by_index_and_boxes_are_modules() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let pair = Pair(LinearConfig::new(2, 2).init(&mut rng).unwrap(), 2.0);
    let boxed: Box<dyn Module> = Box::new(pair);
    let names: Vec<String> = boxed.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias"]);
    let y = boxed.forward(&Tensor::ones(&[1, 2], DType::F32).unwrap()).unwrap();
    assert_eq!(y.shape(), &[1, 2]);
}
