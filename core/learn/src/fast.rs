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
//! The arithmetic is that of [`crate::general`] (candle autograd) up to
//! floating-point summation order; a test holds the two to 1e-5.

use lineage_env::Batch;

pub(crate) use crate::cpu::{View, matmul, wide};
use crate::data::Examples;
use crate::optim::{self, Hyper};
use crate::spec::{Activation, Loss, MlpSpec};
use crate::{Job, LifetimeSpec, Outcome};

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

pub(crate) fn activate(act: Activation, z: &[f32], a: &mut [f32]) {
    wide(|| activate_portable(act, z, a));
}

#[inline(always)]
fn activate_portable(act: Activation, z: &[f32], a: &mut [f32]) {
    match act {
        Activation::Relu => a.iter_mut().zip(z).for_each(|(a, &z)| *a = z.max(0.0)),
        Activation::Tanh => a.iter_mut().zip(z).for_each(|(a, &z)| *a = z.tanh()),
        Activation::Linear => a.copy_from_slice(z),
        // 0.5 z (1 + tanh u) = z sigmoid(2u), on `exp` below, which
        // vectorises (libm's `tanhf` does not, and dominated a transformer
        // step).
        Activation::Gelu => a.iter_mut().zip(z).for_each(|(a, &z)| {
            let u = SQRT_2_OVER_PI * (z + GELU_C * z * z * z);
            *a = z / (1.0 + exp(-2.0 * u));
        }),
    }
}

/// `d *= act'(z)` given the pre-activation `z` and activation `a`.
pub(crate) fn activate_backward(act: Activation, z: &[f32], a: &[f32], d: &mut [f32]) {
    wide(|| activate_backward_portable(act, z, a, d));
}

#[inline(always)]
fn activate_backward_portable(act: Activation, z: &[f32], a: &[f32], d: &mut [f32]) {
    match act {
        // Branch-free so that it vectorises.
        Activation::Relu => d
            .iter_mut()
            .zip(z)
            .for_each(|(d, &z)| *d = if z > 0.0 { *d } else { 0.0 }),
        Activation::Tanh => d.iter_mut().zip(a).for_each(|(d, &a)| *d *= 1.0 - a * a),
        Activation::Linear => {}
        // With s = sigmoid(2u) = (1 + tanh u) / 2: d/dz = s + 2 z s (1 - s) u'.
        Activation::Gelu => d.iter_mut().zip(z).for_each(|(d, &z)| {
            let u = SQRT_2_OVER_PI * (z + GELU_C * z * z * z);
            let s = 1.0 / (1.0 + exp(-2.0 * u));
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * z * z);
            *d *= s + 2.0 * z * s * (1.0 - s) * du;
        }),
    }
}

/// `e^x` to about 1 ulp (Cephes' `expf`: `x = n ln 2 + r`, a degree-6
/// polynomial in `r`, times `2^n` built in the exponent bits), written
/// without calls or branches so that loops over it vectorise. Saturates
/// below -87.3 (to about 1e-38) and above 88.3 (to about 2e38).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

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
struct Workspace {
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

    /// Loads examples `ids` of `batch` into the workspace's input and targets.
    fn load(
        &self,
        ws: &mut Workspace,
        params: &[Vec<f32>],
        batch: &Batch,
        ex: Examples,
        ids: &[u32],
    ) {
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
                    for (c, slot) in row.chunks_exact_mut(dim).enumerate() {
                        let tok = tokens[base + target - context + c] as usize;
                        slot.copy_from_slice(&table[tok * dim..(tok + 1) * dim]);
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
        batch: &Batch,
        ex: Examples,
        ids: &[u32],
    ) {
        let w = &self.spec.widths;
        let rows = ids.len();
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
        if let (
            Some(e),
            Some(embed),
            Batch::Tokens { tokens, .. },
            Examples::Positions {
                per, context, len, ..
            },
        ) = (self.layout.embed, self.spec.embedding, batch, ex)
        {
            // The input's gradient (now in `delta`) scatters into the
            // rows of the tokens that were read.
            let g = &mut grads[e];
            g.fill(0.0);
            let (dim, w0) = (embed.dim, w[0]);
            for (r, &id) in ids.iter().enumerate() {
                let id = id as usize;
                let base = (id / per) * len + context + id % per - context;
                for c in 0..context {
                    let tok = tokens[base + c] as usize;
                    let src = &ws.delta[r * w0 + c * dim..r * w0 + (c + 1) * dim];
                    g[tok * dim..(tok + 1) * dim]
                        .iter_mut()
                        .zip(src)
                        .for_each(|(g, &d)| *g += d);
                }
            }
        }
    }

    /// Mean loss over (up to `limit` examples of) `batch`.
    fn evaluate(
        &self,
        ws: &mut Workspace,
        params: &[Vec<f32>],
        batch: &Batch,
        limit: usize,
    ) -> f32 {
        let Some(ex) = Examples::of(batch, &crate::ModelSpec::Mlp(self.spec.clone())) else {
            return f32::NAN;
        };
        let n = ex.count().min(limit);
        let ids: Vec<u32> = (0..n as u32).collect();
        let mut total = 0.0f64;
        for chunk in ids.chunks(ws.rows) {
            self.load(ws, params, batch, ex, chunk);
            total += f64::from(self.forward(ws, params, chunk.len(), false)) * chunk.len() as f64;
        }
        (total / n as f64) as f32
    }
}

/// One organism's MLP lifetime on the fast path.
struct MlpLearner<'a> {
    mlp: Mlp<'a>,
    life: &'a LifetimeSpec,
    ws: Workspace,
    params: Vec<Vec<f32>>,
    masks: Vec<Option<Vec<f32>>>,
    signs: Vec<Option<Vec<f32>>>,
    hyper: Hyper,
    train: &'a Batch,
    ex: Examples,
    state: OptimizerState,
}

/// Gradients and optimiser moments, shaped like the parameters.
pub(crate) struct OptimizerState {
    pub(crate) grads: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl OptimizerState {
    pub(crate) fn new(params: &[Vec<f32>]) -> OptimizerState {
        let zeros: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        OptimizerState {
            grads: zeros.clone(),
            m: zeros.clone(),
            v: zeros,
        }
    }

    /// Masks, clips and applies optimiser step `step`, then projects onto
    /// the sign constraints.
    pub(crate) fn step(
        &mut self,
        life: &LifetimeSpec,
        hyper: &Hyper,
        step: u32,
        params: &mut [Vec<f32>],
        masks: &[Option<Vec<f32>>],
        signs: &[Option<Vec<f32>>],
    ) {
        step_all(
            life,
            hyper,
            step,
            params,
            &mut self.grads,
            &mut self.m,
            &mut self.v,
            masks,
            signs,
        );
    }
}

impl crate::lifetime::Learner for MlpLearner<'_> {
    fn evaluate(&mut self, batch: &Batch, limit: usize) -> Result<f32, crate::LearnError> {
        Ok(self.mlp.evaluate(&mut self.ws, &self.params, batch, limit))
    }

    fn loss_and_grads(&mut self, ids: &[u32]) -> Result<f32, crate::LearnError> {
        self.mlp
            .load(&mut self.ws, &self.params, self.train, self.ex, ids);
        let loss = self
            .mlp
            .forward(&mut self.ws, &self.params, ids.len(), true);
        if loss.is_finite() {
            self.mlp.backward(
                &mut self.ws,
                &self.params,
                &mut self.state.grads,
                self.train,
                self.ex,
                ids,
            );
        }
        Ok(loss)
    }

    fn update(&mut self, step: u32) -> Result<(), crate::LearnError> {
        self.state.step(
            self.life,
            &self.hyper,
            step,
            &mut self.params,
            &self.masks,
            &self.signs,
        );
        Ok(())
    }

    fn params(self) -> Result<Vec<Vec<f32>>, crate::LearnError> {
        Ok(self.params)
    }

    fn weights(&self) -> Result<Vec<Vec<f32>>, crate::LearnError> {
        Ok(self.params.clone())
    }
}

/// Runs one organism's lifetime on the fast path.
pub(crate) fn train(spec: &MlpSpec, loss: Loss, life: &LifetimeSpec, job: Job) -> Outcome {
    let model = crate::ModelSpec::Mlp(spec.clone());
    let ex = Examples::of(job.train, &model).expect("the lifetime was checked to hold examples");
    let learner = MlpLearner {
        mlp: Mlp::new(spec, loss),
        life,
        ws: Workspace::new(spec, life.batch.max(EVAL_ROWS)),
        state: OptimizerState::new(&job.params),
        params: job.params,
        masks: job.masks,
        signs: job.signs,
        hyper: job.hyper,
        train: job.train,
        ex,
    };
    {
        let model = crate::ModelSpec::Mlp(spec.clone());
        crate::lifetime::live(
            learner,
            life,
            job.hyper.steps,
            crate::lifetime::Scoring {
                heldout: job.heldout,
                probes: job.probes,
                model: &model,
            },
            &job.indices,
        )
    }
    .expect("the fast path does not fail")
}

/// Rows per chunk when scoring held-out data.
const EVAL_ROWS: usize = 256;

/// Masks, clips and applies one optimiser step to every parameter, then
/// projects onto the sign constraints.
pub(crate) fn step_all(
    life: &LifetimeSpec,
    hyper: &Hyper,
    step: u32,
    params: &mut [Vec<f32>],
    grads: &mut [Vec<f32>],
    m: &mut [Vec<f32>],
    v: &mut [Vec<f32>],
    masks: &[Option<Vec<f32>>],
    signs: &[Option<Vec<f32>>],
) {
    for (g, mask) in grads.iter_mut().zip(masks) {
        if let Some(mask) = mask {
            g.iter_mut().zip(mask).for_each(|(g, &k)| *g *= k);
        }
    }
    if let Some(max) = life.optimizer.clip {
        let norm = grads
            .iter()
            .flat_map(|g| g.iter())
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>()
            .sqrt() as f32;
        let scale = optim::clip_scale(norm, max);
        if scale < 1.0 {
            grads
                .iter_mut()
                .flat_map(|g| g.iter_mut())
                .for_each(|g| *g *= scale);
        }
    }
    let lr = hyper.lr * life.optimizer.schedule.factor(step, hyper.steps);
    for i in 0..params.len() {
        optim::update(
            &life.optimizer,
            hyper,
            lr,
            step + 1,
            &mut params[i],
            &grads[i],
            &mut m[i],
            &mut v[i],
            masks[i].as_deref(),
            signs[i].as_deref(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use crate::bench::parse_model;
    use crate::spec::{Embedding, ModelSpec};
    use crate::{OptimizerSpec, Path, Schedule, train_population};
    use lineage_env::Task;
    use rand::{Rng, SeedableRng};

    #[test]
    fn exp_is_within_two_ulps_and_saturates() {
        let mut worst = 0.0f64;
        for k in -870_000..=883_000 {
            let x = k as f32 * 1e-4;
            let exact = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - exact).abs() / exact);
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert!(exp(-1e4) >= 0.0 && exp(-1e4) < 1e-37);
        assert!(exp(1e4).is_finite() && exp(1e4) > 1e38);
        assert_eq!(exp(0.0), 1.0);
    }

    /// Largest |a - b| / max(|b|, 1e-3 * scale) over all weights.
    fn relative_gap(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        let scale = b.iter().flatten().fold(0.0f32, |m, &x| m.max(x.abs()));
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(&x, &y)| (x - y).abs() / y.abs().max(1e-2 * scale))
            .fold(0.0, f32::max)
    }

    fn both_paths(
        model: &ModelSpec,
        task: &Task,
        train: &Batch,
        heldout: &Batch,
        method: crate::Method,
        masked: bool,
    ) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let work = crate::bench::Workload {
            model: model.clone(),
            task: task.clone(),
            seq: 1,
            last_only: false,
        };
        let params = work.init(&mut rng);
        let masks: Vec<Option<Vec<f32>>> = model
            .params()
            .iter()
            .map(|p| {
                (masked && p.role.maskable()).then(|| {
                    (0..p.len())
                        .map(|_| f32::from(u8::from(rng.random_bool(0.5))))
                        .collect()
                })
            })
            .collect();
        let params: Vec<Vec<f32>> = params
            .into_iter()
            .zip(&masks)
            .map(|(p, m)| match m {
                Some(m) => p.iter().zip(m).map(|(a, b)| a * b).collect(),
                None => p,
            })
            .collect();
        let life = LifetimeSpec {
            batch: 8,
            eval_every: 5,
            curve_heldout: 16,
            optimizer: OptimizerSpec {
                method,
                beta2: 0.99,
                eps: 1e-8,
                clip: Some(5.0),
                schedule: Schedule::WarmupHoldCooldown {
                    warmup: 3,
                    cooldown: 5,
                },
            },
        };
        let ex = Examples::of(train, model).unwrap();
        let steps = 20;
        let indices = crate::data::minibatch_indices(ex.count(), 8, steps, &mut rng);
        let hyper = Hyper {
            lr: if method == crate::Method::Sgd {
                0.05
            } else {
                0.01
            },
            momentum: 0.9,
            weight_decay: 0.01,
            steps,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let run = |path| {
            let job = Job {
                params: params.clone(),
                masks: masks.clone(),
                signs: vec![None; masks.len()],
                hyper,
                train,
                heldout,
                probes: &[],
                indices: indices.clone(),
            };
            train_population(
                model,
                task,
                &life,
                &candle_core::Device::Cpu,
                Some(path),
                vec![job],
                &pool,
            )
            .unwrap()
            .remove(0)
        };
        let (fast, general) = (run(Path::Fast), run(Path::General));
        assert_eq!(fast.status, Status::Completed);
        assert_eq!(general.status, Status::Completed);
        let gap = relative_gap(&fast.params, &general.params);
        assert!(
            gap < 1e-5,
            "{method:?}: final weights differ by {gap} (relative)"
        );
        for (f, g) in fast.curve.iter().zip(&general.curve) {
            assert_eq!(f.step, g.step);
            assert!(
                (f.heldout - g.heldout).abs() < 1e-4 * g.heldout.abs().max(1.0),
                "{f:?} vs {g:?}"
            );
        }
        assert!(
            fast.final_heldout() < fast.curve[0].heldout,
            "learning lowers held-out loss: {:?}",
            fast.curve
        );
        for (p, m) in fast.params.iter().zip(&masks) {
            if let Some(m) = m {
                assert!(
                    p.iter().zip(m).all(|(&w, &k)| k == 1.0 || w == 0.0),
                    "pruned weights stay zero"
                );
            }
        }
    }

    fn clusters(n: usize, inputs: usize, classes: u32, rng: &mut impl Rng) -> Batch {
        let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..classes)).collect();
        let x = labels
            .iter()
            .flat_map(|&l| {
                (0..inputs).map(move |i| if i as u32 % classes == l { 1.0 } else { 0.0 })
            })
            .zip(std::iter::repeat_with(|| rng.random::<f32>() - 0.5))
            .map(|(a, b)| a + 0.3 * b)
            .collect::<Vec<f32>>();
        Batch::Labeled { n, x, labels }
    }

    #[test]
    fn fast_path_matches_candle_for_classification() {
        let work = parse_model("mlp:6-16-12-3:tanh").unwrap();
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
        let (train, heldout) = (clusters(40, 6, 3, &mut rng), clusters(30, 6, 3, &mut rng));
        for method in [
            crate::Method::Sgd,
            crate::Method::Adam,
            crate::Method::AdamW,
        ] {
            for masked in [false, true] {
                both_paths(&work.model, &work.task, &train, &heldout, method, masked);
            }
        }
    }

    #[test]
    fn fast_path_matches_candle_for_regression_and_language_models() {
        let work = parse_model("mlp:4-8-2:gelu").unwrap();
        let task = Task::Regression {
            inputs: 4,
            outputs: 2,
        };
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
        let dense = |n: usize, rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
            let x: Vec<f32> = (0..n * 4).map(|_| rng.random::<f32>() - 0.5).collect();
            let y = x
                .chunks(4)
                .flat_map(|r| [r[0] - r[1], r[2] * r[3]])
                .collect();
            Batch::Dense { n, x, y }
        };
        let (train, heldout) = (dense(40, &mut rng), dense(20, &mut rng));
        both_paths(
            &work.model,
            &task,
            &train,
            &heldout,
            crate::Method::Sgd,
            false,
        );

        let lm = ModelSpec::Mlp(MlpSpec {
            embedding: Some(Embedding {
                vocab: 7,
                dim: 3,
                context: 2,
            }),
            widths: vec![6, 10, 7],
            activation: Activation::Relu,
            bias: false,
        });
        let task = Task::NextToken {
            vocab: 7,
            context: 4,
        };
        let tokens = |n: usize, rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
            let mut t = Vec::new();
            for _ in 0..n {
                let s = rng.random_range(0..7u32);
                t.extend((0..5).map(|i| (s + i * 2) % 7));
            }
            Batch::Tokens {
                n,
                len: 5,
                tokens: t,
            }
        };
        let (train, heldout) = (tokens(20, &mut rng), tokens(10, &mut rng));
        for masked in [false, true] {
            both_paths(&lm, &task, &train, &heldout, crate::Method::AdamW, masked);
        }
    }
}
