//! The pass pipeline: each pass is a named rewrite of the [`Graph`] behind one small trait,
//! run in a fixed order, with the IR verifier after every pass in debug builds (or when
//! [`CompileOptions::verify`] asks) and a [`PassReport`] per pass for the log.
//!
//! | pass | file | does |
//! |---|---|---|
//! | `dce` | `dce.rs` | removes values nothing returns or writes back |
//! | `simplify` | `simplify.rs` | x·1, x+0, x−0, x/1, permute∘permute, reshape∘reshape, no-op reshapes/expands |
//! | `fold` | `fold.rs` | evaluates small ops whose operands are all constants |
//! | `cse` | `cse.rs` | merges nodes with the same op and operands (and equal small constants) |
//! | `epilogue` | `epilogue.rs` | matmul or convolution + bias (+ activation) into one kernel with a fused epilogue |
//! | `fuse` | `fuse.rs` | elementwise/broadcast chains and the reductions they feed into single-pass kernels |
//! | `pool` | `pool.rs` | max pooling's values and winning cells from one pass |

mod cse;
mod dce;
mod epilogue;
mod fold;
mod fuse;
mod pool;
mod remat;
mod simplify;

pub use cse::EliminateCommonSubexpressions;
pub use dce::EliminateDeadCode;
pub use epilogue::FuseEpilogues;
pub use fold::FoldConstants;
pub use fuse::FuseElementwise;
pub use pool::FuseMaxPool;
pub use remat::Rematerialize;
pub use simplify::SimplifyAlgebra;

use super::ir::Graph;
use super::CompileOptions;
use crate::{Error, Result};
use std::fmt;

/// A rewrite of the IR.
pub trait Pass {
    /// Short name used in the log (`fuse`, `cse`, ...).
    fn name(&self) -> &'static str;
    /// Rewrites `graph` in place, preserving the values of its outputs and updates.
    fn run(&self, graph: &mut Graph) -> Result<()>;
}

/// What one pass (or the memory planner) changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassReport {
    /// The pass's name.
    pub name: &'static str,
    /// Nodes before the pass.
    pub nodes_before: usize,
    /// Nodes after the pass.
    pub nodes_after: usize,
    /// Bytes of computed values before (for the planner: all values, no reuse).
    pub bytes_before: usize,
    /// Bytes of computed values after (for the planner: the planned peak).
    pub bytes_after: usize,
}

impl fmt::Display for PassReport {
    /// `fuse: 120 -> 64 nodes, 3.10 MB -> 1.20 MB`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {} nodes, {} -> {}",
            self.name,
            self.nodes_before,
            self.nodes_after,
            human_bytes(self.bytes_before),
            human_bytes(self.bytes_after)
        )
    }
}

/// `1234567` -> `1.23 MB`.
pub fn human_bytes(b: usize) -> String {
    match b {
        0..1_000 => format!("{b} B"),
        1_000..1_000_000 => format!("{:.2} kB", b as f64 / 1e3),
        _ => format!("{:.2} MB", b as f64 / 1e6),
    }
}

/// The passes `options` enables, in pipeline order.
pub fn pipeline(options: &CompileOptions, remat: bool) -> Vec<Box<dyn Pass>> {
    let mut passes: Vec<Box<dyn Pass>> = vec![Box::new(EliminateDeadCode)];
    if options.simplify {
        passes.push(Box::new(SimplifyAlgebra));
    }
    if options.fold_constants {
        passes.push(Box::new(FoldConstants));
    }
    if options.eliminate_common_subexpressions {
        passes.push(Box::new(EliminateCommonSubexpressions));
    }
    if options.simplify || options.fold_constants || options.eliminate_common_subexpressions {
        passes.push(Box::new(EliminateDeadCode));
    }
    // checkpointed segments are recomputed whatever the options say
    if remat {
        passes.push(Box::new(Rematerialize { cheap_elementwise: options.remat }));
        passes.push(Box::new(EliminateDeadCode));
    }
    if options.fuse_epilogues {
        passes.push(Box::new(FuseEpilogues));
    }
    if options.fuse_elementwise {
        passes.push(Box::new(FuseElementwise));
        passes.push(Box::new(FuseMaxPool));
    }
    passes
}

/// Runs `passes` in order, verifying the IR after each one when `verify` is set.
pub fn run_pipeline(graph: &mut Graph, passes: &[Box<dyn Pass>], verify: bool) -> Result<Vec<PassReport>> {
    let check = |graph: &Graph, after: &str| -> Result<()> {
        graph.verify().map_err(|e| Error::InvalidArgument {
            op: "compile",
            reason: format!("internal invariant: IR verifier failed after `{after}`: {e}"),
        })
    };
    if verify {
        check(graph, "lower")?;
    }
    let mut reports = Vec::new();
    for pass in passes {
        let (nodes_before, bytes_before) = (graph.node_count(), graph.computed_bytes());
        pass.run(graph)?;
        if verify {
            check(graph, pass.name())?;
        }
        reports.push(PassReport {
            name: pass.name(),
            nodes_before,
            nodes_after: graph.node_count(),
            bytes_before,
            bytes_after: graph.computed_bytes(),
        });
    }
    Ok(reports)
}
