//! Paired comparisons over seeds: conditions of one experiment share their
//! seeds (the same founders, the same data streams), so a condition is
//! compared with the baseline seed by seed. The per-seed differences carry
//! the comparison: their mean, standard error, a 95% Student-t interval and
//! the sign count ("higher in 16 of 20 seeds"). Where seeds vary a lot but
//! conditions move together, the paired standard error is far smaller than
//! the unpaired one (`sqrt(se_a^2 + se_b^2)`).

/// A condition against the baseline over the seeds both have a value for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    /// Mean over seeds of (condition - baseline).
    pub mean: f64,
    /// Standard error of that mean; `None` with fewer than two seeds.
    pub se: Option<f64>,
    /// The 95% confidence interval, `mean ± t(0.975, n - 1) se`; `None`
    /// with fewer than two seeds.
    pub ci: Option<(f64, f64)>,
    /// Seeds with a value in both conditions.
    pub n: usize,
    /// Seeds where the condition's value is above the baseline's.
    pub higher: usize,
    /// Seeds where it is below.
    pub lower: usize,
}

impl Paired {
    /// The comparison of `(baseline, condition)` pairs, one per seed;
    /// `None` when there are none.
    pub fn of(pairs: &[(f64, f64)]) -> Option<Paired> {
        let n = pairs.len();
        if n == 0 {
            return None;
        }
        let diffs: Vec<f64> = pairs.iter().map(|&(a, b)| b - a).collect();
        let mean = diffs.iter().sum::<f64>() / n as f64;
        let se = (n >= 2).then(|| {
            let ss: f64 = diffs.iter().map(|d| (d - mean) * (d - mean)).sum();
            (ss / (n - 1) as f64).sqrt() / (n as f64).sqrt()
        });
        let ci = se.map(|se| {
            let half = t_quantile(0.975, (n - 1) as f64) * se;
            (mean - half, mean + half)
        });
        Some(Paired {
            mean,
            se,
            ci,
            n,
            higher: diffs.iter().filter(|&&d| d > 0.0).count(),
            lower: diffs.iter().filter(|&&d| d < 0.0).count(),
        })
    }
}

/// The `p` quantile of Student's t distribution with `df` degrees of
/// freedom (`0.5 < p < 1`), by bisection on its distribution function.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Student's t distribution function at `t >= 0`:
/// `1 - I_{df / (df + t^2)}(df / 2, 1 / 2) / 2`.
fn t_cdf(t: f64, df: f64) -> f64 {
    1.0 - 0.5 * incomplete_beta(df / (df + t * t), 0.5 * df, 0.5)
}

/// The regularised incomplete beta function `I_x(a, b)`, by its continued
/// fraction (Numerical Recipes, `betai` and `betacf`).
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, n = 9; about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(π x).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // t(0.975, df) from standard tables.
        for (df, t) in [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (4.0, 2.776_445_105),
            (9.0, 2.262_157_163),
            (19.0, 2.093_024_054),
            (30.0, 2.042_272_456),
            (1000.0, 1.962_339_081),
        ] {
            let q = t_quantile(0.975, df);
            assert!((q - t).abs() < 1e-6, "df {df}: {q} vs {t}");
        }
        assert!((t_quantile(0.95, 5.0) - 2.015_048_373).abs() < 1e-6);
    }

    #[test]
    fn pairing_removes_the_spread_between_seeds() {
        // Seeds differ a lot; the condition is 0.1 above in every seed,
        // give or take 0.01.
        let pairs = [
            (1.0, 1.11),
            (5.0, 5.09),
            (-3.0, -2.9),
            (10.0, 10.1),
            (0.0, 0.1),
        ];
        let p = Paired::of(&pairs).unwrap();
        assert!((p.mean - 0.1).abs() < 1e-12);
        assert_eq!((p.n, p.higher, p.lower), (5, 5, 0));
        let se = p.se.unwrap();
        assert!(se < 0.01, "{se}");
        let (lo, hi) = p.ci.unwrap();
        assert!((hi - lo - 2.0 * 2.776_445_105 * se).abs() < 1e-9);
        assert!(lo > 0.0);
        let one = Paired::of(&[(1.0, 0.5)]).unwrap();
        assert_eq!((one.mean, one.se, one.ci, one.lower), (-0.5, None, None, 1));
        assert_eq!(Paired::of(&[]), None);
    }
}
