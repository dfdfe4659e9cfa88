//! `richlazy`: the measures of rich and lazy learning (Liu et al., ICLR
//! 2024; `../shared/design/science.md`, section 2) as an evaluation suite,
//! through the plugin ABI only.
//!
//! Two offerings:
//!
//! - `recurrent`, for a recurrent network on a NeuroGym-style task
//!   (`decision` or `delayed_match`), measured on its recurrent matrix
//!   (`weight`, default `w_rec`):
//!   - `weight_change`: `||W(T) - W(0)||_F`; `weight_change_rel` divides it
//!     by `||W(0)||_F`;
//!   - `kernel_alignment`: the tangent kernel `K = J J^T`, `J` the gradients
//!     of every output at every step of the first `kernel_trials` (32)
//!     probe trials with respect to `W` (768 rows at 8 steps and 3
//!     outputs), at birth and after learning, and their cosine
//!     `<K0, KT> / (|K0| |KT|)`;
//!   - `representation_alignment`: the same cosine on the Gram matrix of
//!     the decision-step hidden states of `representation_trials` (320)
//!     probe trials;
//!   - `sign_similarity`: the fraction of those decision-step hidden
//!     activations (trial x unit) whose sign (for ReLU: on or off) learning
//!     left unchanged;
//!   - `rank_normalized` (`sum s / (s_1 N)`), `rank_entropy` (Roy and
//!     Vetterli) and `spectral_radius` of `W` at birth;
//!   - `decision_accuracy` and `decision_loss` (cross-entropy) after
//!     learning, at the decision steps (label neither fixation nor
//!     unscored) of the organism's own held-out trials.
//! - `linear`, for the exception's student-teacher (`linear_teacher`, an MLP
//!   without activation): `weight_change`, `weight_change_rel` of `weight`
//!   (default `layers.0.weight`), `kernel_alignment` over **all** parameters
//!   on `kernel_samples` (256) probe inputs, `representation_alignment` of
//!   the hidden layer `hidden.0` on the same inputs, `rank_normalized` and
//!   `rank_entropy` of `weight` at birth, and `heldout_loss`, the lifetime's
//!   final held-out loss.
//!
//! The weight changes are declared `minimize`: used as an objective
//! (`fitness.metrics`), they are a plasticity cost. The other directions
//! say which way an objective would push, not which learning is better.
//!
//! Probe trials come from the environment's own generator
//! (`lineage_env::Decision::trials`, `DelayedMatch::trials`,
//! `LinearTeacher::samples`) with the suite's `seed`, so they are the same
//! for every organism. The task's parameters in the configuration default
//! to the environment's defaults and must match the scenario's
//! environment where they shape the inputs. With `task = "heldout"` the
//! `recurrent` offering takes its probe trials from the organism's own
//! held-out trials instead (the first `kernel_trials` and
//! `representation_trials` of them): a trial task the suite has no
//! generator for, such as an environment plugin's (the context-dependent
//! decision task), whose held-out set is the same for every organism.
//!
//! The kernels come from the host's kernel service (`Batch::kernel`), which
//! computes the Gram matrix of the per-example gradients itself: only
//! `rows x rows` values cross the boundary.

use std::num::NonZeroUsize;

use lineage_env::{Batch as EnvBatch, Decision, DelayedMatch, LinearTeacher};
use lineage_plugin::{
    Batch, Config, Data, Error, Evaluate, Input, Metric, Offering, Plugin, Scores, Stage,
    TensorView,
};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

pub mod measure;

/// What the `recurrent` offering's probe trials come from.
#[derive(Clone, Debug)]
enum Task {
    Decision(Decision),
    DelayedMatch(DelayedMatch),
}

impl Task {
    fn name(&self) -> &'static str {
        match self {
            Task::Decision(_) => "decision",
            Task::DelayedMatch(_) => "delayed_match",
        }
    }

    /// `n` trials from `seed`: inputs `[n, steps, inputs]`, and steps.
    fn trials(&self, n: usize, seed: u64) -> (Vec<f32>, usize) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let batch = match self {
            Task::Decision(d) => d.trials(&mut rng, n).0,
            Task::DelayedMatch(m) => m.trials(&mut rng, n).0,
        };
        match batch {
            EnvBatch::Sequences { x, steps, .. } => (x, steps),
            _ => unreachable!("the cognitive tasks give sequences"),
        }
    }
}

/// Keys the `recurrent` configuration may hold.
const RECURRENT_KEYS: &[&str] = &[
    "task",
    "coherences",
    "noise",
    "stimulus_steps",
    "stimuli",
    "sample_steps",
    "delay_steps",
    "test_steps",
    "seed",
    "weight",
    "kernel_trials",
    "representation_trials",
    "threads",
];

/// Keys the `linear` configuration may hold.
const LINEAR_KEYS: &[&str] = &[
    "inputs",
    "seed",
    "weight",
    "kernel_samples",
    "representation_samples",
    "threads",
];

fn env_error(e: impl std::fmt::Display) -> Error {
    Error::new(format!("configuration: {e}"))
}

/// A count that must be at least 1.
fn positive(config: &Config, key: &str, default: usize) -> Result<usize, Error> {
    match config.usize(key)?.unwrap_or(default) {
        0 => Err(Error::new(format!(
            "configuration key `{key}`: must be at least 1"
        ))),
        n => Ok(n),
    }
}

fn threads(config: &Config) -> Result<usize, Error> {
    let all = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    positive(config, "threads", all)
}

fn seed(config: &Config) -> Result<u64, Error> {
    Ok(config.usize("seed")?.unwrap_or(0) as u64)
}

/// The probe trials of the `recurrent` offering's measures.
#[derive(Clone, Debug)]
struct Trials {
    steps: usize,
    /// Inputs per step.
    inputs: usize,
    /// The kernel's examples: one per (trial, step, output).
    kernel_x: Vec<f32>,
    kernel_cotangent: Vec<f32>,
    kernel_rows: usize,
    /// Trials for the representation measures `[n, steps, inputs]`.
    representation_x: Vec<f32>,
    representation_trials: usize,
}

impl Trials {
    /// The measures' trials from `x` (`[n, steps, inputs]`, n at least
    /// `kernel_trials` and `representation_trials`) for a model of
    /// `outputs` outputs.
    fn new(
        x: &[f32],
        n: usize,
        steps: usize,
        outputs: usize,
        kernel_trials: usize,
        representation_trials: usize,
    ) -> Trials {
        let per = x.len() / n;
        let (kernel_x, kernel_cotangent) =
            measure::jacobian_rows(&x[..kernel_trials * per], kernel_trials, steps, outputs);
        Trials {
            steps,
            inputs: per / steps,
            kernel_rows: kernel_trials * steps * outputs,
            kernel_x,
            kernel_cotangent,
            representation_x: x[..representation_trials * per].to_vec(),
            representation_trials,
        }
    }
}

/// The `recurrent` offering.
struct Recurrent {
    weight: String,
    task: &'static str,
    /// The trials drawn from the task's generator; `None` for
    /// `task = "heldout"`, whose trials are each organism's held-out ones.
    fixed: Option<Trials>,
    kernel_trials: usize,
    representation_trials: usize,
    threads: usize,
}

impl Recurrent {
    fn new(config: &Config) -> Result<Recurrent, Error> {
        config.expect_keys(RECURRENT_KEYS)?;
        // The trials are drawn here, the held-out set is never used.
        let heldout = 1;
        let task = match config.string("task")?.as_deref().unwrap_or("decision") {
            "heldout" => None,
            "decision" => {
                let coherences = match config.f64_list("coherences")? {
                    Some(c) => c.into_iter().map(|c| c as f32).collect(),
                    None => Decision::COHERENCES.to_vec(),
                };
                Some(Task::Decision(
                    Decision::new(
                        coherences,
                        config.f64("noise")?.unwrap_or(0.1) as f32,
                        config.usize("stimulus_steps")?.unwrap_or(7),
                        heldout,
                        0,
                    )
                    .map_err(env_error)?,
                ))
            }
            "delayed_match" => Some(Task::DelayedMatch(
                DelayedMatch::new(
                    config.usize("stimuli")?.unwrap_or(2),
                    config.usize("sample_steps")?.unwrap_or(2),
                    config.usize("delay_steps")?.unwrap_or(2),
                    config.usize("test_steps")?.unwrap_or(2),
                    config.f64("noise")?.unwrap_or(0.1) as f32,
                    heldout,
                    0,
                )
                .map_err(env_error)?,
            )),
            other => {
                return Err(Error::new(format!(
                    "configuration key `task`: expected \"decision\", \"delayed_match\" or \"heldout\", found {other:?}"
                )));
            }
        };
        let kernel_trials = positive(config, "kernel_trials", 32)?;
        let representation_trials = positive(config, "representation_trials", 320)?;
        let n = kernel_trials.max(representation_trials);
        let fixed = match &task {
            Some(task) => {
                let (x, steps) = task.trials(n, seed(config)?);
                Some(Trials::new(
                    &x,
                    n,
                    steps,
                    lineage_env::CHOICES,
                    kernel_trials,
                    representation_trials,
                ))
            }
            None => {
                // The generator's keys mean nothing here.
                for key in &RECURRENT_KEYS[1..9] {
                    if config.raw(key).is_some() {
                        return Err(Error::new(format!(
                            "configuration key `{key}`: `task = \"heldout\"` measures on the organism's own held-out trials, whatever generated them"
                        )));
                    }
                }
                None
            }
        };
        Ok(Recurrent {
            weight: config.string("weight")?.unwrap_or_else(|| "w_rec".into()),
            task: task.as_ref().map_or("heldout", Task::name),
            fixed,
            kernel_trials,
            representation_trials,
            threads: threads(config)?,
        })
    }

    /// The decision-step hidden states `[trials, units]` at `stage`.
    fn decision_states(
        &self,
        batch: &Batch<'_>,
        i: usize,
        trials: &Trials,
        stage: Stage,
    ) -> Result<Vec<f32>, Error> {
        let input = Input::Real {
            x: &trials.representation_x,
            n: trials.representation_trials,
        };
        let h = batch
            .hidden(i, stage, "hidden", input)
            .map_err(|e| self.context(batch, trials, "the hidden states", e))?;
        let &[n, steps, units] = h.shape() else {
            return Err(batch.unfit(format!(
                "hidden states of shape {:?}: the suite measures a recurrent network",
                h.shape()
            )));
        };
        Ok((0..n)
            .flat_map(|r| &h.data[(r * steps + steps - 1) * units..(r * steps + steps) * units])
            .copied()
            .collect())
    }

    /// A failed probe of the model on the suite's trials: the model does
    /// not fit the task the suite is configured for (its inputs, its
    /// layers), so the error is the set-up's.
    fn context(&self, batch: &Batch<'_>, trials: &Trials, what: &str, e: Error) -> Error {
        batch.unfit(format!(
            "{what} on the `{}` probe trials ({} steps; configuration key `task`): {e}",
            self.task, trials.steps
        ))
    }

    fn organism(&self, batch: &Batch<'_>, i: usize) -> Result<[f64; 10], Error> {
        // The probe trials must be the organism's task: its held-out trials
        // say how many steps of how many inputs it reads.
        let Data::Sequences { x, labels } = batch.heldout(i)? else {
            return Err(batch.unfit(
                "the organism's held-out data are not sequences: the suite measures a recurrent network on a trial task (environment `decision` or `delayed_match`)",
            ));
        };
        let &[n_held, steps, inputs] = x.shape() else {
            return Err(batch.unfit(format!(
                "the organism's held-out sequences have shape {:?}",
                x.shape()
            )));
        };
        let out = batch.outputs(
            i,
            Stage::Learned,
            Input::Real {
                x: x.data,
                n: n_held,
            },
        )?;
        let classes = *out.shape().last().unwrap_or(&1);
        let own;
        let trials = match &self.fixed {
            Some(t) => {
                if (steps, inputs) != (t.steps, t.inputs) {
                    return Err(batch.unfit(format!(
                        "the suite's `{}` probe trials have {} steps of {} inputs, the organism's task {steps} of {inputs}: set configuration key `task` and its parameters as the scenario's environment",
                        self.task, t.steps, t.inputs
                    )));
                }
                t
            }
            None => {
                let n = self.kernel_trials.max(self.representation_trials);
                if n_held < n {
                    return Err(batch.unfit(format!(
                        "`task = \"heldout\"` measures on the first {n} held-out trials (`kernel_trials`, `representation_trials`), but the organism has {n_held}"
                    )));
                }
                own = Trials::new(
                    x.data,
                    n_held,
                    steps,
                    classes,
                    self.kernel_trials,
                    self.representation_trials,
                );
                &own
            }
        };
        let (w0, w1) = measured_weight(batch, i, &self.weight)?;
        let &[rows, cols] = w0.shape() else {
            return Err(batch.unfit(format!(
                "weight `{}` has shape {:?}: the suite measures a square recurrent matrix (configuration key `weight`)",
                self.weight,
                w0.shape()
            )));
        };
        if rows != cols {
            return Err(batch.unfit(format!(
                "weight `{}` is {rows} x {cols}: the suite measures a square recurrent matrix (configuration key `weight`)",
                self.weight
            )));
        }
        let w0_norm = measure::frobenius(w0.data);
        let weight_change = measure::distance(w1.data, w0.data);

        let input = Input::Real {
            x: &trials.kernel_x,
            n: trials.kernel_rows,
        };
        let kernel = |stage| {
            batch
                .kernel(
                    i,
                    stage,
                    &self.weight,
                    input,
                    Some(&trials.kernel_cotangent),
                )
                .map_err(|e| self.context(batch, trials, "the tangent kernel", e))
        };
        let (k0, k1) = (kernel(Stage::Birth)?, kernel(Stage::Learned)?);
        let kernel_alignment = measure::alignment(k0.data, k1.data)
            .ok_or("the tangent kernel is zero: the outputs do not depend on the weight")?;

        let (h0, h1) = (
            self.decision_states(batch, i, trials, Stage::Birth)?,
            self.decision_states(batch, i, trials, Stage::Learned)?,
        );
        let n = trials.representation_trials;
        let units = h0.len() / n;
        let representation_alignment =
            measure::alignment(&measure::gram(&h0, n, units), &measure::gram(&h1, n, units))
                .unwrap_or(0.0);
        let sign_similarity = measure::sign_similarity(&h0, &h1);

        let birth = lineage_develop::Matrix {
            rows,
            cols,
            data: w0.data.to_vec(),
        };
        let singular = lineage_develop::singular_values(&birth);
        let spectral_radius = lineage_develop::spectral_radius(&birth)
            .map_err(|e| Error::new(format!("weight `{}`: {e}", self.weight)))?;

        let (decision_accuracy, decision_loss) = measure::decision(out.data, labels, classes)
            .ok_or("the held-out trials have no decision step")?;

        Ok([
            weight_change,
            weight_change / w0_norm.max(f64::MIN_POSITIVE),
            kernel_alignment,
            representation_alignment,
            sign_similarity,
            lineage_develop::effective_rank_ratio(&singular),
            lineage_develop::entropy_rank(&singular),
            spectral_radius,
            decision_accuracy,
            decision_loss,
        ])
    }
}

/// Organism `i`'s weight `name` at birth and after learning, with a
/// message that names the model's problem when it has no such weight.
fn measured_weight<'a>(
    batch: &Batch<'a>,
    i: usize,
    name: &str,
) -> Result<(TensorView<'a>, TensorView<'a>), Error> {
    let get = |stage| {
        batch.weights(i, name, stage).map_err(|e| {
            batch.unfit(format!(
                "the suite measures the weight `{name}` (configuration key `weight`), which this organism's model cannot give: {e}"
            ))
        })
    };
    Ok((get(Stage::Birth)?, get(Stage::Learned)?))
}

/// The `linear` offering.
struct Linear {
    weight: String,
    x: Vec<f32>,
    inputs: usize,
    kernel_samples: usize,
    representation_samples: usize,
    threads: usize,
}

impl Linear {
    fn new(config: &Config) -> Result<Linear, Error> {
        config.expect_keys(LINEAR_KEYS)?;
        let inputs = config
            .usize("inputs")?
            .ok_or("configuration key `inputs`: required (the linear teacher's input dimension)")?;
        let teacher = LinearTeacher::new(inputs, 1.0, 1, 0).map_err(env_error)?;
        let kernel_samples = positive(config, "kernel_samples", 256)?;
        let representation_samples = positive(config, "representation_samples", 256)?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed(config)?);
        let EnvBatch::Dense { x, .. } =
            teacher.samples(&mut rng, kernel_samples.max(representation_samples))
        else {
            unreachable!("the linear teacher gives dense samples")
        };
        Ok(Linear {
            weight: config
                .string("weight")?
                .unwrap_or_else(|| "layers.0.weight".into()),
            x,
            inputs,
            kernel_samples,
            representation_samples,
            threads: threads(config)?,
        })
    }

    fn organism(&self, batch: &Batch<'_>, i: usize) -> Result<[f64; 7], Error> {
        let (w0, w1) = measured_weight(batch, i, &self.weight)?;
        let &[rows, cols] = w0.shape() else {
            return Err(batch.unfit(format!(
                "weight `{}` has shape {:?}: expected a matrix (configuration key `weight`)",
                self.weight,
                w0.shape()
            )));
        };
        let weight_change = measure::distance(w1.data, w0.data);
        let w0_norm = measure::frobenius(w0.data);

        let n = self.kernel_samples;
        let probe = Input::Real {
            x: &self.x[..n * self.inputs],
            n,
        };
        let outputs = batch.outputs(i, Stage::Birth, probe)?.shape()[1];
        let (x, cotangent) = measure::jacobian_rows(&self.x[..n * self.inputs], n, 1, outputs);
        let rows_in = Input::Real {
            x: &x,
            n: n * outputs,
        };
        let kernel = |stage| batch.kernel(i, stage, "*", rows_in, Some(&cotangent));
        let kernel_alignment =
            measure::alignment(kernel(Stage::Birth)?.data, kernel(Stage::Learned)?.data)
                .ok_or("the tangent kernel is zero")?;

        let m = self.representation_samples;
        let rep = Input::Real {
            x: &self.x[..m * self.inputs],
            n: m,
        };
        let hidden = |stage| -> Result<Vec<f32>, Error> {
            let h = batch.hidden(i, stage, "hidden.0", rep)?;
            Ok(measure::gram(h.data, m, h.shape()[1]))
        };
        let representation_alignment =
            measure::alignment(&hidden(Stage::Birth)?, &hidden(Stage::Learned)?).unwrap_or(0.0);

        let singular = lineage_develop::singular_values(&lineage_develop::Matrix {
            rows,
            cols,
            data: w0.data.to_vec(),
        });
        let curve = batch.curve(i)?;
        let heldout_loss = f64::from(
            curve
                .points
                .last()
                .ok_or("the organism has no learning curve")?
                .heldout,
        );
        Ok([
            weight_change,
            weight_change / w0_norm.max(f64::MIN_POSITIVE),
            kernel_alignment,
            representation_alignment,
            lineage_develop::effective_rank_ratio(&singular),
            lineage_develop::entropy_rank(&singular),
            heldout_loss,
        ])
    }
}

impl Evaluate for Recurrent {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        scores.fill_each(batch, self.threads, |i| self.organism(batch, i))
    }
}

impl Evaluate for Linear {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        scores.fill_each(batch, self.threads, |i| self.organism(batch, i))
    }
}

/// The plugin.
pub struct RichLazyPlugin;

impl Plugin for RichLazyPlugin {
    const NAME: &'static str = "richlazy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "the measures of rich and lazy learning: weight change, tangent-kernel and representation alignment, effective rank";

    fn offerings() -> Vec<Offering> {
        vec![
            Offering::suite(
                "recurrent",
                "rich/lazy measures of a recurrent network on a trial task (decision, delayed_match)",
                vec![
                    Metric::minimize("weight_change"),
                    Metric::minimize("weight_change_rel"),
                    Metric::maximize("kernel_alignment"),
                    Metric::maximize("representation_alignment"),
                    Metric::maximize("sign_similarity"),
                    Metric::maximize("rank_normalized"),
                    Metric::maximize("rank_entropy"),
                    Metric::minimize("spectral_radius"),
                    Metric::maximize("decision_accuracy"),
                    Metric::minimize("decision_loss"),
                ],
            )
            .reading_weights(),
            Offering::suite(
                "linear",
                "rich/lazy measures of the linear student-teacher (kernel over all parameters)",
                vec![
                    Metric::minimize("weight_change"),
                    Metric::minimize("weight_change_rel"),
                    Metric::maximize("kernel_alignment"),
                    Metric::maximize("representation_alignment"),
                    Metric::maximize("rank_normalized"),
                    Metric::maximize("rank_entropy"),
                    Metric::minimize("heldout_loss"),
                ],
            )
            .reading_weights(),
        ]
    }

    fn create(offering: &str, config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        match offering {
            "recurrent" => Ok(Box::new(Recurrent::new(config)?)),
            "linear" => Ok(Box::new(Linear::new(config)?)),
            other => Err(Error::new(format!("no offering `{other}`"))),
        }
    }
}

// Linked into `lineage` as a built-in; its shared library is `cdylib/`.
lineage_plugin::plugin_descriptor!(RichLazyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, &str)]) -> Config {
        Config::new(
            String::new(),
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_kernel_has_a_row_per_trial_step_and_output() {
        let trials = |entries| Recurrent::new(&config(entries)).unwrap().fixed.unwrap();
        let r = trials(&[]);
        assert_eq!(r.steps, 8);
        assert_eq!(r.kernel_rows, 768);
        assert_eq!(r.kernel_x.len(), 768 * 8 * 3);
        assert_eq!(r.representation_x.len(), 320 * 8 * 3);
        // The probe trials are the same for every instance with one seed.
        assert_eq!(r.representation_x, trials(&[]).representation_x);
        assert_ne!(
            r.representation_x,
            trials(&[("seed", "1")]).representation_x
        );
        // `heldout` takes each organism's own trials.
        let own = Recurrent::new(&config(&[("task", "\"heldout\"")])).unwrap();
        assert!(own.fixed.is_none());
        assert_eq!(own.task, "heldout");
    }

    #[test]
    fn bad_configurations_name_the_key() {
        for (entries, needle) in [
            (&[("task", "\"maze\"")][..], "`task`"),
            (&[("kernel_trials", "0")][..], "`kernel_trials`"),
            (&[("stimulus_steps", "0")][..], "stimulus_steps"),
            (&[("kernel_trial", "3")][..], "kernel_trial"),
            (&[("task", "\"heldout\""), ("noise", "0.1")][..], "`noise`"),
        ] {
            let err = Recurrent::new(&config(entries)).err().expect("an error");
            assert!(err.0.contains(needle), "{entries:?}: {err}");
        }
        let err = Linear::new(&config(&[])).err().expect("an error");
        assert!(err.0.contains("`inputs`"), "{err}");
    }
}
