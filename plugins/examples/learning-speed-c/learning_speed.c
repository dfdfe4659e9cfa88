/*
 * learning_speed.c - a Lineage plugin in plain C: how fast an organism
 * learns during its lifetime, read from its held-out learning curve.
 *
 * It offers one fitness function, `learning_speed`, with two metrics, both
 * smaller-is-better:
 *
 *   auc            the normalised area under the held-out loss curve: the
 *                  trapezoid area divided by the steps it spans (the last
 *                  step, for a curve that starts at birth, step 0); with a
 *                  single point, or a curve spanning no steps, the loss
 *                  itself. It is the mean held-out loss over the lifetime.
 *   steps_to_half  the first step at which the held-out loss has fallen by
 *                  `fraction` (default one half) of its whole fall from birth
 *                  to its minimum, linearly interpolated between points; for
 *                  a curve that never falls, the last step.
 *
 * Organisms whose learning diverged get finite scores worse than those of
 * every organism in the batch that did not diverge (the host rejects NaN and
 * infinity): `auc` is ten times the largest finite held-out loss in the
 * batch (1 when that is not positive), `steps_to_half` the largest step in
 * the batch plus one. A scenario without lifetime learning is an error.
 *
 * Config ([plugins.NAME.config]): `fraction`, a number with
 * 0 < fraction < 1 (default 0.5).
 *
 * Build: see the Makefile; only lineage_plugin.h is needed.
 */
#include "lineage_plugin.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Descriptor --------------------------------------------------------- */

static const LnMetric metrics[] = {
    {.name = "auc", .direction = LN_MINIMIZE},
    {.name = "steps_to_half", .direction = LN_MINIMIZE},
};

/* Metric columns, in the order scores are written. */
enum { METRIC_AUC = 0, METRIC_STEPS_TO_HALF = 1, N_METRICS = 2 };

static const LnOffering offerings[] = {
    {
        .name = "learning_speed",
        .kind = LN_FITNESS,
        .metrics = metrics,
        .n_metrics = N_METRICS,
        .description = "how fast lifetime learning lowers the held-out loss (area under the "
                       "curve, steps to half the fall)",
    },
};

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

/* ---- Instances ----------------------------------------------------------- */

/* One configured `learning_speed`. */
typedef struct {
    /* The fraction of the fall that steps_to_half waits for. */
    double fraction;
} Instance;

/* Parses the TOML literal `value` as a number into *out; 0 on success. */
static int
parse_number(const char *value, double *out)
{
    char *end = NULL;
    if (value == NULL || *value == '\0') {
        return -1;
    }
    *out = strtod(value, &end);
    return (end == value || *end != '\0') ? -1 : 0;
}

static LnStatus
create(size_t offering, const LnConfig *config, void **instance, LnError *error)
{
    double fraction = 0.5;
    Instance *self;
    size_t i;

    if (offering >= sizeof offerings / sizeof offerings[0]) {
        return fail(error, "learning_speed has no offering %zu", offering);
    }
    /* The config and its strings live only during this call: read them now. */
    for (i = 0; config != NULL && i < config->n_entries; i++) {
        const LnConfigEntry *entry = &config->entries[i];
        if (strcmp(entry->key, "fraction") == 0) {
            if (parse_number(entry->value, &fraction) != 0 || !(fraction > 0.0 && fraction < 1.0)) {
                return fail(error,
                            "learning_speed: config key `fraction` must be a number with "
                            "0 < fraction < 1, got %s",
                            entry->value);
            }
        } else {
            return fail(error, "learning_speed: unknown config key `%s` (the only key is `fraction`)",
                        entry->key);
        }
    }

    self = malloc(sizeof *self);
    if (self == NULL) {
        return fail(error, "learning_speed: out of memory");
    }
    self->fraction = fraction;
    *instance = self;
    return LN_OK;
}

static void
destroy(void *instance)
{
    free(instance);
}

/* ---- Scoring ------------------------------------------------------------- */

/* Normalised area under the held-out curve (see the top of the file). */
static double
area_under_curve(const LnCurvePoint *points, size_t n)
{
    double area = 0.0;
    double span = (double)points[n - 1].step - (double)points[0].step;
    size_t i;

    if (n == 1 || span <= 0.0) {
        return points[n - 1].heldout;
    }
    for (i = 1; i < n; i++) {
        double width = (double)points[i].step - (double)points[i - 1].step;
        area += width * ((double)points[i].heldout + (double)points[i - 1].heldout) / 2.0;
    }
    return area / span;
}

/* First step where the held-out loss is down by `fraction` of its fall from
 * birth (the first point) to its minimum, interpolated; the last step when
 * it never falls. */
static double
steps_to_fraction(const LnCurvePoint *points, size_t n, double fraction)
{
    double birth = points[0].heldout;
    double lowest = birth;
    double target;
    size_t i;

    for (i = 1; i < n; i++) {
        if (points[i].heldout < lowest) {
            lowest = points[i].heldout;
        }
    }
    if (!(lowest < birth)) {
        return points[n - 1].step;
    }
    /* birth > target >= lowest, so some point reaches the target, and the
     * one before it (point 0 at worst) lies strictly above it. */
    target = birth - fraction * (birth - lowest);
    for (i = 1; i < n; i++) {
        double now = points[i].heldout;
        if (now <= target) {
            double before = points[i - 1].heldout;
            double s0 = points[i - 1].step;
            double s1 = points[i].step;
            return s0 + (before - target) / (before - now) * (s1 - s0);
        }
    }
    return points[n - 1].step; /* not reached */
}

/* Whether a curve can be scored: points present, in step order, finite. */
static int
curve_is_usable(const LnCurve *curve)
{
    size_t i;
    if (curve->points == NULL || curve->n_points == 0) {
        return 0;
    }
    for (i = 0; i < curve->n_points; i++) {
        if (!isfinite(curve->points[i].heldout)) {
            return 0;
        }
        if (i > 0 && curve->points[i].step < curve->points[i - 1].step) {
            return 0;
        }
    }
    return 1;
}

static LnStatus
evaluate(void *instance, const LnCall *call, LnScores *scores, LnError *error)
{
    const Instance *self = instance;
    const LnHost *host = call->host;
    /* Batch-wide worst case, for the organisms that diverged. */
    double largest_loss = -INFINITY;
    double largest_step = 0.0;
    size_t n_diverged = 0;
    size_t i, j;

    if (scores->n_metrics != N_METRICS || scores->n_organisms != call->n_organisms) {
        return fail(error, "learning_speed: the host's score buffer is %zu x %zu, expected %zu x %d",
                    scores->n_organisms, scores->n_metrics, call->n_organisms, N_METRICS);
    }

    /* Pass 1: score every organism that learned; mark the others with NaN. */
    for (i = 0; i < call->n_organisms; i++) {
        double *row = &scores->values[i * N_METRICS];
        LnCurve curve;

        /* On failure the host has written why into `error`. */
        if (host->curve(host->ctx, i, &curve, error) != LN_OK) {
            return LN_ERROR;
        }
        if (curve.status == LN_LIFE_NONE) {
            return fail(error,
                        "learning_speed needs lifetime learning: the scenario has no [lifetime]");
        }
        if (curve.status != LN_LIFE_COMPLETED && curve.status != LN_LIFE_DIVERGED) {
            return fail(error, "learning_speed: organism %llu has an unknown life status %u",
                        (unsigned long long)call->ids[i], (unsigned)curve.status);
        }

        for (j = 0; j < curve.n_points; j++) {
            const LnCurvePoint *p = &curve.points[j];
            if (isfinite(p->heldout) && p->heldout > largest_loss) {
                largest_loss = p->heldout;
            }
            if (p->step > largest_step) {
                largest_step = p->step;
            }
        }
        if (curve.status == LN_LIFE_DIVERGED && curve.diverged_at > largest_step) {
            largest_step = curve.diverged_at;
        }

        if (curve.status == LN_LIFE_COMPLETED && curve_is_usable(&curve)) {
            row[METRIC_AUC] = area_under_curve(curve.points, curve.n_points);
            row[METRIC_STEPS_TO_HALF] =
                steps_to_fraction(curve.points, curve.n_points, self->fraction);
        } else {
            /* Diverged (or a curve with nothing finite to score). */
            row[METRIC_AUC] = NAN;
            row[METRIC_STEPS_TO_HALF] = NAN;
            n_diverged++;
        }
    }

    /* Pass 2: the worst finite scores of the batch for the rest. A completed
     * organism's auc is at most its largest loss, and its steps_to_half at
     * most its last step, so these rank below every one of them. */
    if (n_diverged > 0) {
        double worst_auc = largest_loss > 0.0 ? 10.0 * largest_loss : 1.0;
        double worst_steps = largest_step + 1.0;
        for (i = 0; i < call->n_organisms; i++) {
            double *row = &scores->values[i * N_METRICS];
            if (isnan(row[METRIC_AUC])) {
                row[METRIC_AUC] = worst_auc;
                row[METRIC_STEPS_TO_HALF] = worst_steps;
            }
        }
    }

    scores->written = call->n_organisms * N_METRICS;
    return LN_OK;
}

/* ---- Entry point ----------------------------------------------------------- */

static const LnPlugin plugin = {
    .abi_version = LINEAGE_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(LnPlugin),
    .name = "learning_speed",
    .version = "1.0.0",
    .description = "how fast organisms learn in their lifetime, from their held-out learning "
                   "curves",
    .offerings = offerings,
    .n_offerings = sizeof offerings / sizeof offerings[0],
    .create = create,
    .evaluate = evaluate,
    .destroy = destroy,
};

LINEAGE_PLUGIN_EXPORT const LnPlugin *
lineage_plugin_entry(void)
{
    return &plugin;
}
