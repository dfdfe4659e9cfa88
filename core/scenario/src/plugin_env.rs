//! The plugin an environment table names (`plugin = "NAME:OFFERING"`),
//! loaded from its `[plugins.NAME]` table as the engine loads plugins: in
//! this process, or in a worker process under `isolation = "process"` (and
//! always for a plugin written in Python).

use std::sync::Arc;
use std::time::Duration;

use lineage_plugin_host::{Isolation as HostIsolation, Plugin, SearchPath};

use crate::{Isolation, PluginRef};

/// The library of `p`, loaded and checked; the message says why not.
pub(crate) fn load(p: &PluginRef) -> Result<Arc<Plugin>, String> {
    let timeout = Duration::from_millis(p.timeout_ms);
    if let Some(spec) = p.library.strip_prefix(crate::PYTHON_PLUGIN) {
        return HostIsolation::python_plugin(spec, timeout)
            .and_then(|(path, isolation)| Plugin::load_isolated(&path, isolation))
            .map_err(|e| e.to_string());
    }
    let path = SearchPath::new(p.dir.as_deref())
        .resolve(&p.library)
        .map_err(|e| e.to_string())?;
    match p.isolation {
        Isolation::InProcess => Plugin::load(&path),
        Isolation::Process => HostIsolation::new(&p.alias, timeout)
            .and_then(|isolation| Plugin::load_isolated(&path, isolation)),
    }
    .map_err(|e| e.to_string())
}
