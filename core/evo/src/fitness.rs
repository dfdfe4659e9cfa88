//! Fitness: objectives with directions, the batch [`FitnessFunction`] trait,
//! and the built-in benchmark functions with known optima.
//!
//! The built-ins exist to test and benchmark the engine against results from
//! the literature: OneMax and the deceptive trap on bit strings, Sphere and
//! Rastrigin on real genes, and ZDT1 for two objectives.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Genome, GenomeSpec};

/// Whether larger or smaller values of an objective are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

impl Direction {
    /// `value` mapped so that larger is better; NaN (an invalid fitness)
    /// becomes negative infinity, worse than any valid value.
    pub fn utility(self, value: f64) -> f64 {
        match (value.is_nan(), self) {
            (true, _) => f64::NEG_INFINITY,
            (false, Direction::Maximize) => value,
            (false, Direction::Minimize) => -value,
        }
    }

    /// True when `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        self.utility(a) > self.utility(b)
    }
}

/// One fitness value: a name and a direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objective {
    /// Column name in the run's records.
    pub name: String,
    /// Whether to maximise or minimise it.
    pub direction: Direction,
}

impl Objective {
    fn new(name: &str, direction: Direction) -> Objective {
        Objective {
            name: name.to_owned(),
            direction,
        }
    }
}

/// Why a fitness function could not score a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FitnessError {
    /// The function cannot score genomes of this shape.
    #[error("fitness `{function}` does not fit the genome: {reason}")]
    Incompatible {
        /// The function's name.
        function: String,
        /// What is wrong.
        reason: String,
    },
    /// The function failed while scoring.
    #[error("fitness `{function}` failed: {message}")]
    Failed {
        /// The function's name.
        function: String,
        /// What it reported.
        message: String,
    },
}

/// Scores a batch of genomes.
///
/// Called once per generation with every organism that needs a score, so an
/// implementation can vectorise or parallelise over the batch. `out` holds
/// `genomes.len() * objectives().len()` values, row-major (organism, then
/// objective). NaN marks an invalid fitness, ranked below every valid one.
/// Implementations must be deterministic in their inputs.
pub trait FitnessFunction: Send + Sync {
    /// The function's name, as in scenarios.
    fn name(&self) -> &str;
    /// The objectives it writes, in order.
    fn objectives(&self) -> &[Objective];
    /// Scores `genomes` into `out`.
    fn evaluate(&self, genomes: &[&Genome], out: &mut [f64]) -> Result<(), FitnessError>;
}

/// The built-in benchmark functions and their parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// Number of one bits (maximise; optimum = length).
    OneMax,
    /// Concatenated deceptive traps of order `k` over consecutive blocks of
    /// bits: a block with `u` ones scores `k` if `u == k`, else `k - 1 - u`
    /// (maximise; optimum = length).
    Trap {
        /// Block size.
        k: usize,
    },
    /// Sum of squares of `x - offset` (minimise; optimum 0 at `offset`).
    Sphere {
        /// Where the optimum lies on every axis.
        offset: f64,
    },
    /// `a n + sum((x - offset)^2 - a cos(2 pi (x - offset)))` (minimise;
    /// optimum 0 at `offset`).
    Rastrigin {
        /// Amplitude of the cosine term (10 in the classic definition).
        a: f64,
        /// Where the optimum lies on every axis.
        offset: f64,
    },
    /// Zitzler-Deb-Thiele's ZDT1, two objectives to minimise over genes in
    /// [0, 1]; the Pareto front is `f2 = 1 - sqrt(f1)`.
    Zdt1,
}

/// Names of the built-in functions, as written in scenarios.
pub const BUILTIN_NAMES: [&str; 5] = ["onemax", "trap", "sphere", "rastrigin", "zdt1"];

impl Builtin {
    /// The name used in scenarios.
    pub fn name(&self) -> &'static str {
        match self {
            Builtin::OneMax => "onemax",
            Builtin::Trap { .. } => "trap",
            Builtin::Sphere { .. } => "sphere",
            Builtin::Rastrigin { .. } => "rastrigin",
            Builtin::Zdt1 => "zdt1",
        }
    }

    /// The objectives the function writes.
    pub fn objectives(&self) -> Vec<Objective> {
        match self {
            Builtin::OneMax => vec![Objective::new("onemax", Direction::Maximize)],
            Builtin::Trap { .. } => vec![Objective::new("trap", Direction::Maximize)],
            Builtin::Sphere { .. } => vec![Objective::new("sphere", Direction::Minimize)],
            Builtin::Rastrigin { .. } => vec![Objective::new("rastrigin", Direction::Minimize)],
            Builtin::Zdt1 => vec![
                Objective::new("f1", Direction::Minimize),
                Objective::new("f2", Direction::Minimize),
            ],
        }
    }

    /// Checks that the function fits `spec` and returns it ready to score.
    pub fn build(&self, spec: &GenomeSpec) -> Result<Box<dyn FitnessFunction>, FitnessError> {
        let incompatible = |reason: String| FitnessError::Incompatible {
            function: self.name().to_owned(),
            reason,
        };
        match self {
            Builtin::OneMax if spec.bits == 0 => {
                return Err(incompatible(
                    "it needs a bit string (genome.bits > 0)".into(),
                ));
            }
            Builtin::Trap { k } if *k == 0 || spec.bits == 0 || !spec.bits.is_multiple_of(*k) => {
                return Err(incompatible(format!(
                    "it needs a bit string whose length is a multiple of k = {k}, found {} bits",
                    spec.bits
                )));
            }
            Builtin::Sphere { .. } | Builtin::Rastrigin { .. } if spec.genes.is_empty() => {
                return Err(incompatible("it needs real genes (genome.genes)".into()));
            }
            Builtin::Zdt1 => {
                if spec.genes.len() < 2 {
                    return Err(incompatible(format!(
                        "it needs at least 2 real genes, found {}",
                        spec.genes.len()
                    )));
                }
                if let Some(g) = spec
                    .genes
                    .iter()
                    .find(|g| g.min < 0.0 || g.max > 1.0 || g.log)
                {
                    return Err(incompatible(format!(
                        "its genes must be linear within [0, 1], gene `{}` is [{}, {}]",
                        g.name, g.min, g.max
                    )));
                }
            }
            _ => {}
        }
        Ok(Box::new(BuiltinFunction {
            kind: self.clone(),
            objectives: self.objectives(),
        }))
    }

    /// Scores one genome into `out` (one value per objective).
    pub fn score(&self, genome: &Genome, out: &mut [f64]) {
        match *self {
            Builtin::OneMax => out[0] = genome.bits().count_ones() as f64,
            Builtin::Trap { k } => out[0] = trap(genome, k) as f64,
            Builtin::Sphere { offset } => {
                out[0] = genome
                    .reals()
                    .iter()
                    .map(|x| (x - offset) * (x - offset))
                    .sum();
            }
            Builtin::Rastrigin { a, offset } => {
                let tau = std::f64::consts::TAU;
                let n = genome.reals().len() as f64;
                out[0] = a * n
                    + genome
                        .reals()
                        .iter()
                        .map(|x| {
                            let z = x - offset;
                            z * z - a * (tau * z).cos()
                        })
                        .sum::<f64>();
            }
            Builtin::Zdt1 => {
                let x = genome.reals();
                let f1 = x[0];
                let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
                out[0] = f1;
                out[1] = g * (1.0 - (f1 / g).sqrt());
            }
        }
    }
}

fn trap(genome: &Genome, k: usize) -> usize {
    let bits = genome.bits();
    let mut total = 0;
    let mut block = 0;
    while block < bits.len() {
        let u = (block..block + k).filter(|&i| bits.get(i)).count();
        total += if u == k { k } else { k - 1 - u };
        block += k;
    }
    total
}

struct BuiltinFunction {
    kind: Builtin,
    objectives: Vec<Objective>,
}

/// Below this many organisms a batch is scored on the calling thread.
const PARALLEL_MIN: usize = 2048;

impl FitnessFunction for BuiltinFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn objectives(&self) -> &[Objective] {
        &self.objectives
    }

    fn evaluate(&self, genomes: &[&Genome], out: &mut [f64]) -> Result<(), FitnessError> {
        let m = self.objectives.len();
        if out.len() != genomes.len() * m {
            return Err(FitnessError::Failed {
                function: self.name().to_owned(),
                message: format!(
                    "output holds {} values for {} organisms",
                    out.len(),
                    genomes.len()
                ),
            });
        }
        if genomes.len() < PARALLEL_MIN {
            for (g, o) in genomes.iter().zip(out.chunks_mut(m)) {
                self.kind.score(g, o);
            }
        } else {
            genomes
                .par_iter()
                .zip(out.par_chunks_mut(m))
                .with_min_len(256)
                .for_each(|(g, o)| self.kind.score(g, o));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BitString, GeneSpec};

    fn reals(xs: &[f64]) -> Genome {
        Genome::new(BitString::zeros(0), xs.to_vec())
    }

    fn one(kind: &Builtin, g: &Genome) -> Vec<f64> {
        let mut out = vec![0.0; kind.objectives().len()];
        kind.score(g, &mut out);
        out
    }

    #[test]
    fn known_values() {
        let ones = Genome::new(BitString::from_words(vec![u64::MAX], 8), vec![]);
        let zeros = Genome::new(BitString::zeros(8), vec![]);
        assert_eq!(one(&Builtin::OneMax, &ones), [8.0]);
        // Trap k=4: all ones is the optimum, all zeros the deceptive local one.
        assert_eq!(one(&Builtin::Trap { k: 4 }, &ones), [8.0]);
        assert_eq!(one(&Builtin::Trap { k: 4 }, &zeros), [6.0]);
        let one_bit = Genome::new(BitString::from_words(vec![1], 8), vec![]);
        assert_eq!(one(&Builtin::Trap { k: 4 }, &one_bit), [5.0]);
        assert_eq!(
            one(&Builtin::Sphere { offset: 1.0 }, &reals(&[1.0, 3.0])),
            [4.0]
        );
        let r = one(
            &Builtin::Rastrigin {
                a: 10.0,
                offset: 0.0,
            },
            &reals(&[0.0, 0.0]),
        );
        assert!(r[0].abs() < 1e-12);
        let r = one(
            &Builtin::Rastrigin {
                a: 10.0,
                offset: 0.0,
            },
            &reals(&[1.0, 0.5]),
        );
        assert!((r[0] - 21.25).abs() < 1e-9, "{r:?}");
        // ZDT1 on its front: g = 1, f2 = 1 - sqrt(f1).
        let z = one(&Builtin::Zdt1, &reals(&[0.25, 0.0, 0.0]));
        assert_eq!(z, [0.25, 0.5]);
    }

    #[test]
    fn build_checks_genome_shape() {
        let bits = GenomeSpec::bits(10);
        assert!(Builtin::OneMax.build(&bits).is_ok());
        assert!(Builtin::Trap { k: 4 }.build(&bits).is_err());
        assert!(Builtin::Sphere { offset: 0.0 }.build(&bits).is_err());
        let wide = GenomeSpec::reals(vec![
            GeneSpec {
                name: "a".into(),
                min: -1.0,
                max: 1.0,
                log: false
            };
            2
        ]);
        let err = Builtin::Zdt1.build(&wide).err().unwrap().to_string();
        assert!(err.contains("[0, 1]"), "{err}");
    }

    #[test]
    fn batch_matches_single_scores_at_any_size() {
        let spec = GenomeSpec::bits(100);
        let f = Builtin::OneMax.build(&spec).unwrap();
        let mut rng = crate::rng::stream(1, 0, 0, crate::rng::Purpose::Init);
        let genomes: Vec<Genome> = (0..3000).map(|_| Genome::random(&spec, &mut rng)).collect();
        let refs: Vec<&Genome> = genomes.iter().collect();
        let mut out = vec![0.0; refs.len()];
        f.evaluate(&refs, &mut out).unwrap();
        for (g, o) in genomes.iter().zip(&out) {
            assert_eq!(*o, g.bits().count_ones() as f64);
        }
        assert!(f.evaluate(&refs, &mut out[1..]).is_err());
    }
}
