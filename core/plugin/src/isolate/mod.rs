//! The process isolation tier: a plugin whose scenario says `isolation =
//! "process"` is loaded into a worker process (the `lineage` binary run as
//! `lineage __plugin-worker`), so that a segfault, an `abort()` or a hang
//! in it becomes an evaluation error instead of the end of the run.
//!
//! The engine talks to the worker over its standard input and output with
//! the frames of [`wire`]: `LOAD` (the library's bytes, the very bytes the
//! engine hashed), `CREATE`, then one `EVALUATE` per batch. An `EVALUATE`
//! carries the batch's ids and genomes, so the genome service is answered
//! inside the worker; every other service (genes, weights, curves,
//! held-out data, model runs) is a request the worker sends back while the
//! call is in progress, answered by the engine from the same [`Services`](crate::Services)
//! the in-process path uses.
//!
//! A call may keep the worker busy for at most the plugin's timeout in all
//! (the time the engine spends answering its service requests does not
//! count). When the worker dies or times out
//! (it is then killed), the call fails with [`EvalError::Crashed`] or
//! [`EvalError::TimedOut`]; the next call starts a new worker, loads the
//! library and creates the instance again.

pub(crate) mod codec;
mod remote;
pub(crate) mod wire;

use codec::{read_descriptor, read_load_error};
pub(crate) use remote::Remote;
use remote::Worker;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::PluginError;
use crate::library::{Plugin, read_library, sha256_hex};
use wire::{In, Out};

/// The hidden subcommand that makes the `lineage` binary a worker.
pub const WORKER_COMMAND: &str = "__plugin-worker";

/// The environment variable naming the worker executable (the `lineage`
/// binary); it overrides [`set_worker_exe`].
pub const WORKER_EXE_VAR: &str = "LINEAGE_WORKER_EXE";

static WORKER: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();

/// Names the executable that serves as a worker when it is run with
/// [`WORKER_COMMAND`]: the `lineage` binary sets its own path at start-up.
/// Libraries used elsewhere (tests, benches) set [`WORKER_EXE_VAR`] instead.
pub fn set_worker_exe(path: PathBuf) {
    set_worker(path, vec![WORKER_COMMAND.to_owned()]);
}

/// Names the command line that serves as a worker: the Python package sets
/// its interpreter with `-m lineage._plugin_worker`, which runs the same
/// worker from the native module. The first call wins;
/// [`WORKER_EXE_VAR`] overrides it.
pub fn set_worker(program: PathBuf, args: Vec<String>) {
    let _ = WORKER.set((program, args));
}

/// How an isolated plugin runs: which executable serves as its worker, and
/// how long a call may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// The worker executable (the `lineage` binary, or a Python
    /// interpreter for a plugin written in Python).
    pub worker: PathBuf,
    /// Its arguments: [`WORKER_COMMAND`] for the `lineage` binary,
    /// `-m lineage._worker` for Python.
    pub args: Vec<String>,
    /// The longest the engine waits for the worker's answer.
    pub timeout: Duration,
}

impl Isolation {
    /// Isolation with `timeout`, run by the worker executable named by
    /// [`WORKER_EXE_VAR`], [`set_worker_exe`] or [`set_worker`]; `alias` names the plugin
    /// in the error when there is none.
    pub fn new(alias: &str, timeout: Duration) -> Result<Isolation, PluginError> {
        let (worker, args) = std::env::var_os(WORKER_EXE_VAR)
            .filter(|v| !v.is_empty())
            .map(|exe| (PathBuf::from(exe), vec![WORKER_COMMAND.to_owned()]))
            .or_else(|| WORKER.get().cloned())
            .ok_or_else(|| PluginError::NoWorker {
                plugin: alias.to_owned(),
            })?;
        Ok(Isolation {
            worker,
            args,
            timeout,
        })
    }

    /// Isolation for a plugin written in Python: the worker is `python -m
    /// lineage._worker`, which speaks the same protocol, with the
    /// interpreter named by `LINEAGE_PLUGIN_PYTHON` (else `python3`).
    pub fn python(timeout: Duration) -> Isolation {
        Isolation {
            worker: python_interpreter(),
            args: vec!["-m".into(), "lineage._worker".into()],
            timeout,
        }
    }

    /// A plugin written in Python, `library = "python:SPEC"`: the file the
    /// engine hashes and sends, and the isolation that runs it. `SPEC` is a
    /// file (`FILE.py`, already resolved against the scenario's folder) or
    /// a module to import (`package.module`): the worker's interpreter
    /// finds the module's file, and the worker imports the module (so its
    /// relative imports work) rather than running the file's bytes.
    pub fn python_plugin(
        spec: &str,
        timeout: Duration,
    ) -> Result<(PathBuf, Isolation), PluginError> {
        let mut isolation = Isolation::python(timeout);
        if spec.ends_with(".py") {
            return Ok((PathBuf::from(spec), isolation));
        }
        let module_error = |message: String| PluginError::PythonModule {
            module: spec.to_owned(),
            message,
        };
        if !is_module_name(spec) {
            return Err(module_error(
                "neither a file (`FILE.py`) nor a module name (`package.module`)".into(),
            ));
        }
        const FIND: &str = "import importlib.util, sys\n\
            spec = importlib.util.find_spec(sys.argv[1])\n\
            print(spec.origin if spec and spec.origin else '')";
        let out = std::process::Command::new(&isolation.worker)
            .args(["-c", FIND, spec])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                module_error(format!(
                    "cannot run the interpreter {}: {e} (set LINEAGE_PLUGIN_PYTHON to a Python \
                     that has the `lineage` package)",
                    isolation.worker.display()
                ))
            })?;
        let origin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || !origin.ends_with(".py") {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr.trim().lines().last().unwrap_or("").to_owned();
            return Err(module_error(format!(
                "{} cannot import it as a Python source file{}",
                isolation.worker.display(),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            )));
        }
        isolation
            .args
            .extend(["--module".to_owned(), spec.to_owned()]);
        Ok((PathBuf::from(origin), isolation))
    }
}

/// The interpreter Python plugins run in: `LINEAGE_PLUGIN_PYTHON`, else
/// `python3`.
fn python_interpreter() -> PathBuf {
    std::env::var_os("LINEAGE_PLUGIN_PYTHON")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// `package.module`: dot-separated Python identifiers (ASCII).
pub fn is_module_name(spec: &str) -> bool {
    !spec.is_empty()
        && spec.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The engine's side of an isolated library: what a new worker needs, and
/// the worker that loaded it, kept for the first instance.
#[derive(Debug)]
pub(crate) struct Library {
    source: Arc<Source>,
    spare: Mutex<Option<Worker>>,
}

/// What starting a worker for a library takes.
#[derive(Debug)]
pub(super) struct Source {
    path: PathBuf,
    bytes: Vec<u8>,
    isolation: Isolation,
}

impl Source {
    /// A new worker with the library loaded: its descriptor, or why not.
    fn start(&self) -> Result<(Worker, Plugin), PluginError> {
        let path = || self.path.clone();
        let mut worker = Worker::spawn(&self.isolation).map_err(|e| PluginError::Worker {
            path: path(),
            message: format!(
                "cannot start the worker {}: {e}",
                self.isolation.worker.display()
            ),
        })?;
        let mut frame = Out::new(wire::LOAD);
        frame
            .str(&self.path.display().to_string())
            .bytes(&self.bytes);
        let reply = worker
            .send(&frame.finish())
            .and_then(|()| worker.receive(self.isolation.timeout))
            .map_err(|fault| PluginError::Worker {
                path: path(),
                message: format!("while loading the library: {}", fault.describe()),
            })?;
        let protocol = |message: String| PluginError::Worker {
            path: path(),
            message: format!("answered the load request wrongly: {message}"),
        };
        let mut r = In::new(&reply);
        match r.u8().map_err(protocol)? {
            wire::LOADED => {
                let plugin = read_descriptor(&mut r).map_err(protocol)?;
                Ok((worker, plugin))
            }
            wire::LOAD_FAILED => Err(read_load_error(&mut r, &self.path).map_err(protocol)?),
            tag => Err(protocol(format!("unexpected frame {tag}"))),
        }
    }
}

impl Plugin {
    /// Loads the library at `path` into a worker process, which checks its
    /// ABI version and descriptor as [`Plugin::load`] does: the same errors
    /// come back. Instances of it live in worker processes too.
    pub fn load_isolated(path: &Path, isolation: Isolation) -> Result<Arc<Plugin>, PluginError> {
        let bytes = read_library(path)?;
        let sha256 = sha256_hex(&bytes);
        let source = Arc::new(Source {
            path: path.to_path_buf(),
            bytes,
            isolation,
        });
        let (worker, plugin) = source.start()?;
        Ok(Arc::new(Plugin {
            path: Some(path.to_path_buf()),
            sha256: Some(sha256),
            isolated: Some(Library {
                source,
                spare: Mutex::new(Some(worker)),
            }),
            ..plugin
        }))
    }
}

impl Library {
    /// Creates an instance of offering `index` in a worker: the one that
    /// loaded the library for the first instance, a new one after.
    pub(crate) fn create(
        &self,
        plugin: &str,
        offering: &str,
        index: usize,
        toml: &str,
        entries: &[(String, String)],
    ) -> Result<Remote, PluginError> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        let worker = match spare {
            Some(w) => w,
            None => self.source.start()?.0,
        };
        let mut remote = Remote {
            source: self.source.clone(),
            worker: Some(worker),
            index,
            toml: toml.to_owned(),
            entries: entries.to_vec(),
        };
        remote.create().map_err(|message| PluginError::Create {
            plugin: plugin.to_owned(),
            offering: offering.to_owned(),
            message,
        })?;
        Ok(remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_dotted_identifiers() {
        for good in ["fits", "my_pkg.fits", "_a.b2.c"] {
            assert!(is_module_name(good), "{good}");
        }
        for bad in [
            "",
            "fits.",
            ".fits",
            "2pkg.fits",
            "my-pkg.fits",
            "pkg/fits",
            "a..b",
        ] {
            assert!(!is_module_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_python_file_needs_no_interpreter_to_resolve() {
        let (path, isolation) =
            Isolation::python_plugin("/x/fit.py", Duration::from_secs(1)).unwrap();
        assert_eq!(path, Path::new("/x/fit.py"));
        assert_eq!(isolation.args, ["-m", "lineage._worker"]);
        let e = Isolation::python_plugin("not a module", Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("neither a file"), "{e}");
    }
}
