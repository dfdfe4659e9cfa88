//! `connectome`: the Model Connectomes evaluation suite (Kotar & Tuckute
//! 2025, at small scale) as a Lineage plugin, on the `hmm` environment's
//! hidden-Markov language, whose ground truth it rebuilds from its own
//! configuration.
//!
//! One suite, `language`, scores each organism's learned model on the
//! held-out windows its lifetime was scored on, through the host's
//! `outputs` and `hidden` services (no model code of its own):
//!
//! - `xent_gap` (minimised): the model's cross-entropy, nats per token,
//!   averaged over the scored positions, minus the chain's entropy rate
//!   ([`HiddenMarkov::entropy_rate`]). A model that reads `context` tokens
//!   cannot reach 0: its floor is the true surprisal given those tokens
//!   alone, a little above the rate (about 0.03 nats for the recipe's chain
//!   and a context of 8).
//! - `surprisal_r` (maximised): Pearson r, over the scored positions,
//!   between the model's surprisal of the true next token and the true
//!   surprisal given what the model read (the reading-time, "behavioural"
//!   alignment analogue).
//! - `state_r` (maximised): how linearly the hidden layer `layer` encodes
//!   the true posterior over the hidden state after the last token the
//!   model read (the "brain" alignment analogue): [`ridge_cv`] with
//!   `folds` folds of whole windows and penalty `ridge`, the mean over
//!   (fold, state) of the held-out Pearson r between predicted and true
//!   posterior.
//! - `choice_accuracy` (maximised): a 4-way continuation choice at every
//!   scored position: the true next token against three distractors that
//!   cannot come next ([`distractors`]); the fraction of positions where
//!   the model gives the true token the highest probability of the four
//!   (ties share the credit, so a constant model scores 0.25).
//!
//! **Scored positions.** With `context = k` (an MLP language model reading
//! `k` tokens), every window of `len` tokens gives `len - k` positions:
//! the model reads `w[t-k..t]` and predicts `w[t]`, for `t` in `k..len`
//! (one position when `len = k + 1`, the environment's windows). Without
//! `context` (a sequence model), the model reads `w[..len-1]` and every
//! step `j` predicts `w[j + 1]`. The true surprisal and posterior are the
//! forward algorithm's on exactly what the model read, started from the
//! stationary distribution at the first token it read.
//!
//! **Configuration** (`[plugins.NAME.config]`; unknown keys are errors):
//!
//! ```toml
//! # The chain: the same values as the `hmm` environment (same defaults),
//! # from which the plugin rebuilds the identical chain.
//! tokens = 64
//! states = 32
//! successors = [3, 4]   # a count or [min, max]
//! concentration = 0.5
//! emissions = [8, 12]   # a count or [min, max]
//! zipf = 1.0
//! seed = 0
//! # corpus and heldout are accepted (so the environment's table can be
//! # copied) and ignored.
//! context = 8           # MLP language models: tokens read; absent: a sequence model
//! layer = "hidden.0"    # the hidden layer `state_r` reads (RNN/GRU: "hidden")
//! max_windows = 256     # held-out windows scored at most
//! ridge = 1.0           # ridge penalty on standardised features
//! folds = 5             # cross-validation folds
//! ```
//!
//! Every held-out window is checked against the rebuilt chain: a window
//! the chain cannot produce means the configuration does not repeat the
//! environment's, and evaluation fails saying so.

#![deny(missing_docs)]

mod stats;

pub use stats::{SplitMix64, choice_accuracy, log_softmax, pearson, ridge_cv};

use std::ops::RangeInclusive;

use lineage_env::{EnvError, HiddenMarkov, HmmParams};
use lineage_plugin::{
    Batch, Config, Data, Error, Evaluate, Input, Metric, Offering, Plugin, Scores, Stage,
};

/// A true posterior whose variance over a fold's held-out rows is below
/// this is left out of `state_r` for that fold (its r is meaningless).
pub const MIN_STATE_VARIANCE: f64 = 1e-8;

/// Attempts at drawing a distractor from the states that cannot come next
/// before falling back to the least probable tokens.
const DISTRACTOR_ATTEMPTS: usize = 64;

/// The suite's settings, from the scenario's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The chain's parameters (`context`, `corpus` and `heldout` unused).
    pub hmm: HmmParams,
    /// Tokens an MLP language model reads (`None`: a sequence model).
    pub context: Option<usize>,
    /// The hidden layer `state_r` reads.
    pub layer: String,
    /// Held-out windows scored at most.
    pub max_windows: usize,
    /// Ridge penalty.
    pub ridge: f64,
    /// Cross-validation folds.
    pub folds: usize,
}

/// Keys the configuration may hold.
const KEYS: &[&str] = &[
    "tokens",
    "states",
    "successors",
    "concentration",
    "emissions",
    "zipf",
    "seed",
    "corpus",
    "heldout",
    "context",
    "layer",
    "max_windows",
    "ridge",
    "folds",
];

impl Settings {
    /// Reads and checks the configuration; errors name the key.
    pub fn from_config(config: &Config) -> Result<Settings, Error> {
        config.expect_keys(KEYS)?;
        let d = HmmParams::default();
        let hmm = HmmParams {
            tokens: config.usize("tokens")?.unwrap_or(d.tokens),
            states: config.usize("states")?.unwrap_or(d.states),
            successors: count(config, "successors", d.successors)?,
            concentration: config.f64("concentration")?.unwrap_or(d.concentration),
            emissions: count(config, "emissions", d.emissions)?,
            zipf: config.f64("zipf")?.unwrap_or(d.zipf),
            seed: config.usize("seed")?.map_or(d.seed, |s| s as u64),
            ..d
        };
        if hmm.tokens < 4 {
            return Err(Error::new(format!(
                "configuration key `tokens`: the 4-way choice needs at least 4 tokens, found {}",
                hmm.tokens
            )));
        }
        let context = config.usize("context")?;
        if context == Some(0) {
            return Err(Error::new(
                "configuration key `context`: must be at least 1",
            ));
        }
        let layer = config.string("layer")?.unwrap_or_else(|| "hidden.0".into());
        let max_windows = config.usize("max_windows")?.unwrap_or(256);
        let ridge = config.f64("ridge")?.unwrap_or(1.0);
        if !(ridge > 0.0 && ridge.is_finite()) {
            return Err(Error::new(format!(
                "configuration key `ridge`: expected a finite penalty > 0, found {ridge}"
            )));
        }
        let folds = config.usize("folds")?.unwrap_or(5);
        if folds < 2 {
            return Err(Error::new(format!(
                "configuration key `folds`: expected at least 2, found {folds}"
            )));
        }
        if max_windows < folds {
            return Err(Error::new(format!(
                "configuration key `max_windows`: expected at least `folds` ({folds}) windows, found {max_windows}"
            )));
        }
        Ok(Settings {
            hmm,
            context,
            layer,
            max_windows,
            ridge,
            folds,
        })
    }
}

/// `key` as a count `n` (`n..=n`) or a range `[min, max]`.
fn count(
    config: &Config,
    key: &str,
    default: RangeInclusive<usize>,
) -> Result<RangeInclusive<usize>, Error> {
    if let Ok(Some(n)) = config.usize(key) {
        return Ok(n..=n);
    }
    let bad = || {
        Error::new(format!(
            "configuration key `{key}`: expected a count or [min, max], found {}",
            config.raw(key).unwrap_or_default()
        ))
    };
    match config.f64_list(key) {
        Ok(None) => Ok(default),
        Ok(Some(v)) => {
            let whole = |x: f64| x >= 0.0 && x.fract() == 0.0 && x < 1e15;
            match v[..] {
                [lo, hi] if whole(lo) && whole(hi) => Ok(lo as usize..=hi as usize),
                _ => Err(bad()),
            }
        }
        Err(_) => Err(bad()),
    }
}

/// The chain of `params`, with a configuration error naming the key.
pub fn build_chain(params: &HmmParams) -> Result<HiddenMarkov, Error> {
    HiddenMarkov::new(params).map_err(|e| match e {
        EnvError::Invalid { message, .. } => Error::new(format!("configuration: {message}")),
        other => Error::new(format!("configuration: {other}")),
    })
}

/// What the chain says about the scored positions of a set of held-out
/// windows, and what the model must read to be scored on them.
#[derive(Clone, Debug, PartialEq)]
pub struct Truth {
    /// Model inputs, `examples x (inputs.len() / examples)` tokens.
    pub inputs: Vec<u32>,
    /// Examples the model reads.
    pub examples: usize,
    /// Per scored position: the true next token.
    pub targets: Vec<u32>,
    /// Per scored position: its true surprisal given what the model read.
    pub surprisal: Vec<f64>,
    /// `[positions, states]`: the true posterior over the state after the
    /// last token the model read.
    pub posterior: Vec<f64>,
    /// Hidden states.
    pub states: usize,
    /// Per scored position: three tokens that cannot come next.
    pub distractors: Vec<[u32; 3]>,
    /// Per scored position: its window (the unit of cross-validation).
    pub window: Vec<usize>,
    /// Windows scored.
    pub windows: usize,
}

impl Truth {
    /// The ground truth of the first `max_windows` of the `n` windows of
    /// `len` tokens in `tokens`, for a model reading `context` tokens (or a
    /// sequence model); distractors drawn from `seed`. Fails when a window
    /// is impossible under `hmm` (the configuration does not match the
    /// environment) or `context` does not fit the windows.
    pub fn new(
        hmm: &HiddenMarkov,
        tokens: &[u32],
        n: usize,
        len: usize,
        context: Option<usize>,
        max_windows: usize,
        seed: u64,
    ) -> Result<Truth, Error> {
        if len < 2 || tokens.len() != n * len {
            return Err(Error::new(format!(
                "held-out windows of {len} tokens ({} tokens for {n} windows): nothing to predict",
                tokens.len()
            )));
        }
        for (w, window) in tokens.chunks_exact(len).enumerate() {
            if !hmm.filter(window).is_possible() {
                return Err(Error::new(format!(
                    "the plugin's HMM configuration does not match the environment: held-out window {w} cannot come from the chain built from the plugin's configuration (repeat the environment's tokens, states, successors, concentration, emissions, zipf and seed)"
                )));
            }
        }
        if let Some(k) = context
            && k >= len
        {
            return Err(Error::new(format!(
                "context {k} does not fit held-out windows of {len} tokens"
            )));
        }
        let windows = n.min(max_windows);
        let mut rng = SplitMix64(seed ^ 0x636f_6e6e_6563_746f);
        let mut t = Truth {
            inputs: Vec::new(),
            examples: 0,
            targets: Vec::new(),
            surprisal: Vec::new(),
            posterior: Vec::new(),
            states: hmm.states(),
            distractors: Vec::new(),
            window: Vec::new(),
            windows,
        };
        // One scored position of window `w`: the true next token, its true
        // surprisal and the posterior given what the model read.
        let mut score =
            |t: &mut Truth, w: usize, target: u32, surprisal: f64, posterior: &[f64]| {
                let next = hmm.next_states(posterior);
                let predictive = hmm.token_distribution(&next);
                t.targets.push(target);
                t.surprisal.push(surprisal);
                t.posterior.extend_from_slice(posterior);
                t.distractors
                    .push(distractors(hmm, &next, &predictive, target, &mut rng));
                t.window.push(w);
            };
        for (w, window) in tokens.chunks_exact(len).take(windows).enumerate() {
            match context {
                Some(k) => {
                    for at in k..len {
                        let read = &window[at - k..at];
                        let f = hmm.filter(&window[at - k..=at]);
                        score(&mut t, w, window[at], f.surprisal[k], f.posterior_at(k - 1));
                        t.inputs.extend_from_slice(read);
                        t.examples += 1;
                    }
                }
                None => {
                    let f = hmm.filter(window);
                    for j in 0..len - 1 {
                        score(
                            &mut t,
                            w,
                            window[j + 1],
                            f.surprisal[j + 1],
                            f.posterior_at(j),
                        );
                    }
                    t.inputs.extend_from_slice(&window[..len - 1]);
                    t.examples += 1;
                }
            }
        }
        Ok(t)
    }

    /// Scored positions.
    pub fn positions(&self) -> usize {
        self.targets.len()
    }
}

/// Three distinct tokens that cannot follow, for the 4-way choice at a
/// position whose next state has distribution `next` and next token
/// `predictive` (true probabilities given what the model read).
///
/// Each distractor is drawn the way the language would produce a token in
/// the wrong place: a state that cannot come next (`next[j] = 0`) uniformly,
/// then a token from that state's emission distribution; a token is kept
/// when its true probability here is zero (so it is never the target) and
/// it is not already chosen. After 64 draws (or when every state may come
/// next), the rest are the tokens of lowest true probability other than
/// the target, ties by token id. Deterministic given `rng`.
pub fn distractors(
    hmm: &HiddenMarkov,
    next: &[f64],
    predictive: &[f64],
    target: u32,
    rng: &mut SplitMix64,
) -> [u32; 3] {
    let v = hmm.tokens();
    let impossible: Vec<usize> = (0..next.len()).filter(|&j| next[j] == 0.0).collect();
    let mut chosen: Vec<u32> = Vec::with_capacity(3);
    let mut attempts = 0;
    while chosen.len() < 3 && !impossible.is_empty() && attempts < DISTRACTOR_ATTEMPTS {
        attempts += 1;
        let j = impossible[rng.below(impossible.len())];
        let row = &hmm.emission()[j * v..(j + 1) * v];
        let x = rng.categorical(row) as u32;
        if predictive[x as usize] == 0.0 && x != target && !chosen.contains(&x) {
            chosen.push(x);
        }
    }
    if chosen.len() < 3 {
        let mut rest: Vec<u32> = (0..v as u32)
            .filter(|x| *x != target && !chosen.contains(x))
            .collect();
        rest.sort_by(|a, b| predictive[*a as usize].total_cmp(&predictive[*b as usize]));
        chosen.extend(rest.into_iter().take(3 - chosen.len()));
    }
    [chosen[0], chosen[1], chosen[2]]
}

/// The four metrics of one organism.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LanguageScores {
    /// Cross-entropy minus the entropy rate, nats per token.
    pub xent_gap: f64,
    /// Pearson r of model and true surprisal (0 when undefined).
    pub surprisal_r: f64,
    /// Mean held-out r of the ridge read-out of the state posterior (0
    /// when undefined).
    pub state_r: f64,
    /// 4-way continuation choice accuracy.
    pub choice_accuracy: f64,
}

/// The `language` suite: its settings and the chain they rebuild.
pub struct Language {
    settings: Settings,
    hmm: HiddenMarkov,
    entropy_rate: f64,
}

impl Language {
    /// Builds the chain of `settings` and estimates its entropy rate.
    pub fn new(settings: Settings) -> Result<Language, Error> {
        let hmm = build_chain(&settings.hmm)?;
        let entropy_rate = hmm.entropy_rate();
        Ok(Language {
            settings,
            hmm,
            entropy_rate,
        })
    }

    /// The ground truth of organism `organism`'s held-out data.
    fn truth<'a>(&self, batch: &Batch<'a>, organism: usize) -> Result<(Truth, &'a [u32]), Error> {
        let Data::Tokens { n, len, tokens } = batch.heldout(organism)? else {
            return Err(Error::new(
                "the connectome suite needs token windows from an `hmm` environment",
            ));
        };
        let truth = Truth::new(
            &self.hmm,
            tokens,
            n,
            len,
            self.settings.context,
            self.settings.max_windows,
            self.settings.hmm.seed,
        )?;
        Ok((truth, tokens))
    }

    /// Scores organism `organism`'s learned model on `truth`.
    pub fn score(
        &self,
        batch: &Batch<'_>,
        organism: usize,
        truth: &Truth,
    ) -> Result<LanguageScores, Error> {
        let input = Input::Tokens {
            tokens: &truth.inputs,
            n: truth.examples,
        };
        let rows = truth.positions();
        let outputs = batch
            .outputs(organism, Stage::Learned, input)
            .map_err(|e| {
                if self.settings.context.is_none() {
                    Error::new(format!(
                        "{e} (for an MLP language model, set `context` in the plugin's configuration)"
                    ))
                } else {
                    e
                }
            })?;
        let vocab = *outputs.shape().last().unwrap_or(&0);
        if vocab != self.hmm.tokens() || outputs.data.len() != rows * vocab {
            return Err(Error::new(format!(
                "the model gave outputs of shape {:?} for {rows} predictions over {} tokens",
                outputs.shape(),
                self.hmm.tokens()
            )));
        }
        let log_probs: Vec<f64> = outputs
            .data
            .chunks_exact(vocab)
            .flat_map(log_softmax)
            .collect();
        let model: Vec<f64> = truth
            .targets
            .iter()
            .enumerate()
            .map(|(r, &x)| -log_probs[r * vocab + x as usize])
            .collect();
        let xent = model.iter().sum::<f64>() / rows as f64;
        let surprisal_r = pearson(&model, &truth.surprisal).unwrap_or(0.0);
        let choice_accuracy = choice_accuracy(&truth.targets, &truth.distractors, |r, x| {
            log_probs[r * vocab + x as usize]
        });
        let hidden = batch.hidden(organism, Stage::Learned, &self.settings.layer, input)?;
        let width = *hidden.shape().last().unwrap_or(&0);
        if width == 0 || hidden.data.len() != rows * width {
            return Err(Error::new(format!(
                "layer `{}` gave activations of shape {:?} for {rows} positions",
                self.settings.layer,
                hidden.shape()
            )));
        }
        let features: Vec<f64> = hidden.data.iter().map(|&v| v as f64).collect();
        let state_r = ridge_cv(
            &features,
            width,
            &truth.posterior,
            truth.states,
            &truth.window,
            truth.windows,
            self.settings.folds,
            self.settings.ridge,
        )
        .unwrap_or(0.0);
        Ok(LanguageScores {
            xent_gap: xent - self.entropy_rate,
            surprisal_r,
            state_r,
            choice_accuracy,
        })
    }
}

impl Evaluate for Language {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        // Organisms usually share one held-out set: its truth is computed
        // once.
        let mut last: Option<(Truth, Vec<u32>)> = None;
        for i in 0..batch.len() {
            let same = match (&last, batch.heldout(i)?) {
                (Some((_, seen)), Data::Tokens { tokens, .. }) => seen.as_slice() == tokens,
                _ => false,
            };
            if !same {
                let (truth, tokens) = self.truth(batch, i)?;
                if truth.windows < self.settings.folds {
                    return Err(Error::new(format!(
                        "{} held-out windows cannot make {} folds",
                        truth.windows, self.settings.folds
                    )));
                }
                last = Some((truth, tokens.to_vec()));
            }
            let (truth, _) = last.as_ref().expect("set above");
            let s = self.score(batch, i, truth)?;
            scores.row_mut(i).copy_from_slice(&[
                s.xent_gap,
                s.surprisal_r,
                s.state_r,
                s.choice_accuracy,
            ]);
        }
        Ok(())
    }
}

/// The plugin.
pub struct ConnectomePlugin;

impl Plugin for ConnectomePlugin {
    const NAME: &'static str = "connectome";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "the Model Connectomes evaluation suite on the hidden-Markov language (`hmm` environment)";

    fn offerings() -> Vec<Offering> {
        vec![Offering::suite(
            "language",
            "cross-entropy above the entropy rate, surprisal and state-posterior alignment, 4-way continuation choice",
            vec![
                Metric::minimize("xent_gap"),
                Metric::maximize("surprisal_r"),
                Metric::maximize("state_r"),
                Metric::maximize("choice_accuracy"),
            ],
        )
        .reading_weights()]
    }

    fn create(offering: &str, config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        let settings = Settings::from_config(config)?;
        match offering {
            "language" => Ok(Box::new(Language::new(settings)?)),
            other => Err(Error::new(format!("no offering `{other}`"))),
        }
    }
}

// Linked into `lineage` as a built-in; its shared library is `cdylib/`.
lineage_plugin::plugin_descriptor!(ConnectomePlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::cholesky_solve;
    use lineage_env::{Batch as EnvBatch, Hmm};

    fn config(entries: &[(&str, &str)]) -> Config {
        Config::new(
            String::new(),
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn params() -> HmmParams {
        HmmParams {
            corpus: 1_000,
            heldout: 200,
            seed: 3,
            ..HmmParams::default()
        }
    }

    fn windows(env: &Hmm) -> (usize, usize, Vec<u32>) {
        let EnvBatch::Tokens { n, len, tokens } = &**env.heldout() else {
            panic!("tokens")
        };
        (*n, *len, tokens.clone())
    }

    #[test]
    fn log_softmax_is_normalised_and_shift_invariant() {
        let l = log_softmax(&[1.0, 2.0, 3.0]);
        assert!((l.iter().map(|v| v.exp()).sum::<f64>() - 1.0).abs() < 1e-12);
        let shifted = log_softmax(&[1001.0, 1002.0, 1003.0]);
        for (a, b) in l.iter().zip(&shifted) {
            assert!((a - b).abs() < 1e-9);
        }
        assert!((l[2] - l[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn pearson_of_lines_and_constants() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&x, &[3.0, 5.0, 7.0, 9.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&x, &[4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&x, &[2.0; 4]), None);
        let r = pearson(&x, &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((r - 0.8).abs() < 1e-12, "{r}");
    }

    #[test]
    fn ridge_recovers_a_linear_map() {
        let (rows, p, q) = (300, 12, 4);
        let mut rng = SplitMix64(9);
        let mut unit = || rng.next_u64() as f64 / u64::MAX as f64 - 0.5;
        let mut x: Vec<f64> = (0..rows * p).map(|_| unit()).collect();
        // One constant feature is harmless.
        (0..rows).for_each(|r| x[r * p] = 1.0);
        let w: Vec<f64> = (0..p * q).map(|_| unit()).collect();
        let mut y = vec![0.0; rows * q];
        for r in 0..rows {
            for c in 0..q {
                y[r * q + c] =
                    0.3 + (0..p).map(|k| x[r * p + k] * w[k * q + c]).sum::<f64>() + 0.001 * unit();
            }
        }
        // Three rows per group.
        let group: Vec<usize> = (0..rows).map(|r| r / 3).collect();
        let r = ridge_cv(&x, p, &y, q, &group, rows / 3, 5, 1e-3).unwrap();
        assert!(r > 0.99, "{r}");
        // Noise features predict nothing.
        let noise: Vec<f64> = (0..rows * q).map(|_| unit()).collect();
        let r = ridge_cv(&x, p, &noise, q, &group, rows / 3, 5, 1.0).unwrap();
        assert!(r.abs() < 0.2, "{r}");
        // Constant targets are skipped, and with nothing left: no score.
        assert_eq!(
            ridge_cv(&x, p, &vec![0.5; rows], 1, &group, rows / 3, 5, 1.0),
            None
        );
    }

    #[test]
    fn cholesky_solves() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let x = cholesky_solve(&mut a, 2, &[2.0, 1.0], 1).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        assert_eq!(
            cholesky_solve(&mut [0.0, 0.0, 0.0, 1.0], 2, &[1.0, 1.0], 1),
            None
        );
    }

    #[test]
    fn an_oracle_chooses_right_and_a_constant_model_at_chance() {
        let env = Hmm::new(&params()).unwrap();
        let (n, len, tokens) = windows(&env);
        let hmm = env.model();
        for context in [Some(8), Some(4), None] {
            let t = Truth::new(hmm, &tokens, n, len, context, 150, 1).unwrap();
            let expected = match context {
                Some(k) => 150 * (len - k),
                None => 150 * (len - 1),
            };
            assert_eq!(t.positions(), expected);
            for (d, &x) in t.distractors.iter().zip(&t.targets) {
                assert!(!d.contains(&x));
                assert!(d[0] != d[1] && d[1] != d[2] && d[0] != d[2]);
            }
            // The oracle: the true predictive probability, which is zero
            // for every distractor.
            let oracle = |r: usize, x: u32| {
                let post = &t.posterior[r * t.states..(r + 1) * t.states];
                hmm.token_distribution(&hmm.next_states(post))[x as usize].ln()
            };
            assert_eq!(choice_accuracy(&t.targets, &t.distractors, oracle), 1.0);
            // The oracle's surprisal is the true surprisal.
            for r in 0..t.positions() {
                assert!((-oracle(r, t.targets[r]) - t.surprisal[r]).abs() < 1e-9);
            }
            let uniform = choice_accuracy(&t.targets, &t.distractors, |_, _| 0.0);
            assert_eq!(uniform, 0.25);
            // Unigram frequencies are informative but fooled by distractors.
            let unigram = hmm.unigram();
            let u = choice_accuracy(&t.targets, &t.distractors, |_, x| unigram[x as usize]);
            assert!(u > 0.25 && u < 0.9, "{u}");
        }
        assert_eq!(
            Truth::new(hmm, &tokens, n, len, Some(8), 150, 1),
            Truth::new(hmm, &tokens, n, len, Some(8), 150, 1),
            "deterministic"
        );
    }

    #[test]
    fn the_true_posterior_is_linearly_readable_from_itself() {
        let env = Hmm::new(&params()).unwrap();
        let (n, len, tokens) = windows(&env);
        let t = Truth::new(env.model(), &tokens, n, len, Some(8), 200, 1).unwrap();
        let r = ridge_cv(
            &t.posterior,
            t.states,
            &t.posterior,
            t.states,
            &t.window,
            t.windows,
            5,
            1e-3,
        )
        .unwrap();
        assert!(r > 0.98, "{r}");
    }

    #[test]
    fn windows_of_another_chain_are_refused() {
        let env = Hmm::new(&params()).unwrap();
        let (n, len, tokens) = windows(&env);
        let other = build_chain(&HmmParams {
            seed: 4,
            ..params()
        })
        .unwrap();
        let e = Truth::new(&other, &tokens, n, len, Some(8), 256, 1).unwrap_err();
        assert!(e.0.contains("does not match the environment"), "{e}");
        let e = Truth::new(env.model(), &tokens, n, len, Some(9), 256, 1).unwrap_err();
        assert!(e.0.contains("context 9"), "{e}");
    }

    #[test]
    fn configuration_reads_counts_and_ranges_and_names_bad_keys() {
        let s = Settings::from_config(&config(&[
            ("successors", "4"),
            ("emissions", "[8, 12]"),
            ("seed", "7"),
            ("context", "8"),
            ("corpus", "1000000"),
        ]))
        .unwrap();
        assert_eq!(s.hmm.successors, 4..=4);
        assert_eq!(s.hmm.emissions, 8..=12);
        assert_eq!((s.hmm.seed, s.context), (7, Some(8)));
        assert_eq!(
            (s.layer.as_str(), s.max_windows, s.folds),
            ("hidden.0", 256, 5)
        );
        for (key, value) in [
            ("sucessors", "4"),
            ("successors", "[3]"),
            ("emissions", "\"many\""),
            ("ridge", "0"),
            ("folds", "1"),
            ("context", "0"),
            ("tokens", "3"),
        ] {
            let e = Settings::from_config(&config(&[(key, value)])).unwrap_err();
            assert!(e.0.contains(&format!("`{key}`")), "{key}: {e}");
        }
        let s = Settings::from_config(&config(&[("successors", "[1, 3]")])).unwrap();
        let e = Language::new(s).err().expect("successors of 1 are refused");
        assert!(e.0.contains("`successors`"), "{e}");
    }
}
