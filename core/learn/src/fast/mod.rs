//! The fast CPU paths: MLPs (and MLP language models), leaky RNNs and causal
//! transformers trained with hand-written forward and backward passes on
//! the `gemm` crate and the AVX2 kernel, one organism per core, in buffers
//! allocated once per lifetime.
//!
//! Built on [`crate::kernels`] (matrix products, AVX2 dispatch) and the
//! lifetime loop ([`crate::lifetime`]); the models' arithmetic is that of
//! [`crate::models`] up to summation order, which the tests hold them to.
//!
//! - `activation`: nonlinearities and `exp`;
//! - `mlp`: the MLP path;
//! - `seq`: what the sequence paths share (the `SequenceModel` trait and the
//!   lifetime around it);
//! - `rnn`, `transformer`: the sequence models.

pub(crate) mod activation;
pub(crate) mod mlp;
pub(crate) mod rnn;
pub(crate) mod seq;
pub(crate) mod transformer;

pub(crate) use crate::kernels::{View, matmul, wide};
pub(crate) use activation::{activate, activate_backward};

use crate::LifetimeSpec;
use crate::optim::{self, Hyper};

/// Gradients and optimiser moments, shaped like the parameters.
pub(crate) struct OptimizerState {
    pub(crate) grads: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl OptimizerState {
    pub(crate) fn new(params: &[Vec<f32>]) -> OptimizerState {
        let zeros: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        OptimizerState {
            grads: zeros.clone(),
            m: zeros.clone(),
            v: zeros,
        }
    }

    /// Masks, clips and applies optimiser step `step`, then projects onto
    /// the sign constraints.
    pub(crate) fn step(
        &mut self,
        life: &LifetimeSpec,
        hyper: &Hyper,
        step: u32,
        params: &mut [Vec<f32>],
        masks: &[Option<Vec<f32>>],
        signs: &[Option<Vec<f32>>],
    ) {
        step_all(
            life,
            hyper,
            step,
            params,
            &mut self.grads,
            &mut self.m,
            &mut self.v,
            masks,
            signs,
        );
    }
}

/// Masks, clips and applies one optimiser step to every parameter, then
/// projects onto the sign constraints.
fn step_all(
    life: &LifetimeSpec,
    hyper: &Hyper,
    step: u32,
    params: &mut [Vec<f32>],
    grads: &mut [Vec<f32>],
    m: &mut [Vec<f32>],
    v: &mut [Vec<f32>],
    masks: &[Option<Vec<f32>>],
    signs: &[Option<Vec<f32>>],
) {
    for (g, mask) in grads.iter_mut().zip(masks) {
        if let Some(mask) = mask {
            g.iter_mut().zip(mask).for_each(|(g, &k)| *g *= k);
        }
    }
    if let Some(max) = life.optimizer.clip {
        let norm = grads
            .iter()
            .flat_map(|g| g.iter())
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>()
            .sqrt() as f32;
        let scale = optim::clip_scale(norm, max);
        if scale < 1.0 {
            grads
                .iter_mut()
                .flat_map(|g| g.iter_mut())
                .for_each(|g| *g *= scale);
        }
    }
    let lr = hyper.lr * life.optimizer.schedule.factor(step, hyper.steps);
    for i in 0..params.len() {
        optim::update(
            &life.optimizer,
            hyper,
            lr,
            step + 1,
            &mut params[i],
            &grads[i],
            &mut m[i],
            &mut v[i],
            masks[i].as_deref(),
            signs[i].as_deref(),
        );
    }
}
