//! Tracing a step and lowering the recorded tensors into the IR.
//!
//! While tracing (`mode::TracingGuard`), every op keeps its inputs, so the outputs of a step
//! reach the whole dataflow: forward, loss, the backward built by `backward` or `grad`, the
//! update. Leaves are classified: the step's inputs become [`IrOp::Input`]; leaves that
//! require grad (parameters, `Var`s), variables (`Tensor::variable`: learning rates, step
//! counts, generator states), update targets and the state the trace registered (gradients
//! present before the step) become [`IrOp::Param`] (read from the tensor at each call); every
//! other leaf, and any node recorded outside the trace without inputs, is an [`IrOp::Const`].
//!
//! Every recorded op lowers to itself ([`IrOp::Op`]): data-dependent values such as max-pool's
//! indices are ordinary outputs of their own ops. Index lists given by the user (`gather`,
//! `index_select`, embedding ids) are constants of the trace, like `jax.jit`'s static
//! arguments: pass data that changes per call as tensors.

use super::ir::{Graph, IrOp, Value};
use crate::{Error, Result, Tensor};
use petgraph::stable_graph::NodeIndex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

fn compile_error(reason: String) -> Error {
    Error::InvalidArgument { op: "compile", reason }
}

/// Lowers a trace. Returns the graph and the state leaves its `Param(i)` nodes read.
pub(crate) fn lower(
    inputs: &[Tensor],
    outputs: &[Tensor],
    updates: &[(Tensor, Tensor)],
    extra_state: &[Tensor],
    segments: (&HashSet<usize>, &HashSet<usize>),
    backward: &HashSet<usize>,
) -> Result<(Graph, Vec<Tensor>)> {
    let (recompute, segment_outputs) = segments;
    let extra: HashSet<usize> = extra_state.iter().map(Tensor::id).collect();
    let input_ids: HashMap<usize, usize> = inputs.iter().enumerate().map(|(i, t)| (t.id(), i)).collect();
    let mut state: Vec<Tensor> = Vec::new();
    let mut state_ids: HashMap<usize, usize> = HashMap::new();
    for (i, (target, value)) in updates.iter().enumerate() {
        if !target.is_leaf() || input_ids.contains_key(&target.id()) {
            return Err(compile_error(format!(
                "update {i}: the target must be a parameter or state leaf, not an op result or a step input"
            )));
        }
        if target.shape() != value.shape() || target.dtype() != value.dtype() {
            return Err(Error::ShapeMismatch {
                op: "compile update",
                lhs: target.shape().into(),
                rhs: value.shape().into(),
            });
        }
        if state_ids.insert(target.id(), state.len()).is_some() {
            return Err(compile_error(format!("update {i}: the same leaf is updated twice")));
        }
        state.push(target.clone());
    }
    let mut graph = Graph::default();
    let mut lowered: HashMap<usize, NodeIndex> = HashMap::new();
    // Iterative post-order DFS: (tensor, operands pushed?)
    let roots: Vec<Tensor> = outputs.iter().chain(updates.iter().map(|u| &u.1)).cloned().collect();
    let mut stack: Vec<(Tensor, bool)> = roots.iter().rev().map(|t| (t.clone(), false)).collect();
    while let Some((t, expanded)) = stack.pop() {
        if lowered.contains_key(&t.id()) {
            continue;
        }
        let operands = operands_of(&t, &input_ids);
        if !expanded {
            stack.push((t.clone(), true));
            for o in operands.iter().rev() {
                if !lowered.contains_key(&o.id()) {
                    stack.push((o.clone(), false));
                }
            }
            continue;
        }
        let ins: Vec<Value> = operands.iter().map(|o| Value::of(lowered[&o.id()])).collect();
        let op = if let Some(&i) = input_ids.get(&t.id()) {
            IrOp::Input(i)
        } else if t.inputs().is_empty() {
            if let Some(&j) = state_ids.get(&t.id()) {
                IrOp::Param(j)
            } else if t.is_leaf() && (t.requires_grad() || t.is_variable() || extra.contains(&t.id())) {
                state_ids.insert(t.id(), state.len());
                state.push(t.clone());
                IrOp::Param(state.len() - 1)
            } else {
                IrOp::Const(Arc::new(t.read().clone()))
            }
        } else {
            IrOp::Op(t.op().clone())
        };
        let n = graph.add(op, t.shape().into(), t.dtype(), &ins);
        if recompute.contains(&t.id()) {
            graph.recompute.insert(n);
        }
        if segment_outputs.contains(&t.id()) {
            graph.segment_outputs.insert(n);
        }
        if backward.contains(&t.id()) {
            graph.backward.insert(n);
        }
        lowered.insert(t.id(), n);
    }
    graph.outputs = outputs.iter().map(|t| Value::of(lowered[&t.id()])).collect();
    graph.updates = updates.iter().enumerate().map(|(i, (_, v))| (i, Value::of(lowered[&v.id()]))).collect();
    Ok((graph, state))
}

/// The tensors a node is computed from in the IR (empty for sources).
fn operands_of(t: &Tensor, input_ids: &HashMap<usize, usize>) -> Vec<Tensor> {
    if input_ids.contains_key(&t.id()) {
        return Vec::new();
    }
    t.inputs().to_vec()
}
