/* A C environment plugin for the tests (ABI 4): Gaussian clusters, a
 * classification task, drawn from each fill's seed alone; and faults on
 * demand, to check what the host does with a batch that breaks the task.
 *
 * Configuration: `dim` (inputs, default 4), `classes` (default 3),
 * `heldout` (default 200), `spread` (noise sd, default 0.5), `direction`
 * (1: declare class 0's centre as the task direction; default 0). Unknown
 * keys and bad values are refused, naming the key.
 *
 * Broken descriptors, at build time: -DFAULTY_ENV_NO_API (an environment
 * offering without the environment table), -DFAULTY_ENV_METRICS (an
 * environment declaring a metric), -DFAULTY_ENV_NULL_PROBE (a probe set
 * without a name).
 *
 * Faults, for training fills only, from the environment (a test device,
 * not something a real plugin reads): FAULTY_ENV_MODE = nan | label |
 * count | error | crash | unwritten, from the fill after the first
 * FAULTY_ENV_AFTER (default 0) training fills of the process. Built with
 * -DFAULTY_ENV_BROKEN, the library has the bug built in: mode nan after 24
 * fills, unless the environment says otherwise.
 */
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lineage_plugin.h"

typedef struct {
    size_t dim, classes, heldout;
    double spread;
    int direction;
} Clusters;

static atomic_size_t train_fills;

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (next(s) >> 11) * (1.0 / 9007199254740992.0); }

static double normal(uint64_t *s) {
    double u = 1.0 - uniform(s), v = uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void fail(LnError *error, const char *message) {
    if (error && error->message && error->capacity > 0) {
        snprintf(error->message, error->capacity, "%s", message);
    }
}

static LnStatus create(size_t offering, const LnConfig *config, void **instance,
                       LnError *error) {
    (void)offering;
    Clusters c = {4, 3, 200, 0.5, 0};
    char message[256];
    for (size_t i = 0; config && i < config->n_entries; i++) {
        const char *k = config->entries[i].key, *v = config->entries[i].value;
        char *end = NULL;
        double x = strtod(v, &end);
        if (end == v) {
            snprintf(message, sizeof message, "`%s` must be a number, found %s", k, v);
            fail(error, message);
            return LN_ERROR;
        }
        if (strcmp(k, "dim") == 0 && x >= 1 && x <= 4096) {
            c.dim = (size_t)x;
        } else if (strcmp(k, "classes") == 0 && x >= 2 && x <= 1000) {
            c.classes = (size_t)x;
        } else if (strcmp(k, "heldout") == 0 && x >= 1 && x <= 1e6) {
            c.heldout = (size_t)x;
        } else if (strcmp(k, "spread") == 0 && x >= 0 && isfinite(x)) {
            c.spread = x;
        } else if (strcmp(k, "direction") == 0 && (x == 0 || x == 1)) {
            c.direction = (int)x;
        } else if (strcmp(k, "dim") == 0 || strcmp(k, "classes") == 0 ||
                   strcmp(k, "heldout") == 0 || strcmp(k, "spread") == 0 ||
                   strcmp(k, "direction") == 0) {
            snprintf(message, sizeof message, "`%s` is out of range: %s", k, v);
            fail(error, message);
            return LN_ERROR;
        } else {
            snprintf(message, sizeof message,
                     "unknown configuration key `%s` (expected: dim, classes, heldout, spread, direction)",
                     k);
            fail(error, message);
            return LN_ERROR;
        }
    }
    Clusters *out = malloc(sizeof *out);
    if (!out) {
        fail(error, "out of memory");
        return LN_ERROR;
    }
    *out = c;
    *instance = out;
    return LN_OK;
}

static void destroy(void *instance) { free(instance); }

static LnStatus task(void *instance, LnTask *out, LnError *error) {
    (void)error;
    const Clusters *c = instance;
    out->kind = LN_DATA_LABELED;
    out->inputs = c->dim;
    out->outputs = c->classes;
    out->steps = 0;
    out->heldout = c->heldout;
#ifdef FAULTY_ENV_NULL_PROBE
    out->n_probes = 1;
#else
    out->n_probes = 0;
#endif
    out->has_direction = (uint32_t)c->direction;
    return LN_OK;
}

/* Class k's centre, coordinate j: the same in every fill. */
static double centre(size_t k, size_t j) {
    uint64_t s = 1000003u * (uint64_t)k + (uint64_t)j;
    return 2.0 * uniform(&s) - 1.0;
}

static LnStatus direction(void *instance, float *out, size_t n, LnError *error) {
    const Clusters *c = instance;
    if (n != c->dim) {
        fail(error, "the host asked for a direction of the wrong length");
        return LN_ERROR;
    }
    for (size_t j = 0; j < n; j++) {
        out[j] = (float)centre(0, j);
    }
    return LN_OK;
}

static LnStatus probe(void *instance, size_t index, LnProbe *out, LnError *error) {
    (void)instance;
    (void)index;
    (void)error;
    out->name = NULL; /* broken on purpose (FAULTY_ENV_NULL_PROBE) */
    out->n = 10;
    out->choices = NULL;
    out->n_choices = 0;
    return LN_OK;
}

static LnStatus fill(void *instance, uint32_t what, size_t index, uint64_t seed, LnBatch *b,
                     LnError *error) {
    (void)index;
    const Clusters *c = instance;
    uint64_t s = seed;
    for (size_t i = 0; i < b->n; i++) {
        uint32_t k = (uint32_t)(next(&s) % c->classes);
        b->labels[i] = k;
        for (size_t j = 0; j < c->dim; j++) {
            b->x[i * c->dim + j] = (float)(centre(k, j) + c->spread * normal(&s));
        }
    }
    b->written = b->n;
    if (what != LN_FILL_TRAIN) {
        return LN_OK;
    }
    const char *mode = getenv("FAULTY_ENV_MODE");
    const char *after = getenv("FAULTY_ENV_AFTER");
#ifdef FAULTY_ENV_BROKEN
    if (!mode) {
        mode = "nan";
        after = "24";
    }
#endif
    size_t done = atomic_fetch_add(&train_fills, 1);
    if (!mode || done < (after ? (size_t)strtoul(after, NULL, 10) : 0)) {
        return LN_OK;
    }
    if (strcmp(mode, "nan") == 0) {
        b->x[0] = NAN;
    } else if (strcmp(mode, "label") == 0) {
        b->labels[b->n - 1] = (uint32_t)c->classes + 4;
    } else if (strcmp(mode, "count") == 0) {
        b->written = b->n - 1;
    } else if (strcmp(mode, "unwritten") == 0) {
        b->x[b->x_len - 1] = NAN; /* as the host prefilled it */
    } else if (strcmp(mode, "error") == 0) {
        fail(error, "a deliberate failure");
        return LN_ERROR;
    } else if (strcmp(mode, "crash") == 0) {
        raise(SIGSEGV);
    }
    return LN_OK;
}

/* Not static: a build without it in the descriptor must not warn. */
const LnEnvironmentApi faulty_env_api = {task, probe, direction, fill};
#ifdef FAULTY_ENV_METRICS
static const LnMetric metrics[] = {{"oops", LN_MAXIMIZE}};
#define METRICS metrics, 1
#else
#define METRICS NULL, 0
#endif
static const LnOffering offerings[] = {
    {"clusters", LN_ENVIRONMENT, METRICS, "Gaussian clusters from the seed, with faults on demand"},
};
static const LnPlugin plugin = {
    .abi_version = LINEAGE_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(LnPlugin),
    .name = "faulty_env",
    .version = "1.0.0",
    .description = "test environment with faults on demand",
    .offerings = offerings,
    .n_offerings = 1,
    .create = create,
    .evaluate = NULL,
    .destroy = destroy,
    .offering_reads = NULL,
#ifdef FAULTY_ENV_NO_API
    .environment = NULL,
#else
    .environment = &faulty_env_api,
#endif
};

LINEAGE_PLUGIN_EXPORT const LnPlugin *lineage_plugin_entry(void) { return &plugin; }
