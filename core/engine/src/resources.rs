//! Resources: state shared by the whole population.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy_ecs::entity::Entity;
use bevy_ecs::resource::Resource;
use lineage_evo::Objective;
use lineage_evo::selection::Plan;
use lineage_scenario::Scenario;

use crate::components::Lineage;
use crate::error::EngineError;
use crate::sets::LineageSystems;

/// The validated scenario.
#[derive(Resource, Clone)]
pub struct ScenarioRes(pub Arc<Scenario>);

/// The generation being simulated (0 for the founders).
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation(pub u32);

/// The environment in force: which phase of the scenario's environment
/// schedule applies, and whether it changed at this generation.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvironmentState {
    /// Index into [`Scenario::phases`].
    pub phase: usize,
    /// True in the generation where `phase` took effect.
    pub changed: bool,
}

/// The root of every random stream (see [`lineage_evo::rng`]). Streams are
/// derived from (seed, generation, organism, purpose), so this seed and the
/// [`Generation`] are the whole random state of a run.
#[derive(Resource, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomStreams {
    /// The scenario's seed.
    pub seed: u64,
}

/// The id the next newborn gets.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextOrganismId(pub u64);

/// The objectives every organism is scored on.
#[derive(Resource, Clone, Debug)]
pub struct Objectives(pub Vec<Objective>);

/// Each objective's best organism of the generation scored again on a
/// fresh held-out set (`[evaluate] rescore_best`), in objective order;
/// empty when the scenario does not ask for it.
#[derive(Resource, Clone, Debug, Default)]
pub struct Rescored(pub Vec<f64>);

/// Evaluation errors tolerated this generation (`on_error =
/// "invalidate"`), one message each.
#[derive(Resource, Clone, Debug, Default, PartialEq)]
pub struct EvaluationErrors(pub Vec<String>);

/// The evaluation suites' scores this generation: for each organism id,
/// each suite's values (NaN where a tolerated error left none).
#[derive(Resource, Clone, Debug, Default, PartialEq)]
pub struct SuiteScores(pub Vec<(crate::components::OrganismId, Vec<Vec<f64>>)>);

/// This generation's fitness scores in full (every metric of the offering,
/// organisms by ascending id), with the fitness call's `source`: an
/// evaluation suite with the same source reuses them instead of calling
/// the plugin again.
#[derive(Resource, Clone, Debug, Default, PartialEq)]
pub struct FitnessScores(pub Option<(String, Vec<crate::components::OrganismId>, Vec<f64>)>);

/// The thread pool for data-parallel work inside systems, sized by
/// `--threads`. Results never depend on its size.
#[derive(Resource, Clone)]
pub struct Threads(pub Arc<rayon::ThreadPool>);

/// What the select set decided, for the reproduce set to carry out.
#[derive(Resource, Default)]
pub struct SelectionResult {
    /// The evaluated pool, in id order; the plan's indices point here.
    pub pool: Vec<Entity>,
    /// Survivors, parents and offspring count.
    pub plan: Plan,
}

/// Offspring bred but not yet placed: one row per child in flat buffers,
/// reused from generation to generation.
#[derive(Resource, Default)]
pub struct Brood {
    /// Packed genome bits, `ceil(bits / 64)` words per child.
    pub words: Vec<u64>,
    /// Real genes, one row per child.
    pub reals: Vec<f64>,
    /// Each child's lineage record.
    pub lineages: Vec<Lineage>,
    /// The selection pool's genome bits, one row per organism in pool
    /// order: the parents breeding reads from.
    pub pool_words: Vec<u64>,
    /// The pool's real genes.
    pub pool_reals: Vec<f64>,
    /// The pool's organism ids.
    pub pool_ids: Vec<u64>,
}

/// Why a run stopped before its last generation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The best value reached `stop.target_fitness`.
    TargetReached,
    /// No improvement for `stop.stagnation` generations.
    Stagnation,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::TargetReached => "target reached",
            StopReason::Stagnation => "stagnation",
        })
    }
}

/// Progress of the search: the best values so far and when they improved.
#[derive(Resource, Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Best value of each objective seen so far (NaN before any).
    pub best: Vec<f64>,
    /// Generation of the last improvement of the first objective.
    pub last_improvement: u32,
    /// Set when a stopping criterion fired.
    pub stop: Option<StopReason>,
}

/// The first error a system hit this generation. Systems after it do not
/// run, and the driver returns it; nothing already recorded is lost.
#[derive(Resource, Default)]
pub struct Failure(pub Option<EngineError>);

/// Wall time of each system set in the current generation.
#[derive(Resource, Clone, Debug, Default)]
pub struct SetClock {
    marks: Vec<(Option<LineageSystems>, Instant)>,
}

impl SetClock {
    /// Notes that `set` starts now (`None`: the last set ended).
    pub fn mark(&mut self, set: Option<LineageSystems>) {
        if set == Some(LineageSystems::ALL[0]) {
            self.marks.clear();
        }
        self.marks.push((set, Instant::now()));
    }

    /// Each set's duration, in schedule order.
    pub fn durations(&self) -> Vec<(LineageSystems, Duration)> {
        self.marks
            .windows(2)
            .filter_map(|w| w[0].0.map(|set| (set, w[1].1 - w[0].1)))
            .collect()
    }
}

/// Statistics of the evaluated population in the current generation.
#[derive(Resource, Clone, Debug, Default)]
pub struct GenerationStats {
    /// Organisms alive.
    pub population: usize,
    /// Organisms evaluated in this generation.
    pub evaluated: usize,
    /// Organisms with an invalid (NaN) fitness value.
    pub invalid: usize,
    /// One summary per objective.
    pub summaries: Vec<lineage_evo::stats::Summary>,
    /// Genetic diversity in [0, 1].
    pub diversity: f64,
    /// Evaluation errors tolerated (`on_error = "invalidate"`), one message
    /// each.
    pub errors: Vec<String>,
}

/// Which weights organisms keep after their lifetime. Weights nothing reads
/// are not kept: a generation of learning organisms then holds little more
/// than genomes, curves and fitness.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeptWeights {
    /// Birth weights: kept where they cannot be developed again from the
    /// genome alone (Lamarckian and pruning inheritance, whose births
    /// depend on a parent's weights), for plugins that read them and for a
    /// survivor that learns again after an environment change. Elsewhere
    /// they are developed again when asked.
    pub birth: bool,
    /// Learned weights (and masks): kept for Lamarckian and pruning
    /// inheritance, for plugin offerings that declare they read weights,
    /// and for runs other conditions start from.
    pub learned: bool,
}
