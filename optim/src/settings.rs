//! An optimiser's settings, declared once: [`settings!`](crate::settings!) turns one list of
//! fields (name, type, doc, PyTorch's default, valid range) into the configuration struct,
//! `new(lr)` and `Default`, one builder setter per field, and the [`Settings`] impl: the
//! hyper-parameters by name (what a checkpoint stores, flags as 0 or 1) and their range
//! checks, whose messages name the optimiser and the setting.
//!
//! Why a `macro_rules!`: the four places a setting appeared (field, setter, `hyper`,
//! `set_hyper`) only spell its name differently, which is what a declarative macro does in a
//! page with no new dependency. serde would flatten a struct into a name → value map only
//! through a custom serializer (flags as 0 or 1), and would still leave the setters, the
//! defaults and the ranges to be written by hand; a derive would need a proc-macro crate for
//! the same expansion. The struct stays a plain struct with public fields, so the builder
//! (`AdamConfig::new(3e-4).eps(1e-6)`) and field access (`config.eps`) read as before.
//!
//! Invariant: `hyper` lists `lr` first and then every field in declaration order, each under
//! its field's name; these names are what checkpoints store, so renaming a field breaks
//! loading the checkpoints already written.

use crate::error::invalid;
use crate::Result;
use std::fmt;

/// An optimiser's hyper-parameters by name (written by [`settings!`](crate::settings!)).
pub trait Settings {
    /// The optimiser's name, as stored in its saved state and shown in errors (`"Adam"`).
    const NAME: &'static str;

    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (already checked finite and non-negative).
    fn set_lr(&mut self, lr: f64);
    /// Every hyper-parameter by name, the learning rate first (flags as 0 or 1).
    fn hyper(&self) -> Vec<(&'static str, f64)>;
    /// Sets one hyper-parameter by name (a flag is on when `value` is not 0); false when the
    /// name is unknown.
    fn set_hyper(&mut self, name: &str, value: f64) -> bool;
    /// Checks every setting against its declared [`Range`], with an error naming the
    /// optimiser, the setting and its value.
    fn check_ranges(&self) -> Result<()>;
}

/// The values a setting accepts; every range also excludes NaN and ±∞.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// `0 ≤ x < ∞` (rates, decays, ε, momentum).
    NonNegative,
    /// `0 ≤ x ≤ 1` (dampening, RMSprop's α).
    UpToOne,
    /// `0 ≤ x < 1` (Adam's β₁, β₂).
    BelowOne,
}

impl Range {
    /// Whether `value` is in the range.
    pub fn contains(self, value: f64) -> bool {
        value.is_finite()
            && value >= 0.0
            && match self {
                Range::NonNegative => true,
                Range::UpToOne => value <= 1.0,
                Range::BelowOne => value < 1.0,
            }
    }

    /// Checks `value`, the setting `name` of `what`: the error reads
    /// `Adam: beta1 must be in [0, 1), got 1.5`.
    pub fn check(self, what: &'static str, name: &str, value: f64) -> Result<()> {
        if !self.contains(value) {
            invalid!(what, "{name} must be {self}, got {value:?}");
        }
        Ok(())
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Range::NonNegative => "finite and non-negative",
            Range::UpToOne => "in [0, 1]",
            Range::BelowOne => "in [0, 1)",
        })
    }
}

/// A setting's type as a hyper-parameter value: `f64` as itself, `bool` as 0 or 1.
pub trait SettingValue: Copy {
    /// The value as a checkpoint stores it.
    fn to_hyper(self) -> f64;
    /// The value from what a checkpoint stores.
    fn from_hyper(value: f64) -> Self;
}

impl SettingValue for f64 {
    fn to_hyper(self) -> f64 {
        self
    }
    fn from_hyper(value: f64) -> f64 {
        value
    }
}

impl SettingValue for bool {
    fn to_hyper(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn from_hyper(value: f64) -> bool {
        value != 0.0
    }
}

/// Declares an optimiser's settings once.
///
/// ```text
/// settings! {
///     /// docs of the struct
///     pub struct NameConfig("NAME", lr = DEFAULT_LR) {
///         /// docs of the field (also the setter's)
///         field: f64 = DEFAULT, RANGE;   // RANGE: a `Range` variant, checked by `check_ranges`
///         flag: bool = DEFAULT;          // flags have no range
///     }
/// }
/// ```
///
/// writes `pub struct NameConfig { pub lr: f64, pub field: f64, pub flag: bool }` (`Clone`,
/// `Debug`, `PartialEq`), `NameConfig::new(lr)` with every other field at its default,
/// `Default` (`new(DEFAULT_LR)`), a setter per field (`.field(value)`), and
/// [`Settings`](crate::Settings) (`NAME`, `lr` checked [`NonNegative`](crate::Range::NonNegative)).
/// The struct may take one `const FLAG: bool` parameter that the name and the defaults read
/// (the Adam family: `AdamSettings<const DECOUPLED: bool>`).
///
/// A new element-wise optimiser is its settings plus an [`UpdateRule`](crate::UpdateRule):
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{settings, Num, Optimizer, ParamOptimizer, Settings, UpdateRule};
///
/// settings! {
///     /// signSGD: `p = p − lr·sign(g)`, here `g / (|g| + ε)`.
///     pub struct SignSgdConfig("SignSGD", lr = 1e-3) {
///         /// Keeps the sign finite at g = 0.
///         eps: f64 = 1e-12, NonNegative;
///     }
/// }
///
/// impl UpdateRule for SignSgdConfig {
///     const SLOTS: &'static [&'static str] = &[];
///     fn coefficients<S: Num>(&self, lr: &S, _t: &S) -> Vec<S> {
///         vec![lr.scale(-1.0)]
///     }
///     fn update<X: Num>(&self, k: &[X], p: &X, g: &X, _slots: &mut [X]) -> X {
///         let magnitude = g.mul(g).sqrt().shift(self.eps);
///         p.add(&k[0].mul(&g.div(&magnitude)))
///     }
/// }
///
/// let config = SignSgdConfig::new(0.5).eps(0.0);
/// assert_eq!(config.hyper(), vec![("lr", 0.5), ("eps", 0.0)]);
/// let w = Var::new("w", &Tensor::from_vec(vec![1.0f64, -1.0], &[2])?);
/// let mut opt = ParamOptimizer::new(vec![("w".into(), w.clone())], config)?;
/// w.mul(&w)?.sum_all().backward()?; // g = 2w = [2, −2]
/// opt.step()?; // w − 0.5·sign(g) = [0.5, −0.5]
/// assert_eq!(w.to_vec::<f64>()?, vec![0.5, -0.5]);
/// let err = SignSgdConfig::new(0.1).eps(-1.0).check_ranges().unwrap_err();
/// assert_eq!(err.to_string(), "SignSGD: eps must be finite and non-negative, got -1.0");
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
#[macro_export]
macro_rules! settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(<const $flag:ident: bool>)? ($kind:expr, lr = $lr:expr) {
            $(
                $(#[$field_meta:meta])*
                $field:ident: $ty:ty = $default:expr $(, $range:ident)?;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        $vis struct $name $(<const $flag: bool>)? {
            /// Learning rate.
            pub lr: f64,
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl $(<const $flag: bool>)? $name $(<$flag>)? {
            /// With learning rate `lr` and PyTorch's defaults for everything else.
            pub fn new(lr: f64) -> Self {
                Self { lr, $($field: $default,)* }
            }

            $(
                #[doc = concat!("Sets `", stringify!($field), "`:")]
                $(#[$field_meta])*
                pub fn $field(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }

        impl $(<const $flag: bool>)? Default for $name $(<$flag>)? {
            /// PyTorch's defaults, the learning rate included.
            fn default() -> Self {
                Self::new($lr)
            }
        }

        impl $(<const $flag: bool>)? $crate::Settings for $name $(<$flag>)? {
            const NAME: &'static str = $kind;

            fn lr(&self) -> f64 {
                self.lr
            }

            fn set_lr(&mut self, lr: f64) {
                self.lr = lr;
            }

            fn hyper(&self) -> Vec<(&'static str, f64)> {
                vec![("lr", self.lr), $((stringify!($field), $crate::SettingValue::to_hyper(self.$field)),)*]
            }

            fn set_hyper(&mut self, name: &str, value: f64) -> bool {
                if name == "lr" {
                    self.lr = value;
                    return true;
                }
                $(
                    if name == stringify!($field) {
                        self.$field = $crate::SettingValue::from_hyper(value);
                        return true;
                    }
                )*
                false
            }

            fn check_ranges(&self) -> $crate::Result<()> {
                $crate::Range::NonNegative.check(Self::NAME, "lr", self.lr)?;
                $($($crate::Range::$range.check(Self::NAME, stringify!($field), self.$field)?;)?)*
                Ok(())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AdagradConfig, AdamConfig, AdamWConfig, RmsPropConfig, SgdConfig};

    #[test]
    fn ranges_accept_their_bounds_and_reject_the_rest() {
        for (range, inside, outside) in [
            (Range::NonNegative, [0.0, 1e300], [-1e-300, f64::INFINITY]),
            (Range::UpToOne, [0.0, 1.0], [-1e-300, 1.0 + 1e-15]),
            (Range::BelowOne, [0.0, 1.0 - 1e-16], [1.0, -1e-300]),
        ] {
            assert!(inside.iter().all(|&x| range.contains(x)), "{range:?}");
            assert!(outside.iter().all(|&x| !range.contains(x)), "{range:?}");
            assert!(!range.contains(f64::NAN), "{range:?}");
        }
    }

    fn names<S: Settings + Default>() -> (&'static str, Vec<&'static str>) {
        (S::NAME, S::default().hyper().iter().map(|(k, _)| *k).collect())
    }

    /// The kinds and hyper-parameter names every checkpoint written so far stores (loading
    /// requires exactly these).
    #[test]
    fn hyper_parameters_keep_their_checkpoint_names() {
        let adam = ["lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad"];
        assert_eq!(
            names::<SgdConfig>(),
            ("SGD", vec!["lr", "momentum", "dampening", "weight_decay", "nesterov"])
        );
        assert_eq!(names::<AdamConfig>(), ("Adam", adam.to_vec()));
        assert_eq!(names::<AdamWConfig>(), ("AdamW", adam.to_vec()));
        assert_eq!(
            names::<RmsPropConfig>(),
            ("RMSprop", vec!["lr", "alpha", "eps", "weight_decay", "momentum", "centered"])
        );
        assert_eq!(
            names::<AdagradConfig>(),
            ("Adagrad", vec!["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"])
        );
    }

    #[test]
    fn set_hyper_reads_back_what_hyper_wrote() {
        let sgd = SgdConfig::new(0.1).nesterov(true).momentum(0.9);
        assert_eq!(
            sgd.hyper(),
            vec![
                ("lr", 0.1),
                ("momentum", 0.9),
                ("dampening", 0.0),
                ("weight_decay", 0.0),
                ("nesterov", 1.0)
            ]
        );
        let mut copy = SgdConfig::default();
        assert!(sgd.hyper().into_iter().all(|(k, v)| copy.set_hyper(k, v)));
        assert_eq!(copy, sgd);
        let mut rms = RmsPropConfig::default();
        assert!(rms.set_hyper("centered", 1.0) && rms.set_hyper("alpha", 0.5));
        assert!(!rms.set_hyper("beta1", 0.9), "not an RMSprop setting");
        assert_eq!(rms, RmsPropConfig::new(1e-2).alpha(0.5).centered(true));
    }

    #[test]
    fn defaults_are_pytorchs() {
        let adamw = AdamWConfig::default();
        assert_eq!((adamw.lr, adamw.beta1, adamw.beta2, adamw.eps), (1e-3, 0.9, 0.999, 1e-8));
        assert_eq!((adamw.weight_decay, AdamWConfig::NAME), (1e-2, "AdamW"));
        assert_eq!((AdamConfig::default().weight_decay, AdamConfig::NAME), (0.0, "Adam"));
        assert_eq!(SgdConfig::default(), SgdConfig::new(1e-3));
    }

    #[test]
    fn errors_name_the_optimiser_the_setting_and_the_value() {
        let err = AdamWConfig::new(1e-3).betas(0.9, 1.0).check_ranges().unwrap_err();
        assert_eq!(err.to_string(), "AdamW: beta2 must be in [0, 1), got 1.0");
        let err = SgdConfig::new(0.1).dampening(2.0).check_ranges().unwrap_err();
        assert_eq!(err.to_string(), "SGD: dampening must be in [0, 1], got 2.0");
        let err = RmsPropConfig::new(f64::NAN).check_ranges().unwrap_err();
        assert_eq!(err.to_string(), "RMSprop: lr must be finite and non-negative, got NaN");
    }
}
