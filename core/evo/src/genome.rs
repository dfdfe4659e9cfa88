//! Compact genomes: a bit string and a vector of bounded real genes.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A fixed-length string of bits packed into 64-bit words.
///
/// Bits past `len` in the last word are always zero, so word-wise operations
/// (popcount, Hamming distance, equality) need no masking.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct BitString {
    words: Box<[u64]>,
    len: usize,
}

impl BitString {
    /// All-zero string of `len` bits.
    pub fn zeros(len: usize) -> BitString {
        BitString {
            words: vec![0; len.div_ceil(64)].into_boxed_slice(),
            len,
        }
    }

    /// Builds a string from packed words; bits past `len` are cleared.
    pub fn from_words(mut words: Vec<u64>, len: usize) -> BitString {
        words.resize(len.div_ceil(64), 0);
        let mut bits = BitString {
            words: words.into_boxed_slice(),
            len,
        };
        bits.clear_tail();
        bits
    }

    /// Each bit is one with probability `p_one`.
    pub fn random(len: usize, p_one: f64, rng: &mut impl Rng) -> BitString {
        let mut bits = BitString::zeros(len);
        if p_one == 0.5 {
            for word in bits.words.iter_mut() {
                *word = rng.random();
            }
        } else {
            for i in 0..len {
                if rng.random_bool(p_one) {
                    bits.set(i, true);
                }
            }
        }
        bits.clear_tail();
        bits
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the string has no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed words, least significant bit first.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Bit `i`.
    pub fn get(&self, i: usize) -> bool {
        debug_assert!(i < self.len);
        self.words[i / 64] >> (i % 64) & 1 == 1
    }

    /// Sets bit `i` to `value`.
    pub fn set(&mut self, i: usize, value: bool) {
        debug_assert!(i < self.len);
        let mask = 1u64 << (i % 64);
        if value {
            self.words[i / 64] |= mask;
        } else {
            self.words[i / 64] &= !mask;
        }
    }

    /// Flips bit `i`.
    pub fn flip(&mut self, i: usize) {
        debug_assert!(i < self.len);
        self.words[i / 64] ^= 1u64 << (i % 64);
    }

    /// Number of one bits.
    pub fn count_ones(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// Number of positions where `self` and `other` differ.
    pub fn hamming(&self, other: &BitString) -> u32 {
        self.words
            .iter()
            .zip(other.words.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    /// The packed words, mutably. Callers keep bits past `len` zero.
    pub fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }
}

/// One real-valued gene: its bounds and scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneSpec {
    /// Name, used in records.
    pub name: String,
    /// Lower bound (inclusive).
    pub min: f64,
    /// Upper bound (inclusive).
    pub max: f64,
    /// Log scale: initialised log-uniformly and mutated in decades. Needs
    /// `min > 0`.
    pub log: bool,
}

impl GeneSpec {
    /// The gene's value in the space where mutation acts: log10 for log
    /// genes, the value itself otherwise.
    pub fn to_scale(&self, value: f64) -> f64 {
        if self.log { value.log10() } else { value }
    }

    /// Inverse of [`GeneSpec::to_scale`].
    pub fn from_scale(&self, x: f64) -> f64 {
        if self.log { 10f64.powf(x) } else { x }
    }

    /// Clamps a value into the bounds.
    pub fn clamp(&self, value: f64) -> f64 {
        value.clamp(self.min, self.max)
    }

    /// Width of the bounds in the gene's scale.
    pub fn scale_width(&self) -> f64 {
        self.to_scale(self.max) - self.to_scale(self.min)
    }
}

/// The shape of every genome in a population.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenomeSpec {
    /// Length of the bit string (0 for none).
    pub bits: usize,
    /// Probability that an initial bit is one.
    pub bit_density: f64,
    /// The real genes, in order.
    pub genes: Vec<GeneSpec>,
}

impl GenomeSpec {
    /// A spec with only a bit string of `len` bits, initialised fair.
    pub fn bits(len: usize) -> GenomeSpec {
        GenomeSpec {
            bits: len,
            bit_density: 0.5,
            genes: Vec::new(),
        }
    }

    /// A spec with only real genes.
    pub fn reals(genes: Vec<GeneSpec>) -> GenomeSpec {
        GenomeSpec {
            bits: 0,
            bit_density: 0.5,
            genes,
        }
    }

    /// Bytes one genome of this spec occupies on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.bits.div_ceil(64) * 8 + self.genes.len() * 8
    }
}

/// A genome: the part of an organism that evolution acts on.
///
/// It stores what is inherited, not a copy of every weight: connectivity
/// masks live in the bit string, structure and learning parameters in the
/// real genes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Genome {
    bits: BitString,
    reals: Box<[f64]>,
}

impl Genome {
    /// A genome from its parts.
    pub fn new(bits: BitString, reals: Vec<f64>) -> Genome {
        Genome {
            bits,
            reals: reals.into_boxed_slice(),
        }
    }

    /// A random genome of `spec`: bits with the spec's density, real genes
    /// uniform within bounds (log-uniform for log genes).
    pub fn random(spec: &GenomeSpec, rng: &mut impl Rng) -> Genome {
        let bits = BitString::random(spec.bits, spec.bit_density, rng);
        let reals = spec
            .genes
            .iter()
            .map(|gene| {
                let lo = gene.to_scale(gene.min);
                let hi = gene.to_scale(gene.max);
                let x = if hi > lo {
                    rng.random_range(lo..=hi)
                } else {
                    lo
                };
                gene.clamp(gene.from_scale(x))
            })
            .collect();
        Genome::new(bits, reals)
    }

    /// The bit string.
    pub fn bits(&self) -> &BitString {
        &self.bits
    }

    /// The bit string, mutably.
    pub fn bits_mut(&mut self) -> &mut BitString {
        &mut self.bits
    }

    /// The real genes.
    pub fn reals(&self) -> &[f64] {
        &self.reals
    }

    /// The real genes, mutably.
    pub fn reals_mut(&mut self) -> &mut [f64] {
        &mut self.reals
    }

    /// Both parts, mutably.
    pub fn parts_mut(&mut self) -> (&mut BitString, &mut [f64]) {
        (&mut self.bits, &mut self.reals)
    }

    /// A short, human-readable summary for per-organism records: the number
    /// of one bits and a 32-bit fingerprint of the bit string, and the real
    /// genes (the first eight, then a count of the rest).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if !self.bits.is_empty() {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for w in self.bits.words() {
                h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
                h ^= h >> 29;
            }
            out.push_str(&format!(
                "ones={}/{} fp={:08x}",
                self.bits.count_ones(),
                self.bits.len(),
                (h ^ (h >> 32)) as u32
            ));
        }
        if !self.reals.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push('x');
            out.push('=');
            for (i, x) in self.reals.iter().take(8).enumerate() {
                if i > 0 {
                    out.push(';');
                }
                out.push_str(&format!("{x:.6}"));
            }
            if self.reals.len() > 8 {
                out.push_str(&format!(";+{}", self.reals.len() - 8));
            }
        }
        out
    }

    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.bits.words().len() * 8 + self.reals.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, stream};

    #[test]
    fn tail_bits_stay_clear() {
        let mut rng = stream(1, 0, 0, Purpose::Init);
        let bits = BitString::random(70, 0.5, &mut rng);
        assert_eq!(bits.words()[1] >> 6, 0, "bits past len must be zero");
        let bits = BitString::from_words(vec![u64::MAX, u64::MAX], 65);
        assert_eq!(bits.count_ones(), 65);
    }

    #[test]
    fn log_genes_start_inside_bounds_log_uniformly() {
        let gene = GeneSpec {
            name: "lr".into(),
            min: 1e-4,
            max: 1e-1,
            log: true,
        };
        let spec = GenomeSpec::reals(vec![gene.clone()]);
        let mut rng = stream(3, 0, 0, Purpose::Init);
        let draws: Vec<f64> = (0..4000)
            .map(|_| Genome::random(&spec, &mut rng).reals()[0])
            .collect();
        assert!(draws.iter().all(|&x| (gene.min..=gene.max).contains(&x)));
        // Log-uniform over three decades: about a third below 1e-3.
        let below = draws.iter().filter(|&&x| x < 1e-3).count() as f64 / draws.len() as f64;
        assert!(
            (below - 1.0 / 3.0).abs() < 0.03,
            "fraction below 1e-3 was {below}"
        );
    }

    #[test]
    fn summary_names_ones_and_genes() {
        let g = Genome::new(BitString::from_words(vec![0b1011], 8), vec![0.5, -1.25]);
        let s = g.summary();
        assert!(s.starts_with("ones=3/8 fp="), "{s}");
        assert!(s.ends_with("x=0.500000;-1.250000"), "{s}");
    }
}
