//! Replay: runs a planned program on new inputs.
//!
//! The executor owns one buffer per planned slot, allocated once at its planned size and kept
//! across calls. A call write-locks the state leaves and moves their buffers in (so updates
//! can be written in place), runs the steps in planned order, copies the outputs out (large
//! ones take their slot's buffer instead, which comes back on a later call once the caller has
//! dropped the tensor), writes back the updates that were not done in place, and moves the
//! state buffers back (also when a kernel panics) before unlocking. Another thread that reads
//! a parameter meanwhile waits for the call to end, and never sees it without its value. Locks
//! are taken in address order, as [`Tensor::read_all`] takes them, so two threads that lock
//! the same tensors cannot each hold one the other waits for.
//!
//! Kernels: every op runs the same forward as in eager mode (`Op::forward`), writing straight
//! into its planned slot; fused kernels and matmul and convolution epilogues, the compiler's own, do the same.
//!
//! Slot invariant: a slot's vector always has its planned capacity, all of it initialised
//! (allocated zeroed), and its length is the length of the value living in it, so kernels
//! that take whole buffers see exactly their operand.

use super::ir::{Graph, IrOp, Value};
use super::kernel::FusedKernel;
use super::memory::{MemoryPlan, Place};
use crate::buffer::{with_dtype, Elem, Storage};
use crate::op::{Arg, Op};
use crate::{Buffer, Result, Tensor};
use graphgrad_ops::conv::{conv2d, Conv2dGeometry};
use graphgrad_ops::gemm::{gemm_with_epilogue, Activation, Epilogue, Gemm};
use graphgrad_ops::pool::{max_pool2d, Pool2dGeometry};
use graphgrad_ops::{numel, DType, Shape};
use smallvec::SmallVec;
use std::sync::{Arc, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// What a step runs.
#[derive(Clone, Debug)]
enum Kernel {
    Op(Op),
    Fused(Arc<FusedKernel>),
    Epilogue { trans_a: bool, trans_b: bool, activation: Activation },
    ConvEpilogue { geo: Conv2dGeometry, activation: Activation },
    MaxPool2d(Pool2dGeometry),
}

/// Where an operand is read from.
#[derive(Clone, Debug)]
enum Src {
    Input(usize),
    Param(usize),
    Const(Arc<Buffer>),
    Slot(usize),
}

/// Where a result is written.
#[derive(Clone, Copy, Debug)]
enum Dst {
    Param(usize),
    Slot(usize),
}

#[derive(Clone, Debug)]
struct Step {
    kernel: Kernel,
    ins: Vec<(Src, Shape)>,
    outs: Vec<(Dst, Shape)>,
}

impl Step {
    /// `("fused[mul, tanh, add]", "[128, 512], [512] -> [128, 512]")`.
    fn describe(&self) -> (String, String) {
        let kernel = match &self.kernel {
            Kernel::Op(op) => op.name().to_string(),
            Kernel::Fused(k) => format!("fused[{}]", k.describe()),
            Kernel::Epilogue { trans_a, trans_b, activation } => {
                let t = |on: bool| if on { "ᵀ" } else { "" };
                format!("matmul{}{}+epilogue({activation:?})", t(*trans_a), t(*trans_b))
            }
            Kernel::ConvEpilogue { activation, .. } => format!("conv2d+epilogue({activation:?})"),
            Kernel::MaxPool2d(_) => "max_pool2d+indices".to_string(),
        };
        let shapes = |list: Vec<&Shape>| {
            list.iter().map(|s| format!("{:?}", s.as_slice())).collect::<Vec<_>>().join(", ")
        };
        let ins = shapes(self.ins.iter().map(|(_, s)| s).collect());
        let outs = shapes(self.outs.iter().map(|(_, s)| s).collect());
        (kernel, format!("{ins} -> {outs}"))
    }
}

/// A planned program ready to run.
#[derive(Debug)]
pub(crate) struct Executor {
    steps: Vec<Step>,
    slots: Vec<Buffer>,
    outputs: Vec<(Src, Shape)>,
    /// Updates not done in place: (leaf, value).
    writebacks: Vec<(usize, Src)>,
    /// Planned elements of each slot.
    capacity: Vec<usize>,
    /// Per output: the slot whose buffer it takes instead of a copy (large outputs read by
    /// nothing else at the end of a call).
    donatable: Vec<Option<usize>>,
    /// Per output: the tensor last handed out with a donated buffer.
    donated: Vec<Option<Tensor>>,
    /// While profiling: the time spent in each step, summed over calls.
    pub(crate) profile: Option<Vec<Duration>>,
}

/// Outputs at least this large (elements) take their slot's buffer instead of a copy.
const DONATE_MIN: usize = 1 << 16;

fn src_of(graph: &Graph, plan: &MemoryPlan, v: Value) -> Src {
    match plan.places[&v] {
        Place::Input(i) => Src::Input(i),
        Place::Param(j) => Src::Param(j),
        Place::Slot(s) => Src::Slot(s),
        Place::Const(n) => match &graph.g[n].op {
            IrOp::Const(b) => Src::Const(b.clone()),
            _ => unreachable!("internal invariant: a const place names a const node"),
        },
    }
}

impl Executor {
    /// Builds the step list of a planned graph.
    pub(crate) fn new(graph: &Graph, plan: &MemoryPlan) -> Executor {
        let steps = plan
            .order
            .iter()
            .map(|&n| {
                let kernel = match &graph.g[n].op {
                    IrOp::Op(op) => Kernel::Op(op.clone()),
                    IrOp::Fused(k) => Kernel::Fused(k.clone()),
                    IrOp::MatMulEpilogue { trans_a, trans_b, activation, .. } => {
                        Kernel::Epilogue { trans_a: *trans_a, trans_b: *trans_b, activation: *activation }
                    }
                    IrOp::ConvEpilogue { geo, activation, .. } => {
                        Kernel::ConvEpilogue { geo: *geo, activation: *activation }
                    }
                    IrOp::MaxPool2d(geo) => Kernel::MaxPool2d(*geo),
                    IrOp::Input(_) | IrOp::Param(_) | IrOp::Const(_) => {
                        unreachable!("internal invariant: sources are not scheduled")
                    }
                };
                let ins = graph
                    .inputs(n)
                    .into_iter()
                    .map(|v| (src_of(graph, plan, v), graph.info(v).shape.clone()))
                    .collect();
                let outs = (0..graph.g[n].outs.len())
                    .map(|port| {
                        let v = Value { node: n, port };
                        let dst = match plan.places[&v] {
                            Place::Param(j) => Dst::Param(j),
                            Place::Slot(s) => Dst::Slot(s),
                            other => unreachable!("internal invariant: a result placed at {other:?}"),
                        };
                        (dst, graph.info(v).shape.clone())
                    })
                    .collect();
                Step { kernel, ins, outs }
            })
            .collect();
        let slots = plan.slots.iter().map(|s| Buffer::zeros(s.dtype, s.bytes / s.dtype.size())).collect();
        let outputs: Vec<(Src, Shape)> =
            graph.outputs.iter().map(|&v| (src_of(graph, plan, v), graph.info(v).shape.clone())).collect();
        let writebacks: Vec<(usize, Src)> = graph
            .updates
            .iter()
            .filter(|(j, v)| plan.places[v] != Place::Param(*j))
            .map(|&(j, v)| (j, src_of(graph, plan, v)))
            .collect();
        let capacity: Vec<usize> = plan.slots.iter().map(|s| s.bytes / s.dtype.size()).collect();
        let slot_reads = |s: usize| {
            outputs.iter().filter(|o| matches!(o.0, Src::Slot(t) if t == s)).count()
                + writebacks.iter().filter(|w| matches!(w.1, Src::Slot(t) if t == s)).count()
        };
        let donatable = outputs
            .iter()
            .map(|(src, shape)| match src {
                &Src::Slot(s) if numel(shape) >= DONATE_MIN && slot_reads(s) == 1 => Some(s),
                _ => None,
            })
            .collect();
        let donated = vec![None; outputs.len()];
        Executor { steps, slots, outputs, writebacks, capacity, donatable, donated, profile: None }
    }

    /// What each step runs, in order, as a profile names it: the kernel and its shapes.
    pub(crate) fn describe_steps(&self) -> Vec<(String, String)> {
        self.steps.iter().map(Step::describe).collect()
    }

    /// Runs the program. `inputs` were checked against the signature; `state` are the leaves
    /// `Param(i)` reads and updates. When `accept` refuses the outputs (a guard failed), the
    /// updates are not written back and `None` is returned: a program with guards is planned
    /// without in-place updates, so the state is then as before the call.
    pub(crate) fn run(
        &mut self,
        inputs: &[Tensor],
        state: &[Tensor],
        accept: impl FnOnce(&[Tensor]) -> bool,
    ) -> Result<Option<Vec<Tensor>>> {
        let mut params = StateGuard::lock(state);
        Tensor::read_all(inputs, |input_bufs| self.run_locked(input_bufs, &mut params, accept))
    }

    /// [`Executor::run`] with the state locked and the inputs read.
    fn run_locked(
        &mut self,
        input_bufs: &[&Buffer],
        params: &mut StateGuard<'_>,
        accept: impl FnOnce(&[Tensor]) -> bool,
    ) -> Result<Option<Vec<Tensor>>> {
        // many kernels split over the cores with serial ones between: keep the workers awake
        graphgrad_ops::threads::with_workers_awake(|| -> Result<()> {
            for (i, step) in self.steps.iter().enumerate() {
                let started = self.profile.is_some().then(Instant::now);
                run_step(step, input_bufs, &mut params.buffers, &mut self.slots)?;
                if let (Some(times), Some(started)) = (self.profile.as_mut(), started) {
                    times[i] += started.elapsed();
                }
            }
            Ok(())
        })?;
        let read = |src: &Src, params: &[Buffer], slots: &[Buffer]| -> Buffer {
            match src {
                Src::Input(i) => input_bufs[*i].clone(),
                Src::Param(j) => params[*j].clone(),
                Src::Const(b) => (**b).clone(),
                // a copy: slots stay unshared, so kernels write into them without copying
                Src::Slot(s) => slots[*s].unshared(),
            }
        };
        let values: Vec<(usize, Buffer)> =
            self.writebacks.iter().map(|(j, src)| (*j, read(src, &params.buffers, &self.slots))).collect();
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for (i, (src, shape)) in self.outputs.iter().enumerate() {
            let donate = matches!(src, Src::Slot(s) if self.donatable[i] == Some(*s));
            let buffer = match src {
                Src::Slot(s) if donate => {
                    // Large outputs take the slot's buffer (no copy); the slot gets back the
                    // buffer of this output's previous tensor when the caller has dropped it.
                    let returned = match self.donated[i].take() {
                        Some(t) if Arc::strong_count(&t.0) == 1 => Some(std::mem::take(&mut *t.write())),
                        _ => None,
                    };
                    let mut spare = returned
                        .filter(Buffer::is_unshared)
                        .unwrap_or_else(|| Buffer::zeros(self.slots[*s].dtype(), self.capacity[*s]));
                    let len = self.slots[*s].len();
                    set_len(&mut spare, len);
                    std::mem::replace(&mut self.slots[*s], spare)
                }
                _ => read(src, &params.buffers, &self.slots),
            };
            let t = Tensor::leaf(buffer, shape, false)?;
            if donate {
                self.donated[i] = Some(t.clone());
            }
            outputs.push(t);
        }
        if !accept(&outputs) {
            return Ok(None);
        }
        for (j, value) in values {
            params.buffers[j] = value;
        }
        Ok(Some(outputs))
    }
}

/// Holds the state leaves write-locked and their buffers during a call, and puts the buffers
/// back when dropped, before the locks are released.
struct StateGuard<'a> {
    locks: Vec<RwLockWriteGuard<'a, Buffer>>,
    buffers: Vec<Buffer>,
}

impl<'a> StateGuard<'a> {
    /// Locks `leaves` (distinct tensors) in address order; `buffers[i]` is `leaves[i]`'s.
    fn lock(leaves: &'a [Tensor]) -> StateGuard<'a> {
        let mut order: Vec<usize> = (0..leaves.len()).collect();
        order.sort_by_key(|&i| leaves[i].id());
        let mut locked: Vec<Option<RwLockWriteGuard<'a, Buffer>>> = leaves.iter().map(|_| None).collect();
        for i in order {
            locked[i] = Some(leaves[i].write());
        }
        let mut locks: Vec<_> = locked.into_iter().flatten().collect();
        let buffers = locks.iter_mut().map(|l| std::mem::take(&mut **l)).collect();
        StateGuard { locks, buffers }
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        for (lock, buf) in self.locks.iter_mut().zip(self.buffers.drain(..)) {
            **lock = buf;
        }
    }
}

/// Sets a slot's length to `len` (within its capacity, all initialised: see the module docs).
fn set_len(b: &mut Buffer, len: usize) {
    match b {
        Buffer::F32(v) => {
            let v = Arc::get_mut(v).expect("internal invariant: slots are not shared");
            assert!(len <= v.capacity(), "internal invariant: slot too small for its value");
            // SAFETY: the slot was allocated zeroed at its full capacity, so every element
            // below the capacity is initialised; f32 has no drop glue.
            unsafe { v.set_len(len) }
        }
        Buffer::F64(v) => {
            let v = Arc::get_mut(v).expect("internal invariant: slots are not shared");
            assert!(len <= v.capacity(), "internal invariant: slot too small for its value");
            // SAFETY: as above.
            unsafe { v.set_len(len) }
        }
        Buffer::I64(v) => {
            let v = Arc::get_mut(v).expect("internal invariant: slots are not shared");
            assert!(len <= v.capacity(), "internal invariant: slot too small for its value");
            // SAFETY: as above (i64 has no drop glue).
            unsafe { v.set_len(len) }
        }
    }
}

fn buffer_ptr<T: Elem>(b: &Buffer) -> *const T {
    crate::buffer::typed::<T>(b).as_ptr()
}

fn run_step(step: &Step, inputs: &[&Buffer], params: &mut [Buffer], slots: &mut [Buffer]) -> Result<()> {
    // Output lengths first, so every buffer has the length of the value it holds.
    for (dst, shape) in &step.outs {
        if let Dst::Slot(s) = dst {
            set_len(&mut slots[*s], numel(shape));
        }
    }
    if let Kernel::Op(op) = &step.kernel {
        if op.checks_values() {
            let args: SmallVec<[Arg<'_>; 3]> = step
                .ins
                .iter()
                .map(|(src, shape)| Arg { buf: operand(src, inputs, params, slots), shape })
                .collect();
            op.check_values(&args, &step.outs[0].1)?;
        }
    }
    let dtype = match step.outs[0].0 {
        Dst::Slot(s) => slots[s].dtype(),
        Dst::Param(j) => params[j].dtype(),
    };
    if dtype == DType::I64 {
        run_moves(step, inputs, params, slots);
    } else {
        with_dtype!(dtype, T => run_typed::<T>(step, inputs, params, slots));
    }
    Ok(())
}

fn operand<'a>(src: &'a Src, inputs: &[&'a Buffer], params: &'a [Buffer], slots: &'a [Buffer]) -> &'a Buffer {
    match src {
        Src::Input(i) => inputs[*i],
        Src::Param(j) => &params[*j],
        Src::Const(b) => b,
        Src::Slot(s) => &slots[*s],
    }
}

/// An op with an integer result: a cast or data movement, never in place.
fn run_moves(step: &Step, inputs: &[&Buffer], params: &mut [Buffer], slots: &mut [Buffer]) {
    let Kernel::Op(op) = &step.kernel else { unreachable!("internal invariant: integers are not fused") };
    let (dst, shape) = &step.outs[0];
    let mut out = std::mem::take(match dst {
        Dst::Slot(s) => &mut slots[*s],
        Dst::Param(j) => &mut params[*j],
    });
    {
        let args: SmallVec<[Arg<'_>; 3]> = step
            .ins
            .iter()
            .map(|(src, shape)| Arg { buf: operand(src, inputs, params, slots), shape })
            .collect();
        let values = i64::slice_mut(&mut out).expect("internal invariant: planned dtype");
        op.forward_moves::<i64>(&args, shape, &mut values[..numel(shape)]);
    }
    match dst {
        Dst::Slot(s) => slots[*s] = out,
        Dst::Param(j) => params[*j] = out,
    }
}

fn run_typed<T: Elem>(step: &Step, inputs: &[&Buffer], params: &mut [Buffer], slots: &mut [Buffer]) {
    // Raw pointers: an output may be the storage of an operand (planned in-place updates).
    let out_ptrs: Vec<*mut T> = step
        .outs
        .iter()
        .map(|(dst, _)| {
            let b = match dst {
                Dst::Slot(s) => &mut slots[*s],
                Dst::Param(j) => &mut params[*j],
            };
            T::slice_mut(b).expect("internal invariant: planned dtype").as_mut_ptr()
        })
        .collect();
    let buf = |src: &Src| -> *const Buffer {
        match src {
            Src::Input(i) => inputs[*i] as *const Buffer,
            Src::Param(j) => &params[*j] as *const Buffer,
            Src::Const(b) => &**b as *const Buffer,
            Src::Slot(s) => &slots[*s] as *const Buffer,
        }
    };
    let in_bufs: Vec<*const Buffer> = step.ins.iter().map(|(src, _)| buf(src)).collect();
    // SAFETY: the buffers outlive the step and their vectors are not resized while it runs.
    let in_ref = |i: usize| -> &Buffer { unsafe { &*in_bufs[i] } };
    let in_slice = |i: usize| -> &[T] { crate::buffer::typed::<T>(in_ref(i)) };
    let out_len = |j: usize| numel(&step.outs[j].1);
    // SAFETY: a non-fused step's output never shares storage with its operands (the planner
    // only overlaps a fused kernel's output with its operand), and it has `out_len` elements.
    let out = |j: usize| -> &mut [T] { unsafe { std::slice::from_raw_parts_mut(out_ptrs[j], out_len(j)) } };
    match &step.kernel {
        Kernel::Fused(k) => {
            let ins: Vec<*const T> = (0..step.ins.len()).map(|i| buffer_ptr::<T>(in_ref(i))).collect();
            // SAFETY: operand and output lengths match the kernel's (the planner sized them);
            // outputs overlap operands only as the kernel's contract allows.
            unsafe { k.run::<T>(&ins, &out_ptrs) }
        }
        Kernel::Epilogue { trans_a, trans_b, activation } => {
            let a = &step.ins[0].1;
            let (m, k) = if *trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
            let n = step.outs[0].1[1];
            let g = Gemm { m, n, k, trans_a: *trans_a, trans_b: *trans_b, accumulate: false };
            let bias = (step.ins.len() == 3).then(|| in_slice(2));
            gemm_with_epilogue(
                &g,
                in_slice(0),
                in_slice(1),
                out(0),
                &Epilogue { bias, activation: *activation },
            );
        }
        Kernel::ConvEpilogue { geo, activation } => {
            let bias = (step.ins.len() == 3).then(|| in_slice(2));
            conv2d(geo, in_slice(0), in_slice(1), &Epilogue { bias, activation: *activation }, out(0));
        }
        Kernel::MaxPool2d(geo) => {
            // the two outputs are distinct slots, neither an operand (see `out`)
            max_pool2d(geo, in_slice(0), out(0), out(1));
        }
        Kernel::Op(op) => {
            let args: SmallVec<[Arg<'_>; 3]> =
                (0..step.ins.len()).map(|i| Arg { buf: in_ref(i), shape: &step.ins[i].1 }).collect();
            op.forward::<T>(&args, &step.outs[0].1, out(0));
        }
    }
}
