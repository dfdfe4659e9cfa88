//! `lineage plugins check|list` and `lineage new-plugin`: inspecting plugin
//! libraries and scaffolding new ones.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use lineage_plugin_host::{Instance, Kind, Plugin, PluginEnvironment, PluginError, SearchPath};
use rand::SeedableRng;

use crate::Failure;

mod templates;

use templates::*;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PluginKind {
    /// A fitness function that scores organisms.
    Fitness,
    /// An environment lifetimes learn in (ABI 4).
    Environment,
}

#[derive(Args)]
pub struct NewPluginArgs {
    /// The plugin's name (lower case, digits, `_` or `-`).
    name: String,
    /// The language of the new plugin.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// What the new plugin offers.
    #[arg(long, value_enum, default_value_t = PluginKind::Fitness)]
    kind: PluginKind,
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
    let mut failed = Vec::new();
    for o in &plugin.offerings {
        let outcome = if o.kind == Kind::Environment {
            check_environment(&plugin, &o.name)
        } else {
            Instance::create(&plugin, &o.name, "", &[])
                .map(|_| "ok".to_owned())
                .map_err(|e| e.to_string())
        };
        match outcome {
            Ok(ok) => println!("    {}: {ok}", o.name),
            Err(e) => {
                println!("    {}: {e}", o.name);
                failed.push(o.name.as_str());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::bad_input(format!(
            "plugin `{}`: {} cannot be created with an empty configuration (see above); a scenario must configure {}",
            plugin.name,
            failed.join(", "),
            if failed.len() == 1 { "it" } else { "them" }
        )))
    }
}

/// An environment created with an empty configuration and seed 0, its
/// held-out and probe sets and one lifetime of 32 examples drawn and
/// checked as a run would: `ok` and its task, or what is wrong.
fn check_environment(plugin: &std::sync::Arc<Plugin>, offering: &str) -> Result<String, String> {
    use lineage_env::Environment;
    let env = PluginEnvironment::create(plugin, offering, "", &[], 0, &|_| Ok(()))
        .map_err(|e| e.to_string())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let life = env.lifetime(&mut rng, 32).map_err(|e| e.to_string())?;
    Ok(format!(
        "ok ({}; held-out set of {}; {} probe sets; {}a lifetime of 32 checked)",
        describe_task(&env.task()),
        life.heldout.len(),
        env.probe_sets().len(),
        if env.task_direction().is_some() {
            "a task direction; "
        } else {
            ""
        }
    ))
}

fn describe_task(task: &lineage_env::Task) -> String {
    use lineage_env::Task;
    match task {
        Task::Regression { inputs, outputs } => {
            format!("regression, {inputs} inputs to {outputs} outputs")
        }
        Task::Classification { inputs, classes } => {
            format!("classification, {inputs} inputs, {classes} classes")
        }
        Task::SequenceClassification {
            inputs,
            classes,
            steps,
        } => format!("sequences of {steps} steps, {inputs} inputs, {classes} classes"),
        Task::NextToken { vocab, context } => {
            format!("next token, vocabulary {vocab}, context {context}")
        }
    }
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
            Kind::Environment => "environment",
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
        if o.kind == Kind::Environment {
            out.push_str(&format!("    {kind} {}\n", o.name));
        } else {
            out.push_str(&format!(
                "    {kind} {}: {}{reads}\n",
                o.name,
                metrics.join(", ")
            ));
        }
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
    let environment = args.kind == PluginKind::Environment;
    let (rust_lib, c_source, scenario, readme) = if environment {
        (RUST_ENV_LIB, C_ENV_SOURCE, ENV_SCENARIO, ENV_README)
    } else {
        (RUST_LIB, C_SOURCE, SCENARIO, README)
    };
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
                ("src/lib.rs".into(), fill(rust_lib, name, &ident)),
                (
                    "scenario.toml".into(),
                    fill(scenario, name, &ident)
                        .replace("{library}", &format!("target/release/{lib_file}")),
                ),
                (
                    "README.md".into(),
                    fill(readme, name, &ident)
                        .replace("{build}", "cargo build --release")
                        .replace("{library}", &format!("target/release/{lib_file}")),
                ),
            ]
        }
        Lang::C => vec![
            ("lineage_plugin.h".into(), HEADER.to_owned()),
            (format!("{ident}.c").into(), fill(c_source, name, &ident)),
            (
                "Makefile".into(),
                fill(C_MAKEFILE, name, &ident).replace("{lib}", &lib_file),
            ),
            (
                "scenario.toml".into(),
                fill(scenario, name, &ident).replace("{library}", &lib_file),
            ),
            (
                "README.md".into(),
                fill(readme, name, &ident)
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
