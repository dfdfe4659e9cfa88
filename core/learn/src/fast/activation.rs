//! Nonlinearities of the fast paths, forward and backward, as loops over
//! slices compiled for AVX2 where the CPU has it ([`wide`]), and a
//! branch-free `expf` so that GELU loops vectorise.

use crate::kernels::wide;
use crate::spec::Activation;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

pub(crate) fn activate(act: Activation, z: &[f32], a: &mut [f32]) {
    wide(|| activate_portable(act, z, a));
}

#[inline(always)]
fn activate_portable(act: Activation, z: &[f32], a: &mut [f32]) {
    match act {
        Activation::Relu => a.iter_mut().zip(z).for_each(|(a, &z)| *a = z.max(0.0)),
        Activation::Tanh => a.iter_mut().zip(z).for_each(|(a, &z)| *a = z.tanh()),
        Activation::Linear => a.copy_from_slice(z),
        // 0.5 z (1 + tanh u) = z sigmoid(2u), on `exp` below, which
        // vectorises (libm's `tanhf` does not, and dominated a transformer
        // step).
        Activation::Gelu => a.iter_mut().zip(z).for_each(|(a, &z)| {
            let u = SQRT_2_OVER_PI * (z + GELU_C * z * z * z);
            *a = z / (1.0 + exp(-2.0 * u));
        }),
    }
}

/// `d *= act'(z)` given the pre-activation `z` and activation `a`.
pub(crate) fn activate_backward(act: Activation, z: &[f32], a: &[f32], d: &mut [f32]) {
    wide(|| activate_backward_portable(act, z, a, d));
}

#[inline(always)]
fn activate_backward_portable(act: Activation, z: &[f32], a: &[f32], d: &mut [f32]) {
    match act {
        // Branch-free so that it vectorises.
        Activation::Relu => d
            .iter_mut()
            .zip(z)
            .for_each(|(d, &z)| *d = if z > 0.0 { *d } else { 0.0 }),
        Activation::Tanh => d.iter_mut().zip(a).for_each(|(d, &a)| *d *= 1.0 - a * a),
        Activation::Linear => {}
        // With s = sigmoid(2u) = (1 + tanh u) / 2: d/dz = s + 2 z s (1 - s) u'.
        Activation::Gelu => d.iter_mut().zip(z).for_each(|(d, &z)| {
            let u = SQRT_2_OVER_PI * (z + GELU_C * z * z * z);
            let s = 1.0 / (1.0 + exp(-2.0 * u));
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * z * z);
            *d *= s + 2.0 * z * s * (1.0 - s) * du;
        }),
    }
}

/// `e^x` to about 1 ulp (Cephes' `expf`: `x = n ln 2 + r`, a degree-6
/// polynomial in `r`, times `2^n` built in the exponent bits), written
/// without calls or branches so that loops over it vectorise. Saturates
/// below -87.3 (to about 1e-38) and above 88.3 (to about 2e38).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}
