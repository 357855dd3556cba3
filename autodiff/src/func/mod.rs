//! Function transforms, in the manner of `torch.func` and JAX: [`grad`] (and
//! [`grad_argnums`]), [`vjp`], [`jvp`], [`jacrev`], [`jacfwd`], [`hessian`], [`hvp`] and
//! [`vmap`], each taking a function of tensors and composing with the others in any order
//! (`jvp` of `grad`, `vmap` of `grad`, `grad` of `jvp`, nested `vmap`), eagerly and inside
//! [`compile`](mod@crate::compile). [`with_substitutes`] runs code with some tensors read as
//! others (how `nn::functional_call` gives a module its parameters).
//!
//! Forward mode is true forward mode: every op has a tangent rule (`jvp`, beside its `vjp` in
//! `op/`), written with tensor ops. [`jvp`] runs the function once while every op keeps its
//! inputs, then pushes the tangents forward through what it recorded, in one sweep from the
//! inputs to the outputs (no reverse pass). Because tangents are built from recorded ops, they
//! can be differentiated, pushed forward or batched again.
//!
//! [`vmap`] runs the function once on the first sample (every op keeping its inputs), then
//! replays what it recorded on the whole batch, op by op, with a batching rule per op
//! (`batch.rs`): a batched matrix product is one batched GEMM, a reduction reduces the shifted
//! axes. Like JAX's `vmap`, it sees the computation the first sample took: control flow that
//! depends on tensor values (`item`, `to_vec`) is frozen at the first sample's.
//!
//! Which Jacobian: [`jacrev`] takes one reverse pass per output element, [`jacfwd`] one
//! forward (tangent) pass per input element, both over one recording of the function. Use
//! `jacrev` when the output is smaller than the input (a loss over many parameters), `jacfwd`
//! when the input is smaller (a few inputs, a wide output). [`hessian`] is `jacfwd` of the
//! gradient (forward-over-reverse: the gradient graph is built once and each tangent pass over
//! it costs about two gradients), and [`hvp`] a single such pass: about the cost of three
//! gradients eagerly, two compiled (W2's network), without forming the Hessian.

mod batch;
mod jac;
mod vmap;

pub use jac::{hessian, hvp, jacfwd, jacrev};
pub use vmap::vmap;

use crate::backward::grad_with_seeds;
use crate::{Error, Result, Tensor};
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

/// Tensor shapes for error messages.
pub(crate) fn shapes(ts: &[Tensor]) -> Vec<Vec<usize>> {
    ts.iter().map(|t| t.shape().to_vec()).collect()
}

/// `tangents` pair with `primals`: as many, each of its primal's shape and element type.
fn check_pairs(op: &'static str, primals: &[Tensor], tangents: &[Tensor]) -> Result<()> {
    if primals.len() != tangents.len() {
        crate::bail!(
            op,
            "{} primals of shapes {:?} but {} tangents of shapes {:?}",
            primals.len(),
            shapes(primals),
            tangents.len(),
            shapes(tangents)
        );
    }
    for (p, t) in primals.iter().zip(tangents) {
        if p.shape() != t.shape() {
            return Err(Error::ShapeMismatch { op, lhs: p.shape().into(), rhs: t.shape().into() });
        }
        p.same_dtype(t, op)?;
    }
    Ok(())
}

/// Nodes reachable from `roots` through their inputs, inputs before users, not walking past
/// `sources`.
pub(crate) fn topological(roots: &[Tensor], sources: &HashSet<usize>) -> Vec<Tensor> {
    crate::backward::post_order(roots, |node, _| !sources.contains(&node.id()))
}

/// Pushes the tangents `seeds` (`(tensor, tangent)` pairs) forward through the graph recorded
/// from them to `outputs`, with each op's tangent rule: the tangent of every output (`None`:
/// zero, the output does not depend on the seeds).
pub(crate) fn push_forward(outputs: &[Tensor], seeds: &[(Tensor, Tensor)]) -> Result<Vec<Option<Tensor>>> {
    let mut tangents: HashMap<usize, Tensor> = HashMap::new();
    for (x, t) in seeds {
        let sum = match tangents.remove(&x.id()) {
            Some(old) => old.add(t)?,
            None => t.clone(),
        };
        tangents.insert(x.id(), sum);
    }
    let sources: HashSet<usize> = tangents.keys().copied().collect();
    for node in topological(outputs, &sources) {
        if sources.contains(&node.id()) {
            continue;
        }
        let ins: SmallVec<[Option<Tensor>; 3]> =
            node.inputs().iter().map(|i| tangents.get(&i.id()).cloned()).collect();
        if ins.iter().all(Option::is_none) {
            continue;
        }
        if let Some(t) = crate::op::jvp(&node, &ins)? {
            tangents.insert(node.id(), t);
        }
    }
    Ok(outputs.iter().map(|o| tangents.get(&o.id()).cloned()).collect())
}

/// `f`'s outputs at `primals` and their tangents along `tangents` (one per primal, of its
/// shape): the Jacobian-vector products `J·t`, in one forward sweep (like `torch.func.jvp`).
///
/// ```
/// use graphgrad_autodiff::{func, Tensor};
/// // f(x) = x³, so J·t = 3x²·t
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?;
/// let t = Tensor::from_vec(vec![1.0f64, 0.5], &[2])?;
/// let (y, dy) = func::jvp(|v| Ok(vec![v[0].pow_scalar(3.0)]), &[x], &[t])?;
/// assert_eq!(y[0].to_vec::<f64>()?, [1.0, 8.0]);
/// assert_eq!(dy[0].to_vec::<f64>()?, [3.0, 6.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn jvp<F>(f: F, primals: &[Tensor], tangents: &[Tensor]) -> Result<(Vec<Tensor>, Vec<Tensor>)>
where
    F: FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
{
    check_pairs("jvp", primals, tangents)?;
    let outputs = crate::mode::recording(|| f(primals))?;
    let seeds: Vec<(Tensor, Tensor)> = primals.iter().cloned().zip(tangents.iter().cloned()).collect();
    let pushed = push_forward(&outputs, &seeds)?;
    let tangents_out = outputs
        .iter()
        .zip(pushed)
        .map(|(o, t)| t.map_or_else(|| Tensor::zeros(o.shape(), o.dtype()), Ok))
        .collect::<Result<_>>()?;
    Ok((outputs, tangents_out))
}

/// The reverse-mode half of [`vjp`]: maps cotangents of the outputs to cotangents of the
/// primals. Calling it again reuses the recorded graph; the results differentiate again.
pub struct Pullback {
    primals: Vec<Tensor>,
    /// The primals differentiated (float ones); the others get zeros.
    wrt: Vec<usize>,
    outputs: Vec<Tensor>,
}

impl Pullback {
    /// `vᵀJ` for cotangents `v` (one per output, of its shape), one per primal (zeros for an
    /// integer primal, or one not asked for).
    pub fn call(&self, cotangents: &[Tensor]) -> Result<Vec<Tensor>> {
        check_pairs("vjp", &self.outputs, cotangents)?;
        let mut result: Vec<Tensor> =
            self.primals.iter().map(|p| Tensor::zeros(p.shape(), p.dtype())).collect::<Result<_>>()?;
        // outputs that no primal reaches contribute nothing
        let (outs, seeds): (Vec<Tensor>, Vec<Tensor>) = self
            .outputs
            .iter()
            .zip(cotangents)
            .filter(|(o, _)| o.requires_grad())
            .map(|(o, v)| (o.clone(), v.clone()))
            .unzip();
        if outs.is_empty() || self.wrt.is_empty() {
            return Ok(result);
        }
        let wrt: Vec<Tensor> = self.wrt.iter().map(|&i| self.primals[i].clone()).collect();
        for (&i, g) in self.wrt.iter().zip(grad_with_seeds(&outs, seeds, &wrt, true)?) {
            result[i] = g;
        }
        Ok(result)
    }
}

/// [`vjp`] differentiating only the primals at positions `argnums` (the pullback gives zeros
/// for the others, which are not recorded as differentiable).
fn vjp_of<F>(f: F, primals: &[Tensor], argnums: Option<&[usize]>) -> Result<(Vec<Tensor>, Pullback)>
where
    F: FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
{
    if let Some(&bad) = argnums.and_then(|a| a.iter().find(|&&i| i >= primals.len())) {
        crate::bail!(
            "grad",
            "argnum {bad} is out of range for {} inputs of shapes {:?}",
            primals.len(),
            shapes(primals)
        );
    }
    let wrt: Vec<usize> = (0..primals.len())
        .filter(|i| argnums.is_none_or(|a| a.contains(i)) && primals[*i].dtype().is_float())
        .collect();
    let primals: Vec<Tensor> = primals
        .iter()
        .enumerate()
        .map(|(i, p)| if wrt.contains(&i) { p.differentiable() } else { p.clone() })
        .collect();
    let outputs = f(&primals)?;
    Ok((outputs.clone(), Pullback { primals, wrt, outputs }))
}

/// `f`'s outputs at `primals` and the pullback that maps output cotangents to input
/// cotangents (like `torch.func.vjp`).
///
/// ```
/// use graphgrad_autodiff::{func, Tensor};
/// // f(x) = x², vᵀJ = 2x·v
/// let x = Tensor::from_vec(vec![1.0f64, 3.0], &[2])?;
/// let (y, pullback) = func::vjp(|v| Ok(vec![v[0].square()]), &[x])?;
/// let v = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?;
/// assert_eq!(pullback.call(&[v])?[0].to_vec::<f64>()?, [2.0, 12.0]);
/// assert_eq!(y[0].to_vec::<f64>()?, [1.0, 9.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn vjp<F>(f: F, primals: &[Tensor]) -> Result<(Vec<Tensor>, Pullback)>
where
    F: FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
{
    vjp_of(f, primals, None)
}

/// The function computing the gradient of the scalar `f` with respect to each of its inputs
/// (like `torch.func.grad`; zeros for integer inputs such as labels). The gradient is recorded
/// (`create_graph`), so it can be differentiated, pushed forward or batched again.
///
/// ```
/// use graphgrad_autodiff::{func, Tensor};
/// // ∇ Σ x³ = 3x²
/// let g = func::grad(|v: &[Tensor]| Ok(v[0].pow_scalar(3.0).sum_all()));
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?;
/// assert_eq!(g(&[x])?[0].to_vec::<f64>()?, [3.0, 12.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn grad<F>(f: F) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    grad_wrt(f, None)
}

/// [`grad`] in the inputs at positions `argnums` only (`torch.func.grad`'s `argnums`): the
/// gradients of those inputs, in that order. Cheaper when the others (data, labels) need none.
///
/// ```
/// use graphgrad_autodiff::{func, Tensor};
/// // ∂(a·b)/∂b = a
/// let g = func::grad_argnums(|v: &[Tensor]| Ok((&v[0] * &v[1])?.sum_all()), &[1]);
/// let (a, b) = (Tensor::from_vec(vec![2.0f64], &[1])?, Tensor::from_vec(vec![5.0f64], &[1])?);
/// assert_eq!(g(&[a, b])?[0].to_vec::<f64>()?, [2.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn grad_argnums<F>(f: F, argnums: &[usize]) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let argnums = argnums.to_vec();
    let picked = grad_wrt(f, Some(argnums.clone()));
    move |inputs: &[Tensor]| {
        let all = picked(inputs)?;
        Ok(argnums.iter().map(|&i| all[i].clone()).collect())
    }
}

/// The gradient function of `f` in the inputs `argnums` (`None`: all), zeros for the others.
fn grad_wrt<F>(f: F, argnums: Option<Vec<usize>>) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    move |inputs: &[Tensor]| {
        let (outputs, pullback) = vjp_of(|xs| Ok(vec![f(xs)?]), inputs, argnums.as_deref())?;
        let y = &outputs[0];
        if y.numel() != 1 {
            crate::bail!("grad", "the function must return a scalar, got shape {:?}", y.shape());
        }
        pullback.call(&[Tensor::ones(y.shape(), y.dtype())?])
    }
}

thread_local! {
    /// Whether `SUBSTITUTES` holds anything (checked by every op recorded).
    static SUBSTITUTING: Cell<bool> = const { Cell::new(false) };
    /// Tensor id → the tensor ops read in its place (`with_substitutes`).
    static SUBSTITUTES: RefCell<HashMap<usize, Tensor>> = RefCell::new(HashMap::new());
}

/// Whether ops are reading substitutes now.
pub(crate) fn substituting() -> bool {
    SUBSTITUTING.with(Cell::get)
}

/// What an op reads for operand `t`.
pub(crate) fn substitute(t: &Tensor) -> Tensor {
    SUBSTITUTES.with(|s| s.borrow().get(&t.id()).cloned()).unwrap_or_else(|| t.clone())
}

/// Runs `f` with every op reading `replacement` wherever it is given `original`, for each
/// `(original, replacement)` pair: how `functional_call` runs a module on parameters given as
/// tensors (so transforms can differentiate or batch them). Shapes and element types must
/// agree.
pub fn with_substitutes<R>(pairs: &[(Tensor, Tensor)], f: impl FnOnce() -> Result<R>) -> Result<R> {
    for (original, replacement) in pairs {
        if original.shape() != replacement.shape() {
            return Err(Error::ShapeMismatch {
                op: "with_substitutes",
                lhs: original.shape().into(),
                rhs: replacement.shape().into(),
            });
        }
        original.same_dtype(replacement, "with_substitutes")?;
    }
    let previous = SUBSTITUTES.with(|s| {
        let mut s = s.borrow_mut();
        let previous = s.clone();
        s.extend(pairs.iter().map(|(o, r)| (o.id(), r.clone())));
        previous
    });
    let was = SUBSTITUTING.with(|s| s.replace(true));
    let result = f();
    SUBSTITUTES.with(|s| *s.borrow_mut() = previous);
    SUBSTITUTING.with(|s| s.set(was));
    result
}
