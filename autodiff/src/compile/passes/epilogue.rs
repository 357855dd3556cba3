//! Epilogue fusion: `activation(a·b + bias)` as one GEMM whose epilogue adds the bias and
//! applies the activation to each block of C while it is still in cache
//! (`graphgrad_ops::gemm::gemm_with_epilogue`), and `activation(conv2d(x, w) + bias)` as one
//! convolution that does the same for each image's output (`graphgrad_ops::conv::conv2d`).
//!
//! Pattern: a rank-2 `MatMul` read only by an `add` of a per-column bias (`[n]` or `[1, n]`),
//! or a `conv2d` read only by an `add` of a per-channel one (`[1, c, 1, 1]`, as
//! `Tensor::conv2d` adds it), optionally followed by `relu`, `tanh`, `sigmoid` or `gelu` when
//! the sum has no other reader (the backward passes of relu, tanh and sigmoid read their
//! output, so in training they fuse; gelu's reads its input, and then only the bias is
//! fused); or a matmul or convolution read only by such an activation. A reshape that keeps
//! the columns may sit between the matmul and the add (a `Linear` on `[batch, time, in]`
//! multiplies `[batch·time, in]` and reshapes back before adding its bias): the fused GEMM
//! then keeps the matmul's shape and the reshape moves after it.

use super::Pass;
use crate::compile::ir::{Graph, IrOp, Value};
use crate::op::{ConvOp, MovementOp, Op};
use crate::Result;
use graphgrad_ops::binary::BinaryOp;
use graphgrad_ops::conv::Conv2dGeometry;
use graphgrad_ops::gemm::Activation;
use graphgrad_ops::unary::UnaryOp;
use petgraph::stable_graph::NodeIndex;

/// Fuses bias and activation into matmuls and convolutions (see the module docs).
pub struct FuseEpilogues;

impl Pass for FuseEpilogues {
    fn name(&self) -> &'static str {
        "epilogue"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        fuse_epilogues(graph);
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

/// The bias add and activation after `head` (each optional; the add when `head` is its only
/// reader and the other operand is a bias by `is_bias`, the activation when what it reads has
/// no other reader) and the last node of the chain.
fn epilogue_after(
    graph: &Graph,
    head: NodeIndex,
    is_bias: impl Fn(&[usize]) -> bool,
) -> (Option<Value>, Activation, NodeIndex) {
    let mut last = head;
    let mut bias = None;
    if let Some(user) = only_user(graph, Value::of(head)) {
        if let IrOp::Op(Op::Binary(BinaryOp::Add)) = graph.g[user].op {
            let add_ins = graph.inputs(user);
            let other = if add_ins[0].node == head { add_ins[1] } else { add_ins[0] };
            if is_bias(&graph.info(other).shape)
                && other.node != head
                && graph.g[user].outs[0].shape == graph.g[head].outs[0].shape
            {
                bias = Some(other);
                last = user;
            }
        }
    }
    let mut activation = Activation::Identity;
    if let Some(act_node) = only_user(graph, Value::of(last)) {
        if let Some(act) = activation_of(&graph.g[act_node].op) {
            activation = act;
            last = act_node;
        }
    }
    (bias, activation, last)
}

/// Rewrites every matching pattern.
pub fn fuse_epilogues(graph: &mut Graph) {
    for node in graph.topo_order() {
        if !graph.g.contains_node(node) {
            continue;
        }
        match graph.g[node].op {
            IrOp::Op(Op::MatMul { trans_a, trans_b }) => fuse_matmul(graph, node, trans_a, trans_b),
            IrOp::Op(Op::Conv(ConvOp::Conv2d(geo))) => fuse_conv(graph, node, geo),
            _ => {}
        }
    }
    super::dce::eliminate_dead_code(graph);
}

/// `mm`'s epilogue, if it has one, as one `MatMulEpilogue` node.
fn fuse_matmul(graph: &mut Graph, mm: NodeIndex, trans_a: bool, trans_b: bool) {
    let ins = graph.inputs(mm);
    if graph.info(ins[0]).shape.len() != 2 || graph.info(ins[1]).shape.len() != 2 {
        return;
    }
    let n_cols = graph.g[mm].outs[0].shape[1];
    let Some(user) = only_user(graph, Value::of(mm)) else { return };
    // the matmul's value as the epilogue sees it: itself, or a reshape keeping its columns
    let mut head = mm;
    if let IrOp::Op(Op::Movement(MovementOp::Reshape(shape))) = &graph.g[user].op {
        let Some(after) = only_user(graph, Value::of(user)) else { return };
        if shape.last() != Some(&n_cols) || !matches!(graph.g[after].op, IrOp::Op(Op::Binary(BinaryOp::Add)))
        {
            return;
        }
        head = user;
    }
    let (bias, activation, last) =
        epilogue_after(graph, head, |shape| shape[..] == [n_cols] || shape[..] == [1, n_cols]);
    // a reshape moves after the product only with a bias to fuse
    if last == mm || (bias.is_none() && head != mm) {
        return;
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

/// `conv`'s bias (`[1, out_channels, 1, 1]`, as `Tensor::conv2d` adds it) and activation, if
/// it has either, as one `ConvEpilogue` node.
fn fuse_conv(graph: &mut Graph, conv: NodeIndex, geo: Conv2dGeometry) {
    let channels = geo.out_channels;
    let (bias, activation, last) = epilogue_after(graph, conv, |shape| shape[..] == [1, channels, 1, 1]);
    if last == conv {
        return;
    }
    let out = graph.g[last].outs[0].clone();
    let mut operands: Vec<Value> = graph.inputs(conv).to_vec();
    operands.extend(bias);
    let op = IrOp::ConvEpilogue { geo, bias: bias.is_some(), activation };
    let fused = graph.add(op, out.shape, out.dtype, &operands);
    if graph.late.contains(&last) {
        graph.late.insert(fused);
    }
    graph.replace_uses(Value::of(last), Value::of(fused));
}
