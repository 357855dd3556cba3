//! Algebraic simplification: rewrites that remove work without changing any value.
//!
//! - `x·1`, `1·x`, `x+0`, `0+x`, `x−0`, `x/1` (the constant all ones / zeros, the result of
//!   `x`'s own shape and dtype), and the scalar forms `mul(1)`, `add(0)`, `pow(1)`, are `x`;
//! - strength reduction: `pow(2)` is `square`, `pow(3)` is `square(x)·x`, `pow(0.5)` is
//!   `sqrt`, `pow(-1)` is `recip` (a multiply instead of `powf`: within an ulp or two);
//! - `permute(q)` of `permute(p)` is one permute, or `x` when the composition is the identity
//!   (a double transpose);
//! - a matrix product of a transpose (a permute that swaps the last two axes: `x.matmul(&w.t())`)
//!   reads the transpose's operand with the product's transpose flag flipped, and a
//!   transpose of a product read nowhere else is the product of the transposed operands in
//!   swapped order, so no transposed copy is made;
//! - `reshape` of `reshape` reshapes the original; a reshape, expand or cast to the shape and
//!   dtype the value already has is the value;
//! - a sum of zero-padded pieces that sit side by side along one axis (the gradient of a
//!   value read in slices: an LSTM's input projection, read one time step at a time) is their
//!   concatenation, padded once: one pass over the result instead of a full-size pad and add
//!   per piece;
//! - a sum of products `Σ aᵢ·bᵢ` (a weight's gradient summed over an RNN's time steps) is one
//!   product of the operands joined along the contracted axis;
//! - a slice of an elementwise result read only in slices (an LSTM's gates, cut from one
//!   pre-activation `x·W_ih + h·W_hh`) is the elementwise op of the operands' slices, so each
//!   slice fuses with the ops that read it and the whole result is never stored;
//! - ReLU's backward behind a max pool, a comparison of the pool's input times the pool's
//!   backward (`(r > 0)·pool_backward(g)`), is the pool's backward of the gradient masked by
//!   the same comparison of the pooled values (`pool_backward(g·(y > 0))`) when no two windows
//!   share a cell: each cell gets one window's gradient or none, and the winning cell's value
//!   is the pooled value. The mask then runs over the pooled output instead of the pool's
//!   input (a quarter of it for 2×2 windows), and neither the masked full-size value nor the
//!   pool's input is kept for it. The values are the same, a zero's sign aside (`0 + g·0` is
//!   +0 where `(0 + g)·0` is −0 for a negative `g`).

use super::Pass;
use crate::compile::ir::{Graph, IrOp, Value};
use crate::op::{MovementOp, Op, PoolOp};
use crate::Result;
use graphgrad_ops::binary::BinaryOp;
use graphgrad_ops::unary::UnaryOp;
use graphgrad_ops::Shape;
use petgraph::stable_graph::NodeIndex;

/// Applies the identities in the module docs until none applies.
pub struct SimplifyAlgebra;

impl Pass for SimplifyAlgebra {
    fn name(&self) -> &'static str {
        "simplify"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        simplify_algebra(graph);
        Ok(())
    }
}

/// One rewrite: the node's value is another value, or the node gets a new op and operands.
enum Rewrite {
    Forward(Value),
    Replace(Op, Value),
    /// `x³` as `x²·x`.
    Cube(Value),
}

/// Simplifies in topological order (operands first, so chains collapse in one sweep).
pub fn simplify_algebra(graph: &mut Graph) {
    for n in graph.topo_order() {
        if let Some(merged) = concatenated_pads(graph, n).or_else(|| concatenated_products(graph, n)) {
            graph.replace_uses(Value::of(n), merged);
            continue;
        }
        if let Some((op, operands)) = transposes_read_in_place(graph, n) {
            graph.g[n].op = IrOp::Op(op);
            graph.set_inputs(n, &operands);
            continue;
        }
        if slices_through_elementwise(graph, n) || mask_before_max_pool_backward(graph, n) {
            continue;
        }
        match rewrite(graph, n) {
            Some(Rewrite::Forward(v)) => graph.replace_uses(Value::of(n), v),
            Some(Rewrite::Replace(op, v)) => {
                graph.g[n].op = IrOp::Op(op);
                graph.set_inputs(n, &[v]);
            }
            Some(Rewrite::Cube(x)) => {
                let info = graph.info(x).clone();
                let square = graph.add(IrOp::Op(Op::Unary(UnaryOp::Square)), info.shape, info.dtype, &[x]);
                graph.g[n].op = IrOp::Op(Op::Binary(BinaryOp::Mul));
                graph.set_inputs(n, &[Value::of(square), x]);
            }
            None => {}
        }
    }
}

/// The operand of `v` when `v` is a transpose of its last two axes.
fn untransposed(graph: &Graph, v: Value) -> Option<Value> {
    let IrOp::Op(Op::Movement(MovementOp::Permute(p))) = &graph.g[v.node].op else { return None };
    let r = p.len();
    let swaps_last_two = r >= 2
        && p[r - 2] == r - 1
        && p[r - 1] == r - 2
        && p[..r - 2].iter().enumerate().all(|(i, &a)| a == i);
    swaps_last_two.then(|| graph.inputs(v.node)[0])
}

/// A matrix product with each operand that is a transpose of its last two axes replaced by
/// the transpose's operand, its flag flipped; or a transpose of a product read nowhere else,
/// `(A·B)ᵀ`, as the product `Bᵀ·Aᵀ` (a weight's gradient through `x.matmul(&w.t())`);
/// `None` when neither applies.
fn transposes_read_in_place(graph: &Graph, n: NodeIndex) -> Option<(Op, [Value; 2])> {
    if let Some(product) = untransposed(graph, Value::of(n)) {
        let IrOp::Op(Op::MatMul { trans_a, trans_b }) = graph.g[product.node].op else { return None };
        if graph.use_count(product) != 1 {
            return None;
        }
        let ins = graph.inputs(product.node);
        return Some((Op::MatMul { trans_a: !trans_b, trans_b: !trans_a }, [ins[1], ins[0]]));
    }
    let IrOp::Op(Op::MatMul { trans_a, trans_b }) = graph.g[n].op else { return None };
    let ins = graph.inputs(n);
    let (a, b) = (untransposed(graph, ins[0]), untransposed(graph, ins[1]));
    if a.is_none() && b.is_none() {
        return None;
    }
    let op = Op::MatMul { trans_a: trans_a ^ a.is_some(), trans_b: trans_b ^ b.is_some() };
    Some((op, [a.unwrap_or(ins[0]), b.unwrap_or(ins[1])]))
}

/// When `n` narrows the result `w` of a unary or binary elementwise op, and `w` is read only
/// by narrows that are read only by elementwise ops (so every slice fuses with its readers):
/// each of those narrows becomes the op applied to the same slice of each operand (operands
/// broadcast along the axis are read whole), and `w` dies. One level only: the operands stay
/// whole values (a bias added to a product stays in the product's epilogue). True when it
/// applied.
fn slices_through_elementwise(graph: &mut Graph, n: NodeIndex) -> bool {
    if !is_narrow(graph, n) {
        return false;
    }
    let w = graph.inputs(n)[0];
    let IrOp::Op(op @ (Op::Unary(_) | Op::Binary(_))) = &graph.g[w.node].op else { return false };
    let op = op.clone();
    let mut slices = graph.users(w.node);
    slices.sort();
    slices.dedup();
    let read_for_fusion = |u: &NodeIndex| {
        is_narrow(graph, *u)
            && graph
                .users(*u)
                .iter()
                .all(|&r| matches!(graph.g[r].op, IrOp::Op(Op::Unary(_) | Op::Binary(_) | Op::Where)))
    };
    if graph.is_result(w) || !slices.iter().all(read_for_fusion) {
        return false;
    }
    let rank = graph.info(w).shape.len();
    for slice in slices {
        let IrOp::Op(Op::Movement(MovementOp::Narrow { axis, start, len })) = graph.g[slice].op else {
            continue;
        };
        let mut operands = Vec::new();
        for v in graph.inputs(w.node) {
            let info = graph.info(v).clone();
            // the operand's axis under the output's, aligned from the right as broadcasting does
            let aligned = (axis + info.shape.len()).checked_sub(rank).filter(|&a| info.shape[a] != 1);
            let Some(a) = aligned else {
                operands.push(v);
                continue;
            };
            let mut shape = info.shape;
            shape[a] = len;
            let cut = MovementOp::Narrow { axis: a, start, len };
            operands.push(Value::of(graph.add(IrOp::Op(Op::Movement(cut)), shape, info.dtype, &[v])));
        }
        graph.g[slice].op = IrOp::Op(op.clone());
        graph.set_inputs(slice, &operands);
    }
    true
}

/// When `n` multiplies a comparison of a max pool's input `r` with a constant by that pool's
/// gradient, read nowhere else, and no two of the pool's windows overlap: `n` becomes the
/// gradient of the same comparison of the pooled values (read from the forward pass's
/// `max_pool2d(r, indices)`) times the incoming gradient. True when it applied.
fn mask_before_max_pool_backward(graph: &mut Graph, n: NodeIndex) -> bool {
    let IrOp::Op(Op::Binary(BinaryOp::Mul)) = graph.g[n].op else { return false };
    let ins = graph.inputs(n);
    let pool_grad = |v: Value| match graph.g[v.node].op {
        IrOp::Op(Op::Pool(PoolOp::MaxPool2dBackward(geo))) => Some(geo),
        _ => None,
    };
    let (mask, backward, geo) = match (pool_grad(ins[0]), pool_grad(ins[1])) {
        (Some(geo), _) => (ins[1], ins[0], geo),
        (None, Some(geo)) => (ins[0], ins[1], geo),
        (None, None) => return false,
    };
    let disjoint = geo.stride.0 >= geo.kernel.0 && geo.stride.1 >= geo.kernel.1;
    let IrOp::Op(Op::Binary(cmp)) = graph.g[mask.node].op else { return false };
    let comparison = matches!(
        cmp,
        BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Eq | BinaryOp::Ne
    );
    let [g, indices] = graph.inputs(backward.node)[..] else { return false };
    let [r, c] = graph.inputs(mask.node)[..] else { return false };
    let finds_cells_of_r = matches!(graph.g[indices.node].op, IrOp::Op(Op::Pool(PoolOp::MaxPool2dIndices(i))) if i == geo)
        && graph.inputs(indices.node)[..] == [r];
    let constant =
        matches!(graph.g[c.node].op, IrOp::Const(_)) && graph.info(c).shape.iter().all(|&d| d == 1);
    let whole = graph.info(mask) == graph.info(Value::of(n)) && graph.info(backward) == graph.info(mask);
    if !(disjoint && comparison && finds_cells_of_r && constant && whole) || graph.use_count(backward) != 1 {
        return false;
    }
    // the forward pass's pooled values: the rewrite adds no forward work
    let pooled = graph.users(indices.node).into_iter().find(|&u| {
        matches!(graph.g[u].op, IrOp::Op(Op::Pool(PoolOp::MaxPool2d(p))) if p == geo)
            && graph.inputs(u)[..] == [r, indices]
    });
    let Some(pooled) = pooled else { return false };
    let (shape, dtype) = (graph.info(g).shape.clone(), graph.info(g).dtype);
    let small_mask = graph.add(IrOp::Op(Op::Binary(cmp)), shape.clone(), dtype, &[Value::of(pooled), c]);
    let masked = graph.add(IrOp::Op(Op::Binary(BinaryOp::Mul)), shape, dtype, &[g, Value::of(small_mask)]);
    if graph.backward.contains(&n) {
        graph.backward.extend([small_mask, masked]);
    }
    graph.g[n].op = IrOp::Op(Op::Pool(PoolOp::MaxPool2dBackward(geo)));
    graph.set_inputs(n, &[Value::of(masked), indices]);
    true
}

fn is_narrow(graph: &Graph, n: NodeIndex) -> bool {
    matches!(graph.g[n].op, IrOp::Op(Op::Movement(MovementOp::Narrow { .. })))
}

/// A zero padding of `x` along one axis: `(x, axis, before, after)`.
fn padded_piece(graph: &Graph, v: Value) -> Option<(Value, usize, usize, usize)> {
    let IrOp::Op(Op::Movement(MovementOp::Pad { pads, value })) = &graph.g[v.node].op else { return None };
    let mut padded = pads.iter().enumerate().filter(|(_, p)| **p != (0, 0));
    let (axis, &(before, after)) = padded.next()?;
    (*value == 0.0 && padded.next().is_none()).then(|| (graph.inputs(v.node)[0], axis, before, after))
}

/// When `n` is the root of a tree of adds (its inner adds read by nothing else, of its shape
/// and type): the tree's leaves, at least two (`None` otherwise, and for an inner add, which
/// is rewritten with its root).
fn add_tree_leaves(graph: &Graph, n: NodeIndex) -> Option<Vec<Value>> {
    let is_add = |m: NodeIndex| matches!(graph.g[m].op, IrOp::Op(Op::Binary(BinaryOp::Add)));
    if !is_add(n) {
        return None;
    }
    let out = &graph.g[n].outs[0];
    let inner =
        |m: NodeIndex| is_add(m) && graph.use_count(Value::of(m)) == 1 && graph.info(Value::of(m)) == out;
    if graph.users(n).iter().any(|&u| is_add(u)) && inner(n) {
        return None;
    }
    let (mut leaves, mut stack) = (Vec::new(), vec![n]);
    while let Some(m) = stack.pop() {
        for v in graph.inputs(m) {
            if v.port == 0 && inner(v.node) {
                stack.push(v.node);
            } else {
                leaves.push(v);
            }
        }
    }
    (leaves.len() >= 2).then_some(leaves)
}

/// When `n` sums zero paddings of pieces that tile a range of one axis without overlap: that
/// sum as one `cat` of the pieces in order, padded once.
fn concatenated_pads(graph: &mut Graph, n: NodeIndex) -> Option<Value> {
    let leaves = add_tree_leaves(graph, n)?;
    let out = graph.g[n].outs[0].clone();
    let mut pieces = Vec::with_capacity(leaves.len());
    for &leaf in &leaves {
        if graph.info(leaf) != &out {
            return None;
        }
        pieces.push(padded_piece(graph, leaf)?);
    }
    let axis = pieces[0].1;
    if pieces.iter().any(|p| p.1 != axis) {
        return None;
    }
    pieces.sort_by_key(|p| p.2);
    let full = out.shape[axis];
    // side by side: each piece starts where the one before it ends
    let fits = pieces.windows(2).all(|w| full - w[0].3 == w[1].2);
    if !fits {
        return None;
    }
    let (first, last) = (pieces[0].2, pieces[pieces.len() - 1].3);
    let mut joined_shape = out.shape.clone();
    joined_shape[axis] = full - first - last;
    let parts: Vec<Value> = pieces.iter().map(|p| p.0).collect();
    let cat = graph.add(IrOp::Op(Op::Movement(MovementOp::Cat { axis })), joined_shape, out.dtype, &parts);
    if first == 0 && last == 0 {
        return Some(Value::of(cat));
    }
    let mut pads: smallvec::SmallVec<[(usize, usize); 6]> = smallvec::smallvec![(0, 0); out.shape.len()];
    pads[axis] = (first, last);
    let pad = graph.add(
        IrOp::Op(Op::Movement(MovementOp::Pad { pads, value: 0.0 })),
        out.shape,
        out.dtype,
        &[Value::of(cat)],
    );
    Some(Value::of(pad))
}

/// When `n` sums products of one kind (the same transposition flags, rank 2, read by nothing
/// else), `Σ aᵢ·bᵢ`: one product of the operands joined along the contracted axis,
/// `[a₁ … aₖ]·[b₁; …; bₖ]`. One GEMM with a long inner dimension instead of k short ones and
/// k − 1 adds: an RNN's recurrent weight gradient, one product per time step.
fn concatenated_products(graph: &mut Graph, n: NodeIndex) -> Option<Value> {
    let leaves = add_tree_leaves(graph, n)?;
    let out = graph.g[n].outs[0].clone();
    let mut flags = None;
    let (mut a_parts, mut b_parts) = (Vec::new(), Vec::new());
    for &leaf in &leaves {
        let IrOp::Op(Op::MatMul { trans_a, trans_b }) = graph.g[leaf.node].op else { return None };
        let ins = graph.inputs(leaf.node);
        let single = graph.use_count(leaf) == 1 && !graph.is_result(leaf) && graph.info(leaf) == &out;
        let rank2 = graph.info(ins[0]).shape.len() == 2 && graph.info(ins[1]).shape.len() == 2;
        if !single || !rank2 || *flags.get_or_insert((trans_a, trans_b)) != (trans_a, trans_b) {
            return None;
        }
        a_parts.push(ins[0]);
        b_parts.push(ins[1]);
    }
    let (trans_a, trans_b) = flags?;
    let mut join = |parts: &[Value], axis: usize| {
        let mut shape = graph.info(parts[0]).shape.clone();
        shape[axis] = parts.iter().map(|&p| graph.info(p).shape[axis]).sum();
        Value::of(graph.add(IrOp::Op(Op::Movement(MovementOp::Cat { axis })), shape, out.dtype, parts))
    };
    let a = join(&a_parts, if trans_a { 0 } else { 1 });
    let b = join(&b_parts, if trans_b { 1 } else { 0 });
    Some(Value::of(graph.add(IrOp::Op(Op::MatMul { trans_a, trans_b }), out.shape, out.dtype, &[a, b])))
}

/// True when every element of `v` equals `c`: a constant, possibly reshaped or broadcast.
fn is_splat(graph: &Graph, v: Value, c: f64) -> bool {
    match &graph.g[v.node].op {
        IrOp::Const(b) => b.to_f64_vec().iter().all(|&x| x == c),
        IrOp::Op(Op::Movement(MovementOp::Expand(_) | MovementOp::Reshape(_))) => {
            is_splat(graph, graph.inputs(v.node)[0], c)
        }
        _ => false,
    }
}

fn rewrite(graph: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<Rewrite> {
    let IrOp::Op(op) = &graph.g[n].op else { return None };
    let ins = graph.inputs(n);
    let out = &graph.g[n].outs[0];
    // `v` may stand for the node only when it has the node's shape and dtype.
    let same = |v: Value| graph.info(v) == out;
    match op {
        Op::Unary(UnaryOp::MulScalar(c)) if *c == 1.0 => Some(Rewrite::Forward(ins[0])),
        Op::Unary(UnaryOp::AddScalar(c)) if *c == 0.0 => Some(Rewrite::Forward(ins[0])),
        Op::Unary(UnaryOp::PowScalar(p)) if *p == 1.0 => Some(Rewrite::Forward(ins[0])),
        // strength reduction: powf is an order of magnitude slower than a multiply
        Op::Unary(UnaryOp::PowScalar(p)) if *p == 2.0 => {
            Some(Rewrite::Replace(Op::Unary(UnaryOp::Square), ins[0]))
        }
        Op::Unary(UnaryOp::PowScalar(p)) if *p == 0.5 => {
            Some(Rewrite::Replace(Op::Unary(UnaryOp::Sqrt), ins[0]))
        }
        Op::Unary(UnaryOp::PowScalar(p)) if *p == -1.0 => {
            Some(Rewrite::Replace(Op::Unary(UnaryOp::Recip), ins[0]))
        }
        Op::Unary(UnaryOp::PowScalar(p)) if *p == 3.0 => Some(Rewrite::Cube(ins[0])),
        Op::Binary(b) => {
            let (x, y) = (ins[0], ins[1]);
            let identity_rhs = match b {
                BinaryOp::Mul | BinaryOp::Div => Some(1.0),
                BinaryOp::Add | BinaryOp::Sub => Some(0.0),
                _ => None,
            };
            let identity_lhs = match b {
                BinaryOp::Mul => Some(1.0),
                BinaryOp::Add => Some(0.0),
                _ => None,
            };
            if identity_rhs.is_some_and(|c| is_splat(graph, y, c)) && same(x) {
                Some(Rewrite::Forward(x))
            } else if identity_lhs.is_some_and(|c| is_splat(graph, x, c)) && same(y) {
                Some(Rewrite::Forward(y))
            } else {
                None
            }
        }
        Op::Movement(MovementOp::Reshape(_) | MovementOp::Expand(_)) | Op::Cast(_) if same(ins[0]) => {
            Some(Rewrite::Forward(ins[0]))
        }
        Op::Movement(MovementOp::Reshape(_)) => match &graph.g[ins[0].node].op {
            IrOp::Op(Op::Movement(MovementOp::Reshape(_))) => {
                Some(Rewrite::Replace(op.clone(), graph.inputs(ins[0].node)[0]))
            }
            _ => None,
        },
        Op::Movement(MovementOp::Permute(outer)) => match &graph.g[ins[0].node].op {
            IrOp::Op(Op::Movement(MovementOp::Permute(inner))) => {
                // out axis i = mid axis outer[i] = src axis inner[outer[i]]
                let composed: Shape = outer.iter().map(|&i| inner[i]).collect();
                let src = graph.inputs(ins[0].node)[0];
                if composed.iter().enumerate().all(|(i, &a)| i == a) {
                    Some(Rewrite::Forward(src))
                } else {
                    Some(Rewrite::Replace(Op::Movement(MovementOp::Permute(composed)), src))
                }
            }
            _ => None,
        },
        _ => None,
    }
}
