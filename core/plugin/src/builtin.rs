//! The built-in fitness functions as a plugin: written with the SDK like any
//! third-party plugin and called through the same C descriptor, only linked
//! into Lineage instead of loaded from a file.
//!
//! The same holds for the project's own plugin crates (the Model Connectomes
//! suite): the `lineage` binary links them and [`register_linked`]s their
//! entry points under their library names, and a scenario's `library =
//! "NAME"` finds a linked plugin ([`linked`]) before searching the path.
//! They still build as shared libraries that any host can load by path.
//!
//! Genome functions (`onemax`, `trap`, `sphere`, `rastrigin`, `zdt1`) read
//! genomes through the genome service; lifetime functions (`heldout_loss`,
//! `heldout_auc`, `improvement`, `birth_loss`) read learning curves through
//! the curve service.

use std::sync::{Arc, Mutex, OnceLock};

use lineage_evo::fitness::{BUILTIN_NAMES, Builtin};
use lineage_plugin::abi::LnEntry;
use lineage_plugin::export::{Descriptor, descriptor};
use lineage_plugin::{
    Batch, Config, CurvePoint, Direction, Error, Evaluate, Life, Metric, Offering, Plugin, Scores,
};
use rayon::prelude::*;

use crate::PluginError;
use crate::library::Plugin as LoadedPlugin;

/// The name scenarios use for the built-in plugin.
pub const NAME: &str = "builtin";

/// The lifetime fitness functions, by name.
pub const LIFETIME_NAMES: [&str; 4] = ["heldout_loss", "heldout_auc", "improvement", "birth_loss"];

/// The built-in plugin, checked like a loaded one.
pub fn plugin() -> Result<Arc<LoadedPlugin>, PluginError> {
    static DESCRIPTOR: OnceLock<Descriptor> = OnceLock::new();
    LoadedPlugin::linked(descriptor::<Builtins>(&DESCRIPTOR), "built-in")
}

/// What a manifest records as the path of a linked plugin.
pub const LINKED_PATH: &str = "built-in";

/// Plugins linked into this program: library name and entry point.
static LINKED: Mutex<Vec<(&'static str, LnEntry)>> = Mutex::new(Vec::new());

/// Registers a plugin linked into this program under its library name (as
/// a scenario's `library = "…"` names it, `-` and `_` alike), so that the
/// name finds it before the search path. The entry point is the crate's
/// `lineage_plugin_descriptor` (`lineage_plugin::plugin_descriptor!`: the
/// unmangled `lineage_plugin_entry` can exist once per binary), called and
/// checked like a loaded library's.
/// Registering a name again replaces its entry.
pub fn register_linked(library: &'static str, entry: LnEntry) {
    let mut linked = LINKED.lock().unwrap_or_else(|e| e.into_inner());
    linked.retain(|(name, _)| !same_name(name, library));
    linked.push((library, entry));
}

/// The linked plugin registered as `library`, checked like a loaded one
/// (its path `None`); `None` when no plugin of that name is linked.
pub fn linked(library: &str) -> Option<Result<Arc<LoadedPlugin>, PluginError>> {
    let entry = LINKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(name, _)| same_name(name, library))
        .map(|(_, entry)| *entry)?;
    // SAFETY: a registered entry is a plugin's entry point, which the ABI
    // lets the host call at any time from any thread.
    let raw = unsafe { entry() };
    Some(LoadedPlugin::linked(raw, &format!("{library} (built-in)")))
}

/// The library names of the linked plugins, in registration order.
pub fn linked_names() -> Vec<&'static str> {
    LINKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

fn same_name(a: &str, b: &str) -> bool {
    a.replace('-', "_") == b.replace('-', "_")
}

/// The configuration entries that describe `builtin` to its offering.
pub fn config_of(builtin: &Builtin) -> Vec<(String, String)> {
    let entry = |k: &str, v: String| (k.to_owned(), v);
    match *builtin {
        Builtin::Trap { k } => vec![entry("k", k.to_string())],
        Builtin::Sphere { offset } => vec![entry("offset", format!("{offset:?}"))],
        Builtin::Rastrigin { a, offset } => vec![
            entry("a", format!("{a:?}")),
            entry("offset", format!("{offset:?}")),
        ],
        Builtin::OneMax | Builtin::Zdt1 => Vec::new(),
    }
}

struct Builtins;

impl Plugin for Builtins {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "benchmark functions of the genome and measures of the learning curve";

    fn offerings() -> Vec<Offering> {
        let mut offerings: Vec<Offering> = BUILTIN_NAMES
            .iter()
            .map(|name| {
                let b = parse_genome_function(name, &Config::default())
                    .expect("every built-in parses with defaults");
                let metrics = b
                    .objectives()
                    .into_iter()
                    .map(|o| Metric {
                        name: o.name,
                        direction: match o.direction {
                            lineage_evo::Direction::Maximize => Direction::Maximize,
                            lineage_evo::Direction::Minimize => Direction::Minimize,
                        },
                    })
                    .collect();
                Offering::fitness(name, genome_description(name), metrics)
            })
            .collect();
        offerings.extend([
            Offering::fitness(
                "heldout_loss",
                "held-out loss at the end of the lifetime",
                vec![Metric::minimize("heldout_loss")],
            ),
            Offering::fitness(
                "heldout_auc",
                "mean held-out loss over the learning curve (trapezoid rule over steps)",
                vec![Metric::minimize("heldout_auc")],
            ),
            Offering::fitness(
                "improvement",
                "held-out loss at birth minus at the end",
                vec![Metric::maximize("improvement")],
            ),
            Offering::fitness(
                "birth_loss",
                "held-out loss at birth, before any learning",
                vec![Metric::minimize("birth_loss")],
            ),
        ]);
        offerings
    }

    fn create(offering: &str, config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        if let Some(metric) = LIFETIME_NAMES.iter().position(|n| *n == offering) {
            config.expect_keys(&[])?;
            return Ok(Box::new(LifetimeFunction(metric)));
        }
        Ok(Box::new(GenomeFunction(parse_genome_function(
            offering, config,
        )?)))
    }
}

fn genome_description(name: &str) -> &'static str {
    match name {
        "onemax" => "number of one bits",
        "trap" => "concatenated deceptive traps of order k",
        "sphere" => "sum of squares of the genes minus offset",
        "rastrigin" => "Rastrigin's function of the genes minus offset",
        _ => "Zitzler-Deb-Thiele's ZDT1, two objectives",
    }
}

fn parse_genome_function(name: &str, config: &Config) -> Result<Builtin, Error> {
    let offset = || Ok::<_, Error>(config.f64("offset")?.unwrap_or(0.0));
    Ok(match name {
        "onemax" => {
            config.expect_keys(&[])?;
            Builtin::OneMax
        }
        "trap" => {
            config.expect_keys(&["k"])?;
            Builtin::Trap {
                k: config.usize("k")?.unwrap_or(4),
            }
        }
        "sphere" => {
            config.expect_keys(&["offset"])?;
            Builtin::Sphere { offset: offset()? }
        }
        "rastrigin" => {
            config.expect_keys(&["a", "offset"])?;
            Builtin::Rastrigin {
                a: config.f64("a")?.unwrap_or(10.0),
                offset: offset()?,
            }
        }
        "zdt1" => {
            config.expect_keys(&[])?;
            Builtin::Zdt1
        }
        other => return Err(Error::new(format!("no built-in `{other}`"))),
    })
}

/// Below this many organisms a batch is scored on the calling thread.
const PARALLEL_MIN: usize = 2048;

struct GenomeFunction(Builtin);

impl Evaluate for GenomeFunction {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        let m = scores.metrics();
        let score = |i: usize, out: &mut [f64]| -> Result<(), Error> {
            let g = batch.genome(i)?;
            self.0.score(g.bits, g.n_bits, g.genes, out);
            Ok(())
        };
        let out = scores.as_mut_slice();
        if batch.len() < PARALLEL_MIN {
            out.chunks_mut(m)
                .enumerate()
                .try_for_each(|(i, o)| score(i, o))
        } else {
            out.par_chunks_mut(m)
                .enumerate()
                .with_min_len(256)
                .try_for_each(|(i, o)| score(i, o))
        }
    }
}

struct LifetimeFunction(usize);

impl Evaluate for LifetimeFunction {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        for i in 0..batch.len() {
            let curve = batch.curve(i)?;
            if curve.life == Life::None {
                return Err(Error::new(
                    "a lifetime fitness needs lifetime learning: the scenario has no [lifetime]",
                ));
            }
            let value = match (curve.life, curve.points.first(), curve.points.last()) {
                (Life::Completed, Some(first), Some(last)) => {
                    lifetime_metric(self.0, curve.points, first, last)
                }
                // Diverged lifetimes are invalid and never reach a fitness
                // function; NaN here would be reported as an error.
                _ => f32::NAN,
            };
            scores.set(i, 0, f64::from(value));
        }
        Ok(())
    }
}

fn lifetime_metric(
    metric: usize,
    points: &[CurvePoint],
    first: &CurvePoint,
    last: &CurvePoint,
) -> f32 {
    match LIFETIME_NAMES[metric] {
        "heldout_loss" => last.heldout,
        "birth_loss" => first.heldout,
        "improvement" => first.heldout - last.heldout,
        _ => {
            if last.step == 0 {
                last.heldout
            } else {
                let area: f32 = points
                    .windows(2)
                    .map(|w| 0.5 * (w[0].heldout + w[1].heldout) * (w[1].step - w[0].step) as f32)
                    .sum();
                area / last.step as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn entry() -> *const lineage_plugin::abi::LnPlugin {
        static DESCRIPTOR: OnceLock<Descriptor> = OnceLock::new();
        descriptor::<Builtins>(&DESCRIPTOR)
    }

    #[test]
    fn a_linked_plugin_is_found_by_its_library_name() {
        assert!(linked("lineage_linked_test").is_none());
        register_linked("lineage-linked-test", entry);
        // `-` and `_` alike, as cargo names libraries.
        let plugin = linked("lineage_linked_test")
            .expect("registered")
            .expect("a valid descriptor");
        assert_eq!(plugin.name, NAME);
        assert!(plugin.path.is_none() && plugin.sha256.is_none());
        assert!(plugin.offering("onemax").is_ok());
        assert!(linked_names().contains(&"lineage-linked-test"));
        assert!(linked("lineage_linked_other").is_none());
    }
}
