//! Pareto ranking for several objectives (NSGA-II, Deb et al. 2002):
//! non-dominated sorting, crowding distance, and the 2-D hypervolume used to
//! judge a front.
//!
//! Everything here works on *utilities*: objective values mapped so that
//! larger is better (see [`crate::Direction::utility`]).

/// True when `a` Pareto-dominates `b`: no worse in every utility, better in
/// at least one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (x, y) in a.iter().zip(b) {
        if x < y {
            return false;
        }
        strictly |= x > y;
    }
    strictly
}

/// Non-dominated fronts of `points` (rows of `m` utilities): `front[i]` is
/// 0 for the non-dominated points, 1 for those dominated only by front 0,
/// and so on.
///
/// Two objectives take an `O(n log n + n F)` sweep (F fronts); more take
/// Deb's `O(m n^2)` fast non-dominated sort.
pub fn nondominated_fronts(points: &[f64], m: usize) -> Vec<u32> {
    let n = points.len().checked_div(m).unwrap_or(0);
    let row = |i: usize| &points[i * m..(i + 1) * m];
    if m == 2 {
        return fronts_2d(n, &row);
    }
    let mut dominated_by = vec![0u32; n];
    let mut dominates_list: Vec<Vec<u32>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if dominates(row(i), row(j)) {
                dominates_list[i].push(j as u32);
                dominated_by[j] += 1;
            } else if dominates(row(j), row(i)) {
                dominates_list[j].push(i as u32);
                dominated_by[i] += 1;
            }
        }
    }
    let mut front = vec![0u32; n];
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut level = 0;
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            front[i] = level;
            for &j in &dominates_list[i] {
                dominated_by[j as usize] -= 1;
                if dominated_by[j as usize] == 0 {
                    next.push(j as usize);
                }
            }
        }
        current = next;
        level += 1;
    }
    front
}

fn fronts_2d<'a>(n: usize, row: &impl Fn(usize) -> &'a [f64]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..n).collect();
    // Decreasing first utility, then decreasing second: every point is
    // visited after all points that could dominate it.
    order.sort_by(|&a, &b| {
        let (ra, rb) = (row(a), row(b));
        rb[0].total_cmp(&ra[0]).then(rb[1].total_cmp(&ra[1]))
    });
    // Within a front visited in this order the second utility increases, so
    // a front dominates a point exactly when its last member does.
    let mut last_of_front: Vec<usize> = Vec::new();
    let mut front = vec![0u32; n];
    for &p in &order {
        let rp = row(p);
        let level = last_of_front
            .iter()
            .position(|&q| !dominates(row(q), rp))
            .unwrap_or(last_of_front.len());
        if level == last_of_front.len() {
            last_of_front.push(p);
        } else {
            last_of_front[level] = p;
        }
        front[p] = level as u32;
    }
    front
}

/// Crowding distance of each point within its front: the sum over
/// objectives of the normalised gap between its neighbours; the extremes of
/// each objective get infinity.
pub fn crowding_distance(points: &[f64], m: usize, front: &[u32]) -> Vec<f64> {
    let n = front.len();
    let mut distance = vec![0.0; n];
    let levels = front.iter().copied().max().map_or(0, |x| x as usize + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); levels];
    for (i, &f) in front.iter().enumerate() {
        members[f as usize].push(i);
    }
    for set in &mut members {
        for k in 0..m {
            let value = |i: usize| points[i * m + k];
            set.sort_by(|&a, &b| value(a).total_cmp(&value(b)).then(a.cmp(&b)));
            let (Some(&lo), Some(&hi)) = (set.first(), set.last()) else {
                continue;
            };
            distance[lo] = f64::INFINITY;
            distance[hi] = f64::INFINITY;
            let span = value(hi) - value(lo);
            if !span.is_finite() || span <= 0.0 {
                continue;
            }
            for w in set.windows(3) {
                distance[w[1]] += (value(w[2]) - value(w[0])) / span;
            }
        }
    }
    distance
}

/// Area dominated by `points` (two objectives, both minimised) and bounded
/// by `reference`; points not better than the reference in both objectives
/// add nothing.
pub fn hypervolume_2d(points: &[[f64; 2]], reference: [f64; 2]) -> f64 {
    let mut pts: Vec<[f64; 2]> = points
        .iter()
        .copied()
        .filter(|p| p[0] < reference[0] && p[1] < reference[1])
        .collect();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut area = 0.0;
    let mut ceiling = reference[1];
    for p in pts {
        if p[1] < ceiling {
            area += (reference[0] - p[0]) * (ceiling - p[1]);
            ceiling = p[1];
        }
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, stream};
    use rand::Rng;

    #[test]
    fn sweep_matches_deb_sort_on_random_points() {
        let mut rng = stream(2, 0, 0, Purpose::Population);
        for _ in 0..20 {
            // Coarse grid values force ties and duplicates.
            let pts: Vec<f64> = (0..200).map(|_| rng.random_range(0..12) as f64).collect();
            let fast = nondominated_fronts(&pts, 2);
            // Deb's sort, by the generic path on a padded third objective.
            let padded: Vec<f64> = pts.chunks(2).flat_map(|c| [c[0], c[1], 0.0]).collect();
            assert_eq!(fast, nondominated_fronts(&padded, 3));
            // Definition: nothing in front f is dominated by anything in f or later.
            for i in 0..100 {
                for j in 0..100 {
                    if dominates(&pts[2 * j..2 * j + 2], &pts[2 * i..2 * i + 2]) {
                        assert!(fast[j] < fast[i]);
                    }
                }
            }
        }
    }

    #[test]
    fn crowding_marks_extremes_infinite() {
        let pts = [0.0, 3.0, 1.0, 2.0, 2.0, 1.0, 3.0, 0.0];
        let front = nondominated_fronts(&pts, 2);
        assert_eq!(front, [0, 0, 0, 0]);
        let d = crowding_distance(&pts, 2, &front);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        assert!((d[1] - 4.0 / 3.0).abs() < 1e-12, "{d:?}");
    }

    #[test]
    fn hypervolume_of_known_sets() {
        assert_eq!(hypervolume_2d(&[[0.0, 0.0]], [1.0, 1.0]), 1.0);
        assert_eq!(hypervolume_2d(&[[0.5, 0.0], [0.0, 0.5]], [1.0, 1.0]), 0.75);
        // Dominated and out-of-reference points add nothing.
        assert_eq!(
            hypervolume_2d(&[[0.5, 0.0], [0.6, 0.1], [2.0, 0.0]], [1.0, 1.0]),
            0.5
        );
    }
}
