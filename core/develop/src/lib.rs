//! Development: from a genome to initial weights.
//!
//! Pure functions on row-major `f32` matrices (`rows` = outputs, `cols` =
//! inputs, as a linear layer's weight), drawing from the organism's
//! development stream:
//! - [`draw`]: a Gaussian, uniform or Kaiming draw with a gain;
//! - [`truncate_rank`]: the best rank-r approximation of a matrix (by SVD),
//!   rescaled to the Frobenius norm of the original, so that rank changes
//!   the structure of initial connectivity but not its overall scale;
//!   [`truncate_rank_aligned`] also turns its leading input direction
//!   (fully or partly) towards a given one, and [`match_radius`] rescales
//!   a truncated matrix to the draw's spectral radius instead (the control
//!   for the dynamical regime);
//! - [`dale`] and [`column_signs`]: a square recurrent matrix obeying
//!   Dale's law (each unit's outgoing weights share one sign), balanced
//!   and at the draw's norm;
//! - [`random_mask`], [`apply_mask`] and [`connectome`]: 0/1 connectivity
//!   and the sign-times-scale weights of an inherited connectome;
//! - [`CellTypes`]: a recurrent matrix sampled from a table of connection
//!   probabilities and strengths between cell classes (measured cortex);
//! - [`singular_values`], [`effective_rank_ratio`], [`entropy_rank`] and
//!   [`spectral_radius`]: what the rank experiments report about a
//!   connectivity matrix.
//!
//! This is the first piece of the lifetime-learning issue; the genes that
//! select these laws per weight matrix arrive with the models.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cell_types;
pub mod rewire;

pub use cell_types::CellTypes;

use lineage_evo::BitString;
use rand::Rng;
use rand_distr::StandardNormal;

/// A row-major matrix of weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs, the fan-in).
    pub cols: usize,
    /// `rows * cols` values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// All zeros.
    pub fn zeros(rows: usize, cols: usize) -> Matrix {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Frobenius norm.
    pub fn frobenius(&self) -> f32 {
        self.data
            .iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt() as f32
    }
}

/// How initial weights are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitLaw {
    /// `N(0, gain^2 / fan_in)`.
    Gaussian,
    /// Uniform on `[-a, a]` with `a = gain * sqrt(3 / fan_in)` (the same
    /// variance as `Gaussian`).
    Uniform,
    /// Kaiming (He) normal for ReLU layers: `N(0, 2 gain^2 / fan_in)`.
    Kaiming,
}

/// Why development failed.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum DevelopError {
    /// A rank outside `1..=min(rows, cols)`.
    #[error("rank {rank} is outside 1..={max} for a {rows}x{cols} matrix")]
    Rank {
        /// Asked rank.
        rank: usize,
        /// Largest possible rank.
        max: usize,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// An alignment direction of the wrong length, or zero.
    #[error(
        "an alignment direction for a {rows}x{cols} matrix needs {cols} values, not all zero; found {found}"
    )]
    Direction {
        /// Values given.
        found: usize,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// An alignment outside `[0, 1]`.
    #[error("an alignment is a cosine in [0, 1], found {value}")]
    Alignment {
        /// The alignment given.
        value: f64,
    },
    /// A Dale's-law fraction that leaves a square matrix of `units` units
    /// without excitatory or without inhibitory units.
    #[error(
        "an excitatory fraction of {fraction} gives {units} units no excitatory or no inhibitory unit (expected 0 < round(fraction x units) < units)"
    )]
    Dale {
        /// Fraction of excitatory units.
        fraction: f64,
        /// Units (rows and columns).
        units: usize,
    },
    /// A spectral measure of a matrix that is not square.
    #[error("a {rows}x{cols} matrix has no eigenvalues: it is not square")]
    NotSquare {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// A matrix whose spectral radius is zero cannot be rescaled to
    /// another's (a nilpotent low-rank matrix, e.g. `u v^T` with `v . u =
    /// 0`).
    #[error(
        "the matrix has spectral radius {radius:e}: it cannot be rescaled to the draw's spectral radius"
    )]
    NoRadius {
        /// Its spectral radius.
        radius: f64,
    },
    /// A matrix of norm zero (a cell-type table whose sample connected
    /// nothing) cannot be rescaled to another's norm.
    #[error("the matrix has Frobenius norm {norm:e}: it cannot be rescaled to the draw's")]
    NoNorm {
        /// Its norm.
        norm: f64,
    },
    /// A mask or sign string of the wrong length.
    #[error("a {what} of {found} bits does not fit a {rows}x{cols} matrix")]
    Shape {
        /// "mask" or "sign string".
        what: &'static str,
        /// Its length.
        found: usize,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
}

/// Draws a `rows x cols` matrix by `law` with `gain`.
pub fn draw(law: InitLaw, gain: f32, rows: usize, cols: usize, rng: &mut impl Rng) -> Matrix {
    let fan_in = cols.max(1) as f32;
    let data = match law {
        InitLaw::Gaussian | InitLaw::Kaiming => {
            let var = if law == InitLaw::Kaiming { 2.0 } else { 1.0 } * gain * gain / fan_in;
            let sd = var.sqrt();
            (0..rows * cols)
                .map(|_| sd * rng.sample::<f32, _>(StandardNormal))
                .collect()
        }
        InitLaw::Uniform => {
            let a = gain * (3.0 / fan_in).sqrt();
            (0..rows * cols)
                .map(|_| {
                    if a > 0.0 {
                        rng.random_range(-a..a)
                    } else {
                        0.0
                    }
                })
                .collect()
        }
    };
    Matrix { rows, cols, data }
}

/// The best rank-`rank` approximation of `m` (truncated SVD), rescaled to
/// `m`'s Frobenius norm.
pub fn truncate_rank(m: &Matrix, rank: usize) -> Result<Matrix, DevelopError> {
    check_rank(m, rank)?;
    let svd = to_dmatrix(m).svd(true, true);
    let (Some(u), Some(v_t)) = (svd.u, svd.v_t) else {
        unreachable!("both singular vector sets were requested")
    };
    // nalgebra sorts singular values in decreasing order.
    let mut s = svd.singular_values.clone();
    for k in rank..s.len() {
        s[k] = 0.0;
    }
    let low = &u * nalgebra::DMatrix::from_diagonal(&s) * &v_t;
    Ok(rescaled(&low, m))
}

fn check_rank(m: &Matrix, rank: usize) -> Result<(), DevelopError> {
    let max = m.rows.min(m.cols);
    if rank == 0 || rank > max {
        return Err(DevelopError::Rank {
            rank,
            max,
            rows: m.rows,
            cols: m.cols,
        });
    }
    Ok(())
}

/// `low` as a [`Matrix`] rescaled to the Frobenius norm of `like`.
fn rescaled(low: &nalgebra::DMatrix<f64>, like: &Matrix) -> Matrix {
    let norm = low.norm();
    let scale = if norm > 0.0 {
        like.frobenius() as f64 / norm
    } else {
        0.0
    };
    let mut data = Vec::with_capacity(like.rows * like.cols);
    for r in 0..like.rows {
        for c in 0..like.cols {
            data.push((low[(r, c)] * scale) as f32);
        }
    }
    Matrix {
        rows: like.rows,
        cols: like.cols,
        data,
    }
}

/// A mask in which each connection is present with probability `density`.
pub fn random_mask(rows: usize, cols: usize, density: f64, rng: &mut impl Rng) -> BitString {
    BitString::random(rows * cols, density.clamp(0.0, 1.0), rng)
}

/// Zeroes the weights the mask removes.
pub fn apply_mask(m: &mut Matrix, mask: &BitString) -> Result<(), DevelopError> {
    check(m.rows, m.cols, mask, "mask")?;
    for (i, w) in m.data.iter_mut().enumerate() {
        if !mask.get(i) {
            *w = 0.0;
        }
    }
    Ok(())
}

/// The weights of an inherited connectome: `sign * scale` where the mask
/// keeps a connection (sign bit set: positive), zero elsewhere.
pub fn connectome(
    rows: usize,
    cols: usize,
    mask: &BitString,
    signs: &BitString,
    scale: f32,
) -> Result<Matrix, DevelopError> {
    check(rows, cols, mask, "mask")?;
    check(rows, cols, signs, "sign string")?;
    let data = (0..rows * cols)
        .map(|i| match (mask.get(i), signs.get(i)) {
            (false, _) => 0.0,
            (true, true) => scale,
            (true, false) => -scale,
        })
        .collect();
    Ok(Matrix { rows, cols, data })
}

fn to_dmatrix(m: &Matrix) -> nalgebra::DMatrix<f64> {
    nalgebra::DMatrix::from_row_iterator(m.rows, m.cols, m.data.iter().map(|&x| x as f64))
}

/// Rank-`rank` truncation as [`truncate_rank`], with the leading right
/// singular vector replaced by `alignment x d + sqrt(1 - alignment^2) x
/// v_perp` (`d` the unit `direction`, `v_perp` the draw's own leading right
/// singular vector made orthogonal to `d` and normalised, or the next one
/// where that vanishes), so the matrix reads its input mostly along that
/// vector and its cosine with `direction` is `alignment`; the next
/// `rank - 1` are made orthogonal to it by Gram-Schmidt; the singular
/// values and left vectors are kept, and the result is rescaled to the
/// Frobenius norm of `m`. Alignment 1 at rank 1 gives `s_1 u_1 d^T / |d|`
/// at the norm of the draw: the "aligned low-rank" initialisation of the
/// rich/lazy experiment; alignment between 0 and 1 its "partially aligned"
/// one.
pub fn truncate_rank_aligned(
    m: &Matrix,
    rank: usize,
    direction: &[f32],
    alignment: f64,
) -> Result<Matrix, DevelopError> {
    check_rank(m, rank)?;
    if !(0.0..=1.0).contains(&alignment) {
        return Err(DevelopError::Alignment { value: alignment });
    }
    let norm_d = direction
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if direction.len() != m.cols || norm_d == 0.0 || !norm_d.is_finite() {
        return Err(DevelopError::Direction {
            found: direction.len(),
            rows: m.rows,
            cols: m.cols,
        });
    }
    let svd = to_dmatrix(m).svd(true, true);
    let (Some(u), Some(v_t)) = (svd.u, svd.v_t) else {
        unreachable!("both singular vector sets were requested")
    };
    let s = &svd.singular_values;
    let d =
        nalgebra::DVector::from_iterator(m.cols, direction.iter().map(|&x| f64::from(x) / norm_d));
    let lead = if alignment == 1.0 {
        d
    } else {
        // The draw's first right singular vector with a component off `d`.
        let perp = (0..v_t.nrows())
            .map(|j| {
                let v: nalgebra::DVector<f64> = v_t.row(j).transpose();
                &v - &d * d.dot(&v)
            })
            .find(|v| v.norm() > 1e-9)
            .map(|v| v.normalize());
        match perp {
            Some(perp) => d * alignment + perp * (1.0 - alignment * alignment).sqrt(),
            // A one-column matrix: every direction is `d`'s.
            None => d,
        }
    };
    let mut basis: Vec<nalgebra::DVector<f64>> = vec![lead];
    let mut j = 0;
    while basis.len() < rank && j < v_t.nrows() {
        let mut v: nalgebra::DVector<f64> = v_t.row(j).transpose();
        for b in &basis {
            v -= b * b.dot(&v);
        }
        let n = v.norm();
        if n > 1e-9 {
            basis.push(v / n);
        }
        j += 1;
    }
    let mut low = nalgebra::DMatrix::<f64>::zeros(m.rows, m.cols);
    for (k, v) in basis.iter().enumerate() {
        low += u.column(k) * v.transpose() * s[k];
    }
    Ok(rescaled(&low, m))
}

/// The column signs of a square `units x units` matrix under Dale's law
/// with `excitatory` the fraction of excitatory units: units
/// `0..round(excitatory x units)` are excitatory (`+1`), the rest
/// inhibitory (`-1`). Column `j` holds unit `j`'s outgoing weights (a
/// matrix is outputs x inputs), so it carries unit `j`'s sign.
pub fn column_signs(units: usize, excitatory: f64) -> Result<Vec<f32>, DevelopError> {
    let e = (excitatory * units as f64).round();
    if !(excitatory > 0.0 && excitatory < 1.0 && e >= 1.0 && e < units as f64) {
        return Err(DevelopError::Dale {
            fraction: excitatory,
            units,
        });
    }
    let e = e as usize;
    Ok((0..units).map(|j| if j < e { 1.0 } else { -1.0 }).collect())
}

/// A square draw `m` made to obey Dale's law, and its column signs
/// ([`column_signs`]): `W_ij = sign_j |m_ij|`, inhibitory columns scaled by
/// `n_E / n_I` (the excitatory over the inhibitory unit count, which is
/// `excitatory / (1 - excitatory)` where `excitatory x units` is whole) so
/// that every row's expected sum is zero, then the whole matrix rescaled to
/// `m`'s Frobenius norm (as [`truncate_rank`] does). Takes no randomness:
/// a Dale matrix and a dense one developed from one stream share the draw.
pub fn dale(m: &Matrix, excitatory: f64) -> Result<(Matrix, Vec<f32>), DevelopError> {
    if m.rows != m.cols {
        return Err(DevelopError::NotSquare {
            rows: m.rows,
            cols: m.cols,
        });
    }
    let signs = column_signs(m.cols, excitatory)?;
    let e = signs.iter().filter(|&&s| s > 0.0).count();
    let balance = e as f64 / (m.cols - e) as f64;
    let mut w = nalgebra::DMatrix::<f64>::zeros(m.rows, m.cols);
    for r in 0..m.rows {
        for (c, &sign) in signs.iter().enumerate() {
            let x = f64::from(m.data[r * m.cols + c]).abs();
            w[(r, c)] = if sign > 0.0 { x } else { -balance * x };
        }
    }
    Ok((rescaled(&w, m), signs))
}

/// Singular values, largest first.
pub fn singular_values(m: &Matrix) -> Vec<f64> {
    let mut s: Vec<f64> = to_dmatrix(m).singular_values().iter().copied().collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

/// The normalised effective rank `sum s_i / (s_1 N)`, with `N` the number
/// of singular values: 1 for an orthogonal matrix, `1/N` for rank one.
pub fn effective_rank_ratio(singular: &[f64]) -> f64 {
    match singular.first() {
        Some(&top) if top > 0.0 => singular.iter().sum::<f64>() / (top * singular.len() as f64),
        _ => 0.0,
    }
}

/// The entropy effective rank of Roy and Vetterli (2007): `exp(-sum p_i ln
/// p_i)` with `p_i = s_i / sum s`; between 1 (rank one) and N.
pub fn entropy_rank(singular: &[f64]) -> f64 {
    let total: f64 = singular.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let entropy: f64 = singular
        .iter()
        .map(|s| s / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy.exp()
}

/// `m` rescaled so that its spectral radius is `like`'s: the control for
/// rank truncation at matched Frobenius norm, which moves the spectral
/// radius (and with it the dynamical regime) along with the rank. Both
/// must be square; `m`'s radius must not be zero.
pub fn match_radius(m: &Matrix, like: &Matrix) -> Result<Matrix, DevelopError> {
    let (target, radius) = (spectral_radius(like)?, spectral_radius(m)?);
    if !radius.is_finite() || radius <= 1e-12 * target.max(1e-300) {
        return Err(DevelopError::NoRadius { radius });
    }
    let k = (target / radius) as f32;
    Ok(Matrix {
        rows: m.rows,
        cols: m.cols,
        data: m.data.iter().map(|x| x * k).collect(),
    })
}

/// `m` rescaled to `like`'s Frobenius norm; `m` must not be zero.
pub fn match_norm(m: &Matrix, like: &Matrix) -> Result<Matrix, DevelopError> {
    let norm = f64::from(m.frobenius());
    if !(norm.is_finite() && norm > 0.0) {
        return Err(DevelopError::NoNorm { norm });
    }
    let k = (f64::from(like.frobenius()) / norm) as f32;
    Ok(Matrix {
        rows: m.rows,
        cols: m.cols,
        data: m.data.iter().map(|x| x * k).collect(),
    })
}

/// The largest modulus of an eigenvalue of a square matrix (its spectral
/// radius), which sets the dynamical regime of a recurrent network.
pub fn spectral_radius(m: &Matrix) -> Result<f64, DevelopError> {
    if m.rows != m.cols {
        return Err(DevelopError::NotSquare {
            rows: m.rows,
            cols: m.cols,
        });
    }
    Ok(to_dmatrix(m)
        .complex_eigenvalues()
        .iter()
        .map(|z| z.norm())
        .fold(0.0, f64::max))
}

fn check(
    rows: usize,
    cols: usize,
    bits: &BitString,
    what: &'static str,
) -> Result<(), DevelopError> {
    if bits.len() != rows * cols {
        return Err(DevelopError::Shape {
            what,
            found: bits.len(),
            rows,
            cols,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_evo::rng::{Purpose, stream};

    fn variance(m: &Matrix) -> f64 {
        let n = m.data.len() as f64;
        let mean = m.data.iter().map(|&x| x as f64).sum::<f64>() / n;
        m.data
            .iter()
            .map(|&x| (x as f64 - mean).powi(2))
            .sum::<f64>()
            / n
    }

    #[test]
    fn aligned_rank_one_reads_along_the_direction_at_the_draws_norm() {
        let mut rng = <rand_xoshiro::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(11);
        let m = draw(InitLaw::Gaussian, 1.25, 12, 8, &mut rng);
        let d: Vec<f32> = (0..8).map(|i| if i < 4 { 1.0 } else { -0.5 }).collect();
        for rank in [1, 3] {
            let a = truncate_rank_aligned(&m, rank, &d, 1.0).unwrap();
            assert!((a.frobenius() - m.frobenius()).abs() < 1e-4 * m.frobenius());
            let s = singular_values(&a);
            assert!(s[rank] < 1e-4 * s[0], "rank {rank}: {s:?}");
            if rank == 1 {
                // Every row is a multiple of d.
                let nd = d.iter().map(|x| x * x).sum::<f32>().sqrt();
                for row in a.data.chunks(8) {
                    let nr = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                    let cos = row.iter().zip(&d).map(|(x, y)| x * y).sum::<f32>() / (nr * nd);
                    assert!(cos.abs() > 0.9999, "{cos}");
                }
            }
        }
        assert!(truncate_rank_aligned(&m, 1, &d[..7], 1.0).is_err());
        assert!(truncate_rank_aligned(&m, 1, &[0.0; 8], 1.0).is_err());
        assert_eq!(
            truncate_rank_aligned(&m, 1, &d, 1.5).unwrap_err(),
            DevelopError::Alignment { value: 1.5 }
        );
    }

    /// The leading right singular vector of `a` (unit, sign arbitrary).
    fn leading_right(a: &Matrix) -> nalgebra::DVector<f64> {
        let svd = to_dmatrix(a).svd(false, true);
        let v_t = svd.v_t.unwrap();
        let k = svd.singular_values.imax();
        v_t.row(k).transpose()
    }

    #[test]
    fn partial_alignment_sets_the_leading_direction_s_cosine() {
        let mut rng = stream(12, 0, 0, Purpose::Develop);
        let m = draw(InitLaw::Gaussian, 1.25, 16, 10, &mut rng);
        let d: Vec<f32> = (0..10).map(|i| (i as f32 * 0.7).sin() + 0.2).collect();
        let nd = d.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let d_hat = nalgebra::DVector::from_iterator(10, d.iter().map(|&x| f64::from(x) / nd));
        for rank in [1, 4] {
            for c in [0.0, 0.3, 0.5, 0.9, 1.0] {
                let a = truncate_rank_aligned(&m, rank, &d, c).unwrap();
                assert!((a.frobenius() - m.frobenius()).abs() < 1e-4 * m.frobenius());
                let s = singular_values(&a);
                assert!(s[rank] < 1e-4 * s[0], "rank {rank}: {s:?}");
                let cos = leading_right(&a).dot(&d_hat).abs();
                assert!((cos - c).abs() < 1e-5, "rank {rank}, c {c}: cosine {cos}");
            }
        }
    }

    #[test]
    fn dale_matrices_have_column_signs_balance_and_the_draw_s_norm() {
        let mut rng = stream(13, 0, 0, Purpose::Develop);
        let n = 200;
        let g = draw(InitLaw::Gaussian, 1.25, n, n, &mut rng);
        let (w, signs) = dale(&g, 0.8).unwrap();
        assert_eq!(signs.len(), n);
        assert!(signs[..160].iter().all(|&s| s == 1.0));
        assert!(signs[160..].iter().all(|&s| s == -1.0));
        for (k, &x) in w.data.iter().enumerate() {
            let sign = signs[k % n];
            assert!(
                sign * x >= 0.0,
                "weight {k} = {x} against its column's sign"
            );
            // The magnitude pattern is the draw's.
            assert_eq!(x == 0.0, g.data[k] == 0.0);
        }
        assert!((w.frobenius() / g.frobenius() - 1.0).abs() < 1e-5);
        // E/I balance: rows sum to zero in expectation, so their mean sum
        // is small against a row's excitatory input.
        let sums: Vec<f64> = w
            .data
            .chunks(n)
            .map(|r| r.iter().map(|&x| f64::from(x)).sum())
            .collect();
        let excitatory: f64 = w.data[..160].iter().map(|&x| f64::from(x)).sum();
        let mean = sums.iter().sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.05 * excitatory,
            "mean row sum {mean}, excitatory input {excitatory}"
        );
        // Inhibitory weights are four times the excitatory ones on average.
        let mean_abs = |cols: std::ops::Range<usize>| {
            let k = (cols.len() * n) as f64;
            w.data
                .chunks(n)
                .flat_map(|r| r[cols.clone()].iter())
                .map(|&x| f64::from(x.abs()))
                .sum::<f64>()
                / k
        };
        let ratio = mean_abs(160..n) / mean_abs(0..160);
        assert!(
            (ratio - 4.0).abs() < 0.3,
            "inhibitory / excitatory magnitude {ratio}"
        );
        assert_eq!(
            dale(&Matrix::zeros(2, 3), 0.5).unwrap_err(),
            DevelopError::NotSquare { rows: 2, cols: 3 }
        );
        for bad in [0.0, 1.0, 0.1] {
            assert_eq!(
                dale(&Matrix::zeros(4, 4), bad).unwrap_err(),
                DevelopError::Dale {
                    fraction: bad,
                    units: 4
                }
            );
        }
        assert_eq!(column_signs(5, 0.5).unwrap(), [1.0, 1.0, 1.0, -1.0, -1.0]);
    }

    #[test]
    fn laws_have_their_variances() {
        let mut rng = stream(1, 0, 0, Purpose::Develop);
        let fan_in = 100.0;
        for (law, expected) in [
            (InitLaw::Gaussian, 4.0 / fan_in),
            (InitLaw::Uniform, 4.0 / fan_in),
            (InitLaw::Kaiming, 8.0 / fan_in),
        ] {
            let m = draw(law, 2.0, 200, 100, &mut rng);
            let v = variance(&m);
            assert!(
                (v / expected - 1.0).abs() < 0.03,
                "{law:?}: variance {v}, expected {expected}"
            );
        }
    }

    #[test]
    fn radius_matching_restores_the_draws_spectral_radius() {
        let mut rng = <rand_xoshiro::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(5);
        let g = draw(InitLaw::Gaussian, 1.25, 40, 40, &mut rng);
        let full = spectral_radius(&g).unwrap();
        for rank in [1, 2, 8] {
            let t = truncate_rank(&g, rank).unwrap();
            let matched = match_radius(&t, &g).unwrap();
            let r = spectral_radius(&matched).unwrap();
            assert!((r - full).abs() < 1e-4 * full, "rank {rank}: {r} vs {full}");
            // Same direction as the truncation: only the scale moves.
            let ratio = matched.data[0] / t.data[0];
            assert!(
                matched
                    .data
                    .iter()
                    .zip(&t.data)
                    .all(|(a, b)| (a - ratio * b).abs() < 1e-5)
            );
            assert_eq!(
                singular_values(&matched)
                    .iter()
                    .filter(|&&s| s > 1e-6)
                    .count(),
                rank
            );
        }
        // u v^T with v orthogonal to u is nilpotent: no radius to scale.
        let mut nil = Matrix::zeros(2, 2);
        nil.data[1] = 1.0;
        assert!(matches!(
            match_radius(&Matrix::zeros(2, 3), &g),
            Err(DevelopError::NotSquare { .. })
        ));
        let mut g2 = Matrix::zeros(2, 2);
        g2.data[0] = 1.0;
        assert!(matches!(
            match_radius(&nil, &g2),
            Err(DevelopError::NoRadius { .. })
        ));
    }

    #[test]
    fn rank_truncation_keeps_rank_and_norm() {
        let mut rng = stream(2, 0, 0, Purpose::Develop);
        let m = draw(InitLaw::Gaussian, 1.0, 30, 20, &mut rng);
        for rank in [1, 3, 20] {
            let t = truncate_rank(&m, rank).unwrap();
            let s = singular_values(&t);
            let top = s[0];
            assert!(
                s.iter().skip(rank).all(|&x| x < 1e-4 * top),
                "rank {rank}: {s:?}"
            );
            assert!(s[rank - 1] > 1e-2 * top);
            assert!((t.frobenius() / m.frobenius() - 1.0).abs() < 1e-4);
        }
        let full = truncate_rank(&m, 20).unwrap();
        assert!(
            full.data
                .iter()
                .zip(&m.data)
                .all(|(a, b)| (a - b).abs() < 1e-4),
            "full rank is the draw itself"
        );
        assert_eq!(
            truncate_rank(&m, 21).unwrap_err(),
            DevelopError::Rank {
                rank: 21,
                max: 20,
                rows: 30,
                cols: 20
            }
        );
        assert!(truncate_rank(&m, 0).is_err());
    }

    #[test]
    fn rank_measures_of_known_matrices() {
        let n = 50;
        let mut eye = Matrix::zeros(n, n);
        (0..n).for_each(|i| eye.data[i * n + i] = 1.0);
        let s = singular_values(&eye);
        assert!((effective_rank_ratio(&s) - 1.0).abs() < 1e-9);
        assert!((entropy_rank(&s) - n as f64).abs() < 1e-6);
        assert!((spectral_radius(&eye).unwrap() - 1.0).abs() < 1e-9);
        let mut rng = stream(4, 0, 0, Purpose::Develop);
        // The science spec's G = 1.25 randn(N, N) / sqrt(N): by the circular
        // law its spectral radius is close to 1.25.
        let g = draw(InitLaw::Gaussian, 1.25, 300, 300, &mut rng);
        let radius = spectral_radius(&g).unwrap();
        assert!((radius - 1.25).abs() < 0.1, "spectral radius {radius}");
        let one = truncate_rank(&g, 1).unwrap();
        let s = singular_values(&one);
        assert!(
            (entropy_rank(&s) - 1.0).abs() < 1e-3,
            "{}",
            entropy_rank(&s)
        );
        assert!((effective_rank_ratio(&s) - 1.0 / 300.0).abs() < 1e-4);
        let thirty = singular_values(&truncate_rank(&g, 30).unwrap());
        assert!(entropy_rank(&thirty) > 20.0 && entropy_rank(&thirty) <= 30.0 + 1e-6);
        assert_eq!(
            spectral_radius(&Matrix::zeros(2, 3)).unwrap_err(),
            DevelopError::NotSquare { rows: 2, cols: 3 }
        );
    }

    #[test]
    fn masks_and_connectomes() {
        let mut rng = stream(3, 0, 0, Purpose::Develop);
        let mask = random_mask(100, 100, 0.262, &mut rng);
        let density = mask.count_ones() as f64 / 10_000.0;
        assert!((density - 0.262).abs() < 0.015, "density {density}");
        let mut m = draw(InitLaw::Gaussian, 1.0, 100, 100, &mut rng);
        apply_mask(&mut m, &mask).unwrap();
        assert_eq!(
            m.data.iter().filter(|&&x| x != 0.0).count(),
            mask.count_ones() as usize
        );
        let signs = BitString::from_words(vec![0b0101], 4);
        let small = BitString::from_words(vec![0b0111], 4);
        let c = connectome(2, 2, &small, &signs, 0.02).unwrap();
        assert_eq!(c.data, [0.02, -0.02, 0.02, 0.0]);
        let err = connectome(3, 2, &small, &signs, 0.02)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mask of 4 bits does not fit a 3x2 matrix"),
            "{err}"
        );
    }
}
