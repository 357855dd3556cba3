//! The threads kernels run on.
//!
//! Kernels split large work over rayon's global pool. Called from a thread outside the pool,
//! a kernel hands its work to the pool's threads and sleeps until they finish: each kernel
//! pays a wake-up and a hand-back, and on a small machine the pool's threads and the sleeping
//! caller compete for the same cores. OpenMP runtimes (behind PyTorch and numpy's BLAS) make the
//! calling thread one of the workers instead; [`adopt_main_thread`] does the same for the
//! program's main thread, which is where training loops run.

use std::sync::Once;

/// Makes the program's main thread worker 0 of rayon's global pool, so kernels called from it
/// compute a share of their work on it. Only the first call counts, and it acts only when made
/// from the main thread before the global pool exists: an application that configured the pool
/// keeps its configuration, and other threads use the pool as before (while the main thread is
/// busy outside a kernel, theirs run on the other workers). A pool of one thread is left to
/// rayon: its only worker would be the main thread, and a kernel called from another thread
/// while the main thread waits (in `join`, say) would wait for it forever. Cheap after the
/// first call.
pub fn adopt_main_thread() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::thread::current().name() == Some("main") && pool_size() > 1 {
            // Fails, leaving everything as it was, when the global pool already exists.
            let _ = rayon::ThreadPoolBuilder::new().use_current_thread().build_global();
        }
    });
}

/// The number of threads rayon's global pool will have: `RAYON_NUM_THREADS` when it is a
/// positive number, else one per core.
fn pool_size() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
