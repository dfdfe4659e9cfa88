//! The batched forward passes of the recurrent networks (the leaky RNN,
//! the GRU and the LSTM), with the equations of `models/rnn.rs`,
//! `models/gru.rs` and `models/lstm.rs` (PyTorch's gate orders, the
//! LSTM's constant forget bias) on a chunk's `[P, N]` weights.
//!
//! Each weight matrix is the slice of the organism's row it owns,
//! reshaped to `[P, out, in]`. The inputs are time-major, `[T, P, rows,
//! dim]` (or token ids `[T, P · rows]`), and each step's input term is
//! computed from the input itself (a batched matmul, or a row lookup in
//! the stack of the organisms' `W^T + b` tables), not sliced out of a term
//! computed for all steps: candle's backward of a slice pads it to the
//! whole tensor, which would cost `O(T^2)` (see `models/rnn.rs`). A step
//! is then one batched matmul for the input side and one for the
//! recurrent side, whatever the gate count (the gates are narrowed out of
//! the `[P, rows, G · H]` products, which costs the backward a padding of
//! that step only), and the elementwise gates. The readout of all steps is
//! one batched matmul after the loop. Back-propagation through time is
//! candle's autograd on this graph.
//!
//! Every step reads the weights and biases through views of its own
//! (`w.t()`, `b.broadcast_as(..)`) rather than one view shared by all
//! steps. candle's backward computes a weight's gradient of a step from
//! that step's activations, an op it records, and adds the steps' pieces
//! up on the shared node, which keeps every step's piece (weight-sized)
//! and the activation gradient it was made from alive until the backward
//! pass ends: the peak of a training step measured 69 values per hidden
//! unit per step and sequence for the LSTM, against 36 with a view per
//! step, where each piece is added into the weight's gradient and freed
//! right after its step.
//!
//! The arithmetic follows the reference paths term for term where it can:
//! the RNN's step as the fast path computes it (`u = W_in x + b + W_rec h`,
//! then `(1 - a) h + a u`), the GRU's and LSTM's biases summed as their
//! candle modules sum them; what differs is the summation order inside
//! the matmuls.

use candle_core::Tensor;

use super::net::{Input, activate};
use super::unsupported;
use crate::LearnError;
use crate::spec::{Activation, ModelSpec, ParamInfo, SequenceInput};

/// The constant added to the LSTM's forget-gate pre-activation:
/// `models::FORGET_BIAS`, which this part may not import (the tests check
/// that the two agree).
pub(super) const FORGET_BIAS: f64 = 1.0;

/// The recurrence of a [`Recurrent`] net.
#[derive(Clone, Copy, Debug)]
pub(super) enum Cell {
    /// `h' = act((1 - a) h + a (W_in x + b + W_rec h))`.
    Rnn { alpha: f32, activation: Activation },
    /// Gates r, z, n.
    Gru,
    /// Gates i, f, g, o and a cell.
    Lstm,
}

impl Cell {
    /// Gate groups: rows of the input and recurrent weights per hidden
    /// unit.
    pub(super) fn gates(self) -> usize {
        match self {
            Cell::Rnn { .. } => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }

    /// Values per hidden unit per step that one training sequence keeps
    /// for back-propagation through time: the forward pass's tensors,
    /// which autograd holds until the backward pass is done, counted in
    /// [`rnn`], [`gru`] and [`lstm`] below (with a dense input and biases,
    /// the most) plus the stacked states the readout reads.
    ///
    /// - RNN: input term and bias (2), recurrent product and sum (2), the
    ///   leak's two products and their sum (3), the activation (2 for the
    ///   ReLU: its mask, a quarter, and the `where`), the stack: 10.
    /// - GRU: input term and bias (6), recurrent product (3), r and z
    ///   pre-activations and sigmoids (4), n's four terms (`+ b_hn`,
    ///   `r (...)`, `+ x_n`, tanh), `prev - n`, `z (prev - n)`, the new
    ///   state, the stack: 21.
    /// - LSTM: input term and bias (8), recurrent product and sum (8),
    ///   sigmoids (4), `tanh g`, `f c`, `i g`, the cell, its tanh, the new
    ///   state, the stack: 27.
    pub(super) fn kept(self) -> usize {
        match self {
            Cell::Rnn { .. } => 10,
            Cell::Gru => 21,
            Cell::Lstm => 27,
        }
    }
}

/// A recurrent net with a linear readout at every step, and where each
/// of its parameters starts in an organism's row.
pub(super) struct Recurrent {
    pub(super) cell: Cell,
    pub(super) input: SequenceInput,
    pub(super) hidden: usize,
    pub(super) outputs: usize,
    /// The input weights `[G H, width]` (`w_in` or `w_ih`).
    w_ih: usize,
    /// The recurrent weights `[G H, H]` (`w_rec` or `w_hh`).
    w_hh: usize,
    /// The input side's bias (`b` or `b_ih`).
    b_ih: Option<usize>,
    /// The recurrent side's bias (`b_hh`; the RNN has none).
    b_hh: Option<usize>,
    w_out: usize,
    b_out: Option<usize>,
}

impl Recurrent {
    /// The net of `model` (an RNN, GRU or LSTM) whose parameters, listed
    /// in `layout`, start at `offsets`.
    pub(super) fn new(
        model: &ModelSpec,
        layout: &[ParamInfo],
        offsets: &[usize],
    ) -> Result<Recurrent, LearnError> {
        let at = |name: &str| {
            layout
                .iter()
                .position(|p| p.name == name)
                .map(|i| offsets[i])
        };
        let need = |name: &str| at(name).ok_or_else(|| unsupported("a model without its weights"));
        let (cell, input, hidden, outputs) = match model {
            ModelSpec::Rnn(s) => (
                Cell::Rnn {
                    alpha: s.alpha,
                    activation: s.activation,
                },
                s.input,
                s.hidden,
                s.outputs,
            ),
            ModelSpec::Gru(s) => (Cell::Gru, s.input, s.hidden, s.outputs),
            ModelSpec::Lstm(s) => (Cell::Lstm, s.input, s.hidden, s.outputs),
            _ => return Err(unsupported("this model as a recurrent network")),
        };
        let net = match cell {
            Cell::Rnn { .. } => Recurrent {
                w_ih: need("w_in")?,
                w_hh: need("w_rec")?,
                b_ih: at("b"),
                b_hh: None,
                ..Recurrent::blank(cell, input, hidden, outputs)
            },
            Cell::Gru | Cell::Lstm => Recurrent {
                w_ih: need("w_ih")?,
                w_hh: need("w_hh")?,
                b_ih: Some(need("b_ih")?),
                b_hh: Some(need("b_hh")?),
                ..Recurrent::blank(cell, input, hidden, outputs)
            },
        };
        Ok(Recurrent {
            w_out: need("w_out")?,
            b_out: at("b_out"),
            ..net
        })
    }

    fn blank(cell: Cell, input: SequenceInput, hidden: usize, outputs: usize) -> Recurrent {
        Recurrent {
            cell,
            input,
            hidden,
            outputs,
            w_ih: 0,
            w_hh: 0,
            b_ih: None,
            b_hh: None,
            w_out: 0,
            b_out: None,
        }
    }

    /// Outputs `[P, rows · T, outputs]` of the `[P, N]` weights `theta`:
    /// the readout after every step, row-major over (row, step).
    pub(super) fn forward(
        &self,
        theta: &Tensor,
        input: &Input,
        rows: usize,
    ) -> candle_core::Result<Tensor> {
        let p = theta.dim(0)?;
        let (h, o) = (self.hidden, self.outputs);
        let g = self.cell.gates() * h;
        let vector = |at: usize, len: usize| theta.narrow(1, at, len);
        let matrix = |at: usize, r: usize, c: usize| theta.narrow(1, at, r * c)?.reshape((p, r, c));
        let w_ih = matrix(self.w_ih, g, self.input.width())?;
        let w_hh = matrix(self.w_hh, g, h)?;
        let b_ih = self.b_ih.map(|at| vector(at, g)).transpose()?;
        let b_hh = self.b_hh.map(|at| vector(at, g)).transpose()?;
        let drive = |name: &str, bias: Option<&Tensor>| {
            Drive::new(name, self.input, input, &w_ih, bias, (p, rows))
        };
        let states = match (self.cell, &b_ih, &b_hh) {
            (Cell::Rnn { alpha, activation }, b, _) => {
                rnn(&drive("RNN", b.as_ref())?, &w_hh, alpha, activation)?
            }
            (Cell::Gru, Some(b_ih), Some(b_hh)) => {
                // The r and z gates' biases of both sides go into the input
                // term; n's recurrent bias stays inside `r * (...)`.
                let rz = (b_ih.narrow(1, 0, 2 * h)? + b_hh.narrow(1, 0, 2 * h)?)?;
                let bias = Tensor::cat(&[rz, b_ih.narrow(1, 2 * h, h)?], 1)?;
                let b_hn = b_hh.narrow(1, 2 * h, h)?.reshape((p, 1, h))?;
                gru(&drive("GRU", Some(&bias))?, &w_hh, &b_hn, h)?
            }
            (Cell::Lstm, Some(b_ih), Some(b_hh)) => {
                let (dtype, device) = (theta.dtype(), theta.device());
                let forget = Tensor::cat(
                    &[
                        Tensor::zeros(h, dtype, device)?,
                        Tensor::full(FORGET_BIAS, h, device)?.to_dtype(dtype)?,
                        Tensor::zeros(2 * h, dtype, device)?,
                    ],
                    0,
                )?
                .reshape((1, g))?;
                let bias = (b_ih + b_hh)?.broadcast_add(&forget)?;
                lstm(&drive("LSTM", Some(&bias))?, &w_hh, h)?
            }
            _ => candle_core::bail!("a gated network without its biases"),
        };
        let steps = states.len();
        let states = Tensor::stack(&states, 2)?.reshape((p, rows * steps, h))?;
        let w_out = matrix(self.w_out, o, h)?;
        let y = states.matmul(&w_out.t()?)?;
        match self.b_out {
            Some(at) => y.broadcast_add(&vector(at, o)?.reshape((p, 1, o))?),
            None => Ok(y),
        }
    }
}

/// The leaky RNN's states after every step, `[P, rows, H]` each, as the
/// fast path computes them.
fn rnn(
    drive: &Drive,
    w_rec: &Tensor,
    alpha: f32,
    activation: Activation,
) -> candle_core::Result<Vec<Tensor>> {
    let (a, keep) = (f64::from(alpha), f64::from(1.0 - alpha));
    let mut states: Vec<Tensor> = Vec::with_capacity(drive.steps);
    let mut zeros: Option<Tensor> = None;
    for t in 0..drive.steps {
        let u = drive.at(t)?;
        let pre = match states.last() {
            // h = 0: the recurrent terms vanish.
            None if alpha == 1.0 => u,
            None => u.affine(a, 0.0)?,
            Some(prev) => {
                let u = (u + prev.matmul(&w_rec.t()?)?)?;
                if alpha == 1.0 {
                    u
                } else {
                    (prev.affine(keep, 0.0)? + u.affine(a, 0.0)?)?
                }
            }
        };
        states.push(match activation {
            // The fast path's ReLU, whose derivative at 0 is 0 (candle's
            // `relu` passes the gradient there, which moves a weight that
            // a sign constraint holds at 0). The mask is a constant (of
            // the detached pre-activation) and the zeros one tensor, so
            // that the gradient candle keeps for the zeros is one sum,
            // not a record of every step's.
            Activation::Relu => {
                let zeros = match &zeros {
                    Some(z) => z.clone(),
                    None => zeros.insert(pre.zeros_like()?).clone(),
                };
                pre.detach().gt(0.0)?.where_cond(&pre, &zeros)?
            }
            _ => activate(activation, &pre)?,
        });
    }
    Ok(states)
}

/// The GRU's states after every step, `[P, rows, H]` each: the input term
/// holds `[W_ir x + b_ir + b_hr, W_iz x + b_iz + b_hz, W_in x + b_in]`,
/// `b_hn` (`[P, 1, H]`) is n's recurrent bias.
fn gru(drive: &Drive, w_hh: &Tensor, b_hn: &Tensor, h: usize) -> candle_core::Result<Vec<Tensor>> {
    let sigmoid = candle_nn::ops::sigmoid;
    let mut states: Vec<Tensor> = Vec::with_capacity(drive.steps);
    for t in 0..drive.steps {
        let x = drive.at(t)?;
        let b_hn = &b_hn.broadcast_as((drive.p, drive.rows, h))?;
        let (x_rz, x_n) = (x.narrow(2, 0, 2 * h)?, x.narrow(2, 2 * h, h)?);
        let next = match states.last() {
            // h = 0: the recurrent terms are the biases alone.
            None => {
                let rz = sigmoid(&x_rz)?;
                let (r, z) = (rz.narrow(2, 0, h)?, rz.narrow(2, h, h)?);
                let n = (x_n + (r * b_hn)?)?.tanh()?;
                (&n - (z * &n)?)?
            }
            Some(prev) => {
                let hh = prev.matmul(&w_hh.t()?)?;
                let rz = sigmoid(&(x_rz + hh.narrow(2, 0, 2 * h)?)?)?;
                let (r, z) = (rz.narrow(2, 0, h)?, rz.narrow(2, h, h)?);
                let n = (x_n + (r * (hh.narrow(2, 2 * h, h)? + b_hn)?)?)?.tanh()?;
                (&n + (z * (prev - &n)?)?)?
            }
        };
        states.push(next);
    }
    Ok(states)
}

/// The LSTM's states after every step, `[P, rows, H]` each: the input
/// term holds every bias and the forget bias; one sigmoid over the four
/// gates' pre-activations (g's unused) and one tanh, as the candle module.
fn lstm(drive: &Drive, w_hh: &Tensor, h: usize) -> candle_core::Result<Vec<Tensor>> {
    let mut states: Vec<Tensor> = Vec::with_capacity(drive.steps);
    let mut cell: Option<Tensor> = None;
    for t in 0..drive.steps {
        let pre = match states.last() {
            Some(prev) => (drive.at(t)? + prev.matmul(&w_hh.t()?)?)?,
            None => drive.at(t)?,
        };
        let gates = candle_nn::ops::sigmoid(&pre)?;
        let i = gates.narrow(2, 0, h)?;
        let g = pre.narrow(2, 2 * h, h)?.tanh()?;
        let o = gates.narrow(2, 3 * h, h)?;
        let c = match &cell {
            Some(c) => ((gates.narrow(2, h, h)? * c)? + (i * g)?)?,
            None => (i * g)?,
        };
        states.push((o * c.tanh()?)?);
        cell = Some(c);
    }
    Ok(states)
}

/// The input term `W x[t] + b` of every step, `[P, rows, G]`, one step at
/// a time.
struct Drive {
    steps: usize,
    p: usize,
    rows: usize,
    source: Source,
}

enum Source {
    /// Inputs `[T, P, rows, dim]` (constants: slicing them costs nothing
    /// in the backward pass), `W` `[P, G, dim]` and the bias `[P, 1, G]`.
    Dense {
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
    },
    /// Ids `[T, P · rows]` into the stack of the organisms' tables
    /// `W^T + b`, `[P · vocab, G]` (a lookup's backward adds into the
    /// table's gradient and keeps nothing).
    Tokens { ids: Tensor, table: Tensor },
}

impl Drive {
    /// The input term of `w` (`[P, G, width]`) and `bias` (`[P, G]`) for
    /// `input`, which must be what a model reading `reads` takes for `p`
    /// organisms of `rows` sequences each.
    fn new(
        model: &str,
        reads: SequenceInput,
        input: &Input,
        w: &Tensor,
        bias: Option<&Tensor>,
        (p, rows): (usize, usize),
    ) -> candle_core::Result<Drive> {
        let g = w.dim(1)?;
        let (steps, source) = match (reads, input) {
            (SequenceInput::Dense { dim }, Input::Sequences(x)) => {
                let (steps, xp, xr, width) = x.dims4()?;
                if (xp, xr, width) != (p, rows, dim) {
                    candle_core::bail!(
                        "the batched {model} reads [T, {p}, {rows}, {dim}] inputs, not {:?}",
                        x.dims()
                    );
                }
                let bias = bias.map(|b| b.reshape((p, 1, g))).transpose()?;
                let (x, w) = (x.clone(), w.clone());
                (steps, Source::Dense { x, w, bias })
            }
            (SequenceInput::Tokens { vocab }, Input::Windows(ids)) => {
                let (steps, n) = ids.dims2()?;
                if n != p * rows {
                    candle_core::bail!("the batched {model} reads [T, {}] token ids", p * rows);
                }
                let table = match bias {
                    // One-hot x: W x + b is a column of W plus b.
                    Some(b) => w.transpose(1, 2)?.broadcast_add(&b.reshape((p, 1, g))?)?,
                    None => w.transpose(1, 2)?.contiguous()?,
                }
                .reshape((p * vocab, g))?;
                let ids = ids.clone();
                (steps, Source::Tokens { ids, table })
            }
            _ => candle_core::bail!("the batched {model} cannot read this input"),
        };
        if steps == 0 {
            candle_core::bail!("the {model} needs sequences of at least one step");
        }
        Ok(Drive {
            steps,
            p,
            rows,
            source,
        })
    }

    /// Step `t`'s input term, `[P, rows, G]`.
    fn at(&self, t: usize) -> candle_core::Result<Tensor> {
        match &self.source {
            Source::Dense { x, w, bias } => {
                let term = x.get(t)?.matmul(&w.t()?)?;
                match bias {
                    Some(b) => &term + b.broadcast_as(term.shape())?,
                    None => Ok(term),
                }
            }
            Source::Tokens { ids, table } => {
                table
                    .index_select(&ids.get(t)?, 0)?
                    .reshape((self.p, self.rows, ()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
