//! `lineage plugins check|list` and `lineage new-plugin`: inspecting plugin
//! libraries and scaffolding new ones.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use lineage_plugin_host::{Instance, Kind, Plugin, PluginError, SearchPath};

use crate::Failure;

/// The C header, copied into new C plugins.
const HEADER: &str = include_str!("../../plugins/sdk/include/lineage_plugin.h");

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// Load a plugin library and print its name, version, ABI version and
    /// offerings, or exactly what is wrong with it.
    Check {
        /// A library path, or a name looked up on the search path.
        library: String,
    },
    /// List the plugins on the search path (this folder,
    /// LINEAGE_PLUGIN_PATH, the workspace's build output).
    List,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// A Rust cdylib using the `lineage-plugin` SDK.
    Rust,
    /// A C library using only `lineage_plugin.h`.
    C,
}

#[derive(Args)]
pub struct NewPluginArgs {
    /// The plugin's name (lower case, digits, `_` or `-`).
    name: String,
    /// The language of the new plugin.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// Folder to create (default: ./NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Path of the `lineage-plugin` SDK crate (Rust; default: the one this
    /// Lineage was built from).
    #[arg(long)]
    sdk: Option<PathBuf>,
}

pub fn plugins(command: &PluginsCommand) -> Result<(), Failure> {
    match command {
        PluginsCommand::Check { library } => check(library),
        PluginsCommand::List => list(),
    }
}

fn load_error(e: PluginError) -> Failure {
    Failure::bad_input(e.to_string())
}

fn check(library: &str) -> Result<(), Failure> {
    let path = SearchPath::new(Some(Path::new(".")))
        .resolve(library)
        .map_err(load_error)?;
    let plugin = Plugin::load(&path).map_err(load_error)?;
    print!("{}", describe(&plugin));
    println!("  instances with an empty configuration:");
    for o in &plugin.offerings {
        match Instance::create(&plugin, &o.name, "", &[]) {
            Ok(_) => println!("    {}: ok", o.name),
            Err(e) => println!("    {}: {e}", o.name),
        }
    }
    Ok(())
}

fn describe(plugin: &Plugin) -> String {
    let mut out = format!(
        "{} {} (ABI version {})\n",
        plugin.name, plugin.version, plugin.abi_version
    );
    if !plugin.description.is_empty() {
        out.push_str(&format!("  {}\n", plugin.description));
    }
    if let Some(path) = &plugin.path {
        out.push_str(&format!("  library: {}\n", path.display()));
    }
    if let Some(sha) = &plugin.sha256 {
        out.push_str(&format!("  sha256:  {sha}\n"));
    }
    out.push_str("  offerings:\n");
    for o in &plugin.offerings {
        let kind = match o.kind {
            Kind::Fitness => "fitness",
            Kind::Suite => "suite",
        };
        let metrics: Vec<String> = o
            .metrics
            .iter()
            .map(|m| format!("{} ({:?})", m.name, m.direction).to_lowercase())
            .collect();
        let reads = if o.reads_weights {
            " [reads weights]"
        } else {
            ""
        };
        out.push_str(&format!(
            "    {kind} {}: {}{reads}\n",
            o.name,
            metrics.join(", ")
        ));
        if !o.description.is_empty() {
            out.push_str(&format!("      {}\n", o.description));
        }
    }
    out
}

fn list() -> Result<(), Failure> {
    let search = SearchPath::new(Some(Path::new(".")));
    println!("search path:");
    for d in &search.dirs {
        println!("  {}", d.display());
    }
    let mut found = 0;
    for path in search.libraries() {
        match Plugin::load(&path) {
            Ok(p) => {
                found += 1;
                print!("{}", describe(&p));
            }
            // Other shared libraries share these folders.
            Err(PluginError::NoEntry { .. }) => {}
            Err(e) => println!("{e}"),
        }
    }
    if found == 0 {
        println!("no plugins found");
    }
    Ok(())
}

pub fn new_plugin(args: &NewPluginArgs) -> Result<(), Failure> {
    let name = &args.name;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(Failure::bad_input(format!(
            "plugin name `{name}`: use a lower-case letter, then lower-case letters, digits, `_` or `-`"
        )));
    }
    let ident = name.replace('-', "_");
    let dir = args.out.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        return Err(Failure::bad_input(format!(
            "{} already exists; choose another name or --out",
            dir.display()
        )));
    }
    let lib_file = format!(
        "{}{ident}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let files: Vec<(PathBuf, String)> = match args.lang {
        Lang::Rust => {
            let sdk = match &args.sdk {
                Some(p) => p.clone(),
                None => Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/sdk"),
            };
            if !sdk.join("Cargo.toml").is_file() {
                return Err(Failure::bad_input(format!(
                    "the lineage-plugin SDK is not at {}; pass its folder with --sdk",
                    sdk.display()
                )));
            }
            let sdk = sdk.canonicalize().unwrap_or(sdk);
            vec![
                (
                    "Cargo.toml".into(),
                    fill(RUST_CARGO, name, &ident)
                        .replace("{sdk}", &sdk.display().to_string().replace('\\', "/")),
                ),
                ("src/lib.rs".into(), fill(RUST_LIB, name, &ident)),
                (
                    "scenario.toml".into(),
                    fill(SCENARIO, name, &ident)
                        .replace("{library}", &format!("target/release/{lib_file}")),
                ),
                (
                    "README.md".into(),
                    fill(README, name, &ident)
                        .replace("{build}", "cargo build --release")
                        .replace("{library}", &format!("target/release/{lib_file}")),
                ),
            ]
        }
        Lang::C => vec![
            ("lineage_plugin.h".into(), HEADER.to_owned()),
            (format!("{ident}.c").into(), fill(C_SOURCE, name, &ident)),
            (
                "Makefile".into(),
                fill(C_MAKEFILE, name, &ident).replace("{lib}", &lib_file),
            ),
            (
                "scenario.toml".into(),
                fill(SCENARIO, name, &ident).replace("{library}", &lib_file),
            ),
            (
                "README.md".into(),
                fill(README, name, &ident)
                    .replace("{build}", "make")
                    .replace("{library}", &lib_file),
            ),
        ],
    };
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Failure {
                code: 1,
                message: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        std::fs::write(&path, text).map_err(|e| Failure {
            code: 1,
            message: format!("cannot write {}: {e}", path.display()),
        })?;
        println!("wrote {}", path.display());
    }
    println!("next: cd {} && see README.md", dir.display());
    Ok(())
}

fn fill(template: &str, name: &str, ident: &str) -> String {
    template.replace("{name}", name).replace("{ident}", ident)
}

const RUST_CARGO: &str = r#"[package]
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

const RUST_LIB: &str = r#"//! `{name}`: a Lineage plugin with one fitness function, `distance`: how
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

const C_SOURCE: &str = r#"/* {name}: a Lineage plugin with one fitness function, `distance`: how far
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

const C_MAKEFILE: &str = r#"CC ?= cc
CFLAGS ?= -O2 -std=c11 -Wall -Wextra

{lib}: {ident}.c lineage_plugin.h
	$(CC) $(CFLAGS) -shared -fPIC -o $@ {ident}.c -lm

clean:
	rm -f {lib}
"#;

const SCENARIO: &str = r#"# A scenario that selects on {name}'s `distance`.
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

const README: &str = r#"# {name}

A Lineage plugin: one fitness function, `distance` (minimised), the distance of an organism's
real genes to a configured target.

    {build}
    lineage plugins check {library}
    lineage run scenario.toml

`scenario.toml` loads it with `[plugins.{ident}] library = "{library}"` and selects on it with
`fitness.function = "{ident}:distance"`. A library named without a path is looked up in the
scenario's folder, in `LINEAGE_PLUGIN_PATH`, and in the Lineage workspace's build output.
"#;
