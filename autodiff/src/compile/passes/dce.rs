//! Dead-code elimination: keeps only nodes that the outputs and updates depend on.

use super::Pass;
use crate::compile::ir::Graph;
use crate::Result;
use petgraph::Direction;
use std::collections::HashSet;

/// Removes every node no output or update depends on.
pub struct EliminateDeadCode;

impl Pass for EliminateDeadCode {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        eliminate_dead_code(graph);
        Ok(())
    }
}

/// Removes unreachable nodes (see [`EliminateDeadCode`]).
pub fn eliminate_dead_code(graph: &mut Graph) {
    let mut live = HashSet::new();
    let mut stack: Vec<_> =
        graph.outputs.iter().chain(graph.updates.iter().map(|u| &u.1)).map(|v| v.node).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(graph.g.neighbors_directed(n, Direction::Incoming));
        }
    }
    let dead: Vec<_> = graph.g.node_indices().filter(|n| !live.contains(n)).collect();
    for n in dead {
        graph.g.remove_node(n);
    }
}
