//! Hostile calls through the public API: each bad call must return an error whose message
//! names the op the user called (and what was wrong), or the correct value; none may panic,
//! abort or return a wrong value silently. The test profile keeps overflow checks on, so an
//! unchecked multiplication shows up here as a panic. Every case runs under `catch_unwind`,
//! the test's detector, and the test reports all failing cases at once.

use graphgrad::autodiff::compile::{compile, constant_indices};
use graphgrad::autodiff::{gradcheck, ConvOptions, DType, GradcheckOptions, Tensor, Var};
use graphgrad::nn::data::{mnist_from_arrays, parse_csv, parse_idx, CsvOptions, Dataset};
use graphgrad::nn::layers::reparameterize;
use graphgrad::nn::loss::mse_loss;
use graphgrad::nn::metrics::ConfusionMatrix;
use graphgrad::nn::{EmbeddingConfig, LinearConfig, MemN2NConfig, Module, Reduction};
use graphgrad::optim::{step_if_finite, EarlyStopping, MetricMode, Optimizer, ParamGroup, Sgd, SgdConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};

type AnyResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(0)
}

fn f32s(shape: &[usize]) -> Tensor {
    Tensor::ones(shape, DType::F32).expect("a small tensor")
}

/// What a case must give: an error containing every one of these strings, or `Ok`.
enum Expect {
    Error(&'static [&'static str]),
    Ok,
}

/// (name, expectation, call): the call returns the error its bad input causes, or `Ok(())`
/// after checking the value it computed.
type Case = (&'static str, Expect, fn() -> AnyResult);

fn cases() -> Vec<Case> {
    use Expect::{Error as E, Ok as Fine};
    vec![
        // ---- random constructors ----
        ("rand low > high", E(&["rand", "1.0..0.0"]), || {
            Tensor::rand(&[2], 1.0, 0.0, DType::F32, &mut rng())?;
            Ok(())
        }),
        ("rand NaN bound", E(&["rand", "NaN"]), || {
            Tensor::rand(&[2], f64::NAN, 1.0, DType::F64, &mut rng())?;
            Ok(())
        }),
        ("rand bound beyond f32", E(&["rand", "f32"]), || {
            Tensor::rand(&[2], 0.0, 1e39, DType::F32, &mut rng())?;
            Ok(())
        }),
        ("rand infinite width", E(&["rand"]), || {
            Tensor::rand(&[2], -f64::MAX, f64::MAX, DType::F64, &mut rng())?;
            Ok(())
        }),
        ("init::uniform bound beyond f32", E(&["init::uniform"]), || {
            graphgrad::nn::init::uniform(&[2], -1e39, 1e39, DType::F32, &mut rng())?;
            Ok(())
        }),
        ("randn negative std", E(&["randn", "-1.0"]), || {
            Tensor::randn(&[2], 0.0, -1.0, DType::F32, &mut rng())?;
            Ok(())
        }),
        ("randn NaN std", E(&["randn", "NaN"]), || {
            Tensor::randn(&[2], 0.0, f64::NAN, DType::F32, &mut rng())?;
            Ok(())
        }),
        // ---- element counts and allocation ----
        ("zeros too large for memory", E(&["zeros", "[1048576, 1048576]", "too large"]), || {
            Tensor::zeros(&[1 << 20, 1 << 20], DType::F32)?;
            Ok(())
        }),
        ("ones too large for memory", E(&["ones", "too large"]), || {
            Tensor::ones(&[1 << 40], DType::F32)?;
            Ok(())
        }),
        ("zeros whose count overflows", E(&["zeros", "too large"]), || {
            Tensor::zeros(&[1 << 32, 1 << 32], DType::F32)?;
            Ok(())
        }),
        ("arange too large", E(&["arange", "too large"]), || {
            Tensor::arange(1 << 62, DType::F64)?;
            Ok(())
        }),
        ("broadcast to 2^40 elements", E(&["add", "too large"]), || {
            f32s(&[1 << 20, 1]).add(&f32s(&[1, 1 << 20]))?;
            Ok(())
        }),
        ("from_vec into an overflowing shape", E(&["from_vec", "2 elements"]), || {
            Tensor::from_vec(vec![1.0f32, 2.0], &[(1 << 63) + 1, 2])?;
            Ok(())
        }),
        ("reshape to an overflowing shape", E(&["reshape"]), || {
            f32s(&[4]).reshape(&[1 << 32, 1 << 32, 4])?;
            Ok(())
        }),
        ("Linear too large for memory", E(&["Linear", "too large"]), || {
            LinearConfig::new(1 << 20, 1 << 20).init(&mut rng())?;
            Ok(())
        }),
        ("ConfusionMatrix too large", E(&["ConfusionMatrix", "too large"]), || {
            ConfusionMatrix::new(1 << 32)?;
            Ok(())
        }),
        ("Dataset feature shape overflows", E(&["Dataset"]), || {
            Dataset::classification(vec![0.0; 4], &[1 << 32, 1 << 32], vec![0])?;
            Ok(())
        }),
        ("zero-sized product", Fine, || {
            let y = f32s(&[2, 3, 0]).matmul(&f32s(&[0, 4]))?;
            assert_eq!((y.shape(), y.to_vec::<f32>()?), (&[2usize, 3, 4][..], vec![0.0; 24]));
            Ok(())
        }),
        // ---- movement and geometry ----
        ("narrow start near usize::MAX", E(&["narrow", "exceeds"]), || {
            f32s(&[4]).narrow(0, usize::MAX - 1, 3)?;
            Ok(())
        }),
        ("pad with huge amounts", E(&["pad"]), || {
            f32s(&[4]).pad(&[(usize::MAX, 1)], 0.0)?;
            Ok(())
        }),
        ("conv2d with padding near usize::MAX/2", E(&["conv2d"]), || {
            let options = ConvOptions::default().padding((usize::MAX / 2, 0));
            f32s(&[1, 1, 4, 4]).conv2d(&f32s(&[1, 1, 3, 3]), None, options)?;
            Ok(())
        }),
        ("conv2d with a dilation that overflows", E(&["conv2d"]), || {
            let options = ConvOptions::default().dilation((usize::MAX, 1));
            f32s(&[1, 1, 4, 4]).conv2d(&f32s(&[1, 1, 3, 3]), None, options)?;
            Ok(())
        }),
        ("conv1d error names conv1d", E(&["conv1d"]), || {
            f32s(&[1, 2, 8]).conv1d(&f32s(&[1, 3, 3]), None, ConvOptions::default())?;
            Ok(())
        }),
        ("max_pool2d with padding near usize::MAX/2", E(&["max_pool2d"]), || {
            f32s(&[1, 1, 4, 4]).max_pool2d((usize::MAX, 1), (1, 1), (usize::MAX / 2, 0))?;
            Ok(())
        }),
        ("avg_pool2d with padding near usize::MAX/2", E(&["avg_pool2d"]), || {
            f32s(&[1, 1, 4, 4]).avg_pool2d((usize::MAX, 1), (1, 1), (usize::MAX / 2, 0))?;
            Ok(())
        }),
        // ---- composites name themselves ----
        ("stack names stack", E(&["stack", "[1, 2]", "[1, 3]"]), || {
            Tensor::stack(&[f32s(&[2]), f32s(&[3])], 0)?;
            Ok(())
        }),
        ("masked_fill names masked_fill", E(&["masked_fill"]), || {
            f32s(&[2, 3]).masked_fill(&f32s(&[4]), 0.0)?;
            Ok(())
        }),
        ("mse_loss dtype mismatch", E(&["mse_loss", "element types"]), || {
            mse_loss(&f32s(&[3]), &Tensor::ones(&[3], DType::F64)?, Reduction::Mean)?;
            Ok(())
        }),
        ("layer_norm weight dtype", E(&["layer_norm"]), || {
            let w = Tensor::ones(&[4], DType::F64)?;
            f32s(&[2, 4]).layer_norm(&[4], Some(&w), None, 1e-5)?;
            Ok(())
        }),
        ("Embedding lookup out of range", E(&["Embedding"]), || {
            EmbeddingConfig::new(3, 2).init(&mut rng())?.lookup(&[7], &[1])?;
            Ok(())
        }),
        ("reparameterize names the shape that differs", E(&["reparameterize", "[2, 3]", "[2, 4]"]), || {
            reparameterize(&f32s(&[2, 3]), &f32s(&[2, 4]), &f32s(&[2, 3]))?;
            Ok(())
        }),
        ("clamp prints its bounds briefly", E(&["clamp", "e308"]), || {
            f32s(&[2]).clamp(f64::MAX, -f64::MAX)?;
            Ok(())
        }),
        ("gradcheck with eps 0", E(&["gradcheck", "eps"]), || {
            let x = Tensor::ones(&[2], DType::F64)?;
            let options = GradcheckOptions { eps: 0.0, ..Default::default() };
            gradcheck(|xs| Ok(xs[0].square()), &[x], options)?;
            Ok(())
        }),
        // ---- data ----
        ("sample_features past the end", Fine, || {
            let ds = Dataset::classification(vec![1.0, 2.0], &[1], vec![0, 1])?;
            assert_eq!(ds.sample_features(usize::MAX / 2 + 1), None);
            assert_eq!(ds.sample_features(1), Some(&[2.0f32][..]));
            Ok(())
        }),
        ("CSV label 1e20", E(&["read_csv", "label 1e20"]), || {
            parse_csv("x,y\n1,1e20\n", &CsvOptions::default())?.into_classification(None)?;
            Ok(())
        }),
        ("IDX label 1e300", E(&["load_mnist", "1e300"]), || {
            let images = parse_idx(&[0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7])?;
            let mut labels = vec![0, 0, 0x0E, 1, 0, 0, 0, 1];
            labels.extend_from_slice(&1e300f64.to_be_bytes());
            mnist_from_arrays(&images, &parse_idx(&labels)?)?;
            Ok(())
        }),
        ("standardize with a NaN std", E(&["standardize", "NaN"]), || {
            let mut ds = Dataset::classification(vec![1.0, 2.0], &[1], vec![0, 1])?;
            ds.standardize(&[0.0], &[f32::NAN])?;
            Ok(())
        }),
        ("MemN2N story whose shape overflows", E(&["MemN2N"]), || {
            let net = MemN2NConfig::new(10, 4, 8).init(&mut rng())?;
            net.forward_story(&[1, 2], [1 << 32, 1 << 32, 2], &[1])?;
            Ok(())
        }),
        ("MemN2N input with no words", E(&["MemN2N"]), || {
            MemN2NConfig::new(10, 4, 8).init(&mut rng())?.forward(&f32s(&[1, 2, 0]))?;
            Ok(())
        }),
        // ---- optimisers and training control ----
        ("the same Var in two parameter groups", E(&["SGD", "same tensor"]), || {
            let w = Var::new("w", &f32s(&[2]));
            Sgd::with_groups(vec![
                ParamGroup::new(vec![("a".into(), w.clone())], SgdConfig::new(0.1)),
                ParamGroup::new(vec![("b".into(), w)], SgdConfig::new(0.1)),
            ])?;
            Ok(())
        }),
        ("step_if_finite with an update too large", E(&["step_if_finite", "`w`"]), || {
            let w = Var::new("w", &f32s(&[2]));
            let mut sgd = Sgd::new(vec![("w".into(), w.clone())], SgdConfig::new(1e38))?;
            w.set_grad(Some(&Tensor::full(&[2], 1e38, DType::F32)?))?;
            step_if_finite(&mut sgd, 1.0, 0, 0)?;
            Ok(())
        }),
        ("EarlyStopping min_delta NaN", E(&["EarlyStopping", "min_delta"]), || {
            let w = Var::new("w", &f32s(&[1]));
            let mut early = EarlyStopping::new(MetricMode::Min, 2).min_delta(f64::NAN);
            early.observe(0, 1.0, &[("w".into(), w)])?;
            Ok(())
        }),
        ("optimiser state with step u64::MAX", E(&["step", "2^53"]), || {
            let w = Var::new("w", &f32s(&[2]));
            let mut sgd = Sgd::new(vec![("w".into(), w.clone())], SgdConfig::new(0.1))?;
            w.set_grad(Some(&f32s(&[2])))?;
            sgd.step()?;
            let mut state = sgd.state();
            state.params.get_mut("w").expect("stepped").step = u64::MAX;
            sgd.load_state(&state)?;
            Ok(())
        }),
        // ---- the compiler ----
        ("compile inside a traced step", Fine, || {
            let mut inner = compile(|io: &[Tensor]| {
                Ok::<_, graphgrad::autodiff::Error>(io[0].mul_scalar(2.0).add_scalar(1.0).sum_all())
            });
            inner.call(&[Tensor::zeros(&[3], DType::F64)?])?; // compiled before the outer trace
            let inner = std::cell::RefCell::new(&mut inner);
            let mut outer = compile(|io: &[Tensor]| -> graphgrad::autodiff::Result<Tensor> {
                Ok(inner.borrow_mut().call(&[io[0].clone()])?.remove(0))
            });
            for v in [1.0, 2.0, 3.0] {
                let y = outer.call(&[Tensor::full(&[3], v, DType::F64)?])?[0].item()?;
                assert_eq!(y, 3.0 * (2.0 * v + 1.0), "the inner step's result follows the input");
            }
            Ok(())
        }),
        ("a panic inside constant_indices propagates", Fine, || {
            // (that the setting is restored after it is a unit test of autodiff's `mode`)
            assert!(catch_unwind(|| constant_indices(|| panic!("inside"))).is_err());
            Ok(())
        }),
    ]
}

#[test]
fn every_hostile_call_returns_an_error_naming_the_op_or_the_right_value() {
    let mut failures = Vec::new();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // panics are reported below, by case
    for (name, expect, call) in cases() {
        let outcome = catch_unwind(AssertUnwindSafe(call));
        let verdict = match (outcome, &expect) {
            (Err(panic), _) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Some(format!("panicked: {why}"))
            }
            (Ok(Ok(())), Expect::Ok) => None,
            (Ok(Ok(())), Expect::Error(_)) => Some("returned Ok".to_string()),
            (Ok(Err(e)), Expect::Ok) => Some(format!("returned the error {e}")),
            (Ok(Err(e)), Expect::Error(words)) => {
                let message = e.to_string();
                println!("{name}: {message}"); // shown with --nocapture
                let missing: Vec<_> = words.iter().filter(|w| !message.contains(*w)).collect();
                (!missing.is_empty() || message.len() > 400)
                    .then(|| format!("error `{message}` lacks {missing:?} (or is too long)"))
            }
        };
        if let Some(v) = verdict {
            failures.push(format!("{name}: {v}"));
        }
    }
    std::panic::set_hook(quiet);
    assert!(failures.is_empty(), "{} hostile calls went wrong:\n{}", failures.len(), failures.join("\n"));
}
