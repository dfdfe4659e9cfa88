//! The linear student-teacher task of the rich/lazy study's exception:
//! inputs `x ~ N(0, I_d)`, features `z = F x` where `F` has its top half
//! of singular values `kappa` and its bottom half 1, and the teacher
//! `y = w^T F x`. Its task direction `F^T w` is what a low-rank initial
//! matrix can be aligned with (`align = "task"`).

use std::sync::Arc;

use rand::{Rng, RngCore, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::{Batch, EnvError, Environment, Lifetime, Task, invalid};

/// The largest input dimension.
pub const MAX_TEACHER_INPUTS: usize = 1 << 12;

/// The linear teacher: `F = U diag(s) V^T` with `U`, `V` random
/// orthogonal (Gram-Schmidt on Gaussian draws from the seed), `s` the
/// first `d / 2` values `kappa` and the rest 1, `w ~ N(0, I / d)`. A
/// lifetime trains on `budget` fresh samples (a fixed sample count per
/// lifetime) and is scored on `heldout` samples drawn from the seed.
#[derive(Clone, Debug)]
pub struct LinearTeacher {
    inputs: usize,
    /// `F^T w`: the output is `direction . x`.
    direction: Vec<f32>,
    heldout: Arc<Batch>,
}

fn normal(rng: &mut (impl Rng + ?Sized)) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

/// `d` orthonormal vectors of length `d` (rows), from Gaussian draws.
fn orthonormal(rng: &mut impl Rng, d: usize) -> Vec<Vec<f64>> {
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(d);
    while rows.len() < d {
        let mut v: Vec<f64> = (0..d).map(|_| normal(rng)).collect();
        for r in &rows {
            let dot: f64 = v.iter().zip(r).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(r).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        // A draw (almost) in the span of the others is drawn again.
        if norm > 1e-6 {
            rows.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    rows
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
        let u = orthonormal(&mut rng, d);
        let v = orthonormal(&mut rng, d);
        let w: Vec<f64> = (0..d)
            .map(|_| normal(&mut rng) / (d as f64).sqrt())
            .collect();
        let s: Vec<f64> = (0..d)
            .map(|k| if k < d / 2 { f64::from(kappa) } else { 1.0 })
            .collect();
        // F = sum_k s_k u_k v_k^T (u_k, v_k the k-th rows), so
        // F^T w = sum_k s_k (u_k . w) v_k.
        let mut direction = vec![0.0f64; d];
        for k in 0..d {
            let c = s[k] * u[k].iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            direction
                .iter_mut()
                .zip(&v[k])
                .for_each(|(o, b)| *o += c * b);
        }
        let mut task = LinearTeacher {
            inputs,
            direction: direction.into_iter().map(|x| x as f32).collect(),
            heldout: Arc::new(Batch::Dense {
                n: 0,
                x: Vec::new(),
                y: Vec::new(),
            }),
        };
        task.heldout = Arc::new(task.samples(&mut rng, heldout));
        Ok(task)
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

    fn task_direction(&self) -> Option<Vec<f32>> {
        Some(self.direction.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
