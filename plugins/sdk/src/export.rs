//! What [`export_plugin!`](crate::export_plugin) expands to: the descriptor
//! built from a [`Plugin`], and the `extern "C"` functions the host calls,
//! each with `catch_unwind` at its edge so a panic becomes an error status.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};

use crate::abi::*;
use crate::environment::{Description, Examples, Part, Task};
use crate::{Batch, Config, Direction, Environment, Error, Evaluate, Kind, Plugin, Scores};

/// Generates the library's entry symbol, `lineage_plugin_entry`, for a type
/// implementing [`Plugin`](crate::Plugin). Use it once per library.
///
/// Build the library with unwinding (the default `panic = "unwind"`): a
/// panic is then caught at the boundary and reported as an error.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The plugin's descriptor (the Lineage plugin ABI's entry point).
        #[unsafe(no_mangle)]
        pub extern "C" fn lineage_plugin_entry() -> *const $crate::abi::LnPlugin {
            static DESCRIPTOR: ::std::sync::OnceLock<$crate::export::Descriptor> =
                ::std::sync::OnceLock::new();
            $crate::export::descriptor::<$plugin>(&DESCRIPTOR)
        }
    };
}

/// Defines `pub extern "C" fn lineage_plugin_descriptor()`, the plugin's
/// descriptor under a name of the crate's own, for a crate that a host
/// links into its binary as a built-in (`register_linked` in the
/// `lineage` host) rather than loading it: the unmangled
/// `lineage_plugin_entry` of [`export_plugin!`] can exist once per binary,
/// so two such crates linked together cannot both export it. The shared
/// library of such a plugin is then a separate `cdylib` crate whose one
/// line is `export_plugin!(the_crate::ThePlugin)`.
#[macro_export]
macro_rules! plugin_descriptor {
    ($plugin:ty) => {
        /// The plugin's descriptor (what its library's
        /// `lineage_plugin_entry` returns), built once.
        pub extern "C" fn lineage_plugin_descriptor() -> *const $crate::abi::LnPlugin {
            static DESCRIPTOR: ::std::sync::OnceLock<$crate::export::Descriptor> =
                ::std::sync::OnceLock::new();
            $crate::export::descriptor::<$plugin>(&DESCRIPTOR)
        }
    };
}

/// A plugin's descriptor and the memory it points into.
#[derive(Debug)]
pub struct Descriptor {
    raw: LnPlugin,
    _strings: Vec<CString>,
    _offerings: Vec<LnOffering>,
    _metrics: Vec<Vec<LnMetric>>,
    _reads: Vec<u32>,
}

// SAFETY: the raw pointers point into the descriptor's own, never mutated,
// heap buffers.
unsafe impl Send for Descriptor {}
unsafe impl Sync for Descriptor {}

/// `P`'s descriptor, built once into `cell`; null if building it panicked.
pub fn descriptor<P: Plugin>(cell: &'static OnceLock<Descriptor>) -> *const LnPlugin {
    match catch_unwind(|| cell.get_or_init(build::<P>)) {
        Ok(d) => &d.raw,
        Err(_) => std::ptr::null(),
    }
}

fn build<P: Plugin>() -> Descriptor {
    let mut strings = Vec::new();
    let mut intern = |s: &str| {
        let c = CString::new(s.replace('\0', "")).unwrap_or_default();
        let ptr = c.as_ptr();
        strings.push(c);
        ptr
    };
    let name = intern(P::NAME);
    let version = intern(P::VERSION);
    let description = intern(P::DESCRIPTION);
    let offerings = P::offerings();
    let metrics: Vec<Vec<LnMetric>> = offerings
        .iter()
        .map(|o| {
            o.metrics
                .iter()
                .map(|m| LnMetric {
                    name: intern(&m.name),
                    direction: match m.direction {
                        Direction::Maximize => LN_MAXIMIZE,
                        Direction::Minimize => LN_MINIMIZE,
                    },
                })
                .collect()
        })
        .collect();
    let raw_offerings: Vec<LnOffering> = offerings
        .iter()
        .zip(&metrics)
        .map(|(o, m)| LnOffering {
            name: intern(&o.name),
            kind: match o.kind {
                Kind::Fitness => LN_FITNESS,
                Kind::Suite => LN_SUITE,
                Kind::Environment => LN_ENVIRONMENT,
            },
            metrics: if m.is_empty() {
                std::ptr::null()
            } else {
                m.as_ptr()
            },
            n_metrics: m.len(),
            description: intern(&o.description),
        })
        .collect();
    let reads: Vec<u32> = offerings
        .iter()
        .map(|o| if o.reads_weights { LN_READS_WEIGHTS } else { 0 })
        .collect();
    Descriptor {
        raw: LnPlugin {
            abi_version: ABI_VERSION,
            struct_size: size_of::<LnPlugin>() as u32,
            name,
            version,
            description,
            offerings: raw_offerings.as_ptr(),
            n_offerings: raw_offerings.len(),
            create: Some(create::<P>),
            evaluate: Some(evaluate),
            destroy: Some(destroy),
            offering_reads: reads.as_ptr(),
            environment: if offerings.iter().any(|o| o.kind == Kind::Environment) {
                &ENVIRONMENT_API
            } else {
                std::ptr::null()
            },
        },
        _strings: strings,
        _offerings: raw_offerings,
        _metrics: metrics,
        _reads: reads,
    }
}

unsafe extern "C" fn create<P: Plugin>(
    offering: usize,
    config: *const LnConfig,
    instance: *mut *mut c_void,
    error: *mut LnError,
) -> LnStatus {
    guard(error, || {
        let offerings = P::offerings();
        let Some(o) = offerings.get(offering) else {
            return Err(Error(format!(
                "no offering {offering}: the plugin has {}",
                offerings.len()
            )));
        };
        // SAFETY: the host passes a valid config for the call's duration.
        let config = unsafe { read_config(config) };
        let made = match o.kind {
            Kind::Environment => Made::Environment(Box::new(EnvironmentInstance::new(
                P::environment(&o.name, &config)?,
            )?)),
            Kind::Fitness | Kind::Suite => Made::Evaluate(P::create(&o.name, &config)?),
        };
        let boxed: Box<Made> = Box::new(made);
        // SAFETY: the host passes a valid out pointer.
        unsafe { *instance = Box::into_raw(boxed).cast() };
        Ok(())
    })
}

unsafe extern "C" fn evaluate(
    instance: *mut c_void,
    call: *const LnCall,
    scores: *mut LnScores,
    error: *mut LnError,
) -> LnStatus {
    let unfit = AtomicBool::new(false);
    let status = guard(error, || {
        // SAFETY: `instance` came from `create`; the host keeps `call` and
        // `scores` valid for the call.
        unsafe {
            let Made::Evaluate(evaluator) = &*(instance as *const Made) else {
                return Err(Error::new("an environment is not evaluated"));
            };
            let call = &*call;
            let scores = &mut *scores;
            let len = scores.n_organisms * scores.n_metrics;
            let values: &mut [f64] = if len == 0 {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(scores.values, len)
            };
            let batch = Batch::from_raw(call, &unfit);
            evaluator.evaluate(&batch, &mut Scores::new(values, scores.n_metrics))?;
            scores.written = len;
        }
        Ok(())
    });
    if status == LN_ERROR && unfit.load(Ordering::Relaxed) {
        LN_UNFIT
    } else {
        status
    }
}

unsafe extern "C" fn destroy(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    let _ = catch_unwind(|| {
        // SAFETY: `instance` came from `create` and is destroyed once.
        drop(unsafe { Box::from_raw(instance as *mut Made) });
    });
}

/// What `create` makes: the instance pointer the host holds points at one.
enum Made {
    Evaluate(Box<dyn Evaluate>),
    Environment(Box<EnvironmentInstance>),
}

/// An environment with its description, and the C strings and choices the
/// host reads through [`LnProbe`] for as long as the instance lives.
struct EnvironmentInstance {
    environment: Box<dyn Environment>,
    description: Description,
    names: Vec<CString>,
}

impl EnvironmentInstance {
    fn new(environment: Box<dyn Environment>) -> Result<EnvironmentInstance, Error> {
        let description = environment.describe();
        let names = description
            .probes
            .iter()
            .map(|p| {
                CString::new(p.name.clone())
                    .map_err(|_| Error::new(format!("probe set name {:?} holds a NUL", p.name)))
            })
            .collect::<Result<_, _>>()?;
        Ok(EnvironmentInstance {
            environment,
            description,
            names,
        })
    }
}

/// The environment functions every SDK plugin with an environment shares.
static ENVIRONMENT_API: LnEnvironmentApi = LnEnvironmentApi {
    task: Some(environment_task),
    probe: Some(environment_probe),
    direction: Some(environment_direction),
    fill: Some(environment_fill),
};

/// # Safety
/// `instance` came from `create`.
unsafe fn environment_of<'a>(instance: *mut c_void) -> Result<&'a EnvironmentInstance, Error> {
    // SAFETY: the caller's contract.
    match unsafe { &*(instance as *const Made) } {
        Made::Environment(e) => Ok(e),
        Made::Evaluate(_) => Err(Error::new("this instance is not an environment")),
    }
}

unsafe extern "C" fn environment_task(
    instance: *mut c_void,
    out: *mut LnTask,
    error: *mut LnError,
) -> LnStatus {
    guard(error, || {
        // SAFETY: the host passes its instance and a valid out pointer.
        let e = unsafe { environment_of(instance)? };
        let d = &e.description;
        let (kind, inputs, outputs, steps) = match d.task {
            Task::Regression { inputs, outputs } => (LN_DATA_DENSE, inputs, outputs, 0),
            Task::Classification { inputs, classes } => (LN_DATA_LABELED, inputs, classes, 0),
            Task::Sequences {
                inputs,
                classes,
                steps,
            } => (LN_DATA_SEQUENCES, inputs, classes, steps),
            Task::NextToken { vocab, context } => (LN_DATA_TOKENS, 0, vocab, context),
        };
        let task = LnTask {
            kind,
            inputs,
            outputs,
            steps,
            heldout: d.heldout,
            n_probes: d.probes.len(),
            has_direction: u32::from(d.direction.is_some()),
        };
        // SAFETY: a valid out pointer by contract.
        unsafe { *out = task };
        Ok(())
    })
}

unsafe extern "C" fn environment_probe(
    instance: *mut c_void,
    index: usize,
    out: *mut LnProbe,
    error: *mut LnError,
) -> LnStatus {
    guard(error, || {
        // SAFETY: the host passes its instance and a valid out pointer.
        let e = unsafe { environment_of(instance)? };
        let Some(p) = e.description.probes.get(index) else {
            return Err(Error::new(format!("no probe set {index}")));
        };
        let probe = LnProbe {
            name: e.names[index].as_ptr(),
            n: p.examples,
            choices: p.choices.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            n_choices: p.choices.as_ref().map_or(0, Vec::len),
        };
        // SAFETY: a valid out pointer by contract.
        unsafe { *out = probe };
        Ok(())
    })
}

unsafe extern "C" fn environment_direction(
    instance: *mut c_void,
    out: *mut f32,
    n: usize,
    error: *mut LnError,
) -> LnStatus {
    guard(error, || {
        // SAFETY: the host passes its instance.
        let e = unsafe { environment_of(instance)? };
        let Some(d) = &e.description.direction else {
            return Err(Error::new("this environment has no task direction"));
        };
        if d.len() != n || out.is_null() {
            return Err(Error::new(format!(
                "the task direction has {} values, the host asked for {n}",
                d.len()
            )));
        }
        // SAFETY: the host's buffer holds `n` values.
        unsafe { std::ptr::copy_nonoverlapping(d.as_ptr(), out, n) };
        Ok(())
    })
}

unsafe extern "C" fn environment_fill(
    instance: *mut c_void,
    what: u32,
    index: usize,
    seed: u64,
    batch: *mut LnBatch,
    error: *mut LnError,
) -> LnStatus {
    guard(error, || {
        // SAFETY: the host passes its instance and a valid batch whose
        // buffers hold their stated lengths (null ones are empty).
        unsafe {
            let e = environment_of(instance)?;
            let part = match what {
                LN_FILL_TRAIN => Part::Train,
                LN_FILL_HELDOUT => Part::Heldout,
                LN_FILL_PROBE => Part::Probe(index),
                other => return Err(Error::new(format!("unknown fill {other}"))),
            };
            let b = &mut *batch;
            let mut examples = Examples::new(
                b.n,
                b.steps,
                slice_mut(b.x, b.x_len),
                slice_mut(b.y, b.y_len),
                slice_mut(b.labels, b.labels_len),
                slice_mut(b.tokens, b.tokens_len),
            );
            e.environment.fill(part, seed, &mut examples)?;
            b.written = b.n;
        }
        Ok(())
    })
}

/// # Safety
/// `p` is null with `len` 0, or valid for `len` values.
unsafe fn slice_mut<'a, T>(p: *mut T, len: usize) -> &'a mut [T] {
    if p.is_null() || len == 0 {
        &mut []
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }
}

thread_local! {
    /// True while this thread runs a call from the host.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic on this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that keeps panics inside host calls quiet
/// (their message travels back to the host in the error) and records where
/// they happened; other panics go to the hook that was there before.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning an error or a panic into [`LN_ERROR`] and a message.
fn guard(error: *mut LnError, f: impl FnOnce() -> Result<(), Error>) -> LnStatus {
    install_panic_hook();
    let outer = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    let message = match result {
        Ok(Ok(())) => return LN_OK,
        Ok(Err(e)) => e.0,
        Err(payload) => match LOCATION.with(|l| l.borrow_mut().take()) {
            Some(at) => format!("panicked at {at}: {}", panic_message(&*payload)),
            None => format!("panicked: {}", panic_message(&*payload)),
        },
    };
    // SAFETY: the host passes a valid buffer or null.
    unsafe { write_error(error, &message) };
    LN_ERROR
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

/// Writes `message` into `error`, truncated at a character boundary to fit
/// with its NUL.
///
/// # Safety
/// `error` is null, or a valid [`LnError`] whose buffer holds `capacity`
/// bytes.
pub unsafe fn write_error(error: *mut LnError, message: &str) {
    // SAFETY: the caller's contract.
    let Some(error) = (unsafe { error.as_mut() }) else {
        return;
    };
    if error.message.is_null() || error.capacity == 0 {
        return;
    }
    let mut n = message.len().min(error.capacity - 1);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `n + 1 <= capacity`.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), error.message.cast::<u8>(), n);
        *error.message.add(n) = 0;
    }
}

/// # Safety
/// `config` is null or valid, with valid NUL-terminated strings.
unsafe fn read_config(config: *const LnConfig) -> Config {
    // SAFETY: the caller's contract.
    let Some(config) = (unsafe { config.as_ref() }) else {
        return Config::default();
    };
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: NUL-terminated by contract.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let entries = if config.entries.is_null() {
        Vec::new()
    } else {
        // SAFETY: `n_entries` entries by contract.
        unsafe { std::slice::from_raw_parts(config.entries, config.n_entries) }
            .iter()
            .map(|e| (text(e.key), text(e.value)))
            .collect()
    };
    Config::new(text(config.toml), entries)
}
