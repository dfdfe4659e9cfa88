//! `lineage._lineage`: the native module under the `lineage` Python
//! package. It does the work through the same crates as the `lineage`
//! binary (scenario checks, the engine, reports); the package's Python
//! (`python/lineage/`) only normalises arguments and reads records into
//! DataFrames.
//!
//! - Every engine call runs with the GIL released ([`Python::detach`]); a
//!   plain run steps one generation at a time, and between generations
//!   reports progress to a Python callback and checks for Ctrl-C: on
//!   `KeyboardInterrupt` it writes a checkpoint first, so `resume`
//!   continues exactly where it stopped.
//! - Errors become Python exceptions of the module's own hierarchy
//!   (`LineageError` and below), with the CLI's message; a scenario's
//!   `ScenarioError` also carries `file`, `line`, `column`, `field` and
//!   `message`. A Rust panic becomes `InternalError`, naming it a bug.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use lineage_engine::{EngineError, Resumed, Run, RunOptions};
use lineage_scenario::{Overrides, Scenario, ScenarioError as RustScenarioError};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _lineage,
    LineageError,
    PyException,
    "Base of every error Lineage raises."
);
create_exception!(
    _lineage,
    ScenarioError,
    LineageError,
    "An invalid scenario: `file`, `line`, `column`, `field` and `message` say where and what."
);
create_exception!(
    _lineage,
    PluginError,
    LineageError,
    "A plugin could not be loaded, created, or failed while called."
);
create_exception!(
    _lineage,
    DataError,
    LineageError,
    "A data file or an environment's data is unusable, or changed since the run started."
);
create_exception!(
    _lineage,
    RunError,
    LineageError,
    "A run failed, or its directory is damaged or is not a run."
);
create_exception!(
    _lineage,
    InternalError,
    LineageError,
    "A bug in Lineage (a Rust panic); please report it."
);

/// The scenario as the Python skin hands it over: a file, or TOML text
/// with a name for messages and a folder `extends` and data paths resolve
/// against.
fn load(
    path: Option<&str>,
    text: Option<&str>,
    name: &str,
    dir: &str,
    overrides: &Overrides,
) -> Result<Scenario, RustScenarioError> {
    match (path, text) {
        (Some(p), _) => lineage_scenario::load(Path::new(p), overrides),
        (None, Some(t)) => lineage_scenario::from_str(t, name, Path::new(dir), overrides),
        (None, None) => lineage_scenario::from_str("", name, Path::new(dir), overrides),
    }
}

fn scenario_error(py: Python<'_>, e: RustScenarioError) -> PyErr {
    let err = ScenarioError::new_err(e.to_string());
    let value = err.value(py);
    let fields = match &e {
        RustScenarioError::Invalid(d) => (
            d.file.clone(),
            d.line,
            d.column,
            d.field.clone(),
            d.message.clone(),
        ),
        other => (String::new(), 0, 0, String::new(), other.to_string()),
    };
    let _ = value.setattr("file", fields.0);
    let _ = value.setattr("line", fields.1);
    let _ = value.setattr("column", fields.2);
    let _ = value.setattr("field", fields.3);
    let _ = value.setattr("message", fields.4);
    err
}

fn engine_error(py: Python<'_>, e: EngineError) -> PyErr {
    let message = e.to_string();
    match e {
        EngineError::Scenario(s) => scenario_error(py, s),
        EngineError::Plugin { .. }
        | EngineError::PluginEval { .. }
        | EngineError::PluginUse { .. }
        | EngineError::PluginChanged { .. } => PluginError::new_err(message),
        EngineError::DataChanged { .. } | EngineError::Environment { .. } => {
            DataError::new_err(message)
        }
        _ => RunError::new_err(message),
    }
}

/// Runs `f`, turning a panic into `InternalError`.
fn guarded<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Err(InternalError::new_err(format!(
                "internal error in {what}: {message}; this is a bug in lineage, please report it"
            )))
        }
    }
}

fn overrides(
    seed: Option<u64>,
    generations: Option<u32>,
    device: Option<String>,
    memory_limit: Option<u64>,
) -> Overrides {
    Overrides {
        seed,
        generations,
        device,
        path: None,
        memory_limit,
    }
}

/// The resolved scenario as JSON text (TOML tables and arrays as JSON's).
fn resolved_json(scenario: &Scenario) -> PyResult<String> {
    let table: toml::Table = scenario
        .resolved_toml
        .parse()
        .map_err(|e| InternalError::new_err(format!("the resolved scenario: {e}")))?;
    serde_json::to_string(&table)
        .map_err(|e| InternalError::new_err(format!("the resolved scenario: {e}")))
}

/// Checks a scenario; returns the resolved scenario as JSON text.
#[pyfunction]
#[pyo3(signature = (path, text, name, dir, seed=None, generations=None, device=None, memory_limit=None))]
#[allow(clippy::too_many_arguments)]
fn validate(
    py: Python<'_>,
    path: Option<String>,
    text: Option<String>,
    name: String,
    dir: String,
    seed: Option<u64>,
    generations: Option<u32>,
    device: Option<String>,
    memory_limit: Option<u64>,
) -> PyResult<String> {
    guarded("validate", || {
        let o = overrides(seed, generations, device, memory_limit);
        let scenario = py
            .detach(|| load(path.as_deref(), text.as_deref(), &name, &dir, &o))
            .map_err(|e| scenario_error(py, e))?;
        // Plugins load and create their instances as a run would, so a bad
        // library or configuration shows here too (as `lineage validate`).
        py.detach(|| lineage_engine::plugins::Evaluation::prepare(&scenario, &[], None))
            .map_err(|e| engine_error(py, e))?;
        resolved_json(&scenario)
    })
}

/// Steps `run` to its end: progress to `progress(generation, target,
/// best)` after each generation, Ctrl-C checked between generations (a
/// checkpoint first, then `KeyboardInterrupt`). Returns the run directory.
fn drive(py: Python<'_>, mut run: Run, progress: Option<&Py<PyAny>>) -> PyResult<String> {
    while !run.is_done() {
        let report = py.detach(|| run.step()).map_err(|e| engine_error(py, e))?;
        let stop = py.check_signals().err().or_else(|| {
            progress.and_then(|cb| {
                let best = report.best.first().copied().unwrap_or(f64::NAN);
                cb.call1(py, (report.generation + 1, run.target(), best))
                    .err()
            })
        });
        if let Some(e) = stop {
            // A safe point: the generation is done; checkpoint it so that
            // `resume` continues exactly here.
            py.detach(|| run.checkpoint())
                .map_err(|e| engine_error(py, e))?;
            return Err(e);
        }
    }
    let dir = py
        .detach(|| run.finish())
        .map_err(|e| engine_error(py, e))?;
    Ok(dir.display().to_string())
}

/// Runs a scenario (a plain one, or one with conditions) into `out`;
/// returns the run directory.
#[pyfunction]
#[pyo3(signature = (path, text, name, dir, out=None, threads=0, progress=None, seed=None, generations=None, device=None, memory_limit=None))]
#[allow(clippy::too_many_arguments)]
fn run(
    py: Python<'_>,
    path: Option<String>,
    text: Option<String>,
    name: String,
    dir: String,
    out: Option<String>,
    threads: usize,
    progress: Option<Py<PyAny>>,
    seed: Option<u64>,
    generations: Option<u32>,
    device: Option<String>,
    memory_limit: Option<u64>,
) -> PyResult<String> {
    guarded("run", || {
        let o = overrides(seed, generations, device, memory_limit);
        let scenario = py
            .detach(|| load(path.as_deref(), text.as_deref(), &name, &dir, &o))
            .map_err(|e| scenario_error(py, e))?;
        let options = RunOptions {
            out: out.map(PathBuf::from),
            threads,
        };
        if let Some(islands) = &scenario.islands {
            // Every island in this process, as `lineage run` without MPI.
            for island in &islands.scenarios {
                py.detach(|| lineage_engine::plugins::Evaluation::prepare(island, &[], None))
                    .map_err(|e| engine_error(py, e))?;
            }
            let dir = py
                .detach(|| {
                    lineage_engine::islands::run_islands(
                        &scenario,
                        &options,
                        &lineage_engine::fabric::OneProcess,
                        |_, _| {},
                    )
                })
                .map_err(|e| engine_error(py, e))?;
            return Ok(dir.display().to_string());
        }
        if !scenario.conditions.is_empty() {
            // Every condition's plugins load before anything is written.
            for first in scenario.conditions.iter().filter_map(|c| c.runs.first()) {
                py.detach(|| lineage_engine::plugins::Evaluation::prepare(first, &[], None))
                    .map_err(|e| engine_error(py, e))?;
            }
            let root = py
                .detach(|| {
                    lineage_engine::conditions::create_root(&scenario, options.out.as_deref())
                })
                .map_err(|e| engine_error(py, e))?;
            return run_conditions(py, &scenario, &root, threads, progress.as_ref());
        }
        let run = py
            .detach(|| Run::start(scenario, &options))
            .map_err(|e| engine_error(py, e))?;
        drive(py, run, progress.as_ref())
    })
}

/// Runs (or resumes) every condition's runs; progress reports runs done.
///
/// The runs go on in a thread of their own while this (the main) thread
/// waits for their events with the GIL released, waking ten times a
/// second to check for Ctrl-C: Python runs signal handlers on the main
/// thread only. Ctrl-C, or a progress callback that raises, stops every run
/// under way at the end of its generation with a checkpoint, then raises.
fn run_conditions(
    py: Python<'_>,
    scenario: &Scenario,
    root: &Path,
    threads: usize,
    progress: Option<&Py<PyAny>>,
) -> PyResult<String> {
    use lineage_engine::conditions::Event;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{RecvTimeoutError, channel};
    let total: usize = scenario.conditions.iter().map(|c| c.runs.len()).sum();
    let stop = AtomicBool::new(false);
    let (tx, rx) = channel::<Event>();
    let (result, raised) = std::thread::scope(|scope| {
        let runs = scope.spawn(|| {
            let tx = tx;
            lineage_engine::conditions::run_all(scenario, root, threads, &stop, |event| {
                // The receiver lives until the runs are done.
                let _ = tx.send(event);
            })
        });
        let mut done = 0usize;
        let mut raised: Option<PyErr> = None;
        let mut rx = rx;
        loop {
            // (A receiver is Send but not Sync: it goes into the wait and back.)
            let (event, back) = py.detach(move || {
                let event = rx.recv_timeout(std::time::Duration::from_millis(100));
                (event, rx)
            });
            rx = back;
            match event {
                Ok(Event::Finished { .. } | Event::Skipped { .. }) => {
                    done += 1;
                    if let Some(cb) = progress
                        && raised.is_none()
                        && let Err(e) = cb.call1(py, (done, total, f64::NAN))
                    {
                        raised = Some(e);
                    }
                }
                Ok(Event::Started { .. }) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if raised.is_none() {
                raised = py.check_signals().err();
            }
            if raised.is_some() {
                stop.store(true, Ordering::SeqCst);
            }
        }
        let result = py.detach(|| runs.join());
        (result, raised)
    });
    let result = result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match (result, raised) {
        (Ok(()), None) => Ok(root.display().to_string()),
        (Ok(()) | Err(lineage_engine::EngineError::Stopped), Some(e)) => Err(e),
        (Err(e), _) => Err(engine_error(py, e)),
    }
}

/// Continues a run from its latest checkpoint until `generations` in all
/// (default: the scenario's); a conditions run resumes every condition.
#[pyfunction]
#[pyo3(signature = (run_dir, generations=None, threads=0, progress=None))]
fn resume(
    py: Python<'_>,
    run_dir: String,
    generations: Option<u32>,
    threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    guarded("resume", || {
        let dir = PathBuf::from(&run_dir);
        if dir.join(lineage_engine::conditions::INDEX).exists() {
            let path = dir.join(lineage_engine::SCENARIO_FILE);
            let scenario = py
                .detach(|| lineage_scenario::load(&path, &Overrides::default()))
                .map_err(|e| scenario_error(py, e))?;
            return run_conditions(py, &scenario, &dir, threads, progress.as_ref());
        }
        if lineage_engine::islands::is_islands_dir(&dir) {
            py.detach(|| {
                lineage_engine::islands::resume_islands(
                    &dir,
                    generations,
                    threads,
                    &lineage_engine::fabric::OneProcess,
                    |_, _| {},
                )
            })
            .map_err(|e| engine_error(py, e))?;
            return Ok(run_dir);
        }
        match py
            .detach(|| Run::resume(&dir, generations, threads))
            .map_err(|e| engine_error(py, e))?
        {
            Resumed::Running(run) => drive(py, *run, progress.as_ref()),
            Resumed::Finished(f) => Ok(f.dir.display().to_string()),
        }
    })
}

/// Writes a conditions run's report (`report.json`, `report.csv`, plots)
/// as `lineage report` does; returns the files written. `learned` is
/// `--learned`'s criterion (`METRIC>=VALUE`).
#[pyfunction]
#[pyo3(signature = (run_dir, baseline=None, learned=None))]
fn write_report(
    py: Python<'_>,
    run_dir: String,
    baseline: Option<String>,
    learned: Option<String>,
) -> PyResult<Vec<String>> {
    guarded("report", || {
        let dir = PathBuf::from(&run_dir);
        let learned = learned
            .map(|l| l.parse::<lineage_report::Learned>())
            .transpose()
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("learned: {e}")))?;
        py.detach(|| {
            let report = lineage_report::Report::read(&dir, baseline.as_deref(), learned.as_ref())?;
            report.write(&dir)
        })
        .map(|paths| paths.iter().map(|p| p.display().to_string()).collect())
        .map_err(|e| RunError::new_err(e.to_string()))
    })
}

/// A run's summary, as `lineage inspect` prints it.
#[pyfunction]
fn summary(py: Python<'_>, run_dir: String) -> PyResult<String> {
    guarded("summary", || {
        py.detach(|| lineage_report::summary(Path::new(&run_dir)))
            .map_err(|e| RunError::new_err(e.to_string()))
    })
}

/// A named array as the Python skin builds it: name, shape, and the
/// values' little-endian bytes.
type Array = (String, Vec<usize>, Vec<u8>);

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Organism `id`'s weights at `which` (`"birth"` or `"learned"`) and its
/// masks, one array per parameter (f32; masks 0/1), as `lineage export`
/// reads them: from the latest checkpoint that holds it, its lifetime
/// lived again where the run did not keep its weights.
#[pyfunction]
fn weights(
    py: Python<'_>,
    run_dir: String,
    id: u64,
    which: String,
) -> PyResult<(Vec<Array>, Vec<Array>)> {
    guarded("weights", || {
        let stage_learned = match which.as_str() {
            "learned" | "final" => true,
            "birth" => false,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "which is \"birth\" or \"learned\", not {other:?}"
                )));
            }
        };
        let o = py
            .detach(|| lineage_engine::export::organism(Path::new(&run_dir), id))
            .map_err(|e| engine_error(py, e))?;
        let values = if stage_learned { &o.learned } else { &o.birth };
        let arrays = o
            .params
            .iter()
            .zip(values)
            .map(|(p, v)| (p.name.clone(), p.shape.clone(), f32_bytes(v)))
            .collect();
        let masks = o
            .params
            .iter()
            .zip(&o.masks)
            .filter_map(|(p, m)| {
                m.as_ref()
                    .map(|m| (p.name.clone(), p.shape.clone(), f32_bytes(m)))
            })
            .collect();
        Ok((arrays, masks))
    })
}

/// The genomes alive at the start of `generation` (its checkpoint): ids
/// (u64), bits as 0/1 bytes `[n, bits]`, real genes (f64) `[n, genes]`.
#[pyfunction]
fn genomes(
    py: Python<'_>,
    run_dir: String,
    generation: u32,
) -> PyResult<(Vec<Array>, usize, usize)> {
    guarded("genomes", || {
        let dir = PathBuf::from(&run_dir);
        py.detach(|| -> Result<(Vec<Array>, usize, usize), EngineError> {
            let scenario = lineage_scenario::load(
                &dir.join(lineage_engine::SCENARIO_FILE),
                &Overrides::default(),
            )?;
            let (bits, genes) = (scenario.genome.bits, scenario.genome.genes.len());
            let checkpoints = lineage_engine::checkpoint::all(&dir)?;
            let found = checkpoints
                .iter()
                .find(|p| lineage_engine::checkpoint::generation_of(p) == Some(generation))
                .ok_or_else(|| EngineError::BadRunDir {
                    path: dir.join("checkpoints"),
                    message: format!(
                        "holds no checkpoint of generation {generation} (it has: {})",
                        checkpoints
                            .iter()
                            .filter_map(|p| lineage_engine::checkpoint::generation_of(p))
                            .map(|g| g.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            let (_, organisms) = lineage_engine::checkpoint::load(found, bits, genes)?;
            let n = organisms.len();
            let mut ids = Vec::with_capacity(n * 8);
            let mut bit_bytes = Vec::with_capacity(n * bits);
            let mut reals = Vec::with_capacity(n * genes * 8);
            for (genome, lineage, _) in &organisms {
                ids.extend_from_slice(&lineage.id.to_le_bytes());
                bit_bytes.extend((0..bits).map(|i| u8::from(genome.0.bits().get(i))));
                reals.extend(genome.0.reals().iter().flat_map(|x| x.to_le_bytes()));
            }
            Ok((
                vec![
                    ("id".into(), vec![n], ids),
                    ("bits".into(), vec![n, bits], bit_bytes),
                    ("genes".into(), vec![n, genes], reals),
                ],
                bits,
                genes,
            ))
        })
        .map_err(|e| engine_error(py, e))
    })
}

/// A TOML table as JSON text (the Python skin's reader of `scenario.toml`
/// on every Python version).
#[pyfunction]
fn toml_to_json(text: &str) -> PyResult<String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ScenarioError::new_err(e.to_string()))?;
    serde_json::to_string(&table).map_err(|e| InternalError::new_err(e.to_string()))
}

/// JSON text of an object as TOML text (a scenario given as a dict).
#[pyfunction]
fn json_to_toml(text: &str) -> PyResult<String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ScenarioError::new_err(e.to_string()))?;
    let table: toml::Table = serde_json::from_value(value).map_err(|e| {
        ScenarioError::new_err(format!(
            "a scenario dict must hold tables, arrays, strings, numbers and booleans (no None): {e}"
        ))
    })?;
    toml::to_string(&table).map_err(|e| ScenarioError::new_err(e.to_string()))
}

/// The native module.
/// Serves one natively isolated plugin over standard input and output, as
/// `lineage __plugin-worker` does, until the engine closes the pipe; the
/// exit status (0, or 3 when the pipes fail).
#[pyfunction]
fn serve_plugin_worker(py: Python<'_>) -> u8 {
    py.detach(lineage_plugin_host::run_worker_status)
}

#[pymodule]
fn _lineage(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The project's own plugins are linked in and answer to their library
    // names, as in the `lineage` binary.
    lineage_plugin_host::builtin::register_linked(
        "lineage_connectome_suite",
        lineage_connectome_suite::lineage_plugin_descriptor,
    );
    lineage_plugin_host::builtin::register_linked(
        "lineage_richlazy_suite",
        lineage_richlazy_suite::lineage_plugin_descriptor,
    );
    lineage_plugin_host::builtin::register_linked(
        "lineage_icl_suite",
        lineage_icl_suite::lineage_plugin_descriptor,
    );
    // Natively isolated plugins (`isolation = "process"`) run in this
    // interpreter as `python -m lineage._plugin_worker`, which serves the
    // binary's worker from this module (LINEAGE_WORKER_EXE still wins).
    let executable: String = py.import("sys")?.getattr("executable")?.extract()?;
    if !executable.is_empty() {
        lineage_plugin_host::set_worker(
            PathBuf::from(executable),
            vec!["-m".into(), "lineage._plugin_worker".into()],
        );
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LineageError", py.get_type::<LineageError>())?;
    m.add("ScenarioError", py.get_type::<ScenarioError>())?;
    m.add("PluginError", py.get_type::<PluginError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(serve_plugin_worker, m)?)?;
    m.add_function(wrap_pyfunction!(resume, m)?)?;
    m.add_function(wrap_pyfunction!(write_report, m)?)?;
    m.add_function(wrap_pyfunction!(summary, m)?)?;
    m.add_function(wrap_pyfunction!(toml_to_json, m)?)?;
    m.add_function(wrap_pyfunction!(weights, m)?)?;
    m.add_function(wrap_pyfunction!(genomes, m)?)?;
    m.add_function(wrap_pyfunction!(json_to_toml, m)?)?;
    Ok(())
}
