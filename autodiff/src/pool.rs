//! A per-thread pool of freed tensor buffers.
//!
//! Each eager op allocates its output. Buffers above glibc's mmap threshold (128 KiB) would go
//! back to the OS when a step's graph drops and be page-faulted in again by the next step, which
//! dominated conv and transformer steps. Dropped nodes return their buffers here instead
//! (`Buffer::recycle`), and new outputs of the same length reuse them, handed out as they are
//! ([`take`]): every op's forward overwrites or clears its output. The pool knows vectors
//! only, not `Buffer`s, which build on it.

use graphgrad_ops::Element;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Buffers smaller than this are left to the allocator, which recycles them cheaply.
const MIN_POOLED_BYTES: usize = 16 * 1024;
/// Upper bound on the bytes a thread keeps for reuse.
const MAX_POOLED_BYTES: usize = 256 * 1024 * 1024;

/// Empty shared buffers kept for reuse, per element type: a buffer is an `Arc` around its
/// vector, and reusing the `Arc` saves an allocation and a free per op on small tensors.
const MAX_SHELLS: usize = 1024;

#[derive(Default)]
pub(crate) struct Pool {
    f32: HashMap<usize, Vec<Vec<f32>>>,
    f64: HashMap<usize, Vec<Vec<f64>>>,
    f32_shells: Vec<Arc<Vec<f32>>>,
    f64_shells: Vec<Arc<Vec<f64>>>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Element types with a free list in the pool.
pub(crate) trait Pooled: Element {
    fn lists(pool: &mut Pool) -> &mut HashMap<usize, Vec<Vec<Self>>>;
    fn shells(pool: &mut Pool) -> &mut Vec<Arc<Vec<Self>>>;
}

impl Pooled for f32 {
    fn lists(pool: &mut Pool) -> &mut HashMap<usize, Vec<Vec<f32>>> {
        &mut pool.f32
    }
    fn shells(pool: &mut Pool) -> &mut Vec<Arc<Vec<f32>>> {
        &mut pool.f32_shells
    }
}

impl Pooled for f64 {
    fn lists(pool: &mut Pool) -> &mut HashMap<usize, Vec<Vec<f64>>> {
        &mut pool.f64
    }
    fn shells(pool: &mut Pool) -> &mut Vec<Arc<Vec<f64>>> {
        &mut pool.f64_shells
    }
}

/// `data` in a shared buffer, reusing a kept `Arc` when there is one.
pub(crate) fn share<T: Pooled>(data: Vec<T>) -> Arc<Vec<T>> {
    let shell = POOL.try_with(|p| T::shells(&mut p.borrow_mut()).pop()).ok().flatten();
    match shell {
        Some(mut shell) => {
            *Arc::get_mut(&mut shell).expect("internal invariant: kept shells are unshared") = data;
            shell
        }
        None => Arc::new(data),
    }
}

/// A buffer of `len` elements whose contents the caller overwrites, reusing a freed buffer of
/// that length when there is one. Debug builds fill it with NaN so that a kernel which reads
/// its output before writing all of it fails its tests instead of leaking stale values.
/// `None` when the allocator refuses the memory.
pub(crate) fn take<T: Pooled>(len: usize) -> Option<Vec<T>> {
    let mut v = match reuse(len) {
        Some(v) => v,
        // small: the allocator's zeroed fast path (the size cannot be refused in practice)
        None if len * std::mem::size_of::<T>() < MIN_POOLED_BYTES => vec![T::ZERO; len],
        None => {
            let mut v = Vec::new();
            v.try_reserve_exact(len).ok()?;
            v.resize(len, T::ZERO);
            v
        }
    };
    if cfg!(debug_assertions) {
        v.fill(T::from_f64(f64::NAN));
    }
    Some(v)
}

/// A freed buffer of exactly `len` elements, with stale contents.
fn reuse<T: Pooled>(len: usize) -> Option<Vec<T>> {
    if len * std::mem::size_of::<T>() < MIN_POOLED_BYTES {
        return None;
    }
    POOL.try_with(|p| {
        let mut pool = p.borrow_mut();
        let v = T::lists(&mut pool).get_mut(&len).and_then(Vec::pop);
        if v.is_some() {
            pool.bytes -= len * std::mem::size_of::<T>();
        }
        v
    })
    .ok()
    .flatten()
}

fn give<T: Pooled>(v: Vec<T>) {
    let bytes = v.len() * std::mem::size_of::<T>();
    if bytes < MIN_POOLED_BYTES || v.len() != v.capacity() {
        return;
    }
    // `try_with`: during thread teardown the pool may already be gone; then just free.
    let _ = POOL.try_with(|p| {
        let mut pool = p.borrow_mut();
        if pool.bytes + bytes <= MAX_POOLED_BYTES {
            pool.bytes += bytes;
            T::lists(&mut pool).entry(v.len()).or_default().push(v);
        }
    });
}

/// Takes back the storage of a dropped buffer unless it is still shared, and keeps its `Arc`.
pub(crate) fn keep<T: Pooled>(mut shared: Arc<Vec<T>>) {
    let Some(data) = Arc::get_mut(&mut shared) else { return };
    give(std::mem::take(data));
    let _ = POOL.try_with(|p| {
        let mut pool = p.borrow_mut();
        let shells = T::shells(&mut pool);
        if shells.len() < MAX_SHELLS {
            shells.push(shared);
        }
    });
}

/// Frees every buffer this thread keeps for reuse (memory is otherwise held, up to 256 MiB per
/// thread, between training steps), and the matrix product's packing buffers on every thread
/// ([`graphgrad_ops::gemm::release_buffers`]), and hands the allocator's free memory back to the OS:
/// freed buffers below glibc's mmap threshold, which rises to the largest buffer freed so far
/// (up to 32 MiB), would otherwise stay in its heap and resident. A compiled step calls it
/// after its trace, a one-off burst of eager buffers.
pub fn clear_buffer_pool() {
    let _ = POOL.try_with(|p| *p.borrow_mut() = Pool::default());
    graphgrad_ops::gemm::release_buffers();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim has no preconditions; it only returns free pages.
        unsafe { malloc_trim(0) };
    }
}
