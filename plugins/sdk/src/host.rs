//! The plugin's side of the host services: [`Batch`] wraps the C call and
//! the host's function table in safe methods.

use std::ffi::{CStr, CString, c_char};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Error;
use crate::abi::*;

/// Room for a host service's error message.
const SERVICE_ERROR_CAPACITY: usize = 1024;

/// One batch of organisms to score, and the host's services for it.
///
/// Organisms are addressed by their index in the batch, `0..len()`; their
/// ids are [`Batch::ids`]. Everything a service returns borrows the batch's
/// lifetime: it stays valid until `evaluate` returns.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    call: &'a LnCall,
    host: &'a LnHost,
    ids: &'a [u64],
    /// Set by [`Batch::unfit`]: the call's error means bad input.
    unfit: &'a AtomicBool,
}

// SAFETY: the ABI contract makes every host service callable from any
// thread during the call, and the batch only hands out shared views.
unsafe impl Send for Batch<'_> {}
unsafe impl Sync for Batch<'_> {}

/// Weights at birth or after learning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// After development, before learning.
    Birth,
    /// At the end of the lifetime.
    Learned,
}

impl Stage {
    fn raw(self) -> u32 {
        match self {
            Stage::Birth => LN_BIRTH,
            Stage::Learned => LN_LEARNED,
        }
    }
}

/// An organism's genome.
#[derive(Clone, Copy, Debug)]
pub struct Genome<'a> {
    /// Bits packed in 64-bit words (bit `i`: word `i / 64`, position
    /// `i % 64`).
    pub bits: &'a [u64],
    /// Number of bits.
    pub n_bits: usize,
    /// Real-valued genes.
    pub genes: &'a [f64],
}

impl Genome<'_> {
    /// Bit `i`.
    pub fn bit(&self, i: usize) -> bool {
        i < self.n_bits && self.bits[i / 64] >> (i % 64) & 1 == 1
    }

    /// Number of one bits.
    pub fn ones(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// A host-owned tensor: row-major `f32` values and their shape.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// The values.
    pub data: &'a [f32],
    rank: usize,
    dims: [usize; LN_MAX_RANK],
}

impl<'a> TensorView<'a> {
    /// The extents.
    pub fn shape(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// # Safety
    /// `t.data` points to the product of its shape's values, valid for `'a`.
    unsafe fn from_raw(t: &LnTensor) -> Result<TensorView<'a>, Error> {
        if t.rank > LN_MAX_RANK {
            return Err(Error(format!("host returned a tensor of rank {}", t.rank)));
        }
        let len: usize = t.shape[..t.rank].iter().product();
        let data = if len == 0 || t.data.is_null() {
            &[][..]
        } else {
            // SAFETY: the caller's contract.
            unsafe { std::slice::from_raw_parts(t.data, len) }
        };
        Ok(TensorView {
            data,
            rank: t.rank,
            dims: t.shape,
        })
    }
}

/// One point of a learning curve: optimiser steps, mean training loss since
/// the previous point, held-out loss.
pub type CurvePoint = LnCurvePoint;

/// How a lifetime ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// The organism did not learn (no `[lifetime]`).
    None,
    /// Every step ran and the final held-out loss is finite.
    Completed,
    /// The loss became NaN or infinite at this step.
    Diverged {
        /// 0-based step.
        step: u32,
    },
}

/// An organism's learning curve.
#[derive(Clone, Copy, Debug)]
pub struct Curve<'a> {
    /// Birth, every `eval_every` steps, and the end.
    pub points: &'a [CurvePoint],
    /// How the lifetime ended.
    pub life: Life,
}

/// Held-out data.
#[derive(Clone, Copy, Debug)]
pub enum Data<'a> {
    /// Regression: `x` `[n, inputs]`, `y` `[n, outputs]`.
    Dense {
        /// Inputs.
        x: TensorView<'a>,
        /// Targets.
        y: TensorView<'a>,
    },
    /// Classification: `x` `[n, inputs]`, one label per example.
    Labeled {
        /// Inputs.
        x: TensorView<'a>,
        /// Labels.
        labels: &'a [u32],
    },
    /// Sequences: `x` `[n, steps, inputs]`, labels `[n, steps]`
    /// ([`LN_IGNORE`] where not scored).
    Sequences {
        /// Inputs.
        x: TensorView<'a>,
        /// Labels.
        labels: &'a [u32],
    },
    /// Token windows `[n, len]`: a model reads the first `len - 1` tokens
    /// and predicts each next one.
    Tokens {
        /// Windows.
        n: usize,
        /// Tokens per window.
        len: usize,
        /// The tokens.
        tokens: &'a [u32],
    },
}

/// Inputs a plugin runs an organism's model on: `n` examples.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Real inputs, `[n, inputs]` or `[n, steps, inputs]`.
    Real {
        /// Values.
        x: &'a [f32],
        /// Examples.
        n: usize,
    },
    /// Token ids, `[n, context]`.
    Tokens {
        /// Tokens.
        tokens: &'a [u32],
        /// Examples.
        n: usize,
    },
}

impl<'a> Batch<'a> {
    /// Wraps a call from the host; [`Batch::unfit`] sets `unfit`.
    ///
    /// # Safety
    /// `call` and what it points to satisfy the ABI's contract.
    #[doc(hidden)]
    pub unsafe fn from_raw(call: &'a LnCall, unfit: &'a AtomicBool) -> Batch<'a> {
        // SAFETY: the contract: `host` and `ids` are valid for the call.
        unsafe {
            Batch {
                call,
                host: &*call.host,
                ids: slice(call.ids, call.n_organisms),
                unfit,
            }
        }
    }

    /// An error saying that the plugin cannot measure this run as it is
    /// set up: the scenario's model lacks a weight or layer the plugin
    /// measures, its data are of another kind, or the plugin's
    /// configuration does not fit the model. Return it from `evaluate`: the
    /// host reports it as bad input (exit status 2) whatever the scenario's
    /// `on_error` says, instead of a failure while running. Say what does
    /// not fit and which configuration key or model setting decides it.
    pub fn unfit(&self, message: impl Into<String>) -> Error {
        self.unfit.store(true, Ordering::Relaxed);
        Error::new(message)
    }

    /// The generation being evaluated.
    pub fn generation(&self) -> u32 {
        self.call.generation
    }

    /// Organisms in the batch.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The organisms' ids, ascending.
    pub fn ids(&self) -> &'a [u64] {
        self.ids
    }

    /// Organism `organism`'s genome.
    pub fn genome(&self, organism: usize) -> Result<Genome<'a>, Error> {
        let mut out = LnGenome {
            bits: std::ptr::null(),
            n_bits: 0,
            genes: std::ptr::null(),
            n_genes: 0,
        };
        // SAFETY: a host service called as the contract says.
        self.service(|ctx, e| unsafe { (self.host.genome)(ctx, organism, &mut out, e) })?;
        // SAFETY: the host's pointers are valid for the call.
        unsafe {
            Ok(Genome {
                bits: slice(out.bits, out.n_bits.div_ceil(64)),
                n_bits: out.n_bits,
                genes: slice(out.genes, out.n_genes),
            })
        }
    }

    /// Where the real genes named `name` lie in [`Genome::genes`].
    pub fn gene(&self, name: &str) -> Result<Range<usize>, Error> {
        let name = c_string(name)?;
        let (mut offset, mut count) = (0, 0);
        // SAFETY: a host service called as the contract says.
        self.service(|ctx, e| unsafe {
            (self.host.gene)(ctx, name.as_ptr(), &mut offset, &mut count, e)
        })?;
        Ok(offset..offset + count)
    }

    /// Organism `organism`'s parameter `name` (as in the model's parameter
    /// list, e.g. `layers.0.weight`) at `stage`.
    pub fn weights(
        &self,
        organism: usize,
        name: &str,
        stage: Stage,
    ) -> Result<TensorView<'a>, Error> {
        let name = c_string(name)?;
        let mut out = empty_tensor();
        // SAFETY: a host service called as the contract says.
        self.service(|ctx, e| unsafe {
            (self.host.weights)(ctx, organism, name.as_ptr(), stage.raw(), &mut out, e)
        })?;
        // SAFETY: valid for the call.
        unsafe { TensorView::from_raw(&out) }
    }

    /// Organism `organism`'s learning curve.
    pub fn curve(&self, organism: usize) -> Result<Curve<'a>, Error> {
        let mut out = LnCurve {
            points: std::ptr::null(),
            n_points: 0,
            status: LN_LIFE_NONE,
            diverged_at: 0,
        };
        // SAFETY: a host service called as the contract says.
        self.service(|ctx, e| unsafe { (self.host.curve)(ctx, organism, &mut out, e) })?;
        let life = match out.status {
            LN_LIFE_COMPLETED => Life::Completed,
            LN_LIFE_DIVERGED => Life::Diverged {
                step: out.diverged_at,
            },
            _ => Life::None,
        };
        // SAFETY: valid for the call.
        let points = unsafe { slice(out.points, out.n_points) };
        Ok(Curve { points, life })
    }

    /// Organism `organism`'s record of the environment's probe set `set`
    /// measured by `metric` (`loss`, `accuracy` or `accuracy_all`): `(step,
    /// value)` at every point of its learning curve, by step (ABI 2). An
    /// error names the sets and metrics the organism has.
    pub fn probes(
        &self,
        organism: usize,
        set: &str,
        metric: &str,
    ) -> Result<Vec<(u32, f32)>, Error> {
        let (set, metric) = (c_string(set)?, c_string(metric)?);
        let mut out = empty_tensor();
        // SAFETY: a host service called as the contract says.
        self.service(|ctx, e| unsafe {
            (self.host.probes)(ctx, organism, set.as_ptr(), metric.as_ptr(), &mut out, e)
        })?;
        // SAFETY: valid for the call.
        let t = unsafe { TensorView::from_raw(&out) }?;
        if t.shape().len() != 2 || t.shape()[1] != 2 {
            return Err(Error(format!(
                "host returned a probe record of shape {:?}, expected [n, 2]",
                t.shape()
            )));
        }
        Ok(t.data
            .chunks_exact(2)
            .map(|row| (row[0] as u32, row[1]))
            .collect())
    }

    /// The held-out data organism `organism`'s lifetime was scored on
    /// (the same buffers for every organism when the environment holds one
    /// held-out set).
    pub fn heldout(&self, organism: usize) -> Result<Data<'a>, Error> {
        let mut out = LnData {
            kind: 0,
            n: 0,
            x: empty_tensor(),
            y: empty_tensor(),
            labels: std::ptr::null(),
            n_labels: 0,
            tokens: std::ptr::null(),
            len: 0,
        };
        // SAFETY: a host service called as the contract says.
        self.service(|ctx, e| unsafe { (self.host.heldout)(ctx, organism, &mut out, e) })?;
        // SAFETY: valid for the call.
        unsafe {
            Ok(match out.kind {
                LN_DATA_DENSE => Data::Dense {
                    x: TensorView::from_raw(&out.x)?,
                    y: TensorView::from_raw(&out.y)?,
                },
                LN_DATA_LABELED => Data::Labeled {
                    x: TensorView::from_raw(&out.x)?,
                    labels: slice(out.labels, out.n_labels),
                },
                LN_DATA_SEQUENCES => Data::Sequences {
                    x: TensorView::from_raw(&out.x)?,
                    labels: slice(out.labels, out.n_labels),
                },
                LN_DATA_TOKENS => Data::Tokens {
                    n: out.n,
                    len: out.len,
                    tokens: slice(out.tokens, out.n * out.len),
                },
                k => return Err(Error(format!("host returned data of unknown kind {k}"))),
            })
        }
    }

    /// Runs organism `organism`'s model at `stage` on `input`: its outputs,
    /// `[n, outputs]` or `[n, steps, outputs]`.
    pub fn outputs(
        &self,
        organism: usize,
        stage: Stage,
        input: Input<'_>,
    ) -> Result<TensorView<'a>, Error> {
        self.run(organism, stage, LN_RUN_OUTPUTS, None, input, None)
    }

    /// The activations of layer `layer` (e.g. `hidden.0`, `hidden`,
    /// `blocks.1`) when organism `organism`'s model at `stage` reads
    /// `input`.
    pub fn hidden(
        &self,
        organism: usize,
        stage: Stage,
        layer: &str,
        input: Input<'_>,
    ) -> Result<TensorView<'a>, Error> {
        self.run(organism, stage, LN_RUN_HIDDEN, Some(layer), input, None)
    }

    /// Per-example gradients of `sum_k c[i, k] out[i, k]` with respect to
    /// the weight `weight`, `[n, rows, cols]`; `cotangent` (`c`, the
    /// outputs' shape) defaults to all ones.
    pub fn gradients(
        &self,
        organism: usize,
        stage: Stage,
        weight: &str,
        input: Input<'_>,
        cotangent: Option<&[f32]>,
    ) -> Result<TensorView<'a>, Error> {
        self.run(
            organism,
            stage,
            LN_RUN_GRADIENT,
            Some(weight),
            input,
            cotangent,
        )
    }

    /// The empirical tangent kernel `[n, n]`: entry `(i, j)` is the dot
    /// product of example `i`'s and example `j`'s gradient of
    /// `sum_k c[., k] out[., k]` with respect to `weight`, or to every
    /// parameter together for `weight = "*"`. The host computes it without
    /// handing the gradients over, so its memory is `n x n`, not
    /// `n x parameters`.
    pub fn kernel(
        &self,
        organism: usize,
        stage: Stage,
        weight: &str,
        input: Input<'_>,
        cotangent: Option<&[f32]>,
    ) -> Result<TensorView<'a>, Error> {
        self.run(
            organism,
            stage,
            LN_RUN_KERNEL,
            Some(weight),
            input,
            cotangent,
        )
    }

    fn run(
        &self,
        organism: usize,
        stage: Stage,
        what: u32,
        name: Option<&str>,
        input: Input<'_>,
        cotangent: Option<&[f32]>,
    ) -> Result<TensorView<'a>, Error> {
        let name = name.map(c_string).transpose()?;
        let (n, len, x, tokens) = match input {
            Input::Real { x, n } => (n, x.len() / n.max(1), x.as_ptr(), std::ptr::null()),
            Input::Tokens { tokens, n } => (
                n,
                tokens.len() / n.max(1),
                std::ptr::null(),
                tokens.as_ptr(),
            ),
        };
        let request = LnRun {
            what,
            stage: stage.raw(),
            name: name.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            n,
            len,
            x,
            tokens,
            cotangent: cotangent.map_or(std::ptr::null(), <[f32]>::as_ptr),
        };
        let mut out = empty_tensor();
        // SAFETY: a host service called as the contract says.
        self.service(|ctx, e| unsafe { (self.host.run)(ctx, organism, &request, &mut out, e) })?;
        // SAFETY: valid for the call.
        unsafe { TensorView::from_raw(&out) }
    }

    /// Calls a service and turns its status into a `Result`.
    ///
    /// The first call passes no error buffer (the ABI allows a null one),
    /// so success costs nothing beyond the call; only a failure is asked
    /// again, with a buffer, for its message (host services are
    /// deterministic).
    fn service(
        &self,
        mut call: impl FnMut(*const std::ffi::c_void, *mut LnError) -> LnStatus,
    ) -> Result<(), Error> {
        if call(self.host.ctx, std::ptr::null_mut()) == LN_OK {
            return Ok(());
        }
        let mut buffer = [0 as c_char; SERVICE_ERROR_CAPACITY];
        let mut error = LnError {
            message: buffer.as_mut_ptr(),
            capacity: buffer.len(),
        };
        if call(self.host.ctx, &mut error) == LN_OK {
            return Ok(());
        }
        buffer[SERVICE_ERROR_CAPACITY - 1] = 0;
        // SAFETY: NUL-terminated above at the latest.
        let message = unsafe { CStr::from_ptr(buffer.as_ptr()) };
        Err(Error(message.to_string_lossy().into_owned()))
    }
}

fn empty_tensor() -> LnTensor {
    LnTensor {
        data: std::ptr::null(),
        rank: 0,
        shape: [0; LN_MAX_RANK],
    }
}

fn c_string(s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error(format!("name {s:?} contains a NUL byte")))
}

/// # Safety
/// `ptr` points to `len` values valid for `'a` (or `len` is 0).
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}
