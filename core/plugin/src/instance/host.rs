//! The host's services as C trampolines: a call's [`Context`] hands a
//! plugin the [`LnHost`] table, and each service answers from the caller's
//! [`Services`], checking what the plugin asks for (organism, name, shape)
//! and catching panics at the boundary.

use std::borrow::Cow;
use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use lineage_env::Batch;
use lineage_plugin::abi::*;
use lineage_plugin::export::{panic_message, write_error};

use crate::call::{RunInput, RunRequest, RunWhat, Services, Stage, Tensor};

/// The message in an error buffer.
pub(crate) fn message(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
    if text.is_empty() {
        "(no message)".into()
    } else {
        text
    }
}

/// The state behind `LnHost::ctx` for one call.
pub(super) struct Context<'a> {
    services: &'a dyn Services,
    n: usize,
    /// Values computed for the call, kept until it returns (their heap
    /// buffers never move).
    floats: Mutex<Vec<Vec<f32>>>,
    points: Mutex<Vec<Vec<LnCurvePoint>>>,
}

impl<'a> Context<'a> {
    /// The context of a call for `n` organisms answered by `services`.
    pub(super) fn new(services: &'a dyn Services, n: usize) -> Context<'a> {
        Context {
            services,
            n,
            floats: Mutex::new(Vec::new()),
            points: Mutex::new(Vec::new()),
        }
    }

    /// The host table the plugin calls back through, pointing at this
    /// context (which must outlive the call).
    pub(super) fn table(&self) -> LnHost {
        LnHost {
            ctx: (&raw const *self).cast(),
            genome: genome_service,
            gene: gene_service,
            weights: weights_service,
            curve: curve_service,
            heldout: heldout_service,
            run: run_service,
            probes: probes_service,
        }
    }

    fn organism(&self, organism: usize) -> Result<(), String> {
        if organism < self.n {
            Ok(())
        } else {
            Err(format!(
                "organism index {organism} is out of range: the batch holds {}",
                self.n
            ))
        }
    }

    /// A pointer to `data` valid until the call returns.
    fn keep(&self, data: Cow<'_, [f32]>) -> *const f32 {
        match data {
            Cow::Borrowed(s) => s.as_ptr(),
            Cow::Owned(v) => {
                let ptr = v.as_ptr();
                self.floats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(v);
                ptr
            }
        }
    }

    fn tensor(&self, t: Tensor<'_>) -> Result<LnTensor, String> {
        if t.shape.len() > LN_MAX_RANK {
            return Err(format!(
                "tensor of rank {} exceeds {LN_MAX_RANK}",
                t.shape.len()
            ));
        }
        let mut shape = [0; LN_MAX_RANK];
        shape[..t.shape.len()].copy_from_slice(&t.shape);
        Ok(LnTensor {
            rank: t.shape.len(),
            shape,
            data: self.keep(t.data),
        })
    }
}

fn raw_tensor(data: &[f32], shape: &[usize]) -> LnTensor {
    let mut s = [0; LN_MAX_RANK];
    s[..shape.len()].copy_from_slice(shape);
    LnTensor {
        data: data.as_ptr(),
        rank: shape.len(),
        shape: s,
    }
}

/// Runs a service body: catches panics, turns errors into status and
/// message.
///
/// # Safety
/// `ctx` is the `Context` of a call in progress; `error` is null or valid.
unsafe fn serve(
    ctx: *const c_void,
    error: *mut LnError,
    body: impl FnOnce(&Context<'_>) -> Result<(), String>,
) -> LnStatus {
    // SAFETY: the caller's contract.
    let context = unsafe { &*(ctx as *const Context<'_>) };
    let result = catch_unwind(AssertUnwindSafe(|| body(context)))
        .unwrap_or_else(|p| Err(format!("the host panicked: {}", panic_message(&*p))));
    match result {
        Ok(()) => LN_OK,
        Err(m) => {
            // SAFETY: the caller's contract.
            unsafe { write_error(error, &m) };
            LN_ERROR
        }
    }
}

/// # Safety
/// `p` is a NUL-terminated string valid for the call.
unsafe fn name<'a>(p: *const c_char) -> Result<&'a str, String> {
    if p.is_null() {
        return Err("a name is null".into());
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| "a name is not UTF-8".into())
}

fn stage(raw: u32) -> Result<Stage, String> {
    match raw {
        LN_BIRTH => Ok(Stage::Birth),
        LN_LEARNED => Ok(Stage::Learned),
        s => Err(format!(
            "unknown stage {s} (LN_BIRTH = {LN_BIRTH}, LN_LEARNED = {LN_LEARNED})"
        )),
    }
}

/// Writes `value` through `out`, refusing a null pointer.
///
/// # Safety
/// `out` is null or valid for a write.
unsafe fn put<T>(out: *mut T, value: T) -> Result<(), String> {
    if out.is_null() {
        return Err("an output pointer is null".into());
    }
    // SAFETY: the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

unsafe extern "C" fn genome_service(
    ctx: *const c_void,
    organism: usize,
    out: *mut LnGenome,
    error: *mut LnError,
) -> LnStatus {
    // SAFETY: called by a plugin during a call, as the ABI defines.
    unsafe {
        serve(ctx, error, |c| {
            c.organism(organism)?;
            let g = c.services.genome(organism)?;
            put(
                out,
                LnGenome {
                    bits: g.bits().words().as_ptr(),
                    n_bits: g.bits().len(),
                    genes: g.reals().as_ptr(),
                    n_genes: g.reals().len(),
                },
            )
        })
    }
}

unsafe extern "C" fn gene_service(
    ctx: *const c_void,
    gene: *const c_char,
    offset: *mut usize,
    count: *mut usize,
    error: *mut LnError,
) -> LnStatus {
    // SAFETY: called by a plugin during a call, as the ABI defines.
    unsafe {
        serve(ctx, error, |c| {
            let (o, n) = c.services.gene(name(gene)?)?;
            put(offset, o)?;
            put(count, n)
        })
    }
}

unsafe extern "C" fn weights_service(
    ctx: *const c_void,
    organism: usize,
    weight: *const c_char,
    at: u32,
    out: *mut LnTensor,
    error: *mut LnError,
) -> LnStatus {
    // SAFETY: called by a plugin during a call, as the ABI defines.
    unsafe {
        serve(ctx, error, |c| {
            c.organism(organism)?;
            let t = c.services.weights(organism, name(weight)?, stage(at)?)?;
            put(out, c.tensor(t)?)
        })
    }
}

unsafe extern "C" fn probes_service(
    ctx: *const c_void,
    organism: usize,
    set: *const c_char,
    metric: *const c_char,
    out: *mut LnTensor,
    error: *mut LnError,
) -> LnStatus {
    // SAFETY: called by a plugin during a call, as the ABI defines.
    unsafe {
        serve(ctx, error, |c| {
            c.organism(organism)?;
            let t = c.services.probes(organism, name(set)?, name(metric)?)?;
            put(out, c.tensor(t)?)
        })
    }
}

unsafe extern "C" fn curve_service(
    ctx: *const c_void,
    organism: usize,
    out: *mut LnCurve,
    error: *mut LnError,
) -> LnStatus {
    // SAFETY: called by a plugin during a call, as the ABI defines.
    unsafe {
        serve(ctx, error, |c| {
            c.organism(organism)?;
            let curve = c.services.curve(organism)?;
            let (ptr, len) = match curve.points {
                Cow::Borrowed(p) => (p.as_ptr(), p.len()),
                Cow::Owned(v) => {
                    let r = (v.as_ptr(), v.len());
                    c.points.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                    r
                }
            };
            put(
                out,
                LnCurve {
                    points: ptr,
                    n_points: len,
                    status: curve.status,
                    diverged_at: curve.diverged_at,
                },
            )
        })
    }
}

unsafe extern "C" fn heldout_service(
    ctx: *const c_void,
    organism: usize,
    out: *mut LnData,
    error: *mut LnError,
) -> LnStatus {
    // SAFETY: called by a plugin during a call, as the ABI defines.
    unsafe {
        serve(ctx, error, |c| {
            c.organism(organism)?;
            let data = c.services.heldout(organism)?;
            put(out, describe(data))
        })
    }
}

/// The C view of a batch of data.
fn describe(batch: &Batch) -> LnData {
    let empty = raw_tensor(&[], &[]);
    let mut d = LnData {
        kind: 0,
        n: 0,
        x: empty,
        y: empty,
        labels: std::ptr::null(),
        n_labels: 0,
        tokens: std::ptr::null(),
        len: 0,
    };
    match batch {
        Batch::Dense { n, x, y } => {
            d.kind = LN_DATA_DENSE;
            d.n = *n;
            d.x = raw_tensor(x, &[*n, x.len() / n.max(&1)]);
            d.y = raw_tensor(y, &[*n, y.len() / n.max(&1)]);
        }
        Batch::Labeled { n, x, labels } => {
            d.kind = LN_DATA_LABELED;
            d.n = *n;
            d.x = raw_tensor(x, &[*n, x.len() / n.max(&1)]);
            d.labels = labels.as_ptr();
            d.n_labels = labels.len();
        }
        Batch::Sequences {
            n,
            steps,
            x,
            labels,
        } => {
            d.kind = LN_DATA_SEQUENCES;
            d.n = *n;
            d.x = raw_tensor(x, &[*n, *steps, x.len() / (n * steps).max(1)]);
            d.labels = labels.as_ptr();
            d.n_labels = labels.len();
        }
        Batch::Tokens { n, len, tokens } => {
            d.kind = LN_DATA_TOKENS;
            d.n = *n;
            d.len = *len;
            d.tokens = tokens.as_ptr();
        }
    }
    d
}

unsafe extern "C" fn run_service(
    ctx: *const c_void,
    organism: usize,
    request: *const LnRun,
    out: *mut LnTensor,
    error: *mut LnError,
) -> LnStatus {
    // SAFETY: called by a plugin during a call, as the ABI defines.
    unsafe {
        serve(ctx, error, |c| {
            c.organism(organism)?;
            let r = request.as_ref().ok_or("the request is null")?;
            let len = r.n.checked_mul(r.len).ok_or("n x len overflows")?;
            let input = match (r.x.is_null(), r.tokens.is_null()) {
                (false, true) => RunInput::Real(std::slice::from_raw_parts(r.x, len)),
                (true, false) => RunInput::Tokens(std::slice::from_raw_parts(r.tokens, len)),
                _ => return Err("give exactly one of `x` and `tokens`".into()),
            };
            let what = match r.what {
                LN_RUN_OUTPUTS => RunWhat::Outputs,
                LN_RUN_HIDDEN => RunWhat::Hidden(name(r.name)?),
                LN_RUN_GRADIENT => RunWhat::Gradient(name(r.name)?),
                LN_RUN_KERNEL => RunWhat::Kernel(name(r.name)?),
                w => return Err(format!("unknown run request {w}")),
            };
            let request = RunRequest {
                stage: stage(r.stage)?,
                what,
                n: r.n,
                len: r.len,
                input,
                cotangent: None,
            };
            // The cotangent's length is the outputs', known only after the
            // host has checked the input: ask for the outputs' shape first.
            let weighs = matches!(what, RunWhat::Gradient(_) | RunWhat::Kernel(_));
            let request = if r.cotangent.is_null() || !weighs {
                request
            } else {
                let outputs = c.services.run(
                    organism,
                    &RunRequest {
                        what: RunWhat::Outputs,
                        ..request
                    },
                )?;
                RunRequest {
                    cotangent: Some(std::slice::from_raw_parts(r.cotangent, outputs.data.len())),
                    ..request
                }
            };
            let t = c.services.run(organism, &request)?;
            put(out, c.tensor(t)?)
        })
    }
}
