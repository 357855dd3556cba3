//! The memory planner on a real training step (the W2 MLP: 784 -> 512 -> 512 -> 10, batch
//! 128, ReLU, softmax cross-entropy, SGD with momentum): no two simultaneously live values
//! share a byte, and the compiled step's peak heap is compared with the eager step's,
//! measured by a counting allocator. (Alone in its test binary: the allocator is global.)

use graphgrad_autodiff::compile::compile;
use graphgrad_autodiff::{grad, no_grad, DType, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Serialises the tests that read the counters.
static MEASURE: Mutex<()> = Mutex::new(());

// SAFETY: forwards to the system allocator, only adding bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap bytes above the level at the start, while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

const LR: f64 = 0.01;
const MU: f64 = 0.9;

struct Mlp {
    params: Vec<Var>,
    momenta: Vec<Tensor>,
}

fn mlp(seed: u64) -> Mlp {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dims = [(784, 512), (512, 512), (512, 10)];
    let mut params = Vec::new();
    for (i, &(fan_in, fan_out)) in dims.iter().enumerate() {
        let std = (2.0 / fan_in as f64).sqrt();
        params.push(Var::new(
            format!("w{i}"),
            &Tensor::randn(&[fan_in, fan_out], 0.0, std, DType::F32, &mut rng).unwrap(),
        ));
        params.push(Var::new(format!("b{i}"), &Tensor::zeros(&[fan_out], DType::F32).unwrap()));
    }
    let momenta = params.iter().map(|p| Tensor::zeros(p.shape(), DType::F32).unwrap()).collect();
    Mlp { params, momenta }
}

fn loss(params: &[Var], x: &Tensor, target: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    for (i, layer) in params.chunks(2).enumerate() {
        h = h.matmul(&layer[0])?.add(&layer[1])?;
        if i < 2 {
            h = h.relu();
        }
    }
    Ok(h.log_softmax(-1)?.mul(target)?.sum_all().mul_scalar(-1.0 / x.shape()[0] as f64))
}

fn batch(seed: u64) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Tensor::rand(&[128, 784], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let mut t = vec![0.0f32; 128 * 10];
    for row in t.chunks_mut(10) {
        row[rng.gen_range(0..10)] = 1.0;
    }
    (x, Tensor::from_vec(t, &[128, 10]).unwrap())
}

/// The compiled W2 step: loss out, parameters and momenta updated in place.
fn compiled_step(m: &Mlp) -> impl FnMut(&Tensor, &Tensor) -> f64 {
    let (params, momenta) = (m.params.clone(), m.momenta.clone());
    let mut f = compile(move |io: &[Tensor]| {
        let l = loss(&params, &io[0], &io[1])?;
        let leaves: Vec<Tensor> = params.iter().map(|p| p.tensor().clone()).collect();
        let grads = grad(std::slice::from_ref(&l), &leaves, false)?;
        for ((p, v), g) in params.iter().zip(&momenta).zip(&grads) {
            let v_new = v.mul_scalar(MU).add(g)?;
            p.set(&p.sub(&v_new.mul_scalar(LR))?)?;
            v.assign(&v_new)?;
        }
        Ok::<_, graphgrad_autodiff::Error>(l)
    });
    move |x, t| f.call(&[x.clone(), t.clone()]).unwrap()[0].item().unwrap()
}

fn eager_step(m: &mut Mlp, x: &Tensor, t: &Tensor) -> f64 {
    let l = loss(&m.params, x, t).unwrap();
    let leaves: Vec<Tensor> = m.params.iter().map(|p| p.tensor().clone()).collect();
    let grads = grad(std::slice::from_ref(&l), &leaves, false).unwrap();
    no_grad(|| {
        for ((p, v), g) in m.params.iter().zip(m.momenta.iter_mut()).zip(&grads) {
            *v = v.mul_scalar(MU).add(g).unwrap();
            p.set(&p.sub(&v.mul_scalar(LR)).unwrap()).unwrap();
        }
    });
    l.item().unwrap()
}

#[test]
fn no_two_live_buffers_overlap_in_a_training_step() {
    let _lock = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let m = mlp(1);
    let (params, momenta) = (m.params.clone(), m.momenta.clone());
    let (x, t) = batch(2);
    let program = graphgrad_autodiff::Program::trace(
        &mut |io: &[Tensor]| {
            let l = loss(&params, &io[0], &io[1])?;
            let leaves: Vec<Tensor> = params.iter().map(|p| p.tensor().clone()).collect();
            let grads = grad(std::slice::from_ref(&l), &leaves, false)?;
            for ((p, v), g) in params.iter().zip(&momenta).zip(&grads) {
                let v_new = v.mul_scalar(MU).add(g)?;
                p.set(&p.sub(&v_new.mul_scalar(LR))?)?;
                v.assign(&v_new)?;
            }
            Ok::<_, graphgrad_autodiff::Error>(l)
        },
        &[x, t],
        &Default::default(),
    )
    .unwrap();
    let plan = program.memory_plan();
    assert!(plan.lifetimes.len() > 10, "{}", program.log());
    let mut pairs = 0;
    for (i, a) in plan.lifetimes.iter().enumerate() {
        assert!(a.bytes <= plan.slots[a.slot].bytes, "value {:?} exceeds its slot", a.value);
        assert!(a.start <= a.end);
        for b in &plan.lifetimes[i + 1..] {
            let live_together = a.start <= b.end && b.start <= a.end;
            if live_together {
                pairs += 1;
                let disjoint = a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset;
                assert!(
                    disjoint,
                    "{:?} and {:?} are live together and overlap:\n{a:?}\n{b:?}",
                    a.value, b.value
                );
            }
        }
    }
    assert!(pairs > 0);
    assert!(plan.peak_bytes < plan.unplanned_bytes, "{}", program.log());
    // all 12 updates (6 parameters, 6 momenta) are written in place
    assert_eq!(plan.inplace_updates, 12, "{}", program.log());
}

#[test]
fn compiled_step_matches_eager_and_uses_less_memory() {
    let _lock = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let mut eager = mlp(3);
    let compiled = mlp(3);
    let mut step = compiled_step(&compiled);
    let (x, t) = batch(4);
    // warm up both (the compiled one traces and plans here)
    let (le, lc) = (eager_step(&mut eager, &x, &t), step(&x, &t));
    assert!((le - lc).abs() < 1e-4 * le.abs().max(1.0), "{le} vs {lc}");
    let mut eager_peak = 0;
    let mut compiled_peak = 0;
    for seed in 5..8 {
        let (x, t) = batch(seed);
        let mut le = 0.0;
        // Buffers kept for reuse between eager steps are memory too: start each step without
        // them, so the eager figure counts every buffer the step holds.
        graphgrad_autodiff::clear_buffer_pool();
        eager_peak = eager_peak.max(peak_during(|| le = eager_step(&mut eager, &x, &t)));
        graphgrad_autodiff::clear_buffer_pool();
        let mut lc = 0.0;
        compiled_peak = compiled_peak.max(peak_during(|| lc = step(&x, &t)));
        assert!((le - lc).abs() < 1e-4 * le.abs().max(1.0), "{le} vs {lc}");
    }
    for (e, c) in eager.params.iter().zip(&compiled.params) {
        graphgrad_ops::testing::assert_close(
            &c.to_vec::<f32>().unwrap(),
            &e.to_vec::<f32>().unwrap(),
            1e-5,
            1e-3,
        );
    }
    // The compiled program's slots are allocated once, when it is built: count them too.
    let program_bytes = {
        let m = mlp(3);
        let mut s = compiled_step(&m);
        graphgrad_autodiff::clear_buffer_pool();
        let before = LIVE.load(Ordering::Relaxed);
        s(&x, &t);
        // The trace ran eagerly: drop what it left for reuse, keep what the program holds.
        graphgrad_autodiff::clear_buffer_pool();
        LIVE.load(Ordering::Relaxed).saturating_sub(before)
    };
    let total = compiled_peak + program_bytes;
    eprintln!(
        "W2 step heap: eager peak {:.2} MB, compiled peak {:.2} MB (+{:.2} MB held by the program) = {:.2} MB, ratio {:.2}",
        eager_peak as f64 / 1e6,
        compiled_peak as f64 / 1e6,
        program_bytes as f64 / 1e6,
        total as f64 / 1e6,
        total as f64 / eager_peak as f64
    );
    assert!((total as f64) <= 0.7 * eager_peak as f64, "compiled {total} B vs eager {eager_peak} B");
}
