//! The measures themselves, as plain functions of row-major buffers (no
//! host calls), so that each is tested on its own.

use lineage_env::IGNORE;

/// `||a||_F`, accumulated in `f64`.
pub fn frobenius(a: &[f32]) -> f64 {
    a.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// `||a - b||_F`.
pub fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The cosine of two matrices as vectors, `<A, B>_F / (||A|| ||B||)`: the
/// alignment of two kernels or two Gram matrices. `None` when either is
/// zero (no direction to compare).
pub fn alignment(a: &[f32], b: &[f32]) -> Option<f64> {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let norms = frobenius(a) * frobenius(b);
    (norms > 0.0 && norms.is_finite()).then(|| dot / norms)
}

/// The Gram matrix `R R^T` (`[n, n]`) of `n` rows of `width` values.
pub fn gram(rows: &[f32], n: usize, width: usize) -> Vec<f32> {
    let mut g = vec![0.0f32; n * n];
    for i in 0..n {
        let a = &rows[i * width..(i + 1) * width];
        for j in 0..=i {
            let b = &rows[j * width..(j + 1) * width];
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            g[i * n + j] = dot as f32;
            g[j * n + i] = dot as f32;
        }
    }
    g
}

fn sign(x: f32) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// The fraction of entries whose sign (positive, zero, negative) is the
/// same in `a` and `b`: for ReLU units, the fraction of (trial, unit)
/// pairs whose on/off state learning left unchanged.
pub fn sign_similarity(a: &[f32], b: &[f32]) -> f64 {
    if a.is_empty() {
        return 1.0;
    }
    let same = a
        .iter()
        .zip(b)
        .filter(|(x, y)| sign(**x) == sign(**y))
        .count();
    same as f64 / a.len() as f64
}

/// Accuracy and mean cross-entropy at the decision steps: the steps whose
/// label is a choice (neither fixation, label 0, nor unscored). `outputs`
/// is `[n, steps, classes]`, `labels` `[n, steps]`. `None` when no step
/// is a decision.
pub fn decision(outputs: &[f32], labels: &[u32], classes: usize) -> Option<(f64, f64)> {
    let (mut right, mut loss, mut count) = (0usize, 0.0f64, 0usize);
    for (row, &label) in outputs.chunks_exact(classes).zip(labels) {
        if label == 0 || label == IGNORE || label as usize >= classes {
            continue;
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&z| f64::from(z - max).exp()).sum();
        loss += f64::from(max) + sum.ln() - f64::from(row[label as usize]);
        let best = row
            .iter()
            .enumerate()
            .fold(0, |b, (k, &z)| if z > row[b] { k } else { b });
        right += usize::from(best == label as usize);
        count += 1;
    }
    (count > 0).then(|| (right as f64 / count as f64, loss / count as f64))
}

/// The rows of the kernel's Jacobian as examples for the host's kernel
/// service: every output `k` at every step `t` of each of `trials`
/// sequences (`[trials, steps, inputs]` in `x`) becomes one example, the
/// sequence itself with a one-hot cotangent on `(t, k)`. Returns the
/// inputs `[trials * steps * outputs, steps, inputs]` and the cotangent
/// `[trials * steps * outputs, steps, outputs]`, row `(i * steps + t) *
/// outputs + k`.
pub fn jacobian_rows(
    x: &[f32],
    trials: usize,
    steps: usize,
    outputs: usize,
) -> (Vec<f32>, Vec<f32>) {
    let per = x.len() / trials.max(1);
    let rows = trials * steps * outputs;
    let mut inputs = Vec::with_capacity(rows * per);
    let mut cotangent = vec![0.0f32; rows * steps * outputs];
    for i in 0..trials {
        for t in 0..steps {
            for k in 0..outputs {
                let row = (i * steps + t) * outputs + k;
                inputs.extend_from_slice(&x[i * per..(i + 1) * per]);
                cotangent[row * steps * outputs + t * outputs + k] = 1.0;
            }
        }
    }
    (inputs, cotangent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_a_cosine() {
        let a = [1.0, 0.0, 0.0, 1.0];
        let same = alignment(&a, &a).unwrap();
        assert!((same - 1.0).abs() < 1e-12, "{same}");
        let scaled = alignment(&a, &[2.0, 0.0, 0.0, 2.0]).unwrap();
        assert!((scaled - 1.0).abs() < 1e-12, "{scaled}");
        assert_eq!(alignment(&a, &[0.0, 1.0, 1.0, 0.0]), Some(0.0));
        let c = alignment(&a, &[1.0, 0.0, 0.0, 0.0]).unwrap();
        assert!((c - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(alignment(&a, &[0.0; 4]), None);
    }

    #[test]
    fn gram_is_the_row_dot_products() {
        let rows = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            gram(&rows, 3, 2),
            [5.0, 11.0, 17.0, 11.0, 25.0, 39.0, 17.0, 39.0, 61.0]
        );
    }

    #[test]
    fn sign_similarity_counts_agreeing_signs() {
        assert_eq!(
            sign_similarity(&[1.0, 0.0, -2.0, 3.0], &[2.0, 0.0, 1.0, 0.0]),
            0.5
        );
    }

    #[test]
    fn decision_scores_only_choice_steps() {
        // Two trials of two steps, three classes: fixation (label 0) at
        // step 0, the choice at step 1. The first is right, the second wrong.
        let outputs = [
            9.0, 0.0, 0.0, 0.0, 2.0, 0.0, //
            9.0, 0.0, 0.0, 0.0, 2.0, 0.0,
        ];
        let labels = [0, 1, IGNORE, 2];
        let (accuracy, loss) = decision(&outputs, &labels, 3).unwrap();
        assert_eq!(accuracy, 0.5);
        let z = (2.0f64.exp() + 2.0).ln();
        assert!((loss - ((z - 2.0) + z) / 2.0).abs() < 1e-6, "{loss}");
        assert_eq!(decision(&outputs, &[0, 0, 0, IGNORE], 3), None);
    }

    #[test]
    fn jacobian_rows_put_one_output_per_row() {
        // Two trials of two steps with one input, two outputs.
        let x = [1.0, 2.0, 3.0, 4.0];
        let (inputs, cot) = jacobian_rows(&x, 2, 2, 2);
        assert_eq!(inputs.len(), 8 * 2);
        assert_eq!(&inputs[..8], &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
        assert_eq!(&inputs[8..10], &[3.0, 4.0]);
        // Row 3 is trial 0, step 1, output 1.
        assert_eq!(&cot[3 * 4..4 * 4], &[0.0, 0.0, 0.0, 1.0]);
        assert_eq!(cot.iter().sum::<f32>(), 8.0);
    }
}
