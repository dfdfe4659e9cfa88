//! The C ABI, version [`ABI_VERSION`]: every type and constant that crosses
//! the boundary between the host and a plugin library.
//!
//! `include/lineage_plugin.h` declares the same items for C; a test compiles
//! a C program against the header and compares every size and field offset
//! with these definitions. Change one, change the other, and bump
//! [`ABI_VERSION`] when the layout or the meaning of anything here changes.
//!
//! Only `#[repr(C)]` structs, fixed-width integers, `f32`/`f64`, raw
//! pointers, NUL-terminated UTF-8 strings and `extern "C"` function pointers
//! appear here: no Rust types cross the boundary.

use std::ffi::{c_char, c_void};

/// The ABI version this SDK speaks. The host refuses a library whose
/// descriptor carries a number it does not know, before calling anything
/// else in it.
///
/// Version 2 appended [`LnHost::probes`]; nothing else changed, so a host
/// of version 2 also loads version-1 libraries (they read the prefix of
/// [`LnHost`] they know). Version 3 appended [`LnPlugin::offering_reads`];
/// a host of version 3 reads a version-1 or -2 descriptor's shorter
/// `LnPlugin` (its `struct_size`) as one whose offerings may read
/// everything.
pub const ABI_VERSION: u32 = 3;

/// The oldest ABI version a host of this SDK still loads.
pub const ABI_VERSION_MIN: u32 = 1;

/// [`LnPlugin::offering_reads`] bit: the offering reads organisms' weights,
/// through [`LnHost::weights`] or model runs ([`LnHost::run`]). The host
/// keeps weights after a lifetime only where something reads them, and
/// refuses such a request from an offering that did not declare it.
pub const LN_READS_WEIGHTS: u32 = 1;

/// The symbol every plugin library exports: `const LnPlugin *lineage_plugin_entry(void)`.
pub const ENTRY_SYMBOL: &str = "lineage_plugin_entry";

/// Status of a call: [`LN_OK`], [`LN_ERROR`] or (from `evaluate`)
/// [`LN_UNFIT`].
pub type LnStatus = i32;
/// The call succeeded.
pub const LN_OK: LnStatus = 0;
/// The call failed; the error buffer holds why.
pub const LN_ERROR: LnStatus = 1;
/// `evaluate` only: the plugin cannot measure this run as it is set up (the
/// scenario's model lacks a weight or layer it measures, its data are of
/// another kind, its configuration does not fit the model), with a message
/// saying what. The host treats it as bad input, whatever the plugin's
/// `on_error`: it stops the run, keeps the generation to redo, and exits
/// with status 2. Added within ABI version 1: an older host takes it for
/// [`LN_ERROR`].
pub const LN_UNFIT: LnStatus = 2;

/// An offering that scores organisms for selection.
pub const LN_FITNESS: u32 = 1;
/// An offering whose metrics are recorded per organism, and used for
/// selection only when the scenario says so.
pub const LN_SUITE: u32 = 2;

/// Larger values of the metric are better.
pub const LN_MAXIMIZE: u32 = 1;
/// Smaller values of the metric are better.
pub const LN_MINIMIZE: u32 = 2;

/// Weights at birth (after development, before learning).
pub const LN_BIRTH: u32 = 1;
/// Weights at the end of the lifetime.
pub const LN_LEARNED: u32 = 2;

/// The organism did not learn (no `[lifetime]`).
pub const LN_LIFE_NONE: u32 = 0;
/// Every step ran and the final held-out loss is finite.
pub const LN_LIFE_COMPLETED: u32 = 1;
/// The loss became NaN or infinite; learning stopped at `diverged_at`.
pub const LN_LIFE_DIVERGED: u32 = 2;

/// Regression data: `x` `[n, inputs]`, `y` `[n, outputs]`.
pub const LN_DATA_DENSE: u32 = 1;
/// Classification data: `x` `[n, inputs]`, one label per example.
pub const LN_DATA_LABELED: u32 = 2;
/// Labelled sequences: `x` `[n, steps, inputs]`, `labels` `[n, steps]`
/// ([`LN_IGNORE`] where a step is not scored).
pub const LN_DATA_SEQUENCES: u32 = 3;
/// Token windows: `tokens` `[n, len]`; a model reads the first `len - 1`
/// tokens of a window and predicts each next one.
pub const LN_DATA_TOKENS: u32 = 4;
/// A label that is not scored.
pub const LN_IGNORE: u32 = u32::MAX;

/// Run the model and return its outputs.
pub const LN_RUN_OUTPUTS: u32 = 1;
/// Run the model and return the activations of the layer `name`.
pub const LN_RUN_HIDDEN: u32 = 2;
/// Per-example gradients of the outputs (weighted by `cotangent`) with
/// respect to the weight matrix `name`.
pub const LN_RUN_GRADIENT: u32 = 3;
/// The Gram matrix of the per-example gradients of [`LN_RUN_GRADIENT`]
/// (the empirical tangent kernel), `[n, n]`: entry `(i, j)` is the dot
/// product of example `i`'s and example `j`'s gradient with respect to the
/// weight `name`, or with respect to every parameter together when `name`
/// is `*`. A host that predates it answers "unknown run request".
pub const LN_RUN_KERNEL: u32 = 4;

/// Largest tensor rank a [`LnTensor`] describes.
pub const LN_MAX_RANK: usize = 4;

/// What a library's entry symbol returns. The host reads `abi_version`
/// first and nothing else when it differs from its own.
///
/// The descriptor and everything it points to must stay valid and unchanged
/// for as long as the library is loaded (the host never unloads it).
#[repr(C)]
#[derive(Debug)]
pub struct LnPlugin {
    /// [`ABI_VERSION`] of the SDK or header the plugin was built with.
    pub abi_version: u32,
    /// `sizeof(LnPlugin)` as the plugin saw it.
    pub struct_size: u32,
    /// The plugin's name (short, lower-case).
    pub name: *const c_char,
    /// The plugin's own version (free text, e.g. `1.2.0`).
    pub version: *const c_char,
    /// One line on what it offers.
    pub description: *const c_char,
    /// `n_offerings` offerings.
    pub offerings: *const LnOffering,
    /// Number of offerings.
    pub n_offerings: usize,
    /// Creates an instance of offering `offering` (an index) configured by
    /// `config`, stored in `*instance`. The config and its strings are valid
    /// only during the call.
    pub create: Option<
        unsafe extern "C" fn(
            offering: usize,
            config: *const LnConfig,
            instance: *mut *mut c_void,
            error: *mut LnError,
        ) -> LnStatus,
    >,
    /// Scores one batch of organisms: writes `scores.values` and sets
    /// `scores.written`. Called once per generation per instance, never
    /// concurrently for one instance, possibly from different threads.
    pub evaluate: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            call: *const LnCall,
            scores: *mut LnScores,
            error: *mut LnError,
        ) -> LnStatus,
    >,
    /// Frees an instance (may be null when instances own nothing).
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    /// Version 3: what each offering reads, `n_offerings` bit sets of
    /// `LN_READS_*` ([`LN_READS_WEIGHTS`]) in offering order; null: every
    /// offering may read everything (what a version-1 or -2 descriptor,
    /// which lacks the field, means).
    pub offering_reads: *const u32,
}

/// A fitness function or an evaluation suite.
#[repr(C)]
#[derive(Debug)]
pub struct LnOffering {
    /// Name, unique in the plugin (`[a-z0-9_]+`).
    pub name: *const c_char,
    /// [`LN_FITNESS`] or [`LN_SUITE`].
    pub kind: u32,
    /// `n_metrics` metrics, in the order scores are written.
    pub metrics: *const LnMetric,
    /// Number of metrics (at least one).
    pub n_metrics: usize,
    /// One line on what it measures.
    pub description: *const c_char,
}

/// One named value an offering writes per organism.
#[repr(C)]
#[derive(Debug)]
pub struct LnMetric {
    /// Name (`[a-z0-9_]+`), the column name in the run's records.
    pub name: *const c_char,
    /// [`LN_MAXIMIZE`] or [`LN_MINIMIZE`].
    pub direction: u32,
}

/// The plugin's configuration from the scenario, `[plugins.NAME.config]`.
#[repr(C)]
#[derive(Debug)]
pub struct LnConfig {
    /// The whole table as TOML text.
    pub toml: *const c_char,
    /// The same table flattened: dotted keys and TOML-literal values
    /// (`0.5`, `"text"`, `true`, `[1, 2]`).
    pub entries: *const LnConfigEntry,
    /// Number of entries.
    pub n_entries: usize,
}

/// One `key = value` of a configuration.
#[repr(C)]
#[derive(Debug)]
pub struct LnConfigEntry {
    /// Dotted key, e.g. `top_k` or `probe.layer`.
    pub key: *const c_char,
    /// The value as a TOML literal: strings keep their quotes.
    pub value: *const c_char,
}

/// A host-owned buffer for an error message.
#[repr(C)]
#[derive(Debug)]
pub struct LnError {
    /// `capacity` bytes; write a NUL-terminated UTF-8 message.
    pub message: *mut c_char,
    /// Size of the buffer in bytes, the NUL included.
    pub capacity: usize,
}

/// Where scores go: `n_organisms x n_metrics` values, row-major (organism,
/// then metric), prefilled with NaN.
#[repr(C)]
#[derive(Debug)]
pub struct LnScores {
    /// The host's buffer.
    pub values: *mut f64,
    /// Organisms in the batch.
    pub n_organisms: usize,
    /// Metrics per organism.
    pub n_metrics: usize,
    /// Set by the plugin: how many values it wrote (all of them:
    /// `n_organisms * n_metrics`).
    pub written: usize,
}

/// One batch: the organisms to score and the host's services.
#[repr(C)]
#[derive(Debug)]
pub struct LnCall {
    /// The generation being evaluated.
    pub generation: u32,
    /// Organisms in the batch.
    pub n_organisms: usize,
    /// Their ids, ascending.
    pub ids: *const u64,
    /// Services, valid during the call.
    pub host: *const LnHost,
}

/// A host-owned tensor: `shape[..rank]`, row-major `f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LnTensor {
    /// The values (null when empty).
    pub data: *const f32,
    /// Number of dimensions used in `shape`.
    pub rank: usize,
    /// Extents; unused dimensions are 0.
    pub shape: [usize; LN_MAX_RANK],
}

/// An organism's genome.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LnGenome {
    /// Bits packed in 64-bit words, bit `i` in word `i / 64` at position
    /// `i % 64`; bits past `n_bits` are zero.
    pub bits: *const u64,
    /// Number of bits.
    pub n_bits: usize,
    /// Real-valued genes.
    pub genes: *const f64,
    /// Number of real genes.
    pub n_genes: usize,
}

/// One point of a learning curve.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LnCurvePoint {
    /// Optimiser steps taken.
    pub step: u32,
    /// Mean minibatch loss since the previous point.
    pub train: f32,
    /// Held-out loss after `step` steps.
    pub heldout: f32,
}

/// An organism's learning curve.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LnCurve {
    /// Points, by step.
    pub points: *const LnCurvePoint,
    /// Number of points.
    pub n_points: usize,
    /// [`LN_LIFE_NONE`], [`LN_LIFE_COMPLETED`] or [`LN_LIFE_DIVERGED`].
    pub status: u32,
    /// The step where the loss diverged (when it did).
    pub diverged_at: u32,
}

/// Held-out data: what an organism's lifetime was scored on.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LnData {
    /// [`LN_DATA_DENSE`], [`LN_DATA_LABELED`], [`LN_DATA_SEQUENCES`] or
    /// [`LN_DATA_TOKENS`].
    pub kind: u32,
    /// Examples (windows for tokens).
    pub n: usize,
    /// Real inputs (empty for tokens).
    pub x: LnTensor,
    /// Regression targets (dense data only).
    pub y: LnTensor,
    /// Labels: one per example, or `[n, steps]` for sequences.
    pub labels: *const u32,
    /// Number of labels.
    pub n_labels: usize,
    /// Token windows `[n, len]`.
    pub tokens: *const u32,
    /// Tokens per window.
    pub len: usize,
}

/// A request to run an organism's model on inputs the plugin supplies.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LnRun {
    /// [`LN_RUN_OUTPUTS`], [`LN_RUN_HIDDEN`], [`LN_RUN_GRADIENT`] or
    /// [`LN_RUN_KERNEL`].
    pub what: u32,
    /// [`LN_BIRTH`] or [`LN_LEARNED`] weights.
    pub stage: u32,
    /// The layer (hidden) or weight matrix (gradient); null for outputs.
    pub name: *const c_char,
    /// Examples.
    pub n: usize,
    /// Values per example: inputs, or steps x inputs, or tokens.
    pub len: usize,
    /// Real inputs `[n, len]`, or null when `tokens` is given.
    pub x: *const f32,
    /// Token inputs `[n, len]`, or null when `x` is given.
    pub tokens: *const u32,
    /// Gradient and kernel only: weights of the outputs, the outputs'
    /// shape; null weighs every output by one.
    pub cotangent: *const f32,
}

/// The host's services, valid during one `evaluate` call and callable from
/// any thread during it. Every pointer they hand out stays valid until that
/// call returns. `organism` is an index into the batch (`0..n_organisms`).
/// On failure they return [`LN_ERROR`] and write why into `error` (which may
/// be null).
#[repr(C)]
#[derive(Debug)]
pub struct LnHost {
    /// The host's context, passed back as the first argument of every service.
    pub ctx: *const c_void,
    /// The organism's genome.
    pub genome: unsafe extern "C" fn(
        ctx: *const c_void,
        organism: usize,
        out: *mut LnGenome,
        error: *mut LnError,
    ) -> LnStatus,
    /// Where the genes named `name` start in the real genes, and how many.
    pub gene: unsafe extern "C" fn(
        ctx: *const c_void,
        name: *const c_char,
        offset: *mut usize,
        count: *mut usize,
        error: *mut LnError,
    ) -> LnStatus,
    /// The organism's weight `name` at `stage`.
    pub weights: unsafe extern "C" fn(
        ctx: *const c_void,
        organism: usize,
        name: *const c_char,
        stage: u32,
        out: *mut LnTensor,
        error: *mut LnError,
    ) -> LnStatus,
    /// The organism's learning curve.
    pub curve: unsafe extern "C" fn(
        ctx: *const c_void,
        organism: usize,
        out: *mut LnCurve,
        error: *mut LnError,
    ) -> LnStatus,
    /// The held-out data the organism's lifetime was scored on (the same
    /// buffers for every organism when the environment holds one held-out
    /// set, as most do).
    pub heldout: unsafe extern "C" fn(
        ctx: *const c_void,
        organism: usize,
        out: *mut LnData,
        error: *mut LnError,
    ) -> LnStatus,
    /// Runs the organism's model.
    pub run: unsafe extern "C" fn(
        ctx: *const c_void,
        organism: usize,
        request: *const LnRun,
        out: *mut LnTensor,
        error: *mut LnError,
    ) -> LnStatus,
    /// ABI 2: the organism's record of the environment's probe set `set`
    /// measured by `metric` (`loss`, `accuracy`, `accuracy_all`) at every
    /// point of its learning curve, as an `[n, 2]` tensor of (step, value)
    /// rows, by step. Fails naming the sets and metrics there are.
    pub probes: unsafe extern "C" fn(
        ctx: *const c_void,
        organism: usize,
        set: *const c_char,
        metric: *const c_char,
        out: *mut LnTensor,
        error: *mut LnError,
    ) -> LnStatus,
}

/// The entry symbol's type.
pub type LnEntry = unsafe extern "C" fn() -> *const LnPlugin;
