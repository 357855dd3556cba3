//! Elementwise binary maps with NumPy broadcasting: the [`BinaryOp`] enum (scalar definition,
//! PyTorch names), [`binary`], and the three-way [`where_select`].
//!
//! Operands are contiguous row-major buffers whose shapes broadcast to the output shape (the
//! caller checked that). The kernels first simplify the iteration space: size-1 output dims
//! are dropped and adjacent dims are merged wherever every operand stays linear across them,
//! so a same-shape op becomes one flat loop, a bias add `[m, n] + [n]` becomes `m` contiguous
//! rows against one row, and a column broadcast `[m, n] + [m, 1]` becomes rows against a
//! scalar. The innermost (merged) dimension then runs as a tight loop specialised on whether
//! each operand's stride there is 1 (contiguous) or 0 (broadcast scalar), written so LLVM
//! vectorises it; an odometer walks the outer dims.
//!
//! Large outputs are cut into fixed-size chunks of the flat output run on rayon; every output
//! element is computed by the same scalar expression whichever chunk it falls in, so results
//! are bit-identical for any thread count.

use crate::facts::fact::{DIFFERENTIABLE, NONE};
use crate::{broadcast_strides, numel, op_facts, Element, Shape};
use rayon::prelude::*;
use std::fmt;

/// An elementwise function of two inputs. Comparisons give 1.0 (true) or 0.0 (false).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a − b
    Sub,
    /// a · b
    Mul,
    /// a / b
    Div,
    /// a^b
    Pow,
    /// The larger of a and b; NaN if either is NaN.
    Maximum,
    /// The smaller of a and b; NaN if either is NaN.
    Minimum,
    /// a == b
    Eq,
    /// a != b
    Ne,
    /// a < b
    Lt,
    /// a <= b
    Le,
    /// a > b
    Gt,
    /// a >= b
    Ge,
}

impl BinaryOp {
    /// The scalar definition, in f64: the reference the kernels are tested against and what
    /// constant folding uses.
    pub fn apply_f64(self, a: f64, b: f64) -> f64 {
        let truth = |t: bool| if t { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => maximum(a, b),
            BinaryOp::Minimum => minimum(a, b),
            BinaryOp::Eq => truth(a == b),
            BinaryOp::Ne => truth(a != b),
            BinaryOp::Lt => truth(a < b),
            BinaryOp::Le => truth(a <= b),
            BinaryOp::Gt => truth(a > b),
            BinaryOp::Ge => truth(a >= b),
        }
    }

    /// True for the comparisons (`eq` ... `ge`), whose outputs are 0.0 / 1.0.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

op_facts! { BinaryOp;
    Add => "add", DIFFERENTIABLE;
    Sub => "sub", DIFFERENTIABLE;
    Mul => "mul", DIFFERENTIABLE;
    Div => "div", DIFFERENTIABLE;
    Pow => "pow", DIFFERENTIABLE;
    Maximum => "maximum", DIFFERENTIABLE;
    Minimum => "minimum", DIFFERENTIABLE;
    Eq => "eq", NONE;
    Ne => "ne", NONE;
    Lt => "lt", NONE;
    Le => "le", NONE;
    Gt => "gt", NONE;
    Ge => "ge", NONE;
}

impl BinaryOp {
    /// Whether the op carries a gradient (comparisons do not).
    pub const fn is_differentiable(self) -> bool {
        self.facts() & DIFFERENTIABLE != 0
    }
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// NaN-propagating maximum (`torch.maximum`).
#[inline(always)]
fn maximum<T: Element>(a: T, b: T) -> T {
    // a != a is the branch-free NaN test; when b is NaN, `a > b` is false and b is returned.
    #[allow(clippy::eq_op)]
    let a_nan = a != a;
    if a > b || a_nan {
        a
    } else {
        b
    }
}

/// NaN-propagating minimum (`torch.minimum`).
#[inline(always)]
fn minimum<T: Element>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    let a_nan = a != a;
    if a < b || a_nan {
        a
    } else {
        b
    }
}

/// Elements per parallel task (fixed, so the partition never depends on the thread count).
const CHUNK: usize = 1 << 13;
/// Below this many output elements the kernels stay on the calling thread.
const PAR_MIN: usize = 1 << 16;
/// The same for `pow`, whose per-element cost is far higher.
const PAR_MIN_POW: usize = 1 << 13;

/// `out = op(a, b)` elementwise, NumPy broadcasting: `a_shape` and `b_shape` broadcast to
/// `out_shape` (caller checked). Buffers are contiguous row-major; zero-sized shapes are fine.
pub fn binary<T: Element>(
    op: BinaryOp,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [T],
    out_shape: &[usize],
) {
    check_operand("binary a", a.len(), a_shape, out_shape);
    check_operand("binary b", b.len(), b_shape, out_shape);
    assert_eq!(out.len(), numel(out_shape), "internal invariant: binary {op} output length");
    let layout = Layout::new(out_shape, [a_shape, b_shape]);
    let par_min = if op == BinaryOp::Pow { PAR_MIN_POW } else { PAR_MIN };
    let (zero, one) = (T::ZERO, T::ONE);
    let truth = move |t: bool| if t { one } else { zero };
    macro_rules! go {
        ($f:expr) => {
            run_binary(&layout, a, b, out, par_min, $f)
        };
    }
    match op {
        BinaryOp::Add => go!(|x: T, y: T| x + y),
        BinaryOp::Sub => go!(|x: T, y: T| x - y),
        BinaryOp::Mul => go!(|x: T, y: T| x * y),
        BinaryOp::Div => go!(|x: T, y: T| x / y),
        BinaryOp::Pow => go!(|x: T, y: T| x.powf(y)),
        BinaryOp::Maximum => go!(maximum::<T>),
        BinaryOp::Minimum => go!(minimum::<T>),
        BinaryOp::Eq => go!(|x: T, y: T| truth(x == y)),
        BinaryOp::Ne => go!(|x: T, y: T| truth(x != y)),
        BinaryOp::Lt => go!(|x: T, y: T| truth(x < y)),
        BinaryOp::Le => go!(|x: T, y: T| truth(x <= y)),
        BinaryOp::Gt => go!(|x: T, y: T| truth(x > y)),
        BinaryOp::Ge => go!(|x: T, y: T| truth(x >= y)),
    }
}

/// `out = cond != 0 ? a : b` elementwise (NaN in `cond` counts as true), all three broadcast
/// to `out_shape` (caller checked).
#[allow(clippy::too_many_arguments)]
pub fn where_select<T: Element>(
    cond: &[T],
    cond_shape: &[usize],
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [T],
    out_shape: &[usize],
) {
    check_operand("where_select cond", cond.len(), cond_shape, out_shape);
    check_operand("where_select a", a.len(), a_shape, out_shape);
    check_operand("where_select b", b.len(), b_shape, out_shape);
    assert_eq!(out.len(), numel(out_shape), "internal invariant: where_select output length");
    let layout = Layout::new(out_shape, [cond_shape, a_shape, b_shape]);
    let (_, [sc, sa, sb]) = layout.inner();
    let chunk = |start: usize, out: &mut [T]| {
        layout.for_each_segment(start, out.len(), |pos, len, [oc, oa, ob]| {
            let out = &mut out[pos..pos + len];
            if (sc, sa, sb) == (1, 1, 1) {
                let (c, a, b) = (&cond[oc..oc + len], &a[oa..oa + len], &b[ob..ob + len]);
                for (((o, &c), &x), &y) in out.iter_mut().zip(c).zip(a).zip(b) {
                    *o = if c != T::ZERO { x } else { y };
                }
            } else {
                for (j, o) in out.iter_mut().enumerate() {
                    let c = cond[oc + j * sc];
                    *o = if c != T::ZERO { a[oa + j * sa] } else { b[ob + j * sb] };
                }
            }
        })
    };
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, out)| chunk(i * CHUNK, out));
    } else {
        chunk(0, out);
    }
}

/// Asserts that an operand's buffer matches its shape and that the shape broadcasts to `out`.
fn check_operand(what: &str, len: usize, shape: &[usize], out_shape: &[usize]) {
    assert_eq!(len, numel(shape), "internal invariant: {what} length vs shape {shape:?}");
    let offset = out_shape.len().checked_sub(shape.len());
    let ok = offset.is_some_and(|off| shape.iter().zip(&out_shape[off..]).all(|(&d, &o)| d == o || d == 1));
    assert!(ok, "internal invariant: {what} shape {shape:?} does not broadcast to {out_shape:?}");
}

/// Runs `f` over the output, in parallel chunks above `par_min` elements.
#[inline(always)]
fn run_binary<T: Element, F: Fn(T, T) -> T + Copy + Send + Sync>(
    layout: &Layout<2>,
    a: &[T],
    b: &[T],
    out: &mut [T],
    par_min: usize,
    f: F,
) {
    let chunk = |start: usize, out: &mut [T]| {
        let (_, [sa, sb]) = layout.inner();
        layout.for_each_segment(start, out.len(), |pos, len, [oa, ob]| {
            segment(&a[oa..], sa, &b[ob..], sb, &mut out[pos..pos + len], f)
        })
    };
    if out.len() >= par_min {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, out)| chunk(i * CHUNK, out));
    } else {
        chunk(0, out);
    }
}

/// One run of the innermost dimension: `out[j] = f(a[j·sa], b[j·sb])`, specialised for the
/// contiguous and broadcast strides so the common cases vectorise.
#[inline(always)]
fn segment<T: Element, F: Fn(T, T) -> T>(a: &[T], sa: usize, b: &[T], sb: usize, out: &mut [T], f: F) {
    let n = out.len();
    match (sa, sb) {
        (1, 1) => {
            for ((o, &x), &y) in out.iter_mut().zip(&a[..n]).zip(&b[..n]) {
                *o = f(x, y);
            }
        }
        (1, 0) => {
            let y = b[0];
            for (o, &x) in out.iter_mut().zip(&a[..n]) {
                *o = f(x, y);
            }
        }
        (0, 1) => {
            let x = a[0];
            for (o, &y) in out.iter_mut().zip(&b[..n]) {
                *o = f(x, y);
            }
        }
        _ => {
            for (j, o) in out.iter_mut().enumerate() {
                *o = f(a[j * sa], b[j * sb]);
            }
        }
    }
}

/// The simplified iteration space of an elementwise op over `N` operands: output dims (size-1
/// dims dropped, mergeable neighbours merged; at least one dim) and each operand's strides.
struct Layout<const N: usize> {
    dims: Shape,
    strides: [Shape; N],
}

impl<const N: usize> Layout<N> {
    fn new(out_shape: &[usize], shapes: [&[usize]; N]) -> Self {
        let full: [Shape; N] = shapes.map(|s| broadcast_strides(s, out_shape));
        let mut dims = Shape::new();
        let mut strides: [Shape; N] = std::array::from_fn(|_| Shape::new());
        for (d, &size) in out_shape.iter().enumerate() {
            if size == 1 {
                continue;
            }
            // Merge into the previous kept dim when every operand is linear across the two.
            let mergeable =
                !dims.is_empty() && (0..N).all(|k| strides[k][dims.len() - 1] == full[k][d] * size);
            if mergeable {
                let last = dims.len() - 1;
                dims[last] *= size;
                for k in 0..N {
                    strides[k][last] = full[k][d];
                }
            } else {
                dims.push(size);
                for k in 0..N {
                    strides[k].push(full[k][d]);
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

    /// The innermost dim's length and each operand's stride along it.
    fn inner(&self) -> (usize, [usize; N]) {
        let last = self.dims.len() - 1;
        (self.dims[last], std::array::from_fn(|k| self.strides[k][last]))
    }

    /// Calls `seg(pos, len, offsets)` for each run of the innermost dim covering flat output
    /// positions `start .. start + count`; `pos` is relative to `start`, `offsets` are each
    /// operand's element offset at the run's first element.
    #[inline(always)]
    fn for_each_segment(&self, start: usize, count: usize, mut seg: impl FnMut(usize, usize, [usize; N])) {
        if count == 0 {
            return;
        }
        let rank = self.dims.len();
        let (inner, inner_strides) = self.inner();
        let outer = &self.dims[..rank - 1];
        let mut coord: Shape = smallvec::smallvec![0; rank - 1];
        let mut rest = start / inner;
        for d in (0..rank - 1).rev() {
            coord[d] = rest % outer[d];
            rest /= outer[d];
        }
        let mut base: [usize; N] =
            std::array::from_fn(|k| (0..rank - 1).map(|d| coord[d] * self.strides[k][d]).sum());
        let mut j = start % inner;
        let mut pos = 0;
        while pos < count {
            let len = (inner - j).min(count - pos);
            seg(pos, len, std::array::from_fn(|k| base[k] + j * inner_strides[k]));
            pos += len;
            j = 0;
            // Odometer step over the outer dims.
            for d in (0..rank - 1).rev() {
                coord[d] += 1;
                for (b, s) in base.iter_mut().zip(&self.strides) {
                    *b += s[d];
                }
                if coord[d] < outer[d] {
                    break;
                }
                coord[d] = 0;
                for (b, s) in base.iter_mut().zip(&self.strides) {
                    *b -= outer[d] * s[d];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
