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
//! call is in progress, answered by the engine from the same [`Services`]
//! the in-process path uses.
//!
//! A call may keep the worker busy for at most the plugin's timeout in all
//! (the time the engine spends answering its service requests does not
//! count). When the worker dies or times out
//! (it is then killed), the call fails with [`EvalError::Crashed`] or
//! [`EvalError::TimedOut`]; the next call starts a new worker, loads the
//! library and creates the instance again.

mod wire;
mod worker;

pub use worker::run as run_worker;

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lineage_env::Batch;
use lineage_evo::{Direction, Objective};
use lineage_plugin::Kind;
use lineage_plugin::abi::{LN_BIRTH, LN_LEARNED};

use crate::instance::{Outcome, Refusal};
use crate::library::{OfferingInfo, Plugin, read_library, sha256_hex};
use crate::{EvalError, PluginError, RunInput, RunRequest, RunWhat, Services, Stage, Tensor};
use wire::{In, Out};

/// The hidden subcommand that makes the `lineage` binary a worker.
pub const WORKER_COMMAND: &str = "__plugin-worker";

/// The environment variable naming the worker executable (the `lineage`
/// binary); it overrides [`set_worker_exe`].
pub const WORKER_EXE_VAR: &str = "LINEAGE_WORKER_EXE";

static WORKER_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Names the executable that serves as a worker when it is run with
/// [`WORKER_COMMAND`]: the `lineage` binary sets its own path at start-up.
/// Libraries used elsewhere (tests, benches) set [`WORKER_EXE_VAR`] instead.
pub fn set_worker_exe(path: PathBuf) {
    let _ = WORKER_EXE.set(path);
}

/// How an isolated plugin runs: which executable serves as its worker, and
/// how long a call may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// The worker executable (the `lineage` binary).
    pub worker: PathBuf,
    /// The longest the engine waits for the worker's answer.
    pub timeout: Duration,
}

impl Isolation {
    /// Isolation with `timeout`, run by the worker executable named by
    /// [`WORKER_EXE_VAR`] or [`set_worker_exe`]; `alias` names the plugin
    /// in the error when there is none.
    pub fn new(alias: &str, timeout: Duration) -> Result<Isolation, PluginError> {
        let worker = std::env::var_os(WORKER_EXE_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| WORKER_EXE.get().cloned())
            .ok_or_else(|| PluginError::NoWorker {
                plugin: alias.to_owned(),
            })?;
        Ok(Isolation { worker, timeout })
    }
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
struct Source {
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

/// An instance in a worker process, with what it takes to make it again.
#[derive(Debug)]
pub(crate) struct Remote {
    source: Arc<Source>,
    /// `None` after a crash or a timeout, until the next call.
    worker: Option<Worker>,
    index: usize,
    toml: String,
    entries: Vec<(String, String)>,
}

impl Remote {
    /// Creates the instance in the current worker: the plugin's message on
    /// refusal.
    fn create(&mut self) -> Result<(), String> {
        let worker = self.worker.as_mut().expect("a worker to create in");
        let mut frame = Out::new(wire::CREATE);
        frame
            .usize(self.index)
            .str(&self.toml)
            .usize(self.entries.len());
        for (k, v) in &self.entries {
            frame.str(k).str(v);
        }
        let reply = worker
            .send(&frame.finish())
            .and_then(|()| worker.receive(self.source.isolation.timeout));
        let reply = match reply {
            Ok(r) => r,
            Err(fault) => {
                self.worker = None;
                return Err(format!("its worker process {}", fault.describe()));
            }
        };
        let mut r = In::new(&reply);
        match r.u8()? {
            wire::CREATED => Ok(()),
            wire::CREATE_FAILED => Err(r.str()?.to_owned()),
            tag => Err(format!("the worker answered create with frame {tag}")),
        }
    }

    /// A worker with the instance, started anew after a failure.
    fn ready(&mut self) -> Result<&mut Worker, Fault> {
        if self.worker.is_none() {
            let (worker, _) = self
                .source
                .start()
                .map_err(|e| Fault::Restart(e.to_string()))?;
            self.worker = Some(worker);
            self.create()
                .map_err(|m| Fault::Restart(format!("cannot create the instance again: {m}")))?;
        }
        Ok(self.worker.as_mut().expect("just started"))
    }

    /// Scores a batch in the worker, answering its service requests from
    /// `services`. The scores land in `out`.
    pub(crate) fn evaluate(
        &mut self,
        generation: u32,
        ids: &[u64],
        metrics: usize,
        services: &dyn Services,
        out: &mut [f64],
    ) -> Result<Outcome, Fault> {
        let mut frame = Out::new(wire::EVALUATE);
        frame.u32(generation).usize(metrics).u64s(ids);
        for i in 0..ids.len() {
            let genome = services.genome(i).map_err(Fault::Genome)?;
            frame
                .usize(genome.bits().len())
                .u64s(genome.bits().words())
                .f64s(genome.reals());
        }
        let frame = frame.finish();
        let timeout = self.source.isolation.timeout;
        let n = ids.len();
        let result = (|| {
            let worker = self.ready()?;
            worker.send(&frame)?;
            // The call's time in the worker, not counting the engine's
            // answers to its service requests.
            let mut budget = timeout;
            loop {
                let body = worker.receive_within(&mut budget, timeout)?;
                let mut r = In::new(&body);
                let tag = r.u8().map_err(Fault::Protocol)?;
                if tag == wire::EVALUATED {
                    return read_outcome(&mut r, out).map_err(Fault::Protocol);
                }
                let reply = match answer(tag, &mut r, n, services) {
                    Ok(reply) => reply,
                    Err(AnswerError::Service(message)) => {
                        let mut e = Out::new(wire::REPLY_ERR);
                        e.str(&message);
                        e
                    }
                    Err(AnswerError::Protocol(message)) => return Err(Fault::Protocol(message)),
                };
                worker.send(&reply.finish())?;
            }
        })();
        if matches!(
            result,
            Err(Fault::Died(_) | Fault::TimedOut(_) | Fault::Protocol(_) | Fault::Io(_))
        ) {
            // Killed, dead or confused: the next call starts a new one.
            self.worker = None;
        }
        result
    }
}

/// Reads `EVALUATED`: the status, the message, the count and the scores.
fn read_outcome(r: &mut In<'_>, out: &mut [f64]) -> Result<Outcome, String> {
    let status = r.u8()?;
    let message = r.str()?.to_owned();
    let written = r.usize()?;
    let scores = r.f64s()?;
    if scores.len() != out.len() {
        return Err(format!(
            "{} scores came back for a buffer of {}",
            scores.len(),
            out.len()
        ));
    }
    out.copy_from_slice(&scores);
    Ok(Outcome {
        status: match status {
            0 => Ok(()),
            2 => Err(Refusal::Unfit(message)),
            _ => Err(Refusal::Failed(message)),
        },
        written,
    })
}

/// Why an isolated call did not complete.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The worker died: how (`was killed by SIGSEGV`, `exited with
    /// status 3`).
    Died(String),
    /// No answer within the timeout; the worker was killed.
    TimedOut(Duration),
    /// The worker sent something that is not the protocol.
    Protocol(String),
    /// Reading or writing the pipes failed.
    Io(String),
    /// The worker could not be started again after a failure.
    Restart(String),
    /// The genome service failed in the engine.
    Genome(String),
}

impl Fault {
    fn describe(&self) -> String {
        match self {
            Fault::Died(how) => how.clone(),
            Fault::TimedOut(t) => format!("did not answer within {} ms", t.as_millis()),
            Fault::Protocol(m) => format!("broke the protocol: {m}"),
            Fault::Io(m) => format!("cannot be reached: {m}"),
            Fault::Restart(m) => format!("cannot be restarted: {m}"),
            Fault::Genome(m) => format!("cannot be sent the genomes: {m}"),
        }
    }

    /// The evaluation error the fault is, naming the plugin and offering.
    pub(crate) fn into_eval_error(self, plugin: &str, offering: &str) -> EvalError {
        let (plugin, offering) = (plugin.to_owned(), offering.to_owned());
        match self {
            Fault::Died(what) => EvalError::Crashed {
                plugin,
                offering,
                what,
            },
            Fault::TimedOut(t) => EvalError::TimedOut {
                plugin,
                offering,
                timeout_ms: t.as_millis() as u64,
            },
            other => EvalError::Failed {
                plugin,
                offering,
                message: format!("its worker process {}", other.describe()),
            },
        }
    }
}

impl From<std::io::Error> for Fault {
    fn from(e: std::io::Error) -> Fault {
        Fault::Io(e.to_string())
    }
}

/// A worker process and the ends of its pipes.
#[derive(Debug)]
struct Worker {
    child: Child,
    to: Option<ChildStdin>,
    from: ChildStdout,
    /// Bytes read past the last frame.
    buffer: Vec<u8>,
}

impl Worker {
    fn spawn(isolation: &Isolation) -> std::io::Result<Worker> {
        let mut child = Command::new(&isolation.worker)
            .arg(WORKER_COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let to = child.stdin.take().expect("piped");
        let from = child.stdout.take().expect("piped");
        Ok(Worker {
            child,
            to: Some(to),
            from,
            buffer: Vec::with_capacity(4096),
        })
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), Fault> {
        let to = self.to.as_mut().expect("open until dropped");
        match to.write_all(frame) {
            Ok(()) => Ok(()),
            // A closed pipe: the worker is gone; say how it went.
            Err(_) => Err(self.died()),
        }
    }

    /// The next frame's body, waiting at most `timeout` for the worker.
    fn receive(&mut self, timeout: Duration) -> Result<Vec<u8>, Fault> {
        let mut budget = timeout;
        self.receive_within(&mut budget, timeout)
    }

    /// The next frame's body, waiting at most `budget` for the worker; what
    /// the wait took comes off `budget`. `timeout` is what a timeout reports.
    fn receive_within(
        &mut self,
        budget: &mut Duration,
        timeout: Duration,
    ) -> Result<Vec<u8>, Fault> {
        let start = Instant::now();
        let result = self.receive_until(start + *budget, timeout);
        *budget = budget.saturating_sub(start.elapsed());
        result
    }

    fn receive_until(&mut self, deadline: Instant, timeout: Duration) -> Result<Vec<u8>, Fault> {
        loop {
            if self.buffer.len() >= 8 {
                let len = u64::from_le_bytes(self.buffer[..8].try_into().expect("8 bytes"));
                let len =
                    usize::try_from(len).map_err(|_| Fault::Protocol("a huge frame".into()))?;
                if self.buffer.len() - 8 >= len {
                    let body = self.buffer[8..8 + len].to_vec();
                    self.buffer.drain(..8 + len);
                    return Ok(body);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.kill(timeout));
            }
            let left = deadline - now;
            let wait = rustix::event::Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            let mut fds = [rustix::event::PollFd::new(
                &self.from,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&wait)) {
                Ok(0) => return Err(self.kill(timeout)),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Fault::Io(e.to_string())),
            }
            let start = self.buffer.len();
            self.buffer.resize(start + 65536, 0);
            let read = self.from.read(&mut self.buffer[start..]);
            match read {
                Ok(0) => {
                    self.buffer.truncate(start);
                    return Err(self.died());
                }
                Ok(k) => self.buffer.truncate(start + k),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    self.buffer.truncate(start)
                }
                Err(e) => {
                    self.buffer.truncate(start);
                    return Err(Fault::Io(e.to_string()));
                }
            }
        }
    }

    /// How the worker ended (it closed its output: it is ending). One that
    /// closed its output but lives on is killed after a second.
    fn died(&mut self) -> Fault {
        for _ in 0..1000 {
            match self.child.try_wait() {
                Ok(Some(status)) => return Fault::Died(exit_description(status)),
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Fault::Io(e.to_string()),
            }
        }
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => Fault::Died(format!(
                "closed its output and was killed ({})",
                exit_description(status)
            )),
            Err(e) => Fault::Io(e.to_string()),
        }
    }

    fn kill(&mut self, timeout: Duration) -> Fault {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Fault::TimedOut(timeout)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing its input ends an idle worker; one that does not end
        // promptly is killed.
        drop(self.to.take());
        for _ in 0..200 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `was killed by SIGSEGV`, `exited with status 3`.
fn exit_description(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        return format!("was killed by {}", signal_name(signal));
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("ended: {status}"),
    }
}

/// `SIGSEGV` for 11, and so on; `signal N` for a number without a name.
fn signal_name(signal: i32) -> String {
    let Some(s) = rustix::process::Signal::from_named_raw(signal) else {
        return format!("signal {signal}");
    };
    let debug = format!("{s:?}");
    let short = debug.trim_matches('"').trim_start_matches("Signal::");
    match short {
        "ABORT" => "SIGABRT".into(),
        "ALARM" => "SIGALRM".into(),
        other => format!("SIG{other}"),
    }
}

/// Why a service request could not be answered.
enum AnswerError {
    /// The service's message, for the plugin.
    Service(String),
    /// The request is malformed: the worker is not speaking the protocol.
    Protocol(String),
}

fn stage_of(raw: u32) -> Result<Stage, String> {
    match raw {
        LN_BIRTH => Ok(Stage::Birth),
        LN_LEARNED => Ok(Stage::Learned),
        s => Err(format!("unknown stage {s}")),
    }
}

/// Answers one service request (`tag`, read from `r`) from `services`.
fn answer(tag: u8, r: &mut In<'_>, n: usize, services: &dyn Services) -> Result<Out, AnswerError> {
    let protocol = AnswerError::Protocol;
    let service = AnswerError::Service;
    let organism = |r: &mut In<'_>| -> Result<usize, AnswerError> {
        let i = r.usize().map_err(protocol)?;
        if i < n {
            Ok(i)
        } else {
            Err(service(format!(
                "organism index {i} is out of range: the batch holds {n}"
            )))
        }
    };
    let mut reply = Out::new(wire::REPLY_OK);
    match tag {
        wire::ASK_GENE => {
            let name = r.str().map_err(protocol)?;
            let (offset, count) = services.gene(name).map_err(service)?;
            reply.usize(offset).usize(count);
        }
        wire::ASK_WEIGHTS => {
            let i = organism(r)?;
            let name = r.str().map_err(protocol)?;
            let stage = stage_of(r.u32().map_err(protocol)?).map_err(protocol)?;
            let t = services.weights(i, name, stage).map_err(service)?;
            put_tensor(&mut reply, &t);
        }
        wire::ASK_CURVE => {
            let i = organism(r)?;
            let c = services.curve(i).map_err(service)?;
            reply.usize(c.points.len());
            for p in c.points.iter() {
                reply
                    .u32(p.step)
                    .u32(p.train.to_bits())
                    .u32(p.heldout.to_bits());
            }
            reply.u32(c.status).u32(c.diverged_at);
        }
        wire::ASK_HELDOUT => {
            let i = organism(r)?;
            let b = services.heldout(i).map_err(service)?;
            put_batch(&mut reply, b);
        }
        wire::ASK_PROBES => {
            let i = organism(r)?;
            let set = r.str().map_err(protocol)?;
            let metric = r.str().map_err(protocol)?;
            let t = services.probes(i, set, metric).map_err(service)?;
            put_tensor(&mut reply, &t);
        }
        wire::ASK_RUN => {
            let i = organism(r)?;
            let stage = stage_of(r.u32().map_err(protocol)?).map_err(protocol)?;
            let what_tag = r.u8().map_err(protocol)?;
            let name = r.str().map_err(protocol)?;
            let what = match what_tag {
                0 => RunWhat::Outputs,
                1 => RunWhat::Hidden(name),
                2 => RunWhat::Gradient(name),
                3 => RunWhat::Kernel(name),
                w => return Err(protocol(format!("unknown run kind {w}"))),
            };
            let len_n = r.usize().map_err(protocol)?;
            let len = r.usize().map_err(protocol)?;
            let (real, tokens);
            let input = match r.u8().map_err(protocol)? {
                0 => {
                    real = r.f32s().map_err(protocol)?;
                    RunInput::Real(&real)
                }
                _ => {
                    tokens = r.u32s().map_err(protocol)?;
                    RunInput::Tokens(&tokens)
                }
            };
            let cotangent = match r.u8().map_err(protocol)? {
                0 => None,
                _ => Some(r.f32s().map_err(protocol)?),
            };
            let request = RunRequest {
                stage,
                what,
                n: len_n,
                len,
                input,
                cotangent: cotangent.as_deref(),
            };
            let t = services.run(i, &request).map_err(service)?;
            put_tensor(&mut reply, &t);
        }
        other => return Err(protocol(format!("unknown frame {other}"))),
    }
    Ok(reply)
}

fn put_tensor(out: &mut Out, t: &Tensor<'_>) {
    out.u64s(&t.shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
        .f32s(&t.data);
}

fn get_tensor(r: &mut In<'_>) -> Result<Tensor<'static>, String> {
    let shape = r.u64s()?.into_iter().map(|d| d as usize).collect();
    Ok(Tensor {
        shape,
        data: Cow::Owned(r.f32s()?),
    })
}

fn put_batch(out: &mut Out, b: &Batch) {
    match b {
        Batch::Dense { n, x, y } => {
            out.u8(1).usize(*n).f32s(x).f32s(y);
        }
        Batch::Labeled { n, x, labels } => {
            out.u8(2).usize(*n).f32s(x).u32s(labels);
        }
        Batch::Sequences {
            n,
            steps,
            x,
            labels,
        } => {
            out.u8(3).usize(*n).usize(*steps).f32s(x).u32s(labels);
        }
        Batch::Tokens { n, len, tokens } => {
            out.u8(4).usize(*n).usize(*len).u32s(tokens);
        }
    }
}

fn get_batch(r: &mut In<'_>) -> Result<Batch, String> {
    Ok(match r.u8()? {
        1 => Batch::Dense {
            n: r.usize()?,
            x: r.f32s()?,
            y: r.f32s()?,
        },
        2 => Batch::Labeled {
            n: r.usize()?,
            x: r.f32s()?,
            labels: r.u32s()?,
        },
        3 => Batch::Sequences {
            n: r.usize()?,
            steps: r.usize()?,
            x: r.f32s()?,
            labels: r.u32s()?,
        },
        4 => Batch::Tokens {
            n: r.usize()?,
            len: r.usize()?,
            tokens: r.u32s()?,
        },
        k => return Err(format!("unknown data kind {k}")),
    })
}

/// Writes a checked descriptor into `LOADED`.
fn put_descriptor(out: &mut Out, p: &Plugin) {
    out.str(&p.name)
        .str(&p.version)
        .str(&p.description)
        .u32(p.abi_version)
        .usize(p.offerings.len());
    for o in &p.offerings {
        out.str(&o.name)
            .u8(match o.kind {
                Kind::Fitness => 1,
                _ => 2,
            })
            .str(&o.description)
            .u8(u8::from(o.reads_weights))
            .usize(o.metrics.len());
        for m in &o.metrics {
            out.str(&m.name).u8(match m.direction {
                Direction::Maximize => 1,
                Direction::Minimize => 2,
            });
        }
    }
}

fn read_descriptor(r: &mut In<'_>) -> Result<Plugin, String> {
    let name = r.str()?.to_owned();
    let version = r.str()?.to_owned();
    let description = r.str()?.to_owned();
    let abi_version = r.u32()?;
    let n = r.usize()?;
    let mut offerings = Vec::new();
    for _ in 0..n {
        let oname = r.str()?.to_owned();
        let kind = if r.u8()? == 1 {
            Kind::Fitness
        } else {
            Kind::Suite
        };
        let odescription = r.str()?.to_owned();
        let reads_weights = r.u8()? != 0;
        let m = r.usize()?;
        let mut metrics = Vec::new();
        for _ in 0..m {
            let mname = r.str()?.to_owned();
            let direction = if r.u8()? == 1 {
                Direction::Maximize
            } else {
                Direction::Minimize
            };
            metrics.push(Objective {
                name: mname,
                direction,
            });
        }
        offerings.push(OfferingInfo {
            name: oname,
            kind,
            description: odescription,
            metrics,
            reads_weights,
        });
    }
    Ok(Plugin {
        name,
        version,
        description,
        abi_version,
        offerings,
        path: None,
        sha256: None,
        raw: None,
        isolated: None,
    })
}

/// Writes a load error into `LOAD_FAILED`.
fn put_load_error(out: &mut Out, e: &PluginError) {
    match e {
        PluginError::NotALibrary { message, .. } => {
            out.u8(wire::FAIL_NOT_A_LIBRARY).u32(0).str(message)
        }
        PluginError::NoEntry { .. } => out.u8(wire::FAIL_NO_ENTRY).u32(0).str(""),
        PluginError::AbiMismatch { found, .. } => out.u8(wire::FAIL_ABI).u32(*found).str(""),
        PluginError::BadDescriptor { message, .. } => {
            out.u8(wire::FAIL_DESCRIPTOR).u32(0).str(message)
        }
        other => out.u8(wire::FAIL_OTHER).u32(0).str(&other.to_string()),
    };
}

fn read_load_error(r: &mut In<'_>, path: &Path) -> Result<PluginError, String> {
    let kind = r.u8()?;
    let found = r.u32()?;
    let message = r.str()?.to_owned();
    let path = path.to_path_buf();
    Ok(match kind {
        wire::FAIL_NOT_A_LIBRARY => PluginError::NotALibrary { path, message },
        wire::FAIL_NO_ENTRY => PluginError::NoEntry { path },
        wire::FAIL_ABI => PluginError::AbiMismatch {
            path,
            found,
            expected: crate::ABI_VERSION,
        },
        wire::FAIL_DESCRIPTOR => PluginError::BadDescriptor {
            path: path.display().to_string(),
            message,
        },
        _ => PluginError::Worker { path, message },
    })
}
