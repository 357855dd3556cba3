//! Max pooling in one pass: the trace records max pooling as two ops, `max_pool2d_indices(x)`
//! (each window's winning cell) and `max_pool2d(x, indices)` (the values there), so that each
//! has one result; the kernel behind the first computes the values anyway. Where both read the
//! same `x` with the same geometry they become one node with both results.

use super::Pass;
use crate::compile::ir::{Graph, IrOp, Value};
use crate::op::{Op, PoolOp};
use crate::Result;

/// Merges each `max_pool2d` with the `max_pool2d_indices` it reads (see the module docs).
pub struct FuseMaxPool;

impl Pass for FuseMaxPool {
    fn name(&self) -> &'static str {
        "pool"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        fuse_max_pool(graph);
        Ok(())
    }
}

/// The rewrite of [`FuseMaxPool`].
pub fn fuse_max_pool(graph: &mut Graph) {
    for n in graph.topo_order() {
        let IrOp::Op(Op::Pool(PoolOp::MaxPool2d(geo))) = graph.g[n].op else { continue };
        let [x, indices] = graph.inputs(n)[..] else { continue };
        let pairs = matches!(graph.g[indices.node].op, IrOp::Op(Op::Pool(PoolOp::MaxPool2dIndices(g))) if g == geo)
            && graph.inputs(indices.node)[..] == [x];
        if !pairs {
            continue;
        }
        let outs = [graph.g[n].outs[0].clone(), graph.info(indices).clone()].into_iter().collect();
        let both = graph.add_multi(IrOp::MaxPool2d(geo), outs, &[x]);
        graph.replace_uses(Value::of(n), Value { node: both, port: 0 });
        graph.replace_uses(indices, Value { node: both, port: 1 });
    }
    super::dce::eliminate_dead_code(graph);
}
