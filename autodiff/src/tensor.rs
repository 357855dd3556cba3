//! `Tensor`: a cheap-clone handle to one node of the recorded graph.
//!
//! Invariants: a node's `value` always holds `numel(shape)` elements of `dtype` (eager
//! evaluation happens when the node is created); `inputs` is non-empty only when the node
//! requires a gradient (or was recorded while `compile` traces a step), so graphs are recorded
//! only where backward can reach; dropping the last
//! handle of a deep graph frees it iteratively (see `Drop for Node`).

use crate::buffer::{with_dtype, Buffer, Storage};
use crate::op::{self, Op, Operand};
use crate::{grad_enabled, trace, Error, Result};
use graphgrad_ops::{numel, random, DType, Element, Shape};
use rand_chacha::ChaCha8Rng;
use smallvec::SmallVec;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Inputs of a node: most ops have one or two.
pub(crate) type Inputs = SmallVec<[Tensor; 2]>;

pub(crate) struct Node {
    pub(crate) op: Op,
    pub(crate) inputs: Inputs,
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    pub(crate) requires_grad: bool,
    /// A leaf whose value may change between calls of a compiled step (`Tensor::variable`).
    pub(crate) variable: bool,
    pub(crate) value: RwLock<Buffer>,
    /// Accumulated gradient of a leaf that requires one.
    pub(crate) grad: Mutex<Option<Tensor>>,
}

impl Drop for Node {
    /// Frees the input chain with an explicit stack: recursion would overflow on deep graphs.
    fn drop(&mut self) {
        self.value.get_mut().unwrap_or_else(|e| e.into_inner()).recycle();
        let mut stack: Vec<Tensor> = std::mem::take(&mut self.inputs).into_vec();
        while let Some(t) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(t.0) {
                stack.extend(std::mem::take(&mut node.inputs));
            }
        }
    }
}

/// An n-dimensional array of `f32` or `f64` that records the ops applied to it.
///
/// Cloning is cheap (a reference count). Ops evaluate at once (define-by-run) and return
/// `Result`: shape and type errors are reported when an op is called, naming the op and the
/// shapes involved.
///
/// ```
/// use graphgrad_autodiff::Tensor;
/// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3])?.requires_grad_();
/// let y = x.mul(&x)?.sum_all(); // y = Σ x²
/// y.backward()?;
/// assert_eq!(x.grad().unwrap().to_vec::<f64>()?, vec![2.0, 4.0, 6.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

impl Tensor {
    // ---- construction ----

    /// A leaf holding `buffer`, reshaped to `shape` (checked).
    pub(crate) fn leaf(buffer: Buffer, shape: &[usize], requires_grad: bool) -> Result<Tensor> {
        if graphgrad_ops::checked_numel(shape) != Some(buffer.len()) {
            return Err(Error::DataLength { shape: shape.into(), len: buffer.len() });
        }
        Ok(Tensor::new_node(Op::Leaf, Inputs::new(), shape.into(), buffer, requires_grad))
    }

    fn new_node(op: Op, inputs: Inputs, shape: Shape, buffer: Buffer, rg: bool) -> Tensor {
        // Before any kernel runs: the main thread then computes in the pool, not beside it.
        graphgrad_ops::threads::adopt_main_thread();
        Tensor(Arc::new(Node {
            op,
            inputs,
            shape,
            dtype: buffer.dtype(),
            requires_grad: rg,
            variable: false,
            value: RwLock::new(buffer),
            grad: Mutex::new(None),
        }))
    }

    /// Records `op` applied to `inputs`: runs the op's shape rule (the error names the op and
    /// the shapes), then its kernel, now.
    pub(crate) fn record(op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        if crate::func::substituting() {
            // `functional_call`: parameters read as the tensors given for them
            let swapped: SmallVec<[Tensor; 3]> = inputs.iter().map(|t| crate::func::substitute(t)).collect();
            let refs: SmallVec<[&Tensor; 3]> = swapped.iter().collect();
            return Tensor::record_operands(op, &refs);
        }
        Tensor::record_operands(op, inputs)
    }

    fn record_operands(op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        if crate::mode::tracing() {
            return Tensor::record_traced(op, inputs);
        }
        Tensor::record_now(op, inputs)
    }

    /// [`Tensor::record`] inside a trace: operands assigned earlier in the step are read at
    /// their new value, and results of checkpointed segments are marked.
    fn record_traced(op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        let mut operands: SmallVec<[Tensor; 3]> = SmallVec::new();
        for &t in inputs {
            operands.push(trace::current(t).unwrap_or_else(|| t.clone()));
        }
        let refs: SmallVec<[&Tensor; 3]> = operands.iter().collect();
        let t = Tensor::record_now(op, &refs)?;
        trace::made(&t);
        Ok(t)
    }

    /// [`Tensor::record`] for an op that cannot refuse its operands: a unary map, a scalar
    /// operand, a reduction over every axis. Its output is no larger than an operand that
    /// already exists, so its size is addressable; only an allocator out of memory could refuse
    /// it, which is handled as Rust's collections handle it (`handle_alloc_error`, which aborts)
    /// rather than by a panic.
    pub(crate) fn record_total(op: Op, inputs: &[&Tensor]) -> Tensor {
        let name = op.name();
        match Tensor::record(op, inputs) {
            Ok(t) => t,
            Err(Error::TooLarge { shape, dtype, .. }) => {
                let bytes = shape.iter().product::<usize>().saturating_mul(dtype.size());
                let layout = std::alloc::Layout::from_size_align(bytes, dtype.size())
                    .unwrap_or(std::alloc::Layout::new::<u8>());
                std::alloc::handle_alloc_error(layout)
            }
            Err(e) => unreachable!("internal invariant: {name} accepts any float operands: {e}"),
        }
    }

    fn record_now(op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
        // Pushes, not `collect`: smallvec's `extend` is not inlined, and this runs per op.
        let mut operands: SmallVec<[Operand<'_>; 3]> = SmallVec::new();
        for t in inputs {
            operands.push(Operand { shape: t.shape(), dtype: t.dtype() });
        }
        let out = op.infer(&operands)?;
        let value = Tensor::read_all(inputs, |bufs| {
            let mut args: SmallVec<[op::Arg<'_>; 3]> = SmallVec::new();
            for (&buf, t) in bufs.iter().zip(inputs) {
                args.push(op::Arg { buf, shape: t.shape() });
            }
            if op.checks_values() {
                op.check_values(&args, &out.shape)?;
            }
            op.evaluate(&args, &out)
        })?;
        let requires_grad =
            grad_enabled() && op.is_differentiable() && inputs.iter().any(|t| t.0.requires_grad);
        // While `compile` traces (or a function transform records), every op keeps its inputs
        // (comparison masks, ops on data that needs no gradient) so the graph holds the whole
        // dataflow.
        let keep = requires_grad || crate::mode::keeps_inputs();
        let mut recorded = Inputs::new();
        if keep {
            for &t in inputs {
                recorded.push(t.clone());
            }
        }
        Ok(Tensor::new_node(op, recorded, out.shape, value, requires_grad))
    }

    /// This tensor as a value gradients flow to: itself when it requires grad, else a view of
    /// it that does (a reshape to its own shape, which keeps it as input), so transforms that
    /// differentiate it stay connected to an enclosing trace or transform.
    pub(crate) fn differentiable(&self) -> Tensor {
        if self.requires_grad() {
            return self.clone();
        }
        let op = Op::Movement(op::MovementOp::Reshape(self.0.shape.clone()));
        let alias = Tensor::new_node(
            op,
            smallvec::smallvec![self.clone()],
            self.0.shape.clone(),
            self.read().clone(),
            true,
        );
        trace::made(&alias);
        alias
    }

    /// A node of `op` on `inputs` holding `value` (computed by the caller), that requires grad.
    pub(crate) fn from_op(op: Op, inputs: Inputs, value: &Tensor) -> Tensor {
        Tensor::new_node(op, inputs, value.0.shape.clone(), value.read().clone(), true)
    }

    /// A tensor from row-major data and a shape.
    pub fn from_vec<T: Storage>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        Tensor::leaf(T::wrap(data), shape, false)
    }

    /// A tensor copied from a slice.
    pub fn from_slice<T: Storage>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Storage>(value: T) -> Tensor {
        Tensor::new_node(Op::Leaf, Inputs::new(), Shape::new(), T::wrap(vec![value]), false)
    }

    /// A rank-0 tensor of `dtype` holding `value` (rounded, or truncated toward zero for i64).
    pub fn scalar_of(value: f64, dtype: DType) -> Tensor {
        Tensor::new_node(Op::Leaf, Inputs::new(), Shape::new(), Buffer::from_f64(dtype, &[value]), false)
    }

    /// A tensor of `shape` filled with `value`. A shape too large for memory is
    /// [`Error::TooLarge`] (as for every constructor below).
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        Tensor::filled("full", shape, value, dtype)
    }

    /// Zeros of `shape`.
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::filled("zeros", shape, 0.0, dtype)
    }

    /// Ones of `shape`.
    pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::filled("ones", shape, 1.0, dtype)
    }

    fn filled(op: &'static str, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let buffer = crate::buffer::with_storage!(dtype, T => {
            T::wrap(crate::buffer::filled(op, shape, T::cast_from_f64(value))?)
        });
        Ok(Tensor::new_node(Op::Leaf, Inputs::new(), shape.into(), buffer, false))
    }

    /// Uniform samples in `[low, high)` from `rng`. The bounds must be finite in `dtype`, with
    /// `low <= high` and a finite width.
    pub fn rand(shape: &[usize], low: f64, high: f64, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let in_range = |v: f64| match dtype {
            DType::F32 => (v as f32).is_finite(),
            DType::F64 | DType::I64 => v.is_finite(),
        };
        if !(low <= high && in_range(low) && in_range(high) && (high - low).is_finite()) {
            crate::bail!("rand", "bounds {low:?}..{high:?} must be finite {dtype} values with low <= high");
        }
        let buffer = with_dtype!(dtype, T => {
            let mut v = crate::buffer::filled("rand", shape, T::ZERO)?;
            random::fill_uniform(rng, &mut v, T::from_f64(low), T::from_f64(high));
            T::wrap(v)
        });
        Ok(Tensor::new_node(Op::Leaf, Inputs::new(), shape.into(), buffer, false))
    }

    /// Normal samples with the given mean and standard deviation from `rng`. The mean must be
    /// finite and the standard deviation finite and non-negative.
    pub fn randn(shape: &[usize], mean: f64, std: f64, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
            crate::bail!("randn", "mean {mean:?} must be finite and std {std:?} finite and >= 0");
        }
        let buffer = with_dtype!(dtype, T => {
            let mut v = crate::buffer::filled("randn", shape, T::ZERO)?;
            random::fill_normal(rng, &mut v, T::from_f64(mean), T::from_f64(std));
            T::wrap(v)
        });
        Ok(Tensor::new_node(Op::Leaf, Inputs::new(), shape.into(), buffer, false))
    }

    /// `[0, 1, ..., n-1]`.
    pub fn arange(n: usize, dtype: DType) -> Result<Tensor> {
        let buffer = crate::buffer::with_storage!(dtype, T => {
            let mut v = crate::buffer::filled("arange", &[n], T::cast_from_f64(0.0))?;
            for (i, x) in v.iter_mut().enumerate() {
                *x = T::cast_from_f64(i as f64);
            }
            T::wrap(v)
        });
        Ok(Tensor::new_node(Op::Leaf, Inputs::new(), [n].as_slice().into(), buffer, false))
    }

    /// A new leaf with this value that requires a gradient (`backward` fills its `.grad()`).
    pub fn requires_grad_(&self) -> Tensor {
        Tensor::new_node(Op::Leaf, Inputs::new(), self.0.shape.clone(), self.read().clone(), true)
    }

    /// The same values, cut from the graph: no gradient flows through the result (like
    /// PyTorch's `detach` and JAX's `stop_gradient`).
    pub fn detach(&self) -> Tensor {
        if crate::mode::keeps_inputs() {
            // inside a trace (or a transform) the value is still computed from the inputs
            return Tensor::record(Op::StopGradient, &[self])
                .expect("internal invariant: any tensor can be detached");
        }
        Tensor::new_node(Op::Leaf, Inputs::new(), self.0.shape.clone(), self.read().clone(), false)
    }

    /// A leaf holding a copy of `value` that may change between calls of a compiled step: a
    /// learning rate, a step count, running statistics, a random generator's state. Compiled
    /// programs read it at every call (other leaves that are neither inputs nor parameters are
    /// constants of the program) and [`assign`](Tensor::assign) updates it.
    ///
    /// ```
    /// use graphgrad_autodiff::{compile, DType, Tensor};
    /// let scale = Tensor::variable(&Tensor::scalar_of(2.0, DType::F32));
    /// let mut f = compile(|io: &[Tensor]| io[0].mul(&scale));
    /// let x = Tensor::ones(&[2], DType::F32)?;
    /// assert_eq!(f.call(&[x.clone()])?[0].to_vec::<f32>()?, [2.0, 2.0]);
    /// scale.assign(&Tensor::scalar_of(3.0, DType::F32))?; // read again at the next call
    /// assert_eq!(f.call(&[x])?[0].to_vec::<f32>()?, [3.0, 3.0]);
    /// # Ok::<(), graphgrad_autodiff::Error>(())
    /// ```
    pub fn variable(value: &Tensor) -> Tensor {
        let mut t =
            Tensor::new_node(Op::Leaf, Inputs::new(), value.0.shape.clone(), value.read().clone(), false);
        Arc::get_mut(&mut t.0).expect("internal invariant: a new node is unshared").variable = true;
        t
    }

    /// Whether this is a [`variable`](Tensor::variable) leaf.
    pub fn is_variable(&self) -> bool {
        self.0.variable
    }

    /// Overwrites this leaf's value with `value` (same shape and dtype), keeping its identity
    /// and gradient: how optimisers, running statistics and generators update state. Inside a
    /// compiled step the write becomes an update of the program, applied at every call, and
    /// later ops of the step read the new value.
    pub fn assign(&self, value: &Tensor) -> Result<()> {
        if !self.is_leaf() {
            crate::bail!(
                "assign",
                "the target must be a leaf (a parameter or a variable), not the result of `{}`",
                self.op()
            );
        }
        if value.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "assign",
                lhs: self.shape().into(),
                rhs: value.shape().into(),
            });
        }
        self.same_dtype(value, "assign")?;
        if crate::mode::tracing() {
            trace::assign(self, value);
            return Ok(());
        }
        let new = value.read().clone();
        *self.write() = new;
        Ok(())
    }

    /// The same values converted to `dtype` (differentiable).
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        Tensor::record(Op::Cast(dtype), &[self]).expect("internal invariant: any tensor can be cast")
    }

    // ---- inspection ----

    /// Dimension sizes, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// Whether gradients flow to this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// True for tensors not produced by an op (data, parameters).
    pub fn is_leaf(&self) -> bool {
        matches!(self.0.op, Op::Leaf)
    }

    /// The op that produced this tensor (for debugging and the compiler).
    pub fn op(&self) -> &Op {
        &self.0.op
    }

    /// The recorded inputs (empty unless this tensor requires a gradient or was made while
    /// `compile` traced a step).
    pub fn inputs(&self) -> &[Tensor] {
        &self.0.inputs
    }

    /// A stable identity for this node while any handle to it lives.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The values as a vector of `T` (errors when `T` is not the tensor's dtype). Inside a
    /// compiled step, reading a value computed from the step's inputs makes it a guard of the
    /// program (see [`compile`](mod@crate::compile)).
    #[track_caller]
    pub fn to_vec<T: Storage>(&self) -> Result<Vec<T>> {
        self.guard_read(std::panic::Location::caller());
        T::slice(&self.read()).map(<[T]>::to_vec).ok_or(Error::DTypeMismatch {
            op: "to_vec",
            lhs: self.dtype(),
            rhs: T::STORED,
        })
    }

    /// The values converted to f64 (a guard inside a compiled step, like [`Tensor::to_vec`]).
    #[track_caller]
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.guard_read(std::panic::Location::caller());
        self.read().to_f64_vec()
    }

    /// The single value of a one-element tensor, as f64 (a guard inside a compiled step, like
    /// [`Tensor::to_vec`]).
    #[track_caller]
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            crate::bail!("item", "tensor of shape {:?} has {} elements, not 1", self.shape(), self.numel());
        }
        self.guard_read(std::panic::Location::caller());
        Ok(self.read().to_f64_vec()[0])
    }

    fn guard_read(&self, location: &'static std::panic::Location<'static>) {
        if crate::mode::tracing() {
            trace::read(self, location);
        }
    }

    /// The accumulated gradient of a leaf after `backward`.
    pub fn grad(&self) -> Option<Tensor> {
        self.grad_slot().clone()
    }

    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.grad_slot_to_overwrite() = None;
    }

    /// Replaces the accumulated gradient (like assigning `p.grad` in PyTorch): `grad` must have
    /// this tensor's shape and dtype; it is stored detached.
    pub fn set_grad(&self, grad: Option<&Tensor>) -> Result<()> {
        if let Some(g) = grad {
            if g.shape() != self.shape() {
                return Err(Error::ShapeMismatch {
                    op: "set_grad",
                    lhs: self.shape().into(),
                    rhs: g.shape().into(),
                });
            }
            self.same_dtype(g, "set_grad")?;
        }
        *self.grad_slot_to_overwrite() = grad.map(Tensor::detach);
        Ok(())
    }

    /// The gradient slot, as backward and the accessors use it (a trace records the use).
    pub(crate) fn grad_slot(&self) -> MutexGuard<'_, Option<Tensor>> {
        if crate::mode::tracing() {
            trace::touch_grad(self, false);
        }
        self.grad_lock()
    }

    /// The gradient slot, for a use that replaces what it holds without reading it.
    fn grad_slot_to_overwrite(&self) -> MutexGuard<'_, Option<Tensor>> {
        if crate::mode::tracing() {
            trace::touch_grad(self, true);
        }
        self.grad_lock()
    }

    /// The gradient slot itself.
    pub(crate) fn grad_lock(&self) -> MutexGuard<'_, Option<Tensor>> {
        self.0.grad.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read access to the value buffer.
    pub fn read(&self) -> RwLockReadGuard<'_, Buffer> {
        self.0.value.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the values of `tensors`, in order, read-locked. Each distinct tensor is
    /// locked once, in address order: a second read of the same lock (`x.mul(&x)`) would wait
    /// forever behind another thread's pending write (an optimiser's step), and two threads
    /// locking the same tensors in different orders could each hold one the other waits for.
    pub(crate) fn read_all<T: std::borrow::Borrow<Tensor>, R>(
        tensors: &[T],
        f: impl FnOnce(&[&Buffer]) -> R,
    ) -> R {
        let t = |i: usize| tensors[i].borrow();
        match tensors.len() {
            // the common cases without sorting or collecting (this runs for every op)
            0 => f(&[]),
            1 => f(&[&t(0).read()]),
            2 if t(0).id() == t(1).id() => {
                let a = t(0).read();
                f(&[&a, &a])
            }
            2 => {
                let (first, second) = if t(0).id() < t(1).id() { (0, 1) } else { (1, 0) };
                let (g, h) = (t(first).read(), t(second).read());
                if first == 0 {
                    f(&[&g, &h])
                } else {
                    f(&[&h, &g])
                }
            }
            n => {
                let mut order: SmallVec<[usize; 4]> = (0..n).collect();
                order.sort_unstable_by_key(|&i| t(i).id());
                let mut guards: SmallVec<[RwLockReadGuard<'_, Buffer>; 4]> = SmallVec::new();
                let mut guard_of: SmallVec<[usize; 4]> = smallvec::smallvec![0; n];
                for (k, &i) in order.iter().enumerate() {
                    if k == 0 || t(order[k - 1]).id() != t(i).id() {
                        guards.push(t(i).read());
                    }
                    guard_of[i] = guards.len() - 1;
                }
                let bufs: SmallVec<[&Buffer; 4]> = guard_of.iter().map(|&g| &*guards[g]).collect();
                f(&bufs)
            }
        }
    }

    /// Write access to the value buffer, for kernels that update a leaf in place (optimisers).
    /// Only a leaf's value may be written: an op's result must keep the value it was computed
    /// with.
    pub fn write(&self) -> RwLockWriteGuard<'_, Buffer> {
        self.0.value.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn same_dtype(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if self.dtype() != other.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: self.dtype(), rhs: other.dtype() });
        }
        Ok(())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Tensor {
    /// `Tensor[2, 3] f32 [0.1, 0.2, ...]` (at most 8 values shown) with the producing op.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        // not a guard: printing steers no control flow
        let values = self.read().to_f64_vec();
        write!(f, "Tensor{:?} {} [", self.shape(), self.dtype())?;
        for (i, v) in values.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v:.6}")?;
        }
        if values.len() > SHOWN {
            write!(f, ", ... {} more", values.len() - SHOWN)?;
        }
        write!(f, "]")?;
        if !self.is_leaf() {
            write!(f, " ({})", self.op())?;
        }
        Ok(())
    }
}
