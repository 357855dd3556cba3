//! The graph compiler: trace a step once, optimise it, replay it (like `jax.jit`).
//!
//! [`compile`] wraps a step function `Fn(&[Tensor]) -> Result<Step>`. On the first call with a
//! given input signature (shapes, dtypes, requires-grad flags) the step runs once, eagerly,
//! in tracing mode, where every op keeps its inputs; the recorded forward, loss, backward
//! (from [`grad`](crate::grad)) and update are lowered into a petgraph IR ([`ir`]), rewritten
//! by a pipeline of passes ([`passes`]: dead code, algebraic identities, constants, common
//! subexpressions, matmul epilogues, elementwise fusion into single-pass kernels), scheduled
//! and memory-planned ([`memory`]), and cached. Every call then replays the planned program
//! on the new inputs: parameters (`Var`s and other leaves that require grad) are read from
//! their tensors at each call, and the step's updates are written back into them in place.
//!
//! ```
//! use graphgrad_autodiff::compile::{compile, Step};
//! use graphgrad_autodiff::{grad, DType, Tensor, Var};
//! // one SGD step of least squares, y ≈ x·w
//! let w = Var::new("w", &Tensor::zeros(&[3, 1], DType::F32));
//! let mut train = compile({
//!     let w = w.clone();
//!     move |io: &[Tensor]| {
//!         let loss = io[0].matmul(&w)?.sub(&io[1])?.square().mean_all()?;
//!         let g = grad(std::slice::from_ref(&loss), &[w.tensor().clone()], false)?.remove(0);
//!         Ok(Step::new(vec![loss]).update(&w, w.sub(&g.mul_scalar(0.1))?))
//!     }
//! });
//! let x = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0], &[2, 3])?;
//! let y = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1])?;
//! let first = train.call(&[x.clone(), y.clone()])?[0].item()?;
//! let second = train.call(&[x, y])?[0].item()?;
//! assert!(second < first);
//! println!("{}", train.programs().next().unwrap().log());
//! # Ok::<(), graphgrad_autodiff::Error>(())
//! ```
//!
//! # What is and is not captured
//!
//! Like `jax.jit`, the trace records one execution: Rust control flow and values read with
//! `item`/`to_vec` are frozen at trace time. Index lists passed to `gather`,
//! `index_select`, `embedding` or a loss as `&[usize]` would be constants of the program, so
//! tracing them is an error unless they are wrapped in [`constant_indices`]; pass class
//! targets as a one-hot tensor input when they change per call. Leaves other than the inputs and
//! parameters are constants. Max-pooling's indices are an output of their own op, computed from
//! the new input at each call; training-mode dropout is rejected while tracing (its mask would
//! be frozen). To differentiate with respect to an input, pass an input that requires grad:
//! the traced input does too.

pub mod dot;
pub mod ir;
pub mod kernel;
mod lower;
pub mod memory;
pub mod passes;
mod replay;

use crate::mode::TracingGuard;
use crate::{DType, Error, Result, Tensor};
use graphgrad_ops::Shape;
use ir::Graph;
use memory::MemoryPlan;
use passes::PassReport;
use replay::Executor;
use std::collections::HashMap;
use std::fmt::Write;

/// Runs `f` (inside a traced step) allowing index lists — `gather`, `index_select`,
/// `embedding`, a loss's class targets — that are truly the same on every call to become
/// constants of the program. Outside this scope a traced op taking an index list is an
/// error, because a list that changes between calls would be silently replaced by the traced
/// one.
pub fn constant_indices<R>(f: impl FnOnce() -> R) -> R {
    crate::mode::with_constant_indices(f)
}

/// Which passes run, and whether the IR is verified after each one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Algebraic simplification (`simplify`).
    pub simplify: bool,
    /// Constant folding (`fold`).
    pub fold_constants: bool,
    /// Common-subexpression elimination (`cse`).
    pub eliminate_common_subexpressions: bool,
    /// Matmul bias/activation epilogues (`epilogue`).
    pub fuse_matmul_epilogue: bool,
    /// Elementwise and reduction fusion (`fuse`).
    pub fuse_elementwise: bool,
    /// Let the memory planner write updates straight into parameters and overwrite dying
    /// operands in place.
    pub inplace: bool,
    /// Run the IR verifier after every pass (default: in debug builds).
    pub verify: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            simplify: true,
            fold_constants: true,
            eliminate_common_subexpressions: true,
            fuse_matmul_epilogue: true,
            fuse_elementwise: true,
            inplace: true,
            verify: cfg!(debug_assertions),
        }
    }
}

impl CompileOptions {
    /// Every optimisation off (dead-code elimination and memory planning still run): the
    /// traced graph replayed op by op.
    pub fn unoptimized() -> Self {
        CompileOptions {
            simplify: false,
            fold_constants: false,
            eliminate_common_subexpressions: false,
            fuse_matmul_epilogue: false,
            fuse_elementwise: false,
            inplace: false,
            verify: cfg!(debug_assertions),
        }
    }
}

/// What a step returns: tensors to hand back, and new values for state leaves.
#[derive(Clone, Debug, Default)]
pub struct Step {
    /// Returned by every call, in order (copies, detached).
    pub outputs: Vec<Tensor>,
    /// `(leaf, new value)`: after each call the leaf (a `Var` or another leaf tensor, such as
    /// an optimiser's momentum buffer) holds the new value.
    pub updates: Vec<(Tensor, Tensor)>,
}

impl Step {
    /// A step returning `outputs` and updating nothing.
    pub fn new(outputs: Vec<Tensor>) -> Step {
        Step { outputs, updates: Vec::new() }
    }

    /// Adds an in-place update: after each call `target` holds `value` (same shape and dtype).
    pub fn update(mut self, target: &Tensor, value: Tensor) -> Step {
        self.updates.push((target.clone(), value));
        self
    }
}

/// Input shapes, dtypes and requires-grad flags: the cache key.
pub type Signature = Vec<(Shape, DType, bool)>;

fn signature(inputs: &[Tensor]) -> Signature {
    inputs.iter().map(|t| (t.shape().into(), t.dtype(), t.requires_grad())).collect()
}

/// One traced, optimised and planned step for one input signature.
#[derive(Debug)]
pub struct Program {
    signature: Signature,
    graph: Graph,
    traced_nodes: usize,
    reports: Vec<PassReport>,
    plan: MemoryPlan,
    executor: Executor,
    state: Vec<Tensor>,
}

impl Program {
    /// Traces `step` on `inputs` and compiles it.
    pub fn trace<F>(step: &F, inputs: &[Tensor], options: &CompileOptions) -> Result<Program>
    where
        F: Fn(&[Tensor]) -> Result<Step> + ?Sized,
    {
        let traced: Vec<Tensor> = inputs
            .iter()
            .map(|t| Tensor::leaf(t.read().clone(), t.shape(), t.requires_grad()))
            .collect::<Result<_>>()?;
        let step = {
            let _tracing = TracingGuard::new();
            step(&traced)
        }?;
        let (mut graph, state) = lower::lower(&traced, &step.outputs, &step.updates)?;
        drop(step);
        let traced_nodes = graph.node_count();
        let mut reports = passes::run_pipeline(&mut graph, &passes::pipeline(options), options.verify)?;
        let plan = memory::plan_memory(&graph, options.inplace)?;
        reports.push(PassReport {
            name: "plan_memory",
            nodes_before: graph.node_count(),
            nodes_after: graph.node_count(),
            bytes_before: plan.unplanned_bytes,
            bytes_after: plan.peak_bytes,
        });
        let executor = Executor::new(&graph, &plan);
        Ok(Program { signature: signature(inputs), graph, traced_nodes, reports, plan, executor, state })
    }

    /// Replays the program on `inputs` (same signature as the trace), writing the updates
    /// back into their leaves, and returns the outputs.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let sig = signature(inputs);
        if sig != self.signature {
            return Err(Error::InvalidArgument {
                op: "compile",
                reason: format!("inputs {sig:?} do not match the traced signature {:?}", self.signature),
            });
        }
        if let Some(i) = inputs.iter().position(|t| self.state.iter().any(|s| s.id() == t.id())) {
            return Err(Error::InvalidArgument {
                op: "compile",
                reason: format!("input {i} is also a parameter of the step; pass a copy (`detach`)"),
            });
        }
        self.executor.run(inputs, &self.state)
    }

    /// What each pass did, in order (the last entry is the memory planner).
    pub fn reports(&self) -> &[PassReport] {
        &self.reports
    }

    /// The pass log: one line per pass, like `fuse: 120 -> 64 nodes, 3.10 MB -> 1.20 MB`.
    pub fn log(&self) -> String {
        let mut s = format!("trace: {} nodes\n", self.traced_nodes);
        for r in &self.reports {
            let _ = writeln!(s, "{r}");
        }
        let _ = writeln!(
            s,
            "memory: {} slots, {} in-place outputs, {} in-place updates",
            self.plan.slots.len(),
            self.plan.inplace_outputs,
            self.plan.inplace_updates
        );
        s
    }

    /// The optimised graph in Graphviz dot syntax.
    pub fn to_dot(&self) -> String {
        dot::to_dot(&self.graph)
    }

    /// The optimised IR.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Nodes in the optimised IR.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Nodes in the IR as traced, before any pass.
    pub fn traced_node_count(&self) -> usize {
        self.traced_nodes
    }

    /// The schedule and buffer plan.
    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// The state leaves (parameters, buffers) the program reads, as `Param(i)`.
    pub fn state(&self) -> &[Tensor] {
        &self.state
    }

    /// The input signature this program was traced for.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

/// A step function with its compiled programs, one per input signature.
pub struct Compiled<F> {
    step: F,
    options: CompileOptions,
    cache: HashMap<Signature, Program>,
    traces: usize,
}

/// Compiles `step` with the default options (see the module docs).
pub fn compile<F: Fn(&[Tensor]) -> Result<Step>>(step: F) -> Compiled<F> {
    compile_with(step, CompileOptions::default())
}

/// Compiles `step` with `options`.
pub fn compile_with<F: Fn(&[Tensor]) -> Result<Step>>(step: F, options: CompileOptions) -> Compiled<F> {
    Compiled { step, options, cache: HashMap::new(), traces: 0 }
}

impl<F: Fn(&[Tensor]) -> Result<Step>> Compiled<F> {
    /// Runs the step on `inputs`: traces and compiles it first when no program exists for
    /// their signature.
    pub fn call(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let sig = signature(inputs);
        if !self.cache.contains_key(&sig) {
            let program = Program::trace(&self.step, inputs, &self.options)?;
            self.traces += 1;
            self.cache.insert(sig.clone(), program);
        }
        self.cache.get_mut(&sig).expect("internal invariant: just inserted").run(inputs)
    }

    /// The program compiled for the signature of `inputs`, if any.
    pub fn program(&self, inputs: &[Tensor]) -> Option<&Program> {
        self.cache.get(&signature(inputs))
    }

    /// Every compiled program.
    pub fn programs(&self) -> impl Iterator<Item = &Program> {
        self.cache.values()
    }

    /// How many times the step has been traced (once per new signature).
    pub fn trace_count(&self) -> usize {
        self.traces
    }

    /// The options in use.
    pub fn options(&self) -> &CompileOptions {
        &self.options
    }
}
