//! Jacobians: per-example gradients of a model's outputs with respect to
//! one parameter ([`output_gradients`]) and their Gram matrix, the
//! empirical tangent kernel ([`gradient_kernel`]), for the evaluation
//! suites that measure rich and lazy learning. Batched for an MLP's layers,
//! by the fast path's back-propagation through time for a leaky RNN, one
//! candle backward pass per example otherwise.
//!
//! Built on [`crate::measure`] (the checked probe inputs and the network
//! loaded as training loads it), [`crate::models`] and the leaky-RNN fast
//! path (`fast`).
//!
//! # Gradients
//!
//! [`output_gradients`] returns, for every example `i`, the gradient of
//! `sum_k c[i, k] * out[i, k]` with respect to one parameter, shape
//! `[n, *param_shape]`, where `out[i]` is example `i`'s outputs
//! (flattened over steps for a sequence model) and `c` the cotangent
//! (all ones when not given). This is the vector-Jacobian product of each
//! example on its own: with a one-hot `c` it is one output's gradient,
//! with `c = dLoss/dout` it is the example's loss gradient. The gradient is
//! of the model as given: a masked-out weight has a gradient like any
//! other. It is computed by candle's autograd: for an MLP's
//! `layers.{i}.weight` and `layers.{i}.bias` in one batched pass (a zero
//! variable added to the layer's pre-activation receives every example's
//! `delta`, and the weight gradient is `delta_i` times the layer's input
//! `a_i`, an outer product). A leaky RNN's gradients come from the fast
//! path's back-propagation through time on plain buffers
//! (`fast::rnn::example_gradients`): one forward and one backward pass over
//! a chunk of examples with the cotangent as the output gradient, then each
//! example's sum over steps of outer products. Every other parameter gets
//! one candle backward pass per example with only that parameter tracked.
//! All give what a backward pass over one example alone gives (tests hold
//! the MLP's to 1e-6, the RNN's to 1e-5).

use candle_core::{DType, Tensor, Var};

use crate::fast::rnn::Sequences;
use crate::kernels::View;
use crate::models::{Input, Network};
use crate::spec::ModelSpec;

use crate::measure::{
    CPU, Probe, ProbeError, ProbeInput, Probed, check, load, network, output_shape,
};

/// Per-example gradients of `sum_k c[i, k] * out[i, k]` with respect to
/// the parameter named `weight` (a name of [`ModelSpec::params`]), shape
/// `[n, *param_shape]`. `cotangent` is `c`, the shape of [`crate::measure::outputs`]
/// row-major; `None` means all ones (the gradient of the example's
/// summed outputs).
pub fn output_gradients(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    input: &ProbeInput,
    cotangent: Option<&[f32]>,
    weight: &str,
) -> Result<Probed, ProbeError> {
    let layout = spec.params();
    let Some(target) = layout.iter().position(|p| p.name == weight) else {
        return Err(ProbeError::UnknownWeight {
            weight: weight.into(),
            valid: layout.into_iter().map(|p| p.name).collect(),
        });
    };
    let reads = Probe::of(spec)?;
    let shape = reads.check(input)?;
    let out_shape = output_shape(spec, shape.steps);
    let per: usize = out_shape[1..].iter().product();
    if let Some(c) = cotangent
        && Some(c.len()) != shape.n.checked_mul(per)
    {
        return Err(ProbeError::CotangentLength {
            expected: shape.n.saturating_mul(per),
            shape: out_shape,
            got: c.len(),
        });
    }
    let param = &layout[target];
    let mut dims = vec![shape.n];
    dims.extend(&param.shape);
    let values = if shape.n == 0 {
        load(spec, params)?;
        Vec::new()
    } else if let Some((layer, bias)) = mlp_layer(spec, weight) {
        let (net, _) = network(spec, params, None)?;
        let Network::Mlp(mlp) = &net else {
            return Err(ProbeError::Model(
                "an MLP spec built another network".into(),
            ));
        };
        let x = reads.examples(input, 0..shape.n)?;
        let g = mlp_gradients(mlp, &x, cotangent, layer, bias, param.shape[0])?;
        g.flatten_all()?.to_vec1::<f32>()?
    } else if let ModelSpec::Rnn(rnn) = spec {
        check(spec, params)?;
        let sequences = match *input {
            ProbeInput::Real { x, .. } => Sequences::Dense(x),
            ProbeInput::Tokens { tokens, .. } => Sequences::Tokens(tokens),
        };
        crate::fast::rnn::example_gradients(
            rnn,
            params,
            sequences,
            shape.n,
            shape.steps,
            cotangent,
            target,
        )
    } else {
        looped_gradients(spec, params, &reads, input, cotangent, target)?
    };
    Ok(Probed {
        values,
        shape: dims,
    })
}

/// The Gram matrix `[n, n]` of the per-example gradients
/// [`output_gradients`] gives (the empirical tangent kernel): entry
/// `(i, j)` is the dot product of example `i`'s and example `j`'s gradient
/// with respect to `weight`, or, for `weight = "*"`, with respect to every
/// parameter together (the sum of each parameter's kernel). Only one
/// parameter's gradients are held at a time.
pub fn gradient_kernel(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    input: &ProbeInput,
    cotangent: Option<&[f32]>,
    weight: &str,
) -> Result<Probed, ProbeError> {
    let names: Vec<String> = if weight == "*" {
        spec.params().into_iter().map(|p| p.name).collect()
    } else {
        vec![weight.to_string()]
    };
    let n = input.n();
    let mut kernel = vec![0.0f32; n * n];
    for name in &names {
        let g = output_gradients(spec, params, input, cotangent, name)?;
        let len = g.values.len() / n.max(1);
        gram_add(&mut kernel, &g.values, n, len);
    }
    Ok(Probed {
        values: kernel,
        shape: vec![n, n],
    })
}

/// Rows per block of [`gram_add`].
pub(super) const GRAM_BLOCK: usize = 128;

/// `k += G G^T` for `g` `[n, len]` row-major, `k` `[n, n]`: only the
/// blocks on and above the diagonal are multiplied (blocks of
/// [`GRAM_BLOCK`] rows), the others mirrored, so `k` stays exactly
/// symmetric at a little over half the work of the full product.
pub(super) fn gram_add(k: &mut [f32], g: &[f32], n: usize, len: usize) {
    let mut block = vec![0.0f32; GRAM_BLOCK * GRAM_BLOCK];
    for i0 in (0..n).step_by(GRAM_BLOCK) {
        let rows = GRAM_BLOCK.min(n - i0);
        let a = View::rows(&g[i0 * len..(i0 + rows) * len], rows, len);
        for j0 in (i0..n).step_by(GRAM_BLOCK) {
            let cols = GRAM_BLOCK.min(n - j0);
            let b = View::transposed(&g[j0 * len..(j0 + cols) * len], cols, len);
            crate::kernels::matmul(&mut block[..rows * cols], a, b, false);
            for r in 0..rows {
                for c in 0..cols {
                    let v = block[r * cols + c];
                    k[(i0 + r) * n + j0 + c] += v;
                    if j0 != i0 {
                        k[(j0 + c) * n + i0 + r] += v;
                    }
                }
            }
        }
    }
}

/// `layers.{i}.weight` or `layers.{i}.bias` of an MLP as `(i, is_bias)`.
fn mlp_layer(spec: &ModelSpec, weight: &str) -> Option<(usize, bool)> {
    let ModelSpec::Mlp(_) = spec else {
        return None;
    };
    let (layer, kind) = weight.strip_prefix("layers.")?.split_once('.')?;
    let bias = match kind {
        "weight" => false,
        "bias" => true,
        _ => return None,
    };
    Some((layer.parse().ok()?, bias))
}

/// Per-example gradients of an MLP's `layers.{layer}` weight `[n, out, in]`
/// (or bias `[n, out]`, `out` wide) in one batched pass: a zero variable
/// added to the layer's pre-activation receives every example's `delta`,
/// and example `i`'s weight gradient is the outer product of its `delta`
/// with what the layer read.
fn mlp_gradients(
    mlp: &crate::models::Mlp,
    x: &Input,
    cotangent: Option<&[f32]>,
    layer: usize,
    bias: bool,
    out: usize,
) -> candle_core::Result<Tensor> {
    let rows = match x {
        Input::Dense(t) | Input::Context(t) => t.dim(0)?,
        _ => candle_core::bail!("an MLP reads rows or token contexts"),
    };
    let probe = Var::zeros((rows, out), DType::F32, &CPU)?;
    let trace = mlp.trace(x, Some((layer, probe.as_tensor())))?;
    let Some(y) = trace.last() else {
        candle_core::bail!("the MLP has no layers");
    };
    let delta = match weighted_sum(y, cotangent)?.backward()?.get(&probe) {
        Some(g) => g.contiguous()?,
        None => probe.zeros_like()?,
    };
    if bias {
        Ok(delta)
    } else {
        delta
            .unsqueeze(2)?
            .matmul(&trace[layer].contiguous()?.unsqueeze(1)?)
    }
}

/// Per-example gradients of parameter `target` by one forward and backward
/// pass per example, with only that parameter tracked; row-major
/// `[n, *param_shape]`.
pub(super) fn looped_gradients(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    reads: &Probe,
    input: &ProbeInput,
    cotangent: Option<&[f32]>,
    target: usize,
) -> Result<Vec<f32>, ProbeError> {
    let (net, tracked) = network(spec, params, Some(target))?;
    let Some(tracked) = tracked else {
        return Err(ProbeError::Model("the probed weight is not tracked".into()));
    };
    let n = input.n();
    let per = cotangent.map_or(0, |c| c.len() / n.max(1));
    let mut values = Vec::with_capacity(n * tracked.elem_count());
    for i in 0..n {
        let y = net.forward(&reads.examples(input, i..i + 1)?)?;
        let c = cotangent.map(|c| &c[i * per..(i + 1) * per]);
        match weighted_sum(&y, c)?.backward()?.get(&tracked) {
            Some(g) => values.extend(g.flatten_all()?.to_vec1::<f32>()?),
            // The outputs do not depend on this parameter.
            None => values.resize(values.len() + tracked.elem_count(), 0.0),
        }
    }
    Ok(values)
}

/// `sum(c * y)` for `c` of `y`'s shape row-major, or `sum(y)`.
fn weighted_sum(y: &Tensor, c: Option<&[f32]>) -> candle_core::Result<Tensor> {
    match c {
        Some(c) => (y * Tensor::from_slice(c, y.shape(), &CPU)?)?.sum_all(),
        None => y.sum_all(),
    }
}

#[cfg(test)]
mod tests;
