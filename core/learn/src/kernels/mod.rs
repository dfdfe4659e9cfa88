//! The floor every CPU path stands on, and every `unsafe` line of this
//! crate: the calls into the `gemm` crate and the AVX2+FMA small-GEMM
//! kernel (`avx2`) behind [`matmul`]; [`wide`], which runs safe code
//! compiled for AVX2 where the CPU has it; [`features`], the CPU features
//! that choose code paths. The crate denies `unsafe` everywhere else
//! (`lib.rs`), so a reviewer reads this folder and nothing more.
//!
//! Built on nothing else in the crate.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;

use gemm::Parallelism;

/// A row-major or transposed view of a matrix for [`matmul`].
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// Stride between rows.
    pub(crate) rs: usize,
    /// Stride between columns.
    pub(crate) cs: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows x cols` matrix.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of the row-major `rows x cols` matrix in `data`.
    pub(crate) fn transposed(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View {
            data,
            rows: cols,
            cols: rows,
            rs: 1,
            cs: cols,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a b` (or `dst += a b` with `accumulate`), `dst` row-major
/// `a.rows x b.cols`, on the calling thread.
pub(crate) fn matmul(dst: &mut [f32], a: View, b: View, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && a.fits() && b.fits() && dst.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // The kernel beats the `gemm` crate on these sizes only where `B` is
    // row-major and at least two 16-column strips wide (measured; see
    // `kernel`).
    if b.cs == 1 && b.rs == n && n >= 32 && crate::kernels::avx2::available() {
        // SAFETY: the CPU has AVX2 and FMA; `fits` bounds `a`, `b` is a
        // row-major k x n view inside its slice, `dst` holds m * n values.
        unsafe {
            crate::kernels::avx2::gemm(
                m,
                n,
                k,
                a.data.as_ptr(),
                a.rs,
                a.cs,
                b.data.as_ptr(),
                dst.as_mut_ptr(),
                accumulate,
            )
        };
        return;
    }
    // SAFETY: `fits` bounds every element the views address inside their
    // slices, `dst` holds `m * n` values, and `dst` (a unique borrow)
    // cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Runs `f` compiled for AVX2 where the CPU has it (the same IEEE
/// operations in the same order, so the same results, only wider).
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { avx2(f) };
    }
    f()
}

/// The CPU features that choose code paths here and in the `gemm` crate
/// (our AVX2+FMA kernel and AVX2 loops; `gemm`'s AVX2/FMA and AVX-512
/// micro-kernels), as the names `is_x86_feature_detected!` takes. Runs on
/// machines with different sets sum in different orders and may differ in
/// the last bits; the engine records this list in a run's manifest.
pub fn features() -> Vec<String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut out = Vec::new();
        macro_rules! detect {
            ($($f:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($f) {
                    out.push($f.to_owned());
                }
            )*};
        }
        detect!("avx", "avx2", "fma", "avx512f");
        out
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}
