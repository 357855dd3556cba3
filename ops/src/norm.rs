//! Layer normalisation over the last `cols` elements of each row, forward and backward.
//!
//! Forward: two passes per row (mean, then the mean of squared deviations), pairwise sums,
//! biased variance, `rstd = 1/√(var + eps)`; writes `mean` and `rstd` per row for the
//! backward. Backward: `dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂))` with `ĝ = dy⊙γ`,
//! `dγ = Σ_rows dy⊙x̂`, `dβ = Σ_rows dy`.
//!
//! Determinism: rows are cut into chunks whose size depends only on `cols`; dγ and dβ are
//! summed pairwise inside each chunk and the chunk partials combined in chunk order by a
//! fixed pairwise tree, so the bits never depend on the thread count. A zero-width row
//! (`cols == 0`) gets NaN mean and rstd.

use crate::reduce::kernels::{
    col_sum, multiversion, row_sum, row_sum_map, ColPairwise, Pairwise, BLOCK, LANES,
};
use crate::reduce::{parallel, PAR_MIN};
use crate::Element;
use rayon::prelude::*;

/// Rows per chunk of work: at least one, about [`PAR_MIN`] elements.
fn chunk_rows(cols: usize) -> usize {
    (PAR_MIN / cols.max(1)).max(1)
}

/// Normalises each of `rows` rows of `cols` elements: `y = (x − mean)·rstd·γ + β`, with
/// `gamma`/`beta` (`cols` each) optional; writes `mean` and `rstd` (`rows` each).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm<T: Element>(
    x: &[T],
    rows: usize,
    cols: usize,
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    eps: T,
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    let n = rows * cols;
    assert!(x.len() == n && y.len() == n, "internal invariant: layer_norm x/y length vs {rows}×{cols}");
    assert!(
        mean.len() == rows && rstd.len() == rows,
        "internal invariant: layer_norm mean/rstd length vs {rows}"
    );
    assert!(gamma.is_none_or(|g| g.len() == cols), "internal invariant: layer_norm gamma length vs {cols}");
    assert!(beta.is_none_or(|b| b.len() == cols), "internal invariant: layer_norm beta length vs {cols}");
    if cols == 0 {
        mean.fill(T::from_f64(f64::NAN));
        rstd.fill(T::from_f64(f64::NAN));
        return;
    }
    let per = chunk_rows(cols);
    if parallel(n) && rows > per {
        y.par_chunks_mut(per * cols)
            .zip(mean.par_chunks_mut(per))
            .zip(rstd.par_chunks_mut(per))
            .enumerate()
            .for_each(|(i, ((y, m), r))| {
                forward_rows(&x[i * per * cols..][..y.len()], cols, gamma, beta, eps, y, m, r)
            });
    } else {
        forward_rows(x, cols, gamma, beta, eps, y, mean, rstd);
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn forward_rows<T: Element>(
        x: &[T], cols: usize, gamma: Option<&[T]>, beta: Option<&[T]>, eps: T,
        y: &mut [T], mean: &mut [T], rstd: &mut [T],
    ) {
        let n = T::from_usize(cols);
        for (((xr, yr), m), r) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)).zip(mean.iter_mut()).zip(rstd.iter_mut()) {
            let mu = row_sum(xr) / n;
            let var = row_sum_map(xr, |v| (v - mu) * (v - mu)) / n;
            let rs = T::ONE / (var + eps).sqrt();
            (*m, *r) = (mu, rs);
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = (v - mu) * rs;
            }
            if let Some(g) = gamma {
                yr.iter_mut().zip(g).for_each(|(o, &g)| *o *= g);
            }
            if let Some(b) = beta {
                yr.iter_mut().zip(b).for_each(|(o, &b)| *o += b);
            }
        }
    }
}

/// Backward of [`layer_norm`] from the saved `mean` and `rstd`: overwrites `dx`, and
/// `dgamma` / `dbeta` (`cols` each) when given.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<T: Element>(
    dy: &[T],
    x: &[T],
    mean: &[T],
    rstd: &[T],
    gamma: Option<&[T]>,
    rows: usize,
    cols: usize,
    dx: &mut [T],
    dgamma: Option<&mut [T]>,
    dbeta: Option<&mut [T]>,
) {
    let n = rows * cols;
    assert!(
        dy.len() == n && x.len() == n && dx.len() == n,
        "internal invariant: layer_norm_backward lengths vs {rows}×{cols}"
    );
    assert!(
        mean.len() == rows && rstd.len() == rows,
        "internal invariant: layer_norm_backward mean/rstd length vs {rows}"
    );
    assert!(gamma.is_none_or(|g| g.len() == cols), "internal invariant: layer_norm_backward gamma length");
    assert!(
        dgamma.as_ref().is_none_or(|g| g.len() == cols),
        "internal invariant: layer_norm_backward dgamma length"
    );
    assert!(
        dbeta.as_ref().is_none_or(|b| b.len() == cols),
        "internal invariant: layer_norm_backward dbeta length"
    );
    let want_dg = dgamma.is_some();
    let want_db = dbeta.is_some();
    if rows == 0 || cols == 0 {
        for out in [dgamma, dbeta].into_iter().flatten() {
            out.fill(T::ZERO);
        }
        return;
    }
    let per = chunk_rows(cols);
    // One chunk: dx rows, then its dγ and dβ partials (pairwise over rows).
    let chunk = |i: usize, dx: &mut [T]| -> (Vec<T>, Vec<T>) {
        let (s, r) = (i * per * cols, i * per);
        let k = dx.len() / cols;
        let (dy, x) = (&dy[s..s + dx.len()], &x[s..s + dx.len()]);
        let mut prod = if want_dg { vec![T::ZERO; dx.len()] } else { Vec::new() };
        let prod_out = if want_dg { Some(&mut prod[..]) } else { None };
        backward_rows(dy, x, &mean[r..r + k], &rstd[r..r + k], gamma, cols, dx, prod_out);
        let mut dg = Vec::new();
        if want_dg {
            dg = vec![T::ZERO; cols];
            col_sum(&prod, k, cols, None, &mut dg);
        }
        let mut db = Vec::new();
        if want_db {
            db = vec![T::ZERO; cols];
            col_sum(dy, k, cols, None, &mut db);
        }
        (dg, db)
    };
    let partials: Vec<(Vec<T>, Vec<T>)> = if parallel(n) && rows > per {
        dx.par_chunks_mut(per * cols).enumerate().map(|(i, d)| chunk(i, d)).collect()
    } else {
        dx.chunks_mut(per * cols).enumerate().map(|(i, d)| chunk(i, d)).collect()
    };
    // Chunk partials combined in chunk order by a fixed pairwise tree.
    let combine = |out: &mut [T], parts: Vec<Vec<T>>| {
        let mut tree = ColPairwise::new(cols, parts.len());
        for p in &parts {
            tree.next_slot().copy_from_slice(p);
            tree.commit();
        }
        tree.finish(out);
    };
    let (dgs, dbs): (Vec<Vec<T>>, Vec<Vec<T>>) = partials.into_iter().unzip();
    if let Some(dg) = dgamma {
        combine(dg, dgs);
    }
    if let Some(db) = dbeta {
        combine(db, dbs);
    }
}

/// (Σ ĝ, Σ ĝ·(x − μ)) of one short slice, `LANES` wide.
#[inline(always)]
fn moments_leaf<T: Element>(dy: &[T], x: &[T], gamma: Option<&[T]>, mu: T) -> (T, T) {
    let (mut a, mut b) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let lanes = |d: &[T], v: &[T], g: Option<&[T]>, a: &mut [T; LANES], b: &mut [T; LANES]| {
        for (k, ((a, b), (&d, &v))) in a.iter_mut().zip(b.iter_mut()).zip(d.iter().zip(v)).enumerate() {
            let gh = g.map_or(d, |g| d * g[k]);
            *a += gh;
            *b += gh * (v - mu);
        }
    };
    let body = dy.len() / LANES * LANES;
    for k in (0..body).step_by(LANES) {
        let g = gamma.map(|g| &g[k..k + LANES]);
        lanes(&dy[k..k + LANES], &x[k..k + LANES], g, &mut a, &mut b);
    }
    let (mut ta, mut tb) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    lanes(&dy[body..], &x[body..], gamma.map(|g| &g[body..]), &mut ta, &mut tb);
    let fold = |v: [T; LANES]| v.iter().fold(T::ZERO, |s, &v| s + v);
    (fold(a) + fold(ta), fold(b) + fold(tb))
}

/// (Σ ĝ, Σ ĝ·(x − μ)) of one row, pairwise over leaves of [`BLOCK`].
#[inline(always)]
fn row_moments<T: Element>(dy: &[T], x: &[T], gamma: Option<&[T]>, mu: T) -> (T, T) {
    if dy.len() <= BLOCK {
        return moments_leaf(dy, x, gamma, mu);
    }
    let (mut ta, mut tb) = (Pairwise::new(), Pairwise::new());
    for (j, (d, v)) in dy.chunks(BLOCK).zip(x.chunks(BLOCK)).enumerate() {
        let (a, b) = moments_leaf(d, v, gamma.map(|g| &g[j * BLOCK..j * BLOCK + d.len()]), mu);
        ta.push(a);
        tb.push(b);
    }
    (ta.finish(), tb.finish())
}

multiversion! {
    /// dx for whole rows; with `prod`, also writes dy⊙x̂ for the dγ sum.
    #[allow(clippy::too_many_arguments)]
    fn backward_rows<T: Element>(
        dy: &[T], x: &[T], mean: &[T], rstd: &[T], gamma: Option<&[T]>, cols: usize,
        dx: &mut [T], prod: Option<&mut [T]>,
    ) {
        let mut prod = prod;
        let n = T::from_usize(cols);
        for (r, (((dyr, xr), dxr), (&mu, &rs))) in dy.chunks_exact(cols).zip(x.chunks_exact(cols))
            .zip(dx.chunks_exact_mut(cols)).zip(mean.iter().zip(rstd)).enumerate()
        {
            let (sa, sb) = row_moments(dyr, xr, gamma, mu);
            // mean(ĝ) and mean(ĝ⊙x̂) = rstd·Σ ĝ(x − μ) / n.
            let (a, b) = (sa / n, sb * rs / n);
            let dx_of = |gh: T, v: T| rs * (gh - a - (v - mu) * rs * b);
            // one loop per case: a γ read by index would keep the loop from vectorising
            match gamma {
                Some(g) => {
                    for (((o, &d), &v), &g) in dxr.iter_mut().zip(dyr).zip(xr).zip(g) {
                        *o = dx_of(d * g, v);
                    }
                }
                None => {
                    for ((o, &d), &v) in dxr.iter_mut().zip(dyr).zip(xr) {
                        *o = dx_of(d, v);
                    }
                }
            }
            if let Some(p) = prod.as_deref_mut() {
                let pr = &mut p[r * cols..(r + 1) * cols];
                for ((o, &d), &v) in pr.iter_mut().zip(dyr).zip(xr) {
                    *o = d * ((v - mu) * rs);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
