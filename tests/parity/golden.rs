//! Reading the golden files (`tests/parity/golden/*.json`, written by `generate.py`) and
//! comparing graphgrad's values with them.
//!
//! A tensor is `{"shape": [..], "data": [..]}` (f64) or the same with `"dtype": "i64"`
//! (labels, indices). Every case is a JSON object with a `"name"`; its other fields are read
//! by the family's runner. Comparisons are elementwise `|a − b| ≤ 1e-9 + 1e-7·|b|` (b the
//! golden value), integers exactly; a failure names the case, the value, the worst element
//! and both numbers.

use graphgrad::autodiff::{DType, Tensor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// What every runner returns: `Err` with a message when the case cannot be run.
pub type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Absolute tolerance.
pub const ATOL: f64 = 1e-9;
/// Relative tolerance (of the golden value).
pub const RTOL: f64 = 1e-7;

/// One golden file: its header and cases.
pub struct Family {
    /// The file's `family` field (`ops`, `losses`, ...).
    pub name: String,
    /// The PyTorch version that wrote it.
    pub torch: String,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

/// Reads `tests/parity/golden/{family}.json`.
pub fn load(family: &str) -> Family {
    let path = format!("{}/tests/parity/golden/{family}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let root: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(root["format"], 1, "{path}: unknown format {}", root["format"]);
    assert_eq!(root["family"], family, "{path}: family field");
    let cases = root["cases"].as_array().unwrap_or_else(|| panic!("{path}: no cases array"));
    Family {
        name: family.to_string(),
        torch: root["torch"].as_str().unwrap_or("?").to_string(),
        cases: cases.iter().map(|c| Case(c.as_object().expect("a case is an object").clone())).collect(),
    }
}

/// One case: a JSON object with typed accessors whose errors name the field.
#[derive(Clone)]
pub struct Case(pub Map<String, Value>);

impl Case {
    /// The case's name.
    pub fn name(&self) -> &str {
        self.0.get("name").and_then(Value::as_str).unwrap_or("<unnamed>")
    }

    /// A field.
    pub fn get(&self, key: &str) -> Res<&Value> {
        self.0.get(key).ok_or_else(|| format!("no field {key:?}").into())
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Res<&str> {
        self.get(key)?.as_str().ok_or_else(|| format!("{key:?} is not a string").into())
    }

    /// A field holding named tensors (empty when absent).
    pub fn tensors(&self, key: &str) -> Res<BTreeMap<String, Tensor>> {
        match self.0.get(key) {
            None => Ok(BTreeMap::new()),
            Some(v) => named_tensors(v).map_err(|e| format!("{key}: {e}").into()),
        }
    }

    /// The `attrs` object (empty when absent).
    pub fn attrs(&self) -> Attrs {
        Attrs::new(self.0.get("attrs").and_then(Value::as_object).cloned().unwrap_or_default())
    }

    /// An object field as [`Attrs`].
    pub fn object(&self, key: &str) -> Res<Attrs> {
        let obj = self.get(key)?.as_object().ok_or_else(|| format!("{key:?} is not an object"))?;
        Ok(Attrs::new(obj.clone()))
    }
}

/// `{name: tensor}` from JSON.
pub fn named_tensors(v: &Value) -> Res<BTreeMap<String, Tensor>> {
    let obj = v.as_object().ok_or("expected an object of tensors")?;
    obj.iter().map(|(k, t)| Ok((k.clone(), tensor(t).map_err(|e| format!("{k}: {e}"))?))).collect()
}

/// A tensor from `{"shape", "data"[, "dtype": "i64"]}`.
pub fn tensor(v: &Value) -> Res<Tensor> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .ok_or("no shape")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or("shape entries are sizes"))
        .collect::<std::result::Result<_, _>>()?;
    let data = v["data"].as_array().ok_or("no data")?;
    Ok(match v.get("dtype").and_then(Value::as_str) {
        Some("i64") => {
            let ints: Vec<i64> =
                data.iter().map(|d| d.as_i64().ok_or("not an integer")).collect::<Result<_, _>>()?;
            Tensor::from_vec(ints, &shape)?
        }
        None => {
            let floats: Vec<f64> =
                data.iter().map(|d| d.as_f64().ok_or("not a number")).collect::<Result<_, _>>()?;
            Tensor::from_vec(floats, &shape)?
        }
        Some(other) => return Err(format!("unknown dtype {other}").into()),
    })
}

/// Scalar and list attributes of a case, with errors that name the attribute. It remembers
/// which attributes were read, so a runner can refuse a case with a setting it ignored.
#[derive(Default)]
pub struct Attrs {
    map: Map<String, Value>,
    read: RefCell<BTreeSet<String>>,
}

impl Attrs {
    /// The attributes of `map`, none read yet.
    pub fn new(map: Map<String, Value>) -> Attrs {
        Attrs { map, read: RefCell::default() }
    }

    /// The raw attributes (reading them here is not recorded).
    pub fn map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The attributes no accessor has read.
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.map.keys().filter(|k| !read.contains(*k)).cloned().collect()
    }

    /// `Err` naming the attributes no accessor has read (settings the Rust side would ignore).
    pub fn all_read(&self) -> Res<()> {
        match self.unread().as_slice() {
            [] => Ok(()),
            unread => Err(format!("attributes {unread:?} are not mapped to graphgrad").into()),
        }
    }

    fn get(&self, key: &str) -> Res<&Value> {
        self.read.borrow_mut().insert(key.to_string());
        self.map.get(key).ok_or_else(|| format!("missing attribute {key:?}").into())
    }

    /// Whether the attribute is present (and not null).
    pub fn has(&self, key: &str) -> bool {
        self.read.borrow_mut().insert(key.to_string());
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// A number.
    pub fn f64(&self, key: &str) -> Res<f64> {
        self.get(key)?.as_f64().ok_or_else(|| format!("attribute {key:?} is not a number").into())
    }

    /// A number, or `default` when absent.
    pub fn f64_or(&self, key: &str, default: f64) -> Res<f64> {
        if self.has(key) {
            self.f64(key)
        } else {
            Ok(default)
        }
    }

    /// A number or null.
    pub fn opt_f64(&self, key: &str) -> Res<Option<f64>> {
        if self.has(key) {
            self.f64(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A non-negative integer.
    pub fn usize(&self, key: &str) -> Res<usize> {
        let v = self.get(key)?;
        v.as_u64().map(|v| v as usize).ok_or_else(|| format!("attribute {key:?} = {v} is not a size").into())
    }

    /// A non-negative integer, or `default` when absent.
    pub fn usize_or(&self, key: &str, default: usize) -> Res<usize> {
        if self.has(key) {
            self.usize(key)
        } else {
            Ok(default)
        }
    }

    /// A non-negative integer or null.
    pub fn opt_usize(&self, key: &str) -> Res<Option<usize>> {
        if self.has(key) {
            self.usize(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A signed integer (an axis).
    pub fn isize(&self, key: &str) -> Res<isize> {
        let v = self.get(key)?;
        v.as_i64()
            .map(|v| v as isize)
            .ok_or_else(|| format!("attribute {key:?} = {v} is not an integer").into())
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Res<bool> {
        self.get(key)?.as_bool().ok_or_else(|| format!("attribute {key:?} is not a boolean").into())
    }

    /// A boolean, or `default` when absent.
    pub fn bool_or(&self, key: &str, default: bool) -> Res<bool> {
        if self.has(key) {
            self.bool(key)
        } else {
            Ok(default)
        }
    }

    /// A boolean or null.
    pub fn opt_bool(&self, key: &str) -> Res<Option<bool>> {
        if self.has(key) {
            self.bool(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A string.
    pub fn str(&self, key: &str) -> Res<&str> {
        self.get(key)?.as_str().ok_or_else(|| format!("attribute {key:?} is not a string").into())
    }

    /// A list.
    fn list(&self, key: &str) -> Res<&Vec<Value>> {
        self.get(key)?.as_array().ok_or_else(|| format!("attribute {key:?} is not a list").into())
    }

    /// A list of non-negative integers.
    pub fn usizes(&self, key: &str) -> Res<Vec<usize>> {
        self.list(key)?
            .iter()
            .map(|v| {
                v.as_u64().map(|v| v as usize).ok_or_else(|| format!("{key:?}: {v} is not a size").into())
            })
            .collect()
    }

    /// A list of signed integers (axes).
    pub fn isizes(&self, key: &str) -> Res<Vec<isize>> {
        self.list(key)?
            .iter()
            .map(|v| {
                v.as_i64().map(|v| v as isize).ok_or_else(|| format!("{key:?}: {v} is not an integer").into())
            })
            .collect()
    }

    /// A list of numbers.
    pub fn f64s(&self, key: &str) -> Res<Vec<f64>> {
        self.list(key)?
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| format!("{key:?}: {v} is not a number").into()))
            .collect()
    }

    /// A pair of sizes (`[height, width]`).
    pub fn pair(&self, key: &str) -> Res<(usize, usize)> {
        match self.usizes(key)?.as_slice() {
            [a, b] => Ok((*a, *b)),
            other => Err(format!("attribute {key:?} = {other:?} is not a pair").into()),
        }
    }

    /// A list of pairs of sizes (`[[before, after], ...]`).
    pub fn pairs(&self, key: &str) -> Res<Vec<(usize, usize)>> {
        let pairs = self.list(key)?.iter().map(|p| {
            let p: Vec<usize> =
                p.as_array().into_iter().flatten().filter_map(Value::as_u64).map(|v| v as usize).collect();
            match p.as_slice() {
                [a, b] => Ok((*a, *b)),
                _ => Err(format!("{key:?}: {p:?} is not a pair of sizes").into()),
            }
        });
        pairs.collect()
    }

    /// A pair of sizes, or `default` when absent.
    pub fn pair_or(&self, key: &str, default: (usize, usize)) -> Res<(usize, usize)> {
        if self.has(key) {
            self.pair(key)
        } else {
            Ok(default)
        }
    }
}

/// The outcome of one family: what was compared and what failed.
#[derive(Default)]
pub struct Report {
    /// `case: value` for every comparison made.
    pub compared: Vec<String>,
    /// One message per failing comparison or case.
    pub failures: Vec<String>,
}

impl Report {
    /// Compares `got` with the golden `want` as `case: what`.
    pub fn check(&mut self, case: &str, what: &str, got: &Tensor, want: &Tensor) {
        self.compared.push(format!("{case}: {what}"));
        if let Err(e) = compare(got, want) {
            self.failures.push(format!("{case}: {what}: {e}"));
        }
    }

    /// Compares every golden tensor of `want` with the one of the same name in `got`; a name
    /// on one side only is a failure too.
    pub fn check_all(
        &mut self,
        case: &str,
        what: &str,
        got: &BTreeMap<String, Tensor>,
        want: &BTreeMap<String, Tensor>,
    ) {
        for (name, w) in want {
            match got.get(name) {
                Some(g) => self.check(case, &format!("{what} {name}"), g, w),
                None => self.failures.push(format!("{case}: {what} {name}: not produced by graphgrad")),
            }
        }
        for name in got.keys().filter(|n| !want.contains_key(*n)) {
            self.failures
                .push(format!("{case}: {what} {name}: produced by graphgrad but not in the golden file"));
        }
    }

    /// Records a case that could not run.
    pub fn fail(&mut self, case: &str, error: impl std::fmt::Display) {
        self.failures.push(format!("{case}: {error}"));
    }

    /// Prints what was compared and panics listing every failure.
    pub fn finish(self, family: &Family) {
        let cases = family.cases.len();
        println!(
            "parity {}: {cases} cases against torch {}, {} comparisons:",
            family.name,
            family.torch,
            self.compared.len()
        );
        // one line per case: what of it was compared
        let mut lines: Vec<(String, Vec<String>)> = Vec::new();
        for line in &self.compared {
            let (case, what) = line.split_once(": ").unwrap_or((line, ""));
            match lines.last_mut() {
                Some((c, whats)) if c == case => whats.push(what.to_string()),
                _ => lines.push((case.to_string(), vec![what.to_string()])),
            }
        }
        for (case, whats) in lines {
            println!("  {case}: {}", whats.join(", "));
        }
        assert!(cases > 0, "{}: the golden file has no cases", family.name);
        assert!(
            self.failures.is_empty(),
            "{} of {} comparisons in {} disagree with PyTorch (atol {ATOL:e}, rtol {RTOL:e}):\n  {}",
            self.failures.len(),
            self.compared.len(),
            family.name,
            self.failures.join("\n  ")
        );
    }
}

/// `Ok` when `got` matches `want` in shape and every element (integers exactly).
pub fn compare(got: &Tensor, want: &Tensor) -> std::result::Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!("shape {:?}, PyTorch {:?}", got.shape(), want.shape()));
    }
    let exact = want.dtype() == DType::I64;
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0;
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = if exact { a == b } else { (a - b).abs() <= ATOL + RTOL * b.abs() };
        if !ok {
            bad += 1;
            let excess = if a.is_nan() { f64::INFINITY } else { (a - b).abs() / (ATOL + RTOL * b.abs()) };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => Err(format!(
            "{bad} of {} elements differ; worst at flat index {i}: graphgrad {:e}, PyTorch {:e} (|Δ| = {:e})",
            w.len(),
            g[i],
            w[i],
            (g[i] - w[i]).abs()
        )),
    }
}

/// The named inputs and settings of one op or loss case, as its forward function reads them.
pub struct Args<'a> {
    pub inputs: &'a BTreeMap<String, Tensor>,
    pub attrs: &'a Attrs,
}

impl Args<'_> {
    /// The input `name`.
    pub fn t(&self, name: &str) -> Res<&Tensor> {
        self.inputs.get(name).ok_or_else(|| format!("missing input {name:?}").into())
    }

    /// The input `name`, when given (optional operands: biases, weights).
    pub fn opt(&self, name: &str) -> Option<&Tensor> {
        self.inputs.get(name)
    }
}

/// A case's inputs, those it wants gradients of made leaves that require them; the leaves; and
/// the wanted gradients.
pub type Leaves = (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>, BTreeMap<String, Tensor>);

/// The inputs of `case` with every input it has golden gradients for as a leaf (see [`Leaves`]).
pub fn leaf_inputs(case: &Case) -> Res<Leaves> {
    let want_grads = case.tensors("grads")?;
    let mut inputs = case.tensors("inputs")?;
    let mut leaves = BTreeMap::new();
    for key in want_grads.keys() {
        let leaf = inputs
            .get(key)
            .ok_or_else(|| format!("gradient of {key:?}, which is no input"))?
            .requires_grad_();
        inputs.insert(key.clone(), leaf.clone());
        leaves.insert(key.clone(), leaf);
    }
    Ok((inputs, leaves, want_grads))
}
