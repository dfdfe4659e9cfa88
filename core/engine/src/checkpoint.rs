//! Checkpoints: the whole search state at the start of a generation.
//!
//! `checkpoints/gen-NNNNNN/` holds the state from which generation `NNNNNN`
//! starts: `state.json` (generation, next organism id, environment phase,
//! progress, the tables' lengths, the seed and the scenario's hash) and
//! `population.safetensors` (ids, births, parents, fitness, genomes as
//! plain arrays that NumPy and PyTorch read). Random streams are a function
//! of (seed, generation, organism, purpose), so no generator state is
//! stored. A checkpoint is written into a temporary directory, synced, and
//! renamed into place, so a crash never leaves a half-written one.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::components::{
    Fitness, Genome, Inherited, LearningCurve, Lineage, Masks, OrganismId, Params, Weights,
};
use crate::error::EngineError;
use crate::recorder::TableLengths;
use crate::resources::Progress;

/// Version of the checkpoint layout.
pub const CHECKPOINT_FORMAT: u32 = 2;

const STATE: &str = "state.json";
const POPULATION: &str = "population.safetensors";
const WEIGHTS: &str = "weights.safetensors";
const NO_PARENT: u64 = u64::MAX;

/// Everything but the population.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// [`CHECKPOINT_FORMAT`] of the writer.
    pub format: u32,
    /// The generation this state starts.
    pub generation: u32,
    /// The id the next newborn gets.
    pub next_organism_id: u64,
    /// Environment phase in force in the previous generation.
    pub environment_phase: usize,
    /// Whether that phase took effect in the previous generation.
    pub environment_changed: bool,
    /// Best values so far and stopping state.
    pub progress: Progress,
    /// Lengths of the run's tables when the state was taken.
    pub tables: TableLengths,
    /// The scenario's seed.
    pub seed: u64,
    /// SHA-256 of the resolved scenario.
    pub scenario_sha256: String,
    /// Number of organisms in `population.safetensors`.
    pub organisms: usize,
}

/// One organism's stored state.
pub type Organism = (Genome, Lineage, Fitness);

/// The directory of the checkpoint that starts `generation`.
pub fn dir_for(run_dir: &Path, generation: u32) -> PathBuf {
    run_dir
        .join("checkpoints")
        .join(format!("gen-{generation:06}"))
}

/// The latest checkpoint in a run directory.
pub fn latest(run_dir: &Path) -> Result<PathBuf, EngineError> {
    all(run_dir)?.pop().ok_or_else(|| EngineError::BadRunDir {
        path: run_dir.join("checkpoints"),
        message: "holds no checkpoint: the run was stopped before its founders were saved, so nothing was computed; start it again".into(),
    })
}

/// The generation a checkpoint folder starts (`gen-NNNNNN`, or one moved
/// aside as `gen-NNNNNN.old`).
pub fn generation_of(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?.strip_prefix("gen-")?;
    name.strip_suffix(".old").unwrap_or(name).parse().ok()
}

/// Every checkpoint in a run directory, oldest first.
pub fn all(run_dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let root = run_dir.join("checkpoints");
    let entries =
        fs::read_dir(&root).map_err(EngineError::io("cannot list checkpoints in", &root))?;
    let mut found: Vec<(u32, bool, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let name = name.strip_prefix("gen-")?;
            // A checkpoint moved aside while being replaced counts until
            // its replacement is in place (`save`).
            let (n, aside) = match name.strip_suffix(".old") {
                Some(n) => (n.parse().ok()?, true),
                None => (name.parse().ok()?, false),
            };
            Some((n, aside, e.path()))
        })
        .collect();
    // The one in place sorts before one moved aside, and is kept.
    found.sort();
    found.dedup_by_key(|(n, _, _)| *n);
    Ok(found.into_iter().map(|(_, _, p)| p).collect())
}

/// Writes a checkpoint atomically. `organisms` must be sorted by id.
pub fn save(
    run_dir: &Path,
    state: &CheckpointState,
    organisms: &[(&Genome, &Lineage, &Fitness)],
    learned: &[(OrganismId, Option<&Weights>, &LearningCurve)],
    inherited: &[(OrganismId, &Inherited)],
) -> Result<PathBuf, EngineError> {
    encode(run_dir, state, organisms, learned, inherited)?.write()
}

/// A checkpoint encoded in memory, ready to be written: what the world
/// holds is copied out, so the run can go on while it is written
/// ([`crate::writer`]).
pub struct Encoded {
    target: PathBuf,
    generation: u32,
    population: Vec<u8>,
    weights: Option<Vec<Named>>,
    state: Vec<u8>,
}

/// Encodes a checkpoint. `organisms` must be sorted by id.
pub fn encode(
    run_dir: &Path,
    state: &CheckpointState,
    organisms: &[(&Genome, &Lineage, &Fitness)],
    learned: &[(OrganismId, Option<&Weights>, &LearningCurve)],
    inherited: &[(OrganismId, &Inherited)],
) -> Result<Encoded, EngineError> {
    let target = dir_for(run_dir, state.generation);
    let tmp = target.with_extension("tmp");
    let n = organisms.len();
    let m = organisms.first().map_or(0, |(_, _, f)| f.values.len());
    let words = organisms
        .first()
        .map_or(0, |(g, _, _)| g.0.bits().words().len());
    let genes = organisms.first().map_or(0, |(g, _, _)| g.0.reals().len());
    let mut ids = Vec::with_capacity(n * 8);
    let mut births = Vec::with_capacity(n * 4);
    let mut parents = Vec::with_capacity(n * 16);
    let mut evaluated = Vec::with_capacity(n * 8);
    let mut fitness = Vec::with_capacity(n * m * 8);
    let mut bits = Vec::with_capacity(n * words * 8);
    let mut reals = Vec::with_capacity(n * genes * 8);
    for (genome, lineage, fit) in organisms {
        ids.extend(lineage.id.to_le_bytes());
        births.extend(lineage.birth.to_le_bytes());
        for p in lineage.parents {
            parents.extend(p.unwrap_or(NO_PARENT).to_le_bytes());
        }
        evaluated.extend(fit.evaluated_at.map_or(-1i64, i64::from).to_le_bytes());
        fitness.extend(fit.values.iter().flat_map(|v| v.to_le_bytes()));
        bits.extend(genome.0.bits().words().iter().flat_map(|w| w.to_le_bytes()));
        reals.extend(genome.0.reals().iter().flat_map(|v| v.to_le_bytes()));
    }
    let tensors = [
        ("ids", Dtype::U64, vec![n], &ids),
        ("births", Dtype::U32, vec![n], &births),
        ("parents", Dtype::U64, vec![n, 2], &parents),
        ("evaluated_at", Dtype::I64, vec![n], &evaluated),
        ("fitness", Dtype::F64, vec![n, m], &fitness),
        ("bits", Dtype::U64, vec![n, words], &bits),
        ("reals", Dtype::F64, vec![n, genes], &reals),
    ];
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data).map(|v| (*name, v))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&tmp, format!("cannot lay out the population: {e}")))?;
    let bytes = safetensors::serialize(views, None::<HashMap<String, String>>)
        .map_err(|e| bad(&tmp, format!("cannot serialise the population: {e}")))?;
    let weights =
        (!learned.is_empty() || !inherited.is_empty()).then(|| weights_tensors(learned, inherited));
    let json = serde_json::to_vec_pretty(state).map_err(|e| bad(&tmp, e.to_string()))?;
    Ok(Encoded {
        target,
        generation: state.generation,
        population: bytes,
        weights,
        state: json,
    })
}

impl Encoded {
    /// The generation the checkpoint starts.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Writes the checkpoint atomically: into `gen-NNNNNN.tmp/`, every file
    /// synced, then renamed into place.
    pub fn write(self) -> Result<PathBuf, EngineError> {
        let target = self.target;
        let tmp = target.with_extension("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(EngineError::io("cannot remove", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(EngineError::io("cannot create", &tmp))?;
        write_synced(&tmp.join(POPULATION), &self.population)?;
        if let Some(weights) = &self.weights {
            write_tensors_synced(&tmp.join(WEIGHTS), weights)?;
        }
        crate::fault::at(crate::fault::Point::Checkpoint, self.generation)?;
        write_synced(&tmp.join(STATE), &self.state)?;
        // Replacing a checkpoint of the same generation (an abort's): the old
        // one steps aside as `.old` first, so at every moment one of the two
        // is there for `all` to find.
        let old = target.with_extension("old");
        if target.exists() {
            if old.exists() {
                fs::remove_dir_all(&old).map_err(EngineError::io("cannot remove", &old))?;
            }
            fs::rename(&target, &old).map_err(EngineError::io("cannot move aside", &target))?;
        }
        fs::rename(&tmp, &target)
            .map_err(EngineError::io("cannot move checkpoint into", &target))?;
        if old.exists() {
            fs::remove_dir_all(&old).map_err(EngineError::io("cannot remove", &old))?;
        }
        if let Some(parent) = target.parent()
            && let Ok(d) = File::open(parent)
        {
            let _ = d.sync_all();
        }
        Ok(target)
    }
}

/// `weights.safetensors`: for organism `ID`, what it keeps of its model:
/// `ID/birth` and `ID/learned` (f32, every parameter flat in the model's
/// order), `ID/mask/K` (u64 words, the bits of parameter `K`'s mask) and
/// `ID/mask_len` (i64, each parameter's mask length, 0 where dense);
/// `ID/curve` (f32 `[points, 3]`: step, train loss, held-out loss) and
/// `ID/status` (i64 `[2]`: 0 none, 1 completed, 2 diverged; the step) for
/// every organism that has learned.
///
/// A newborn that inherits weights (Lamarckian, prune) and has not yet
/// developed has `ID/inherited/K` and `ID/inherited_mask/K` instead: the
/// parent's learned weights and masks of parameter `K`, flat.
fn weights_tensors(
    learned: &[(OrganismId, Option<&Weights>, &LearningCurve)],
    inherited: &[(OrganismId, &Inherited)],
) -> Vec<Named> {
    let mut tensors: Vec<Named> = Vec::new();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (id, inh) in inherited {
        for (k, w) in inh.learned.iter().enumerate() {
            tensors.push((
                format!("{id}/inherited/{k}"),
                Dtype::F32,
                vec![w.len()],
                f32_bytes(w),
            ));
        }
        for (k, m) in inh.masks.iter().enumerate() {
            if let Some(m) = m {
                tensors.push((
                    format!("{id}/inherited_mask/{k}"),
                    Dtype::F32,
                    vec![m.len()],
                    f32_bytes(m),
                ));
            }
        }
    }
    for (id, weights, curve) in learned {
        if let Some(weights) = weights {
            for (kind, params) in [("birth", &weights.birth), ("learned", &weights.learned)] {
                if let Some(p) = params {
                    tensors.push((
                        format!("{id}/{kind}"),
                        Dtype::F32,
                        vec![p.0.len()],
                        f32_bytes(&p.0),
                    ));
                }
            }
            let lens: Vec<i64> = weights
                .masks
                .0
                .iter()
                .map(|m| m.as_ref().map_or(0, |b| b.len() as i64))
                .collect();
            tensors.push((
                format!("{id}/mask_len"),
                Dtype::I64,
                vec![lens.len()],
                lens.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ));
            for (k, m) in weights.masks.0.iter().enumerate() {
                if let Some(bits) = m {
                    tensors.push((
                        format!("{id}/mask/{k}"),
                        Dtype::U64,
                        vec![bits.words().len()],
                        bits.words().iter().flat_map(|w| w.to_le_bytes()).collect(),
                    ));
                }
            }
        }
        let points: Vec<f32> = curve
            .points
            .iter()
            .flat_map(|p| [p.step as f32, p.train, p.heldout])
            .collect();
        tensors.push((
            format!("{id}/curve"),
            Dtype::F32,
            vec![curve.points.len(), 3],
            f32_bytes(&points),
        ));
        let status: [i64; 2] = match curve.status {
            None => [0, 0],
            Some(lineage_learn::Status::Completed) => [1, 0],
            Some(lineage_learn::Status::Diverged { step }) => [2, i64::from(step)],
        };
        tensors.push((
            format!("{id}/status"),
            Dtype::I64,
            vec![2],
            status.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
    }
    tensors
}

/// A named tensor's dtype, shape and little-endian bytes.
type Named = (String, Dtype, Vec<usize>, Vec<u8>);

/// Writes `tensors` as a safetensors file streamed to disk (no second copy
/// of the bytes in memory), synced.
fn write_tensors_synced(path: &Path, tensors: &[Named]) -> Result<(), EngineError> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data).map(|v| (name.as_str(), v))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| bad(path, format!("cannot lay out the weights: {e}")))?;
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| bad(path, format!("cannot write the weights: {e}")))?;
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(EngineError::io("cannot sync", path))
}

/// What a checkpoint holds beyond the genome for one organism.
#[derive(Default)]
pub struct LearnedState {
    /// What it kept of its model (`None`: nothing), once it has learned.
    pub weights: Option<Weights>,
    /// Its learning curve, once it has learned.
    pub curve: Option<LearningCurve>,
    /// What it inherited, while not yet developed.
    pub inherited: Option<Inherited>,
}

/// Reads a checkpoint's `weights.safetensors` (none: an empty map).
pub fn load_weights(dir: &Path) -> Result<HashMap<OrganismId, LearnedState>, EngineError> {
    let path = dir.join(WEIGHTS);
    let mut inherited: HashMap<OrganismId, (BTreeMap<usize, Vec<f32>>, BTreeMap<usize, Vec<f32>>)> =
        HashMap::new();
    // Mask words by parameter, and each parameter's mask length.
    let mut masks: HashMap<OrganismId, (BTreeMap<usize, Vec<u64>>, Vec<i64>)> = HashMap::new();
    let mut states: HashMap<OrganismId, LearnedState> = HashMap::new();
    if !path.exists() {
        return Ok(states);
    }
    let bytes = fs::read(&path).map_err(EngineError::io("cannot read", &path))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(&path, format!("is not a safetensors file: {e}")))?;
    let f32s = |data: &[u8]| -> Vec<f32> {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let i64s = |data: &[u8]| -> Vec<i64> {
        data.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    for (name, view) in st.tensors() {
        let malformed = || bad(&path, format!("holds a malformed tensor `{name}`"));
        let mut parts = name.splitn(3, '/');
        let id: OrganismId = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(malformed)?;
        let kind = parts.next().ok_or_else(malformed)?;
        let index = parts
            .next()
            .map(|s| s.parse::<usize>().map_err(|_| malformed()));
        let data = view.data();
        let state = states.entry(id).or_default();
        match (kind, view.dtype(), index) {
            ("inherited" | "inherited_mask", Dtype::F32, Some(k)) => {
                let e = inherited.entry(id).or_default();
                let side = if kind == "inherited" {
                    &mut e.0
                } else {
                    &mut e.1
                };
                side.insert(k?, f32s(data));
            }
            ("birth" | "learned", Dtype::F32, None) => {
                let w = state.weights.get_or_insert_with(Weights::default);
                let p = Some(Params(f32s(data).into_boxed_slice()));
                if kind == "birth" {
                    w.birth = p;
                } else {
                    w.learned = p;
                }
            }
            ("mask", Dtype::U64, Some(k)) => {
                let words = data
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                masks.entry(id).or_default().0.insert(k?, words);
            }
            ("mask_len", Dtype::I64, None) => {
                state.weights.get_or_insert_with(Weights::default);
                masks.entry(id).or_default().1 = i64s(data);
            }
            ("status", Dtype::I64, None) => {
                let curve = state.curve.get_or_insert_with(LearningCurve::default);
                curve.status = match i64s(data).as_slice() {
                    [0, _] => None,
                    [1, _] => Some(lineage_learn::Status::Completed),
                    [2, step] => Some(lineage_learn::Status::Diverged { step: *step as u32 }),
                    _ => return Err(malformed()),
                };
            }
            ("curve", Dtype::F32, None) => {
                let curve = state.curve.get_or_insert_with(LearningCurve::default);
                curve.points = f32s(data)
                    .chunks_exact(3)
                    .map(|p| lineage_learn::CurvePoint {
                        step: p[0] as u32,
                        train: p[1],
                        heldout: p[2],
                    })
                    .collect();
            }
            _ => return Err(malformed()),
        }
    }
    for (id, (mut words, lens)) in masks {
        let mut bits = Vec::with_capacity(lens.len());
        for (k, &len) in lens.iter().enumerate() {
            bits.push(match (len, words.remove(&k)) {
                (0, None) => None,
                (len, Some(w)) if len > 0 && w.len() == (len as usize).div_ceil(64) => {
                    Some(lineage_evo::BitString::from_words(w, len as usize))
                }
                _ => {
                    return Err(bad(
                        &path,
                        format!("holds a malformed mask of parameter {k} of organism {id}"),
                    ));
                }
            });
        }
        if let Some(w) = states.entry(id).or_default().weights.as_mut() {
            w.masks = Masks(bits);
        }
    }
    for (id, (learned, masks)) in inherited {
        let n = learned.len();
        let inh = Inherited {
            learned: std::sync::Arc::new(learned.into_values().collect()),
            masks: std::sync::Arc::new((0..n).map(|k| masks.get(&k).cloned()).collect()),
        };
        states.entry(id).or_default().inherited = Some(inh);
    }
    Ok(states)
}

/// Writes `bytes` to `path` and syncs it to disk.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let mut f = File::create(path).map_err(EngineError::io("cannot create", path))?;
    f.write_all(bytes)
        .map_err(EngineError::io("cannot write", path))?;
    f.sync_all().map_err(EngineError::io("cannot sync", path))
}

fn bad(path: &Path, message: String) -> EngineError {
    EngineError::BadRunDir {
        path: path.to_owned(),
        message,
    }
}

/// Reads a checkpoint's state alone (no population).
pub fn load_state(dir: &Path) -> Result<CheckpointState, EngineError> {
    let state_path = dir.join(STATE);
    let text = fs::read(&state_path).map_err(EngineError::io("cannot read", &state_path))?;
    serde_json::from_slice(&text)
        .map_err(|e| bad(&state_path, format!("is not a checkpoint state: {e}")))
}

/// Reads a checkpoint directory. `bits` and `genes` give the genome shape.
pub fn load(
    dir: &Path,
    bits: usize,
    genes: usize,
) -> Result<(CheckpointState, Vec<Organism>), EngineError> {
    let state_path = dir.join(STATE);
    let text = fs::read(&state_path).map_err(EngineError::io("cannot read", &state_path))?;
    let state: CheckpointState = serde_json::from_slice(&text)
        .map_err(|e| bad(&state_path, format!("is not a checkpoint state: {e}")))?;
    if state.format != CHECKPOINT_FORMAT {
        return Err(bad(
            &state_path,
            format!(
                "has checkpoint format {}, this Lineage reads format {CHECKPOINT_FORMAT}",
                state.format
            ),
        ));
    }
    let pop_path = dir.join(POPULATION);
    let bytes = fs::read(&pop_path).map_err(EngineError::io("cannot read", &pop_path))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(&pop_path, format!("is not a safetensors file: {e}")))?;
    let n = state.organisms;
    let words = bits.div_ceil(64);
    let get = |name: &str, dtype: Dtype, cols: Option<usize>| -> Result<&[u8], EngineError> {
        let t = st
            .tensor(name)
            .map_err(|e| bad(&pop_path, format!("tensor `{name}`: {e}")))?;
        let ok_shape = match cols {
            None => t.shape() == [n],
            Some(c) => t.shape() == [n, c] || (c == 0 && t.shape().first() == Some(&n)),
        };
        if t.dtype() != dtype || !ok_shape {
            return Err(bad(
                &pop_path,
                format!(
                    "tensor `{name}` is {:?} {:?}, expected {dtype:?} with {n} rows",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        Ok(t.data())
    };
    let u64s = |b: &[u8]| {
        b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    let f64s = |b: &[u8]| {
        b.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    let ids = u64s(get("ids", Dtype::U64, None)?);
    let births: Vec<u32> = get("births", Dtype::U32, None)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let parents = u64s(get("parents", Dtype::U64, Some(2))?);
    let evaluated: Vec<i64> = get("evaluated_at", Dtype::I64, None)?
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let fitness_t = st
        .tensor("fitness")
        .map_err(|e| bad(&pop_path, format!("tensor `fitness`: {e}")))?;
    let m = fitness_t.shape().get(1).copied().unwrap_or(0);
    let fitness = f64s(get("fitness", Dtype::F64, Some(m))?);
    let words_data = u64s(get("bits", Dtype::U64, Some(words))?);
    let reals = f64s(get("reals", Dtype::F64, Some(genes))?);

    let organisms = (0..n)
        .map(|i| {
            let bitstring = lineage_evo::BitString::from_words(
                words_data[i * words..(i + 1) * words].to_vec(),
                bits,
            );
            let genome =
                lineage_evo::Genome::new(bitstring, reals[i * genes..(i + 1) * genes].to_vec());
            let parent = |k: usize| Some(parents[2 * i + k]).filter(|&p| p != NO_PARENT);
            let lineage = Lineage {
                id: ids[i],
                parents: [parent(0), parent(1)],
                birth: births[i],
            };
            let fit = Fitness {
                values: SmallVec::from_slice(&fitness[i * m..(i + 1) * m]),
                evaluated_at: u32::try_from(evaluated[i]).ok(),
            };
            (Genome(genome), lineage, fit)
        })
        .collect();
    Ok((state, organisms))
}
