//! Where a compiled step's time goes: each kernel of a program timed over several calls.

use std::fmt;
use std::time::Duration;

/// The time of each step of a program, averaged over `calls` calls (from
/// [`Program::profile`](super::Program::profile)); `Display` prints the kernels from the
/// slowest, with their share of the call.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Calls timed.
    pub calls: usize,
    /// Mean time of a whole call (kernels, and moving inputs, outputs and updates).
    pub per_call: Duration,
    /// One row per kernel, in program order.
    pub kernels: Vec<KernelTime>,
}

/// One kernel of a [`Profile`].
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// Position in the program's order.
    pub index: usize,
    /// What it runs: an op's name (`matmul`), `fused[mul, tanh, add, sum]`, or
    /// `matmul+epilogue(Relu)`.
    pub kernel: String,
    /// Operand and result shapes: `[128, 784], [784, 512] -> [128, 512]`.
    pub shapes: String,
    /// Mean time per call.
    pub mean: Duration,
}

impl Profile {
    /// The time per call outside the kernels: copying outputs, writing updates back.
    pub fn overhead(&self) -> Duration {
        self.per_call.saturating_sub(self.kernels.iter().map(|k| k.mean).sum())
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.per_call.as_secs_f64().max(f64::MIN_POSITIVE);
        writeln!(
            f,
            "{} kernels, {:.1} µs per call (mean of {} calls), slowest first:",
            self.kernels.len(),
            total * 1e6,
            self.calls
        )?;
        let mut rows: Vec<&KernelTime> = self.kernels.iter().collect();
        rows.sort_by_key(|k| std::cmp::Reverse(k.mean));
        for k in rows {
            let us = k.mean.as_secs_f64() * 1e6;
            writeln!(
                f,
                "{:5.1}% {us:9.1} µs  #{:<4} {}  {}",
                100.0 * us / 1e6 / total,
                k.index,
                k.kernel,
                k.shapes
            )?;
        }
        let rest = self.overhead().as_secs_f64();
        writeln!(f, "{:5.1}% {:9.1} µs  outputs and updates", 100.0 * rest / total, rest * 1e6)
    }
}
