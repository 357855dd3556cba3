//! Convolution tests: every kernel against the definition written as plain nested loops, the
//! gradient kernels also as exact adjoints, on awkward geometries in f32 and f64.

use super::*;
use crate::gemm::Activation;
use crate::testing::{assert_close, random_vec};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Calls `f(x_index, w_index, y_index)` for every tap of the convolution that lands inside the
/// (unpadded) input: the definition of conv2d as seven nested loops.
fn for_each_tap(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let (oh_n, ow_n, o) = (g.out_h(), g.out_w(), g.options);
    let (cg_in, cg_out) = (g.in_channels / o.groups, g.out_channels / o.groups);
    for n in 0..g.batch {
        for oc in 0..g.out_channels {
            for c in 0..cg_in {
                let ci = oc / cg_out * cg_in + c;
                for ki in 0..g.kernel_h {
                    for kj in 0..g.kernel_w {
                        for oh in 0..oh_n {
                            for ow in 0..ow_n {
                                let ih =
                                    (oh * o.stride.0 + ki * o.dilation.0) as isize - o.padding.0 as isize;
                                let iw =
                                    (ow * o.stride.1 + kj * o.dilation.1) as isize - o.padding.1 as isize;
                                if ih < 0 || iw < 0 || ih >= g.in_h as isize || iw >= g.in_w as isize {
                                    continue;
                                }
                                let (ih, iw) = (ih as usize, iw as usize);
                                let xi = ((n * g.in_channels + ci) * g.in_h + ih) * g.in_w + iw;
                                let wi = ((oc * cg_in + c) * g.kernel_h + ki) * g.kernel_w + kj;
                                let yi = ((n * g.out_channels + oc) * oh_n + oh) * ow_n + ow;
                                f(xi, wi, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A transposed convolution as its own definition sees it: `conv` is the convolution it
/// transposes, whose input (`conv.in_h × conv.in_w`) is the transposed output and whose output
/// is the transposed input.
struct Transposed {
    conv: Conv2dGeometry,
}

impl Transposed {
    /// The transposed convolution of a `[batch, in_channels, in_h, in_w]` input by an
    /// `[in_channels, out_channels / groups, kernel]` weight, sized by PyTorch's formula.
    fn new(
        batch: usize,
        channels: (usize, usize),
        input: (usize, usize),
        kernel: (usize, usize),
        o: ConvOptions,
    ) -> Option<Transposed> {
        let out_h = conv_transpose_out_len(
            input.0,
            kernel.0,
            o.stride.0,
            o.padding.0,
            o.dilation.0,
            o.output_padding.0,
        )?;
        let out_w = conv_transpose_out_len(
            input.1,
            kernel.1,
            o.stride.1,
            o.padding.1,
            o.dilation.1,
            o.output_padding.1,
        )?;
        let conv = Conv2dGeometry {
            batch,
            in_channels: channels.1,
            out_channels: channels.0,
            in_h: out_h,
            in_w: out_w,
            kernel_h: kernel.0,
            kernel_w: kernel.1,
            options: o,
        };
        assert_eq!((conv.out_h(), conv.out_w()), input, "output padding below the stride");
        Some(Transposed { conv })
    }
}

/// The transposed convolution by its scatter definition: `f(x_index, w_index, y_index)` for
/// every input pixel, kernel tap and output channel of its group whose target is in the output.
fn for_each_transpose_tap(t: &Transposed, mut f: impl FnMut(usize, usize, usize)) {
    let (g, o) = (&t.conv, t.conv.options);
    // The transposed op's names: its input is the convolution's output, and back.
    let (in_c, out_c, in_h, in_w, oh_n, ow_n) =
        (g.out_channels, g.in_channels, g.out_h(), g.out_w(), g.in_h, g.in_w);
    let (cg_in, cg_out) = (in_c / o.groups, out_c / o.groups);
    for n in 0..g.batch {
        for ic in 0..in_c {
            for ih in 0..in_h {
                for iw in 0..in_w {
                    for og in 0..cg_out {
                        let oc = ic / cg_in * cg_out + og;
                        for ki in 0..g.kernel_h {
                            for kj in 0..g.kernel_w {
                                let oh =
                                    (ih * o.stride.0 + ki * o.dilation.0) as isize - o.padding.0 as isize;
                                let ow =
                                    (iw * o.stride.1 + kj * o.dilation.1) as isize - o.padding.1 as isize;
                                if oh < 0 || ow < 0 || oh >= oh_n as isize || ow >= ow_n as isize {
                                    continue;
                                }
                                let (oh, ow) = (oh as usize, ow as usize);
                                let xi = ((n * in_c + ic) * in_h + ih) * in_w + iw;
                                let wi = ((ic * cg_out + og) * g.kernel_h + ki) * g.kernel_w + kj;
                                let yi = ((n * out_c + oc) * oh_n + oh) * ow_n + ow;
                                f(xi, wi, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The three references (forward with bias, input gradient, weight gradient) from a tap list.
struct Reference {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
fn reference<T: Element>(
    taps: impl Fn(&mut dyn FnMut(usize, usize, usize)),
    x: &[T],
    w: &[T],
    bias: &[T],
    dy: &[T],
    y_plane: usize,
) -> Reference {
    let f = |v: &[T]| v.iter().map(|a| a.to_f64()).collect::<Vec<_>>();
    let (x, w, dy) = (f(x), f(w), f(dy));
    let mut y: Vec<f64> = (0..dy.len()).map(|i| bias[i / y_plane % bias.len()].to_f64()).collect();
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    taps(&mut |xi, wi, yi| {
        y[yi] += x[xi] * w[wi];
        dx[xi] += w[wi] * dy[yi];
        dw[wi] += x[xi] * dy[yi];
    });
    Reference { y, dx, dw }
}

fn to_t<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&a| T::from_f64(a)).collect()
}

fn tolerance<T: Element>() -> (f64, f64) {
    match T::DTYPE {
        crate::DType::F32 => (2e-4, 1e-4),
        crate::DType::F64 | crate::DType::I64 => (1e-12, 1e-10),
    }
}

fn check_conv2d<T: Element>(g: &Conv2dGeometry, seed: u64) {
    let (xl, wl, yl) = (g.input_len(), g.weight_len(), g.output_len());
    let x = random_vec::<T>(xl, seed);
    let w = random_vec::<T>(wl, seed + 1);
    let bias = random_vec::<T>(g.out_channels.max(1), seed + 2);
    let dy = random_vec::<T>(yl, seed + 3);
    let plane = (g.out_h() * g.out_w()).max(1);
    let r = reference(|f| for_each_tap(g, f), &x, &w, &bias, &dy, plane);
    let (atol, rtol) = tolerance::<T>();
    let mut y = vec![T::from_f64(f64::NAN); yl];
    let bias = &bias[..g.out_channels];
    conv2d(g, &x, &w, &Epilogue { bias: Some(bias), activation: Activation::Identity }, &mut y);
    assert_close(&y, &to_t::<T>(&r.y), atol, rtol);
    // an activation in the epilogue gives the separate op's values, bit for bit
    let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
    for activation in [Activation::Relu, Activation::Tanh] {
        let mut fused = vec![T::from_f64(f64::NAN); yl];
        conv2d(g, &x, &w, &Epilogue { bias: Some(bias), activation }, &mut fused);
        let mut want = vec![T::ZERO; yl];
        crate::unary::unary(activation.as_unary().expect("an elementwise op"), &y, &mut want);
        assert_eq!(bits(&fused), bits(&want), "{activation:?} epilogue on {g:?}");
    }
    let mut dx = vec![T::from_f64(f64::NAN); xl];
    conv2d_backward_input(g, &dy, &w, &mut dx);
    assert_close(&dx, &to_t::<T>(&r.dx), atol, rtol);
    let mut dw = vec![T::from_f64(f64::NAN); wl];
    conv2d_backward_weight(g, &x, &dy, &mut dw);
    assert_close(&dw, &to_t::<T>(&r.dw), atol, rtol);
}

/// The transposed convolution is the convolution's input gradient; its input gradient the
/// convolution; its weight gradient the convolution's with image and gradient swapped.
fn check_transpose<T: Element>(t: &Transposed, seed: u64) {
    let g = &t.conv;
    let (xl, wl, yl) = (g.output_len(), g.weight_len(), g.input_len());
    let x = random_vec::<T>(xl, seed);
    let w = random_vec::<T>(wl, seed + 1);
    let dy = random_vec::<T>(yl, seed + 3);
    let zero_bias = [T::ZERO];
    let r = reference(|f| for_each_transpose_tap(t, f), &x, &w, &zero_bias, &dy, 1);
    let (atol, rtol) = tolerance::<T>();
    let mut y = vec![T::from_f64(f64::NAN); yl];
    conv2d_backward_input(g, &x, &w, &mut y);
    assert_close(&y, &to_t::<T>(&r.y), atol, rtol);
    let mut dx = vec![T::from_f64(f64::NAN); xl];
    conv2d(g, &dy, &w, &Epilogue::default(), &mut dx);
    assert_close(&dx, &to_t::<T>(&r.dx), atol, rtol);
    let mut dw = vec![T::from_f64(f64::NAN); wl];
    conv2d_backward_weight(g, &dy, &x, &mut dw);
    assert_close(&dw, &to_t::<T>(&r.dw), atol, rtol);
}

const CHANNELS: [(usize, usize, usize); 9] =
    [(1, 1, 1), (1, 3, 1), (3, 1, 1), (3, 3, 1), (3, 3, 3), (3, 6, 3), (2, 4, 2), (4, 2, 2), (2, 2, 2)];

fn random_geometry(rng: &mut ChaCha8Rng) -> Conv2dGeometry {
    let pick = |rng: &mut ChaCha8Rng, v: &[usize]| *v.choose(rng).unwrap();
    let (in_channels, out_channels, groups) = *CHANNELS.choose(rng).unwrap();
    Conv2dGeometry {
        batch: pick(rng, &[0, 1, 3]),
        in_channels,
        out_channels,
        in_h: pick(rng, &[1, 7, 17]),
        in_w: pick(rng, &[1, 7, 17]),
        kernel_h: pick(rng, &[1, 3, 5]),
        kernel_w: pick(rng, &[1, 3, 5]),
        options: ConvOptions::default()
            .stride((pick(rng, &[1, 2, 3]), pick(rng, &[1, 2, 3])))
            .padding((pick(rng, &[0, 1, 2]), pick(rng, &[0, 1, 2])))
            .dilation((pick(rng, &[1, 2]), pick(rng, &[1, 2])))
            .groups(groups),
    }
}

/// Hand-picked cases: 1×1 (the no-im2col path), the W3 layers, wide rows, the parallel path.
fn fixed_geometries() -> Vec<Conv2dGeometry> {
    let base = Conv2dGeometry {
        batch: 3,
        in_channels: 3,
        out_channels: 6,
        in_h: 7,
        in_w: 17,
        kernel_h: 1,
        kernel_w: 1,
        options: ConvOptions::default().groups(3),
    };
    let w3 = |cin, cout, hw| Conv2dGeometry {
        batch: 2,
        in_channels: cin,
        out_channels: cout,
        in_h: hw,
        in_w: hw,
        kernel_h: 3,
        kernel_w: 3,
        options: ConvOptions::default().padding(1),
    };
    vec![
        base,
        Conv2dGeometry { options: base.options.groups(1), ..base },
        w3(1, 16, 28),
        w3(16, 32, 14),
        Conv2dGeometry { in_h: 1, in_w: 129, kernel_w: 5, options: base.options.padding((0, 2)), ..base },
        Conv2dGeometry { in_h: 3, in_w: 65, kernel_w: 3, options: base.options.stride((1, 2)), ..base },
        // Above the parallel threshold, odd batch so the weight chunks are uneven.
        Conv2dGeometry { batch: 5, options: w3(8, 16, 17).options.groups(2), ..w3(8, 16, 17) },
        // Padded input shorter than the dilated kernel: empty output.
        Conv2dGeometry { in_h: 1, kernel_h: 5, ..base },
    ]
}

#[test]
fn conv2d_matches_reference_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (i, g) in fixed_geometries().into_iter().enumerate() {
        check_conv2d::<f64>(&g, i as u64);
    }
    for i in 0..300 {
        let g = random_geometry(&mut rng);
        check_conv2d::<f64>(&g, 100 + i);
    }
}

#[test]
fn conv2d_matches_reference_f32() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for (i, g) in fixed_geometries().into_iter().enumerate() {
        check_conv2d::<f32>(&g, i as u64);
    }
    for i in 0..300 {
        let g = random_geometry(&mut rng);
        check_conv2d::<f32>(&g, 100 + i);
    }
}

/// Stride 1 with output rows as wide as input rows (`2·pad = dil·(kw − 1)`): each tap's
/// column-matrix row is one run of the input plane, with the columns that wrap round between
/// rows zeroed (im2col) or skipped (col2im). Heights, height padding and dilation vary freely.
#[test]
fn same_width_rows_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let pick = |rng: &mut ChaCha8Rng, v: &[usize]| *v.choose(rng).unwrap();
    let mut checked = 0;
    while checked < 200 {
        let (kernel_w, dil_w) = (pick(&mut rng, &[1, 2, 3, 4, 5]), pick(&mut rng, &[1, 2, 3]));
        if !(dil_w * (kernel_w - 1)).is_multiple_of(2) {
            continue;
        }
        let (in_channels, out_channels, groups) = *CHANNELS.choose(&mut rng).unwrap();
        let g = Conv2dGeometry {
            batch: pick(&mut rng, &[1, 3]),
            in_channels,
            out_channels,
            in_h: pick(&mut rng, &[1, 3, 6]),
            in_w: pick(&mut rng, &[1, 2, 5, 9]),
            kernel_h: pick(&mut rng, &[1, 2, 3]),
            kernel_w,
            options: ConvOptions::default()
                .padding((pick(&mut rng, &[0, 1, 2]), dil_w * (kernel_w - 1) / 2))
                .dilation((pick(&mut rng, &[1, 2]), dil_w))
                .groups(groups),
        };
        assert_eq!(g.out_w(), g.in_w, "{g:?}");
        check_conv2d::<f64>(&g, 4000 + checked);
        check_conv2d::<f32>(&g, 4000 + checked);
        checked += 1;
    }
}

#[test]
fn out_len_formula() {
    // (7 + 2·1 − 2·(3 − 1) − 1) / 2 + 1 = 4/2 + 1 = 3
    assert_eq!(conv_out_len(7, 3, 2, 1, 2), 3);
    // (28 + 2 − 2 − 1) / 1 + 1 = 28
    assert_eq!(conv_out_len(28, 3, 1, 1, 1), 28);
    // padded 1 < dilated kernel 5
    assert_eq!(conv_out_len(1, 5, 1, 0, 1), 0);
    // padded 5 == dilated kernel 5: one output
    assert_eq!(conv_out_len(1, 3, 3, 2, 1), 1);
}

fn dot<T: Element>(a: &[T], b: &[T]) -> (f64, f64) {
    let terms = a.iter().zip(b).map(|(x, y)| x.to_f64() * y.to_f64());
    terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()))
}

#[track_caller]
fn assert_adjoint(lhs: (f64, f64), rhs: (f64, f64)) {
    let scale = lhs.1.max(rhs.1).max(1e-300);
    assert!(
        (lhs.0 - rhs.0).abs() <= 1e-10 * scale,
        "adjoint mismatch: {} vs {} (scale {scale})",
        lhs.0,
        rhs.0
    );
}

#[test]
fn backward_kernels_are_adjoints_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let cases = fixed_geometries().into_iter().chain((0..200).map(|_| random_geometry(&mut rng)));
    for (i, g) in cases.enumerate() {
        let seed = 1000 + 10 * i as u64;
        let x = random_vec::<f64>(g.input_len(), seed);
        let w = random_vec::<f64>(g.weight_len(), seed + 1);
        let dy = random_vec::<f64>(g.output_len(), seed + 2);
        let mut y = vec![0.0; g.output_len()];
        conv2d(&g, &x, &w, &Epilogue::default(), &mut y);
        let mut dx = vec![0.0; g.input_len()];
        conv2d_backward_input(&g, &dy, &w, &mut dx);
        let mut dw = vec![0.0; g.weight_len()];
        conv2d_backward_weight(&g, &x, &dy, &mut dw);
        // <conv(x; w), dy> = <x, convᵀ(dy; w)> = <w, Σ dy ⊗ x>
        assert_adjoint(dot(&y, &dy), dot(&x, &dx));
        assert_adjoint(dot(&y, &dy), dot(&w, &dw));
    }
}

/// Conv1d is the height-1 case of the 2-d kernels.
#[test]
fn conv1d_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for case in 0..120u64 {
        let (in_channels, out_channels, groups) = *CHANNELS.choose(&mut rng).unwrap();
        let batch = *[0, 1, 3].choose(&mut rng).unwrap();
        let in_len = *[0, 1, 7, 17, 65, 129].choose(&mut rng).unwrap();
        let kernel = *[1, 3, 5].choose(&mut rng).unwrap();
        let (s, p, d) = (rng.gen_range(1..=3), rng.gen_range(0..=2), rng.gen_range(1..=2));
        let g = Conv2dGeometry {
            batch,
            in_channels,
            out_channels,
            in_h: 1,
            in_w: in_len,
            kernel_h: 1,
            kernel_w: kernel,
            options: ConvOptions::default().stride((1, s)).padding((0, p)).dilation((1, d)).groups(groups),
        };
        let (cg_in, cg_out, l) = (in_channels / groups, out_channels / groups, g.out_w());
        let x = random_vec::<f64>(batch * in_channels * in_len, case);
        let w = random_vec::<f64>(out_channels * cg_in * kernel, case + 1);
        let mut expect = vec![0.0; batch * out_channels * l];
        for n in 0..batch {
            for oc in 0..out_channels {
                for c in 0..cg_in {
                    let ci = oc / cg_out * cg_in + c;
                    for k in 0..kernel {
                        for o in 0..l {
                            let i = (o * s + k * d) as isize - p as isize;
                            if (0..in_len as isize).contains(&i) {
                                expect[(n * out_channels + oc) * l + o] += w[(oc * cg_in + c) * kernel + k]
                                    * x[(n * in_channels + ci) * in_len + i as usize];
                            }
                        }
                    }
                }
            }
        }
        let mut y = vec![f64::NAN; expect.len()];
        conv2d(&g, &x, &w, &Epilogue::default(), &mut y);
        assert_close(&y, &expect, 1e-12, 1e-10);
    }
}

fn random_transpose(rng: &mut ChaCha8Rng) -> Option<Transposed> {
    let c = random_geometry(rng);
    // Below the stride, the transposed output stays one the convolution maps back from.
    let s = c.options.stride;
    let output_padding = (rng.gen_range(0..s.0), rng.gen_range(0..s.1));
    let channels = (c.out_channels, c.in_channels);
    let options = c.options.output_padding(output_padding);
    Transposed::new(c.batch, channels, (c.in_h, c.in_w), (c.kernel_h, c.kernel_w), options)
}

#[test]
fn conv_transpose2d_matches_scatter_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut checked = 0;
    for i in 0..300 {
        let Some(t) = random_transpose(&mut rng) else { continue };
        check_transpose::<f64>(&t, 3000 + 10 * i);
        check_transpose::<f32>(&t, 3000 + 10 * i);
        checked += 1;
    }
    assert!(checked > 200, "only {checked} geometries had an output");
}

#[test]
fn conv_transpose2d_output_size() {
    // (5 − 1)·2 − 2 + (3 − 1) + 1 + 1 = 10
    assert_eq!(conv_transpose_out_len(5, 3, 2, 1, 1, 1), Some(10));
    // (7 − 1)·3 − 4 + (4 − 1) + 2 + 1 = 20
    assert_eq!(conv_transpose_out_len(7, 4, 3, 2, 1, 2), Some(20));
    // dilation 2: (5 − 1)·2 − 2 + 2·(3 − 1) + 1 + 1 = 12
    assert_eq!(conv_transpose_out_len(5, 3, 2, 1, 2, 1), Some(12));
    // padding that removes the whole output, and an empty input
    assert_eq!(conv_transpose_out_len(1, 1, 1, 1, 1, 0), None);
    assert_eq!(conv_transpose_out_len(0, 3, 1, 0, 1, 0), None);
    let o = ConvOptions::default().stride((2, 3)).padding((1, 2)).output_padding((1, 2));
    let t = Transposed::new(1, (2, 2), (5, 7), (3, 4), o).unwrap();
    assert_eq!((t.conv.in_h, t.conv.in_w), (10, 20));
    check_transpose::<f64>(&t, 7);
}

/// Runs all three conv kernels under a pool of `threads` threads.
fn run_all(threads: usize, g: &Conv2dGeometry, x: &[f32], w: &[f32], dy: &[f32]) -> Vec<Vec<f32>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut y = vec![0.0; g.output_len()];
        conv2d(
            g,
            x,
            w,
            &Epilogue { bias: Some(&w[..g.out_channels]), activation: Activation::Identity },
            &mut y,
        );
        let mut dx = vec![0.0; g.input_len()];
        conv2d_backward_input(g, dy, w, &mut dx);
        let mut dw = vec![0.0; g.weight_len()];
        conv2d_backward_weight(g, x, dy, &mut dw);
        vec![y, dx, dw]
    })
}

#[test]
fn deterministic_across_runs_and_thread_counts() {
    let g = Conv2dGeometry {
        batch: 11,
        in_channels: 16,
        out_channels: 32,
        in_h: 14,
        in_w: 14,
        kernel_h: 3,
        kernel_w: 3,
        options: ConvOptions::default().padding(1),
    };
    let x = random_vec::<f32>(g.input_len(), 1);
    let w = random_vec::<f32>(g.weight_len(), 2);
    let dy = random_vec::<f32>(g.output_len(), 3);
    let bits = |v: Vec<Vec<f32>>| -> Vec<Vec<u32>> {
        v.into_iter().map(|b| b.into_iter().map(f32::to_bits).collect()).collect()
    };
    let one = bits(run_all(1, &g, &x, &w, &dy));
    assert_eq!(one, bits(run_all(2, &g, &x, &w, &dy)));
    assert_eq!(one, bits(run_all(2, &g, &x, &w, &dy)));
    assert_eq!(one, bits(run_all(3, &g, &x, &w, &dy)));
}
