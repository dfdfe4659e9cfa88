//! `lineage export`: one organism's lifetime, in files another framework
//! can read.
//!
//! Written into the output folder:
//! - `birth.safetensors`, `final.safetensors`: the weights at birth and at
//!   the end of the lifetime, f32, one tensor per parameter under the names
//!   of `lineage_learn::ModelSpec::params` (`layers.0.weight` is
//!   `[out, in]`, applied as `x W^T + b`);
//! - `masks.safetensors`: the 0/1 masks of masked matrices (same names);
//! - `signs.safetensors`: the sign constraints (`+1`, `-1`) of Dale's-law
//!   matrices (same names), onto which every step's weights are projected
//!   (a weight against its sign becomes 0);
//! - `lifetime.safetensors`: the lifetime's data, regenerated from the
//!   run's seed: `train.x`, `train.labels`, `train.y` or `train.tokens`
//!   (whichever the task has), the same for `heldout.*`, and `indices`
//!   (u32 `[steps, batch]`, the example each minibatch row holds);
//! - `lifetime.json`: the model, task, optimiser, schedule,
//!   hyper-parameters, status and learning curve.
//!
//! The organism must be in a checkpoint (the latest one holding it is used).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use lineage_env::Batch;
use lineage_learn::Schedule;
use safetensors::{Dtype, tensor::TensorView};

use crate::checkpoint;
use crate::components::{LearningCurve, OrganismId};
use crate::error::EngineError;
use crate::systems::{birth_of, lifetime_data};

/// One organism's lifetime as `lineage export` writes it: its weights at
/// birth and learned, masks and signs (one entry per parameter of
/// `params`), the data it learned from, and its curve.
pub struct Organism {
    /// The generation it lived its lifetime in.
    pub generation: u32,
    /// The model's parameters (names and shapes), in order.
    pub params: Vec<lineage_learn::spec::ParamInfo>,
    /// Weights at birth, one flat row-major vector per parameter.
    pub birth: Vec<Vec<f32>>,
    /// Weights at the end of the lifetime.
    pub learned: Vec<Vec<f32>>,
    /// 0/1 masks of masked parameters.
    pub masks: Vec<Option<Vec<f32>>>,
    /// Sign constraints (+1, -1) of Dale's-law parameters.
    pub signs: Vec<Option<Vec<f32>>>,
    cfg: std::sync::Arc<lineage_scenario::LifetimeConfig>,
    seed: u64,
    life: lineage_env::Lifetime,
    indices: Vec<u32>,
    hyper: lineage_learn::Hyper,
    curve: LearningCurve,
}

/// Organism `id` of the run in `run_dir`: from the latest checkpoint that
/// holds it, its lifetime lived again where the checkpoint did not keep
/// its weights.
pub fn organism(run_dir: &Path, id: OrganismId) -> Result<Organism, EngineError> {
    let bad = |message: String| EngineError::BadRunDir {
        path: run_dir.to_owned(),
        message,
    };
    let scenario =
        lineage_scenario::load(&run_dir.join(crate::SCENARIO_FILE), &Default::default())?;
    let mut dirs = checkpoint::all(run_dir)?;
    dirs.reverse();
    let mut found = None;
    for dir in &dirs {
        let (state, organisms) =
            checkpoint::load(dir, scenario.genome.bits, scenario.genome.genes.len())?;
        if let Some(o) = organisms.into_iter().find(|o| o.1.id == id) {
            let mut learned = checkpoint::load_weights(dir)?;
            found = Some((o, learned.remove(&id).unwrap_or_default(), state.generation));
            break;
        }
    }
    let Some(((genome, lineage, fitness), stored, checkpoint_generation)) = found else {
        return Err(bad(format!(
            "no checkpoint holds organism {id} (a checkpoint holds the organisms alive when it was written)"
        )));
    };
    // A newborn lives its lifetime in the generation the checkpoint starts.
    let generation = fitness.evaluated_at.unwrap_or(checkpoint_generation);
    let Some(cfg) = scenario.pressures_at(generation).lifetime.clone() else {
        return Err(bad(format!(
            "organism {id} does not learn: generation {generation} has no `[lifetime]`"
        )));
    };
    let (life, indices, hyper) = lifetime_data(&cfg, scenario.seed, generation, id, &genome.0)
        .map_err(|source| EngineError::Environment { generation, source })?;
    let lens: Vec<usize> = cfg.model.params().iter().map(|p| p.len()).collect();
    let kept = match (stored.weights, stored.curve) {
        (Some(w), Some(curve)) => match (&w.birth, &w.learned) {
            (Some(birth), Some(learned)) => Some(Exported {
                birth: birth.parts(lens.iter().copied()),
                learned: learned.parts(lens.iter().copied()),
                masks: w.masks.values(),
                curve,
            }),
            _ => None,
        },
        _ => None,
    };
    // What the checkpoint does not hold is lived again, as the run lived it.
    let weights = match kept {
        Some(k) => k,
        None => live(
            &cfg,
            scenario.seed,
            generation,
            &lineage,
            &genome.0,
            stored.inherited.as_ref(),
            &life,
            &indices,
            hyper,
        )?,
    };
    Ok(Organism {
        generation,
        params: cfg.model.params(),
        signs: crate::develop::signs(&cfg),
        birth: weights.birth,
        learned: weights.learned,
        masks: weights.masks,
        curve: weights.curve,
        seed: scenario.seed,
        cfg,
        life,
        indices,
        hyper,
    })
}

/// Exports organism `id` of the run in `run_dir` into `out`; returns the
/// files written.
pub fn export(run_dir: &Path, id: OrganismId, out: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let bad = |message: String| EngineError::BadRunDir {
        path: run_dir.to_owned(),
        message,
    };
    let o = organism(run_dir, id)?;
    let (cfg, life, indices, hyper, generation) =
        (&o.cfg, &o.life, &o.indices, o.hyper, o.generation);
    let curve = &o.curve;
    fs::create_dir_all(out).map_err(EngineError::io("cannot create", out))?;
    let mut written = Vec::new();
    let mut write = |name: &str, bytes: Vec<u8>| -> Result<(), EngineError> {
        let path = out.join(name);
        fs::write(&path, bytes).map_err(EngineError::io("cannot write", &path))?;
        written.push(path);
        Ok(())
    };
    let names: Vec<String> = o.params.iter().map(|p| p.name.clone()).collect();
    let some = |v: &[Vec<f32>]| v.iter().cloned().map(Some).collect::<Vec<_>>();
    for (file, values) in [
        ("birth.safetensors", &some(&o.birth)),
        ("final.safetensors", &some(&o.learned)),
        ("masks.safetensors", &o.masks),
        ("signs.safetensors", &o.signs),
    ] {
        write(file, named_f32(cfg, values, &names)?)?;
    }
    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    batch_tensors("train", &life.train, &mut data);
    batch_tensors("heldout", &life.heldout, &mut data);
    let batch = cfg.life.batch;
    data.push((
        "indices".into(),
        Dtype::U32,
        vec![indices.len() / batch.max(1), batch],
        indices.iter().flat_map(|i| i.to_le_bytes()).collect(),
    ));
    write("lifetime.safetensors", serialize(&data)?)?;
    let json = serde_json::json!({
        "organism": id,
        "generation": generation,
        "seed": o.seed,
        "model": cfg.model.family().describe(),
        "task": format!("{:?}", cfg.task),
        "loss": format!("{:?}", lineage_learn::Loss::of(&cfg.task)),
        "batch": batch,
        "optimizer": {
            "method": format!("{:?}", cfg.life.optimizer.method).to_lowercase(),
            "lr": hyper.lr,
            "momentum": hyper.momentum,
            "weight_decay": hyper.weight_decay,
            "beta2": cfg.life.optimizer.beta2,
            "eps": cfg.life.optimizer.eps,
            "clip": cfg.life.optimizer.clip,
            "schedule": schedule_json(cfg.life.optimizer.schedule),
        },
        "steps": hyper.steps,
        "parameters": names,
        "status": format!("{:?}", curve.status),
        "curve": curve_json(curve),
    });
    write(
        "lifetime.json",
        serde_json::to_vec_pretty(&json).map_err(|e| bad(e.to_string()))?,
    )?;
    Ok(written)
}

/// An organism's weights and curve, as exported.
struct Exported {
    birth: Vec<Vec<f32>>,
    learned: Vec<Vec<f32>>,
    masks: Vec<Option<Vec<f32>>>,
    curve: LearningCurve,
}

/// Develops and trains an organism exactly as the run does.
fn live(
    cfg: &lineage_scenario::LifetimeConfig,
    seed: u64,
    generation: u32,
    lineage: &crate::components::Lineage,
    genome: &lineage_evo::Genome,
    inherited: Option<&crate::components::Inherited>,
    life: &lineage_env::Lifetime,
    indices: &[u32],
    hyper: lineage_learn::Hyper,
) -> Result<Exported, EngineError> {
    let fail = |message: String| EngineError::Learning {
        generation,
        message,
    };
    let (birth, masks) = birth_of(cfg, seed, lineage, genome, inherited, None).map_err(fail)?;
    let device = cfg.device.device().map_err(|e| fail(e.to_string()))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let job = lineage_learn::Job {
        params: birth.clone(),
        masks: masks.clone(),
        signs: crate::develop::signs(cfg),
        hyper,
        train: &life.train,
        heldout: &life.heldout,
        probes: &[],
        indices: indices.to_vec(),
    };
    let outcome = lineage_learn::train_population(
        &cfg.model,
        &cfg.task,
        &cfg.life,
        &device,
        cfg.path,
        vec![job],
        &pool,
    )
    .map_err(|e| fail(e.to_string()))?
    .remove(0);
    Ok(Exported {
        birth,
        learned: outcome.params,
        masks,
        curve: LearningCurve {
            points: outcome.curve,
            status: Some(outcome.status),
            heldout: None,
            probes: Vec::new(),
        },
    })
}

fn named_f32(
    cfg: &lineage_scenario::LifetimeConfig,
    values: &[Option<Vec<f32>>],
    names: &[String],
) -> Result<Vec<u8>, EngineError> {
    let params = cfg.model.params();
    let mut data = Vec::new();
    for ((name, v), p) in names.iter().zip(values).zip(&params) {
        if let Some(v) = v {
            data.push((
                name.clone(),
                Dtype::F32,
                p.shape.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ));
        }
    }
    serialize(&data)
}

fn batch_tensors(prefix: &str, batch: &Batch, out: &mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>) {
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    match batch {
        Batch::Dense { n, x, y } => {
            out.push((
                format!("{prefix}.x"),
                Dtype::F32,
                vec![*n, x.len() / n.max(&1)],
                f32s(x),
            ));
            out.push((
                format!("{prefix}.y"),
                Dtype::F32,
                vec![*n, y.len() / n.max(&1)],
                f32s(y),
            ));
        }
        Batch::Labeled { n, x, labels } => {
            out.push((
                format!("{prefix}.x"),
                Dtype::F32,
                vec![*n, x.len() / n.max(&1)],
                f32s(x),
            ));
            out.push((
                format!("{prefix}.labels"),
                Dtype::U32,
                vec![*n],
                u32s(labels),
            ));
        }
        Batch::Sequences {
            n,
            steps,
            x,
            labels,
        } => {
            let dim = x.len() / (n * steps).max(1);
            out.push((
                format!("{prefix}.x"),
                Dtype::F32,
                vec![*n, *steps, dim],
                f32s(x),
            ));
            out.push((
                format!("{prefix}.labels"),
                Dtype::U32,
                vec![*n, *steps],
                u32s(labels),
            ));
        }
        Batch::Tokens { n, len, tokens } => {
            out.push((
                format!("{prefix}.tokens"),
                Dtype::U32,
                vec![*n, *len],
                u32s(tokens),
            ));
        }
    }
}

fn serialize(data: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> Result<Vec<u8>, EngineError> {
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| EngineError::Learning {
            generation: 0,
            message: format!("cannot lay out the export: {e}"),
        })?;
    safetensors::serialize(views, None::<HashMap<String, String>>).map_err(|e| {
        EngineError::Learning {
            generation: 0,
            message: format!("cannot serialise the export: {e}"),
        }
    })
}

fn schedule_json(s: Schedule) -> serde_json::Value {
    match s {
        Schedule::Constant => serde_json::json!({"kind": "constant"}),
        Schedule::WarmupHoldCooldown { warmup, cooldown } => {
            serde_json::json!({"kind": "warmup-hold-cooldown", "warmup": warmup, "cooldown": cooldown})
        }
        Schedule::InverseSqrt { warmup } => {
            serde_json::json!({"kind": "inverse-sqrt", "warmup": warmup})
        }
    }
}

fn curve_json(curve: &LearningCurve) -> serde_json::Value {
    serde_json::Value::Array(
        curve
            .points
            .iter()
            .map(|p| serde_json::json!({"step": p.step, "train": p.train, "heldout": p.heldout}))
            .collect(),
    )
}
