//! Small runs on the shipped digits for the trainer's tests: a seeded split, an MLP with
//! dropout (so resumes must restore the dropout stream too), and a writer that keeps what the
//! progress printed.

#![allow(dead_code)] // each test file uses a different subset

use graphgrad_nn::data::{load_digits, Dataset, Split, SplitFractions};
use graphgrad_nn::{DropoutConfig, LinearConfig, Module, ReLU, Sequential};
use graphgrad_optim::{Adam, AdamConfig};
use graphgrad_train::{CrossEntropy, Metric, ProgressMode, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

/// The digits scaled to 0..1, split 70/15/15 with seed 0; `take` training samples at most.
pub fn digits(take: usize) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut digits = load_digits().unwrap();
    digits.scale_features(1.0 / 16.0);
    let mut split =
        digits.stratified_split(SplitFractions { validation: 0.15, test: 0.15 }, &mut rng).unwrap();
    let n = split.train.len().min(take);
    split.train = split.train.subset(&(0..n).collect::<Vec<_>>()).unwrap();
    split
}

/// 64 → 32 → dropout 0.2 → 10, from `seed`.
pub fn mlp(seed: u64, dropout: f64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Sequential::new()
        .append(LinearConfig::new(64, 32).init(&mut rng).unwrap())
        .append(ReLU)
        .append(DropoutConfig::new(dropout).init(&mut rng).unwrap())
        .append(LinearConfig::new(32, 10).init(&mut rng).unwrap())
}

/// A trainer of `mlp(seed, 0.2)` with Adam 3e-3, batch 32, accuracy and macro F1, silent.
pub fn trainer(seed: u64) -> Trainer<Sequential> {
    let model = mlp(seed, 0.2);
    let optimizer = Adam::new(model.named_parameters(), AdamConfig::new(3e-3)).unwrap();
    Trainer::new(model, optimizer, CrossEntropy)
        .batch_size(32)
        .metrics(&[Metric::Accuracy, Metric::MacroF1])
        .progress(ProgressMode::Silent)
}

/// A fresh, empty folder under the system's temporary folder.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("graphgrad-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A writer whose bytes the test reads afterwards.
#[derive(Clone, Default)]
pub struct Captured(pub Rc<RefCell<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.borrow().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every parameter and buffer of `model` as f64 values, by name.
pub fn values(model: &dyn Module) -> Vec<(String, Vec<f64>)> {
    model.state_dict().into_iter().map(|(n, t)| (n, t.to_f64_vec())).collect()
}

/// Samples of `data` as one batch's inputs.
pub fn inputs(data: &Dataset) -> graphgrad_autodiff::Tensor {
    data.batch(&(0..data.len()).collect::<Vec<_>>()).unwrap().inputs
}
