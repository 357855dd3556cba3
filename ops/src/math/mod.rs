//! Vectorised elementwise math on slices: `exp`, `exp_m1`, `ln`, `ln_1p`, `tanh`, `sigmoid`,
//! `erf`, and the fused activations `gelu` (exact erf form) and `softplus`, for `f32` and
//! `f64`, each out-of-place (`exp(x, out)`) and in place (`exp_inplace(x)`).
//!
//! Each function runs an AVX2+FMA kernel when the CPU has both (detected once, cached) and a
//! portable scalar kernel otherwise; both are the same generic code in `kernels.rs`, written
//! against the small `Lanes` trait (`lanes.rs` for scalars, `avx2.rs` for x86_64 packs).
//! f32 is computed in f32 and f64 in f64.
//!
//! Invariants:
//! - A value's result does not depend on where it sits in the slice: the ragged end of a slice
//!   goes through the same vector kernel via a padded stack buffer. Splitting a slice into
//!   chunks (as `unary` does across threads) therefore never changes a bit.
//! - Special values follow IEEE/libm: NaN in gives NaN out, exp overflows to inf and underflows
//!   (through subnormals) to 0, `ln 0 = −inf`, `ln` of a negative is NaN, tanh/erf/sigmoid
//!   saturate to their limits.
//! - Accuracy (measured in this module's tests against std / a series reference over millions
//!   of random inputs): a few ulp; erf in f64 to about 1e-16 absolute.
//!
//! These functions are serial; callers parallelise over chunks (see `unary`).

#[cfg(target_arch = "x86_64")]
mod avx2;
pub(crate) mod kernels;
pub(crate) mod lanes;
#[cfg(test)]
mod tests;

use crate::{DType, Element};
use lanes::{Lanes, Params};

/// True when the CPU has AVX2 and FMA (x86_64 only), detected on first use and cached.
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A lane type's choice of SIMD pack.
trait Dispatch: Params + Lanes<Elem = Self> {
    /// The AVX2 pack of this element type.
    #[cfg(target_arch = "x86_64")]
    type Avx: Lanes<Elem = Self>;
}

impl Dispatch for f32 {
    #[cfg(target_arch = "x86_64")]
    type Avx = avx2::F32x8;
}

impl Dispatch for f64 {
    #[cfg(target_arch = "x86_64")]
    type Avx = avx2::F64x4;
}

/// Applies `f` pack by pack from `src` to `dst` (which may be the same buffer); the ragged end
/// goes through a zero-padded stack buffer so every element sees the same kernel.
///
/// # Safety
/// `src` must be readable and `dst` writable for `n` elements; they either coincide or do not
/// overlap. `V`'s instructions must be available on this CPU.
#[inline(always)]
unsafe fn map<V: Lanes>(src: *const V::Elem, dst: *mut V::Elem, n: usize, f: impl Fn(V) -> V) {
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES <= n, so both pointers are valid for LANES elements at offset i;
        // each pack is loaded before it is stored, so src == dst is fine.
        unsafe { f(V::load(src.add(i))).store(dst.add(i)) };
        i += V::LANES;
    }
    if i < n {
        let rest = n - i;
        let mut buf = [V::Elem::default(); 8];
        debug_assert!(V::LANES <= buf.len());
        // SAFETY: `rest` < LANES <= 8 elements remain at offset i of both buffers, and `buf`
        // holds 8 (all LANES of it are read and written).
        unsafe {
            std::ptr::copy(src.add(i), buf.as_mut_ptr(), rest);
            f(V::load(buf.as_ptr())).store(buf.as_mut_ptr());
            std::ptr::copy(buf.as_ptr(), dst.add(i), rest);
        }
    }
}

/// The kernel table: one row per function (public name, in-place name, `Func` variant, formula
/// for the docs; the kernel in `kernels.rs` carries the public name). It declares `Func`, the
/// `run_kernel!` dispatch both paths expand, and the public slice functions. (`$d` is a `$`
/// passed in, so the generated macro can have variables of its own.)
macro_rules! math_functions {
    ($d:tt; $($name:ident, $inplace:ident, $func:ident, $what:literal;)*) => {
        /// Which kernel to run.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Func {
            $($func,)*
        }

        /// Runs kernel `func` through [`map`] with lanes `V`. A macro, so the closures are
        /// created inside each path and inherit its target features (and the kernels inline
        /// into them).
        macro_rules! run_kernel {
            ($d func:expr, $d v:ty, $d src:expr, $d dst:expr, $d n:expr) => {
                match $d func {
                    $(Func::$func => map($d src, $d dst, $d n, |v: $d v| kernels::$name(v)),)*
                }
            };
        }

        $(
            #[doc = concat!("`out[i] = ", $what, "` for every `i`; `x` and `out` have equal lengths.")]
            pub fn $name<T: Element>(x: &[T], out: &mut [T]) {
                apply(Func::$func, x, out, false)
            }

            #[doc = concat!("`x[i] = ", $what, "` in place.")]
            pub fn $inplace<T: Element>(x: &mut [T]) {
                apply_inplace(Func::$func, x)
            }
        )*
    };
}

math_functions! { $;
    exp, exp_inplace, Exp, "e^x[i]";
    exp_m1, exp_m1_inplace, ExpM1, "e^x[i] − 1 (accurate near 0)";
    ln, ln_inplace, Ln, "ln x[i]";
    ln_1p, ln_1p_inplace, Ln1p, "ln(1 + x[i]) (accurate near 0)";
    tanh, tanh_inplace, Tanh, "tanh x[i]";
    sigmoid, sigmoid_inplace, Sigmoid, "1 / (1 + e^−x[i])";
    erf, erf_inplace, Erf, "erf x[i]";
    gelu, gelu_inplace, Gelu, "x[i]·Φ(x[i]) = ½·x[i]·(1 + erf(x[i]/√2))";
    gelu_grad, gelu_grad_inplace, GeluGrad, "Φ(x[i]) + x[i]·φ(x[i])` (GELU's derivative: Φ, φ the normal cdf and density)`";
    softplus, softplus_inplace, Softplus, "ln(1 + e^x[i]) (stable for large |x[i]|)";
    silu, silu_inplace, Silu, "x[i]·σ(x[i])";
    log_sigmoid, log_sigmoid_inplace, LogSigmoid, "ln σ(x[i]) = −softplus(−x[i])";
}

/// The AVX2+FMA path: everything below is compiled with those features, so each pack method
/// becomes a single instruction.
///
/// # Safety
/// As for [`map`], and the CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<V: Lanes>(func: Func, src: *const V::Elem, dst: *mut V::Elem, n: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { run_kernel!(func, V, src, dst, n) }
}

/// The portable path: one-lane packs, no CPU feature needed.
///
/// # Safety
/// As for [`map`].
unsafe fn run_portable<V: Lanes>(func: Func, src: *const V::Elem, dst: *mut V::Elem, n: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { run_kernel!(func, V, src, dst, n) }
}

/// Runs `func` over `n` elements with the best available path (`portable` forces the scalar
/// one; the tests use it to check both).
///
/// # Safety
/// `src` readable and `dst` writable for `n` elements; they coincide or do not overlap.
unsafe fn run_typed<E: Dispatch>(func: Func, src: *const E, dst: *mut E, n: usize, portable: bool) {
    #[cfg(target_arch = "x86_64")]
    if !portable && has_avx2_fma() {
        // SAFETY: AVX2+FMA detected just above; pointer validity from the caller.
        return unsafe { run_avx2::<E::Avx>(func, src, dst, n) };
    }
    let _ = portable;
    // SAFETY: pointer validity from the caller.
    unsafe { run_portable::<E>(func, src, dst, n) }
}

/// Element-generic entry: `T` is f32 or f64 (sealed), told apart by its `DTYPE` tag.
///
/// # Safety
/// As for [`run_typed`].
unsafe fn run<T: Element>(func: Func, src: *const T, dst: *mut T, n: usize, portable: bool) {
    // SAFETY (both arms): `Element` is sealed to f32 and f64 and `DTYPE` names which one `T`
    // is, so the pointer casts are identity casts; validity is forwarded from the caller.
    match T::DTYPE {
        DType::F32 => unsafe { run_typed::<f32>(func, src.cast(), dst.cast(), n, portable) },
        DType::F64 => unsafe { run_typed::<f64>(func, src.cast(), dst.cast(), n, portable) },
        DType::I64 => unreachable!("Element is sealed to f32 and f64"),
    }
}

/// Out-of-place driver shared by the public functions.
fn apply<T: Element>(func: Func, x: &[T], out: &mut [T], portable: bool) {
    assert_eq!(x.len(), out.len(), "internal invariant: math::{func:?} input and output lengths differ");
    // SAFETY: `x` and `out` are live slices of the same length; `&`/`&mut` cannot overlap.
    unsafe { run(func, x.as_ptr(), out.as_mut_ptr(), x.len(), portable) }
}

/// In-place driver shared by the public functions.
fn apply_inplace<T: Element>(func: Func, x: &mut [T]) {
    let p = x.as_mut_ptr();
    // SAFETY: `p` is valid for reading and writing `x.len()` elements; source and destination
    // coincide exactly, which `map` allows.
    unsafe { run(func, p, p, x.len(), false) }
}

/// erf of one `f64`, through the portable kernel (std has no erf). Used by
/// `UnaryOp::apply_f64` for scalar definitions and constant folding.
pub fn erf_f64(x: f64) -> f64 {
    let mut y = [0.0];
    apply(Func::Erf, &[x], &mut y, true);
    y[0]
}
