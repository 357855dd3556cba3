//! Fused elementwise kernels: a small per-element instruction list run in one pass over memory.
//!
//! A [`FusedKernel`] iterates over one shape. Operands are loaded with NumPy broadcasting, a
//! straight-line program of [`Instr`]s computes values in *registers*, and each output is
//! either stored (full shape) or reduced on the fly (sum, mean, max, min over some axes). So
//! a chain `y = 0.5·x·(1 + tanh(…))`, its backward and `sum(y)` read `x` once and write `dx`
//! once, whatever the number of ops.
//!
//! Evaluation: the iteration space is first simplified the way the binary kernels do it
//! (size-1 dims dropped, adjacent dims merged wherever every operand stays linear across
//! them), leaving rows whose innermost stride is 0 or 1 for every operand. Rows are cut into
//! blocks of at most [`BLOCK`] elements; a register is a block-sized slice, so all live
//! registers stay in L1 and each instruction is a tight, vectorisable loop over one block
//! (transcendentals go through the same SIMD kernels as eager ops, `ops::unary`). A scalar
//! multiply or add whose operand has no other reader runs in the loop of the step computing
//! that operand, equal instructions are computed once, registers are allocated by liveness and
//! constants are filled once per call. A kernel that only stores is cut into one piece per
//! thread once its elements × steps make the split pay (any partition gives the same values).
//! A kernel with reduced outputs is split, when large, into fixed chunks run on rayon; each
//! chunk keeps f64 partials of the reduced outputs (unless they are too many beside the
//! chunk's elements: then the kernel runs on one thread), combined in chunk order, so results
//! do not depend on the thread count.
//!
//! An operand is read at strides of its storage ([`Operand`]): a whole value, or a slice of
//! a larger one (rows of a sequence's time step, columns of a gate). Inputs whose rows are
//! contiguous are read where they are stored; only broadcast ones (and inputs scaled as they
//! load) are copied into a register.
//!
//! Generated code: runs of steps that `ops::jit` covers (loads, arithmetic, compares, `where`,
//! exp, sigmoid, tanh, erf, the GELUs and the cheap unary ops) are compiled to machine code
//! when the kernel is built, so a block takes one pass through them with every intermediate in
//! a vector register, instead of one pass per step; the block's registers then hold only what later steps and the outputs
//! read. The values are the interpreter's bit for bit; blocks whose length is not a multiple
//! of the vector width, and CPUs without AVX2, interpret every step.
//!
//! Aliasing: within a block every read happens before any store, so an output may share the
//! storage of an input that is read at the same index (not broadcast): the memory planner
//! relies on this for in-place updates.

use graphgrad_ops::binary::BinaryOp;
use graphgrad_ops::jit;
use graphgrad_ops::reduce::ReduceOp;
use graphgrad_ops::unary::{unary, UnaryOp};
use graphgrad_ops::{contiguous_strides, numel, DType, Element, Shape};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Arc;

/// Elements per register block.
pub const BLOCK: usize = 256;
/// Elements per parallel chunk (fixed, so the partition never depends on the thread count).
const CHUNK: usize = 1 << 15;
/// Kernels with reduced outputs and fewer elements than this run on the calling thread.
const PAR_MIN: usize = 1 << 16;
/// Kernels that only store run on every thread from this many elements × steps (about 5 µs
/// of work: a split costs a fork-join, a few µs when the workers are awake).
const PAR_MIN_WORK: usize = 1 << 15;

/// A register: the SSA index of the instruction that defines it.
pub type Reg = usize;

/// One per-element instruction; its result is register `index in the program`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Instr {
    /// Operand `i`, broadcast to the iteration shape.
    Load(usize),
    /// A constant.
    Const(f64),
    /// An elementwise function.
    Unary(UnaryOp, Reg),
    /// An elementwise function of two registers.
    Binary(BinaryOp, Reg, Reg),
    /// `c != 0 ? a : b`.
    Where(Reg, Reg, Reg),
}

/// What a kernel produces from a register.
#[derive(Clone, Debug, PartialEq)]
pub enum FusedOutput {
    /// The register at every position of the iteration shape.
    Store(Reg),
    /// The register reduced over `axes` (sorted) of the iteration shape; the output holds the
    /// kept axes in order (with or without size-1 placeholders: same data).
    Reduce {
        /// The reduced register.
        reg: Reg,
        /// Sum, Mean, Max or Min.
        op: ReduceOp,
        /// Reduced axes of the iteration shape.
        axes: Shape,
    },
}

impl FusedKernel {
    /// The ops it runs, in order (`mul, tanh, add, sum`), for profiles and logs.
    pub fn describe(&self) -> String {
        let mut names: Vec<String> = self
            .instrs
            .iter()
            .filter_map(|i| match i {
                Instr::Unary(u, _) => Some(u.name().to_string()),
                Instr::Binary(b, _, _) => Some(b.name().to_string()),
                Instr::Where(..) => Some("where".to_string()),
                Instr::Load(_) | Instr::Const(_) => None,
            })
            .collect();
        names.extend(self.outputs.iter().filter_map(|o| match o {
            FusedOutput::Reduce { op, .. } => Some(op.name().to_string()),
            FusedOutput::Store(_) => None,
        }));
        names.join(", ")
    }
}

/// A compiled single-pass kernel (see the module docs).
#[derive(Clone, Debug)]
pub struct FusedKernel {
    /// The iteration shape.
    pub shape: Shape,
    /// Element type of every operand and output.
    pub dtype: DType,
    /// How each operand is read (its shape broadcasts to `shape`).
    pub inputs: Vec<Operand>,
    /// The program.
    pub instrs: Vec<Instr>,
    /// The results.
    pub outputs: Vec<FusedOutput>,
    layout: Layout,
    plan: Plan,
    /// The steps in runs: generated machine code where `ops::jit` covers a run's steps.
    parts: Vec<Part>,
}

/// A run of consecutive steps.
#[derive(Clone, Debug)]
enum Part {
    /// Interpreted, one pass over the block per step.
    Steps(Range<usize>),
    /// Generated code for these steps: one pass over the block, values in registers. Blocks
    /// whose length is not a multiple of its lanes interpret the steps instead.
    Jit { kernel: Arc<jit::Kernel>, bases: Vec<Base>, steps: Range<usize>, stores_outputs: bool },
}

/// What a generated kernel's base pointer points at, per block.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Base {
    /// A physical register's block.
    Reg(usize),
    /// Input `k` at the block (contiguous) or its one element of the row (broadcast).
    Input(usize),
    /// Output `j` (stored, not reduced) at the block.
    Output(usize),
}

/// How a kernel reads one operand: `shape` (broadcasting to the iteration shape) at `strides`
/// from `offset` in the operand's storage. A whole value is read contiguously from its start;
/// a slice of a larger value (an LSTM's gate, one time step of a sequence) is read where the
/// larger value lies, without a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operand {
    /// The shape the kernel reads.
    pub shape: Shape,
    /// Storage strides of its dims.
    pub strides: Shape,
    /// Storage index of its first element.
    pub offset: usize,
}

impl Operand {
    /// A whole value of this shape.
    pub fn whole(shape: Shape) -> Operand {
        let strides = contiguous_strides(&shape);
        Operand { shape, strides, offset: 0 }
    }

    /// True when it is a whole value (contiguous from its storage's start; the stride of a
    /// size-1 axis is never used).
    pub fn is_whole(&self) -> bool {
        let contiguous = contiguous_strides(&self.shape);
        self.offset == 0
            && (0..self.shape.len()).all(|d| self.shape[d] == 1 || self.strides[d] == contiguous[d])
    }

    /// Storage elements it spans: the index of its last element plus one (0 when empty).
    pub fn extent(&self) -> usize {
        if self.shape.contains(&0) {
            return 0;
        }
        self.offset + self.shape.iter().zip(&self.strides).map(|(&n, &st)| (n - 1) * st).sum::<usize>() + 1
    }

    /// Strides over the iteration shape `to`: 0 along broadcast dims.
    fn strides_in(&self, to: &[usize]) -> Shape {
        let lead = to.len() - self.shape.len();
        let mut strides: Shape = smallvec::smallvec![0; to.len()];
        for (d, (&n, &st)) in self.shape.iter().zip(&self.strides).enumerate() {
            strides[lead + d] = if n == 1 && to[lead + d] != 1 { 0 } else { st };
        }
        strides
    }
}

/// The simplified iteration space: dims and per-operand strides (inputs, then outputs).
#[derive(Clone, Debug)]
struct Layout {
    dims: Shape,
    strides: Vec<Shape>,
}

impl FusedKernel {
    /// Builds a kernel; `outputs` name registers defined by `instrs`.
    pub fn new(
        shape: Shape,
        dtype: DType,
        inputs: Vec<Operand>,
        instrs: Vec<Instr>,
        outputs: Vec<FusedOutput>,
    ) -> Self {
        let mut strides: Vec<Shape> = inputs.iter().map(|op| op.strides_in(&shape)).collect();
        for out in &outputs {
            strides.push(match out {
                FusedOutput::Store(_) => contiguous_strides(&shape),
                FusedOutput::Reduce { axes, .. } => {
                    let kept: Shape = shape
                        .iter()
                        .enumerate()
                        .map(|(d, &s)| if axes.contains(&d) { 1 } else { s })
                        .collect();
                    let mut st = contiguous_strides(&kept);
                    for &a in axes {
                        st[a] = 0;
                    }
                    st
                }
            });
        }
        let layout = Layout::new(&shape, strides);
        let contiguous: Vec<bool> = (0..inputs.len()).map(|k| layout.strides[k].last() == Some(&1)).collect();
        let plan = Plan::new(&instrs, &outputs, &contiguous);
        let parts = plan.parts(dtype, &contiguous);
        FusedKernel { shape, dtype, inputs, instrs, outputs, layout, plan, parts }
    }

    /// Number of elements of output `i`.
    pub fn output_len(&self, i: usize) -> usize {
        match &self.outputs[i] {
            FusedOutput::Store(_) => numel(&self.shape),
            FusedOutput::Reduce { axes, .. } => {
                self.shape.iter().enumerate().filter(|(d, _)| !axes.contains(d)).map(|(_, &s)| s).product()
            }
        }
    }

    /// True when operand `i` is read at the iteration index (not broadcast), so an output
    /// stored over the same iteration shape may overwrite it in place.
    pub fn reads_elementwise(&self, i: usize) -> bool {
        self.inputs[i].shape == self.shape && self.inputs[i].is_whole()
    }

    /// Runs the kernel.
    ///
    /// # Safety
    /// `inputs[i]` points to operand `i`'s storage, [`Operand::extent`] readable elements, and
    /// `outputs[j]` to `output_len(j)` writable ones, all valid for the call. Outputs do not overlap each other
    /// or any input, except that a `Store` output may be exactly the storage of an input for
    /// which [`reads_elementwise`](Self::reads_elementwise) holds.
    pub unsafe fn run<T: Element>(&self, inputs: &[*const T], outputs: &[*mut T]) {
        let total = numel(&self.shape);
        let io = Io { inputs, outputs };
        let threads = rayon::current_num_threads();
        // each chunk keeps its own partial of every reduced output, combined at the end: worth
        // it while those partials are small beside the elements the chunks compute
        let partials: usize = self
            .outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, FusedOutput::Reduce { .. }))
            .map(|(j, _)| self.output_len(j))
            .sum();
        if partials == 0 && threads > 1 && total * self.plan.steps.len() >= PAR_MIN_WORK {
            // Stores only: any partition gives the same values, so one piece per thread (in
            // whole blocks, which keeps the vector loops) however small the kernel.
            let piece = total.div_ceil(threads).div_ceil(BLOCK) * BLOCK;
            (0..total.div_ceil(piece)).into_par_iter().for_each(|c| {
                // SAFETY: pieces cover disjoint index ranges, so their stores are disjoint;
                // the caller's contract covers the pointers.
                unsafe { self.run_range::<T>(&io, c * piece, ((c + 1) * piece).min(total), &mut []) };
            });
            return;
        }
        let mut acc: Vec<Vec<f64>> =
            self.outputs.iter().enumerate().map(|(j, o)| self.acc_init(o, j)).collect();
        let chunks = total.div_ceil(CHUNK);
        if total >= PAR_MIN && partials * chunks <= total / 8 {
            let parts: Vec<Vec<Vec<f64>>> = (0..chunks)
                .into_par_iter()
                .map(|c| {
                    let mut local: Vec<Vec<f64>> =
                        self.outputs.iter().enumerate().map(|(j, o)| self.acc_init(o, j)).collect();
                    // SAFETY: chunks cover disjoint index ranges, so their stores are disjoint;
                    // the caller's contract covers the pointers.
                    unsafe { self.run_range::<T>(&io, c * CHUNK, ((c + 1) * CHUNK).min(total), &mut local) };
                    local
                })
                .collect();
            for part in parts {
                for ((j, out), local) in self.outputs.iter().enumerate().zip(part) {
                    if let FusedOutput::Reduce { op, .. } = out {
                        combine(*op, &mut acc[j], &local);
                    }
                }
            }
        } else {
            // SAFETY: the caller's contract.
            unsafe { self.run_range::<T>(&io, 0, total, &mut acc) };
        }
        for (j, out) in self.outputs.iter().enumerate() {
            if let FusedOutput::Reduce { op, axes, .. } = out {
                let count: usize = axes.iter().map(|&a| self.shape[a]).product();
                let dst = outputs[j];
                for (i, &v) in acc[j].iter().enumerate() {
                    let v = if *op == ReduceOp::Mean { v / count as f64 } else { v };
                    // SAFETY: output j has output_len(j) = acc[j].len() elements.
                    unsafe { *dst.add(i) = T::from_f64(v) };
                }
            }
        }
    }

    fn acc_init(&self, out: &FusedOutput, j: usize) -> Vec<f64> {
        match out {
            FusedOutput::Store(_) => Vec::new(),
            FusedOutput::Reduce { op, .. } => vec![reduce_identity(*op); self.output_len(j)],
        }
    }

    /// Evaluates flat iteration indices `start..end` (in the simplified layout's row-major
    /// order), with the block loops compiled for AVX2 when the CPU has it.
    unsafe fn run_range<T: Element>(&self, io: &Io<'_, T>, start: usize, end: usize, acc: &mut [Vec<f64>]) {
        #[cfg(target_arch = "x86_64")]
        if graphgrad_ops::math::has_avx2_fma() {
            // SAFETY: the CPU supports the features the copy is compiled for.
            return unsafe { self.run_range_avx2(io, start, end, acc) };
        }
        self.run_range_impl(io, start, end, acc)
    }

    /// `run_range_impl` compiled with AVX2 and FMA enabled (its loops inline into this copy).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_range_avx2<T: Element>(
        &self,
        io: &Io<'_, T>,
        start: usize,
        end: usize,
        acc: &mut [Vec<f64>],
    ) {
        self.run_range_impl(io, start, end, acc)
    }

    #[inline(always)]
    unsafe fn run_range_impl<T: Element>(
        &self,
        io: &Io<'_, T>,
        start: usize,
        end: usize,
        acc: &mut [Vec<f64>],
    ) {
        let dims = &self.layout.dims;
        let inner = *dims.last().unwrap_or(&1);
        if inner == 0 || start >= end {
            return;
        }
        let n_in = io.inputs.len();
        let plan = &self.plan;
        let block = BLOCK.min(inner).min(end - start).max(1);
        let mut regs = vec![T::ZERO; plan.n_phys * block];
        for &(p, c) in &plan.consts {
            regs[p * block..(p + 1) * block].fill(T::from_f64(c));
        }
        let mut ptrs: Vec<*const u8> = Vec::new();
        let mut idx = start;
        while idx < end {
            let (row, col) = (idx / inner, idx % inner);
            let run = (inner - col).min(end - idx);
            // inputs start at their offsets in their storage
            let offset = |k: usize| self.inputs.get(k).map_or(0, |op| op.offset);
            let bases: Shape = self
                .layout
                .strides
                .iter()
                .enumerate()
                .map(|(k, st)| offset(k) + self.row_base(row, st))
                .collect();
            let mut c = 0;
            while c < run {
                let len = block.min(run - c);
                let at = col + c;
                let base = regs.as_mut_ptr();
                // An operand as a slice: a register, or a contiguous input read in place (outputs
                // are stored after the block's last step, so one stored over it is not yet). A
                // step's result register is never one of its operands' (results are allocated
                // before operands are freed), so views never overlap.
                let reg = |s: Src| match s {
                    Src::Reg(p) => std::slice::from_raw_parts(base.add(p * block), len),
                    Src::Input(k) => std::slice::from_raw_parts(io.inputs[k].add(bases[k] + at), len),
                };
                // set when the last part is generated code that stored the outputs itself
                let mut stored = false;
                for part in &self.parts {
                    let steps = match part {
                        Part::Jit { kernel, bases: jb, stores_outputs, .. }
                            if len.is_multiple_of(kernel.lanes()) =>
                        {
                            ptrs.clear();
                            ptrs.extend(jb.iter().map(|b| match *b {
                                Base::Reg(p) => base.add(p * block) as *const u8,
                                Base::Input(k) => {
                                    let st = *self.layout.strides[k].last().unwrap_or(&0);
                                    io.inputs[k].add(bases[k] + st * at) as *const u8
                                }
                                Base::Output(j) => io.outputs[j].add(bases[n_in + j] + at) as *const u8,
                            }));
                            // SAFETY: register blocks hold `block >= len` elements, contiguous
                            // inputs `len` from `at` on, broadcast ones their element; the
                            // kernel stores only into registers it does not read afterwards.
                            kernel.run(&ptrs, len);
                            stored = *stores_outputs;
                            continue;
                        }
                        Part::Jit { steps, .. } | Part::Steps(steps) => steps.clone(),
                    };
                    for step in &plan.steps[steps] {
                        let post = step.post.map(Affine::cast::<T>);
                        let out = std::slice::from_raw_parts_mut(base.add(step.dst * block), len);
                        match step.op {
                            StepOp::Load(k) => {
                                let st = *self.layout.strides[k].last().unwrap_or(&0);
                                let src = io.inputs[k].add(bases[k]);
                                if st == 0 {
                                    out.fill(post.map_or(*src, |p| p.apply(*src)));
                                } else {
                                    let src = std::slice::from_raw_parts(src.add(at), len);
                                    match post {
                                        None => out.copy_from_slice(src),
                                        Some(p) => map_block(src, out, |v| p.apply(v)),
                                    }
                                }
                            }
                            StepOp::Unary(op, a) => unary_block(op, reg(a), out, post),
                            StepOp::Binary(op, a, b) => binary_block(op, reg(a), reg(b), out, post),
                            StepOp::Where(cnd, a, b) => {
                                let pick = |c: T, x: T, y: T| if c != T::ZERO { x } else { y };
                                let (cnd, a, b) = (reg(cnd), reg(a), reg(b));
                                match post {
                                    None => {
                                        for (i, o) in out.iter_mut().enumerate() {
                                            *o = pick(cnd[i], a[i], b[i]);
                                        }
                                    }
                                    Some(p) => {
                                        for (i, o) in out.iter_mut().enumerate() {
                                            *o = p.apply(pick(cnd[i], a[i], b[i]));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                for (j, (out, &p)) in self.outputs.iter().zip(&plan.out_regs).enumerate() {
                    let k = n_in + j;
                    let vals = &regs[p * block..][..len];
                    match out {
                        FusedOutput::Store(_) if stored => {}
                        FusedOutput::Store(_) => {
                            std::ptr::copy_nonoverlapping(
                                vals.as_ptr(),
                                io.outputs[j].add(bases[k] + at),
                                len,
                            );
                        }
                        FusedOutput::Reduce { op, .. } => {
                            let st = *self.layout.strides[k].last().unwrap_or(&0);
                            if st == 0 {
                                let a = &mut acc[j][bases[k]];
                                *a = fold_block(*op, *a, vals);
                            } else {
                                fold_lanes(*op, &mut acc[j][bases[k] + at..][..len], vals);
                            }
                        }
                    }
                }
                c += len;
            }
            idx += run;
        }
    }

    /// Offset of the first element of `row` (over all dims but the innermost) for strides `st`.
    fn row_base(&self, mut row: usize, st: &[usize]) -> usize {
        let dims = &self.layout.dims;
        let mut off = 0;
        for d in (0..dims.len().saturating_sub(1)).rev() {
            off += (row % dims[d]) * st[d];
            row /= dims[d];
        }
        off
    }
}

/// Raw input and output pointers, shareable across rayon tasks.
struct Io<'a, T> {
    inputs: &'a [*const T],
    outputs: &'a [*mut T],
}

// SAFETY: tasks only read inputs and write disjoint ranges of the outputs (see `run`).
unsafe impl<T: Send> Sync for Io<'_, T> {}

/// `out[i] = f(x[i])`, inlined per caller so the loop vectorises with its target features.
#[inline(always)]
fn map_block<T: Copy>(x: &[T], out: &mut [T], f: impl Fn(T) -> T) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// `out = post(op(x))` over one block: cheap ops inline (so they vectorise with the caller's
/// target features), transcendentals through the SIMD kernels of `ops::unary`.
#[inline(always)]
fn unary_block<T: Element>(op: UnaryOp, x: &[T], out: &mut [T], post: Option<Affine<T>>) {
    let (zero, one) = (T::ZERO, T::ONE);
    macro_rules! go {
        ($f:expr) => {
            match post {
                None => map_block(x, out, $f),
                Some(p) => map_block(x, out, |v| p.apply($f(v))),
            }
        };
    }
    match op {
        UnaryOp::Neg => go!(|v: T| -v),
        UnaryOp::Square => go!(|v: T| v * v),
        UnaryOp::MulScalar(c) => {
            let c = T::from_f64(c);
            go!(|v: T| v * c)
        }
        UnaryOp::AddScalar(c) => {
            let c = T::from_f64(c);
            go!(|v: T| v + c)
        }
        UnaryOp::Recip => go!(|v: T| one / v),
        UnaryOp::Relu => go!(|v: T| if v < zero { zero } else { v }),
        UnaryOp::TanhGrad => go!(|v: T| one - v * v),
        UnaryOp::SigmoidGrad => go!(|v: T| v * (one - v)),
        _ => {
            unary(op, x, out);
            if let Some(p) = post {
                out.iter_mut().for_each(|v| *v = p.apply(*v));
            }
        }
    }
}

/// `out = post(op(a, b))` over one block, with the same scalar semantics as `ops::binary`.
#[inline(always)]
fn binary_block<T: Element>(op: BinaryOp, a: &[T], b: &[T], out: &mut [T], post: Option<Affine<T>>) {
    let truth = |t: bool| if t { T::ONE } else { T::ZERO };
    macro_rules! go {
        ($f:expr) => {
            match post {
                None => {
                    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                        *o = $f(x, y);
                    }
                }
                Some(p) => {
                    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                        *o = p.apply($f(x, y));
                    }
                }
            }
        };
    }
    match op {
        BinaryOp::Add => go!(|x: T, y: T| x + y),
        BinaryOp::Sub => go!(|x: T, y: T| x - y),
        BinaryOp::Mul => go!(|x: T, y: T| x * y),
        BinaryOp::Div => go!(|x: T, y: T| x / y),
        BinaryOp::Pow => go!(|x: T, y: T| x.powf(y)),
        #[allow(clippy::eq_op)]
        BinaryOp::Maximum => go!(|x: T, y: T| if x > y || x != x { x } else { y }),
        #[allow(clippy::eq_op)]
        BinaryOp::Minimum => go!(|x: T, y: T| if x < y || x != x { x } else { y }),
        BinaryOp::Eq => go!(|x: T, y: T| truth(x == y)),
        BinaryOp::Ne => go!(|x: T, y: T| truth(x != y)),
        BinaryOp::Lt => go!(|x: T, y: T| truth(x < y)),
        BinaryOp::Le => go!(|x: T, y: T| truth(x <= y)),
        BinaryOp::Gt => go!(|x: T, y: T| truth(x > y)),
        BinaryOp::Ge => go!(|x: T, y: T| truth(x >= y)),
    }
}

fn reduce_identity(op: ReduceOp) -> f64 {
    match op {
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
        _ => 0.0,
    }
}

fn fold_one(op: ReduceOp, a: f64, v: f64) -> f64 {
    match op {
        ReduceOp::Max if a > v || a.is_nan() => a,
        ReduceOp::Min if a < v || a.is_nan() => a,
        ReduceOp::Max | ReduceOp::Min => v,
        _ => a + v,
    }
}

#[inline(always)]
fn fold_block<T: Element>(op: ReduceOp, a: f64, vals: &[T]) -> f64 {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => a + sum_block(vals),
        _ => vals.iter().fold(a, |acc, &v| fold_one(op, acc, v.to_f64())),
    }
}

/// A block's sum in f64 (far below one f32 ulp of error per block): sixteen lanes, whose
/// additions of consecutive chunks are independent (four AVX2 registers), combined in a fixed
/// tree, then the remainder in order. The f32 path on AVX2 and the portable loop add the same
/// values in the same order.
#[inline(always)]
fn sum_block<T: Element>(vals: &[T]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && graphgrad_ops::math::has_avx2_fma() {
        // SAFETY: T is f32 (same layout); the CPU has AVX2.
        return unsafe { sum_f32_avx2(std::slice::from_raw_parts(vals.as_ptr() as *const f32, vals.len())) };
    }
    sum_lanes(vals)
}

/// [`sum_block`]'s portable loop.
#[inline(always)]
fn sum_lanes<T: Element>(vals: &[T]) -> f64 {
    let mut lanes = [0.0f64; 16];
    let chunks = vals.chunks_exact(16);
    let rest: f64 = chunks.remainder().iter().map(|v| v.to_f64()).sum();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v.to_f64();
        }
    }
    let c: [f64; 4] = std::array::from_fn(|j| (lanes[j] + lanes[8 + j]) + (lanes[4 + j] + lanes[12 + j]));
    (c[0] + c[1]) + (c[2] + c[3]) + rest
}

/// [`sum_lanes`] for f32 with AVX2: lanes `4k..4k + 4` in register `k`.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_f32_avx2(vals: &[f32]) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_pd(); 4];
    let chunks = vals.chunks_exact(16);
    let rest: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        // SAFETY: each chunk holds 16 values.
        let (lo, hi) = unsafe { (_mm256_loadu_ps(c.as_ptr()), _mm256_loadu_ps(c.as_ptr().add(8))) };
        acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(lo)));
        acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(lo)));
        acc[2] = _mm256_add_pd(acc[2], _mm256_cvtps_pd(_mm256_castps256_ps128(hi)));
        acc[3] = _mm256_add_pd(acc[3], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(hi)));
    }
    let c = _mm256_add_pd(_mm256_add_pd(acc[0], acc[2]), _mm256_add_pd(acc[1], acc[3]));
    let mut c4 = [0.0f64; 4];
    // SAFETY: c4 holds one register.
    unsafe { _mm256_storeu_pd(c4.as_mut_ptr(), c) };
    (c4[0] + c4[1]) + (c4[2] + c4[3]) + rest
}

/// `acc[i] = fold(acc[i], vals[i])`: a column of partials per element of a kept axis, one
/// loop per op so that it vectorises.
#[inline(always)]
fn fold_lanes<T: Element>(op: ReduceOp, acc: &mut [f64], vals: &[T]) {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => {
            for (a, &v) in acc.iter_mut().zip(vals) {
                *a += v.to_f64();
            }
        }
        _ => {
            for (a, &v) in acc.iter_mut().zip(vals) {
                *a = fold_one(op, *a, v.to_f64());
            }
        }
    }
}

fn combine(op: ReduceOp, acc: &mut [f64], part: &[f64]) {
    for (a, &p) in acc.iter_mut().zip(part) {
        *a = fold_one(op, *a, p);
    }
}

impl Layout {
    /// Drops size-1 dims and merges adjacent dims where every operand is linear across them.
    fn new(shape: &[usize], strides: Vec<Shape>) -> Layout {
        let keep: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
        let mut dims: Shape = keep.iter().map(|&d| shape[d]).collect();
        let mut strides: Vec<Shape> = strides.iter().map(|s| keep.iter().map(|&d| s[d]).collect()).collect();
        let mut d = dims.len();
        while d > 1 {
            d -= 1;
            let mergeable = strides.iter().all(|s| s[d - 1] == s[d] * dims[d]);
            if mergeable {
                dims[d - 1] *= dims[d];
                dims.remove(d);
                for s in &mut strides {
                    s[d - 1] = s[d];
                    s.remove(d);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for s in &mut strides {
                s.push(0);
            }
        }
        Layout { dims, strides }
    }
}

/// The program as the block loop runs it: constants and folded scalar ops gone, each step's
/// operands and result in physical registers.
///
/// A `mul_scalar` or `add_scalar` whose operand is read by nothing else is folded into the
/// step that computes the operand, as that step's [`Affine`] epilogue: one pass over a block
/// instead of two. Registers are allocated by liveness (linear scan).
#[derive(Clone, Debug)]
struct Plan {
    steps: Vec<Step>,
    /// Physical register and value of each constant (filled once per call).
    consts: Vec<(usize, f64)>,
    /// Physical register of each output's value.
    out_regs: Vec<usize>,
    /// Which outputs are stored (not reduced).
    out_stored: Vec<bool>,
    n_phys: usize,
}

#[derive(Clone, Copy, Debug)]
struct Step {
    op: StepOp,
    /// Result register.
    dst: usize,
    post: Option<Affine<f64>>,
}

/// An [`Instr`] over physical registers.
#[derive(Clone, Copy, Debug)]
enum StepOp {
    Load(usize),
    Unary(UnaryOp, Src),
    Binary(BinaryOp, Src, Src),
    Where(Src, Src, Src),
}

impl StepOp {
    /// The operands the step reads.
    fn sources(&self) -> impl Iterator<Item = Src> {
        let v: [Option<Src>; 3] = match *self {
            StepOp::Load(_) => [None, None, None],
            StepOp::Unary(_, a) => [Some(a), None, None],
            StepOp::Binary(_, x, y) => [Some(x), Some(y), None],
            StepOp::Where(c, x, y) => [Some(c), Some(x), Some(y)],
        };
        v.into_iter().flatten()
    }
}

/// Where a step reads an operand.
#[derive(Clone, Copy, Debug)]
enum Src {
    /// A physical register.
    Reg(usize),
    /// A contiguous input, read where it is stored (no `Load` step copies it).
    Input(usize),
}

/// `(v + pre)·mul + post`: up to an `add_scalar`, a `mul_scalar` and an `add_scalar` in that
/// order, absent ones as the exact identities (`+ −0`, `· 1`), so the result rounds as the
/// separate ops did.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Affine<T> {
    pre: T,
    mul: T,
    post: T,
}

impl Affine<f64> {
    const IDENTITY: Affine<f64> = Affine { pre: -0.0, mul: 1.0, post: -0.0 };

    /// This map followed by `op`, when one affine map still expresses it: an add before any
    /// multiply is `pre`, after one `post`.
    fn then(self, op: UnaryOp) -> Option<Affine<f64>> {
        let [pre_free, mul_free, post_free] = self.parts().map(|p| p.is_none());
        match op {
            UnaryOp::MulScalar(c) if mul_free && post_free => Some(Affine { mul: c, ..self }),
            UnaryOp::AddScalar(c) if mul_free && pre_free && post_free => Some(Affine { pre: c, ..self }),
            UnaryOp::AddScalar(c) if !mul_free && post_free => Some(Affine { post: c, ..self }),
            _ => None,
        }
    }

    /// The scalar ops this map stands for, in order; `None` for an absent (identity) part.
    fn parts(self) -> [Option<UnaryOp>; 3] {
        let unset = |v: f64| v.to_bits() == (-0.0f64).to_bits();
        [
            (!unset(self.pre)).then_some(UnaryOp::AddScalar(self.pre)),
            (self.mul != 1.0).then_some(UnaryOp::MulScalar(self.mul)),
            (!unset(self.post)).then_some(UnaryOp::AddScalar(self.post)),
        ]
    }

    fn cast<T: Element>(self) -> Affine<T> {
        Affine { pre: T::from_f64(self.pre), mul: T::from_f64(self.mul), post: T::from_f64(self.post) }
    }
}

impl<T: Element> Affine<T> {
    #[inline(always)]
    fn apply(self, v: T) -> T {
        (v + self.pre) * self.mul + self.post
    }
}

impl Plan {
    /// `contiguous[k]`: input `k` is read at stride 1 along rows (not broadcast there).
    fn new(instrs: &[Instr], outputs: &[FusedOutput], contiguous: &[bool]) -> Plan {
        let out_reg = |o: &FusedOutput| match o {
            FusedOutput::Store(r) | FusedOutput::Reduce { reg: r, .. } => *r,
        };
        let mut uses = vec![0usize; instrs.len()];
        for r in instrs.iter().flat_map(operands).chain(outputs.iter().map(out_reg)) {
            uses[r] += 1;
        }
        // Fold scalar ops into their producers: `home[i]` is the SSA step holding value i.
        let mut home: Vec<usize> = (0..instrs.len()).collect();
        let mut post: Vec<Option<Affine<f64>>> = vec![None; instrs.len()];
        let mut folded = vec![false; instrs.len()];
        for (i, ins) in instrs.iter().enumerate() {
            if let Instr::Unary(op @ (UnaryOp::MulScalar(_) | UnaryOp::AddScalar(_)), a) = *ins {
                let h = home[a];
                if uses[a] == 1 && !matches!(instrs[h], Instr::Const(_)) {
                    if let Some(map) = post[h].unwrap_or(Affine::IDENTITY).then(op) {
                        post[h] = Some(map);
                        home[i] = h;
                        folded[i] = true;
                    }
                }
            }
        }
        // A contiguous input that is not scaled on loading and not an output itself needs no
        // register: steps read it in place.
        let output_homes: Vec<usize> = outputs.iter().map(|o| home[out_reg(o)]).collect();
        let read_in_place: Vec<Option<usize>> = instrs
            .iter()
            .enumerate()
            .map(|(i, ins)| match *ins {
                Instr::Load(k) if contiguous[k] && post[i].is_none() && !output_homes.contains(&i) => Some(k),
                _ => None,
            })
            .collect();
        // Liveness over the remaining steps: a value dies at its last reader; constants and
        // outputs live to the end.
        let mut last = vec![0usize; instrs.len()];
        for (i, ins) in instrs.iter().enumerate() {
            last[home[i]] = last[home[i]].max(i);
            for r in operands(ins) {
                last[home[r]] = last[home[r]].max(i);
            }
        }
        for o in outputs {
            last[home[out_reg(o)]] = usize::MAX;
        }
        let mut phys = vec![0usize; instrs.len()];
        let mut consts = Vec::new();
        let mut count = 0usize;
        for (i, ins) in instrs.iter().enumerate() {
            if let Instr::Const(c) = ins {
                phys[i] = count;
                consts.push((count, *c));
                count += 1;
            }
        }
        let mut dying: Vec<Vec<usize>> = vec![Vec::new(); instrs.len()];
        for (i, &l) in last.iter().enumerate() {
            let registered = !matches!(instrs[i], Instr::Const(_)) && read_in_place[i].is_none();
            if home[i] == i && l != usize::MAX && l > i && registered {
                dying[l].push(i);
            }
        }
        let (mut free, mut steps) = (Vec::<usize>::new(), Vec::new());
        for (i, ins) in instrs.iter().enumerate() {
            if !folded[i] && !matches!(ins, Instr::Const(_)) && read_in_place[i].is_none() {
                // Operands are freed only after the result is allocated: results never alias them.
                phys[i] = free.pop().unwrap_or_else(|| {
                    count += 1;
                    count - 1
                });
                let r = |q: usize| match read_in_place[home[q]] {
                    Some(k) => Src::Input(k),
                    None => Src::Reg(phys[home[q]]),
                };
                let op = match *ins {
                    Instr::Load(k) => StepOp::Load(k),
                    Instr::Unary(u, a) => StepOp::Unary(u, r(a)),
                    Instr::Binary(b, x, y) => StepOp::Binary(b, r(x), r(y)),
                    Instr::Where(c, x, y) => StepOp::Where(r(c), r(x), r(y)),
                    Instr::Const(_) => unreachable!("constants are not steps"),
                };
                steps.push(Step { op, dst: phys[i], post: post[i] });
                if last[i] == i {
                    free.push(phys[i]);
                }
            }
            for &d in &dying[i] {
                free.push(phys[d]);
            }
        }
        let out_regs = outputs.iter().map(|o| phys[home[out_reg(o)]]).collect();
        let out_stored = outputs.iter().map(|o| matches!(o, FusedOutput::Store(_))).collect();
        Plan { steps, consts, out_regs, out_stored, n_phys: count.max(1) }
    }
}

impl Plan {
    /// The steps cut into runs that `ops::jit` generates code for and runs it does not;
    /// one interpreted run where no code can be generated.
    fn parts(&self, dtype: DType, contiguous: &[bool]) -> Vec<Part> {
        let generated = |step: &Step| match step.op {
            StepOp::Load(_) | StepOp::Where(..) => true,
            StepOp::Unary(op, _) => jit::Builder::generates_unary(op),
            StepOp::Binary(op, ..) => jit::Builder::generates_binary(op),
        };
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.steps.len() {
            let run =
                self.steps[i..].iter().take_while(|s| generated(s) == generated(&self.steps[i])).count();
            let steps = i..i + run;
            let part = if generated(&self.steps[i]) {
                self.generate(steps.clone(), dtype, contiguous)
            } else {
                None
            };
            parts.push(part.unwrap_or(Part::Steps(steps)));
            i += run;
        }
        parts
    }

    /// Machine code for `steps` (all generated ops): operands read from their registers or
    /// inputs, results that later steps or the outputs read stored to their registers. The
    /// run that ends the program also stores the outputs (`Part::Jit::stores_outputs`).
    fn generate(&self, steps: Range<usize>, dtype: DType, contiguous: &[bool]) -> Option<Part> {
        let mut b = jit::Builder::new(dtype)?;
        let mut bases: Vec<Base> = Vec::new();
        // the value each register and contiguous input holds so far in this run
        let mut held: Vec<Option<jit::Val>> = vec![None; self.n_phys];
        let mut inputs: Vec<Option<jit::Val>> = vec![None; contiguous.len()];
        let read = |b: &mut jit::Builder,
                    held: &mut [Option<jit::Val>],
                    inputs: &mut [Option<jit::Val>],
                    bases: &mut Vec<Base>,
                    s: Src| match s {
            Src::Reg(p) => *held[p].get_or_insert_with(|| match self.consts.iter().find(|c| c.0 == p) {
                Some(&(_, c)) => b.constant(c),
                None => b.load(base_index(bases, Base::Reg(p))),
            }),
            Src::Input(k) => *inputs[k].get_or_insert_with(|| b.load(base_index(bases, Base::Input(k)))),
        };
        let mut defined = Vec::new();
        for step in &self.steps[steps.clone()] {
            let mut r = |b: &mut jit::Builder, s: Src| read(b, &mut held, &mut inputs, &mut bases, s);
            let v = match step.op {
                StepOp::Load(k) if contiguous[k] => b.load(base_index(&mut bases, Base::Input(k))),
                StepOp::Load(k) => b.broadcast(base_index(&mut bases, Base::Input(k))),
                StepOp::Unary(op, a) => {
                    let a = r(&mut b, a);
                    b.unary(op, a)?
                }
                StepOp::Binary(op, x, y) => {
                    let (x, y) = (r(&mut b, x), r(&mut b, y));
                    b.binary(op, x, y)?
                }
                StepOp::Where(c, x, y) => {
                    let (c, x, y) = (r(&mut b, c), r(&mut b, x), r(&mut b, y));
                    b.select(c, x, y)
                }
            };
            // the epilogue's identities skipped: exact, as `Affine::apply`'s `+ −0` and `· 1` are
            let mut v = v;
            for op in step.post.into_iter().flat_map(|a| a.parts()).flatten() {
                v = b.unary(op, v)?;
            }
            held[step.dst] = Some(v);
            defined.push(step.dst);
        }
        let stores_outputs = steps.end == self.steps.len();
        defined.sort_unstable();
        defined.dedup();
        for p in defined {
            if self.read_after(p, steps.end, stores_outputs) {
                let v = held[p].expect("defined in this run");
                b.store(v, base_index(&mut bases, Base::Reg(p)));
            }
        }
        if stores_outputs {
            for (j, &p) in self.out_regs.iter().enumerate().filter(|&(j, _)| self.out_stored[j]) {
                let v = read(&mut b, &mut held, &mut inputs, &mut bases, Src::Reg(p));
                b.store(v, base_index(&mut bases, Base::Output(j)));
            }
        }
        Some(Part::Jit { kernel: Arc::new(b.compile()?), bases, steps, stores_outputs })
    }

    /// True when the value in register `p` after step `end - 1` is read later: by a step
    /// before one overwrites it, or as an output (a reduced one only, when the outputs are
    /// stored from registers of the generated code: `direct`).
    fn read_after(&self, p: usize, end: usize, direct: bool) -> bool {
        for step in &self.steps[end..] {
            if step.op.sources().any(|s| matches!(s, Src::Reg(q) if q == p)) {
                return true;
            }
            if step.dst == p {
                return false;
            }
        }
        self.out_regs.iter().zip(&self.out_stored).any(|(&q, &stored)| q == p && !(direct && stored))
    }
}

/// Index of `x` in `bases`, appended if new.
fn base_index(bases: &mut Vec<Base>, x: Base) -> usize {
    match bases.iter().position(|&y| y == x) {
        Some(i) => i,
        None => {
            bases.push(x);
            bases.len() - 1
        }
    }
}

/// The registers an instruction reads.
pub fn operands(ins: &Instr) -> impl Iterator<Item = Reg> {
    let v: [Option<Reg>; 3] = match *ins {
        Instr::Load(_) | Instr::Const(_) => [None, None, None],
        Instr::Unary(_, a) => [Some(a), None, None],
        Instr::Binary(_, a, b) => [Some(a), Some(b), None],
        Instr::Where(c, a, b) => [Some(c), Some(a), Some(b)],
    };
    v.into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;

    /// `x → +a → ·m → +b → ·c`, run by a kernel and by the separate ops in f32.
    #[test]
    fn scalar_chains_fold_into_one_step_and_round_as_separate_ops() {
        let (a, m, b, c) = (0.1f64, 3.7, -0.3, 0.9);
        let instrs = vec![
            Instr::Load(0),
            Instr::Unary(UnaryOp::AddScalar(a), 0),
            Instr::Unary(UnaryOp::MulScalar(m), 1),
            Instr::Unary(UnaryOp::AddScalar(b), 2),
            Instr::Unary(UnaryOp::MulScalar(c), 3),
        ];
        let n = 1000;
        let kernel = FusedKernel::new(
            smallvec![n],
            DType::F32,
            vec![Operand::whole(smallvec![n])],
            instrs,
            vec![FusedOutput::Store(4)],
        );
        // the load carries +a ·m +b; the last multiply needs a step of its own
        assert_eq!(kernel.plan.steps.len(), 2, "{:?}", kernel.plan);
        assert!(matches!(kernel.plan.steps[0].op, StepOp::Load(0)));
        let x: Vec<f32> = (0..n).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let mut y = vec![0f32; n];
        // SAFETY: one input and one output of n elements each.
        unsafe { kernel.run::<f32>(&[x.as_ptr()], &[y.as_mut_ptr()]) };
        let (a, m, b, c) = (a as f32, m as f32, b as f32, c as f32);
        let want: Vec<f32> = x.iter().map(|&v| (((v + a) * m) + b) * c).collect();
        assert_eq!(y, want);
    }

    /// A block's f32 sum: the AVX2 path adds what the portable loop adds, in its order, at
    /// every length around the 16-lane chunks; both are within f64 rounding of a plain sum.
    #[test]
    fn block_sums_take_one_order_on_every_path() {
        let vals: Vec<f32> =
            (0..300).map(|i| ((i * 37 % 101) as f32 - 50.0) * 1.37e-3 + 1e4 * (i % 7) as f32).collect();
        for len in (0..40).chain([255, 256, 257, 300]) {
            let v = &vals[..len];
            let portable = sum_lanes(v);
            assert_eq!(sum_block(v).to_bits(), portable.to_bits(), "length {len}");
            let plain: f64 = v.iter().map(|&x| x as f64).sum();
            assert!(
                (portable - plain).abs() <= 1e-9 * plain.abs().max(1.0),
                "length {len}: {portable} vs {plain}"
            );
        }
        // in sequence order the 1 would be lost beside 2^60; in lane order the two big values
        // (both lane 0) cancel first
        let mut v = vec![0f32; 32];
        v[0] = 2f32.powi(60);
        v[16] = -(2f32.powi(60));
        v[1] = 1.0;
        assert_eq!(sum_block(&v), 1.0);
    }

    impl FusedKernel {
        /// The same kernel with every step interpreted.
        fn interpreted(mut self) -> FusedKernel {
            self.parts = vec![Part::Steps(0..self.plan.steps.len())];
            self
        }
    }

    /// Random programs over broadcast operands, with ops `ops::jit` generates and ops it does
    /// not: generated and interpreted runs give the same bits (NaNs: the same positions).
    fn generated_matches_interpreted<T: Element>() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % n
        };
        let unary = [
            UnaryOp::Neg,
            UnaryOp::Abs,
            UnaryOp::Sqrt,
            UnaryOp::Recip,
            UnaryOp::Square,
            UnaryOp::Relu,
            UnaryOp::SigmoidGrad,
            UnaryOp::TanhGrad,
            UnaryOp::AddScalar(0.5),
            UnaryOp::MulScalar(-1.25),
            UnaryOp::Tanh,
            UnaryOp::Exp,
            UnaryOp::Sigmoid,
            UnaryOp::Log,
            UnaryOp::Gelu,
            UnaryOp::Softplus,
        ];
        use BinaryOp::*;
        let binary = [Add, Sub, Mul, Div, Maximum, Minimum, Lt, Ge, Ne, Pow];
        // an inner size of 300: a block of 256 (generated) and one of 44 (not a multiple of
        // the lanes: interpreted)
        let shape: Shape = smallvec::smallvec![3, 2, 300];
        // the fourth: a slice [:, 2..4, 7..307] of a [3, 5, 310] value, read where it lies
        let slice = Operand {
            shape: shape.clone(),
            strides: smallvec::smallvec![5 * 310, 310, 1],
            offset: 2 * 310 + 7,
        };
        let inputs: Vec<Operand> = vec![
            Operand::whole(shape.clone()),
            Operand::whole(smallvec::smallvec![1, 2, 1]),
            Operand::whole(smallvec::smallvec![3, 1, 300]),
            slice,
        ];
        let data: Vec<Vec<T>> = [numel(&shape), 2, 900, 3 * 5 * 310]
            .iter()
            .map(|&n| (0..n).map(|_| T::from_f64(next(2001) as f64 / 250.0 - 4.0)).collect())
            .collect();
        for trial in 0..40 {
            let mut instrs =
                vec![Instr::Load(0), Instr::Load(1), Instr::Load(2), Instr::Load(3), Instr::Const(0.75)];
            for _ in 0..24 {
                let n = instrs.len();
                instrs.push(match next(9) {
                    0..=3 => Instr::Unary(unary[next(unary.len())], next(n)),
                    4..=7 => Instr::Binary(binary[next(binary.len())], next(n), next(n)),
                    _ => Instr::Where(next(n), next(n), next(n)),
                });
            }
            let n = instrs.len();
            let outputs = vec![
                FusedOutput::Store(n - 1),
                FusedOutput::Store(5 + next(n - 5)),
                FusedOutput::Reduce { reg: 5 + next(n - 5), op: ReduceOp::Sum, axes: smallvec::smallvec![1] },
                FusedOutput::Reduce { reg: n - 2, op: ReduceOp::Max, axes: smallvec::smallvec![0, 1, 2] },
            ];
            let kernel = FusedKernel::new(shape.clone(), T::DTYPE, inputs.clone(), instrs, outputs);
            if jit::Builder::new(T::DTYPE).is_some() {
                assert!(kernel.parts.iter().any(|p| matches!(p, Part::Jit { .. })), "{:?}", kernel.parts);
            }
            let ptrs: Vec<*const T> = data.iter().map(|d| d.as_ptr()).collect();
            let run = |k: &FusedKernel| {
                let mut outs: Vec<Vec<T>> = (0..4).map(|j| vec![T::ZERO; k.output_len(j)]).collect();
                let out_ptrs: Vec<*mut T> = outs.iter_mut().map(|o| o.as_mut_ptr()).collect();
                // SAFETY: inputs and outputs sized by the kernel's shapes, all distinct.
                unsafe { k.run::<T>(&ptrs, &out_ptrs) };
                outs
            };
            let got = run(&kernel);
            let want = run(&kernel.clone().interpreted());
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                let same = |a: &T, b: &T| {
                    a.to_f64().to_bits() == b.to_f64().to_bits()
                        || (a.to_f64().is_nan() && b.to_f64().is_nan())
                };
                let bad = g.iter().zip(w).position(|(a, b)| !same(a, b));
                assert_eq!(bad, None, "trial {trial}, output {j}, {:?}: {:?}", T::DTYPE, kernel.instrs);
            }
        }
    }

    #[test]
    fn generated_code_gives_the_interpreters_values() {
        generated_matches_interpreted::<f32>();
        generated_matches_interpreted::<f64>();
    }

    /// A kernel that only stores, split per thread (pieces that start and end inside rows of
    /// broadcast operands), reading one operand as a slice of a larger value, against a plain
    /// loop, at 1 to 3 threads.
    #[test]
    fn split_store_kernels_give_the_plain_loops_values() {
        let shape: Shape = smallvec![5, 3, 301];
        // x: the slice [:, 1..4, 2..303] of a [5, 4, 305] value, read where it lies
        let x_read = Operand { shape: shape.clone(), strides: smallvec![4 * 305, 305, 1], offset: 305 + 2 };
        let inputs = vec![x_read, Operand::whole(smallvec![1, 3, 1]), Operand::whole(smallvec![5, 1, 301])];
        // r = x·w; then four times r = max(r + b, r·w) − b; outputs r and x + b
        let mut instrs = vec![Instr::Load(0), Instr::Load(1), Instr::Load(2)];
        instrs.push(Instr::Binary(BinaryOp::Mul, 0, 1));
        let mut r = 3;
        for _ in 0..4 {
            let n = instrs.len();
            instrs.push(Instr::Binary(BinaryOp::Add, r, 2));
            instrs.push(Instr::Binary(BinaryOp::Mul, r, 1));
            instrs.push(Instr::Binary(BinaryOp::Maximum, n, n + 1));
            instrs.push(Instr::Binary(BinaryOp::Sub, n + 2, 2));
            r = n + 3;
        }
        instrs.push(Instr::Binary(BinaryOp::Add, 0, 2));
        let sum = instrs.len() - 1;
        let kernel = FusedKernel::new(
            shape.clone(),
            DType::F32,
            inputs,
            instrs,
            vec![FusedOutput::Store(r), FusedOutput::Store(sum)],
        );
        assert!(numel(&shape) * kernel.plan.steps.len() >= PAR_MIN_WORK, "too small to split");
        let x: Vec<f32> = (0..5 * 4 * 305).map(|i| ((i * 37) % 101) as f32 * 0.07 - 3.0).collect();
        let w = [0.5f32, -1.25, 2.0];
        let b: Vec<f32> = (0..5 * 301).map(|i| ((i * 13) % 29) as f32 * 0.1 - 1.4).collect();
        let (mut want_r, mut want_sum) = (Vec::new(), Vec::new());
        for i in 0..5 {
            for j in 0..3 {
                for k in 0..301 {
                    let (xv, bv) = (x[(i * 4 + j + 1) * 305 + k + 2], b[i * 301 + k]);
                    let mut r = xv * w[j];
                    for _ in 0..4 {
                        r = (r + bv).max(r * w[j]) - bv;
                    }
                    want_r.push(r);
                    want_sum.push(xv + bv);
                }
            }
        }
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            let (mut r, mut sum) = (vec![0f32; numel(&shape)], vec![0f32; numel(&shape)]);
            // SAFETY: inputs and outputs sized by the kernel's shapes, all distinct.
            pool.install(|| unsafe {
                kernel.run::<f32>(&[x.as_ptr(), w.as_ptr(), b.as_ptr()], &[r.as_mut_ptr(), sum.as_mut_ptr()])
            });
            assert_eq!(r, want_r, "{threads} threads");
            assert_eq!(sum, want_sum, "{threads} threads");
        }
    }

    #[test]
    fn a_value_read_twice_is_not_folded() {
        // y = x·2; outputs y and y + 1: the add may not overwrite y's register
        let instrs = vec![
            Instr::Load(0),
            Instr::Unary(UnaryOp::MulScalar(2.0), 0),
            Instr::Unary(UnaryOp::AddScalar(1.0), 1),
        ];
        let outputs = vec![FusedOutput::Store(1), FusedOutput::Store(2)];
        let kernel =
            FusedKernel::new(smallvec![7], DType::F32, vec![Operand::whole(smallvec![7])], instrs, outputs);
        let x: Vec<f32> = (0..7).map(|i| i as f32 * 0.5).collect();
        let (mut y, mut z) = (vec![0f32; 7], vec![0f32; 7]);
        // SAFETY: one input and two outputs of 7 elements each.
        unsafe { kernel.run::<f32>(&[x.as_ptr()], &[y.as_mut_ptr(), z.as_mut_ptr()]) };
        assert_eq!(y, x.iter().map(|v| v * 2.0).collect::<Vec<_>>());
        assert_eq!(z, x.iter().map(|v| v * 2.0 + 1.0).collect::<Vec<_>>());
    }
}
