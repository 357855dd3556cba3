//! The training step, written once as the course teaches it (forward, loss, gradients,
//! update) and run either eagerly or, handed to `compile_if`, as one traced program per batch
//! shape: the optimiser's update, dropout's random stream and BatchNorm's statistics included.
//!
//! Three bodies share the code: `step` (one batch, then the update), and for gradient
//! accumulation and data-parallel steps `accumulate` (adds the batch's gradient, weighted by
//! its size, into `.grad()`) and `update` (scales the summed gradients, given as inputs, to a
//! mean, updates, clears). Between the two a data-parallel step averages `.grad()` over the
//! ranks: outside any program, since a program cannot call out to the other processes.

use crate::error::Result;
use crate::objective::{Objective, StepTargets};
use graphgrad_autodiff::compile::{compile_if, Compiled};
use graphgrad_autodiff::{grad, Tensor, Var};
use graphgrad_nn::data::{Batch, BatchTargets};
use graphgrad_nn::Module;
use graphgrad_optim::{check_gradients_finite, Optimizer};
use std::cell::RefCell;

/// Eager or compiled training steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Execution {
    /// Every op runs as it is called (define-by-run).
    #[default]
    Eager,
    /// The whole step (forward, loss, backward, update) is traced once per batch shape and
    /// replayed as a fused, memory-planned program; class labels enter it as an i64 tensor.
    Compiled,
}

/// The batch's targets as the one tensor a step takes: i64 class labels `[batch]`, or values.
pub(crate) fn target_tensor(batch: &Batch) -> Result<Tensor> {
    Ok(match &batch.targets {
        BatchTargets::Classes(_) => batch.label_tensor()?,
        BatchTargets::Values(values) => values.clone(),
    })
}

/// What the bodies share.
struct Parts<'a, 'o> {
    model: &'a dyn Module,
    objective: &'a dyn Objective,
    optimizer: &'a RefCell<&'o mut dyn Optimizer>,
    trainable: Vec<(String, Var)>,
    check_gradients: bool,
}

impl Parts<'_, '_> {
    /// The batch's mean loss and its gradients with respect to the trainable parameters
    /// (frozen ones get none).
    fn loss_and_grads(&self, io: &[Tensor], weight: Option<f64>) -> Result<(Tensor, Vec<Tensor>)> {
        let loss = self.objective.loss(&self.model.forward(&io[0])?, StepTargets::of(&io[1]))?;
        let weighted = match weight {
            Some(w) => loss.mul_scalar(w),
            None => loss.clone(),
        };
        let params: Vec<Tensor> = self.trainable.iter().map(|(_, v)| v.tensor().clone()).collect();
        let grads = grad(std::slice::from_ref(&weighted), &params, false)?;
        Ok((loss, grads))
    }

    /// The update from the gradients in `.grad()`, which it then clears.
    fn update(&self) -> Result<()> {
        if self.check_gradients {
            check_gradients_finite(&self.trainable)?;
        }
        self.optimizer.borrow_mut().step()?;
        for (_, var) in &self.trainable {
            var.set_grad(None)?;
        }
        Ok(())
    }
}

type Body<'a, R> = Box<dyn FnMut(&[Tensor]) -> Result<R> + 'a>;

/// The step bodies, each eager or compiled by one setting.
pub(crate) struct Stepper<'a> {
    trainable: Vec<(String, Var)>,
    /// One batch, then the update. Inputs `[inputs, targets]`; returns the loss.
    step: Compiled<Body<'a, Tensor>>,
    /// Adds the batch's size × its gradient into `.grad()`. Inputs `[inputs, targets]`.
    accumulate: Compiled<Body<'a, Tensor>>,
    /// Inputs `[scale, gradients...]`: makes `scale × gradient` each trainable parameter's
    /// `.grad()`, updates and clears.
    update: Compiled<Body<'a, ()>>,
}

impl<'a> Stepper<'a> {
    pub(crate) fn new<'o: 'a>(
        execution: Execution,
        model: &'a dyn Module,
        objective: &'a dyn Objective,
        optimizer: &'a RefCell<&'o mut dyn Optimizer>,
        trainable: Vec<(String, Var)>,
        check_gradients: bool,
    ) -> Stepper<'a> {
        let compiled = execution == Execution::Compiled;
        let parts = std::rc::Rc::new(Parts {
            model,
            objective,
            optimizer,
            trainable: trainable.clone(),
            check_gradients,
        });
        let p = parts.clone();
        let step: Body<'a, Tensor> = Box::new(move |io: &[Tensor]| {
            let (loss, grads) = p.loss_and_grads(io, None)?;
            for ((_, var), g) in p.trainable.iter().zip(&grads) {
                var.set_grad(Some(g))?;
            }
            p.update()?;
            Ok(loss)
        });
        let p = parts.clone();
        let accumulate: Body<'a, Tensor> = Box::new(move |io: &[Tensor]| {
            // the batch size is part of the input shapes, so a constant of each program
            let (loss, grads) = p.loss_and_grads(io, Some(io[0].shape()[0] as f64))?;
            for ((_, var), g) in p.trainable.iter().zip(&grads) {
                let sum = match var.grad() {
                    Some(old) => old.add(g)?,
                    None => g.clone(),
                };
                var.set_grad(Some(&sum))?;
            }
            Ok(loss)
        });
        let p = parts;
        let update: Body<'a, ()> = Box::new(move |io: &[Tensor]| {
            for ((_, var), g) in p.trainable.iter().zip(&io[1..]) {
                var.set_grad(Some(&g.mul(&io[0].to_dtype(g.dtype()))?))?;
            }
            p.update()
        });
        Stepper {
            trainable,
            step: compile_if(compiled, step),
            accumulate: compile_if(compiled, accumulate),
            update: compile_if(compiled, update),
        }
    }

    /// One batch and the update; returns the batch's loss.
    pub(crate) fn step(&mut self, batch: &Batch) -> Result<f64> {
        let io = [batch.inputs.clone(), target_tensor(batch)?];
        loss_of(self.step.call(&io)?)
    }

    /// Adds the batch's gradient, weighted by its size, into `.grad()`; returns its loss.
    pub(crate) fn accumulate(&mut self, batch: &Batch) -> Result<f64> {
        let io = [batch.inputs.clone(), target_tensor(batch)?];
        loss_of(self.accumulate.call(&io)?)
    }

    /// The update from the gradients in `.grad()` times `scale` (1 / the samples they sum
    /// over). A trainable parameter without a gradient takes zeros.
    pub(crate) fn update(&mut self, scale: f64) -> Result<()> {
        let mut io = vec![Tensor::scalar(scale)];
        for (_, var) in &self.trainable {
            // the gradients travel as inputs: averaging over ranks makes them new tensors
            io.push(var.grad().map_or_else(|| Tensor::zeros(var.shape(), var.dtype()), Ok)?);
        }
        self.update.call(&io)?;
        Ok(())
    }

    /// How many programs the compiled bodies traced (one per batch shape and body); 0 in
    /// eager mode.
    pub(crate) fn traces(&self) -> usize {
        self.step.trace_count() + self.accumulate.trace_count() + self.update.trace_count()
    }
}

/// The loss a step body returned (its only output).
fn loss_of(outputs: Vec<Tensor>) -> Result<f64> {
    Ok(outputs[0].item()?)
}
