//! A bucket's flat buffers and what travels to the communication thread and back.
//!
//! Copies are what make averaging slower than a bare all-reduce, so there are as few as the
//! layout allows: a bucket of one parameter sends that gradient's own buffer (no copy in); a
//! bucket of several copies each gradient in once. The sums arrive in a receive buffer kept
//! from step to step (a [`Var`], the tensor type whose storage may be written in place) and
//! are divided there by the number of ranks. The mean of a bucket of one parameter becomes
//! its `.grad()` as a view of that buffer (no copy out); the next step writes the buffer in
//! place once that gradient has been dropped (`zero_grad`), and copies it first (copy on
//! write) if the caller still holds it. A bucket of several parameters (small ones) hands out
//! copies from the thread's buffer pool.

use crate::group::{Data, DataMut, ProcessGroup, ReduceOp};
use crate::{Error, Result};
use graphgrad_autodiff::{no_grad, Buffer, DType, Elem, Storage, Tensor, Var};

/// A flat buffer of one element type.
#[derive(Debug)]
pub(crate) enum Flat {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Flat {
    pub(crate) fn zeros(dtype: DType, len: usize) -> Flat {
        match dtype {
            DType::F32 => Flat::F32(vec![0.0; len]),
            DType::F64 => Flat::F64(vec![0.0; len]),
            DType::I64 => unreachable!("internal invariant: buckets hold float gradients"),
        }
    }

    fn data(&self) -> Data<'_> {
        match self {
            Flat::F32(v) => Data::F32(v),
            Flat::F64(v) => Data::F64(v),
        }
    }

    /// Copies `grad` (or zeros) into `[offset, offset + numel)`.
    pub(crate) fn write(&mut self, offset: usize, numel: usize, grad: Option<&Tensor>) -> Result<()> {
        fn put<T: Elem>(dst: &mut [T], grad: Option<&Tensor>) -> Result<()> {
            match grad {
                None => dst.fill(T::ZERO),
                Some(g) => dst.copy_from_slice(T::slice(&g.read()).ok_or_else(|| wrong_type(g))?),
            }
            Ok(())
        }
        match self {
            Flat::F32(v) => put(&mut v[offset..offset + numel], grad),
            Flat::F64(v) => put(&mut v[offset..offset + numel], grad),
        }
    }
}

fn wrong_type(g: &Tensor) -> Error {
    Error::InvalidArgument {
        what: "DistributedDataParallel",
        reason: format!("a gradient of type {} for a parameter of another type", g.dtype()),
    }
}

/// What a bucket sends: its flat buffer, or the one gradient it holds.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Flat(Flat),
    Grad(Tensor),
}

/// A bucket's receive buffer: `[len]` of the bucket's type.
pub(crate) fn receive_buffer(dtype: DType, len: usize) -> Result<Var> {
    Ok(Var::new("bucket", &Tensor::zeros(&[len], dtype)?))
}

/// One bucket's all-reduce, handed to the communication thread and back.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) bucket: usize,
    pub(crate) send: Outgoing,
    pub(crate) recv: Var,
}

impl Job {
    /// All-reduces the bucket over `group` into the receive buffer and divides the sums by
    /// the number of ranks there: the receive buffer then holds the means.
    pub(crate) fn run(&mut self, group: &dyn ProcessGroup) -> Result<()> {
        let mut means = self.recv.write();
        // (In place unless last step's gradients, views of this buffer, are still held.)
        let recv = match &mut *means {
            b @ Buffer::F32(_) => DataMut::F32(f32::slice_mut(b).expect("matched f32")),
            b @ Buffer::F64(_) => DataMut::F64(f64::slice_mut(b).expect("matched f64")),
            Buffer::I64(_) => unreachable!("internal invariant: buckets hold float gradients"),
        };
        self.all_reduce(group, recv)?;
        divide(&mut means, group.size());
        Ok(())
    }

    fn all_reduce(&self, group: &dyn ProcessGroup, recv: DataMut<'_>) -> Result<()> {
        match &self.send {
            Outgoing::Flat(flat) => group.all_reduce_into(flat.data(), recv, ReduceOp::Sum),
            Outgoing::Grad(grad) => {
                let value = grad.read();
                let data = match &*value {
                    Buffer::F32(v) => Data::F32(v),
                    Buffer::F64(v) => Data::F64(v),
                    Buffer::I64(_) => unreachable!("internal invariant: gradients are floats"),
                };
                group.all_reduce_into(data, recv, ReduceOp::Sum)
            }
        }
    }
}

/// Divides every element by `n`: a multiplication by `1/n` when that is exact (`n` a power of
/// two), which vectorises to about twice the speed of a division.
fn divide(buffer: &mut Buffer, n: usize) {
    fn by<T: Elem + std::ops::MulAssign + std::ops::DivAssign>(v: &mut [T], n: T, inverse: Option<T>) {
        match inverse {
            Some(inv) => v.iter_mut().for_each(|x| *x *= inv),
            None => v.iter_mut().for_each(|x| *x /= n),
        }
    }
    let exact = n.is_power_of_two();
    match buffer {
        b @ Buffer::F32(_) => {
            let v = f32::slice_mut(b).expect("matched f32");
            by(v, n as f32, exact.then(|| 1.0 / n as f32))
        }
        b @ Buffer::F64(_) => {
            let v = f64::slice_mut(b).expect("matched f64");
            by(v, n as f64, exact.then(|| 1.0 / n as f64))
        }
        Buffer::I64(_) => unreachable!("internal invariant: buckets hold float gradients"),
    }
}

/// The means in `recv` at `[offset, offset + shape's elements)` as a tensor of `shape`: all
/// of it (`whole`) is a view sharing the buffer, no copy; a part is a copy from the pool.
pub(crate) fn mean(recv: &Var, offset: usize, shape: &[usize], whole: bool) -> Result<Tensor> {
    no_grad(|| {
        Ok(if whole {
            recv.reshape(shape)?
        } else {
            recv.narrow(0, offset, shape.iter().product())?.reshape(shape)?
        })
    })
}
