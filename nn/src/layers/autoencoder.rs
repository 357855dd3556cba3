//! Autoencoders: a dense [`Autoencoder`], a convolutional [`ConvAutoencoder`] (strided
//! `Conv2d` down, `ConvTranspose2d` up) and a variational [`Vae`] (Kingma and Welling 2014)
//! with the reparameterisation trick and the closed-form KL term [`kl_divergence`].
//!
//! Hidden layers use ReLU; the latent code has no activation; the reconstruction passes the
//! configured [`OutputActivation`] (none by default: pair raw outputs with MSE, or with
//! BCE-with-logits for inputs in [0, 1]). Linear layers are numbered in order within
//! `encoder.{i}` / `decoder.{i}` (activations have no index, unlike a PyTorch `Sequential`).

use super::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use crate::{Field, Linear, LinearConfig, Module, Visitor};
use graphgrad_autodiff::{bail, DType, Error, Flag, Generator, Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What is applied to the reconstruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputActivation {
    /// Raw outputs (logits for BCE-with-logits, or values for MSE).
    None,
    /// 1 / (1 + e^−x), for targets in [0, 1].
    Sigmoid,
}

impl OutputActivation {
    fn apply(self, x: Tensor) -> Tensor {
        match self {
            OutputActivation::None => x,
            OutputActivation::Sigmoid => x.sigmoid(),
        }
    }
}

/// Linear layers `sizes[0] → sizes[1] → …`.
fn linear_stack(sizes: &[usize], dtype: DType, rng: &mut ChaCha8Rng) -> Result<Vec<Linear>> {
    sizes.windows(2).map(|w| LinearConfig::new(w[0], w[1]).with_dtype(dtype).init(rng)).collect()
}

/// Runs `layers` with ReLU between them (none after the last).
fn run_stack(layers: &[Linear], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for (i, layer) in layers.iter().enumerate() {
        x = layer.forward(&x)?;
        if i + 1 < layers.len() {
            x = x.relu();
        }
    }
    Ok(x)
}

fn check_sizes(layer: &'static str, input_dim: usize, hidden: &[usize], latent: usize) -> Result<()> {
    if input_dim == 0 || latent == 0 || hidden.contains(&0) {
        bail!(layer, "sizes must be positive, got input {input_dim}, hidden {hidden:?}, latent {latent}");
    }
    Ok(())
}

/// Configuration of a dense [`Autoencoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct AutoencoderConfig {
    /// Features of an input sample.
    pub input_dim: usize,
    /// Widths of the encoder's hidden layers (the decoder mirrors them).
    pub hidden_dims: Vec<usize>,
    /// Width of the code.
    pub latent_dim: usize,
    /// Applied to the reconstruction (default none).
    pub output_activation: OutputActivation,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl AutoencoderConfig {
    /// `input_dim → hidden_dims… → latent_dim → reversed hidden_dims… → input_dim`.
    pub fn new(input_dim: usize, hidden_dims: &[usize], latent_dim: usize) -> Self {
        AutoencoderConfig {
            input_dim,
            hidden_dims: hidden_dims.to_vec(),
            latent_dim,
            output_activation: OutputActivation::None,
            dtype: DType::F32,
        }
    }

    /// Sets the reconstruction's activation.
    pub fn with_output_activation(mut self, activation: OutputActivation) -> Self {
        self.output_activation = activation;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Creates the network (Linear default initialisation).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Autoencoder> {
        check_sizes("Autoencoder", self.input_dim, &self.hidden_dims, self.latent_dim)?;
        let mut sizes = vec![self.input_dim];
        sizes.extend(&self.hidden_dims);
        sizes.push(self.latent_dim);
        let encoder = linear_stack(&sizes, self.dtype, rng)?;
        sizes.reverse();
        let decoder = linear_stack(&sizes, self.dtype, rng)?;
        Ok(Autoencoder { encoder, decoder, output_activation: self.output_activation })
    }
}

/// A dense autoencoder: x → encoder → code → decoder → reconstruction.
///
/// # Shapes
/// - input: `[batch, input_dim]`
/// - code ([`encode`](Autoencoder::encode)): `[batch, latent_dim]`
/// - output: `[batch, input_dim]`
///
/// ```
/// use graphgrad_nn::layers::AutoencoderConfig;
/// use graphgrad_nn::Module;
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let ae = AutoencoderConfig::new(64, &[32], 8).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let x = Tensor::zeros(&[5, 64], DType::F32)?;
/// assert_eq!(ae.encode(&x)?.shape(), &[5, 8]);
/// assert_eq!(ae.forward(&x)?.shape(), &[5, 64]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Autoencoder {
    /// Input to code.
    pub encoder: Vec<Linear>,
    /// Code to reconstruction.
    pub decoder: Vec<Linear>,
    /// Applied to the reconstruction.
    pub output_activation: OutputActivation,
}

impl Autoencoder {
    /// The code of `x`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        run_stack(&self.encoder, x)
    }

    /// The reconstruction from a code.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.output_activation.apply(run_stack(&self.decoder, z)?))
    }
}

impl Module for Autoencoder {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode(input)?)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        self.encoder.visit_field("encoder", v);
        self.decoder.visit_field("decoder", v);
    }
}

/// Configuration of a [`ConvAutoencoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConvAutoencoderConfig {
    /// Channels of the input image.
    pub in_channels: usize,
    /// Channels after each downsampling convolution (one entry per level).
    pub channels: Vec<usize>,
    /// Square kernel size, odd (default 3).
    pub kernel_size: usize,
    /// Applied to the reconstruction (default none).
    pub output_activation: OutputActivation,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl ConvAutoencoderConfig {
    /// One stride-2 level per entry of `channels`, kernel 3.
    pub fn new(in_channels: usize, channels: &[usize]) -> Self {
        ConvAutoencoderConfig {
            in_channels,
            channels: channels.to_vec(),
            kernel_size: 3,
            output_activation: OutputActivation::None,
            dtype: DType::F32,
        }
    }

    /// Sets the (odd) kernel size.
    pub fn with_kernel_size(mut self, kernel_size: usize) -> Self {
        self.kernel_size = kernel_size;
        self
    }

    /// Sets the reconstruction's activation.
    pub fn with_output_activation(mut self, activation: OutputActivation) -> Self {
        self.output_activation = activation;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Creates the network (PyTorch's default convolution initialisation).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<ConvAutoencoder> {
        let k = self.kernel_size;
        if self.in_channels == 0 || self.channels.is_empty() || self.channels.contains(&0) || k & 1 == 0 {
            bail!(
                "ConvAutoencoder",
                "needs positive channels, at least one level and an odd kernel, got in {}, levels {:?}, kernel {k}",
                self.in_channels,
                self.channels
            );
        }
        let mut sizes = vec![self.in_channels];
        sizes.extend(&self.channels);
        let (p, s) = (k / 2, 2);
        let encoder = sizes
            .windows(2)
            .map(|w| {
                Conv2dConfig::new(w[0], w[1], k)
                    .with_stride(s)
                    .with_padding(p)
                    .with_dtype(self.dtype)
                    .init(rng)
            })
            .collect::<Result<Vec<_>>>()?;
        sizes.reverse();
        let decoder = sizes
            .windows(2)
            .map(|w| {
                ConvTranspose2dConfig::new(w[0], w[1], k)
                    .with_stride(s)
                    .with_padding(p)
                    .with_output_padding(1)
                    .with_dtype(self.dtype)
                    .init(rng)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ConvAutoencoder { encoder, decoder, output_activation: self.output_activation })
    }
}

/// A convolutional autoencoder: each level halves height and width with a stride-2
/// convolution (`padding = kernel/2`) and ReLU; the decoder doubles them back with stride-2
/// transposed convolutions (`output_padding` 1), ReLU between levels.
///
/// # Shapes
/// - input: `[batch, in_channels, H, W]` with H and W divisible by 2^levels
/// - code ([`encode`](ConvAutoencoder::encode)): `[batch, channels.last, H/2^levels, W/2^levels]`
/// - output: `[batch, in_channels, H, W]`
///
/// ```
/// use graphgrad_nn::layers::ConvAutoencoderConfig;
/// use graphgrad_nn::Module;
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let ae = ConvAutoencoderConfig::new(1, &[4, 8]).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let x = Tensor::zeros(&[2, 1, 8, 8], DType::F32)?; // the digits' 8×8 images
/// assert_eq!(ae.encode(&x)?.shape(), &[2, 8, 2, 2]);
/// assert_eq!(ae.forward(&x)?.shape(), &[2, 1, 8, 8]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConvAutoencoder {
    /// Downsampling convolutions.
    pub encoder: Vec<Conv2d>,
    /// Upsampling transposed convolutions.
    pub decoder: Vec<ConvTranspose2d>,
    /// Applied to the reconstruction.
    pub output_activation: OutputActivation,
}

impl ConvAutoencoder {
    /// The code of `x` (after the last level's ReLU).
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let levels = self.encoder.len() as u32;
        let fits = x.rank() == 4 && x.shape()[2..].iter().all(|&s| s > 0 && s % 2usize.pow(levels) == 0);
        if !fits {
            return Err(Error::InvalidArgument {
                op: "ConvAutoencoder",
                reason: format!(
                    "input must be [batch, channels, H, W] with H, W divisible by {}, got {:?}",
                    1 << levels,
                    x.shape()
                ),
            });
        }
        let mut x = x.clone();
        for conv in &self.encoder {
            x = conv.forward(&x)?.relu();
        }
        Ok(x)
    }

    /// The reconstruction from a code.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut x = z.clone();
        for (i, deconv) in self.decoder.iter().enumerate() {
            x = deconv.forward(&x)?;
            if i + 1 < self.decoder.len() {
                x = x.relu();
            }
        }
        Ok(self.output_activation.apply(x))
    }
}

impl Module for ConvAutoencoder {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode(input)?)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        self.encoder.visit_field("encoder", v);
        self.decoder.visit_field("decoder", v);
    }
}

/// Configuration of a [`Vae`].
#[derive(Clone, Debug, PartialEq)]
pub struct VaeConfig {
    /// Features of an input sample.
    pub input_dim: usize,
    /// Widths of the encoder's hidden layers (the decoder mirrors them).
    pub hidden_dims: Vec<usize>,
    /// Width of the latent variable z.
    pub latent_dim: usize,
    /// Applied to the reconstruction (default none: logits or values).
    pub output_activation: OutputActivation,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl VaeConfig {
    /// `input_dim → hidden_dims… → (μ, log σ²) of latent_dim`, decoder mirrored.
    pub fn new(input_dim: usize, hidden_dims: &[usize], latent_dim: usize) -> Self {
        VaeConfig {
            input_dim,
            hidden_dims: hidden_dims.to_vec(),
            latent_dim,
            output_activation: OutputActivation::None,
            dtype: DType::F32,
        }
    }

    /// Sets the reconstruction's activation.
    pub fn with_output_activation(mut self, activation: OutputActivation) -> Self {
        self.output_activation = activation;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Creates the network in training mode, with a noise stream seeded from `rng`.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Vae> {
        check_sizes("Vae", self.input_dim, &self.hidden_dims, self.latent_dim)?;
        let mut sizes = vec![self.input_dim];
        sizes.extend(&self.hidden_dims);
        let encoder = linear_stack(&sizes, self.dtype, rng)?;
        let last = *sizes.last().expect("input_dim is first");
        let head =
            |rng: &mut ChaCha8Rng| LinearConfig::new(last, self.latent_dim).with_dtype(self.dtype).init(rng);
        let (mu, logvar) = (head(rng)?, head(rng)?);
        sizes.push(self.latent_dim);
        sizes.reverse();
        let decoder = linear_stack(&sizes, self.dtype, rng)?;
        Ok(Vae {
            encoder,
            mu,
            logvar,
            decoder,
            output_activation: self.output_activation,
            training: Flag::new(true),
            generator: Generator::new(rng.gen()),
        })
    }
}

/// Everything a [`Vae`] computes in one pass.
#[derive(Clone, Debug)]
pub struct VaeOutput {
    /// `[batch, input_dim]`.
    pub reconstruction: Tensor,
    /// Posterior mean `[batch, latent]`.
    pub mu: Tensor,
    /// Posterior log-variance log σ² `[batch, latent]`.
    pub logvar: Tensor,
    /// The latent sample z = μ + σ ⊙ ε `[batch, latent]` (μ in eval mode).
    pub z: Tensor,
}

/// A variational autoencoder with a diagonal Gaussian posterior q(z|x) = N(μ(x), σ²(x)) and a
/// standard normal prior. Train on `reconstruction loss + kl_divergence(μ, log σ²)`.
///
/// In training mode z = μ + σ ⊙ ε with ε ~ N(0, I) from the layer's own seeded stream
/// (the reparameterisation trick: gradients flow to μ and σ); in eval mode z = μ.
///
/// # Shapes
/// - input: `[batch, input_dim]`
/// - μ, log σ², z: `[batch, latent_dim]`
/// - output: `[batch, input_dim]`
///
/// ```
/// use graphgrad_nn::layers::{kl_divergence, VaeConfig};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let vae = VaeConfig::new(64, &[32], 2).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let out = vae.forward_vae(&Tensor::zeros(&[4, 64], DType::F32)?)?;
/// let kl = kl_divergence(&out.mu, &out.logvar)?; // a scalar ≥ 0
/// assert!(kl.item()? >= 0.0);
/// assert_eq!(out.reconstruction.shape(), &[4, 64]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Debug)]
pub struct Vae {
    /// Hidden layers of the encoder (ReLU after each).
    pub encoder: Vec<Linear>,
    /// Head producing μ.
    pub mu: Linear,
    /// Head producing log σ².
    pub logvar: Linear,
    /// Latent to reconstruction.
    pub decoder: Vec<Linear>,
    /// Applied to the reconstruction.
    pub output_activation: OutputActivation,
    training: Flag,
    generator: Generator,
}

impl Vae {
    /// Width of the latent variable.
    pub fn latent_dim(&self) -> usize {
        self.mu.out_features()
    }

    /// (μ, log σ²) of q(z | x).
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        for layer in &self.encoder {
            h = layer.forward(&h)?.relu();
        }
        Ok((self.mu.forward(&h)?, self.logvar.forward(&h)?))
    }

    /// The reconstruction (or a sample's decoding) from z.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.output_activation.apply(run_stack(&self.decoder, z)?))
    }

    /// One pass: in training a fresh ε from the layer's stream, in eval z = μ.
    pub fn forward_vae(&self, x: &Tensor) -> Result<VaeOutput> {
        let (mu, logvar) = self.encode(x)?;
        let z = if self.training.get() {
            let eps = self.generator.normal(mu.shape(), mu.dtype())?;
            reparameterize(&mu, &logvar, &eps)?
        } else {
            mu.clone()
        };
        Ok(VaeOutput { reconstruction: self.decode(&z)?, mu, logvar, z })
    }

    /// One pass with a given ε `[batch, latent]` (deterministic; for tests and custom noise).
    pub fn forward_with_noise(&self, x: &Tensor, eps: &Tensor) -> Result<VaeOutput> {
        let (mu, logvar) = self.encode(x)?;
        let z = reparameterize(&mu, &logvar, eps)?;
        Ok(VaeOutput { reconstruction: self.decode(&z)?, mu, logvar, z })
    }

    /// Decodes `n` draws from the prior N(0, I).
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let z = Tensor::randn(&[n, self.latent_dim()], 0.0, 1.0, self.mu.weight.dtype(), rng)?;
        self.decode(&z)
    }
}

/// z = μ + exp(½·log σ²) ⊙ ε (the reparameterisation trick).
pub fn reparameterize(mu: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<Tensor> {
    // the operand that differs from μ
    let other = if mu.shape() != logvar.shape() { logvar } else { eps };
    if mu.shape() != other.shape() {
        return Err(Error::ShapeMismatch {
            op: "reparameterize",
            lhs: mu.shape().into(),
            rhs: other.shape().into(),
        });
    }
    let z = || mu.add(&logvar.mul_scalar(0.5).exp().mul(eps)?);
    z().map_err(|e| e.called_as("reparameterize"))
}

/// KL(N(μ, σ²) ‖ N(0, 1)) per sample: −½·Σⱼ (1 + log σ²ⱼ − μⱼ² − σ²ⱼ), summed over the latent
/// (last) axis: `[batch]` for `[batch, latent]` inputs.
pub fn kl_divergence_per_sample(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    if mu.shape() != logvar.shape() || mu.rank() == 0 {
        return Err(Error::ShapeMismatch {
            op: "kl_divergence",
            lhs: mu.shape().into(),
            rhs: logvar.shape().into(),
        });
    }
    let inner = logvar.add_scalar(1.0).sub(&mu.square())?.sub(&logvar.exp())?;
    Ok(inner.sum(&[-1], false)?.mul_scalar(-0.5))
}

/// The VAE's KL term: [`kl_divergence_per_sample`] averaged over the batch (a scalar).
pub fn kl_divergence(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    Ok(kl_divergence_per_sample(mu, logvar)?.mean_all())
}

impl Module for Vae {
    /// The reconstruction (see [`Vae::forward_vae`] for μ, log σ² and z).
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.forward_vae(input)?.reconstruction)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        self.encoder.visit_field("encoder", v);
        v.child("mu", &self.mu);
        v.child("logvar", &self.logvar);
        self.decoder.visit_field("decoder", v);
        v.mode(&self.training);
        v.random_stream("generator", &self.generator);
    }
}

#[cfg(test)]
#[path = "autoencoder_tests.rs"]
mod tests;
