//! Components: what each organism (entity) carries.

use bevy_ecs::component::Component;
use smallvec::SmallVec;

/// An organism's id, unique within a run and never reused. Ids are assigned
/// in birth order, so sorting by id gives an order that does not depend on
/// how the ECS stores entities.
pub type OrganismId = u64;

/// The genome: what evolution acts on and offspring inherit.
#[derive(Component, Clone, Debug, PartialEq)]
pub struct Genome(pub lineage_evo::Genome);

/// Where an organism comes from.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// Unique id.
    pub id: OrganismId,
    /// Up to two parents; founders have none.
    pub parents: [Option<OrganismId>; 2],
    /// Generation in which it was born.
    pub birth: u32,
}

/// Objective values, one per objective of the scenario (the directions live
/// in the [`crate::resources::Objectives`] resource, shared by all).
///
/// A newborn's fitness is pending until the evaluate set scores it; NaN
/// marks an invalid value.
#[derive(Component, Clone, Debug, PartialEq)]
pub struct Fitness {
    /// The values, in objective order; up to two are stored inline, so
    /// systems that read every organism's fitness follow no pointer.
    pub values: SmallVec<[f64; 2]>,
    /// Generation of the evaluation that produced `values`, or `None` while
    /// pending.
    pub evaluated_at: Option<u32>,
}

impl Fitness {
    /// A pending fitness with room for `objectives` values.
    pub fn pending(objectives: usize) -> Fitness {
        Fitness {
            values: smallvec::smallvec![f64::NAN; objectives],
            evaluated_at: None,
        }
    }

    /// True until evaluated.
    pub fn is_pending(&self) -> bool {
        self.evaluated_at.is_none()
    }
}

/// What an organism keeps of its model after its lifetime, in flat `f32`
/// buffers in the order of `lineage_learn::ModelSpec::params`.
///
/// An organism keeps only what something later reads (the run's
/// [`crate::resources::KeptWeights`]): learned weights for Lamarckian and
/// pruning inheritance and for plugins that read weights, birth weights
/// only where they cannot be developed again from the genome. Organisms
/// that keep nothing have no `Weights` at all; genome-only organisms never
/// do.
#[derive(Component, Clone, Debug, Default, PartialEq)]
pub struct Weights {
    /// Weights at birth (developed or inherited), when kept.
    pub birth: Option<Params>,
    /// Weights at the end of the lifetime, when kept.
    pub learned: Option<Params>,
    /// Connectivity masks of the masked matrices, one bit per weight.
    pub masks: Masks,
}

/// A model's parameters in one allocation, in the order of
/// `lineage_learn::ModelSpec::params`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(pub Box<[f32]>);

impl Params {
    /// Concatenates parameters given one vector each.
    pub fn from_parts(parts: &[Vec<f32>]) -> Params {
        Params(parts.concat().into_boxed_slice())
    }

    /// The parameters one vector each, cut by their lengths.
    pub fn parts(&self, lens: impl IntoIterator<Item = usize>) -> Vec<Vec<f32>> {
        let mut at = 0;
        lens.into_iter()
            .map(|len| {
                let part = self.0.get(at..at + len).unwrap_or(&[]).to_vec();
                at += len;
                part
            })
            .collect()
    }

    /// Parameter `index` of the layout whose lengths are `lens` (`None`
    /// when the buffer is too short: a layout it was not made for).
    pub fn part(&self, lens: impl IntoIterator<Item = usize>, index: usize) -> Option<&[f32]> {
        let mut at = 0;
        for (k, len) in lens.into_iter().enumerate() {
            if k == index {
                return self.0.get(at..at + len);
            }
            at += len;
        }
        None
    }
}

/// 0/1 masks, one per parameter (`None`: dense), stored as bits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Masks(pub Vec<Option<lineage_evo::BitString>>);

impl Masks {
    /// Bits from 0/1 values (any non-zero value is a 1).
    pub fn from_values(masks: &[Option<Vec<f32>>]) -> Masks {
        Masks(
            masks
                .iter()
                .map(|m| {
                    m.as_ref().map(|m| {
                        let mut bits = lineage_evo::BitString::zeros(m.len());
                        for (i, &x) in m.iter().enumerate() {
                            if x != 0.0 {
                                bits.set(i, true);
                            }
                        }
                        bits
                    })
                })
                .collect(),
        )
    }

    /// 0/1 values, one vector per parameter (what learning and
    /// inheritance take).
    pub fn values(&self) -> Vec<Option<Vec<f32>>> {
        self.0
            .iter()
            .map(|m| {
                m.as_ref().map(|bits| {
                    (0..bits.len())
                        .map(|i| f32::from(u8::from(bits.get(i))))
                        .collect()
                })
            })
            .collect()
    }

    /// True when no parameter is masked.
    pub fn is_dense(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// Losses recorded during an organism's lifetime: at birth, every
/// `eval_every` steps, and at the end.
#[derive(Component, Clone, Debug, Default, PartialEq)]
pub struct LearningCurve {
    /// The points, in step order.
    pub points: Vec<lineage_learn::CurvePoint>,
    /// How the lifetime ended.
    pub status: Option<lineage_learn::Status>,
    /// The environment's probe sets scored along the lifetime (written to
    /// `probes.csv`; not checkpointed: rows are written when the organism
    /// is evaluated, and organisms still to be evaluated learn again).
    pub probes: Vec<ProbeRecord>,
    /// The held-out data the lifetime was scored on, for evaluation
    /// (not checkpointed: only organisms still to be evaluated need it, and
    /// those learn again on resume).
    pub heldout: Option<std::sync::Arc<lineage_env::Batch>>,
}

/// One probe measure of a lifetime, named.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeRecord {
    /// Optimiser steps taken.
    pub step: u32,
    /// The probe set.
    pub probe: String,
    /// The measure (`loss`, `accuracy`, `accuracy_all`).
    pub metric: &'static str,
    /// Its value.
    pub value: f32,
}

/// What a newborn inherits beyond its genome (Lamarckian and pruning
/// inheritance): its first parent's learned weights and masks, in
/// parameter order. Consumed by development.
#[derive(Component, Clone, Debug)]
pub struct Inherited {
    /// The parent's learned weights.
    pub learned: std::sync::Arc<Vec<Vec<f32>>>,
    /// The parent's masks.
    pub masks: std::sync::Arc<Vec<Option<Vec<f32>>>>,
}
