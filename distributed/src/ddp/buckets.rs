//! Gradient buckets: which parameters' gradients travel together in one all-reduce.
//!
//! Parameters are taken in reverse registration order, which is about the order their
//! gradients become final during backward (the last layer's first), and packed into buckets
//! of at most the configured size; a bucket holds one element type, and a parameter larger
//! than the size has a bucket of its own. The layout depends only on the parameters' names,
//! shapes and types and on the size, which every rank checks are the same everywhere, so
//! every rank launches the same all-reduces in the same order.

use graphgrad_autodiff::DType;

/// One bucket: parameter indices (into the model's `named_parameters` list) and where each
/// one's gradient lies in the bucket's flat buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Element type of every gradient in the bucket.
    pub dtype: DType,
    /// Parameter indices, in packing order.
    pub params: Vec<usize>,
    /// Start of each parameter's gradient in the flat buffer (same order as `params`).
    pub offsets: Vec<usize>,
    /// Elements in the flat buffer.
    pub len: usize,
}

/// Packs parameters of the given element counts and types into buckets of at most
/// `cap_bytes` bytes (see the module docs).
pub fn layout(params: &[(usize, DType)], cap_bytes: usize) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = Vec::new();
    for index in (0..params.len()).rev() {
        let (numel, dtype) = params[index];
        let fits =
            buckets.last().is_some_and(|b| b.dtype == dtype && (b.len + numel) * dtype.size() <= cap_bytes);
        if !fits {
            buckets.push(Bucket { dtype, params: Vec::new(), offsets: Vec::new(), len: 0 });
        }
        let bucket = buckets.last_mut().expect("internal invariant: a bucket was just pushed");
        bucket.params.push(index);
        bucket.offsets.push(bucket.len);
        bucket.len += numel;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_in_reverse_order_up_to_the_cap_one_type_per_bucket() {
        let f32s = |sizes: &[usize]| sizes.iter().map(|&n| (n, DType::F32)).collect::<Vec<_>>();
        // 40 bytes cap: [4, 4] = 32 bytes fit together, the 2nd param (12 floats = 48 bytes)
        // is alone, then [3, 1] = 16 bytes.
        let b = layout(&f32s(&[1, 3, 12, 4, 4]), 40);
        let params: Vec<Vec<usize>> = b.iter().map(|b| b.params.clone()).collect();
        assert_eq!(params, vec![vec![4, 3], vec![2], vec![1, 0]]);
        assert_eq!(b[0].offsets, [0, 4]);
        assert_eq!((b[0].len, b[1].len, b[2].len), (8, 12, 4));
        // every parameter exactly once
        let mut all: Vec<usize> = b.iter().flat_map(|b| b.params.clone()).collect();
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4]);
        // a type change starts a new bucket even when it would fit
        let mixed = layout(&[(1, DType::F32), (1, DType::F64), (1, DType::F32)], 1 << 20);
        assert_eq!(mixed.iter().map(|b| b.dtype).collect::<Vec<_>>(), [DType::F32, DType::F64, DType::F32]);
        // a huge cap gives one bucket; no parameters, no buckets
        assert_eq!(layout(&f32s(&[5, 6, 7]), usize::MAX / 8).len(), 1);
        assert!(layout(&[], 8).is_empty());
    }
}
