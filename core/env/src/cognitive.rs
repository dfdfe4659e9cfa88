//! Cognitive tasks in NeuroGym's style, one trial per sequence: a
//! perceptual decision (`PerceptualDecisionMaking-v0`, as the rich/lazy
//! learning study trains on it) and delayed match-to-sample.
//!
//! Both are sequence classifications with three outputs: label 0 ("keep
//! fixating") at every step before the decision, and `1 + choice` at the
//! last step, where every input is 0. Every step is scored. Training
//! trials are drawn fresh from the lifetime's stream (a lifetime's budget
//! counts trials, so with `budget = steps x batch` no trial repeats); the
//! held-out trials come from the environment's own seed and are shared by
//! the whole population.

use std::sync::Arc;

use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::{Batch, EnvError, Environment, Lifetime, Task, invalid};

/// Outputs of both tasks: fixate, then one of two choices.
pub const CHOICES: usize = 3;

/// The largest number of steps before the decision.
pub const MAX_TRIAL_STEPS: usize = 1 << 12;

/// An empty batch, the held-out set's place until it is drawn.
fn no_trials() -> Arc<Batch> {
    Arc::new(Batch::Sequences {
        n: 0,
        steps: 0,
        x: Vec::new(),
        labels: Vec::new(),
    })
}

/// The checks both tasks make of their noise and held-out size.
fn check_noise_and_heldout(
    environment: &'static str,
    noise: f32,
    heldout: usize,
) -> Result<(), EnvError> {
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(invalid(
            environment,
            format!("noise is a standard deviation, finite and >= 0, found {noise}"),
        ));
    }
    if heldout == 0 {
        return Err(invalid(environment, "needs at least one held-out trial"));
    }
    Ok(())
}

/// NeuroGym's `PerceptualDecisionMaking-v0` at `dt = 100` ms with the
/// original study's timing: `stimulus_steps` steps (7) of a fixation input
/// 1 and two stimulus channels `0.5 +- coh / 200` (the larger one on the
/// correct side) plus N(0, `noise`) noise (0.1, NeuroGym's `sigma /
/// sqrt(dt)`), then one decision step with every input 0 and label
/// `1 + choice`. Coherence is drawn uniformly from `coherences` (percent),
/// the correct side uniformly from the two.
#[derive(Clone, Debug)]
pub struct Decision {
    coherences: Vec<f32>,
    noise: f32,
    stimulus_steps: usize,
    heldout: Arc<Batch>,
}

/// One drawn trial of [`Decision`], for tests and probes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecisionTrial {
    /// The correct side, 0 or 1.
    pub choice: u32,
    /// The coherence, in percent.
    pub coherence: f32,
}

impl Decision {
    /// The coherences of the original study, in percent.
    pub const COHERENCES: [f32; 5] = [0.0, 6.4, 12.8, 25.6, 51.2];
    /// Inputs per step: fixation and two stimulus channels.
    pub const INPUTS: usize = 3;

    /// A decision task; `heldout` trials are drawn from `seed`.
    pub fn new(
        coherences: Vec<f32>,
        noise: f32,
        stimulus_steps: usize,
        heldout: usize,
        seed: u64,
    ) -> Result<Self, EnvError> {
        if coherences.is_empty() {
            return Err(invalid("decision", "needs at least one coherence"));
        }
        if let Some(c) = coherences
            .iter()
            .find(|c| !(c.is_finite() && (0.0..=100.0).contains(*c)))
        {
            return Err(invalid(
                "decision",
                format!("coherences are percentages from 0 to 100, found {c}"),
            ));
        }
        if !(1..=MAX_TRIAL_STEPS).contains(&stimulus_steps) {
            return Err(invalid(
                "decision",
                format!("stimulus_steps must be 1 to {MAX_TRIAL_STEPS}, found {stimulus_steps}"),
            ));
        }
        check_noise_and_heldout("decision", noise, heldout)?;
        let mut task = Decision {
            coherences,
            noise,
            stimulus_steps,
            heldout: no_trials(),
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        task.heldout = Arc::new(task.trials(&mut rng, heldout).0);
        Ok(task)
    }

    /// Steps per trial: the stimulus, then the decision.
    pub fn steps(&self) -> usize {
        self.stimulus_steps + 1
    }

    /// `n` trials and what was drawn for each.
    pub fn trials(&self, rng: &mut dyn RngCore, n: usize) -> (Batch, Vec<DecisionTrial>) {
        let (steps, inputs) = (self.steps(), Self::INPUTS);
        let mut x = vec![0.0f32; n * steps * inputs];
        let mut labels = vec![0u32; n * steps];
        let mut drawn = Vec::with_capacity(n);
        // `noise` was checked finite and non-negative.
        let normal = Normal::new(0.0f32, self.noise).expect("a valid standard deviation");
        for i in 0..n {
            let choice = rng.random_range(0..2u32);
            let coherence = self.coherences[rng.random_range(0..self.coherences.len())];
            let strong = 0.5 + coherence / 200.0;
            let weak = 0.5 - coherence / 200.0;
            for t in 0..self.stimulus_steps {
                let row = &mut x[(i * steps + t) * inputs..][..inputs];
                row[0] = 1.0;
                for side in 0..2u32 {
                    let level = if side == choice { strong } else { weak };
                    row[1 + side as usize] = level + normal.sample(rng);
                }
            }
            labels[i * steps + self.stimulus_steps] = 1 + choice;
            drawn.push(DecisionTrial { choice, coherence });
        }
        (
            Batch::Sequences {
                n,
                steps,
                x,
                labels,
            },
            drawn,
        )
    }
}

impl Environment for Decision {
    fn name(&self) -> &str {
        "decision"
    }

    fn task(&self) -> Task {
        Task::SequenceClassification {
            inputs: Self::INPUTS,
            classes: CHOICES,
            steps: self.steps(),
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        Ok(Lifetime {
            train: self.trials(rng, budget).0,
            heldout: self.heldout.clone(),
        })
    }

    fn fresh_heldout(&self, rng: &mut dyn RngCore) -> Option<Batch> {
        Some(self.trials(rng, self.heldout.len()).0)
    }
}

/// Delayed match-to-sample in the same style: a sample stimulus (one of
/// `stimuli`, one-hot on its channel) for `sample_steps` steps, a blank
/// delay of `delay_steps`, a test stimulus for `test_steps`, then the
/// decision step (every input 0): label 1 if the test matched the sample,
/// 2 if not. A fixation input is 1 until the decision; N(0, `noise`) noise
/// is added to the stimulus channels while a stimulus is shown. The test
/// matches with probability one half; a non-matching test is drawn
/// uniformly from the other stimuli.
#[derive(Clone, Debug)]
pub struct DelayedMatch {
    stimuli: usize,
    sample_steps: usize,
    delay_steps: usize,
    test_steps: usize,
    noise: f32,
    heldout: Arc<Batch>,
}

/// One drawn trial of [`DelayedMatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchTrial {
    /// The sample stimulus.
    pub sample: usize,
    /// The test stimulus.
    pub test: usize,
}

impl DelayedMatch {
    /// A delayed match-to-sample task; `heldout` trials come from `seed`.
    pub fn new(
        stimuli: usize,
        sample_steps: usize,
        delay_steps: usize,
        test_steps: usize,
        noise: f32,
        heldout: usize,
        seed: u64,
    ) -> Result<Self, EnvError> {
        if !(2..=MAX_TRIAL_STEPS).contains(&stimuli) {
            return Err(invalid(
                "delayed_match",
                format!("stimuli must be 2 to {MAX_TRIAL_STEPS}, found {stimuli}"),
            ));
        }
        for (name, steps, min) in [
            ("sample_steps", sample_steps, 1),
            ("delay_steps", delay_steps, 0),
            ("test_steps", test_steps, 1),
        ] {
            if !(min..=MAX_TRIAL_STEPS).contains(&steps) {
                return Err(invalid(
                    "delayed_match",
                    format!("{name} must be {min} to {MAX_TRIAL_STEPS}, found {steps}"),
                ));
            }
        }
        check_noise_and_heldout("delayed_match", noise, heldout)?;
        let mut task = DelayedMatch {
            stimuli,
            sample_steps,
            delay_steps,
            test_steps,
            noise,
            heldout: no_trials(),
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        task.heldout = Arc::new(task.trials(&mut rng, heldout).0);
        Ok(task)
    }

    /// Inputs per step: fixation and one channel per stimulus.
    pub fn inputs(&self) -> usize {
        1 + self.stimuli
    }

    /// Steps per trial, the decision included.
    pub fn steps(&self) -> usize {
        self.sample_steps + self.delay_steps + self.test_steps + 1
    }

    /// `n` trials and what was drawn for each.
    pub fn trials(&self, rng: &mut dyn RngCore, n: usize) -> (Batch, Vec<MatchTrial>) {
        let (steps, inputs) = (self.steps(), self.inputs());
        let mut x = vec![0.0f32; n * steps * inputs];
        let mut labels = vec![0u32; n * steps];
        let mut drawn = Vec::with_capacity(n);
        let normal = Normal::new(0.0f32, self.noise).expect("a valid standard deviation");
        let test_from = self.sample_steps + self.delay_steps;
        for i in 0..n {
            let sample = rng.random_range(0..self.stimuli);
            let test = if rng.random_bool(0.5) {
                sample
            } else {
                // Uniform over the other stimuli.
                (sample + rng.random_range(1..self.stimuli)) % self.stimuli
            };
            for t in 0..steps - 1 {
                let row = &mut x[(i * steps + t) * inputs..][..inputs];
                row[0] = 1.0;
                let shown = if t < self.sample_steps {
                    Some(sample)
                } else if t >= test_from {
                    Some(test)
                } else {
                    None
                };
                if let Some(s) = shown {
                    for (k, v) in row[1..].iter_mut().enumerate() {
                        *v = f32::from(u8::from(k == s)) + normal.sample(rng);
                    }
                }
            }
            labels[i * steps + steps - 1] = if test == sample { 1 } else { 2 };
            drawn.push(MatchTrial { sample, test });
        }
        (
            Batch::Sequences {
                n,
                steps,
                x,
                labels,
            },
            drawn,
        )
    }
}

impl Environment for DelayedMatch {
    fn name(&self) -> &str {
        "delayed_match"
    }

    fn task(&self) -> Task {
        Task::SequenceClassification {
            inputs: self.inputs(),
            classes: CHOICES,
            steps: self.steps(),
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        Ok(Lifetime {
            train: self.trials(rng, budget).0,
            heldout: self.heldout.clone(),
        })
    }

    fn fresh_heldout(&self, rng: &mut dyn RngCore) -> Option<Batch> {
        Some(self.trials(rng, self.heldout.len()).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_evo::rng::{Purpose, stream};

    fn sequences(b: &Batch) -> (usize, usize, &[f32], &[u32]) {
        match b {
            Batch::Sequences {
                n,
                steps,
                x,
                labels,
            } => (*n, *steps, x, labels),
            other => panic!("sequences expected, found {other:?}"),
        }
    }

    /// The trial statistics against the task's definition: coherences
    /// and sides uniform, stimulus levels `0.5 +- coh / 200` with noise of
    /// standard deviation 0.1, fixation 1 then 0, every input 0 at the
    /// decision, labels 0 then `1 + choice`.
    #[test]
    fn decision_trials_follow_their_definition() {
        let task = Decision::new(Decision::COHERENCES.to_vec(), 0.1, 7, 50, 3).unwrap();
        assert_eq!(
            task.task(),
            Task::SequenceClassification {
                inputs: 3,
                classes: 3,
                steps: 8
            }
        );
        let n = 20_000;
        let (batch, drawn) = task.trials(&mut stream(1, 0, 0, Purpose::Learn), n);
        let (bn, steps, x, labels) = sequences(&batch);
        assert_eq!((bn, steps, x.len(), labels.len()), (n, 8, n * 8 * 3, n * 8));
        // Each coherence about 1/5 of trials, each side about 1/2
        // (binomial SD about 0.003 and 0.0035: 5 SD bounds).
        for c in Decision::COHERENCES {
            let f = drawn.iter().filter(|d| d.coherence == c).count() as f64 / n as f64;
            assert!((f - 0.2).abs() < 0.015, "coherence {c}: frequency {f}");
        }
        let right = drawn.iter().filter(|d| d.choice == 1).count() as f64 / n as f64;
        assert!((right - 0.5).abs() < 0.02, "right side {right}");
        // Per coherence: mean level of the correct and the other channel,
        // and the noise's standard deviation.
        for c in Decision::COHERENCES {
            let (mut strong, mut weak, mut sq, mut count) = (0.0f64, 0.0f64, 0.0f64, 0usize);
            for (i, d) in drawn.iter().enumerate().filter(|(_, d)| d.coherence == c) {
                for t in 0..7 {
                    let row = &x[(i * 8 + t) * 3..][..3];
                    assert_eq!(row[0], 1.0, "fixation input on stimulus steps");
                    let s = row[1 + d.choice as usize] as f64;
                    let w = row[2 - d.choice as usize] as f64;
                    strong += s;
                    weak += w;
                    let e = s - (0.5 + c as f64 / 200.0);
                    sq += e * e;
                    count += 1;
                }
            }
            let k = count as f64;
            // Mean of ~28,000 draws of SD 0.1: SE 0.0006.
            assert!(
                (strong / k - (0.5 + c as f64 / 200.0)).abs() < 0.004,
                "coh {c}"
            );
            assert!(
                (weak / k - (0.5 - c as f64 / 200.0)).abs() < 0.004,
                "coh {c}"
            );
            assert!(((sq / k).sqrt() - 0.1).abs() < 0.004, "noise SD at coh {c}");
        }
        for (i, d) in drawn.iter().enumerate() {
            assert_eq!(&x[(i * 8 + 7) * 3..][..3], &[0.0; 3], "decision inputs");
            assert_eq!(&labels[i * 8..i * 8 + 7], &[0; 7], "fixation labels");
            assert_eq!(labels[i * 8 + 7], 1 + d.choice, "decision label");
        }
    }

    #[test]
    fn decision_budget_counts_fresh_trials_and_heldout_is_shared() {
        let task = Decision::new(vec![12.8, 51.2], 0.1, 7, 64, 9).unwrap();
        let a = task
            .lifetime(&mut stream(1, 0, 1, Purpose::Learn), 32)
            .unwrap();
        let b = task
            .lifetime(&mut stream(1, 0, 2, Purpose::Learn), 32)
            .unwrap();
        assert_eq!(a.train.len(), 32);
        assert_ne!(a.train, b.train, "organisms draw their own trials");
        assert!(Arc::ptr_eq(&a.heldout, &b.heldout));
        assert_eq!(a.heldout.len(), 64);
        let again = Decision::new(vec![12.8, 51.2], 0.1, 7, 64, 9).unwrap();
        assert_eq!(
            *again.heldout, *a.heldout,
            "held-out trials come from the seed"
        );
    }

    #[test]
    fn bad_decision_and_match_parameters_are_refused() {
        assert!(Decision::new(vec![], 0.1, 7, 10, 0).is_err());
        assert!(Decision::new(vec![101.0], 0.1, 7, 10, 0).is_err());
        assert!(Decision::new(vec![f32::NAN], 0.1, 7, 10, 0).is_err());
        assert!(Decision::new(vec![6.4], -0.1, 7, 10, 0).is_err());
        assert!(Decision::new(vec![6.4], 0.1, 0, 10, 0).is_err());
        assert!(Decision::new(vec![6.4], 0.1, 7, 0, 0).is_err());
        assert!(DelayedMatch::new(1, 2, 2, 2, 0.1, 10, 0).is_err());
        assert!(DelayedMatch::new(2, 0, 2, 2, 0.1, 10, 0).is_err());
        assert!(DelayedMatch::new(2, 2, 2, 0, 0.1, 10, 0).is_err());
        assert!(DelayedMatch::new(2, 2, 2, 2, f32::INFINITY, 10, 0).is_err());
        assert!(
            DelayedMatch::new(2, 2, 0, 2, 0.0, 10, 0).is_ok(),
            "no delay is fine"
        );
    }

    #[test]
    fn delayed_match_trials_follow_their_definition() {
        let task = DelayedMatch::new(3, 2, 3, 2, 0.0, 10, 1).unwrap();
        assert_eq!(
            task.task(),
            Task::SequenceClassification {
                inputs: 4,
                classes: 3,
                steps: 8
            }
        );
        let n = 6000;
        let (batch, drawn) = task.trials(&mut stream(2, 0, 0, Purpose::Learn), n);
        let (_, steps, x, labels) = sequences(&batch);
        let matches = drawn.iter().filter(|d| d.sample == d.test).count() as f64 / n as f64;
        assert!((matches - 0.5).abs() < 0.03, "match rate {matches}");
        for s in 0..3 {
            let f = drawn.iter().filter(|d| d.sample == s).count() as f64 / n as f64;
            assert!((f - 1.0 / 3.0).abs() < 0.03, "sample {s}: {f}");
        }
        for (i, d) in drawn.iter().enumerate() {
            let row = |t: usize| &x[(i * steps + t) * 4..][..4];
            let one_hot = |s: usize| {
                let mut r = [1.0, 0.0, 0.0, 0.0];
                r[1 + s] = 1.0;
                r
            };
            assert_eq!(row(0), one_hot(d.sample), "sample step");
            assert_eq!(row(1), one_hot(d.sample));
            for t in 2..5 {
                assert_eq!(row(t), [1.0, 0.0, 0.0, 0.0], "delay step {t}");
            }
            assert_eq!(row(5), one_hot(d.test), "test step");
            assert_eq!(row(6), one_hot(d.test));
            assert_eq!(row(7), [0.0; 4], "decision step");
            assert_eq!(&labels[i * steps..i * steps + 7], &[0; 7]);
            let want = if d.sample == d.test { 1 } else { 2 };
            assert_eq!(labels[i * steps + 7], want);
        }
    }
}
