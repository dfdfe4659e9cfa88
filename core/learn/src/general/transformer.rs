//! The Transformer on candle (placeholder until implemented).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::Input;
use crate::spec::TransformerSpec;

/// Placeholder.
#[derive(Debug)]
pub struct Transformer;

impl Transformer {
    /// Builds the model.
    pub fn new(_spec: &TransformerSpec, _vb: VarBuilder) -> candle_core::Result<Transformer> {
        candle_core::bail!("not implemented yet")
    }

    /// Outputs.
    pub fn forward(&self, _input: &Input) -> candle_core::Result<Tensor> {
        candle_core::bail!("not implemented yet")
    }
}
