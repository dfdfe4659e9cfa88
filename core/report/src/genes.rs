//! How the genes of a population move: per gene and generation, the
//! quartiles of the values of every organism evaluated in that generation,
//! pooled over a condition's seeds.

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
    /// Values (organisms over every seed).
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

/// Each gene's track over the runs in `tables` (one per seed), pooled.
/// Runs whose gene names differ from the first's are left out.
pub fn tracks(tables: &[GeneTable]) -> Vec<GeneTrack> {
    let Some(first) = tables.first() else {
        return Vec::new();
    };
    let names = &first.names;
    let mut by_generation: BTreeMap<u64, Vec<Vec<f64>>> = BTreeMap::new();
    for t in tables.iter().filter(|t| &t.names == names) {
        for (generation, values) in &t.rows {
            let slot = by_generation
                .entry(*generation)
                .or_insert_with(|| vec![Vec::new(); names.len()]);
            for (g, &v) in values.iter().enumerate() {
                slot[g].push(v);
            }
        }
    }
    names
        .iter()
        .enumerate()
        .map(|(g, name)| GeneTrack {
            name: name.clone(),
            points: by_generation
                .iter()
                .filter_map(|(&generation, values)| Quartiles::of(generation, &values[g]))
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

    #[test]
    fn tracks_pool_seeds_by_generation() {
        let table = |rows: Vec<(u64, Vec<f64>)>| GeneTable {
            names: vec!["rank".into(), "lr".into()],
            rows,
        };
        let a = table(vec![(0, vec![1.0, 0.1]), (1, vec![2.0, 0.2])]);
        let b = table(vec![(0, vec![3.0, 0.3]), (1, vec![4.0, 0.4])]);
        let other = GeneTable {
            names: vec!["x".into()],
            rows: vec![(0, vec![100.0])],
        };
        let t = tracks(&[a, b, other]);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "rank");
        assert_eq!(t[0].points.len(), 2);
        assert_eq!((t[0].points[0].median, t[0].points[0].n), (2.0, 2));
        assert!((t[1].points[1].median - 0.3).abs() < 1e-12);
    }
}
