//! Gradient recording mode: `no_grad` scopes, per thread.

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    /// Set while `compile` traces a step: every op keeps its inputs (see `Tensor::record_value`).
    static TRACING: Cell<bool> = const { Cell::new(false) };
    /// Set inside `compile::constant_indices`: index lists may be frozen into a trace.
    static CONSTANT_INDICES: Cell<bool> = const { Cell::new(false) };
    /// Depth of function transforms (`func::jvp`, `func::vmap`) walking the graph they record.
    static RECORDING: Cell<usize> = const { Cell::new(0) };
}

/// Whether every op keeps its inputs: while `compile` traces, and while a function transform
/// records the graph it walks afterwards (tangents, batching rules).
pub(crate) fn keeps_inputs() -> bool {
    tracing() || RECORDING.with(Cell::get) > 0
}

/// Runs `f` with every op keeping its inputs (see [`keeps_inputs`]), until it returns or
/// unwinds.
pub(crate) fn recording<R>(f: impl FnOnce() -> R) -> R {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            RECORDING.with(|c| c.set(c.get() - 1));
        }
    }
    RECORDING.with(|c| c.set(c.get() + 1));
    let _depth = Depth;
    f()
}

/// Whether `compile` is tracing a step on this thread.
pub(crate) fn tracing() -> bool {
    TRACING.with(Cell::get)
}

/// Whether an op taking an index list may record it now: always outside a trace, and inside
/// one only within `compile::constant_indices`.
pub(crate) fn index_lists_allowed() -> bool {
    !tracing() || CONSTANT_INDICES.with(Cell::get)
}

/// Runs `f` with index lists allowed as trace constants (see `compile::constant_indices`).
pub(crate) fn with_constant_indices<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous setting when dropped, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = CONSTANT_INDICES.try_with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CONSTANT_INDICES.with(|c| c.replace(true)));
    f()
}

/// Turns tracing on until dropped (restoring the previous state), for `compile`.
pub(crate) struct TracingGuard {
    previous: bool,
}

impl TracingGuard {
    /// Starts tracing on this thread.
    pub(crate) fn new() -> TracingGuard {
        TracingGuard { previous: TRACING.with(|t| t.replace(true)) }
    }
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        TRACING.with(|t| t.set(self.previous));
    }
}

/// Whether ops on this thread currently record the graph.
pub fn grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Restores the previous recording mode when dropped.
#[must_use = "the mode is restored when the guard drops"]
pub struct GradModeGuard {
    previous: bool,
}

impl GradModeGuard {
    /// Sets the recording mode until the guard drops.
    pub fn new(enabled: bool) -> GradModeGuard {
        let previous = GRAD_ENABLED.with(|g| g.replace(enabled));
        GradModeGuard { previous }
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` without recording gradients (like `torch.no_grad()`): results do not require grad.
///
/// ```
/// use graphgrad_autodiff::{no_grad, Tensor};
/// let w = Tensor::from_vec(vec![1.0f32], &[1])?.requires_grad_();
/// let y = no_grad(|| w.mul_scalar(2.0));
/// assert!(!y.requires_grad());
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = GradModeGuard::new(false);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_constant_indices_restores_the_setting() {
        let caught = std::panic::catch_unwind(|| with_constant_indices(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(!CONSTANT_INDICES.with(Cell::get), "index lists stay constants after the panic");
    }
}
