//! Rematerialisation: values the backward pass reads are recomputed next to their backward
//! readers instead of being kept alive from the forward pass.
//!
//! Two sources of candidates:
//! - *checkpointed segments* ([`checkpoint`](crate::checkpoint)): every value computed inside a
//!   segment (its outputs excepted) that a node outside it reads is recomputed from the
//!   segment's inputs, the whole chain cloned once for all its backward readers;
//! - *the policy* ([`CompileOptions::remat`](crate::CompileOptions::remat)): a unary elementwise
//!   forward value read by the backward pass whose operand the backward pass reads anyway (so
//!   recomputing it keeps nothing extra alive).
//!
//! Clones are marked `late`: the scheduler gives them the position of their first reader, so
//! they run just before it and the forward values die at their last forward use. Runs after
//! common-subexpression elimination (which would merge the clones back) and before fusion
//! (which folds cheap clones into the backward kernels).

use super::Pass;
use crate::compile::ir::{Edge, Graph, IrOp, Value};
use crate::op::Op;
use crate::Result;
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::{HashMap, HashSet};

/// Recomputes checkpointed values and, with `cheap_elementwise`, the policy's (module docs).
pub struct Rematerialize {
    /// Apply the cheap-elementwise policy as well as the checkpointed segments.
    pub cheap_elementwise: bool,
}

impl Pass for Rematerialize {
    fn name(&self) -> &'static str {
        "remat"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        rematerialize(graph, self.cheap_elementwise);
        Ok(())
    }
}

/// Whether `n` is read by the backward pass.
fn read_by_backward(graph: &Graph, n: NodeIndex) -> bool {
    graph.users(n).iter().any(|u| graph.backward.contains(u))
}

/// Applies the pass; returns how many nodes were cloned.
pub fn rematerialize(graph: &mut Graph, cheap_elementwise: bool) -> usize {
    let topo = graph.topo_order();
    let alive = |g: &Graph, n: NodeIndex| g.g.contains_node(n) && g.g[n].outs.len() == 1;
    // members: every node of a segment; internal: those recomputed (outputs are kept)
    let members: HashSet<NodeIndex> =
        graph.recompute.iter().copied().filter(|&n| graph.g.contains_node(n)).collect();
    let segment: HashSet<NodeIndex> = members
        .iter()
        .copied()
        .filter(|&n| alive(graph, n) && !graph.g[n].op.is_source() && !graph.segment_outputs.contains(&n))
        .collect();
    let mut policy: HashSet<NodeIndex> = HashSet::new();
    if cheap_elementwise {
        for &n in &topo {
            let node = &graph.g[n];
            if !matches!(node.op, IrOp::Op(Op::Unary(_)))
                || graph.backward.contains(&n)
                || segment.contains(&n)
            {
                continue;
            }
            let x = graph.inputs(n)[0];
            let operand_kept = graph.g[x.node].op.is_source() || read_by_backward(graph, x.node);
            if operand_kept && read_by_backward(graph, n) && !graph.is_result(Value::of(n)) {
                policy.insert(n);
            }
        }
    }
    let mut clones: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    for &n in &topo {
        let chosen = segment.contains(&n) || policy.contains(&n);
        if !chosen {
            continue;
        }
        // readers outside the segment (for the policy: backward readers) get the clone
        let readers: Vec<(petgraph::stable_graph::EdgeIndex, NodeIndex, Edge)> = graph
            .g
            .edges_directed(n, Direction::Outgoing)
            .filter(|e| {
                let u = e.target();
                if segment.contains(&n) {
                    !members.contains(&u) && !graph.late.contains(&u)
                } else {
                    graph.backward.contains(&u)
                }
            })
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        if readers.is_empty() {
            continue;
        }
        let clone = clone_chain(graph, n, &segment, &mut clones);
        for (id, target, edge) in readers {
            graph.g.remove_edge(id);
            graph.g.add_edge(clone, target, edge);
        }
    }
    clones.len()
}

/// The clone of `n`, cloning the segment nodes it is computed from first (memoised).
fn clone_chain(
    graph: &mut Graph,
    n: NodeIndex,
    segment: &HashSet<NodeIndex>,
    clones: &mut HashMap<NodeIndex, NodeIndex>,
) -> NodeIndex {
    if let Some(&c) = clones.get(&n) {
        return c;
    }
    let inputs: Vec<Value> = graph
        .inputs(n)
        .into_iter()
        .map(|v| {
            if segment.contains(&v.node) {
                Value::of(clone_chain(graph, v.node, segment, clones))
            } else {
                v
            }
        })
        .collect();
    let node = graph.g[n].clone();
    let c = graph.add_multi(node.op, node.outs, &inputs);
    graph.late.insert(c);
    clones.insert(n, c);
    c
}
