//! Synthetic supervised environments: Gaussian clusters and a teacher
//! network.

use std::sync::Arc;

use rand::{Rng, RngCore, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::{Batch, EnvError, Environment, Lifetime, Task, invalid};

fn normal(rng: &mut (impl Rng + ?Sized)) -> f32 {
    rng.sample::<f32, _>(StandardNormal)
}

/// Classification of points drawn around `classes` random centres.
///
/// The centres are standard normal in `dim` dimensions (drawn from the
/// environment's seed); a point of class c is its centre plus `spread`
/// times standard normal noise. Smaller `spread` is easier.
#[derive(Clone, Debug)]
pub struct GaussianClusters {
    dim: usize,
    spread: f32,
    centres: Vec<Vec<f32>>,
    heldout: Arc<Batch>,
}

impl GaussianClusters {
    /// Builds the centres and a class-balanced held-out set of `heldout`
    /// points from `seed`.
    pub fn new(
        classes: usize,
        dim: usize,
        spread: f32,
        heldout: usize,
        seed: u64,
    ) -> Result<Self, EnvError> {
        if classes < 2 || dim == 0 || !(spread > 0.0 && spread.is_finite()) || heldout == 0 {
            return Err(invalid(
                "gaussian_clusters",
                format!(
                    "needs classes >= 2, dim >= 1, a finite spread > 0 and a held-out set; found classes = {classes}, dim = {dim}, spread = {spread}, heldout = {heldout}"
                ),
            ));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..classes)
            .map(|_| (0..dim).map(|_| normal(&mut rng)).collect())
            .collect();
        let mut env = GaussianClusters {
            dim,
            spread,
            centres,
            heldout: Arc::new(Batch::Dense {
                n: 0,
                x: vec![],
                y: vec![],
            }),
        };
        let labels: Vec<u32> = (0..heldout).map(|i| (i % classes) as u32).collect();
        env.heldout = Arc::new(env.points(&mut rng, labels));
        Ok(env)
    }

    fn points(&self, rng: &mut (impl Rng + ?Sized), labels: Vec<u32>) -> Batch {
        let mut x = Vec::with_capacity(labels.len() * self.dim);
        for &c in &labels {
            x.extend(
                self.centres[c as usize]
                    .iter()
                    .map(|m| m + self.spread * normal(rng)),
            );
        }
        Batch::Labeled {
            n: labels.len(),
            x,
            labels,
        }
    }
}

impl Environment for GaussianClusters {
    fn name(&self) -> &str {
        "gaussian_clusters"
    }

    fn task(&self) -> Task {
        Task::Classification {
            inputs: self.dim,
            classes: self.centres.len(),
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        let classes = self.centres.len() as u32;
        let labels = (0..budget).map(|_| rng.random_range(0..classes)).collect();
        Ok(Lifetime {
            train: self.points(rng, labels),
            heldout: self.heldout.clone(),
        })
    }

    fn fresh_heldout(&self, rng: &mut dyn RngCore) -> Option<Batch> {
        // Class-balanced, as the held-out set is.
        let classes = self.centres.len();
        let labels = (0..self.heldout.len())
            .map(|i| (i % classes) as u32)
            .collect();
        Some(self.points(rng, labels))
    }
}

/// Inputs mapped by a fixed random network, the teacher: `y = W2 tanh(W1 x)`
/// plus optional Gaussian noise, with `x` standard normal. A regression
/// task, or with `classify` a classification task whose label is the
/// teacher's largest output.
#[derive(Clone, Debug)]
pub struct TeacherNetwork {
    inputs: usize,
    hidden: usize,
    outputs: usize,
    noise: f32,
    classify: bool,
    w1: Vec<f32>,
    w2: Vec<f32>,
    heldout: Arc<Batch>,
}

impl TeacherNetwork {
    /// Draws the teacher (weights `N(0, 1/fan_in)`) and a held-out set of
    /// `heldout` examples from `seed`.
    pub fn new(
        inputs: usize,
        hidden: usize,
        outputs: usize,
        noise: f32,
        classify: bool,
        heldout: usize,
        seed: u64,
    ) -> Result<Self, EnvError> {
        if inputs == 0
            || hidden == 0
            || outputs == 0
            || heldout == 0
            || !(noise >= 0.0 && noise.is_finite())
        {
            return Err(invalid(
                "teacher",
                "needs inputs, hidden, outputs and heldout >= 1 and a finite noise >= 0",
            ));
        }
        if classify && outputs < 2 {
            return Err(invalid(
                "teacher",
                format!("classification needs outputs >= 2 (one per class), found {outputs}"),
            ));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let w1 = (0..hidden * inputs)
            .map(|_| normal(&mut rng) / (inputs as f32).sqrt())
            .collect();
        let w2 = (0..outputs * hidden)
            .map(|_| normal(&mut rng) / (hidden as f32).sqrt())
            .collect();
        let mut env = TeacherNetwork {
            inputs,
            hidden,
            outputs,
            noise,
            classify,
            w1,
            w2,
            heldout: Arc::new(Batch::Dense {
                n: 0,
                x: vec![],
                y: vec![],
            }),
        };
        env.heldout = Arc::new(env.examples(&mut rng, heldout));
        Ok(env)
    }

    /// The teacher's outputs for one input.
    pub fn teach(&self, x: &[f32]) -> Vec<f32> {
        let h: Vec<f32> = self
            .w1
            .chunks_exact(self.inputs)
            .map(|row| row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>().tanh())
            .collect();
        self.w2
            .chunks_exact(self.hidden)
            .map(|row| row.iter().zip(&h).map(|(w, v)| w * v).sum())
            .collect()
    }

    fn examples(&self, rng: &mut (impl Rng + ?Sized), n: usize) -> Batch {
        let x: Vec<f32> = (0..n * self.inputs).map(|_| normal(rng)).collect();
        let mut y = Vec::with_capacity(n * self.outputs);
        for row in x.chunks_exact(self.inputs) {
            y.extend(
                self.teach(row)
                    .into_iter()
                    .map(|v| v + self.noise * normal(rng)),
            );
        }
        if self.classify {
            let labels = y
                .chunks_exact(self.outputs)
                .map(|o| {
                    (0..self.outputs)
                        .max_by(|&a, &b| o[a].total_cmp(&o[b]))
                        .unwrap_or(0) as u32
                })
                .collect();
            Batch::Labeled { n, x, labels }
        } else {
            Batch::Dense { n, x, y }
        }
    }
}

impl Environment for TeacherNetwork {
    fn name(&self) -> &str {
        "teacher"
    }

    fn task(&self) -> Task {
        if self.classify {
            Task::Classification {
                inputs: self.inputs,
                classes: self.outputs,
            }
        } else {
            Task::Regression {
                inputs: self.inputs,
                outputs: self.outputs,
            }
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        Ok(Lifetime {
            train: self.examples(rng, budget),
            heldout: self.heldout.clone(),
        })
    }

    fn fresh_heldout(&self, rng: &mut dyn RngCore) -> Option<Batch> {
        Some(self.examples(rng, self.heldout.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_evo::rng::{Purpose, stream};

    #[test]
    fn clusters_are_reproducible_balanced_and_separable_when_tight() {
        let env = GaussianClusters::new(3, 16, 0.1, 300, 9).unwrap();
        let again = GaussianClusters::new(3, 16, 0.1, 300, 9).unwrap();
        assert_eq!(env.heldout, again.heldout);
        let Batch::Labeled { n, x, labels } = &*env.heldout else {
            panic!("labelled")
        };
        assert_eq!((*n, x.len()), (300, 300 * 16));
        assert_eq!(labels.iter().filter(|&&l| l == 2).count(), 100);
        // With spread 0.1 the nearest centre is the true class.
        for (row, &label) in x.chunks_exact(16).zip(labels) {
            let dist = |c: &Vec<f32>| {
                c.iter()
                    .zip(row)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
            };
            let nearest = (0..3)
                .min_by(|&a, &b| dist(&env.centres[a]).total_cmp(&dist(&env.centres[b])))
                .unwrap();
            assert_eq!(nearest as u32, label);
        }
        let a = env
            .lifetime(&mut stream(1, 0, 5, Purpose::Learn), 40)
            .unwrap();
        let b = env
            .lifetime(&mut stream(1, 0, 5, Purpose::Learn), 40)
            .unwrap();
        let c = env
            .lifetime(&mut stream(1, 0, 6, Purpose::Learn), 40)
            .unwrap();
        assert_eq!(a.train, b.train);
        assert_ne!(a.train, c.train);
        assert_eq!(a.train.len(), 40);
        assert!(
            Arc::ptr_eq(&a.heldout, &c.heldout),
            "the held-out set is shared, not copied"
        );
    }

    #[test]
    fn teacher_targets_follow_the_teacher() {
        let env = TeacherNetwork::new(5, 7, 2, 0.0, false, 50, 3).unwrap();
        let life = env
            .lifetime(&mut stream(2, 0, 0, Purpose::Learn), 10)
            .unwrap();
        let Batch::Dense { n, x, y } = &life.train else {
            panic!("dense")
        };
        assert_eq!(*n, 10);
        for (xi, yi) in x.chunks_exact(5).zip(y.chunks_exact(2)) {
            assert_eq!(env.teach(xi), yi);
        }
        let classes = TeacherNetwork::new(5, 7, 3, 0.0, true, 50, 3).unwrap();
        assert_eq!(
            classes.task(),
            Task::Classification {
                inputs: 5,
                classes: 3
            }
        );
        assert!(TeacherNetwork::new(5, 7, 1, 0.0, true, 50, 3).is_err());
    }
}
