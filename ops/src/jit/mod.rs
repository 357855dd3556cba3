//! Generated elementwise kernels: a straight-line program of vector operations compiled to
//! x86-64 machine code (AVX-512 where the CPU has it, else AVX2) that keeps every
//! intermediate in a register.
//!
//! A [`Builder`] records a program over values of one element type: loads from and stores to
//! *bases* (pointers the caller passes per call), broadcast scalars, constants, and the ops of
//! [`unary`](crate::unary) and [`binary`](crate::binary) with the same values bit for bit
//! (the same IEEE operations in the same order; `exp`, `sigmoid`, `tanh`, `erf` and the GELUs
//! are the math module's kernels, emitted inline). [`Builder::compile`] allocates the vector
//! registers (spilling to the stack the value used furthest ahead when they run out) and
//! returns a [`Kernel`], which runs the program over `len` elements: four vectors per
//! iteration, interleaved op by op, then single vectors. Values are numbered as they are
//! recorded: an op asked for twice on the same values is computed once (a GELU and its
//! derivative of one input share their `erf`).
//!
//! With AVX-512F and DQ the loops run on the 32 `zmm` registers (compares and blends pass
//! their lanes through an opmask register), and a last 256-bit vector takes a length that is
//! an odd number of `ymm` vectors, so a kernel's length granularity is the same on both.
//! Each instruction does twice the work of its AVX2 form, which pays even where the 512-bit
//! operations are split in two inside the core (W6's kernel on two Zen 4 cores: 3.2 -> 2.4 ms):
//! a transcendental's long dependency chains fill the out-of-order window with half as
//! many instructions, and 32 registers hold four interleaved chains without spilling.
//!
//! A block interpreter pays a store and a reload per op and element; here a chain of ops
//! reads each input once and writes each output once. Only x86-64 Linux with AVX2 and FMA
//! generates code; elsewhere [`Builder::new`] returns `None` (and [`Builder::compile`] where
//! the system refuses executable memory), and callers keep their portable path.

mod exec;
mod x86;

use crate::binary::BinaryOp;
use crate::math::lanes::Params;
use crate::unary::UnaryOp;
use crate::DType;
use x86::{gpr, Asm, Map, Mem, Pp, Rm, Vector, K1, POOL_ENTRY};

/// A value of the program under construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Val(usize);

/// A vector operation: x86 semantics (they differ from the ops' for NaN and signed zeros in
/// `min`/`max`, which is why [`Builder::binary`] builds the ops' maximum out of compares).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    /// The lanes at `base + i`, the `n`th vector of the iteration.
    Load(usize, u8),
    /// The scalar at `base`, in every lane.
    Broadcast(usize),
    /// A constant, as the element's bits.
    Const(u64),
    /// Two-operand float or bitwise op (opcode in map 0F).
    Bin(u8, Val, Val),
    /// Compare with an `imm8` predicate: all-ones lanes where it holds.
    Cmp(u8, Val, Val),
    Sqrt(Val),
    /// Round to nearest, ties to even.
    Round(Val),
    /// f32 lanes to i32 (`cvtps2dq`).
    ToInt(Val),
    /// Integer add (32-bit lanes for f32, 64-bit for f64).
    IntAdd(Val, Val),
    /// Shift each lane left by a constant (32- or 64-bit lanes).
    Shl(Val, u8),
    /// `a·b + c` with one rounding.
    Fma(Val, Val, Val),
    /// `mask ? a : b` (mask: the sign bit of each lane).
    Blend(Val, Val, Val),
    /// Stores the value at `base + i`, the `n`th vector of the iteration (no result).
    Store(Val, usize, u8),
}

const ADD: u8 = 0x58;
const MUL: u8 = 0x59;
const SUB: u8 = 0x5C;
const DIV: u8 = 0x5E;
const AND: u8 = 0x54;
const ANDN: u8 = 0x55;
const OR: u8 = 0x56;
const XOR: u8 = 0x57;
const MIN: u8 = 0x5D;
const MAX: u8 = 0x5F;

/// Compare predicates (`vcmpps` imm8).
const EQ_OQ: u8 = 0x00;
const UNORD_Q: u8 = 0x03;
const NEQ_UQ: u8 = 0x04;
const LT_OQ: u8 = 0x11;
const LE_OQ: u8 = 0x12;
const GE_OQ: u8 = 0x1D;
const GT_OQ: u8 = 0x1E;

/// The math kernels' constants ([`Params`]) of one element type.
#[derive(Clone, Copy)]
struct Consts {
    exp_lo: f64,
    exp_hi: f64,
    tanh_sat: f64,
    expm1_q: &'static [f64],
    ln2_hi: f64,
    ln2_lo: f64,
    erf_small: &'static [f64],
    erf_tail: &'static [f64],
    erf_sat: f64,
}

impl Consts {
    fn of<P: Params>() -> Consts {
        Consts {
            exp_lo: P::EXP_LO,
            exp_hi: P::EXP_HI,
            tanh_sat: P::TANH_SAT,
            expm1_q: P::EXPM1_Q,
            ln2_hi: P::LN2_HI,
            ln2_lo: P::LN2_LO,
            erf_small: P::ERF_SMALL,
            erf_tail: P::ERF_TAIL,
            erf_sat: P::ERF_SAT,
        }
    }
}

/// Records a program; see the module docs.
#[derive(Clone, Debug)]
pub struct Builder {
    f64: bool,
    ops: Vec<Op>,
    /// Every value recorded, by its op: an op asked for twice is computed once (a GELU and
    /// its derivative in one kernel share their `erf`, every use of a constant one register).
    numbered: std::collections::HashMap<Op, Val>,
}

impl Builder {
    /// A builder for `dtype` (f32 or f64), or `None` where no code can be generated (not
    /// x86-64 Linux, no AVX2 + FMA, or an integer type).
    pub fn new(dtype: DType) -> Option<Builder> {
        let f64 = match dtype {
            DType::F32 => false,
            DType::F64 => true,
            DType::I64 => return None,
        };
        exec::supported().then_some(Builder::empty(f64))
    }

    /// A builder with no program yet, whether or not this CPU can run it.
    fn empty(f64: bool) -> Builder {
        Builder { f64, ops: Vec::new(), numbered: std::collections::HashMap::new() }
    }

    /// Elements per iteration (per register): 8 for f32, 4 for f64.
    pub fn lanes(&self) -> usize {
        if self.f64 {
            4
        } else {
            8
        }
    }

    fn push(&mut self, op: Op) -> Val {
        if let Some(&v) = self.numbered.get(&op) {
            return v;
        }
        self.ops.push(op);
        let v = Val(self.ops.len() - 1);
        // A store has no value; every other op is pure within an iteration.
        if !matches!(op, Op::Store(..)) {
            self.numbered.insert(op, v);
        }
        v
    }

    /// The elements at `base[i]` (base `base` of the call).
    pub fn load(&mut self, base: usize) -> Val {
        self.push(Op::Load(base, 0))
    }

    /// The one element at `*base`, in every lane.
    pub fn broadcast(&mut self, base: usize) -> Val {
        self.push(Op::Broadcast(base))
    }

    /// `c`, rounded to the element type.
    pub fn constant(&mut self, c: f64) -> Val {
        let bits = if self.f64 { c.to_bits() } else { (c as f32).to_bits() as u64 };
        self.bits(bits)
    }

    /// A constant given as the element's bits (integer lanes of the exponent tricks).
    fn bits(&mut self, bits: u64) -> Val {
        self.push(Op::Const(bits))
    }

    /// Stores `v` at `base[i]`.
    pub fn store(&mut self, v: Val, base: usize) {
        self.push(Op::Store(v, base, 0));
    }

    fn bin(&mut self, op: u8, a: Val, b: Val) -> Val {
        self.push(Op::Bin(op, a, b))
    }

    fn cmp(&mut self, pred: u8, a: Val, b: Val) -> Val {
        self.push(Op::Cmp(pred, a, b))
    }

    fn fma(&mut self, a: Val, b: Val, c: Val) -> Val {
        self.push(Op::Fma(a, b, c))
    }

    /// `cond != 0 ? a : b`, as `Instr::Where` and the ops' `where`.
    pub fn select(&mut self, cond: Val, a: Val, b: Val) -> Val {
        let zero = self.constant(0.0);
        let mask = self.cmp(NEQ_UQ, cond, zero);
        self.push(Op::Blend(mask, a, b))
    }

    /// 1 where the mask holds, 0 elsewhere.
    fn truth(&mut self, mask: Val) -> Val {
        let one = self.constant(1.0);
        self.bin(AND, mask, one)
    }

    /// `op(x)` with the values of [`unary`](crate::unary::unary), or `None` for an op this
    /// module does not generate.
    pub fn unary(&mut self, op: UnaryOp, x: Val) -> Option<Val> {
        let one = |b: &mut Builder| b.constant(1.0);
        Some(match op {
            UnaryOp::Neg => {
                let sign = self.constant(-0.0);
                self.bin(XOR, x, sign)
            }
            UnaryOp::Abs => self.abs(x),
            UnaryOp::Sqrt => self.push(Op::Sqrt(x)),
            UnaryOp::Recip => {
                let one = one(self);
                self.bin(DIV, one, x)
            }
            UnaryOp::Square => self.bin(MUL, x, x),
            UnaryOp::Relu => {
                // `x < 0 ? 0 : x`: keeps −0 and NaN as they are
                let zero = self.constant(0.0);
                let neg = self.cmp(LT_OQ, x, zero);
                self.bin(ANDN, neg, x)
            }
            UnaryOp::SigmoidGrad => {
                let one = one(self);
                let d = self.bin(SUB, one, x);
                self.bin(MUL, x, d)
            }
            UnaryOp::TanhGrad => {
                let one = one(self);
                let sq = self.bin(MUL, x, x);
                self.bin(SUB, one, sq)
            }
            UnaryOp::AddScalar(c) => {
                let c = self.constant(c);
                self.bin(ADD, x, c)
            }
            UnaryOp::MulScalar(c) => {
                let c = self.constant(c);
                self.bin(MUL, x, c)
            }
            UnaryOp::Tanh => self.tanh(x),
            UnaryOp::Exp => self.exp(x),
            UnaryOp::Sigmoid => self.sigmoid(x),
            UnaryOp::Erf => self.erf(x),
            UnaryOp::Gelu => self.gelu(x),
            UnaryOp::GeluGrad => self.gelu_grad(x),
            _ => return None,
        })
    }

    /// True when [`unary`](Self::unary) generates `op`.
    pub fn generates_unary(op: UnaryOp) -> bool {
        Builder::empty(false).unary(op, Val(0)).is_some()
    }

    /// True when [`binary`](Self::binary) generates `op`.
    pub fn generates_binary(op: BinaryOp) -> bool {
        Builder::empty(false).binary(op, Val(0), Val(0)).is_some()
    }

    /// `op(a, b)` with the values of [`binary`](crate::binary::binary), or `None` for an op
    /// this module does not generate.
    pub fn binary(&mut self, op: BinaryOp, a: Val, b: Val) -> Option<Val> {
        Some(match op {
            BinaryOp::Add => self.bin(ADD, a, b),
            BinaryOp::Sub => self.bin(SUB, a, b),
            BinaryOp::Mul => self.bin(MUL, a, b),
            BinaryOp::Div => self.bin(DIV, a, b),
            BinaryOp::Maximum | BinaryOp::Minimum => {
                // `a > b || a is NaN ? a : b` (`<` for the minimum): NaN from either side,
                // and b on ties, as the ops define it
                let pred = if op == BinaryOp::Maximum { GT_OQ } else { LT_OQ };
                let wins = self.cmp(pred, a, b);
                let nan = self.cmp(UNORD_Q, a, a);
                let mask = self.bin(OR, wins, nan);
                self.push(Op::Blend(mask, a, b))
            }
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let pred = match op {
                    BinaryOp::Eq => EQ_OQ,
                    BinaryOp::Ne => NEQ_UQ,
                    BinaryOp::Lt => LT_OQ,
                    BinaryOp::Le => LE_OQ,
                    BinaryOp::Gt => GT_OQ,
                    _ => GE_OQ,
                };
                let mask = self.cmp(pred, a, b);
                self.truth(mask)
            }
            BinaryOp::Pow => return None,
        })
    }

    /// The math kernels' constants for this element type.
    fn params(&self) -> Consts {
        if self.f64 {
            Consts::of::<f64>()
        } else {
            Consts::of::<f32>()
        }
    }

    /// `|x|`.
    fn abs(&mut self, x: Val) -> Val {
        let sign = self.constant(-0.0);
        self.bin(ANDN, sign, x)
    }

    /// `|mag|` with the sign of `sign_of` (the math module's `copysign`).
    fn copysign(&mut self, mag: Val, sign_of: Val) -> Val {
        let sign = self.constant(-0.0);
        let m = self.bin(ANDN, sign, mag);
        let s = self.bin(AND, sign, sign_of);
        self.bin(OR, m, s)
    }

    /// `0 − x` (not `−x`: the kernels write it so, and it differs at `x = 0`).
    fn zero_minus(&mut self, x: Val) -> Val {
        let zero = self.constant(0.0);
        self.bin(SUB, zero, x)
    }

    /// `x.max(lo).min(hi)`.
    fn clamp(&mut self, x: Val, lo: f64, hi: f64) -> Val {
        let lo = self.constant(lo);
        let hi = self.constant(hi);
        let x = self.bin(MAX, x, lo);
        self.bin(MIN, x, hi)
    }

    /// `1 + erf(x/√2)`: twice the normal cdf, as the GELUs write it.
    fn one_plus_erf_scaled(&mut self, x: Val) -> Val {
        let c = self.constant(std::f64::consts::FRAC_1_SQRT_2);
        let xs = self.bin(MUL, x, c);
        let e = self.erf(xs);
        let one = self.constant(1.0);
        self.bin(ADD, one, e)
    }

    /// The math module's `reduce_exp`: `x = k·ln2 + r`, returns `(k, expm1(r))`.
    fn reduce_exp(&mut self, x: Val) -> (Val, Val) {
        let Consts { expm1_q: q, ln2_hi, ln2_lo, .. } = self.params();
        let log2e = self.constant(std::f64::consts::LOG2_E);
        let scaled = self.bin(MUL, x, log2e);
        let k = self.push(Op::Round(scaled));
        let hi = self.constant(-ln2_hi);
        let r = self.fma(k, hi, x);
        let lo = self.constant(-ln2_lo);
        let r = self.fma(k, lo, r);
        let acc = self.poly(r, q);
        let rr = self.bin(MUL, r, r);
        (k, self.fma(rr, acc, r))
    }

    /// `2^k` for integral `k` in the exponent range, built in the exponent field.
    fn pow2i(&mut self, k: Val) -> Val {
        if self.f64 {
            let magic = self.constant(6755399441055744.0);
            let t = self.bin(ADD, k, magic);
            let bias = self.bits(1023);
            let e = self.push(Op::IntAdd(t, bias));
            self.push(Op::Shl(e, 52))
        } else {
            let ki = self.push(Op::ToInt(k));
            let bias = self.bits(127);
            let e = self.push(Op::IntAdd(ki, bias));
            self.push(Op::Shl(e, 23))
        }
    }

    /// `mask ? x : y` where `x` is NaN, else `y`.
    fn nan_passes(&mut self, x: Val, y: Val) -> Val {
        let nan = self.cmp(UNORD_Q, x, x);
        self.push(Op::Blend(nan, x, y))
    }

    /// The math module's `exp`: `2^k·(1 + expm1(r))`, `2^k` as two factors.
    fn exp(&mut self, x: Val) -> Val {
        let Consts { exp_lo, exp_hi, .. } = self.params();
        let xc = self.clamp(x, exp_lo, exp_hi);
        let (k, em) = self.reduce_exp(xc);
        let half = self.constant(0.5);
        let kh = self.bin(MUL, k, half);
        let k1 = self.push(Op::Round(kh));
        let s1 = self.pow2i(k1);
        let k2 = self.bin(SUB, k, k1);
        let s2 = self.pow2i(k2);
        let one = self.constant(1.0);
        let y = self.bin(ADD, em, one);
        let y = self.bin(MUL, y, s1);
        let y = self.bin(MUL, y, s2);
        self.nan_passes(x, y)
    }

    /// The math module's `exp_normal`: `2^k·(1 + expm1(r))` for a normal result.
    fn exp_normal(&mut self, x: Val) -> Val {
        let (k, em) = self.reduce_exp(x);
        let s = self.pow2i(k);
        let one = self.constant(1.0);
        let y = self.bin(ADD, em, one);
        self.bin(MUL, y, s)
    }

    /// The math module's `sigmoid`: `e/(1 + e)` with `e = e^−|x|` for `x < 0`, else `1/(1 + e)`.
    fn sigmoid(&mut self, x: Val) -> Val {
        let abs = self.abs(x);
        let neg_abs = self.zero_minus(abs);
        let e = self.exp(neg_abs);
        let one = self.constant(1.0);
        let d = self.bin(ADD, one, e);
        let s = self.bin(DIV, one, d);
        let zero = self.constant(0.0);
        let neg = self.cmp(LT_OQ, x, zero);
        let es = self.bin(MUL, e, s);
        self.push(Op::Blend(neg, es, s))
    }

    /// Horner's scheme as the math module's `poly`: coefficients from degree 0.
    fn poly(&mut self, x: Val, c: &[f64]) -> Val {
        let mut acc = self.constant(c[c.len() - 1]);
        for &ci in c[..c.len() - 1].iter().rev() {
            let ci = self.constant(ci);
            acc = self.fma(acc, x, ci);
        }
        acc
    }

    /// The math module's `erf`, both branches always evaluated (it skips the tail when no
    /// lane needs it; the lanes' values are the same either way).
    fn erf(&mut self, x: Val) -> Val {
        let Consts { erf_small, erf_tail, erf_sat, .. } = self.params();
        let a = self.abs(x);
        let one = self.constant(1.0);
        let z = self.bin(MUL, x, x);
        let p = self.poly(z, erf_small);
        let c = self.constant(std::f64::consts::FRAC_2_SQRT_PI);
        let inner = self.fma(z, p, c);
        let small = self.bin(MUL, x, inner);
        let is_small = self.cmp(LT_OQ, a, one);
        let sat = self.constant(erf_sat);
        let at = self.bin(MIN, a, sat);
        let t = self.bin(SUB, at, one);
        let g = self.poly(t, erf_tail);
        let sq = self.bin(MUL, at, at);
        let neg = self.zero_minus(sq);
        let e = self.exp_normal(neg);
        let eg = self.bin(MUL, e, g);
        let tail = self.bin(SUB, one, eg);
        let tail = self.copysign(tail, x);
        let y = self.push(Op::Blend(is_small, small, tail));
        self.nan_passes(x, y)
    }

    /// The math module's `gelu`: `½x·(1 + erf(x/√2))`.
    fn gelu(&mut self, x: Val) -> Val {
        let ope = self.one_plus_erf_scaled(x);
        let half = self.constant(0.5);
        let hx = self.bin(MUL, x, half);
        self.bin(MUL, hx, ope)
    }

    /// The math module's `gelu_grad`: `Φ(x) + x·φ(x)`, `x` clamped to ±40 in the second term.
    fn gelu_grad(&mut self, x: Val) -> Val {
        let ope = self.one_plus_erf_scaled(x);
        let half = self.constant(0.5);
        let cdf = self.bin(MUL, half, ope);
        let xc = self.clamp(x, -40.0, 40.0);
        let sq = self.bin(MUL, xc, xc);
        let hs = self.bin(MUL, half, sq);
        let neg = self.zero_minus(hs);
        let e = self.exp(neg);
        let k = self.constant(crate::math::kernels::FRAC_1_SQRT_2PI);
        let pdf = self.bin(MUL, e, k);
        let y = self.fma(xc, pdf, cdf);
        self.nan_passes(x, y)
    }

    /// The math module's `tanh` (`sign(x)·em/(em + 2)`, `em = expm1(2|x|)`), op for op.
    fn tanh(&mut self, x: Val) -> Val {
        let abs = self.abs(x);
        let sat = self.constant(self.params().tanh_sat);
        let a = self.bin(MIN, abs, sat);
        let a2 = self.bin(ADD, a, a);
        let (k, em) = self.reduce_exp(a2);
        let s = self.pow2i(k);
        let one = self.constant(1.0);
        let s1 = self.bin(SUB, s, one);
        let em = self.fma(em, s, s1);
        let two = self.constant(2.0);
        let d = self.bin(ADD, em, two);
        let t = self.bin(DIV, em, d);
        let t = self.copysign(t, x);
        self.nan_passes(x, t)
    }

    /// How many bases the program names (one past the largest).
    fn bases(&self) -> usize {
        self.ops
            .iter()
            .filter_map(|op| match *op {
                Op::Load(b, _) | Op::Broadcast(b) | Op::Store(_, b, _) => Some(b + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Generates the machine code for the widest vectors this CPU has, or `None` when the
    /// system refuses executable memory.
    pub fn compile(self) -> Option<Kernel> {
        let widest = if exec::supports_zmm() { Vector::Zmm } else { Vector::Ymm };
        self.compile_for(widest)
    }

    /// [`compile`](Self::compile) with vectors up to `widest`.
    fn compile_for(self, widest: Vector) -> Option<Kernel> {
        let bases = self.bases();
        let code = Emitter::new(self.f64, bases, widest).run(&self.ops);
        let lanes = self.lanes();
        Some(Kernel {
            code: exec::Code::new(&code)?,
            bases,
            lanes,
            elem_bytes: 32 / lanes,
            ops: self.ops.len(),
            widest,
        })
    }
}

/// Vectors per iteration of the main loop. A long chain of dependent ops (a tanh is ~25
/// deep) fills the scheduler with instructions waiting on one another; independent chains
/// interleaved op by op give it more work that is ready. Four measured best against one, two
/// and eight (W6's kernel and an LSTM cell's; eight again on `zmm`); a second loop takes the
/// last vectors one by one.
const WAYS: usize = 4;

/// The program for `ways` consecutive vectors, op by op: each op once per vector, adjacent
/// (constants once).
fn interleave(ops: &[Op], ways: usize) -> Vec<Op> {
    let mut out = Vec::with_capacity(ops.len() * ways);
    // maps[w][i]: op i of the program in vector w's copy
    let mut maps: Vec<Vec<Val>> = vec![Vec::with_capacity(ops.len()); ways];
    for op in ops {
        if let Op::Const(_) = op {
            out.push(*op);
            maps.iter_mut().for_each(|m| m.push(Val(out.len() - 1)));
            continue;
        }
        for (w, map) in maps.iter_mut().enumerate() {
            let m = |v: Val| map[v.0];
            let n = w as u8;
            let copy = match *op {
                Op::Load(b, _) => Op::Load(b, n),
                Op::Store(v, b, _) => Op::Store(m(v), b, n),
                Op::Broadcast(b) => Op::Broadcast(b),
                Op::Const(_) => unreachable!("handled above"),
                Op::Bin(c, a, b) => Op::Bin(c, m(a), m(b)),
                Op::Cmp(c, a, b) => Op::Cmp(c, m(a), m(b)),
                Op::Sqrt(a) => Op::Sqrt(m(a)),
                Op::Round(a) => Op::Round(m(a)),
                Op::ToInt(a) => Op::ToInt(m(a)),
                Op::IntAdd(a, b) => Op::IntAdd(m(a), m(b)),
                Op::Shl(a, k) => Op::Shl(m(a), k),
                Op::Fma(a, b, c) => Op::Fma(m(a), m(b), m(c)),
                Op::Blend(k, a, b) => Op::Blend(m(k), m(a), m(b)),
            };
            out.push(copy);
            map.push(Val(out.len() - 1));
        }
    }
    out
}

/// A generated kernel (see the module docs).
pub struct Kernel {
    code: exec::Code,
    bases: usize,
    lanes: usize,
    elem_bytes: usize,
    ops: usize,
    widest: Vector,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "jit::Kernel({} ops, {} bases, {:?}, {} bytes)",
            self.ops,
            self.bases,
            self.widest,
            self.code.len()
        )
    }
}

impl Kernel {
    /// Elements per iteration: the call's length is a multiple of it.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Runs the program for elements `0..len`.
    ///
    /// # Safety
    /// `len` is a positive multiple of [`lanes`](Self::lanes); `bases` holds at least every
    /// base the program names; a loaded base is readable and a stored one writable for `len`
    /// elements, a broadcast one readable for one. A stored base may be a loaded one (every
    /// element is read before it is stored, whatever the order of the program's loads and
    /// stores); otherwise stored bases overlap no base.
    pub unsafe fn run(&self, bases: &[*const u8], len: usize) {
        assert!(
            bases.len() >= self.bases && len > 0 && len.is_multiple_of(self.lanes),
            "internal invariant: jit call"
        );
        // SAFETY: the code was generated for this ABI (`bases`, byte count) and reads and
        // writes only what the caller's contract covers.
        unsafe { self.code.call(bases.as_ptr(), len * self.elem_bytes) }
    }
}

/// Bases cached in registers for the whole call; the others are loaded into `r11` per use.
const BASE_REGS: [u8; 5] = [gpr::RAX, gpr::RDX, gpr::R8, gpr::R9, gpr::R10];

/// Register allocation and code emission for one program.
///
/// Values live in `ymm` registers from their definition to their last use. When all sixteen
/// hold live values, the one used furthest ahead leaves: loads and constants are simply read
/// again later, others are stored to a stack slot.
#[derive(Default)]
struct Emitter {
    f64: bool,
    bases: usize,
    /// The main loops' vectors (the last vector of a call may be narrower).
    widest: Vector,
    asm: Asm,
    pool: Vec<[u8; POOL_ENTRY]>,
    /// Stack slots the frame holds (the most any loop body needs).
    frame_slots: usize,
    // the loop body being emitted:
    vector: Vector,
    ops: Vec<Op>,
    /// Register holding each value.
    reg: Vec<Option<u8>>,
    /// Value in each register.
    holds: [Option<usize>; 32],
    /// Stack slot of each spilled value.
    slot: Vec<Option<usize>>,
    free_slots: Vec<usize>,
    slots: usize,
    /// Positions reading each value, ascending.
    uses: Vec<Vec<usize>>,
    pool_index: Vec<Option<usize>>,
    pos: usize,
    /// Set from the iteration's first store on: loads are no longer read again where used
    /// (a store may have overwritten what they read), they spill like computed values.
    stored: bool,
}

impl Emitter {
    fn new(f64: bool, bases: usize, widest: Vector) -> Self {
        Emitter { f64, bases, widest, ..Emitter::default() }
    }

    /// Starts a loop body on `vector` registers: `ops` with no value in any register yet.
    fn start_body(&mut self, ops: Vec<Op>, vector: Vector) {
        self.vector = vector;
        let n = ops.len();
        let mut uses = vec![Vec::new(); n];
        for (i, op) in ops.iter().enumerate() {
            for v in operands(op) {
                uses[v.0].push(i);
            }
        }
        self.ops = ops;
        self.reg = vec![None; n];
        self.holds = [None; 32];
        self.slot = vec![None; n];
        self.free_slots.clear();
        self.slots = 0;
        self.uses = uses;
        self.pool_index = vec![None; n];
        self.pos = 0;
        self.stored = false;
    }

    fn pp(&self) -> Pp {
        if self.f64 {
            Pp::P66
        } else {
            Pp::None
        }
    }

    fn next_use(&self, v: usize) -> usize {
        self.uses[v].iter().copied().find(|&u| u >= self.pos).unwrap_or(usize::MAX)
    }

    fn dead_after_here(&self, v: usize) -> bool {
        self.uses[v].iter().all(|&u| u <= self.pos)
    }

    /// Memory operand of base `b`'s `n`th vector at the loop offset (its scalar for `None`).
    fn base_mem(&mut self, b: usize, vector: Option<u8>) -> Mem {
        let base = match BASE_REGS.get(b) {
            Some(&r) => r,
            None => {
                self.asm.load_gpr(gpr::R11, gpr::RDI, 8 * b as i32);
                gpr::R11
            }
        };
        match vector {
            None => Mem::Disp { base, disp: 0 },
            Some(n) => Mem::Indexed { base, index: gpr::RCX, disp: self.vector.bytes() * n as i32 },
        }
    }

    fn pool_entry(&mut self, v: usize, bits: u64) -> Mem {
        let i = *self.pool_index[v].get_or_insert_with(|| {
            let mut entry = [0u8; POOL_ENTRY];
            let width = if self.f64 { 8 } else { 4 };
            for lane in entry.chunks_exact_mut(width) {
                lane.copy_from_slice(&bits.to_le_bytes()[..width]);
            }
            match self.pool.iter().position(|e| *e == entry) {
                Some(i) => i,
                None => {
                    self.pool.push(entry);
                    self.pool.len() - 1
                }
            }
        });
        Mem::Pool(i)
    }

    /// Where `v` can be read without a register: a load, a constant or a spilled value.
    fn as_mem(&mut self, v: usize) -> Option<Mem> {
        let spilled = self.slot[v].map(slot_mem);
        match self.ops[v] {
            // (once stores begin, every load still needed is in a register or spilled)
            Op::Load(b, n) => spilled.or_else(|| Some(self.base_mem(b, Some(n)))),
            Op::Const(bits) => Some(self.pool_entry(v, bits)),
            _ => spilled,
        }
    }

    /// `v` as the last (register-or-memory) operand of an instruction.
    fn rm(&mut self, v: Val) -> Rm {
        match self.reg[v.0] {
            Some(r) => Rm::Reg(r),
            None => {
                Rm::Mem(self.as_mem(v.0).expect("internal invariant: a value is in a register or memory"))
            }
        }
    }

    /// A full-vector instruction of the body's width (`w`: see [`Asm::vector`]).
    #[allow(clippy::too_many_arguments)]
    fn vector_op(&mut self, map: Map, pp: Pp, w: bool, op: u8, reg: u8, vvvv: u8, rm: Rm, imm: Option<u8>) {
        self.asm.vector(self.vector, map, pp, w, op, reg, vvvv, rm, imm);
    }

    /// A free register, evicting the value used furthest ahead (not one in `keep`).
    fn alloc(&mut self, keep: &[Val]) -> u8 {
        let regs = self.vector.regs();
        if let Some(r) = (0..regs).find(|&r| self.holds[r].is_none()) {
            return r as u8;
        }
        let victim = (0..regs)
            .filter(|&r| !keep.iter().any(|k| self.holds[r] == Some(k.0)))
            .max_by_key(|&r| self.next_use(self.holds[r].unwrap()))
            .expect("internal invariant: at most three operands are kept");
        let v = self.holds[victim].unwrap();
        let remat = match self.ops[v] {
            Op::Const(_) => true,
            Op::Load(..) => !self.stored,
            _ => false,
        };
        if !remat && self.slot[v].is_none() {
            let s = self.free_slots.pop().unwrap_or_else(|| {
                self.slots += 1;
                self.slots - 1
            });
            self.slot[v] = Some(s);
            self.vector_op(Map::M0f, Pp::None, false, 0x11, victim as u8, 0, Rm::Mem(slot_mem(s)), None);
        }
        self.reg[v] = None;
        self.holds[victim] = None;
        victim as u8
    }

    fn bind(&mut self, v: usize, r: u8) {
        self.reg[v] = Some(r);
        self.holds[r as usize] = Some(v);
    }

    /// `v` in a register, loading it if need be (not evicting `keep`).
    fn in_reg(&mut self, v: Val, keep: &[Val]) -> u8 {
        if let Some(r) = self.reg[v.0] {
            return r;
        }
        let r = self.alloc(keep);
        let src = self.rm(v);
        self.vector_op(Map::M0f, Pp::None, false, 0x10, r, 0, src, None);
        self.bind(v.0, r);
        r
    }

    /// Frees the registers of operands read for the last time here (the instruction may
    /// still write its result into one of them).
    fn release_regs(&mut self, vals: &[Val]) {
        for v in vals {
            if self.dead_after_here(v.0) {
                if let Some(r) = self.reg[v.0].take() {
                    self.holds[r as usize] = None;
                }
            }
        }
    }

    /// Frees the stack slots of operands read for the last time here: only once the
    /// instruction is emitted, since it may read one of them.
    fn release_slots(&mut self, vals: &[Val]) {
        for v in vals {
            if self.dead_after_here(v.0) {
                if let Some(s) = self.slot[v.0].take() {
                    self.free_slots.push(s);
                }
            }
        }
    }

    /// Emits one instruction defining value `v`: sources in registers except the last,
    /// which may be memory, then the destination (which may reuse a source that dies here).
    fn define(&mut self, v: usize, srcs: &[Val], emit: impl FnOnce(&mut Asm, Vector, u8, &[u8], Rm)) {
        let (last, regs) = srcs.split_last().expect("internal invariant: an op has operands");
        let regs: Vec<u8> = regs.iter().map(|&s| self.in_reg(s, srcs)).collect();
        let rm = self.rm(*last);
        self.release_regs(srcs);
        let dst = self.alloc(srcs);
        emit(&mut self.asm, self.vector, dst, &regs, rm);
        self.release_slots(srcs);
        self.bind(v, dst);
    }

    /// The function: a main loop over `WAYS` vectors per iteration while that many remain,
    /// then one over single vectors (`rsi` holds the byte count, `rcx` the offset). With
    /// 512-bit main loops, a last 256-bit vector takes the half-register a length of an odd
    /// number of 256-bit vectors leaves.
    fn run(mut self, program: &[Op]) -> Vec<u8> {
        for (i, &b) in BASE_REGS.iter().enumerate().take(self.bases) {
            self.asm.load_gpr(b, gpr::RDI, 8 * i as i32);
        }
        let frame = self.asm.add_imm(gpr::RSP, 0, true);
        self.asm.zero_gpr(gpr::RCX);
        let loops: &[(usize, Vector)] = match self.widest {
            Vector::Ymm => &[(WAYS, Vector::Ymm), (1, Vector::Ymm)],
            Vector::Zmm => &[(WAYS, Vector::Zmm), (1, Vector::Zmm), (1, Vector::Ymm)],
        };
        for &(ways, vector) in loops {
            // iterate while rcx + ways vectors <= rsi, i.e. (both being multiples of 32 bytes)
            // rcx < rsi − (ways vectors − 32) (signed: the difference may be negative)
            let step = vector.bytes() * ways as i32;
            let short = step - 32;
            self.asm.add_imm(gpr::RSI, short, true);
            let skip = self.asm.jump_unless_less(gpr::RCX, gpr::RSI, None);
            let top = self.asm.code.len();
            self.start_body(interleave(program, ways), vector);
            self.body();
            self.asm.add_imm(gpr::RCX, step, false);
            self.asm.jump_unless_less(gpr::RCX, gpr::RSI, Some(top));
            self.asm.patch_jump(skip);
            self.asm.add_imm(gpr::RSI, short, false);
            self.frame_slots = self.frame_slots.max(self.slots);
        }
        let frame_bytes = SLOT_BYTES * self.frame_slots as i32;
        self.asm.code[frame..frame + 4].copy_from_slice(&frame_bytes.to_le_bytes());
        self.asm.add_imm(gpr::RSP, frame_bytes, false);
        self.asm.ret();
        let pool = std::mem::take(&mut self.pool);
        self.asm.finish(&pool)
    }

    /// Emits the current loop body.
    fn body(&mut self) {
        let (pp, f64) = (self.pp(), self.f64);
        for i in 0..self.ops.len() {
            self.pos = i;
            let op = self.ops[i];
            match op {
                // Loads and constants are read where they are used (as memory operands or
                // into a register on demand), so they cost nothing here.
                Op::Load(..) | Op::Const(_) => {}
                Op::Broadcast(b) => {
                    let mem = Rm::Mem(self.base_mem(b, None));
                    let dst = self.alloc(&[]);
                    // vbroadcastsd is W0 in VEX, W1 in EVEX
                    let w = f64 && self.vector == Vector::Zmm;
                    self.vector_op(Map::M0f38, Pp::P66, w, if f64 { 0x19 } else { 0x18 }, dst, 0, mem, None);
                    self.bind(i, dst);
                }
                Op::Bin(code, a, b) => self.define(i, &[a, b], |asm, v, d, r, m| {
                    asm.vector(v, Map::M0f, pp, f64, code, d, r[0], m, None)
                }),
                Op::Cmp(pred, a, b) => self.define(i, &[a, b], |asm, v, d, r, m| match v {
                    Vector::Ymm => asm.vex(Map::M0f, pp, f64, 0xC2, d, r[0], m, Some(pred)),
                    Vector::Zmm => {
                        // vcmp k1, a, b; vpmovm2d/q d, k1 (all-ones lanes where k1 is set)
                        asm.evex(Map::M0f, pp, f64, 0xC2, K1, r[0], m, Some(pred), 0, 64);
                        asm.evex(Map::M0f38, Pp::PF3, f64, 0x38, d, 0, Rm::Reg(K1), None, 0, 64);
                    }
                }),
                Op::Sqrt(a) => self
                    .define(i, &[a], |asm, v, d, _, m| asm.vector(v, Map::M0f, pp, f64, 0x51, d, 0, m, None)),
                // vroundps / vrndscaleps with imm 8: to nearest, ties to even, no precision trap
                Op::Round(a) => self.define(i, &[a], |asm, v, d, _, m| {
                    asm.vector(v, Map::M0f3a, Pp::P66, f64, if f64 { 0x09 } else { 0x08 }, d, 0, m, Some(8))
                }),
                Op::ToInt(a) => self.define(i, &[a], |asm, v, d, _, m| {
                    asm.vector(v, Map::M0f, Pp::P66, false, 0x5B, d, 0, m, None)
                }),
                Op::IntAdd(a, b) => self.define(i, &[a, b], |asm, v, d, r, m| {
                    asm.vector(v, Map::M0f, Pp::P66, f64, if f64 { 0xD4 } else { 0xFE }, d, r[0], m, None)
                }),
                Op::Shl(a, n) => self.define(i, &[a], |asm, v, d, _, m| {
                    asm.vector(v, Map::M0f, Pp::P66, f64, if f64 { 0x73 } else { 0x72 }, 6, d, m, Some(n))
                }),
                Op::Blend(mask, a, b) => self.define(i, &[mask, b, a], |asm, v, d, r, m| match v {
                    // vblendv d, b, a, mask: a where the mask's sign is set
                    Vector::Ymm => asm.vex(
                        Map::M0f3a,
                        Pp::P66,
                        false,
                        if f64 { 0x4B } else { 0x4A },
                        d,
                        r[1],
                        m,
                        Some(r[0] << 4),
                    ),
                    Vector::Zmm => {
                        // vpmovd2m/q2m k1, mask (the sign bits); vblendmps/pd d {k1}, b, a
                        asm.evex(Map::M0f38, Pp::PF3, f64, 0x39, K1, 0, Rm::Reg(r[0]), None, 0, 64);
                        asm.evex(Map::M0f38, Pp::P66, f64, 0x65, d, r[1], m, None, K1, 64);
                    }
                }),
                Op::Fma(a, b, c) => {
                    // vfmadd231 acc, a, b: acc = a·b + acc, with acc starting as c
                    let ra = self.in_reg(a, &[a, b, c]);
                    let acc = match self.reg[c.0] {
                        Some(r) if self.dead_after_here(c.0) && a != c && b != c => {
                            self.reg[c.0] = None;
                            self.holds[r as usize] = None;
                            r
                        }
                        _ => {
                            let r = self.alloc(&[a, b, c]);
                            let src = self.rm(c);
                            self.vector_op(Map::M0f, Pp::None, false, 0x10, r, 0, src, None);
                            r
                        }
                    };
                    // read last: a base past the cached ones goes through r11
                    let rb = self.rm(b);
                    self.vector_op(Map::M0f38, Pp::P66, f64, 0xB8, acc, ra, rb, None);
                    self.release_regs(&[a, b, c]);
                    self.release_slots(&[a, b, c]);
                    self.bind(i, acc);
                }
                Op::Store(v, b, n) => {
                    if !self.stored {
                        // every read of the iteration happens before its first store
                        self.stored = true;
                        let pending: Vec<usize> = (0..i)
                            .filter(|&u| {
                                matches!(self.ops[u], Op::Load(..)) && !self.dead_after_here(u) && u != v.0
                            })
                            .collect();
                        for u in pending {
                            self.in_reg(Val(u), &[Val(u), v]);
                        }
                    }
                    let r = self.in_reg(v, &[v]);
                    let mem = Rm::Mem(self.base_mem(b, Some(n)));
                    self.vector_op(Map::M0f, Pp::None, false, 0x11, r, 0, mem, None);
                    self.release_regs(&[v]);
                    self.release_slots(&[v]);
                }
            }
            if self.uses[i].is_empty() {
                self.release_regs(&[Val(i)]);
            }
        }
    }
}

/// Bytes of a stack slot: one register of any width.
const SLOT_BYTES: i32 = 64;

/// Stack slot `s` of the frame.
fn slot_mem(s: usize) -> Mem {
    Mem::Disp { base: gpr::RSP, disp: SLOT_BYTES * s as i32 }
}

/// The values an op reads.
fn operands(op: &Op) -> Vec<Val> {
    match *op {
        Op::Load(..) | Op::Broadcast(_) | Op::Const(_) => vec![],
        Op::Sqrt(a) | Op::Round(a) | Op::ToInt(a) | Op::Shl(a, _) | Op::Store(a, ..) => vec![a],
        Op::Bin(_, a, b) | Op::Cmp(_, a, b) | Op::IntAdd(a, b) => vec![a, b],
        Op::Fma(a, b, c) | Op::Blend(a, b, c) => vec![a, b, c],
    }
}

#[cfg(test)]
mod tests;
