//! Activation checkpointing: a checkpointed segment gives the gradients of the plain one, in
//! eager and compiled mode, with a lower measured peak of memory (a counting allocator eagerly,
//! the memory plan compiled), and the remat pass reports what it saved.

use graphgrad::autodiff::compile::{compile_with, CompileOptions};
use graphgrad::autodiff::{checkpoint, clear_buffer_pool, grad, DType, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Measurements share the counters: one at a time.
static MEASURE: Mutex<()> = Mutex::new(());

/// Peak heap bytes above the starting level while `f` runs.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    clear_buffer_pool();
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed) - start)
}

const WIDTH: usize = 256;
const BATCH: usize = 256;
const DEPTH: usize = 6;

/// A deep stack of tanh layers: each layer's activations are what the backward pass keeps.
fn layers() -> Vec<Var> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    (0..DEPTH)
        .map(|i| {
            Var::new(
                format!("w{i}"),
                &Tensor::randn(&[WIDTH, WIDTH], 0.0, 0.05, DType::F32, &mut rng).unwrap(),
            )
        })
        .collect()
}

/// The stack on `x`, each layer `tanh(tanh(h·w)·2)` (two kept activations per layer).
fn block(h: &Tensor, w: &Tensor) -> graphgrad::autodiff::Result<Tensor> {
    Ok(h.matmul(w)?.tanh().mul_scalar(2.0).tanh())
}

fn loss(ws: &[Var], x: &Tensor, checkpointed: bool) -> graphgrad::autodiff::Result<Tensor> {
    let mut h = x.clone();
    for w in ws {
        h = if checkpointed {
            // one segment per layer: only the layers' outputs are kept, and the backward pass
            // recomputes one layer's inner values at a time
            checkpoint(|v| Ok(vec![block(&v[0], &v[1])?]), &[h, w.tensor().clone()])?.remove(0)
        } else {
            block(&h, w)?
        };
    }
    Ok(h.square().mean_all())
}

fn input() -> Tensor {
    Tensor::randn(&[BATCH, WIDTH], 0.0, 1.0, DType::F32, &mut ChaCha8Rng::seed_from_u64(6)).unwrap()
}

fn assert_close(a: &[f32], b: &[f32]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-6 + 1e-5 * x.abs(), "{x} vs {y}");
    }
}

#[test]
fn checkpointed_eager_gradients_equal_plain_ones_with_less_memory_kept_for_backward() {
    let _lock = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let ws = layers();
    let x = input();
    let leaves: Vec<Tensor> = ws.iter().map(|w| w.tensor().clone()).collect();
    // The peak while the forward pass runs, which is what it keeps for the backward pass (the
    // buffer pool caches buffers freed later, so the backward pass's own peak is not compared).
    let forward = |checkpointed: bool| peak_of(|| loss(&ws, &x, checkpointed).unwrap());
    let run = |l: Tensor| {
        let g = grad(std::slice::from_ref(&l), &leaves, false).unwrap();
        (l.item().unwrap(), g.iter().map(|g| g.to_vec::<f32>().unwrap()).collect::<Vec<_>>())
    };
    let (plain_loss, plain_peak) = forward(false);
    let (plain_loss, plain) = run(plain_loss);
    let (ckpt_loss, ckpt_peak) = forward(true);
    let (ckpt_loss, ckpt) = run(ckpt_loss);
    assert!((plain_loss - ckpt_loss).abs() < 1e-12, "{plain_loss} vs {ckpt_loss}");
    for (a, b) in plain.iter().zip(&ckpt) {
        assert_close(a, b);
    }
    // each layer keeps three values of 256 KiB (the product and two activations) plainly, one
    // (its output) checkpointed
    let activation = BATCH * WIDTH * 4;
    assert!(
        ckpt_peak + 2 * DEPTH * activation <= plain_peak,
        "forward peak {ckpt_peak} B checkpointed vs {plain_peak} B plain"
    );
}

#[test]
fn checkpointed_compiled_gradients_equal_plain_ones_with_a_lower_planned_peak() {
    let _lock = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let ws = layers();
    let x = input();
    let leaves: Vec<Tensor> = ws.iter().map(|w| w.tensor().clone()).collect();
    // Without the remat policy, which would recompute the second activation of each plain
    // layer from the first by itself: the segments alone make the difference.
    let options = CompileOptions { remat: false, ..CompileOptions::default() };
    let step = |checkpointed: bool| {
        let (ws, leaves) = (ws.clone(), leaves.clone());
        let step = move |io: &[Tensor]| -> graphgrad::autodiff::Result<Vec<Tensor>> {
            let l = loss(&ws, &io[0], checkpointed)?;
            let mut out = vec![l.clone()];
            out.extend(grad(&[l], &leaves, false)?);
            Ok(out)
        };
        compile_with(step, options.clone())
    };
    let (mut plain, mut ckpt) = (step(false), step(true));
    let a = plain.call(std::slice::from_ref(&x)).unwrap();
    let b = ckpt.call(std::slice::from_ref(&x)).unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert_close(&a.to_vec::<f32>().unwrap(), &b.to_vec::<f32>().unwrap());
    }
    let (plain_peak, ckpt_peak) = (planned_peak(&plain), planned_peak(&ckpt));
    let activation = BATCH * WIDTH * 4;
    assert!(
        ckpt_peak + 3 * activation <= plain_peak,
        "planned {ckpt_peak} B checkpointed vs {plain_peak} B plain"
    );
    let log = ckpt.programs().next().unwrap().log();
    assert!(log.contains("remat:") && log.contains("saved"), "{log}");
}

fn planned_peak<F>(c: &graphgrad::autodiff::Compiled<F>) -> usize {
    c.programs().next().unwrap().memory_plan().peak_bytes
}
