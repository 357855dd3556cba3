//! Reverse-mode differentiation: topological order, vector-Jacobian products, accumulation.
//!
//! The engine alone handles ordering and accumulation; each op's rule lives with the op
//! (`op::*::vjp`). Without `create_graph` the VJPs run under `no_grad`, so gradients are plain
//! values; with it, they are recorded and can be differentiated again.

use crate::mode::GradModeGuard;
use crate::{Error, Result, Tensor};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Node ids are addresses: already well spread, so a multiplicative hash is enough (SipHash
/// would dominate the backward pass of small graphs).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_usize(&mut self, id: usize) {
        // Addresses are aligned: fold the high product bits into the low ones hashbrown uses.
        let h = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 29);
    }
}

type IdMap<V> = HashMap<usize, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<usize, BuildHasherDefault<IdHasher>>;

/// Nodes reachable from `roots` through the edges `follow(node, input)` accepts, inputs
/// before users (iterative, so deep graphs do not overflow the stack). `follow` sees every
/// edge once per node expanded, visited input or not.
pub(crate) fn post_order(roots: &[Tensor], mut follow: impl FnMut(&Tensor, &Tensor) -> bool) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited = IdSet::default();
    // (node, whether its inputs were already pushed)
    let mut stack: Vec<(Tensor, bool)> = roots.iter().map(|t| (t.clone(), false)).collect();
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        for input in t.inputs().iter() {
            if follow(&t, input) && !visited.contains(&input.id()) {
                stack.push((input.clone(), false));
            }
        }
    }
    order
}

/// Nodes reachable from `roots` through inputs that require grad, inputs before users; and
/// for each leaf among them, how many edges lead to it (uses by those nodes).
fn topological_order(roots: &[Tensor]) -> (Vec<Tensor>, IdMap<usize>) {
    let mut leaf_uses = IdMap::default();
    let order = post_order(roots, |_, input| {
        if input.requires_grad() && input.is_leaf() {
            *leaf_uses.entry(input.id()).or_insert(0) += 1;
        }
        input.requires_grad()
    });
    (order, leaf_uses)
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        Some(old) => old.add(&g)?,
        None => g,
    });
    Ok(())
}

/// Propagates `seeds` (one per root, of the root's shape) back through the graph and hands
/// `reached` each visited node with its gradient, which is final by then (every user of the
/// node comes earlier in reverse topological order); gradients `reached` does not keep are
/// freed as soon as they have been passed on. A leaf is handed over as soon as its last use
/// has passed its gradient on, not when the order reaches it: a depth-first order puts
/// parameters near its end, and gradient hooks (data-parallel averaging) should hear of each
/// one while backward still runs.
///
/// Only nodes on a path to a `wanted` node get a gradient (inside a checkpointed segment's
/// recomputation, the graph before the segment is not walked again).
fn propagate(
    roots: &[Tensor],
    seeds: Vec<Tensor>,
    create_graph: bool,
    wanted: impl Fn(&Tensor) -> bool,
    reached: impl FnMut(&Tensor, Tensor) -> Result<()>,
) -> Result<()> {
    // a trace marks what backward records, for the compiler's rematerialisation
    crate::trace::backward(|| propagate_now(roots, seeds, create_graph, wanted, reached))
}

fn propagate_now(
    roots: &[Tensor],
    seeds: Vec<Tensor>,
    create_graph: bool,
    wanted: impl Fn(&Tensor) -> bool,
    mut reached: impl FnMut(&Tensor, Tensor) -> Result<()>,
) -> Result<()> {
    let _mode = GradModeGuard::new(create_graph);
    let (order, mut leaf_uses) = topological_order(roots);
    // inputs come before users in `order`
    let mut needed = IdSet::default();
    for node in &order {
        if wanted(node) || node.inputs().iter().any(|i| needed.contains(&i.id())) {
            needed.insert(node.id());
        }
    }
    let mut pending: IdMap<Option<Tensor>> = IdMap::default();
    for (root, seed) in roots.iter().zip(seeds) {
        accumulate(pending.entry(root.id()).or_default(), seed)?;
    }
    for node in order.iter().rev() {
        let Some(g) = pending.remove(&node.id()).flatten() else { continue };
        if !needed.contains(&node.id()) {
            continue;
        }
        // (Nodes recorded while tracing keep inputs even when no gradient flows through them.)
        if node.requires_grad() && !node.inputs().is_empty() {
            let grads = crate::op::vjp(node, &g)?;
            for (input, grad) in node.inputs().iter().zip(grads) {
                if !input.requires_grad() || !needed.contains(&input.id()) {
                    continue;
                }
                if let Some(grad) = grad {
                    accumulate(pending.entry(input.id()).or_default(), grad)?;
                }
                let uses_left = leaf_uses.get_mut(&input.id()).map(|n| {
                    *n -= 1;
                    *n
                });
                if uses_left == Some(0) {
                    if let Some(g) = pending.remove(&input.id()).flatten() {
                        reached(input, g)?;
                    }
                }
            }
        }
        reached(node, g)?;
    }
    Ok(())
}

fn scalar_seed(t: &Tensor, op: &'static str) -> Result<Tensor> {
    if t.numel() != 1 {
        return Err(Error::NonScalarBackward { shape: t.shape().into() });
    }
    if !t.requires_grad() {
        return Err(Error::NoGradient {
            what: format!("{op}: the tensor does not require grad (no input requires grad, or it was made under no_grad)"),
        });
    }
    Tensor::ones(t.shape(), t.dtype())
}

impl Tensor {
    /// Back-propagates from this scalar, adding d(self)/d(leaf) into every leaf's `.grad()`.
    pub fn backward(&self) -> Result<()> {
        let seed = scalar_seed(self, "backward")?;
        self.backward_with(&seed)
    }

    /// Back-propagates with an explicit seed gradient of this tensor's shape.
    pub fn backward_with(&self, seed: &Tensor) -> Result<()> {
        if seed.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "backward_with",
                lhs: self.shape().into(),
                rhs: seed.shape().into(),
            });
        }
        self.same_dtype(seed, "backward_with")?;
        if !self.requires_grad() {
            return Err(Error::NoGradient { what: "backward: the tensor does not require grad".into() });
        }
        // Gradient hooks (`hooks`) hear of each leaf as soon as its gradient is accumulated.
        let hooked = crate::hooks::any();
        propagate(std::slice::from_ref(self), vec![seed.detach()], false, Tensor::is_leaf, |node, g| {
            if node.is_leaf() {
                accumulate(&mut node.grad_slot(), g)?;
                if hooked {
                    crate::hooks::fire(crate::hooks::GradEvent::Ready(node))?;
                }
            }
            Ok(())
        })?;
        if hooked {
            crate::hooks::fire(crate::hooks::GradEvent::Finished)?;
        }
        Ok(())
    }
}

/// Gradients of the sum of the scalar `outputs` with respect to `inputs` (like
/// `torch.autograd.grad`). With `create_graph` the results are themselves differentiable
/// (second-order gradients). An input the outputs do not depend on gets zeros.
pub fn grad(outputs: &[Tensor], inputs: &[Tensor], create_graph: bool) -> Result<Vec<Tensor>> {
    let seeds = outputs.iter().map(|o| scalar_seed(o, "grad")).collect::<Result<Vec<_>>>()?;
    grad_with_seeds(outputs, seeds, inputs, create_graph)
}

/// [`grad`] with explicit seed gradients (vector-Jacobian products of non-scalar outputs).
pub fn grad_with_seeds(
    outputs: &[Tensor],
    seeds: Vec<Tensor>,
    inputs: &[Tensor],
    create_graph: bool,
) -> Result<Vec<Tensor>> {
    if outputs.len() != seeds.len() {
        crate::bail!("grad", "{} outputs but {} seeds", outputs.len(), seeds.len());
    }
    for (o, s) in outputs.iter().zip(&seeds) {
        if o.shape() != s.shape() {
            return Err(Error::ShapeMismatch { op: "grad", lhs: o.shape().into(), rhs: s.shape().into() });
        }
        o.same_dtype(s, "grad")?;
    }
    for (i, input) in inputs.iter().enumerate() {
        if !input.requires_grad() {
            return Err(Error::NoGradient {
                what: format!("input {i} (shape {:?}) does not require grad", input.shape()),
            });
        }
    }
    let wanted: IdSet = inputs.iter().map(Tensor::id).collect();
    let mut found: IdMap<Tensor> = IdMap::default();
    propagate(
        outputs,
        seeds,
        create_graph,
        |t| wanted.contains(&t.id()),
        |node, g| {
            if wanted.contains(&node.id()) {
                found.insert(node.id(), g);
            }
            Ok(())
        },
    )?;
    inputs
        .iter()
        .map(|i| found.get(&i.id()).cloned().map_or_else(|| Tensor::zeros(i.shape(), i.dtype()), Ok))
        .collect()
}
