//! The Gru on candle (placeholder until implemented).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::Input;
use crate::spec::GruSpec;

/// Placeholder.
#[derive(Debug)]
pub struct Gru;

impl Gru {
    /// Builds the model.
    pub fn new(_spec: &GruSpec, _vb: VarBuilder) -> candle_core::Result<Gru> {
        candle_core::bail!("not implemented yet")
    }

    /// Outputs.
    pub fn forward(&self, _input: &Input) -> candle_core::Result<Tensor> {
        candle_core::bail!("not implemented yet")
    }
}
