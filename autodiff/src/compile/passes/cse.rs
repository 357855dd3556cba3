//! Common-subexpression elimination: nodes with the same op, payload and operands compute the
//! same values, so all readers are pointed at the first one. Small constants with equal
//! contents are merged too (backward passes create many `0.0` and `1.0` scalars).

use super::Pass;
use crate::compile::ir::{Graph, IrOp, Value};
use crate::{Buffer, Result};
use std::collections::HashMap;
use std::fmt::Write;

/// Constants with at most this many elements are compared by contents.
const SMALL_CONST: usize = 64;

/// Merges structurally equal nodes (see the module docs).
pub struct EliminateCommonSubexpressions;

impl Pass for EliminateCommonSubexpressions {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        eliminate_common_subexpressions(graph);
        Ok(())
    }
}

/// Merges structurally equal nodes, visiting operands first so chains merge in one sweep.
pub fn eliminate_common_subexpressions(graph: &mut Graph) {
    let mut seen: HashMap<String, petgraph::stable_graph::NodeIndex> = HashMap::new();
    for n in graph.topo_order() {
        let Some(key) = node_key(graph, n) else { continue };
        match seen.get(&key) {
            Some(&first) => {
                for port in 0..graph.g[n].outs.len() {
                    graph.replace_uses(Value { node: n, port }, Value { node: first, port });
                }
                graph.g.remove_node(n);
            }
            None => {
                seen.insert(key, n);
            }
        }
    }
}

/// A string that is equal for two nodes exactly when they compute the same values; `None`
/// for nodes never merged (large constants).
fn node_key(graph: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<String> {
    let node = &graph.g[n];
    let mut key = String::new();
    match &node.op {
        IrOp::Const(b) if b.len() <= SMALL_CONST => {
            write!(key, "const {:?} ", node.outs[0].shape).ok()?;
            match &**b {
                Buffer::F32(v) => v.iter().for_each(|x| write!(key, "{:08x},", x.to_bits()).unwrap_or(())),
                Buffer::F64(v) => v.iter().for_each(|x| write!(key, "{:016x}d,", x.to_bits()).unwrap_or(())),
                Buffer::I64(v) => v.iter().for_each(|x| write!(key, "{x}i,").unwrap_or(())),
            }
            return Some(key);
        }
        IrOp::Const(_) => return None,
        IrOp::Op(op) => write!(key, "{op:?}").ok()?,
        other => write!(key, "{other:?}").ok()?,
    }
    for v in graph.inputs(n) {
        write!(key, "|{}.{}", v.node.index(), v.port).ok()?;
    }
    for out in &node.outs {
        write!(key, "|{:?}{}", out.shape, out.dtype).ok()?;
    }
    Some(key)
}
