//! Configured offerings and the calls into them: the host's services as C
//! trampolines over a [`Services`] implementation, and the checks on what a
//! plugin returns.

use std::borrow::Cow;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use lineage_env::Batch;
use lineage_evo::Genome;
use lineage_plugin::abi::*;
use lineage_plugin::export::{panic_message, write_error};

use crate::library::{OfferingInfo, Plugin};
use crate::{EvalError, PluginError};

/// Room for a plugin's error message.
const ERROR_CAPACITY: usize = 4096;

/// Weights at birth or after learning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// After development, before learning.
    Birth,
    /// At the end of the lifetime.
    Learned,
}

/// A tensor a service hands out: borrowed from the host's state, or
/// computed for the call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<'a> {
    /// Row-major values.
    pub data: Cow<'a, [f32]>,
    /// Extents (at most [`LN_MAX_RANK`]).
    pub shape: Vec<usize>,
}

/// What a plugin asks the host to run an organism's model on.
#[derive(Clone, Copy, Debug)]
pub struct RunRequest<'a> {
    /// Birth or learned weights.
    pub stage: Stage,
    /// Outputs, a hidden layer, or gradients.
    pub what: RunWhat<'a>,
    /// Examples.
    pub n: usize,
    /// Values per example.
    pub len: usize,
    /// Real inputs `[n, len]`, or tokens.
    pub input: RunInput<'a>,
    /// Gradient only: output weights (the outputs' shape); `None` is all
    /// ones.
    pub cotangent: Option<&'a [f32]>,
}

/// What to return from a model run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunWhat<'a> {
    /// The outputs.
    Outputs,
    /// Activations of a named layer.
    Hidden(&'a str),
    /// Per-example gradients with respect to a named weight.
    Gradient(&'a str),
    /// The Gram matrix of those gradients (`*`: every parameter).
    Kernel(&'a str),
}

/// A model run's inputs.
#[derive(Clone, Copy, Debug)]
pub enum RunInput<'a> {
    /// Real values.
    Real(&'a [f32]),
    /// Token ids.
    Tokens(&'a [u32]),
}

/// An organism's learning curve as a service hands it out.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve<'a> {
    /// The points.
    pub points: Cow<'a, [LnCurvePoint]>,
    /// [`LN_LIFE_NONE`], [`LN_LIFE_COMPLETED`] or [`LN_LIFE_DIVERGED`].
    pub status: u32,
    /// The step where it diverged.
    pub diverged_at: u32,
}

/// What the host offers plugins about one batch of organisms (indices
/// `0..n` in batch order). Errors are messages for the plugin; every
/// default says the service is not available in this run.
pub trait Services: Sync {
    /// Organism `organism`'s genome.
    fn genome(&self, organism: usize) -> Result<&Genome, String>;
    /// Offset and count of the real genes named `name`.
    fn gene(&self, name: &str) -> Result<(usize, usize), String> {
        Err(format!("no gene `{name}`"))
    }
    /// A weight at a stage.
    fn weights(&self, organism: usize, name: &str, stage: Stage) -> Result<Tensor<'_>, String> {
        let _ = (organism, stage);
        Err(format!(
            "no weight `{name}`: organisms in this run have no model (the scenario has no [lifetime])"
        ))
    }
    /// The learning curve.
    fn curve(&self, organism: usize) -> Result<Curve<'_>, String> {
        let _ = organism;
        Ok(Curve {
            points: Cow::Borrowed(&[]),
            status: LN_LIFE_NONE,
            diverged_at: 0,
        })
    }
    /// The held-out data the organism's lifetime was scored on.
    fn heldout(&self, organism: usize) -> Result<&Batch, String> {
        let _ = organism;
        Err("no held-out data: the scenario has no [lifetime]".into())
    }
    /// Runs the organism's model.
    fn run(&self, organism: usize, request: &RunRequest<'_>) -> Result<Tensor<'static>, String> {
        let _ = (organism, request);
        Err("no model to run: the scenario has no [lifetime]".into())
    }
    /// The organism's record of probe set `set` measured by `metric`:
    /// `[n, 2]` rows of (step, value), by step.
    fn probes(&self, organism: usize, set: &str, metric: &str) -> Result<Tensor<'static>, String> {
        let _ = (organism, metric);
        Err(format!(
            "no probe set `{set}`: the scenario has no [lifetime] whose environment declares probe sets"
        ))
    }
}

/// A configured instance of a plugin's offering.
#[derive(Debug)]
pub struct Instance {
    plugin: Arc<Plugin>,
    info: OfferingInfo,
    body: Body,
}

/// Where the instance lives.
#[derive(Debug)]
enum Body {
    /// The plugin's instance pointer; the lock serialises calls into it.
    InProcess(Mutex<RawInstance>),
    /// An instance in a worker process.
    Isolated(Mutex<crate::isolate::Remote>),
}

#[derive(Debug)]
struct RawInstance(*mut c_void);

// SAFETY: the ABI allows an instance to be called from any thread, one call
// at a time (the mutex).
unsafe impl Send for RawInstance {}

impl Instance {
    /// Creates an instance of `offering`, configured by `toml` (the table's
    /// text) and its flattened `(dotted key, TOML literal)` entries.
    pub fn create(
        plugin: &Arc<Plugin>,
        offering: &str,
        toml: &str,
        entries: &[(String, String)],
    ) -> Result<Instance, PluginError> {
        let (index, info) = plugin.offering(offering)?;
        if let Some(library) = &plugin.isolated {
            let remote = library.create(&plugin.name, offering, index, toml, entries)?;
            return Ok(Instance {
                plugin: plugin.clone(),
                info: info.clone(),
                body: Body::Isolated(Mutex::new(remote)),
            });
        }
        let create_error = |message: String| PluginError::Create {
            plugin: plugin.name.clone(),
            offering: offering.to_owned(),
            message,
        };
        let c = |s: &str| CString::new(s).map_err(|_| create_error(format!("{s:?} holds a NUL")));
        let text = c(toml)?;
        let owned: Vec<(CString, CString)> = entries
            .iter()
            .map(|(k, v)| Ok((c(k)?, c(v)?)))
            .collect::<Result<_, PluginError>>()?;
        let raw_entries: Vec<LnConfigEntry> = owned
            .iter()
            .map(|(k, v)| LnConfigEntry {
                key: k.as_ptr(),
                value: v.as_ptr(),
            })
            .collect();
        let config = LnConfig {
            toml: text.as_ptr(),
            entries: raw_entries.as_ptr(),
            n_entries: raw_entries.len(),
        };
        let mut buffer = vec![0u8; ERROR_CAPACITY];
        let mut error = LnError {
            message: buffer.as_mut_ptr().cast(),
            capacity: buffer.len(),
        };
        let mut instance: *mut c_void = std::ptr::null_mut();
        let create = plugin.raw.and_then(|r| r.create).expect("checked at load");
        // SAFETY: calling the plugin as the ABI defines; every pointer is
        // valid for the call.
        let status = unsafe { create(index, &config, &mut instance, &mut error) };
        if status != LN_OK {
            return Err(create_error(message(&buffer)));
        }
        Ok(Instance {
            plugin: plugin.clone(),
            info: info.clone(),
            body: Body::InProcess(Mutex::new(RawInstance(instance))),
        })
    }

    /// The plugin it belongs to.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The offering it is an instance of.
    pub fn offering(&self) -> &OfferingInfo {
        &self.info
    }

    /// Scores the organisms `ids` (ascending) into `out` (`ids.len() x
    /// metrics`, row-major), with `services` answering the plugin's
    /// questions. On [`EvalError::NonFinite`] the finite scores in `out` are
    /// valid.
    pub fn evaluate(
        &self,
        generation: u32,
        ids: &[u64],
        services: &dyn Services,
        out: &mut [f64],
    ) -> Result<(), EvalError> {
        let metrics = self.info.metrics.len();
        let expected = ids.len() * metrics;
        assert_eq!(out.len(), expected, "score buffer of the wrong size");
        out.fill(f64::NAN);
        let outcome = match &self.body {
            Body::InProcess(_) => self.call(generation, ids, services, out),
            Body::Isolated(remote) => {
                let mut remote = remote.lock().unwrap_or_else(|p| p.into_inner());
                remote
                    .evaluate(generation, ids, metrics, services, out)
                    .map_err(|fault| fault.into_eval_error(&self.plugin.name, &self.info.name))?
            }
        };
        self.check(ids, outcome, out)
    }

    /// Calls the plugin in this process: its status, with its message on
    /// failure, and the number of scores it says it wrote.
    pub(crate) fn call(
        &self,
        generation: u32,
        ids: &[u64],
        services: &dyn Services,
        out: &mut [f64],
    ) -> Outcome {
        let Body::InProcess(raw) = &self.body else {
            unreachable!("only in-process instances are called directly")
        };
        let metrics = self.info.metrics.len();
        let context = Context {
            services,
            n: ids.len(),
            floats: Mutex::new(Vec::new()),
            points: Mutex::new(Vec::new()),
        };
        let host = LnHost {
            ctx: (&raw const context).cast(),
            genome: genome_service,
            gene: gene_service,
            weights: weights_service,
            curve: curve_service,
            heldout: heldout_service,
            run: run_service,
            probes: probes_service,
        };
        let call = LnCall {
            generation,
            n_organisms: ids.len(),
            ids: ids.as_ptr(),
            host: &host,
        };
        let mut scores = LnScores {
            values: out.as_mut_ptr(),
            n_organisms: ids.len(),
            n_metrics: metrics,
            written: 0,
        };
        let mut buffer = vec![0u8; ERROR_CAPACITY];
        let mut error = LnError {
            message: buffer.as_mut_ptr().cast(),
            capacity: buffer.len(),
        };
        let evaluate = self
            .plugin
            .raw
            .and_then(|r| r.evaluate)
            .expect("checked at load");
        let status = {
            let raw = raw.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: calling the plugin as the ABI defines; every pointer
            // stays valid until it returns.
            unsafe { evaluate(raw.0, &call, &mut scores, &mut error) }
        };
        Outcome {
            status: match status {
                LN_OK => Ok(()),
                LN_UNFIT => Err(Refusal::Unfit(message(&buffer))),
                _ => Err(Refusal::Failed(message(&buffer))),
            },
            written: scores.written,
        }
    }

    /// Checks what a call returned: its status, the count of scores, and
    /// that every score is finite.
    fn check(&self, ids: &[u64], outcome: Outcome, out: &[f64]) -> Result<(), EvalError> {
        let metrics = self.info.metrics.len();
        let expected = ids.len() * metrics;
        let plugin = || self.plugin.name.clone();
        let offering = || self.info.name.clone();
        match outcome.status {
            Ok(()) => {}
            Err(Refusal::Failed(message)) => {
                return Err(EvalError::Failed {
                    plugin: plugin(),
                    offering: offering(),
                    message,
                });
            }
            Err(Refusal::Unfit(message)) => {
                return Err(EvalError::Unfit {
                    plugin: plugin(),
                    offering: offering(),
                    message,
                });
            }
        }
        if outcome.written != expected {
            return Err(EvalError::WrongCount {
                plugin: plugin(),
                offering: offering(),
                written: outcome.written,
                organisms: ids.len(),
                metrics,
                expected,
            });
        }
        if out.iter().all(|v| v.is_finite()) {
            return Ok(());
        }
        let bad: Vec<usize> = out
            .chunks_exact(metrics.max(1))
            .enumerate()
            .filter(|(_, row)| row.iter().any(|v| !v.is_finite()))
            .map(|(i, _)| i)
            .collect();
        if let Some(&first) = bad.first() {
            let row = &out[first * metrics..(first + 1) * metrics];
            let j = row.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(EvalError::NonFinite {
                plugin: plugin(),
                offering: offering(),
                id: ids[first],
                metric: self.info.metrics[j].name.clone(),
                value: row[j],
                organisms: bad,
            });
        }
        Ok(())
    }
}

/// Why a plugin's `evaluate` did not score, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `LN_ERROR` (or any status but `LN_OK` and `LN_UNFIT`).
    Failed(String),
    /// `LN_UNFIT`: the run's set-up does not fit what the plugin measures.
    Unfit(String),
}

/// What a plugin's `evaluate` returned, before the host's checks.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Its status, with its message on failure.
    pub status: Result<(), Refusal>,
    /// How many scores it says it wrote.
    pub written: usize,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // An isolated instance ends with its worker process.
        let Body::InProcess(raw) = &mut self.body else {
            return;
        };
        let raw = raw.get_mut().unwrap_or_else(|p| p.into_inner()).0;
        if let Some(destroy) = self.plugin.raw.and_then(|r| r.destroy) {
            // SAFETY: the instance came from this plugin's `create` and is
            // destroyed once.
            unsafe { destroy(raw) };
        }
    }
}

/// The message in an error buffer.
fn message(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
    if text.is_empty() {
        "(no message)".into()
    } else {
        text
    }
}

/// The state behind `LnHost::ctx` for one call.
struct Context<'a> {
    services: &'a dyn Services,
    n: usize,
    /// Values computed for the call, kept until it returns (their heap
    /// buffers never move).
    floats: Mutex<Vec<Vec<f32>>>,
    points: Mutex<Vec<Vec<LnCurvePoint>>>,
}

impl Context<'_> {
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
