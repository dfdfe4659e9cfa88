//! The population-batched tensor path: the lifetimes of many networks of
//! one architecture (MLPs and MLP language models, leaky RNNs, GRUs,
//! LSTMs, causal transformers) run in lockstep on candle tensors, on any device. It is the path
//! these take on CUDA ([`crate::path_for`]); on the CPU the per-organism
//! paths are faster, and this one runs only where it is asked for
//! ([`crate::Path::Batched`]).
//!
//! # Layout
//!
//! A chunk of `P` organisms keeps its weights in one `[P, N]` variable:
//! row `p` is organism `p`'s parameters, flattened in
//! [`ModelSpec::params`] order (`N` values). The optimiser's moments, the
//! masks (1 where a parameter has none) and the sign constraints (0: free)
//! are `[P, N]` tensors beside it, and the per-organism hyper-parameters
//! (learning rate with its schedule, momentum, weight decay, Adam's bias
//! corrections) are `[P, 1]` columns. A weight matrix is the slice of the
//! row it owns, reshaped to `[P, out, in]`: an MLP multiplies its
//! `[P, rows, in]` activations by its transpose, one batched matmul per
//! layer per step (`mlp.rs`); a recurrent network reads time-major inputs
//! `[T, P, rows, in]` and takes one batched matmul per step for the input
//! side and one for the recurrent side, all gates at once, then the
//! readout of every step in one (`recurrent.rs`); a transformer keeps
//! its residual stream as `[P, rows · T, d]` and attends over `[P · rows
//! · heads, T, hd]` with a causal mask (`transformer.rs`). Back-propagation
//! (through time) is candle's autograd on that graph. Parameters are
//! converted to and from this layout only at the edges (birth, curve
//! points with probe sets, the end).
//!
//! Each step gathers every organism's own minibatch by its own indices
//! (`gather.rs`): the chunk's distinct train and held-out batches of rows
//! or of real sequences are uploaded once (a batch the organisms share,
//! once; sequences in one store per length), and each step sends the
//! `[P · batch]` row indices (u32) to the device, which gathers the rows.
//! For token data (an MLP language model's contexts, a recurrent
//! network's token windows) the host sends the token ids instead, offset
//! by `p · vocab` into the stack of the organisms' embedding (or input
//! weight) tables.
//!
//! The loss of each organism is its own path's: the mean over its
//! minibatch, and for sequences the mean cross-entropy over the scored
//! steps of its minibatch (labels other than `IGNORE`; 0 where none is,
//! as the fast RNN path). The backward pass runs on the sum of the
//! organisms' means, whose gradient with respect to an organism's weights
//! is that organism's own. Then, as [`crate::optim::update`] does it,
//! operation for operation: mask the gradient, clip it to the organism's
//! own global norm (summed in f64), update, mask, project onto the signs.
//! An organism whose lifetime has ended, or whose loss was not finite
//! (then or before), keeps its weights (a per-organism `where`): nothing
//! an organism computes depends on the other organisms of its chunk. The
//! host reads the per-step losses back only at curve points, where it
//! replays the bookkeeping of the lifetime loop every other path runs
//! (`lifetime::live`) for each organism (`run.rs`).
//!
//! Held-out losses are computed on the device in the same layout, for the
//! organisms that record a curve point at that step, up to `EVAL_ROWS`
//! examples per organism per pass (organisms with different numbers of
//! examples left, or sequences of different lengths, go in separate
//! passes, so that no organism's score depends on the others'), and summed
//! on the host in f64: the mean per example, or per scored step of the
//! held-out sequences. Probe sets are scored on the host from the weights
//! read back, by the code every path uses.
//!
//! # Chunking
//!
//! [`train`] groups the jobs by the length of their train sequences (1
//! for an MLP: sequences of one length run in lockstep), sorts each group
//! by lifetime length (longest first, so a chunk's organisms end
//! together) and cuts it into chunks whose estimated memory
//! ([`organism_bytes`]) fits a budget ([`plan_chunks`]). The budget is
//! [`DEFAULT_BUDGET`] on every device ([`memory_budget`]), a constant
//! rather than the device's free memory, so that a run's chunks, and so
//! its records, do not depend on what else the device holds. In CUDA
//! builds the free memory (cudarc's `mem_get_info`, [`free_memory`]) is
//! read once per call only to refuse, before anything runs, a chunk that
//! cannot fit ([`fits`]).
//!
//! # Equivalence
//!
//! An organism's [`Outcome`] is the one its own path computes for it
//! alone (the fast path for MLPs, leaky RNNs and transformers, the
//! general path for
//! GRUs and LSTMs), up to floating-point summation order (matmuls,
//! softmax sums): same curve steps, same status and divergence step, and
//! weights, curve values and probe values within 1e-5 as
//! `max |a - b| / max(|b|, 1)` over all of them. The tests, on the CPU,
//! measure 1e-7 to 2e-7 for MLPs with SGD, Adam and AdamW alike, and 6e-8
//! to 3e-7 for the recurrent networks over 20 steps of 6-step sequences,
//! 1.8e-7 to 3.6e-7 for transformers over 20 steps of 5- and 6-step
//! sequences.
//! On the CPU it is also the same bit for bit whatever the chunking and
//! whoever shares its chunk; on CUDA that holds as far as cuBLAS picks the
//! same kernels for every batch count, which is not checked here.
//!
//! Where the reference paths disagree with each other on sequences, this
//! path follows the fast RNN path, and so differs from the other in cases
//! the tests do not meet: a minibatch (or held-out set) with no scored
//! step scores 0 here and on the fast path, NaN on the general path (the
//! GRU and LSTM diverge there); the general path scores a held-out set of
//! more than 256 sequences by weighting each chunk of 256 by its
//! sequences, where this path and the fast path take the mean over every
//! scored step (which differs where sequences score different numbers of
//! steps); and a held-out set whose sequences have another length than
//! the train set's is scored here and on the general path, NaN on the
//! fast RNN path.
//!
//! Built on the lifetime loop's bookkeeping (`lifetime`); its
//! tensors are candle's own, not [`crate::models`]'.

use candle_core::Device;
use lineage_env::Batch;

use crate::spec::{Loss, ModelSpec, SequenceInput, TransformerSpec};
use crate::{Job, LearnError, LifetimeSpec, Outcome};

mod chunk;
mod gather;
mod mlp;
mod net;
mod recurrent;
mod run;
mod transformer;
mod upload;

use net::Net;
use recurrent::Cell;
use run::run_chunk;

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
/// temporaries. A recurrent net's outputs count the same per step.
pub(super) const TRAIN_COPIES: usize = 6;

/// The same per held-out row (no gradients).
pub(super) const EVAL_COPIES: usize = 3;

/// Values per hidden unit per step that back-propagation through time
/// adds to a recurrent network's forward tensors at its peak: the
/// gradient of each state (from the stack the readout reads), and the
/// gradient candle computes for each step's input, a constant it never
/// frees before the pass ends, with the input term's gradient (`gates ×
/// H`) it was computed from (measured: 4 to 5 for the RNN, GRU and LSTM,
/// see [`organism_bytes`]).
pub(super) const BPTT_COPIES: usize = 5;

/// Values per position of width `d` that one transformer block keeps for
/// the backward pass: `ln1` (the centred input, its square, the
/// normalised, gained and shifted values: 5), `attn.qkv`'s product and
/// the heads' contiguous q, k, v and scaled q (7), the heads' outputs
/// and their regrouped copy (2), `attn.out` and the residual sum (2),
/// `ln2` (5), the MLP's projection, its bias and the residual sum (3).
pub(super) const TF_KEPT_D: usize = 24;

/// The same per hidden unit of the block MLP: `mlp.fc`'s product, its
/// bias, and GELU's five tensors (the square, its affine, the product,
/// the sigmoid, the output).
pub(super) const TF_KEPT_FF: usize = 7;

/// The same per attention score (`heads × T` per position): the scores,
/// the masked scores, less their maximum, their exponential, the
/// probabilities.
pub(super) const TF_KEPT_SCORES: usize = 5;

/// Gradients alive at the transformer's backward peak, per position: one
/// block's worth, counted once (candle frees a node's gradient once it
/// has passed it on): per unit of the stream, of the MLP and per score.
pub(super) const TF_GRAD_D: usize = 8;
/// See [`TF_GRAD_D`].
pub(super) const TF_GRAD_FF: usize = 4;
/// See [`TF_GRAD_D`].
pub(super) const TF_GRAD_SCORES: usize = 4;

/// The shape of one organism's minibatch, as the memory estimate
/// ([`organism_bytes`]) reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    /// Examples per minibatch ([`LifetimeSpec::batch`]).
    pub batch: usize,
    /// Steps per example: the length of a sequence a recurrent network
    /// reads ([`steps_of`]); an MLP ignores it.
    pub steps: usize,
}

/// Steps per sequence of `task`'s examples, as a recurrent network reads
/// them: a sequence's steps, a token window's context; 1 for the rest.
pub fn steps_of(task: &lineage_env::Task) -> usize {
    match task {
        lineage_env::Task::SequenceClassification { steps, .. } => *steps,
        lineage_env::Task::NextToken { context, .. } => *context,
        _ => 1,
    }
}

/// The memory budget for a chunk on `device`: [`DEFAULT_BUDGET`] on every
/// device (see the module docs).
pub fn memory_budget(_device: &Device) -> usize {
    DEFAULT_BUDGET
}

/// Estimated peak bytes one organism of `model` takes in a chunk, all
/// f32: its parameters and optimiser state (`PARAM_COPIES` copies), what
/// one training row and one held-out row keep (`rows.batch` and
/// `EVAL_ROWS` of them), and `data_values` values of data on the device.
///
/// An MLP's row keeps `TRAIN_COPIES` (held out: `EVAL_COPIES`) values per
/// unit of every layer. A recurrent network's training row keeps, at each
/// of its `T = rows.steps` steps, `kept × H` values of the forward pass
/// for back-propagation through time (`kept`: 10 for the RNN, 21 for the
/// GRU, 27 for the LSTM, the tensors counted in `recurrent.rs`), the
/// gradients alive at the backward pass's peak (`BPTT_COPIES × H`),
/// `TRAIN_COPIES × O` for the readout and its loss, and its input twice
/// (gathered, then time-major): `T ((kept + 5) H + 6 O + 2 I)`. A
/// held-out row keeps its states twice (the list and the stack),
/// `EVAL_COPIES` copies of the outputs and its input, and one step's
/// temporaries: `T (2 H + 3 O + 2 I) + kept H`. Token inputs count
/// `I = 1` (an id), and the backward pass of each step's table lookup
/// adds three transient copies of the `vocab × gates H` table to the
/// parameters'.
///
/// A transformer's training sequence keeps, per position, per layer,
/// `24 d + 7 d_ff + 5 heads T` values (the tensors counted at
/// `TF_KEPT_D`, `TF_KEPT_FF`, `TF_KEPT_SCORES`: the attention scores
/// grow with `T`, so a sequence's part grows with `T²`), once the
/// gradients alive at the backward pass's peak (`8 d + 4 d_ff + 4 heads
/// T`), and the input twice, its embedding, positions and `ln_f` (`8 d`),
/// the head layers (5 per unit) and the readout (`TRAIN_COPIES × O`):
/// `T (2 I + 8 d + L (24 d + 7 d_ff + 5 h T) + 8 d + 4 d_ff + 4 h T + 5
/// Σ head + 6 O)`. A held-out sequence (no autograd: one block's
/// temporaries at a time): `T (2 I + 6 d + 3 d_ff + 3 h T + 2 Σ head +
/// 3 O)`. Tokens count `I = 1` and three copies of the `vocab × d` table
/// for its gradient. Measured the same way as the recurrent networks
/// below (4 organisms, minibatches of 32, 256 held-out sequences, Adam,
/// dense inputs of 8 and 8 outputs): the estimate is 1.7 times the peak
/// for the GPT-style default at `d` = 32, 4 heads, 2 layers, `d_ff` = 64
/// and `T` = 16, 1.8 times at `T` = 64, and 2.4 to 2.5 times for
/// Reddy's attention-only model (`d` = 32, one head, head layers 32, 32,
/// 32) at both lengths. Other families (which the batched path does not train)
/// count [`crate::family::Family::kept_per_example`] as an MLP counts its
/// units.
///
/// The training and scoring parts are summed though they never coexist,
/// so the estimate bounds the peak from above. Measured on the CPU (live
/// heap bytes under a counting allocator around [`train`], one chunk of 4
/// organisms, minibatches of 32, 256 held-out sequences, Adam): the
/// estimate is 1.65 to 2.0 times the peak for the RNN, GRU and LSTM at
/// `H` = 32 to 128 and `T` = 8 to 64 (an MLP 64-128-10: 1.6 times; up to
/// 2.9 times for the RNN with one held-out sequence, as the estimate
/// counts `EVAL_ROWS`). At `H` = 128, `T` = 64 and 8 inputs and outputs,
/// less the parameters' part, a training step's peak is 31.6 values per
/// hidden unit per step and sequence for the LSTM (estimated: 32.5,
/// outputs and inputs included), 25.1 for the GRU (26.5) and 11.7 for the
/// ReLU RNN without a leak (15.5).
pub fn organism_bytes(model: &ModelSpec, rows: Rows, data_values: usize) -> usize {
    let params: usize = model.params().iter().map(|p| p.len()).sum();
    let steps = rows.steps.max(1);
    let recurrent = |cell: Cell, input: SequenceInput, hidden: usize, outputs: usize| {
        let (inputs, table) = match input {
            SequenceInput::Dense { dim } => (dim, 0),
            SequenceInput::Tokens { vocab } => (1, 3 * vocab * cell.gates() * hidden),
        };
        let kept = cell.kept() * hidden;
        let train = steps * (kept + BPTT_COPIES * hidden + TRAIN_COPIES * outputs + 2 * inputs);
        let eval = steps * (2 * hidden + EVAL_COPIES * outputs + 2 * inputs) + kept;
        (train, eval, table)
    };
    let rnn = |alpha, activation| Cell::Rnn { alpha, activation };
    let (train, eval, extra) = match model {
        ModelSpec::Mlp(spec) => {
            let units: usize = spec.widths.iter().sum();
            (TRAIN_COPIES * units, EVAL_COPIES * units, 0)
        }
        ModelSpec::Rnn(s) => recurrent(rnn(s.alpha, s.activation), s.input, s.hidden, s.outputs),
        ModelSpec::Gru(s) => recurrent(Cell::Gru, s.input, s.hidden, s.outputs),
        ModelSpec::Lstm(s) => recurrent(Cell::Lstm, s.input, s.hidden, s.outputs),
        ModelSpec::Transformer(s) => transformer_values(s, steps),
        other => {
            let units = other.family().kept_per_example(steps as u64) as usize;
            (TRAIN_COPIES * units, EVAL_COPIES * units, 0)
        }
    };
    let values =
        PARAM_COPIES * params + extra + rows.batch * train + EVAL_ROWS * eval + data_values;
    4 * values
}

/// A transformer's values per training sequence, per held-out sequence,
/// and the parameters' extra (see [`organism_bytes`]).
fn transformer_values(s: &TransformerSpec, steps: usize) -> (usize, usize, usize) {
    let (d, f, h, t) = (s.d_model, s.d_ff, s.heads, steps);
    let (inputs, table) = match s.input {
        SequenceInput::Dense { dim } => (dim, 0),
        SequenceInput::Tokens { vocab } => (1, 3 * vocab * d),
    };
    let head: usize = s.head.iter().sum();
    let layer = TF_KEPT_D * d + TF_KEPT_FF * f + TF_KEPT_SCORES * h * t;
    let grads = TF_GRAD_D * d + TF_GRAD_FF * f + TF_GRAD_SCORES * h * t;
    let train =
        t * (2 * inputs + 8 * d + s.layers * layer + grads + 5 * head + TRAIN_COPIES * s.outputs);
    let eval = t * (2 * inputs + 6 * d + 3 * f + 3 * h * t + 2 * head + EVAL_COPIES * s.outputs);
    (train, eval, table)
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

/// Runs every job's lifetime of `model` on the batched path, chunk by
/// chunk within `budget` bytes, and returns the outcomes in job order.
/// An MLP, a leaky RNN, a GRU, an LSTM or a causal transformer; any
/// other model is [`LearnError::Unsupported`].
pub fn train(
    model: &ModelSpec,
    loss: Loss,
    life: &LifetimeSpec,
    device: &Device,
    jobs: Vec<Job<'_>>,
    budget: usize,
) -> Result<Vec<Outcome>, LearnError> {
    let net = Net::new(model, loss)?;
    if life.batch == 0 {
        return Err(unsupported("a minibatch of 0 examples"));
    }
    // Sequences of one length run in lockstep: the jobs are grouped by
    // their train set's, then sorted longest lifetime first.
    let steps: Vec<usize> = jobs.iter().map(|j| net.steps(j.train)).collect();
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| (steps[i], std::cmp::Reverse(jobs[i].hyper.steps)));
    let sizes: Vec<usize> = order
        .iter()
        .map(|&i| {
            let data = values_on_device(jobs[i].train) + values_on_device(jobs[i].heldout);
            let rows = Rows {
                batch: life.batch,
                steps: steps[i],
            };
            organism_bytes(model, rows, data)
        })
        .collect();
    // The chunks, planned before anything runs: one too large for the
    // device's free memory is refused now, not when it runs out.
    let mut plan: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    for group in order.chunk_by(|&a, &b| steps[a] == steps[b]) {
        let end = at + group.len();
        for len in plan_chunks(&sizes[at..end], budget) {
            plan.push((at, len));
            at += len;
        }
    }
    let chunk_bytes: Vec<usize> = plan
        .iter()
        .map(|&(at, len)| sizes[at..at + len].iter().sum())
        .collect();
    fits(&chunk_bytes, free_memory(device))?;
    let mut slots: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; slots.len()];
    for (at, len) in plan {
        let ids = &order[at..at + len];
        let chunk: Vec<Job> = ids
            .iter()
            .map(|&i| slots[i].take().expect("each job is in one chunk"))
            .collect();
        for (&i, outcome) in ids.iter().zip(run_chunk(&net, life, device, &chunk)?) {
            outcomes[i] = Some(outcome);
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every job is in a chunk"))
        .collect())
}

/// The device's free memory in bytes, as cudarc reports it (CUDA builds,
/// on a CUDA device); `None` where nothing says. It only refuses a chunk
/// that cannot fit ([`fits`]): the chunks themselves never depend on it,
/// so that a run's records do not depend on what else the device holds.
#[cfg(feature = "cuda")]
pub fn free_memory(device: &Device) -> Option<usize> {
    let cuda = device.as_cuda_device().ok()?;
    let (free, _total) = cuda.cuda_stream().context().mem_get_info().ok()?;
    Some(free)
}

/// See the CUDA build's: a build without CUDA knows no device memory.
#[cfg(not(feature = "cuda"))]
pub fn free_memory(_device: &Device) -> Option<usize> {
    None
}

/// Refuses chunks (their estimated bytes) of which the largest exceeds the
/// device's `free` memory, saying how much each needs and has.
pub fn fits(chunk_bytes: &[usize], free: Option<usize>) -> Result<(), LearnError> {
    let (Some(free), Some(&largest)) = (free, chunk_bytes.iter().max()) else {
        return Ok(());
    };
    if largest <= free {
        return Ok(());
    }
    let mib = |b: usize| b as f64 / f64::from(1u32 << 20);
    Err(LearnError::Device(format!(
        "a chunk of the batched path needs an estimated {:.1} MiB of device memory, but the device has {:.1} MiB free: free the device, or train fewer or smaller organisms at once (a smaller lifetime.batch or model), or use --path candle",
        mib(largest),
        mib(free)
    )))
}

pub(super) fn unsupported(what: &str) -> LearnError {
    LearnError::Unsupported(format!("the batched path cannot train {what}"))
}

/// Values of `batch` the device holds (token batches stay on the host;
/// a sequence's labels are held twice, as labels and as a u8 mask, which
/// counts a quarter).
pub fn values_on_device(batch: &Batch) -> usize {
    match batch {
        Batch::Dense { x, y, .. } => x.len() + y.len(),
        Batch::Labeled { x, labels, .. } => x.len() + labels.len(),
        Batch::Sequences { x, labels, .. } => x.len() + labels.len() + labels.len().div_ceil(4),
        Batch::Tokens { .. } => 0,
    }
}

#[cfg(test)]
mod test_data;
#[cfg(test)]
mod tests;
