//! Finding and loading plugin libraries, and checking their descriptors.

use std::ffi::{CStr, c_char};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lineage_evo::{Direction, Objective};
use lineage_plugin::Kind;
use lineage_plugin::abi::*;
use sha2::{Digest, Sha256};

use crate::PluginError;

/// Where plugin names are looked up, in order: the scenario's folder, each
/// folder of `LINEAGE_PLUGIN_PATH`, then the workspace's build output (the
/// folder of the running `lineage` binary, then `target/release` and
/// `target/debug` of the workspace it was built from).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPath {
    /// The folders, in search order.
    pub dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// The search path for a scenario in `scenario_dir`.
    pub fn new(scenario_dir: Option<&Path>) -> SearchPath {
        let mut dirs = Vec::new();
        if let Some(d) = scenario_dir {
            dirs.push(d.to_path_buf());
        }
        if let Some(paths) = std::env::var_os("LINEAGE_PLUGIN_PATH") {
            dirs.extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            // Test binaries live one level down, in `deps/`.
            if exe_dir.ends_with("deps") {
                dirs.extend(exe_dir.parent().map(Path::to_path_buf));
            }
            dirs.push(exe_dir);
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        for profile in ["release", "debug"] {
            dirs.push(target.join(profile));
        }
        // Folders as the file system names them, each once.
        let mut unique: Vec<PathBuf> = Vec::new();
        for d in dirs {
            let d = d.canonicalize().unwrap_or(d);
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        SearchPath { dirs: unique }
    }

    /// The library a scenario's `library = "…"` means: a path when it
    /// contains a path separator or ends with the platform's library suffix
    /// (relative paths against the current folder), otherwise a name looked
    /// up along the search path.
    pub fn resolve(&self, library: &str) -> Result<PathBuf, PluginError> {
        let looks_like_path = library.contains('/')
            || library.contains(std::path::MAIN_SEPARATOR)
            || library.ends_with(std::env::consts::DLL_SUFFIX);
        if looks_like_path {
            let path = PathBuf::from(library);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(PluginError::Missing { path })
            };
        }
        let names = library_file_names(library);
        for dir in &self.dirs {
            for name in &names {
                let path = dir.join(name);
                if path.is_file() {
                    return Ok(path);
                }
            }
        }
        Err(PluginError::NotFound {
            name: library.to_owned(),
            candidates: names.join(", "),
            searched: self
                .dirs
                .iter()
                .map(|d| format!("  {}", d.display()))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }

    /// Every shared library in the search path's folders, in search order
    /// (a file shadowed by an earlier one of the same name is left out).
    pub fn libraries(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut here: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name().is_some_and(|n| {
                            n.to_string_lossy().ends_with(std::env::consts::DLL_SUFFIX)
                        })
                })
                .collect();
            here.sort();
            for p in here {
                if !found.iter().any(|f| f.file_name() == p.file_name()) {
                    found.push(p);
                }
            }
        }
        found
    }
}

/// The file names a plugin name may have: `libNAME.so`, `NAME.so` (and
/// with `-` as `_`, as cargo names libraries), with the platform's prefix
/// and suffix.
pub fn library_file_names(name: &str) -> Vec<String> {
    let (prefix, suffix) = (std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let mut names = vec![format!("{prefix}{name}{suffix}"), format!("{name}{suffix}")];
    let underscored = name.replace('-', "_");
    if underscored != name {
        names.push(format!("{prefix}{underscored}{suffix}"));
        names.push(format!("{underscored}{suffix}"));
    }
    names.dedup();
    names
}

/// What an offering is, as its descriptor declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferingInfo {
    /// Name.
    pub name: String,
    /// Fitness, suite or environment.
    pub kind: Kind,
    /// One line on what it measures.
    pub description: String,
    /// Its metrics in score order, with their directions (none for an
    /// environment).
    pub metrics: Vec<Objective>,
    /// Whether it reads organisms' weights (declared from ABI 3 on; a
    /// library of an older version may read anything).
    pub reads_weights: bool,
}

/// A loaded plugin with a checked descriptor.
#[derive(Debug)]
pub struct Plugin {
    /// Its name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// One line on what it offers.
    pub description: String,
    /// The ABI version it speaks ([`ABI_VERSION_MIN`] to [`ABI_VERSION`]
    /// once loaded).
    pub abi_version: u32,
    /// Its offerings.
    pub offerings: Vec<OfferingInfo>,
    /// The library it came from (`None`: linked into Lineage).
    pub path: Option<PathBuf>,
    /// SHA-256 of the library file.
    pub sha256: Option<String>,
    /// The descriptor, when the library is loaded into this process.
    pub(crate) raw: Option<&'static LnPlugin>,
    /// Its environment functions (ABI 4), when it offers environments and
    /// is loaded into this process.
    pub(crate) environment: Option<&'static LnEnvironmentApi>,
    /// The worker side, when the library runs in a child process.
    pub(crate) isolated: Option<crate::isolate::Library>,
}

// SAFETY: the descriptor is immutable and lives as long as the process (the
// library is never unloaded); the ABI lets the host call it from any thread.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

impl Plugin {
    /// Loads the library at `path`, checks its ABI version and descriptor.
    /// The library stays loaded until the process ends.
    ///
    /// The file is read once: the bytes hashed are the bytes loaded (from a
    /// sealed in-memory copy), so a file replaced between the two cannot
    /// make the recorded SHA-256 lie.
    ///
    /// A library whose bytes were loaded before in this process (the same
    /// SHA-256) is that plugin again: loading never makes a second copy of
    /// a library's code and statics.
    pub fn load(path: &Path) -> Result<Arc<Plugin>, PluginError> {
        static LOADED: std::sync::Mutex<Vec<Arc<Plugin>>> = std::sync::Mutex::new(Vec::new());
        let bytes = read_library(path)?;
        let sha256 = sha256_hex(&bytes);
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = loaded.iter().find(|p| {
            p.sha256.as_deref() == Some(sha256.as_str()) && p.path.as_deref() == Some(path)
        }) {
            return Ok(p.clone());
        }
        let plugin = Arc::new(Plugin::load_bytes(path, &bytes)?);
        loaded.push(plugin.clone());
        Ok(plugin)
    }

    /// Loads a library from its bytes; `path` is where they came from (for
    /// messages and the record).
    pub(crate) fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let sha256 = sha256_hex(bytes);
        let loadable = LoadableCopy::of(path, bytes)?;
        // SAFETY: loading runs the library's initialisers; a plugin is code
        // the user chose to run, as with any native extension.
        let library = unsafe { libloading::Library::new(loadable.path()) }.map_err(|e| {
            PluginError::NotALibrary {
                path: path.to_path_buf(),
                message: loader_message(&e),
            }
        })?;
        // The copy stays open as long as the library is loaded (forever):
        // the loader recognises libraries by name, and a reused descriptor
        // number would name another library.
        std::mem::forget(loadable);
        // Never unloaded: unloading code that may still be referenced (a
        // thread it started, a descriptor pointer) is unsound.
        let library: &'static libloading::Library = Box::leak(Box::new(library));
        // SAFETY: the symbol's type is the ABI's entry type.
        let entry: LnEntry = unsafe {
            match library.get::<LnEntry>(ENTRY_SYMBOL.as_bytes()) {
                Ok(symbol) => *symbol,
                Err(_) => {
                    return Err(PluginError::NoEntry {
                        path: path.to_path_buf(),
                    });
                }
            }
        };
        // SAFETY: calling the entry as the ABI defines it.
        let raw = unsafe { entry() };
        let shown = path.display().to_string();
        let plugin = check_descriptor(raw).map_err(|e| match e {
            CheckError::Abi(found) => PluginError::AbiMismatch {
                path: path.to_path_buf(),
                found,
                expected: ABI_VERSION,
            },
            CheckError::Bad(message) => PluginError::BadDescriptor {
                path: shown.clone(),
                message,
            },
        })?;
        Ok(Plugin {
            path: Some(path.to_path_buf()),
            sha256: Some(sha256),
            ..plugin
        })
    }

    /// Whether the library runs in a worker process
    /// ([`Plugin::load_isolated`]).
    pub fn is_isolated(&self) -> bool {
        self.isolated.is_some()
    }

    /// A plugin linked into Lineage, from its descriptor.
    pub fn linked(raw: *const LnPlugin, label: &str) -> Result<Arc<Plugin>, PluginError> {
        check_descriptor(raw)
            .map(Arc::new)
            .map_err(|e| PluginError::BadDescriptor {
                path: label.to_owned(),
                message: match e {
                    CheckError::Abi(v) => {
                        format!("ABI version {v}, expected {ABI_VERSION_MIN} to {ABI_VERSION}")
                    }
                    CheckError::Bad(m) => m,
                },
            })
    }

    /// The offering named `name`.
    pub fn offering(&self, name: &str) -> Result<(usize, &OfferingInfo), PluginError> {
        self.offerings
            .iter()
            .enumerate()
            .find(|(_, o)| o.name == name)
            .ok_or_else(|| PluginError::UnknownOffering {
                plugin: self.name.clone(),
                offering: name.to_owned(),
                available: self
                    .offerings
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The bytes of the library at `path`.
pub(crate) fn read_library(path: &Path) -> Result<Vec<u8>, PluginError> {
    if !path.exists() {
        return Err(PluginError::Missing {
            path: path.to_path_buf(),
        });
    }
    std::fs::read(path).map_err(|e| PluginError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// SHA-256 in lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A copy of a library's bytes the loader can open by path: an anonymous,
/// sealed in-memory file (`memfd`), opened as `/proc/self/fd/N`. Elsewhere
/// than Linux, the original path (with the race this closes on Linux).
struct LoadableCopy {
    #[cfg(target_os = "linux")]
    _fd: std::os::fd::OwnedFd,
    path: PathBuf,
}

impl LoadableCopy {
    #[cfg(target_os = "linux")]
    fn of(path: &Path, bytes: &[u8]) -> Result<LoadableCopy, PluginError> {
        use rustix::fs::{MemfdFlags, SealFlags};
        use std::os::fd::AsRawFd;
        let failed = |e: std::io::Error| PluginError::Unreadable {
            path: path.to_path_buf(),
            message: format!("cannot make an in-memory copy to load: {e}"),
        };
        let fd = rustix::fs::memfd_create(
            "lineage-plugin",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| failed(e.into()))?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, bytes).map_err(failed)?;
        let fd = std::os::fd::OwnedFd::from(file);
        rustix::fs::fcntl_add_seals(
            &fd,
            SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
        )
        .map_err(|e| failed(e.into()))?;
        let shown = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        Ok(LoadableCopy {
            _fd: fd,
            path: shown,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn of(path: &Path, _bytes: &[u8]) -> Result<LoadableCopy, PluginError> {
        // A path without a separator would make the loader search its own
        // path; an absolute one loads exactly this file.
        Ok(LoadableCopy {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// The loader's message without its repetition of the path.
fn loader_message(e: &libloading::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(": ") {
        Some((_, tail)) if !tail.is_empty() => tail.to_owned(),
        _ => text,
    }
}

enum CheckError {
    Abi(u32),
    Bad(String),
}

/// Reads and checks a descriptor: the ABI version first, then everything
/// else.
fn check_descriptor(raw: *const LnPlugin) -> Result<Plugin, CheckError> {
    let bad = |m: String| CheckError::Bad(m);
    if raw.is_null() {
        return Err(bad("the entry returned a null descriptor".into()));
    }
    // SAFETY: the ABI puts `abi_version` first in every version, so it is
    // the one field read before the version is known.
    let abi_version = unsafe { std::ptr::read_unaligned(raw.cast::<u32>()) };
    if !(ABI_VERSION_MIN..=ABI_VERSION).contains(&abi_version) {
        return Err(CheckError::Abi(abi_version));
    }
    // Versions 1 and 2 end `LnPlugin` before `offering_reads`, version 3
    // before `environment`; version 4 has all of it.
    let expected = match abi_version {
        1 | 2 => std::mem::offset_of!(LnPlugin, offering_reads),
        3 => std::mem::offset_of!(LnPlugin, environment),
        _ => size_of::<LnPlugin>(),
    };
    // SAFETY: `struct_size` follows `abi_version` in every version.
    let struct_size = unsafe { std::ptr::read_unaligned(raw.cast::<u32>().add(1)) };
    if struct_size as usize != expected {
        return Err(bad(format!(
            "descriptor size {struct_size} bytes, expected {expected} for ABI version {abi_version}"
        )));
    }
    // SAFETY: the descriptor holds `expected` bytes of an `LnPlugin` of its
    // version; the rest of the copy stays zero (null `offering_reads`:
    // undeclared; null `environment`: none). All-zero is a valid `LnPlugin` (null pointers, `None`
    // functions). The copy lives as long as the process, as the library.
    let d: &'static LnPlugin = unsafe {
        let mut copy: LnPlugin = std::mem::zeroed();
        std::ptr::copy_nonoverlapping(raw.cast::<u8>(), (&raw mut copy).cast::<u8>(), expected);
        Box::leak(Box::new(copy))
    };
    let name = text(d.name, "the plugin's name").map_err(bad)?;
    if name.is_empty() {
        return Err(bad("the plugin's name is empty".into()));
    }
    let version = text(d.version, "the plugin's version").map_err(bad)?;
    let description = optional_text(d.description).map_err(bad)?;
    if d.create.is_none() {
        return Err(bad(format!("plugin `{name}` lacks a create function")));
    }
    if d.n_offerings == 0 || d.offerings.is_null() {
        return Err(bad(format!("plugin `{name}` offers nothing")));
    }
    if d.n_offerings > 10_000 {
        return Err(bad(format!(
            "plugin `{name}` claims {} offerings",
            d.n_offerings
        )));
    }
    // SAFETY: `n_offerings` offerings by the ABI.
    let raw_offerings = unsafe { std::slice::from_raw_parts(d.offerings, d.n_offerings) };
    // SAFETY: null, or `n_offerings` bit sets by the ABI.
    let reads: Option<&[u32]> = (!d.offering_reads.is_null())
        .then(|| unsafe { std::slice::from_raw_parts(d.offering_reads, d.n_offerings) });
    let mut offerings: Vec<OfferingInfo> = Vec::with_capacity(raw_offerings.len());
    for (i, o) in raw_offerings.iter().enumerate() {
        let oname = text(o.name, &format!("offering {i}'s name")).map_err(bad)?;
        check_identifier(&oname).map_err(|m| bad(format!("offering `{oname}`: {m}")))?;
        if offerings.iter().any(|p| p.name == oname) {
            return Err(bad(format!("two offerings are named `{oname}`")));
        }
        let kind = match o.kind {
            LN_FITNESS => Kind::Fitness,
            LN_SUITE => Kind::Suite,
            LN_ENVIRONMENT if abi_version >= 4 => Kind::Environment,
            k => return Err(bad(format!("offering `{oname}` has unknown kind {k}"))),
        };
        if kind == Kind::Environment {
            if o.n_metrics != 0 {
                return Err(bad(format!(
                    "environment `{oname}` declares {} metrics; an environment has none",
                    o.n_metrics
                )));
            }
            offerings.push(OfferingInfo {
                name: oname,
                kind,
                description: optional_text(o.description).map_err(bad)?,
                metrics: Vec::new(),
                reads_weights: false,
            });
            continue;
        }
        if d.evaluate.is_none() {
            return Err(bad(format!(
                "plugin `{name}` offers `{oname}` to evaluate but lacks an evaluate function"
            )));
        }
        if o.n_metrics == 0 || o.metrics.is_null() || o.n_metrics > 10_000 {
            return Err(bad(format!(
                "offering `{oname}` declares {} metrics",
                o.n_metrics
            )));
        }
        // SAFETY: `n_metrics` metrics by the ABI.
        let raw_metrics = unsafe { std::slice::from_raw_parts(o.metrics, o.n_metrics) };
        let mut metrics: Vec<Objective> = Vec::with_capacity(raw_metrics.len());
        for (j, m) in raw_metrics.iter().enumerate() {
            let mname = text(m.name, &format!("offering `{oname}`'s metric {j}")).map_err(bad)?;
            check_identifier(&mname)
                .map_err(|e| bad(format!("offering `{oname}` metric `{mname}`: {e}")))?;
            if metrics.iter().any(|p| p.name == mname) {
                return Err(bad(format!("offering `{oname}` has two metrics `{mname}`")));
            }
            let direction = match m.direction {
                LN_MAXIMIZE => Direction::Maximize,
                LN_MINIMIZE => Direction::Minimize,
                v => {
                    return Err(bad(format!(
                        "offering `{oname}` metric `{mname}` has unknown direction {v}"
                    )));
                }
            };
            metrics.push(Objective {
                name: mname,
                direction,
            });
        }
        let reads_weights = reads.is_none_or(|r| r[i] & LN_READS_WEIGHTS != 0);
        offerings.push(OfferingInfo {
            name: oname,
            kind,
            description: optional_text(o.description).map_err(bad)?,
            metrics,
            reads_weights,
        });
    }
    let environment = if offerings.iter().any(|o| o.kind == Kind::Environment) {
        // SAFETY: null, or the plugin's static table by the ABI.
        let api = unsafe { d.environment.as_ref() }.ok_or_else(|| {
            bad(format!(
                "plugin `{name}` offers an environment but its descriptor has no environment functions"
            ))
        })?;
        if api.task.is_none() || api.fill.is_none() {
            return Err(bad(format!(
                "plugin `{name}`'s environment functions lack task or fill"
            )));
        }
        Some(api)
    } else {
        None
    };
    Ok(Plugin {
        name,
        version,
        description,
        abi_version,
        offerings,
        path: None,
        sha256: None,
        raw: Some(d),
        environment,
        isolated: None,
    })
}

fn check_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err("names are made of a-z, 0-9 and _".into())
    }
}

fn text(p: *const c_char, what: &str) -> Result<String, String> {
    if p.is_null() {
        return Err(format!("{what} is null"));
    }
    // SAFETY: NUL-terminated by the ABI.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map(str::to_owned)
        .map_err(|_| format!("{what} is not UTF-8"))
}

fn optional_text(p: *const c_char) -> Result<String, String> {
    if p.is_null() {
        Ok(String::new())
    } else {
        text(p, "a description")
    }
}
