//! The fast path for the leaky RNN: forward through time and
//! back-propagation through time on `gemm`, in buffers allocated once per
//! lifetime (see [`crate::fast`] for why).
//!
//! Activations are stored time-major (`[T, B, H]`), so the products that
//! do not depend on the recurrence (readout, its gradient, and the weight
//! gradients) are one large `gemm` over all `T x B` rows; only
//! `h W_rec^T` forward and `du W_rec` backward go step by step.

use lineage_env::{Batch, IGNORE};

use crate::fast::{EVAL_SEQUENCES, FastModel, steps_of};
use crate::fast::{View, activate, activate_backward, matmul};
use crate::spec::{RnnSpec, SequenceInput};
use crate::{Job, LifetimeSpec, Outcome};

/// Parameter positions (see `ModelSpec::params`).
struct Layout {
    w_in: usize,
    w_rec: usize,
    b: Option<usize>,
    w_out: usize,
    b_out: Option<usize>,
}

impl Layout {
    fn of(spec: &RnnSpec) -> Layout {
        if spec.bias {
            Layout {
                w_in: 0,
                w_rec: 1,
                b: Some(2),
                w_out: 3,
                b_out: Some(4),
            }
        } else {
            Layout {
                w_in: 0,
                w_rec: 1,
                b: None,
                w_out: 2,
                b_out: None,
            }
        }
    }
}

/// Buffers for `rows` sequences of `steps` steps.
struct Workspace {
    rows: usize,
    steps: usize,
    /// Dense inputs, time-major `[T, B, I]`.
    x: Vec<f32>,
    /// Input tokens, time-major `[T, B]`.
    tokens: Vec<u32>,
    /// Labels, time-major `[T, B]`.
    labels: Vec<u32>,
    /// `h_0 .. h_T`, `[(T + 1), B, H]` (`h_0 = 0`).
    h: Vec<f32>,
    /// Pre-activations `[T, B, H]`.
    pre: Vec<f32>,
    /// Outputs, then their gradient, `[T, B, O]`.
    y: Vec<f32>,
    /// Gradient reaching each `h_{t+1}` from the readout, `[T, B, H]`.
    dh: Vec<f32>,
    /// Gradient of `W_in x + W_rec h + b` at each step, `[T, B, H]`.
    du: Vec<f32>,
    /// Running gradient of the hidden state, `[B, H]`.
    g: Vec<f32>,
    /// `W_in^T` for token inputs, `[V, H]`.
    w_in_t: Vec<f32>,
}

impl Workspace {
    fn new(spec: &RnnSpec, rows: usize, steps: usize) -> Workspace {
        let (i, h, o) = (spec.input.width(), spec.hidden, spec.outputs);
        let dense = matches!(spec.input, SequenceInput::Dense { .. });
        Workspace {
            rows,
            steps,
            x: if dense {
                vec![0.0; steps * rows * i]
            } else {
                Vec::new()
            },
            tokens: vec![0; steps * rows],
            labels: vec![0; steps * rows],
            h: vec![0.0; (steps + 1) * rows * h],
            pre: vec![0.0; steps * rows * h],
            y: vec![0.0; steps * rows * o],
            dh: vec![0.0; steps * rows * h],
            du: vec![0.0; steps * rows * h],
            g: vec![0.0; rows * h],
            w_in_t: if dense { Vec::new() } else { vec![0.0; i * h] },
        }
    }
}

struct Rnn<'a> {
    spec: &'a RnnSpec,
    layout: Layout,
}

impl Rnn<'_> {
    /// The states `h_1 .. h_T` and outputs `y` (in `ws.h`, `ws.y`) of the
    /// loaded `b` sequences.
    fn run(&self, ws: &mut Workspace, params: &[Vec<f32>], b: usize) {
        let (i, h, o) = (self.spec.input.width(), self.spec.hidden, self.spec.outputs);
        let t_max = ws.steps;
        let a = self.spec.alpha;
        let l = &self.layout;
        let tokens = matches!(self.spec.input, SequenceInput::Tokens { .. });
        if tokens {
            // W_in^T once, so that a token's column is a contiguous row.
            let w = &params[l.w_in];
            for r in 0..h {
                for c in 0..i {
                    ws.w_in_t[c * h + r] = w[r * i + c];
                }
            }
        }
        ws.h[..b * h].fill(0.0);
        for t in 0..t_max {
            let (done, rest) = ws.h.split_at_mut((t + 1) * b * h);
            let h_t = &done[t * b * h..];
            let u = &mut ws.pre[t * b * h..(t + 1) * b * h];
            // u = W_in x_t (+ b), then += W_rec h_t.
            if tokens {
                for r in 0..b {
                    let tok = ws.tokens[t * b + r] as usize;
                    u[r * h..(r + 1) * h].copy_from_slice(&ws.w_in_t[tok * h..(tok + 1) * h]);
                }
            } else {
                let x = View::rows(&ws.x[t * b * i..(t + 1) * b * i], b, i);
                matmul(u, x, View::transposed(&params[l.w_in], h, i), false);
            }
            if let Some(bias) = l.b {
                for row in u.chunks_exact_mut(h) {
                    row.iter_mut()
                        .zip(&params[bias])
                        .for_each(|(u, &b)| *u += b);
                }
            }
            matmul(
                u,
                View::rows(h_t, b, h),
                View::transposed(&params[l.w_rec], h, h),
                true,
            );
            // pre = (1 - a) h_t + a u.
            if a != 1.0 {
                u.iter_mut()
                    .zip(h_t)
                    .for_each(|(u, &hp)| *u = (1.0 - a) * hp + a * *u);
            }
            activate(self.spec.activation, u, &mut rest[..b * h]);
        }
        // Readout at every step, one product over all T x B rows.
        let rows = t_max * b;
        let hs = View::rows(&ws.h[b * h..(t_max + 1) * b * h], rows, h);
        let y = &mut ws.y[..rows * o];
        let accumulate = if let Some(bo) = l.b_out {
            y.chunks_exact_mut(o)
                .for_each(|row| row.copy_from_slice(&params[bo]));
            true
        } else {
            false
        };
        matmul(y, hs, View::transposed(&params[l.w_out], o, h), accumulate);
    }

    /// Mean cross-entropy of the outputs [`Rnn::run`] left against the
    /// loaded labels; with `grad`, replaces the outputs by d(loss)/d(y).
    fn loss(&self, ws: &mut Workspace, b: usize, grad: bool) -> f32 {
        let rows = ws.steps * b;
        let o = self.spec.outputs;
        cross_entropy(&mut ws.y[..rows * o], &ws.labels[..rows], o, grad)
    }

    /// The gradient of `W_in x + W_rec h + b` at every step (`ws.du`) for
    /// the output gradient in `ws.y` (`[T, b, O]`), by back-propagation
    /// through time.
    fn deltas(&self, ws: &mut Workspace, params: &[Vec<f32>], b: usize) {
        let (h, o) = (self.spec.hidden, self.spec.outputs);
        let t_max = ws.steps;
        let rows = t_max * b;
        let a = self.spec.alpha;
        let l = &self.layout;
        matmul(
            &mut ws.dh[..rows * h],
            View::rows(&ws.y[..rows * o], rows, o),
            View::rows(&params[l.w_out], o, h),
            false,
        );
        ws.g[..b * h].fill(0.0);
        for t in (0..t_max).rev() {
            let span = t * b * h..(t + 1) * b * h;
            let g = &mut ws.g[..b * h];
            g.iter_mut()
                .zip(&ws.dh[span.clone()])
                .for_each(|(g, &d)| *g += d);
            // dpre = g act'(pre); du = a dpre; g = (1 - a) dpre + du W_rec.
            activate_backward(
                self.spec.activation,
                &ws.pre[span.clone()],
                &ws.h[(t + 1) * b * h..(t + 2) * b * h],
                g,
            );
            let du = &mut ws.du[span];
            du.iter_mut().zip(g.iter()).for_each(|(u, &d)| *u = a * d);
            if a != 1.0 {
                g.iter_mut().for_each(|d| *d *= 1.0 - a);
                matmul(
                    g,
                    View::rows(du, b, h),
                    View::rows(&params[l.w_rec], h, h),
                    true,
                );
            } else {
                matmul(
                    g,
                    View::rows(du, b, h),
                    View::rows(&params[l.w_rec], h, h),
                    false,
                );
            }
        }
    }
}

/// Mean cross-entropy of output rows `y` (`[rows, o]`) against `labels`,
/// over the rows whose label is not [`IGNORE`]; with `grad`, replaces `y`
/// by d(loss)/d(y) (zero on ignored rows). 0 when no row is scored.
pub(crate) fn cross_entropy(y: &mut [f32], labels: &[u32], o: usize, grad: bool) -> f32 {
    let scored = labels.iter().filter(|&&l| l != IGNORE).count();
    if scored == 0 {
        y.fill(0.0);
        return 0.0;
    }
    let scale = 1.0 / scored as f32;
    let mut total = 0.0f64;
    for (row, &label) in y.chunks_exact_mut(o).zip(labels) {
        if label == IGNORE {
            row.fill(0.0);
            continue;
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z = row[label as usize];
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        total += f64::from(max + sum.ln() - z);
        if grad {
            let inv = scale / sum;
            row.iter_mut().for_each(|v| *v *= inv);
            row[label as usize] -= scale;
        }
    }
    (total / scored as f64) as f32
}

pub(crate) fn column_sums(rows: &[f32], width: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in rows.chunks_exact(width) {
        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
}

impl FastModel for Rnn<'_> {
    type Workspace = Workspace;

    /// Loads sequences `ids` of `batch`, time-major.
    fn load(&self, ws: &mut Workspace, _params: &[Vec<f32>], batch: &Batch, ids: &[u32]) {
        let b = ids.len();
        match batch {
            Batch::Sequences {
                x, labels, steps, ..
            } => {
                let i = self.spec.input.width();
                for (r, &id) in ids.iter().enumerate() {
                    let id = id as usize;
                    for t in 0..*steps {
                        let src = &x[(id * steps + t) * i..(id * steps + t + 1) * i];
                        ws.x[(t * b + r) * i..(t * b + r + 1) * i].copy_from_slice(src);
                        ws.labels[t * b + r] = labels[id * steps + t];
                    }
                }
            }
            Batch::Tokens { tokens, len, .. } => {
                for (r, &id) in ids.iter().enumerate() {
                    let w = &tokens[id as usize * len..(id as usize + 1) * len];
                    for t in 0..len - 1 {
                        ws.tokens[t * b + r] = w[t];
                        ws.labels[t * b + r] = w[t + 1];
                    }
                }
            }
            _ => unreachable!("the RNN path trains on sequences"),
        }
    }

    /// Forward over the loaded `b` sequences; returns the mean loss and,
    /// with `grad`, leaves d(loss)/d(y) in `ws.y`.
    fn forward(&self, ws: &mut Workspace, params: &[Vec<f32>], b: usize, grad: bool) -> f32 {
        self.run(ws, params, b);
        self.loss(ws, b, grad)
    }

    /// Back-propagation through time after [`Rnn::forward`].
    fn backward(&self, ws: &mut Workspace, params: &[Vec<f32>], grads: &mut [Vec<f32>], b: usize) {
        let (i, h, o) = (self.spec.input.width(), self.spec.hidden, self.spec.outputs);
        let t_max = ws.steps;
        let rows = t_max * b;
        let l = &self.layout;
        let hs = View::rows(&ws.h[b * h..(t_max + 1) * b * h], rows, h);
        matmul(
            &mut grads[l.w_out],
            View::transposed(&ws.y[..rows * o], rows, o),
            hs,
            false,
        );
        if let Some(bo) = l.b_out {
            column_sums(&ws.y[..rows * o], o, &mut grads[bo]);
        }
        self.deltas(ws, params, b);
        let du_t = View::transposed(&ws.du[..rows * h], rows, h);
        matmul(
            &mut grads[l.w_rec],
            du_t,
            View::rows(&ws.h[..rows * h], rows, h),
            false,
        );
        if let Some(bias) = l.b {
            column_sums(&ws.du[..rows * h], h, &mut grads[bias]);
        }
        match self.spec.input {
            SequenceInput::Dense { .. } => {
                matmul(
                    &mut grads[l.w_in],
                    du_t,
                    View::rows(&ws.x[..rows * i], rows, i),
                    false,
                );
            }
            SequenceInput::Tokens { .. } => {
                let gw = &mut grads[l.w_in];
                gw.fill(0.0);
                for (r, &tok) in ws.tokens[..rows].iter().enumerate() {
                    let tok = tok as usize;
                    for (k, &d) in ws.du[r * h..(r + 1) * h].iter().enumerate() {
                        gw[k * i + tok] += d;
                    }
                }
            }
        }
    }

    fn loaded(ws: &Workspace) -> (usize, usize, &[u32]) {
        (ws.rows, ws.steps, &ws.labels)
    }
}

/// Runs one organism's lifetime on the fast RNN path.
pub(crate) fn train(spec: &RnnSpec, life: &LifetimeSpec, job: Job) -> Outcome {
    let ws = Workspace::new(spec, life.batch.max(EVAL_SEQUENCES), steps_of(job.train));
    let rnn = Rnn {
        spec,
        layout: Layout::of(spec),
    };
    crate::fast::live(rnn, &crate::ModelSpec::Rnn(spec.clone()), ws, life, job)
}

/// The inputs [`example_gradients`] reads: `n` sequences of `steps` steps,
/// example-major.
#[derive(Clone, Copy)]
pub(crate) enum Sequences<'a> {
    /// `[n, steps, dim]` real inputs.
    Dense(&'a [f32]),
    /// `[n, steps]` token ids, each below the vocabulary.
    Tokens(&'a [u32]),
}

/// Sequences per chunk of [`example_gradients`].
pub(crate) const GRADIENT_ROWS: usize = 256;

/// Per-example gradients of `sum_{t,k} c[i, t, k] y[i, t, k]` with respect
/// to parameter `target` (an index into `ModelSpec::params`), row-major
/// `[n, *shape]`; `cotangent` is `c` (`[n, steps, outputs]`, all ones when
/// `None`). One forward pass and one back-propagation through time serve a
/// whole chunk of examples, with `c` as the output gradient; each
/// example's weight gradient is then its own sum over steps of outer
/// products (`sum_t du[t] h[t]^T` for `w_rec`), one small product per
/// example. The caller has checked every shape and token.
pub(crate) fn example_gradients(
    spec: &RnnSpec,
    params: &[Vec<f32>],
    input: Sequences,
    n: usize,
    steps: usize,
    cotangent: Option<&[f32]>,
    target: usize,
) -> Vec<f32> {
    let rnn = Rnn {
        spec,
        layout: Layout::of(spec),
    };
    let l = &rnn.layout;
    let (width, h, o) = (spec.input.width(), spec.hidden, spec.outputs);
    let size = params[target].len();
    let mut out = vec![0.0f32; n * size];
    let rows = GRADIENT_ROWS.min(n).max(1);
    let mut ws = Workspace::new(spec, rows, steps);
    // One example's rows of two time-major buffers, `[steps, width]` each.
    let mut left = vec![0.0f32; steps * h.max(o)];
    let mut right = vec![0.0f32; steps * h.max(width)];
    let gather = |dst: &mut [f32], src: &[f32], cols: usize, b: usize, r: usize, from: usize| {
        for t in 0..steps {
            let at = ((t + from) * b + r) * cols;
            dst[t * cols..(t + 1) * cols].copy_from_slice(&src[at..at + cols]);
        }
    };
    let readout = target == l.w_out || Some(target) == l.b_out;
    for start in (0..n).step_by(rows) {
        let b = rows.min(n - start);
        for r in 0..b {
            for t in 0..steps {
                let e = (start + r) * steps + t;
                match input {
                    Sequences::Dense(x) => ws.x[(t * b + r) * width..][..width]
                        .copy_from_slice(&x[e * width..(e + 1) * width]),
                    Sequences::Tokens(tokens) => ws.tokens[t * b + r] = tokens[e],
                }
            }
        }
        rnn.run(&mut ws, params, b);
        // The cotangent takes the outputs' place as their gradient.
        for r in 0..b {
            for t in 0..steps {
                let y = &mut ws.y[(t * b + r) * o..][..o];
                let e = (start + r) * steps + t;
                match cotangent {
                    Some(c) => y.copy_from_slice(&c[e * o..(e + 1) * o]),
                    None => y.fill(1.0),
                }
            }
        }
        if !readout {
            rnn.deltas(&mut ws, params, b);
        }
        for r in 0..b {
            let dst = &mut out[(start + r) * size..][..size];
            if target == l.w_out {
                gather(&mut left, &ws.y, o, b, r, 0);
                gather(&mut right, &ws.h, h, b, r, 1);
                outer_sum(dst, &left, o, &right, h, steps);
            } else if Some(target) == l.b_out {
                gather(&mut left, &ws.y, o, b, r, 0);
                step_sum(dst, &left[..steps * o]);
            } else if target == l.w_rec {
                gather(&mut left, &ws.du, h, b, r, 0);
                gather(&mut right, &ws.h, h, b, r, 0);
                outer_sum(dst, &left, h, &right, h, steps);
            } else if Some(target) == l.b {
                gather(&mut left, &ws.du, h, b, r, 0);
                step_sum(dst, &left[..steps * h]);
            } else {
                gather(&mut left, &ws.du, h, b, r, 0);
                match spec.input {
                    SequenceInput::Dense { .. } => {
                        gather(&mut right, &ws.x, width, b, r, 0);
                        outer_sum(dst, &left, h, &right, width, steps);
                    }
                    SequenceInput::Tokens { .. } => {
                        for t in 0..steps {
                            let tok = ws.tokens[t * b + r] as usize;
                            for (k, &d) in left[t * h..(t + 1) * h].iter().enumerate() {
                                dst[k * width + tok] += d;
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// `dst[rows, cols] = a^T b` for `a` `[steps, rows]` and `b` `[steps, cols]`
/// (the sum over steps of outer products).
fn outer_sum(dst: &mut [f32], a: &[f32], rows: usize, b: &[f32], cols: usize, steps: usize) {
    matmul(
        dst,
        View::transposed(&a[..steps * rows], steps, rows),
        View::rows(&b[..steps * cols], steps, cols),
        false,
    );
}

/// `dst[k] = sum_t rows[t, k]`.
fn step_sum(dst: &mut [f32], rows: &[f32]) {
    column_sums(rows, dst.len(), dst);
}

#[cfg(test)]
mod tests;
