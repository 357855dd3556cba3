//! Constant folding: an op whose operands are all constants is evaluated once, at compile
//! time, with the op's own kernel. Folding is limited to results no larger than their
//! operands (or tiny), so it never turns a broadcast scalar into a large constant buffer.

use super::Pass;
use crate::compile::ir::{Graph, IrOp};
use crate::op::Arg;
use crate::Result;
use graphgrad_ops::numel;
use std::sync::Arc;

/// Results up to this many elements are always folded.
const ALWAYS_FOLD: usize = 64;

/// Evaluates ops on constants (see the module docs).
pub struct FoldConstants;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        fold_constants(graph);
        Ok(())
    }
}

/// Folds every foldable node, operands first (so folded results fold further).
pub fn fold_constants(graph: &mut Graph) {
    for n in graph.topo_order() {
        let IrOp::Op(op) = &graph.g[n].op else { continue };
        let ins = graph.inputs(n);
        let consts: Option<Vec<Arc<crate::Buffer>>> = ins
            .iter()
            .map(|v| match &graph.g[v.node].op {
                IrOp::Const(b) => Some(b.clone()),
                _ => None,
            })
            .collect();
        let Some(consts) = consts else { continue };
        let out_len = numel(&graph.g[n].outs[0].shape);
        let largest = ins.iter().map(|&v| numel(&graph.info(v).shape)).max().unwrap_or(0);
        if ins.is_empty() || out_len > ALWAYS_FOLD.max(largest) {
            continue;
        }
        let shapes: Vec<_> = ins.iter().map(|&v| graph.info(v).shape.clone()).collect();
        let args: Vec<Arg<'_>> = consts.iter().zip(&shapes).map(|(b, s)| Arg { buf: b, shape: s }).collect();
        // an output the allocator refuses stays an op, to fail (or not) when it runs
        let Ok(value) = op.evaluate(&args, &graph.g[n].outs[0]) else { continue };
        graph.g[n].op = IrOp::Const(Arc::new(value));
        graph.set_inputs(n, &[]);
    }
}
