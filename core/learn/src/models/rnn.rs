//! The leaky recurrent network on candle, and the step-by-step input
//! terms and bias-carrying linear layer the sequence models share.
//!
//! `h[t+1] = act((1 - a) h[t] + a (W_in x[t] + W_rec h[t] + b))` from
//! `h[0] = 0`, read out at every step by `y[t] = W_out h[t+1] + b_out`.
//! The leak is folded into the weights once per call, `a W_in`, `a b` and
//! `a W_rec^T + (1 - a) I`, so a step costs its input term (a row lookup
//! for tokens, a matmul for dense inputs), one `[n, H] x [H, H]` matmul,
//! an add and the nonlinearity. The readout of all steps is one matmul
//! after the loop.
//!
//! Two candle costs shape this code. Slicing one step out of a tensor
//! computed for all steps (`get`, `narrow`) has a backward that pads the
//! step's gradient with zeros to the whole tensor, so a loop over `T`
//! steps would cost `O(T^2)` in the backward pass; each step's input term
//! is therefore computed from the input itself ([`StepInputs`]). And the
//! CPU backward of a broadcast sums over leading dimensions with a slow
//! per-element loop, so biases are spread over rows with a matmul
//! ([`spread`]).

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::Input;
use super::mlp::activate;
use crate::family::{Family, Layer, Module, Reads, describe_input, over_steps};
use crate::spec::{Activation, ParamInfo, RnnSpec, Role, SequenceInput};

impl Family for RnnSpec {
    fn kind(&self) -> &str {
        "rnn"
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut p = vec![
            ParamInfo::matrix("w_in", self.hidden, self.input.width()),
            ParamInfo::matrix("w_rec", self.hidden, self.hidden),
        ];
        if self.bias {
            p.push(ParamInfo::vector("b", self.hidden, Role::Bias));
        }
        p.push(ParamInfo::matrix("w_out", self.outputs, self.hidden));
        if self.bias {
            p.push(ParamInfo::vector("b_out", self.outputs, Role::Bias));
        }
        p
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
        over_steps(steps, &[(self.hidden, 2), (self.outputs, 1)])
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "rnn",
            "input": describe_input(self.input),
            "hidden": self.hidden,
            "outputs": self.outputs,
            "alpha": self.alpha,
            "activation": format!("{:?}", self.activation).to_lowercase(),
            "bias": self.bias,
        })
    }

    fn build(&self, vb: VarBuilder) -> candle_core::Result<Box<dyn Module>> {
        Ok(Box::new(Rnn::new(self, vb)?))
    }
}

impl Module for Rnn {
    fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        Rnn::forward(self, input)
    }

    fn hidden(&self, input: &Input, _index: usize) -> candle_core::Result<Tensor> {
        self.states(input)
    }
}

/// A leaky RNN with a linear readout at every step.
#[derive(Debug)]
pub struct Rnn {
    input: SequenceInput,
    w_in: Tensor,
    w_rec: Tensor,
    b: Option<Tensor>,
    readout: Dense,
    alpha: f64,
    activation: Activation,
}

impl Rnn {
    /// Builds the RNN from `w_in`, `w_rec`, `b`, `w_out` and `b_out` (the
    /// biases only when `spec.bias`).
    pub fn new(spec: &RnnSpec, vb: VarBuilder) -> candle_core::Result<Rnn> {
        let h = spec.hidden;
        let w_in = vb.get((h, spec.input.width()), "w_in")?;
        let w_rec = vb.get((h, h), "w_rec")?;
        let b = if spec.bias {
            Some(vb.get(h, "b")?)
        } else {
            None
        };
        let w_out = vb.get((spec.outputs, h), "w_out")?;
        let b_out = if spec.bias {
            Some(vb.get(spec.outputs, "b_out")?)
        } else {
            None
        };
        Ok(Rnn {
            input: spec.input,
            w_in,
            w_rec,
            b,
            readout: Dense::new(w_out, b_out),
            alpha: f64::from(spec.alpha),
            activation: spec.activation,
        })
    }

    /// Outputs `[n, steps, outputs]`: the readout after every step.
    pub fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        let states = self.states(input)?;
        let (n, steps, hidden) = states.dims3()?;
        self.readout
            .forward(&states.reshape((n * steps, hidden))?)?
            .reshape((n, steps, ()))
    }

    /// The state after every step, `h[1..=steps]`, `[n, steps, hidden]`:
    /// what [`Rnn::forward`] reads out.
    pub(crate) fn states(&self, input: &Input) -> candle_core::Result<Tensor> {
        let a = self.alpha;
        let inputs = StepInputs::new("RNN", self.input, input, self.w_in.dtype())?;
        let steps = inputs.steps;
        let hidden = self.w_rec.dim(0)?;
        let (drive, rec) = if a == 1.0 {
            (
                inputs.project(&self.w_in, self.b.as_ref())?,
                self.w_rec.t()?,
            )
        } else {
            let b = self.b.as_ref().map(|b| b.affine(a, 0.0)).transpose()?;
            let eye = Tensor::eye(hidden, self.w_rec.dtype(), self.w_rec.device())?;
            (
                inputs.project(&self.w_in.affine(a, 0.0)?, b.as_ref())?,
                (self.w_rec.t()?.affine(a, 0.0)? + eye.affine(1.0 - a, 0.0)?)?,
            )
        };
        let mut states: Vec<Tensor> = Vec::with_capacity(steps);
        for t in 0..steps {
            let x = drive.at(t)?;
            let pre = match states.last() {
                None => x,
                Some(h) => (h.matmul(&rec)? + x)?,
            };
            states.push(activate(self.activation, &pre)?);
        }
        Tensor::stack(&states, 1)
    }
}

/// A batch of sequences read one step at a time: token ids time-major
/// `[steps, n]`, or real vectors time-major `[steps, n, dim]` (constants:
/// slicing them costs nothing in the backward pass).
pub(super) struct StepInputs {
    /// Sequences.
    pub(super) n: usize,
    /// Steps per sequence.
    pub(super) steps: usize,
    source: Source,
}

enum Source {
    Tokens(Tensor),
    Dense(Tensor),
}

/// The input term `W x[t] + b` of every step, ready to take one step at a
/// time: for tokens the table `W^T + b` whose rows are looked up, for
/// dense inputs `W^T` and `b` spread over the `n` rows.
pub(super) struct Projection<'a> {
    inputs: &'a StepInputs,
    table: Tensor,
    bias: Option<Tensor>,
}

impl StepInputs {
    /// Checks that `input` is what a model reading `reads` takes (the
    /// message names `model`), and lays it out by step; real values are
    /// converted to `dtype`.
    pub(super) fn new(
        model: &str,
        reads: SequenceInput,
        input: &Input,
        dtype: DType,
    ) -> candle_core::Result<StepInputs> {
        let (n, steps, source) = match (reads, input) {
            (SequenceInput::Tokens { .. }, Input::Tokens(tokens)) => {
                let (n, steps) = tokens.dims2()?;
                (n, steps, Source::Tokens(tokens.t()?.contiguous()?))
            }
            (SequenceInput::Dense { dim }, Input::Sequence(x)) => {
                let (n, steps, width) = x.dims3()?;
                if width != dim {
                    candle_core::bail!(
                        "the {model} reads {dim} values per step but the input sequence has {width}"
                    );
                }
                let x = x.to_dtype(dtype)?.transpose(0, 1)?.contiguous()?;
                (n, steps, Source::Dense(x))
            }
            (SequenceInput::Tokens { vocab }, _) => candle_core::bail!(
                "the {model} reads token sequences [n, steps] (u32, vocabulary {vocab}), not this input"
            ),
            (SequenceInput::Dense { dim }, _) => candle_core::bail!(
                "the {model} reads real sequences [n, steps, {dim}], not this input"
            ),
        };
        if steps == 0 {
            candle_core::bail!("the {model} needs sequences of at least one step");
        }
        Ok(StepInputs { n, steps, source })
    }

    /// Prepares the input term `W x[t] + b` for `w` `[K, width]` and `b`
    /// `[K]`.
    pub(super) fn project(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
    ) -> candle_core::Result<Projection<'_>> {
        let (table, bias) = match (&self.source, b) {
            // One-hot x: W x + b is a column of W plus b.
            (Source::Tokens(_), Some(b)) => ((w.t()? + spread(b, w.dim(1)?)?)?, None),
            (Source::Tokens(_), None) => (w.t()?.contiguous()?, None),
            (Source::Dense(_), b) => (w.t()?, b.map(|b| spread(b, self.n)).transpose()?),
        };
        Ok(Projection {
            inputs: self,
            table,
            bias,
        })
    }
}

impl Projection<'_> {
    /// Step `t`'s input term, `[n, K]`.
    pub(super) fn at(&self, t: usize) -> candle_core::Result<Tensor> {
        match &self.inputs.source {
            Source::Tokens(ids) => self.table.embedding(&ids.get(t)?),
            Source::Dense(x) => {
                let term = x.get(t)?.matmul(&self.table)?;
                match &self.bias {
                    Some(b) => term + b,
                    None => Ok(term),
                }
            }
        }
    }
}

/// A linear layer `x W^T + b` on rows `[m, in]`, its bias added through
/// [`spread`].
#[derive(Debug)]
pub(super) struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    pub(super) fn new(weight: Tensor, bias: Option<Tensor>) -> Dense {
        Dense { weight, bias }
    }

    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => &y + spread(b, y.dim(0)?)?,
            None => Ok(y),
        }
    }
}

/// `m` rows, each the vector `v` `[k]`, made as the matmul
/// `ones[m, 1] v[1, k]`. Adding (or multiplying by) this instead of
/// broadcasting `v` gives the same values, but candle's CPU backward of a
/// broadcast sums over the leading dimension with a per-element index
/// loop (a fifth of a small transformer's training step); the matmul's
/// backward is one gemm.
pub(super) fn spread(v: &Tensor, m: usize) -> candle_core::Result<Tensor> {
    Tensor::ones((m, 1), v.dtype(), v.device())?.matmul(&v.unsqueeze(0)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;

    use super::*;
    use crate::models::tests::{assert_gradients_match, random_varmap, values};
    use crate::spec::ModelSpec;

    fn spec(input: SequenceInput, activation: Activation) -> RnnSpec {
        RnnSpec {
            input,
            hidden: 3,
            outputs: 2,
            alpha: 0.5,
            activation,
            bias: true,
        }
    }

    #[test]
    fn outputs_a_readout_at_every_step() {
        let dev = Device::Cpu;
        for input in [
            SequenceInput::Tokens { vocab: 5 },
            SequenceInput::Dense { dim: 4 },
        ] {
            let s = spec(input, Activation::Relu);
            let vm = random_varmap(&ModelSpec::Rnn(s.clone()), 1, DType::F32);
            let rnn = Rnn::new(&s, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
            let x = match input {
                SequenceInput::Tokens { .. } => {
                    Input::Tokens(Tensor::new(&[[0u32, 1, 4, 2], [3, 3, 0, 1]], &dev).unwrap())
                }
                SequenceInput::Dense { dim } => {
                    Input::Sequence(Tensor::ones((2, 4, dim), DType::F32, &dev).unwrap())
                }
            };
            assert_eq!(rnn.forward(&x).unwrap().dims(), &[2, 4, 2]);
            let wrong = Input::Dense(Tensor::ones((2, 4), DType::F32, &dev).unwrap());
            let err = rnn.forward(&wrong).unwrap_err().to_string();
            assert!(err.contains("the RNN reads"), "{err}");
        }
    }

    /// Two steps of tokens (and of the same tokens one-hot as dense
    /// vectors) against the equation written out with plain `Vec`s.
    #[test]
    fn steps_match_the_equation_by_hand() {
        let dev = Device::Cpu;
        let (vocab, hid, outs, a) = (3usize, 3usize, 2usize, 0.5f64);
        let s = spec(SequenceInput::Tokens { vocab }, Activation::Tanh);
        let vm = random_varmap(&ModelSpec::Rnn(s.clone()), 2, DType::F32);
        let (w_in, w_rec, b) = (values(&vm, "w_in"), values(&vm, "w_rec"), values(&vm, "b"));
        let (w_out, b_out) = (values(&vm, "w_out"), values(&vm, "b_out"));
        let tokens = [2usize, 0];
        let mut h = vec![0.0f64; hid];
        let mut want = Vec::new();
        for &tok in &tokens {
            h = (0..hid)
                .map(|i| {
                    let rec: f64 = (0..hid).map(|j| w_rec[i * hid + j] * h[j]).sum();
                    let drive = w_in[i * vocab + tok] + rec + b[i];
                    ((1.0 - a) * h[i] + a * drive).tanh()
                })
                .collect();
            want.extend(
                (0..outs)
                    .map(|o| b_out[o] + (0..hid).map(|j| w_out[o * hid + j] * h[j]).sum::<f64>()),
            );
        }

        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let by_tokens = Rnn::new(&s, vb.clone()).unwrap();
        let ids = Tensor::new(&[[2u32, 0]], &dev).unwrap();
        let dense_spec = spec(SequenceInput::Dense { dim: vocab }, Activation::Tanh);
        let by_dense = Rnn::new(&dense_spec, vb).unwrap();
        let one_hot = Tensor::new(&[[[0f32, 0., 1.], [1., 0., 0.]]], &dev).unwrap();
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
            let s = spec(input, Activation::Tanh);
            let model = ModelSpec::Rnn(s.clone());
            let vm = random_varmap(&model, 3, DType::F64);
            let rnn = Rnn::new(&s, VarBuilder::from_varmap(&vm, DType::F64, &dev)).unwrap();
            let x = match input {
                SequenceInput::Tokens { .. } => {
                    Input::Tokens(Tensor::new(&[[1u32, 3, 0], [2, 2, 1]], &dev).unwrap())
                }
                SequenceInput::Dense { .. } => Input::Sequence(
                    Tensor::new(&[[[0.5f64, -1.], [1., 0.2], [-0.3, 0.8]]], &dev).unwrap(),
                ),
            };
            assert_gradients_match(&vm, || rnn.forward(&x), &["w_in", "w_rec", "b", "w_out"]);
        }
    }
}
