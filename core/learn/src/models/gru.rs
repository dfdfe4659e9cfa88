//! The gated recurrent unit on candle, with PyTorch's equations and gate
//! order (r, z, n in the rows of `w_ih`, `w_hh`, `b_ih` and `b_hh`):
//!
//! ```text
//! r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
//! z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//! h' = (1 - z) * n + z * h
//! ```
//!
//! from `h[0] = 0`, read out at every step by `y[t] = W_out h[t+1] + b_out`.
//! The weights are split by gate once per call (slicing per step would
//! cost `O(T^2)` in candle's backward pass, see [`super::rnn`]) and the r
//! and z biases of both sides are added into the input terms, so a step
//! costs three input terms, three `[n, H] x [H, H]` matmuls and the
//! elementwise gates.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::Input;
use super::rnn::{Dense, StepInputs, spread};
use crate::family::{Family, Layer, Module, Reads, describe_input, over_steps};
use crate::spec::{GruSpec, ParamInfo, Role, SequenceInput};

impl Family for GruSpec {
    fn kind(&self) -> &str {
        "gru"
    }

    fn params(&self) -> Vec<ParamInfo> {
        let h = self.hidden;
        vec![
            ParamInfo::matrix("w_ih", 3 * h, self.input.width()),
            ParamInfo::matrix("w_hh", 3 * h, h),
            ParamInfo::vector("b_ih", 3 * h, Role::Bias),
            ParamInfo::vector("b_hh", 3 * h, Role::Bias),
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
        vec![Layer::new("hidden", self.hidden)]
    }

    fn kept_per_example(&self, steps: u64) -> u64 {
        over_steps(steps, &[(self.hidden, 6), (self.outputs, 1)])
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "gru",
            "input": describe_input(self.input),
            "hidden": self.hidden,
            "outputs": self.outputs,
        })
    }

    fn build(&self, vb: VarBuilder) -> candle_core::Result<Box<dyn Module>> {
        Ok(Box::new(Gru::new(self, vb)?))
    }
}

impl Module for Gru {
    fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        Gru::forward(self, input)
    }

    fn hidden(&self, input: &Input, _index: usize) -> candle_core::Result<Tensor> {
        self.states(input)
    }
}

/// A GRU with a linear readout at every step.
#[derive(Debug)]
pub struct Gru {
    input: SequenceInput,
    hidden: usize,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    readout: Dense,
}

impl Gru {
    /// Builds the GRU from `w_ih`, `w_hh`, `b_ih`, `b_hh`, `w_out` and
    /// `b_out`.
    pub fn new(spec: &GruSpec, vb: VarBuilder) -> candle_core::Result<Gru> {
        let h = spec.hidden;
        let w_ih = vb.get((3 * h, spec.input.width()), "w_ih")?;
        let w_hh = vb.get((3 * h, h), "w_hh")?;
        let b_ih = vb.get(3 * h, "b_ih")?;
        let b_hh = vb.get(3 * h, "b_hh")?;
        let w_out = vb.get((spec.outputs, h), "w_out")?;
        let b_out = vb.get(spec.outputs, "b_out")?;
        Ok(Gru {
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
        let states = self.states(input)?;
        let (n, steps, h) = states.dims3()?;
        self.readout
            .forward(&states.reshape((n * steps, h))?)?
            .reshape((n, steps, ()))
    }

    /// The state after every step, `h[1..=steps]`, `[n, steps, hidden]`:
    /// what [`Gru::forward`] reads out.
    pub(crate) fn states(&self, input: &Input) -> candle_core::Result<Tensor> {
        let h = self.hidden;
        let inputs = StepInputs::new("GRU", self.input, input, self.w_ih.dtype())?;
        let (n, steps) = (inputs.n, inputs.steps);
        let gate = |t: &Tensor, g: usize| t.narrow(0, g * h, h);
        let (b_ih, b_hh) = (&self.b_ih, &self.b_hh);
        let x_r = inputs.project(
            &gate(&self.w_ih, 0)?,
            Some(&(gate(b_ih, 0)? + gate(b_hh, 0)?)?),
        )?;
        let x_z = inputs.project(
            &gate(&self.w_ih, 1)?,
            Some(&(gate(b_ih, 1)? + gate(b_hh, 1)?)?),
        )?;
        let x_n = inputs.project(&gate(&self.w_ih, 2)?, Some(&gate(b_ih, 2)?))?;
        let h_r = gate(&self.w_hh, 0)?.t()?;
        let h_z = gate(&self.w_hh, 1)?.t()?;
        let h_n = gate(&self.w_hh, 2)?.t()?;
        let b_hn = spread(&gate(b_hh, 2)?, n)?;
        let mut states: Vec<Tensor> = Vec::with_capacity(steps);
        for t in 0..steps {
            let next = match states.last() {
                // h = 0: the recurrent terms are the biases alone.
                None => {
                    let z = candle_nn::ops::sigmoid(&x_z.at(t)?)?;
                    let r = candle_nn::ops::sigmoid(&x_r.at(t)?)?;
                    let cand = (x_n.at(t)? + (r * &b_hn)?)?.tanh()?;
                    (&cand - (z * &cand)?)?
                }
                Some(prev) => {
                    let z = candle_nn::ops::sigmoid(&(x_z.at(t)? + prev.matmul(&h_z)?)?)?;
                    let r = candle_nn::ops::sigmoid(&(x_r.at(t)? + prev.matmul(&h_r)?)?)?;
                    let cand = (x_n.at(t)? + (r * (prev.matmul(&h_n)? + &b_hn)?)?)?.tanh()?;
                    (&cand + (z * (prev - &cand)?)?)?
                }
            };
            states.push(next);
        }
        Tensor::stack(&states, 1)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;

    use super::*;
    use crate::models::tests::{assert_gradients_match, random_varmap, values};
    use crate::spec::ModelSpec;

    fn spec(input: SequenceInput) -> GruSpec {
        GruSpec {
            input,
            hidden: 3,
            outputs: 2,
        }
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn outputs_a_readout_at_every_step() {
        let dev = Device::Cpu;
        for input in [
            SequenceInput::Tokens { vocab: 5 },
            SequenceInput::Dense { dim: 4 },
        ] {
            let s = spec(input);
            let vm = random_varmap(&ModelSpec::Gru(s.clone()), 1, DType::F32);
            let gru = Gru::new(&s, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
            let x = match input {
                SequenceInput::Tokens { .. } => {
                    Input::Tokens(Tensor::new(&[[0u32, 1, 4, 2], [3, 3, 0, 1]], &dev).unwrap())
                }
                SequenceInput::Dense { dim } => {
                    Input::Sequence(Tensor::ones((2, 4, dim), DType::F32, &dev).unwrap())
                }
            };
            assert_eq!(gru.forward(&x).unwrap().dims(), &[2, 4, 2]);
            let wrong = Input::Context(Tensor::new(&[[0u32, 1]], &dev).unwrap());
            let err = gru.forward(&wrong).unwrap_err().to_string();
            assert!(err.contains("the GRU reads"), "{err}");
        }
    }

    /// Two steps of tokens (and of the same tokens one-hot as dense
    /// vectors) against PyTorch's GRU equations written out with `Vec`s.
    #[test]
    fn steps_match_pytorch_equations_by_hand() {
        let dev = Device::Cpu;
        let (vocab, hid, outs) = (3usize, 3usize, 2usize);
        let s = spec(SequenceInput::Tokens { vocab });
        let vm = random_varmap(&ModelSpec::Gru(s.clone()), 2, DType::F32);
        let (w_ih, w_hh) = (values(&vm, "w_ih"), values(&vm, "w_hh"));
        let (b_ih, b_hh) = (values(&vm, "b_ih"), values(&vm, "b_hh"));
        let (w_out, b_out) = (values(&vm, "w_out"), values(&vm, "b_out"));
        let tokens = [1usize, 2];
        let mut h = vec![0.0f64; hid];
        let mut want = Vec::new();
        for &tok in &tokens {
            // Row `g * hid + i` is unit i of gate g (r, z, n).
            let gi = |g: usize, i: usize| w_ih[(g * hid + i) * vocab + tok] + b_ih[g * hid + i];
            let gh = |g: usize, i: usize| {
                let row = g * hid + i;
                b_hh[row] + (0..hid).map(|j| w_hh[row * hid + j] * h[j]).sum::<f64>()
            };
            let next: Vec<f64> = (0..hid)
                .map(|i| {
                    let r = sigmoid(gi(0, i) + gh(0, i));
                    let z = sigmoid(gi(1, i) + gh(1, i));
                    let n = (gi(2, i) + r * gh(2, i)).tanh();
                    (1.0 - z) * n + z * h[i]
                })
                .collect();
            h = next;
            want.extend(
                (0..outs)
                    .map(|o| b_out[o] + (0..hid).map(|j| w_out[o * hid + j] * h[j]).sum::<f64>()),
            );
        }

        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let by_tokens = Gru::new(&s, vb.clone()).unwrap();
        let by_dense = Gru::new(&spec(SequenceInput::Dense { dim: vocab }), vb).unwrap();
        let ids = Tensor::new(&[[1u32, 2]], &dev).unwrap();
        let one_hot = Tensor::new(&[[[0f32, 1., 0.], [0., 0., 1.]]], &dev).unwrap();
        for got in [
            by_tokens.forward(&Input::Tokens(ids)).unwrap(),
            by_dense.forward(&Input::Sequence(one_hot)).unwrap(),
        ] {
            let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((f64::from(*g) - w).abs() < 1e-5, "{got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev = Device::Cpu;
        for input in [
            SequenceInput::Tokens { vocab: 4 },
            SequenceInput::Dense { dim: 2 },
        ] {
            let s = spec(input);
            let vm = random_varmap(&ModelSpec::Gru(s.clone()), 3, DType::F64);
            let gru = Gru::new(&s, VarBuilder::from_varmap(&vm, DType::F64, &dev)).unwrap();
            let x = match input {
                SequenceInput::Tokens { .. } => {
                    Input::Tokens(Tensor::new(&[[1u32, 3, 0], [2, 2, 1]], &dev).unwrap())
                }
                SequenceInput::Dense { .. } => Input::Sequence(
                    Tensor::new(&[[[0.5f64, -1.], [1., 0.2], [-0.3, 0.8]]], &dev).unwrap(),
                ),
            };
            assert_gradients_match(
                &vm,
                || gru.forward(&x),
                &["w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out"],
            );
        }
    }
}
