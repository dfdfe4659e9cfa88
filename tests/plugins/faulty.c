/*
 * faulty.c - a plugin that misbehaves on request, for the host's bad-input
 * tests. One source, compiled by the tests into several libraries:
 *
 *   (no switch)          a valid plugin `faulty` (version 0.0.1) offering one
 *                        fitness function `score`, one metric `value`
 *                        (maximised), that misbehaves as config key `mode`
 *                        says (below).
 *   -DFAULTY_ABI=999     the descriptor carries abi_version 999 (any number):
 *                        the host must refuse the library before calling
 *                        anything else in it.
 *   -DFAULTY_NO_ENTRY    no lineage_plugin_entry symbol; the library exports
 *                        faulty_entry_by_another_name instead, so it is still
 *                        a valid shared library.
 *
 * Config `mode` (a TOML string, which arrives with its quotes: "\"nan\""):
 *
 *   "ok"          (default) score = the organism's first real gene, or the
 *                 number of one bits of its genome when it has no real genes
 *   "nan"         organism 0 scores NaN, the others as "ok"
 *   "inf"         organism 0 scores +infinity, the others as "ok"
 *   "few"         scores as "ok" but writes, and reports in `written`, one
 *                 value fewer than n_organisms * n_metrics
 *   "error"       evaluate fails with "faulty failed on purpose"
 *   "bad_config"  create fails (so does any unknown mode)
 *
 * Environment variable FAULTY_FAIL_FROM=G (read when an instance is created):
 * evaluate fails from generation G
 * on, in any mode (a test aborts a run this way, then resumes it unset).
 *
 * Environment variable FAULTY_CRASH=segv|abort|hang (read when an instance
 * is created): evaluate dereferences NULL, calls abort(), or never returns
 * (pause() forever), at generation FAULTY_CRASH_AT=G only, or at every
 * generation when FAULTY_CRASH_AT is unset. For the isolation tests: a
 * plugin run with isolation = "process" must survive all three.
 *
 * Build: cc -shared -fPIC -std=c11 -Wall -Wextra -Werror
 *           -I plugins/sdk/include [switches] -o libfaulty.so tests/plugins/faulty.c
 */
/* pause(), for the "hang" crash. */
#define _POSIX_C_SOURCE 200809L

#include "lineage_plugin.h"

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FAULTY_ABI
#define FAULTY_ABI LINEAGE_PLUGIN_ABI_VERSION
#endif

typedef enum { MODE_OK, MODE_NAN, MODE_INF, MODE_FEW, MODE_ERROR } Mode;

typedef enum { CRASH_NONE, CRASH_SEGV, CRASH_ABORT, CRASH_HANG } Crash;

/* A configured `score`. */
typedef struct {
    Mode mode;
    /* Fail from this generation on (FAULTY_FAIL_FROM), or -1. */
    long fail_from;
    /* How to crash (FAULTY_CRASH), and at which generation (FAULTY_CRASH_AT,
       or -1 for every generation). */
    Crash crash;
    long crash_at;
} Instance;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
/* Writes a message into the host's buffer and returns LN_ERROR. */
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

/* Whether the TOML string literal `literal` ("x" or 'x') holds `text`. */
static int
string_is(const char *literal, const char *text)
{
    size_t n = strlen(literal);
    size_t m = strlen(text);
    return n == m + 2 && (literal[0] == '"' || literal[0] == '\'') && literal[n - 1] == literal[0]
           && strncmp(literal + 1, text, m) == 0;
}

static LnStatus
create(size_t offering, const LnConfig *config, void **instance, LnError *error)
{
    Mode mode = MODE_OK;
    Instance *self;
    size_t i;

    if (offering != 0) {
        return fail(error, "faulty has no offering %zu", offering);
    }
    for (i = 0; config != NULL && i < config->n_entries; i++) {
        const char *value = config->entries[i].value;
        if (strcmp(config->entries[i].key, "mode") != 0) {
            continue;
        }
        if (string_is(value, "ok")) {
            mode = MODE_OK;
        } else if (string_is(value, "nan")) {
            mode = MODE_NAN;
        } else if (string_is(value, "inf")) {
            mode = MODE_INF;
        } else if (string_is(value, "few")) {
            mode = MODE_FEW;
        } else if (string_is(value, "error")) {
            mode = MODE_ERROR;
        } else if (string_is(value, "bad_config")) {
            return fail(error, "faulty rejects mode = \"bad_config\" on purpose");
        } else {
            return fail(error, "faulty: unknown mode %s", value);
        }
    }
    self = malloc(sizeof *self);
    if (self == NULL) {
        return fail(error, "faulty: out of memory");
    }
    self->mode = mode;
    /* Read once here, not per call: evaluate() stays as cheap as the
       plugin-call benchmark needs. */
    const char *from = getenv("FAULTY_FAIL_FROM");
    self->fail_from = (from != NULL && *from != '\0') ? (long)strtoul(from, NULL, 10) : -1;
    const char *crash = getenv("FAULTY_CRASH");
    self->crash = CRASH_NONE;
    if (crash != NULL && strcmp(crash, "segv") == 0) {
        self->crash = CRASH_SEGV;
    } else if (crash != NULL && strcmp(crash, "abort") == 0) {
        self->crash = CRASH_ABORT;
    } else if (crash != NULL && strcmp(crash, "hang") == 0) {
        self->crash = CRASH_HANG;
    }
    const char *at = getenv("FAULTY_CRASH_AT");
    self->crash_at = (at != NULL && *at != '\0') ? (long)strtoul(at, NULL, 10) : -1;
    *instance = self;
    return LN_OK;
}

static void
destroy(void *instance)
{
    free(instance);
}

/* The "ok" score of organism `organism` into *out. */
static LnStatus
honest_score(const LnHost *host, size_t organism, double *out, LnError *error)
{
    LnGenome genome;
    size_t words, w;
    double ones = 0.0;

    if (host->genome(host->ctx, organism, &genome, error) != LN_OK) {
        return LN_ERROR;
    }
    if (genome.n_genes > 0) {
        *out = genome.genes[0];
        return LN_OK;
    }
    words = (genome.n_bits + 63) / 64;
    for (w = 0; w < words; w++) {
        uint64_t word = genome.bits[w];
        while (word != 0) {
            word &= word - 1;
            ones += 1.0;
        }
    }
    *out = ones;
    return LN_OK;
}

static LnStatus
evaluate(void *instance, const LnCall *call, LnScores *scores, LnError *error)
{
    const Instance *self = instance;
    size_t total = scores->n_organisms * scores->n_metrics;
    size_t i;

    if (self->mode == MODE_ERROR) {
        return fail(error, "faulty failed on purpose");
    }
    if (self->crash != CRASH_NONE
        && (self->crash_at < 0 || (long)call->generation == self->crash_at)) {
        if (self->crash == CRASH_SEGV) {
            /* Through a volatile pointer, so the compiler cannot turn the
               store into a trap instruction. */
            int *volatile nowhere = NULL;
            *nowhere = 42;
        } else if (self->crash == CRASH_ABORT) {
            abort();
        } else {
            for (;;) {
                pause();
            }
        }
    }
    /* FAULTY_FAIL_FROM=G in the environment: fail from generation G on, in
       any mode (lets a test abort a run, then resume it with the variable
       unset). */
    if (self->fail_from >= 0 && (long)call->generation >= self->fail_from) {
        return fail(error, "faulty failed at generation %u on purpose", (unsigned)call->generation);
    }
    if (scores->n_metrics != 1 || scores->n_organisms != call->n_organisms) {
        return fail(error, "faulty: score buffer is %zu x %zu, expected %zu x 1",
                    scores->n_organisms, scores->n_metrics, call->n_organisms);
    }
    for (i = 0; i < call->n_organisms; i++) {
        double value;
        if (honest_score(call->host, i, &value, error) != LN_OK) {
            return LN_ERROR;
        }
        if (i == 0 && self->mode == MODE_NAN) {
            value = NAN;
        } else if (i == 0 && self->mode == MODE_INF) {
            value = INFINITY;
        }
        /* "few" leaves the last value as the host prefilled it. */
        if (self->mode == MODE_FEW && i + 1 == total) {
            break;
        }
        scores->values[i] = value;
    }
    scores->written = (self->mode == MODE_FEW && total > 0) ? total - 1 : total;
    return LN_OK;
}

static const LnMetric metrics[] = {
    {.name = "value", .direction = LN_MAXIMIZE},
};

static const LnOffering offerings[] = {
    {
        .name = "score",
        .kind = LN_FITNESS,
        .metrics = metrics,
        .n_metrics = 1,
        .description = "the first real gene or the count of one bits, misbehaving on request",
    },
};

static const LnPlugin plugin = {
    .abi_version = FAULTY_ABI,
    /* A library built with an older header ends before offering_reads
     * (versions 1 and 2) or before environment (version 3). */
    .struct_size = FAULTY_ABI >= 4   ? sizeof(LnPlugin)
                   : FAULTY_ABI == 3 ? offsetof(LnPlugin, environment)
                                     : offsetof(LnPlugin, offering_reads),
    .name = "faulty",
    .version = "0.0.1",
    .description = "a plugin that misbehaves on request, for the host's tests",
    .offerings = offerings,
    .n_offerings = 1,
    .create = create,
    .evaluate = evaluate,
    .destroy = destroy,
};

#ifndef FAULTY_NO_ENTRY
LINEAGE_PLUGIN_EXPORT const LnPlugin *
lineage_plugin_entry(void)
{
    return &plugin;
}
#else
/* The descriptor under a name the host does not look for. */
LINEAGE_PLUGIN_EXPORT const void *faulty_entry_by_another_name(void);

LINEAGE_PLUGIN_EXPORT const void *
faulty_entry_by_another_name(void)
{
    return &plugin;
}
#endif
