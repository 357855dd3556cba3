//! The x86-64 encodings the generated kernels use: 256-bit VEX instructions on `ymm0..15`,
//! 512-bit EVEX instructions on `zmm0..31` (with the opmask registers `k0..7`), and the few
//! general-purpose ones of the loop.
//!
//! Every VEX instruction is written with the three-byte prefix (valid for all register
//! numbers and opcode maps). Memory operands are `[base + index]`, `[base + disp32]` or a
//! constant of the pool after the code, addressed relative to the instruction pointer.

/// General-purpose register numbers (the hardware encoding).
pub(super) mod gpr {
    pub const RAX: u8 = 0;
    pub const RCX: u8 = 1;
    pub const RDX: u8 = 2;
    pub const RSP: u8 = 4;
    pub const RSI: u8 = 6;
    pub const RDI: u8 = 7;
    pub const R8: u8 = 8;
    pub const R9: u8 = 9;
    pub const R10: u8 = 10;
    pub const R11: u8 = 11;
}

/// A memory operand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Mem {
    /// `[base + index + disp]` (neither may be `rsp`; `base` not `rbp`/`r13`).
    Indexed { base: u8, index: u8, disp: i32 },
    /// `[base + disp]`.
    Disp { base: u8, disp: i32 },
    /// Entry `i` of the constant pool ([`POOL_ENTRY`] bytes each).
    Pool(usize),
}

/// The register-or-memory operand of an instruction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Rm {
    Reg(u8),
    Mem(Mem),
}

/// Opcode map of a VEX instruction.
#[derive(Clone, Copy)]
pub(super) enum Map {
    M0f = 1,
    M0f38 = 2,
    M0f3a = 3,
}

/// Implied legacy prefix: none for the `ps` forms, `66` for `pd` and most integer ones, `F3`
/// for the mask moves.
#[derive(Clone, Copy)]
pub(super) enum Pp {
    None = 0,
    P66 = 1,
    PF3 = 2,
}

/// Bytes of one constant of the pool: a whole 512-bit vector (a 256-bit read takes its
/// first half).
pub(super) const POOL_ENTRY: usize = 64;

/// The vector registers a loop body runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) enum Vector {
    /// 256 bits, `ymm0..15`, VEX-encoded (AVX2).
    #[default]
    Ymm,
    /// 512 bits, `zmm0..31`, EVEX-encoded (AVX-512F and DQ).
    Zmm,
}

impl Vector {
    /// Bytes per register.
    pub fn bytes(self) -> i32 {
        match self {
            Vector::Ymm => 32,
            Vector::Zmm => 64,
        }
    }

    /// Registers the encoding reaches.
    pub fn regs(self) -> usize {
        match self {
            Vector::Ymm => 16,
            Vector::Zmm => 32,
        }
    }
}

/// The opmask register the 512-bit compares and blends pass their lanes through.
pub(super) const K1: u8 = 1;

/// Machine code under construction, with the pool references still to patch.
#[derive(Default)]
pub(super) struct Asm {
    pub code: Vec<u8>,
    /// `(offset of a rel32 field, pool entry, offset of the instruction's end)`.
    fixups: Vec<(usize, usize, usize)>,
}

impl Asm {
    /// A VEX.256 instruction: `reg` is ModRM.reg (or an opcode extension), `vvvv` the extra
    /// source (0 when unused), `imm` a trailing immediate (or the is4 register byte).
    #[allow(clippy::too_many_arguments)]
    pub fn vex(&mut self, map: Map, pp: Pp, w: bool, op: u8, reg: u8, vvvv: u8, rm: Rm, imm: Option<u8>) {
        let (x, b) = match rm {
            Rm::Reg(r) => (0, r >> 3),
            Rm::Mem(Mem::Indexed { base, index, .. }) => (index >> 3, base >> 3),
            Rm::Mem(Mem::Disp { base, .. }) => (0, base >> 3),
            Rm::Mem(Mem::Pool(_)) => (0, 0),
        };
        let r = reg >> 3;
        self.code.push(0xC4);
        self.code.push(((r ^ 1) << 7) | ((x ^ 1) << 6) | ((b ^ 1) << 5) | map as u8);
        self.code.push(((w as u8) << 7) | ((!vvvv & 15) << 3) | (1 << 2) | pp as u8);
        self.code.push(op);
        self.modrm(reg, rm, imm.map_or(0, |_| 1), 1);
        if let Some(i) = imm {
            self.code.push(i);
        }
    }

    /// A full-vector instruction in `v`'s encoding, unmasked. `w` is EVEX's; the VEX forms used
    /// here ignore it, except the FMAs, which need the same, and the broadcasts, whose
    /// callers pass W0 for VEX.
    #[allow(clippy::too_many_arguments)]
    pub fn vector(
        &mut self,
        v: Vector,
        map: Map,
        pp: Pp,
        w: bool,
        op: u8,
        reg: u8,
        vvvv: u8,
        rm: Rm,
        imm: Option<u8>,
    ) {
        match v {
            Vector::Ymm => self.vex(map, pp, w, op, reg, vvvv, rm, imm),
            Vector::Zmm => self.evex(map, pp, w, op, reg, vvvv, rm, imm, 0, 64),
        }
    }

    /// An EVEX.512 instruction: as [`vex`](Self::vex), with registers up to 31, the opmask
    /// `mask` (0 for none; merging) and `disp8_scale`, the bytes a one-byte displacement
    /// counts in (the vector's for full-vector memory operands, the element's for a
    /// broadcast).
    #[allow(clippy::too_many_arguments)]
    pub fn evex(
        &mut self,
        map: Map,
        pp: Pp,
        w: bool,
        op: u8,
        reg: u8,
        vvvv: u8,
        rm: Rm,
        imm: Option<u8>,
        mask: u8,
        disp8_scale: i32,
    ) {
        // the register operand's bits 3 and 4 go to B and X; a memory operand's base and index
        // bit 3 to B and X
        let (x, b) = match rm {
            Rm::Reg(r) => ((r >> 4) & 1, (r >> 3) & 1),
            Rm::Mem(Mem::Indexed { base, index, .. }) => (index >> 3, base >> 3),
            Rm::Mem(Mem::Disp { base, .. }) => (0, base >> 3),
            Rm::Mem(Mem::Pool(_)) => (0, 0),
        };
        let (r, r2) = ((reg >> 3) & 1, (reg >> 4) & 1);
        self.code.push(0x62);
        self.code.push(((r ^ 1) << 7) | ((x ^ 1) << 6) | ((b ^ 1) << 5) | ((r2 ^ 1) << 4) | map as u8);
        self.code.push(((w as u8) << 7) | ((!vvvv & 15) << 3) | (1 << 2) | pp as u8);
        // L'L = 10: 512 bits
        self.code.push((0b10 << 5) | ((((vvvv >> 4) & 1) ^ 1) << 3) | (mask & 7));
        self.code.push(op);
        self.modrm(reg, rm, imm.map_or(0, |_| 1), disp8_scale);
        if let Some(i) = imm {
            self.code.push(i);
        }
    }

    /// ModRM (+ SIB, displacement); `trailing` immediate bytes follow (for RIP-relative ends);
    /// a one-byte displacement counts in units of `disp8_scale` bytes.
    fn modrm(&mut self, reg: u8, rm: Rm, trailing: usize, disp8_scale: i32) {
        let reg = (reg & 7) << 3;
        match rm {
            Rm::Reg(r) => self.code.push(0xC0 | reg | (r & 7)),
            Rm::Mem(Mem::Indexed { base, index, disp }) => {
                assert!(base & 7 != 5 && index != gpr::RSP, "internal invariant: unencodable [base + index]");
                let short =
                    if disp % disp8_scale == 0 { i8::try_from(disp / disp8_scale).ok() } else { None };
                let mode = match short {
                    Some(0) => 0x00,
                    Some(_) => 0x40,
                    None => 0x80,
                };
                self.code.push(mode | reg | 0b100);
                self.code.push(((index & 7) << 3) | (base & 7));
                match short {
                    Some(0) => {}
                    Some(d) => self.code.push(d as u8),
                    None => self.code.extend_from_slice(&disp.to_le_bytes()),
                }
            }
            Rm::Mem(Mem::Disp { base, disp }) => {
                self.code.push(0x80 | reg | (base & 7));
                if base & 7 == 4 {
                    self.code.push(0x24);
                }
                self.code.extend_from_slice(&disp.to_le_bytes());
            }
            Rm::Mem(Mem::Pool(i)) => {
                self.code.push(reg | 0b101);
                let at = self.code.len();
                self.code.extend_from_slice(&[0; 4]);
                self.fixups.push((at, i, at + 4 + trailing));
            }
        }
    }

    /// A REX.W instruction `op /reg` on a register or memory operand.
    fn rex_w(&mut self, op: &[u8], reg: u8, rm: Rm) {
        let b = match rm {
            Rm::Reg(r) => r >> 3,
            Rm::Mem(Mem::Disp { base, .. }) => base >> 3,
            Rm::Mem(_) => unreachable!("internal invariant: only [base + disp] general-purpose operands"),
        };
        self.code.push(0x48 | ((reg >> 3) << 2) | b);
        self.code.extend_from_slice(op);
        self.modrm(reg, rm, 0, 1);
    }

    /// `mov dst, [base + disp]`.
    pub fn load_gpr(&mut self, dst: u8, base: u8, disp: i32) {
        self.rex_w(&[0x8B], dst, Rm::Mem(Mem::Disp { base, disp }));
    }

    /// `add reg, imm` (`sub` with `sub = true`), 64-bit; returns the offset of the immediate.
    pub fn add_imm(&mut self, reg: u8, imm: i32, sub: bool) -> usize {
        self.rex_w(&[0x81], if sub { 5 } else { 0 }, Rm::Reg(reg));
        let at = self.code.len();
        self.code.extend_from_slice(&imm.to_le_bytes());
        at
    }

    /// `xor r32, r32` (clears the whole register).
    pub fn zero_gpr(&mut self, reg: u8) {
        assert!(reg < 8, "internal invariant: legacy register");
        self.code.extend_from_slice(&[0x31, 0xC0 | (reg << 3) | reg]);
    }

    /// `cmp a, b`, then a jump when `a < b` (signed) to `target` if given, else when
    /// `a >= b` to a place [`patch_jump`](Self::patch_jump) sets later; returns the offset of
    /// the rel32 to patch.
    pub fn jump_unless_less(&mut self, a: u8, b: u8, target: Option<usize>) -> usize {
        self.rex_w(&[0x39], b, Rm::Reg(a));
        // jl / jge rel32
        self.code.extend_from_slice(&[0x0F, if target.is_some() { 0x8C } else { 0x8D }]);
        let at = self.code.len();
        let rel = target.map_or(0, |t| t as i64 - (at as i64 + 4));
        self.code.extend_from_slice(&(rel as i32).to_le_bytes());
        at
    }

    /// Points the forward jump whose rel32 is at `at` to the current end of the code.
    pub fn patch_jump(&mut self, at: usize) {
        let rel = (self.code.len() - (at + 4)) as i32;
        self.code[at..at + 4].copy_from_slice(&rel.to_le_bytes());
    }

    /// `vzeroupper; ret`.
    pub fn ret(&mut self) {
        self.code.extend_from_slice(&[0xC5, 0xF8, 0x77, 0xC3]);
    }

    /// Appends the constant pool (aligned to its entries) and resolves the references to it.
    pub fn finish(mut self, pool: &[[u8; POOL_ENTRY]]) -> Vec<u8> {
        while !self.code.len().is_multiple_of(POOL_ENTRY) {
            self.code.push(0xCC);
        }
        let start = self.code.len();
        for entry in pool {
            self.code.extend_from_slice(entry);
        }
        for &(at, i, end) in &self.fixups {
            let rel = (start + POOL_ENTRY * i) as i64 - end as i64;
            self.code[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
        }
        self.code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodings checked against an assembler's output (GNU as, Intel syntax).
    #[test]
    fn encodings_match_an_assembler() {
        let enc = |f: &dyn Fn(&mut Asm)| {
            let mut a = Asm::default();
            f(&mut a);
            a.code
        };
        // vaddps ymm1, ymm2, ymm3
        assert_eq!(
            enc(&|a| a.vex(Map::M0f, Pp::None, false, 0x58, 1, 2, Rm::Reg(3), None)),
            [0xC4, 0xE1, 0x6C, 0x58, 0xCB]
        );
        // vmulpd ymm9, ymm10, ymm11
        assert_eq!(
            enc(&|a| a.vex(Map::M0f, Pp::P66, false, 0x59, 9, 10, Rm::Reg(11), None)),
            [0xC4, 0x41, 0x2D, 0x59, 0xCB]
        );
        // vmovups ymm0, [r8 + rcx]
        let m = Rm::Mem(Mem::Indexed { base: gpr::R8, index: gpr::RCX, disp: 0 });
        assert_eq!(
            enc(&|a| a.vex(Map::M0f, Pp::None, false, 0x10, 0, 0, m, None)),
            [0xC4, 0xC1, 0x7C, 0x10, 0x04, 0x08]
        );
        // vmovups [rax + rcx + 32], ymm1
        let m = Rm::Mem(Mem::Indexed { base: gpr::RAX, index: gpr::RCX, disp: 32 });
        assert_eq!(
            enc(&|a| a.vex(Map::M0f, Pp::None, false, 0x11, 1, 0, m, None)),
            [0xC4, 0xE1, 0x7C, 0x11, 0x4C, 0x08, 0x20]
        );
        // vmovups [rsp + 64], ymm12
        let m = Rm::Mem(Mem::Disp { base: gpr::RSP, disp: 64 });
        assert_eq!(
            enc(&|a| a.vex(Map::M0f, Pp::None, false, 0x11, 12, 0, m, None)),
            [0xC4, 0x61, 0x7C, 0x11, 0xA4, 0x24, 0x40, 0, 0, 0]
        );
        // vfmadd231ps ymm3, ymm4, ymm5
        assert_eq!(
            enc(&|a| a.vex(Map::M0f38, Pp::P66, false, 0xB8, 3, 4, Rm::Reg(5), None)),
            [0xC4, 0xE2, 0x5D, 0xB8, 0xDD]
        );
        // vblendvps ymm1, ymm2, ymm3, ymm4
        assert_eq!(
            enc(&|a| a.vex(Map::M0f3a, Pp::P66, false, 0x4A, 1, 2, Rm::Reg(3), Some(4 << 4))),
            [0xC4, 0xE3, 0x6D, 0x4A, 0xCB, 0x40]
        );
        // vpslld ymm1, ymm2, 23
        assert_eq!(
            enc(&|a| a.vex(Map::M0f, Pp::P66, false, 0x72, 6, 1, Rm::Reg(2), Some(23))),
            [0xC4, 0xE1, 0x75, 0x72, 0xF2, 0x17]
        );
        // EVEX.512: registers past 15, masks, compressed and full displacements
        let ev = |map, pp, w, op, reg, vvvv, rm, imm, mask| {
            enc(&|a: &mut Asm| a.evex(map, pp, w, op, reg, vvvv, rm, imm, mask, 64))
        };
        let idx = |base, disp| Rm::Mem(Mem::Indexed { base, index: gpr::RCX, disp });
        // vaddps zmm1, zmm2, zmm3
        assert_eq!(
            ev(Map::M0f, Pp::None, false, 0x58, 1, 2, Rm::Reg(3), None, 0),
            [0x62, 0xF1, 0x6C, 0x48, 0x58, 0xCB]
        );
        // vmulpd zmm17, zmm26, zmm11
        assert_eq!(
            ev(Map::M0f, Pp::P66, true, 0x59, 17, 26, Rm::Reg(11), None, 0),
            [0x62, 0xC1, 0xAD, 0x40, 0x59, 0xCB]
        );
        // vmovups zmm0, [r8 + rcx]
        assert_eq!(
            ev(Map::M0f, Pp::None, false, 0x10, 0, 0, idx(gpr::R8, 0), None, 0),
            [0x62, 0xD1, 0x7C, 0x48, 0x10, 0x04, 0x08]
        );
        // vmovups [rax + rcx + 64], zmm1: disp8 counts vectors
        assert_eq!(
            ev(Map::M0f, Pp::None, false, 0x11, 1, 0, idx(gpr::RAX, 64), None, 0),
            [0x62, 0xF1, 0x7C, 0x48, 0x11, 0x4C, 0x08, 0x01]
        );
        // vmovups [rax + rcx + 32], zmm1: not a whole vector, so disp32
        assert_eq!(
            ev(Map::M0f, Pp::None, false, 0x11, 1, 0, idx(gpr::RAX, 32), None, 0),
            [0x62, 0xF1, 0x7C, 0x48, 0x11, 0x8C, 0x08, 0x20, 0, 0, 0]
        );
        // {disp32} vmovups [rsp + 64], zmm28
        let m = Rm::Mem(Mem::Disp { base: gpr::RSP, disp: 64 });
        assert_eq!(
            ev(Map::M0f, Pp::None, false, 0x11, 28, 0, m, None, 0),
            [0x62, 0x61, 0x7C, 0x48, 0x11, 0xA4, 0x24, 0x40, 0, 0, 0]
        );
        // vfmadd231ps zmm3, zmm20, zmm5
        assert_eq!(
            ev(Map::M0f38, Pp::P66, false, 0xB8, 3, 20, Rm::Reg(5), None, 0),
            [0x62, 0xF2, 0x5D, 0x40, 0xB8, 0xDD]
        );
        // vfmadd231pd zmm3, zmm4, [r9 + rcx + 128]
        assert_eq!(
            ev(Map::M0f38, Pp::P66, true, 0xB8, 3, 4, idx(gpr::R9, 128), None, 0),
            [0x62, 0xD2, 0xDD, 0x48, 0xB8, 0x5C, 0x09, 0x02]
        );
        // vcmpps k1, zmm2, zmm19, 0x11 (lt_oq)
        assert_eq!(
            ev(Map::M0f, Pp::None, false, 0xC2, K1, 2, Rm::Reg(19), Some(0x11), 0),
            [0x62, 0xB1, 0x6C, 0x48, 0xC2, 0xCB, 0x11]
        );
        // vpmovm2d zmm18, k1
        assert_eq!(
            ev(Map::M0f38, Pp::PF3, false, 0x38, 18, 0, Rm::Reg(K1), None, 0),
            [0x62, 0xE2, 0x7E, 0x48, 0x38, 0xD1]
        );
        // vpmovq2m k1, zmm30
        assert_eq!(
            ev(Map::M0f38, Pp::PF3, true, 0x39, K1, 0, Rm::Reg(30), None, 0),
            [0x62, 0x92, 0xFE, 0x48, 0x39, 0xCE]
        );
        // vblendmps zmm1 {k1}, zmm2, zmm3
        assert_eq!(
            ev(Map::M0f38, Pp::P66, false, 0x65, 1, 2, Rm::Reg(3), None, K1),
            [0x62, 0xF2, 0x6D, 0x49, 0x65, 0xCB]
        );
        // vblendmpd zmm21 {k1}, zmm22, zmm23
        assert_eq!(
            ev(Map::M0f38, Pp::P66, true, 0x65, 21, 22, Rm::Reg(23), None, K1),
            [0x62, 0xA2, 0xCD, 0x41, 0x65, 0xEF]
        );
        // vpslld zmm24, zmm2, 23
        assert_eq!(
            ev(Map::M0f, Pp::P66, false, 0x72, 6, 24, Rm::Reg(2), Some(23), 0),
            [0x62, 0xF1, 0x3D, 0x40, 0x72, 0xF2, 0x17]
        );
        // vpsllq zmm1, zmm25, 52
        assert_eq!(
            ev(Map::M0f, Pp::P66, true, 0x73, 6, 1, Rm::Reg(25), Some(52), 0),
            [0x62, 0x91, 0xF5, 0x48, 0x73, 0xF1, 0x34]
        );
        // vrndscalepd zmm1, zmm2, 8
        assert_eq!(
            ev(Map::M0f3a, Pp::P66, true, 0x09, 1, 0, Rm::Reg(2), Some(8), 0),
            [0x62, 0xF3, 0xFD, 0x48, 0x09, 0xCA, 0x08]
        );
        // {disp32} vbroadcastsd zmm1, [rdx + 0]
        let m = Rm::Mem(Mem::Disp { base: gpr::RDX, disp: 0 });
        assert_eq!(
            ev(Map::M0f38, Pp::P66, true, 0x19, 1, 0, m, None, 0),
            [0x62, 0xF2, 0xFD, 0x48, 0x19, 0x8A, 0, 0, 0, 0]
        );
        // vpaddd zmm1, zmm2, zmm16
        assert_eq!(
            ev(Map::M0f, Pp::P66, false, 0xFE, 1, 2, Rm::Reg(16), None, 0),
            [0x62, 0xB1, 0x6D, 0x48, 0xFE, 0xC8]
        );
        // vcvtps2dq zmm1, zmm31
        assert_eq!(
            ev(Map::M0f, Pp::P66, false, 0x5B, 1, 0, Rm::Reg(31), None, 0),
            [0x62, 0x91, 0x7D, 0x48, 0x5B, 0xCF]
        );
        // mov r10, [rdi + 16]
        assert_eq!(enc(&|a| a.load_gpr(gpr::R10, gpr::RDI, 16)), [0x4C, 0x8B, 0x97, 0x10, 0, 0, 0]);
        // add rcx, 32
        assert_eq!(
            enc(&|a| {
                a.add_imm(gpr::RCX, 32, false);
            }),
            [0x48, 0x81, 0xC1, 0x20, 0, 0, 0]
        );
        // sub rsp, 256
        assert_eq!(
            enc(&|a| {
                a.add_imm(gpr::RSP, 256, true);
            }),
            [0x48, 0x81, 0xEC, 0, 1, 0, 0]
        );
        // cmp rcx, rsi; jl (to offset 0)
        assert_eq!(
            enc(&|a| {
                a.jump_unless_less(gpr::RCX, gpr::RSI, Some(0));
            }),
            [0x48, 0x39, 0xF1, 0x0F, 0x8C, 0xF7, 0xFF, 0xFF, 0xFF]
        );
        // sub rsi, 96
        assert_eq!(
            enc(&|a| {
                a.add_imm(gpr::RSI, 96, true);
            }),
            [0x48, 0x81, 0xEE, 0x60, 0, 0, 0]
        );
    }
}
