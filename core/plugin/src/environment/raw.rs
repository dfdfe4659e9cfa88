//! Calls into the environment functions of a plugin loaded in this
//! process: the engine's in-process path, and the worker's side of
//! isolation.

use std::ffi::{CStr, c_void};

use lineage_plugin::abi::*;

use super::{Described, Filled, MAX_PROBES, Part, Shape};
use crate::instance::{ERROR_CAPACITY, message};
use crate::library::Plugin;

/// A host-owned error buffer and the `LnError` pointing into it.
struct ErrorBuffer(Vec<u8>);

impl ErrorBuffer {
    fn new() -> ErrorBuffer {
        ErrorBuffer(vec![0u8; ERROR_CAPACITY])
    }

    fn raw(&mut self) -> LnError {
        LnError {
            message: self.0.as_mut_ptr().cast(),
            capacity: self.0.len(),
        }
    }

    fn message(&self) -> String {
        message(&self.0)
    }
}

fn api(plugin: &Plugin) -> Result<&'static LnEnvironmentApi, String> {
    plugin
        .environment
        .ok_or_else(|| "the plugin has no environment functions".to_owned())
}

/// What the instance declares: its task, probe sets and direction.
pub(crate) fn describe(plugin: &Plugin, instance: *mut c_void) -> Result<Described, String> {
    let api = api(plugin)?;
    let task_fn = api.task.ok_or("no task function")?;
    let mut task = LnTask::default();
    let mut error = ErrorBuffer::new();
    let mut raw = error.raw();
    // SAFETY: calling the plugin as the ABI defines; every pointer is valid
    // for the call.
    if unsafe { task_fn(instance, &mut task, &mut raw) } != LN_OK {
        return Err(format!("its task function failed: {}", error.message()));
    }
    if task.n_probes > MAX_PROBES {
        return Err(format!(
            "its task declares {} probe sets; at most {MAX_PROBES}",
            task.n_probes
        ));
    }
    let mut probes = Vec::with_capacity(task.n_probes);
    if task.n_probes > 0 {
        let probe_fn = api
            .probe
            .ok_or("its task declares probe sets, but it has no probe function")?;
        for i in 0..task.n_probes {
            let mut p = LnProbe {
                name: std::ptr::null(),
                n: 0,
                choices: std::ptr::null(),
                n_choices: 0,
            };
            let mut raw = error.raw();
            // SAFETY: as above.
            if unsafe { probe_fn(instance, i, &mut p, &mut raw) } != LN_OK {
                return Err(format!(
                    "its probe function failed for set {i}: {}",
                    error.message()
                ));
            }
            if p.name.is_null() {
                return Err(format!("probe set {i} has a null name"));
            }
            // SAFETY: NUL-terminated and alive as long as the instance, by
            // the ABI.
            let name = unsafe { CStr::from_ptr(p.name) }
                .to_str()
                .map_err(|_| format!("probe set {i}'s name is not UTF-8"))?
                .to_owned();
            let choices = if p.n_choices == 0 {
                None
            } else if p.choices.is_null() {
                return Err(format!(
                    "probe set `{name}` declares {} choices at a null pointer",
                    p.n_choices
                ));
            } else if p.n_choices > super::MAX_CLASSES {
                return Err(format!(
                    "probe set `{name}` declares {} choices",
                    p.n_choices
                ));
            } else {
                // SAFETY: `n_choices` labels by the ABI.
                Some(unsafe { std::slice::from_raw_parts(p.choices, p.n_choices) }.to_vec())
            };
            probes.push((name, p.n, choices));
        }
    }
    let direction = if task.has_direction != 0 {
        let direction_fn = api
            .direction
            .ok_or("its task declares a direction, but it has no direction function")?;
        if task.inputs > super::MAX_INPUTS {
            return Err(format!("its task declares {} inputs", task.inputs));
        }
        let mut d = vec![f32::NAN; task.inputs];
        let mut raw = error.raw();
        // SAFETY: as above; `d` holds `inputs` values.
        if unsafe { direction_fn(instance, d.as_mut_ptr(), d.len(), &mut raw) } != LN_OK {
            return Err(format!(
                "its direction function failed: {}",
                error.message()
            ));
        }
        Some(d)
    } else {
        None
    };
    Ok(Described {
        task,
        probes,
        direction,
    })
}

/// Buffers of `shape`, prefilled, handed to the plugin to fill for `part`
/// from `seed`: what it wrote, or its message.
pub(crate) fn fill(
    plugin: &Plugin,
    instance: *mut c_void,
    part: Part,
    seed: u64,
    shape: &Shape,
) -> Result<Filled, String> {
    let fill_fn = api(plugin)?.fill.ok_or("no fill function")?;
    let mut f = Filled::blank(shape);
    let ptr = |len: usize, p: *mut f32| if len == 0 { std::ptr::null_mut() } else { p };
    let ptr_u = |len: usize, p: *mut u32| if len == 0 { std::ptr::null_mut() } else { p };
    let mut batch = LnBatch {
        kind: shape.kind,
        n: shape.n,
        steps: shape.steps,
        x: ptr(f.x.len(), f.x.as_mut_ptr()),
        x_len: f.x.len(),
        y: ptr(f.y.len(), f.y.as_mut_ptr()),
        y_len: f.y.len(),
        labels: ptr_u(f.labels.len(), f.labels.as_mut_ptr()),
        labels_len: f.labels.len(),
        tokens: ptr_u(f.tokens.len(), f.tokens.as_mut_ptr()),
        tokens_len: f.tokens.len(),
        written: 0,
    };
    let (what, index) = part.raw();
    let mut error = ErrorBuffer::new();
    let mut raw = error.raw();
    // SAFETY: calling the plugin as the ABI defines; the buffers hold their
    // stated lengths and stay valid for the call.
    let status = unsafe { fill_fn(instance, what, index, seed, &mut batch, &mut raw) };
    if status != LN_OK {
        return Err(format!("its fill function failed: {}", error.message()));
    }
    f.written = batch.written;
    Ok(f)
}
