//! A benchmark plugin: the built-in `gaussian_clusters` and `decision`
//! environments served through the environment ABI (offerings `clusters`
//! and `decision`, with the built-ins' keys), so that the same data, drawn
//! by the same code, reach a lifetime once directly and once through a
//! plugin. `benches/env_plugin.sh` times both; the difference is what the
//! plugin path costs (the seed handed over, the host's buffers filled and
//! checked). Each training fill draws from `Xoshiro256PlusPlus` seeded by
//! the host's seed, as the engine's own streams are.

use std::sync::Arc;

use lineage_env::{Batch, Decision, GaussianClusters};
use lineage_plugin::{
    Config, Description, Environment, Error, Examples, Offering, Part, Plugin, Task, export_plugin,
};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// A built-in environment, served.
struct Served(Arc<dyn lineage_env::Environment>);

impl Environment for Served {
    fn describe(&self) -> Description {
        let heldout = self
            .0
            .lifetime(&mut Xoshiro256PlusPlus::seed_from_u64(0), 1)
            .map(|l| l.heldout.len())
            .unwrap_or(0);
        let task = match self.0.task() {
            lineage_env::Task::Classification { inputs, classes } => {
                Task::Classification { inputs, classes }
            }
            lineage_env::Task::SequenceClassification {
                inputs,
                classes,
                steps,
            } => Task::Sequences {
                inputs,
                classes,
                steps,
            },
            other => unreachable!("not served: {other:?}"),
        };
        Description::new(task, heldout)
    }

    fn fill(&self, part: Part, seed: u64, out: &mut Examples<'_>) -> Result<(), Error> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let life = self
            .0
            .lifetime(&mut rng, out.len())
            .map_err(|e| Error::new(e.to_string()))?;
        let batch = match part {
            Part::Train => &life.train,
            _ => &*life.heldout,
        };
        match batch {
            Batch::Labeled { x, labels, .. } | Batch::Sequences { x, labels, .. } => {
                out.x.copy_from_slice(x);
                out.labels.copy_from_slice(labels);
                Ok(())
            }
            _ => Err(Error::new("only labelled data are served")),
        }
    }
}

struct BenchEnv;

impl Plugin for BenchEnv {
    const NAME: &'static str = "bench_env";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "built-in environments served through the plugin ABI";

    fn offerings() -> Vec<Offering> {
        vec![
            Offering::environment("clusters", "the built-in gaussian_clusters"),
            Offering::environment("decision", "the built-in decision task"),
        ]
    }

    fn environment(offering: &str, config: &Config) -> Result<Box<dyn Environment>, Error> {
        let invalid = |e: lineage_env::EnvError| Error::new(e.to_string());
        let env: Arc<dyn lineage_env::Environment> = match offering {
            "clusters" => {
                config.expect_keys(&["classes", "dim", "spread", "heldout", "world"])?;
                Arc::new(
                    GaussianClusters::new(
                        config.usize("classes")?.unwrap_or(4),
                        config.usize("dim")?.unwrap_or(8),
                        config.f64("spread")?.unwrap_or(1.0) as f32,
                        config.usize("heldout")?.unwrap_or(1000),
                        config.usize("world")?.unwrap_or(7) as u64,
                    )
                    .map_err(invalid)?,
                )
            }
            "decision" => {
                config.expect_keys(&["heldout", "world"])?;
                Arc::new(
                    Decision::new(
                        Decision::COHERENCES.to_vec(),
                        0.1,
                        7,
                        config.usize("heldout")?.unwrap_or(1000),
                        config.usize("world")?.unwrap_or(1) as u64,
                    )
                    .map_err(invalid)?,
                )
            }
            other => return Err(Error::new(format!("no environment `{other}`"))),
        };
        Ok(Box::new(Served(env)))
    }
}

export_plugin!(BenchEnv);
