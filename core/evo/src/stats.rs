//! Population statistics for the per-generation record.

use rayon::prelude::*;

use crate::{Direction, Genome, GenomeSpec};

/// Summary of one objective over a population.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Best valid value (in the objective's direction); NaN if none.
    pub best: f64,
    /// Mean of valid values.
    pub mean: f64,
    /// Median of valid values.
    pub median: f64,
    /// Worst valid value.
    pub worst: f64,
    /// Number of invalid (NaN) values left out.
    pub invalid: usize,
}

/// Summarises `values` (NaN marks an invalid fitness and is left out).
pub fn summarize(values: &[f64], direction: Direction) -> Summary {
    let mut valid: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let invalid = values.len() - valid.len();
    if valid.is_empty() {
        return Summary {
            best: f64::NAN,
            mean: f64::NAN,
            median: f64::NAN,
            worst: f64::NAN,
            invalid,
        };
    }
    valid.sort_by(f64::total_cmp);
    let n = valid.len();
    let median = if n % 2 == 1 {
        valid[n / 2]
    } else {
        0.5 * (valid[n / 2 - 1] + valid[n / 2])
    };
    let mean = valid.iter().sum::<f64>() / n as f64;
    let (lo, hi) = (valid[0], valid[n - 1]);
    let (best, worst) = match direction {
        Direction::Maximize => (hi, lo),
        Direction::Minimize => (lo, hi),
    };
    Summary {
        best,
        mean,
        median,
        worst,
        invalid,
    }
}

/// Genetic diversity of a population in [0, 1]: the mean over loci of each
/// locus' diversity. A bit locus contributes the probability that two
/// distinct random members differ there (so a bit string's part is the
/// expected normalised Hamming distance); a real gene contributes twice its
/// standard deviation over the width of its bounds, in the gene's scale.
///
/// Deterministic for a given order of `genomes`.
pub fn diversity(genomes: &[&Genome], spec: &GenomeSpec) -> f64 {
    let n = genomes.len();
    let loci = spec.bits + spec.genes.len();
    if n < 2 || loci == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    if spec.bits > 0 {
        let ones = ones_per_bit(genomes, spec.bits);
        let pairs = (n * (n - 1)) as f64;
        total += ones
            .iter()
            .map(|&k| 2.0 * k as f64 * (n - k as usize) as f64 / pairs)
            .sum::<f64>();
    }
    for (j, gene) in spec.genes.iter().enumerate() {
        let width = gene.scale_width();
        if !width.is_finite() || width <= 0.0 {
            continue;
        }
        let xs = genomes.iter().map(|g| gene.to_scale(g.reals()[j]));
        let mean = xs.clone().sum::<f64>() / n as f64;
        let var = xs.map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
        total += (2.0 * var.sqrt() / width).min(1.0);
    }
    total / loci as f64
}

/// `SPREAD[b]` holds bit `j` of byte `b` in byte `j`: adding it to a
/// counter word counts eight bit positions at once.
const SPREAD: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            table[b] |= (((b >> j) & 1) as u64) << (8 * j);
            j += 1;
        }
        b += 1;
    }
    table
};

/// How many genomes have a one at each bit position.
///
/// Counts eight positions per addition in byte-wide lanes, emptied into
/// 32-bit counts every 255 genomes before a lane can overflow; chunks of
/// genomes are counted in parallel and summed, which is exact, so the result
/// does not depend on the thread count.
pub fn ones_per_bit(genomes: &[&Genome], bits: usize) -> Vec<u32> {
    let words = bits.div_ceil(64);
    let count = |chunk: &[&Genome]| {
        let mut counts = vec![0u32; words * 64];
        let mut lanes = vec![0u64; words * 8];
        let flush = |lanes: &mut [u64], counts: &mut [u32]| {
            for (k, lane) in lanes.iter_mut().enumerate() {
                for j in 0..8 {
                    counts[k * 8 + j] += ((*lane >> (8 * j)) & 0xff) as u32;
                }
                *lane = 0;
            }
        };
        for (i, g) in chunk.iter().enumerate() {
            for (w, &x) in g.bits().words().iter().enumerate() {
                let lane = &mut lanes[w * 8..w * 8 + 8];
                for (k, l) in lane.iter_mut().enumerate() {
                    *l += SPREAD[((x >> (8 * k)) & 0xff) as usize];
                }
            }
            if i % 255 == 254 {
                flush(&mut lanes, &mut counts);
            }
        }
        flush(&mut lanes, &mut counts);
        counts
    };
    let mut counts = if genomes.len() < 8192 {
        count(genomes)
    } else {
        genomes.par_chunks(8192).map(count).reduce(
            || vec![0u32; words * 64],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        )
    };
    counts.truncate(bits);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BitString;

    #[test]
    fn summary_of_values() {
        let s = summarize(&[3.0, f64::NAN, 1.0, 2.0, 10.0], Direction::Minimize);
        assert_eq!(
            (s.best, s.worst, s.median, s.mean, s.invalid),
            (1.0, 10.0, 2.5, 4.0, 1)
        );
        let s = summarize(&[f64::NAN], Direction::Maximize);
        assert!(s.best.is_nan() && s.invalid == 1);
    }

    #[test]
    fn ones_per_bit_counts_past_lane_overflow() {
        use crate::rng::{Purpose, stream};
        let mut rng = stream(4, 0, 0, Purpose::Init);
        let spec = GenomeSpec::bits(130);
        // 9000 genomes: several flushes and the parallel path.
        let genomes: Vec<Genome> = (0..9000).map(|_| Genome::random(&spec, &mut rng)).collect();
        let refs: Vec<&Genome> = genomes.iter().collect();
        let naive: Vec<u32> = (0..130)
            .map(|b| genomes.iter().filter(|g| g.bits().get(b)).count() as u32)
            .collect();
        assert_eq!(ones_per_bit(&refs, 130), naive);
        assert_eq!(
            ones_per_bit(&refs[..300], 130),
            naive_prefix(&genomes[..300])
        );
    }

    fn naive_prefix(genomes: &[Genome]) -> Vec<u32> {
        (0..130)
            .map(|b| genomes.iter().filter(|g| g.bits().get(b)).count() as u32)
            .collect()
    }

    #[test]
    fn diversity_extremes() {
        let spec = GenomeSpec::bits(64);
        let a = Genome::new(BitString::zeros(64), vec![]);
        let b = Genome::new(BitString::from_words(vec![u64::MAX], 64), vec![]);
        assert_eq!(diversity(&[&a, &a, &a], &spec), 0.0);
        // Two opposite genomes differ at every locus.
        assert_eq!(diversity(&[&a, &b], &spec), 1.0);
    }
}
