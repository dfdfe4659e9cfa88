//! Genomes, variation operators, selection and benchmark fitness functions.
//!
//! This crate is the evolutionary half of Lineage with no ECS, no tensors and
//! no file formats: plain data and functions that the engine calls once per
//! generation with the whole population.
//!
//! The principal types are [`Genome`] (a bit string plus a vector of bounded
//! real genes, laid out by a [`GenomeSpec`]), [`Objective`] (a named fitness
//! value with a [`Direction`]), the built-in benchmark functions in
//! [`fitness`], and [`Preference`], the total order over a population
//! that every selection method in [`selection`] reads.
//!
//! Randomness comes only from [`rng::stream`]: a ChaCha generator keyed by
//! (scenario seed, generation, organism id, purpose), so results do not
//! depend on thread count or on the order in which organisms are visited.
//!
//! ```
//! use lineage_evo::{rng, Genome, GenomeSpec, fitness::Builtin};
//!
//! let spec = GenomeSpec::bits(64);
//! let mut stream = rng::stream(42, 0, 7, rng::Purpose::Init);
//! let genome = Genome::random(&spec, &mut stream);
//! Builtin::OneMax.check(&spec).unwrap();
//! let mut score = [0.0];
//! Builtin::OneMax.score(genome.bits().words(), genome.bits().len(), genome.reals(), &mut score);
//! assert_eq!(score[0], genome.bits().count_ones() as f64);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod fitness;
mod genome;
pub mod operators;
pub mod pareto;
pub mod rng;
pub mod selection;
pub mod stats;

pub use fitness::{Direction, FitnessError, Objective};
pub use genome::{BitString, GeneSpec, Genome, GenomeSpec};
pub use selection::Preference;
