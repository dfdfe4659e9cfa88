//! Few-shot sinusoid regression (Finn et al. 2017; the Baldwin-effect
//! experiment of Fernando et al. 2018): every lifetime is a new task.

use std::f32::consts::PI;
use std::sync::Arc;

use rand::{Rng, RngCore};

use crate::{Batch, EnvError, Environment, Lifetime, Task, invalid};

/// `y = a sin(x - phase)` with amplitude `a ~ U[0.1, 5]`, phase
/// `~ U[0, pi]` and `x ~ U[-5, 5]`, drawn afresh for every lifetime: the
/// training set is the `budget` shots and the held-out set `heldout` other
/// points of the same sinusoid.
#[derive(Clone, Debug)]
pub struct Sinusoids {
    heldout: usize,
}

impl Sinusoids {
    /// Amplitude range.
    pub const AMPLITUDE: (f32, f32) = (0.1, 5.0);
    /// Input range.
    pub const X: (f32, f32) = (-5.0, 5.0);

    /// Sinusoid tasks scored on `heldout` points each.
    pub fn new(heldout: usize) -> Result<Self, EnvError> {
        if heldout == 0 {
            return Err(invalid("sinusoids", "needs at least one held-out point"));
        }
        Ok(Sinusoids { heldout })
    }

    fn points(rng: &mut dyn RngCore, n: usize, amplitude: f32, phase: f32) -> Batch {
        let x: Vec<f32> = (0..n)
            .map(|_| rng.random_range(Self::X.0..=Self::X.1))
            .collect();
        let y = x.iter().map(|&v| amplitude * (v - phase).sin()).collect();
        Batch::Dense { n, x, y }
    }
}

impl Environment for Sinusoids {
    fn name(&self) -> &str {
        "sinusoids"
    }

    fn task(&self) -> Task {
        Task::Regression {
            inputs: 1,
            outputs: 1,
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        let amplitude = rng.random_range(Self::AMPLITUDE.0..=Self::AMPLITUDE.1);
        let phase = rng.random_range(0.0..=PI);
        let train = Self::points(rng, budget, amplitude, phase);
        let heldout = Arc::new(Self::points(rng, self.heldout, amplitude, phase));
        Ok(Lifetime { train, heldout })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_evo::rng::{Purpose, stream};

    #[test]
    fn each_lifetime_is_one_sinusoid_in_range() {
        let env = Sinusoids::new(20).unwrap();
        let mut amplitudes = Vec::new();
        for organism in 0..200 {
            let life = env
                .lifetime(&mut stream(4, 0, organism, Purpose::Learn), 10)
                .unwrap();
            let (Batch::Dense { x, y, .. }, Batch::Dense { x: hx, y: hy, .. }) =
                (&life.train, &*life.heldout)
            else {
                panic!("dense batches")
            };
            assert_eq!((x.len(), hx.len()), (10, 20));
            assert!(x.iter().chain(hx).all(|v| (-5.0..=5.0).contains(v)));
            let peak = y.iter().chain(hy).fold(0f32, |m, v| m.max(v.abs()));
            assert!(peak <= 5.0 + 1e-5);
            amplitudes.push(peak);
        }
        // Tasks differ between organisms: peaks spread over the range.
        let (lo, hi) = amplitudes
            .iter()
            .fold((f32::MAX, 0f32), |(lo, hi), &a| (lo.min(a), hi.max(a)));
        assert!(lo < 1.0 && hi > 4.0, "peaks from {lo} to {hi}");
        assert!(Sinusoids::new(0).is_err());
    }
}
