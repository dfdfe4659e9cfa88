//! `context`: an example Lineage environment plugin in Rust.
//!
//! It offers one environment, `context_decision`: the context-dependent
//! perceptual decision task of Mante, Sussillo, Shenoy & Newsome (2013,
//! Nature 503:78) as NeuroGym's `ContextDecisionMaking-v0` poses it, one
//! trial per fixed-length sequence. Two noisy evidence streams (two
//! "modalities", motion and colour in the original) are shown at once,
//! each with its own coherence and direction; a context cue says which one
//! to report; the other is a distractor.
//!
//! Per step, 7 inputs (NeuroGym's order):
//!
//! | input | name | value |
//! |---|---|---|
//! | 0 | `fixation` | 1 until the decision, 0 at decision steps |
//! | 1, 2 | `stim1_mod1`, `stim2_mod1` | modality 1 during the stimulus: `0.5 ± c1/200` + N(0, `sigma`), 0 otherwise |
//! | 3, 4 | `stim1_mod2`, `stim2_mod2` | modality 2, the same with `c2` |
//! | 5, 6 | `context1`, `context2` | one-hot: which modality to report, at every step |
//!
//! where `c1`, `c2` are the modalities' signed coherences (percent): `+c`
//! when the first channel is the stronger one, `-c` when the second is.
//!
//! Phases: `fixation_steps`, `stimulus_steps`, `delay_steps` (inputs as in
//! fixation: fixation and context only) and `decision_steps` (fixation
//! input 0). Labels (3 classes): 0 ("keep fixating") at every step before
//! the decision, as NeuroGym labels them, and at decision steps the choice
//! the cued modality's evidence points to: 1 when its signed coherence is
//! positive, 2 when negative (at coherence 0, the trial's drawn direction,
//! which nothing in the inputs reveals). Each trial draws the context, each
//! modality's direction and each modality's coherence (from `coherences`)
//! uniformly and independently, as NeuroGym does: half the trials are
//! congruent (both modalities point the same way), half incongruent.
//!
//! Probe sets, scored at every point of each learning curve (decision
//! steps only, every other step [`IGNORE`]d; choices restricted to 1 and 2,
//! so chance is 0.5):
//! - `decision`: trials drawn like the training trials;
//! - `incongruent`: trials whose two modalities point opposite ways, so
//!   only a network that uses the context cue beats chance (one that
//!   follows a single modality scores 0.75 on `decision` and 0.5 here).
//!
//! Configuration: the scenario's environment table, every key but
//! `plugin` and `seed`:
//!
//! ```toml
//! coherences = [5, 15, 50]  # percent, NeuroGym's set; each in 0..=100
//! sigma = 0.1               # evidence noise SD per step (NeuroGym: 1/sqrt(dt), dt = 100 ms)
//! fixation_steps = 3        # 300 ms
//! stimulus_steps = 8        # 750 ms, rounded as NeuroGym rounds it at dt = 100 ms
//! delay_steps = 3           # NeuroGym's shortest delay, 300 ms (its delay is random, 300-3000 ms)
//! decision_steps = 1        # 100 ms
//! heldout = 1000            # held-out trials
//! probe_trials = 500        # trials in each probe set
//! ```
//!
//! Every fill draws from `Rng::new(seed)` alone: the context, directions
//! and coherences of each trial in turn, then its noise (4 values per
//! stimulus step, in channel order). The first `k` trials of a fill
//! therefore do not depend on how many were asked for.

use lineage_plugin::environment::IGNORE;
use lineage_plugin::{
    Config, Description, Environment, Error, Evaluate, Examples, Offering, Part, Plugin, Probe,
    Rng, Task, export_plugin,
};

/// Inputs per step.
pub const INPUTS: usize = 7;
/// Outputs: fixate, choice 1, choice 2.
pub const CLASSES: usize = 3;
/// The most steps a trial may have.
pub const MAX_STEPS: usize = 4096;
/// The most trials in the held-out set or a probe set (the host's limit).
pub const MAX_TRIALS: usize = 1 << 24;

/// The input channels, in NeuroGym's order.
pub mod channel {
    /// The fixation cue: 1 until the decision.
    pub const FIXATION: usize = 0;
    /// Modality 1's first channel (stronger when its evidence points to choice 1).
    pub const STIM1_MOD1: usize = 1;
    /// Modality 1's second channel.
    pub const STIM2_MOD1: usize = 2;
    /// Modality 2's first channel.
    pub const STIM1_MOD2: usize = 3;
    /// Modality 2's second channel.
    pub const STIM2_MOD2: usize = 4;
    /// The context cue for modality 1 (report modality 1).
    pub const CONTEXT1: usize = 5;
    /// The context cue for modality 2.
    pub const CONTEXT2: usize = 6;
}

/// The probe sets, in [`Part::Probe`] order.
pub const PROBES: [&str; 2] = ["decision", "incongruent"];

/// The task's settings, from the scenario's environment table.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Coherences, in percent (each in `0..=100`), drawn uniformly per
    /// modality and trial.
    pub coherences: Vec<f64>,
    /// Standard deviation of the Gaussian noise on each evidence channel
    /// at each stimulus step.
    pub sigma: f64,
    /// Steps of fixation before the stimulus.
    pub fixation_steps: usize,
    /// Steps of stimulus.
    pub stimulus_steps: usize,
    /// Steps between the stimulus and the decision.
    pub delay_steps: usize,
    /// Decision steps (each labelled with the choice).
    pub decision_steps: usize,
    /// Held-out trials.
    pub heldout: usize,
    /// Trials in each probe set.
    pub probe_trials: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            coherences: vec![5.0, 15.0, 50.0],
            sigma: 0.1,
            fixation_steps: 3,
            stimulus_steps: 8,
            delay_steps: 3,
            decision_steps: 1,
            heldout: 1000,
            probe_trials: 500,
        }
    }
}

impl Settings {
    /// The configuration keys, all optional.
    pub const KEYS: [&'static str; 8] = [
        "coherences",
        "sigma",
        "fixation_steps",
        "stimulus_steps",
        "delay_steps",
        "decision_steps",
        "heldout",
        "probe_trials",
    ];

    /// The settings `config` gives (defaults for missing keys), checked;
    /// every error names its key in backquotes.
    pub fn from_config(config: &Config) -> Result<Settings, Error> {
        config.expect_keys(&Self::KEYS)?;
        let d = Settings::default();
        let settings = Settings {
            coherences: config.f64_list("coherences")?.unwrap_or(d.coherences),
            sigma: config.f64("sigma")?.unwrap_or(d.sigma),
            fixation_steps: config.usize("fixation_steps")?.unwrap_or(d.fixation_steps),
            stimulus_steps: config.usize("stimulus_steps")?.unwrap_or(d.stimulus_steps),
            delay_steps: config.usize("delay_steps")?.unwrap_or(d.delay_steps),
            decision_steps: config.usize("decision_steps")?.unwrap_or(d.decision_steps),
            heldout: config.usize("heldout")?.unwrap_or(d.heldout),
            probe_trials: config.usize("probe_trials")?.unwrap_or(d.probe_trials),
        };
        settings.check()?;
        Ok(settings)
    }

    /// Fails naming the first key whose value is out of range.
    pub fn check(&self) -> Result<(), Error> {
        if self.coherences.is_empty() {
            return Err(Error::new("`coherences` must be non-empty"));
        }
        if let Some(c) = self
            .coherences
            .iter()
            .find(|c| !(c.is_finite() && (0.0..=100.0).contains(*c)))
        {
            return Err(Error::new(format!(
                "`coherences` are percentages from 0 to 100, found {c}"
            )));
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(Error::new(format!(
                "`sigma` is a standard deviation, finite and >= 0, found {}",
                self.sigma
            )));
        }
        for (key, value, min) in [
            ("fixation_steps", self.fixation_steps, 0),
            ("stimulus_steps", self.stimulus_steps, 1),
            ("delay_steps", self.delay_steps, 0),
            ("decision_steps", self.decision_steps, 1),
        ] {
            if !(min..=MAX_STEPS).contains(&value) {
                return Err(Error::new(format!(
                    "`{key}` must be {min} to {MAX_STEPS}, found {value}"
                )));
            }
        }
        if self.steps() > MAX_STEPS {
            return Err(Error::new(format!(
                "a trial of {} steps is longer than {MAX_STEPS}: shorten `stimulus_steps` (or `fixation_steps`, `delay_steps`, `decision_steps`)",
                self.steps()
            )));
        }
        for (key, value) in [
            ("heldout", self.heldout),
            ("probe_trials", self.probe_trials),
        ] {
            if !(1..=MAX_TRIALS).contains(&value) {
                return Err(Error::new(format!(
                    "`{key}` must be 1 to {MAX_TRIALS} trials, found {value}"
                )));
            }
        }
        Ok(())
    }

    /// Steps per trial, every phase included.
    pub fn steps(&self) -> usize {
        self.fixation_steps + self.stimulus_steps + self.delay_steps + self.decision_steps
    }

    /// The first decision step.
    pub fn decision_from(&self) -> usize {
        self.fixation_steps + self.stimulus_steps + self.delay_steps
    }
}

/// One drawn trial.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trial {
    /// Which modality to report: 0 (modality 1) or 1 (modality 2).
    pub context: usize,
    /// Per modality, where its evidence points: 0 (first channel stronger,
    /// choice 1) or 1 (second channel stronger, choice 2).
    pub directions: [u32; 2],
    /// Per modality, its coherence in percent (unsigned).
    pub coherences: [f64; 2],
}

impl Trial {
    /// Modality `m`'s signed coherence: `+c` toward choice 1, `-c` toward 2.
    pub fn signed(&self, m: usize) -> f64 {
        if self.directions[m] == 0 {
            self.coherences[m]
        } else {
            -self.coherences[m]
        }
    }

    /// The correct choice, 1 or 2: where the cued modality points.
    pub fn choice(&self) -> u32 {
        1 + self.directions[self.context]
    }

    /// True when both modalities point to the same choice.
    pub fn congruent(&self) -> bool {
        self.directions[0] == self.directions[1]
    }
}

/// Which trials a fill draws and how it labels them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Draw {
    /// Training and held-out trials: every step labelled.
    Labelled,
    /// The `decision` probe: training-like trials, decision steps only.
    Decisions,
    /// The `incongruent` probe: modalities pointing opposite ways,
    /// decision steps only.
    Incongruent,
}

/// The `context_decision` environment.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextDecision {
    settings: Settings,
}

impl ContextDecision {
    /// The environment with `settings`, checked.
    pub fn new(settings: Settings) -> Result<ContextDecision, Error> {
        settings.check()?;
        Ok(ContextDecision { settings })
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The next trial's conditions from `rng`; with `incongruent`, the
    /// uncued modality is turned to point the other way.
    fn draw(&self, rng: &mut Rng, incongruent: bool) -> Trial {
        let coherences = &self.settings.coherences;
        let context = rng.below(2) as usize;
        let mut directions = [rng.below(2) as u32, rng.below(2) as u32];
        let k = coherences.len() as u64;
        let c = [
            coherences[rng.below(k) as usize],
            coherences[rng.below(k) as usize],
        ];
        if incongruent {
            directions[1 - context] = 1 - directions[context];
        }
        Trial {
            context,
            directions,
            coherences: c,
        }
    }

    /// Writes `trial`'s inputs (`steps x INPUTS`) and labels (`steps`),
    /// its noise drawn from `rng`; with `every_step`, steps before the
    /// decision are labelled 0, else [`IGNORE`].
    fn write(
        &self,
        trial: &Trial,
        rng: &mut Rng,
        x: &mut [f32],
        labels: &mut [u32],
        every_step: bool,
    ) {
        let s = &self.settings;
        let stimulus = s.fixation_steps..s.fixation_steps + s.stimulus_steps;
        let decision_from = s.decision_from();
        x.fill(0.0);
        for (t, row) in x.chunks_exact_mut(INPUTS).enumerate() {
            row[channel::FIXATION] = if t < decision_from { 1.0 } else { 0.0 };
            row[channel::CONTEXT1 + trial.context] = 1.0;
            if stimulus.contains(&t) {
                for m in 0..2 {
                    let half = trial.signed(m) / 200.0;
                    let first = channel::STIM1_MOD1 + 2 * m;
                    row[first] = (0.5 + half + s.sigma * rng.normal()) as f32;
                    row[first + 1] = (0.5 - half + s.sigma * rng.normal()) as f32;
                }
            }
        }
        let before = if every_step { 0 } else { IGNORE };
        labels[..decision_from].fill(before);
        labels[decision_from..].fill(trial.choice());
    }

    /// Fills `out` with the trials of `draw` from `seed`, and returns them.
    fn fill_with(
        &self,
        draw: Draw,
        seed: u64,
        out: &mut Examples<'_>,
    ) -> Result<Vec<Trial>, Error> {
        let (n, steps) = (out.len(), self.settings.steps());
        if out.steps() != steps
            || out.x.len() != n * steps * INPUTS
            || out.labels.len() != n * steps
        {
            return Err(Error::new(format!(
                "buffers of {} steps, {} inputs and {} labels for {n} trials; expected {steps} steps, {} inputs and {} labels",
                out.steps(),
                out.x.len(),
                out.labels.len(),
                n * steps * INPUTS,
                n * steps
            )));
        }
        let mut rng = Rng::new(seed);
        let mut trials = Vec::with_capacity(n);
        for i in 0..n {
            let trial = self.draw(&mut rng, draw == Draw::Incongruent);
            let x = &mut out.x[i * steps * INPUTS..(i + 1) * steps * INPUTS];
            let labels = &mut out.labels[i * steps..(i + 1) * steps];
            self.write(&trial, &mut rng, x, labels, draw == Draw::Labelled);
            trials.push(trial);
        }
        Ok(trials)
    }

    /// Fills `out` for `part` from `seed` as [`Environment::fill`] does,
    /// and returns the trials drawn (for tests and analyses).
    pub fn trials(
        &self,
        part: Part,
        seed: u64,
        out: &mut Examples<'_>,
    ) -> Result<Vec<Trial>, Error> {
        let draw = match part {
            Part::Train | Part::Heldout => Draw::Labelled,
            Part::Probe(0) => Draw::Decisions,
            Part::Probe(1) => Draw::Incongruent,
            Part::Probe(i) => {
                return Err(Error::new(format!(
                    "no probe set {i}: there are {}",
                    PROBES.len()
                )));
            }
        };
        self.fill_with(draw, seed, out)
    }
}

impl Environment for ContextDecision {
    fn describe(&self) -> Description {
        let s = &self.settings;
        let mut d = Description::new(
            Task::Sequences {
                inputs: INPUTS,
                classes: CLASSES,
                steps: s.steps(),
            },
            s.heldout,
        );
        d.probes = PROBES
            .iter()
            .map(|name| Probe {
                name: (*name).to_owned(),
                examples: s.probe_trials,
                choices: Some(vec![1, 2]),
            })
            .collect();
        d
    }

    fn fill(&self, part: Part, seed: u64, out: &mut Examples<'_>) -> Result<(), Error> {
        self.trials(part, seed, out).map(|_| ())
    }
}

/// The plugin.
pub struct ContextPlugin;

impl Plugin for ContextPlugin {
    const NAME: &'static str = "context";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "context-dependent perceptual decisions (Mante et al. 2013; NeuroGym's ContextDecisionMaking)";

    fn offerings() -> Vec<Offering> {
        vec![Offering::environment(
            "context_decision",
            "two noisy evidence streams and a context cue naming the one to report (7 inputs, 3 classes; probe sets `decision` and `incongruent`)",
        )]
    }

    fn create(offering: &str, _config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        Err(Error::new(format!(
            "`{offering}` is not a fitness function or suite: this plugin offers the environment `context_decision` only"
        )))
    }

    fn environment(offering: &str, config: &Config) -> Result<Box<dyn Environment>, Error> {
        match offering {
            "context_decision" => Ok(Box::new(ContextDecision::new(Settings::from_config(
                config,
            )?)?)),
            other => Err(Error::new(format!(
                "no environment `{other}`; this plugin offers `context_decision`"
            ))),
        }
    }
}

export_plugin!(ContextPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_plugin::environment::{Owned, UNSET};

    fn config(entries: &[(&str, &str)]) -> Config {
        Config::new(
            String::new(),
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn env(entries: &[(&str, &str)]) -> ContextDecision {
        ContextDecision::new(Settings::from_config(&config(entries)).unwrap()).unwrap()
    }

    /// `n` trials of `part` from `seed`: the buffers and the trials drawn.
    fn fill(e: &ContextDecision, part: Part, seed: u64, n: usize) -> (Owned, Vec<Trial>) {
        let mut o = Owned::new(&e.describe().task, n);
        let trials = e.trials(part, seed, &mut o.examples()).unwrap();
        (o, trials)
    }

    #[test]
    fn it_describes_seven_inputs_three_classes_and_two_probe_sets() {
        let d = env(&[]).describe();
        assert_eq!(
            d.task,
            Task::Sequences {
                inputs: 7,
                classes: 3,
                steps: 15
            }
        );
        assert_eq!(d.heldout, 1000);
        assert_eq!(d.direction, None);
        let probes: Vec<_> = d
            .probes
            .iter()
            .map(|p| (p.name.as_str(), p.examples, p.choices.clone()))
            .collect();
        assert_eq!(
            probes,
            [
                ("decision", 500, Some(vec![1, 2])),
                ("incongruent", 500, Some(vec![1, 2]))
            ]
        );
        let d = env(&[
            ("fixation_steps", "0"),
            ("stimulus_steps", "4"),
            ("delay_steps", "0"),
            ("decision_steps", "2"),
            ("heldout", "7"),
            ("probe_trials", "9"),
        ])
        .describe();
        assert_eq!(
            (d.task, d.heldout, d.probes[1].examples),
            (
                Task::Sequences {
                    inputs: 7,
                    classes: 3,
                    steps: 6
                },
                7,
                9
            )
        );
    }

    #[test]
    fn fills_depend_on_the_seed_alone() {
        let e = env(&[]);
        for part in [Part::Train, Part::Heldout, Part::Probe(0), Part::Probe(1)] {
            let (a, ta) = fill(&e, part, 42, 64);
            let (b, tb) = fill(&e, part, 42, 64);
            assert_eq!((&a, &ta), (&b, &tb), "{part:?}");
            let (c, _) = fill(&e, part, 43, 64);
            assert_ne!(a.x, c.x, "{part:?}: another seed, other trials");
            // A shorter fill is the same trials' prefix.
            let (short, ts) = fill(&e, part, 42, 10);
            assert_eq!(&ts[..], &ta[..10]);
            assert_eq!(short.x[..], a.x[..short.x.len()]);
            assert_eq!(short.labels[..], a.labels[..short.labels.len()]);
        }
        // The environment keeps no state between fills: a fill in
        // between changes nothing.
        let (first, _) = fill(&e, Part::Train, 5, 8);
        fill(&e, Part::Heldout, 6, 100);
        assert_eq!(fill(&e, Part::Train, 5, 8).0, first);
    }

    #[test]
    fn every_value_is_written_finite_and_labels_are_in_range() {
        let e = env(&[]);
        for part in [Part::Train, Part::Heldout, Part::Probe(0), Part::Probe(1)] {
            let (o, _) = fill(&e, part, 1, 200);
            assert_eq!((o.x.len(), o.labels.len()), (200 * 15 * 7, 200 * 15));
            assert!(o.x.iter().all(|v| v.is_finite()), "{part:?}");
            assert!(o.labels.iter().all(|&l| l != UNSET), "{part:?}");
            let probe = matches!(part, Part::Probe(_));
            for l in &o.labels {
                assert!(
                    (*l as usize) < CLASSES || (probe && *l == IGNORE),
                    "{part:?}: label {l}"
                );
            }
        }
        let mut o = Owned::new(&e.describe().task, 3);
        let err = e.fill(Part::Probe(2), 0, &mut o.examples()).unwrap_err();
        assert!(err.0.contains("probe set 2"), "{err}");
    }

    /// With no noise, the cued modality's first minus second channel is
    /// its signed coherence / 100: the decision label is its sign, read
    /// back from the inputs alone.
    #[test]
    fn the_decision_label_is_the_sign_of_the_cued_modality_coherence() {
        let e = env(&[("sigma", "0"), ("decision_steps", "2")]);
        let (steps, from) = (e.settings().steps(), e.settings().decision_from());
        for part in [Part::Train, Part::Probe(0), Part::Probe(1)] {
            let (o, trials) = fill(&e, part, 7, 400);
            let (mut congruent, mut by_context) = (0, [0usize; 2]);
            for (i, trial) in trials.iter().enumerate() {
                let row = |t: usize| &o.x[(i * steps + t) * INPUTS..][..INPUTS];
                let stim = row(e.settings().fixation_steps);
                let context = usize::from(stim[channel::CONTEXT2] == 1.0);
                assert_eq!(stim[channel::CONTEXT1] + stim[channel::CONTEXT2], 1.0);
                assert_eq!(context, trial.context);
                let first = channel::STIM1_MOD1 + 2 * context;
                let evidence = f64::from(stim[first] - stim[first + 1]);
                assert!((evidence - trial.signed(context) / 100.0).abs() < 1e-6);
                let want = if evidence > 0.0 { 1 } else { 2 };
                for t in from..steps {
                    assert_eq!(o.labels[i * steps + t], want, "trial {i} step {t}");
                }
                assert_eq!(trial.choice(), want);
                congruent += usize::from(trial.congruent());
                by_context[context] += 1;
            }
            if part == Part::Probe(1) {
                assert_eq!(congruent, 0, "the incongruent probe has no congruent trial");
            } else {
                assert!((150..250).contains(&congruent), "{part:?}: {congruent}");
            }
            assert!((150..250).contains(&by_context[0]), "{by_context:?}");
        }
    }

    /// Phases: fixation cue 1 until the decision and 0 after, evidence
    /// only during the stimulus, the context cue at every step; labels 0
    /// (training, held-out) or ignored (probes) before the decision.
    #[test]
    fn trials_follow_their_phases() {
        let e = env(&[
            ("fixation_steps", "2"),
            ("stimulus_steps", "3"),
            ("delay_steps", "2"),
            ("decision_steps", "2"),
        ]);
        for part in [Part::Heldout, Part::Probe(0)] {
            let (o, trials) = fill(&e, part, 3, 50);
            for (i, trial) in trials.iter().enumerate() {
                for t in 0..9 {
                    let row = &o.x[(i * 9 + t) * INPUTS..][..INPUTS];
                    let fixation = if t < 7 { 1.0 } else { 0.0 };
                    assert_eq!(row[channel::FIXATION], fixation, "step {t}");
                    let mut cue = [0.0; 2];
                    cue[trial.context] = 1.0;
                    assert_eq!(&row[5..], &cue, "step {t}");
                    let evidence = &row[1..5];
                    if (2..5).contains(&t) {
                        assert!(evidence.iter().all(|&v| v != 0.0), "step {t}");
                    } else {
                        assert_eq!(evidence, &[0.0; 4], "step {t}");
                    }
                    let label = o.labels[i * 9 + t];
                    let want = match (t < 7, part) {
                        (false, _) => trial.choice(),
                        (true, Part::Heldout) => 0,
                        (true, _) => IGNORE,
                    };
                    assert_eq!(label, want, "step {t}");
                }
            }
        }
    }

    /// Contexts, directions and coherences uniform; channel levels
    /// `0.5 ± c/200` with noise of standard deviation `sigma`.
    #[test]
    fn trial_statistics_follow_the_definition() {
        let e = env(&[("sigma", "0.2")]);
        let n = 8000;
        let (o, trials) = fill(&e, Part::Train, 11, n);
        let frac =
            |f: &dyn Fn(&Trial) -> bool| trials.iter().filter(|t| f(t)).count() as f64 / n as f64;
        // Binomial SD about 0.0056 (p = 1/2) and 0.0053 (p = 1/3): 5 SD.
        assert!((frac(&|t| t.context == 1) - 0.5).abs() < 0.028);
        assert!((frac(&|t| t.directions[0] == 1) - 0.5).abs() < 0.028);
        assert!((frac(&|t| t.directions[1] == 1) - 0.5).abs() < 0.028);
        assert!((frac(&|t| t.congruent()) - 0.5).abs() < 0.028);
        for c in [5.0, 15.0, 50.0] {
            assert!((frac(&|t| t.coherences[0] == c) - 1.0 / 3.0).abs() < 0.027);
            assert!((frac(&|t| t.coherences[1] == c) - 1.0 / 3.0).abs() < 0.027);
        }
        let (mut err, mut sq, mut count) = (0.0f64, 0.0f64, 0usize);
        for (i, trial) in trials.iter().enumerate() {
            for t in 3..11 {
                let row = &o.x[(i * 15 + t) * INPUTS..][..INPUTS];
                for m in 0..2 {
                    let half = trial.signed(m) / 200.0;
                    for (k, level) in [(0, 0.5 + half), (1, 0.5 - half)] {
                        let e = f64::from(row[1 + 2 * m + k]) - level;
                        err += e;
                        sq += e * e;
                        count += 1;
                    }
                }
            }
        }
        // 256,000 draws of SD 0.2: SE of the mean 0.0004, of the SD 0.0003.
        let k = count as f64;
        assert!((err / k).abs() < 0.002, "mean noise {}", err / k);
        assert!(
            ((sq / k).sqrt() - 0.2).abs() < 0.002,
            "noise SD {}",
            (sq / k).sqrt()
        );
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let bad = [
            ("coherences", "[]"),
            ("coherences", "[5, 101]"),
            ("coherences", "[-1]"),
            ("coherences", "[nan]"),
            ("coherences", "5"),
            ("sigma", "-0.1"),
            ("sigma", "inf"),
            ("sigma", "\"high\""),
            ("fixation_steps", "5000"),
            ("fixation_steps", "-1"),
            ("stimulus_steps", "0"),
            ("delay_steps", "1.5"),
            ("decision_steps", "0"),
            ("heldout", "0"),
            ("probe_trials", "0"),
            ("probe_trials", "20000000"),
        ];
        for (key, value) in bad {
            let e = Settings::from_config(&config(&[(key, value)])).unwrap_err();
            assert!(e.0.contains(&format!("`{key}`")), "{key} = {value}: {e}");
            let e = ContextPlugin::environment("context_decision", &config(&[(key, value)]))
                .err()
                .unwrap();
            assert!(e.0.contains(&format!("`{key}`")), "{key} = {value}: {e}");
        }
        let e = Settings::from_config(&config(&[("coherence", "[5]")])).unwrap_err();
        assert!(
            e.0.contains("`coherence`") && e.0.contains("coherences"),
            "{e}"
        );
        // Each phase within bounds, the sum too long.
        let e = Settings::from_config(&config(&[
            ("stimulus_steps", "4000"),
            ("delay_steps", "100"),
        ]))
        .unwrap_err();
        assert!(e.0.contains("`stimulus_steps`"), "{e}");
        // Coherence 0 and no noise are allowed.
        env(&[("coherences", "[0, 100]"), ("sigma", "0")]);
    }

    #[test]
    fn the_plugin_offers_the_environment_only() {
        let offerings = ContextPlugin::offerings();
        assert_eq!(offerings.len(), 1);
        assert_eq!(offerings[0].name, "context_decision");
        assert_eq!(offerings[0].kind, lineage_plugin::Kind::Environment);
        assert!(ContextPlugin::create("context_decision", &config(&[])).is_err());
        let e = ContextPlugin::environment("other", &config(&[]))
            .err()
            .unwrap();
        assert!(e.0.contains("`other`"), "{e}");
        let env = ContextPlugin::environment("context_decision", &config(&[])).unwrap();
        assert_eq!(env.describe(), super::tests::env(&[]).describe());
    }
}
