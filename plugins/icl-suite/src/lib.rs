//! `icl`: in-context against in-weights learning (Chan et al. 2022;
//! Reddy 2024; `../shared/design/science.md`, section 3), scored on an
//! organism's learned weights through the plugin ABI.
//!
//! The suite rebuilds the scenario's `icl` world from its configuration
//! (the environment's keys, with the environment's defaults; the
//! environment's `seed` fixes the classes) and draws its probe sets from
//! that world with its own `probe_seed`, the same for every organism
//! (`lineage_env::IclProbe`, `sequences` of each). Offering `icl`, every
//! metric an accuracy of the query's label, argmax of the outputs at the
//! last step:
//!
//! - `icl_novel_acc`: two fresh classes, `pairs / 2` shots each, labelled
//!   0 and 1 per sequence; argmax over those two labels (chance 1/2);
//! - `icl_novel_acc_all`: the same sequences, argmax over all labels;
//! - `icl_flip_acc`: trained classes in a bursty context with every label
//!   shifted by one: right only by reading the context;
//! - `iwl_acc`: a trained class absent from the context: right only from
//!   the weights; `iwl_common_acc` and `iwl_rare_acc` the same on the 10%
//!   most and the 50% least frequent classes.
//!
//! A suite whose world is not the organism's (another seed or size: its
//! held-out sequences differ from the organism's), or a model that does not
//! read the world's tokens, is an unfit set-up (`Batch::unfit`): bad input,
//! exit 2. A world whose environment `seed` is `"run"` cannot be rebuilt
//! from a fixed configuration, and is refused the same way.
//!
//! Offering `lifetime` reads no world: it takes the organism's own record
//! of the environment's probe set `set` (default `icl_novel`) along its
//! lifetime (ABI 2, `Batch::probes`), so it follows the environment
//! wherever the scenario's schedule takes it. Metrics, of the set's
//! accuracy over its choices: `icl_final` (at the end of the lifetime),
//! `icl_peak` (the best along it) and `icl_transience` (peak minus final:
//! in-context learning that emerged and then faded). An environment that
//! records no such set (`probe_sequences = 0`, or not an `icl` world) is an
//! unfit set-up.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lineage_env::{Batch as EnvBatch, Environment, Icl, IclParams, IclProbe, Positions};
use lineage_plugin::{
    Batch, Config, Data, Error, Evaluate, Input, Metric, Offering, Plugin, Scores, Stage,
};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Keys the configuration may hold.
const KEYS: &[&str] = &[
    "classes",
    "dim",
    "eps",
    "labels",
    "pairs",
    "burstiness",
    "p_bursty",
    "zipf",
    "p_novel",
    "novel_classes",
    "labels_per_class",
    "dynamic",
    "positions",
    "max_pairs",
    "heldout",
    "seed",
    "probe_seed",
    "sequences",
    "threads",
];

/// The world's parameters from the configuration, defaulting as the
/// environment does.
fn world_params(config: &Config) -> Result<IclParams, Error> {
    let d = IclParams::default();
    let positions = match config.string("positions")?.as_deref() {
        None | Some("onehot") => Positions::OneHot,
        Some("random_offset") => Positions::RandomOffset {
            max_pairs: config.usize("max_pairs")?.unwrap_or(32),
        },
        Some(other) => {
            return Err(Error::new(format!(
                "configuration key `positions`: expected \"onehot\" or \"random_offset\", found {other:?}"
            )));
        }
    };
    Ok(IclParams {
        classes: config.usize("classes")?.unwrap_or(d.classes),
        dim: config.usize("dim")?.unwrap_or(d.dim),
        eps: config.f64("eps")?.map_or(d.eps, |e| e as f32),
        labels: config.usize("labels")?.unwrap_or(d.labels),
        pairs: config.usize("pairs")?.unwrap_or(d.pairs),
        burstiness: config.usize("burstiness")?.unwrap_or(d.burstiness),
        p_bursty: config.f64("p_bursty")?.unwrap_or(d.p_bursty),
        zipf: config.f64("zipf")?.unwrap_or(d.zipf),
        p_novel: config.f64("p_novel")?.unwrap_or(d.p_novel),
        novel_classes: config.usize("novel_classes")?.unwrap_or(d.novel_classes),
        labels_per_class: config
            .usize("labels_per_class")?
            .unwrap_or(d.labels_per_class),
        dynamic: config.bool("dynamic")?.unwrap_or(d.dynamic),
        positions,
        heldout: config.usize("heldout")?.unwrap_or(d.heldout),
        // The suite draws probe sets of its own (`probe_seed`).
        probe_sequences: 0,
        seed: config.usize("seed")?.map_or(d.seed, |s| s as u64),
    })
}

/// One probe set: its sequences `[n, steps, width]` and the query labels.
struct ProbeSet {
    probe: IclProbe,
    x: Vec<f32>,
    answers: Vec<u32>,
}

/// Accuracy of the last step's argmax (over `choices` when given, else
/// every output) against `answers`; `outputs` is `[n, steps, classes]`.
pub fn accuracy(
    outputs: &[f32],
    steps: usize,
    classes: usize,
    answers: &[u32],
    choices: Option<&[u32]>,
) -> f64 {
    let per = steps * classes;
    let right = answers
        .iter()
        .enumerate()
        .filter(|&(i, &answer)| {
            let last = &outputs[i * per + (steps - 1) * classes..(i + 1) * per];
            let best = match choices {
                Some(c) => c
                    .iter()
                    .copied()
                    .max_by(|&a, &b| {
                        last[a as usize]
                            .total_cmp(&last[b as usize])
                            .then(b.cmp(&a))
                    })
                    .unwrap_or(0),
                None => (0..classes as u32)
                    .max_by(|&a, &b| {
                        last[a as usize]
                            .total_cmp(&last[b as usize])
                            .then(b.cmp(&a))
                    })
                    .unwrap_or(0),
            };
            best == answer
        })
        .count();
    right as f64 / answers.len().max(1) as f64
}

/// The `icl` offering.
struct Suite {
    steps: usize,
    width: usize,
    labels: usize,
    heldout: Arc<EnvBatch>,
    probes: Vec<ProbeSet>,
    threads: usize,
}

impl Suite {
    fn new(config: &Config) -> Result<Suite, Error> {
        config.expect_keys(KEYS)?;
        let params = world_params(config)?;
        let world = Icl::new(params).map_err(|e| Error::new(format!("configuration: {e}")))?;
        let sequences = match config.usize("sequences")?.unwrap_or(1000) {
            0 => {
                return Err(Error::new(
                    "configuration key `sequences`: must be at least 1",
                ));
            }
            n => n,
        };
        let mut rng =
            Xoshiro256PlusPlus::seed_from_u64(config.usize("probe_seed")?.unwrap_or(0) as u64);
        let mut probes = Vec::new();
        for probe in IclProbe::ALL {
            let Some((batch, drawn)) = world.probe(probe, &mut rng, sequences) else {
                return Err(Error::new(format!(
                    "configuration key `pairs`: the probe `{}` needs an even number of context pairs",
                    probe.name()
                )));
            };
            let EnvBatch::Sequences { x, .. } = batch else {
                unreachable!("the icl world gives sequences")
            };
            let answers = drawn
                .iter()
                .map(|s| *s.labels.last().expect("a query label"))
                .collect();
            probes.push(ProbeSet { probe, x, answers });
        }
        let threads = match config.usize("threads")? {
            Some(0) => {
                return Err(Error::new(
                    "configuration key `threads`: must be at least 1",
                ));
            }
            Some(t) => t,
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        Ok(Suite {
            steps: world.steps(),
            width: world.token_width(),
            labels: world.params().labels,
            // The held-out set only (a budget of 0 draws nothing).
            heldout: world.lifetime(&mut rng, 0).unwrap().heldout,
            probes,
            threads,
        })
    }

    fn organism(&self, batch: &Batch<'_>, i: usize) -> Result<[f64; 6], Error> {
        // The organism's world must be the suite's: the same held-out
        // sequences, token for token.
        let EnvBatch::Sequences { x: expected, .. } = &*self.heldout else {
            unreachable!("the icl world gives sequences")
        };
        let same = match batch.heldout(i)? {
            Data::Sequences { x, .. } => {
                x.shape()
                    == [
                        expected.len() / (self.steps * self.width),
                        self.steps,
                        self.width,
                    ]
                    && x.data == expected.as_slice()
            }
            _ => false,
        };
        if !same {
            return Err(batch.unfit(
                "the organism's held-out sequences are not those of the suite's world: set the suite's configuration keys (classes, dim, eps, labels, pairs, burstiness, zipf, positions, heldout, seed, …) as the scenario's `icl` environment (an environment with seed = \"run\" cannot be rebuilt)",
            ));
        }
        let mut values = [0.0; 6];
        for set in &self.probes {
            let input = Input::Real {
                x: &set.x,
                n: set.answers.len(),
            };
            let out = batch
                .outputs(i, Stage::Learned, input)
                .map_err(|e| batch.unfit(format!("the probe `{}`: {e}", set.probe.name())))?;
            if out.shape() != [set.answers.len(), self.steps, self.labels] {
                return Err(batch.unfit(format!(
                    "outputs of shape {:?}: the suite scores a sequence model with {} outputs per step",
                    out.shape(),
                    self.labels
                )));
            }
            let all = accuracy(out.data, self.steps, self.labels, &set.answers, None);
            match set.probe {
                IclProbe::Novel => {
                    values[0] = accuracy(
                        out.data,
                        self.steps,
                        self.labels,
                        &set.answers,
                        set.probe.choices(),
                    );
                    values[1] = all;
                }
                IclProbe::Flip => values[2] = all,
                IclProbe::Iwl => values[3] = all,
                IclProbe::IwlCommon => values[4] = all,
                IclProbe::IwlRare => values[5] = all,
            }
        }
        Ok(values)
    }
}

impl Evaluate for Suite {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        scores.fill_each(batch, self.threads, |i| self.organism(batch, i))
    }
}

/// The `lifetime` offering.
struct Lifetime {
    /// The probe set read.
    set: String,
}

impl Lifetime {
    fn new(config: &Config) -> Result<Lifetime, Error> {
        config.expect_keys(&["set"])?;
        Ok(Lifetime {
            set: config.string("set")?.unwrap_or_else(|| "icl_novel".into()),
        })
    }

    /// `[final, peak, peak - final]` of the set's accuracy along a record.
    fn measures(record: &[(u32, f32)]) -> Option<[f64; 3]> {
        let &(_, last) = record.last()?;
        let peak = record
            .iter()
            .map(|&(_, v)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        Some([f64::from(last), f64::from(peak), f64::from(peak - last)])
    }
}

impl Evaluate for Lifetime {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        for i in 0..batch.len() {
            let record = batch.probes(i, &self.set, "accuracy").map_err(|e| {
                batch.unfit(format!(
                    "offering `lifetime` reads probe set `{}` along the lifetime: {e}; an `icl` environment records it when its `probe_sequences` is above 0 (config key `set` names another set)",
                    self.set
                ))
            })?;
            let Some(values) = Lifetime::measures(&record) else {
                return Err(batch.unfit(format!("probe set `{}` has no points", self.set)));
            };
            for (m, v) in values.into_iter().enumerate() {
                scores.set(i, m, v);
            }
        }
        Ok(())
    }
}

/// The plugin.
pub struct IclPlugin;

impl Plugin for IclPlugin {
    const NAME: &'static str = "icl";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "in-context against in-weights learning in the `icl` world, on the learned weights";

    fn offerings() -> Vec<Offering> {
        vec![
            Offering::suite(
                "icl",
                "few-shot accuracy on novel classes (over 2 labels and over all), with flipped labels, and in-weights accuracy (all, common, rare classes)",
                vec![
                    Metric::maximize("icl_novel_acc"),
                    Metric::maximize("icl_novel_acc_all"),
                    Metric::maximize("icl_flip_acc"),
                    Metric::maximize("iwl_acc"),
                    Metric::maximize("iwl_common_acc"),
                    Metric::maximize("iwl_rare_acc"),
                ],
            )
            .reading_weights(),
            Offering::suite(
                "lifetime",
                "a probe set's accuracy (default icl_novel) along the lifetime, from the organism's probe records: at the end, at its peak, and how much it faded",
                vec![
                    Metric::maximize("icl_final"),
                    Metric::maximize("icl_peak"),
                    Metric::minimize("icl_transience"),
                ],
            ),
        ]
    }

    fn create(offering: &str, config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        match offering {
            "icl" => Ok(Box::new(Suite::new(config)?)),
            "lifetime" => Ok(Box::new(Lifetime::new(config)?)),
            other => Err(Error::new(format!("no offering `{other}`"))),
        }
    }
}

// Linked into `lineage` as a built-in; its shared library is `cdylib/`.
lineage_plugin::plugin_descriptor!(IclPlugin);

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
    fn accuracy_takes_the_last_steps_argmax_within_the_choices() {
        // Two sequences of two steps, four classes.
        let outputs = [
            9.0, 9.0, 9.0, 9.0, /* last: */ 0.1, 0.3, 5.0, 0.2, //
            0.0, 0.0, 0.0, 0.0, /* last: */ 0.9, 0.1, 0.0, 3.0,
        ];
        assert_eq!(accuracy(&outputs, 2, 4, &[2, 3], None), 1.0);
        assert_eq!(accuracy(&outputs, 2, 4, &[1, 0], None), 0.0);
        // Restricted to labels 0 and 1: sequence 0 picks 1, sequence 1 picks 0.
        assert_eq!(accuracy(&outputs, 2, 4, &[1, 0], Some(&[0, 1])), 1.0);
        assert_eq!(accuracy(&outputs, 2, 4, &[0, 0], Some(&[0, 1])), 0.5);
    }

    #[test]
    fn lifetime_measures_are_final_peak_and_their_difference() {
        let record = [(0, 0.5), (500, 0.9), (1000, 0.6)];
        let [last, peak, faded] = Lifetime::measures(&record).unwrap();
        assert_eq!((last, peak), (0.6f32 as f64, 0.9f32 as f64));
        assert!((faded - 0.3).abs() < 1e-6);
        assert!(Lifetime::measures(&[]).is_none());
        assert!(Lifetime::new(&config(&[("sets", "\"x\"")])).is_err());
        assert_eq!(Lifetime::new(&config(&[])).unwrap().set, "icl_novel");
    }

    #[test]
    fn probe_sets_are_fixed_by_the_probe_seed() {
        let entries = [
            ("classes", "64"),
            ("labels", "8"),
            ("heldout", "10"),
            ("sequences", "20"),
        ];
        let a = Suite::new(&config(&entries)).unwrap();
        let b = Suite::new(&config(&entries)).unwrap();
        assert_eq!(a.probes.len(), 5);
        for (p, q) in a.probes.iter().zip(&b.probes) {
            assert_eq!((p.probe, &p.x, &p.answers), (q.probe, &q.x, &q.answers));
            assert_eq!(p.answers.len(), 20);
        }
        let mut other = entries.to_vec();
        other.push(("probe_seed", "1"));
        let c = Suite::new(&config(&other)).unwrap();
        assert_ne!(a.probes[0].x, c.probes[0].x);
    }

    #[test]
    fn bad_configurations_name_the_key() {
        for (entries, needle) in [
            (&[("classes", "100"), ("labels", "32")][..], "`classes`"),
            (&[("positions", "\"sinusoidal\"")][..], "`positions`"),
            (&[("sequences", "0")][..], "`sequences`"),
            (&[("pairs", "7"), ("burstiness", "7")][..], "`pairs`"),
            (&[("sequence", "3")][..], "sequence"),
        ] {
            let err = Suite::new(&config(entries)).err().expect("an error");
            assert!(err.0.contains(needle), "{entries:?}: {err}");
        }
    }
}
