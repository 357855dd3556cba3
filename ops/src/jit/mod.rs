//! Generated elementwise kernels: a straight-line program of vector operations compiled to
//! x86-64 AVX2 machine code that keeps every intermediate in a register.
//!
//! A [`Builder`] records a program over values of one element type: loads from and stores to
//! *bases* (pointers the caller passes per call), broadcast scalars, constants, and the ops of
//! [`unary`](crate::unary) and [`binary`](crate::binary) with the same values bit for bit
//! (the same IEEE operations in the same order; `tanh` is the math module's kernel, emitted
//! inline). [`Builder::compile`] allocates the sixteen `ymm` registers (spilling to the stack
//! the value used furthest ahead when they run out) and returns a [`Kernel`], which runs the
//! program over `len` elements, one register's worth of lanes per iteration.
//!
//! A block interpreter pays a store and a reload per op and element; here a chain of ops
//! reads each input once and writes each output once. Only x86-64 Linux with AVX2 and FMA
//! generates code; elsewhere [`Builder::new`] returns `None` and callers keep their
//! portable path.

mod exec;
mod x86;

use crate::binary::BinaryOp;
use crate::math::lanes::Params;
use crate::unary::UnaryOp;
use crate::DType;
use x86::{gpr, Asm, Map, Mem, Pp, Rm};

/// A value of the program under construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Val(usize);

/// A vector operation: x86 semantics (they differ from the ops' for NaN and signed zeros in
/// `min`/`max`, which is why [`Builder::binary`] builds the ops' maximum out of compares).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// The lanes at `base + i`.
    Load(usize),
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
    /// Stores the value at `base + i` (no result).
    Store(Val, usize),
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

/// Compare predicates (`vcmpps` imm8).
const EQ_OQ: u8 = 0x00;
const UNORD_Q: u8 = 0x03;
const NEQ_UQ: u8 = 0x04;
const LT_OQ: u8 = 0x11;
const LE_OQ: u8 = 0x12;
const GE_OQ: u8 = 0x1D;
const GT_OQ: u8 = 0x1E;

/// Records a program; see the module docs.
#[derive(Clone, Debug)]
pub struct Builder {
    f64: bool,
    ops: Vec<Op>,
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
        exec::supported().then_some(Builder { f64, ops: Vec::new() })
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
        self.ops.push(op);
        Val(self.ops.len() - 1)
    }

    /// The elements at `base[i]` (base `base` of the call).
    pub fn load(&mut self, base: usize) -> Val {
        self.push(Op::Load(base))
    }

    /// The one element at `*base`, in every lane.
    pub fn broadcast(&mut self, base: usize) -> Val {
        self.push(Op::Broadcast(base))
    }

    /// `c`, rounded to the element type.
    pub fn constant(&mut self, c: f64) -> Val {
        let bits = if self.f64 { c.to_bits() } else { (c as f32).to_bits() as u64 };
        self.push(Op::Const(bits))
    }

    /// A constant given as the element's bits (integer lanes of the exponent tricks).
    fn bits(&mut self, bits: u64) -> Val {
        self.push(Op::Const(bits))
    }

    /// Stores `v` at `base[i]`.
    pub fn store(&mut self, v: Val, base: usize) {
        self.push(Op::Store(v, base));
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
            UnaryOp::Abs => {
                let sign = self.constant(-0.0);
                self.bin(ANDN, sign, x)
            }
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
            _ => return None,
        })
    }

    /// True when [`unary`](Self::unary) generates `op`.
    pub fn generates_unary(op: UnaryOp) -> bool {
        Builder { f64: false, ops: Vec::new() }.unary(op, Val(0)).is_some()
    }

    /// True when [`binary`](Self::binary) generates `op`.
    pub fn generates_binary(op: BinaryOp) -> bool {
        Builder { f64: false, ops: Vec::new() }.binary(op, Val(0), Val(0)).is_some()
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

    /// The math module's `tanh` (`sign(x)·em/(em + 2)`, `em = expm1(2|x|)`), op for op.
    fn tanh(&mut self, x: Val) -> Val {
        let (sat, q, ln2_hi, ln2_lo) = if self.f64 {
            (f64::TANH_SAT, f64::EXPM1_Q, f64::LN2_HI, f64::LN2_LO)
        } else {
            (f32::TANH_SAT, f32::EXPM1_Q, f32::LN2_HI, f32::LN2_LO)
        };
        let sign = self.constant(-0.0);
        let abs = self.bin(ANDN, sign, x);
        let sat = self.constant(sat);
        let a = self.bin(MIN, abs, sat);
        let a2 = self.bin(ADD, a, a);
        // reduce_exp: a2 = k·ln2 + r, em = expm1(r) = r + r²·q(r)
        let log2e = self.constant(std::f64::consts::LOG2_E);
        let scaled = self.bin(MUL, a2, log2e);
        let k = self.push(Op::Round(scaled));
        let hi = self.constant(-ln2_hi);
        let r = self.fma(k, hi, a2);
        let lo = self.constant(-ln2_lo);
        let r = self.fma(k, lo, r);
        let mut acc = self.constant(q[q.len() - 1]);
        for &c in q[..q.len() - 1].iter().rev() {
            let c = self.constant(c);
            acc = self.fma(acc, r, c);
        }
        let rr = self.bin(MUL, r, r);
        let em = self.fma(rr, acc, r);
        // 2^k, built in the exponent field
        let s = if self.f64 {
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
        };
        let one = self.constant(1.0);
        let s1 = self.bin(SUB, s, one);
        let em = self.fma(em, s, s1);
        let two = self.constant(2.0);
        let d = self.bin(ADD, em, two);
        let t = self.bin(DIV, em, d);
        // copysign(t, x), then NaN passes through
        let mag = self.bin(ANDN, sign, t);
        let sx = self.bin(AND, sign, x);
        let t = self.bin(OR, mag, sx);
        let nan = self.cmp(UNORD_Q, x, x);
        self.push(Op::Blend(nan, x, t))
    }

    /// How many bases the program names (one past the largest).
    fn bases(&self) -> usize {
        self.ops
            .iter()
            .filter_map(|op| match *op {
                Op::Load(b) | Op::Broadcast(b) | Op::Store(_, b) => Some(b + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Generates the machine code.
    pub fn compile(self) -> Kernel {
        let code = Emitter::new(&self).run();
        Kernel { code: exec::Code::new(&code), bases: self.bases(), lanes: self.lanes(), ops: self.ops.len() }
    }
}

/// A generated kernel (see the module docs).
pub struct Kernel {
    code: exec::Code,
    bases: usize,
    lanes: usize,
    ops: usize,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "jit::Kernel({} ops, {} bases, {} bytes)", self.ops, self.bases, self.code.len())
    }
}

impl Kernel {
    /// Elements per iteration.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Runs the program for elements `0..len`.
    ///
    /// # Safety
    /// `len` is a positive multiple of [`lanes`](Self::lanes); `bases` holds at least every
    /// base the program names; a loaded base is readable and a stored one writable for `len`
    /// elements, a broadcast one readable for one; stores do not overlap any base read by a
    /// later iteration.
    pub unsafe fn run(&self, bases: &[*const u8], len: usize) {
        assert!(
            bases.len() >= self.bases && len > 0 && len.is_multiple_of(self.lanes),
            "internal invariant: jit call"
        );
        // SAFETY: the code was generated for this ABI (`bases`, byte count) and reads and
        // writes only what the caller's contract covers.
        unsafe { self.code.call(bases.as_ptr(), len * 32 / self.lanes) }
    }
}

/// Bases cached in registers for the whole call; the others are loaded into `r11` per use.
const BASE_REGS: [u8; 5] = [gpr::RAX, gpr::RDX, gpr::R8, gpr::R9, gpr::R10];

/// Register allocation and code emission for one program.
///
/// Values live in `ymm` registers from their definition to their last use. When all sixteen
/// hold live values, the one used furthest ahead leaves: loads and constants are simply read
/// again later, others are stored to a stack slot.
struct Emitter<'a> {
    b: &'a Builder,
    asm: Asm,
    /// Register holding each value.
    reg: Vec<Option<u8>>,
    /// Value in each register.
    holds: [Option<usize>; 16],
    /// Stack slot of each spilled value.
    slot: Vec<Option<usize>>,
    free_slots: Vec<usize>,
    slots: usize,
    /// Positions reading each value, ascending.
    uses: Vec<Vec<usize>>,
    pool: Vec<[u8; 32]>,
    pool_index: Vec<Option<usize>>,
    pos: usize,
}

impl<'a> Emitter<'a> {
    fn new(b: &'a Builder) -> Self {
        let n = b.ops.len();
        let mut uses = vec![Vec::new(); n];
        for (i, op) in b.ops.iter().enumerate() {
            for v in operands(op) {
                uses[v.0].push(i);
            }
        }
        Emitter {
            b,
            asm: Asm::default(),
            reg: vec![None; n],
            holds: [None; 16],
            slot: vec![None; n],
            free_slots: Vec::new(),
            slots: 0,
            uses,
            pool: Vec::new(),
            pool_index: vec![None; n],
            pos: 0,
        }
    }

    fn pp(&self) -> Pp {
        if self.b.f64 {
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

    /// Memory operand of base `b`'s lanes at the loop offset (or its scalar, `broadcast`).
    fn base_mem(&mut self, b: usize, broadcast: bool) -> Mem {
        let base = match BASE_REGS.get(b) {
            Some(&r) => r,
            None => {
                self.asm.load_gpr(gpr::R11, gpr::RDI, 8 * b as i32);
                gpr::R11
            }
        };
        if broadcast {
            Mem::Disp { base, disp: 0 }
        } else {
            Mem::Indexed { base, index: gpr::RCX }
        }
    }

    fn pool_entry(&mut self, v: usize, bits: u64) -> Mem {
        let i = *self.pool_index[v].get_or_insert_with(|| {
            let mut entry = [0u8; 32];
            let width = if self.b.f64 { 8 } else { 4 };
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
        match self.b.ops[v] {
            Op::Load(b) => Some(self.base_mem(b, false)),
            Op::Const(bits) => Some(self.pool_entry(v, bits)),
            _ => self.slot[v].map(|s| Mem::Disp { base: gpr::RSP, disp: 32 * s as i32 }),
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

    /// A free register, evicting the value used furthest ahead (not one in `keep`).
    fn alloc(&mut self, keep: &[Val]) -> u8 {
        if let Some(r) = (0..16).find(|&r| self.holds[r].is_none()) {
            return r as u8;
        }
        let victim = (0..16)
            .filter(|&r| !keep.iter().any(|k| self.holds[r] == Some(k.0)))
            .max_by_key(|&r| self.next_use(self.holds[r].unwrap()))
            .expect("internal invariant: at most three operands are kept");
        let v = self.holds[victim].unwrap();
        let remat = matches!(self.b.ops[v], Op::Load(_) | Op::Const(_));
        if !remat && self.slot[v].is_none() {
            let s = self.free_slots.pop().unwrap_or_else(|| {
                self.slots += 1;
                self.slots - 1
            });
            self.slot[v] = Some(s);
            let mem = Rm::Mem(Mem::Disp { base: gpr::RSP, disp: 32 * s as i32 });
            self.asm.vex(Map::M0f, Pp::None, false, 0x11, victim as u8, 0, mem, None);
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
        self.asm.vex(Map::M0f, Pp::None, false, 0x10, r, 0, src, None);
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
    fn define(&mut self, v: usize, srcs: &[Val], emit: impl FnOnce(&mut Asm, u8, &[u8], Rm)) {
        let (last, regs) = srcs.split_last().expect("internal invariant: an op has operands");
        let regs: Vec<u8> = regs.iter().map(|&s| self.in_reg(s, srcs)).collect();
        let rm = self.rm(*last);
        self.release_regs(srcs);
        let dst = self.alloc(srcs);
        emit(&mut self.asm, dst, &regs, rm);
        self.release_slots(srcs);
        self.bind(v, dst);
    }

    fn run(mut self) -> Vec<u8> {
        for (i, &b) in BASE_REGS.iter().enumerate().take(self.b.bases()) {
            self.asm.load_gpr(b, gpr::RDI, 8 * i as i32);
        }
        let frame = self.asm.add_imm(gpr::RSP, 0, true);
        self.asm.zero_gpr(gpr::RCX);
        let top = self.asm.code.len();
        let (pp, f64) = (self.pp(), self.b.f64);
        for i in 0..self.b.ops.len() {
            self.pos = i;
            let op = self.b.ops[i];
            match op {
                // Loads and constants are read where they are used (as memory operands or
                // into a register on demand), so they cost nothing here.
                Op::Load(_) | Op::Const(_) => {}
                Op::Broadcast(b) => {
                    let mem = Rm::Mem(self.base_mem(b, true));
                    let dst = self.alloc(&[]);
                    self.asm.vex(
                        Map::M0f38,
                        Pp::P66,
                        false,
                        if f64 { 0x19 } else { 0x18 },
                        dst,
                        0,
                        mem,
                        None,
                    );
                    self.bind(i, dst);
                }
                Op::Bin(code, a, b) => self
                    .define(i, &[a, b], |asm, d, r, m| asm.vex(Map::M0f, pp, false, code, d, r[0], m, None)),
                Op::Cmp(pred, a, b) => self.define(i, &[a, b], |asm, d, r, m| {
                    asm.vex(Map::M0f, pp, false, 0xC2, d, r[0], m, Some(pred))
                }),
                Op::Sqrt(a) => {
                    self.define(i, &[a], |asm, d, _, m| asm.vex(Map::M0f, pp, false, 0x51, d, 0, m, None))
                }
                Op::Round(a) => self.define(i, &[a], |asm, d, _, m| {
                    asm.vex(Map::M0f3a, Pp::P66, false, if f64 { 0x09 } else { 0x08 }, d, 0, m, Some(8))
                }),
                Op::ToInt(a) => self
                    .define(i, &[a], |asm, d, _, m| asm.vex(Map::M0f, Pp::P66, false, 0x5B, d, 0, m, None)),
                Op::IntAdd(a, b) => self.define(i, &[a, b], |asm, d, r, m| {
                    asm.vex(Map::M0f, Pp::P66, false, if f64 { 0xD4 } else { 0xFE }, d, r[0], m, None)
                }),
                Op::Shl(a, n) => self.define(i, &[a], |asm, d, _, m| {
                    asm.vex(Map::M0f, Pp::P66, false, if f64 { 0x73 } else { 0x72 }, 6, d, m, Some(n))
                }),
                Op::Blend(mask, a, b) => {
                    // vblendv dst, b, a, mask: a where the mask is set
                    self.define(i, &[mask, b, a], |asm, d, r, m| {
                        asm.vex(
                            Map::M0f3a,
                            Pp::P66,
                            false,
                            if f64 { 0x4B } else { 0x4A },
                            d,
                            r[1],
                            m,
                            Some(r[0] << 4),
                        )
                    })
                }
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
                            self.asm.vex(Map::M0f, Pp::None, false, 0x10, r, 0, src, None);
                            r
                        }
                    };
                    // read last: a base past the cached ones goes through r11
                    let rb = self.rm(b);
                    self.asm.vex(Map::M0f38, Pp::P66, f64, 0xB8, acc, ra, rb, None);
                    self.release_regs(&[a, b, c]);
                    self.release_slots(&[a, b, c]);
                    self.bind(i, acc);
                }
                Op::Store(v, b) => {
                    let r = self.in_reg(v, &[v]);
                    let mem = Rm::Mem(self.base_mem(b, false));
                    self.asm.vex(Map::M0f, Pp::None, false, 0x11, r, 0, mem, None);
                    self.release_regs(&[v]);
                    self.release_slots(&[v]);
                }
            }
            if self.uses[i].is_empty() {
                self.release_regs(&[Val(i)]);
            }
        }
        self.asm.add_imm(gpr::RCX, 32, false);
        self.asm.loop_while_below(gpr::RCX, gpr::RSI, top);
        let frame_bytes = 32 * self.slots as i32;
        self.asm.code[frame..frame + 4].copy_from_slice(&frame_bytes.to_le_bytes());
        self.asm.add_imm(gpr::RSP, frame_bytes, false);
        self.asm.ret();
        let pool = std::mem::take(&mut self.pool);
        self.asm.finish(&pool)
    }
}

/// The values an op reads.
fn operands(op: &Op) -> Vec<Val> {
    match *op {
        Op::Load(_) | Op::Broadcast(_) | Op::Const(_) => vec![],
        Op::Sqrt(a) | Op::Round(a) | Op::ToInt(a) | Op::Shl(a, _) | Op::Store(a, _) => vec![a],
        Op::Bin(_, a, b) | Op::Cmp(_, a, b) | Op::IntAdd(a, b) => vec![a, b],
        Op::Fma(a, b, c) | Op::Blend(a, b, c) => vec![a, b, c],
    }
}

#[cfg(test)]
mod tests;
