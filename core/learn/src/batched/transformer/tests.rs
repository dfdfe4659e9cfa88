//! Tests of the batched path on the causal transformer: the GPT-style
//! default (LayerNorm, GELU, two heads, an MLP, positions, a token
//! embedding or a dense input projection), Reddy's attention-only model
//! on the `icl` world, and a ReLU model with head layers, each against
//! the fast path (the transformer's path on the CPU), on candle's CPU
//! backend.
//!
//! Tolerance: [`TOLERANCE`], the largest `|a - b| / max(|b|, 1)` over the
//! final weights, every curve value and every probe value, with the same
//! curve steps, probe points and status (and divergence step), as the
//! other batched tests hold it. The two paths compute the same operations
//! in another f32 summation order (batched matmuls against the fast
//! path's `gemm` and its loops over the causal triangle, the softmax and
//! LayerNorm sums, the weights' gradients summed over every position),
//! and Adam's normalisation of small gradients amplifies those rounding
//! differences over a lifetime; the fast path and candle's own
//! transformer are held to 1e-5 for that reason (`fast/transformer/
//! tests.rs`). Here, with sequences of 5 to 6 positions and up to 20
//! learning steps, the measured gaps are 1.8e-7 to 3.6e-7 (each test
//! prints its own), far within 1e-5.

use std::sync::Arc;

use candle_core::Device;
use lineage_env::{Environment, Icl, IclParams, Positions, ProbeSet, Task};

use crate::LearnError;
use crate::batched::test_data::{
    diverges_alone, learns_alike_whoever_shares_its_chunk, population, sequences, windows,
};
use crate::batched::tests::{Comparison, Organism, life, rng};
use crate::batched::{DEFAULT_BUDGET, Rows, organism_bytes, train};
use crate::optim::{Method, Schedule};
use crate::spec::{Activation, Loss, ModelSpec, SequenceInput, TransformerSpec};

/// See the module docs.
const TOLERANCE: f32 = 1e-5;

const WARMUP_COOLDOWN: Schedule = Schedule::WarmupHoldCooldown {
    warmup: 3,
    cooldown: 5,
};

/// The GPT-style default: width 8, 2 heads, 2 layers, an MLP of 16,
/// LayerNorm, GELU, learned positions for 6 steps.
fn gpt(input: SequenceInput, outputs: usize) -> TransformerSpec {
    TransformerSpec {
        input,
        context: 6,
        d_model: 8,
        heads: 2,
        layers: 2,
        d_ff: 16,
        outputs,
        layer_norm: true,
        activation: Activation::Gelu,
        embed: true,
        positions: true,
        attn_out: true,
        attn_scale: true,
        head: Vec::new(),
    }
}

/// Token windows of 7 tokens of a vocabulary of 5 (6 positions).
fn tokens(model: TransformerSpec, method: Method, seed: u64) -> Comparison {
    let mut r = rng(seed);
    Comparison {
        model: ModelSpec::Transformer(model),
        task: Task::NextToken {
            vocab: 5,
            context: 6,
        },
        life: life(method, WARMUP_COOLDOWN, Some(1.0)),
        trains: vec![windows(24, 7, 5, &mut r), windows(16, 7, 5, &mut r)],
        heldout: windows(20, 7, 5, &mut r),
        probes: Vec::new(),
    }
}

/// Real sequences of 6 steps of 3 values, 3 classes, and a probe set.
fn dense(model: TransformerSpec, method: Method, seed: u64) -> Comparison {
    let mut r = rng(seed);
    let trains = vec![
        sequences(24, 6, 3, 3, &mut r),
        sequences(16, 6, 3, 3, &mut r),
    ];
    let heldout = sequences(20, 6, 3, 3, &mut r);
    let probes = vec![ProbeSet {
        name: "probe".into(),
        data: Arc::new(sequences(6, 6, 3, 3, &mut r)),
        choices: Some(vec![0, 2]),
    }];
    Comparison {
        model: ModelSpec::Transformer(model),
        task: Task::SequenceClassification {
            inputs: 3,
            classes: 3,
            steps: 6,
        },
        life: life(method, WARMUP_COOLDOWN, Some(1.0)),
        trains,
        heldout,
        probes,
    }
}

/// A small `icl` world: 8-wide tokens (3 content dimensions and a one-hot
/// position of 5), 2 context pairs and a query (5 positions), 4 labels,
/// every position but the query's unscored, with its probe sets.
fn icl_world() -> Icl {
    Icl::new(IclParams {
        classes: 8,
        dim: 3,
        labels: 4,
        pairs: 2,
        burstiness: 2,
        positions: Positions::OneHot,
        heldout: 20,
        probe_sequences: 4,
        seed: 3,
        ..IclParams::default()
    })
    .unwrap()
}

/// Reddy's attention-only model on `world`'s tokens: `d_model` is their
/// width, no embedding, positions, LayerNorm, output projection or score
/// scale, one ReLU head layer of 8.
fn reddy(world: &Icl) -> TransformerSpec {
    let Task::SequenceClassification {
        inputs, classes, ..
    } = world.task()
    else {
        panic!("the icl world classifies sequences");
    };
    TransformerSpec {
        input: SequenceInput::Dense { dim: inputs },
        context: 16,
        d_model: inputs,
        heads: 1,
        layers: 2,
        d_ff: 0,
        outputs: classes,
        layer_norm: false,
        activation: Activation::Relu,
        embed: false,
        positions: false,
        attn_out: false,
        attn_scale: false,
        head: vec![8],
    }
}

fn icl(world: &Icl, method: Method, seed: u64) -> Comparison {
    let mut r = rng(seed);
    let trains = vec![
        world.lifetime(&mut r, 24).unwrap().train,
        world.lifetime(&mut r, 16).unwrap().train,
    ];
    let heldout = (*world.lifetime(&mut r, 1).unwrap().heldout).clone();
    Comparison {
        model: ModelSpec::Transformer(reddy(world)),
        task: world.task(),
        life: life(method, WARMUP_COOLDOWN, Some(1.0)),
        trains,
        heldout,
        probes: world.probe_sets(),
    }
}

/// The largest gap between the two paths over `organisms`, printed.
fn measure(what: &str, comparison: &Comparison, organisms: &[Organism]) -> f32 {
    let gap = comparison.gap(organisms);
    eprintln!("{what}: gap {gap:.2e}");
    gap
}

#[test]
fn gpt_style_transformer_on_tokens_matches_the_fast_path() {
    let model = gpt(SequenceInput::Tokens { vocab: 5 }, 5);
    let comparison = tokens(model, Method::Adam, 1);
    let gap = measure("gpt, tokens, Adam", &comparison, &population(0.01));
    assert!(gap < TOLERANCE, "gap {gap}");
}

/// The dense input projection (`w_in`, `b_in`), one layer, and a probe
/// set; then ReLU in the MLP with two ReLU head layers.
#[test]
fn gpt_style_transformer_on_real_sequences_matches_the_fast_path() {
    let one = TransformerSpec {
        layers: 1,
        ..gpt(SequenceInput::Dense { dim: 3 }, 3)
    };
    let comparison = dense(one.clone(), Method::Sgd, 2);
    let gap = measure("gpt, dense, SGD", &comparison, &population(0.1));
    assert!(gap < TOLERANCE, "gap {gap}");
    let relu = TransformerSpec {
        activation: Activation::Relu,
        head: vec![6, 5],
        ..one
    };
    let comparison = dense(relu, Method::AdamW, 3);
    let gap = measure("relu, head [6, 5], AdamW", &comparison, &population(0.01));
    assert!(gap < TOLERANCE, "gap {gap}");
}

#[test]
fn reddys_attention_only_transformer_on_icl_matches_the_fast_path() {
    let world = icl_world();
    let comparison = icl(&world, Method::Adam, 4);
    assert!(!comparison.probes.is_empty(), "the world has probe sets");
    let gap = measure("reddy, icl, Adam", &comparison, &population(0.01));
    assert!(gap < TOLERANCE, "gap {gap}");
}

/// An organism's outcome is the same bit for bit whoever shares its
/// chunk: alone, with its population, with other companions, and in
/// chunks cut small.
#[test]
fn an_organism_learns_alike_whoever_shares_its_chunk() {
    let comparison = tokens(gpt(SequenceInput::Tokens { vocab: 5 }, 5), Method::Adam, 5);
    learns_alike_whoever_shares_its_chunk("transformer", &comparison, 6);
}

/// An organism that diverges does so at the step the fast path says,
/// with the same curve; its weights stay those of that step, and the
/// others learn as they do without it.
#[test]
fn a_diverging_organism_stops_alone() {
    let world = icl_world();
    diverges_alone("reddy, icl", icl(&world, Method::Sgd, 6), TOLERANCE);
}

/// What the fast path's `check` refuses, and what the batched path
/// cannot train, are `Unsupported` with a message.
#[test]
fn the_batched_transformer_refuses_what_it_cannot_train() {
    let comparison = tokens(gpt(SequenceInput::Tokens { vocab: 5 }, 5), Method::Sgd, 7);
    let refused = |model: TransformerSpec, loss: Loss| {
        let model = ModelSpec::Transformer(model);
        match train(
            &model,
            loss,
            &comparison.life,
            &Device::Cpu,
            Vec::new(),
            DEFAULT_BUDGET,
        ) {
            Err(LearnError::Unsupported(message)) => message,
            other => panic!("{other:?}"),
        }
    };
    let tokens = SequenceInput::Tokens { vocab: 5 };
    let three = TransformerSpec {
        heads: 3,
        ..gpt(tokens, 5)
    };
    let message = refused(three, Loss::CrossEntropy);
    assert!(
        message.contains("3 heads do not divide its width 8"),
        "{message}"
    );
    let plain = TransformerSpec {
        embed: false,
        ..gpt(tokens, 5)
    };
    let message = refused(plain, Loss::CrossEntropy);
    assert!(message.contains("not tokens"), "{message}");
    let message = refused(gpt(tokens, 5), Loss::MeanSquared);
    assert!(message.contains("squared-error"), "{message}");
}

/// The estimate grows with the square of the sequences' length (the
/// attention scores) and counts what `organism_bytes` documents.
#[test]
fn the_estimate_counts_the_attention_scores() {
    let spec = gpt(SequenceInput::Dense { dim: 3 }, 4);
    let model = ModelSpec::Transformer(spec);
    let rows = |steps| Rows { batch: 32, steps };
    let params: usize = model.params().iter().map(|p| p.len()).sum();
    let (d, f, h, t, l) = (8, 16, 2, 6, 2);
    let train =
        t * (2 * 3 + 8 * d + l * (24 * d + 7 * f + 5 * h * t) + 8 * d + 4 * f + 4 * h * t + 6 * 4);
    let eval = t * (2 * 3 + 6 * d + 3 * f + 3 * h * t + 3 * 4);
    let expected = 4 * (14 * params + 32 * train + 256 * eval + 100);
    assert_eq!(organism_bytes(&model, rows(6), 100), expected);
    let base = organism_bytes(&model, rows(6), 0) - 4 * 14 * params;
    let longer = organism_bytes(&model, rows(60), 0) - 4 * 14 * params;
    assert!(longer > 10 * base, "{longer} vs {base}");
}

/// Sequences longer than the position table are an error, not a panic.
#[test]
fn sequences_longer_than_the_position_table_are_an_error() {
    let short = TransformerSpec {
        context: 4,
        ..gpt(SequenceInput::Dense { dim: 3 }, 3)
    };
    let mut comparison = dense(short, Method::Sgd, 8);
    // (A probe set's length is checked, and refused, where probes are
    // scored: at birth.)
    comparison.probes.clear();
    let loss = Loss::of(&comparison.task);
    let jobs = comparison.jobs(&population(0.1));
    let out = train(
        &comparison.model,
        loss,
        &comparison.life,
        &Device::Cpu,
        jobs,
        DEFAULT_BUDGET,
    );
    let message = format!("{:?}", out.unwrap_err());
    assert!(message.contains("1 to 4 positions"), "{message}");
}
