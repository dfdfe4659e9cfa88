//! How the genes of a population move: per gene and generation, the
//! quartiles of the values of every organism evaluated in that generation
//! (one run), or, over a condition's seeds, the quartiles of each seed's
//! population median: every lineage summarised first, then the lineages
//! compared, so that a lineage's many organisms do not count as
//! independent samples and one lineage's spread does not pass for the
//! condition's.

use std::collections::BTreeMap;

use crate::read::GeneTable;

/// One gene's distribution over generations.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneTrack {
    /// The gene.
    pub name: String,
    /// One point per generation, in order.
    pub points: Vec<Quartiles>,
}

/// The quartiles of one generation's values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quartiles {
    /// The generation.
    pub generation: u64,
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    /// Values: organisms of one run, or seeds.
    pub n: usize,
}

/// The `p`-quantile of sorted values, interpolating linearly between order
/// statistics (R's type 7, NumPy's default).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let at = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

impl Quartiles {
    /// The quartiles of `values` (finite ones), `None` if there are none.
    pub fn of(generation: u64, values: &[f64]) -> Option<Quartiles> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Quartiles {
            generation,
            q1: quantile(&v, 0.25),
            median: quantile(&v, 0.5),
            q3: quantile(&v, 0.75),
            n: v.len(),
        })
    }
}

/// True when some gene was recorded in more than one generation: only
/// then is there a movement to show (a single generation's genes, such as
/// the placeholder gene of an experiment of lifetimes, are not reported).
pub fn moves(tracks: &[GeneTrack]) -> bool {
    tracks.iter().any(|t| t.points.len() > 1)
}

/// Each gene's track over the runs in `tables` (one per seed): for one
/// run, the quartiles of its organisms' values; for several, the quartiles
/// over seeds of each seed's median. Runs whose gene names differ from the
/// first's are left out.
pub fn tracks(tables: &[GeneTable]) -> Vec<GeneTrack> {
    let Some(first) = tables.first() else {
        return Vec::new();
    };
    let names = &first.names;
    let same: Vec<&GeneTable> = tables.iter().filter(|t| &t.names == names).collect();
    // Per generation, per seed, per gene: the organisms' values.
    let mut by_generation: BTreeMap<u64, Vec<Vec<Vec<f64>>>> = BTreeMap::new();
    for (seed, t) in same.iter().enumerate() {
        for (generation, values) in &t.rows {
            let slot = by_generation
                .entry(*generation)
                .or_insert_with(|| vec![vec![Vec::new(); names.len()]; same.len()]);
            for (g, &v) in values.iter().enumerate() {
                slot[seed][g].push(v);
            }
        }
    }
    let point = |generation: u64, seeds: &[Vec<Vec<f64>>], g: usize| match seeds {
        [one] => Quartiles::of(generation, &one[g]),
        _ => {
            let medians: Vec<f64> = seeds
                .iter()
                .filter_map(|s| Quartiles::of(generation, &s[g]).map(|q| q.median))
                .collect();
            Quartiles::of(generation, &medians)
        }
    };
    names
        .iter()
        .enumerate()
        .map(|(g, name)| GeneTrack {
            name: name.clone(),
            points: by_generation
                .iter()
                .filter_map(|(&generation, seeds)| point(generation, seeds, g))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_like_numpy() {
        let q = Quartiles::of(3, &[4.0, 1.0, 3.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((q.q1, q.median, q.q3, q.n), (1.75, 2.5, 3.25, 4));
        assert_eq!(Quartiles::of(0, &[f64::NAN]), None);
        let one = Quartiles::of(0, &[7.0]).unwrap();
        assert_eq!((one.q1, one.median, one.q3), (7.0, 7.0, 7.0));
    }

    fn table(rows: Vec<(u64, Vec<f64>)>) -> GeneTable {
        GeneTable {
            names: vec!["rank".into(), "lr".into()],
            rows,
        }
    }

    #[test]
    fn one_run_shows_its_organisms() {
        let a = table(vec![
            (0, vec![1.0, 0.1]),
            (0, vec![2.0, 0.2]),
            (0, vec![3.0, 0.3]),
            (1, vec![5.0, 0.5]),
        ]);
        let t = tracks(&[a]);
        assert_eq!(t[0].points.len(), 2);
        let q = t[0].points[0];
        assert_eq!((q.q1, q.median, q.q3, q.n), (1.5, 2.0, 2.5, 3));
    }

    #[test]
    fn seeds_are_summarised_before_they_are_compared() {
        // Seed a: a large population around 1 with one outlier; seed b:
        // two organisms around 10. Pooled, a's organisms would swamp b;
        // by lineage, each seed is one median.
        let mut rows: Vec<(u64, Vec<f64>)> = (0..9).map(|_| (0, vec![1.0, 0.1])).collect();
        rows.push((0, vec![100.0, 0.1]));
        let a = table(rows);
        let b = table(vec![(0, vec![9.0, 0.3]), (0, vec![11.0, 0.5])]);
        let other = GeneTable {
            names: vec!["x".into()],
            rows: vec![(0, vec![100.0])],
        };
        let t = tracks(&[a, b, other]);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "rank");
        // Medians 1 and 10: their median 5.5, over n = 2 seeds.
        let q = t[0].points[0];
        assert_eq!((q.median, q.n), (5.5, 2));
        assert_eq!((q.q1, q.q3), (3.25, 7.75));
        assert!((t[1].points[0].median - 0.25).abs() < 1e-12);
    }
}
