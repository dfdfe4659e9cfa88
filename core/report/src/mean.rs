//! A running mean of finite values: what reading the records
//! (`read`) and comparing conditions (`stats`) both accumulate. Built on
//! nothing else in the crate.

/// A running mean of the finite values added.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mean {
    sum: f64,
    n: usize,
}

impl Mean {
    /// Adds `x` if it is finite.
    pub fn add(&mut self, x: f64) {
        if x.is_finite() {
            self.sum += x;
            self.n += 1;
        }
    }

    /// The mean; `None` before any finite value.
    pub fn value(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}
