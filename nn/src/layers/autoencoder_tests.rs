//! Tests of the autoencoders: plain-loop references, shapes and names, the reparameterisation
//! and the KL term by hand, gradchecks.

use super::*;
use crate::layers::testing::check_module_gradients;
use graphgrad_ops::testing::{assert_close, random_vec};
use rand::SeedableRng;

fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(random_vec::<f64>(shape.iter().product(), seed), shape).unwrap()
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// x·Wᵀ + b row by row.
fn linear_ref(x: &[f64], l: &Linear) -> Vec<f64> {
    let (w, b) = (l.weight.to_f64_vec(), l.bias.as_ref().unwrap().to_f64_vec());
    let (o, i) = (l.out_features(), l.in_features());
    x.chunks(i)
        .flat_map(|r| {
            (0..o).map(|k| b[k] + (0..i).map(|c| w[k * i + c] * r[c]).sum::<f64>()).collect::<Vec<_>>()
        })
        .collect()
}

fn stack_ref(x: &[f64], layers: &[Linear]) -> Vec<f64> {
    let mut x = x.to_vec();
    for (i, l) in layers.iter().enumerate() {
        x = linear_ref(&x, l);
        if i + 1 < layers.len() {
            x.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
    x
}

#[test]
fn dense_autoencoder_matches_reference() {
    let ae = AutoencoderConfig::new(5, &[4, 3], 2)
        .with_output_activation(OutputActivation::Sigmoid)
        .with_dtype(DType::F64)
        .init(&mut rng(1))
        .unwrap();
    let x = rand_t(&[3, 5], 2);
    let code = stack_ref(&x.to_f64_vec(), &ae.encoder);
    assert_close(&ae.encode(&x).unwrap().to_f64_vec(), &code, 1e-12, 1e-10);
    let out: Vec<f64> = stack_ref(&code, &ae.decoder).iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    assert_close(&ae.forward(&x).unwrap().to_f64_vec(), &out, 1e-12, 1e-10);
    let shapes: Vec<(String, Vec<usize>)> =
        ae.named_parameters().into_iter().map(|(n, v)| (n, v.shape().to_vec())).collect();
    let expected = [
        ("encoder.0.weight", vec![4, 5]),
        ("encoder.0.bias", vec![4]),
        ("encoder.1.weight", vec![3, 4]),
        ("encoder.1.bias", vec![3]),
        ("encoder.2.weight", vec![2, 3]),
        ("encoder.2.bias", vec![2]),
        ("decoder.0.weight", vec![3, 2]),
        ("decoder.0.bias", vec![3]),
        ("decoder.1.weight", vec![4, 3]),
        ("decoder.1.bias", vec![4]),
        ("decoder.2.weight", vec![5, 4]),
        ("decoder.2.bias", vec![5]),
    ];
    assert_eq!(shapes, expected.map(|(n, s)| (n.to_string(), s)).to_vec());
    assert!(AutoencoderConfig::new(5, &[0], 2).init(&mut rng(0)).is_err());
    assert!(ae.forward(&rand_t(&[3, 4], 3)).is_err());
}

#[test]
fn gradcheck_dense_autoencoder() {
    let ae = AutoencoderConfig::new(3, &[4], 2).with_dtype(DType::F64).init(&mut rng(2)).unwrap();
    check_module_gradients(&ae, &rand_t(&[2, 3], 4));
}

#[test]
fn conv_autoencoder_composes_its_layers_and_restores_the_shape() {
    let ae = ConvAutoencoderConfig::new(2, &[3, 4]).with_dtype(DType::F64).init(&mut rng(3)).unwrap();
    let x = rand_t(&[2, 2, 8, 4], 5);
    let code = ae.encode(&x).unwrap();
    assert_eq!(code.shape(), &[2, 4, 2, 1]);
    // the same computation spelled out with the layers' own ops
    let h =
        x.conv2d(&ae.encoder[0].weight, ae.encoder[0].bias.as_deref(), ae.encoder[0].options).unwrap().relu();
    assert_eq!(h.shape(), &[2, 3, 4, 2], "stride 2, padding 1, kernel 3 halves H and W");
    let h =
        h.conv2d(&ae.encoder[1].weight, ae.encoder[1].bias.as_deref(), ae.encoder[1].options).unwrap().relu();
    assert_close(&code.to_f64_vec(), &h.to_f64_vec(), 0.0, 0.0);
    let d = &ae.decoder;
    let y = h.conv_transpose2d(&d[0].weight, d[0].bias.as_deref(), d[0].options).unwrap().relu();
    let y = y.conv_transpose2d(&d[1].weight, d[1].bias.as_deref(), d[1].options).unwrap();
    let out = ae.forward(&x).unwrap();
    assert_eq!(out.shape(), x.shape());
    assert_close(&out.to_f64_vec(), &y.to_f64_vec(), 0.0, 0.0);
    let names: Vec<String> = ae.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "encoder.0.weight",
            "encoder.0.bias",
            "encoder.1.weight",
            "encoder.1.bias",
            "decoder.0.weight",
            "decoder.0.bias",
            "decoder.1.weight",
            "decoder.1.bias"
        ]
    );
    // PyTorch layouts: Conv2d [out, in, k, k], ConvTranspose2d [in, out, k, k]
    assert_eq!(ae.encoder[0].weight.shape(), &[3, 2, 3, 3]);
    assert_eq!(ae.decoder[0].weight.shape(), &[4, 3, 3, 3]);
    assert_eq!(ae.decoder[1].weight.shape(), &[3, 2, 3, 3]);
    assert!(ae.forward(&rand_t(&[1, 2, 6, 4], 6)).is_err(), "6 is not divisible by 4");
    assert!(ConvAutoencoderConfig::new(1, &[2]).with_kernel_size(2).init(&mut rng(0)).is_err());
}

#[test]
fn gradcheck_conv_autoencoder() {
    let ae = ConvAutoencoderConfig::new(1, &[2])
        .with_output_activation(OutputActivation::Sigmoid)
        .with_dtype(DType::F64)
        .init(&mut rng(4))
        .unwrap();
    check_module_gradients(&ae, &rand_t(&[2, 1, 4, 4], 7));
}

#[test]
fn kl_and_reparameterisation_by_hand() {
    // μ = [1, 0], log σ² = [0, ln 2]:
    // KL = −½[(1 + 0 − 1 − 1) + (1 + ln 2 − 0 − 2)] = −½(−2 + ln 2) = 1 − ln 2 / 2
    let mu = Tensor::from_vec(vec![1.0f64, 0.0], &[1, 2]).unwrap();
    let logvar = Tensor::from_vec(vec![0.0f64, 2f64.ln()], &[1, 2]).unwrap();
    let kl = kl_divergence(&mu, &logvar).unwrap().item().unwrap();
    assert!((kl - (1.0 - 2f64.ln() / 2.0)).abs() < 1e-15, "{kl}");
    // zero exactly at the prior, and averaged over the batch
    let two = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 0.0], &[2, 2]).unwrap();
    let per =
        kl_divergence_per_sample(&two, &Tensor::zeros(&[2, 2], DType::F64).unwrap()).unwrap().to_f64_vec();
    assert_eq!(per, vec![0.5, 0.0]);
    assert_eq!(
        kl_divergence(&two, &Tensor::zeros(&[2, 2], DType::F64).unwrap()).unwrap().item().unwrap(),
        0.25
    );
    // z = μ + exp(½ log σ²)·ε: [1 + 1·0.5, 0 + √2·(−1)]
    let eps = Tensor::from_vec(vec![0.5f64, -1.0], &[1, 2]).unwrap();
    let z = reparameterize(&mu, &logvar, &eps).unwrap().to_f64_vec();
    assert_close(&z, &[1.5, -(2f64.sqrt())], 1e-15, 1e-15);
    assert!(kl_divergence(&mu, &two).is_err());
}

#[test]
fn vae_modes_noise_and_reference() {
    let vae = VaeConfig::new(4, &[3], 2).with_dtype(DType::F64).init(&mut rng(5)).unwrap();
    let x = rand_t(&[3, 4], 8);
    let eps = rand_t(&[3, 2], 9);
    let out = vae.forward_with_noise(&x, &eps).unwrap();
    // reference: h = relu(W₁x + b₁), μ, log σ² heads, z = μ + e^{½ log σ²}·ε, decoder
    let h: Vec<f64> = stack_ref(&x.to_f64_vec(), &vae.encoder).iter().map(|v| v.max(0.0)).collect();
    let (mu, lv) = (linear_ref(&h, &vae.mu), linear_ref(&h, &vae.logvar));
    let z: Vec<f64> =
        mu.iter().zip(&lv).zip(eps.to_f64_vec()).map(|((m, l), e)| m + (0.5 * l).exp() * e).collect();
    assert_close(&out.mu.to_f64_vec(), &mu, 1e-12, 1e-10);
    assert_close(&out.logvar.to_f64_vec(), &lv, 1e-12, 1e-10);
    assert_close(&out.z.to_f64_vec(), &z, 1e-12, 1e-10);
    assert_close(&out.reconstruction.to_f64_vec(), &stack_ref(&z, &vae.decoder), 1e-12, 1e-10);
    // training draws fresh noise each call; eval uses z = μ
    let (a, b) = (vae.forward_vae(&x).unwrap().z.to_f64_vec(), vae.forward_vae(&x).unwrap().z.to_f64_vec());
    assert_ne!(a, b);
    vae.set_training(false);
    assert_eq!(vae.forward_vae(&x).unwrap().z.to_f64_vec(), mu);
    // the same seed gives the same model and the same noise
    let again = VaeConfig::new(4, &[3], 2).with_dtype(DType::F64).init(&mut rng(5)).unwrap();
    let fresh = VaeConfig::new(4, &[3], 2).with_dtype(DType::F64).init(&mut rng(5)).unwrap();
    assert_eq!(again.forward_vae(&x).unwrap().z.to_f64_vec(), fresh.forward_vae(&x).unwrap().z.to_f64_vec());
    assert_eq!(vae.sample(5, &mut rng(1)).unwrap().shape(), &[5, 4]);
    let names: Vec<String> = vae.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[..4], ["encoder.0.weight", "encoder.0.bias", "mu.weight", "mu.bias"]);
    assert_eq!(names[4..6], ["logvar.weight", "logvar.bias"]);
}

/// The VAE objective with fixed ε, as a module: Σ reconstruction + KL.
struct Objective<'a> {
    vae: &'a Vae,
    eps: Tensor,
}

impl Module for Objective<'_> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.vae.forward_with_noise(x, &self.eps)?;
        out.reconstruction.sum_all().add(&kl_divergence(&out.mu, &out.logvar)?)
    }

    fn visit(&self, v: &mut dyn crate::Visitor) {
        self.vae.visit(v);
    }
}

#[test]
fn gradcheck_vae_through_the_reparameterisation() {
    let vae = VaeConfig::new(3, &[3], 2)
        .with_output_activation(OutputActivation::Sigmoid)
        .with_dtype(DType::F64)
        .init(&mut rng(6))
        .unwrap();
    check_module_gradients(&Objective { vae: &vae, eps: rand_t(&[2, 2], 10) }, &rand_t(&[2, 3], 11));
}
