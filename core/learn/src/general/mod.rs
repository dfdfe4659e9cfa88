//! The general path: every model on candle, trained with autograd, on the
//! CPU or a CUDA device.
//!
//! Each model is built the candle way, `new(spec, vb)` plus `forward`,
//! from a `VarBuilder` whose variables are the organism's birth weights
//! under the names of [`ModelSpec::params`]. The optimiser mirrors
//! [`crate::optim`] with tensor operations, so this path and the fast path
//! compute the same lifetime (a test holds them to 1e-5).

mod gru;
mod mlp;
mod rnn;
mod transformer;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use lineage_env::{Batch, IGNORE};

pub use gru::Gru;
pub use mlp::Mlp;
pub use rnn::Rnn;
pub use transformer::Transformer;

use crate::data::Examples;
use crate::optim::{Method, clip_scale};
use crate::spec::{Loss, ModelSpec, ParamInfo};
use crate::{Job, LearnError, LifetimeSpec, Outcome};

/// What a model reads for a set of examples.
#[derive(Clone, Debug)]
pub enum Input {
    /// Real rows `[n, inputs]` (MLP).
    Dense(Tensor),
    /// Token contexts `[n, context]`, u32 (MLP language model).
    Context(Tensor),
    /// Token sequences `[n, steps]`, u32 (sequence models).
    Tokens(Tensor),
    /// Real sequences `[n, steps, dim]` (sequence models).
    Sequence(Tensor),
}

/// A network of any kind.
#[derive(Debug)]
pub enum Network {
    /// Multi-layer perceptron.
    Mlp(Mlp),
    /// Leaky RNN.
    Rnn(Rnn),
    /// GRU.
    Gru(Gru),
    /// Causal transformer.
    Transformer(Transformer),
}

impl Network {
    /// Builds `spec` from the variables in `vb` (named as in
    /// [`ModelSpec::params`]).
    pub fn new(spec: &ModelSpec, vb: VarBuilder) -> candle_core::Result<Network> {
        Ok(match spec {
            ModelSpec::Mlp(s) => Network::Mlp(Mlp::new(s, vb)?),
            ModelSpec::Rnn(s) => Network::Rnn(Rnn::new(s, vb)?),
            ModelSpec::Gru(s) => Network::Gru(Gru::new(s, vb)?),
            ModelSpec::Transformer(s) => Network::Transformer(Transformer::new(s, vb)?),
        })
    }

    /// Outputs: `[n, outputs]` for an MLP, `[n, steps, outputs]` for a
    /// sequence model.
    pub fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        match self {
            Network::Mlp(m) => m.forward(input),
            Network::Rnn(m) => m.forward(input),
            Network::Gru(m) => m.forward(input),
            Network::Transformer(m) => m.forward(input),
        }
    }
}

/// Examples `ids` of `batch` as the model's input and the loss's target.
pub fn gather(
    batch: &Batch,
    ex: Examples,
    ids: &[u32],
    device: &Device,
) -> candle_core::Result<(Input, Target)> {
    let n = ids.len();
    Ok(match (batch, ex) {
        (Batch::Dense { x, y, n: rows }, _) => {
            let (w, o) = (x.len() / rows, y.len() / rows);
            let xs = pick_rows(x, w, ids);
            let ys = pick_rows(y, o, ids);
            (
                Input::Dense(Tensor::from_vec(xs, (n, w), device)?),
                Target::Values(Tensor::from_vec(ys, (n, o), device)?),
            )
        }
        (Batch::Labeled { x, labels, n: rows }, _) => {
            let w = x.len() / rows;
            let xs = pick_rows(x, w, ids);
            let ls: Vec<u32> = ids.iter().map(|&i| labels[i as usize]).collect();
            (
                Input::Dense(Tensor::from_vec(xs, (n, w), device)?),
                Target::Classes {
                    labels: Tensor::from_vec(ls, n, device)?,
                    rows: None,
                },
            )
        }
        (
            Batch::Tokens { tokens, .. },
            Examples::Positions {
                per, context, len, ..
            },
        ) => {
            let mut ctx = Vec::with_capacity(n * context);
            let mut next = Vec::with_capacity(n);
            for &id in ids {
                let id = id as usize;
                let start = (id / per) * len + id % per;
                ctx.extend_from_slice(&tokens[start..start + context]);
                next.push(tokens[start + context]);
            }
            (
                Input::Context(Tensor::from_vec(ctx, (n, context), device)?),
                Target::Classes {
                    labels: Tensor::from_vec(next, n, device)?,
                    rows: None,
                },
            )
        }
        (
            Batch::Sequences {
                x,
                labels,
                steps,
                n: rows,
            },
            _,
        ) => {
            let dim = x.len() / (rows * steps).max(1);
            let xs = pick_rows(x, steps * dim, ids);
            let ls = pick_rows(labels, *steps, ids);
            let scored = ls.contains(&IGNORE).then(|| {
                ls.iter()
                    .enumerate()
                    .filter(|&(_, &l)| l != IGNORE)
                    .map(|(i, _)| i as u32)
                    .collect::<Vec<u32>>()
            });
            let (ls, rows) = match scored {
                Some(rows) => {
                    let kept: Vec<u32> = rows.iter().map(|&i| ls[i as usize]).collect();
                    let count = rows.len();
                    (kept, Some(Tensor::from_vec(rows, count, device)?))
                }
                None => (ls, None),
            };
            let count = ls.len();
            (
                Input::Sequence(Tensor::from_vec(xs, (n, *steps, dim), device)?),
                Target::Classes {
                    labels: Tensor::from_vec(ls, count, device)?,
                    rows,
                },
            )
        }
        (Batch::Tokens { tokens, len, .. }, _) => {
            let mut xs = Vec::with_capacity(n * (len - 1));
            let mut ys = Vec::with_capacity(n * (len - 1));
            for &id in ids {
                let w = &tokens[id as usize * len..(id as usize + 1) * len];
                xs.extend_from_slice(&w[..len - 1]);
                ys.extend_from_slice(&w[1..]);
            }
            (
                Input::Tokens(Tensor::from_vec(xs, (n, len - 1), device)?),
                Target::Classes {
                    labels: Tensor::from_vec(ys, n * (len - 1), device)?,
                    rows: None,
                },
            )
        }
    })
}

fn pick_rows<T: Copy>(data: &[T], width: usize, ids: &[u32]) -> Vec<T> {
    let mut out = Vec::with_capacity(ids.len() * width);
    for &i in ids {
        let i = i as usize;
        out.extend_from_slice(&data[i * width..(i + 1) * width]);
    }
    out
}

/// What the loss compares outputs with.
#[derive(Clone, Debug)]
pub enum Target {
    /// Real targets, the outputs' shape.
    Values(Tensor),
    /// Class indices, one per output row (sequence outputs are
    /// flattened), or one per row of `rows` where only those are scored.
    Classes {
        /// The labels.
        labels: Tensor,
        /// Indices of the scored output rows; `None`: all.
        rows: Option<Tensor>,
    },
}

/// Mean loss of `outputs` against `target`.
pub fn loss(loss: Loss, outputs: &Tensor, target: &Target) -> candle_core::Result<Tensor> {
    match (loss, target) {
        (Loss::MeanSquared, Target::Values(t)) => (outputs - t)?.sqr()?.mean_all(),
        (Loss::CrossEntropy, Target::Classes { labels, rows }) => {
            let classes = outputs.dim(D::Minus1)?;
            let mut logits = outputs.reshape(((), classes))?;
            if let Some(rows) = rows {
                logits = logits.index_select(rows, 0)?;
            }
            candle_nn::loss::cross_entropy(&logits, labels)
        }
        _ => candle_core::bail!("the loss does not match the targets"),
    }
}

/// An organism's weights as candle variables.
struct Vars {
    vars: Vec<Var>,
    masks: Vec<Option<Tensor>>,
    signs: Vec<Option<Tensor>>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

/// An organism's weights `params` (in `layout` order) as candle variables
/// on `device`, in a `VarMap` under the layout's names (what
/// [`Network::new`] reads through `VarBuilder::from_varmap`) and in layout
/// order. Stops at the shorter of `layout` and `params`; a parameter whose
/// length does not match its shape is an error.
pub(crate) fn variables(
    layout: &[ParamInfo],
    params: &[Vec<f32>],
    device: &Device,
) -> candle_core::Result<(VarMap, Vec<Var>)> {
    let varmap = VarMap::new();
    let mut vars = Vec::with_capacity(layout.len());
    {
        let mut data = varmap
            .data()
            .lock()
            .expect("a fresh VarMap is not poisoned");
        for (info, values) in layout.iter().zip(params) {
            let t = Tensor::from_slice(values, info.shape.as_slice(), device)?;
            let var = Var::from_tensor(&t)?;
            data.insert(info.name.clone(), var.clone());
            vars.push(var);
        }
    }
    Ok((varmap, vars))
}

/// Runs one organism's lifetime on the general path.
pub(crate) fn train(
    model: &ModelSpec,
    loss_kind: Loss,
    life: &LifetimeSpec,
    device: &Device,
    job: Job,
) -> Result<Outcome, LearnError> {
    let layout = model.params();
    let (varmap, vars) = variables(&layout, &job.params, device)?;
    let mut state = Vars {
        vars: Vec::new(),
        masks: Vec::new(),
        signs: Vec::new(),
        m: Vec::new(),
        v: Vec::new(),
    };
    let tensor = |values: &Option<Vec<f32>>, info: &ParamInfo| match values {
        Some(x) => Tensor::from_slice(x, info.shape.as_slice(), device).map(Some),
        None => Ok(None),
    };
    for (((info, var), mask), signs) in layout.iter().zip(vars).zip(&job.masks).zip(&job.signs) {
        state.m.push(var.zeros_like()?);
        state.v.push(var.zeros_like()?);
        state.masks.push(tensor(mask, info)?);
        state.signs.push(tensor(signs, info)?);
        state.vars.push(var);
    }
    let net = Network::new(model, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let ex = Examples::of(job.train, model).expect("the lifetime was checked to hold examples");
    let learner = CandleLearner {
        net,
        model,
        loss_kind,
        life,
        device,
        hyper: job.hyper,
        train: job.train,
        ex,
        state,
        grads: None,
    };
    crate::lifetime::live(
        learner,
        life,
        job.hyper.steps,
        crate::lifetime::Scoring {
            heldout: job.heldout,
            probes: job.probes,
            model,
        },
        &job.indices,
    )
}

/// One organism's lifetime on candle.
struct CandleLearner<'a> {
    net: Network,
    model: &'a ModelSpec,
    loss_kind: Loss,
    life: &'a LifetimeSpec,
    device: &'a Device,
    hyper: crate::Hyper,
    train: &'a Batch,
    ex: Examples,
    state: Vars,
    grads: Option<candle_core::backprop::GradStore>,
}

impl crate::lifetime::Learner for CandleLearner<'_> {
    fn evaluate(&mut self, batch: &Batch, limit: usize) -> Result<f32, LearnError> {
        Ok(evaluate(
            &self.net,
            self.model,
            self.loss_kind,
            batch,
            limit,
            self.device,
        )?)
    }

    fn loss_and_grads(&mut self, ids: &[u32]) -> Result<f32, LearnError> {
        let (input, target) = gather(self.train, self.ex, ids, self.device)?;
        let l = loss(self.loss_kind, &self.net.forward(&input)?, &target)?;
        let value = l.to_scalar::<f32>()?;
        self.grads = if value.is_finite() {
            Some(l.backward()?)
        } else {
            None
        };
        Ok(value)
    }

    fn update(&mut self, step: u32) -> Result<(), LearnError> {
        if let Some(grads) = self.grads.take() {
            update(self.life, &self.hyper, step, &mut self.state, &grads)?;
        }
        Ok(())
    }

    fn params(self) -> Result<Vec<Vec<f32>>, LearnError> {
        self.weights()
    }

    fn weights(&self) -> Result<Vec<Vec<f32>>, LearnError> {
        Ok(self
            .state
            .vars
            .iter()
            .map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?)
    }
}

/// Mean loss over (up to `limit` examples of) `batch`, in chunks.
fn evaluate(
    net: &Network,
    model: &ModelSpec,
    loss_kind: Loss,
    batch: &Batch,
    limit: usize,
    device: &Device,
) -> candle_core::Result<f32> {
    let Some(ex) = Examples::of(batch, model) else {
        return Ok(f32::NAN);
    };
    let n = ex.count().min(limit);
    let ids: Vec<u32> = (0..n as u32).collect();
    let mut total = 0.0f64;
    for chunk in ids.chunks(256) {
        let (input, target) = gather(batch, ex, chunk, device)?;
        let l = loss(loss_kind, &net.forward(&input)?, &target)?.to_scalar::<f32>()?;
        total += f64::from(l) * chunk.len() as f64;
    }
    Ok((total / n as f64) as f32)
}

/// One optimiser step with tensor operations, mirroring
/// [`crate::optim::update`].
fn update(
    life: &LifetimeSpec,
    hyper: &crate::Hyper,
    step: u32,
    state: &mut Vars,
    grads: &candle_core::backprop::GradStore,
) -> candle_core::Result<()> {
    let spec = &life.optimizer;
    let mut gs = Vec::with_capacity(state.vars.len());
    for (var, mask) in state.vars.iter().zip(&state.masks) {
        // Detached: a gradient computed from the variables records the
        // ops that made it, and optimiser state built from it would keep
        // every earlier step's graph alive (memory growing with steps).
        let g = match grads.get(var.as_tensor()) {
            Some(g) => g.detach(),
            None => var.as_tensor().zeros_like()?,
        };
        gs.push(match mask {
            Some(m) => (g * m)?,
            None => g,
        });
    }
    if let Some(max) = spec.clip {
        let mut sq = 0.0f64;
        for g in &gs {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let scale = clip_scale(sq.sqrt() as f32, max);
        if scale < 1.0 {
            for g in &mut gs {
                *g = g.affine(f64::from(scale), 0.0)?;
            }
        }
    }
    let lr = f64::from(hyper.lr * spec.schedule.factor(step, hyper.steps));
    let (wd, mu) = (f64::from(hyper.weight_decay), f64::from(hyper.momentum));
    let t = step as i32 + 1;
    for (i, g) in gs.into_iter().enumerate() {
        let p = state.vars[i].as_tensor().detach();
        let new = match spec.method {
            Method::Sgd => {
                let d = (g + p.affine(wd, 0.0)?)?;
                if mu == 0.0 {
                    (p - d.affine(lr, 0.0)?)?
                } else {
                    let m = (state.m[i].affine(mu, 0.0)? + d)?;
                    let new = (p - m.affine(lr, 0.0)?)?;
                    state.m[i] = m;
                    new
                }
            }
            Method::Adam | Method::AdamW => {
                let (p, d) = if spec.method == Method::AdamW {
                    ((&p - p.affine(lr * wd, 0.0)?)?, g)
                } else {
                    (p.clone(), (g + p.affine(wd, 0.0)?)?)
                };
                let (b1, b2) = (mu, f64::from(spec.beta2));
                let m = (state.m[i].affine(b1, 0.0)? + d.affine(1.0 - b1, 0.0)?)?;
                let v = (state.v[i].affine(b2, 0.0)? + d.sqr()?.affine(1.0 - b2, 0.0)?)?;
                let m_hat = m.affine(1.0 / (1.0 - b1.powi(t)), 0.0)?;
                let v_hat = v.affine(1.0 / (1.0 - b2.powi(t)), 0.0)?;
                let step = (m_hat / (v_hat.sqrt()? + f64::from(spec.eps))?)?;
                state.m[i] = m;
                state.v[i] = v;
                (p - step.affine(lr, 0.0)?)?
            }
        };
        let new = match &state.masks[i] {
            Some(mask) => (new * mask)?,
            None => new,
        };
        // Sign constraints: `w * (s w >= 0)`, as `optim::project_signs`.
        let new = match &state.signs[i] {
            Some(signs) => {
                let keep = (&new * signs)?.ge(0.0)?.to_dtype(DType::F32)?;
                (new * keep)?
            }
            None => new,
        };
        state.vars[i].set(&new)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers the model files' tests share (deterministic random weights,
    //! a finite-difference gradient check), and end-to-end lifetimes of the
    //! sequence models.

    use candle_core::{DType, Device, Tensor, Var};
    use candle_nn::VarMap;
    use lineage_env::{Batch, Task};
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;
    use crate::Status;
    use crate::data::minibatch_indices;
    use crate::optim::{Hyper, Method, OptimizerSpec};
    use crate::spec::{Activation, GruSpec, RnnSpec, Role, SequenceInput, TransformerSpec};

    /// Deterministic random weights for `model`, in [`ModelSpec::params`]
    /// order: matrices uniform with variance `1 / fan_in`, embeddings
    /// uniform in [-1, 1], biases in [-0.1, 0.1] and gains in [0.9, 1.1]
    /// (not zero and one, so a gradient check sees every term).
    pub(crate) fn birth_weights(model: &ModelSpec, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        model
            .params()
            .iter()
            .map(|p| {
                let (centre, half) = match p.role {
                    Role::Matrix { fan_in } => (0.0, (3.0 / fan_in as f32).sqrt()),
                    Role::Embedding => (0.0, 1.0),
                    Role::Bias => (0.0, 0.1),
                    Role::Gain => (1.0, 0.1),
                };
                (0..p.len())
                    .map(|_| centre + half * (2.0 * rng.random::<f32>() - 1.0))
                    .collect()
            })
            .collect()
    }

    /// A CPU `VarMap` holding [`birth_weights`] under the layout's names.
    pub(super) fn random_varmap(model: &ModelSpec, seed: u64, dtype: DType) -> VarMap {
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().unwrap();
            for (info, values) in model.params().iter().zip(birth_weights(model, seed)) {
                let t = Tensor::from_vec(values, info.shape.as_slice(), &Device::Cpu)
                    .and_then(|t| t.to_dtype(dtype))
                    .unwrap();
                data.insert(info.name.clone(), Var::from_tensor(&t).unwrap());
            }
        }
        varmap
    }

    /// The values of variable `name`, flattened.
    pub(super) fn values(varmap: &VarMap, name: &str) -> Vec<f64> {
        let var = variable(varmap, name);
        let t = var.as_tensor().flatten_all().unwrap();
        t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    fn variable(varmap: &VarMap, name: &str) -> Var {
        let data = varmap.data().lock().unwrap();
        data.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no variable {name}"))
    }

    /// Checks autograd against central finite differences on three entries
    /// of each named (f64) variable, for the loss `sum(c * forward())` with
    /// fixed random `c`.
    pub(super) fn assert_gradients_match(
        varmap: &VarMap,
        forward: impl Fn() -> candle_core::Result<Tensor>,
        names: &[&str],
    ) {
        let y = forward().unwrap();
        assert_eq!(y.dtype(), DType::F64, "the check's tolerance is for f64");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(99);
        let c: Vec<f64> = (0..y.elem_count())
            .map(|_| rng.random::<f64>() - 0.5)
            .collect();
        let c = Tensor::from_vec(c, y.shape(), y.device()).unwrap();
        let loss = |y: Tensor| (y * &c).and_then(|l| l.sum_all()).unwrap();
        let grads = loss(y).backward().unwrap();
        let eps = 1e-5;
        for &name in names {
            let var = variable(varmap, name);
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient reaches {name}"));
            let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert!(g.iter().any(|&v| v != 0.0), "{name}'s gradient is zero");
            let base = values(varmap, name);
            let last = base.len() - 1;
            let mut at = vec![0, last / 2, last];
            at.dedup();
            for i in at {
                let value_at = |delta: f64| {
                    let mut v = base.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap())
                        .unwrap();
                    loss(forward().unwrap()).to_scalar::<f64>().unwrap()
                };
                let fd = (value_at(eps) - value_at(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device()).unwrap())
                    .unwrap();
                assert!(
                    (fd - g[i]).abs() <= 1e-6 * (1.0 + g[i].abs()),
                    "{name}[{i}]: autograd {} but finite differences {fd}",
                    g[i]
                );
            }
        }
    }

    /// Windows of the token map `t -> 3t + 1 (mod 8)`, the i-th starting at
    /// token `i mod 8`.
    fn cycle_windows(n: usize, len: usize) -> Batch {
        let mut tokens = Vec::with_capacity(n * len);
        for i in 0..n {
            let mut t = (i % 8) as u32;
            for _ in 0..len {
                tokens.push(t);
                t = (3 * t + 1) % 8;
            }
        }
        Batch::Tokens { n, len, tokens }
    }

    /// Trains `model` for 30 Adam steps on next-token prediction of
    /// [`cycle_windows`] and checks the held-out loss fell.
    fn check_learns(model: ModelSpec) {
        let (vocab, len, steps, batch) = (8, 9, 30, 8);
        let task = Task::NextToken {
            vocab,
            context: len - 1,
        };
        model.check_task(&task).unwrap();
        let (train_set, heldout) = (cycle_windows(16, len), cycle_windows(8, len));
        let life = LifetimeSpec {
            batch,
            eval_every: 0,
            curve_heldout: 8,
            optimizer: OptimizerSpec {
                method: Method::Adam,
                ..OptimizerSpec::default()
            },
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let job = Job {
            params: birth_weights(&model, 7),
            masks: vec![None; model.params().len()],
            signs: vec![None; model.params().len()],
            hyper: Hyper {
                lr: 0.03,
                momentum: 0.9,
                weight_decay: 0.0,
                steps,
            },
            train: &train_set,
            heldout: &heldout,
            probes: &[],
            indices: minibatch_indices(16, batch, steps, &mut rng),
        };
        let out = train(&model, Loss::of(&task), &life, &Device::Cpu, job).unwrap();
        assert_eq!(out.status, Status::Completed, "{model:?}");
        let (birth, end) = (out.curve[0].heldout, out.final_heldout());
        assert!(
            end < 0.5 * birth,
            "{model:?}: held-out loss {birth} -> {end}"
        );
    }

    #[test]
    fn rnn_lifetime_lowers_heldout_loss() {
        check_learns(ModelSpec::Rnn(RnnSpec {
            input: SequenceInput::Tokens { vocab: 8 },
            hidden: 16,
            outputs: 8,
            alpha: 0.5,
            activation: Activation::Tanh,
            bias: true,
        }));
    }

    #[test]
    fn gru_lifetime_lowers_heldout_loss() {
        check_learns(ModelSpec::Gru(GruSpec {
            input: SequenceInput::Tokens { vocab: 8 },
            hidden: 16,
            outputs: 8,
        }));
    }

    /// The optimiser's state and the updated weights carry no autograd
    /// graph: a moment built from a gradient that records its ops would
    /// keep every earlier step's graph alive, so memory would grow with
    /// the steps (it did: 1.8 MB a step for a GRU of 96 units).
    #[test]
    fn optimiser_state_keeps_no_graph() {
        let dev = Device::Cpu;
        for method in [Method::Sgd, Method::Adam, Method::AdamW] {
            let var = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0, 3.0], &dev).unwrap()).unwrap();
            let mut state = Vars {
                vars: vec![var.clone()],
                masks: vec![None],
                signs: vec![None],
                m: vec![var.as_tensor().zeros_like().unwrap()],
                v: vec![var.as_tensor().zeros_like().unwrap()],
            };
            let life = LifetimeSpec {
                batch: 1,
                eval_every: 0,
                curve_heldout: 1,
                optimizer: crate::OptimizerSpec {
                    method,
                    beta2: 0.999,
                    eps: 1e-8,
                    clip: Some(1.0),
                    schedule: crate::Schedule::Constant,
                },
            };
            let hyper = crate::Hyper {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.01,
                steps: 2,
            };
            for step in 0..2 {
                // The loss as a model's: ops on the variable, then a product
                // with it, so that the gradient itself records ops.
                let w = var.as_tensor();
                let loss = (w.sqr().unwrap() * w).unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                update(&life, &hyper, step, &mut state, &grads).unwrap();
                assert!(
                    !state.m[0].track_op() && !state.v[0].track_op(),
                    "{method:?}: optimiser state records ops"
                );
            }
        }
    }

    #[test]
    fn transformer_lifetime_lowers_heldout_loss() {
        check_learns(ModelSpec::Transformer(TransformerSpec {
            input: SequenceInput::Tokens { vocab: 8 },
            context: 8,
            d_model: 16,
            heads: 2,
            layers: 1,
            d_ff: 32,
            outputs: 8,
            layer_norm: true,
            activation: Activation::Gelu,
        }));
    }
}
