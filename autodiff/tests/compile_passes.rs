//! The compiler's passes on small known graphs (node counts after each pass), fusion of the
//! W5/W6 chains into one kernel with eager-equal results, recompilation on a new shape,
//! state updates (momentum buffers), the dot export, the pass log and the errors.

use graphgrad_autodiff::compile::{
    compile, compile_with, constant_indices, CompileOptions, Compiled, Program,
};
use graphgrad_autodiff::{grad, no_grad, ConvOptions, DType, Error, Generator, Result, Tensor, Var};
use graphgrad_ops::binary::BinaryOp;
use graphgrad_ops::testing::assert_close;
use graphgrad_ops::unary::UnaryOp;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn report_nodes(p: &Program, pass: &str) -> Vec<(usize, usize)> {
    p.reports().iter().filter(|r| r.name == pass).map(|r| (r.nodes_before, r.nodes_after)).collect()
}

fn only(options: CompileOptions) -> CompileOptions {
    CompileOptions { verify: true, ..options }
}

fn data(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, DType::F32, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

#[test]
fn cse_merges_equal_subexpressions() {
    // input, exp, exp, add -> input, exp, add
    let options =
        only(CompileOptions { eliminate_common_subexpressions: true, ..CompileOptions::unoptimized() });
    let mut f = compile_with(|io: &[Tensor]| Ok::<_, Error>(vec![io[0].exp().add(&io[0].exp())?]), options);
    let x = data(&[5], 1);
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    let p = f.program(std::slice::from_ref(&x)).unwrap();
    assert_eq!(p.traced_node_count(), 4);
    assert_eq!(report_nodes(p, "cse"), vec![(4, 3)]);
    assert_close(
        &out[0].to_vec::<f32>().unwrap(),
        &x.exp().mul_scalar(2.0).to_vec::<f32>().unwrap(),
        1e-6,
        1e-6,
    );
}

#[test]
fn simplify_and_dce_remove_identities() {
    // x·1 + 0, a double transpose and a reshape of a reshape: only input -> reshape remains
    let options = only(CompileOptions { simplify: true, ..CompileOptions::unoptimized() });
    let mut f = compile_with(
        |io: &[Tensor]| {
            let y = io[0].mul_scalar(1.0).add_scalar(0.0).transpose(0, 1)?.transpose(0, 1)?;
            let ones = Tensor::ones(&[2, 3], DType::F32)?;
            Ok::<_, Error>(vec![y.mul(&ones)?.reshape(&[6])?.reshape(&[3, 2])?])
        },
        options,
    );
    let x = data(&[2, 3], 2);
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    let p = f.program(std::slice::from_ref(&x)).unwrap();
    // input, mul(1), add(0), permute, permute, const, mul, reshape, reshape
    assert_eq!(p.traced_node_count(), 9);
    assert_eq!(p.node_count(), 2, "{}", p.log());
    assert_eq!(out[0].shape(), &[3, 2]);
    assert_eq!(out[0].to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
}

#[test]
fn fold_evaluates_constant_subgraphs() {
    // const -> mul(2) -> add(x): the constant chain folds into one constant
    let options = only(CompileOptions { fold_constants: true, ..CompileOptions::unoptimized() });
    let mut f = compile_with(
        |io: &[Tensor]| {
            Ok::<_, Error>(vec![Tensor::ones(&[3], DType::F32)?.mul_scalar(2.0).exp().add(&io[0])?])
        },
        options,
    );
    let x = data(&[3], 3);
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    let p = f.program(std::slice::from_ref(&x)).unwrap();
    assert_eq!(p.traced_node_count(), 5);
    assert_eq!(p.node_count(), 3, "{}", p.log());
    let want: Vec<f32> = x.to_vec::<f32>().unwrap().iter().map(|v| v + 2f32.exp()).collect();
    assert_close(&out[0].to_vec::<f32>().unwrap(), &want, 1e-6, 1e-6);
}

/// W6: tanh-GELU written with primitive ops, its sum and its gradient.
fn gelu_step(x: &Tensor) -> Result<Vec<Tensor>> {
    let inner = x.add(&x.pow_scalar(3.0).mul_scalar(0.044715))?.mul_scalar(0.797_884_56);
    let y = x.mul_scalar(0.5).mul(&inner.tanh().add_scalar(1.0))?;
    let loss = y.sum_all();
    let dx = grad(std::slice::from_ref(&loss), std::slice::from_ref(x), false)?.remove(0);
    Ok(vec![loss, dx])
}

#[test]
fn gelu_forward_backward_fuses_into_one_kernel() {
    let mut f = compile(|io: &[Tensor]| gelu_step(&io[0]));
    for seed in 0..2 {
        let x = data(&[100_003], 10 + seed).requires_grad_();
        let out = f.call(std::slice::from_ref(&x)).unwrap();
        let eager = gelu_step(&x).unwrap();
        assert_close(&out[0].to_vec::<f32>().unwrap(), &eager[0].to_vec::<f32>().unwrap(), 1e-3, 1e-5);
        assert_close(&out[1].to_vec::<f32>().unwrap(), &eager[1].to_vec::<f32>().unwrap(), 1e-6, 1e-5);
    }
    let p = f.programs().next().unwrap();
    // the input and one fused kernel with two outputs: dx (stored) and the loss (reduced)
    assert_eq!(p.node_count(), 2, "{}", p.log());
    assert_eq!(report_nodes(p, "fuse").len(), 1);
    assert_eq!(p.memory_plan().order.len(), 1);
    // the values remat recomputed (x², tanh + 1) are computed once inside it
    let graph = p.graph();
    let kernel = graph
        .g
        .node_weights()
        .find_map(|n| match &n.op {
            graphgrad_autodiff::compile::ir::IrOp::Fused(k) => Some(k.clone()),
            _ => None,
        })
        .unwrap();
    for (i, a) in kernel.instrs.iter().enumerate() {
        assert!(!kernel.instrs[..i].contains(a), "{a:?} twice in {:?}", kernel.instrs);
    }
}

/// W5: a chain of 300 elementwise ops on 16 elements, sum, backward.
fn chain_step(x: &Tensor) -> Result<Vec<Tensor>> {
    let mut y = x.clone();
    for i in 0..300 {
        y = match i % 3 {
            0 => y.mul_scalar(1.0001),
            1 => y.add_scalar(0.0001),
            _ => y.tanh(),
        };
    }
    let loss = y.sum_all();
    let dx = grad(std::slice::from_ref(&loss), std::slice::from_ref(x), false)?.remove(0);
    Ok(vec![loss, dx])
}

#[test]
fn long_elementwise_chain_fuses_and_matches_eager() {
    let mut f = compile(|io: &[Tensor]| chain_step(&io[0]));
    let x = data(&[16], 5).requires_grad_();
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    let eager = chain_step(&x).unwrap();
    assert_close(&out[0].to_vec::<f32>().unwrap(), &eager[0].to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    assert_close(&out[1].to_vec::<f32>().unwrap(), &eager[1].to_vec::<f32>().unwrap(), 1e-6, 1e-5);
    let p = f.programs().next().unwrap();
    assert!(p.traced_node_count() > 600, "{}", p.log());
    assert_eq!(p.node_count(), 2, "{}", p.log());
}

#[test]
fn new_shapes_recompile_and_old_ones_hit_the_cache() {
    let w = Var::new("w", &data(&[3, 2], 6));
    let wc = w.clone();
    let mut f =
        compile(move |io: &[Tensor]| Ok::<_, Error>(vec![io[0].matmul(&wc)?.relu().sum(&[1], false)?]));
    for (rows, seed) in [(4, 1), (7, 2), (4, 3), (7, 4)] {
        let x = data(&[rows, 3], seed);
        let out = f.call(std::slice::from_ref(&x)).unwrap();
        let want = x.matmul(&w).unwrap().relu().sum(&[1], false).unwrap();
        assert_eq!(out[0].shape(), &[rows]);
        assert_close(&out[0].to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-6, 1e-5);
    }
    assert_eq!(f.trace_count(), 2);
    assert_eq!(f.programs().count(), 2);
}

#[test]
fn momentum_buffers_are_state_updated_in_place() {
    // SGD with momentum: v = 0.9 v + g; w = w - 0.1 v, both written back each call
    let (lr, mu) = (0.1, 0.9);
    let make = || (Var::new("w", &data(&[4, 2], 8)), Tensor::zeros(&[4, 2], DType::F32).unwrap());
    let (w_e, v_e) = make();
    let (w_c, v_c) = make();
    let (w, v) = (w_c.clone(), v_c.clone());
    let loss_of = |w: &Tensor, x: &Tensor| Ok::<_, Error>(x.matmul(w)?.tanh().square().mean_all());
    let mut f = compile(move |io: &[Tensor]| {
        let loss = loss_of(&w, &io[0])?;
        let g = grad(std::slice::from_ref(&loss), &[w.tensor().clone()], false)?.remove(0);
        let v_new = v.mul_scalar(mu).add(&g)?;
        let w_new = w.sub(&v_new.mul_scalar(lr))?;
        v.assign(&v_new)?;
        w.set(&w_new)?;
        Ok::<_, Error>(loss)
    });
    let mut v_eager = v_e.clone();
    for seed in 0..4 {
        let x = data(&[5, 4], 20 + seed);
        let loss = loss_of(&w_e, &x).unwrap();
        let g = grad(std::slice::from_ref(&loss), &[w_e.tensor().clone()], false).unwrap().remove(0);
        no_grad(|| {
            v_eager = v_eager.mul_scalar(mu).add(&g).unwrap();
            w_e.set(&w_e.sub(&v_eager.mul_scalar(lr)).unwrap()).unwrap();
        });
        let out = f.call(&[x]).unwrap();
        assert_close(&out[0].to_vec::<f32>().unwrap(), &loss.to_vec::<f32>().unwrap(), 1e-6, 1e-5);
        assert_close(&w_c.to_vec::<f32>().unwrap(), &w_e.to_vec::<f32>().unwrap(), 1e-6, 1e-5);
        assert_close(&v_c.to_vec::<f32>().unwrap(), &v_eager.to_vec::<f32>().unwrap(), 1e-6, 1e-5);
    }
    let p = f.programs().next().unwrap();
    assert_eq!(p.memory_plan().inplace_updates, 2, "{}", p.log());
}

#[test]
fn log_and_dot_describe_the_program() {
    let w = Var::new("w", &data(&[3, 4], 9));
    let b = Var::new("b", &data(&[4], 10));
    let (wc, bc) = (w.clone(), b.clone());
    let mut f = compile(move |io: &[Tensor]| {
        let loss = io[0].matmul(&wc)?.add(&bc)?.tanh().square().mean_all();
        let g = grad(std::slice::from_ref(&loss), &[wc.tensor().clone(), bc.tensor().clone()], false)?;
        wc.set(&wc.sub(&g[0].mul_scalar(0.1))?)?;
        bc.set(&bc.sub(&g[1])?)?;
        Ok::<_, Error>(loss)
    });
    let x = data(&[2, 3], 11);
    f.call(std::slice::from_ref(&x)).unwrap();
    let p = f.program(&[x]).unwrap();
    let log = p.log();
    for pass in
        ["trace:", "dce:", "simplify:", "fold:", "cse:", "epilogue:", "fuse:", "plan_memory:", "memory:"]
    {
        assert!(log.contains(pass), "missing {pass} in\n{log}");
    }
    let fuse = p.reports().iter().find(|r| r.name == "fuse").unwrap();
    assert!(fuse.nodes_after < fuse.nodes_before, "{log}");
    assert!(log.contains(&format!("fuse: {} -> {} nodes", fuse.nodes_before, fuse.nodes_after)));
    let dot = p.to_dot();
    assert!(dot.starts_with("digraph graphgrad {") && dot.trim_end().ends_with('}'));
    assert!(dot.contains("fused(") && dot.contains("matmul+bias") && dot.contains("->"), "{dot}");
    assert!(dot.contains("update param0") && dot.contains("output 0"), "{dot}");
    assert_eq!(dot.matches(" -> ").count(), p.graph().g.edge_count() + 3, "edges + 1 output + 2 updates");
}

#[test]
fn index_lists_are_refused_unless_declared_constant() {
    // Labels as an index list would be frozen into the program: refused at trace time.
    let labels = vec![2usize, 0, 1];
    let mut f = compile(|io: &[Tensor]| Ok::<_, Error>(vec![io[0].gather(1, &labels, Some(&[3, 1]))?]));
    let err = f.call(&[data(&[3, 4], 1)]).unwrap_err().to_string();
    assert!(err.contains("gather") && err.contains("i64 tensor input"), "{err}");
    // Declared constant, the same list compiles, replays on new data, and matches eager.
    let mut g = compile(|io: &[Tensor]| {
        Ok::<_, Error>(vec![constant_indices(|| io[0].gather(1, &labels, Some(&[3, 1])))?.square()])
    });
    for seed in [1, 2] {
        let x = data(&[3, 4], seed);
        let eager = x.gather(1, &labels, Some(&[3, 1])).unwrap().square();
        assert_eq!(g.call(&[x]).unwrap()[0].to_vec::<f32>().unwrap(), eager.to_vec::<f32>().unwrap());
    }
}

#[test]
fn compiled_dropout_draws_the_eager_masks_and_eval_mode_is_the_identity() {
    // The same seed eagerly and compiled: every call draws a new mask, the same as eager's.
    let (eager, traced) = (Generator::new(1), Generator::new(1));
    let mut f = compile(|io: &[Tensor]| io[0].dropout(0.5, true, &traced));
    let x = Tensor::ones(&[64], DType::F32).unwrap();
    let mut masks = Vec::new();
    for _ in 0..3 {
        let want = x.dropout(0.5, true, &eager).unwrap().to_vec::<f32>().unwrap();
        let got = f.call(std::slice::from_ref(&x)).unwrap()[0].to_vec::<f32>().unwrap();
        assert_eq!(got, want);
        assert!(got.iter().all(|&v| v == 0.0 || v == 2.0));
        masks.push(got);
    }
    assert!(masks[0] != masks[1] && masks[1] != masks[2], "a fresh mask per call");
    assert_eq!(f.trace_count(), 1);
    let mut g = compile(|io: &[Tensor]| io[0].dropout(0.5, false, &traced));
    assert_eq!(
        g.call(&[data(&[4], 1)]).unwrap()[0].to_vec::<f32>().unwrap(),
        data(&[4], 1).to_vec::<f32>().unwrap()
    );
}

#[test]
fn mismatched_inputs_and_parameters_as_inputs_are_errors() {
    let w = Var::new("w", &data(&[2], 1));
    let wc = w.clone();
    let mut f = compile(move |io: &[Tensor]| Ok::<_, Error>(vec![io[0].mul(&wc)?]));
    f.call(&[data(&[2], 2)]).unwrap();
    let mut p = Program::trace(
        &mut |io: &[Tensor]| Ok::<_, Error>(vec![io[0].exp()]),
        &[data(&[2], 2)],
        &CompileOptions::default(),
    )
    .unwrap();
    let err = p.run(&[data(&[3], 2)]).unwrap_err().to_string();
    assert!(err.contains("signature"), "{err}");
    let err = f.call(&[w.tensor().clone()]).unwrap_err().to_string();
    assert!(err.contains("parameter"), "{err}");
    // the parameter is intact after the refused call
    assert_eq!(w.to_vec::<f32>().unwrap(), data(&[2], 1).to_vec::<f32>().unwrap());
}

#[test]
fn silu_log_sigmoid_and_hardtanh_fuse_with_their_backward() {
    // y = Σ hardtanh(log_sigmoid(silu(x))·w) and dy/dw, dy/dx: the forward and backward chains
    // become fused kernels, and every value equals the eager step's.
    let w = Var::new("w", &data(&[4096], 7));
    let step = {
        let w = w.clone();
        move |io: &[Tensor]| {
            let h = io[0].silu().log_sigmoid().mul(&w)?.hardtanh(-0.5, 0.25)?;
            let y = h.sum_all();
            let g = grad(std::slice::from_ref(&y), &[io[0].clone(), w.tensor().clone()], false)?;
            Ok::<_, Error>(vec![y, g[0].clone(), g[1].clone()])
        }
    };
    let x = data(&[4096], 8).requires_grad_();
    let eager = step(std::slice::from_ref(&x)).unwrap();
    let mut f = compile_with(step, only(CompileOptions::default()));
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    for (got, want) in out.iter().zip(&eager) {
        assert_close(&got.to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    }
    let p = f.program(std::slice::from_ref(&x)).unwrap();
    let ops: Vec<String> = p.graph().g.node_weights().map(|n| n.op.to_string()).collect();
    assert!(
        ops.iter()
            .all(|o| !o.starts_with("silu") && !o.starts_with("log_sigmoid") && !o.starts_with("hardtanh")),
        "unfused: {ops:?}"
    );
    assert!(ops.iter().filter(|o| o.starts_with("fused")).count() <= 3, "{ops:?}\n{}", p.log());
}

#[test]
fn second_derivatives_through_max_pooling_compile_and_match_eager() {
    // y = Σ (dL/dx)² with L = Σ tanh(maxpool(x))·c: the backward of the pool's backward is
    // the gather at its indices, so the compiled double backward equals the eager one, and
    // a new input (other winners) gives new indices rather than the traced ones.
    let c = data(&[2, 3, 3, 3], 11);
    let step = move |io: &[Tensor]| {
        let x = &io[0];
        let loss = x.max_pool2d((2, 2), (2, 2), (0, 0))?.tanh().mul(&c)?.sum_all();
        let dx = grad(std::slice::from_ref(&loss), std::slice::from_ref(x), true)?.remove(0);
        let y = dx.square().sum_all();
        let ddx = grad(std::slice::from_ref(&y), std::slice::from_ref(x), false)?.remove(0);
        Ok::<_, Error>(vec![y, ddx])
    };
    let mut f = compile_with(step.clone(), only(CompileOptions::default()));
    for seed in [12, 13] {
        let x = data(&[2, 3, 6, 6], seed).requires_grad_();
        let eager = step(std::slice::from_ref(&x)).unwrap();
        let out = f.call(std::slice::from_ref(&x)).unwrap();
        for (got, want) in out.iter().zip(&eager) {
            assert_close(&got.to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-5, 1e-5);
        }
        assert!(
            eager[1].to_vec::<f32>().unwrap().iter().any(|&v| v != 0.0),
            "the second derivative is not zero"
        );
    }
    assert_eq!(f.trace_count(), 1);
}

#[test]
fn the_remat_policy_recomputes_cheap_values_and_keeps_the_results() {
    // y = relu(h) is read by the backward pass of y·h, and so is h: the policy recomputes y
    // from h next to its backward reader instead of keeping it, with the same numbers.
    let w = Var::new("w", &data(&[8, 16], 30));
    let step = |remat: bool| {
        let w = w.clone();
        let options = CompileOptions { remat, ..CompileOptions::default() };
        compile_with(
            move |io: &[Tensor]| -> Result<Vec<Tensor>> {
                let h = io[0].matmul(&w)?;
                let loss = h.relu().mul(&h)?.mean_all();
                let g = grad(std::slice::from_ref(&loss), &[w.tensor().clone()], false)?.remove(0);
                Ok(vec![loss, g])
            },
            options,
        )
    };
    let x = data(&[32, 8], 31);
    let (mut on, mut off) = (step(true), step(false));
    let a = on.call(std::slice::from_ref(&x)).unwrap();
    let b = off.call(std::slice::from_ref(&x)).unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert_close(&a.to_vec::<f32>().unwrap(), &b.to_vec::<f32>().unwrap(), 1e-6, 1e-5);
    }
    let with = on.programs().next().unwrap();
    assert!(with.log().contains("remat: 1 nodes recomputed"), "{}", with.log());
    assert!(off.programs().next().unwrap().peak_bytes_without_remat().is_none());
    assert!(with.memory_plan().peak_bytes <= with.peak_bytes_without_remat().unwrap());
}

#[test]
fn gradients_of_side_by_side_slices_join_into_one_cat() {
    // a value read in slices (an LSTM's input projection, one time step at a time): the
    // gradient is a sum of zero-padded pieces, which simplify joins into one cat and one pad
    let x = data(&[3, 11], 21);
    let weights: Vec<Tensor> = (0..4).map(|k| data(&[3, 2], 30 + k)).collect();
    let step = |io: &[Tensor], weights: &[Tensor]| -> Result<Vec<Tensor>> {
        let x = io[0].requires_grad_();
        // columns 1..9 in four slices of two, read in a shuffled order; 0 and 9..11 unread
        let mut loss = x.narrow(1, 5, 2)?.mul(&weights[2])?.tanh().sum_all();
        for (k, start) in [(0, 1), (3, 7), (1, 3)] {
            loss = loss.add(&x.narrow(1, start, 2)?.mul(&weights[k])?.square().sum_all())?;
        }
        grad(&[loss], &[x], false)
    };
    let eager = step(std::slice::from_ref(&x), &weights).unwrap();
    let options = only(CompileOptions { simplify: true, ..CompileOptions::unoptimized() });
    let w = weights.clone();
    let mut f = compile_with(move |io: &[Tensor]| step(io, &w), options);
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    assert_close(&out[0].to_vec::<f32>().unwrap(), &eager[0].to_vec::<f32>().unwrap(), 1e-6, 1e-6);
    let columns = out[0].to_vec::<f32>().unwrap();
    assert!((0..3).all(|r| [0, 9, 10].iter().all(|&c| columns[r * 11 + c] == 0.0)));
    let p = f.program(std::slice::from_ref(&x)).unwrap();
    let dot = p.to_dot();
    assert_eq!(dot.matches("cat").count(), 1, "{}", p.log());
    assert_eq!(dot.matches("pad").count(), 1, "{dot}");
}

#[test]
fn a_bias_added_after_a_reshape_fuses_into_the_matmul() {
    // a Linear on [batch, time, in]: [batch·time, in]·Wᵀ reshaped back, then the bias
    let x = data(&[4, 5, 3], 40);
    let w = Var::new("w", &data(&[6, 3], 41));
    let b = Var::new("b", &data(&[6], 42));
    let step = |x: &Tensor, w: &Var, b: &Var| -> Result<Vec<Tensor>> {
        let y = x.matmul_with(w, false, true)?.add(b)?.tanh();
        let loss = y.square().mean_all();
        let g = grad(std::slice::from_ref(&loss), &[w.tensor().clone(), b.tensor().clone()], false)?;
        Ok(vec![y, g[0].clone(), g[1].clone()])
    };
    let eager = step(&x, &w, &b).unwrap();
    let (wc, bc) = (w.clone(), b.clone());
    let mut f = compile(move |io: &[Tensor]| step(&io[0], &wc, &bc));
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    for (got, want) in out.iter().zip(&eager) {
        assert_eq!(got.shape(), want.shape());
        assert_close(&got.to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    }
    let p = f.program(std::slice::from_ref(&x)).unwrap();
    let dot = p.to_dot();
    assert!(dot.contains("+bias"), "{dot}");
}

#[test]
fn matrix_products_read_transposes_in_place() {
    // x·wᵀ, xᵀ·u and a batched a·bᵀ, with the weight's gradient: values as eager, and no
    // transposed copy left in the program
    let (x, u, a, b) = (data(&[3, 4], 70), data(&[3, 6], 71), data(&[2, 3, 4], 72), data(&[2, 5, 4], 73));
    let w = Var::new("w", &data(&[5, 4], 74));
    let step = |io: &[Tensor], w: &Var| -> Result<Vec<Tensor>> {
        let y = io[0].matmul(&w.t()?)?;
        let z = io[0].t()?.matmul(&io[1])?;
        let c = io[2].matmul(&io[3].transpose(1, 2)?)?;
        let loss = y.tanh().sum_all().add(&z.square().sum_all())?.add(&c.sum_all())?;
        let g = grad(std::slice::from_ref(&loss), &[w.tensor().clone()], false)?;
        Ok(vec![y, z, c, g[0].clone()])
    };
    let inputs = [x, u, a, b];
    let eager = step(&inputs, &w).unwrap();
    let wc = w.clone();
    let mut f = compile(move |io: &[Tensor]| step(io, &wc));
    let out = f.call(&inputs).unwrap();
    for (got, want) in out.iter().zip(&eager) {
        assert_eq!(got.shape(), want.shape());
        assert_close(&got.to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    }
    let p = f.program(&inputs).unwrap();
    let ops: Vec<String> = p.graph().g.node_weights().map(|n| n.op.to_string()).collect();
    assert!(!ops.iter().any(|op| op.starts_with("permute")), "{}", p.log());
}

#[test]
fn convolutions_apply_their_bias_and_activation_in_one_pass() {
    // conv + bias + relu and conv + bias + tanh (both backward passes read the activation's
    // output, so the pre-activation is read by the activation alone and fuses), trained: the
    // eager values, with no separate bias add or activation left
    let x = data(&[3, 2, 9, 7], 80);
    let params: Vec<Var> = [(&[4, 2, 3, 3][..], 81), (&[4], 82), (&[5, 4, 3, 3], 83), (&[5], 84)]
        .iter()
        .map(|&(shape, seed)| Var::new("p", &data(shape, seed)))
        .collect();
    let step = |x: &Tensor, p: &[Var]| -> Result<Vec<Tensor>> {
        let padded = ConvOptions::default().padding(1);
        let h = x.conv2d(&p[0], Some(&p[1]), padded)?.relu();
        let y = h.conv2d(&p[2], Some(&p[3]), ConvOptions::default().stride(2))?.tanh();
        let loss = y.square().mean_all();
        let leaves: Vec<Tensor> = p.iter().map(|v| v.tensor().clone()).collect();
        let mut out = vec![y];
        out.extend(grad(std::slice::from_ref(&loss), &leaves, false)?);
        Ok(out)
    };
    let eager = step(&x, &params).unwrap();
    let pc = params.clone();
    let mut f = compile(move |io: &[Tensor]| step(&io[0], &pc));
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    for (got, want) in out.iter().zip(&eager) {
        assert_eq!(got.shape(), want.shape());
        assert_close(&got.to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    }
    let p = f.program(std::slice::from_ref(&x)).unwrap();
    let ops: Vec<String> = p.graph().g.node_weights().map(|n| n.op.to_string()).collect();
    for fused in ["conv2d+bias+Relu", "conv2d+bias+Tanh"] {
        assert_eq!(ops.iter().filter(|op| *op == fused).count(), 1, "{ops:?}");
    }
    assert!(!ops.iter().any(|op| op == "relu" || op == "tanh" || op == "add"), "{ops:?}");
}

#[test]
fn a_weight_gradient_summed_over_time_steps_is_one_product() {
    // one weight applied at every time step (an RNN): its gradient Σₜ xₜᵀ·gₜ becomes one GEMM
    // over the joined steps
    const STEPS: usize = 5;
    let xs: Vec<Tensor> = (0..STEPS as u64).map(|t| data(&[3, 4], 50 + t)).collect();
    let w = Var::new("w", &data(&[4, 2], 60));
    let step = |xs: &[Tensor], w: &Var| -> Result<Vec<Tensor>> {
        let mut loss = xs[0].matmul(w)?.tanh().square().sum_all();
        for x in &xs[1..] {
            loss = loss.add(&x.matmul(w)?.tanh().square().sum_all())?;
        }
        grad(&[loss], &[w.tensor().clone()], false)
    };
    let eager = step(&xs, &w).unwrap();
    let wc = w.clone();
    let mut f = compile(move |io: &[Tensor]| step(io, &wc));
    let out = f.call(&xs).unwrap();
    assert_close(&out[0].to_vec::<f32>().unwrap(), &eager[0].to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    let dot = f.program(&xs).unwrap().to_dot();
    assert_eq!(dot.matches("matmul").count(), STEPS + 1, "{dot}");
}

#[test]
fn a_large_column_sum_fused_with_its_elementwise_producer_matches_a_loop() {
    // the bias gradient of a [16·64, 512] activation: a partial reduction over many chunks
    let (rows, cols) = (16 * 64 + 3, 509);
    let a = data(&[rows, cols], 70);
    let b = data(&[rows, cols], 71);
    let mut f = compile(|io: &[Tensor]| {
        let prod = io[0].mul(&io[1])?.gelu();
        Ok::<_, Error>(vec![prod.sum(&[0], true)?, prod.max(&[1], false)?])
    });
    let out = f.call(&[a.clone(), b.clone()]).unwrap();
    let (av, bv) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let gelu = |x: f64| 0.5 * x * (1.0 + graphgrad_ops::math::erf_f64(x / std::f64::consts::SQRT_2));
    let value = |i: usize| gelu(av[i] as f64 * bv[i] as f64);
    let sums: Vec<f64> = (0..cols).map(|c| (0..rows).map(|r| value(r * cols + c)).sum()).collect();
    let maxes: Vec<f64> =
        (0..rows).map(|r| (0..cols).map(|c| value(r * cols + c)).fold(f64::NEG_INFINITY, f64::max)).collect();
    assert_eq!(out[0].shape(), &[1, cols]);
    let got: Vec<f64> = out[0].to_vec::<f32>().unwrap().iter().map(|&v| v as f64).collect();
    graphgrad_ops::testing::assert_close(&got, &sums, 1e-3, 1e-4);
    let got: Vec<f64> = out[1].to_vec::<f32>().unwrap().iter().map(|&v| v as f64).collect();
    graphgrad_ops::testing::assert_close(&got, &maxes, 1e-5, 1e-5);
}

#[test]
fn scalar_ops_folded_into_their_producers_round_as_eager_ones() {
    // Chains of mul_scalar / add_scalar after loads (one broadcast), unary and binary ops and a
    // select, some with values read twice (which stop the folding) and some stored as outputs.
    let step = |io: &[Tensor]| -> Result<Vec<Tensor>> {
        let (x, row) = (&io[0], &io[1]);
        let a = x.mul_scalar(3.0).add_scalar(1.0); // folded into the load of x
        let b = a.mul_scalar(0.5).add_scalar(2.0); // a is read twice: not folded into a's step
        let c = a.mul(&b)?.add_scalar(-0.25).mul_scalar(4.0).add_scalar(0.125);
        let d = row.expand(x.shape())?.mul_scalar(2.0).add(x)?.relu().mul_scalar(-1.5); // broadcast load
        let e = Tensor::where_(&x.gt_scalar(0.0), &c, &d)?.add_scalar(1.0).mul_scalar(0.75);
        let f = e.tanh().mul_scalar(2.0).add_scalar(-1.0).square().add_scalar(0.5);
        Ok(vec![a, c.clone(), e, f.clone(), f.sum_all()])
    };
    let x = data(&[37, 1029], 80);
    let row = data(&[1, 1029], 81);
    let inputs = [x, row];
    let mut f = compile(step);
    let out = f.call(&inputs).unwrap();
    let eager = step(&inputs).unwrap();
    for (got, want) in out.iter().zip(&eager).take(4) {
        assert_eq!(got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    }
    assert_close(&out[4].to_vec::<f32>().unwrap(), &eager[4].to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    let p = f.programs().next().unwrap();
    assert_eq!(p.node_count(), 3, "{}", p.log());
}

/// An LSTM-like step: each time step's slice of a projected sequence, cut into four gates.
fn gates_step(x: &Tensor) -> Result<Vec<Tensor>> {
    let mut h = Tensor::zeros(&[6, 10], DType::F32)?;
    for t in 0..4 {
        let z = x.narrow(1, t, 1)?.reshape(&[6, 40])?;
        let gate = |k: usize| z.narrow(-1, k * 10, 10)?.add(&h);
        h = gate(0)?.sigmoid().mul(&gate(1)?.tanh())?.add(&gate(2)?.mul(&gate(3)?)?)?;
    }
    Ok(vec![h])
}

#[test]
fn fused_kernels_read_slices_where_they_lie() {
    let mut f = compile_with(|io: &[Tensor]| gates_step(&io[0]), only(CompileOptions::default()));
    let x = data(&[6, 4, 40], 3);
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    let eager = gates_step(&x).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), eager[0].to_vec::<f32>().unwrap());
    let p = f.programs().next().unwrap();
    // the time-step slices and the gates are read by the kernels, never copied
    let ops: Vec<String> = p.graph().g.node_weights().map(|n| n.op.to_string()).collect();
    assert!(!ops.iter().any(|op| op.starts_with("narrow")), "{}", p.log());
}

/// Max pooling with overlapping windows and padding, forward and backward.
fn pool_step(x: &Tensor) -> Result<Vec<Tensor>> {
    let y = x.max_pool2d(3, 2, 1)?;
    let loss = y.mul(&y)?.sum_all();
    let dx = grad(std::slice::from_ref(&loss), std::slice::from_ref(x), false)?.remove(0);
    Ok(vec![y, dx])
}

#[test]
fn max_pooling_finds_values_and_indices_in_one_pass() {
    let mut f = compile_with(|io: &[Tensor]| pool_step(&io[0]), only(CompileOptions::default()));
    let x = data(&[2, 3, 9, 8], 4).requires_grad_();
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    let eager = pool_step(&x).unwrap();
    for (o, e) in out.iter().zip(&eager) {
        assert_eq!(o.to_vec::<f32>().unwrap(), e.to_vec::<f32>().unwrap());
    }
    let p = f.programs().next().unwrap();
    let ops: Vec<String> = p.graph().g.node_weights().map(|n| n.op.to_string()).collect();
    assert_eq!(ops.iter().filter(|op| *op == "max_pool2d+indices").count(), 1, "{}", p.log());
    assert!(!ops.iter().any(|op| op == "max_pool2d_indices" || op == "max_pool2d"), "{ops:?}");
}

/// Two ReLU convolutions, each behind a max pool: 2×2 windows over a plane of odd width (its
/// last column in no window), and overlapping 3×3 windows with stride 2.
fn relu_pool_step(x: &Tensor, p: &[Var]) -> Result<Vec<Tensor>> {
    let padded = ConvOptions::default().padding(1);
    let h1 = x.conv2d(&p[0], Some(&p[1]), padded)?.relu().max_pool2d(2, 2, 0)?;
    let h2 = x.conv2d(&p[2], Some(&p[3]), padded)?.relu().max_pool2d(3, 2, 1)?;
    let loss = h1.square().sum_all().add(&h2.mul_scalar(0.5).sum_all())?;
    let mut leaves: Vec<Tensor> = p.iter().map(|v| v.tensor().clone()).collect();
    leaves.push(x.clone());
    grad(std::slice::from_ref(&loss), &leaves, false)
}

#[test]
fn relu_masks_behind_disjoint_max_pools_run_over_the_pooled_values() {
    let x = data(&[2, 3, 10, 9], 90).requires_grad_();
    let params: Vec<Var> = [(&[4, 3, 3, 3][..], 91), (&[4], 92), (&[2, 3, 3, 3], 93), (&[2], 94)]
        .iter()
        .map(|&(shape, seed)| Var::new("p", &data(shape, seed)))
        .collect();
    let eager = relu_pool_step(&x, &params).unwrap();
    let pc = params.clone();
    let mut f =
        compile_with(move |io: &[Tensor]| relu_pool_step(&io[0], &pc), only(CompileOptions::default()));
    let out = f.call(std::slice::from_ref(&x)).unwrap();
    // the same values (a zero's sign aside, which == ignores): x's, the weights' and the
    // biases' gradients
    for (o, e) in out.iter().zip(&eager) {
        assert_eq!(o.to_vec::<f32>().unwrap(), e.to_vec::<f32>().unwrap());
    }
    // the 2×2 pool's mask runs over its [2, 4, 5, 4] output; the overlapping pool's, whose
    // cells may win several windows, over its [2, 2, 10, 9] input
    use graphgrad_autodiff::compile::{ir::IrOp, kernel::Instr};
    let p = f.programs().next().unwrap();
    let compares = |op: &IrOp| matches!(op, IrOp::Fused(k) if k.instrs.iter().any(|i| matches!(i, Instr::Binary(BinaryOp::Gt, ..))));
    let mut masks: Vec<Vec<usize>> =
        p.graph().g.node_weights().filter(|n| compares(&n.op)).map(|n| n.outs[0].shape.to_vec()).collect();
    masks.sort();
    assert_eq!(masks, [vec![2, 2, 10, 9], vec![2, 4, 5, 4]], "{}", p.log());
}

/// Two steps of an LSTM cell: the gates are slices of one pre-activation `x_t + h·W`.
fn lstm_cells_step(io: &[Tensor], w: &Tensor) -> Result<Vec<Tensor>> {
    let (x, h0) = (io[0].requires_grad_(), io[1].requires_grad_());
    let (mut h, mut c) = (h0.clone(), io[2].clone());
    let w = w.requires_grad_();
    for t in 0..2 {
        let z = x.narrow(1, t, 1)?.reshape(&[6, 40])?.add(&h.matmul(&w)?)?;
        let gate = |k: usize| z.narrow(1, k * 10, 10);
        let (i, f, g, o) = (gate(0)?.sigmoid(), gate(1)?.sigmoid(), gate(2)?.tanh(), gate(3)?.sigmoid());
        c = f.mul(&c)?.add(&i.mul(&g)?)?;
        h = o.mul(&c.tanh())?;
    }
    let loss = h.square().sum_all().add(&c.sum_all())?;
    let mut out = grad(std::slice::from_ref(&loss), &[x, h0, w], false)?;
    out.insert(0, loss);
    Ok(out)
}

#[test]
fn lstm_gates_fuse_their_pre_activation_and_leave_derivatives_to_the_backward_kernels() {
    use graphgrad_autodiff::compile::ir::IrOp;
    use graphgrad_autodiff::compile::kernel::{FusedKernel, Instr};
    use graphgrad_ops::unary::UnaryOp;
    let w = data(&[10, 40], 51);
    let io = [data(&[6, 2, 40], 52), data(&[6, 10], 53), data(&[6, 10], 54)];
    let eager = lstm_cells_step(&io, &w).unwrap();
    let w2 = w.clone();
    let mut f = compile_with(move |io: &[Tensor]| lstm_cells_step(io, &w2), only(CompileOptions::default()));
    let out = f.call(&io).unwrap();
    for (o, e) in out.iter().zip(&eager) {
        assert_close(&o.to_vec::<f32>().unwrap(), &e.to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    }
    let p = f.programs().next().unwrap();
    let kernels: Vec<_> = p
        .graph()
        .g
        .node_weights()
        .filter_map(|n| match &n.op {
            IrOp::Fused(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    let has =
        |k: &FusedKernel, op: UnaryOp| k.instrs.iter().any(|i| matches!(i, Instr::Unary(u, _) if *u == op));
    // each sum x_t + h·W is computed gate by gate inside the kernels that apply the gates
    assert!(kernels.iter().all(|k| k.shape.as_slice() != [6, 40]), "{}", p.log());
    // the first step's gates kernel stores its activations and c, h; σ' and tanh' are
    // computed by the backward kernel that reads them (the second step's forward and
    // backward, nothing recurrent between them, may be one kernel)
    let first = kernels
        .iter()
        .find(|k| has(k, UnaryOp::Sigmoid) && !has(k, UnaryOp::SigmoidGrad) && !has(k, UnaryOp::TanhGrad));
    let first = first.unwrap_or_else(|| panic!("no gates kernel without derivatives: {}", p.log()));
    assert!(first.outputs.len() <= 6, "{} outputs: {:?}", first.outputs.len(), first.instrs);
}

#[test]
fn slices_of_a_broadcast_op_read_each_operand_at_its_own_shape() {
    // z = a·column[6, 1] + bias[40] cut into four slices of 10: the last op (the bias add) is
    // computed slice by slice, the bias read in slices, the product a·column kept whole
    let step = |io: &[Tensor]| -> Result<Vec<Tensor>> {
        let z = io[0].mul(&io[2])?.add(&io[1])?;
        let slices: Vec<Tensor> =
            (0..4).map(|k| Ok(z.narrow(1, k * 10, 10)?.tanh())).collect::<Result<_>>()?;
        Ok(vec![Tensor::cat(&slices, 0)?])
    };
    let io = [data(&[6, 40], 61), data(&[40], 62), data(&[6, 1], 63)];
    let eager = step(&io).unwrap();
    let mut f = compile_with(step, only(CompileOptions::default()));
    let out = f.call(&io).unwrap();
    assert_eq!(out[0].shape(), &[24, 10]);
    assert_eq!(out[0].to_vec::<f32>().unwrap(), eager[0].to_vec::<f32>().unwrap());
    let p = f.programs().next().unwrap();
    use graphgrad_autodiff::compile::kernel::Instr;
    use graphgrad_ops::binary::BinaryOp;
    let kernels: Vec<(Vec<usize>, bool)> = p
        .graph()
        .g
        .node_weights()
        .filter_map(|n| match &n.op {
            graphgrad_autodiff::compile::ir::IrOp::Fused(k) => {
                let adds = k.instrs.iter().any(|i| matches!(i, Instr::Binary(BinaryOp::Add, ..)));
                Some((k.shape.to_vec(), adds))
            }
            _ => None,
        })
        .collect();
    // the product over [6, 40] without the add; four kernels over [6, 10] that add a slice of
    // the bias and apply tanh
    let mut expected = vec![(vec![6, 10], true); 4];
    expected.push((vec![6, 40], false));
    let mut found = kernels.clone();
    found.sort();
    expected.sort();
    assert_eq!(found, expected, "{}", p.log());
    let ops: Vec<String> = p.graph().g.node_weights().map(|n| n.op.to_string()).collect();
    assert!(!ops.iter().any(|op| op.starts_with("narrow")), "{ops:?}");
}

/// A GELU feed-forward block on a [batch, seq, width] input, as a transformer runs it: the
/// matmuls see their operands through reshapes. With a third input, a constant head ([16, n])
/// after it. Loss and weight gradients.
fn gelu_block(io: &[Tensor], w1: &Tensor, w2: &Tensor) -> Result<Vec<Tensor>> {
    let h = io[0].reshape(&[32, 16])?.matmul(w1)?.add(&io[1])?.reshape(&[4, 8, 64])?.gelu();
    let mut y = h.reshape(&[32, 64])?.matmul(w2)?;
    if let Some(head) = io.get(2) {
        y = y.matmul(head)?;
    }
    let loss = y.square().mean_all();
    let mut out = grad(std::slice::from_ref(&loss), &[w1.clone(), w2.clone()], false)?;
    out.insert(0, loss);
    Ok(out)
}

#[test]
fn values_read_through_a_reshape_are_overwritten_in_place_and_slots_pack_to_the_live_peak() {
    use graphgrad_autodiff::compile::ir::{IrOp, Value};
    use graphgrad_autodiff::compile::memory::Place;
    let (w1, w2) = (Var::new("w1", &data(&[16, 64], 71)), Var::new("w2", &data(&[64, 16], 72)));
    let io = [data(&[4, 8, 16], 73), data(&[64], 74)];
    let (t1, t2) = (w1.tensor().clone(), w2.tensor().clone());
    let eager = gelu_block(&io, &t1, &t2).unwrap();
    let mut f = compile_with(move |io: &[Tensor]| gelu_block(io, &t1, &t2), only(CompileOptions::default()));
    let out = f.call(&io).unwrap();
    for (o, e) in out.iter().zip(&eager) {
        assert_close(&o.to_vec::<f32>().unwrap(), &e.to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    }
    let p = f.programs().next().unwrap();
    let (g, plan) = (p.graph(), p.memory_plan());
    // GELU's backward kernel, over [4, 8, 64], writes dh over one of the products ([32, 64])
    // it reads through a reshape and that die there
    let overwrites_product = plan.order.iter().any(|&n| {
        let IrOp::Fused(k) = &g.g[n].op else { return false };
        let Some(Place::Slot(mine)) = plan.places.get(&Value::of(n)) else { return false };
        k.shape.as_slice() == [4, 8, 64]
            && g.inputs(n).iter().any(|&u| {
                let mut r = u;
                while let IrOp::Op(op) = &g.g[r.node].op {
                    if !op.is_view() {
                        break;
                    }
                    r = g.inputs(r.node)[0];
                }
                g.info(r).shape.as_slice() == [32, 64] && plan.places.get(&r) == Some(&Place::Slot(*mine))
            })
    });
    assert!(overwrites_product, "{}", p.log());
    assert_packed_to_the_live_peak(p);
}

/// Every slot is needed at once: the arena is the largest sum of bytes live at one tick.
fn assert_packed_to_the_live_peak(p: &Program) {
    let plan = p.memory_plan();
    let live_at =
        |t: usize| plan.lifetimes.iter().filter(|l| l.start <= t && t <= l.end).map(|l| l.bytes).sum();
    let peak: usize = plan.lifetimes.iter().map(|l| live_at(l.start)).max().unwrap();
    assert_eq!(plan.peak_bytes, peak, "{}", p.log());
}

/// The fused kernels of `p` that compute both `a` and `b` (elementwise op names).
fn kernels_with(p: &Program, a: UnaryOp, b: UnaryOp) -> usize {
    use graphgrad_autodiff::compile::ir::IrOp;
    use graphgrad_autodiff::compile::kernel::Instr;
    let has = |k: &graphgrad_autodiff::compile::kernel::FusedKernel, u: UnaryOp| {
        k.instrs.iter().any(|i| matches!(i, Instr::Unary(op, _) if *op == u))
    };
    p.graph().g.node_weights().filter(|n| matches!(&n.op, IrOp::Fused(k) if has(k, a) && has(k, b))).count()
}

/// `step` compiled with every pass, its first call checked against the eager step's values.
fn compiled_like_eager<F>(mut step: F, io: &[Tensor]) -> Compiled<F>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let eager = step(io).unwrap();
    let mut f = compile_with(step, only(CompileOptions::default()));
    let out = f.call(io).unwrap();
    for (o, e) in out.iter().zip(&eager) {
        assert_close(&o.to_vec::<f32>().unwrap(), &e.to_vec::<f32>().unwrap(), 1e-5, 1e-5);
    }
    f
}

#[test]
fn a_gelu_read_through_a_reshape_is_recomputed_in_its_derivatives_kernel() {
    // Under a wide head, whose backward pass is the step's peak: dW2 reads gelu(h) through a
    // reshape and GELU's derivative reads h, so the derivative's kernel recomputes gelu(h)
    // (one erf for both, where generated) instead of the head's backward keeping it.
    let (w1, w2) = (Var::new("w1", &data(&[16, 64], 81)), Var::new("w2", &data(&[64, 16], 82)));
    let io = [data(&[4, 8, 16], 83), data(&[64], 84), data(&[16, 256], 85)];
    let (t1, t2) = (w1.tensor().clone(), w2.tensor().clone());
    let f = compiled_like_eager(move |io: &[Tensor]| gelu_block(io, &t1, &t2), &io);
    let p = f.programs().next().unwrap();
    // the GELU and the reshape dW2 reads it through, in one kernel with GELU's derivative
    assert!(p.log().contains("remat: 2 nodes recomputed"), "{}", p.log());
    assert_eq!(kernels_with(p, UnaryOp::Gelu, UnaryOp::GeluGrad), 1, "{}", p.log());
    assert!(p.memory_plan().peak_bytes < p.peak_bytes_without_remat().unwrap(), "{}", p.log());
}

/// Layer-norm-like: `y = n·γ + β` (`n` kept for dγ) feeds a product through a reshape, under
/// a wide constant head (as in [`gelu_block`]); beside it, `c2 = tanh(c1)·c1` with
/// `c1 = n·x + β`, all three read by the backward pass.
fn affine_block(io: &[Tensor], w: &Tensor, g: &Tensor, b: &Tensor) -> Result<Vec<Tensor>> {
    let n = io[0].tanh();
    let y = n.mul(g)?.add(b)?;
    let c1 = n.mul(&io[1])?.add(b)?;
    let c2 = c1.tanh().mul(&c1)?;
    let head = y.reshape(&[32, 16])?.matmul(w)?.matmul(&io[2])?;
    let loss = head.square().mean_all().add(&c2.square().mean_all())?;
    let mut out = grad(std::slice::from_ref(&loss), &[w.clone(), g.clone(), b.clone()], false)?;
    out.insert(0, loss);
    Ok(out)
}

#[test]
fn elementwise_chains_from_kept_values_and_parameters_are_recomputed_once() {
    // y = n·γ + β is recomputed from n (which dγ reads) and the parameters, c2 from c1 and
    // tanh(c1); c1 is kept for c2's chain, and recomputing it too would free nothing.
    let w = Var::new("w", &data(&[16, 8], 91));
    let (g, b) = (Var::new("g", &data(&[16], 92)), Var::new("b", &data(&[16], 93)));
    let io = [data(&[4, 8, 16], 94), data(&[4, 8, 16], 95), data(&[8, 256], 96)];
    let (tw, tg, tb) = (w.tensor().clone(), g.tensor().clone(), b.tensor().clone());
    let f = compiled_like_eager(move |io: &[Tensor]| affine_block(io, &tw, &tg, &tb), &io);
    let p = f.programs().next().unwrap();
    // y's add and mul and the reshape its product reads, and c2's mul; not c1 (add, mul),
    // tanh(c1) or n, which other chains recompute from
    assert!(p.log().contains("remat: 4 nodes recomputed"), "{}", p.log());
    assert!(p.memory_plan().peak_bytes < p.peak_bytes_without_remat().unwrap(), "{}", p.log());
}
