//! `[plugins.NAME]` tables, `PLUGIN:OFFERING` references to them, and
//! `[evaluate] suites`.

use std::path::Path;

use super::{Checked, Ctx, one_of};
use crate::raw::RawScenario;
use crate::{BUILTIN_PLUGIN, Isolation, MAX_PLUGIN_TIMEOUT_MS, OnError, PluginOffering, PluginRef};

/// `PLUGIN:OFFERING` where PLUGIN is declared in `[plugins]`.
pub(super) fn plugin_offering(
    ctx: &Ctx<'_>,
    raw: &RawScenario,
    field: &str,
    alias: &str,
    offering: &str,
) -> Checked<PluginOffering> {
    if !raw.plugins.contains_key(alias) {
        let declared: Vec<&str> = raw.plugins.keys().map(String::as_str).collect();
        let mut msg = format!("no plugin `{alias}`: declare it as a `[plugins.{alias}]` table");
        if !declared.is_empty() {
            msg.push_str(&format!(" (declared: {})", declared.join(", ")));
        }
        return Err(ctx.at(field, msg));
    }
    if offering.is_empty() {
        return Err(ctx.at(
            field,
            format!("expected `{alias}:OFFERING`, found nothing after the colon"),
        ));
    }
    Ok(PluginOffering {
        plugin: alias.to_owned(),
        offering: offering.to_owned(),
        metrics: Vec::new(),
    })
}

/// `[plugins.NAME]` tables.
pub(super) fn plugins(ctx: &Ctx<'_>, raw: &RawScenario) -> Checked<Vec<PluginRef>> {
    let mut out = Vec::new();
    for (alias, p) in &raw.plugins {
        let at = |key: &str| format!("plugins.{alias}.{key}");
        if alias == BUILTIN_PLUGIN || alias.is_empty() || alias.contains(':') {
            return Err(ctx.at_key(
                &format!("plugins.{alias}"),
                format!("`{alias}` cannot name a plugin (reserved, empty or holding a colon)"),
            ));
        }
        if p.library.trim().is_empty() {
            return Err(ctx.at(
                &at("library"),
                "expected a library name or path, found nothing",
            ));
        }
        let on_error = match p.on_error.as_str() {
            "abort" => OnError::Abort,
            "invalidate" => OnError::Invalidate,
            other => {
                return Err(ctx.at(
                    &at("on_error"),
                    one_of("error policy", other, &["abort", "invalidate"]),
                ));
            }
        };
        let isolation = match p.isolation.as_str() {
            "in-process" => Isolation::InProcess,
            "process" => Isolation::Process,
            other => {
                return Err(ctx.at(
                    &at("isolation"),
                    one_of("isolation", other, &["in-process", "process"]),
                ));
            }
        };
        if !(1..=MAX_PLUGIN_TIMEOUT_MS).contains(&p.timeout_ms) {
            return Err(ctx.at(
                &at("timeout_ms"),
                format!(
                    "expected 1 to {MAX_PLUGIN_TIMEOUT_MS} milliseconds, found {}",
                    p.timeout_ms
                ),
            ));
        }
        let dir = ctx
            .sources
            .dir_of(ctx.resolved, &at("library"))
            .map(Path::to_owned);
        let library = if let Some(file) = p.library.strip_prefix(crate::PYTHON_PLUGIN) {
            // A plugin written in Python runs in a Python worker process:
            // a file, or a module the worker's interpreter imports.
            if !file.ends_with(".py") {
                if !lineage_plugin_host::is_module_name(file) {
                    return Err(ctx.at(
                        &at("library"),
                        format!(
                            "a Python plugin is `python:FILE.py` or `python:package.module`, \
                             found `{}`",
                            p.library
                        ),
                    ));
                }
                p.library.clone()
            } else {
                match &dir {
                    Some(d) if !Path::new(file).is_absolute() => {
                        format!("{}{}", crate::PYTHON_PLUGIN, d.join(file).display())
                    }
                    _ => p.library.clone(),
                }
            }
        } else if looks_like_path(&p.library) && !Path::new(&p.library).is_absolute() {
            match &dir {
                Some(d) => d.join(&p.library).display().to_string(),
                None => p.library.clone(),
            }
        } else {
            p.library.clone()
        };
        let config_toml = toml::to_string(&p.config)
            .map_err(|e| ctx.at(&at("config"), format!("cannot write the table: {e}")))?;
        let mut config = Vec::new();
        flatten("", &p.config, &mut config);
        out.push(PluginRef {
            alias: alias.clone(),
            library,
            dir,
            on_error,
            isolation,
            timeout_ms: p.timeout_ms,
            config_toml,
            config,
        });
    }
    Ok(out)
}

/// A library written as a path rather than a name to look up.
pub(super) fn looks_like_path(library: &str) -> bool {
    library.contains('/')
        || library.contains(std::path::MAIN_SEPARATOR)
        || library.ends_with(std::env::consts::DLL_SUFFIX)
}

/// A table as dotted keys and TOML-literal values.
pub(super) fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            v => out.push((key, v.to_string())),
        }
    }
}

/// `[evaluate] suites`.
pub(super) fn suites(ctx: &Ctx<'_>, raw: &RawScenario) -> Checked<Vec<PluginOffering>> {
    let mut out: Vec<PluginOffering> = Vec::new();
    for (i, s) in raw.evaluate.suites.iter().enumerate() {
        let field = format!("evaluate.suites[{i}]");
        let Some((alias, offering)) = s.split_once(':') else {
            return Err(ctx.at(&field, format!("expected `PLUGIN:SUITE`, found `{s}`")));
        };
        let suite = plugin_offering(ctx, raw, &field, alias, offering)?;
        if out.contains(&suite) {
            return Err(ctx.at(&field, format!("`{s}` is listed twice")));
        }
        out.push(suite);
    }
    Ok(out)
}
