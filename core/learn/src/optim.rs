//! Optimisers, learning-rate schedules and gradient clipping, on plain
//! `f32` slices (the fast paths; the candle paths mirror the
//! same arithmetic with tensor operations in [`crate::models`]).
//!
//! Semantics follow PyTorch's, so a lifetime can be replayed elsewhere:
//! - SGD: `d = g + wd p; m = mu m + d; p -= lr m` (plain `p -= lr d` when
//!   `mu = 0`);
//! - Adam: `d = g + wd p` (L2 in the gradient), bias-corrected moments,
//!   `p -= lr m_hat / (sqrt(v_hat) + eps)`;
//! - AdamW: `p -= lr wd p` first (decoupled), then Adam on `g`.
//!
//! Weight decay applies to every parameter. Where a parameter carries a
//! mask, its gradient is masked before the step and its values after it,
//! so pruned weights stay exactly zero. Where it carries sign constraints
//! (Dale's law), its values are projected onto them after the step (and
//! after the mask): a weight whose sign disagrees with its constraint
//! becomes zero ([`project_signs`]); gradients are left alone.

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Stochastic gradient descent with (heavy-ball) momentum.
    Sgd,
    /// Adam with L2 weight decay in the gradient.
    Adam,
    /// Adam with decoupled weight decay.
    AdamW,
}

impl Method {
    /// Parses a scenario name.
    pub fn parse(name: &str) -> Option<Method> {
        Some(match name {
            "sgd" => Method::Sgd,
            "adam" => Method::Adam,
            "adamw" => Method::AdamW,
            _ => return None,
        })
    }

    /// Names [`Method::parse`] accepts.
    pub const NAMES: &[&str] = &["sgd", "adam", "adamw"];
}

/// How the learning rate moves over a lifetime of `steps` steps; the
/// factor multiplies the organism's learning rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// Factor 1 throughout.
    Constant,
    /// Linear warmup over `warmup` steps, hold, then linear warm-down to
    /// zero over the last `cooldown` steps (the Model Connectomes schedule).
    WarmupHoldCooldown {
        /// Warmup steps.
        warmup: u32,
        /// Warm-down steps at the end of the lifetime.
        cooldown: u32,
    },
    /// Linear warmup, then `sqrt(warmup / step)` decay.
    InverseSqrt {
        /// Warmup steps.
        warmup: u32,
    },
}

impl Schedule {
    /// The factor at 0-based step `step` of a lifetime of `steps` steps.
    pub fn factor(self, step: u32, steps: u32) -> f32 {
        let s = step as f32;
        match self {
            Schedule::Constant => 1.0,
            Schedule::WarmupHoldCooldown { warmup, cooldown } => {
                let up = if step < warmup {
                    (s + 1.0) / warmup as f32
                } else {
                    1.0
                };
                let left = steps.saturating_sub(step);
                let down = if cooldown > 0 && left <= cooldown {
                    left as f32 / cooldown as f32
                } else {
                    1.0
                };
                up.min(down)
            }
            Schedule::InverseSqrt { warmup } => {
                if step < warmup {
                    (s + 1.0) / warmup as f32
                } else {
                    (warmup.max(1) as f32 / (s + 1.0)).sqrt()
                }
            }
        }
    }
}

/// The optimiser a scenario chose, shared by the population.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerSpec {
    /// Update rule.
    pub method: Method,
    /// Adam's second-moment decay.
    pub beta2: f32,
    /// Adam's epsilon.
    pub eps: f32,
    /// Clip the organism's gradient to this global L2 norm.
    pub clip: Option<f32>,
    /// Learning-rate schedule.
    pub schedule: Schedule,
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec {
            method: Method::AdamW,
            beta2: 0.999,
            eps: 1e-8,
            clip: None,
            schedule: Schedule::Constant,
        }
    }
}

/// An organism's learning hyper-parameters (its learning genes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Base learning rate.
    pub lr: f32,
    /// SGD momentum, or Adam's first-moment decay (beta1).
    pub momentum: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// Optimiser steps in the lifetime.
    pub steps: u32,
}

/// Scale that clips gradients of global norm `norm` to `max`, as PyTorch's
/// `clip_grad_norm_` (1 when no clipping is needed).
pub fn clip_scale(norm: f32, max: f32) -> f32 {
    (max / (norm + 1e-6)).min(1.0)
}

/// One update of one parameter tensor. `t` counts steps from 1; `m` and
/// `v` are the optimiser state (zeros at birth; `v` unused by SGD).
///
/// On x86-64 CPUs with AVX2 the same code runs compiled for AVX2 (chosen
/// at run time): the arithmetic is the same IEEE operations in the same
/// order (Rust never fuses a multiply and an add on its own), so results
/// are bit-identical to the baseline build.
pub fn update(
    spec: &OptimizerSpec,
    hyper: &Hyper,
    lr: f32,
    t: u32,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    mask: Option<&[f32]>,
    signs: Option<&[f32]>,
) {
    crate::kernels::wide(|| update_portable(spec, hyper, lr, t, p, g, m, v, mask, signs));
}

/// The projection onto sign constraints: where `s * w < 0` (`s` = +1 or
/// -1), `w` becomes 0, that is `w = s max(s w, 0)`; `s = 0` leaves `w`
/// free. The candle path computes the same as `w * (s w >= 0)`.
pub fn project_signs(p: &mut [f32], signs: &[f32]) {
    for (p, &s) in p.iter_mut().zip(signs) {
        if s * *p < 0.0 {
            *p = 0.0;
        }
    }
}

#[inline(always)]
fn update_portable(
    spec: &OptimizerSpec,
    hyper: &Hyper,
    lr: f32,
    t: u32,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    mask: Option<&[f32]>,
    signs: Option<&[f32]>,
) {
    let wd = hyper.weight_decay;
    let mu = hyper.momentum;
    match spec.method {
        Method::Sgd => {
            for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                let d = g + wd * *p;
                if mu == 0.0 {
                    *p -= lr * d;
                } else {
                    *m = mu * *m + d;
                    *p -= lr * *m;
                }
            }
        }
        Method::Adam | Method::AdamW => {
            let decoupled = spec.method == Method::AdamW;
            let (b1, b2) = (mu, spec.beta2);
            let bc1 = 1.0 - b1.powi(t as i32);
            let bc2 = 1.0 - b2.powi(t as i32);
            let eps = spec.eps;
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let d = if decoupled {
                    *p -= lr * wd * *p;
                    g
                } else {
                    g + wd * *p
                };
                *m = b1 * *m + (1.0 - b1) * d;
                *v = b2 * *v + (1.0 - b2) * d * d;
                *p -= lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
            }
        }
    }
    if let Some(mask) = mask {
        for (p, &k) in p.iter_mut().zip(mask) {
            *p *= k;
        }
    }
    if let Some(signs) = signs {
        project_signs(p, signs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_have_their_shapes() {
        let s = Schedule::WarmupHoldCooldown {
            warmup: 4,
            cooldown: 10,
        };
        assert_eq!(s.factor(0, 100), 0.25);
        assert_eq!(s.factor(3, 100), 1.0);
        assert_eq!(s.factor(50, 100), 1.0);
        assert_eq!(s.factor(90, 100), 1.0);
        assert_eq!(s.factor(95, 100), 0.5);
        assert_eq!(s.factor(99, 100), 0.1);
        let r = Schedule::InverseSqrt { warmup: 4 };
        assert_eq!(r.factor(1, 100), 0.5);
        assert_eq!(r.factor(3, 100), 1.0);
        assert_eq!(r.factor(15, 100), 0.5);
    }

    #[test]
    fn sgd_momentum_and_adamw_match_hand_computation() {
        let hyper = Hyper {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            steps: 2,
        };
        let sgd = OptimizerSpec {
            method: Method::Sgd,
            ..OptimizerSpec::default()
        };
        let (mut p, mut m, mut v) = (vec![1.0f32], vec![0.0f32], vec![0.0f32]);
        update(
            &sgd,
            &hyper,
            0.1,
            1,
            &mut p,
            &[1.0],
            &mut m,
            &mut v,
            None,
            None,
        );
        update(
            &sgd,
            &hyper,
            0.1,
            2,
            &mut p,
            &[1.0],
            &mut m,
            &mut v,
            None,
            None,
        );
        // buf = 1, then 1.9: p = 1 - 0.1 - 0.19.
        assert!((p[0] - 0.71).abs() < 1e-6);

        let adamw = OptimizerSpec::default();
        let hyper = Hyper {
            weight_decay: 0.5,
            ..hyper
        };
        let (mut p, mut m, mut v) = (vec![1.0f32, 3.0], vec![0.0; 2], vec![0.0; 2]);
        update(
            &adamw,
            &hyper,
            0.1,
            1,
            &mut p,
            &[2.0, 5.0],
            &mut m,
            &mut v,
            Some(&[1.0, 0.0]),
            None,
        );
        // Decay 1 -> 0.95, then the first Adam step moves by lr * sign(g).
        assert!((p[0] - 0.85).abs() < 1e-6, "{p:?}");
        assert_eq!(p[1], 0.0, "masked weights stay zero");

        // Sign constraints: a step that crosses zero stops at zero.
        let (mut p, mut m, mut v) = (vec![0.05f32, -0.05, 0.05], vec![0.0; 3], vec![0.0; 3]);
        update(
            &sgd,
            &Hyper {
                momentum: 0.0,
                ..hyper
            },
            0.1,
            1,
            &mut p,
            &[1.0, -1.0, 1.0],
            &mut m,
            &mut v,
            None,
            Some(&[1.0, -1.0, 0.0]),
        );
        assert_eq!(p[..2], [0.0, 0.0], "{p:?}");
        assert!(
            (p[2] - (-0.05 - 0.1 * 0.5 * 0.05)).abs() < 1e-7,
            "free weights move freely: {p:?}"
        );
    }
}
