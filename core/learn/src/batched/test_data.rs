//! Data and populations the batched path's sequence-model tests share
//! (`recurrent/tests.rs`, `transformer/tests.rs`).

use lineage_env::{Batch, IGNORE};
use rand::Rng;

use super::tests::{Organism, hyper};

/// `n` sequences of `steps` steps of `dim` values; the label of a step
/// is the class of the running sum's largest component, and about a
/// third of the steps (always the first) are not scored.
pub(super) fn sequences(
    n: usize,
    steps: usize,
    dim: usize,
    classes: u32,
    rng: &mut impl Rng,
) -> Batch {
    let mut x = Vec::with_capacity(n * steps * dim);
    let mut labels = Vec::with_capacity(n * steps);
    for _ in 0..n {
        let mut sum = vec![0.0f32; dim];
        for t in 0..steps {
            for s in sum.iter_mut() {
                let v = rng.random::<f32>() - 0.5;
                *s += v;
                x.push(v);
            }
            let best = (0..dim)
                .max_by(|&a, &b| sum[a].total_cmp(&sum[b]))
                .unwrap_or(0);
            labels.push(if t == 0 || rng.random_bool(0.3) {
                IGNORE
            } else {
                best as u32 % classes
            });
        }
    }
    Batch::Sequences {
        n,
        steps,
        x,
        labels,
    }
}

/// `n` windows of `len` tokens below `vocab`: a random start, then steps
/// of 1 or 2.
pub(super) fn windows(n: usize, len: usize, vocab: u32, rng: &mut impl Rng) -> Batch {
    let mut tokens = Vec::with_capacity(n * len);
    for _ in 0..n {
        let mut t = rng.random_range(0..vocab);
        for _ in 0..len {
            tokens.push(t);
            t = (t + rng.random_range(1..3)) % vocab;
        }
    }
    Batch::Tokens { n, len, tokens }
}

pub(super) fn organism(
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    steps: u32,
    train: usize,
) -> Organism {
    Organism {
        hyper: hyper(lr, momentum, weight_decay, steps),
        train,
        masked: false,
        signed: false,
    }
}

/// Three organisms with different learning rates, momenta, weight
/// decays, lifetimes (one ending between curve points) and train sets;
/// the second masked, the third masked and sign-constrained.
pub(super) fn population(lr: f32) -> Vec<Organism> {
    vec![
        organism(lr, 0.9, 0.01, 20, 0),
        Organism {
            masked: true,
            ..organism(2.0 * lr, 0.5, 0.0, 13, 1)
        },
        Organism {
            masked: true,
            signed: true,
            ..organism(0.5 * lr, 0.0, 0.05, 17, 0)
        },
    ]
}

/// An organism whose weight decay overshoots (`1 - lr wd` is about
/// `-10^4`): its weights grow ten-thousandfold a step until its loss is
/// no longer finite, some ten steps in.
pub(super) fn diverging(steps: u32) -> Organism {
    organism(1e4, 0.0, 1.0, steps, 0)
}
