//! The engine's side of an isolated instance: [`Remote`] drives the
//! worker process through a call (create, evaluate, the service requests
//! it sends back, answered from the caller's [`Services`]), and [`Worker`]
//! is the process itself, with the deadlines and the account of how it
//! died.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lineage_plugin::abi::{LN_BIRTH, LN_LEARNED};

use super::codec::*;
use super::wire::{In, Out};
use super::*;
use crate::call::{Outcome, Refusal};
use crate::environment::{Described, Filled, Part, Shape};
use crate::{EvalError, RunInput, RunRequest, RunWhat, Services, Stage};

/// An instance in a worker process, with what it takes to make it again.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(super) source: Arc<Source>,
    /// `None` after a crash or a timeout, until the next call.
    pub(super) worker: Option<Worker>,
    pub(super) index: usize,
    pub(super) toml: String,
    pub(super) entries: Vec<(String, String)>,
}

impl Remote {
    /// Creates the instance in the current worker: the plugin's message on
    /// refusal.
    pub(super) fn create(&mut self) -> Result<(), String> {
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

    /// Asks the worker to describe its environment instance.
    pub(crate) fn describe(&mut self) -> Result<Described, Fault> {
        let body = self.exchange(Out::new(wire::ENV_DESCRIBE).finish(), wire::DESCRIBED)?;
        let mut r = In::new(&body[1..]);
        let (status, message) = (
            r.u8().map_err(Fault::Protocol)?,
            r.str().map_err(Fault::Protocol)?,
        );
        if status != 0 {
            return Err(Fault::Refused(message.to_owned()));
        }
        get_described(&mut r).map_err(Fault::Protocol)
    }

    /// Asks the worker to fill buffers of `shape` for `part` from `seed`.
    pub(crate) fn fill(&mut self, part: Part, seed: u64, shape: &Shape) -> Result<Filled, Fault> {
        let (what, index) = part.raw();
        let mut frame = Out::new(wire::ENV_FILL);
        frame.u32(what).usize(index).u64(seed);
        put_shape(&mut frame, shape);
        let body = self.exchange(frame.finish(), wire::FILLED)?;
        let mut r = In::new(&body[1..]);
        let (status, message) = (
            r.u8().map_err(Fault::Protocol)?,
            r.str().map_err(Fault::Protocol)?,
        );
        if status != 0 {
            return Err(Fault::Refused(message.to_owned()));
        }
        get_filled(&mut r).map_err(Fault::Protocol)
    }

    /// Sends `frame` and waits (at most the timeout) for the reply tagged
    /// `expect`; a dead, hung or confused worker is dropped, and the next
    /// call starts a new one.
    fn exchange(&mut self, frame: Vec<u8>, expect: u8) -> Result<Vec<u8>, Fault> {
        let timeout = self.source.isolation.timeout;
        let result = (|| {
            let worker = self.ready()?;
            worker.send(&frame)?;
            let body = worker.receive(timeout)?;
            match body.first() {
                Some(&tag) if tag == expect => Ok(body),
                tag => Err(Fault::Protocol(format!(
                    "answered with frame {tag:?}, expected {expect}"
                ))),
            }
        })();
        if matches!(
            result,
            Err(Fault::Died(_) | Fault::TimedOut(_) | Fault::Protocol(_) | Fault::Io(_))
        ) {
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
    /// The plugin answered, with an error: its message.
    Refused(String),
}

impl Fault {
    pub(super) fn describe(&self) -> String {
        match self {
            Fault::Died(how) => how.clone(),
            Fault::TimedOut(t) => format!("did not answer within {} ms", t.as_millis()),
            Fault::Protocol(m) => format!("broke the protocol: {m}"),
            Fault::Io(m) => format!("cannot be reached: {m}"),
            Fault::Restart(m) => format!("cannot be restarted: {m}"),
            Fault::Genome(m) => format!("cannot be sent the genomes: {m}"),
            Fault::Refused(m) => m.clone(),
        }
    }

    /// What went wrong, for an environment's error: the plugin's own
    /// message, or what became of its worker process.
    pub(crate) fn message(&self) -> String {
        match self {
            Fault::Refused(m) => m.clone(),
            other => format!("its worker process {}", other.describe()),
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
            Fault::Refused(message) => EvalError::Failed {
                plugin,
                offering,
                message,
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
pub(super) struct Worker {
    child: Child,
    to: Option<ChildStdin>,
    from: ChildStdout,
    /// Bytes read past the last frame.
    buffer: Vec<u8>,
}

impl Worker {
    pub(super) fn spawn(isolation: &Isolation) -> std::io::Result<Worker> {
        let mut child = Command::new(&isolation.worker)
            .args(&isolation.args)
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

    pub(super) fn send(&mut self, frame: &[u8]) -> Result<(), Fault> {
        let to = self.to.as_mut().expect("open until dropped");
        match to.write_all(frame) {
            Ok(()) => Ok(()),
            // A closed pipe: the worker is gone; say how it went.
            Err(_) => Err(self.died()),
        }
    }

    /// The next frame's body, waiting at most `timeout` for the worker.
    pub(super) fn receive(&mut self, timeout: Duration) -> Result<Vec<u8>, Fault> {
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
    pub(super) fn died(&mut self) -> Fault {
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

    pub(super) fn kill(&mut self, timeout: Duration) -> Fault {
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
