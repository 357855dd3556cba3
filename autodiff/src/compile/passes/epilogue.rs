//! Matmul epilogue fusion: `activation(a·b + bias)` as one GEMM whose epilogue adds the bias
//! and applies the activation to each block of C while it is still in cache
//! (`graphgrad_ops::gemm::gemm_with_epilogue`).
//!
//! Pattern: a rank-2 `MatMul` read only by an `add` of a per-column bias (`[n]` or `[1, n]`),
//! optionally followed by `relu`, `tanh`, `sigmoid` or `gelu` when the sum has no other
//! reader (in training the pre-activation usually feeds the activation's backward, and then
//! only the bias is fused); or a matmul read only by such an activation. A reshape that keeps
//! the columns may sit between the matmul and the add (a `Linear` on `[batch, time, in]`
//! multiplies `[batch·time, in]` and reshapes back before adding its bias): the fused GEMM
//! then keeps the matmul's shape and the reshape moves after it.

use super::Pass;
use crate::compile::ir::{Graph, IrOp, Value};
use crate::op::{MovementOp, Op};
use crate::Result;
use graphgrad_ops::binary::BinaryOp;
use graphgrad_ops::gemm::Activation;
use graphgrad_ops::unary::UnaryOp;
use petgraph::stable_graph::NodeIndex;

/// Fuses bias and activation into matmuls (see the module docs).
pub struct FuseMatmulEpilogue;

impl Pass for FuseMatmulEpilogue {
    fn name(&self) -> &'static str {
        "epilogue"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        fuse_matmul_epilogue(graph);
        Ok(())
    }
}

fn activation_of(op: &IrOp) -> Option<Activation> {
    match op {
        IrOp::Op(Op::Unary(UnaryOp::Relu)) => Some(Activation::Relu),
        IrOp::Op(Op::Unary(UnaryOp::Tanh)) => Some(Activation::Tanh),
        IrOp::Op(Op::Unary(UnaryOp::Sigmoid)) => Some(Activation::Sigmoid),
        IrOp::Op(Op::Unary(UnaryOp::Gelu)) => Some(Activation::Gelu),
        _ => None,
    }
}

/// The single node reading `v`, when `v` has exactly one reader and is not a result.
fn only_user(graph: &Graph, v: Value) -> Option<NodeIndex> {
    if graph.use_count(v) != 1 || graph.is_result(v) {
        return None;
    }
    graph.users(v.node).first().copied()
}

/// Rewrites every matching pattern.
pub fn fuse_matmul_epilogue(graph: &mut Graph) {
    for mm in graph.topo_order() {
        if !graph.g.contains_node(mm) {
            continue;
        }
        let IrOp::Op(Op::MatMul { trans_a, trans_b }) = graph.g[mm].op else { continue };
        let ins = graph.inputs(mm);
        if graph.info(ins[0]).shape.len() != 2 || graph.info(ins[1]).shape.len() != 2 {
            continue;
        }
        let n_cols = graph.g[mm].outs[0].shape[1];
        let Some(mut user) = only_user(graph, Value::of(mm)) else { continue };
        // the matmul's value as the epilogue sees it: itself, or a reshape keeping its columns
        let mut head = mm;
        if let IrOp::Op(Op::Movement(MovementOp::Reshape(shape))) = &graph.g[user].op {
            let Some(after) = only_user(graph, Value::of(user)) else { continue };
            if shape.last() != Some(&n_cols)
                || !matches!(graph.g[after].op, IrOp::Op(Op::Binary(BinaryOp::Add)))
            {
                continue;
            }
            (head, user) = (user, after);
        }
        let mut last = head;
        let mut bias = None;
        if let IrOp::Op(Op::Binary(BinaryOp::Add)) = graph.g[user].op {
            let add_ins = graph.inputs(user);
            let other = if add_ins[0].node == head { add_ins[1] } else { add_ins[0] };
            let shape = &graph.info(other).shape;
            let row = shape[..] == [n_cols] || shape[..] == [1, n_cols];
            if row && other.node != head && graph.g[user].outs[0].shape == graph.g[head].outs[0].shape {
                bias = Some(other);
                last = user;
            }
        }
        if last == head && head != mm {
            continue;
        }
        let mut activation = Activation::Identity;
        if let Some(act_node) = only_user(graph, Value::of(last)) {
            if let Some(act) = activation_of(&graph.g[act_node].op) {
                activation = act;
                last = act_node;
            }
        }
        if last == mm {
            continue;
        }
        let out = graph.g[last].outs[0].clone();
        let mut operands = vec![ins[0], ins[1]];
        operands.extend(bias);
        let op = IrOp::MatMulEpilogue { trans_a, trans_b, bias: bias.is_some(), activation };
        let gemm = graph.add(op, graph.g[mm].outs[0].shape.clone(), out.dtype, &operands);
        let mut fused = gemm;
        if head != mm {
            let reshape = graph.g[head].op.clone();
            fused = graph.add(reshape, out.shape, out.dtype, &[Value::of(gemm)]);
        }
        if graph.late.contains(&last) {
            graph.late.extend([gemm, fused]);
        }
        graph.replace_uses(Value::of(last), Value::of(fused));
    }
    super::dce::eliminate_dead_code(graph);
}
