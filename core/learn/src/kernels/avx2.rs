//! A small-matrix GEMM kernel for AVX2 + FMA: `C (+)= A B` with `B` and `C`
//! row-major and `A` of any strides.
//!
//! The population path multiplies matrices of a few dozen to a few hundred
//! rows and columns, one organism at a time, with every operand in L1 or
//! L2. There the `gemm` crate reaches about half of the core's peak (36-40
//! GFLOP/s of 78 on the 64 x 128 x 64 products of the benchmark MLP,
//! measured on the 2-core Zen 3 machine) because it packs both operands on
//! every call. This kernel packs nothing: it walks `B` in 16-column strips
//! (which stay in L1 across the whole of `A`) and keeps a 6 x 16 block of
//! `C` in twelve registers, broadcasting one element of `A` per row and
//! step of `k`. Column tails use masked loads and stores.

use std::arch::x86_64::*;

/// True when this CPU can run the kernel.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `c[m x n] (+)= a b`, `a[i, p] = a[i * a_rs + p * a_cs]`, `b` row-major
/// `k x n`, `c` row-major `m x n`.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`]); `a` must hold every
/// element its strides address, `b` at least `k * n` and `c` at least
/// `m * n` values.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    c: *mut f32,
    accumulate: bool,
) {
    let mut j = 0;
    while j < n {
        let width = (n - j).min(16);
        let mut i = 0;
        while i + 6 <= m {
            // SAFETY: rows i..i+6 and columns j..j+width are in bounds.
            unsafe {
                block::<6>(
                    n,
                    k,
                    a.add(i * a_rs),
                    a_rs,
                    a_cs,
                    b.add(j),
                    c.add(i * n + j),
                    width,
                    accumulate,
                )
            };
            i += 6;
        }
        // SAFETY: as above, for the remaining rows.
        unsafe {
            match m - i {
                0 => {}
                1 => block::<1>(
                    n,
                    k,
                    a.add(i * a_rs),
                    a_rs,
                    a_cs,
                    b.add(j),
                    c.add(i * n + j),
                    width,
                    accumulate,
                ),
                2 => block::<2>(
                    n,
                    k,
                    a.add(i * a_rs),
                    a_rs,
                    a_cs,
                    b.add(j),
                    c.add(i * n + j),
                    width,
                    accumulate,
                ),
                3 => block::<3>(
                    n,
                    k,
                    a.add(i * a_rs),
                    a_rs,
                    a_cs,
                    b.add(j),
                    c.add(i * n + j),
                    width,
                    accumulate,
                ),
                4 => block::<4>(
                    n,
                    k,
                    a.add(i * a_rs),
                    a_rs,
                    a_cs,
                    b.add(j),
                    c.add(i * n + j),
                    width,
                    accumulate,
                ),
                _ => block::<5>(
                    n,
                    k,
                    a.add(i * a_rs),
                    a_rs,
                    a_cs,
                    b.add(j),
                    c.add(i * n + j),
                    width,
                    accumulate,
                ),
            }
        }
        j += 16;
    }
}

/// Lane masks for the first `w` of 8 lanes.
#[inline(always)]
unsafe fn mask(w: usize) -> __m256i {
    const LANES: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 - w.min(8) + 8 <= 16.
    unsafe { _mm256_loadu_si256(LANES.as_ptr().add(8 - w.min(8)) as *const __m256i) }
}

/// One `R x width` block of `c` (`width <= 16`), all of `k`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn block<const R: usize>(
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    c: *mut f32,
    width: usize,
    accumulate: bool,
) {
    // SAFETY (whole body): the caller keeps every address in bounds; masked
    // lanes are neither read nor written.
    unsafe {
        let full = width == 16;
        let (m0, m1) = (mask(width), mask(width.saturating_sub(8)));
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        if accumulate {
            for r in 0..R {
                let row = c.add(r * n);
                if full {
                    acc[r] = [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))];
                } else {
                    acc[r] = [
                        _mm256_maskload_ps(row, m0),
                        _mm256_maskload_ps(row.add(8), m1),
                    ];
                }
            }
        }
        for p in 0..k {
            let brow = b.add(p * n);
            let (b0, b1) = if full {
                (_mm256_loadu_ps(brow), _mm256_loadu_ps(brow.add(8)))
            } else {
                (
                    _mm256_maskload_ps(brow, m0),
                    _mm256_maskload_ps(brow.add(8), m1),
                )
            };
            for r in 0..R {
                let av = _mm256_broadcast_ss(&*a.add(r * a_rs + p * a_cs));
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
        }
        for r in 0..R {
            let row = c.add(r * n);
            if full {
                _mm256_storeu_ps(row, acc[r][0]);
                _mm256_storeu_ps(row.add(8), acc[r][1]);
            } else {
                _mm256_maskstore_ps(row, m0, acc[r][0]);
                _mm256_maskstore_ps(row.add(8), m1, acc[r][1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_product_for_every_edge() {
        if !available() {
            return;
        }
        for &(m, n, k) in &[
            (1, 1, 1),
            (6, 16, 3),
            (7, 10, 5),
            (13, 33, 17),
            (64, 128, 64),
            (10, 128, 64),
        ] {
            for transposed in [false, true] {
                for accumulate in [false, true] {
                    let a: Vec<f32> = (0..m * k)
                        .map(|x| ((x * 7 % 13) as f32 - 6.0) * 0.25)
                        .collect();
                    let b: Vec<f32> = (0..k * n)
                        .map(|x| ((x * 5 % 11) as f32 - 5.0) * 0.5)
                        .collect();
                    let (a_rs, a_cs) = if transposed { (1, m) } else { (k, 1) };
                    let mut c: Vec<f32> = (0..m * n).map(|x| x as f32 * 0.125).collect();
                    let mut want = c.clone();
                    for i in 0..m {
                        for j in 0..n {
                            let s: f32 =
                                (0..k).map(|p| a[i * a_rs + p * a_cs] * b[p * n + j]).sum();
                            want[i * n + j] = if accumulate { want[i * n + j] + s } else { s };
                        }
                    }
                    // SAFETY: the CPU has AVX2 and FMA; the buffers hold m*k, k*n, m*n values.
                    unsafe {
                        gemm(
                            m,
                            n,
                            k,
                            a.as_ptr(),
                            a_rs,
                            a_cs,
                            b.as_ptr(),
                            c.as_mut_ptr(),
                            accumulate,
                        )
                    };
                    for (x, y) in c.iter().zip(&want) {
                        assert!(
                            (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                            "{m}x{n}x{k} t={transposed} acc={accumulate}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}
