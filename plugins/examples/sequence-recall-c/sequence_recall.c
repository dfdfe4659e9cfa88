/*
 * sequence_recall.c - a Lineage environment plugin in plain C (ABI 4): delayed
 * recall of a short sequence of symbols, a classic test of working memory
 * for recurrent networks.
 *
 * It offers one environment, `recall`. Each example is a sequence of
 * steps = 2 * length + delay time steps over inputs = symbols + 1 channels:
 *
 *   steps 0 .. length-1          presentation: symbol s[t] one-hot on channel
 *                                s[t] (the cue channel, the last one, is 0)
 *   the next `delay` steps       blank: every channel 0
 *   the last `length` steps      recall: the cue channel is 1, the symbol
 *                                channels 0; the network must output s[0],
 *                                s[1], ... in order
 *
 * The symbols s[0..length) are drawn uniformly (with repetition) from
 * 0..symbols. Labels are the symbol index s[r] at recall step r and
 * LN_IGNORE on every other step, so only recall is scored: classes =
 * symbols, and a network that has learned nothing scores ln(symbols) per
 * recall step. With `noise` > 0, every input value of every step gets
 * Gaussian noise of that standard deviation.
 *
 * Two probe sets (ABI 2 probes, scored at every point of every learning
 * curve into probes.csv), `probe` sequences each, drawn like the held-out
 * set: `first`, where only the first recall step is scored, and `last`,
 * where only the last one is; together they show whether the start or the
 * end of a sequence is remembered first.
 *
 * Config (every key of the scenario's environment table but plugin and
 * seed), each optional:
 *   symbols  integer, 2 to 1024, default 4: the alphabet (the classes)
 *   length   integer, 1 to 256, default 3: symbols per sequence
 *   delay    integer, 0 to 4096, default 2: blank steps before recall
 *   noise    number >= 0, default 0: sd of the Gaussian input noise
 *   heldout  integer, 1 to 1000000, default 512: held-out sequences
 *   probe    integer, 0 to 1000000, default 256: sequences per probe set
 *            (0: no probe sets)
 * An unknown key or a bad value is refused with a message naming the key.
 *
 * Every fill draws from its seed alone (SplitMix64 for the symbols and
 * uniforms, Box-Muller for the noise) and keeps no state: fills may run on
 * several threads at once, and a run is the same whatever its thread count.
 *
 * Build: see the Makefile; only lineage_plugin.h is needed.
 */
#include "lineage_plugin.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Descriptor --------------------------------------------------------- */

static const LnOffering offerings[] = {
    {
        .name = "recall",
        .kind = LN_ENVIRONMENT,
        .metrics = NULL,
        .n_metrics = 0,
        .description = "delayed recall: see `length` one-hot symbols, wait `delay` blank steps, "
                       "then output the symbols in order on a cue",
    },
};

/* The probe sets, in index order: which recall step each one scores. */
enum { PROBE_FIRST = 0, PROBE_LAST = 1, N_PROBES = 2 };
static const char *const probe_names[N_PROBES] = {"first", "last"};

/* ---- Errors -------------------------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
/* Writes a message into the host's buffer (truncated to fit, always
 * NUL-terminated) and returns LN_ERROR. */
static LnStatus
fail(LnError *error, const char *format, ...)
{
    if (error != NULL && error->message != NULL && error->capacity > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(error->message, error->capacity, format, args);
        va_end(args);
    }
    return LN_ERROR;
}

/* ---- Random numbers: everything a fill draws comes from its seed ---------- */

/* A fill's own generator: SplitMix64, and the spare normal of Box-Muller. */
typedef struct {
    uint64_t state;
    int has_spare;
    double spare;
} Rng;

static uint64_t
next_u64(Rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 bits. */
static double
uniform(Rng *rng)
{
    return (double)(next_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in 0..n-1 (n >= 1), without modulo bias (rejection). */
static uint32_t
below(Rng *rng, uint32_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do {
        r = next_u64(rng);
    } while (r >= limit);
    return (uint32_t)(r % n);
}

/* Standard normal by Box-Muller, two per pair of uniforms. */
static double
normal(Rng *rng)
{
    double u, v, radius;
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    u = 1.0 - uniform(rng); /* in (0, 1]: log(u) is finite */
    v = uniform(rng);
    radius = sqrt(-2.0 * log(u));
    rng->spare = radius * sin(6.283185307179586 * v);
    rng->has_spare = 1;
    return radius * cos(6.283185307179586 * v);
}

/* ---- Instances ----------------------------------------------------------- */

/* One configured `recall`. Read-only after create(): fills share it. */
typedef struct {
    size_t symbols, length, delay, heldout, probe;
    double noise;
} Recall;

/* The steps of one sequence: presentation, delay, recall. */
static size_t
steps_of(const Recall *self)
{
    return 2 * self->length + self->delay;
}

/* Parses the TOML literal `value` as a decimal integer in [lo, hi]; 0 on
 * success. */
static int
parse_count(const char *value, long long lo, long long hi, size_t *out)
{
    char *end = NULL;
    long long v;
    if (value == NULL || *value == '\0') {
        return -1;
    }
    errno = 0;
    v = strtoll(value, &end, 10);
    if (end == value || *end != '\0' || errno != 0 || v < lo || v > hi) {
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

/* Parses the TOML literal `value` as a finite number; 0 on success. */
static int
parse_number(const char *value, double *out)
{
    char *end = NULL;
    if (value == NULL || *value == '\0') {
        return -1;
    }
    *out = strtod(value, &end);
    return (end == value || *end != '\0' || !isfinite(*out)) ? -1 : 0;
}

/* The integer keys: name, bounds, where the value goes. */
typedef struct {
    const char *key;
    long long lo, hi;
    size_t offset;
} CountKey;

static const CountKey count_keys[] = {
    {"symbols", 2, 1024, offsetof(Recall, symbols)},
    {"length", 1, 256, offsetof(Recall, length)},
    {"delay", 0, 4096, offsetof(Recall, delay)},
    {"heldout", 1, 1000000, offsetof(Recall, heldout)},
    {"probe", 0, 1000000, offsetof(Recall, probe)},
};
#define N_COUNT_KEYS (sizeof count_keys / sizeof count_keys[0])

static LnStatus
create(size_t offering, const LnConfig *config, void **instance, LnError *error)
{
    Recall cfg = {.symbols = 4, .length = 3, .delay = 2, .heldout = 512, .probe = 256, .noise = 0.0};
    Recall *self;
    size_t i, k;

    if (offering >= sizeof offerings / sizeof offerings[0]) {
        return fail(error, "sequence_recall has no offering %zu", offering);
    }
    /* The config and its strings live only during this call: read them now. */
    for (i = 0; config != NULL && i < config->n_entries; i++) {
        const char *key = config->entries[i].key;
        const char *value = config->entries[i].value;
        int known = 0;
        for (k = 0; k < N_COUNT_KEYS; k++) {
            const CountKey *c = &count_keys[k];
            if (strcmp(key, c->key) == 0) {
                size_t *slot = (size_t *)((char *)&cfg + c->offset);
                if (parse_count(value, c->lo, c->hi, slot) != 0) {
                    return fail(error, "`%s` must be an integer from %lld to %lld, found %s", key,
                                c->lo, c->hi, value);
                }
                known = 1;
                break;
            }
        }
        if (known) {
            continue;
        }
        if (strcmp(key, "noise") == 0) {
            if (parse_number(value, &cfg.noise) != 0 || cfg.noise < 0.0) {
                return fail(error, "`noise` must be a number >= 0 (a standard deviation), found %s",
                            value);
            }
        } else {
            return fail(error,
                        "unknown key `%s` (the keys are symbols, length, delay, noise, heldout, "
                        "probe)",
                        key);
        }
    }

    self = malloc(sizeof *self);
    if (self == NULL) {
        return fail(error, "sequence_recall: out of memory");
    }
    *self = cfg;
    *instance = self;
    return LN_OK;
}

static void
destroy(void *instance)
{
    free(instance);
}

/* ---- The task ------------------------------------------------------------ */

static LnStatus
task(void *instance, LnTask *out, LnError *error)
{
    const Recall *self = instance;
    (void)error;
    out->kind = LN_DATA_SEQUENCES;
    out->inputs = self->symbols + 1; /* one-hot symbol, then the cue */
    out->outputs = self->symbols;    /* classes */
    out->steps = steps_of(self);
    out->heldout = self->heldout;
    out->n_probes = self->probe > 0 ? N_PROBES : 0;
    out->has_direction = 0;
    return LN_OK;
}

static LnStatus
probe(void *instance, size_t index, LnProbe *out, LnError *error)
{
    const Recall *self = instance;
    if (self->probe == 0 || index >= N_PROBES) {
        return fail(error, "sequence_recall has no probe set %zu", index);
    }
    out->name = probe_names[index];
    out->n = self->probe;
    out->choices = NULL; /* every symbol */
    out->n_choices = 0;
    return LN_OK;
}

/* Writes n sequences into the batch. `scored` is the only recall step that
 * is labelled (probe sets), or `length` for every recall step. */
static void
sequences(const Recall *self, Rng *rng, size_t scored, LnBatch *b)
{
    const size_t steps = steps_of(self);
    const size_t inputs = self->symbols + 1;
    const size_t recall_from = self->length + self->delay;
    uint32_t seq[256]; /* length <= 256, checked in create() */
    size_t i, t, c;

    for (i = 0; i < b->n; i++) {
        float *x = &b->x[i * steps * inputs];
        uint32_t *labels = &b->labels[i * steps];

        for (t = 0; t < self->length; t++) {
            seq[t] = below(rng, (uint32_t)self->symbols);
        }
        for (t = 0; t < steps; t++) {
            float *row = &x[t * inputs];
            for (c = 0; c < inputs; c++) {
                row[c] = 0.0f;
            }
            labels[t] = LN_IGNORE;
            if (t < self->length) {
                row[seq[t]] = 1.0f; /* presentation */
            } else if (t >= recall_from) {
                size_t r = t - recall_from;
                row[self->symbols] = 1.0f; /* the cue */
                if (scored == self->length || scored == r) {
                    labels[t] = seq[r];
                }
            }
            if (self->noise > 0.0) {
                for (c = 0; c < inputs; c++) {
                    row[c] += (float)(self->noise * normal(rng));
                }
            }
        }
    }
}

static LnStatus
fill(void *instance, uint32_t what, size_t index, uint64_t seed, LnBatch *batch, LnError *error)
{
    const Recall *self = instance;
    const size_t steps = steps_of(self);
    const size_t inputs = self->symbols + 1;
    Rng rng = {.state = seed, .has_spare = 0, .spare = 0.0};
    size_t scored;

    /* The host sized the buffers from task(); check rather than overrun. */
    if (batch->kind != LN_DATA_SEQUENCES || batch->steps != steps ||
        batch->x_len != batch->n * steps * inputs || batch->labels_len != batch->n * steps) {
        return fail(error,
                    "sequence_recall: the host's batch (kind %u, %zu steps, %zu inputs, %zu "
                    "labels) does not fit %zu sequences of %zu steps x %zu inputs",
                    (unsigned)batch->kind, batch->steps, batch->x_len, batch->labels_len,
                    batch->n, steps, inputs);
    }
    switch (what) {
    case LN_FILL_TRAIN:
    case LN_FILL_HELDOUT:
        scored = self->length;
        break;
    case LN_FILL_PROBE:
        if (self->probe == 0 || index >= N_PROBES) {
            return fail(error, "sequence_recall has no probe set %zu", index);
        }
        scored = index == PROBE_FIRST ? 0 : self->length - 1;
        break;
    default:
        return fail(error, "sequence_recall: unknown fill kind %u", (unsigned)what);
    }
    sequences(self, &rng, scored, batch);
    batch->written = batch->n;
    return LN_OK;
}

/* ---- Entry point ----------------------------------------------------------- */

static const LnEnvironmentApi environment = {
    .task = task,
    .probe = probe,
    .direction = NULL,
    .fill = fill,
};

static const LnPlugin plugin = {
    .abi_version = LINEAGE_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(LnPlugin),
    .name = "sequence_recall",
    .version = "1.0.0",
    .description = "a delayed-recall environment for recurrent networks",
    .offerings = offerings,
    .n_offerings = sizeof offerings / sizeof offerings[0],
    .create = create,
    .evaluate = NULL, /* only an environment: nothing to score */
    .destroy = destroy,
    .offering_reads = NULL,
    .environment = &environment,
};

LINEAGE_PLUGIN_EXPORT const LnPlugin *
lineage_plugin_entry(void)
{
    return &plugin;
}
