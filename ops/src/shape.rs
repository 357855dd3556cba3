//! Shapes, strides and broadcasting rules shared by every kernel.
//!
//! Buffers are row-major and contiguous; a shape lists dimension sizes outermost first.

use smallvec::SmallVec;

/// Dimension sizes, outermost first. Inline up to rank 6.
pub type Shape = SmallVec<[usize; 6]>;

/// Number of elements of a shape (1 for a scalar, 0 when any dimension is 0). The shape must
/// be one [`checked_numel`] accepts: every tensor's is, as its constructor checked it.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Number of elements of a shape, or `None` when the count does not fit in `usize`. A shape
/// with a zero dimension has no elements, however large its other dimensions.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    match shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        Some(n) => Some(n),
        None if shape.contains(&0) => Some(0),
        None => None,
    }
}

/// Output length of a sliding window along one axis: `(input + 2·padding − span) / stride + 1`
/// with `span = dilation·(kernel − 1) + 1` (0 when the padded input is shorter than the span),
/// or `None` when a length on the way does not fit in `usize`. `stride` must be positive. The
/// one rule for convolutions and pooling: a geometry it accepts computes without overflow.
pub fn checked_window_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    let padded = padding.checked_mul(2)?.checked_add(input)?;
    let span = dilation.checked_mul(kernel.saturating_sub(1))?.checked_add(1)?;
    Some(if padded < span { 0 } else { (padded - span) / stride + 1 })
}

/// Row-major strides (in elements) of a contiguous buffer of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Shape {
    let mut strides: Shape = smallvec::smallvec![0; shape.len()];
    let mut acc = 1;
    for (stride, &dim) in strides.iter_mut().zip(shape).rev() {
        *stride = acc;
        acc *= dim;
    }
    strides
}

/// The NumPy broadcast of two shapes, or `None` when a pair of dimensions differs and neither is 1.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out: Shape = smallvec::smallvec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() { 1 } else { a[i - (rank - a.len())] };
        let db = if i < rank - b.len() { 1 } else { b[i - (rank - b.len())] };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides that read a buffer of shape `from` as if it had the (broadcast) shape `to`:
/// broadcast dimensions get stride 0. `from` must broadcast to `to`.
pub fn broadcast_strides(from: &[usize], to: &[usize]) -> Shape {
    debug_assert!(from.len() <= to.len(), "broadcast_strides: rank {from:?} > {to:?}");
    let own = contiguous_strides(from);
    let offset = to.len() - from.len();
    let mut strides: Shape = smallvec::smallvec![0; to.len()];
    for i in 0..from.len() {
        strides[offset + i] = if from[i] == 1 && to[offset + i] != 1 { 0 } else { own[i] };
    }
    strides
}

/// Splits a shape around `axis` into `(outer, axis_len, inner)` element counts, the layout most
/// axis kernels (softmax, reductions, index_select) take. `axis` must be in range.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    debug_assert!(axis < shape.len(), "split_at_axis: axis {axis} of {shape:?}");
    (numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[3, 1, 5], &[4, 5]).unwrap().as_slice(), &[3, 4, 5]);
        assert_eq!(broadcast_shapes(&[], &[2]).unwrap().as_slice(), &[2]);
        assert_eq!(broadcast_shapes(&[0, 1], &[1, 3]).unwrap().as_slice(), &[0, 3]);
        assert!(broadcast_shapes(&[3], &[4]).is_none());
    }

    #[test]
    fn strides_are_row_major_and_zero_where_broadcast() {
        assert_eq!(contiguous_strides(&[2, 3, 4]).as_slice(), &[12, 4, 1]);
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]).as_slice(), &[0, 1, 0]);
        assert_eq!(split_at_axis(&[2, 3, 4], 1), (2, 3, 4));
    }

    #[test]
    fn checked_numel_refuses_counts_past_usize() {
        assert_eq!(checked_numel(&[2, 3]), Some(6));
        assert_eq!(checked_numel(&[]), Some(1));
        assert_eq!(checked_numel(&[1 << 32, 1 << 32]), None);
        assert_eq!(checked_numel(&[(1 << 63) + 1, 2]), None);
        assert_eq!(checked_numel(&[usize::MAX, usize::MAX, 0]), Some(0));
    }

    #[test]
    fn window_lengths_are_checked() {
        // (5 + 2·1 − 3) / 2 + 1 = 3
        assert_eq!(checked_window_len(5, 3, 2, 1, 1), Some(3));
        // (4 − (2·(3 − 1) + 1)) < 0: the dilated kernel does not fit
        assert_eq!(checked_window_len(4, 3, 1, 0, 2), Some(0));
        assert_eq!(checked_window_len(4, 3, 1, usize::MAX / 2 + 1, 1), None);
        assert_eq!(checked_window_len(4, 3, 1, 0, usize::MAX), None);
    }
}
