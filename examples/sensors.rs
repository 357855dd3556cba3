//! A time-series input: detecting anomalous windows in generated multi-channel sensor data.
//!
//! The data: three sensors sampled for T steps, each a sinusoid of its own period, amplitude
//! and phase, plus a slow linear drift and Gaussian noise (all seeded). Anomalies of three
//! kinds are injected at random times on random channels:
//! - spike: one sample jumps by 1–2 amplitudes;
//! - level shift: the channel is offset by 0.6–1.2 amplitudes for 20–48 steps;
//! - frozen sensor: the channel repeats its last value (no noise) for 30–120 steps.
//!
//! The series is cut into overlapping windows of W = 64 steps (stride 16); a window is
//! anomalous (class 1) when it holds a spike or at least 6 steps of a shift or freeze, normal
//! (class 0) when it holds no anomalous step, and ambiguous windows (1–5 steps of a shift or
//! freeze at an edge) are left out. Time decides the split: the first 60% of the series
//! trains, the next 20% validates (early stopping, and the decision threshold), the last 20%
//! tests, with a gap of one window between the parts, so no test window shares a single
//! sample with a training window. Each window's channels are centred on the window's mean
//! (removing the drift) and scaled with statistics of the training part; the network gets, per
//! sensor, the centred value, its first difference and the difference's magnitude (9 input
//! channels: without the magnitude, the net learns the jumps but hardly the missing noise of a
//! frozen sensor).
//!
//! The model (graphgrad::nn layers): Conv1d(9→h, 5) → ReLU → Conv1d(h→h, 5, dilation 2) →
//! ReLU → max and mean over time → Linear(2h → 1), a logit trained with binary cross-entropy
//! with logits (positive class weighted by the training set's imbalance) and Adam, with early
//! stopping on the validation loss. It reports precision and recall of the anomaly class on
//! the held-out test windows, and recall per anomaly kind.
//!
//! ```text
//! cargo run --release --example sensors
//! cargo run --release --example sensors -- --steps 96000 --epochs 60 --hidden 16 --lr 0.003 --patience 10 --seed 1
//! cargo run --release --example sensors -- --mode compiled
//! ```
//!
//! Writes `signal.svg` (a test stretch with true and detected anomalies) and `loss.svg`
//! (training and validation loss per epoch) to `out/sensors` (or `--out DIR`).

mod common;

use common::{line_chart, lines_and_points, output_dir, progress, AnyResult, Flags, Series};
use graphgrad::autodiff::compile::compile_if;
use graphgrad::autodiff::{no_grad, DType, Result, Tensor};
use graphgrad::nn::data::Dataset;
use graphgrad::nn::loss::binary_cross_entropy_with_logits;
use graphgrad::nn::metrics::ConfusionMatrix;
use graphgrad::nn::{Conv1d, Conv1dConfig, Linear, LinearConfig, Module, Reduction, Visitor};
use graphgrad::optim::{
    Adam, AdamConfig, EarlyStopping, MetricMode, Optimizer, StopReason, StoppingCriteria,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::process::ExitCode;

const CHANNELS: usize = 3;
const NAMES: [&str; CHANNELS] = ["temperature", "pressure", "vibration"];
const WINDOW: usize = 64;
/// Network inputs per window: each sensor's centred value, first difference and its magnitude.
const INPUTS: usize = 3 * CHANNELS;
const STRIDE: usize = 16;
/// Steps of a shift or freeze that make a window anomalous.
const MIN_SEGMENT_STEPS: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Spike,
    LevelShift,
    Frozen,
}

const KINDS: [Kind; 3] = [Kind::Spike, Kind::LevelShift, Kind::Frozen];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::LevelShift => "level shift",
            Kind::Frozen => "frozen sensor",
        }
    }
}

/// One injected anomaly: `len` steps from `start` on `channel`.
struct Anomaly {
    kind: Kind,
    channel: usize,
    start: usize,
    len: usize,
}

/// The generated series and what was injected.
struct Signals {
    values: Vec<Vec<f64>>,
    amplitude: [f64; CHANNELS],
    anomalies: Vec<Anomaly>,
}

/// Sinusoids with drift and noise, then anomalies at random, non-overlapping times.
fn generate(steps: usize, rng: &mut ChaCha8Rng) -> graphgrad::autodiff::Result<Signals> {
    let mut values = vec![vec![0.0; steps]; CHANNELS];
    let mut amplitude = [0.0; CHANNELS];
    for (c, channel) in values.iter_mut().enumerate() {
        let a = rng.gen_range(0.8..2.0);
        let period = rng.gen_range(40.0..120.0);
        let phase = rng.gen_range(0.0..std::f64::consts::TAU);
        let drift = rng.gen_range(-3.0..3.0) * a / steps as f64; // up to 3 amplitudes overall
        let offset = rng.gen_range(-5.0..5.0);
        let noise = Tensor::randn(&[steps], 0.0, 0.05 * a, DType::F64, rng)?.to_f64_vec();
        for (t, v) in channel.iter_mut().enumerate() {
            let tf = t as f64;
            *v = offset + a * (std::f64::consts::TAU * tf / period + phase).sin() + drift * tf + noise[t];
        }
        amplitude[c] = a;
    }
    // About one anomaly per 250 steps, at least 60 steps apart.
    let mut anomalies: Vec<Anomaly> = Vec::new();
    for _ in 0..steps / 250 {
        let kind = KINDS[rng.gen_range(0..KINDS.len())];
        let channel = rng.gen_range(0..CHANNELS);
        let len = match kind {
            Kind::Spike => 1,
            Kind::LevelShift => rng.gen_range(20..=48),
            Kind::Frozen => rng.gen_range(30..=120),
        };
        let start = rng.gen_range(1..steps - len);
        if anomalies.iter().any(|o| start < o.start + o.len + 60 && o.start < start + len + 60) {
            continue;
        }
        let a = amplitude[channel];
        let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
        let x = &mut values[channel];
        match kind {
            Kind::Spike => x[start] += sign * rng.gen_range(1.0..2.0) * a,
            Kind::LevelShift => {
                let shift = sign * rng.gen_range(0.6..1.2) * a;
                x[start..start + len].iter_mut().for_each(|v| *v += shift);
            }
            Kind::Frozen => {
                let stuck = x[start - 1];
                x[start..start + len].iter_mut().for_each(|v| *v = stuck);
            }
        }
        anomalies.push(Anomaly { kind, channel, start, len });
    }
    anomalies.sort_by_key(|a| a.start);
    Ok(Signals { values, amplitude, anomalies })
}

/// One window: where it starts, its class (None when ambiguous) and the kinds it holds.
struct Window {
    start: usize,
    label: Option<usize>,
    kinds: Vec<Kind>,
}

fn label_windows(signals: &Signals, steps: usize) -> Vec<Window> {
    (0..=steps - WINDOW)
        .step_by(STRIDE)
        .map(|start| {
            let (mut anomalous, mut ambiguous, mut kinds) = (false, false, Vec::new());
            for a in &signals.anomalies {
                let overlap = (a.start + a.len).min(start + WINDOW).saturating_sub(a.start.max(start));
                if overlap == 0 {
                    continue;
                }
                if a.kind == Kind::Spike || overlap >= MIN_SEGMENT_STEPS {
                    anomalous = true;
                    kinds.push(a.kind);
                } else {
                    ambiguous = true;
                }
            }
            let label = if anomalous {
                Some(1)
            } else if ambiguous {
                None
            } else {
                Some(0)
            };
            Window { start, label, kinds }
        })
        .collect()
}

/// Per-channel scales of the centred values and of the first differences, from `windows`.
fn scales(values: &[Vec<f64>], windows: &[&Window]) -> [(f64, f64); CHANNELS] {
    let mut out = [(1.0, 1.0); CHANNELS];
    for (c, x) in values.iter().enumerate() {
        let (mut sv, mut sd, mut n) = (0.0, 0.0, 0.0);
        for w in windows {
            let seg = &x[w.start..w.start + WINDOW];
            let mean = seg.iter().sum::<f64>() / WINDOW as f64;
            for t in w.start..w.start + WINDOW {
                sv += (x[t] - mean).powi(2);
                sd += if t > 0 { (x[t] - x[t - 1]).powi(2) } else { 0.0 };
                n += 1.0;
            }
        }
        out[c] = ((sv / n).sqrt().max(1e-9), (sd / n).sqrt().max(1e-9));
    }
    out
}

/// The windows as a data set of `[INPUTS, WINDOW]` samples: the centred values, the first
/// differences, and their magnitudes.
fn to_dataset(values: &[Vec<f64>], windows: &[&Window], scale: &[(f64, f64); CHANNELS]) -> Result<Dataset> {
    let mut features = Vec::with_capacity(windows.len() * INPUTS * WINDOW);
    for w in windows {
        for (c, x) in values.iter().enumerate() {
            let seg = &x[w.start..w.start + WINDOW];
            let mean = seg.iter().sum::<f64>() / WINDOW as f64;
            features.extend(seg.iter().map(|v| ((v - mean) / scale[c].0) as f32));
        }
        for (c, x) in values.iter().enumerate() {
            features.extend((w.start..w.start + WINDOW).map(|t| {
                if t > 0 {
                    ((x[t] - x[t - 1]) / scale[c].1) as f32
                } else {
                    0.0
                }
            }));
        }
        for (c, x) in values.iter().enumerate() {
            features.extend((w.start..w.start + WINDOW).map(|t| {
                if t > 0 {
                    ((x[t] - x[t - 1]).abs() / scale[c].1) as f32
                } else {
                    0.0
                }
            }));
        }
    }
    let labels = windows.iter().map(|w| w.label.unwrap_or(0)).collect();
    Dataset::classification(features, &[INPUTS, WINDOW], labels)
}

/// Conv1d → ReLU → dilated Conv1d → ReLU → max and mean over time → Linear → one logit.
struct Detector {
    conv1: Conv1d,
    conv2: Conv1d,
    head: Linear,
}

impl Detector {
    fn new(hidden: usize, rng: &mut ChaCha8Rng) -> Result<Detector> {
        Ok(Detector {
            conv1: Conv1dConfig::new(INPUTS, hidden, 5).init(rng)?,
            conv2: Conv1dConfig::new(hidden, hidden, 5).with_dilation(2).init(rng)?,
            head: LinearConfig::new(2 * hidden, 1).init(rng)?,
        })
    }
}

impl Module for Detector {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(x)?.relu();
        let h = self.conv2.forward(&h)?.relu();
        // [batch, 2·hidden]: the strongest response anywhere, and the average one.
        let pooled = Tensor::cat(&[h.max(&[2], false)?, h.mean(&[2], false)?], 1)?;
        self.head.forward(&pooled) // [batch, 1]
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.child("conv1", &self.conv1);
        v.child("conv2", &self.conv2);
        v.child("head", &self.head);
    }
}

/// The labels as a `[batch, 1]` f32 target.
fn targets(labels: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(labels.iter().map(|&l| l as f32).collect(), &[labels.len(), 1])
}

/// Mean loss and the anomaly probability of every window of `data`, without gradients.
fn evaluate(model: &Detector, data: &Dataset, pos_weight: &Tensor) -> Result<(f64, Vec<f64>)> {
    no_grad(|| {
        let batch = data.batch(&(0..data.len()).collect::<Vec<_>>())?;
        let logits = model.forward(&batch.inputs)?;
        let labels = batch.labels().expect("a classification data set");
        let loss = binary_cross_entropy_with_logits(
            &logits,
            &targets(labels)?,
            None,
            Some(pos_weight),
            Reduction::Mean,
        )?;
        Ok((loss.item()?, logits.sigmoid().to_f64_vec()))
    })
}

fn confusion(probabilities: &[f64], labels: &[usize], threshold: f64) -> Result<ConfusionMatrix> {
    let predicted: Vec<usize> = probabilities.iter().map(|&p| usize::from(p >= threshold)).collect();
    ConfusionMatrix::from_predictions(&predicted, labels, 2)
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(
        &["steps", "epochs", "batch-size", "lr", "hidden", "patience", "seed", "mode", "out"],
        &[],
    )?;
    let fast = common::fast_mode();
    let steps: usize = flags.get("steps", if fast { 8000 } else { 48000 })?;
    let epochs: u64 = flags.get("epochs", if fast { 2 } else { 60 })?;
    let batch_size: usize = flags.get("batch-size", 32)?;
    let lr: f64 = flags.get("lr", 0.003)?;
    let hidden: usize = flags.get("hidden", 16)?;
    let patience: u64 = flags.get("patience", 10)?;
    let seed: u64 = flags.get("seed", 0)?;
    if steps < 20 * WINDOW {
        return Err(format!("--steps: need at least {} steps", 20 * WINDOW).into());
    }
    let out = output_dir(&flags, "sensors")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let signals = generate(steps, &mut rng)?;
    let count = |k: Kind| signals.anomalies.iter().filter(|a| a.kind == k).count();
    println!(
        "signals: {CHANNELS} sensors ({}) × {steps} steps; injected {} anomalies: {} spikes, {} level shifts, {} frozen",
        NAMES.join(", "),
        signals.anomalies.len(),
        count(Kind::Spike),
        count(Kind::LevelShift),
        count(Kind::Frozen)
    );

    // Split by time with a one-window gap, so test windows share no sample with training ones.
    let windows = label_windows(&signals, steps);
    let (train_end, val_end) = (steps * 6 / 10, steps * 8 / 10);
    let part = |lo: usize, hi: usize| -> Vec<&Window> {
        windows.iter().filter(|w| w.label.is_some() && w.start >= lo && w.start + WINDOW <= hi).collect()
    };
    let (train_w, val_w, test_w) =
        (part(0, train_end), part(train_end + WINDOW, val_end), part(val_end + WINDOW, steps));
    let ambiguous = windows.iter().filter(|w| w.label.is_none()).count();
    let scale = scales(&signals.values, &train_w);
    let (train, val, test) = (
        to_dataset(&signals.values, &train_w, &scale)?,
        to_dataset(&signals.values, &val_w, &scale)?,
        to_dataset(&signals.values, &test_w, &scale)?,
    );
    let positives = |w: &[&Window]| w.iter().filter(|w| w.label == Some(1)).count();
    println!(
        "windows of {WINDOW} steps, stride {STRIDE}: train {} ({} anomalous), validation {} ({}), test {} ({}); \
         {ambiguous} ambiguous windows left out",
        train_w.len(),
        positives(&train_w),
        val_w.len(),
        positives(&val_w),
        test_w.len(),
        positives(&test_w)
    );
    if positives(&train_w) == 0 || positives(&train_w) == train_w.len() {
        return Err("the training part needs both normal and anomalous windows: use more --steps".into());
    }
    let pos_weight_value = (train_w.len() - positives(&train_w)) as f64 / positives(&train_w) as f64;
    let pos_weight = Tensor::from_vec(vec![pos_weight_value as f32], &[1])?;

    let model = Detector::new(hidden, &mut rng)?;
    let n_params: usize = model.parameters().iter().map(|v| v.numel()).sum();
    println!(
        "model: Conv1d {INPUTS}→{hidden} (5) → ReLU → Conv1d {hidden}→{hidden} (5, dilation 2) → ReLU → max and mean \
         over time → Linear {}→1; {n_params} parameters; BCE with logits, positive weight {pos_weight_value:.2}; \
         Adam lr {lr}",
        2 * hidden
    );
    let optimizer = RefCell::new(Adam::new(model.named_parameters(), AdamConfig::new(lr))?);
    // The training step, eager or compiled whole by `--mode`: inputs [windows, 0/1 targets].
    let mut train_step = compile_if(common::compiled_mode(&flags)?, |io: &[Tensor]| -> AnyResult<Tensor> {
        let mut optimizer = optimizer.borrow_mut();
        let logits = model.forward(&io[0])?;
        let loss =
            binary_cross_entropy_with_logits(&logits, &io[1], None, Some(&pos_weight), Reduction::Mean)?;
        optimizer.zero_grad();
        loss.backward()?;
        optimizer.step()?;
        Ok(loss)
    });
    let early = EarlyStopping::new(MetricMode::Min, patience).min_delta(1e-4).restore_best(true);
    let mut stopping = StoppingCriteria::new().max_epochs(epochs).early_stopping(early);
    let (mut train_curve, mut val_curve) = (Vec::new(), Vec::new());
    let bar = progress(epochs, "training");
    let mut reason = None;
    for epoch in 0..epochs {
        let (mut sum, mut seen) = (0.0, 0);
        for batch in train.shuffled_batches(batch_size, false, &mut rng)? {
            let labels = batch.labels().ok_or("windows have class labels")?;
            let loss = train_step.call(&[batch.inputs.clone(), targets(labels)?])?[0].item()?;
            sum += loss * batch.len() as f64;
            seen += batch.len();
        }
        let (val_loss, _) = evaluate(&model, &val, &pos_weight)?;
        let train_loss = sum / seen.max(1) as f64;
        train_curve.push((epoch as f64 + 1.0, train_loss));
        val_curve.push((epoch as f64 + 1.0, val_loss));
        bar.set_message(format!(
            "epoch {}: train loss {train_loss:.4}, validation loss {val_loss:.4}",
            epoch + 1
        ));
        bar.inc(1);
        reason = stopping.end_epoch(epoch, train_loss, Some(val_loss), &model.named_parameters())?;
        if reason.is_some() {
            break;
        }
    }
    bar.finish();
    match reason {
        Some(StopReason::EarlyStopping { best, best_epoch }) => {
            println!(
                "early stopping: restored the weights of epoch {} (validation loss {best:.4})",
                best_epoch + 1
            )
        }
        _ => println!("stopped after {} epochs", train_curve.len()),
    }

    // The decision threshold is chosen on validation windows (best F1), never on test ones.
    let (_, val_p) = evaluate(&model, &val, &pos_weight)?;
    let val_labels = val.labels().ok_or("windows have class labels")?;
    let mut threshold = 0.5;
    let mut best_f1 = -1.0;
    for i in 1..100 {
        let t = i as f64 / 100.0;
        let f1 = confusion(&val_p, val_labels, t)?.f1(1);
        if f1 > best_f1 {
            (best_f1, threshold) = (f1, t);
        }
    }
    println!("threshold {threshold:.2} (best F1 {best_f1:.3} on the validation windows)");

    let (test_loss, test_p) = evaluate(&model, &test, &pos_weight)?;
    let test_labels = test.labels().ok_or("windows have class labels")?;
    let matrix = confusion(&test_p, test_labels, threshold)?;
    println!(
        "\ntest windows (never seen in training): loss {test_loss:.4}; anomaly class: precision {:.3} \
         ({} of {} flagged windows are anomalous), recall {:.3} ({} of {} anomalous windows found)",
        matrix.precision(1),
        matrix.true_positives(1),
        matrix.true_positives(1) + matrix.false_positives(1),
        matrix.recall(1),
        matrix.true_positives(1),
        matrix.support(1)
    );
    let at_half = confusion(&test_p, test_labels, 0.5)?;
    println!("  (at threshold 0.50: precision {:.3}, recall {:.3})", at_half.precision(1), at_half.recall(1));
    for kind in KINDS {
        let (mut found, mut total) = (0, 0);
        for (w, &p) in test_w.iter().zip(&test_p) {
            if w.kinds.contains(&kind) {
                total += 1;
                found += usize::from(p >= threshold);
            }
        }
        if total > 0 {
            println!("  recall on windows with a {}: {found}/{total}", kind.name());
        }
    }
    println!("{}", matrix.with_labels(&["normal", "anomalous"])?);

    // Picture: a test stretch of every channel, true anomalous steps and detected windows.
    let (from, to) = (val_end + WINDOW, (val_end + WINDOW + 800).min(steps));
    let mut lines = Vec::new();
    let mut bottom = f64::MAX;
    let mut shifted: Vec<Vec<f64>> = Vec::new();
    for (c, x) in signals.values.iter().enumerate() {
        // Each channel centred and stacked, so the three do not overlap.
        let mean = x[from..to].iter().sum::<f64>() / (to - from) as f64;
        let lift = -(c as f64) * 5.0;
        let y: Vec<f64> = x.iter().map(|v| (v - mean) / signals.amplitude[c] + lift).collect();
        bottom = bottom.min(y[from..to].iter().copied().fold(f64::MAX, f64::min));
        shifted.push(y);
    }
    for (c, y) in shifted.iter().enumerate() {
        lines.push(Series { label: NAMES[c], points: (from..to).map(|t| (t as f64, y[t])).collect() });
    }
    let mut truth = Vec::new();
    for a in signals.anomalies.iter().filter(|a| a.start + a.len > from && a.start < to) {
        let (lo, hi) = (a.start.max(from), (a.start + a.len).min(to));
        truth.extend(shifted[a.channel][lo..hi].iter().enumerate().map(|(i, &v)| ((lo + i) as f64, v)));
    }
    let band = |selected: &dyn Fn(&Window, f64) -> bool, y: f64| -> Vec<(f64, f64)> {
        let mut covered = vec![false; to - from];
        for (w, &p) in test_w.iter().zip(&test_p) {
            if selected(w, p) && w.start + WINDOW <= to {
                covered[w.start - from..w.start + WINDOW - from].iter_mut().for_each(|c| *c = true);
            }
        }
        (from..to).filter(|t| covered[t - from]).step_by(2).map(|t| (t as f64, y)).collect()
    };
    let true_band = band(&|w, _| w.label == Some(1), bottom - 1.0);
    let detected_band = band(&|_, p| p >= threshold, bottom - 2.0);
    let signal_path = out.join("signal.svg");
    lines_and_points(
        &signal_path,
        "test stretch: sensors (centred, stacked), injected anomalies, anomalous and detected windows",
        "time step",
        "value / amplitude (stacked)",
        &lines,
        &[
            Series { label: "injected anomaly", points: truth },
            Series { label: "truly anomalous windows", points: true_band },
            Series { label: "windows flagged by the model", points: detected_band },
        ],
    )?;
    let loss_path = out.join("loss.svg");
    line_chart(
        &loss_path,
        "sensors: binary cross-entropy per epoch",
        "epoch",
        "BCE with logits",
        &[Series { label: "train", points: train_curve }, Series { label: "validation", points: val_curve }],
    )?;
    println!("wrote {} and {}", signal_path.display(), loss_path.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sensors: {e}");
            ExitCode::FAILURE
        }
    }
}
