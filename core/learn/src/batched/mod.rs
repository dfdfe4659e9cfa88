//! The population-batched tensor path: the lifetimes of many MLPs (and MLP
//! language models) of one architecture run in lockstep on candle tensors,
//! on any device. It is the path MLPs take on CUDA ([`crate::path_for`]);
//! on the CPU the per-organism fast path is faster, and this one runs only
//! where it is asked for ([`crate::Path::Batched`]).
//!
//! # Layout
//!
//! A chunk of `P` organisms keeps its weights in one `[P, N]` variable:
//! row `p` is organism `p`'s parameters, flattened in
//! [`ModelSpec::params`] order (`N` values). The optimiser's moments, the
//! masks (1 where a parameter has none) and the sign constraints (0: free)
//! are `[P, N]` tensors beside it, and the per-organism hyper-parameters
//! (learning rate with its schedule, momentum, weight decay, Adam's bias
//! corrections) are `[P, 1]` columns. Layer `l` reads its weight as the
//! slice of the row it owns, reshaped to `[P, out, in]`, and multiplies the
//! `[P, rows, in]` activations by its transpose: one batched matmul per
//! layer per step. Parameters are converted to and from this layout only
//! at the edges (birth, curve points with probe sets, the end).
//!
//! Each step gathers every organism's own minibatch by its own indices:
//! the chunk's distinct train and held-out batches are uploaded once (a
//! batch the organisms share, once), and each step sends the `[P · batch]`
//! row indices (u32) to the device, which gathers the rows. For a language
//! model the host sends the context's token ids instead, offset by
//! `p · vocab` into the `[P · vocab, dim]` stack of embedding tables.
//!
//! The loss of each organism is the fast path's (the mean over its
//! minibatch); the backward pass runs on their sum, whose gradient with
//! respect to an organism's weights is that organism's own. Then, as
//! [`crate::optim::update`] does it, operation for operation: mask the
//! gradient, clip it to the organism's own global norm (summed in f64),
//! update, mask, project onto the signs. An organism whose lifetime has
//! ended, or whose loss was not finite (then or before), keeps its weights
//! (a per-organism `where`): nothing an organism computes depends on the
//! other organisms of its chunk. The host reads the per-step losses back
//! only at curve points, where it replays the bookkeeping of the lifetime
//! loop every other path runs (`lifetime::live`) for each organism.
//!
//! Held-out losses are computed on the device in the same layout, for the
//! organisms that record a curve point at that step, up to `EVAL_ROWS`
//! examples per organism per pass (organisms with different numbers of
//! examples left go in separate passes, so that no organism's score
//! depends on the others'), and summed on the host in f64. Probe sets are
//! scored on the host from the weights read back, by the code every path
//! uses.
//!
//! # Chunking
//!
//! [`train`] sorts the jobs by lifetime length (longest first, so a chunk's
//! organisms end together) and cuts them into chunks whose estimated
//! memory ([`organism_bytes`]) fits a budget ([`plan_chunks`]). The budget
//! is [`DEFAULT_BUDGET`] on every device ([`memory_budget`]), a constant
//! rather than the device's free memory: candle does not report it
//! (cudarc's `mem_get_info` does, in builds with the `cuda` feature only),
//! and a constant keeps a run's chunks, and so its records, independent
//! of what else the device holds.
//!
//! # Equivalence
//!
//! An organism's [`Outcome`] is the one the fast path computes for it
//! alone, up to floating-point summation order (matmuls, softmax sums):
//! same curve steps, same status and divergence step, and weights, curve
//! values and probe values within 1e-5 as `max |a - b| / max(|b|, 1)`
//! over all of them (the tests below, on the CPU, measure 1e-7 to 2e-7 for
//! SGD, Adam and AdamW alike). On the CPU it is also the same bit for bit
//! whatever the chunking and whoever shares its chunk; on CUDA that holds
//! as far as cuBLAS picks the same kernels for every batch count, which is
//! not checked here.
//!
//! Built on the lifetime loop's bookkeeping (`lifetime`); its
//! tensors are candle's own, not [`crate::models`]'.

use candle_core::Device;
use lineage_env::Batch;

use crate::spec::{Loss, MlpSpec, ModelSpec};
use crate::{Job, LearnError, LifetimeSpec, Outcome};

mod chunk;
mod net;
mod upload;

use chunk::run_chunk;

/// Memory a chunk may take when the device says nothing better: 1 GiB.
pub const DEFAULT_BUDGET: usize = 1 << 30;

/// Held-out examples per organism in one scoring pass.
pub(super) const EVAL_ROWS: usize = 256;

/// Copies of the `N` parameters one organism holds at the peak of a step:
/// the weights, their gradient, two moments, mask, signs, the layers'
/// reshaped copies, the gradient's padded pieces, the gradient in f64 for
/// the norm (two), and the update's temporaries.
pub(super) const PARAM_COPIES: usize = 14;

/// Copies of one example's activations (every layer's width) per training
/// row: pre-activations, activations, their gradients, and the loss's
/// temporaries.
pub(super) const TRAIN_COPIES: usize = 6;

/// The same per held-out row (no gradients).
pub(super) const EVAL_COPIES: usize = 3;

/// The memory budget for a chunk on `device`: [`DEFAULT_BUDGET`] on every
/// device (see the module docs).
pub fn memory_budget(_device: &Device) -> usize {
    DEFAULT_BUDGET
}

/// Estimated peak bytes one organism takes in a chunk: its parameters and
/// optimiser state (`PARAM_COPIES` copies), its minibatch's activations
/// (`TRAIN_COPIES` per unit per row) and a scoring pass's (`EVAL_COPIES`
/// per unit per row), and `data_values` values of data on the device, all
/// f32.
pub fn organism_bytes(spec: &MlpSpec, batch: usize, data_values: usize) -> usize {
    let params: usize = ModelSpec::Mlp(spec.clone())
        .params()
        .iter()
        .map(|p| p.len())
        .sum();
    let units: usize = spec.widths.iter().sum();
    let values = PARAM_COPIES * params
        + (TRAIN_COPIES * batch + EVAL_COPIES * EVAL_ROWS) * units
        + data_values;
    4 * values
}

/// Cuts organisms of the given sizes (bytes, in order) into consecutive
/// chunks whose sizes sum to at most `budget`; every chunk holds at least
/// one organism. Returns the chunks' lengths.
pub fn plan_chunks(sizes: &[usize], budget: usize) -> Vec<usize> {
    let mut chunks = Vec::new();
    let (mut len, mut bytes) = (0usize, 0usize);
    for &size in sizes {
        if len > 0 && bytes.saturating_add(size) > budget {
            chunks.push(len);
            (len, bytes) = (0, 0);
        }
        len += 1;
        bytes = bytes.saturating_add(size);
    }
    if len > 0 {
        chunks.push(len);
    }
    chunks
}

/// Runs every job's lifetime on the batched path, chunk by chunk within
/// `budget` bytes, and returns the outcomes in job order.
pub fn train(
    spec: &MlpSpec,
    loss: Loss,
    life: &LifetimeSpec,
    device: &Device,
    jobs: Vec<Job<'_>>,
    budget: usize,
) -> Result<Vec<Outcome>, LearnError> {
    if life.batch == 0 {
        return Err(unsupported("a minibatch of 0 examples"));
    }
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].hyper.steps));
    let sizes: Vec<usize> = order
        .iter()
        .map(|&i| {
            let data = values_on_device(jobs[i].train) + values_on_device(jobs[i].heldout);
            organism_bytes(spec, life.batch, data)
        })
        .collect();
    let mut slots: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; slots.len()];
    let mut at = 0;
    for len in plan_chunks(&sizes, budget) {
        let ids = &order[at..at + len];
        let chunk: Vec<Job> = ids
            .iter()
            .map(|&i| slots[i].take().expect("each job is in one chunk"))
            .collect();
        for (&i, outcome) in ids.iter().zip(run_chunk(spec, loss, life, device, &chunk)?) {
            outcomes[i] = Some(outcome);
        }
        at += len;
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every job is in a chunk"))
        .collect())
}

pub(super) fn unsupported(what: &str) -> LearnError {
    LearnError::Unsupported(format!("the batched path cannot train {what}"))
}

/// Values of `batch` the device holds (token batches stay on the host).
pub(super) fn values_on_device(batch: &Batch) -> usize {
    match batch {
        Batch::Dense { x, y, .. } => x.len() + y.len(),
        Batch::Labeled { x, labels, .. } => x.len() + labels.len(),
        Batch::Tokens { .. } | Batch::Sequences { .. } => 0,
    }
}

#[cfg(test)]
mod tests;
