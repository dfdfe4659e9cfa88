//! The cost of calling a fitness function through the plugin interface:
//! one call scoring a batch of 64 organisms with a trivial fitness, against
//! the same work done in a plain loop.
//!
//! Five measurements, all on the same 64 genomes (one real gene each, no
//! bits), each writing 64 scores:
//!
//! - `direct_first_gene`: a Rust loop copying each genome's first gene (the
//!   work `loaded_plugin` does, without any interface);
//! - `direct_sphere`: a Rust loop calling the built-in sphere function
//!   (`x^2` for one gene) on each genome (the work `builtin_interface` does);
//! - `builtin_interface`: the built-in plugin's `sphere` offering, linked in
//!   but called through the C descriptor like any plugin;
//! - `loaded_plugin`: `tests/plugins/faulty.c` (offering `score`, mode
//!   "ok": the first real gene), compiled with the system C compiler (`$CC`,
//!   else `cc`) when the bench starts and loaded with `Plugin::load`;
//! - `isolated_plugin`: the same library loaded with
//!   `Plugin::load_isolated`, in a worker process (the `lineage` binary as
//!   `lineage __plugin-worker`): the genomes travel with the request, the
//!   scores come back with the reply, over the worker's pipes.
//!
//! The overhead of a call is the interface time minus its direct loop
//! (target: under 1 µs in process, under 100 µs isolated).
//! After criterion's measurements, the group times the four again itself,
//! interleaved, and prints the overheads per call and per organism (only
//! under `cargo bench`, and only when the filter selects `plugin_call`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use lineage_evo::fitness::Builtin;
use lineage_evo::{BitString, Genome};
use lineage_plugin_host::{Instance, Isolation, Plugin, Services};

/// Organisms per call.
const BATCH: usize = 64;

/// The host's services for the bench: genomes only.
struct Genomes<'a>(Vec<&'a Genome>);

impl Services for Genomes<'_> {
    fn genome(&self, organism: usize) -> Result<&Genome, String> {
        self.0
            .get(organism)
            .copied()
            .ok_or_else(|| format!("no organism {organism}"))
    }
}

/// The sphere function the built-in plugin computes (offset 0).
const SPHERE: Builtin = Builtin::Sphere { offset: 0.0 };

/// `tests/plugins/faulty.c` compiled into `dir`, with `$CC` or `cc`.
fn compile_faulty(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let lib = dir.join(format!(
        "{}faulty{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let status = Command::new(&cc)
        .args(["-O2", "-shared", "-fPIC", "-std=c11", "-I"])
        .arg(root.join("plugins/sdk/include"))
        .arg("-o")
        .arg(&lib)
        .arg(root.join("tests/plugins/faulty.c"))
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "the plugin_call bench compiles tests/plugins/faulty.c with a C compiler, but `{cc}` \
                 cannot be run ({e}); install one (e.g. gcc) or point $CC at it"
            )
        });
    assert!(
        status.success(),
        "`{cc}` failed to compile tests/plugins/faulty.c ({status})"
    );
    lib
}

fn direct_first_gene(genomes: &[&Genome], out: &mut [f64]) {
    for (o, g) in out.iter_mut().zip(genomes) {
        *o = g.reals()[0];
    }
}

fn direct_sphere(genomes: &[&Genome], out: &mut [f64]) {
    for (o, g) in out.chunks_exact_mut(1).zip(genomes) {
        SPHERE.score(g.bits().words(), g.bits().len(), g.reals(), o);
    }
}

/// What the four measurements share.
struct Setup {
    genomes: Vec<Genome>,
    ids: Vec<u64>,
    builtin: Instance,
    loaded: Instance,
    isolated: Instance,
    /// Holds the compiled library's folder until the bench ends.
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let genomes: Vec<Genome> = (0..BATCH)
            .map(|i| Genome::new(BitString::zeros(0), vec![(i as f64 * 0.37).sin()]))
            .collect();
        let ids = (0..BATCH as u64).collect();
        let builtin_plugin = lineage_plugin_host::builtin::plugin().expect("the built-in plugin");
        let builtin = Instance::create(
            &builtin_plugin,
            "sphere",
            "",
            &[("offset".into(), "0.0".into())],
        )
        .expect("a sphere instance");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let lib = compile_faulty(dir.path());
        let plugin: Arc<Plugin> = Plugin::load(&lib).expect("the compiled faulty.c loads");
        let loaded = Instance::create(&plugin, "score", "", &[]).expect("a `score` instance");
        let isolation = Isolation {
            worker: PathBuf::from(env!("CARGO_BIN_EXE_lineage")),
            args: vec![lineage_plugin_host::WORKER_COMMAND.to_owned()],
            timeout: Duration::from_secs(60),
        };
        let in_worker = Plugin::load_isolated(&lib, isolation).expect("faulty.c loads in a worker");
        let isolated =
            Instance::create(&in_worker, "score", "", &[]).expect("an isolated `score` instance");
        Setup {
            genomes,
            ids,
            builtin,
            loaded,
            isolated,
            _dir: dir,
        }
    }

    fn services(&self) -> Genomes<'_> {
        Genomes(self.genomes.iter().collect())
    }

    /// Every way gives the scores its direct loop gives.
    fn check(&self) {
        let services = self.services();
        let (mut want, mut got) = ([0.0; BATCH], [0.0; BATCH]);
        direct_sphere(&services.0, &mut want);
        self.builtin
            .evaluate(0, &self.ids, &services, &mut got)
            .expect("sphere scores");
        assert_eq!(want, got, "built-in sphere through the interface");
        direct_first_gene(&services.0, &mut want);
        self.loaded
            .evaluate(0, &self.ids, &services, &mut got)
            .expect("faulty scores");
        assert_eq!(want, got, "faulty.c's first gene");
        got.fill(0.0);
        self.isolated
            .evaluate(0, &self.ids, &services, &mut got)
            .expect("isolated faulty scores");
        assert_eq!(want, got, "faulty.c's first gene, isolated");
    }
}

/// The measurements, by name: each scores the batch once into `out`.
type Way<'a> = (&'static str, Box<dyn Fn(&mut [f64]) + 'a>);

fn ways<'a>(setup: &'a Setup, services: &'a Genomes<'a>) -> Vec<Way<'a>> {
    let call = |instance: &'a Instance| {
        move |out: &mut [f64]| {
            instance
                .evaluate(0, black_box(&setup.ids), black_box(services), out)
                .expect("the plugin scores the batch")
        }
    };
    vec![
        (
            "direct_first_gene",
            Box::new(|out: &mut [f64]| direct_first_gene(black_box(&services.0), out)),
        ),
        (
            "direct_sphere",
            Box::new(|out: &mut [f64]| direct_sphere(black_box(&services.0), out)),
        ),
        ("builtin_interface", Box::new(call(&setup.builtin))),
        ("loaded_plugin", Box::new(call(&setup.loaded))),
        ("isolated_plugin", Box::new(call(&setup.isolated))),
    ]
}

fn plugin_call(c: &mut Criterion) {
    let setup = Setup::new();
    setup.check();
    let services = setup.services();
    let ways = ways(&setup, &services);
    let mut group = c.benchmark_group("plugin_call");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, way) in &ways {
        group.bench_function(*name, |b| {
            let mut out = [0.0; BATCH];
            b.iter(|| {
                way(&mut out);
                black_box(&mut out);
            })
        });
    }
    group.finish();
    if summary_wanted() {
        summary(&ways);
    }
}

/// Whether this is `cargo bench` (not `cargo test`'s single pass, `--list`
/// or `--profile-time`) with a filter that selects this group, or none.
fn summary_wanted() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let skip = ["--list", "--profile-time", "--test"];
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| skip.contains(&a.as_str())) {
        return false;
    }
    match args.iter().find(|a| !a.starts_with('-')) {
        None => true,
        Some(filter) => {
            filter.contains("plugin_call")
                || [
                    "plugin_call/direct_first_gene",
                    "plugin_call/direct_sphere",
                    "plugin_call/builtin_interface",
                    "plugin_call/loaded_plugin",
                    "plugin_call/isolated_plugin",
                ]
                .iter()
                .any(|id| id.contains(filter.as_str()))
        }
    }
}

/// Times each way in rounds of `CALLS` calls (`ISOLATED_CALLS` for the
/// isolated plugin, a few hundred times slower), the ways interleaved so
/// that the machine's noise falls on all of them alike, and prints the
/// median time per call and the overheads.
fn summary(ways: &[Way<'_>]) {
    const CALLS: u32 = 20_000;
    const ISOLATED_CALLS: u32 = 1_000;
    const ROUNDS: usize = 21;
    let mut out = [0.0; BATCH];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); ways.len()];
    for _ in 0..ROUNDS {
        for ((name, way), t) in ways.iter().zip(&mut times) {
            let calls = if *name == "isolated_plugin" {
                ISOLATED_CALLS
            } else {
                CALLS
            };
            let start = Instant::now();
            for _ in 0..calls {
                way(&mut out);
                black_box(&mut out);
            }
            t.push(start.elapsed().as_secs_f64() * 1e9 / f64::from(calls));
        }
    }
    let median: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    let ns = |name: &str| median[ways.iter().position(|(n, _)| *n == name).expect("a way")];
    println!(
        "\nplugin_call summary ({BATCH} organisms per call; median of {ROUNDS} interleaved rounds \
         of {CALLS} calls, {ISOLATED_CALLS} isolated):"
    );
    for ((name, _), t) in ways.iter().zip(&median) {
        println!("  {name:<18} {t:>9.1} ns/call");
    }
    for (interface, direct, target_ns) in [
        ("builtin_interface", "direct_sphere", 1_000.0),
        ("loaded_plugin", "direct_first_gene", 1_000.0),
        ("isolated_plugin", "direct_first_gene", 100_000.0),
    ] {
        let overhead = ns(interface) - ns(direct);
        println!(
            "  overhead {interface:<18} {overhead:>9.1} ns/call, {:.1} ns/organism: target < {} us {}",
            overhead / BATCH as f64,
            target_ns / 1000.0,
            if overhead < target_ns {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

criterion_group!(benches, plugin_call);
