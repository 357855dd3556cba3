//! The small per-architecture vector trait the math kernels are written against.
//!
//! [`Lanes`] is a fixed-width pack of `f32` or `f64` values with the handful of operations the
//! kernels in `kernels.rs` need: arithmetic, fused multiply-add, comparisons and blends, and the
//! exponent-field tricks behind `2^k` and `frexp`. Scalars (`f32`, `f64`) implement it as
//! one-lane packs: that is the portable path. `avx2.rs` implements it for 8 × f32 and 4 × f64.
//!
//! Invariants every implementation keeps, so that all paths agree on special values:
//! `min(a, b)` is `if a < b { a } else { b }` and `max(a, b)` is `if a > b { a } else { b }`
//! (the x86 rule: the second operand wins when either is NaN); `round` is ties-to-even.

/// Per-type constants of the kernels (polynomial coefficients, clamp bounds).
pub(crate) trait Params: Copy + Default {
    /// `expm1(r) = r + r²·q(r)` on `|r| <= ln2/2`, coefficients of `q` from degree 0.
    const EXPM1_Q: &'static [f64];
    /// `ln((1+s)/(1-s)) = 2s + s·z·R(z)`, `z = s²`, `|s| <= 3 - 2√2`.
    const LN_R: &'static [f64];
    /// `erf(x) = x·(2/√π + z·P(z))`, `z = x²`, `|x| < 1`.
    const ERF_SMALL: &'static [f64];
    /// `erfc(x) = e^(−x²)·G(x − 1)` on `1 <= x <= ERF_SAT`.
    const ERF_TAIL: &'static [f64];
    /// Beyond this `|x|`, erf rounds to ±1.
    const ERF_SAT: f64;
    /// Beyond this `|x|`, tanh rounds to ±1.
    const TANH_SAT: f64;
    /// `exp` clamps its argument to `[EXP_LO, EXP_HI]`: outside it the result is 0 or inf anyway.
    const EXP_LO: f64;
    /// See `EXP_LO`.
    const EXP_HI: f64;
    /// `expm1` clamps below here: the result rounds to −1.
    const EXPM1_LO: f64;
    /// Smallest positive normal value.
    const MIN_NORMAL: f64;
    /// Power of two that lifts subnormals into the normal range before `frexp`.
    const SUBNORMAL_SCALE_LOG2: f64;
    /// `ln 2` split so that `k·LN2_HI` is exact for every exponent `k` of the type.
    const LN2_HI: f64;
    /// `ln 2 − LN2_HI`.
    const LN2_LO: f64;
}

/// A pack of lanes of one float type. All methods are lane-wise.
pub(crate) trait Lanes: Copy {
    /// The lane type.
    type Elem: Params;
    /// A lane-wise boolean.
    type Mask: Copy;
    /// Number of lanes.
    const LANES: usize;

    /// Reads `LANES` values.
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` elements (no alignment needed).
    unsafe fn load(p: *const Self::Elem) -> Self;
    /// Writes `LANES` values.
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` elements (no alignment needed).
    unsafe fn store(self, p: *mut Self::Elem);
    /// Every lane set to `v` (rounded to the lane type).
    fn splat(v: f64) -> Self;
    /// `self + o`
    fn add(self, o: Self) -> Self;
    /// `self − o`
    fn sub(self, o: Self) -> Self;
    /// `self · o`
    fn mul(self, o: Self) -> Self;
    /// `self / o`
    fn div(self, o: Self) -> Self;
    /// `self · b + c`, fused where the target has FMA.
    fn fma(self, b: Self, c: Self) -> Self;
    /// `|self|`
    fn abs(self) -> Self;
    /// `if self < o { self } else { o }`
    fn min(self, o: Self) -> Self;
    /// `if self > o { self } else { o }`
    fn max(self, o: Self) -> Self;
    /// Round to the nearest integer, ties to even.
    fn round(self) -> Self;
    /// `|self|` with the sign bit of `sign`.
    fn copysign(self, sign: Self) -> Self;
    /// `self < o`
    fn lt(self, o: Self) -> Self::Mask;
    /// `self > o`
    fn gt(self, o: Self) -> Self::Mask;
    /// `self == o`
    fn eq(self, o: Self) -> Self::Mask;
    /// True where the lane is NaN.
    fn is_nan(self) -> Self::Mask;
    /// Lane-wise `a || b`.
    fn or(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// True if any lane of `m` is set.
    fn any(m: Self::Mask) -> bool;
    /// `if m { a } else { b }` per lane.
    fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// `2^k` for integer-valued `k` within the normal exponent range.
    fn pow2i(k: Self) -> Self;
    /// For positive normal `self`: `(e, m)` with `self = m·2^e`, `m ∈ [1, 2)`, `e` integer-valued.
    /// Other inputs give unspecified finite values (callers patch special cases afterwards).
    fn frexp(self) -> (Self, Self);
}

/// Horner evaluation of `c[0] + c[1]·x + ...` (coefficients constant-fold into splats).
#[inline(always)]
pub(crate) fn poly<V: Lanes>(x: V, c: &[f64]) -> V {
    let mut acc = V::splat(c[c.len() - 1]);
    for &ci in c[..c.len() - 1].iter().rev() {
        acc = acc.fma(x, V::splat(ci));
    }
    acc
}

/// Scalar FMA where the target has one in hardware; a plain multiply-add elsewhere (a
/// software `fma` call would be far slower, and the kernels do not need the single rounding).
macro_rules! scalar_fma {
    ($a:expr, $b:expr, $c:expr) => {{
        if cfg!(any(target_feature = "fma", target_arch = "aarch64")) {
            $a.mul_add($b, $c)
        } else {
            $a * $b + $c
        }
    }};
}

macro_rules! impl_scalar_lanes {
    ($t:ty, $bits:ty, $mant:expr, $bias:expr) => {
        impl Lanes for $t {
            type Elem = $t;
            type Mask = bool;
            const LANES: usize = 1;

            #[inline(always)]
            unsafe fn load(p: *const $t) -> Self {
                // SAFETY: the caller guarantees `p` is readable for one element.
                unsafe { p.read_unaligned() }
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut $t) {
                // SAFETY: the caller guarantees `p` is writable for one element.
                unsafe { p.write_unaligned(self) }
            }
            #[inline(always)]
            fn splat(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                self / o
            }
            #[inline(always)]
            fn fma(self, b: Self, c: Self) -> Self {
                scalar_fma!(self, b, c)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                if self < o {
                    self
                } else {
                    o
                }
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                if self > o {
                    self
                } else {
                    o
                }
            }
            #[inline(always)]
            fn round(self) -> Self {
                <$t>::round_ties_even(self)
            }
            #[inline(always)]
            fn copysign(self, sign: Self) -> Self {
                <$t>::copysign(self, sign)
            }
            #[inline(always)]
            fn lt(self, o: Self) -> bool {
                self < o
            }
            #[inline(always)]
            fn gt(self, o: Self) -> bool {
                self > o
            }
            #[inline(always)]
            fn eq(self, o: Self) -> bool {
                self == o
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn or(a: bool, b: bool) -> bool {
                a | b
            }
            #[inline(always)]
            fn any(m: bool) -> bool {
                m
            }
            #[inline(always)]
            fn select(m: bool, a: Self, b: Self) -> Self {
                if m {
                    a
                } else {
                    b
                }
            }
            #[inline(always)]
            fn pow2i(k: Self) -> Self {
                <$t>::from_bits(((k as i32 + $bias) as $bits) << $mant)
            }
            #[inline(always)]
            fn frexp(self) -> (Self, Self) {
                let bits = self.to_bits();
                let e = ((bits >> $mant) & ((1 << (<$bits>::BITS - 1 - $mant)) - 1)) as i32 - $bias;
                let m = <$t>::from_bits((bits & ((1 << $mant) - 1)) | (($bias as $bits) << $mant));
                (e as $t, m)
            }
        }
    };
}

impl_scalar_lanes!(f32, u32, 23, 127);
impl_scalar_lanes!(f64, u64, 52, 1023);

impl Params for f32 {
    const EXPM1_Q: &'static [f64] = &[
        0.4999999701976776,
        0.1666654348373413,
        0.04166720062494278,
        0.008366514928638935,
        0.0013882513158023357,
    ];
    const LN_R: &'static [f64] = &[0.6666677594184875, 0.3997754156589508, 0.2987174987792969];
    const ERF_SMALL: &'static [f64] = &[
        -0.3761262893676758,
        0.11283617466688156,
        -0.02685491554439068,
        0.005190160591155291,
        -0.0008024803828448057,
        7.898647163528949e-05,
    ];
    const ERF_TAIL: &'static [f64] = &[
        0.42758357524871826,
        -0.2732110619544983,
        0.15435054898262024,
        -0.07905331999063492,
        0.036874920129776,
        -0.015110064297914505,
        0.00491121644154191,
        -0.0010570300510153174,
        0.00010683938307920471,
    ];
    const ERF_SAT: f64 = 4.0;
    const TANH_SAT: f64 = 9.5;
    const EXP_LO: f64 = -105.0;
    const EXP_HI: f64 = 89.0;
    const EXPM1_LO: f64 = -18.0;
    const MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;
    const SUBNORMAL_SCALE_LOG2: f64 = 25.0;
    const LN2_HI: f64 = 0.693359375;
    const LN2_LO: f64 = -2.121_944_400_546_905_7e-4;
}

impl Params for f64 {
    const EXPM1_Q: &'static [f64] = &[
        0.5000000000000006,
        0.1666666666666659,
        0.04166666666657677,
        0.008333333333389292,
        0.0013888888931552644,
        0.0001984126971957355,
        2.480150529337181e-05,
        2.7557407049744373e-06,
        2.762602865514684e-07,
        2.5053923516431368e-08,
    ];
    const LN_R: &'static [f64] = &[
        0.6666666666666734,
        0.3999999999941463,
        0.28571428742396404,
        0.22222198572397808,
        0.18183564362754992,
        0.1531404969704562,
        0.14795957609284013,
    ];
    const ERF_SMALL: &'static [f64] = &[
        -0.376126389031836,
        0.11283791670946212,
        -0.0268661706433555,
        0.005223977607743118,
        -0.0008548325995270464,
        0.0001205529529513637,
        -1.4924741635230961e-05,
        1.6447458056902168e-06,
        -1.6208595706166055e-07,
        1.3720073304806535e-08,
        -7.795225069807389e-10,
    ];
    const ERF_TAIL: &'static [f64] = &[
        0.4275835761558064,
        -0.2732120147836693,
        0.15437156135790953,
        -0.07922696860887876,
        0.03757229212154881,
        -0.01666183886974932,
        0.0069699965083020645,
        -0.002768577470675465,
        0.0010490971704522048,
        -0.0003798653471602355,
        0.00013084532664074569,
        -4.222104284063446e-05,
        1.2389752131895215e-05,
        -3.1671340699529573e-06,
        6.688504802522159e-07,
        -1.096202429811172e-07,
        1.2861636697785965e-08,
        -9.500283539499625e-10,
        3.2922054096287026e-11,
    ];
    const ERF_SAT: f64 = 6.0;
    const TANH_SAT: f64 = 20.0;
    const EXP_LO: f64 = -746.0;
    const EXP_HI: f64 = 710.0;
    const EXPM1_LO: f64 = -40.0;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    const SUBNORMAL_SCALE_LOG2: f64 = 54.0;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
}
