//! Fitness: objectives with directions, and the built-in benchmark functions
//! with known optima (scored per genome; the plugin host calls them in
//! batches through the same interface as plugins).
//!
//! The built-ins exist to test and benchmark the engine against results from
//! the literature: OneMax and the deceptive trap on bit strings, Sphere and
//! Rastrigin on real genes, and ZDT1 for two objectives.

use serde::{Deserialize, Serialize};

use crate::GenomeSpec;

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

/// Why a fitness function does not fit a genome.
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

    /// Checks that the function fits genomes of shape `spec`.
    pub fn check(&self, spec: &GenomeSpec) -> Result<(), FitnessError> {
        let incompatible = |reason: String| FitnessError::Incompatible {
            function: self.name().to_owned(),
            reason,
        };
        match self {
            Builtin::OneMax if spec.bits == 0 => Err(incompatible(
                "it needs a bit string (genome.bits > 0)".into(),
            )),
            Builtin::Trap { k } if *k == 0 || spec.bits == 0 || !spec.bits.is_multiple_of(*k) => {
                Err(incompatible(format!(
                    "it needs a bit string whose length is a multiple of k = {k}, found {} bits",
                    spec.bits
                )))
            }
            Builtin::Sphere { .. } | Builtin::Rastrigin { .. } if spec.genes.is_empty() => {
                Err(incompatible("it needs real genes (genome.genes)".into()))
            }
            Builtin::Zdt1 if spec.genes.len() < 2 => Err(incompatible(format!(
                "it needs at least 2 real genes, found {}",
                spec.genes.len()
            ))),
            Builtin::Zdt1 => match spec
                .genes
                .iter()
                .find(|g| g.min < 0.0 || g.max > 1.0 || g.log)
            {
                Some(g) => Err(incompatible(format!(
                    "its genes must be linear within [0, 1], gene `{}` is [{}, {}]",
                    g.name, g.min, g.max
                ))),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Scores one genome, given as its packed bit words (`n_bits` bits) and
    /// real genes, into `out` (one value per objective). The genome must fit
    /// ([`Builtin::check`]).
    pub fn score(&self, words: &[u64], n_bits: usize, reals: &[f64], out: &mut [f64]) {
        match *self {
            Builtin::OneMax => {
                out[0] = words.iter().map(|w| w.count_ones()).sum::<u32>() as f64;
            }
            Builtin::Trap { k } => out[0] = trap(words, n_bits, k) as f64,
            Builtin::Sphere { offset } => {
                out[0] = reals.iter().map(|x| (x - offset) * (x - offset)).sum();
            }
            Builtin::Rastrigin { a, offset } => {
                let tau = std::f64::consts::TAU;
                let n = reals.len() as f64;
                out[0] = a * n
                    + reals
                        .iter()
                        .map(|x| {
                            let z = x - offset;
                            z * z - a * (tau * z).cos()
                        })
                        .sum::<f64>();
            }
            Builtin::Zdt1 => {
                let x = reals;
                let f1 = x[0];
                let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
                out[0] = f1;
                out[1] = g * (1.0 - (f1 / g).sqrt());
            }
        }
    }
}

fn trap(words: &[u64], n_bits: usize, k: usize) -> usize {
    let bit = |i: usize| words[i / 64] >> (i % 64) & 1 == 1;
    let mut total = 0;
    let mut block = 0;
    while block < n_bits {
        let u = (block..block + k).filter(|&i| bit(i)).count();
        total += if u == k { k } else { k - 1 - u };
        block += k;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BitString, GeneSpec, Genome};

    fn reals(xs: &[f64]) -> Genome {
        Genome::new(BitString::zeros(0), xs.to_vec())
    }

    fn one(kind: &Builtin, g: &Genome) -> Vec<f64> {
        let mut out = vec![0.0; kind.objectives().len()];
        kind.score(g.bits().words(), g.bits().len(), g.reals(), &mut out);
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
        assert!(Builtin::OneMax.check(&bits).is_ok());
        assert!(Builtin::Trap { k: 4 }.check(&bits).is_err());
        assert!(Builtin::Sphere { offset: 0.0 }.check(&bits).is_err());
        let wide = GenomeSpec::reals(vec![
            GeneSpec {
                name: "a".into(),
                min: -1.0,
                max: 1.0,
                log: false
            };
            2
        ]);
        let err = Builtin::Zdt1.check(&wide).err().unwrap().to_string();
        assert!(err.contains("[0, 1]"), "{err}");
    }
}
