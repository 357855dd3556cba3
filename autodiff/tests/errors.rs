//! Every user mistake is an `Err` whose message names the op and the shapes involved; none
//! panics.

use graphgrad_autodiff::{grad, ConvOptions, DType, Error, Result, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A call that must fail.
type BadCall<'a> = Box<dyn Fn() -> Result<Tensor> + 'a>;

fn t(shape: &[usize]) -> Tensor {
    Tensor::ones(shape, DType::F32).unwrap()
}

#[test]
fn bad_calls_return_errors_that_name_op_and_shapes() {
    let a = t(&[2, 3]);
    let b = t(&[4, 5]);
    let f64_tensor = Tensor::ones(&[2, 3], DType::F64).unwrap();
    let leaf = t(&[3]).requires_grad_();
    // (call, words the message must contain)
    let cases: Vec<(BadCall, Vec<&str>)> = vec![
        (Box::new(|| a.add(&b)), vec!["add", "[2, 3]", "[4, 5]"]),
        (Box::new(|| a.mul(&f64_tensor)), vec!["mul", "f32", "f64"]),
        (Box::new(|| a.matmul(&b)), vec!["matmul", "[2, 3]", "[4, 5]"]),
        (Box::new(|| a.matmul(&Tensor::scalar(1.0f32))), vec!["matmul"]),
        (Box::new(|| a.reshape(&[4])), vec!["reshape", "[2, 3]", "[4]"]),
        (Box::new(|| a.reshape_inferred(&[-1, -1])), vec!["reshape"]),
        (Box::new(|| a.sum(&[2], false)), vec!["sum", "axis 2", "[2, 3]"]),
        (Box::new(|| a.mean(&[-3], false)), vec!["mean", "axis -3"]),
        (Box::new(|| a.sum(&[0, 0], false)), vec!["sum", "twice"]),
        (Box::new(|| a.softmax(5)), vec!["softmax", "axis 5"]),
        (Box::new(|| a.transpose(0, 2)), vec!["transpose", "axis 2"]),
        (Box::new(|| a.permute(&[0, 0])), vec!["permute", "[0, 0]"]),
        (Box::new(|| a.squeeze(0)), vec!["squeeze", "size 2"]),
        (Box::new(|| a.unsqueeze(4)), vec!["unsqueeze", "axis 4"]),
        (Box::new(|| a.expand(&[3, 3])), vec!["expand", "[2, 3]", "[3, 3]"]),
        (Box::new(|| Tensor::cat(&[a.clone(), b.clone()], 0)), vec!["cat", "[2, 3]", "[4, 5]"]),
        (Box::new(|| Tensor::cat(&[], 0)), vec!["cat"]),
        (Box::new(|| a.narrow(1, 2, 2)), vec!["narrow", "2..4", "[2, 3]"]),
        (Box::new(|| a.pad(&[(1, 1)], 0.0)), vec!["pad", "[2, 3]"]),
        (Box::new(|| a.split(0, 0).map(|v| v[0].clone())), vec!["split"]),
        (Box::new(|| a.index_select(0, &[0, 2])), vec!["index_select", "index 2", "size 2"]),
        (Box::new(|| a.gather(1, &[0, 1], Some(&[2, 1, 1]))), vec!["gather"]),
        (Box::new(|| a.gather(1, &[0, 3], Some(&[2, 1]))), vec!["gather", "index 3"]),
        (Box::new(|| t(&[2, 3, 1]).embedding(&[0])), vec!["embedding", "[2, 3, 1]"]),
        (Box::new(|| a.clamp(1.0, 0.0)), vec!["clamp", "min 1"]),
        (Box::new(|| a.layer_norm(&[2], None, None, 1e-5)), vec!["layer_norm", "[2, 3]", "[2]"]),
        (Box::new(|| a.dropout(1.5, true, &graphgrad_autodiff::Generator::new(0))), vec!["dropout", "1.5"]),
        (Box::new(|| a.conv2d(&b, None, ConvOptions::default())), vec!["conv2d", "[2, 3]", "[4, 5]"]),
        (
            Box::new(|| t(&[1, 1, 2, 2]).conv2d(&t(&[1, 1, 3, 3]), None, ConvOptions::default())),
            vec!["conv2d", "3×3", "2×2"],
        ),
        (
            Box::new(|| {
                let o = ConvOptions::default().groups(2);
                t(&[1, 3, 4, 4]).conv2d(&t(&[3, 1, 3, 3]), None, o)
            }),
            vec!["conv2d"],
        ),
        (
            Box::new(|| {
                t(&[1, 1, 4, 4]).conv2d(&t(&[1, 1, 3, 3]), None, ConvOptions::default().output_padding(1))
            }),
            vec!["conv2d", "output_padding", "transposed"],
        ),
        (
            Box::new(|| t(&[1, 1, 8]).conv1d(&t(&[1, 1, 3]), None, ConvOptions::default().stride((1, 2)))),
            vec!["conv1d", "one stride", "(1, 2)"],
        ),
        (
            Box::new(|| {
                t(&[1, 1, 2, 2]).conv_transpose2d(&t(&[1, 1, 3, 3]), None, ConvOptions::default().padding(3))
            }),
            vec!["conv_transpose2d", "leaves no output"],
        ),
        (Box::new(|| t(&[1, 1, 2, 2]).max_pool2d((3, 3), (1, 1), (0, 0))), vec!["max_pool2d", "kernel"]),
        (Box::new(|| a.max_pool2d((2, 2), (2, 2), (0, 0))), vec!["max_pool2d", "[2, 3]"]),
        (Box::new(|| a.argmax(3).map(|_| a.clone())), vec!["argmax", "axis 3"]),
        (Box::new(|| a.item().map(Tensor::scalar)), vec!["item", "[2, 3]"]),
        (Box::new(|| Tensor::from_vec(vec![1.0f32; 5], &[2, 3])), vec!["5 elements", "[2, 3]"]),
        (
            Box::new(|| leaf.mul_scalar(2.0).backward().map(|_| a.clone())),
            vec!["backward", "[3]", "not a scalar"],
        ),
        (Box::new(|| a.sum_all().backward().map(|_| a.clone())), vec!["backward", "does not require grad"]),
        (
            Box::new(|| grad(&[leaf.sum_all()], std::slice::from_ref(&a), false).map(|_| a.clone())),
            vec!["grad", "[2, 3]", "does not require grad"],
        ),
        (Box::new(|| a.to_vec::<f64>().map(|_| a.clone())), vec!["to_vec", "f32", "f64"]),
    ];
    for (i, (call, words)) in cases.iter().enumerate() {
        let outcome = catch_unwind(AssertUnwindSafe(call));
        let result = outcome.unwrap_or_else(|_| panic!("case {i} panicked"));
        let error: Error = match result {
            Ok(t) => panic!("case {i} ({words:?}) succeeded with {t}"),
            Err(e) => e,
        };
        let message = error.to_string();
        for w in words {
            assert!(message.contains(w), "case {i}: message {message:?} lacks {w:?}");
        }
    }
}

#[test]
fn t_transposes_matrices_keeps_vectors_and_refuses_higher_ranks() {
    let m = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let mt = m.t().unwrap();
    assert_eq!(mt.shape(), &[3, 2]);
    assert_eq!(mt.to_vec::<f64>().unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let v = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
    assert_eq!(v.t().unwrap().shape(), &[2]);
    let err = t(&[2, 2, 2]).t().unwrap_err().to_string();
    assert!(err.starts_with("t:") && err.contains("[2, 2, 2]"), "{err}");
}
