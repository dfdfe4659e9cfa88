//! Selection: who survives a generation and who breeds.
//!
//! Every method reads one [`Preference`]: a total order of the evaluated
//! pool, best first. With one objective it sorts by the objective (in its
//! direction); with several it sorts by non-dominated front, then by
//! crowding distance (NSGA-II's crowded comparison). Ties fall to the lower
//! organism id, so the order never depends on how the pool was gathered.
//!
//! A [`Plan`] then says which organisms survive unchanged into the next
//! generation and which are candidate parents; [`Plan::pick_parent`] draws
//! one parent for one offspring from that offspring's own random stream.

use rand::Rng;
use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};

use crate::Objective;
use crate::pareto::{crowding_distance, nondominated_fronts};

/// A total order of a pool of organisms, best first.
#[derive(Clone, Debug, Default)]
pub struct Preference {
    order: Vec<u32>,
}

impl Preference {
    /// Orders a pool. `fitness` holds one row of objective values per
    /// organism; `ids` break ties.
    pub fn new(fitness: &[f64], objectives: &[Objective], ids: &[u64]) -> Preference {
        let m = objectives.len();
        let n = ids.len();
        assert_eq!(fitness.len(), n * m, "one fitness row per organism");
        let mut order: Vec<u32> = (0..n as u32).collect();
        if m == 1 {
            // Sorting integer keys is several times faster than comparing
            // floats through a closure, and orders exactly as total_cmp.
            let d = objectives[0].direction;
            let mut keyed: Vec<(u64, u64, u32)> = (0..n)
                .map(|i| (!ordered_bits(d.utility(fitness[i])), ids[i], i as u32))
                .collect();
            // Keys are unique (ids are), so a parallel sort gives the same
            // order as a sequential one.
            if n >= 1 << 14 {
                keyed.par_sort_unstable();
            } else {
                keyed.sort_unstable();
            }
            order = keyed.into_iter().map(|(_, _, i)| i).collect();
        } else {
            let utilities: Vec<f64> = fitness
                .chunks(m)
                .flat_map(|row| {
                    row.iter()
                        .zip(objectives)
                        .map(|(v, o)| o.direction.utility(*v))
                })
                .collect();
            let front = nondominated_fronts(&utilities, m);
            let crowding = crowding_distance(&utilities, m, &front);
            order.sort_unstable_by(|&a, &b| {
                let (a, b) = (a as usize, b as usize);
                front[a]
                    .cmp(&front[b])
                    .then(crowding[b].total_cmp(&crowding[a]))
                    .then(ids[a].cmp(&ids[b]))
            });
        }
        Preference { order }
    }

    /// Pool indices, best first.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Size of the pool.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True for an empty pool.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Maps a float to an integer with the same order as `f64::total_cmp`.
fn ordered_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// How parents are chosen and who survives.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Each parent is the best of `size` organisms drawn uniformly with
    /// replacement from the whole pool.
    Tournament {
        /// Tournament size.
        size: usize,
    },
    /// Parents are drawn uniformly from the best `fraction` of the pool.
    Truncation {
        /// Fraction of the pool allowed to breed.
        fraction: f64,
    },
    /// (mu, lambda): the best `mu` breed uniformly; nobody survives.
    MuCommaLambda {
        /// Number of parents.
        mu: usize,
    },
    /// (mu + lambda): the best `mu` survive and breed uniformly.
    MuPlusLambda {
        /// Number of survivors and parents.
        mu: usize,
    },
    /// NSGA-II: the best `mu` by crowded comparison survive; parents are
    /// chosen from them by binary crowded tournament.
    Nsga2 {
        /// Number of survivors and parents.
        mu: usize,
    },
}

/// What selection decided for one generation, in pool indices.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Organisms carried unchanged (with their fitness) into the next
    /// generation, best first.
    pub survivors: Vec<u32>,
    /// Candidate parents, best first.
    pub parents: Vec<u32>,
    /// Tournament size among `parents`; 1 means a uniform draw.
    pub tournament: usize,
    /// Number of offspring to breed.
    pub offspring: usize,
}

impl Plan {
    /// Plans the next generation of `population` organisms from `pool`.
    ///
    /// `elitism` organisms survive unchanged under tournament and truncation
    /// selection; the (mu, lambda) family and NSGA-II decide survival
    /// themselves. Sizes are clamped to the pool, so a plan is always
    /// executable; the scenario validator rejects sizes that would be.
    pub fn new(method: Method, elitism: usize, pool: &Preference, population: usize) -> Plan {
        let order = pool.order();
        let top = |k: usize| order[..k.clamp(1, order.len())].to_vec();
        let (survivors, parents, tournament) = match method {
            Method::Tournament { size } => (top(elitism), order.to_vec(), size.max(1)),
            Method::Truncation { fraction } => {
                let k = (fraction * order.len() as f64).ceil() as usize;
                (top(elitism), top(k), 1)
            }
            Method::MuCommaLambda { mu } => (Vec::new(), top(mu), 1),
            Method::MuPlusLambda { mu } => (top(mu), top(mu), 1),
            Method::Nsga2 { mu } => (top(mu), top(mu), 2),
        };
        let mut survivors = survivors;
        if elitism == 0
            && matches!(
                method,
                Method::Tournament { .. } | Method::Truncation { .. }
            )
        {
            survivors.clear();
        }
        survivors.truncate(population);
        let offspring = population - survivors.len();
        Plan {
            survivors,
            parents,
            tournament,
            offspring,
        }
    }

    /// Draws one parent (a pool index).
    pub fn pick_parent(&self, rng: &mut impl Rng) -> u32 {
        self.parents[self.pick(rng)]
    }

    /// Draws one parent as a position in [`Plan::parents`].
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        // `parents` is best first, so the best of several draws is the one
        // with the smallest position.
        let n = self.parents.len();
        let mut best = rng.random_range(0..n);
        for _ in 1..self.tournament {
            best = best.min(rng.random_range(0..n));
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;

    fn objectives(directions: &[Direction]) -> Vec<Objective> {
        directions
            .iter()
            .enumerate()
            .map(|(i, &direction)| Objective {
                name: format!("o{i}"),
                direction,
            })
            .collect()
    }

    #[test]
    fn preference_respects_direction_ties_and_nan() {
        let fit = [3.0, f64::NAN, 1.0, 3.0];
        let ids = [10, 11, 12, 9];
        let max = Preference::new(&fit, &objectives(&[Direction::Maximize]), &ids);
        assert_eq!(max.order(), [3, 0, 2, 1], "ties by id, NaN last");
        let min = Preference::new(&fit, &objectives(&[Direction::Minimize]), &ids);
        assert_eq!(min.order(), [2, 3, 0, 1]);
    }

    #[test]
    fn integer_keys_order_like_total_cmp() {
        let xs = [
            -f64::INFINITY,
            -3.5,
            -0.0,
            0.0,
            1e-300,
            2.0,
            f64::INFINITY,
            f64::NAN,
        ];
        for a in xs {
            for b in xs {
                assert_eq!(
                    ordered_bits(a).cmp(&ordered_bits(b)),
                    a.total_cmp(&b),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn crowded_order_puts_front_first() {
        // Minimise both: (0,1), (1,0) and (0.5,0.5) are the front; (1,1) is dominated.
        let fit = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.5];
        let pref = Preference::new(
            &fit,
            &objectives(&[Direction::Minimize, Direction::Minimize]),
            &[0, 1, 2, 3],
        );
        assert_eq!(
            pref.order(),
            [1, 2, 3, 0],
            "extremes (infinite crowding) first, dominated last"
        );
    }

    #[test]
    fn plans_have_the_right_sizes() {
        let fit: Vec<f64> = (0..10).map(f64::from).collect();
        let ids: Vec<u64> = (0..10).collect();
        let pref = Preference::new(&fit, &objectives(&[Direction::Maximize]), &ids);
        let p = Plan::new(Method::Tournament { size: 3 }, 2, &pref, 10);
        assert_eq!(
            (p.survivors.as_slice(), p.offspring, p.parents.len()),
            ([9, 8].as_slice(), 8, 10)
        );
        let p = Plan::new(Method::Truncation { fraction: 0.3 }, 0, &pref, 12);
        assert_eq!(
            (p.survivors.len(), p.offspring, p.parents.as_slice()),
            (0, 12, [9, 8, 7].as_slice())
        );
        let p = Plan::new(Method::MuPlusLambda { mu: 4 }, 0, &pref, 10);
        assert_eq!((p.survivors.len(), p.offspring, p.parents.len()), (4, 6, 4));
        let p = Plan::new(Method::MuCommaLambda { mu: 4 }, 0, &pref, 10);
        assert_eq!(
            (p.survivors.len(), p.offspring, p.parents.len()),
            (0, 10, 4)
        );
    }
}
