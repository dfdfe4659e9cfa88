//! The files `lineage new-plugin` writes: a Rust or C project with one
//! fitness function (`distance`) or one environment (`halfspace`), its
//! scenario and README. `{name}`, `{ident}`, `{sdk}`, `{lib}`, `{library}`
//! and `{build}` are filled in by `plugins::new_plugin`.

pub(super) const RUST_CARGO: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

# A plugin is a shared library the Lineage host loads at run time.
[lib]
crate-type = ["cdylib"]

[dependencies]
lineage-plugin = { path = "{sdk}" }

# Its own workspace, wherever it lives.
[workspace]
"#;

pub(super) const RUST_LIB: &str = r#"//! `{name}`: a Lineage plugin with one fitness function, `distance`: how
//! far an organism's real genes are from a target (minimised).
//!
//! Configure it from the scenario:
//!
//! ```toml
//! [plugins.{ident}.config]
//! target = 0.25   # where every gene should be (default 0.5)
//! ```

use lineage_plugin::{
    export_plugin, Batch, Config, Error, Evaluate, Metric, Offering, Plugin, Scores,
};

/// Euclidean distance of the real genes to `target` (for a genome of bits
/// only: the fraction of bits that differ from `target >= 0.5`).
struct Distance {
    target: f64,
}

impl Evaluate for Distance {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        for i in 0..batch.len() {
            let genome = batch.genome(i)?;
            let d = if genome.genes.is_empty() {
                let want = self.target >= 0.5;
                let wrong = (0..genome.n_bits).filter(|&b| genome.bit(b) != want).count();
                wrong as f64 / genome.n_bits.max(1) as f64
            } else {
                genome
                    .genes
                    .iter()
                    .map(|x| (x - self.target) * (x - self.target))
                    .sum::<f64>()
                    .sqrt()
            };
            scores.set(i, 0, d);
        }
        Ok(())
    }
}

struct ThisPlugin;

impl Plugin for ThisPlugin {
    const NAME: &'static str = "{ident}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "distance of the genes to a target";

    fn offerings() -> Vec<Offering> {
        vec![Offering::fitness(
            "distance",
            "Euclidean distance of the real genes to `target`",
            vec![Metric::minimize("distance")],
        )]
    }

    fn create(offering: &str, config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        config.expect_keys(&["target"])?;
        let target = config.f64("target")?.unwrap_or(0.5);
        if !target.is_finite() {
            return Err(Error::new(format!("target must be finite, found {target}")));
        }
        match offering {
            "distance" => Ok(Box::new(Distance { target })),
            other => Err(Error::new(format!("no offering `{other}`"))),
        }
    }
}

export_plugin!(ThisPlugin);
"#;

pub(super) const C_SOURCE: &str = r#"/* {name}: a Lineage plugin with one fitness function, `distance`: how far
 * an organism's real genes are from a target (minimised).
 *
 * Configure it from the scenario:
 *
 *   [plugins.{ident}.config]
 *   target = 0.25   # where every gene should be (default 0.5)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lineage_plugin.h"

typedef struct {
    double target;
} Distance;

static void fail(LnError *error, const char *message) {
    if (error && error->message && error->capacity > 0) {
        snprintf(error->message, error->capacity, "%s", message);
    }
}

static LnStatus create(size_t offering, const LnConfig *config, void **instance,
                       LnError *error) {
    (void)offering; /* one offering */
    Distance *d = malloc(sizeof *d);
    if (!d) {
        fail(error, "out of memory");
        return LN_ERROR;
    }
    d->target = 0.5;
    for (size_t i = 0; config && i < config->n_entries; i++) {
        const LnConfigEntry *e = &config->entries[i];
        if (strcmp(e->key, "target") != 0) {
            char message[256];
            snprintf(message, sizeof message, "unknown configuration key `%s` (expected: target)",
                     e->key);
            fail(error, message);
            free(d);
            return LN_ERROR;
        }
        char *end = NULL;
        d->target = strtod(e->value, &end);
        if (end == e->value || !isfinite(d->target)) {
            fail(error, "target: expected a finite number");
            free(d);
            return LN_ERROR;
        }
    }
    *instance = d;
    return LN_OK;
}

static LnStatus evaluate(void *instance, const LnCall *call, LnScores *scores, LnError *error) {
    const Distance *d = instance;
    const LnHost *host = call->host;
    for (size_t i = 0; i < call->n_organisms; i++) {
        LnGenome g;
        if (host->genome(host->ctx, i, &g, error) != LN_OK) {
            return LN_ERROR;
        }
        double sum = 0.0;
        if (g.n_genes > 0) {
            for (size_t k = 0; k < g.n_genes; k++) {
                double z = g.genes[k] - d->target;
                sum += z * z;
            }
            sum = sqrt(sum);
        } else {
            int want = d->target >= 0.5;
            size_t wrong = 0;
            for (size_t b = 0; b < g.n_bits; b++) {
                int bit = (int)((g.bits[b / 64] >> (b % 64)) & 1u);
                wrong += bit != want;
            }
            sum = g.n_bits ? (double)wrong / (double)g.n_bits : 0.0;
        }
        scores->values[i * scores->n_metrics] = sum;
    }
    scores->written = scores->n_organisms * scores->n_metrics;
    return LN_OK;
}

static void destroy(void *instance) {
    free(instance);
}

static const LnMetric METRICS[] = {{"distance", LN_MINIMIZE}};
static const LnOffering OFFERINGS[] = {
    {"distance", LN_FITNESS, METRICS, 1, "Euclidean distance of the real genes to `target`"},
};
static const LnPlugin PLUGIN = {
    LINEAGE_PLUGIN_ABI_VERSION,
    (uint32_t)sizeof(LnPlugin),
    "{ident}",
    "0.1.0",
    "distance of the genes to a target",
    OFFERINGS,
    1,
    create,
    evaluate,
    destroy,
};

LINEAGE_PLUGIN_EXPORT const LnPlugin *lineage_plugin_entry(void) {
    return &PLUGIN;
}
"#;

pub(super) const C_MAKEFILE: &str = r#"CC ?= cc
CFLAGS ?= -O2 -std=c11 -Wall -Wextra

{lib}: {ident}.c lineage_plugin.h
	$(CC) $(CFLAGS) -shared -fPIC -o $@ {ident}.c -lm

clean:
	rm -f {lib}
"#;

pub(super) const SCENARIO: &str = r#"# A scenario that selects on {name}'s `distance`.
name = "{ident}-demo"
seed = 1
generations = 30
population = 64

[genome]
genes = [{ name = "x", count = 4, min = -1.0, max = 1.0 }]

[plugins.{ident}]
library = "{library}"
on_error = "abort"

[plugins.{ident}.config]
target = 0.25

[fitness]
function = "{ident}:distance"

[selection]
method = "tournament"
tournament_size = 3
elitism = 2

[mutation]
sigma = 0.1
gene_rate = 0.5
"#;

pub(super) const README: &str = r#"# {name}

A Lineage plugin: one fitness function, `distance` (minimised), the distance of an organism's
real genes to a configured target.

    {build}
    lineage plugins check {library}
    lineage run scenario.toml

`scenario.toml` loads it with `[plugins.{ident}] library = "{library}"` and selects on it with
`fitness.function = "{ident}:distance"`. A library named without a path is looked up in the
scenario's folder, in `LINEAGE_PLUGIN_PATH`, and in the Lineage workspace's build output.
"#;

pub(super) const RUST_ENV_LIB: &str = r#"//! `{name}`: a Lineage plugin with one environment, `halfspace`: lifetimes
//! learn which side of a fixed hyperplane a noisy point lies on (a
//! two-class classification task). Replace the task with yours: describe it
//! in `describe`, draw its examples in `fill`.
//!
//! A scenario names it as its lifetime's environment:
//!
//! ```toml
//! [plugins.{ident}]
//! library = "target/release/lib{ident}.so"
//!
//! [lifetime]
//! environment = { plugin = "{ident}:halfspace", seed = 1, inputs = 8, noise = 0.1 }
//! ```
//!
//! Every key but `plugin` and `seed` reaches `Plugin::environment` as its
//! configuration. Draw only from each fill's seed (`Rng::new(seed)`): the
//! host takes it from the organism's own random stream, so runs are the
//! same whatever the thread count, after a resume, and in a worker process.

use lineage_plugin::{
    export_plugin, Config, Description, Environment, Error, Examples, Offering, Part, Plugin, Rng,
    Task,
};

/// Points drawn from a standard normal; the label says on which side of
/// the hyperplane through 0 with normal `normal` they lie, after noise.
struct Halfspace {
    normal: Vec<f64>,
    noise: f64,
    heldout: usize,
}

impl Environment for Halfspace {
    fn describe(&self) -> Description {
        Description::new(
            Task::Classification {
                inputs: self.normal.len(),
                classes: 2,
            },
            self.heldout,
        )
    }

    fn fill(&self, _part: Part, seed: u64, out: &mut Examples<'_>) -> Result<(), Error> {
        let mut rng = Rng::new(seed);
        for i in 0..out.len() {
            let mut side = self.noise * rng.normal();
            for (v, w) in out.x_of(i).iter_mut().zip(&self.normal) {
                let z = rng.normal();
                *v = z as f32;
                side += z * w;
            }
            out.labels_of(i)[0] = u32::from(side > 0.0);
        }
        Ok(())
    }
}

struct ThisPlugin;

impl Plugin for ThisPlugin {
    const NAME: &'static str = "{ident}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "an environment: which side of a hyperplane a point lies on";

    fn offerings() -> Vec<Offering> {
        vec![Offering::environment(
            "halfspace",
            "which side of a fixed hyperplane a noisy point lies on",
        )]
    }

    fn environment(offering: &str, config: &Config) -> Result<Box<dyn Environment>, Error> {
        if offering != "halfspace" {
            return Err(Error::new(format!("no environment `{offering}`")));
        }
        config.expect_keys(&["inputs", "noise", "heldout"])?;
        let inputs = config.usize("inputs")?.unwrap_or(8);
        if !(1..=4096).contains(&inputs) {
            return Err(Error::new(format!("`inputs` must be 1 to 4096, found {inputs}")));
        }
        let noise = config.f64("noise")?.unwrap_or(0.1);
        if !(noise >= 0.0 && noise.is_finite()) {
            return Err(Error::new(format!("`noise` must be finite and >= 0, found {noise}")));
        }
        let heldout = config.usize("heldout")?.unwrap_or(500);
        if heldout == 0 {
            return Err(Error::new("`heldout` must be at least 1"));
        }
        // The hyperplane is part of the world: the same in every fill.
        let mut rng = Rng::new(0x5EED);
        let normal = (0..inputs).map(|_| rng.normal()).collect();
        Ok(Box::new(Halfspace {
            normal,
            noise,
            heldout,
        }))
    }
}

export_plugin!(ThisPlugin);
"#;

pub(super) const C_ENV_SOURCE: &str = r#"/* {name}: a Lineage plugin with one environment, `halfspace`: lifetimes
 * learn which side of a fixed hyperplane a noisy point lies on (a two-class
 * classification task). Replace the task with yours: describe it in
 * task(), draw its examples in fill(). lineage_plugin.h, section
 * "Environments", has the contract.
 *
 * A scenario names it as its lifetime's environment:
 *
 *   [plugins.{ident}]
 *   library = "lib{ident}.so"
 *
 *   [lifetime]
 *   environment = { plugin = "{ident}:halfspace", seed = 1, inputs = 8, noise = 0.1 }
 *
 * Every key but plugin and seed reaches create() as its configuration.
 * Draw only from each fill's seed: the host takes it from the organism's
 * own random stream, so runs are the same whatever the thread count, after
 * a resume, and in a worker process.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lineage_plugin.h"

#define MAX_INPUTS 4096

typedef struct {
    size_t inputs, heldout;
    double noise;
    double normal[MAX_INPUTS];
} Halfspace;

/* SplitMix64: a small generator drawn from the seed alone. */
static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double normal(uint64_t *s) {
    double u = 1.0 - (next(s) >> 11) * (1.0 / 9007199254740992.0);
    double v = (next(s) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void fail(LnError *error, const char *message) {
    if (error && error->message && error->capacity > 0) {
        snprintf(error->message, error->capacity, "%s", message);
    }
}

static LnStatus create(size_t offering, const LnConfig *config, void **instance,
                       LnError *error) {
    (void)offering; /* one offering */
    Halfspace *h = malloc(sizeof *h);
    if (!h) {
        fail(error, "out of memory");
        return LN_ERROR;
    }
    h->inputs = 8;
    h->heldout = 500;
    h->noise = 0.1;
    char message[256];
    for (size_t i = 0; config && i < config->n_entries; i++) {
        const char *k = config->entries[i].key, *v = config->entries[i].value;
        char *end = NULL;
        double x = strtod(v, &end);
        int number = end != v && isfinite(x);
        if (strcmp(k, "inputs") == 0 && number && x >= 1 && x <= MAX_INPUTS) {
            h->inputs = (size_t)x;
        } else if (strcmp(k, "noise") == 0 && number && x >= 0) {
            h->noise = x;
        } else if (strcmp(k, "heldout") == 0 && number && x >= 1) {
            h->heldout = (size_t)x;
        } else {
            if (strcmp(k, "inputs") == 0 || strcmp(k, "noise") == 0 || strcmp(k, "heldout") == 0) {
                snprintf(message, sizeof message, "`%s` is out of range: %s", k, v);
            } else {
                snprintf(message, sizeof message,
                         "unknown configuration key `%s` (expected: inputs, noise, heldout)", k);
            }
            fail(error, message);
            free(h);
            return LN_ERROR;
        }
    }
    /* The hyperplane is part of the world: the same in every fill. */
    uint64_t s = 0x5EED;
    for (size_t j = 0; j < h->inputs; j++) {
        h->normal[j] = normal(&s);
    }
    *instance = h;
    return LN_OK;
}

static void destroy(void *instance) { free(instance); }

static LnStatus task(void *instance, LnTask *out, LnError *error) {
    (void)error;
    const Halfspace *h = instance;
    out->kind = LN_DATA_LABELED;
    out->inputs = h->inputs;
    out->outputs = 2; /* classes */
    out->steps = 0;
    out->heldout = h->heldout;
    out->n_probes = 0;
    out->has_direction = 0;
    return LN_OK;
}

static LnStatus fill(void *instance, uint32_t what, size_t index, uint64_t seed, LnBatch *b,
                     LnError *error) {
    (void)what;
    (void)index;
    (void)error;
    const Halfspace *h = instance;
    uint64_t s = seed;
    for (size_t i = 0; i < b->n; i++) {
        double side = h->noise * normal(&s);
        for (size_t j = 0; j < h->inputs; j++) {
            double z = normal(&s);
            b->x[i * h->inputs + j] = (float)z;
            side += z * h->normal[j];
        }
        b->labels[i] = side > 0.0 ? 1u : 0u;
    }
    b->written = b->n;
    return LN_OK;
}

static const LnEnvironmentApi environment = {task, NULL, NULL, fill};

static const LnOffering offerings[] = {
    {"halfspace", LN_ENVIRONMENT, NULL, 0,
     "which side of a fixed hyperplane a noisy point lies on"},
};

static const LnPlugin plugin = {
    .abi_version = LINEAGE_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(LnPlugin),
    .name = "{ident}",
    .version = "0.1.0",
    .description = "an environment: which side of a hyperplane a point lies on",
    .offerings = offerings,
    .n_offerings = 1,
    .create = create,
    .evaluate = NULL, /* every offering is an environment */
    .destroy = destroy,
    .offering_reads = NULL,
    .environment = &environment,
};

LINEAGE_PLUGIN_EXPORT const LnPlugin *lineage_plugin_entry(void) { return &plugin; }
"#;

pub(super) const ENV_SCENARIO: &str = r#"# Lifetimes learn in {name}'s `halfspace` environment; evolution tunes
# the learning rate (the `lr` gene) so that 64 examples teach the most.
name = "{ident}-demo"
seed = 1
generations = 10
population = 24

[genome]
genes = [{ name = "lr", min = 1e-3, max = 0.5, log = true }]

[plugins.{ident}]
library = "{library}"

[fitness]
function = "heldout_loss"

[selection]
method = "tournament"
tournament_size = 3
elitism = 1

[mutation]
sigma = 0.1
gene_rate = 1.0

[lifetime]
budget = 64
steps = 40
batch = 16
eval_every = 10
environment = { plugin = "{ident}:halfspace", seed = 1, inputs = 8, noise = 0.1 }
model = { kind = "mlp", hidden = [16], activation = "relu" }
optimizer = { method = "sgd", momentum = 0.9 }
"#;

pub(super) const ENV_README: &str = r#"# {name}

A Lineage plugin: one environment, `halfspace`, a classification task lifetimes learn in
(which side of a fixed hyperplane a noisy point lies on). Replace it with your task.

    {build}
    lineage plugins check {library}
    lineage run scenario.toml

`scenario.toml` loads it with `[plugins.{ident}] library = "{library}"` and learns in it with
`lifetime.environment = { plugin = "{ident}:halfspace", ... }`; every key of that table but
`plugin` and `seed` is the plugin's configuration. Draw examples from each fill's seed only.
"#;
