//! Configured offerings and the calls into them, in this process or in a
//! worker ([`crate::isolate`]), and the checks on what a plugin returns.
//!
//! - `host`: the host's services as C trampolines over a [`Services`]
//!   implementation, for a call in this process.

use std::ffi::{CString, c_void};
use std::sync::{Arc, Mutex};

use lineage_plugin::abi::*;

mod host;

use host::Context;
pub(crate) use host::message;

use crate::call::{Outcome, Refusal};
use crate::environment::{Described, Filled, Part, Shape};
use crate::library::{OfferingInfo, Plugin};
use crate::{EvalError, PluginError, Services};

/// Room for a plugin's error message.
pub(crate) const ERROR_CAPACITY: usize = 4096;

/// A configured instance of a plugin's offering.
#[derive(Debug)]
pub struct Instance {
    plugin: Arc<Plugin>,
    info: OfferingInfo,
    body: Body,
}

/// Where the instance lives.
#[derive(Debug)]
enum Body {
    /// The plugin's instance pointer; the lock serialises calls into it.
    InProcess(Mutex<RawInstance>),
    /// An instance in a worker process.
    Isolated(Mutex<crate::isolate::Remote>),
}

#[derive(Debug)]
struct RawInstance(*mut c_void);

// SAFETY: the ABI allows an instance to be called from any thread, one call
// at a time (the mutex).
unsafe impl Send for RawInstance {}

impl Instance {
    /// Creates an instance of `offering`, configured by `toml` (the table's
    /// text) and its flattened `(dotted key, TOML literal)` entries.
    pub fn create(
        plugin: &Arc<Plugin>,
        offering: &str,
        toml: &str,
        entries: &[(String, String)],
    ) -> Result<Instance, PluginError> {
        let (index, info) = plugin.offering(offering)?;
        if let Some(library) = &plugin.isolated {
            let remote = library.create(&plugin.name, offering, index, toml, entries)?;
            return Ok(Instance {
                plugin: plugin.clone(),
                info: info.clone(),
                body: Body::Isolated(Mutex::new(remote)),
            });
        }
        let create_error = |message: String| PluginError::Create {
            plugin: plugin.name.clone(),
            offering: offering.to_owned(),
            message,
        };
        let c = |s: &str| CString::new(s).map_err(|_| create_error(format!("{s:?} holds a NUL")));
        let text = c(toml)?;
        let owned: Vec<(CString, CString)> = entries
            .iter()
            .map(|(k, v)| Ok((c(k)?, c(v)?)))
            .collect::<Result<_, PluginError>>()?;
        let raw_entries: Vec<LnConfigEntry> = owned
            .iter()
            .map(|(k, v)| LnConfigEntry {
                key: k.as_ptr(),
                value: v.as_ptr(),
            })
            .collect();
        let config = LnConfig {
            toml: text.as_ptr(),
            entries: raw_entries.as_ptr(),
            n_entries: raw_entries.len(),
        };
        let mut buffer = vec![0u8; ERROR_CAPACITY];
        let mut error = LnError {
            message: buffer.as_mut_ptr().cast(),
            capacity: buffer.len(),
        };
        let mut instance: *mut c_void = std::ptr::null_mut();
        let create = plugin.raw.and_then(|r| r.create).expect("checked at load");
        // SAFETY: calling the plugin as the ABI defines; every pointer is
        // valid for the call.
        let status = unsafe { create(index, &config, &mut instance, &mut error) };
        if status != LN_OK {
            return Err(create_error(message(&buffer)));
        }
        Ok(Instance {
            plugin: plugin.clone(),
            info: info.clone(),
            body: Body::InProcess(Mutex::new(RawInstance(instance))),
        })
    }

    /// The plugin it belongs to.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The offering it is an instance of.
    pub fn offering(&self) -> &OfferingInfo {
        &self.info
    }

    /// What an environment instance declares (its task, probe sets and
    /// direction), as it declared it; or why it could not say.
    pub(crate) fn describe_environment(&self) -> Result<Described, String> {
        match &self.body {
            Body::InProcess(raw) => {
                let pointer = raw.lock().unwrap_or_else(|p| p.into_inner()).0;
                crate::environment::describe(&self.plugin, pointer)
            }
            Body::Isolated(remote) => remote
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .describe()
                .map_err(|e| e.message()),
        }
    }

    /// Has an environment instance fill buffers of `shape` for `part` from
    /// `seed`: what it wrote (unchecked), or why not. In this process,
    /// fills run concurrently (the ABI allows it); an isolated instance
    /// serves one at a time.
    pub(crate) fn fill_environment(
        &self,
        part: Part,
        seed: u64,
        shape: &Shape,
    ) -> Result<Filled, String> {
        match &self.body {
            Body::InProcess(raw) => {
                let pointer = raw.lock().unwrap_or_else(|p| p.into_inner()).0;
                crate::environment::fill(&self.plugin, pointer, part, seed, shape)
            }
            Body::Isolated(remote) => remote
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .fill(part, seed, shape)
                .map_err(|e| e.message()),
        }
    }

    /// Scores the organisms `ids` (ascending) into `out` (`ids.len() x
    /// metrics`, row-major), with `services` answering the plugin's
    /// questions. On [`EvalError::NonFinite`] the finite scores in `out` are
    /// valid.
    pub fn evaluate(
        &self,
        generation: u32,
        ids: &[u64],
        services: &dyn Services,
        out: &mut [f64],
    ) -> Result<(), EvalError> {
        let metrics = self.info.metrics.len();
        let expected = ids.len() * metrics;
        assert_eq!(out.len(), expected, "score buffer of the wrong size");
        out.fill(f64::NAN);
        let outcome = match &self.body {
            Body::InProcess(_) => self.call(generation, ids, services, out),
            Body::Isolated(remote) => {
                let mut remote = remote.lock().unwrap_or_else(|p| p.into_inner());
                remote
                    .evaluate(generation, ids, metrics, services, out)
                    .map_err(|fault| fault.into_eval_error(&self.plugin.name, &self.info.name))?
            }
        };
        self.check(ids, outcome, out)
    }

    /// Calls the plugin in this process: its status, with its message on
    /// failure, and the number of scores it says it wrote.
    pub(crate) fn call(
        &self,
        generation: u32,
        ids: &[u64],
        services: &dyn Services,
        out: &mut [f64],
    ) -> Outcome {
        let Body::InProcess(raw) = &self.body else {
            unreachable!("only in-process instances are called directly")
        };
        let metrics = self.info.metrics.len();
        let context = Context::new(services, ids.len());
        let host = context.table();
        let call = LnCall {
            generation,
            n_organisms: ids.len(),
            ids: ids.as_ptr(),
            host: &host,
        };
        let mut scores = LnScores {
            values: out.as_mut_ptr(),
            n_organisms: ids.len(),
            n_metrics: metrics,
            written: 0,
        };
        let mut buffer = vec![0u8; ERROR_CAPACITY];
        let mut error = LnError {
            message: buffer.as_mut_ptr().cast(),
            capacity: buffer.len(),
        };
        let evaluate = self
            .plugin
            .raw
            .and_then(|r| r.evaluate)
            .expect("checked at load");
        let status = {
            let raw = raw.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: calling the plugin as the ABI defines; every pointer
            // stays valid until it returns.
            unsafe { evaluate(raw.0, &call, &mut scores, &mut error) }
        };
        Outcome {
            status: match status {
                LN_OK => Ok(()),
                LN_UNFIT => Err(Refusal::Unfit(message(&buffer))),
                _ => Err(Refusal::Failed(message(&buffer))),
            },
            written: scores.written,
        }
    }

    /// Checks what a call returned: its status, the count of scores, and
    /// that every score is finite.
    fn check(&self, ids: &[u64], outcome: Outcome, out: &[f64]) -> Result<(), EvalError> {
        let metrics = self.info.metrics.len();
        let expected = ids.len() * metrics;
        let plugin = || self.plugin.name.clone();
        let offering = || self.info.name.clone();
        match outcome.status {
            Ok(()) => {}
            Err(Refusal::Failed(message)) => {
                return Err(EvalError::Failed {
                    plugin: plugin(),
                    offering: offering(),
                    message,
                });
            }
            Err(Refusal::Unfit(message)) => {
                return Err(EvalError::Unfit {
                    plugin: plugin(),
                    offering: offering(),
                    message,
                });
            }
        }
        if outcome.written != expected {
            return Err(EvalError::WrongCount {
                plugin: plugin(),
                offering: offering(),
                written: outcome.written,
                organisms: ids.len(),
                metrics,
                expected,
            });
        }
        if out.iter().all(|v| v.is_finite()) {
            return Ok(());
        }
        let bad: Vec<usize> = out
            .chunks_exact(metrics.max(1))
            .enumerate()
            .filter(|(_, row)| row.iter().any(|v| !v.is_finite()))
            .map(|(i, _)| i)
            .collect();
        if let Some(&first) = bad.first() {
            let row = &out[first * metrics..(first + 1) * metrics];
            let j = row.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(EvalError::NonFinite {
                plugin: plugin(),
                offering: offering(),
                id: ids[first],
                metric: self.info.metrics[j].name.clone(),
                value: row[j],
                organisms: bad,
            });
        }
        Ok(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // An isolated instance ends with its worker process.
        let Body::InProcess(raw) = &mut self.body else {
            return;
        };
        let raw = raw.get_mut().unwrap_or_else(|p| p.into_inner()).0;
        if let Some(destroy) = self.plugin.raw.and_then(|r| r.destroy) {
            // SAFETY: the instance came from this plugin's `create` and is
            // destroyed once.
            unsafe { destroy(raw) };
        }
    }
}
