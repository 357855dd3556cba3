//! `vmap`: run a function of one sample on a batch, by replaying what it recorded on the first
//! sample with each op's batching rule (`batch.rs`).

use super::batch::{self, Arg};
use super::{shapes, topological};
use crate::{Error, Result, Tensor};
use smallvec::SmallVec;
use std::collections::{HashMap, HashSet};

/// The function `f` mapped over a batch (like `jax.vmap` and `torch.func.vmap`): input `i` is
/// batched along axis `in_axes[i]` (`None`: the same tensor for every sample), every batched
/// input has the same size there, and output `j` has the batch at axis `out_axes[j]`. `f`
/// sees one sample, with the batch axis removed.
///
/// `f` runs once, on the first sample, while every op keeps its inputs; the recording is then
/// replayed on the whole batch, each op by its batching rule: a matrix product of a batch of
/// inputs with a shared weight is one GEMM, of two batched operands one batched GEMM;
/// reductions, softmax and indexing act on shifted axes; convolutions and pooling fold the
/// batch into their own; a convolution whose weights are batched runs once per sample. It
/// composes: `vmap(grad(f))` gives per-sample gradients, `vmap(vmap(f))` maps over two axes,
/// `vmap` of [`jvp`](super::jvp) gives a batch of Jacobian-vector products.
///
/// Randomness: a random draw inside `f` is the same for every sample (the one the first
/// sample drew; the generator advances once per call of the mapped function). Draw outside
/// and pass the samples in, batched, for different numbers per sample. Control flow that
/// depends on tensor values is frozen at the first sample's, as in `jax.vmap`.
///
/// ```
/// use graphgrad_autodiff::{func, Tensor};
/// // a batch of dot products with a shared vector: [3, 2]·[2] → [3]
/// let dot = func::vmap(|v: &[Tensor]| Ok(vec![v[0].mul(&v[1])?.sum_all()]), &[Some(0), None], &[0]);
/// let xs = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2])?;
/// let w = Tensor::from_vec(vec![2.0f64, 5.0], &[2])?;
/// assert_eq!(dot(&[xs, w])?[0].to_vec::<f64>()?, [2.0, 5.0, 7.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn vmap<F>(
    f: F,
    in_axes: &[Option<usize>],
    out_axes: &[usize],
) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let (in_axes, out_axes) = (in_axes.to_vec(), out_axes.to_vec());
    move |inputs: &[Tensor]| {
        let (size, batched) = batch_inputs(inputs, &in_axes)?;
        let outputs = batched_call(&f, inputs, &batched, size)?;
        if outputs.len() != out_axes.len() {
            crate::bail!(
                "vmap",
                "{} out_axes {out_axes:?} for {} outputs of shapes {:?}",
                out_axes.len(),
                outputs.len(),
                shapes(&outputs)
            );
        }
        outputs.iter().zip(&out_axes).map(|(y, &axis)| move_batch_axis(y, axis)).collect()
    }
}

/// The batch size, and each input with its batch axis moved to the front (`None`: unbatched),
/// or an error naming the inputs' shapes.
fn batch_inputs(inputs: &[Tensor], in_axes: &[Option<usize>]) -> Result<(usize, Vec<Option<Tensor>>)> {
    if in_axes.len() != inputs.len() {
        crate::bail!(
            "vmap",
            "{} in_axes {in_axes:?} for {} inputs of shapes {:?}",
            in_axes.len(),
            inputs.len(),
            shapes(inputs)
        );
    }
    let mut size = None;
    let mut batched = Vec::with_capacity(inputs.len());
    for (i, (x, axis)) in inputs.iter().zip(in_axes).enumerate() {
        let Some(axis) = *axis else {
            batched.push(None);
            continue;
        };
        if axis >= x.rank() {
            return Err(Error::AxisOutOfRange { op: "vmap", axis: axis as isize, shape: x.shape().into() });
        }
        let n = x.shape()[axis];
        match size {
            Some((m, j)) if m != n => crate::bail!(
                "vmap",
                "batch sizes differ: input {j} has {m} along its batch axis, input {i} (shape {:?}, in_axis \
                 {axis}) has {n}; in_axes {in_axes:?}, shapes {:?}",
                x.shape(),
                shapes(inputs)
            ),
            _ => size = Some((n, i)),
        }
        let mut perm: SmallVec<[usize; 6]> = smallvec::smallvec![axis];
        perm.extend((0..x.rank()).filter(|&d| d != axis));
        batched.push(Some(x.permute(&perm)?));
    }
    let Some((size, _)) = size else {
        crate::bail!("vmap", "no input is batched: in_axes {in_axes:?}, shapes {:?}", shapes(inputs))
    };
    if size == 0 {
        crate::bail!("vmap", "the batch is empty: in_axes {in_axes:?}, shapes {:?}", shapes(inputs));
    }
    Ok((size, batched))
}

/// `f` on the batch: `batched[i]` is input `i` with its batch (of `size`) at axis 0, or `None`
/// for an input shared by every sample. The outputs have the batch at axis 0.
pub(super) fn batched_call<F>(
    f: &F,
    inputs: &[Tensor],
    batched: &[Option<Tensor>],
    size: usize,
) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>> + ?Sized,
{
    // the first sample, as a leaf of its own: the replay stops there
    let samples: Vec<Tensor> = inputs
        .iter()
        .zip(batched)
        .map(|(x, b)| match b {
            Some(b) => first_sample(b),
            None => Ok(x.clone()),
        })
        .collect::<Result<_>>()?;
    let outputs = crate::mode::recording(|| f(&samples))?;
    let mut values: HashMap<usize, Tensor> = HashMap::new();
    for (s, b) in samples.iter().zip(batched) {
        if let Some(b) = b {
            values.insert(s.id(), b.clone());
        }
    }
    let sources: HashSet<usize> = values.keys().copied().collect();
    for node in topological(&outputs, &sources) {
        if sources.contains(&node.id()) || node.inputs().iter().all(|i| !values.contains_key(&i.id())) {
            continue;
        }
        let args: SmallVec<[Arg; 3]> = node
            .inputs()
            .iter()
            .map(|i| match values.get(&i.id()) {
                Some(v) => Arg { value: v.clone(), batched: true },
                None => Arg { value: i.clone(), batched: false },
            })
            .collect();
        values.insert(node.id(), batch::rule(&node, &args, size)?);
    }
    outputs
        .iter()
        .map(|y| match values.get(&y.id()) {
            Some(v) => Ok(v.clone()),
            // the same for every sample
            None => y.unsqueeze(0)?.expand(&[[size].as_slice(), y.shape()].concat()),
        })
        .collect()
}

/// Sample 0 of a batch (batch at axis 0), as a new leaf.
fn first_sample(batch: &Tensor) -> Result<Tensor> {
    let sample = crate::no_grad(|| batch.narrow(0, 0, 1)?.reshape(&batch.shape()[1..]))?;
    let value = sample.read().clone();
    Tensor::leaf(value, sample.shape(), false)
}

/// `y` (batch at axis 0) with its batch moved to `axis`.
fn move_batch_axis(y: &Tensor, axis: usize) -> Result<Tensor> {
    if axis >= y.rank() {
        return Err(Error::AxisOutOfRange { op: "vmap", axis: axis as isize, shape: y.shape().into() });
    }
    let mut perm: SmallVec<[usize; 6]> = (1..y.rank()).collect();
    perm.insert(axis, 0);
    y.permute(&perm)
}
