//! Scheduling and memory planning by liveness.
//!
//! 1. *Places.* Sources live where they are given (step inputs, state leaves, constants); a
//!    `reshape` is a view of its operand's storage (no copy); a value written back into a
//!    state leaf is written there directly (an in-place update) when every other reader of
//!    the leaf can run first and its kernel reads the leaf at most elementwise (a fused
//!    kernel) or not at all; every other value gets a slot.
//! 2. *Schedule.* A list scheduler picks, among ready nodes, the earliest (in trace order)
//!    that frees at least as many bytes as it allocates, else the earliest: gradients are
//!    consumed by their update as soon as they exist instead of piling up.
//! 3. *Slots.* Walking the schedule, each slot-resident value is born when its node runs and
//!    dies after its last reader. A fused kernel's stored output may take over the storage of
//!    an operand that dies there and is read at the same index, whatever the operand's shape
//!    (in place: a linear layer's output read through a reshape); other outputs start a new
//!    storage. With every lifetime known, the storages are packed into slots largest first,
//!    each into the smallest slot of its dtype that holds nothing live at the same time, else
//!    into a new slot of its size (a slot's size is the largest value it ever holds). Taking
//!    free slots in schedule order instead let small values settle in slots that larger ones
//!    needed later: W4's arena was 13.6 MB for 12.0 MB live at the peak; now it is the peak.
//!
//! Time is counted in ticks: step `s` reads its operands at tick `2s` and writes its results
//! at `2s + 1`. A value occupies its bytes from its birth tick to its last read (`2s + 1` when
//! its last reader is step `s`, `2s` when that reader overwrites it in place); results live to
//! the end. The plan lists every [`Lifetime`] so tests can check that no two live values share
//! bytes.

use super::ir::{Graph, IrOp, Value};
use crate::{Error, Result};
use graphgrad_ops::DType;
use petgraph::stable_graph::NodeIndex;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Where a value lives while the program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// Step input `i` (read-only).
    Input(usize),
    /// State leaf `i` (parameter or buffer), possibly written in place.
    Param(usize),
    /// The constant held by this node.
    Const(NodeIndex),
    /// Planned slot `i`.
    Slot(usize),
}

/// One planned buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Element type.
    pub dtype: DType,
    /// Size: the largest value it holds.
    pub bytes: usize,
    /// Offset in the notional arena that lays the slots end to end.
    pub offset: usize,
}

/// The bytes one value occupies and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// The value.
    pub value: Value,
    /// Its slot.
    pub slot: usize,
    /// First byte in the arena (the slot's offset).
    pub offset: usize,
    /// Bytes used.
    pub bytes: usize,
    /// Birth tick.
    pub start: usize,
    /// Last tick it must stay intact (`usize::MAX` for results).
    pub end: usize,
}

/// A schedule and the place of every value in it.
#[derive(Clone, Debug, Default)]
pub struct MemoryPlan {
    /// Nodes in execution order (sources and views excluded).
    pub order: Vec<NodeIndex>,
    /// The place of every value (views share their operand's place).
    pub places: HashMap<Value, Place>,
    /// Planned buffers.
    pub slots: Vec<Slot>,
    /// Every slot-resident value's bytes and lifetime.
    pub lifetimes: Vec<Lifetime>,
    /// Planned peak: the sum of slot sizes.
    pub peak_bytes: usize,
    /// Bytes of all slot-resident values (what holding every value at once would take).
    pub unplanned_bytes: usize,
    /// Outputs that overwrite a dying operand's slot.
    pub inplace_outputs: usize,
    /// Updates written straight into their state leaf.
    pub inplace_updates: usize,
}

fn is_view(graph: &Graph, n: NodeIndex) -> bool {
    matches!(&graph.g[n].op, IrOp::Op(op) if op.is_view())
}

/// Plans `graph` (see the module docs). `allow_inplace` enables outputs that overwrite a dying
/// operand and, with `allow_param_writes`, in-place updates of state leaves (off for programs
/// that must be able to refuse a call's updates after running it: those with guards).
pub fn plan_memory(graph: &Graph, allow_inplace: bool, allow_param_writes: bool) -> Result<MemoryPlan> {
    let topo = graph.topo_order();
    let mut pos: HashMap<NodeIndex, usize> = topo.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    // Recomputed values take the position of their first reader, so they run just before it.
    for &n in topo.iter().rev() {
        if graph.late.contains(&n) {
            if let Some(first) = graph.users(n).iter().map(|u| pos[u]).min() {
                pos.insert(n, first);
            }
        }
    }
    // Storage root of every value: views resolve to their operand's root.
    let mut root: HashMap<Value, Value> = HashMap::new();
    for &n in &topo {
        for port in 0..graph.g[n].outs.len() {
            let v = Value { node: n, port };
            let r = if is_view(graph, n) { root[&graph.inputs(n)[0]] } else { v };
            root.insert(v, r);
        }
    }
    // Readers of each storage root (nodes that are not views, one entry per operand read).
    let mut readers: HashMap<Value, Vec<NodeIndex>> = HashMap::new();
    for &n in topo.iter().filter(|&&n| !is_view(graph, n)) {
        for v in graph.inputs(n) {
            readers.entry(root[&v]).or_default().push(n);
        }
    }
    let results: HashSet<Value> =
        graph.outputs.iter().chain(graph.updates.iter().map(|u| &u.1)).map(|v| root[v]).collect();
    let param_writes =
        if allow_inplace && allow_param_writes { choose_param_writes(graph, &root) } else { HashMap::new() };
    let order = match schedule(graph, &topo, &pos, &root, &readers, &results, &param_writes) {
        Some(order) => order,
        None if !param_writes.is_empty() => return plan_memory(graph, allow_inplace, false),
        None => {
            return Err(Error::InvalidArgument {
                op: "compile",
                reason: "internal invariant: scheduling stalled".into(),
            })
        }
    };
    let mut plan = MemoryPlan { order, inplace_updates: param_writes.len(), ..MemoryPlan::default() };
    assign_slots(graph, &root, &readers, &results, &param_writes, allow_inplace, &mut plan);
    Ok(plan)
}

/// Updates whose fused kernel can write straight into the state leaf: value → leaf index.
fn choose_param_writes(graph: &Graph, root: &HashMap<Value, Value>) -> HashMap<Value, usize> {
    let mut chosen = HashMap::new();
    let param_node: HashMap<usize, NodeIndex> = graph
        .g
        .node_indices()
        .filter_map(|n| match graph.g[n].op {
            IrOp::Param(j) => Some((j, n)),
            _ => None,
        })
        .collect();
    for &(j, v) in &graph.updates {
        let op = &graph.g[v.node].op;
        if op.is_source() || is_view(graph, v.node) {
            continue;
        }
        // Not when the value is also returned, or the old value of the leaf is.
        let returned = graph
            .outputs
            .iter()
            .any(|o| *o == v || param_node.get(&j).is_some_and(|&p| root[o] == Value::of(p)));
        let twice = graph.updates.iter().filter(|u| u.1 == v).count() > 1 || returned;
        // A fused kernel may read the leaf only at the index it writes; any other kernel (a
        // gradient's matmul, say) must not read it at all.
        let reads_ok = graph.inputs(v.node).iter().enumerate().all(|(slot, &u)| {
            let reads_leaf = param_node.get(&j).is_some_and(|&p| root[&u] == Value::of(p));
            !reads_leaf || matches!(op, IrOp::Fused(k) if k.reads_elementwise(slot))
        });
        if !twice && reads_ok {
            chosen.insert(v, j);
        }
    }
    chosen
}

/// List scheduling (see the module docs); `None` when the in-place constraints deadlock.
fn schedule(
    graph: &Graph,
    topo: &[NodeIndex],
    pos: &HashMap<NodeIndex, usize>,
    root: &HashMap<Value, Value>,
    readers: &HashMap<Value, Vec<NodeIndex>>,
    results: &HashSet<Value>,
    param_writes: &HashMap<Value, usize>,
) -> Option<Vec<NodeIndex>> {
    let work: Vec<NodeIndex> =
        topo.iter().copied().filter(|&n| !graph.g[n].op.is_source() && !is_view(graph, n)).collect();
    let in_work: HashSet<NodeIndex> = work.iter().copied().collect();
    // Dependencies on other scheduled nodes (through views), plus "read the leaf before it is
    // overwritten" edges for in-place updates.
    let mut deps: HashMap<NodeIndex, HashSet<NodeIndex>> = HashMap::new();
    for &n in &work {
        let d = deps.entry(n).or_default();
        for v in graph.inputs(n) {
            let r = root[&v];
            if in_work.contains(&r.node) {
                d.insert(r.node);
            }
        }
    }
    for (&v, &j) in param_writes {
        let leaf = graph.g.node_indices().find(|&p| matches!(graph.g[p].op, IrOp::Param(i) if i == j));
        if let Some(p) = leaf {
            for &r in readers.get(&Value::of(p)).into_iter().flatten() {
                if r != v.node {
                    deps.entry(v.node).or_default().insert(r);
                }
            }
        }
    }
    let mut users: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
    for (&n, d) in &deps {
        for &p in d {
            users.entry(p).or_default().push(n);
        }
    }
    let mut waiting: HashMap<NodeIndex, usize> = deps.iter().map(|(&n, d)| (n, d.len())).collect();
    let mut remaining: HashMap<Value, usize> = readers.iter().map(|(&v, r)| (v, r.len())).collect();
    let mut ready: BTreeSet<(usize, NodeIndex)> =
        work.iter().filter(|n| waiting[n] == 0).map(|&n| (pos[&n], n)).collect();
    let mut order = Vec::with_capacity(work.len());
    while !ready.is_empty() {
        let net = |n: NodeIndex| -> i64 {
            let alloc: usize = (0..graph.g[n].outs.len())
                .map(|port| Value { node: n, port })
                .filter(|v| !param_writes.contains_key(v))
                .map(|v| graph.info(v).bytes())
                .sum();
            let mut freed = 0usize;
            let mut counted = HashSet::new();
            for v in graph.inputs(n) {
                let r = root[&v];
                let reads = graph.inputs(n).iter().filter(|&&u| root[&u] == r).count();
                let slot_resident = !graph.g[r.node].op.is_source() && !results.contains(&r);
                if slot_resident && remaining.get(&r) == Some(&reads) && counted.insert(r) {
                    freed += graph.info(r).bytes();
                }
            }
            alloc as i64 - freed as i64
        };
        let pick = ready.iter().find(|&&(_, n)| net(n) <= 0).or_else(|| ready.iter().next()).copied()?;
        ready.remove(&pick);
        let n = pick.1;
        order.push(n);
        for v in graph.inputs(n) {
            if let Some(c) = remaining.get_mut(&root[&v]) {
                *c -= 1;
            }
        }
        for &u in users.get(&n).into_iter().flatten() {
            let w = waiting.get_mut(&u).expect("internal invariant: users are scheduled nodes");
            *w -= 1;
            if *w == 0 {
                ready.insert((pos[&u], u));
            }
        }
    }
    (order.len() == work.len()).then_some(order)
}

/// Walks the schedule assigning slots (see the module docs).
fn assign_slots(
    graph: &Graph,
    root: &HashMap<Value, Value>,
    readers: &HashMap<Value, Vec<NodeIndex>>,
    results: &HashSet<Value>,
    param_writes: &HashMap<Value, usize>,
    allow_inplace: bool,
    plan: &mut MemoryPlan,
) {
    let step_of: HashMap<NodeIndex, usize> = plan.order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let last_read = |r: Value| readers.get(&r).and_then(|rs| rs.iter().map(|n| step_of[n]).max());
    let mut places: HashMap<Value, Place> = HashMap::new();
    for n in graph.g.node_indices() {
        let place = match graph.g[n].op {
            IrOp::Input(i) => Place::Input(i),
            IrOp::Param(j) => Place::Param(j),
            IrOp::Const(_) => Place::Const(n),
            _ => continue,
        };
        places.insert(Value::of(n), place);
    }
    // A group is one storage: a value and the in-place outputs that overwrite it in turn.
    let mut group_dtype: Vec<DType> = Vec::new();
    let mut holder: HashMap<Value, usize> = HashMap::new(); // live slot-resident values' groups
    let mut lifetimes: Vec<(Value, usize, usize, usize, usize)> = Vec::new(); // value, group, bytes, start, end
    for (s, &n) in plan.order.iter().enumerate() {
        let ins = graph.inputs(n);
        let mut taken: HashSet<usize> = HashSet::new();
        for port in 0..graph.g[n].outs.len() {
            let v = Value { node: n, port };
            if let Some(&j) = param_writes.get(&v) {
                places.insert(v, Place::Param(j));
                continue;
            }
            let info = graph.info(v);
            let bytes = info.bytes();
            // In place: a dying operand read at the same index, of the same dtype and size (its
            // shape may differ: a reshape of it is read whole).
            let inplace = match &graph.g[n].op {
                IrOp::Fused(k)
                    if allow_inplace && matches!(k.outputs[port], super::kernel::FusedOutput::Store(_)) =>
                {
                    ins.iter().enumerate().find_map(|(slot, &u)| {
                        let r = root[&u];
                        let all_elementwise = ins
                            .iter()
                            .enumerate()
                            .filter(|(_, &w)| root[&w] == r)
                            .all(|(i, _)| k.reads_elementwise(i));
                        let ok = k.reads_elementwise(slot)
                            && all_elementwise
                            && holder.contains_key(&r)
                            && !results.contains(&r)
                            && last_read(r) == Some(s)
                            && graph.info(r).dtype == info.dtype
                            && graph.info(r).bytes() == bytes
                            && !taken.contains(&holder[&r]);
                        ok.then(|| holder[&r])
                    })
                }
                _ => None,
            };
            let group = match inplace {
                Some(group) => {
                    plan.inplace_outputs += 1;
                    group
                }
                None => {
                    group_dtype.push(info.dtype);
                    group_dtype.len() - 1
                }
            };
            taken.insert(group);
            let end = if results.contains(&v) { usize::MAX } else { 2 * last_read(v).unwrap_or(s) + 1 };
            holder.insert(v, group);
            lifetimes.push((v, group, bytes, 2 * s + 1, end));
        }
        // Operands whose last reader was this step die; one overwritten in place ends at its read.
        let mut released = HashSet::new();
        for &u in &ins {
            let r = root[&u];
            if last_read(r) == Some(s) && !results.contains(&r) && released.insert(r) {
                if let Some(group) = holder.remove(&r) {
                    if taken.contains(&group) {
                        if let Some(l) = lifetimes.iter_mut().rev().find(|l| l.0 == r) {
                            l.4 = 2 * s; // overwritten in place
                        }
                    }
                }
            }
        }
        // Values nobody reads die at once.
        for port in 0..graph.g[n].outs.len() {
            let v = Value { node: n, port };
            if last_read(v).is_none() && !results.contains(&v) {
                holder.remove(&v);
            }
        }
    }
    let (slot_of_group, slot_sizes) = pack_groups(&group_dtype, &lifetimes);
    for l in &mut lifetimes {
        let slot = slot_of_group[l.1];
        l.1 = slot;
        places.insert(l.0, Place::Slot(slot));
    }
    // Views share their root's place.
    for n in graph.topo_order() {
        if is_view(graph, n) {
            let r = root[&Value::of(n)];
            if let Some(&p) = places.get(&r) {
                places.insert(Value::of(n), p);
            }
        }
    }
    let mut offset = 0;
    plan.slots = slot_sizes
        .iter()
        .map(|&(dtype, bytes)| {
            let s = Slot { dtype, bytes, offset };
            offset += bytes;
            s
        })
        .collect();
    plan.peak_bytes = offset;
    plan.unplanned_bytes = lifetimes.iter().map(|l| l.2).sum();
    plan.lifetimes = lifetimes
        .into_iter()
        .map(|(value, slot, bytes, start, end)| Lifetime {
            value,
            slot,
            offset: plan.slots[slot].offset,
            bytes,
            start,
            end,
        })
        .collect();
    plan.places = places;
}

/// Assigns storage groups to slots, largest group first: each goes to the smallest slot of its
/// dtype whose groups are never live at the same time as it, else to a new slot of its size.
/// Sizes only shrink along the order, so a slot's size is that of its first group. Knowing
/// every lifetime up front packs tighter than taking free slots in schedule order, where a
/// small value can settle in a slot that a large one needs later.
/// Returns each group's slot and each slot's dtype and size.
fn pack_groups(
    dtype: &[DType],
    lifetimes: &[(Value, usize, usize, usize, usize)],
) -> (Vec<usize>, Vec<(DType, usize)>) {
    let mut intervals: Vec<Vec<(usize, usize)>> = vec![Vec::new(); dtype.len()];
    let mut bytes = vec![0usize; dtype.len()];
    for &(_, group, b, start, end) in lifetimes {
        intervals[group].push((start, end));
        bytes[group] = bytes[group].max(b);
    }
    let mut order: Vec<usize> = (0..dtype.len()).collect();
    order.sort_by_key(|&g| (std::cmp::Reverse(bytes[g]), intervals[g].first().map_or(0, |i| i.0)));
    let overlaps = |a: &[(usize, usize)], b: &[(usize, usize)]| {
        a.iter().any(|x| b.iter().any(|y| x.0 <= y.1 && y.0 <= x.1))
    };
    /// A slot being filled: its dtype, size and the ticks its groups occupy.
    struct Filling {
        dtype: DType,
        bytes: usize,
        busy: Vec<(usize, usize)>,
    }
    let mut slots: Vec<Filling> = Vec::new();
    let mut slot_of = vec![0usize; dtype.len()];
    for g in order {
        let fit = (0..slots.len())
            .filter(|&s| slots[s].dtype == dtype[g] && !overlaps(&slots[s].busy, &intervals[g]))
            .min_by_key(|&s| slots[s].bytes);
        let s = fit.unwrap_or_else(|| {
            slots.push(Filling { dtype: dtype[g], bytes: bytes[g], busy: Vec::new() });
            slots.len() - 1
        });
        slots[s].busy.extend_from_slice(&intervals[g]);
        slot_of[g] = s;
    }
    (slot_of, slots.into_iter().map(|s| (s.dtype, s.bytes)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storages_pack_largest_first() {
        // x (4 kB) dies at tick 1; y (1 kB) and z (4 kB) are born together at tick 2. In
        // schedule order y would take x's free slot and z a new one: 8 kB for 5 kB live.
        let v = |i| Value { node: NodeIndex::new(i), port: 0 };
        let lifetimes = [(v(0), 0, 4096, 0, 1), (v(1), 1, 1024, 2, 9), (v(2), 2, 4096, 2, 9)];
        let (slot_of, slots) = pack_groups(&[DType::F32; 3], &lifetimes);
        assert_eq!(slots, vec![(DType::F32, 4096), (DType::F32, 1024)]);
        assert_eq!(slot_of[0], slot_of[2]);
        assert_ne!(slot_of[1], slot_of[2]);
        // another dtype never shares a slot
        let (_, slots) = pack_groups(&[DType::F32, DType::F64, DType::F32], &lifetimes);
        assert_eq!(slots.len(), 2);
        assert!(slots.contains(&(DType::F64, 1024)));
    }
}
