//! `accuracy`: an example Lineage plugin in Rust.
//!
//! - fitness `heldout_accuracy` (metric `accuracy`, maximised): the fraction
//!   of held-out examples the organism's learned model classifies right
//!   (classification and labelled sequences: the arg-max class; token data:
//!   the arg-max next token);
//! - suite `accuracy_gain` (metrics `birth_accuracy`, `learned_accuracy`,
//!   `gain`): the same at birth and after learning, and the difference.
//!
//! It runs each organism's model through the host's `outputs` service on
//! the held-out data the organism's lifetime was scored on: no model code of
//! its own. Configuration (`[plugins.NAME.config]`):
//!
//! ```toml
//! max_examples = 1024  # score at most this many held-out examples (windows)
//! context = 8          # MLP language models only: tokens the model reads
//! ```

use lineage_plugin::abi::LN_IGNORE;
use lineage_plugin::{
    Batch, Config, Data, Error, Evaluate, Input, Metric, Offering, Plugin, Scores, Stage,
    export_plugin,
};

/// Settings shared by both offerings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Held-out examples (or token windows) scored at most.
    pub max_examples: usize,
    /// Tokens an MLP language model reads (`None`: a sequence model, which
    /// reads a whole window but its last token).
    pub context: Option<usize>,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Settings, Error> {
        config.expect_keys(&["max_examples", "context"])?;
        let max_examples = config.usize("max_examples")?.unwrap_or(1024);
        if max_examples == 0 {
            return Err(Error::new("max_examples must be at least 1"));
        }
        let context = config.usize("context")?;
        if context == Some(0) {
            return Err(Error::new("context must be at least 1"));
        }
        Ok(Settings {
            max_examples,
            context,
        })
    }
}

/// Index of the largest value (the first one on ties).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Fraction of held-out predictions organism `i`'s model at `stage` gets
/// right.
pub fn accuracy(
    batch: &Batch<'_>,
    i: usize,
    stage: Stage,
    settings: Settings,
) -> Result<f64, Error> {
    let data = batch.heldout(i)?;
    // (predictions to make, their correct classes, outputs per prediction row)
    let (outputs, targets) = match data {
        Data::Labeled { x, labels } => {
            let n = labels.len().min(settings.max_examples);
            let width = x.data.len() / labels.len().max(1);
            let out = batch.outputs(
                i,
                stage,
                Input::Real {
                    x: &x.data[..n * width],
                    n,
                },
            )?;
            (out, labels[..n].to_vec())
        }
        Data::Sequences { x, labels } => {
            let shape = x.shape();
            let (n_all, steps) = (shape[0], shape[1]);
            let n = n_all.min(settings.max_examples);
            let per = x.data.len() / n_all.max(1);
            let out = batch.outputs(
                i,
                stage,
                Input::Real {
                    x: &x.data[..n * per],
                    n,
                },
            )?;
            (out, labels[..n * steps].to_vec())
        }
        Data::Tokens { n, len, tokens } => {
            let n = n.min(settings.max_examples);
            let windows = || (0..n).map(|w| &tokens[w * len..(w + 1) * len]);
            match settings.context {
                None => {
                    let input: Vec<u32> = windows().flat_map(|w| &w[..len - 1]).copied().collect();
                    let out = batch
                        .outputs(i, stage, Input::Tokens { tokens: &input, n })
                        .map_err(|e| {
                            Error::new(format!(
                                "{e} (for an MLP language model, set `context` in the plugin's configuration)"
                            ))
                        })?;
                    let targets = windows().flat_map(|w| &w[1..]).copied().collect();
                    (out, targets)
                }
                Some(k) => {
                    if k >= len {
                        return Err(Error::new(format!(
                            "context {k} does not fit windows of {len} tokens"
                        )));
                    }
                    let input: Vec<u32> = windows()
                        .flat_map(|w| &w[len - 1 - k..len - 1])
                        .copied()
                        .collect();
                    let out = batch.outputs(i, stage, Input::Tokens { tokens: &input, n })?;
                    let targets = windows().map(|w| w[len - 1]).collect();
                    (out, targets)
                }
            }
        }
        Data::Dense { .. } => {
            return Err(Error::new(
                "accuracy needs classification or token data, but the environment is a regression",
            ));
        }
    };
    let classes = *outputs.shape().last().unwrap_or(&1);
    let rows = outputs.data.chunks_exact(classes.max(1));
    if rows.len() != targets.len() {
        return Err(Error::new(format!(
            "the model gave {} predictions for {} targets",
            rows.len(),
            targets.len()
        )));
    }
    let (mut right, mut scored) = (0usize, 0usize);
    for (row, &target) in rows.zip(&targets) {
        if target == LN_IGNORE {
            continue;
        }
        scored += 1;
        right += usize::from(argmax(row) == target as usize);
    }
    if scored == 0 {
        return Err(Error::new("the held-out data hold no scored example"));
    }
    Ok(right as f64 / scored as f64)
}

/// `heldout_accuracy`: accuracy after learning.
struct HeldoutAccuracy(Settings);

impl Evaluate for HeldoutAccuracy {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        for i in 0..batch.len() {
            scores.set(i, 0, accuracy(batch, i, Stage::Learned, self.0)?);
        }
        Ok(())
    }
}

/// `accuracy_gain`: accuracy at birth, after learning, and the gain.
struct AccuracyGain(Settings);

impl Evaluate for AccuracyGain {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        for i in 0..batch.len() {
            let birth = accuracy(batch, i, Stage::Birth, self.0)?;
            let learned = accuracy(batch, i, Stage::Learned, self.0)?;
            scores
                .row_mut(i)
                .copy_from_slice(&[birth, learned, learned - birth]);
        }
        Ok(())
    }
}

/// The plugin.
pub struct AccuracyPlugin;

impl Plugin for AccuracyPlugin {
    const NAME: &'static str = "accuracy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "held-out accuracy of the organism's model, after learning and at birth";

    fn offerings() -> Vec<Offering> {
        vec![
            Offering::fitness(
                "heldout_accuracy",
                "fraction of held-out examples the learned model classifies right",
                vec![Metric::maximize("accuracy")],
            )
            .reading_weights(),
            Offering::suite(
                "accuracy_gain",
                "held-out accuracy at birth and after learning, and the gain",
                vec![
                    Metric::maximize("birth_accuracy"),
                    Metric::maximize("learned_accuracy"),
                    Metric::maximize("gain"),
                ],
            )
            .reading_weights(),
        ]
    }

    fn create(offering: &str, config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        let settings = Settings::from_config(config)?;
        match offering {
            "heldout_accuracy" => Ok(Box::new(HeldoutAccuracy(settings))),
            "accuracy_gain" => Ok(Box::new(AccuracyGain(settings))),
            other => Err(Error::new(format!("no offering `{other}`"))),
        }
    }
}

export_plugin!(AccuracyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[0.1, 0.9, 0.9]), 1);
        assert_eq!(argmax(&[2.0]), 0);
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let c = Config::new(String::new(), vec![("max_exampels".into(), "3".into())]);
        let e = Settings::from_config(&c).unwrap_err();
        assert!(e.0.contains("max_exampels"), "{e}");
        let c = Config::new(String::new(), vec![("max_examples".into(), "0".into())]);
        assert!(Settings::from_config(&c).is_err());
    }
}
