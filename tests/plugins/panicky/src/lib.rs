//! `panicky`: a plugin that panics, for the host's bad-input tests. Its
//! fitness `score` panics while evaluating; `broken` panics while being
//! created. The SDK must turn both panics into error statuses carrying the
//! panic's message.

use lineage_plugin::{Batch, Config, Error, Evaluate, Metric, Offering, Plugin, Scores};

struct Panics;

impl Evaluate for Panics {
    fn evaluate(&self, batch: &Batch<'_>, _scores: &mut Scores<'_>) -> Result<(), Error> {
        panic!("panicky panicked on purpose with {} organisms", batch.len());
    }
}

struct Panicky;

impl Plugin for Panicky {
    const NAME: &'static str = "panicky";
    const VERSION: &'static str = "0.0.1";

    fn offerings() -> Vec<Offering> {
        vec![
            Offering::fitness("score", "panics", vec![Metric::maximize("value")]),
            Offering::fitness(
                "broken",
                "panics when created",
                vec![Metric::maximize("value")],
            ),
        ]
    }

    fn create(offering: &str, _config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        match offering {
            "score" => Ok(Box::new(Panics)),
            _ => panic!("panicky cannot create `{offering}`"),
        }
    }
}

lineage_plugin::export_plugin!(Panicky);
