//! `functional_call`: a module run on parameters given as tensors (PyTorch's
//! `torch.func.functional_call`), so function transforms (`func::grad`, `func::vmap`, ...)
//! apply to models: per-sample gradients, ensembles, Hessians in the weights.

use crate::Module;
use graphgrad_autodiff::{func, Error, Result, Tensor};

/// Runs `module` on `input` with each parameter named in `parameters` (its dotted name, as
/// [`Module::named_parameters`] gives it) read as the tensor given for it; parameters not
/// named keep their own values. The module's `Var`s are left untouched, and gradients,
/// tangents and batching flow to the given tensors. An unknown name, or a tensor whose shape or
/// element type differs from its parameter's, is an error.
///
/// ```
/// use graphgrad_autodiff::{func, DType, Tensor};
/// use graphgrad_nn::{functional_call, LinearConfig, Module};
/// use rand::SeedableRng;
/// let layer = LinearConfig::new(2, 1).with_dtype(DType::F64).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let names: Vec<String> = layer.named_parameters().into_iter().map(|(n, _)| n).collect();
/// let x = Tensor::from_vec(vec![3.0f64, -1.0], &[1, 2])?;
/// // the gradient of the output in the weight is the input, whatever the weight's value
/// let grads = func::grad(|p: &[Tensor]| {
///     let given: Vec<(String, Tensor)> = names.iter().cloned().zip(p.iter().cloned()).collect();
///     Ok(functional_call(&layer, &given, &x)?.sum_all())
/// })(&[Tensor::zeros(&[1, 2], DType::F64)?, Tensor::zeros(&[1], DType::F64)?])?;
/// assert_eq!(grads[0].to_vec::<f64>()?, [3.0, -1.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn functional_call(
    module: &dyn Module,
    parameters: &[(String, Tensor)],
    input: &Tensor,
) -> Result<Tensor> {
    let own = module.named_parameters();
    let mut pairs = Vec::with_capacity(parameters.len());
    for (name, tensor) in parameters {
        let Some((_, var)) = own.iter().find(|(n, _)| n == name) else {
            let known: Vec<&str> = own.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::InvalidArgument {
                op: "functional_call",
                reason: format!("the module has no parameter `{name}` (it has {known:?})"),
            });
        };
        if var.shape() != tensor.shape() {
            return Err(Error::InvalidArgument {
                op: "functional_call",
                reason: format!(
                    "parameter `{name}` has shape {:?}, the tensor given for it {:?}",
                    var.shape(),
                    tensor.shape()
                ),
            });
        }
        pairs.push((var.tensor().clone(), tensor.clone()));
    }
    func::with_substitutes(&pairs, || module.forward(input))
}
