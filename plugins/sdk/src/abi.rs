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
/// everything. Version 4 appended [`LnPlugin::environment`] and the
/// offering kind [`LN_ENVIRONMENT`]: environments a lifetime learns in; a
/// host of version 4 reads an older descriptor as offering none.
pub const ABI_VERSION: u32 = 4;

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

/// ABI 4: an environment a lifetime learns in (its functions are in
/// [`LnPlugin::environment`]); it declares no metrics.
pub const LN_ENVIRONMENT: u32 = 3;

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
    /// Version 4: the functions of the plugin's environment offerings
    /// ([`LN_ENVIRONMENT`]); null when it offers none (what an older
    /// descriptor, which lacks the field, means).
    pub environment: *const LnEnvironmentApi,
}

/// A fitness function, an evaluation suite or (ABI 4) an environment.
#[repr(C)]
#[derive(Debug)]
pub struct LnOffering {
    /// Name, unique in the plugin (`[a-z0-9_]+`).
    pub name: *const c_char,
    /// [`LN_FITNESS`], [`LN_SUITE`] or [`LN_ENVIRONMENT`].
    pub kind: u32,
    /// `n_metrics` metrics, in the order scores are written (null for an
    /// environment).
    pub metrics: *const LnMetric,
    /// Number of metrics (at least one; none for an environment).
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

/// [`LnEnvironmentApi::fill`]: one lifetime's training examples, drawn
/// from the call's seed (taken from the organism's own random stream).
pub const LN_FILL_TRAIN: u32 = 1;
/// [`LnEnvironmentApi::fill`]: the held-out set every lifetime is scored
/// on, drawn from the run's seed.
pub const LN_FILL_HELDOUT: u32 = 2;
/// [`LnEnvironmentApi::fill`]: probe set `index`, drawn from its own seed.
pub const LN_FILL_PROBE: u32 = 3;

/// What an environment's lifetimes learn: the kind of its examples and
/// their sizes, written by [`LnEnvironmentApi::task`].
///
/// | `kind` | a model maps | `inputs` | `outputs` | `steps` |
/// |---|---|---|---|---|
/// | [`LN_DATA_DENSE`] (regression) | `x` to `y` | features | targets | 0 |
/// | [`LN_DATA_LABELED`] (classification) | `x` to a label | features | classes | 0 |
/// | [`LN_DATA_SEQUENCES`] | each step of `x` to a label | features per step | classes | steps |
/// | [`LN_DATA_TOKENS`] (next token) | each token to the next | 0 | vocabulary | context |
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LnTask {
    /// [`LN_DATA_DENSE`], [`LN_DATA_LABELED`], [`LN_DATA_SEQUENCES`] or
    /// [`LN_DATA_TOKENS`].
    pub kind: u32,
    /// Real features per example (per step for sequences; 0 for tokens).
    pub inputs: usize,
    /// Regression targets, classes, or the vocabulary size for tokens.
    pub outputs: usize,
    /// Steps per sequence, or the tokens of context a model reads (a
    /// window holds `steps + 1` tokens); 0 otherwise.
    pub steps: usize,
    /// Examples (windows for tokens) in the held-out set.
    pub heldout: usize,
    /// Probe sets ([`LnEnvironmentApi::probe`]), each of the task's kind
    /// (classification or sequences only); 0 for none.
    pub n_probes: usize,
    /// 1 when the environment has a task direction
    /// ([`LnEnvironmentApi::direction`]), else 0.
    pub has_direction: u32,
}

/// One probe set, described by [`LnEnvironmentApi::probe`]: examples every
/// lifetime is also scored on at each point of its learning curve. Its
/// strings and choices belong to the plugin and stay valid as long as the
/// instance.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LnProbe {
    /// Its name in the run's records (`[a-z0-9_]+`).
    pub name: *const c_char,
    /// Its examples.
    pub n: usize,
    /// The labels a prediction is restricted to (null: every label).
    pub choices: *const u32,
    /// Number of choices.
    pub n_choices: usize,
}

/// Host-owned buffers an environment fills ([`LnEnvironmentApi::fill`]):
/// `n` examples of the task's kind, row-major. The host prefills reals
/// with NaN and labels and tokens with a value out of range, so that what
/// the plugin leaves unwritten is caught. Buffers the task's kind does not
/// use are null with length 0.
#[repr(C)]
#[derive(Debug)]
pub struct LnBatch {
    /// The task's kind.
    pub kind: u32,
    /// Examples to write (windows for tokens).
    pub n: usize,
    /// Steps per sequence, or tokens per window (`context + 1`); 0
    /// otherwise.
    pub steps: usize,
    /// Inputs: `n x inputs`, or `n x steps x inputs` for sequences.
    pub x: *mut f32,
    /// Length of `x`.
    pub x_len: usize,
    /// Regression targets, `n x outputs`.
    pub y: *mut f32,
    /// Length of `y`.
    pub y_len: usize,
    /// Labels `< outputs`: `n`, or `n x steps` for sequences (where
    /// [`LN_IGNORE`] marks a step no loss scores).
    pub labels: *mut u32,
    /// Length of `labels`.
    pub labels_len: usize,
    /// Token windows, `n x steps`, each token `< outputs`.
    pub tokens: *mut u32,
    /// Length of `tokens`.
    pub tokens_len: usize,
    /// Set by the plugin: how many examples it wrote (all of them: `n`).
    pub written: usize,
}

/// The functions of a plugin's environment offerings (ABI 4). An instance
/// is what `create` made for an offering of kind [`LN_ENVIRONMENT`], from
/// the scenario's environment table (every key but `plugin` and `seed`).
///
/// Right after `create` the host calls `task`, then `probe` for each probe
/// set and `direction` when there is one; then `fill` once per run for the
/// held-out set and each probe set, and once per lifetime for its training
/// data. `fill` may run on several threads at once for one instance (each
/// call with its own batch): what it writes must depend on its arguments
/// only, the seed above all, so that a run is the same whatever the thread
/// count and wherever the plugin runs.
#[repr(C)]
#[derive(Debug)]
pub struct LnEnvironmentApi {
    /// Writes the instance's task.
    pub task: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            out: *mut LnTask,
            error: *mut LnError,
        ) -> LnStatus,
    >,
    /// Describes probe set `index` (`0..n_probes`); may be null when no
    /// offering has probe sets.
    pub probe: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            index: usize,
            out: *mut LnProbe,
            error: *mut LnError,
        ) -> LnStatus,
    >,
    /// Writes the task direction, `n` (the task's `inputs`) values, into
    /// `out`; may be null when no offering has one.
    pub direction: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            out: *mut f32,
            n: usize,
            error: *mut LnError,
        ) -> LnStatus,
    >,
    /// Fills `batch` with `batch.n` examples of `what` ([`LN_FILL_TRAIN`],
    /// [`LN_FILL_HELDOUT`], or [`LN_FILL_PROBE`] for probe set `index`),
    /// drawn from `seed` and nothing else, and sets `batch.written`.
    pub fill: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            what: u32,
            index: usize,
            seed: u64,
            batch: *mut LnBatch,
            error: *mut LnError,
        ) -> LnStatus,
    >,
}

/// The entry symbol's type.
pub type LnEntry = unsafe extern "C" fn() -> *const LnPlugin;
