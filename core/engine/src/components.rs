//! Components: what each organism (entity) carries.

use std::collections::BTreeMap;

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

/// Model weights by name (candle tensors on the CPU), in the parameter
/// names of `lineage_learn::ModelSpec::params`. Genome-only organisms have
/// none.
#[derive(Component, Clone, Debug, Default)]
pub struct Weights {
    /// Weights at birth (developed or inherited).
    pub birth: BTreeMap<String, candle_core::Tensor>,
    /// Weights at the end of the lifetime; empty until it has learned.
    pub learned: BTreeMap<String, candle_core::Tensor>,
    /// 0/1 connectivity masks of the masked matrices.
    pub masks: BTreeMap<String, candle_core::Tensor>,
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
