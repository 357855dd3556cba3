//! The packed, cache-blocked GEMM driver: the five BLIS loops around a micro-kernel.
//!
//! ```text
//! [tasks] C split into a tm×tn grid of independent blocks, one rayon task each
//!  loop 5  jc: NC-wide column blocks of B and C      packed B block (KC×NC) lives in L3
//!   loop 4  pc: KC-deep slices of the k dimension    B block packed once per slice
//!    loop 3  ic: MC-tall row blocks of A and C      packed A block (MC×KC) lives in L2
//!     loop 2  jr: NR-wide micro-panels of packed B  one B micro-panel (KC×NR) stays in L1
//!      loop 1  ir: MR-tall micro-panels of packed A the micro-kernel: an MR×NR tile of C
//! ```
//!
//! Cache blocks (set per kernel in `kernel.rs` / `x86.rs`) target a Zen-3/Zen-4-class core:
//! 32 KiB L1d, 0.5–1 MiB private L2, 32 MiB shared L3. With the AVX2 kernels (f32 6×16 and
//! f64 6×8) KC = 256 makes a B micro-panel 16 KiB (half of L1, leaving room for the streaming
//! A micro-panel of 6 KiB / 12 KiB), MC = 144 (f32) / 72 (f64) makes the packed A block
//! 144 KiB (a quarter to an eighth of L2, so it survives the B traffic), and NC = 4080 makes
//! the packed B block 4 MiB (f32) / 8 MiB (f64), well inside the shared L3.
//!
//! A short product (at most [`IN_PLACE_B_MAX_ROWS`] rows of C) whose B is row-major skips
//! B's packing: the kernel reads each micro-panel where it lies, a row of B per step, and only
//! a last, partial panel is packed. Each panel serves so few tiles there that the copy costs
//! more than it saves (a convolution's 16 output channels over its im2col matrix: 240 → 150 µs
//! for W3's first layer).
//!
//! Determinism: k is always cut at the same multiples of KC and, by the kernel contract, an
//! element's value depends only on its row of A, its column of B and the KC slicing, never on
//! the tile it falls in (edge tiles run the same kernel on a local buffer). So the result is
//! bit-identical for any thread count and any task grid.

use super::kernel::MicroKernel;
use super::pack::{pack_a, pack_b, MatRef};
use crate::unary::{unary_inplace, UnaryOp};
use crate::Element;
use rayon::prelude::*;
use std::cell::Cell;
use std::ops::Range;
use std::thread::LocalKey;

/// The largest MR·NR of any kernel (AVX-512 f32, 8×32): the size of the edge-tile buffer.
const MAX_TILE: usize = 256;

/// Packing one row of A costs about as much as computing this many columns of C for it; the
/// task-grid choice uses it to weigh duplicated A packing against load balance.
const PACK_COST_COLS: usize = 12;

/// Products with at most this many rows read a row-major B in place ([`reads_b_in_place`]).
const IN_PLACE_B_MAX_ROWS: usize = 64;

/// Packed buffers kept per thread between calls up to this size (bytes); larger ones are freed.
const MAX_KEPT_BYTES: usize = 16 << 20;

/// The fused epilogue: `c = act(c + bias[col])` on finished elements.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epi<'a, T> {
    /// One value per column of C.
    pub bias: Option<&'a [T]>,
    /// Applied after the bias.
    pub act: Option<UnaryOp>,
}

impl<T: Element> Epi<'_, T> {
    /// True when the epilogue changes nothing.
    pub fn is_noop(&self) -> bool {
        self.bias.is_none() && self.act.is_none()
    }

    /// Applies the epilogue to one contiguous row segment whose first element is column `col0`.
    pub fn apply_row(&self, row: &mut [T], col0: usize) {
        if let Some(bias) = self.bias {
            let len = row.len();
            for (x, &b) in row.iter_mut().zip(&bias[col0..col0 + len]) {
                *x += b;
            }
        }
        if let Some(op) = self.act {
            unary_inplace(op, row);
        }
    }
}

/// C viewed as a raw row-major matrix that concurrent tasks write in disjoint tiles.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CMut<T> {
    /// Element (0, 0).
    pub ptr: *mut T,
    /// Row stride (= n for a contiguous C).
    pub ld: usize,
}

impl<T> CMut<T> {
    /// The raw pointer (a method, so closures capture the whole `Sync` wrapper).
    pub fn raw(self) -> *mut T {
        self.ptr
    }
}

// SAFETY: tasks write disjoint tiles of C (the grid partitions rows × columns) and the slice
// it came from is mutably borrowed by the GEMM call for the whole parallel region.
unsafe impl<T: Send> Send for CMut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for CMut<T> {}

/// One GEMM as the driver sees it: strided A (m×k) and B (k×n), row-major C (m×n).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Problem<'a, T> {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The contracted dimension (> 0).
    pub k: usize,
    /// The left operand.
    pub a: MatRef<T>,
    /// The right operand.
    pub b: MatRef<T>,
    /// The output.
    pub c: CMut<T>,
    /// Add into C instead of overwriting it.
    pub accumulate: bool,
    /// Applied to each element once its last k slice is done.
    pub epi: Epi<'a, T>,
}

/// Runs the five loops for kernel `K` on up to `threads` rayon tasks (1: never touches rayon).
///
/// Threads split C into a grid of independent blocks, each computed by the serial loops with
/// its own packed A and B: one fork-join per call and no cache line of a packed buffer shared
/// between cores. The price is that blocks in one grid column pack the same B panels (and
/// blocks in one grid row the same A blocks), which [`task_grid`] weighs.
///
/// # Safety
/// `p.a` and `p.b` must be valid for their m×k and k×n views, `p.c` for m rows of n elements,
/// `p.k > 0`, and the CPU must support `K`'s instruction set.
pub(crate) unsafe fn gemm_packed<K: MicroKernel>(p: &Problem<'_, K::Elem>, threads: usize) {
    let (tm, tn) = task_grid::<K>(p.m, p.n, threads);
    if tm * tn <= 1 {
        // SAFETY: forwarded contract.
        return unsafe { serial::<K>(p) };
    }
    let (row_units, col_units) = (p.m.div_ceil(K::MR), p.n.div_ceil(K::NR));
    (0..tm * tn).into_par_iter().for_each(|t| {
        let units = split(row_units, tm, t / tn);
        let rows = units.start * K::MR..(units.end * K::MR).min(p.m);
        let units = split(col_units, tn, t % tn);
        let cols = units.start * K::NR..(units.end * K::NR).min(p.n);
        // SAFETY: the grid gives each task a disjoint rows × cols block of C, inside A, B, C.
        unsafe { serial::<K>(&p.block(rows, cols)) }
    });
}

impl<T: Copy> Problem<'_, T> {
    /// The sub-problem computing the `rows × cols` block of C.
    ///
    /// # Safety
    /// The ranges must lie inside C (and so inside A's rows and B's columns).
    unsafe fn block(&self, rows: Range<usize>, cols: Range<usize>) -> Self {
        // SAFETY: forwarded to the caller.
        unsafe {
            Problem {
                m: rows.len(),
                n: cols.len(),
                a: self.a.offset(rows.start, 0),
                b: self.b.offset(0, cols.start),
                c: CMut { ptr: self.c.ptr.add(rows.start * self.c.ld + cols.start), ld: self.c.ld },
                epi: Epi { bias: self.epi.bias.map(|b| &b[cols.start..]), act: self.epi.act },
                ..*self
            }
        }
    }
}

/// The five loops on the calling thread.
///
/// # Safety
/// As [`gemm_packed`].
unsafe fn serial<K: MicroKernel>(p: &Problem<'_, K::Elem>) {
    let size = std::mem::size_of::<K::Elem>();
    let kc_max = K::KC.min(p.k);
    let b_in_place = reads_b_in_place(p);
    // Read in place, B needs room for one partial panel only.
    let packed_cols = if b_in_place { K::NR } else { K::NC.min(p.n).div_ceil(K::NR) * K::NR };
    let mut b_buf = PackBuf::take(&B_BUF, kc_max * packed_cols * size);
    let b_pack = b_buf.as_mut_ptr::<K::Elem>();
    // Loop 5 (jc): NC-wide column blocks of B and C.
    for jc in (0..p.n).step_by(K::NC) {
        let nc = K::NC.min(p.n - jc);
        // Full panels are read in place; a last, partial one is packed (the kernel reads NR
        // columns of every row, which past B's last column would leave B).
        let in_place = if b_in_place { nc / K::NR * K::NR } else { 0 };
        // Loop 4 (pc): KC-deep slices of k; the B block is packed once per slice.
        for pc in (0..p.k).step_by(K::KC) {
            let kc = K::KC.min(p.k - pc);
            // SAFETY: (pc, jc) is inside B.
            let block = unsafe { p.b.offset(pc, jc) };
            if in_place < nc {
                // SAFETY: columns in_place..nc of the block are inside B; the buffer holds
                // kc_max × packed_cols, and nc - in_place ≤ packed_cols.
                unsafe { pack_b::<K>(kc, nc - in_place, block.offset(0, in_place), b_pack) };
            }
            let panels = BPanels { block, in_place, packed: b_pack };
            let load_c = p.accumulate || pc > 0;
            let last = pc + kc == p.k;
            let blk = Block { jc, nc, pc, kc, load_c, last };
            // SAFETY: this call owns all of C.
            unsafe { macro_block::<K>(p, &panels, &blk) }
        }
    }
}

/// True when the micro-kernel reads B where it lies instead of from packed panels: B is
/// row-major and C so short that each panel serves only a few tiles, fewer than would repay
/// copying it (a recurrent step's 32 rows times its weight matrix).
pub(crate) fn reads_b_in_place<T>(p: &Problem<'_, T>) -> bool {
    p.b.cs == 1 && p.m <= IN_PLACE_B_MAX_ROWS
}

/// Where loop 2 finds the B micro-panels of one (jc, pc) block: the first `in_place` columns
/// in B itself (row-major), the rest packed.
struct BPanels<T> {
    /// The block's element (pc, jc) in B.
    block: MatRef<T>,
    /// Columns read in place: a multiple of NR, 0 when the whole block is packed.
    in_place: usize,
    /// The packed panels of columns `in_place..`.
    packed: *const T,
}

impl<T> BPanels<T> {
    /// The micro-panel starting at column `jr` of the block, and the stride between its rows.
    ///
    /// # Safety
    /// `jr` is a multiple of NR inside the block, and `kc` the block's depth.
    unsafe fn panel<K: MicroKernel<Elem = T>>(&self, jr: usize, kc: usize) -> (*const T, usize) {
        // SAFETY: column jr of the block, or panel (jr - in_place)/NR of the packed ones.
        unsafe {
            if jr < self.in_place {
                (self.block.ptr.add(jr), self.block.rs)
            } else {
                (self.packed.add((jr - self.in_place) * kc), K::NR)
            }
        }
    }
}

/// One (jc, pc) iteration: columns `jc..jc + nc` of every row of C, updated with the packed
/// slice `pc..pc + kc` of k.
struct Block {
    jc: usize,
    nc: usize,
    pc: usize,
    kc: usize,
    load_c: bool,
    last: bool,
}

/// Loops 3, 2, 1 over one (jc, pc) iteration, then the epilogue while the block is still in
/// cache.
///
/// # Safety
/// As [`gemm_packed`]; `b` finds every panel of the KC×NC block.
unsafe fn macro_block<K: MicroKernel>(p: &Problem<'_, K::Elem>, b: &BPanels<K::Elem>, blk: &Block) {
    let kc = blk.kc;
    let mc_max = K::MC.min(p.m).div_ceil(K::MR) * K::MR;
    let mut a_buf = PackBuf::take(&A_BUF, mc_max * kc * std::mem::size_of::<K::Elem>());
    let a_pack = a_buf.as_mut_ptr::<K::Elem>();
    let ld = p.c.ld;
    // Loop 3 (ic): MC-tall row blocks of A and C.
    for ic in (0..p.m).step_by(K::MC) {
        let mc = K::MC.min(p.m - ic);
        // SAFETY: rows ic..ic+mc and columns pc..pc+kc are inside A; a_pack holds mc_max·kc.
        unsafe { pack_a::<K>(mc, kc, p.a.offset(ic, blk.pc), a_pack) };
        // Loop 2 (jr): NR-wide micro-panels of the packed B block.
        for jr in (0..blk.nc).step_by(K::NR) {
            let nr = K::NR.min(blk.nc - jr);
            // SAFETY: jr is a multiple of NR inside the block.
            let b_panel = unsafe { b.panel::<K>(jr, kc) };
            // Loop 1 (ir): MR-tall micro-panels of the packed A block.
            for ir in (0..mc).step_by(K::MR) {
                let mr = K::MR.min(mc - ir);
                // SAFETY: panel ir/MR of the packed A block; the tile starts inside C.
                unsafe {
                    let a_panel = a_pack.add(ir * kc);
                    let c_tile = p.c.raw().add((ic + ir) * ld + blk.jc + jr);
                    tile::<K>(kc, a_panel, b_panel, c_tile, ld, mr, nr, blk.load_c);
                }
            }
        }
        if blk.last && !p.epi.is_noop() {
            for i in ic..ic + mc {
                // SAFETY: row i, columns jc..jc + nc are inside C.
                let row = unsafe { std::slice::from_raw_parts_mut(p.c.raw().add(i * ld + blk.jc), blk.nc) };
                p.epi.apply_row(row, blk.jc);
            }
        }
    }
}

/// One MR×NR tile, of which the top-left `mr`×`nr` part is inside C; `b` is B's panel and the
/// stride between its rows.
///
/// # Safety
/// As [`MicroKernel::run`] for the panels; `c` must be valid for `mr` rows of `nr` elements.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<K: MicroKernel>(
    kc: usize,
    a: *const K::Elem,
    (b, rsb): (*const K::Elem, usize),
    c: *mut K::Elem,
    ldc: usize,
    mr: usize,
    nr: usize,
    load_c: bool,
) {
    const { assert!(K::MR * K::NR <= MAX_TILE) };
    if mr == K::MR && nr == K::NR {
        // SAFETY: a full tile inside C.
        unsafe { K::run(kc, a, b, rsb, c, ldc, load_c) };
        return;
    }
    // Edge tile: run the same kernel on a local tile and copy the valid part.
    let mut buf = [K::Elem::ZERO; MAX_TILE];
    // SAFETY: i < mr and j < nr index the valid part of C; buf holds MR×NR at stride NR.
    unsafe {
        if load_c {
            for i in 0..mr {
                std::ptr::copy_nonoverlapping(c.add(i * ldc), buf.as_mut_ptr().add(i * K::NR), nr);
            }
        }
        K::run(kc, a, b, rsb, buf.as_mut_ptr(), K::NR, load_c);
        for i in 0..mr {
            std::ptr::copy_nonoverlapping(buf.as_ptr().add(i * K::NR), c.add(i * ldc), nr);
        }
    }
}

/// Part `idx` of `0..units` cut into `parts` nearly equal contiguous ranges.
fn split(units: usize, parts: usize, idx: usize) -> Range<usize> {
    units * idx / parts..units * (idx + 1) / parts
}

/// The tm×tn grid of independent blocks (tm·tn ≤ threads) minimising the largest block's
/// cost: its rows × columns of C, plus packing its A rows and its B columns (each costed as
/// [`PACK_COST_COLS`] columns of C). Every block packs its own operands, so splitting rows
/// repeats B's packing and splitting columns A's: short, wide products split columns.
fn task_grid<K: MicroKernel>(m: usize, n: usize, threads: usize) -> (usize, usize) {
    let (row_units, col_units) = (m.div_ceil(K::MR), n.div_ceil(K::NR));
    let mut best = ((1, 1), usize::MAX);
    for tm in 1..=threads.min(row_units) {
        for tn in 1..=(threads / tm).min(col_units) {
            let rows = row_units.div_ceil(tm) * K::MR;
            let cols = col_units.div_ceil(tn) * K::NR;
            let cost = rows * cols + PACK_COST_COLS * (rows + cols);
            if cost < best.1 {
                best = ((tm, tn), cost);
            }
        }
    }
    best.0
}

/// One cache line; packed buffers are vectors of these so panels start 64-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine([u8; 64]);

thread_local! {
    /// This thread's packed-A buffer.
    static A_BUF: Cell<Vec<CacheLine>> = const { Cell::new(Vec::new()) };
    /// This thread's packed-B buffer.
    static B_BUF: Cell<Vec<CacheLine>> = const { Cell::new(Vec::new()) };
}

/// Frees the packing buffers this thread keeps, and, called from a thread of rayon's pool,
/// those of every other thread of the pool (which otherwise stay resident, sized by the
/// largest product each thread has packed).
pub(crate) fn release_packing_buffers() {
    let free = || {
        let _ = A_BUF.try_with(Cell::take);
        let _ = B_BUF.try_with(Cell::take);
    };
    free();
    // Only from inside the pool: from outside, `broadcast` would create the global pool
    // before an application has had the chance to configure it.
    if rayon::current_thread_index().is_some() {
        rayon::broadcast(|_| free());
    }
}

/// A packing buffer borrowed from a per-thread slot and given back on drop, so repeated calls
/// do not allocate. Taking (not borrowing) the vector keeps a nested GEMM on the same thread
/// (rayon work-stealing inside a batched call) safe: it finds the slot empty and allocates.
struct PackBuf {
    slot: &'static LocalKey<Cell<Vec<CacheLine>>>,
    lines: Vec<CacheLine>,
}

impl PackBuf {
    fn take(slot: &'static LocalKey<Cell<Vec<CacheLine>>>, bytes: usize) -> Self {
        let need = bytes.div_ceil(64);
        let mut lines = slot.try_with(Cell::take).unwrap_or_default();
        if lines.len() < need {
            lines = vec![CacheLine([0; 64]); need];
        }
        PackBuf { slot, lines }
    }

    fn as_mut_ptr<T>(&mut self) -> *mut T {
        self.lines.as_mut_ptr().cast()
    }
}

impl Drop for PackBuf {
    fn drop(&mut self) {
        let lines = std::mem::take(&mut self.lines);
        if lines.len() * 64 <= MAX_KEPT_BYTES {
            // Ignored when the thread is being torn down.
            let _ = self.slot.try_with(|s| s.set(lines));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::kernel::ScalarKernel;

    type K = ScalarKernel<f32, 6, 16>;

    #[test]
    fn split_covers_units_exactly() {
        for units in [0, 1, 5, 22, 100] {
            for parts in 1..5 {
                let ranges: Vec<_> = (0..parts).map(|t| split(units, parts, t)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[parts - 1].end, units);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
            }
        }
    }

    /// The bytes this thread's packing buffers hold.
    fn kept_bytes() -> usize {
        let len = |slot: &'static LocalKey<Cell<Vec<CacheLine>>>| {
            let v = slot.with(Cell::take);
            let n = v.len() * 64;
            slot.with(|s| s.set(v));
            n
        };
        len(&A_BUF) + len(&B_BUF)
    }

    #[test]
    fn release_frees_the_packing_buffers_of_every_pool_thread() {
        let (m, n, k) = (64, 64, 64);
        let (a, b) = (vec![1.0f32; m * k], vec![1.0f32; k * n]);
        let g = crate::gemm::Gemm { m, n, k, trans_a: false, trans_b: false, accumulate: false };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let kept = pool.install(|| {
            rayon::broadcast(|_| {
                let mut c = vec![0.0f32; m * n];
                crate::gemm::gemm(&g, &a, &b, &mut c);
                assert_eq!(c[0], k as f32);
            });
            let before: Vec<usize> = rayon::broadcast(|_| kept_bytes());
            release_packing_buffers();
            (before, rayon::broadcast(|_| kept_bytes()))
        });
        assert!(kept.0.iter().all(|&b| b > 0), "every thread packed: {:?}", kept.0);
        assert_eq!(kept.1, vec![0, 0]);
    }

    #[test]
    fn task_grid_prefers_rows_for_tall_and_columns_for_short() {
        assert_eq!(task_grid::<K>(512, 512, 2), (2, 1));
        assert_eq!(task_grid::<K>(6, 512, 2), (1, 2));
        // A batch of 128 through a 512-wide layer: splitting rows would pack B twice.
        assert_eq!(task_grid::<K>(128, 512, 2), (1, 2));
        assert_eq!(task_grid::<K>(6, 16, 2), (1, 1));
        assert_eq!(task_grid::<K>(512, 512, 1), (1, 1));
        let (tm, tn) = task_grid::<K>(300, 300, 4);
        assert!(tm * tn <= 4 && tm * tn >= 3);
    }
}
