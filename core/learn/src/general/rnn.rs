//! The Rnn on candle (placeholder until implemented).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::Input;
use crate::spec::RnnSpec;

/// Placeholder.
#[derive(Debug)]
pub struct Rnn;

impl Rnn {
    /// Builds the model.
    pub fn new(_spec: &RnnSpec, _vb: VarBuilder) -> candle_core::Result<Rnn> {
        candle_core::bail!("not implemented yet")
    }

    /// Outputs.
    pub fn forward(&self, _input: &Input) -> candle_core::Result<Tensor> {
        candle_core::bail!("not implemented yet")
    }
}
