//! The causal bag: a linear readout of the running mean of the embedded
//! inputs, the smallest sequence model that learns, and the registered
//! family that shows how one is added (ARCHITECTURE.md, "Adding a model
//! family").
//!
//! ```text
//! e[t] = E x[t]                      (a row of `embed` for tokens, `w_in x[t]` for real inputs)
//! m[t] = (e[0] + ... + e[t]) / (t + 1)
//! y[t] = W_out m[t] + b_out
//! ```
//!
//! It sees which inputs came so far but not their order: a baseline
//! against which order-sensitive models (RNN, transformer) show what order
//! buys. A scenario names it as `kind = "bag"` with `dim`, the width of
//! the embedding; what it reads and answers comes from the environment.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use lineage_env::Task;

use super::Input;
use crate::family::{
    Family, FieldError, Fields, Layer, Module, Reads, Registered, Registration, answer_width,
    describe_input, over_steps, sequence_input,
};
use crate::spec::{ParamInfo, Role, SequenceInput};

/// How a scenario names the bag.
pub(super) const REGISTRATION: Registration = Registration {
    kind: "bag",
    summary: "a linear readout of the running mean of the embedded inputs",
    new,
};

fn new(fields: &mut Fields, task: &Task) -> Result<Registered, FieldError> {
    Ok(Registered::new(BagSpec {
        input: sequence_input("bag", task)?,
        dim: fields.positive("dim")?,
        outputs: answer_width(task),
    }))
}

/// A causal bag of inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BagSpec {
    /// What it reads at each step.
    pub input: SequenceInput,
    /// Width of the embedding (and of the running mean).
    pub dim: usize,
    /// Readout width.
    pub outputs: usize,
}

impl Family for BagSpec {
    fn kind(&self) -> &str {
        "bag"
    }

    fn params(&self) -> Vec<ParamInfo> {
        let embed = match self.input {
            SequenceInput::Tokens { vocab } => ParamInfo {
                name: "embed".into(),
                shape: vec![vocab, self.dim],
                role: Role::Embedding,
            },
            SequenceInput::Dense { dim } => ParamInfo::matrix("w_in", self.dim, dim),
        };
        vec![
            embed,
            ParamInfo::matrix("w_out", self.outputs, self.dim),
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
        vec![Layer::new("mean", self.dim)]
    }

    fn kept_per_example(&self, steps: u64) -> u64 {
        over_steps(steps, &[(self.dim, 2), (self.outputs, 1)])
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "bag",
            "input": describe_input(self.input),
            "dim": self.dim,
            "outputs": self.outputs,
        })
    }

    fn build(&self, vb: VarBuilder) -> candle_core::Result<Box<dyn Module>> {
        let embed = match self.input {
            SequenceInput::Tokens { vocab } => vb.get((vocab, self.dim), "embed")?,
            // Stored `[dim, inputs]` like every weight; kept as `[inputs, dim]`.
            SequenceInput::Dense { dim } => vb.get((self.dim, dim), "w_in")?.t()?,
        };
        Ok(Box::new(Bag {
            spec: *self,
            embed,
            w_out: vb.get((self.outputs, self.dim), "w_out")?,
            b_out: vb.get(self.outputs, "b_out")?,
        }))
    }
}

/// The bag's candle module.
#[derive(Debug)]
pub struct Bag {
    spec: BagSpec,
    /// `[vocab, dim]` for tokens, `[inputs, dim]` for real inputs.
    embed: Tensor,
    w_out: Tensor,
    b_out: Tensor,
}

impl Bag {
    /// The running means `[n, steps, dim]`.
    fn means(&self, input: &Input) -> candle_core::Result<Tensor> {
        let (n, steps, e) = match (self.spec.input, input) {
            (SequenceInput::Tokens { .. }, Input::Tokens(tokens)) => {
                let (n, steps) = tokens.dims2()?;
                (n, steps, self.embed.embedding(&tokens.flatten_all()?)?)
            }
            (SequenceInput::Dense { dim }, Input::Sequence(x)) => {
                let (n, steps, width) = x.dims3()?;
                if width != dim {
                    candle_core::bail!(
                        "the bag reads {dim} values per step but the input sequence has {width}"
                    );
                }
                let rows = x.to_dtype(self.embed.dtype())?.reshape((n * steps, dim))?;
                (n, steps, rows.matmul(&self.embed)?)
            }
            _ => candle_core::bail!("the bag cannot read this input"),
        };
        if steps == 0 {
            candle_core::bail!("the bag needs sequences of at least one step");
        }
        let d = self.spec.dim;
        // Time-major `[steps, n * d]`, averaged by one matmul with the
        // lower-triangular `A[t, s] = 1 / (t + 1)` for `s <= t`.
        let by_step = e
            .reshape((n, steps, d))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((steps, n * d))?;
        let average: Vec<f32> = (0..steps)
            .flat_map(|t| (0..steps).map(move |s| if s <= t { 1.0 / (t + 1) as f32 } else { 0.0 }))
            .collect();
        let average = Tensor::from_vec(average, (steps, steps), e.device())?.to_dtype(e.dtype())?;
        average
            .matmul(&by_step)?
            .reshape((steps, n, d))?
            .transpose(0, 1)?
            .contiguous()
    }
}

impl Module for Bag {
    fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        let means = self.means(input)?;
        let (n, steps, d) = means.dims3()?;
        means
            .reshape((n * steps, d))?
            .matmul(&self.w_out.t()?)?
            .broadcast_add(&self.b_out)?
            .reshape((n, steps, self.spec.outputs))
    }

    fn hidden(&self, input: &Input, index: usize) -> candle_core::Result<Tensor> {
        if index != 0 {
            candle_core::bail!("the bag has one hidden layer, `mean`");
        }
        self.means(input)
    }
}

#[cfg(test)]
mod tests;
