//! Data, populations and checks the batched path's sequence-model tests
//! share (`recurrent/tests.rs`, `transformer/tests.rs`).

use candle_core::Device;
use lineage_env::{Batch, IGNORE};
use rand::Rng;

use super::tests::{Comparison, Organism, bits, gap, hyper};
use super::{DEFAULT_BUDGET, Rows, organism_bytes, train};
use crate::optim::Schedule;
use crate::spec::Loss;
use crate::{Outcome, Status};

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

/// An organism's outcome is the same bit for bit whoever shares its
/// chunk: alone, with its population, with other companions, and in
/// chunks cut small (sequences of `steps` steps).
pub(super) fn learns_alike_whoever_shares_its_chunk(
    what: &str,
    comparison: &Comparison,
    steps: usize,
) {
    let organisms = population(0.01);
    let together = comparison.batched(&organisms, usize::MAX);
    let loss = Loss::of(&comparison.task);
    for k in 0..organisms.len() {
        let job = comparison.jobs(&organisms).remove(k);
        let alone = train(
            &comparison.model,
            loss,
            &comparison.life,
            &Device::Cpu,
            vec![job],
            usize::MAX,
        )
        .unwrap();
        assert_eq!(bits(&alone), bits(&together[k..=k]), "{what}: {k} alone");
    }
    let mut others = population(0.03);
    others[0] = organisms[0];
    others[1].hyper.steps = 30;
    let with_others = comparison.batched(&others, usize::MAX);
    assert_eq!(
        bits(&with_others[..1]),
        bits(&together[..1]),
        "{what}: other companions"
    );
    let rows = Rows {
        batch: comparison.life.batch,
        steps,
    };
    let bytes = organism_bytes(&comparison.model, rows, 0);
    let split = comparison.batched(&organisms, 2 * bytes);
    assert_eq!(bits(&split), bits(&together), "{what}: small chunks");
}

/// An organism that diverges does so at the step the reference path
/// says, with the same curve; its weights stay those of that step, and
/// the others learn as they do without it (SGD, no clipping, a constant
/// rate; the gaps within `tolerance`).
pub(super) fn diverges_alone(what: &str, mut comparison: Comparison, tolerance: f32) {
    comparison.life.optimizer.clip = None;
    comparison.life.optimizer.schedule = Schedule::Constant;
    let healthy = population(0.1);
    let mut organisms = healthy.clone();
    organisms.insert(1, diverging(20));
    let reference = comparison.fast(&organisms);
    let batched = comparison.batched(&organisms, DEFAULT_BUDGET);
    let Status::Diverged { step } = reference[1].status else {
        panic!("{what}: the organism diverges: {:?}", reference[1])
    };
    assert!(step > 0, "{what}: it diverges after learning a little");
    assert_eq!(batched[1].status, reference[1].status, "{what}");
    // Its weights have blown up to 1e30 and beyond, where rounding
    // differences grow with them: its curve is compared with the
    // reference's, and its weights with its own lifetime cut at `step`
    // steps.
    let curve = |o: &Outcome| Outcome {
        params: Vec::new(),
        ..o.clone()
    };
    let gap_diverged = gap(&curve(&batched[1]), &curve(&reference[1]));
    let gap_others = (0..organisms.len())
        .filter(|&o| o != 1)
        .map(|o| gap(&batched[o], &reference[o]))
        .fold(0.0, f32::max);
    eprintln!("{what}: diverged at {step}, gaps {gap_diverged:.2e} {gap_others:.2e}");
    assert!(
        gap_diverged < tolerance && gap_others < tolerance,
        "{what}: gaps {gap_diverged} {gap_others}"
    );
    let cut = comparison.batched(&[healthy[0], diverging(step)], DEFAULT_BUDGET);
    assert_eq!(
        format!("{:?}", cut[1].params),
        format!("{:?}", batched[1].params),
        "{what}: its weights stay as they were when it diverged"
    );
    let mut without = healthy.clone();
    without.insert(1, organism(0.1, 0.0, 0.0, 5, 1));
    let without = comparison.batched(&without, DEFAULT_BUDGET);
    for o in (0..organisms.len()).filter(|&o| o != 1) {
        assert_eq!(
            bits(&without[o..=o]),
            bits(&batched[o..=o]),
            "{what}: organism {o}"
        );
    }
}
