//! Initial recurrent connectivity from a table of cell classes: how likely
//! and how strong a connection is from each class to each, as measured in
//! cortex (the Allen Institute's V1 model, Billeh et al. 2020, ships as
//! `scenarios/data/v1-billeh2020.toml`).
//!
//! A network's units are given classes in the table's proportions, in
//! contiguous blocks in table order; then every entry `W[i][j]` (unit `j`
//! onto unit `i`, as a linear layer's weight) is, independently, the
//! presynaptic class's sign times the table's strength from `j`'s class to
//! `i`'s, with the table's probability, and 0 otherwise. The expected
//! matrix is block-constant, so of rank at most the number of classes; a
//! sample is full rank with a few dominant singular values, which is why
//! the rich/lazy study reports the normalised effective ranks.

use rand::Rng;

use crate::Matrix;

/// Connection probability and strength between cell classes.
#[derive(Clone, Debug, PartialEq)]
pub struct CellTypes {
    classes: Vec<String>,
    excitatory: Vec<bool>,
    cells: Vec<f64>,
    /// `[pre * k + post]`.
    probability: Vec<f64>,
    /// `[pre * k + post]`, magnitudes.
    strength: Vec<f64>,
}

impl CellTypes {
    /// A table of `k` classes: each class's name, whether it is excitatory
    /// and its share of cells (any positive scale: counts or fractions),
    /// and `k x k` matrices of connection probability (in [0, 1]) and
    /// strength (a magnitude, at least 0), indexed `[pre][post]`. The error
    /// names the array and entry that is wrong.
    pub fn new(
        classes: Vec<String>,
        excitatory: Vec<bool>,
        cells: Vec<f64>,
        probability: Vec<Vec<f64>>,
        strength: Vec<Vec<f64>>,
    ) -> Result<CellTypes, String> {
        let k = classes.len();
        if k == 0 {
            return Err("`classes` is empty".into());
        }
        for (name, len) in [("excitatory", excitatory.len()), ("cells", cells.len())] {
            if len != k {
                return Err(format!("`{name}` has {len} entries for {k} classes"));
            }
        }
        if let Some((i, c)) = cells
            .iter()
            .enumerate()
            .find(|(_, c)| !(c.is_finite() && **c >= 0.0))
        {
            return Err(format!(
                "`cells[{i}]` ({}): expected a share of cells, finite and at least 0, found {c}",
                classes[i]
            ));
        }
        if cells.iter().sum::<f64>() <= 0.0 {
            return Err("`cells` are all 0".into());
        }
        let flat = |name: &str, m: Vec<Vec<f64>>, ok: fn(f64) -> bool, what: &str| {
            if m.len() != k {
                return Err(format!("`{name}` has {} rows for {k} classes", m.len()));
            }
            let mut out = Vec::with_capacity(k * k);
            for (a, row) in m.into_iter().enumerate() {
                if row.len() != k {
                    return Err(format!(
                        "`{name}[{a}]` ({}) has {} entries for {k} classes",
                        classes[a],
                        row.len()
                    ));
                }
                if let Some((b, v)) = row.iter().enumerate().find(|(_, v)| !ok(**v)) {
                    return Err(format!(
                        "`{name}[{a}][{b}]` ({} onto {}): expected {what}, found {v}",
                        classes[a], classes[b]
                    ));
                }
                out.extend(row);
            }
            Ok(out)
        };
        let probability = flat(
            "probability",
            probability,
            |p| (0.0..=1.0).contains(&p),
            "a probability in [0, 1]",
        )?;
        let strength = flat(
            "strength",
            strength,
            |s| s.is_finite() && s >= 0.0,
            "a strength (a magnitude), finite and at least 0",
        )?;
        Ok(CellTypes {
            classes,
            excitatory,
            cells,
            probability,
            strength,
        })
    }

    /// The classes' names, in table order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The class of each of `n` units: contiguous blocks in table order,
    /// their sizes proportional to `cells` (largest remainder, ties to the
    /// earlier class), so a class too rare for `n` units gets none.
    pub fn assign(&self, n: usize) -> Vec<usize> {
        let total: f64 = self.cells.iter().sum();
        let quota: Vec<f64> = self.cells.iter().map(|c| c / total * n as f64).collect();
        let mut sizes: Vec<usize> = quota.iter().map(|q| q.floor() as usize).collect();
        let mut order: Vec<usize> = (0..quota.len()).collect();
        order.sort_by(|&a, &b| {
            let (ra, rb) = (quota[a] - quota[a].floor(), quota[b] - quota[b].floor());
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        let short = n - sizes.iter().sum::<usize>();
        for &c in order.iter().take(short) {
            sizes[c] += 1;
        }
        sizes
            .iter()
            .enumerate()
            .flat_map(|(c, &s)| std::iter::repeat_n(c, s))
            .collect()
    }

    /// The expected matrix of `n` units: `W[i][j] = sign(j) s(j -> i)
    /// p(j -> i)`, block-constant.
    pub fn expected(&self, n: usize) -> Matrix {
        self.build(n, |p, s| p * s)
    }

    /// A sampled `n x n` matrix: each entry its presynaptic class's sign
    /// times the table's strength with the table's probability, else 0;
    /// one uniform draw from `rng` per entry, row by row.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Matrix {
        self.build(n, |p, s| if rng.random::<f64>() < p { s } else { 0.0 })
    }

    fn build(&self, n: usize, mut value: impl FnMut(f64, f64) -> f64) -> Matrix {
        let k = self.classes.len();
        let class = self.assign(n);
        let mut m = Matrix::zeros(n, n);
        for (i, &post) in class.iter().enumerate() {
            for (j, &pre) in class.iter().enumerate() {
                let sign = if self.excitatory[pre] { 1.0 } else { -1.0 };
                let at = pre * k + post;
                m.data[i * n + j] = (sign * value(self.probability[at], self.strength[at])) as f32;
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn two() -> CellTypes {
        CellTypes::new(
            vec!["e".into(), "i".into()],
            vec![true, false],
            vec![3.0, 1.0],
            vec![vec![0.5, 1.0], vec![1.0, 0.0]],
            vec![vec![1.0, 2.0], vec![4.0, 9.0]],
        )
        .unwrap()
    }

    #[test]
    fn units_take_classes_in_proportion_and_in_blocks() {
        let t = two();
        assert_eq!(t.assign(8), vec![0, 0, 0, 0, 0, 0, 1, 1]);
        // 5 units: quotas 3.75 and 1.25, the larger remainder first.
        assert_eq!(t.assign(5), vec![0, 0, 0, 0, 1]);
        assert_eq!(t.assign(0), Vec::<usize>::new());
    }

    #[test]
    fn entries_follow_the_table_with_the_presynaptic_sign() {
        let t = two();
        let e = t.expected(4);
        // Units 0-2 excitatory, 3 inhibitory. W[post][pre].
        assert_eq!(e.data[0], 0.5); // e -> e: 0.5 x 1
        assert_eq!(e.data[3], -4.0); // i (unit 3) -> e (unit 0): 1 x 4, inhibitory
        assert_eq!(e.data[3 * 4], 2.0); // e (unit 0) -> i (unit 3): 1 x 2
        assert_eq!(e.data[3 * 4 + 3], 0.0); // i -> i: probability 0
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
        let m = t.sample(400, &mut rng);
        let class = t.assign(400);
        let mut ee = (0usize, 0usize);
        for i in 0..400 {
            for j in 0..400 {
                let v = m.data[i * 400 + j];
                match (class[j], class[i]) {
                    (0, 0) => {
                        assert!(v == 0.0 || v == 1.0);
                        ee.0 += usize::from(v == 1.0);
                        ee.1 += 1;
                    }
                    (1, 0) => assert_eq!(v, -4.0),
                    (0, 1) => assert_eq!(v, 2.0),
                    _ => assert_eq!(v, 0.0),
                }
            }
        }
        let f = ee.0 as f64 / ee.1 as f64;
        assert!((f - 0.5).abs() < 0.01, "e -> e connection fraction {f}");
    }

    #[test]
    fn bad_tables_name_the_entry() {
        let bad = |p: Vec<Vec<f64>>, s: Vec<Vec<f64>>| {
            CellTypes::new(
                vec!["e".into(), "i".into()],
                vec![true, false],
                vec![3.0, 1.0],
                p,
                s,
            )
            .unwrap_err()
        };
        let ok = vec![vec![0.5, 1.0], vec![1.0, 0.0]];
        let e = bad(vec![vec![0.5, 1.5], vec![1.0, 0.0]], ok.clone());
        assert!(e.contains("`probability[0][1]` (e onto i)"), "{e}");
        let e = bad(ok.clone(), vec![vec![1.0], vec![1.0, 0.0]]);
        assert!(e.contains("`strength[0]` (e) has 1 entries"), "{e}");
        let e = bad(ok.clone(), vec![vec![1.0, -1.0], vec![1.0, 0.0]]);
        assert!(e.contains("`strength[0][1]`"), "{e}");
        let e = CellTypes::new(
            vec!["e".into()],
            vec![true, false],
            vec![1.0],
            ok.clone(),
            ok,
        )
        .unwrap_err();
        assert!(
            e.contains("`excitatory` has 2 entries for 1 classes"),
            "{e}"
        );
    }
}
