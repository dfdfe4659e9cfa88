/*
 * lineage_plugin.h - the C ABI of Lineage plugins, version 4.
 *
 * A plugin is a shared library that exports one symbol,
 * LINEAGE_PLUGIN_ENTRY ("lineage_plugin_entry"), returning a descriptor
 * (LnPlugin) of the fitness functions, evaluation suites and environments
 * it offers. This
 * header mirrors plugins/sdk/src/abi.rs, the authoritative definition, item
 * for item; a test of the SDK compiles a C program against it and compares
 * every size, field offset and constant with the Rust side. Change one,
 * change the other, and bump LINEAGE_PLUGIN_ABI_VERSION when the layout or
 * the meaning of anything here changes.
 *
 * Only fixed-width integers, size_t, float/double, raw pointers,
 * NUL-terminated UTF-8 strings and C function pointers cross the boundary.
 *
 * The contract
 * ------------
 * Loading. The host calls lineage_plugin_entry() and reads abi_version
 *   first; when it differs from its own it refuses the library and reads
 *   nothing else. The descriptor and everything it points to must stay valid
 *   and unchanged for as long as the library is loaded: the host never
 *   unloads it.
 *
 * Instances. create() makes an instance of one offering (an index into
 *   offerings) from the scenario's [plugins.NAME.config]. The LnConfig and
 *   all its strings are valid only during create(): copy what you keep.
 *   destroy() frees an instance when the run ends (it may be NULL when
 *   instances own nothing); it is not called after a failed create(). The
 *   host creates every instance before generation 0, one at a time. Config
 *   values are TOML literals as the host writes them: strings in basic
 *   quotes ("text"), numbers, true/false, inline arrays.
 *
 * Threading. evaluate() is called once per generation per instance, never
 *   concurrently for one instance, but possibly from different threads
 *   across calls. The host services in LnCall.host may be called from any
 *   thread during an evaluate() call (the plugin may use threads of its own).
 *
 * Ownership and lifetimes. The host owns every buffer that crosses the
 *   boundary. Every pointer a host service hands out (genomes, tensors,
 *   curves, data) stays valid until the evaluate() call it was obtained in
 *   returns; never keep one beyond it.
 *
 * Batches. LnCall.n_organisms equals LnScores.n_organisms; organisms are
 *   addressed by their index in the batch, ids ascending. An organism whose
 *   lifetime diverged is invalid and is never in a batch. Without a
 *   [lifetime], curve() succeeds with status LN_LIFE_NONE and no points,
 *   while weights(), heldout() and run() fail. A curve's first point is
 *   birth (step 0), its last the end of the lifetime.
 *
 * Scores. LnScores.values holds n_organisms x n_metrics doubles, row-major
 *   (organism, then metric in the offering's order), prefilled with NaN. The
 *   plugin writes every value and sets LnScores.written to how many it wrote
 *   (all of them: n_organisms * n_metrics). The host checks the count, and
 *   treats a value left NaN, or set to NaN or +-infinity, as an error that it
 *   reports with the plugin's name and the organism.
 *
 * Errors. A call that fails returns LN_ERROR after writing a NUL-terminated
 *   UTF-8 message into the host-owned LnError.message, at most
 *   LnError.capacity bytes including the NUL (snprintf does this). Host
 *   services fail the same way: they return LN_ERROR and write why into
 *   their error argument, which may be NULL.
 *
 * Evolution. LnHost and LnCall carry no size field: adding a service or a
 *   field is a new ABI version, and the host refuses plugins built against
 *   a version it does not know with both numbers in its message. Version 2
 *   appended LnHost.probes and changed nothing else: a version-2 host also
 *   loads version-1 plugins, which read the prefix of LnHost they know.
 *   Version 3 appended LnPlugin.offering_reads, version 4
 *   LnPlugin.environment and the offering kind LN_ENVIRONMENT; a host reads
 *   an older, shorter LnPlugin (its struct_size) as declaring neither.
 *
 * Environments (ABI 4). An offering of kind LN_ENVIRONMENT supplies the
 *   data lifetimes learn from; see "Environments" below for its contract
 *   and a worked example. A plugin whose offerings are all environments may
 *   leave evaluate NULL.
 */
#ifndef LINEAGE_PLUGIN_H
#define LINEAGE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header speaks: the value of LnPlugin.abi_version. */
#define LINEAGE_PLUGIN_ABI_VERSION 4

/* The oldest ABI version a host of this version still loads. */
#define LINEAGE_PLUGIN_ABI_VERSION_MIN 1

/* LnPlugin.offering_reads bit: the offering reads organisms' weights, through
 * host->weights or model runs (host->run). */
#define LN_READS_WEIGHTS 1u

/* The symbol every plugin library exports. */
#define LINEAGE_PLUGIN_ENTRY "lineage_plugin_entry"

/* Marks the entry symbol as exported from the shared library (also when the
 * library is built with -fvisibility=hidden). Define it before including this
 * header to override. */
#ifndef LINEAGE_PLUGIN_EXPORT
#if defined(_WIN32) || defined(__CYGWIN__)
#define LINEAGE_PLUGIN_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define LINEAGE_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define LINEAGE_PLUGIN_EXPORT
#endif
#endif

/* ---- Constants ---------------------------------------------------------- */

/* Status of a call: LN_OK or LN_ERROR. */
typedef int32_t LnStatus;
/* The call succeeded. */
#define LN_OK ((LnStatus)0)
/* The call failed; the error buffer holds why. */
#define LN_ERROR ((LnStatus)1)
/* evaluate only: the plugin cannot measure this run as it is set up (the
 * model lacks a weight or layer it measures, the data are of another kind,
 * its configuration does not fit the model); the error buffer says what.
 * The host treats it as bad input whatever on_error says: the run stops,
 * the generation is kept to redo, and lineage exits with status 2. */
#define LN_UNFIT ((LnStatus)2)

/* LnOffering.kind: an offering that scores organisms for selection. */
#define LN_FITNESS ((uint32_t)1)
/* LnOffering.kind: an offering whose metrics are recorded per organism, and
 * used for selection only when the scenario says so. */
#define LN_SUITE ((uint32_t)2)

/* LnOffering.kind (ABI 4): an environment lifetimes learn in; its functions
 * are in LnPlugin.environment, and it declares no metrics. */
#define LN_ENVIRONMENT ((uint32_t)3)

/* LnMetric.direction: larger values of the metric are better. */
#define LN_MAXIMIZE ((uint32_t)1)
/* LnMetric.direction: smaller values of the metric are better. */
#define LN_MINIMIZE ((uint32_t)2)

/* Stage of the weights: at birth (after development, before learning). */
#define LN_BIRTH ((uint32_t)1)
/* Stage of the weights: at the end of the lifetime. */
#define LN_LEARNED ((uint32_t)2)

/* LnCurve.status: the organism did not learn (no [lifetime]). */
#define LN_LIFE_NONE ((uint32_t)0)
/* LnCurve.status: every step ran and the final held-out loss is finite. */
#define LN_LIFE_COMPLETED ((uint32_t)1)
/* LnCurve.status: the loss became NaN or infinite; learning stopped at
 * diverged_at. */
#define LN_LIFE_DIVERGED ((uint32_t)2)

/* LnData.kind: regression data: x [n, inputs], y [n, outputs]. */
#define LN_DATA_DENSE ((uint32_t)1)
/* LnData.kind: classification data: x [n, inputs], one label per example. */
#define LN_DATA_LABELED ((uint32_t)2)
/* LnData.kind: labelled sequences: x [n, steps, inputs], labels [n, steps]
 * (LN_IGNORE where a step is not scored). */
#define LN_DATA_SEQUENCES ((uint32_t)3)
/* LnData.kind: token windows: tokens [n, len]; a model reads the first
 * len - 1 tokens of a window and predicts each next one. */
#define LN_DATA_TOKENS ((uint32_t)4)
/* A label that is not scored. */
#define LN_IGNORE ((uint32_t)0xFFFFFFFFu)

/* LnRun.what: run the model and return its outputs. */
#define LN_RUN_OUTPUTS ((uint32_t)1)
/* LnRun.what: run the model and return the activations of the layer name. */
#define LN_RUN_HIDDEN ((uint32_t)2)
/* LnRun.what: per-example gradients of the outputs (weighted by cotangent)
 * with respect to the weight matrix name. */
#define LN_RUN_GRADIENT ((uint32_t)3)
/* LnRun.what: the Gram matrix [n, n] of those per-example gradients (the
 * empirical tangent kernel), with respect to the weight name, or to every
 * parameter together when name is "*". */
#define LN_RUN_KERNEL ((uint32_t)4)

/* Largest tensor rank an LnTensor describes. */
#define LN_MAX_RANK ((size_t)4)

/* ---- Types -------------------------------------------------------------- */

typedef struct LnPlugin LnPlugin;
typedef struct LnOffering LnOffering;
typedef struct LnMetric LnMetric;
typedef struct LnConfig LnConfig;
typedef struct LnConfigEntry LnConfigEntry;
typedef struct LnError LnError;
typedef struct LnScores LnScores;
typedef struct LnCall LnCall;
typedef struct LnTensor LnTensor;
typedef struct LnGenome LnGenome;
typedef struct LnCurvePoint LnCurvePoint;
typedef struct LnCurve LnCurve;
typedef struct LnData LnData;
typedef struct LnRun LnRun;
typedef struct LnHost LnHost;
typedef struct LnTask LnTask;
typedef struct LnProbe LnProbe;
typedef struct LnBatch LnBatch;
typedef struct LnEnvironmentApi LnEnvironmentApi;

/* What a library's entry symbol returns. The host reads abi_version first
 * and nothing else when it differs from its own. The descriptor and
 * everything it points to must stay valid and unchanged for as long as the
 * library is loaded (the host never unloads it). */
struct LnPlugin {
    /* LINEAGE_PLUGIN_ABI_VERSION of the header the plugin was built with. */
    uint32_t abi_version;
    /* sizeof(LnPlugin) as the plugin saw it. */
    uint32_t struct_size;
    /* The plugin's name (short, lower-case). */
    const char *name;
    /* The plugin's own version (free text, e.g. "1.2.0"). */
    const char *version;
    /* One line on what it offers. */
    const char *description;
    /* n_offerings offerings. */
    const LnOffering *offerings;
    /* Number of offerings. */
    size_t n_offerings;
    /* Creates an instance of offering `offering` (an index) configured by
     * `config`, stored in *instance. The config and its strings are valid
     * only during the call. */
    LnStatus (*create)(size_t offering, const LnConfig *config, void **instance,
                       LnError *error);
    /* Scores one batch of organisms: writes scores->values and sets
     * scores->written. Called once per generation per instance, never
     * concurrently for one instance, possibly from different threads. */
    LnStatus (*evaluate)(void *instance, const LnCall *call, LnScores *scores,
                         LnError *error);
    /* Frees an instance (may be NULL when instances own nothing). */
    void (*destroy)(void *instance);
    /* Version 3: what each offering reads, n_offerings bit sets of
     * LN_READS_* in offering order; NULL: every offering may read
     * everything (what a version-1 or -2 descriptor, which ends before this
     * field, means). The host keeps organisms' weights after a lifetime only
     * where something reads them, and refuses a weights request or model run
     * from an offering that declared it reads no weights. */
    const uint32_t *offering_reads;
    /* Version 4: the functions of the plugin's environment offerings
     * (LN_ENVIRONMENT); NULL when it offers none (what an older descriptor,
     * which ends before this field, means). */
    const LnEnvironmentApi *environment;
};

/* A fitness function, an evaluation suite or (ABI 4) an environment. */
struct LnOffering {
    /* Name, unique in the plugin ([a-z0-9_]+). */
    const char *name;
    /* LN_FITNESS, LN_SUITE or LN_ENVIRONMENT. */
    uint32_t kind;
    /* n_metrics metrics, in the order scores are written (NULL for an
     * environment). */
    const LnMetric *metrics;
    /* Number of metrics (at least one; none for an environment). */
    size_t n_metrics;
    /* One line on what it measures. */
    const char *description;
};

/* One named value an offering writes per organism. */
struct LnMetric {
    /* Name ([a-z0-9_]+), the column name in the run's records. */
    const char *name;
    /* LN_MAXIMIZE or LN_MINIMIZE. */
    uint32_t direction;
};

/* The plugin's configuration from the scenario, [plugins.NAME.config].
 * Valid only during create(). */
struct LnConfig {
    /* The whole table as TOML text. */
    const char *toml;
    /* The same table flattened: dotted keys and TOML-literal values
     * (0.5, "text", true, [1, 2]). */
    const LnConfigEntry *entries;
    /* Number of entries. */
    size_t n_entries;
};

/* One key = value of a configuration. */
struct LnConfigEntry {
    /* Dotted key, e.g. top_k or probe.layer. */
    const char *key;
    /* The value as a TOML literal: strings keep their quotes. */
    const char *value;
};

/* A host-owned buffer for an error message. */
struct LnError {
    /* capacity bytes; write a NUL-terminated UTF-8 message. */
    char *message;
    /* Size of the buffer in bytes, the NUL included. */
    size_t capacity;
};

/* Where scores go: n_organisms x n_metrics values, row-major (organism, then
 * metric), prefilled with NaN. */
struct LnScores {
    /* The host's buffer. */
    double *values;
    /* Organisms in the batch. */
    size_t n_organisms;
    /* Metrics per organism. */
    size_t n_metrics;
    /* Set by the plugin: how many values it wrote (all of them:
     * n_organisms * n_metrics). */
    size_t written;
};

/* One batch: the organisms to score and the host's services. */
struct LnCall {
    /* The generation being evaluated. */
    uint32_t generation;
    /* Organisms in the batch. */
    size_t n_organisms;
    /* Their ids, ascending. */
    const uint64_t *ids;
    /* Services, valid during the call. */
    const LnHost *host;
};

/* A host-owned tensor: shape[0..rank), row-major float. */
struct LnTensor {
    /* The values (NULL when empty). */
    const float *data;
    /* Number of dimensions used in shape. */
    size_t rank;
    /* Extents; unused dimensions are 0. */
    size_t shape[LN_MAX_RANK];
};

/* An organism's genome. */
struct LnGenome {
    /* Bits packed in 64-bit words, bit i in word i / 64 at position i % 64;
     * bits past n_bits are zero. */
    const uint64_t *bits;
    /* Number of bits. */
    size_t n_bits;
    /* Real-valued genes. */
    const double *genes;
    /* Number of real genes. */
    size_t n_genes;
};

/* One point of a learning curve. */
struct LnCurvePoint {
    /* Optimiser steps taken. */
    uint32_t step;
    /* Mean minibatch loss since the previous point. */
    float train;
    /* Held-out loss after step steps. */
    float heldout;
};

/* An organism's learning curve. */
struct LnCurve {
    /* Points, by step. */
    const LnCurvePoint *points;
    /* Number of points. */
    size_t n_points;
    /* LN_LIFE_NONE, LN_LIFE_COMPLETED or LN_LIFE_DIVERGED. */
    uint32_t status;
    /* The step where the loss diverged (when it did). */
    uint32_t diverged_at;
};

/* Held-out data: what an organism's lifetime was scored on. */
struct LnData {
    /* LN_DATA_DENSE, LN_DATA_LABELED, LN_DATA_SEQUENCES or LN_DATA_TOKENS. */
    uint32_t kind;
    /* Examples (windows for tokens). */
    size_t n;
    /* Real inputs (empty for tokens). */
    LnTensor x;
    /* Regression targets (dense data only). */
    LnTensor y;
    /* Labels: one per example, or [n, steps] for sequences. */
    const uint32_t *labels;
    /* Number of labels. */
    size_t n_labels;
    /* Token windows [n, len]. */
    const uint32_t *tokens;
    /* Tokens per window. */
    size_t len;
};

/* A request to run an organism's model on inputs the plugin supplies. */
struct LnRun {
    /* LN_RUN_OUTPUTS, LN_RUN_HIDDEN, LN_RUN_GRADIENT or LN_RUN_KERNEL. */
    uint32_t what;
    /* LN_BIRTH or LN_LEARNED weights. */
    uint32_t stage;
    /* The layer (hidden) or weight matrix (gradient); NULL for outputs. */
    const char *name;
    /* Examples. */
    size_t n;
    /* Values per example: inputs, or steps x inputs, or tokens. */
    size_t len;
    /* Real inputs [n, len], or NULL when tokens is given. */
    const float *x;
    /* Token inputs [n, len], or NULL when x is given. */
    const uint32_t *tokens;
    /* Gradient only: weights of the outputs, the outputs' shape; NULL weighs
     * every output by one. */
    const float *cotangent;
};

/* The host's services, valid during one evaluate() call and callable from
 * any thread during it. Every pointer they hand out stays valid until that
 * call returns. `organism` is an index into the batch (0..n_organisms). On
 * failure they return LN_ERROR and write why into `error` (which may be
 * NULL). The host sets every function pointer. */
struct LnHost {
    /* The host's context, passed back as the first argument of every
     * service. */
    const void *ctx;
    /* The organism's genome. */
    LnStatus (*genome)(const void *ctx, size_t organism, LnGenome *out, LnError *error);
    /* Where the genes named `name` start in the real genes, and how many. */
    LnStatus (*gene)(const void *ctx, const char *name, size_t *offset, size_t *count,
                     LnError *error);
    /* The organism's weight `name` at `stage` (LN_BIRTH or LN_LEARNED). */
    LnStatus (*weights)(const void *ctx, size_t organism, const char *name, uint32_t stage,
                        LnTensor *out, LnError *error);
    /* The organism's learning curve. */
    LnStatus (*curve)(const void *ctx, size_t organism, LnCurve *out, LnError *error);
    /* The held-out data the organism's lifetime was scored on (the same
       buffers for every organism when the environment holds one held-out
       set, as most do). */
    LnStatus (*heldout)(const void *ctx, size_t organism, LnData *out, LnError *error);
    /* Runs the organism's model. */
    LnStatus (*run)(const void *ctx, size_t organism, const LnRun *request, LnTensor *out,
                    LnError *error);
    /* ABI 2: the organism's record of the environment's probe set `set`
     * measured by `metric` ("loss", "accuracy", "accuracy_all") at every
     * point of its learning curve, as an [n, 2] tensor of (step, value) rows,
     * by step. Fails naming the sets and metrics there are. */
    LnStatus (*probes)(const void *ctx, size_t organism, const char *set, const char *metric,
                       LnTensor *out, LnError *error);
};

/* ---- Environments (ABI 4) ----------------------------------------------
 *
 * An offering of kind LN_ENVIRONMENT is the world lifetimes learn in. The
 * scenario names it in its environment table,
 *
 *     [lifetime]
 *     environment = { plugin = "NAME:OFFERING", seed = 3, your_key = 0.5 }
 *
 * where NAME is a [plugins.NAME] table; create() gets every key of the
 * table but plugin and seed as its LnConfig. Reject a bad key or value
 * there, naming the key in backquotes ("`your_key` must be positive"): the
 * scenario check then reports the key's file and line.
 *
 * Right after create(), the host calls task(), then probe() for each probe
 * set and direction() when the task has one. Then fill(): once per run for
 * the held-out set (LN_FILL_HELDOUT) and for each probe set
 * (LN_FILL_PROBE, index), and once per lifetime for its training data
 * (LN_FILL_TRAIN), with that lifetime's data budget as batch->n (token
 * tasks: windows). The host owns every buffer of an LnBatch, sized from
 * the task; it prefills reals with NaN and labels and tokens with a value
 * out of range. The plugin writes every value and sets batch->written = n.
 *
 * Determinism. Every fill gets a 64-bit seed: for training data one drawn
 *   from the organism's own random stream, for the held-out and probe sets
 *   one derived from the run's seed (or the table's seed key). Draw from
 *   that seed and nothing else (no time, no global generator, no state
 *   kept between calls): fill may run on several threads at once for one
 *   instance, and the same scenario and seed must give the same run
 *   whatever the thread count, after a resume, and under
 *   isolation = "process".
 *
 * Checks. The host checks every batch: the count written, finite reals,
 *   labels below the class count (LN_IGNORE allowed for sequences), tokens
 *   below the vocabulary. A violation, an LN_ERROR, or a crash under
 *   isolation = "process" stops the run with exit status 2, naming the
 *   plugin, the offering and what was wrong; the records of the
 *   generations before it stay, and `lineage resume` continues once the
 *   plugin is fixed.
 *
 * A worked example: noisy parity of two bits, a classification task.
 *
 *     static uint64_t next(uint64_t *s) {            // SplitMix64
 *         uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
 *         z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
 *         z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
 *         return z ^ (z >> 31);
 *     }
 *     static LnStatus task(void *inst, LnTask *out, LnError *err) {
 *         (void)inst; (void)err;
 *         out->kind = LN_DATA_LABELED;                // classification
 *         out->inputs = 2; out->outputs = 2;          // 2 features, 2 classes
 *         out->steps = 0; out->heldout = 256;
 *         out->n_probes = 0; out->has_direction = 0;
 *         return LN_OK;
 *     }
 *     static LnStatus fill(void *inst, uint32_t what, size_t index,
 *                          uint64_t seed, LnBatch *b, LnError *err) {
 *         (void)inst; (void)what; (void)index; (void)err;
 *         uint64_t s = seed;
 *         for (size_t i = 0; i < b->n; i++) {
 *             uint32_t u = next(&s) & 1, v = next(&s) & 1;
 *             b->x[2 * i] = u ? 1.0f : -1.0f;
 *             b->x[2 * i + 1] = v ? 1.0f : -1.0f;
 *             b->labels[i] = u ^ v;
 *         }
 *         b->written = b->n;
 *         return LN_OK;
 *     }
 *     static const LnEnvironmentApi api = { task, NULL, NULL, fill };
 *     static const LnOffering offerings[] = {
 *         { "parity", LN_ENVIRONMENT, NULL, 0, "two-bit parity" },
 *     };
 *     // In the descriptor: .offerings = offerings, .n_offerings = 1,
 *     // .create = a create() that accepts offering 0 (and rejects unknown
 *     // config keys), .evaluate = NULL is allowed when no offering is a
 *     // fitness function or suite, .environment = &api.
 *
 * plugins/examples/sequence-recall-c is a complete one, built and run by
 * the test suite.
 */

/* LnEnvironmentApi.fill: one lifetime's training examples, drawn from the
 * call's seed (taken from the organism's own random stream). */
#define LN_FILL_TRAIN ((uint32_t)1)
/* LnEnvironmentApi.fill: the held-out set, drawn from the run's seed. */
#define LN_FILL_HELDOUT ((uint32_t)2)
/* LnEnvironmentApi.fill: probe set `index`, drawn from its own seed. */
#define LN_FILL_PROBE ((uint32_t)3)

/* What an environment's lifetimes learn, written by task():
 *
 *   kind               a model maps             inputs    outputs  steps
 *   LN_DATA_DENSE      x to y (regression)      features  targets  0
 *   LN_DATA_LABELED    x to a label             features  classes  0
 *   LN_DATA_SEQUENCES  each step of x to label  per step  classes  steps
 *   LN_DATA_TOKENS     each token to the next   0         vocab    context
 */
struct LnTask {
    /* LN_DATA_DENSE, LN_DATA_LABELED, LN_DATA_SEQUENCES or LN_DATA_TOKENS. */
    uint32_t kind;
    /* Real features per example (per step for sequences; 0 for tokens). */
    size_t inputs;
    /* Regression targets, classes, or the vocabulary size for tokens. */
    size_t outputs;
    /* Steps per sequence, or the tokens of context a model reads (a window
     * holds steps + 1 tokens); 0 otherwise. */
    size_t steps;
    /* Examples (windows for tokens) in the held-out set. */
    size_t heldout;
    /* Probe sets (probe()), each of the task's kind (classification or
     * sequences only); 0 for none. */
    size_t n_probes;
    /* 1 when the environment has a task direction (direction()), else 0. */
    uint32_t has_direction;
};

/* One probe set, described by probe(): examples every lifetime is also
 * scored on at each point of its learning curve. Its strings and choices
 * belong to the plugin and stay valid as long as the instance. */
struct LnProbe {
    /* Its name in the run's records ([a-z0-9_]+). */
    const char *name;
    /* Its examples. */
    size_t n;
    /* The labels a prediction is restricted to (NULL: every label). */
    const uint32_t *choices;
    /* Number of choices. */
    size_t n_choices;
};

/* Host-owned buffers fill() writes: n examples of the task's kind,
 * row-major. Reals are prefilled with NaN, labels and tokens with a value
 * out of range; buffers the kind does not use are NULL with length 0. */
struct LnBatch {
    /* The task's kind. */
    uint32_t kind;
    /* Examples to write (windows for tokens). */
    size_t n;
    /* Steps per sequence, or tokens per window (context + 1); 0 otherwise. */
    size_t steps;
    /* Inputs: n x inputs, or n x steps x inputs for sequences. */
    float *x;
    /* Length of x. */
    size_t x_len;
    /* Regression targets, n x outputs. */
    float *y;
    /* Length of y. */
    size_t y_len;
    /* Labels < outputs: n, or n x steps for sequences (LN_IGNORE marks a
     * step no loss scores). */
    uint32_t *labels;
    /* Length of labels. */
    size_t labels_len;
    /* Token windows, n x steps, each token < outputs. */
    uint32_t *tokens;
    /* Length of tokens. */
    size_t tokens_len;
    /* Set by the plugin: how many examples it wrote (all of them: n). */
    size_t written;
};

/* The functions of a plugin's environment offerings (ABI 4). `instance` is
 * what create() made for an LN_ENVIRONMENT offering. */
struct LnEnvironmentApi {
    /* Writes the instance's task. */
    LnStatus (*task)(void *instance, LnTask *out, LnError *error);
    /* Describes probe set `index` (0..n_probes); may be NULL when no
     * offering has probe sets. */
    LnStatus (*probe)(void *instance, size_t index, LnProbe *out, LnError *error);
    /* Writes the task direction, n (the task's inputs) values, into out; may
     * be NULL when no offering has one. */
    LnStatus (*direction)(void *instance, float *out, size_t n, LnError *error);
    /* Fills batch with batch->n examples of `what` (LN_FILL_TRAIN,
     * LN_FILL_HELDOUT, or LN_FILL_PROBE for probe set `index`), drawn from
     * `seed` and nothing else, and sets batch->written. May run on several
     * threads at once for one instance. */
    LnStatus (*fill)(void *instance, uint32_t what, size_t index, uint64_t seed,
                     LnBatch *batch, LnError *error);
};

/* The entry symbol's type. */
typedef const LnPlugin *(*LnEntry)(void);

/* The entry point every plugin library defines, exported under the name
 * LINEAGE_PLUGIN_ENTRY:
 *
 *     LINEAGE_PLUGIN_EXPORT const LnPlugin *lineage_plugin_entry(void)
 *     {
 *         return &my_plugin;   // a static, constant descriptor
 *     }
 */
LINEAGE_PLUGIN_EXPORT const LnPlugin *lineage_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* LINEAGE_PLUGIN_H */
