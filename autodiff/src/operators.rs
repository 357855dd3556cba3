//! Arithmetic operators on [`Tensor`], `&Tensor` and `&Var`: `+ - * /` between them, with an
//! `f64` on either side, and unary `-`.
//!
//! The rule for what can fail, which is the rule of the methods they call:
//!
//! - **Tensor with tensor** (`&a + &b`, `a * &b`, ...) returns [`Result<Tensor>`]: the shapes
//!   may not broadcast and the element types may differ, and either is an error that names the
//!   op and both shapes, never a panic. Write `(&a + &b)?`.
//! - **Tensor with scalar** (`&a * 2.0`, `1.0 - &p`, `&x / 3.0`) and **negation** (`-&x`)
//!   return [`Tensor`]: a scalar broadcasts to every shape and takes the tensor's type, so
//!   nothing can be refused (the output is no larger than the tensor). An integer tensor is
//!   converted to f32 first, as the unary ops do.
//!
//! Why `Result` rather than a panic (as `ndarray` and `tch` do) or an error hidden inside the
//! tensor until it is read: a shape mismatch is the most common mistake in a model, and the
//! library's promise is that nothing a user passes makes it panic; `?` marks exactly the
//! lines that can fail and points the error at the op that caused it.
//!
//! Every operator is the method of the same name (`add`, `sub`, `mul`, `div`, `add_scalar`,
//! `sub_scalar`, `mul_scalar`, `div_scalar`, `rsub_scalar`, `rdiv_scalar`, `neg`), with the
//! same values bit for bit and the same gradients; an owned operand is consumed (its node is
//! shared, so nothing is copied). `x / c` is a true division, as in PyTorch, not `x · (1/c)`.
//!
//! ```
//! use graphgrad_autodiff::Tensor;
//! let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3])?;
//! let y = Tensor::from_vec(vec![0.5f64, 0.5, 0.5], &[3])?;
//! let z = (&x * 2.0 - &y)?; // 2x − y = [1.5, 3.5, 5.5]
//! assert_eq!(z.to_vec::<f64>()?, [1.5, 3.5, 5.5]);
//! assert_eq!((1.0 - -&z).to_vec::<f64>()?, [2.5, 4.5, 6.5]);
//! assert!((&x + &Tensor::from_vec(vec![1.0f64, 2.0], &[2])?).is_err()); // [3] and [2]
//! # Ok::<(), graphgrad_autodiff::Error>(())
//! ```

use crate::{Result, Tensor, Var};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// An operand of the operators: a tensor, owned or borrowed, or a borrowed parameter.
trait Operand {
    fn tensor(&self) -> &Tensor;
}

impl Operand for Tensor {
    fn tensor(&self) -> &Tensor {
        self
    }
}

impl Operand for &Tensor {
    fn tensor(&self) -> &Tensor {
        self
    }
}

impl Operand for &Var {
    fn tensor(&self) -> &Tensor {
        self
    }
}

/// `lhs op rhs` for every pair of the operand types, returning `Result<Tensor>`.
macro_rules! tensor_tensor {
    ($Trait:ident $method:ident: $($L:ty, $R:ty);*) => {$(
        impl $Trait<$R> for $L {
            type Output = Result<Tensor>;
            #[doc = concat!("[`Tensor::", stringify!($method), "`], broadcasting: an error when the shapes do \
                             not broadcast or the element types differ.")]
            fn $method(self, rhs: $R) -> Result<Tensor> {
                Tensor::$method(self.tensor(), rhs.tensor())
            }
        }
    )*};
}

/// Every pair of `Tensor`, `&Tensor` and `&Var`.
macro_rules! all_pairs {
    ($($Trait:ident $method:ident;)*) => {$(
        tensor_tensor!($Trait $method:
            &Tensor, &Tensor; &Tensor, Tensor; &Tensor, &Var;
            Tensor, &Tensor; Tensor, Tensor; Tensor, &Var;
            &Var, &Tensor; &Var, Tensor; &Var, &Var);
    )*};
}

all_pairs! {
    Add add;
    Sub sub;
    Mul mul;
    Div div;
}

/// `tensor op c` and `c op tensor`, returning `Tensor`.
macro_rules! tensor_scalar {
    ($Trait:ident $method:ident, $scalar:ident, $rscalar:ident: $($T:ty),*) => {$(
        impl $Trait<f64> for $T {
            type Output = Tensor;
            #[doc = concat!("[`Tensor::", stringify!($scalar), "`]")]
            fn $method(self, c: f64) -> Tensor {
                self.tensor().$scalar(c)
            }
        }

        impl $Trait<$T> for f64 {
            type Output = Tensor;
            #[doc = concat!("[`Tensor::", stringify!($rscalar), "`]")]
            fn $method(self, x: $T) -> Tensor {
                x.tensor().$rscalar(self)
            }
        }
    )*};
}

tensor_scalar!(Add add, add_scalar, add_scalar: Tensor, &Tensor, &Var);
tensor_scalar!(Sub sub, sub_scalar, rsub_scalar: Tensor, &Tensor, &Var);
tensor_scalar!(Mul mul, mul_scalar, mul_scalar: Tensor, &Tensor, &Var);
tensor_scalar!(Div div, div_scalar, rdiv_scalar: Tensor, &Tensor, &Var);

/// `-x`, returning `Tensor`.
macro_rules! negation {
    ($($T:ty),*) => {$(
        impl Neg for $T {
            type Output = Tensor;
            /// [`Tensor::neg`]
            fn neg(self) -> Tensor {
                Tensor::neg(self.tensor())
            }
        }
    )*};
}

negation!(Tensor, &Tensor, &Var);

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor, Var};

    fn t(values: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape).unwrap()
    }

    fn v(x: &Tensor) -> Vec<f64> {
        x.to_vec::<f64>().unwrap()
    }

    #[test]
    fn tensor_operators_equal_the_methods_bit_for_bit() {
        let a = t(&[1.5, -2.0, 3.25, 0.1, 7.0, -0.3], &[2, 3]);
        let b = t(&[0.7, 2.0, -1.5], &[3]); // broadcasts over a's rows
        type Pair = (Tensor, Tensor);
        let cases: [(&str, Pair); 4] = [
            ("add", ((&a + &b).unwrap(), a.add(&b).unwrap())),
            ("sub", ((&a - &b).unwrap(), a.sub(&b).unwrap())),
            ("mul", ((&a * &b).unwrap(), a.mul(&b).unwrap())),
            ("div", ((&a / &b).unwrap(), a.div(&b).unwrap())),
        ];
        for (name, (op, method)) in &cases {
            assert_eq!(op.shape(), &[2, 3], "{name}");
            assert_eq!(v(op), v(method), "{name}");
        }
        // every ownership combination gives the same value
        let sum = v(&(&a + &b).unwrap());
        assert_eq!(v(&(a.clone() + &b).unwrap()), sum);
        assert_eq!(v(&(&a + b.clone()).unwrap()), sum);
        assert_eq!(v(&(a.clone() + b.clone()).unwrap()), sum);
        // a parameter reads as its tensor
        let (pa, pb) = (Var::new("a", &a), Var::new("b", &b));
        assert_eq!(v(&(&pa + &pb).unwrap()), sum);
        assert_eq!(v(&(&pa + &b).unwrap()), sum);
        assert_eq!(v(&(&a + &pb).unwrap()), sum);
        assert_eq!(v(&(&pa * 2.0)), v(&a.mul_scalar(2.0)));
        assert_eq!(v(&(2.0 - &pa)), v(&a.rsub_scalar(2.0)));
        assert_eq!(v(&-&pa), v(&a.neg()));
    }

    #[test]
    fn tensor_operators_give_hand_computed_values() {
        let a = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let b = t(&[10.0, 20.0], &[2, 1]); // one value per row
                                           // rows: [1 2] with 10, [3 4] with 20
        assert_eq!(v(&(&a + &b).unwrap()), [11.0, 12.0, 23.0, 24.0]);
        assert_eq!(v(&(&a - &b).unwrap()), [-9.0, -8.0, -17.0, -16.0]);
        assert_eq!(v(&(&a * &b).unwrap()), [10.0, 20.0, 60.0, 80.0]);
        assert_eq!(v(&(&b / &a).unwrap()), [10.0, 5.0, 20.0 / 3.0, 5.0]);
    }

    #[test]
    fn scalar_operators_give_hand_computed_values_and_equal_the_methods() {
        let x = t(&[1.0, -2.0, 3.0], &[3]);
        assert_eq!(v(&(&x + 0.5)), [1.5, -1.5, 3.5]);
        assert_eq!(v(&(0.5 + &x)), [1.5, -1.5, 3.5]);
        assert_eq!(v(&(&x - 0.5)), [0.5, -2.5, 2.5]);
        assert_eq!(v(&(0.5 - &x)), [-0.5, 2.5, -2.5]);
        assert_eq!(v(&(&x * 3.0)), [3.0, -6.0, 9.0]);
        assert_eq!(v(&(3.0 * &x)), [3.0, -6.0, 9.0]);
        assert_eq!(v(&(&x / 4.0)), [0.25, -0.5, 0.75]);
        assert_eq!(v(&(6.0 / &x)), [6.0, -3.0, 2.0]);
        assert_eq!(v(&-&x), [-1.0, 2.0, -3.0]);
        assert_eq!(v(&-x.clone()), [-1.0, 2.0, -3.0]);
        // x / 3 is a true division: 1/3 rounded once, not 1 · round(1/3)
        assert_eq!(v(&(&x / 3.0)), [1.0 / 3.0, -2.0 / 3.0, 1.0]);
        assert_eq!(v(&(&x / 3.0)), v(&x.div(&Tensor::scalar_of(3.0, DType::F64)).unwrap()));
        assert_eq!(v(&(x.clone() * 3.0)), v(&x.mul_scalar(3.0)));
        assert_eq!(v(&(x.clone() + 3.0)), v(&x.add_scalar(3.0)));
        assert_eq!(v(&(2.0 - x.clone())), v(&x.neg().add_scalar(2.0)));
        assert_eq!(v(&(2.0 / x.clone())), v(&x.recip().mul_scalar(2.0)));
    }

    #[test]
    fn operators_keep_the_dtype_and_the_gradient() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap().requires_grad_();
        let y = ((1.0 - &x) * 3.0 + &x / 2.0).unwrap().sum_all();
        assert_eq!(y.dtype(), DType::F32);
        // y = Σ 3(1 − x) + x/2: dy/dx = −3 + 1/2 = −2.5
        y.backward().unwrap();
        assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), [-2.5, -2.5]);
        // d/dx (1/x) = −1/x²
        let x = t(&[2.0], &[1]).requires_grad_();
        (1.0 / &x).sum_all().backward().unwrap();
        assert_eq!(v(&x.grad().unwrap()), [-0.25]);
    }

    #[test]
    fn mismatched_operands_are_errors_naming_the_op_and_shapes() {
        let a = t(&[1.0, 2.0, 3.0], &[3]);
        let b = t(&[1.0, 2.0], &[2]);
        let err = (&a * &b).unwrap_err().to_string();
        assert!(err.contains("mul") && err.contains("[3]") && err.contains("[2]"), "{err}");
        let c = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
        assert!((&a + &c).is_err(), "f64 + f32 is refused, not converted");
    }

    #[test]
    fn integer_tensors_are_converted_to_f32_by_scalar_ops_and_full_reductions() {
        let i = Tensor::from_vec(vec![1i64, 2, 3], &[3]).unwrap();
        assert_eq!((&i * 2.0).to_vec::<f32>().unwrap(), [2.0, 4.0, 6.0]);
        assert_eq!(i.sum_all().to_vec::<f32>().unwrap(), [6.0]);
        assert_eq!(i.mean_all().to_vec::<f32>().unwrap(), [2.0]);
    }
}
