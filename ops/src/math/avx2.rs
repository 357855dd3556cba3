//! [`Lanes`] for x86_64 AVX2 + FMA: [`F32x8`] (8 × f32) and [`F64x4`] (4 × f64).
//!
//! Invariant: values of these types exist only inside functions compiled with
//! `#[target_feature(enable = "avx2,fma")]` that the dispatcher in `mod.rs` enters after
//! `has_avx2_fma()` returned true. That is what makes the intrinsic calls below sound; the
//! types are private to the math module so no other code can break the invariant.

use super::lanes::Lanes;
use std::arch::x86_64::*;

/// Eight f32 lanes in one AVX register.
#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

/// Four f64 lanes in one AVX register.
#[derive(Clone, Copy)]
pub(crate) struct F64x4(__m256d);

/// Wraps each intrinsic call with the module's one safety argument.
macro_rules! avx {
    ($e:expr) => {
        // SAFETY: AVX2 and FMA are available: these types only live inside
        // `#[target_feature(enable = "avx2,fma")]` functions entered after run-time detection
        // (module invariant above).
        unsafe { $e }
    };
}

impl Lanes for F32x8 {
    type Elem = f32;
    type Mask = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable elements; AVX per the module invariant.
        Self(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 8 writable elements; AVX per the module invariant.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    fn splat(v: f64) -> Self {
        Self(avx!(_mm256_set1_ps(v as f32)))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(avx!(_mm256_add_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Self(avx!(_mm256_sub_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self(avx!(_mm256_mul_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        Self(avx!(_mm256_div_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        Self(avx!(_mm256_fmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Self(avx!(_mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0)))
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Self(avx!(_mm256_min_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Self(avx!(_mm256_max_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn round(self) -> Self {
        Self(avx!(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        avx!({
            let s = _mm256_set1_ps(-0.0);
            Self(_mm256_or_ps(_mm256_andnot_ps(s, self.0), _mm256_and_ps(s, sign.0)))
        })
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __m256 {
        avx!(_mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __m256 {
        avx!(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn eq(self, o: Self) -> __m256 {
        avx!(_mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn is_nan(self) -> __m256 {
        avx!(_mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0))
    }
    #[inline(always)]
    fn or(a: __m256, b: __m256) -> __m256 {
        avx!(_mm256_or_ps(a, b))
    }
    #[inline(always)]
    fn any(m: __m256) -> bool {
        avx!(_mm256_movemask_ps(m)) != 0
    }
    #[inline(always)]
    fn select(m: __m256, a: Self, b: Self) -> Self {
        Self(avx!(_mm256_blendv_ps(b.0, a.0, m)))
    }
    #[inline(always)]
    fn pow2i(k: Self) -> Self {
        avx!({
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(k.0), _mm256_set1_epi32(127));
            Self(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(e)))
        })
    }
    #[inline(always)]
    fn frexp(self) -> (Self, Self) {
        avx!({
            let bits = _mm256_castps_si256(self.0);
            let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
                _mm256_set1_epi32(0x3f80_0000),
            );
            (Self(_mm256_cvtepi32_ps(e)), Self(_mm256_castsi256_ps(m)))
        })
    }
}

/// `2^52 + 2^51`: adding it to an integer-valued double below 2^51 in magnitude leaves the
/// integer's two's complement in the low mantissa bits.
const ROUND_MAGIC: f64 = 6755399441055744.0;

impl Lanes for F64x4 {
    type Elem = f64;
    type Mask = __m256d;
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: the caller guarantees 4 readable elements; AVX per the module invariant.
        Self(unsafe { _mm256_loadu_pd(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        // SAFETY: the caller guarantees 4 writable elements; AVX per the module invariant.
        unsafe { _mm256_storeu_pd(p, self.0) }
    }
    #[inline(always)]
    fn splat(v: f64) -> Self {
        Self(avx!(_mm256_set1_pd(v)))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(avx!(_mm256_add_pd(self.0, o.0)))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Self(avx!(_mm256_sub_pd(self.0, o.0)))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self(avx!(_mm256_mul_pd(self.0, o.0)))
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        Self(avx!(_mm256_div_pd(self.0, o.0)))
    }
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        Self(avx!(_mm256_fmadd_pd(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Self(avx!(_mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0)))
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Self(avx!(_mm256_min_pd(self.0, o.0)))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Self(avx!(_mm256_max_pd(self.0, o.0)))
    }
    #[inline(always)]
    fn round(self) -> Self {
        Self(avx!(_mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        avx!({
            let s = _mm256_set1_pd(-0.0);
            Self(_mm256_or_pd(_mm256_andnot_pd(s, self.0), _mm256_and_pd(s, sign.0)))
        })
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __m256d {
        avx!(_mm256_cmp_pd::<_CMP_LT_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __m256d {
        avx!(_mm256_cmp_pd::<_CMP_GT_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn eq(self, o: Self) -> __m256d {
        avx!(_mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, o.0))
    }
    #[inline(always)]
    fn is_nan(self) -> __m256d {
        avx!(_mm256_cmp_pd::<_CMP_UNORD_Q>(self.0, self.0))
    }
    #[inline(always)]
    fn or(a: __m256d, b: __m256d) -> __m256d {
        avx!(_mm256_or_pd(a, b))
    }
    #[inline(always)]
    fn any(m: __m256d) -> bool {
        avx!(_mm256_movemask_pd(m)) != 0
    }
    #[inline(always)]
    fn select(m: __m256d, a: Self, b: Self) -> Self {
        Self(avx!(_mm256_blendv_pd(b.0, a.0, m)))
    }
    #[inline(always)]
    fn pow2i(k: Self) -> Self {
        avx!({
            // k + magic holds k in its low bits; adding the bias there and shifting the low
            // 12 bits into the exponent field gives 2^k (the magic's own bits shift out).
            let t = _mm256_castpd_si256(_mm256_add_pd(k.0, _mm256_set1_pd(ROUND_MAGIC)));
            let e = _mm256_add_epi64(t, _mm256_set1_epi64x(1023));
            Self(_mm256_castsi256_pd(_mm256_slli_epi64::<52>(e)))
        })
    }
    #[inline(always)]
    fn frexp(self) -> (Self, Self) {
        avx!({
            let bits = _mm256_castpd_si256(self.0);
            // The biased exponent as an integer in the low bits of 2^52, then subtracted out.
            let e_bits =
                _mm256_or_si256(_mm256_srli_epi64::<52>(bits), _mm256_set1_epi64x(0x4330_0000_0000_0000));
            let e = _mm256_sub_pd(_mm256_castsi256_pd(e_bits), _mm256_set1_pd(4503599627370496.0 + 1023.0));
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi64x(0x000f_ffff_ffff_ffff)),
                _mm256_set1_epi64x(0x3ff0_0000_0000_0000),
            );
            (Self(e), Self(_mm256_castsi256_pd(m)))
        })
    }
}
