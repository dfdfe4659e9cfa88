//! The suite's arithmetic, free of the plugin interface: a small
//! deterministic generator, log-softmax, Pearson r, the continuation-choice
//! accuracy and cross-validated ridge regression (by Cholesky).

use crate::MIN_STATE_VARIANCE;

/// SplitMix64: the suite's own small deterministic generator (the plugin
/// depends on nothing that draws random numbers).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// An index drawn with probabilities `p` (summing to about 1).
    pub fn categorical(&mut self, p: &[f64]) -> usize {
        let mut u = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let mut last = 0;
        for (i, &q) in p.iter().enumerate() {
            if q > 0.0 {
                last = i;
                if u < q {
                    return i;
                }
                u -= q;
            }
        }
        last
    }
}

/// `ln softmax(logits)`, in `f64`.
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .map(|&x| x as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let log_sum = logits
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    logits.iter().map(|&x| x as f64 - log_sum).collect()
}

/// Pearson's correlation of `x` and `y`; `None` when either is constant
/// (or they hold fewer than two values).
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Fraction of positions where the true continuation has the highest
/// `log_prob(position, token)` of the four candidates (the target and its
/// three distractors); a tie shares the credit (`1 / tied`).
pub fn choice_accuracy(
    targets: &[u32],
    distractors: &[[u32; 3]],
    log_prob: impl Fn(usize, u32) -> f64,
) -> f64 {
    let mut credit = 0.0;
    for (r, (&target, ds)) in targets.iter().zip(distractors).enumerate() {
        let own = log_prob(r, target);
        let others: Vec<f64> = ds.iter().map(|&d| log_prob(r, d)).collect();
        if others.iter().any(|&o| o > own) {
            continue;
        }
        let tied = others.iter().filter(|&&o| o == own).count();
        credit += 1.0 / (1 + tied) as f64;
    }
    credit / targets.len().max(1) as f64
}

/// Cross-validated ridge regression from features `x` (`[rows, features]`)
/// to targets `y` (`[rows, targets]`): the mean held-out Pearson r.
///
/// Rows are grouped (`group[r]`, `0..groups`, e.g. the window a position
/// comes from) and fold `f` holds the groups `f * groups / folds ..
/// (f + 1) * groups / folds`, so no group is split between training and
/// test. For each fold: the features are standardised with the training
/// rows' mean and standard deviation (a constant feature becomes 0), the
/// weights are `B = (Z'Z + lambda I)^-1 Z'(Y - mean(Y))` with an
/// unpenalised intercept `mean(Y)` (the training rows' means), by a
/// Cholesky solve; every target whose variance over the fold's test rows
/// is at least [`MIN_STATE_VARIANCE`] contributes the Pearson r between
/// its predicted and true values there (0 when the prediction is
/// constant). The result is the mean over those (fold, target) pairs;
/// `None` when there is none.
pub fn ridge_cv(
    x: &[f64],
    features: usize,
    y: &[f64],
    targets: usize,
    group: &[usize],
    groups: usize,
    folds: usize,
    lambda: f64,
) -> Option<f64> {
    let rows = group.len();
    let p = features;
    let fold_of = |r: usize| group[r] * folds / groups.max(1);
    let (mut total, mut count) = (0.0, 0usize);
    for f in 0..folds {
        let train: Vec<usize> = (0..rows).filter(|&r| fold_of(r) != f).collect();
        let test: Vec<usize> = (0..rows).filter(|&r| fold_of(r) == f).collect();
        if train.len() < 2 || test.len() < 2 {
            continue;
        }
        let nt = train.len() as f64;
        let mut mean = vec![0.0; p];
        for &r in &train {
            for (m, v) in mean.iter_mut().zip(&x[r * p..(r + 1) * p]) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= nt);
        let mut scale = vec![0.0; p];
        for &r in &train {
            for k in 0..p {
                let d = x[r * p + k] - mean[k];
                scale[k] += d * d;
            }
        }
        for s in &mut scale {
            let sd = (*s / nt).sqrt();
            *s = if sd > 1e-12 { 1.0 / sd } else { 0.0 };
        }
        let z = |r: usize| -> Vec<f64> {
            (0..p)
                .map(|k| (x[r * p + k] - mean[k]) * scale[k])
                .collect()
        };
        let mut y_mean = vec![0.0; targets];
        for &r in &train {
            for (m, v) in y_mean.iter_mut().zip(&y[r * targets..(r + 1) * targets]) {
                *m += v;
            }
        }
        y_mean.iter_mut().for_each(|m| *m /= nt);
        // Normal equations.
        let mut gram = vec![0.0; p * p];
        let mut cross = vec![0.0; p * targets];
        for &r in &train {
            let zr = z(r);
            for i in 0..p {
                let zi = zr[i];
                if zi == 0.0 {
                    continue;
                }
                for j in 0..=i {
                    gram[i * p + j] += zi * zr[j];
                }
                for q in 0..targets {
                    cross[i * targets + q] += zi * (y[r * targets + q] - y_mean[q]);
                }
            }
        }
        for i in 0..p {
            for j in 0..i {
                gram[j * p + i] = gram[i * p + j];
            }
            gram[i * p + i] += lambda;
        }
        let weights = cholesky_solve(&mut gram, p, &cross, targets)?;
        let mut predicted = vec![0.0; test.len() * targets];
        for (t, &r) in test.iter().enumerate() {
            let zr = z(r);
            for q in 0..targets {
                predicted[t * targets + q] = y_mean[q]
                    + (0..p)
                        .map(|k| zr[k] * weights[k * targets + q])
                        .sum::<f64>();
            }
        }
        for q in 0..targets {
            let truth: Vec<f64> = test.iter().map(|&r| y[r * targets + q]).collect();
            let m = truth.iter().sum::<f64>() / truth.len() as f64;
            let var = truth.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / truth.len() as f64;
            if var < MIN_STATE_VARIANCE {
                continue;
            }
            let pred: Vec<f64> = (0..test.len())
                .map(|t| predicted[t * targets + q])
                .collect();
            total += pearson(&pred, &truth).unwrap_or(0.0);
            count += 1;
        }
    }
    (count > 0).then(|| total / count as f64)
}

/// Solves `A X = B` for symmetric positive definite `a` (`n x n`, row-major,
/// overwritten by its Cholesky factor) and `b` (`n x m`); `None` when `a`
/// is not positive definite.
pub(crate) fn cholesky_solve(a: &mut [f64], n: usize, b: &[f64], m: usize) -> Option<Vec<f64>> {
    // A = L L', L in the lower triangle of `a`.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    let mut x = b.to_vec();
    for c in 0..m {
        // L y = b.
        for i in 0..n {
            let mut s = x[i * m + c];
            for k in 0..i {
                s -= a[i * n + k] * x[k * m + c];
            }
            x[i * m + c] = s / a[i * n + i];
        }
        // L' x = y.
        for i in (0..n).rev() {
            let mut s = x[i * m + c];
            for k in i + 1..n {
                s -= a[k * n + i] * x[k * m + c];
            }
            x[i * m + c] = s / a[i * n + i];
        }
    }
    Some(x)
}
