//! The compiler's IR: a petgraph DAG whose nodes are ops and whose edges carry values.
//!
//! One node type serves every stage (tinygrad's lesson): a node holds an [`IrOp`] and the
//! shape and dtype of each value it produces (most ops produce one; a fused kernel may produce
//! several). An edge `producer -> consumer` carries [`Edge`]: which of the consumer's operands
//! it is (`slot`) and which of the producer's values it reads (`port`).
//!
//! Invariants (checked by [`Graph::verify`] after every pass in debug builds): the graph is
//! acyclic; a node's incoming edges fill slots `0..n` exactly once, with `n` what the op
//! takes; every port exists; every output and update names an existing value; every op's
//! output is what its shape rule (`Op::infer`, the rule eager mode uses) gives for its
//! operands, and fused kernels and matmul epilogues agree with their operands' shapes.

use crate::compile::kernel::FusedKernel;
use crate::op::{Arity, ConvOp, Op, PoolOp};
use crate::Buffer;
use graphgrad_ops::conv::Conv2dGeometry;
use graphgrad_ops::gemm::Activation;
use graphgrad_ops::pool::Pool2dGeometry;
use graphgrad_ops::{broadcast_shapes, numel, DType, Shape};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use smallvec::{smallvec, SmallVec};
use std::fmt;
use std::sync::Arc;

/// One value in the graph: output `port` of `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    /// The producing node.
    pub node: NodeIndex,
    /// Which of its outputs.
    pub port: usize,
}

impl Value {
    /// The single (first) output of `node`.
    pub fn of(node: NodeIndex) -> Value {
        Value { node, port: 0 }
    }
}

/// An edge: operand `slot` of the consumer reads output `port` of the producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// Operand position at the consumer.
    pub slot: usize,
    /// Output index at the producer.
    pub port: usize,
}

/// What a node computes.
#[derive(Clone, Debug)]
pub enum IrOp {
    /// Step input `i` (its value is given at each call).
    Input(usize),
    /// State leaf `i`: a parameter or buffer read from its tensor at each call, possibly
    /// updated in place by the step.
    Param(usize),
    /// A constant captured by the trace.
    Const(Arc<Buffer>),
    /// A recorded autodiff op, run by its own kernel (`Op::forward`).
    Op(Op),
    /// A matrix product of two rank-2 operands with a fused epilogue
    /// `activation(a·b + bias)`; inputs `(a, b[, bias])`.
    MatMulEpilogue {
        /// The first operand is stored transposed.
        trans_a: bool,
        /// The second operand is stored transposed.
        trans_b: bool,
        /// Whether a bias (one value per column) is the third input.
        bias: bool,
        /// Applied after the bias.
        activation: Activation,
    },
    /// A 2-d convolution with a fused epilogue `activation(conv2d(x, w) + bias)`, applied to
    /// each image's output while it is in cache; inputs `(x, w[, bias])`, the bias
    /// `[1, out_channels, 1, 1]`.
    ConvEpilogue {
        /// The convolution.
        geo: Conv2dGeometry,
        /// Whether a bias (one value per output channel) is the third input.
        bias: bool,
        /// Applied after the bias.
        activation: Activation,
    },
    /// A fused elementwise (+ reduction) kernel: one pass over its iteration space.
    Fused(Arc<FusedKernel>),
    /// Max pooling's values and winning cells (`max_pool2d` and `max_pool2d_indices` of one
    /// input) from one pass over its windows; input `x`, outputs `(values, indices)`.
    MaxPool2d(Pool2dGeometry),
}

impl IrOp {
    /// True for graph inputs (no operands): inputs, state leaves and constants.
    pub fn is_source(&self) -> bool {
        matches!(self, IrOp::Input(_) | IrOp::Param(_) | IrOp::Const(_))
    }

    /// How many operands the op takes.
    pub fn arity(&self) -> Arity {
        match self {
            IrOp::Input(_) | IrOp::Param(_) | IrOp::Const(_) => Arity::Exactly(0),
            IrOp::MatMulEpilogue { bias, .. } | IrOp::ConvEpilogue { bias, .. } => {
                Arity::Exactly(2 + usize::from(*bias))
            }
            IrOp::Fused(k) => Arity::Exactly(k.inputs.len()),
            IrOp::MaxPool2d(_) => Arity::Exactly(1),
            IrOp::Op(op) => op.arity(),
        }
    }
}

impl fmt::Display for IrOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrOp::Input(i) => write!(f, "input{i}"),
            IrOp::Param(i) => write!(f, "param{i}"),
            IrOp::Const(b) if b.len() == 1 => write!(f, "const({})", b.to_f64_vec()[0]),
            IrOp::Const(b) => write!(f, "const[{}]", b.len()),
            IrOp::Op(op) => write!(f, "{op}"),
            IrOp::MatMulEpilogue { bias, activation, .. } => {
                write!(f, "matmul+{}{:?}", if *bias { "bias+" } else { "" }, activation)
            }
            IrOp::ConvEpilogue { bias, activation, .. } => {
                write!(f, "conv2d+{}{:?}", if *bias { "bias+" } else { "" }, activation)
            }
            IrOp::Fused(k) => write!(f, "fused({} instrs, {} out)", k.instrs.len(), k.outputs.len()),
            IrOp::MaxPool2d(_) => write!(f, "max_pool2d+indices"),
        }
    }
}

pub use crate::op::ValueInfo;

/// A node: an op and the values it produces.
#[derive(Clone, Debug)]
pub struct IrNode {
    /// What it computes.
    pub op: IrOp,
    /// One entry per output port.
    pub outs: SmallVec<[ValueInfo; 1]>,
}

/// A traced step as a graph, with its outputs and in-place state updates.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Nodes and value edges.
    pub g: StableDiGraph<IrNode, Edge>,
    /// The values the step returns, in order.
    pub outputs: Vec<Value>,
    /// `(state leaf index, new value)`: written back into the leaf after each call.
    pub updates: Vec<(usize, Value)>,
    /// Nodes computed inside checkpointed segments, which the remat pass recomputes for their
    /// readers outside the segments instead of keeping them alive (`segment_outputs` excepted).
    pub recompute: std::collections::HashSet<NodeIndex>,
    /// The outputs of checkpointed segments: kept.
    pub segment_outputs: std::collections::HashSet<NodeIndex>,
    /// Nodes recorded by a backward pass.
    pub backward: std::collections::HashSet<NodeIndex>,
    /// Recomputed values, which the scheduler runs as late as their first reader.
    pub late: std::collections::HashSet<NodeIndex>,
}

impl Graph {
    /// Adds a node with one output value and its operands in slot order.
    pub fn add(&mut self, op: IrOp, shape: Shape, dtype: DType, inputs: &[Value]) -> NodeIndex {
        self.add_multi(op, smallvec![ValueInfo { shape, dtype }], inputs)
    }

    /// Adds a node with several outputs.
    pub fn add_multi(&mut self, op: IrOp, outs: SmallVec<[ValueInfo; 1]>, inputs: &[Value]) -> NodeIndex {
        let n = self.g.add_node(IrNode { op, outs });
        for (slot, v) in inputs.iter().enumerate() {
            self.g.add_edge(v.node, n, Edge { slot, port: v.port });
        }
        n
    }

    /// The node's operands in slot order.
    pub fn inputs(&self, n: NodeIndex) -> SmallVec<[Value; 3]> {
        let mut edges: SmallVec<[(usize, Value); 3]> = self
            .g
            .edges_directed(n, Direction::Incoming)
            .map(|e| (e.weight().slot, Value { node: e.source(), port: e.weight().port }))
            .collect();
        edges.sort_unstable_by_key(|&(slot, _)| slot);
        edges.into_iter().map(|(_, v)| v).collect()
    }

    /// Nodes reading any output of `n` (with repetition when read twice).
    pub fn users(&self, n: NodeIndex) -> Vec<NodeIndex> {
        self.g.edges_directed(n, Direction::Outgoing).map(|e| e.target()).collect()
    }

    /// Number of reads of `v` by nodes, outputs and updates.
    pub fn use_count(&self, v: Value) -> usize {
        let edges =
            self.g.edges_directed(v.node, Direction::Outgoing).filter(|e| e.weight().port == v.port).count();
        edges
            + self.outputs.iter().filter(|&&o| o == v).count()
            + self.updates.iter().filter(|u| u.1 == v).count()
    }

    /// True when `v` is returned or written back (so it must be materialised).
    pub fn is_result(&self, v: Value) -> bool {
        self.outputs.contains(&v) || self.updates.iter().any(|u| u.1 == v)
    }

    /// True when `n` was recorded by the backward pass or recomputes a value for it.
    pub fn is_backward(&self, n: NodeIndex) -> bool {
        self.backward.contains(&n) || self.late.contains(&n)
    }

    /// Shape and dtype of a value.
    pub fn info(&self, v: Value) -> &ValueInfo {
        &self.g[v.node].outs[v.port]
    }

    /// Redirects every read of `old` (edges, outputs, updates) to `new`.
    pub fn replace_uses(&mut self, old: Value, new: Value) {
        let edges: Vec<_> = self
            .g
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().port == old.port)
            .map(|e| (e.id(), e.target(), e.weight().slot))
            .collect();
        for (id, target, slot) in edges {
            self.g.remove_edge(id);
            self.g.add_edge(new.node, target, Edge { slot, port: new.port });
        }
        for o in self.outputs.iter_mut().chain(self.updates.iter_mut().map(|u| &mut u.1)) {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Replaces the operands of `n` with `inputs` (slot order).
    pub fn set_inputs(&mut self, n: NodeIndex, inputs: &[Value]) {
        let old: Vec<_> = self.g.edges_directed(n, Direction::Incoming).map(|e| e.id()).collect();
        for id in old {
            self.g.remove_edge(id);
        }
        for (slot, v) in inputs.iter().enumerate() {
            self.g.add_edge(v.node, n, Edge { slot, port: v.port });
        }
    }

    /// Nodes in a topological order (operands first; ties by node index, so deterministic).
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        petgraph::algo::toposort(&self.g, None).expect("internal invariant: the IR is acyclic")
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// Bytes of every value computed by an op (sources excluded): what the program
    /// materialises before memory planning.
    pub fn computed_bytes(&self) -> usize {
        self.g
            .node_indices()
            .filter(|&n| !self.g[n].op.is_source())
            .flat_map(|n| self.g[n].outs.iter())
            .map(ValueInfo::bytes)
            .sum()
    }

    /// Checks the invariants listed in the module docs; the message names the node.
    pub fn verify(&self) -> Result<(), String> {
        if petgraph::algo::is_cyclic_directed(&self.g) {
            return Err("the graph has a cycle".into());
        }
        for n in self.g.node_indices() {
            let node = &self.g[n];
            let mut slots: Vec<usize> =
                self.g.edges_directed(n, Direction::Incoming).map(|e| e.weight().slot).collect();
            slots.sort_unstable();
            if slots.iter().enumerate().any(|(i, &s)| i != s) {
                return Err(format!(
                    "node {} ({}): operand slots {slots:?} are not 0..n",
                    n.index(),
                    node.op
                ));
            }
            if !node.op.arity().admits(slots.len()) {
                return Err(format!(
                    "node {} ({}): {} operands, expected {:?}",
                    n.index(),
                    node.op,
                    slots.len(),
                    node.op.arity()
                ));
            }
            if node.outs.is_empty() {
                return Err(format!("node {} ({}): no outputs", n.index(), node.op));
            }
            for e in self.g.edges_directed(n, Direction::Incoming) {
                if e.weight().port >= self.g[e.source()].outs.len() {
                    return Err(format!(
                        "node {}: reads missing port {} of node {}",
                        n.index(),
                        e.weight().port,
                        e.source().index()
                    ));
                }
            }
            self.verify_shapes(n)?;
        }
        for v in self.outputs.iter().chain(self.updates.iter().map(|u| &u.1)) {
            if !self.g.contains_node(v.node) || v.port >= self.g[v.node].outs.len() {
                return Err(format!("output or update names a missing value {v:?}"));
            }
        }
        Ok(())
    }

    /// Every op's output against its shape rule (`Op::infer`); fused kernels and epilogues
    /// against their operands.
    fn verify_shapes(&self, n: NodeIndex) -> Result<(), String> {
        let node = &self.g[n];
        let ins = self.inputs(n);
        let out = &node.outs[0];
        let bad = |what: &str| Err(format!("node {} ({}): {what}", n.index(), node.op));
        match &node.op {
            IrOp::Input(_) | IrOp::Param(_) | IrOp::Const(_) => Ok(()),
            IrOp::Op(op) => {
                let operands: Vec<_> = ins.iter().map(|&v| self.info(v).operand()).collect();
                match op.infer(&operands) {
                    Ok(expected) if expected == *out => Ok(()),
                    Ok(expected) => {
                        bad(&format!("the shape rule gives {expected:?}, the node holds {out:?}"))
                    }
                    Err(e) => bad(&e.to_string()),
                }
            }
            IrOp::MatMulEpilogue { trans_a, trans_b, bias, .. } => {
                let (a, b) = (self.info(ins[0]), self.info(ins[1]));
                let product =
                    Op::MatMul { trans_a: *trans_a, trans_b: *trans_b }.infer(&[a.operand(), b.operand()]);
                match product {
                    Ok(p) if p == *out && a.shape.len() == 2 => {}
                    Ok(p) => return bad(&format!("the product gives {p:?}, the node holds {out:?}")),
                    Err(e) => return bad(&e.to_string()),
                }
                if *bias && self.info(ins[2]).shape.as_slice() != [out.shape[1]] {
                    return bad("the bias is not one value per column");
                }
                Ok(())
            }
            IrOp::ConvEpilogue { geo, bias, .. } => {
                let conv = Op::Conv(ConvOp::Conv2d(*geo))
                    .infer(&[self.info(ins[0]).operand(), self.info(ins[1]).operand()]);
                match conv {
                    Ok(c) if c == *out => {}
                    Ok(c) => return bad(&format!("the convolution gives {c:?}, the node holds {out:?}")),
                    Err(e) => return bad(&e.to_string()),
                }
                if *bias && self.info(ins[2]).shape.as_slice() != [1, geo.out_channels, 1, 1] {
                    return bad("the bias is not [1, out_channels, 1, 1]");
                }
                Ok(())
            }
            IrOp::MaxPool2d(geo) => {
                let pooled = Op::Pool(PoolOp::MaxPool2dIndices(*geo)).infer(&[self.info(ins[0]).operand()]);
                match (pooled, &node.outs[..]) {
                    (Ok(info), [values, indices]) if info == *values && info == *indices => Ok(()),
                    (Ok(info), outs) => {
                        bad(&format!("pooling gives {info:?} twice, the node holds {outs:?}"))
                    }
                    (Err(e), _) => bad(&e.to_string()),
                }
            }
            IrOp::Fused(k) => {
                if k.outputs.len() != node.outs.len() {
                    return bad("kernel and node disagree on outputs");
                }
                for (i, &v) in ins.iter().enumerate() {
                    if self.info(v).dtype != k.dtype {
                        return bad(&format!("operand {i} has another element type"));
                    }
                    let read = &k.inputs[i];
                    if broadcast_shapes(&read.shape, &k.shape).as_deref() != Some(&k.shape[..]) {
                        return bad(&format!("operand {i} does not broadcast to the iteration shape"));
                    }
                    if read.extent() > numel(&self.info(v).shape) {
                        return bad(&format!("operand {i} is read past its end"));
                    }
                }
                Ok(())
            }
        }
    }
}
