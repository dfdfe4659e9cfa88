//! The linear student-teacher task of the rich/lazy study's exception:
//! inputs `x ~ N(0, I_d)`, features `z = F x` where `F` has its top half
//! of singular values `kappa` and its bottom half 1, and the teacher
//! `y = w^T F x`. Its task direction `F^T w` is what a low-rank initial
//! matrix can be aligned with (`align = "task"`); or, for the paper's
//! partial alignment, `F_h^T w` with `F_h` the truncation of `F` to its
//! top half of singular values ([`Aligned::TopHalf`]).

use std::sync::Arc;

use rand::{Rng, RngCore, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::{Batch, EnvError, Environment, Lifetime, Task, invalid};

/// The largest input dimension.
pub const MAX_TEACHER_INPUTS: usize = 1 << 12;

/// The linear teacher: `F = U diag(s) V^T` with `U`, `V` Haar-random
/// orthogonal (never built: see [`LinearTeacher::new`]), `s` the
/// first `d / 2` values `kappa` and the rest 1, `w ~ N(0, I / d)`. A
/// lifetime trains on `budget` fresh samples (a fixed sample count per
/// lifetime) and is scored on `heldout` samples drawn from the seed.
#[derive(Clone, Debug)]
pub struct LinearTeacher {
    inputs: usize,
    /// `F^T w`: the output is `direction . x`.
    direction: Vec<f32>,
    /// `F_h^T w`, with `F_h` the truncation of `F` to its top `d / 2`
    /// singular values.
    top_half: Vec<f32>,
    /// Which of the two [`Environment::task_direction`] gives.
    aligned: Aligned,
    heldout: Arc<Batch>,
}

/// The direction a linear teacher offers `align = "task"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Aligned {
    /// `F^T w`, the teacher's own direction (full alignment).
    #[default]
    Full,
    /// `F_h^T w`, `F` truncated to its top `d / 2` singular values: the
    /// paper's partial alignment (Liu et al. 2024), which knows the
    /// strong features and not the weak ones.
    TopHalf,
}

fn normal(rng: &mut (impl Rng + ?Sized)) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

/// A unit vector along `v` (`None` when `v` is (almost) zero).
fn unit(v: Vec<f64>) -> Option<Vec<f64>> {
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    (norm > 1e-9).then(|| v.into_iter().map(|a| a / norm).collect())
}

impl LinearTeacher {
    /// A teacher in `inputs` dimensions with the top singular values of
    /// its features `kappa`; `heldout` samples from `seed`.
    pub fn new(inputs: usize, kappa: f32, heldout: usize, seed: u64) -> Result<Self, EnvError> {
        if !(1..=MAX_TEACHER_INPUTS).contains(&inputs) {
            return Err(invalid(
                "linear_teacher",
                format!("inputs must be 1 to {MAX_TEACHER_INPUTS}, found {inputs}"),
            ));
        }
        if !(kappa.is_finite() && kappa > 0.0) {
            return Err(invalid(
                "linear_teacher",
                format!("kappa is a singular value, finite and > 0, found {kappa}"),
            ));
        }
        if heldout == 0 {
            return Err(invalid(
                "linear_teacher",
                "needs at least one held-out sample",
            ));
        }
        let d = inputs;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        // F^T w = V^T diag(s) U w with U, V Haar-random orthogonal and w ~
        // N(0, I / d). U w is again N(0, I / d), whatever U, so U is never
        // built; and V^T diag(s) c splits into c_top's norm along a random
        // unit vector e1 of V's top half and c_bottom's along a random
        // unit vector e2 orthogonal to it: the same distribution in O(d),
        // not O(d^3) (validation builds one teacher per run).
        let half = d / 2;
        let norm = |rng: &mut Xoshiro256PlusPlus, n: usize| {
            (0..n)
                .map(|_| normal(rng).powi(2) / d as f64)
                .sum::<f64>()
                .sqrt()
        };
        let (top, bottom) = (norm(&mut rng, half), norm(&mut rng, d - half));
        let e1 = loop {
            if let Some(e) = unit((0..d).map(|_| normal(&mut rng)).collect()) {
                break e;
            }
        };
        let e2 = if half == 0 {
            // One dimension: no top half, any unit vector.
            e1.clone()
        } else {
            loop {
                let mut g: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
                let dot: f64 = g.iter().zip(&e1).map(|(a, b)| a * b).sum();
                g.iter_mut().zip(&e1).for_each(|(a, b)| *a -= dot * b);
                if let Some(e) = unit(g) {
                    break e;
                }
            }
        };
        let kappa = f64::from(kappa);
        let top_half: Vec<f64> = e1.iter().map(|a| kappa * top * a).collect();
        let direction: Vec<f64> = top_half
            .iter()
            .zip(&e2)
            .map(|(a, b)| a + bottom * b)
            .collect();
        let mut task = LinearTeacher {
            inputs,
            direction: direction.into_iter().map(|x| x as f32).collect(),
            top_half: top_half.into_iter().map(|x| x as f32).collect(),
            aligned: Aligned::Full,
            heldout: Arc::new(Batch::Dense {
                n: 0,
                x: Vec::new(),
                y: Vec::new(),
            }),
        };
        task.heldout = Arc::new(task.samples(&mut rng, heldout));
        Ok(task)
    }

    /// The same teacher, offering `aligned` as its task direction.
    pub fn aligned(mut self, aligned: Aligned) -> Self {
        self.aligned = aligned;
        self
    }

    /// `n` samples `(x, w^T F x)`.
    pub fn samples(&self, rng: &mut dyn RngCore, n: usize) -> Batch {
        let d = self.inputs;
        let x: Vec<f32> = (0..n * d).map(|_| normal(rng) as f32).collect();
        let y = x
            .chunks_exact(d)
            .map(|row| {
                row.iter()
                    .zip(&self.direction)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum::<f64>() as f32
            })
            .collect();
        Batch::Dense { n, x, y }
    }
}

impl Environment for LinearTeacher {
    fn name(&self) -> &str {
        "linear_teacher"
    }

    fn task(&self) -> Task {
        Task::Regression {
            inputs: self.inputs,
            outputs: 1,
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        Ok(Lifetime {
            train: self.samples(rng, budget),
            heldout: self.heldout.clone(),
        })
    }

    fn fresh_heldout(&self, rng: &mut dyn RngCore) -> Option<Batch> {
        Some(self.samples(rng, self.heldout.len()))
    }

    fn task_direction(&self) -> Option<Vec<f32>> {
        Some(match self.aligned {
            Aligned::Full => self.direction.clone(),
            Aligned::TopHalf => self.top_half.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top-half direction is `F^T w` without the bottom half's
    /// contribution: where kappa is large it carries most of the teacher,
    /// at kappa 1 half of it; the data do not change.
    #[test]
    fn the_top_half_direction_knows_the_strong_features() {
        let cosine = |a: &[f32], b: &[f32]| {
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            dot / (n(a) * n(b))
        };
        let mean = |kappa: f32| {
            (0..200)
                .map(|seed| {
                    let t = LinearTeacher::new(32, kappa, 1, seed).unwrap();
                    let full = t.task_direction().unwrap();
                    let t = t.aligned(Aligned::TopHalf);
                    cosine(&full, &t.task_direction().unwrap()).powi(2)
                })
                .sum::<f64>()
                / 200.0
        };
        // E cos^2 = kappa^2 / (kappa^2 + 1) over teachers.
        let (one, ten) = (mean(1.0), mean(10.0));
        assert!((one - 0.5).abs() < 0.05, "{one}");
        assert!((ten - 100.0 / 101.0).abs() < 0.01, "{ten}");
        let a = LinearTeacher::new(8, 4.0, 5, 1).unwrap();
        let b = a.clone().aligned(Aligned::TopHalf);
        assert_eq!(format!("{:?}", a.heldout), format!("{:?}", b.heldout));
    }
    use lineage_evo::rng::{Purpose, stream};

    /// The direction is `F^T w` with `F`'s singular values as defined:
    /// recovered from the data by least squares it matches, and its
    /// squared norm is `kappa^2` times the top half's share of `w`'s
    /// energy plus the bottom half's, about `(kappa^2 + 1) / 2 |w|^2`.
    #[test]
    fn the_teacher_is_linear_along_its_task_direction() {
        let task = LinearTeacher::new(8, 4.0, 100, 3).unwrap();
        let dir = task.task_direction().unwrap();
        let Batch::Dense { n, x, y } = task.samples(&mut stream(1, 0, 0, Purpose::Learn), 50)
        else {
            panic!("dense")
        };
        for i in 0..n {
            let dot: f32 = x[i * 8..][..8].iter().zip(&dir).map(|(a, b)| a * b).sum();
            assert!((dot - y[i]).abs() < 1e-4, "sample {i}");
        }
        // Over many teachers, E|F^T w|^2 = (kappa^2 + 1) / 2 E|w|^2 with
        // E|w|^2 = 1.
        let mean: f64 = (0..400)
            .map(|seed| {
                let t = LinearTeacher::new(8, 4.0, 1, seed).unwrap();
                t.direction
                    .iter()
                    .map(|&a| f64::from(a).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / 400.0;
        // SD of one draw about 5.7: 4 standard errors.
        assert!((mean - 8.5).abs() < 1.2, "mean squared norm {mean}");
        assert!(LinearTeacher::new(0, 1.0, 1, 0).is_err());
        assert!(LinearTeacher::new(4, 0.0, 1, 0).is_err());
        assert!(LinearTeacher::new(4, 1.0, 0, 0).is_err());
    }
}
