//! Activation checkpointing (like `torch.utils.checkpoint`): a segment of the forward pass
//! whose intermediate values are not kept; the backward pass recomputes them.
//!
//! Eagerly the segment runs without recording, and each of its outputs is one node whose
//! gradient rule re-runs the segment (with recording) on its inputs and back-propagates
//! through the recomputed graph. Inside a compiled step the segment's ops are traced as usual
//! and marked, and the compiler's remat pass recomputes them for the backward pass.

use crate::mode::GradModeGuard;
use crate::op::{InputGrads, Op};
use crate::tensor::Inputs;
use crate::{grad_with_seeds, Error, Result, Tensor};
use std::fmt;
use std::sync::Arc;

/// The function of a checkpointed segment.
type SegmentFn = dyn Fn(&[Tensor]) -> Result<Vec<Tensor>> + Send + Sync;

/// One output of a checkpointed segment: the function to re-run and which output this is.
#[derive(Clone)]
pub struct Segment {
    f: Arc<SegmentFn>,
    output: usize,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Segment(output {})", self.output)
    }
}

impl PartialEq for Segment {
    fn eq(&self, other: &Segment) -> bool {
        Arc::ptr_eq(&self.f, &other.f) && self.output == other.output
    }
}

/// Runs `f` on `inputs` without keeping its intermediate values for the backward pass, which
/// recomputes them (less memory for one more forward pass of the segment). The outputs are
/// those of `f`; gradients equal those of calling `f` directly. Inside a compiled step the
/// segment is traced and the compiler recomputes it (see [`compile`](mod@crate::compile)).
///
/// `f` must be `'static` (the backward pass calls it later): move `Arc`s of the modules it
/// uses into it. It must compute the same values when called again (a random draw inside it
/// would draw anew). Gradients through a segment differentiate again (`create_graph`).
///
/// ```
/// use graphgrad_autodiff::{checkpoint, Tensor};
/// let x = Tensor::from_vec(vec![0.5f64, -1.0], &[2])?.requires_grad_();
/// let y = checkpoint(|v| Ok(vec![v[0].tanh().exp()]), &[x.clone()])?.remove(0);
/// y.sum_all().backward()?;
/// // d/dx e^tanh(x) = e^tanh(x)·(1 − tanh²x)
/// let want: Vec<f64> = [0.5f64, -1.0].iter().map(|&v| v.tanh().exp() * (1.0 - v.tanh().powi(2))).collect();
/// let got = x.grad().unwrap().to_vec::<f64>()?;
/// assert!((got[0] - want[0]).abs() < 1e-15 && (got[1] - want[1]).abs() < 1e-15);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn checkpoint<F>(f: F, inputs: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>> + Send + Sync + 'static,
{
    if crate::mode::tracing() {
        return crate::trace::segment(|| f(inputs), |outputs| outputs.iter().map(Tensor::id).collect());
    }
    let recording = crate::grad_enabled() && inputs.iter().any(Tensor::requires_grad);
    if !recording {
        return f(inputs);
    }
    let outputs = crate::no_grad(|| f(inputs))?;
    let f: Arc<SegmentFn> = Arc::new(f);
    let mut recorded = Inputs::new();
    recorded.extend(inputs.iter().cloned());
    Ok(outputs
        .iter()
        .enumerate()
        .map(|(output, value)| {
            let op = Op::Checkpoint(Segment { f: f.clone(), output });
            Tensor::from_op(op, recorded.clone(), value)
        })
        .collect())
}

impl Segment {
    /// A segment for the op catalogue (the identity).
    pub(crate) fn example() -> Segment {
        Segment { f: Arc::new(|x: &[Tensor]| Ok(x.to_vec())), output: 0 }
    }

    /// Runs the segment's function on `inputs`.
    pub(crate) fn call(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        (self.f)(inputs)
    }

    /// Which of the segment's outputs this is.
    pub(crate) fn output_index(&self) -> usize {
        self.output
    }

    /// This output among the segment's outputs recomputed in backward or forward mode (an
    /// error when the segment returned fewer on recomputation than when it first ran).
    fn recomputed<'a>(&self, outputs: &'a [Tensor]) -> Result<&'a Tensor> {
        outputs.get(self.output).ok_or_else(|| Error::InvalidArgument {
            op: "checkpoint",
            reason: format!(
                "the segment returned {} outputs on recomputation, not {}",
                outputs.len(),
                self.output + 1
            ),
        })
    }

    /// The tangent of this output: re-run the segment on its inputs, recording, and push the
    /// inputs' tangents forward through what it recorded.
    pub(crate) fn jvp(&self, node: &Tensor, t: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let inputs = node.inputs();
        let outputs = crate::mode::recording(|| (self.f)(inputs))?;
        let out = self.recomputed(&outputs)?;
        let seeds: Vec<(Tensor, Tensor)> =
            inputs.iter().zip(t).filter_map(|(x, t)| t.clone().map(|t| (x.clone(), t))).collect();
        Ok(crate::func::push_forward(std::slice::from_ref(out), &seeds)?.remove(0))
    }

    /// The gradient of the segment's inputs: re-run it on them with recording, then
    /// back-propagate `g` from this output (recorded too under `create_graph`, so the gradient
    /// differentiates again).
    pub(crate) fn vjp(&self, node: &Tensor, g: &Tensor) -> Result<InputGrads> {
        let create_graph = crate::grad_enabled();
        let inputs = node.inputs();
        let outputs = {
            let _recording = GradModeGuard::new(true);
            (self.f)(inputs)?
        };
        let out = self.recomputed(&outputs)?;
        let wanted: Vec<Tensor> = inputs.iter().filter(|t| t.requires_grad()).cloned().collect();
        if !out.requires_grad() {
            return Ok(inputs.iter().map(|_| None).collect());
        }
        let mut grads =
            grad_with_seeds(std::slice::from_ref(out), vec![g.clone()], &wanted, create_graph)?.into_iter();
        Ok(inputs.iter().map(|t| if t.requires_grad() { grads.next() } else { None }).collect())
    }
}
