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
/// busy outside a kernel, theirs run on the other workers). Cheap after the first call.
pub fn adopt_main_thread() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::thread::current().name() == Some("main") {
            // Fails, leaving everything as it was, when the global pool already exists.
            let _ = rayon::ThreadPoolBuilder::new().use_current_thread().build_global();
        }
    });
}
