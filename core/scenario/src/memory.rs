//! The memory a run needs, estimated from the scenario before anything big
//! is allocated, and the limit it must stay under.
//!
//! A run holds, for its whole length, the data of every environment it
//! built (one per phase, and for an experiment one per condition and
//! seed); while a generation runs it also holds every organism's genome,
//! weights (birth, learned, masks, the optimiser's state while it learns),
//! lifetime data and minibatch order, its activations, and a checkpoint
//! being written. [`MemoryEstimate`] lists these parts, each with the field
//! that drives it, so that a scenario too big for the machine is refused by
//! `lineage validate` with the field to change rather than aborting the
//! process halfway through an allocation.
//!
//! The estimate is an upper bound of the data, not of the allocator's
//! overhead or the binary itself: it is meant to catch sizes that cannot
//! fit, not to predict the resident size to the megabyte.

use std::cell::Cell;
use std::fmt;

use lineage_env::Task;
use lineage_evo::GenomeSpec;
use lineage_learn::spec::ModelSpec;

use crate::lifetime::LifetimeConfig;
use crate::raw::lifetime::{RawEnvironment, RawLifetime};

/// One part of a run's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPart {
    /// What it is, e.g. `environment data`.
    pub what: String,
    /// The dotted path of the field that drives it, e.g.
    /// `lifetime.environment.heldout`.
    pub field: String,
    /// Bytes.
    pub bytes: u64,
}

/// The memory a run needs at its peak: data held for the whole run, plus
/// what the largest generation holds at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Held for the whole run (environment data).
    pub held: Vec<MemoryPart>,
    /// Held while the largest generation runs (genomes, weights, lifetime
    /// data, activations, a checkpoint).
    pub generation: Vec<MemoryPart>,
}

impl MemoryEstimate {
    /// The estimated peak, in bytes.
    pub fn total(&self) -> u64 {
        sum(&self.held).saturating_add(sum(&self.generation))
    }

    /// The largest part, with the parts of the same kind from the same
    /// field added up (an experiment's conditions each hold their own copy
    /// of the environment's data).
    pub fn largest(&self) -> Option<MemoryPart> {
        let mut summed: Vec<MemoryPart> = Vec::new();
        for p in self.held.iter().chain(&self.generation) {
            match summed
                .iter_mut()
                .find(|s| s.what == p.what && s.field == p.field)
            {
                Some(s) => s.bytes = s.bytes.saturating_add(p.bytes),
                None => summed.push(p.clone()),
            }
        }
        summed.into_iter().max_by_key(|p| p.bytes)
    }

    /// Adds everything `other` holds, its generation too (islands run
    /// their generations at the same time).
    pub(crate) fn add(&mut self, other: &MemoryEstimate) {
        self.held.extend(other.held.iter().cloned());
        self.generation.extend(other.generation.iter().cloned());
    }

    /// Adds what `other` holds, and keeps the larger generation of the two.
    pub(crate) fn absorb(&mut self, other: &MemoryEstimate) {
        self.held.extend(other.held.iter().cloned());
        if sum(&other.generation) > sum(&self.generation) {
            self.generation = other.generation.clone();
        }
    }
}

fn sum(parts: &[MemoryPart]) -> u64 {
    parts.iter().fold(0u64, |a, p| a.saturating_add(p.bytes))
}

impl fmt::Display for MemoryEstimate {
    /// `1.2 GiB (largest: environment data 0.9 GiB from
    /// lifetime.environment.heldout)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Bytes(self.total()))?;
        if let Some(p) = self.largest() {
            write!(
                f,
                " (largest: {} {} from {})",
                p.what,
                Bytes(p.bytes),
                p.field
            )?;
        }
        Ok(())
    }
}

/// A byte count shown with a binary unit: `512 B`, `1.5 KiB`, `2.0 GiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

/// Parses a size such as `8GiB`, `512 MiB`, `2G`, `1.5GB` or `4096`
/// (bytes). `K`, `M`, `G`, `T` and their `KiB`... forms are binary
/// (1024); `KB`, `MB`, `GB`, `TB` are decimal (1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || format!("expected a size such as 8GiB, 512MiB or 4096 (bytes), found {text:?}");
    let value: f64 = number.parse().map_err(|_| bad())?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0_f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(bad()),
    };
    let bytes = value * factor;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!(
            "expected a size from 1 byte to 16 EiB, found {text:?}"
        ));
    }
    Ok(bytes as u64)
}

/// The memory this machine has available now: `MemAvailable` from
/// `/proc/meminfo` (Linux), else `MemTotal`; `None` where neither can be
/// read (no limit then applies but the size bounds).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(kib.saturating_mul(1024))
        })
    };
    field("MemAvailable").or_else(|| field("MemTotal"))
}

/// The limit a validation checks estimates against, and the environment
/// data built so far (every environment a scenario builds stays held).
#[derive(Debug)]
pub(crate) struct Budget {
    /// Bytes allowed.
    pub limit: u64,
    /// Where the limit comes from, for messages.
    pub source: &'static str,
    /// Environment data built so far in this validation.
    pub held: Cell<u64>,
}

impl Budget {
    /// `--memory-limit` when given, else the machine's available memory.
    pub fn new(limit: Option<u64>) -> Budget {
        let (limit, source) = match limit {
            Some(l) => (l, "the memory limit (--memory-limit)"),
            None => match available_memory() {
                Some(m) => (m, "the memory available on this machine"),
                None => (u64::MAX, "no limit"),
            },
        };
        Budget {
            limit,
            source,
            held: Cell::new(0),
        }
    }

    /// A message when `estimate` (what this step would bring the total to)
    /// does not fit, naming its largest part.
    pub fn refuse(&self, estimate: &MemoryEstimate) -> Option<(String, String)> {
        let total = estimate.total();
        if total <= self.limit {
            return None;
        }
        let largest = estimate.largest()?;
        Some((
            largest.field.clone(),
            format!(
                "estimated peak memory {} exceeds {} ({}): the largest part is {} {} from `{}`",
                Bytes(total),
                self.source,
                Bytes(self.limit),
                largest.what,
                Bytes(largest.bytes),
                largest.field
            ),
        ))
    }
}

/// `a * b * ...` in bytes, saturating.
pub(crate) fn product(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |a, &b| a.saturating_mul(b))
}

/// What one environment holds for the whole run, from its raw settings
/// (before it is built); `file_len` is the length of a text environment's
/// file, or the bytes of values a data set's files hold once decoded.
pub(crate) fn environment(raw: &RawEnvironment, file_len: u64) -> Vec<MemoryPart> {
    let part = |name: &str, bytes: u64| MemoryPart {
        what: "environment data".into(),
        field: format!("lifetime.environment.{name}"),
        bytes,
    };
    let n = |v: usize| v as u64;
    match raw {
        // Known once the plugin declares its task (see
        // `validate::lifetime`).
        RawEnvironment::Plugin { .. } => Vec::new(),
        RawEnvironment::GaussianClusters {
            classes,
            dim,
            heldout,
            ..
        } => vec![
            part(
                "heldout",
                product(&[n(*heldout), n(*dim).saturating_add(1), 4]),
            ),
            part("classes", product(&[n(*classes), n(*dim), 4])),
        ],
        RawEnvironment::Teacher {
            inputs,
            hidden,
            outputs,
            heldout,
            ..
        } => {
            let io = n(*inputs).saturating_add(n(*outputs));
            vec![
                part("heldout", product(&[n(*heldout), io, 4])),
                part("hidden", product(&[n(*hidden), io, 4])),
            ]
        }
        // Each lifetime draws its own task and held-out points.
        RawEnvironment::Sinusoids { .. } => Vec::new(),
        RawEnvironment::LinearTeacher {
            inputs, heldout, ..
        } => vec![part(
            "heldout",
            product(&[n(*heldout), n(*inputs).saturating_add(1), 4]),
        )],
        // Held-out trials: inputs and a label per step.
        RawEnvironment::Decision {
            stimulus_steps,
            heldout,
            ..
        } => vec![part(
            "heldout",
            product(&[n(*heldout), n(*stimulus_steps).saturating_add(1), 4, 4]),
        )],
        RawEnvironment::DelayedMatch {
            stimuli,
            sample_steps,
            delay_steps,
            test_steps,
            heldout,
            ..
        } => {
            let steps = n(*sample_steps)
                .saturating_add(n(*delay_steps))
                .saturating_add(n(*test_steps))
                .saturating_add(1);
            vec![part(
                "heldout",
                product(&[n(*heldout), steps, n(*stimuli).saturating_add(2), 4]),
            )]
        }
        // Held-out sequences: 2 pairs + 1 tokens of positions and content,
        // a label each; the classes' means and label vectors.
        RawEnvironment::Icl {
            classes,
            dim,
            labels,
            pairs,
            positions,
            max_pairs,
            heldout,
            probe_sequences,
            ..
        } => {
            let steps = n(*pairs).saturating_mul(2).saturating_add(1);
            let slots = if positions == "random_offset" {
                n(max_pairs.unwrap_or(32))
                    .saturating_mul(2)
                    .saturating_add(1)
            } else {
                steps
            };
            let width = slots.saturating_add(n(*dim)).saturating_add(1);
            vec![
                part("heldout", product(&[n(*heldout), steps, width, 4])),
                // Up to five probe sets.
                part(
                    "probe_sequences",
                    product(&[n(*probe_sequences), 5, steps, width, 4]),
                ),
                part(
                    "classes",
                    product(&[n(*classes).saturating_add(n(*labels)), n(*dim), 4]),
                ),
            ]
        }
        // Every value becomes 4 bytes (f32 or u32): at most 4 times the
        // decoded files (bytes stay bytes at worst).
        RawEnvironment::Dataset { .. } => vec![part("path", product(&[file_len, 4]))],
        RawEnvironment::Text {
            context,
            validation,
            heldout,
            ..
        } => {
            let window = n(*context).saturating_add(1);
            let held_tokens = (file_len as f64 * validation.clamp(0.0, 1.0)) as u64;
            let windows = n(*heldout).min(held_tokens / window);
            vec![
                // One token per byte (reading the file briefly needs the
                // bytes and a second copy of the tokens too: `building`).
                part("path", product(&[file_len, 4])),
                part("heldout", product(&[windows, window, 4])),
            ]
        }
        RawEnvironment::Hmm {
            tokens,
            states,
            successors,
            emissions,
            context,
            corpus,
            heldout,
            ..
        } => {
            let window = n(*context).saturating_add(1);
            let lists = n(*successors.range().end()).saturating_add(n(*emissions.range().end()));
            vec![
                // The sample and its shared copy.
                part("corpus", product(&[n(*corpus), 8])),
                part("heldout", product(&[n(*heldout), window, 4])),
                part(
                    "states",
                    product(&[
                        n(*states),
                        n(*states).saturating_add(lists.saturating_mul(2)),
                        8,
                    ]),
                ),
                part("tokens", product(&[n(*states), n(*tokens), 8])),
            ]
        }
    }
}

/// What building an environment needs briefly, beyond what it then
/// holds: a text file's bytes and a second copy of its tokens; a data set's
/// values as read (integers as 8 bytes) and a second copy while it is split.
pub(crate) fn building(raw: &RawEnvironment, file_len: u64) -> Vec<MemoryPart> {
    match raw {
        RawEnvironment::Dataset { .. } => vec![MemoryPart {
            what: "environment data while it is read".into(),
            field: "lifetime.environment.path".into(),
            bytes: product(&[file_len, 12]),
        }],
        RawEnvironment::Text { .. } => vec![MemoryPart {
            what: "environment data while it is read".into(),
            field: "lifetime.environment.path".into(),
            bytes: product(&[file_len, 5]),
        }],
        _ => Vec::new(),
    }
}

/// Lifetimes one worker thread runs at a time: enough that threads rarely
/// wait for the slowest lifetime of a group, few enough that their data stay
/// small. The engine streams lifetimes in groups of this many per thread.
pub const LIFETIMES_PER_THREAD: usize = 4;

/// Lifetimes in flight at once on this machine (one worker thread per
/// core, the default).
fn lifetimes_in_flight() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * LIFETIMES_PER_THREAD) as u64
}

/// What one generation of `population` organisms holds at once: genomes
/// (parents and offspring), and with `[lifetime]` the weights every
/// organism keeps, its curve, a checkpoint, and the data, minibatch order,
/// working weights and activations of the lifetimes in flight.
pub(crate) fn generation(
    population: usize,
    genome: &GenomeSpec,
    lifetime: Option<(&LifetimeConfig, &RawLifetime, u32)>,
) -> Vec<MemoryPart> {
    let pop = population as u64;
    let part = |what: &str, field: &str, bytes: u64| MemoryPart {
        what: what.into(),
        field: field.into(),
        bytes,
    };
    let genome_bytes = (genome.bits as u64 / 8)
        .saturating_add(product(&[genome.genes.len() as u64, 8]))
        .saturating_add(64);
    let mut parts = vec![part(
        "genomes of parents and offspring",
        "population",
        product(&[pop, 2, genome_bytes]),
    )];
    let Some((cfg, raw, steps)) = lifetime else {
        return parts;
    };
    let params = cfg.model.parameter_count() as u64;
    let inheriting =
        !matches!(cfg.inheritance, crate::Inheritance::Darwinian) && cfg.genes.weights.is_none();
    // What an organism keeps after its lifetime, at most: learned weights
    // (kept whenever anything reads them), mask bits, and under Lamarckian
    // and pruning inheritance its birth weights and an inherited copy.
    let kept = product(&[params, 4])
        .saturating_add(params / 8)
        .saturating_add(if inheriting { product(&[params, 8]) } else { 0 });
    parts.push(part(
        "weights every organism keeps",
        "lifetime.model",
        product(&[pop, kept]),
    ));
    parts.push(part(
        "a checkpoint being written",
        "population",
        product(&[pop, kept.saturating_add(genome_bytes)]),
    ));
    if let RawEnvironment::Sinusoids { heldout } = &raw.environment {
        parts.push(part(
            "held-out data of every organism",
            "lifetime.environment.heldout",
            product(&[pop, *heldout as u64, 2, 4]),
        ));
    }
    if let Some(points) = steps.checked_div(raw.eval_every) {
        parts.push(part(
            "learning curves of every organism",
            "lifetime.eval_every",
            product(&[pop, points as u64 + 2, 32]),
        ));
    }
    // Lifetimes stream: only those in flight hold their data, minibatch
    // order, activations, birth weights, gradient, optimiser moments and
    // working copies.
    let in_flight = pop.min(lifetimes_in_flight());
    let budget = raw.budget as u64;
    let example = match cfg.task {
        Task::Regression { inputs, outputs } => (inputs as u64).saturating_add(outputs as u64),
        Task::Classification { inputs, .. } => (inputs as u64).saturating_add(1),
        Task::SequenceClassification { inputs, steps, .. } => {
            product(&[steps as u64, (inputs as u64).saturating_add(1)])
        }
        Task::NextToken { .. } => 2,
    };
    parts.push(part(
        "lifetime data of the lifetimes in flight",
        "lifetime.budget",
        product(&[in_flight, budget, example, 4]),
    ));
    parts.push(part(
        "minibatch order of the lifetimes in flight",
        "lifetime.steps",
        product(&[in_flight, raw.batch as u64, steps as u64, 4]),
    ));
    parts.push(part(
        "weights and optimiser state of the lifetimes in flight",
        "lifetime.model",
        product(&[in_flight, params, 4, 8]),
    ));
    parts.push(part(
        "activations of the lifetimes in flight",
        "lifetime.batch",
        product(&[
            in_flight,
            raw.batch as u64,
            activations(&cfg.model, &cfg.task),
            4,
            3,
        ]),
    ));
    parts
}

/// Values a forward pass keeps per example (for the backward pass).
fn activations(model: &ModelSpec, task: &Task) -> u64 {
    let steps = match *task {
        Task::NextToken { context, .. } => context as u64,
        Task::SequenceClassification { steps, .. } => steps as u64,
        _ => 1,
    };
    model.family().kept_per_example(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        for bad in ["", "GiB", "-1G", "8 parsecs", "0", "1e999", "nan"] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn parts_of_one_field_add_up() {
        let env = |bytes| MemoryPart {
            what: "environment data".into(),
            field: "lifetime.environment.corpus".into(),
            bytes,
        };
        let e = MemoryEstimate {
            held: vec![env(8 << 20), env(8 << 20), env(8 << 20)],
            generation: vec![MemoryPart {
                what: "weights".into(),
                field: "lifetime.model".into(),
                bytes: 10 << 20,
            }],
        };
        let largest = e.largest().expect("parts");
        assert_eq!(
            (largest.field.as_str(), largest.bytes),
            ("lifetime.environment.corpus", 24 << 20)
        );
    }

    #[test]
    fn bytes_show_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(3 << 30).to_string(), "3.0 GiB");
    }

    #[test]
    fn the_estimate_names_its_largest_part() {
        let e = MemoryEstimate {
            held: vec![MemoryPart {
                what: "environment data".into(),
                field: "lifetime.environment.heldout".into(),
                bytes: 900 << 20,
            }],
            generation: vec![MemoryPart {
                what: "weights".into(),
                field: "lifetime.model".into(),
                bytes: 100 << 20,
            }],
        };
        assert_eq!(e.total(), 1000 << 20);
        assert_eq!(
            e.to_string(),
            "1000.0 MiB (largest: environment data 900.0 MiB from lifetime.environment.heldout)"
        );
        let budget = Budget {
            limit: 512 << 20,
            source: "the memory limit (--memory-limit)",
            held: Cell::new(0),
        };
        let (field, message) = budget.refuse(&e).expect("over the limit");
        assert_eq!(field, "lifetime.environment.heldout");
        assert!(message.contains("1000.0 MiB"), "{message}");
        assert!(budget.refuse(&MemoryEstimate::default()).is_none());
    }
}
