//! The ops family: each case names a Tensor op (`"op"`), its inputs and attributes; `forward`
//! runs it in graphgrad. Gradients are the vector-Jacobian products of the golden cotangents,
//! with respect to the inputs the golden file has gradients for.

use crate::golden::{Args, Attrs, Res};
use graphgrad::autodiff::{checkpoint, ConvOptions, DType, Generator, Pool2dOptions, Tensor};
use std::collections::BTreeMap;

impl Args<'_> {
    /// The input of a one-operand op.
    fn x(&self) -> Res<&Tensor> {
        self.t("x")
    }

    /// The inputs of a two-operand op.
    fn ab(&self) -> Res<(&Tensor, &Tensor)> {
        Ok((self.t("a")?, self.t("b")?))
    }
}

/// Named outputs.
pub type Outputs = BTreeMap<String, Tensor>;

fn y(t: Tensor) -> Res<Outputs> {
    Ok(BTreeMap::from([("y".to_string(), t)]))
}

/// `f(a, b)` as the output y.
fn binary(g: &Args, f: impl Fn(&Tensor, &Tensor) -> graphgrad::autodiff::Result<Tensor>) -> Res<Outputs> {
    let (a, b) = g.ab()?;
    y(f(a, b)?)
}

fn ys(ts: Vec<Tensor>) -> Res<Outputs> {
    Ok(ts.into_iter().enumerate().map(|(i, t)| (format!("y{i}"), t)).collect())
}

/// A 2-d (or transposed) convolution's options from `stride`, `padding`, `dilation`, `groups`
/// and `output_padding`.
pub fn conv_options(a: &Attrs) -> Res<ConvOptions> {
    Ok(ConvOptions::default()
        .stride(a.pair_or("stride", (1, 1))?)
        .padding(a.pair_or("padding", (0, 0))?)
        .dilation(a.pair_or("dilation", (1, 1))?)
        .groups(a.usize_or("groups", 1)?)
        .output_padding(a.pair_or("output_padding", (0, 0))?))
}

/// A 1-d convolution's options: one number each.
fn conv1d_options(a: &Attrs) -> Res<ConvOptions> {
    Ok(ConvOptions::default()
        .stride(a.usize("stride")?)
        .padding(a.usize("padding")?)
        .dilation(a.usize("dilation")?)
        .groups(a.usize("groups")?))
}

/// Pooling options from `stride`, `padding`, `ceil_mode` and `count_include_pad`.
pub fn pool_options(a: &Attrs) -> Res<Pool2dOptions> {
    Ok(Pool2dOptions::new(a.pair("stride")?, a.pair_or("padding", (0, 0))?)
        .with_ceil_mode(a.bool_or("ceil_mode", false)?)
        .with_count_include_pad(a.bool_or("count_include_pad", true)?))
}

/// How a case's outputs are computed from its inputs.
pub type Forward = fn(&Args) -> Res<Outputs>;

/// Every op the golden files may name, with how graphgrad runs it. A case naming an op not
/// here fails; an op here that no case names fails too (`ops_match_pytorch`).
pub const TABLE: &[(&str, Forward)] = &[
    // ---- unary ----
    ("neg", |g| y(g.x()?.neg())),
    ("abs", |g| y(g.x()?.abs())),
    ("sign", |g| y(g.x()?.sign())),
    ("exp", |g| y(g.x()?.exp())),
    ("log", |g| y(g.x()?.log())),
    ("sqrt", |g| y(g.x()?.sqrt())),
    ("recip", |g| y(g.x()?.recip())),
    ("square", |g| y(g.x()?.square())),
    ("relu", |g| y(g.x()?.relu())),
    ("sigmoid", |g| y(g.x()?.sigmoid())),
    ("tanh", |g| y(g.x()?.tanh())),
    ("gelu", |g| y(g.x()?.gelu())),
    ("erf", |g| y(g.x()?.erf())),
    ("softplus", |g| y(g.x()?.softplus())),
    ("silu", |g| y(g.x()?.silu())),
    ("log_sigmoid", |g| y(g.x()?.log_sigmoid())),
    ("leaky_relu", |g| y(g.x()?.leaky_relu(g.attrs.f64("slope")?))),
    ("elu", |g| y(g.x()?.elu(g.attrs.f64("alpha")?))),
    ("add_scalar", |g| y(g.x()?.add_scalar(g.attrs.f64("c")?))),
    ("sub_scalar", |g| y(g.x()?.sub_scalar(g.attrs.f64("c")?))),
    ("mul_scalar", |g| y(g.x()?.mul_scalar(g.attrs.f64("c")?))),
    ("div_scalar", |g| y(g.x()?.div_scalar(g.attrs.f64("c")?))),
    ("rsub_scalar", |g| y(g.x()?.rsub_scalar(g.attrs.f64("c")?))),
    ("rdiv_scalar", |g| y(g.x()?.rdiv_scalar(g.attrs.f64("c")?))),
    ("pow_scalar", |g| y(g.x()?.pow_scalar(g.attrs.f64("p")?))),
    ("clamp", |g| y(g.x()?.clamp(g.attrs.f64("min")?, g.attrs.f64("max")?)?)),
    ("hardtanh", |g| y(g.x()?.hardtanh(g.attrs.f64("min")?, g.attrs.f64("max")?)?)),
    ("maximum_scalar", |g| y(g.x()?.maximum_scalar(g.attrs.f64("c")?))),
    ("minimum_scalar", |g| y(g.x()?.minimum_scalar(g.attrs.f64("c")?))),
    ("cast", |g| y(g.x()?.to_dtype(DType::F32).to_dtype(DType::F64))),
    ("dropout", |g| y(g.x()?.dropout(g.attrs.f64("p")?, g.attrs.bool("training")?, &Generator::new(0))?)),
    // ---- binary and comparisons ----
    ("add", |g| binary(g, Tensor::add)),
    ("sub", |g| binary(g, Tensor::sub)),
    ("mul", |g| binary(g, Tensor::mul)),
    ("div", |g| binary(g, Tensor::div)),
    ("pow", |g| binary(g, Tensor::pow)),
    ("maximum", |g| binary(g, Tensor::maximum)),
    ("minimum", |g| binary(g, Tensor::minimum)),
    ("eq", |g| binary(g, Tensor::eq)),
    ("ne", |g| binary(g, Tensor::ne)),
    ("lt", |g| binary(g, Tensor::lt)),
    ("le", |g| binary(g, Tensor::le)),
    ("gt", |g| binary(g, Tensor::gt)),
    ("ge", |g| binary(g, Tensor::ge)),
    ("eq_scalar", |g| y(g.x()?.eq_scalar(g.attrs.f64("c")?))),
    ("ne_scalar", |g| y(g.x()?.ne_scalar(g.attrs.f64("c")?))),
    ("lt_scalar", |g| y(g.x()?.lt_scalar(g.attrs.f64("c")?))),
    ("le_scalar", |g| y(g.x()?.le_scalar(g.attrs.f64("c")?))),
    ("gt_scalar", |g| y(g.x()?.gt_scalar(g.attrs.f64("c")?))),
    ("ge_scalar", |g| y(g.x()?.ge_scalar(g.attrs.f64("c")?))),
    ("where", |g| {
        let cond = g.t("cond")?;
        binary(g, |a, b| Tensor::where_(cond, a, b))
    }),
    ("masked_fill", |g| y(g.x()?.masked_fill(g.t("mask")?, g.attrs.f64("value")?)?)),
    // ---- reductions ----
    ("sum", |g| y(g.x()?.sum(&g.attrs.isizes("axes")?, g.attrs.bool("keepdim")?)?)),
    ("mean", |g| y(g.x()?.mean(&g.attrs.isizes("axes")?, g.attrs.bool("keepdim")?)?)),
    ("max", |g| y(g.x()?.max(&g.attrs.isizes("axes")?, g.attrs.bool("keepdim")?)?)),
    ("min", |g| y(g.x()?.min(&g.attrs.isizes("axes")?, g.attrs.bool("keepdim")?)?)),
    ("logsumexp", |g| y(g.x()?.logsumexp(&g.attrs.isizes("axes")?, g.attrs.bool("keepdim")?)?)),
    ("var", |g| {
        y(g.x()?.var(&g.attrs.isizes("axes")?, g.attrs.bool("keepdim")?, g.attrs.bool("unbiased")?)?)
    }),
    ("sum_all", |g| y(g.x()?.sum_all())),
    ("mean_all", |g| y(g.x()?.mean_all())),
    ("argmax", |g| {
        let x = g.x()?;
        let axis = g.attrs.isize("axis")?;
        let rank = x.rank() as isize;
        let dropped = if axis < 0 { axis + rank } else { axis } as usize;
        let shape: Vec<usize> =
            x.shape().iter().enumerate().filter(|&(d, _)| d != dropped).map(|(_, &s)| s).collect();
        y(Tensor::from_indices(&x.argmax(axis)?, &shape)?)
    }),
    // ---- matrix products ----
    ("matmul", |g| binary(g, Tensor::matmul)),
    ("matmul_with", |g| {
        let (ta, tb) = (g.attrs.bool("trans_a")?, g.attrs.bool("trans_b")?);
        binary(g, |a, b| a.matmul_with(b, ta, tb))
    }),
    // ---- movement ----
    ("reshape", |g| y(g.x()?.reshape(&g.attrs.usizes("shape")?)?)),
    ("reshape_inferred", |g| y(g.x()?.reshape_inferred(&g.attrs.isizes("shape")?)?)),
    ("flatten_from", |g| y(g.x()?.flatten_from(g.attrs.usize("start")?)?)),
    ("permute", |g| y(g.x()?.permute(&g.attrs.usizes("perm")?)?)),
    ("transpose", |g| y(g.x()?.transpose(g.attrs.isize("a")?, g.attrs.isize("b")?)?)),
    ("t", |g| y(g.x()?.t()?)),
    ("unsqueeze", |g| y(g.x()?.unsqueeze(g.attrs.isize("axis")?)?)),
    ("squeeze", |g| y(g.x()?.squeeze(g.attrs.isize("axis")?)?)),
    ("expand", |g| y(g.x()?.expand(&g.attrs.usizes("shape")?)?)),
    ("narrow", |g| {
        y(g.x()?.narrow(g.attrs.isize("axis")?, g.attrs.usize("start")?, g.attrs.usize("len")?)?)
    }),
    ("split", |g| ys(g.x()?.split(g.attrs.usize("size")?, g.attrs.isize("axis")?)?)),
    ("pad", |g| y(g.x()?.pad(&g.attrs.pairs("pads")?, g.attrs.f64("value")?)?)),
    ("cat", |g| y(Tensor::cat(&g.inputs.values().cloned().collect::<Vec<_>>(), g.attrs.isize("axis")?)?)),
    ("stack", |g| y(Tensor::stack(&g.inputs.values().cloned().collect::<Vec<_>>(), g.attrs.isize("axis")?)?)),
    // ---- indexing ----
    ("index_select", |g| y(g.x()?.index_select(g.attrs.isize("axis")?, g.t("index")?)?)),
    ("index_add", |g| y(g.x()?.index_add(g.attrs.isize("axis")?, g.t("index")?, g.t("source")?)?)),
    ("gather", |g| y(g.x()?.gather(g.attrs.isize("axis")?, g.t("index")?, None)?)),
    ("scatter_add", |g| y(g.x()?.scatter_add(g.attrs.isize("axis")?, g.t("index")?, g.t("source")?)?)),
    ("embedding", |g| y(g.t("table")?.embedding(g.t("index")?)?)),
    // ---- normalisation ----
    ("softmax", |g| y(g.x()?.softmax(g.attrs.isize("axis")?)?)),
    ("log_softmax", |g| y(g.x()?.log_softmax(g.attrs.isize("axis")?)?)),
    ("layer_norm", |g| {
        y(g.x()?.layer_norm(
            &g.attrs.usizes("normalized_shape")?,
            g.opt("weight"),
            g.opt("bias"),
            g.attrs.f64("eps")?,
        )?)
    }),
    // ---- convolution and pooling ----
    ("conv2d", |g| y(g.x()?.conv2d(g.t("weight")?, g.opt("bias"), conv_options(g.attrs)?)?)),
    ("conv1d", |g| y(g.x()?.conv1d(g.t("weight")?, g.opt("bias"), conv1d_options(g.attrs)?)?)),
    ("conv_transpose2d", |g| {
        y(g.x()?.conv_transpose2d(g.t("weight")?, g.opt("bias"), conv_options(g.attrs)?)?)
    }),
    ("max_pool2d", |g| y(g.x()?.max_pool2d_with(g.attrs.pair("kernel")?, &pool_options(g.attrs)?)?.0)),
    ("max_pool2d_with_indices", |g| {
        let (values, indices) = g.x()?.max_pool2d_with_indices(
            g.attrs.pair("kernel")?,
            g.attrs.pair("stride")?,
            g.attrs.pair("padding")?,
        )?;
        ys(vec![values, indices])
    }),
    ("avg_pool2d", |g| y(g.x()?.avg_pool2d_with(g.attrs.pair("kernel")?, &pool_options(g.attrs)?)?)),
    // ---- composites ----
    ("checkpoint", |g| {
        let (p, q) = g.ab()?;
        let outs = checkpoint(|v| Ok(vec![v[0].matmul(&v[1])?.tanh()]), &[p.clone(), q.clone()])?;
        y(outs[0].clone())
    }),
];

/// Runs op `op` of a case; an op the table does not know is an error (never a skip).
pub fn forward(op: &str, args: &Args) -> Res<Outputs> {
    match TABLE.iter().find(|(name, _)| *name == op) {
        Some((_, f)) => f(args),
        None => Err(format!("no graphgrad op is mapped to {op:?} (add it to tests/parity/ops.rs)").into()),
    }
}
