//! Graphviz export of the IR: one box per node (`id: op`, then shape and dtype of each
//! output), one edge per operand (labelled with the operand slot, and `:port` when the
//! producer has several outputs), and ovals for the step's outputs and state updates.
//! Fused kernels are filled, matmul epilogues shaded, sources drawn as plain text.

use super::ir::{Graph, IrOp};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use std::fmt::Write;

/// The graph in Graphviz dot syntax (`dot -Tsvg`).
pub fn to_dot(graph: &Graph) -> String {
    let mut s = String::from(
        "digraph graphgrad {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
    );
    for n in graph.topo_order() {
        let node = &graph.g[n];
        let mut label = format!("{}: {}", n.index(), node.op);
        for out in &node.outs {
            let _ = write!(label, "\\n{:?} {}", out.shape.as_slice(), out.dtype);
        }
        let style = match node.op {
            IrOp::Fused(_) => ", style=filled, fillcolor=\"#cde8ff\"",
            IrOp::MatMulEpilogue { .. } | IrOp::ConvEpilogue { .. } => {
                ", style=filled, fillcolor=\"#ffe3c4\""
            }
            IrOp::Input(_) | IrOp::Param(_) | IrOp::Const(_) => ", shape=plaintext",
            _ => "",
        };
        let _ = writeln!(s, "  n{} [label=\"{}\"{}];", n.index(), label.replace('"', "'"), style);
    }
    for e in graph.g.edge_references() {
        let w = e.weight();
        let port = if graph.g[e.source()].outs.len() > 1 { format!(":{}", w.port) } else { String::new() };
        let _ = writeln!(
            s,
            "  n{} -> n{} [label=\"{}{}\"];",
            e.source().index(),
            e.target().index(),
            w.slot,
            port
        );
    }
    for (i, v) in graph.outputs.iter().enumerate() {
        let _ = writeln!(
            s,
            "  out{i} [shape=oval, label=\"output {i}\"];\n  n{} -> out{i} [label=\"{}\"];",
            v.node.index(),
            v.port
        );
    }
    for (j, v) in &graph.updates {
        let _ = writeln!(
            s,
            "  upd{j} [shape=oval, label=\"update param{j}\"];\n  n{} -> upd{j} [label=\"{}\"];",
            v.node.index(),
            v.port
        );
    }
    s.push_str("}\n");
    s
}
