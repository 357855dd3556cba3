//! The one training step both modes run: forward, loss, gradients of the trainable
//! parameters. Eager mode calls it on each batch; compiled mode hands the same function to
//! `graphgrad_autodiff::compile`, which traces it once per batch shape and replays the
//! optimised program. The optimiser's update runs after the step, eagerly, in both modes:
//! today's compiler cannot run an `Optimizer` inside a trace (its update must be written as
//! tensor expressions in `Step::update`).

use crate::error::{Error, Result};
use crate::objective::{one_hot, Objective, StepTargets};
use graphgrad_autodiff::compile::{compile, Compiled};
use graphgrad_autodiff::{grad, Tensor};
use graphgrad_nn::data::{Batch, BatchTargets};
use graphgrad_nn::Module;

/// Eager or compiled training steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Execution {
    /// Every op runs as it is called (define-by-run).
    #[default]
    Eager,
    /// The step (forward, loss, backward) is traced once per batch shape and replayed as a
    /// fused, memory-planned program; class labels enter it one-hot. Refused for models with
    /// buffers (batch norm) and training-mode dropout, which a trace cannot capture yet.
    Compiled,
}

/// The loss and the gradients of `trainable` for one batch.
pub(crate) fn training_step(
    model: &dyn Module,
    objective: &dyn Objective,
    trainable: &[Tensor],
    inputs: &Tensor,
    targets: StepTargets<'_>,
) -> Result<(Tensor, Vec<Tensor>)> {
    let output = model.forward(inputs)?;
    let loss = objective.loss(&output, targets)?;
    let grads = grad(std::slice::from_ref(&loss), trainable, false)?;
    Ok((loss, grads))
}

/// The step function in the form `compile` takes: inputs `[inputs, targets]`, outputs the
/// loss then the gradients.
type StepFn<'a> = Box<dyn Fn(&[Tensor]) -> graphgrad_autodiff::Result<Vec<Tensor>> + 'a>;

/// Runs the step in the chosen mode.
pub(crate) enum Stepper<'a> {
    Eager {
        model: &'a dyn Module,
        objective: &'a dyn Objective,
        trainable: Vec<Tensor>,
    },
    /// `classes`: the width of the one-hot labels; `None` for real-valued targets.
    Compiled {
        program: Box<Compiled<StepFn<'a>>>,
        classes: Option<usize>,
    },
}

impl<'a> Stepper<'a> {
    pub(crate) fn new(
        execution: Execution,
        model: &'a dyn Module,
        objective: &'a dyn Objective,
        trainable: Vec<Tensor>,
        classes: Option<usize>,
    ) -> Stepper<'a> {
        match execution {
            Execution::Eager => Stepper::Eager { model, objective, trainable },
            Execution::Compiled => {
                let step: StepFn<'a> = Box::new(move |io: &[Tensor]| {
                    let targets = match classes {
                        Some(_) => StepTargets::OneHot(&io[1]),
                        None => StepTargets::Values(&io[1]),
                    };
                    let (loss, grads) = training_step(model, objective, &trainable, &io[0], targets)
                        .map_err(|e| graphgrad_autodiff::Error::InvalidArgument {
                            op: "Trainer (compiled step)",
                            reason: e.to_string(),
                        })?;
                    let mut outputs = vec![loss];
                    outputs.extend(grads);
                    Ok(outputs)
                });
                Stepper::Compiled { program: Box::new(compile(step)), classes }
            }
        }
    }

    /// The batch's loss tensor value and the gradients, in `trainable` order.
    pub(crate) fn run(&mut self, batch: &Batch) -> Result<(f64, Vec<Tensor>)> {
        match self {
            Stepper::Eager { model, objective, trainable } => {
                let (loss, grads) = training_step(
                    *model,
                    *objective,
                    trainable,
                    &batch.inputs,
                    StepTargets::of(&batch.targets),
                )?;
                Ok((loss.item()?, grads))
            }
            Stepper::Compiled { program, classes } => {
                let targets = match (&batch.targets, *classes) {
                    (BatchTargets::Classes(labels), Some(classes)) => one_hot(labels, classes)?,
                    (BatchTargets::Values(values), None) => values.clone(),
                    _ => return Err(crate::error::setting("data", "labels and values mixed in one run")),
                };
                let io = [batch.inputs.clone(), targets];
                let mut outputs = program.call(&io).map_err(Error::Tensor)?;
                let loss = outputs.remove(0).item()?;
                Ok((loss, outputs))
            }
        }
    }

    /// How many programs the compiled step traced (one per batch shape); 0 in eager mode.
    pub(crate) fn traces(&self) -> usize {
        match self {
            Stepper::Eager { .. } => 0,
            Stepper::Compiled { program, .. } => program.trace_count(),
        }
    }
}
