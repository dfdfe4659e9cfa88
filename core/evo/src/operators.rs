//! Variation operators: mutation and crossover.
//!
//! Every operator takes the random stream it draws from; the engine hands
//! each offspring its own stream, so variation is reproducible per organism.

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::{BitString, Genome, GenomeSpec};

/// A genome's storage, borrowed mutably: packed bit words, the bit length
/// and the real genes. Breeding writes offspring straight into such views
/// (rows of a population-wide buffer), so it allocates nothing per child.
pub struct GenomeMut<'a> {
    /// Packed bits; bits past `bits` stay zero.
    pub words: &'a mut [u64],
    /// Number of bits.
    pub bits: usize,
    /// Real genes.
    pub reals: &'a mut [f64],
}

/// A genome's storage, borrowed: a [`Genome`] or a row of a
/// population-wide buffer.
#[derive(Clone, Copy)]
pub struct GenomeRef<'a> {
    /// Packed bits.
    pub words: &'a [u64],
    /// Number of bits.
    pub bits: usize,
    /// Real genes.
    pub reals: &'a [f64],
}

impl Genome {
    /// This genome's storage as a [`GenomeRef`].
    pub fn as_view(&self) -> GenomeRef<'_> {
        GenomeRef {
            words: self.bits().words(),
            bits: self.bits().len(),
            reals: self.reals(),
        }
    }

    /// This genome's storage as a [`GenomeMut`].
    pub fn as_mut(&mut self) -> GenomeMut<'_> {
        let bits = self.bits().len();
        let (bitstring, reals) = self.parts_mut();
        GenomeMut {
            words: bitstring.words_mut(),
            bits,
            reals,
        }
    }
}

/// Mutation parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mutation {
    /// Probability that each bit flips.
    pub bit_rate: f64,
    /// Standard deviation of the Gaussian step of a real gene, in the gene's
    /// scale (absolute units for linear genes, decades for log genes).
    pub sigma: f64,
    /// Probability that each real gene is mutated.
    pub gene_rate: f64,
}

impl Mutation {
    /// No mutation at all.
    pub const NONE: Mutation = Mutation {
        bit_rate: 0.0,
        sigma: 0.0,
        gene_rate: 0.0,
    };
}

/// Applies bit-flip and Gaussian mutation in place.
pub fn mutate(genome: &mut Genome, spec: &GenomeSpec, mutation: &Mutation, rng: &mut impl Rng) {
    mutate_in(genome.as_mut(), spec, mutation, rng);
}

/// [`mutate`] on a genome's storage.
pub fn mutate_in(
    genome: GenomeMut<'_>,
    spec: &GenomeSpec,
    mutation: &Mutation,
    rng: &mut impl Rng,
) {
    flip_words(genome.words, genome.bits, mutation.bit_rate, rng);
    if mutation.sigma > 0.0 && mutation.gene_rate > 0.0 {
        for (x, gene) in genome.reals.iter_mut().zip(&spec.genes) {
            if mutation.gene_rate >= 1.0 || rng.random_bool(mutation.gene_rate) {
                let step: f64 = rng.sample(StandardNormal);
                *x = gene.clamp(gene.from_scale(gene.to_scale(*x) + mutation.sigma * step));
            }
        }
    }
}

/// Flips each bit independently with probability `rate`.
///
/// Draws one geometric skip per flipped bit instead of one number per bit,
/// so the cost is proportional to the number of flips.
pub fn flip_bits(bits: &mut BitString, rate: f64, rng: &mut impl Rng) {
    let len = bits.len();
    flip_words(bits.words_mut(), len, rate, rng);
}

fn flip_words(words: &mut [u64], len: usize, rate: f64, rng: &mut impl Rng) {
    let flip = |words: &mut [u64], i: usize| words[i / 64] ^= 1u64 << (i % 64);
    if rate <= 0.0 || len == 0 {
        return;
    }
    if rate >= 1.0 {
        for i in 0..len {
            flip(words, i);
        }
        return;
    }
    let log_q = (-rate).ln_1p();
    let mut pos = 0usize;
    loop {
        // U in (0, 1]: the number of failures before the next success.
        let u: f64 = 1.0 - rng.random::<f64>();
        let skip = (u.ln() / log_q).floor();
        if skip >= (len - pos) as f64 {
            return;
        }
        pos += skip as usize;
        flip(words, pos);
        pos += 1;
        if pos >= len {
            return;
        }
    }
}

/// Crossover operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crossover {
    /// Each bit and gene comes from either parent with probability 1/2.
    Uniform,
    /// One cut point over the whole genome (bits, then genes): the child
    /// takes the first parent's genes before it and the second's after.
    OnePoint,
}

/// A child of `a` and `b`.
pub fn crossover(a: &Genome, b: &Genome, kind: Crossover, rng: &mut impl Rng) -> Genome {
    let mut child = a.clone();
    crossover_into(a.as_view(), b.as_view(), kind, rng, child.as_mut());
    child
}

/// Copies `a` into `out`.
pub fn copy_into(a: GenomeRef<'_>, out: GenomeMut<'_>) {
    out.words.copy_from_slice(a.words);
    out.reals.copy_from_slice(a.reals);
}

/// Writes a child of `a` and `b` into `out`.
pub fn crossover_into(
    a: GenomeRef<'_>,
    b: GenomeRef<'_>,
    kind: Crossover,
    rng: &mut impl Rng,
    out: GenomeMut<'_>,
) {
    copy_into(
        a,
        GenomeMut {
            words: &mut *out.words,
            bits: out.bits,
            reals: &mut *out.reals,
        },
    );
    match kind {
        Crossover::Uniform => {
            for (c, w) in out.words.iter_mut().zip(b.words) {
                let take_a: u64 = rng.random();
                *c = (*c & take_a) | (w & !take_a);
            }
            for (c, x) in out.reals.iter_mut().zip(b.reals) {
                if rng.random_bool(0.5) {
                    *c = *x;
                }
            }
        }
        Crossover::OnePoint => {
            let nbits = a.bits;
            let total = nbits + a.reals.len();
            if total < 2 {
                return;
            }
            let cut = rng.random_range(1..total);
            // Bits at and after `cut` come from b.
            for (i, (c, w)) in out.words.iter_mut().zip(b.words).enumerate() {
                let start = i * 64;
                if start >= cut {
                    *c = *w;
                } else if cut < start + 64 {
                    let keep_a = (1u64 << (cut - start)) - 1;
                    *c = (*c & keep_a) | (w & !keep_a);
                }
            }
            for (j, (c, x)) in out.reals.iter_mut().zip(b.reals).enumerate() {
                if nbits + j >= cut {
                    *c = *x;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GeneSpec;
    use crate::rng::{Purpose, stream};

    #[test]
    fn bit_flip_rate_matches_expectation() {
        let mut rng = stream(5, 0, 0, Purpose::Reproduce);
        let (len, rate, reps) = (1000, 0.01, 400);
        let mut flips = 0u64;
        for _ in 0..reps {
            let mut bits = BitString::zeros(len);
            flip_bits(&mut bits, rate, &mut rng);
            flips += bits.count_ones() as u64;
        }
        let mean = flips as f64 / reps as f64;
        // Binomial(1000, 0.01) mean 10, sd of the mean over 400 draws ~0.16.
        assert!((mean - 10.0).abs() < 0.6, "mean flips {mean}");
        let mut bits = BitString::zeros(len);
        flip_bits(&mut bits, 1.0, &mut rng);
        assert_eq!(bits.count_ones(), len as u32);
        flip_bits(&mut bits, 0.0, &mut rng);
        assert_eq!(bits.count_ones(), len as u32);
    }

    #[test]
    fn gaussian_mutation_respects_bounds_and_scale() {
        let spec = GenomeSpec::reals(vec![
            GeneSpec {
                name: "x".into(),
                min: -1.0,
                max: 1.0,
                log: false,
            },
            GeneSpec {
                name: "lr".into(),
                min: 1e-4,
                max: 1e-1,
                log: true,
            },
        ]);
        let m = Mutation {
            bit_rate: 0.0,
            sigma: 0.5,
            gene_rate: 1.0,
        };
        let mut rng = stream(9, 0, 0, Purpose::Reproduce);
        let mut hit_bound = false;
        for _ in 0..2000 {
            let mut g = Genome::new(BitString::zeros(0), vec![0.9, 1e-2]);
            mutate(&mut g, &spec, &m, &mut rng);
            assert!((-1.0..=1.0).contains(&g.reals()[0]));
            assert!((1e-4..=1e-1).contains(&g.reals()[1]));
            hit_bound |= g.reals()[0] == 1.0;
        }
        assert!(hit_bound, "sigma 0.5 from 0.9 should often clamp at 1.0");
    }

    #[test]
    fn crossovers_only_mix_parental_material() {
        let mut rng = stream(11, 0, 0, Purpose::Reproduce);
        let a = Genome::new(BitString::zeros(130), vec![0.0; 5]);
        let b = Genome::new(BitString::from_words(vec![u64::MAX; 3], 130), vec![1.0; 5]);
        for kind in [Crossover::Uniform, Crossover::OnePoint] {
            let c = crossover(&a, &b, kind, &mut rng);
            assert_eq!(c.bits().len(), 130);
            let ones = c.bits().count_ones();
            // Counted over whole words: equal to the bits read one by one
            // only if nothing is set past the end.
            assert_eq!(ones as usize, (0..130).filter(|&i| c.bits().get(i)).count());
            assert!(0 < ones && ones < 130, "{kind:?} takes from both parents");
            assert!(c.reals().iter().all(|&x| x == 0.0 || x == 1.0));
        }
        // Random parents: where they agree, so does the child; elsewhere
        // it has one of theirs.
        let words = |rng: &mut _| (0..3).map(|_| rand::Rng::random::<u64>(rng)).collect();
        let p = Genome::new(BitString::from_words(words(&mut rng), 130), vec![0.25; 5]);
        let q = Genome::new(BitString::from_words(words(&mut rng), 130), vec![0.75; 5]);
        for kind in [Crossover::Uniform, Crossover::OnePoint] {
            for _ in 0..20 {
                let c = crossover(&p, &q, kind, &mut rng);
                for i in 0..130 {
                    let (x, y, z) = (p.bits().get(i), q.bits().get(i), c.bits().get(i));
                    assert!(z == x || z == y, "{kind:?}: bit {i} from neither parent");
                }
                assert!(c.reals().iter().all(|&x| x == 0.25 || x == 0.75));
            }
        }
        // One point: a prefix of a's zeros, then b's ones, with one cut.
        for _ in 0..50 {
            let c = crossover(&a, &b, Crossover::OnePoint, &mut rng);
            let seq: Vec<bool> = (0..130)
                .map(|i| c.bits().get(i))
                .chain(c.reals().iter().map(|&x| x == 1.0))
                .collect();
            let switches = seq.windows(2).filter(|w| w[0] != w[1]).count();
            assert_eq!(
                switches, 1,
                "one-point child must switch parent exactly once"
            );
            assert!(!seq[0] && *seq.last().unwrap());
        }
    }
}
