//! Rematerialisation: values the backward pass reads are recomputed next to their backward
//! readers instead of being kept alive from the forward pass.
//!
//! Two sources of candidates:
//! - *checkpointed segments* ([`checkpoint`](crate::checkpoint)): every value computed inside a
//!   segment (its outputs excepted) that a node outside it reads is recomputed from the
//!   segment's inputs, the whole chain cloned once for all its backward readers;
//! - *the policy* ([`CompileOptions::remat`](crate::CompileOptions::remat)): a forward value
//!   the backward pass reads (directly or through a reshape) that a short chain of elementwise
//!   ops computes from values it keeps anyway: sources and values it reads itself (a GELU from
//!   its operand, a layer norm's affine output from the normalised input and the parameters).
//!   Recomputing it keeps nothing extra alive. A value another chain recomputes from stays
//!   kept: recomputing it too would chain the clones (an LSTM's cell state, step after step).
//!
//! Clones are marked `late`: the scheduler gives them the position of their first reader, so
//! they run just before it and the forward values die at their last forward use. Runs after
//! common-subexpression elimination (which would merge the clones back) and before fusion
//! (which folds cheap clones into the backward kernels, or runs them in a backward kernel that
//! reads the same operands).

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

/// One read of a forward value by the backward pass: the edge into the backward node, from
/// the value itself or from a view of it (`via`), which the clone then needs a view of too.
struct BackwardRead {
    via: Option<NodeIndex>,
    edge: petgraph::stable_graph::EdgeIndex,
    reader: NodeIndex,
    weight: Edge,
}

/// The reads of `n` by backward nodes, directly or through one view of `n` (a linear layer
/// reads its input through a reshape).
fn backward_reads(graph: &Graph, n: NodeIndex) -> Vec<BackwardRead> {
    let direct = |from: NodeIndex, via: Option<NodeIndex>| {
        graph
            .g
            .edges_directed(from, Direction::Outgoing)
            .filter(|e| graph.backward.contains(&e.target()))
            .map(move |e| BackwardRead { via, edge: e.id(), reader: e.target(), weight: *e.weight() })
    };
    let views = graph
        .users(n)
        .into_iter()
        .filter(|&u| !graph.backward.contains(&u) && matches!(&graph.g[u].op, IrOp::Op(op) if op.is_view()));
    let mut reads: Vec<BackwardRead> = direct(n, None).collect();
    for v in views.collect::<HashSet<_>>() {
        reads.extend(direct(v, Some(v)));
    }
    reads
}

/// Whether `n` is read by the backward pass (directly or through a view), without listing the
/// reads: the policy asks it of every operand of every candidate chain.
fn read_by_backward(graph: &Graph, n: NodeIndex) -> bool {
    let read_directly = |m: NodeIndex| {
        graph.g.neighbors_directed(m, Direction::Outgoing).any(|u| graph.backward.contains(&u))
    };
    read_directly(n)
        || graph.g.neighbors_directed(n, Direction::Outgoing).any(|u| {
            !graph.backward.contains(&u)
                && matches!(&graph.g[u].op, IrOp::Op(op) if op.is_view())
                && read_directly(u)
        })
}

/// The most nodes the policy recomputes for one value.
const MAX_CHAIN: usize = 6;

/// The forward elementwise nodes (`n` first) that recompute `n` from values the backward pass
/// keeps anyway (sources, or values it reads), or `None` when that takes more than
/// [`MAX_CHAIN`] nodes or an op that is not elementwise: a layer norm's affine output from
/// its normalised input and parameters, a GELU from its operand.
fn recompute_chain(graph: &Graph, n: NodeIndex, segment: &HashSet<NodeIndex>) -> Option<Vec<NodeIndex>> {
    let cheap = |m: NodeIndex| {
        matches!(
            graph.g[m].op,
            IrOp::Op(Op::Unary(_) | Op::Binary(_) | Op::Movement(crate::op::MovementOp::Expand(_)))
        ) && !graph.backward.contains(&m)
            && !segment.contains(&m)
            && !graph.is_result(Value::of(m))
    };
    let mut chain = vec![n];
    let mut stack = vec![n];
    while let Some(m) = stack.pop() {
        if !cheap(m) {
            return None;
        }
        for v in graph.inputs(m) {
            let u = v.node;
            let kept = graph.g[u].op.is_source() || read_by_backward(graph, u);
            if kept || chain.contains(&u) {
                continue;
            }
            if chain.len() == MAX_CHAIN {
                return None;
            }
            chain.push(u);
            stack.push(u);
        }
    }
    Some(chain)
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
    // The policy's values, and every node their chains recompute.
    let mut policy: HashSet<NodeIndex> = HashSet::new();
    let mut recomputed = segment.clone();
    if cheap_elementwise {
        let candidates: Vec<Vec<NodeIndex>> = topo
            .iter()
            .filter(|&&n| read_by_backward(graph, n))
            .filter_map(|&n| recompute_chain(graph, n, &segment))
            .collect();
        // A value another chain recomputes from is kept anyway: recomputing it too would
        // chain the clones (an LSTM's cell state, step after step) and free nothing.
        let leaves: HashSet<NodeIndex> = candidates
            .iter()
            .flat_map(|chain| {
                let operands = chain.iter().flat_map(|&m| graph.inputs(m)).map(|v| v.node);
                operands.filter(|u| !chain.contains(u)).collect::<Vec<_>>()
            })
            .collect();
        for chain in candidates {
            if !leaves.contains(&chain[0]) {
                policy.insert(chain[0]);
                recomputed.extend(chain);
            }
        }
    }
    let mut clones: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut view_clones: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    for &n in &topo {
        let chosen = segment.contains(&n) || policy.contains(&n);
        if !chosen {
            continue;
        }
        // readers outside the segment (for the policy: backward readers) get the clone
        let readers: Vec<BackwardRead> = if segment.contains(&n) {
            graph
                .g
                .edges_directed(n, Direction::Outgoing)
                .filter(|e| !members.contains(&e.target()) && !graph.late.contains(&e.target()))
                .map(|e| BackwardRead { via: None, edge: e.id(), reader: e.target(), weight: *e.weight() })
                .collect()
        } else {
            backward_reads(graph, n)
        };
        if readers.is_empty() {
            continue;
        }
        let through = if segment.contains(&n) { &segment } else { &recomputed };
        let clone = clone_chain(graph, n, through, &mut clones);
        for read in readers {
            let source = match read.via {
                None => clone,
                Some(view) => *view_clones.entry(view).or_insert_with(|| {
                    let node = graph.g[view].clone();
                    let c = graph.add_multi(node.op, node.outs, &[Value::of(clone)]);
                    graph.late.insert(c);
                    c
                }),
            };
            graph.g.remove_edge(read.edge);
            graph.g.add_edge(source, read.reader, read.weight);
        }
    }
    clones.len() + view_clones.len()
}

/// The clone of `n`, cloning the nodes of `through` it is computed from first (memoised).
fn clone_chain(
    graph: &mut Graph,
    n: NodeIndex,
    through: &HashSet<NodeIndex>,
    clones: &mut HashMap<NodeIndex, NodeIndex>,
) -> NodeIndex {
    if let Some(&c) = clones.get(&n) {
        return c;
    }
    let inputs: Vec<Value> = graph
        .inputs(n)
        .into_iter()
        .map(|v| {
            if through.contains(&v.node) {
                Value::of(clone_chain(graph, v.node, through, clones))
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
