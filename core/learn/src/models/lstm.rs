//! The long short-term memory on candle, with PyTorch's equations and
//! gate order (i, f, g, o in the rows of `w_ih`, `w_hh`, `b_ih` and
//! `b_hh`), except for one constant, the forget gate's bias of 1:
//!
//! ```text
//! i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
//! f = sigmoid(W_if x + b_if + W_hf h + b_hf + 1)
//! g = tanh(W_ig x + b_ig + W_hg h + b_hg)
//! o = sigmoid(W_io x + b_io + W_ho h + b_ho)
//! c' = f * c + i * g
//! h' = o * tanh(c')
//! ```
//!
//! from `h[0] = c[0] = 0`, read out at every step by
//! `y[t] = W_out h[t+1] + b_out`.
//!
//! The forget gate's bias starts at 1 (Gers et al. 2000; Jozefowicz et al.
//! 2015), so that at birth the cell keeps about 73% (`sigmoid(1)`) of its
//! content per step instead of half. Development gives every bias 0 (a
//! bias has no development rule), so the 1 is the constant
//! [`FORGET_BIAS`] added to the forget gate's pre-activation, as
//! TensorFlow's `LSTMCell(forget_bias = 1.0)`, Sonnet and Haiku do: the
//! stored biases are what learning, weight decay, inheritance and
//! mutation act on, and the forget gate's effective bias is
//! `b_if + b_hf + 1`. To load exported weights into PyTorch's `nn.LSTM`,
//! add 1 to rows `H..2H` of `b_ih` (an export's model description carries
//! `"forget_bias": 1.0`).
//!
//! Unlike [`super::gru`], the gates are not split: both biases and the
//! forget bias are added into one input term `[n, 4H]`, a step costs one
//! `[n, H] x [H, 4H]` matmul (none for the first, from zero state), one
//! sigmoid over all four gates' pre-activations (g's is unused) and one
//! tanh, and the gates are narrowed out of those. Narrowing columns of one
//! step's tensor costs its backward pass a padding of that step only (not
//! the `O(T^2)` of slicing steps, see [`super::rnn`]), and the fused step
//! trains 1.6 times as fast as four gates of separate matmuls on the CPU
//! (`lineage bench learn --model lstm:3-64-3:t8 --population 8 --steps 100
//! --optimizer adam` on two shared cores: 125 against 78 organism-steps/s,
//! the same losses).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::Input;
use super::rnn::{Dense, StepInputs};
use crate::family::{Family, Layer, Module, Reads, describe_input, over_steps};
use crate::spec::{LstmSpec, ParamInfo, Role, SequenceInput};

/// The constant added to the forget gate's pre-activation: its bias at
/// birth, when the stored biases are 0.
pub const FORGET_BIAS: f64 = 1.0;

impl Family for LstmSpec {
    fn kind(&self) -> &str {
        "lstm"
    }

    fn params(&self) -> Vec<ParamInfo> {
        let h = self.hidden;
        vec![
            ParamInfo::matrix("w_ih", 4 * h, self.input.width()),
            ParamInfo::matrix("w_hh", 4 * h, h),
            ParamInfo::vector("b_ih", 4 * h, Role::Bias),
            ParamInfo::vector("b_hh", 4 * h, Role::Bias),
            ParamInfo::matrix("w_out", self.outputs, h),
            ParamInfo::vector("b_out", self.outputs, Role::Bias),
        ]
    }

    fn reads(&self) -> Reads {
        Reads::sequence(self.input)
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn layers(&self) -> Vec<Layer> {
        vec![
            Layer::new("hidden", self.hidden),
            Layer::new("cell", self.hidden),
        ]
    }

    fn kept_per_example(&self, steps: u64) -> u64 {
        // Per unit and step, counted as the GRU counts (2 per gate): four
        // gates' pre-activations and activations, the cell and its tanh.
        over_steps(steps, &[(self.hidden, 10), (self.outputs, 1)])
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "lstm",
            "input": describe_input(self.input),
            "hidden": self.hidden,
            "outputs": self.outputs,
            "forget_bias": FORGET_BIAS,
        })
    }

    fn build(&self, vb: VarBuilder) -> candle_core::Result<Box<dyn Module>> {
        Ok(Box::new(Lstm::new(self, vb)?))
    }
}

impl Module for Lstm {
    fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        Lstm::forward(self, input)
    }

    fn hidden(&self, input: &Input, index: usize) -> candle_core::Result<Tensor> {
        let (states, cells) = self.run(input)?;
        Ok(if index == 1 { cells } else { states })
    }
}

/// An LSTM with a linear readout at every step.
#[derive(Debug)]
pub struct Lstm {
    input: SequenceInput,
    hidden: usize,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    readout: Dense,
}

impl Lstm {
    /// Builds the LSTM from `w_ih`, `w_hh`, `b_ih`, `b_hh`, `w_out` and
    /// `b_out`.
    pub fn new(spec: &LstmSpec, vb: VarBuilder) -> candle_core::Result<Lstm> {
        let h = spec.hidden;
        let w_ih = vb.get((4 * h, spec.input.width()), "w_ih")?;
        let w_hh = vb.get((4 * h, h), "w_hh")?;
        let b_ih = vb.get(4 * h, "b_ih")?;
        let b_hh = vb.get(4 * h, "b_hh")?;
        let w_out = vb.get((spec.outputs, h), "w_out")?;
        let b_out = vb.get(spec.outputs, "b_out")?;
        Ok(Lstm {
            input: spec.input,
            hidden: h,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            readout: Dense::new(w_out, Some(b_out)),
        })
    }

    /// Outputs `[n, steps, outputs]`: the readout after every step.
    pub fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        let (states, _) = self.run(input)?;
        let (n, steps, h) = states.dims3()?;
        self.readout
            .forward(&states.reshape((n * steps, h))?)?
            .reshape((n, steps, ()))
    }

    /// The state `h[1..=steps]` and the cell `c[1..=steps]` after every
    /// step, each `[n, steps, hidden]`; [`Lstm::forward`] reads out the
    /// state.
    pub(crate) fn run(&self, input: &Input) -> candle_core::Result<(Tensor, Tensor)> {
        let h = self.hidden;
        let inputs = StepInputs::new("LSTM", self.input, input, self.w_ih.dtype())?;
        let steps = inputs.steps;
        let (dtype, device) = (self.b_ih.dtype(), self.b_ih.device());
        let forget = Tensor::cat(
            &[
                Tensor::zeros(h, dtype, device)?,
                Tensor::full(FORGET_BIAS, h, device)?.to_dtype(dtype)?,
                Tensor::zeros(2 * h, dtype, device)?,
            ],
            0,
        )?;
        let x = inputs.project(&self.w_ih, Some(&((&self.b_ih + &self.b_hh)? + forget)?))?;
        let w_hh = self.w_hh.t()?;
        let mut states: Vec<Tensor> = Vec::with_capacity(steps);
        let mut cells: Vec<Tensor> = Vec::with_capacity(steps);
        for t in 0..steps {
            let pre = match states.last() {
                Some(prev) => (x.at(t)? + prev.matmul(&w_hh)?)?,
                None => x.at(t)?,
            };
            let gates = candle_nn::ops::sigmoid(&pre)?;
            let i = gates.narrow(1, 0, h)?;
            let g = pre.narrow(1, 2 * h, h)?.tanh()?;
            let o = gates.narrow(1, 3 * h, h)?;
            let cell = match cells.last() {
                Some(c) => ((gates.narrow(1, h, h)? * c)? + (i * g)?)?,
                None => (i * g)?,
            };
            states.push((o * cell.tanh()?)?);
            cells.push(cell);
        }
        Ok((Tensor::stack(&states, 1)?, Tensor::stack(&cells, 1)?))
    }
}

#[cfg(test)]
mod tests;
