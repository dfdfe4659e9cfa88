//! From an environment's batches to training examples and minibatches.
//!
//! An *example* is what one row of a minibatch holds: a row of a dense or
//! labelled batch; for an MLP language model with context `c` reading
//! windows of `len` tokens, each position `c..len` of each window (the
//! model reads the `c` tokens before it); for a sequence model, a whole
//! window (it predicts every next token).
//!
//! Minibatches are drawn by epochs: the examples are shuffled, taken
//! `batch` at a time, and reshuffled when exhausted, every draw from the
//! organism's learning stream. [`minibatch_indices`] lays the whole
//! lifetime out up front, so `lineage export` can write it and another
//! framework replay it.

use lineage_env::Batch;
use rand::Rng;
use rand::seq::SliceRandom;

use crate::family::Reads;
use crate::spec::ModelSpec;

/// How a batch's examples are indexed for one model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Examples {
    /// Row `e` of a dense or labelled batch.
    Rows(usize),
    /// MLP language model: example `e` is window `e / per`, target
    /// position `context + e % per`.
    Positions {
        /// Examples in all.
        count: usize,
        /// Target positions per window (`len - context`).
        per: usize,
        /// Tokens the model reads.
        context: usize,
        /// Tokens per window.
        len: usize,
    },
    /// Sequence model: example `e` is window `e`.
    Windows(usize),
}

impl Examples {
    /// Indexes `batch` for `model`; `None` when the batch holds nothing the
    /// model can learn from (a window no longer than the model's context).
    pub fn of(batch: &Batch, model: &ModelSpec) -> Option<Examples> {
        Examples::reading(batch, model.family().reads())
    }

    /// Indexes `batch` for a model that `reads` it, as [`Examples::of`].
    pub fn reading(batch: &Batch, reads: Reads) -> Option<Examples> {
        let ex = match (batch, reads) {
            (Batch::Tokens { n, len, .. }, Reads::Context { context, .. }) => {
                let per = len.checked_sub(context).filter(|&p| p > 0)?;
                Examples::Positions {
                    count: n * per,
                    per,
                    context,
                    len: *len,
                }
            }
            (Batch::Tokens { n, .. } | Batch::Sequences { n, .. }, _) => Examples::Windows(*n),
            (b, _) => Examples::Rows(b.len()),
        };
        (ex.count() > 0).then_some(ex)
    }

    /// Number of examples.
    pub fn count(self) -> usize {
        match self {
            Examples::Rows(n) | Examples::Windows(n) => n,
            Examples::Positions { count, .. } => count,
        }
    }
}

/// The example indices of every step of a lifetime, `steps x batch`, drawn
/// by shuffled epochs from `rng`.
pub fn minibatch_indices(
    examples: usize,
    batch: usize,
    steps: u32,
    rng: &mut impl Rng,
) -> Vec<u32> {
    let total = steps as usize * batch;
    let mut out = Vec::with_capacity(total);
    let mut order: Vec<u32> = (0..examples as u32).collect();
    while out.len() < total {
        order.shuffle(rng);
        let take = (total - out.len()).min(order.len());
        out.extend_from_slice(&order[..take]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Activation, Embedding, MlpSpec};
    use rand::SeedableRng;

    #[test]
    fn epochs_visit_every_example_once() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let idx = minibatch_indices(10, 4, 5, &mut rng);
        assert_eq!(idx.len(), 20);
        for epoch in idx.chunks(10) {
            let mut e = epoch.to_vec();
            e.sort_unstable();
            assert_eq!(e, (0..10).collect::<Vec<u32>>());
        }
    }

    #[test]
    fn language_model_examples_are_window_positions() {
        let model = ModelSpec::Mlp(MlpSpec {
            embedding: Some(Embedding {
                vocab: 8,
                dim: 2,
                context: 3,
            }),
            widths: vec![6, 8],
            activation: Activation::Relu,
            bias: false,
        });
        let batch = Batch::Tokens {
            n: 5,
            len: 4,
            tokens: vec![0; 20],
        };
        assert_eq!(
            Examples::of(&batch, &model),
            Some(Examples::Positions {
                count: 5,
                per: 1,
                context: 3,
                len: 4
            })
        );
        let short = Batch::Tokens {
            n: 5,
            len: 3,
            tokens: vec![0; 15],
        };
        assert_eq!(Examples::of(&short, &model), None);
    }
}
