//! The fast path for MLPs (and MLP language models): trained on
//! the `gemm` crate with a hand-written backward pass.
//!
//! candle allocates a tensor per operation and its CPU `bmm` loops over the
//! batch, so for the small networks of a population the allocation and
//! dispatch cost more than the arithmetic. Here one organism's lifetime
//! runs from birth to its last step in buffers allocated once (weights,
//! gradients, optimiser state and activations stay in the core's L2
//! cache), each layer is one `gemm` call, and the population is spread
//! over the worker threads one organism at a time
//! ([`crate::train_population`]), so every core runs one single-threaded
//! `gemm` and nothing oversubscribes. Biases, nonlinearities, the loss,
//! masks and the optimiser are fused loops over the same buffers.
//!
//! The arithmetic is that of [`crate::models`] (candle autograd) up to
//! floating-point summation order; a test holds the two to 1e-5.

use lineage_env::Batch;

use super::{FastModel, View, activate, activate_backward, matmul};
use crate::data::Examples;
use crate::family::Family;
use crate::spec::{Loss, MlpSpec};
use crate::{Job, LifetimeSpec, Outcome};

/// Where each layer's parameters sit in the job's parameter list.
struct Layout {
    embed: Option<usize>,
    weight: Vec<usize>,
    bias: Vec<Option<usize>>,
}

impl Layout {
    fn of(spec: &MlpSpec) -> Layout {
        let per_layer = 1 + usize::from(spec.bias);
        let first = usize::from(spec.embedding.is_some());
        let layers = spec.widths.len().saturating_sub(1);
        let weight: Vec<usize> = (0..layers).map(|l| first + l * per_layer).collect();
        let bias = weight.iter().map(|&w| spec.bias.then_some(w + 1)).collect();
        Layout {
            embed: spec.embedding.is_some().then_some(0),
            weight,
            bias,
        }
    }
}

/// Activations of one forward pass over up to `rows` examples.
pub(crate) struct Workspace {
    rows: usize,
    /// `acts[l]`: input (l = 0), hidden activations, then the output.
    acts: Vec<Vec<f32>>,
    /// Pre-activations of the hidden layers (`pre[l]` for layer l).
    pre: Vec<Vec<f32>>,
    /// Gradient with respect to the current layer's output, and the one
    /// being formed for the layer below.
    delta: Vec<f32>,
    delta_below: Vec<f32>,
    /// Targets of the current rows.
    labels: Vec<u32>,
    targets: Vec<f32>,
    /// An MLP language model's tokens read by each row, `[rows, context]`
    /// (the embedding's gradient scatters into their rows).
    contexts: Vec<u32>,
}

impl Workspace {
    fn new(spec: &MlpSpec, rows: usize) -> Workspace {
        let widest = spec.widths.iter().copied().max().unwrap_or(0);
        Workspace {
            rows,
            acts: spec.widths.iter().map(|&w| vec![0.0; rows * w]).collect(),
            pre: spec.widths.iter().map(|&w| vec![0.0; rows * w]).collect(),
            delta: vec![0.0; rows * widest],
            delta_below: vec![0.0; rows * widest],
            labels: vec![0; rows],
            targets: vec![0.0; rows * spec.widths.last().copied().unwrap_or(0)],
            contexts: vec![0; rows * spec.embedding.map_or(0, |e| e.context)],
        }
    }
}

/// One MLP and the data it learns from.
pub(crate) struct Mlp<'a> {
    spec: &'a MlpSpec,
    loss: Loss,
    layout: Layout,
}

impl<'a> Mlp<'a> {
    pub(crate) fn new(spec: &'a MlpSpec, loss: Loss) -> Mlp<'a> {
        Mlp {
            spec,
            loss,
            layout: Layout::of(spec),
        }
    }

    fn layers(&self) -> usize {
        self.spec.widths.len() - 1
    }
}

impl FastModel for Mlp<'_> {
    type Workspace = Workspace;

    /// Loads examples `ids` of `batch` into the workspace's input and
    /// targets (and an MLP language model's tokens read).
    fn load(&self, ws: &mut Workspace, params: &[Vec<f32>], batch: &Batch, ids: &[u32]) {
        let Some(ex) = Examples::reading(batch, self.spec.reads()) else {
            return;
        };
        let w0 = self.spec.widths[0];
        let outputs = *self.spec.widths.last().unwrap_or(&0);
        let input = &mut ws.acts[0];
        match (batch, ex) {
            (Batch::Dense { x, y, .. }, _) => {
                for (r, &e) in ids.iter().enumerate() {
                    let e = e as usize;
                    input[r * w0..(r + 1) * w0].copy_from_slice(&x[e * w0..(e + 1) * w0]);
                    ws.targets[r * outputs..(r + 1) * outputs]
                        .copy_from_slice(&y[e * outputs..(e + 1) * outputs]);
                }
            }
            (Batch::Labeled { x, labels, .. }, _) => {
                for (r, &e) in ids.iter().enumerate() {
                    let e = e as usize;
                    input[r * w0..(r + 1) * w0].copy_from_slice(&x[e * w0..(e + 1) * w0]);
                    ws.labels[r] = labels[e];
                }
            }
            (
                Batch::Tokens { tokens, .. },
                Examples::Positions {
                    per, context, len, ..
                },
            ) => {
                let embed = self
                    .spec
                    .embedding
                    .expect("token examples need an embedding");
                let table = &params[self.layout.embed.unwrap_or(0)];
                let dim = embed.dim;
                for (r, &e) in ids.iter().enumerate() {
                    let e = e as usize;
                    let (window, target) = (e / per, context + e % per);
                    let base = window * len;
                    let row = &mut input[r * w0..(r + 1) * w0];
                    let read = &mut ws.contexts[r * context..(r + 1) * context];
                    for ((slot, tok), &t) in row
                        .chunks_exact_mut(dim)
                        .zip(read)
                        .zip(&tokens[base + target - context..base + target])
                    {
                        *tok = t;
                        let t = t as usize;
                        slot.copy_from_slice(&table[t * dim..(t + 1) * dim]);
                    }
                    ws.labels[r] = tokens[base + target];
                }
            }
            (Batch::Tokens { .. } | Batch::Sequences { .. }, _) => {
                unreachable!("the fast path trains MLPs on rows and token positions only")
            }
        }
    }

    /// Forward pass over the first `rows` loaded examples; returns the mean
    /// loss and, with `grad`, leaves d(loss)/d(output) in `ws.delta`.
    fn forward(&self, ws: &mut Workspace, params: &[Vec<f32>], rows: usize, grad: bool) -> f32 {
        let w = &self.spec.widths;
        let layers = self.layers();
        for l in 1..=layers {
            let (below, above) = ws.acts.split_at_mut(l);
            let input = View::rows(&below[l - 1][..rows * w[l - 1]], rows, w[l - 1]);
            let weight = View::transposed(&params[self.layout.weight[l - 1]], w[l], w[l - 1]);
            let z = if l == layers {
                &mut above[0][..rows * w[l]]
            } else {
                &mut ws.pre[l][..rows * w[l]]
            };
            let accumulate = if let Some(b) = self.layout.bias[l - 1] {
                z.chunks_exact_mut(w[l])
                    .for_each(|row| row.copy_from_slice(&params[b]));
                true
            } else {
                false
            };
            matmul(z, input, weight, accumulate);
            if l < layers {
                activate(
                    self.spec.activation,
                    &ws.pre[l][..rows * w[l]],
                    &mut above[0][..rows * w[l]],
                );
            }
        }
        let out = w[layers];
        let logits = &ws.acts[layers][..rows * out];
        let delta = &mut ws.delta[..rows * out];
        let mut total = 0.0f64;
        match self.loss {
            Loss::CrossEntropy => {
                let scale = 1.0 / rows as f32;
                for ((z, d), &label) in logits
                    .chunks_exact(out)
                    .zip(delta.chunks_exact_mut(out))
                    .zip(&ws.labels[..rows])
                {
                    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0f32;
                    for (d, &z) in d.iter_mut().zip(z) {
                        *d = (z - max).exp();
                        sum += *d;
                    }
                    total += f64::from(max + sum.ln() - z[label as usize]);
                    if grad {
                        let inv = scale / sum;
                        d.iter_mut().for_each(|d| *d *= inv);
                        d[label as usize] -= scale;
                    }
                }
                (total / rows as f64) as f32
            }
            Loss::MeanSquared => {
                let n = (rows * out) as f32;
                for ((&z, &t), d) in logits
                    .iter()
                    .zip(&ws.targets[..rows * out])
                    .zip(delta.iter_mut())
                {
                    let e = z - t;
                    total += f64::from(e * e);
                    *d = 2.0 * e / n;
                }
                (total / f64::from(n)) as f32
            }
        }
    }

    /// Backward pass after [`Mlp::forward`]: writes every parameter's
    /// gradient into `grads` (overwriting).
    fn backward(
        &self,
        ws: &mut Workspace,
        params: &[Vec<f32>],
        grads: &mut [Vec<f32>],
        rows: usize,
    ) {
        let w = &self.spec.widths;
        for l in (1..=self.layers()).rev() {
            let delta = View::rows(&ws.delta[..rows * w[l]], rows, w[l]);
            let input = View::rows(&ws.acts[l - 1][..rows * w[l - 1]], rows, w[l - 1]);
            // dW = delta^T input.
            let delta_t = View::transposed(&ws.delta[..rows * w[l]], rows, w[l]);
            matmul(&mut grads[self.layout.weight[l - 1]], delta_t, input, false);
            if let Some(b) = self.layout.bias[l - 1] {
                let g = &mut grads[b];
                g.fill(0.0);
                for row in ws.delta[..rows * w[l]].chunks_exact(w[l]) {
                    g.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
                }
            }
            if l == 1 && self.layout.embed.is_none() {
                break;
            }
            // delta_below = delta W, then through the nonlinearity.
            let weight = View::rows(&params[self.layout.weight[l - 1]], w[l], w[l - 1]);
            matmul(&mut ws.delta_below[..rows * w[l - 1]], delta, weight, false);
            if l > 1 {
                activate_backward(
                    self.spec.activation,
                    &ws.pre[l - 1][..rows * w[l - 1]],
                    &ws.acts[l - 1][..rows * w[l - 1]],
                    &mut ws.delta_below[..rows * w[l - 1]],
                );
            }
            std::mem::swap(&mut ws.delta, &mut ws.delta_below);
        }
        if let (Some(e), Some(embed)) = (self.layout.embed, self.spec.embedding) {
            // The input's gradient (now in `delta`) scatters into the
            // rows of the tokens that were read.
            let g = &mut grads[e];
            g.fill(0.0);
            let (dim, context) = (embed.dim, embed.context);
            let read = ws.contexts[..rows * context].iter();
            for (&tok, src) in read.zip(ws.delta[..rows * w[0]].chunks_exact(dim)) {
                let tok = tok as usize;
                g[tok * dim..(tok + 1) * dim]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(g, &d)| *g += d);
            }
        }
    }

    fn loaded(ws: &Workspace) -> (usize, usize, &[u32]) {
        (ws.rows, 1, &ws.labels)
    }

    /// Mean loss over (up to `limit` examples of) `batch`: every example
    /// counts once.
    fn evaluate(
        &self,
        ws: &mut Workspace,
        params: &[Vec<f32>],
        batch: &Batch,
        limit: usize,
    ) -> f32 {
        let Some(ex) = Examples::reading(batch, self.spec.reads()) else {
            return f32::NAN;
        };
        let n = ex.count().min(limit);
        let ids: Vec<u32> = (0..n as u32).collect();
        let mut total = 0.0f64;
        for chunk in ids.chunks(ws.rows) {
            self.load(ws, params, batch, chunk);
            total += f64::from(self.forward(ws, params, chunk.len(), false)) * chunk.len() as f64;
        }
        (total / n as f64) as f32
    }
}

/// Runs one organism's lifetime on the fast path.
pub(crate) fn train(spec: &MlpSpec, loss: Loss, life: &LifetimeSpec, job: Job) -> Outcome {
    let ws = Workspace::new(spec, life.batch.max(EVAL_ROWS));
    crate::fast::live(
        Mlp::new(spec, loss),
        &crate::ModelSpec::Mlp(spec.clone()),
        ws,
        life,
        job,
    )
}

/// Rows per chunk when scoring held-out data.
const EVAL_ROWS: usize = 256;

#[cfg(test)]
mod tests;
