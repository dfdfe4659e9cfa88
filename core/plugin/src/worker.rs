//! The worker's side of the isolation tier: `lineage __plugin-worker`
//! reads frames from its standard input, loads the library it is sent,
//! creates the instance, and calls it once per `EVALUATE`, forwarding the
//! plugin's service requests (all but the genome, which came with the
//! batch) to the engine.
//!
//! The frames go out on a copy of the original standard output; the
//! standard output itself is pointed at standard error first, so that what
//! a plugin prints cannot corrupt the protocol.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};

use lineage_env::Batch;
use lineage_evo::{BitString, Genome};
use lineage_plugin::abi::{LN_BIRTH, LN_LEARNED, LnCurvePoint};

use crate::call::Refusal;
use crate::environment::Part;
use crate::isolate::codec::{
    get_batch, get_shape, get_tensor, put_described, put_descriptor, put_filled, put_load_error,
};
use crate::isolate::wire::{self, In, Out};
use crate::library::Plugin;
use crate::{Curve, Instance, RunInput, RunRequest, RunWhat, Services, Stage, Tensor};

/// The worker's pipes: frames in on standard input, out on a copy of the
/// original standard output.
struct Channel {
    input: BufReader<std::io::Stdin>,
    output: File,
}

impl Channel {
    /// The next frame's body; `None` at the end of the input (the engine
    /// is done with this worker).
    fn receive(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 8];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = usize::try_from(u64::from_le_bytes(len))
            .map_err(|_| std::io::Error::other("a huge frame"))?;
        let mut body = vec![0u8; len];
        self.input.read_exact(&mut body)?;
        Ok(Some(body))
    }

    fn send(&mut self, frame: Out) -> std::io::Result<()> {
        self.output.write_all(&frame.finish())
    }
}

/// Runs the worker until the engine closes its input: exit code 0, or 3
/// when the pipes fail.
pub fn run() -> ExitCode {
    ExitCode::from(run_status())
}

/// [`run`], as a plain exit status, for a host that exits by itself (the
/// Python package's `python -m lineage._plugin_worker`).
pub fn run_status() -> u8 {
    match serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lineage plugin worker: {e}");
            3
        }
    }
}

fn serve() -> std::io::Result<()> {
    let output = File::from(rustix::io::dup(std::io::stdout())?);
    rustix::stdio::dup2_stdout(std::io::stderr())?;
    let channel = Mutex::new(Channel {
        input: BufReader::with_capacity(1 << 16, std::io::stdin()),
        output,
    });
    let mut plugin: Option<Arc<Plugin>> = None;
    let mut instance: Option<Instance> = None;
    loop {
        let Some(body) = lock(&channel).receive()? else {
            // The engine is done: end without running anything more of the
            // plugin (its memory goes with the process).
            std::mem::forget(instance);
            return Ok(());
        };
        let mut r = In::new(&body);
        let tag = r.u8().map_err(std::io::Error::other)?;
        let reply = match tag {
            wire::LOAD => {
                let path = r.str().map_err(std::io::Error::other)?;
                let bytes = r.bytes().map_err(std::io::Error::other)?;
                match Plugin::load_bytes(Path::new(path), bytes) {
                    Ok(p) => {
                        let mut out = Out::new(wire::LOADED);
                        put_descriptor(&mut out, &p);
                        plugin = Some(Arc::new(p));
                        out
                    }
                    Err(e) => {
                        let mut out = Out::new(wire::LOAD_FAILED);
                        put_load_error(&mut out, &e);
                        out
                    }
                }
            }
            wire::CREATE => create(&mut r, plugin.as_ref(), &mut instance)?,
            wire::EVALUATE => {
                let Some(inst) = &instance else {
                    return Err(std::io::Error::other("EVALUATE before CREATE"));
                };
                evaluate(&mut r, inst, &channel)?
            }
            wire::ENV_DESCRIBE => {
                let Some(inst) = &instance else {
                    return Err(broken("ENV_DESCRIBE before CREATE"));
                };
                let mut out = Out::new(wire::DESCRIBED);
                match inst.describe_environment() {
                    Ok(d) => {
                        out.u8(0).str("");
                        put_described(&mut out, &d);
                    }
                    Err(m) => {
                        out.u8(1).str(&m);
                    }
                }
                out
            }
            wire::ENV_FILL => {
                let Some(inst) = &instance else {
                    return Err(broken("ENV_FILL before CREATE"));
                };
                let (what, index, seed) = (
                    r.u32().map_err(broken)?,
                    r.usize().map_err(broken)?,
                    r.u64().map_err(broken)?,
                );
                let part = Part::from_raw(what, index).ok_or_else(|| broken("unknown fill"))?;
                let shape = get_shape(&mut r).map_err(broken)?;
                let mut out = Out::new(wire::FILLED);
                match inst.fill_environment(part, seed, &shape) {
                    Ok(f) => {
                        out.u8(0).str("");
                        put_filled(&mut out, &f);
                    }
                    Err(m) => {
                        out.u8(1).str(&m);
                    }
                }
                out
            }
            other => {
                return Err(std::io::Error::other(format!("unknown frame {other}")));
            }
        };
        lock(&channel).send(reply)?;
    }
}

/// A protocol error: the engine sent something the worker cannot read.
fn broken(message: impl Into<String>) -> std::io::Error {
    std::io::Error::other(message.into())
}

fn lock(channel: &Mutex<Channel>) -> std::sync::MutexGuard<'_, Channel> {
    channel.lock().unwrap_or_else(|p| p.into_inner())
}

fn create(
    r: &mut In<'_>,
    plugin: Option<&Arc<Plugin>>,
    instance: &mut Option<Instance>,
) -> std::io::Result<Out> {
    let Some(plugin) = plugin else {
        return Err(broken("CREATE before LOAD"));
    };
    let index = r.usize().map_err(broken)?;
    let toml = r.str().map_err(broken)?;
    let n = r.usize().map_err(broken)?;
    let mut entries = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        entries.push((
            r.str().map_err(broken)?.to_owned(),
            r.str().map_err(broken)?.to_owned(),
        ));
    }
    let offering = plugin
        .offerings
        .get(index)
        .ok_or_else(|| broken("no such offering"))?
        .name
        .clone();
    Ok(match Instance::create(plugin, &offering, toml, &entries) {
        Ok(i) => {
            *instance = Some(i);
            Out::new(wire::CREATED)
        }
        Err(crate::PluginError::Create { message, .. }) => {
            let mut out = Out::new(wire::CREATE_FAILED);
            out.str(&message);
            out
        }
        Err(e) => {
            let mut out = Out::new(wire::CREATE_FAILED);
            out.str(&e.to_string());
            out
        }
    })
}

fn evaluate(r: &mut In<'_>, instance: &Instance, channel: &Mutex<Channel>) -> std::io::Result<Out> {
    let generation = r.u32().map_err(broken)?;
    let metrics = r.usize().map_err(broken)?;
    let ids = r.u64s().map_err(broken)?;
    let mut genomes = Vec::with_capacity(ids.len());
    for _ in 0..ids.len() {
        let n_bits = r.usize().map_err(broken)?;
        let words = r.u64s().map_err(broken)?;
        let reals = r.f64s().map_err(broken)?;
        genomes.push(Genome::new(BitString::from_words(words, n_bits), reals));
    }
    let services = Forwarded {
        heldout: (0..ids.len()).map(|_| OnceLock::new()).collect(),
        genomes,
        channel,
    };
    let total = ids
        .len()
        .checked_mul(metrics)
        .ok_or_else(|| broken("the score buffer's size overflows"))?;
    let mut scores = vec![f64::NAN; total];
    let outcome = instance.call(generation, &ids, &services, &mut scores);
    let mut out = Out::new(wire::EVALUATED);
    match &outcome.status {
        Ok(()) => out.u8(0).str(""),
        Err(Refusal::Failed(m)) => out.u8(1).str(m),
        Err(Refusal::Unfit(m)) => out.u8(2).str(m),
    };
    out.usize(outcome.written).f64s(&scores);
    Ok(out)
}

/// The services inside the worker: genomes from the batch's frame,
/// everything else asked of the engine.
struct Forwarded<'a> {
    genomes: Vec<Genome>,
    /// Held-out data by organism, asked for once per call.
    heldout: Vec<OnceLock<Batch>>,
    channel: &'a Mutex<Channel>,
}

impl Forwarded<'_> {
    /// Sends a request and waits for the engine's reply: its payload, or
    /// the service's message.
    fn ask(&self, request: Out) -> Result<Vec<u8>, String> {
        let lost = |e: std::io::Error| format!("the engine cannot be reached: {e}");
        let mut channel = lock(self.channel);
        channel.send(request).map_err(lost)?;
        let body = channel
            .receive()
            .map_err(lost)?
            .ok_or("the engine closed the channel")?;
        let mut r = In::new(&body);
        match r.u8()? {
            wire::REPLY_OK => Ok(body[1..].to_vec()),
            wire::REPLY_ERR => Err(r.str()?.to_owned()),
            tag => Err(format!("unexpected reply frame {tag}")),
        }
    }
}

fn raw_stage(stage: Stage) -> u32 {
    match stage {
        Stage::Birth => LN_BIRTH,
        Stage::Learned => LN_LEARNED,
    }
}

impl Services for Forwarded<'_> {
    fn genome(&self, organism: usize) -> Result<&Genome, String> {
        self.genomes
            .get(organism)
            .ok_or_else(|| format!("organism index {organism} is out of range"))
    }

    fn gene(&self, name: &str) -> Result<(usize, usize), String> {
        let mut q = Out::new(wire::ASK_GENE);
        q.str(name);
        let reply = self.ask(q)?;
        let mut r = In::new(&reply);
        Ok((r.usize()?, r.usize()?))
    }

    fn weights(&self, organism: usize, name: &str, stage: Stage) -> Result<Tensor<'_>, String> {
        let mut q = Out::new(wire::ASK_WEIGHTS);
        q.usize(organism).str(name).u32(raw_stage(stage));
        let reply = self.ask(q)?;
        get_tensor(&mut In::new(&reply))
    }

    fn curve(&self, organism: usize) -> Result<Curve<'_>, String> {
        let mut q = Out::new(wire::ASK_CURVE);
        q.usize(organism);
        let reply = self.ask(q)?;
        let mut r = In::new(&reply);
        let n = r.usize()?;
        let mut points = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            points.push(LnCurvePoint {
                step: r.u32()?,
                train: f32::from_bits(r.u32()?),
                heldout: f32::from_bits(r.u32()?),
            });
        }
        Ok(Curve {
            points: Cow::Owned(points),
            status: r.u32()?,
            diverged_at: r.u32()?,
        })
    }

    fn heldout(&self, organism: usize) -> Result<&Batch, String> {
        let cell = self
            .heldout
            .get(organism)
            .ok_or_else(|| format!("organism index {organism} is out of range"))?;
        if let Some(b) = cell.get() {
            return Ok(b);
        }
        let mut q = Out::new(wire::ASK_HELDOUT);
        q.usize(organism);
        let reply = self.ask(q)?;
        let batch = get_batch(&mut In::new(&reply))?;
        Ok(cell.get_or_init(|| batch))
    }

    fn run(&self, organism: usize, request: &RunRequest<'_>) -> Result<Tensor<'static>, String> {
        let mut q = Out::new(wire::ASK_RUN);
        q.usize(organism).u32(raw_stage(request.stage));
        match request.what {
            RunWhat::Outputs => q.u8(0).str(""),
            RunWhat::Hidden(name) => q.u8(1).str(name),
            RunWhat::Gradient(name) => q.u8(2).str(name),
            RunWhat::Kernel(name) => q.u8(3).str(name),
        };
        q.usize(request.n).usize(request.len);
        match request.input {
            RunInput::Real(x) => q.u8(0).f32s(x),
            RunInput::Tokens(t) => q.u8(1).u32s(t),
        };
        match request.cotangent {
            None => q.u8(0),
            Some(c) => q.u8(1).f32s(c),
        };
        let reply = self.ask(q)?;
        get_tensor(&mut In::new(&reply))
    }

    fn probes(&self, organism: usize, set: &str, metric: &str) -> Result<Tensor<'static>, String> {
        let mut q = Out::new(wire::ASK_PROBES);
        q.usize(organism).str(set).str(metric);
        let reply = self.ask(q)?;
        get_tensor(&mut In::new(&reply))
    }
}
