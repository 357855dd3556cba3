//! Very deep graphs are differentiated and dropped iteratively, without overflowing the stack.

use graphgrad_autodiff::Tensor;

#[test]
fn a_million_op_chain_drops_without_stack_overflow() {
    let x = Tensor::from_vec(vec![1.0f64; 4], &[4]).unwrap().requires_grad_();
    let mut y = x.clone();
    for _ in 0..1_000_000 {
        y = y.add_scalar(1e-6);
    }
    // d/dx of Σ(x + 10⁶·1e-6) is 1 for every element, through a million nodes.
    y.sum_all().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![1.0; 4]);
    assert!((y.to_vec::<f64>().unwrap()[0] - 2.0).abs() < 1e-9);
    drop(y); // frees a million nodes iteratively
}
