//! Elementwise fusion: chains of unary, binary, `where` and broadcast (`expand`) ops over one
//! shape, and the sum / mean / max / min reductions that consume them, become one
//! [`FusedKernel`] that reads its operands once and writes only the values read elsewhere.
//!
//! Grouping (greedy, operands first): an elementwise node joins the groups of its operands
//! that iterate over its own shape (merging them), provided the result stays *convex*: no
//! path may leave the group and come back, or the fused node would depend on itself. The
//! check walks back from the new group's external operands, over nodes no earlier in topological
//! order than the group's first member, and fails if it reaches a member. When merging all
//! candidate groups is illegal, joining a single one is tried, else the node starts a group.
//! A node of the backward pass joins only groups that already hold backward nodes, and each
//! backward group then merges with the forward groups it reads where the union stays convex:
//! a forward chain and its whole backward (a GELU's) become one kernel, while a derivative
//! whose other readers run later (an LSTM gate's σ', read after the next time steps) is
//! computed by the backward kernel instead of being stored by the forward one.
//! A group of recomputed values (remat's clones) then joins the latest backward group over its
//! shape that reads one of the same operands, where the union stays convex: the GELU that
//! dW₂ reads is recomputed by its derivative's kernel, which loads the same input.
//! A reduction then joins the group computing its operand as an extra, reduced output.
//! Constants whose elements are all equal become immediates; every other operand is a
//! broadcast load, and a slice of a larger value (`narrow`) is loaded from the larger value at
//! the slice's strides, so it is never copied.

use super::Pass;
use crate::compile::ir::{Graph, IrOp, Value, ValueInfo};
use crate::compile::kernel::{FusedKernel, FusedOutput, Instr, Operand, Reg};
use crate::op::{MovementOp, Op};
use crate::Result;
use graphgrad_ops::binary::BinaryOp;
use graphgrad_ops::reduce::ReduceOp;
use graphgrad_ops::unary::UnaryOp;
use graphgrad_ops::{numel, DType, Shape};
use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;
use smallvec::SmallVec;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Fuses elementwise chains and their reductions (see the module docs).
pub struct FuseElementwise;

impl Pass for FuseElementwise {
    fn name(&self) -> &'static str {
        "fuse"
    }

    fn run(&self, graph: &mut Graph) -> Result<()> {
        fuse_elementwise(graph);
        Ok(())
    }
}

/// The per-element instruction of an op the fuser takes (`Broadcast`: an expand, which is a
/// load with other strides); `None` for every other op.
enum Elementwise {
    Unary(UnaryOp),
    Binary(BinaryOp),
    Where,
    Broadcast,
}

fn elementwise(op: &IrOp) -> Option<Elementwise> {
    match op {
        IrOp::Op(Op::Unary(u)) => Some(Elementwise::Unary(*u)),
        IrOp::Op(Op::Binary(b)) => Some(Elementwise::Binary(*b)),
        IrOp::Op(Op::Where) => Some(Elementwise::Where),
        IrOp::Op(Op::Movement(MovementOp::Expand(_))) => Some(Elementwise::Broadcast),
        _ => None,
    }
}

fn is_elementwise(op: &IrOp) -> bool {
    elementwise(op).is_some()
}

/// The reduction of a node the fuser can fold into a kernel's output.
fn fusible_reduce(op: &IrOp) -> Option<(ReduceOp, &Shape)> {
    match op {
        IrOp::Op(Op::Reduce {
            op: r @ (ReduceOp::Sum | ReduceOp::Mean | ReduceOp::Max | ReduceOp::Min),
            axes,
            ..
        }) => Some((*r, axes)),
        _ => None,
    }
}

struct Group {
    members: Vec<NodeIndex>,
    shape: Shape,
    dtype: DType,
    min_pos: usize,
    /// Holds a node of the backward pass (or a value recomputed for it).
    backward: bool,
}

struct Grouping<'g> {
    graph: &'g Graph,
    pos: HashMap<NodeIndex, usize>,
    group_of: HashMap<NodeIndex, usize>,
    groups: Vec<Option<Group>>,
}

impl Grouping<'_> {
    /// True when some node in `from` reaches a member of `members` by walking operands over
    /// nodes later than `min_pos`.
    fn reaches(&self, from: &[Value], members: &HashSet<NodeIndex>, min_pos: usize) -> bool {
        let mut seen = HashSet::new();
        let mut stack: Vec<NodeIndex> = from.iter().map(|v| v.node).collect();
        while let Some(n) = stack.pop() {
            if self.pos[&n] < min_pos || !seen.insert(n) {
                continue;
            }
            if members.contains(&n) {
                return true;
            }
            stack.extend(self.graph.g.neighbors_directed(n, Direction::Incoming));
        }
        false
    }

    /// The members of groups `ids` and the earliest position among them.
    fn union(&self, ids: &[usize]) -> (HashSet<NodeIndex>, usize) {
        let mut members: HashSet<NodeIndex> = HashSet::new();
        let mut min_pos = usize::MAX;
        for &c in ids {
            let g = self.groups[c].as_ref().expect("internal invariant: candidate group is alive");
            members.extend(g.members.iter().copied());
            min_pos = min_pos.min(g.min_pos);
        }
        (members, min_pos)
    }

    /// True when no path leaves `members` from an operand of a node in `check` and comes back.
    fn convex(&self, members: &HashSet<NodeIndex>, min_pos: usize, check: &[NodeIndex]) -> bool {
        let externals: Vec<Value> =
            check.iter().flat_map(|&m| self.graph.inputs(m)).filter(|v| !members.contains(&v.node)).collect();
        !self.reaches(&externals, members, min_pos)
    }

    /// Whether `n` may join the union of `cands` (see the module docs); a single group is
    /// already convex, so only `n`'s operands need checking then.
    fn legal(&self, cands: &[usize], n: NodeIndex) -> bool {
        let (mut members, min_pos) = self.union(cands);
        members.insert(n);
        let check: Vec<NodeIndex> = if cands.len() > 1 { members.iter().copied().collect() } else { vec![n] };
        self.convex(&members, min_pos.min(self.pos[&n]), &check)
    }

    /// Whether the groups `ids` may become one.
    fn legal_union(&self, ids: &[usize]) -> bool {
        let (members, min_pos) = self.union(ids);
        let check: Vec<NodeIndex> = members.iter().copied().collect();
        self.convex(&members, min_pos, &check)
    }

    /// Sorts candidate groups latest-started first: the most likely to be legal and to save
    /// a store.
    fn latest_first(&self, cands: &mut [usize]) {
        cands.sort_by_key(|&c| std::cmp::Reverse(self.groups[c].as_ref().map_or(0, |g| g.min_pos)));
    }

    /// Moves the members of group `from` into group `target`.
    fn absorb(&mut self, target: usize, from: usize) {
        let g = self.groups[from].take().expect("internal invariant: merged group is alive");
        for &m in &g.members {
            self.group_of.insert(m, target);
        }
        let t = self.groups[target].as_mut().expect("internal invariant: target group is alive");
        t.members.extend(g.members);
        t.min_pos = t.min_pos.min(g.min_pos);
        t.backward |= g.backward;
    }

    /// Merges each backward group with the forward groups over its shape that it reads, when
    /// the union stays convex: a forward chain and its whole backward (a GELU's) are one
    /// kernel, while a backward value whose other readers come later (the derivatives of an
    /// LSTM's gates) stays with them instead of being stored by the forward kernel.
    fn merge_backward_into_forward(&mut self) {
        for b in 0..self.groups.len() {
            let Some(g) = &self.groups[b] else { continue };
            if !g.backward {
                continue;
            }
            let mut cands: Vec<usize> = Vec::new();
            for &m in &g.members {
                for v in self.graph.inputs(m) {
                    let Some(&f) = self.group_of.get(&v.node) else { continue };
                    let fg = self.groups[f].as_ref().expect("internal invariant: member's group is alive");
                    if !fg.backward && fg.shape == g.shape && fg.dtype == g.dtype && !cands.contains(&f) {
                        cands.push(f);
                    }
                }
            }
            let mut all = cands.clone();
            all.push(b);
            let chosen: Vec<usize> = if self.legal_union(&all) {
                cands
            } else {
                self.latest_first(&mut cands);
                cands.into_iter().find(|&f| self.legal_union(&[f, b])).into_iter().collect()
            };
            for f in chosen {
                self.absorb(b, f);
            }
        }
    }

    /// The storage roots (through views) of the operands group `g` reads from outside it.
    fn external_roots(&self, g: usize) -> HashSet<NodeIndex> {
        let group = self.groups[g].as_ref().expect("internal invariant: group is alive");
        let mut roots = HashSet::new();
        for &m in &group.members {
            for v in self.graph.inputs(m) {
                if self.group_of.get(&v.node) == Some(&g) {
                    continue;
                }
                let mut n = v.node;
                while matches!(&self.graph.g[n].op, IrOp::Op(op) if op.is_view()) {
                    n = self.graph.inputs(n)[0].node;
                }
                roots.insert(n);
            }
        }
        roots
    }

    /// Merges each group of recomputed values (all its members `late`) into a backward group
    /// over its shape that reads one of the same operands, where the union stays convex: a
    /// GELU recomputed for its backward runs in its derivative's kernel, which loads the same
    /// input (and, generated, evaluates one `erf` for both).
    fn merge_recomputed_into_siblings(&mut self) {
        // Latest siblings first: the closest to where the values are read, not one whose kernel
        // runs early (reading a parameter's gradient, say) and holds them from there.
        let last = |g: &Option<Group>| {
            g.as_ref().map_or(0, |h| h.members.iter().map(|m| self.pos[m]).max().unwrap_or(0))
        };
        let mut latest_first: Vec<usize> = (0..self.groups.len()).collect();
        latest_first.sort_by_key(|&b| std::cmp::Reverse(last(&self.groups[b])));
        for r in 0..self.groups.len() {
            let Some(g) = &self.groups[r] else { continue };
            if !g.members.iter().all(|m| self.graph.late.contains(m)) {
                continue;
            }
            let (shape, dtype) = (g.shape.clone(), g.dtype);
            let roots = self.external_roots(r);
            let sibling = latest_first.iter().copied().find(|&b| {
                b != r
                    && self.groups[b].as_ref().is_some_and(|h| {
                        h.backward
                            && h.shape == shape
                            && h.dtype == dtype
                            && !h.members.iter().all(|m| self.graph.late.contains(m))
                    })
                    && !self.external_roots(b).is_disjoint(&roots)
                    && self.legal_union(&[b, r])
            });
            if let Some(b) = sibling {
                self.absorb(b, r);
            }
        }
    }

    fn join(&mut self, cands: &[usize], n: NodeIndex, shape: Shape, dtype: DType) {
        let target = match cands.first() {
            Some(&t) => t,
            None => {
                self.groups.push(Some(Group {
                    members: Vec::new(),
                    shape,
                    dtype,
                    min_pos: usize::MAX,
                    backward: false,
                }));
                self.groups.len() - 1
            }
        };
        for &c in &cands[cands.len().min(1)..] {
            self.absorb(target, c);
        }
        let backward = self.graph.is_backward(n);
        let t = self.groups[target].as_mut().expect("internal invariant: target group is alive");
        t.members.push(n);
        t.min_pos = t.min_pos.min(self.pos[&n]);
        t.backward |= backward;
        self.group_of.insert(n, target);
    }
}

/// Forms groups and replaces each by a fused node.
pub fn fuse_elementwise(graph: &mut Graph) {
    let order = graph.topo_order();
    let mut grouping = Grouping {
        graph,
        pos: order.iter().enumerate().map(|(i, &n)| (n, i)).collect(),
        group_of: HashMap::new(),
        groups: Vec::new(),
    };
    let mut reductions: Vec<(usize, NodeIndex)> = Vec::new();
    for &n in &order {
        let node = &grouping.graph.g[n];
        if fusible_reduce(&node.op).is_some() {
            let input = grouping.graph.inputs(n)[0];
            if let Some(&g) = grouping.group_of.get(&input.node) {
                reductions.push((g, n));
            }
            continue;
        }
        // integer data (a broadcast of labels) only moves: kernels compute in floats
        if !is_elementwise(&node.op) || !node.outs[0].dtype.is_float() {
            continue;
        }
        let (shape, dtype) = (node.outs[0].shape.clone(), node.outs[0].dtype);
        let mut cands: Vec<usize> = Vec::new();
        let backward = grouping.graph.is_backward(n);
        if !matches!(node.op, IrOp::Op(Op::Movement(MovementOp::Expand(_)))) {
            for v in grouping.graph.inputs(n) {
                if let Some(&g) = grouping.group_of.get(&v.node) {
                    let grp =
                        grouping.groups[g].as_ref().expect("internal invariant: member's group is alive");
                    // a backward value computed in a forward kernel is one more store there
                    let phase_fits = grp.backward || !backward;
                    if grp.shape == shape && grp.dtype == dtype && phase_fits && !cands.contains(&g) {
                        cands.push(g);
                    }
                }
            }
        }
        let chosen: Vec<usize> = if cands.is_empty() || grouping.legal(&cands, n) {
            cands
        } else {
            grouping.latest_first(&mut cands);
            cands.into_iter().find(|&c| grouping.legal(&[c], n)).into_iter().collect()
        };
        grouping.join(&chosen, n, shape, dtype);
    }
    grouping.merge_backward_into_forward();
    grouping.merge_recomputed_into_siblings();
    // A reduction's group may have been merged into another since: follow the members.
    let mut reduce_of: HashMap<usize, Vec<NodeIndex>> = HashMap::new();
    for (_, r) in reductions {
        let input = grouping.graph.inputs(r)[0];
        reduce_of.entry(grouping.group_of[&input.node]).or_default().push(r);
    }
    let pos = grouping.pos;
    let groups: Vec<(Group, Vec<NodeIndex>)> = grouping
        .groups
        .into_iter()
        .enumerate()
        .filter_map(|(i, g)| g.map(|g| (g, reduce_of.remove(&i).unwrap_or_default())))
        .collect();
    for (mut group, reduces) in groups {
        group.members.sort_by_key(|m| pos[m]);
        build_kernel(graph, &group, &reduces);
    }
    super::dce::eliminate_dead_code(graph);
}

/// Emits the kernel of one group and redirects readers of its materialised values.
fn build_kernel(graph: &mut Graph, group: &Group, reduces: &[NodeIndex]) {
    let members: HashSet<NodeIndex> = group.members.iter().chain(reduces).copied().collect();
    let mut instrs: Vec<Instr> = Vec::new();
    let mut reg_of: HashMap<Value, Reg> = HashMap::new();
    let mut externals: Vec<Value> = Vec::new();
    let mut reads: Vec<Operand> = Vec::new();
    let mut operand = |v: Value, instrs: &mut Vec<Instr>, reg_of: &mut HashMap<Value, Reg>| -> Reg {
        if let Some(&r) = reg_of.get(&v) {
            return r;
        }
        let ins = match &graph.g[v.node].op {
            IrOp::Const(b) if splat(b).is_some() => Instr::Const(splat(b).unwrap_or_default()),
            _ => {
                let (storage, read) = sliced_read(graph, v, &group.shape);
                externals.push(storage);
                reads.push(read);
                Instr::Load(externals.len() - 1)
            }
        };
        instrs.push(ins);
        reg_of.insert(v, instrs.len() - 1);
        instrs.len() - 1
    };
    // Values recomputed to save memory (remat) are computed once inside the kernel: equal
    // instructions share a register.
    let mut seen: HashMap<String, Reg> = HashMap::new();
    let mut push = |instrs: &mut Vec<Instr>, ins: Instr| -> Reg {
        *seen.entry(format!("{ins:?}")).or_insert_with(|| {
            instrs.push(ins);
            instrs.len() - 1
        })
    };
    for &m in &group.members {
        let ins: SmallVec<[Reg; 3]> =
            graph.inputs(m).into_iter().map(|v| operand(v, &mut instrs, &mut reg_of)).collect();
        let reg = match elementwise(&graph.g[m].op) {
            Some(Elementwise::Unary(u)) => push(&mut instrs, Instr::Unary(u, ins[0])),
            Some(Elementwise::Binary(b)) => push(&mut instrs, Instr::Binary(b, ins[0], ins[1])),
            Some(Elementwise::Where) => push(&mut instrs, Instr::Where(ins[0], ins[1], ins[2])),
            Some(Elementwise::Broadcast) => ins[0],
            // grouping admits elementwise nodes only
            None => continue,
        };
        reg_of.insert(Value::of(m), reg);
    }
    let mut outputs: Vec<FusedOutput> = Vec::new();
    let mut outs: SmallVec<[ValueInfo; 1]> = SmallVec::new();
    let mut redirect: Vec<(Value, usize)> = Vec::new();
    for &m in &group.members {
        let v = Value::of(m);
        let read_outside = graph.users(m).iter().any(|u| !members.contains(u)) || graph.is_result(v);
        if read_outside {
            outputs.push(FusedOutput::Store(reg_of[&v]));
            outs.push(graph.g[m].outs[0].clone());
            redirect.push((v, outputs.len() - 1));
        }
    }
    for &r in reduces {
        // grouping admits fusible reductions only
        let Some((op, axes)) = fusible_reduce(&graph.g[r].op) else { continue };
        let input = graph.inputs(r)[0];
        outputs.push(FusedOutput::Reduce { reg: reg_of[&input], op, axes: axes.clone() });
        outs.push(graph.g[r].outs[0].clone());
        redirect.push((Value::of(r), outputs.len() - 1));
    }
    debug_assert!(outs.iter().all(|o| numel(&o.shape) <= numel(&group.shape).max(1)));
    let kernel = FusedKernel::new(group.shape.clone(), group.dtype, reads, instrs, outputs);
    let fused = graph.add_multi(IrOp::Fused(Arc::new(kernel)), outs, &externals);
    // a kernel of recomputed values still runs late
    if group.members.iter().any(|m| graph.late.contains(m)) {
        graph.late.insert(fused);
    }
    for (v, port) in redirect {
        graph.replace_uses(v, Value { node: fused, port });
    }
}

/// How a kernel over `shape` reads operand `v`: where `v` is a slice (`narrow`, possibly with
/// size-1 axes added or dropped) of a larger value, the larger value read at the slice's
/// strides, so the slice is never copied; otherwise `v` whole. Slices are taken only when
/// their innermost axis runs along the kernel's innermost axis (stride 1, not broadcast), so
/// the kernel still reads rows in place.
fn sliced_read(graph: &Graph, v: Value, shape: &[usize]) -> (Value, Operand) {
    let whole = (v, Operand::whole(graph.info(v).shape.clone()));
    let Some((storage, read)) = slice_of(graph, v) else { return whole };
    let inner_fits = read.shape.last().is_some_and(|&n| n > 1 && Some(&n) == shape.last())
        && read.strides.last() == Some(&1);
    // a leading slice reads like a whole value but is still read from the larger one
    if !inner_fits {
        return whole;
    }
    (storage, read)
}

/// `v` as a read of the storage of another value, when `v` is a `narrow` of it, or a reshape
/// that only adds or drops size-1 axes of such a slice.
fn slice_of(graph: &Graph, v: Value) -> Option<(Value, Operand)> {
    let IrOp::Op(Op::Movement(m @ (MovementOp::Narrow { .. } | MovementOp::Reshape(_)))) =
        &graph.g[v.node].op
    else {
        return None;
    };
    let src = graph.inputs(v.node)[0];
    let (storage, mut read) =
        slice_of(graph, src).unwrap_or_else(|| (src, Operand::whole(graph.info(src).shape.clone())));
    if let MovementOp::Narrow { axis, start, len } = m {
        read.offset += start * read.strides[*axis];
        read.shape[*axis] = *len;
    } else if let MovementOp::Reshape(to) = m {
        // the axes longer than 1, with their strides, must be the same before and after
        let long: Vec<(usize, usize)> =
            read.shape.iter().zip(&read.strides).filter(|(&n, _)| n != 1).map(|(&n, &st)| (n, st)).collect();
        if !long.iter().map(|d| d.0).eq(to.iter().copied().filter(|&n| n != 1)) {
            return None;
        }
        let mut long = long.into_iter();
        read.strides = to.iter().map(|&n| if n == 1 { 0 } else { long.next().map_or(0, |d| d.1) }).collect();
        read.shape = to.clone();
    }
    Some((storage, read))
}

/// The value of a non-empty constant whose elements are all equal (bitwise).
fn splat(b: &crate::Buffer) -> Option<f64> {
    let v = b.to_f64_vec();
    let first = *v.first()?;
    v.iter().all(|x| x.to_bits() == first.to_bits()).then_some(first)
}
