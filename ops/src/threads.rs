//! The threads kernels run on.
//!
//! Kernels split large work over rayon's global pool. Called from a thread outside the pool,
//! a kernel hands its work to the pool's threads and sleeps until they finish: each kernel
//! pays a wake-up and a hand-back, and on a small machine the pool's threads and the sleeping
//! caller compete for the same cores. OpenMP runtimes (behind PyTorch and numpy's BLAS) make the
//! calling thread one of the workers instead; [`adopt_main_thread`] does the same for the
//! program's main thread, which is where training loops run.

use std::sync::atomic::{AtomicBool, Ordering};
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

/// Runs `f` with the pool's other workers kept awake: each waits for work by polling for it
/// (`rayon::yield_now`) instead of going to sleep, until `f` returns.
///
/// A program of many short parallel kernels with serial work between them (a compiled RNN
/// step: 64 small GEMMs, each split over the cores, with gate kernels between them) otherwise
/// pays a sleeping worker's wake-up, tens of microseconds, at every kernel: a 2-thread GEMM
/// of 2 M multiply-adds then takes longer than a 1-thread one. OpenMP runtimes spin the same
/// way between parallel regions. Called from outside the pool, or with a pool of one thread,
/// it just runs `f`.
pub fn with_workers_awake<R>(f: impl FnOnce() -> R) -> R {
    let (Some(me), threads) = (rayon::current_thread_index(), rayon::current_num_threads()) else {
        return f();
    };
    if threads < 2 {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::in_place_scope(|s| {
        for _ in 1..threads {
            s.spawn(|_| {
                // The caller may run this job itself while it waits inside `f` (rayon pops
                // its own queue then): polling there would wait for `f`, which waits for it.
                if rayon::current_thread_index() == Some(me) {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        // set on unwinding too: the scope waits for the pollers before it lets a panic through
        let _stop = SetOnDrop(&done);
        f()
    })
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::with_workers_awake;
    use rayon::prelude::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool")
    }

    /// The parallel work `f` does inside gives the serial sum, whoever runs it.
    fn sums() -> Vec<u64> {
        (1..=50u64).map(|n| (0..n * 1000).into_par_iter().sum::<u64>()).collect()
    }

    fn expected() -> Vec<u64> {
        (1..=50u64).map(|n| n * 1000 * (n * 1000 - 1) / 2).collect()
    }

    #[test]
    fn parallel_work_inside_is_done_and_the_value_returned() {
        for threads in [1, 2, 3] {
            assert_eq!(pool(threads).install(|| with_workers_awake(sums)), expected(), "{threads} threads");
        }
        // outside any pool it just runs f
        assert_eq!(with_workers_awake(|| 42), 42);
    }

    #[test]
    fn nests_and_returns_with_every_worker_busy() {
        let pool = pool(2);
        // nested: the inner call's pollers may be picked up by the outer ones
        assert_eq!(pool.install(|| with_workers_awake(|| with_workers_awake(sums))), expected());
        // the other worker blocked until f has run, so no poller can start: f must not need
        // one, and its work (on the caller alone) must come out right
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let got = pool.install(|| {
            rayon::scope(|s| {
                s.spawn(move |_| {
                    let _ = rx.recv();
                });
                let r = with_workers_awake(sums);
                tx.send(()).expect("receiver alive");
                r
            })
        });
        assert_eq!(got, expected());
    }

    #[test]
    fn a_panic_inside_reaches_the_caller() {
        let caught = pool(2).install(|| std::panic::catch_unwind(|| with_workers_awake(|| panic!("inside"))));
        assert!(caught.is_err());
    }
}
