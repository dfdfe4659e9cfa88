//! Conditions: one scenario's variants (controls, ablations, sweeps), each
//! run once per seed into its own run directory, and founders taken from
//! another condition's final population.
//!
//! A scenario with `[[conditions]]` runs into `RUN/conditions/<name>/seed-<k>/`,
//! each an ordinary run directory; `RUN/conditions.json` lists them for
//! `lineage report`. A condition with `from` starts from the source
//! condition's final checkpoint, seeds paired by position (the k-th seed
//! from the source's k-th seed, or every seed from a source's only one;
//! see [`source_dir`]): its founders inherit what the source's organisms would pass on (a pending
//! newborn's inheritance, or an organism's learned weights and masks),
//! transformed as the condition says (mask shuffled, signs randomised)
//! before development. When the condition's genome differs from the
//! source's (a lineage founding a population of connectome genomes), the
//! founders' other genes are drawn afresh and the inherited connectome is
//! written into their connectome genes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lineage_evo::rng::{Purpose, stream};
use lineage_scenario::{Condition, ConnectomeBits, ConnectomeTransform, LifetimeConfig, Scenario};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::components::{Genome, Inherited};
use crate::error::EngineError;

/// `RUN/conditions.json`.
pub const INDEX: &str = "conditions.json";

/// The index of a conditions run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// The scenario's name.
    pub scenario: String,
    /// The conditions, in run order.
    pub conditions: Vec<IndexEntry>,
}

/// One condition in the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Its name.
    pub name: String,
    /// The condition it starts from.
    pub from: Option<String>,
    /// Its seeds.
    pub seeds: Vec<u64>,
    /// Its run directories, relative to the root, in seed order.
    pub runs: Vec<String>,
}

/// The run directory of `condition`'s run with seed `seed`, relative to
/// the root.
pub fn run_dir(condition: &str, seed: u64) -> String {
    format!("conditions/{condition}/seed-{seed}")
}

impl Index {
    /// The index of `scenario`'s conditions.
    pub fn of(scenario: &Scenario) -> Index {
        Index {
            scenario: scenario.name.clone(),
            conditions: scenario
                .conditions
                .iter()
                .map(|c| IndexEntry {
                    name: c.name.clone(),
                    from: c.from.clone(),
                    seeds: c.runs.iter().map(|r| r.seed).collect(),
                    runs: c.runs.iter().map(|r| run_dir(&c.name, r.seed)).collect(),
                })
                .collect(),
        }
    }

    /// Writes `root/conditions.json` atomically: a crash leaves the old
    /// index or the new one, never a part of either.
    pub fn write(&self, root: &Path) -> Result<(), EngineError> {
        let json = serde_json::to_vec_pretty(self).expect("an index serialises");
        write_atomic(&root.join(INDEX), &json)
    }
}

/// Writes `path` atomically, as checkpoints and the manifest are written:
/// the bytes go to a temporary file beside it (same folder, so the same
/// file system), synced, then renamed over `path`, and the folder synced.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    checkpoint::write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(EngineError::io("cannot write", path))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The run a condition with `from` starts from, for its run with `seed`:
/// seeds pair by position. The k-th seed of the condition takes its
/// founders from the k-th seed of its source, so each replicate descends
/// from its own, independent source run; a source with a single seed
/// founds every seed of the condition. A source with several seeds but
/// fewer than the condition is refused (validation refuses it first; this
/// guards a hand-edited run directory). `None` without `from`.
pub fn source_dir(
    root: &Path,
    scenario: &Scenario,
    condition: &Condition,
    seed: u64,
) -> Result<Option<PathBuf>, EngineError> {
    let Some(from) = condition.from.as_deref() else {
        return Ok(None);
    };
    let bad = |message: String| EngineError::BadRunDir {
        path: root.join(crate::SCENARIO_FILE),
        message,
    };
    let source = scenario
        .conditions
        .iter()
        .find(|c| c.name == from)
        .ok_or_else(|| {
            bad(format!(
                "condition `{}` starts from `{from}`, which is not a condition",
                condition.name
            ))
        })?;
    let k = condition
        .runs
        .iter()
        .position(|r| r.seed == seed)
        .ok_or_else(|| bad(format!("condition `{}` has no seed {seed}", condition.name)))?;
    let paired = match source.runs.as_slice() {
        [only] => only,
        runs => runs.get(k).ok_or_else(|| {
            bad(format!(
                "condition `{}` has {} seeds but its source `{from}` has {}: seeds pair by position (the k-th seed starts from the source's k-th), so the source needs at least as many seeds, or exactly one",
                condition.name,
                condition.runs.len(),
                runs.len()
            ))
        })?,
    };
    Ok(Some(root.join(run_dir(from, paired.seed))))
}

/// Founders from `source`'s final checkpoint: `population` genomes and what
/// each inherits, cycling through the source's organisms in id order, with
/// the transform applied from each founder's stream.
pub fn founders_from(
    source: &Path,
    scenario: &Scenario,
    transform: ConnectomeTransform,
) -> Result<Vec<(Genome, Option<Inherited>)>, EngineError> {
    let bad = |message: String| EngineError::BadRunDir {
        path: source.to_path_buf(),
        message,
    };
    let checkpoint_dir = checkpoint::latest(source)?;
    // The source's genome may differ from this condition's (a lineage
    // without connectome genes founding a population with them): read its
    // checkpoint with its own scenario's genome.
    let source_scenario = lineage_scenario::load(
        &source.join(crate::SCENARIO_FILE),
        &lineage_scenario::Overrides::default(),
    )?;
    let same_genome = source_scenario.genome == scenario.genome;
    let (_, organisms) = checkpoint::load(
        &checkpoint_dir,
        source_scenario.genome.bits,
        source_scenario.genome.genes.len(),
    )?;
    let learned = checkpoint::load_weights(&checkpoint_dir)?;
    let cfg: &LifetimeConfig = scenario.phases[0]
        .pressures
        .lifetime
        .as_deref()
        .ok_or_else(|| bad("a condition that starts from another needs [lifetime]".into()))?;
    let layout = cfg.model.params();
    // Best first: evaluated organisms by the first objective, then the
    // rest (pending newborns), ties by id; so a condition of one organism
    // starts from the source's best.
    let direction = scenario.objectives.first().map(|o| o.direction);
    let mut organisms = organisms;
    organisms.sort_by(|(_, a, fa), (_, b, fb)| {
        let utility = |f: &crate::components::Fitness| match (direction, f.is_pending()) {
            (Some(d), false) => d.utility(f.values[0]),
            _ => f64::NEG_INFINITY,
        };
        utility(fb).total_cmp(&utility(fa)).then(a.id.cmp(&b.id))
    });
    let mut pool: Vec<(Genome, Option<Inherited>)> = Vec::new();
    for (genome, lineage, _) in organisms {
        let state = learned.get(&lineage.id);
        let inherited = match state {
            Some(s) if s.inherited.is_some() => s.inherited.clone(),
            Some(s) => s.weights.as_ref().and_then(|w| {
                let values = w.learned.as_ref().or(w.birth.as_ref())?;
                Some(Inherited {
                    learned: Arc::new(values.parts(layout.iter().map(|p| p.len()))),
                    masks: Arc::new(w.masks.values()),
                })
            }),
            None => None,
        };
        let Some(inherited) = inherited else {
            // A genome-only organism (a connectome developed from its bits):
            // it passes on its genome alone.
            pool.push((genome, None));
            continue;
        };
        let fits = inherited.learned.len() == layout.len()
            && inherited
                .learned
                .iter()
                .zip(&layout)
                .all(|(w, p)| w.len() == p.len());
        if !fits {
            return Err(bad(
                "its weights do not fit this condition's model: conditions that start from another must share its model".into(),
            ));
        }
        pool.push((genome, Some(inherited)));
    }
    if pool.is_empty() {
        return Err(bad("its final checkpoint holds no organism".into()));
    }
    let population = scenario.pressures_at(0).population;
    Ok((0..population)
        .map(|j| {
            let (genome, inherited) = &pool[j % pool.len()];
            let mut rng = stream(scenario.seed, 0, j as u64, Purpose::Transform);
            let inherited = inherited
                .as_ref()
                .map(|i| transformed(i, transform, &mut rng));
            let mut genome = if same_genome {
                genome.clone()
            } else {
                // Other genes: drawn as a founder's would be.
                let mut init = stream(scenario.seed, 0, j as u64, Purpose::Init);
                Genome(lineage_evo::Genome::random(&scenario.genome, &mut init))
            };
            // A genome like the source's carries its own connectome genes;
            // a new one gets the inherited connectome written into them.
            if let (false, Some(i)) = (same_genome, &inherited) {
                write_connectome(&cfg.connectome, i, &mut genome);
            }
            (genome, inherited)
        })
        .collect())
}

/// Writes an inherited connectome into a genome's connectome genes (a
/// matrix without a mask is fully connected; a weight's sign is its sign
/// bit), so a condition that develops connectomes from the genome starts
/// from it.
pub fn write_connectome(regions: &[ConnectomeBits], inherited: &Inherited, genome: &mut Genome) {
    let bits = genome.0.bits_mut();
    for c in regions {
        let (Some(w), mask) = (inherited.learned.get(c.param), inherited.masks.get(c.param)) else {
            continue;
        };
        for k in 0..c.len.min(w.len()) {
            let kept = mask.and_then(|m| m.as_ref()).is_none_or(|m| m[k] != 0.0);
            bits.set(c.mask + k, kept);
            bits.set(c.signs + k, w[k] >= 0.0);
        }
    }
}

/// `inherited` with every masked matrix's connections moved to random
/// positions (carrying their weights) and/or given random signs.
pub fn transformed(
    inherited: &Inherited,
    transform: ConnectomeTransform,
    rng: &mut impl Rng,
) -> Inherited {
    if transform == ConnectomeTransform::default() {
        return inherited.clone();
    }
    let mut learned: Vec<Vec<f32>> = inherited.learned.as_ref().clone();
    let mut masks: Vec<Option<Vec<f32>>> = inherited.masks.as_ref().clone();
    for (w, mask) in learned.iter_mut().zip(masks.iter_mut()) {
        let Some(mask) = mask else { continue };
        if transform.shuffle_mask {
            // Fisher-Yates: connection i moves to position perm[i].
            let mut perm: Vec<usize> = (0..mask.len()).collect();
            for i in (1..perm.len()).rev() {
                perm.swap(i, rng.random_range(0..=i));
            }
            let (old_w, old_m) = (w.clone(), mask.clone());
            for (i, &to) in perm.iter().enumerate() {
                w[to] = old_w[i];
                mask[to] = old_m[i];
            }
        }
        if transform.random_signs {
            for (x, &m) in w.iter_mut().zip(mask.iter()) {
                if m != 0.0 {
                    let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                    *x = x.abs() * sign;
                }
            }
        }
    }
    Inherited {
        learned: Arc::new(learned),
        masks: Arc::new(masks),
    }
}

/// Creates the root directory of a conditions run (`out`, which must not
/// exist or be empty, or `runs/<name>-<UTC timestamp>`) and writes the
/// resolved scenario and the index into it.
pub fn create_root(scenario: &Scenario, out: Option<&Path>) -> Result<PathBuf, EngineError> {
    let root = crate::run::output_dir(out, &scenario.name)?;
    std::fs::create_dir_all(root.join("conditions"))
        .map_err(EngineError::io("cannot create", &root))?;
    checkpoint::write_synced(
        &root.join(crate::SCENARIO_FILE),
        scenario.resolved_toml.as_bytes(),
    )?;
    Index::of(scenario).write(&root)?;
    Ok(root)
}

/// What [`run_all`] reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A run starts (or, on resume, continues).
    Started {
        /// The condition.
        condition: String,
        /// The seed.
        seed: u64,
        /// Its run directory.
        dir: PathBuf,
    },
    /// A run was already complete and is skipped.
    Skipped {
        /// The condition.
        condition: String,
        /// The seed.
        seed: u64,
    },
    /// A run finished.
    Finished {
        /// The condition.
        condition: String,
        /// The seed.
        seed: u64,
        /// The last generation's best value of the first objective.
        best: f64,
    },
}

/// Runs every condition's runs into `root` (which exists and holds the
/// index), starting runs that are missing, resuming unfinished ones and
/// skipping finished ones: so the same call both runs and resumes an
/// experiment.
///
/// Runs are independent, so several run at once when their populations
/// are smaller than the thread count: a stage of runs (up to the next
/// condition that starts `from` another, which waits for its source) is
/// shared out among `threads / population` workers, each running one run
/// at a time on its share of the threads, as many as fit in the machine's
/// available memory by the runs' estimates. Every run's records are the
/// same whatever its thread count, so this changes only the wall time.
/// Events arrive in the order they happen, from whichever run.
///
/// Setting `stop` stops the experiment at a safe point: every run under
/// way checkpoints at the end of its generation, no further run starts,
/// and the result is [`EngineError::Stopped`]; calling again (or `lineage
/// resume`) continues exactly there.
pub fn run_all(
    scenario: &Scenario,
    root: &Path,
    threads: usize,
    stop: &AtomicBool,
    mut on_event: impl FnMut(Event),
) -> Result<(), EngineError> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut stage: Vec<(&Condition, &Scenario)> = Vec::new();
    for condition in &scenario.conditions {
        if condition.from.is_some() {
            run_stage(scenario, root, threads, &stage, stop, &mut on_event)?;
            stage.clear();
        }
        stage.extend(condition.runs.iter().map(|run| (condition, run)));
    }
    run_stage(scenario, root, threads, &stage, stop, &mut on_event)
}

/// How many of `runs` to run at once on `threads` threads.
fn concurrent_runs(runs: &[(&Condition, &Scenario)], threads: usize) -> usize {
    let population = runs
        .iter()
        .flat_map(|(_, run)| run.phases.iter().map(|p| p.pressures.population))
        .max()
        .unwrap_or(1)
        .max(1);
    let by_memory = match (
        lineage_scenario::available_memory(),
        runs.iter().map(|(_, run)| run.memory.total()).max(),
    ) {
        (Some(available), Some(each)) if each > 0 => (available / each).max(1) as usize,
        _ => usize::MAX,
    };
    (threads / population)
        .min(by_memory)
        .clamp(1, runs.len().max(1))
}

/// Runs `runs`, several at once where [`concurrent_runs`] allows; after a
/// failure no further run starts, the runs under way finish (nothing they
/// compute is lost), and the first error is returned.
fn run_stage(
    scenario: &Scenario,
    root: &Path,
    threads: usize,
    runs: &[(&Condition, &Scenario)],
    stop: &AtomicBool,
    on_event: &mut impl FnMut(Event),
) -> Result<(), EngineError> {
    let jobs = concurrent_runs(runs, threads);
    if jobs <= 1 {
        for &(condition, run) in runs {
            run_one(scenario, root, condition, run, threads, stop, on_event)?;
        }
        return Ok(());
    }
    let per_run = (threads / jobs).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                let tx = tx.clone();
                let (next, failed) = (&next, &failed);
                scope.spawn(move || -> Result<(), EngineError> {
                    while !failed.load(Ordering::SeqCst) {
                        let Some(&(condition, run)) = runs.get(next.fetch_add(1, Ordering::SeqCst))
                        else {
                            break;
                        };
                        let mut send = |event| {
                            // The receiver lives until every worker is done.
                            let _ = tx.send(event);
                        };
                        if let Err(e) =
                            run_one(scenario, root, condition, run, per_run, stop, &mut send)
                        {
                            failed.store(true, Ordering::SeqCst);
                            return Err(e);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        drop(tx);
        for event in rx {
            on_event(event);
        }
        let mut outcome = Ok(());
        for worker in workers {
            let result = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    })
}

/// Runs (or resumes, or skips when finished) one seed's run of `condition`.
fn run_one(
    scenario: &Scenario,
    root: &Path,
    condition: &Condition,
    run: &Scenario,
    threads: usize,
    stop: &AtomicBool,
    on_event: &mut impl FnMut(Event),
) -> Result<(), EngineError> {
    if stop.load(Ordering::SeqCst) {
        return Err(EngineError::Stopped);
    }
    let dir = root.join(run_dir(&condition.name, run.seed));
    let (name, seed) = (condition.name.clone(), run.seed);
    if dir.exists() && !started(&dir) {
        // Killed while it was being created: nothing was computed.
        std::fs::remove_dir_all(&dir).map_err(EngineError::io("cannot remove", &dir))?;
    }
    let mut active = if dir.exists() {
        let manifest = crate::manifest::Manifest::read(&dir)?;
        let skip = || Event::Skipped {
            condition: name.clone(),
            seed,
        };
        if manifest.finished.is_some() {
            on_event(skip());
            return Ok(());
        }
        match crate::Run::resume(&dir, None, threads)? {
            crate::Resumed::Running(run) => *run,
            crate::Resumed::Finished(_) => {
                on_event(skip());
                return Ok(());
            }
        }
    } else {
        let founders = match source_dir(root, scenario, condition, seed)? {
            Some(source) => Some(founders_from(&source, run, condition.connectome)?),
            None => None,
        };
        let options = crate::RunOptions {
            out: Some(dir.clone()),
            threads,
        };
        crate::Run::start_with(run.clone(), &options, founders)?
    };
    on_event(Event::Started {
        condition: name.clone(),
        seed,
        dir: dir.clone(),
    });
    let mut best = f64::NAN;
    while !active.is_done() {
        best = active.step()?.best.first().copied().unwrap_or(f64::NAN);
        if stop.load(Ordering::SeqCst) && !active.is_done() {
            active.checkpoint()?;
            return Err(EngineError::Stopped);
        }
    }
    active.finish()?;
    on_event(Event::Finished {
        condition: name,
        seed,
        best,
    });
    Ok(())
}

/// True when a run directory got as far as its first checkpoint: before
/// that, a run killed while being created has computed nothing.
fn started(dir: &Path) -> bool {
    dir.join(crate::manifest::MANIFEST).exists() && crate::checkpoint::latest(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connectome() -> Inherited {
        Inherited {
            learned: Arc::new(vec![vec![0.5, -0.25, 0.0, 2.0, 0.0, -1.0], vec![3.0]]),
            masks: Arc::new(vec![Some(vec![1.0, 1.0, 0.0, 1.0, 0.0, 1.0]), None]),
        }
    }

    #[test]
    fn the_index_is_replaced_whole_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let index = |name: &str| Index {
            scenario: name.into(),
            conditions: vec![],
        };
        index("first").write(root).unwrap();
        let first = std::fs::read(root.join(INDEX)).unwrap();
        // A write that cannot complete (its temporary file cannot be
        // created) leaves the old index as it was: the new bytes never go
        // into `conditions.json` itself.
        let blocker = root.join(format!(".{INDEX}.tmp"));
        std::fs::create_dir(&blocker).unwrap();
        assert!(index("second").write(root).is_err());
        assert_eq!(std::fs::read(root.join(INDEX)).unwrap(), first);
        // Once it can, the new index replaces the old and no temporary
        // file is left behind.
        std::fs::remove_dir(&blocker).unwrap();
        index("second").write(root).unwrap();
        let read: Index =
            serde_json::from_slice(&std::fs::read(root.join(INDEX)).unwrap()).unwrap();
        assert_eq!(read, index("second"));
        let names: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [INDEX]);
    }

    #[test]
    fn an_inherited_connectome_is_written_into_connectome_genes() {
        // Matrix 0 (6 weights, masked) at bits 0..6 / 6..12; matrix 1 (one
        // weight, dense) at bits 12 / 13.
        let regions = [
            ConnectomeBits {
                param: 0,
                mask: 0,
                signs: 6,
                len: 6,
            },
            ConnectomeBits {
                param: 1,
                mask: 12,
                signs: 13,
                len: 1,
            },
        ];
        let mut genome = Genome(lineage_evo::Genome::new(
            lineage_evo::BitString::zeros(14),
            vec![],
        ));
        write_connectome(&regions, &connectome(), &mut genome);
        let bits: String = (0..14)
            .map(|i| if genome.0.bits().get(i) { '1' } else { '0' })
            .collect();
        // Mask 110101; signs of 0.5, -0.25, 0, 2, 0, -1: 101110 (zero is
        // positive); the dense matrix: kept, positive.
        assert_eq!(bits, "110101".to_owned() + "101110" + "11");
    }

    #[test]
    fn shuffling_keeps_each_matrix_density_and_its_weights() {
        let mut rng = stream(1, 0, 0, Purpose::Transform);
        let t = ConnectomeTransform {
            shuffle_mask: true,
            random_signs: false,
        };
        let out = transformed(&connectome(), t, &mut rng);
        let mask = out.masks[0].as_ref().unwrap();
        assert_eq!(mask.iter().sum::<f32>(), 4.0);
        let mut kept: Vec<f32> = out.learned[0]
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m != 0.0)
            .map(|(w, _)| *w)
            .collect();
        kept.sort_by(f32::total_cmp);
        assert_eq!(kept, [-1.0, -0.25, 0.5, 2.0]);
        // Unmasked matrices are left alone.
        assert_eq!(out.learned[1], [3.0]);
        assert!(out.masks[1].is_none());
    }

    #[test]
    fn random_signs_keep_the_mask_and_magnitudes_and_flip_some() {
        let t = ConnectomeTransform {
            shuffle_mask: false,
            random_signs: true,
        };
        let mut flipped = 0;
        for seed in 0..20 {
            let mut rng = stream(seed, 0, 0, Purpose::Transform);
            let out = transformed(&connectome(), t, &mut rng);
            assert_eq!(out.masks, connectome().masks);
            for (a, b) in out.learned[0].iter().zip(connectome().learned[0].iter()) {
                assert_eq!(a.abs(), b.abs());
                flipped += usize::from(a != b);
            }
        }
        // 4 connections x 20 draws, each flipped with probability 1/2.
        assert!((20..60).contains(&flipped), "{flipped} flips");
    }
}
