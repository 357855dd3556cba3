//! Accuracy of the math kernels against std (and, for erf, a series / continued-fraction
//! reference written here), both the dispatched path and the portable path, over 2^20 random
//! inputs per function and type; special values; position independence.

use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

const SAMPLES: usize = 1 << 20;

/// A double-double number `hi + lo`, enough arithmetic for an erf reference.
#[derive(Clone, Copy)]
struct Dd(f64, f64);

impl Dd {
    fn quick(hi: f64, lo: f64) -> Dd {
        let s = hi + lo;
        Dd(s, lo - (s - hi))
    }
    fn add(self, o: Dd) -> Dd {
        let s = self.0 + o.0;
        let bb = s - self.0;
        let e = (self.0 - (s - bb)) + (o.0 - bb);
        Dd::quick(s, e + self.1 + o.1)
    }
    fn mul(self, o: Dd) -> Dd {
        let p = self.0 * o.0;
        let e = self.0.mul_add(o.0, -p);
        Dd::quick(p, e + self.0 * o.1 + self.1 * o.0)
    }
    fn div(self, d: f64) -> Dd {
        let q = self.0 / d;
        let p = q * d;
        let e = q.mul_add(d, -p);
        Dd::quick(q, (self.0 - p - e + self.1) / d)
    }
}

/// erf in f64 to well under 1e-16 absolute. `|x| < 3`: the Maclaurin series
/// `2/√π · Σ (−1)ⁿ x^(2n+1) / (n!(2n+1))` summed in double-double (its cancellation costs at
/// most 4 of the 32 digits). Otherwise
/// `erfc x = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + (3/2)/(x + ...))))`, where erfc < 3e-5 so its
/// f64 rounding is far below 1e-16 in erf.
fn erf_ref(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let y = if a < 3.0 {
        let x2 = Dd(a, 0.0).mul(Dd(a, 0.0));
        let (mut power, mut sum) = (Dd(a, 0.0), Dd(a, 0.0));
        for n in 1..200 {
            power = power.mul(x2).div(n as f64);
            let term = power.div((2 * n + 1) as f64);
            sum = sum.add(if n % 2 == 1 { Dd(-term.0, -term.1) } else { term });
            if term.0.abs() < 1e-36 {
                break;
            }
        }
        sum.mul(Dd(std::f64::consts::FRAC_2_SQRT_PI, 1.533545961316588e-17)).0
    } else if a < 30.0 {
        let mut f = a;
        for k in (1..=400).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (PI.sqrt() * f)
    } else {
        1.0
    };
    y.copysign(x)
}

fn sigmoid_ref(x: f64) -> f64 {
    if x < 0.0 {
        let e = x.exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + (-x).exp())
    }
}

fn gelu_ref(x: f64) -> f64 {
    0.5 * x * (1.0 + erf_ref(x / std::f64::consts::SQRT_2))
}

fn gelu_grad_ref(x: f64) -> f64 {
    0.5 * (1.0 + erf_ref(x / std::f64::consts::SQRT_2)) + x * (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

fn softplus_ref(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// How an input is drawn: uniform over a range, or `±m·2^e` with `e` uniform (log-uniform).
#[derive(Clone, Copy)]
enum Draw {
    Uniform(f64, f64),
    LogUniform { min_exp: i32, max_exp: i32, negative: bool },
}

fn inputs(seed: u64, draws: &[Draw]) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..SAMPLES)
        .map(|i| match draws[i % draws.len()] {
            Draw::Uniform(lo, hi) => rng.gen_range(lo..hi),
            Draw::LogUniform { min_exp, max_exp, negative } => {
                let e = rng.gen_range(min_exp..max_exp);
                let m: f64 = rng.gen_range(1.0..2.0);
                let v = m * 2f64.powi(e);
                if negative {
                    -v
                } else {
                    v
                }
            }
        })
        .collect()
}

/// The spacing of `T` at `r` (its ulp), subnormals included.
fn ulp<T: Element>(r: f64) -> f64 {
    let (mant, min_exp) = match T::DTYPE {
        DType::F32 => (23, -126),
        DType::F64 | DType::I64 => (52, -1022),
    };
    let e = if r == 0.0 { min_exp } else { (r.abs().log2().floor() as i32).max(min_exp) };
    // Two factors: 2^-1074 itself is not reachable through one powi.
    2f64.powi(e) * 2f64.powi(-mant)
}

#[derive(Debug, Default)]
struct Errors {
    max_ulp: f64,
    max_rel: f64,
    max_abs: f64,
    max_scaled: f64,
    worst_x: f64,
}

/// Runs `func` on the inputs rounded to `T` and compares with `reference` at the rounded
/// inputs. Relative error is only collected where the reference is a normal number of `T`
/// above `rel_floor`; the scaled error is `|y − r| / max(1, |r|)`. Non-finite references must
/// be matched exactly.
fn measure<T: Element>(
    func: Func,
    xs: &[f64],
    reference: fn(f64) -> f64,
    portable: bool,
    rel_floor: f64,
) -> Errors {
    let x: Vec<T> = xs.iter().map(|&v| T::from_f64(v)).collect();
    let mut y = vec![T::ZERO; x.len()];
    apply(func, &x, &mut y, portable);
    let mut e = Errors::default();
    for (&xi, &yi) in x.iter().zip(&y) {
        let (xi, yi) = (xi.to_f64(), yi.to_f64());
        let r = reference(xi);
        let rt = T::from_f64(r).to_f64();
        if !rt.is_finite() {
            assert!(yi == rt || (yi.is_nan() && rt.is_nan()), "{func:?}({xi}) = {yi}, expected {rt}");
            continue;
        }
        let abs = (yi - r).abs();
        let u = abs / ulp::<T>(r);
        assert!(u.is_finite(), "{func:?}({xi}) = {yi}, expected {r}");
        if u > e.max_ulp {
            e.max_ulp = u;
            e.worst_x = xi;
        }
        e.max_abs = e.max_abs.max(abs);
        e.max_scaled = e.max_scaled.max(abs / r.abs().max(1.0));
        let min_normal = match T::DTYPE {
            DType::F32 => f32::MIN_POSITIVE as f64,
            DType::F64 | DType::I64 => f64::MIN_POSITIVE,
        };
        if r.abs() > rel_floor && r.abs() >= min_normal {
            e.max_rel = e.max_rel.max(abs / r.abs());
        }
    }
    e
}

/// Measures one function in f32 and f64 on both paths, prints the figures and checks bounds:
/// `(max ulp f32, max ulp f64)`, or for `scaled_bounds` the error scaled by `max(1, |r|)`.
#[allow(clippy::too_many_arguments)]
fn check(
    func: Func,
    draws32: &[Draw],
    draws64: &[Draw],
    reference: fn(f64) -> f64,
    ulp_bounds: (f64, f64),
    scaled_bounds: Option<(f64, f64)>,
    rel_floor: f64,
) {
    let (x32, x64) = (inputs(1, draws32), inputs(2, draws64));
    for portable in [false, true] {
        let path = if portable || !has_avx2_fma() { "portable" } else { "avx2" };
        let e32 = measure::<f32>(func, &x32, reference, portable, rel_floor);
        let e64 = measure::<f64>(func, &x64, reference, portable, rel_floor);
        match scaled_bounds {
            Some((a32, a64)) => {
                println!(
                    "{func:?} [{path}] max |err|/max(1,|y|): f32 {:.2e}, f64 {:.2e}",
                    e32.max_scaled, e64.max_scaled
                );
                assert!(e32.max_scaled <= a32, "{func:?} [{path}] f32 error {e32:?}");
                assert!(e64.max_scaled <= a64, "{func:?} [{path}] f64 error {e64:?}");
            }
            None => {
                println!(
                    "{func:?} [{path}] f32: max {:.2} ulp, rel {:.2e} (worst x {}) | \
                     f64: max {:.2} ulp, rel {:.2e} (worst x {})",
                    e32.max_ulp, e32.max_rel, e32.worst_x, e64.max_ulp, e64.max_rel, e64.worst_x
                );
                assert!(e32.max_ulp <= ulp_bounds.0, "{func:?} [{path}] f32 error {e32:?}");
                assert!(e64.max_ulp <= ulp_bounds.1, "{func:?} [{path}] f64 error {e64:?}");
            }
        }
    }
}

use Draw::{LogUniform, Uniform};

#[test]
fn accuracy_exp() {
    let d32 = [Uniform(-104.0, 89.0), Uniform(-1.0, 1.0)];
    let d64 = [Uniform(-745.0, 710.0), Uniform(-1.0, 1.0)];
    check(Func::Exp, &d32, &d64, f64::exp, (1.5, 1.5), None, 0.0);
}

#[test]
fn accuracy_exp_m1() {
    let tiny = LogUniform { min_exp: -40, max_exp: -1, negative: true };
    let d32 = [Uniform(-20.0, 89.0), Uniform(-1.0, 1.0), tiny];
    let d64 = [Uniform(-40.0, 710.0), Uniform(-1.0, 1.0), tiny];
    check(Func::ExpM1, &d32, &d64, f64::exp_m1, (3.0, 3.0), None, 0.0);
}

#[test]
fn accuracy_ln() {
    let d32 = [LogUniform { min_exp: -149, max_exp: 128, negative: false }, Uniform(0.5, 2.0)];
    let d64 = [LogUniform { min_exp: -1074, max_exp: 1024, negative: false }, Uniform(0.5, 2.0)];
    check(Func::Ln, &d32, &d64, f64::ln, (2.5, 2.5), None, 0.0);
}

#[test]
fn accuracy_ln_1p() {
    let small = LogUniform { min_exp: -60, max_exp: -1, negative: false };
    let d32 = [Uniform(-0.999, 10.0), small, Uniform(-1e-3, 1e-3)];
    let d64 = [Uniform(-0.999, 10.0), small, LogUniform { min_exp: 0, max_exp: 1000, negative: false }];
    check(Func::Ln1p, &d32, &d64, f64::ln_1p, (3.0, 3.0), None, 0.0);
}

#[test]
fn accuracy_tanh() {
    let tiny = LogUniform { min_exp: -60, max_exp: -1, negative: true };
    let d32 = [Uniform(-10.0, 10.0), Uniform(-1.0, 1.0), tiny];
    let d64 = [Uniform(-21.0, 21.0), Uniform(-1.0, 1.0), tiny];
    check(Func::Tanh, &d32, &d64, f64::tanh, (3.0, 5.0), None, 0.0);
}

#[test]
fn accuracy_sigmoid() {
    let d32 = [Uniform(-100.0, 30.0), Uniform(-10.0, 10.0)];
    let d64 = [Uniform(-740.0, 40.0), Uniform(-10.0, 10.0)];
    check(Func::Sigmoid, &d32, &d64, sigmoid_ref, (3.5, 3.5), None, 0.0);
}

#[test]
fn accuracy_softplus() {
    let d32 = [Uniform(-100.0, 100.0), Uniform(-5.0, 5.0)];
    let d64 = [Uniform(-700.0, 700.0), Uniform(-5.0, 5.0)];
    check(Func::Softplus, &d32, &d64, softplus_ref, (4.0, 4.0), None, 0.0);
}

#[test]
fn accuracy_erf() {
    let tiny = LogUniform { min_exp: -80, max_exp: -1, negative: true };
    let d = [Uniform(-6.5, 6.5), Uniform(-1.2, 1.2), tiny];
    // Absolute error everywhere (|erf| <= 1), and relative error near 0 below.
    check(Func::Erf, &d, &d, erf_ref, (0.0, 0.0), Some((2e-7, 5e-16)), 0.0);
    for portable in [false, true] {
        let x = inputs(3, &[Uniform(-1.0, 1.0), tiny]);
        let e = measure::<f64>(Func::Erf, &x, erf_ref, portable, 0.0);
        println!("Erf f64 on |x| < 1 (portable {portable}): max rel {:.2e}", e.max_rel);
        assert!(e.max_rel < 4e-16, "{e:?}");
        let e = measure::<f32>(Func::Erf, &x, erf_ref, portable, 0.0);
        println!("Erf f32 on |x| < 1 (portable {portable}): max rel {:.2e}", e.max_rel);
        assert!(e.max_rel < 2.5e-7, "{e:?}");
    }
}

#[test]
fn accuracy_gelu() {
    // For x << 0 the error is ½|x| times erf's absolute error (1 + erf cancels), as in the
    // usual 0.5·x·(1 + erf(x/√2)) formulation.
    let d = [Uniform(-10.0, 10.0), Uniform(-3.0, 3.0)];
    check(Func::Gelu, &d, &d, gelu_ref, (0.0, 0.0), Some((3e-7, 2e-15)), 0.0);
}

#[test]
fn accuracy_gelu_grad() {
    let d = [Uniform(-10.0, 10.0), Uniform(-3.0, 3.0), Uniform(-60.0, 60.0)];
    check(Func::GeluGrad, &d, &d, gelu_grad_ref, (0.0, 0.0), Some((3e-7, 2e-15)), 0.0);
}

#[test]
#[allow(clippy::excessive_precision)] // tabulated to 20 digits on purpose
fn reference_erf_agrees_with_known_values() {
    // erf(0.5), erf(1), erf(2), erf(3), erf(5): 20-digit tabulated values.
    let known = [
        (0.5, 0.520_499_877_813_046_537_7),
        (1.0, 0.842_700_792_949_714_869_3),
        (2.0, 0.995_322_265_018_952_734_2),
        (3.0, 0.999_977_909_503_001_414_6),
        (5.0, 0.999_999_999_998_462_540_2),
    ];
    for (x, v) in known {
        assert!((erf_ref(x) - v).abs() < 2e-16, "erf_ref({x}) = {}", erf_ref(x));
    }
}

fn run_both<T: Element>(func: Func, x: &[T]) -> [Vec<T>; 2] {
    [false, true].map(|portable| {
        let mut y = vec![T::ZERO; x.len()];
        apply(func, x, &mut y, portable);
        y
    })
}

#[test]
fn special_values() {
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    #[rustfmt::skip]
    let cases: &[(Func, f64, f64)] = &[
        (Func::Exp, inf, inf), (Func::Exp, -inf, 0.0), (Func::Exp, 0.0, 1.0),
        (Func::Exp, 1000.0, inf), (Func::Exp, -1000.0, 0.0), (Func::Exp, nan, nan),
        (Func::ExpM1, inf, inf), (Func::ExpM1, -inf, -1.0), (Func::ExpM1, 0.0, 0.0),
        (Func::ExpM1, 800.0, inf), (Func::ExpM1, nan, nan),
        (Func::Ln, 0.0, -inf), (Func::Ln, -0.0, -inf), (Func::Ln, -1.0, nan),
        (Func::Ln, inf, inf), (Func::Ln, -inf, nan), (Func::Ln, 1.0, 0.0), (Func::Ln, nan, nan),
        (Func::Ln1p, -1.0, -inf), (Func::Ln1p, -2.0, nan), (Func::Ln1p, inf, inf),
        (Func::Ln1p, 0.0, 0.0), (Func::Ln1p, nan, nan),
        (Func::Tanh, inf, 1.0), (Func::Tanh, -inf, -1.0), (Func::Tanh, 0.0, 0.0),
        (Func::Tanh, 1e4, 1.0), (Func::Tanh, nan, nan),
        (Func::Sigmoid, inf, 1.0), (Func::Sigmoid, -inf, 0.0), (Func::Sigmoid, 0.0, 0.5),
        (Func::Sigmoid, nan, nan),
        (Func::Erf, inf, 1.0), (Func::Erf, -inf, -1.0), (Func::Erf, 0.0, 0.0),
        (Func::Erf, 30.0, 1.0), (Func::Erf, nan, nan),
        (Func::Gelu, inf, inf), (Func::Gelu, 0.0, 0.0), (Func::Gelu, 50.0, 50.0),
        (Func::Gelu, nan, nan),
        (Func::GeluGrad, inf, 1.0), (Func::GeluGrad, -inf, 0.0), (Func::GeluGrad, 0.0, 0.5),
        (Func::GeluGrad, 50.0, 1.0), (Func::GeluGrad, nan, nan),
        (Func::Softplus, inf, inf), (Func::Softplus, -inf, 0.0), (Func::Softplus, 1e5, 1e5),
        (Func::Softplus, nan, nan),
    ];
    for &(func, x, want) in cases {
        let check = |got: f64, ty: &str| {
            let ok = got == want || (got.is_nan() && want.is_nan());
            assert!(ok, "{func:?}({x}) in {ty} = {got}, expected {want}");
        };
        for y in run_both::<f64>(func, &[x]) {
            check(y[0], "f64");
        }
        for y in run_both::<f32>(func, &[x as f32]) {
            check(y[0] as f64, "f32");
        }
    }
    // Signed zeros survive the odd functions.
    for func in [Func::Tanh, Func::Erf, Func::ExpM1, Func::Ln1p] {
        for y in run_both::<f64>(func, &[-0.0]) {
            assert!(y[0] == 0.0 && y[0].is_sign_negative(), "{func:?}(-0) = {}", y[0]);
        }
    }
    // Subnormal results: e^-740 = 4.2e-322 (f64) and e^-100 = 3.7e-44 (f32).
    assert!((run_both::<f64>(Func::Exp, &[-740.0])[0][0] - (-740f64).exp()).abs() <= 5e-324);
    assert!((run_both::<f32>(Func::Exp, &[-100.0])[0][0] - (-100f32).exp()).abs() <= 1.5e-45);
}

#[test]
fn result_does_not_depend_on_position_or_aliasing() {
    for func in [Func::Exp, Func::Ln, Func::Tanh, Func::Sigmoid, Func::Erf, Func::Gelu, Func::GeluGrad] {
        for len in [0, 1, 7, 17, 65, 129] {
            let x: Vec<f32> =
                crate::testing::random_vec::<f32>(len, 9).iter().map(|v| v * 3.0 + 1.5).collect();
            let mut whole = vec![0.0; len];
            apply(func, &x, &mut whole, false);
            for (i, &xi) in x.iter().enumerate() {
                let mut one = [0.0f32];
                apply(func, &[xi], &mut one, false);
                assert_eq!(one[0].to_bits(), whole[i].to_bits(), "{func:?} len {len} index {i}");
            }
            let mut inplace = x.clone();
            apply_inplace(func, &mut inplace);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&inplace), bits(&whole), "{func:?} in place, len {len}");
        }
    }
}

/// erf's tail takes `e^(−a²)` without `exp`'s clamps and split power of two: `exp`'s bits over
/// the whole range it is used on, `−ERF_SAT² ≤ x ≤ 0` (every 61st f32 there, 10⁶ random f64s;
/// every f32 there when checked once with a step of 1).
#[test]
fn the_erf_tails_exponential_has_exps_bits() {
    use super::kernels::{exp, exp_normal};
    use super::lanes::Params;
    let lo = -(<f32 as Params>::ERF_SAT * <f32 as Params>::ERF_SAT) as f32;
    let mut checked = 0;
    // from −0 down to lo: the negative floats' bit patterns rise with their magnitude
    for bits in ((-0.0f32).to_bits()..=lo.to_bits()).step_by(61) {
        let x = f32::from_bits(bits);
        assert_eq!(exp_normal(x).to_bits(), exp(x).to_bits(), "f32 {x:e}");
        checked += 1;
    }
    assert!(checked > 1_000_000, "{checked}");
    let sat = <f64 as Params>::ERF_SAT;
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    for _ in 0..1_000_000 {
        let x = -rng.gen_range(0.0..=sat * sat);
        assert_eq!(exp_normal(x).to_bits(), exp(x).to_bits(), "f64 {x:e}");
    }
}
