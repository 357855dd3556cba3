//! Gradient hooks: code told during [`Tensor::backward`] when a leaf's gradient is final.
//!
//! Data-parallel training needs to start averaging a parameter's gradient across processes
//! while the backward pass is still computing the others (PyTorch's
//! `register_post_accumulate_grad_hook` and its reducer's end-of-backward callback). A hook
//! registered here is called, on the thread that runs `backward`,
//!
//! - with [`GradEvent::Ready`] as soon as a leaf's `.grad()` holds its final value for the pass
//!   (the engine visits nodes in reverse topological order, so once a leaf is reached no later
//!   node can add to it), and
//! - with [`GradEvent::Finished`] once the pass has reached every leaf it will reach.
//!
//! Hooks are per thread (the graph and the gradient mode are too) and stay registered while
//! their [`GradHookHandle`] lives. Only `backward`/`backward_with` call them: [`grad`](crate::grad)
//! returns gradients instead of accumulating them, so there is nothing final to report. A
//! hook's error ends the pass and is `backward`'s error; gradients already accumulated stay.

use crate::{Result, Tensor};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What a gradient hook is told during `backward`.
#[derive(Clone, Copy, Debug)]
pub enum GradEvent<'a> {
    /// This leaf's `.grad()` now holds its final value for the pass.
    Ready(&'a Tensor),
    /// The pass has finished reporting leaves.
    Finished,
}

type Hook = Rc<RefCell<dyn FnMut(GradEvent<'_>) -> Result<()>>>;

thread_local! {
    static HOOKS: RefCell<Vec<(u64, Hook)>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

/// Keeps a hook registered; dropping it unregisters the hook.
#[must_use = "the hook is unregistered when the handle drops"]
#[derive(Debug)]
pub struct GradHookHandle {
    id: u64,
    /// Hooks live in a thread-local registry: the handle must drop on the same thread.
    _not_send: std::marker::PhantomData<Rc<()>>,
}

impl Drop for GradHookHandle {
    fn drop(&mut self) {
        // (During thread teardown the registry may already be gone: nothing to remove then.)
        let _ = HOOKS.try_with(|hooks| hooks.borrow_mut().retain(|(id, _)| *id != self.id));
    }
}

/// Registers `hook` on this thread until the returned handle drops (see the module docs).
///
/// ```
/// use graphgrad_autodiff::hooks::{register_grad_hook, GradEvent};
/// use graphgrad_autodiff::Tensor;
/// use std::{cell::RefCell, rc::Rc};
/// let w = Tensor::from_vec(vec![3.0f64], &[1])?.requires_grad_();
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let log = seen.clone();
/// let _hook = register_grad_hook(move |event| {
///     log.borrow_mut().push(match event {
///         GradEvent::Ready(leaf) => format!("ready {:?}", leaf.grad().unwrap().to_vec::<f64>()),
///         GradEvent::Finished => "finished".to_string(),
///     });
///     Ok(())
/// });
/// w.mul(&w)?.sum_all().backward()?; // d/dw w² = 2w = 6
/// assert_eq!(*seen.borrow(), ["ready Ok([6.0])", "finished"]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn register_grad_hook(hook: impl FnMut(GradEvent<'_>) -> Result<()> + 'static) -> GradHookHandle {
    let id = NEXT_ID.with(|n| n.replace(n.get() + 1));
    HOOKS.with(|hooks| hooks.borrow_mut().push((id, Rc::new(RefCell::new(hook)))));
    GradHookHandle { id, _not_send: std::marker::PhantomData }
}

/// Calls every hook registered on this thread with `event`, in registration order.
pub(crate) fn fire(event: GradEvent<'_>) -> Result<()> {
    // Copied out first, so a hook may register or drop hooks without a double borrow.
    let hooks: Vec<Hook> = HOOKS.with(|hooks| hooks.borrow().iter().map(|(_, h)| h.clone()).collect());
    for hook in hooks {
        // A hook that runs `backward` itself is not called again from inside its own call.
        if let Ok(mut hook) = hook.try_borrow_mut() {
            hook(event)?;
        }
    }
    Ok(())
}

/// Whether any hook is registered on this thread (the engine skips the events otherwise).
pub(crate) fn any() -> bool {
    HOOKS.with(|hooks| !hooks.borrow().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad;

    /// y = Σ (a·b + a): ∂y/∂a = b + 1 = [3, 4], ∂y/∂b = a = [1, 1]. Each leaf is reported once,
    /// after both paths into `a` have been added, then the pass is reported finished.
    #[test]
    fn leaves_are_reported_once_with_their_final_gradient() -> Result<()> {
        let a = Tensor::from_vec(vec![1.0f64, 1.0], &[2])?.requires_grad_();
        let b = Tensor::from_vec(vec![2.0f64, 3.0], &[2])?.requires_grad_();
        let (ia, ib) = (a.id(), b.id());
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        let handle = register_grad_hook(move |event| {
            log.borrow_mut().push(match event {
                GradEvent::Ready(t) => (Some(t.id()), t.grad().map(|g| g.to_f64_vec())),
                GradEvent::Finished => (None, None),
            });
            Ok(())
        });
        a.mul(&b)?.add(&a)?.sum_all().backward()?;
        let events = seen.borrow().clone();
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(events.contains(&(Some(ia), Some(vec![3.0, 4.0]))));
        assert!(events.contains(&(Some(ib), Some(vec![1.0, 1.0]))));
        assert_eq!(events[2], (None, None));
        // `grad` accumulates nothing and reports nothing; a dropped handle is silent.
        seen.borrow_mut().clear();
        grad(&[a.mul(&b)?.sum_all()], std::slice::from_ref(&a), false)?;
        assert!(seen.borrow().is_empty());
        drop(handle);
        a.mul(&b)?.sum_all().backward()?;
        assert!(seen.borrow().is_empty());
        Ok(())
    }

    /// y = Σ (x·w1)·w2: the engine reaches w2 (used by the last matmul) before it has even
    /// started on the first matmul's backward, and it says so then, not at the end.
    #[test]
    fn leaves_are_reported_as_soon_as_their_last_use_is_done() -> Result<()> {
        let x = Tensor::from_vec(vec![1.0f64, 2.0], &[1, 2])?;
        let w1 = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 1.0], &[2, 2])?.requires_grad_();
        let w2 = Tensor::from_vec(vec![3.0f64, 4.0], &[2, 1])?.requires_grad_();
        let order = Rc::new(RefCell::new(Vec::new()));
        let log = order.clone();
        let _hook = register_grad_hook(move |event| {
            if let GradEvent::Ready(t) = event {
                log.borrow_mut().push(t.id());
            }
            Ok(())
        });
        x.matmul(&w1)?.matmul(&w2)?.sum_all().backward()?;
        assert_eq!(*order.borrow(), [w2.id(), w1.id()]);
        // ∂y/∂w2 = (x·w1)ᵀ = [1, 2]ᵀ; ∂y/∂w1 = xᵀ·w2ᵀ = [[3, 4], [6, 8]]
        assert_eq!(w2.grad().unwrap().to_f64_vec(), [1.0, 2.0]);
        assert_eq!(w1.grad().unwrap().to_f64_vec(), [3.0, 4.0, 6.0, 8.0]);
        Ok(())
    }

    #[test]
    fn a_hook_error_is_the_error_of_backward() -> Result<()> {
        let a = Tensor::from_vec(vec![1.0f64], &[1])?.requires_grad_();
        let _hook = register_grad_hook(|event| match event {
            GradEvent::Finished => crate::bail!("test hook", "refused"),
            GradEvent::Ready(_) => Ok(()),
        });
        let err = a.sum_all().backward().unwrap_err();
        assert_eq!(err.to_string(), "test hook: refused");
        Ok(())
    }
}
