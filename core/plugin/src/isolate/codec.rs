//! Plugin values on the wire, both ways: tensors, data batches, a
//! plugin's descriptor and its load errors, as the engine and the worker
//! write and read them inside [`super::wire`] frames.

use std::borrow::Cow;
use std::path::Path;

use lineage_env::Batch;
use lineage_evo::{Direction, Objective};
use lineage_plugin::Kind;

use super::wire::{In, Out};
use crate::environment::{Described, Filled, Shape};
use crate::library::{OfferingInfo, Plugin};
use crate::{PluginError, Tensor};
use lineage_plugin::abi::LnTask;

use super::*;

pub(crate) fn put_tensor(out: &mut Out, t: &Tensor<'_>) {
    out.u64s(&t.shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
        .f32s(&t.data);
}

pub(crate) fn get_tensor(r: &mut In<'_>) -> Result<Tensor<'static>, String> {
    let shape = r.u64s()?.into_iter().map(|d| d as usize).collect();
    Ok(Tensor {
        shape,
        data: Cow::Owned(r.f32s()?),
    })
}

pub(crate) fn put_batch(out: &mut Out, b: &Batch) {
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

pub(crate) fn get_batch(r: &mut In<'_>) -> Result<Batch, String> {
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
pub(crate) fn put_descriptor(out: &mut Out, p: &Plugin) {
    out.str(&p.name)
        .str(&p.version)
        .str(&p.description)
        .u32(p.abi_version)
        .usize(p.offerings.len());
    for o in &p.offerings {
        out.str(&o.name)
            .u8(match o.kind {
                Kind::Fitness => 1,
                Kind::Suite => 2,
                Kind::Environment => 3,
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

pub(crate) fn read_descriptor(r: &mut In<'_>) -> Result<Plugin, String> {
    let name = r.str()?.to_owned();
    let version = r.str()?.to_owned();
    let description = r.str()?.to_owned();
    let abi_version = r.u32()?;
    let n = r.usize()?;
    let mut offerings = Vec::new();
    for _ in 0..n {
        let oname = r.str()?.to_owned();
        let kind = match r.u8()? {
            1 => Kind::Fitness,
            2 => Kind::Suite,
            3 => Kind::Environment,
            k => return Err(format!("unknown offering kind {k}")),
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
        environment: None,
        isolated: None,
    })
}

/// Writes a load error into `LOAD_FAILED`.
pub(crate) fn put_load_error(out: &mut Out, e: &PluginError) {
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

pub(crate) fn read_load_error(r: &mut In<'_>, path: &Path) -> Result<PluginError, String> {
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

/// Writes an environment's description into `DESCRIBED`.
pub(crate) fn put_described(out: &mut Out, d: &Described) {
    let t = &d.task;
    out.u32(t.kind)
        .usize(t.inputs)
        .usize(t.outputs)
        .usize(t.steps)
        .usize(t.heldout)
        .usize(t.n_probes)
        .u32(t.has_direction)
        .usize(d.probes.len());
    for (name, n, choices) in &d.probes {
        out.str(name).usize(*n);
        match choices {
            None => out.u8(0),
            Some(c) => out.u8(1).u32s(c),
        };
    }
    match &d.direction {
        None => out.u8(0),
        Some(v) => out.u8(1).f32s(v),
    };
}

pub(crate) fn get_described(r: &mut In<'_>) -> Result<Described, String> {
    let task = LnTask {
        kind: r.u32()?,
        inputs: r.usize()?,
        outputs: r.usize()?,
        steps: r.usize()?,
        heldout: r.usize()?,
        n_probes: r.usize()?,
        has_direction: r.u32()?,
    };
    let n = r.usize()?;
    let mut probes = Vec::with_capacity(n.min(crate::environment::MAX_PROBES));
    for _ in 0..n {
        let name = r.str()?.to_owned();
        let examples = r.usize()?;
        let choices = match r.u8()? {
            0 => None,
            _ => Some(r.u32s()?),
        };
        probes.push((name, examples, choices));
    }
    let direction = match r.u8()? {
        0 => None,
        _ => Some(r.f32s()?),
    };
    Ok(Described {
        task,
        probes,
        direction,
    })
}

/// Writes a fill request's shape.
pub(crate) fn put_shape(out: &mut Out, s: &Shape) {
    out.u32(s.kind)
        .usize(s.n)
        .usize(s.steps)
        .usize(s.x)
        .usize(s.y)
        .usize(s.labels)
        .usize(s.tokens);
}

pub(crate) fn get_shape(r: &mut In<'_>) -> Result<Shape, String> {
    let shape = Shape {
        kind: r.u32()?,
        n: r.usize()?,
        steps: r.usize()?,
        x: r.usize()?,
        y: r.usize()?,
        labels: r.usize()?,
        tokens: r.usize()?,
    };
    let max = crate::environment::MAX_VALUES;
    if [shape.x, shape.y, shape.labels, shape.tokens]
        .iter()
        .any(|&v| v > max)
    {
        return Err("a fill request larger than any task allows".into());
    }
    Ok(shape)
}

/// Writes filled buffers into `FILLED`.
pub(crate) fn put_filled(out: &mut Out, f: &Filled) {
    out.usize(f.written)
        .f32s(&f.x)
        .f32s(&f.y)
        .u32s(&f.labels)
        .u32s(&f.tokens);
}

pub(crate) fn get_filled(r: &mut In<'_>) -> Result<Filled, String> {
    Ok(Filled {
        written: r.usize()?,
        x: r.f32s()?,
        y: r.f32s()?,
        labels: r.u32s()?,
        tokens: r.u32s()?,
    })
}
