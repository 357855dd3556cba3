//! The main thread joins rayon's global pool. A binary of its own: the pool is process-wide.

use graphgrad_ops::gemm::{gemm, gemm_reference, Gemm};
use graphgrad_ops::testing::{assert_close, random_vec};
use graphgrad_ops::threads::adopt_main_thread;

/// Runs `f` on a thread named like the program's main thread.
fn on_main_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new().name("main".into()).spawn(f).expect("spawn").join().expect("no panic")
}

#[test]
fn main_thread_becomes_worker_zero_and_kernels_stay_exact() {
    // Another thread first: nothing is adopted yet, and it is not in the pool.
    assert_eq!(rayon::current_thread_index(), None);
    let (index, c, reference) = on_main_thread(|| {
        adopt_main_thread();
        let index = rayon::current_thread_index();
        // Large enough to run on every thread of the pool.
        let g = Gemm { m: 300, n: 257, k: 129, trans_a: false, trans_b: false, accumulate: false };
        let (a, b): (Vec<f64>, Vec<f64>) = (random_vec(g.m * g.k, 1), random_vec(g.k * g.n, 2));
        let (mut c, mut reference) = (vec![0.0; g.m * g.n], vec![0.0; g.m * g.n]);
        gemm(&g, &a, &b, &mut c);
        gemm_reference(&g, &a, &b, &mut reference);
        (index, c, reference)
    });
    assert_eq!(index, Some(0), "the main thread is worker 0");
    assert_close(&c, &reference, 1e-12, 1e-12);
    // Later calls, from any thread, change nothing.
    adopt_main_thread();
    assert_eq!(rayon::current_thread_index(), None);
}
