//! Per-variant facts of an op enum, declared once in a table beside the enum.
//!
//! [`op_facts!`](crate::op_facts) turns one row per variant into `ALL` (every variant, with the
//! row's example parameters), `name()` and `facts()`. Both functions are exhaustive matches
//! generated from the rows, so a variant without a row is a compile error, and `ALL` cannot
//! miss a variant that has one. Tests iterate over `ALL` instead of keeping lists of their own.

/// Flags a table row can carry (combine with `|`).
pub mod fact {
    /// No flag.
    pub const NONE: u8 = 0;
    /// The op carries a gradient (comparisons and `sign` do not).
    pub const DIFFERENTIABLE: u8 = 1;
    /// The kernel evaluates a transcendental function (worth threads sooner).
    pub const TRANSCENDENTAL: u8 = 2;
}

/// Declares the facts table of an op enum (see the [module docs](crate::facts)).
///
/// Each row is `Variant[(example args)|{field: example, ..}] => "name", FLAGS`, where `FLAGS`
/// is an expression over [`fact`](crate::facts::fact) constants.
///
/// ```
/// use graphgrad_ops::facts::fact;
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// enum Shape2 { Square, Scaled(f64), Band { lo: f64, hi: f64 } }
/// graphgrad_ops::op_facts! { Shape2;
///     Square => "square", fact::DIFFERENTIABLE;
///     Scaled(2.0) => "scaled", fact::NONE;
///     Band { lo: 0.0, hi: 1.0 } => "band", fact::TRANSCENDENTAL;
/// }
/// assert_eq!(Shape2::all().len(), 3);
/// assert_eq!(Shape2::Scaled(5.0).name(), "scaled");
/// assert_eq!(Shape2::Square.facts(), fact::DIFFERENTIABLE);
/// ```
#[macro_export]
macro_rules! op_facts {
    ($Enum:ident; $(
        $V:ident $(($($arg:expr),*))? $({$($field:ident: $val:expr),*})? => $name:literal, $facts:expr;
    )*) => {
        impl $Enum {
            /// Every variant once, in table order, with the table's example parameters.
            #[allow(dead_code)]
            pub fn all() -> Vec<$Enum> {
                vec![$( $Enum::$V $(($($arg),*))? $({$($field: $val),*})? ),*]
            }

            /// The op's name (PyTorch's where it has one).
            #[allow(dead_code)]
            pub const fn name(&self) -> &'static str {
                match self {
                    $( $Enum::$V { .. } => $name, )*
                }
            }

            /// The row's flags (constants of `graphgrad_ops::facts::fact`).
            #[allow(dead_code)]
            pub const fn facts(&self) -> u8 {
                match self {
                    $( $Enum::$V { .. } => $facts, )*
                }
            }
        }
    };
}
