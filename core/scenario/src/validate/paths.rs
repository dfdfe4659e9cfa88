//! Relative paths in the resolved scenario (data files, cell-type tables,
//! plugin libraries) rewritten as absolute ones.

use std::path::Path;

use super::plugins::looks_like_path;
use crate::load::{Resolved, Sources};

/// Rewrites relative data paths as absolute ones, so that the resolved
/// scenario a run directory keeps still finds its data.
pub(super) fn absolute_data_paths(sources: &Sources, resolved: &Resolved, table: &mut toml::Table) {
    fn fix(
        sources: &Sources,
        resolved: &Resolved,
        field: &str,
        lifetime: Option<&mut toml::Value>,
    ) {
        let Some(path) = lifetime
            .and_then(|l| l.get_mut("environment"))
            .and_then(|e| e.get_mut("path"))
        else {
            return;
        };
        let Some(text) = path.as_str() else { return };
        if Path::new(text).is_absolute() {
            return;
        }
        if let Some(dir) = sources.dir_of(resolved, field) {
            let full = dir.join(text);
            let full = full.canonicalize().unwrap_or(full);
            *path = toml::Value::String(full.display().to_string());
        }
    }
    fix(
        sources,
        resolved,
        "lifetime.environment.path",
        table.get_mut("lifetime"),
    );
    if let Some(develop) = table.get_mut("lifetime").and_then(|l| l.get_mut("develop")) {
        cell_type_tables(sources, resolved, develop);
    }
    if let Some(toml::Value::Table(plugins)) = table.get_mut("plugins") {
        for (alias, plugin) in plugins.iter_mut() {
            let Some(library) = plugin.get_mut("library") else {
                continue;
            };
            let Some(text) = library.as_str() else {
                continue;
            };
            // A plugin written in Python: `python:FILE.py`, the file a path
            // (`python:package.module` is not).
            let (prefix, text) = match text.strip_prefix(crate::PYTHON_PLUGIN) {
                Some(file) if file.ends_with(".py") => (crate::PYTHON_PLUGIN, file),
                Some(_) => continue,
                None => ("", text),
            };
            if (prefix.is_empty() && !looks_like_path(text)) || Path::new(text).is_absolute() {
                continue;
            }
            if let Some(dir) = sources.dir_of(resolved, &format!("plugins.{alias}.library")) {
                let full = dir.join(text);
                let full = full.canonicalize().unwrap_or(full);
                *library = toml::Value::String(format!("{prefix}{}", full.display()));
            }
        }
    }
    if let Some(toml::Value::Array(changes)) = table.get_mut("environment") {
        for (i, change) in changes.iter_mut().enumerate() {
            let field = format!("environment[{i}].set.lifetime.environment.path");
            let lifetime = change.get_mut("set").and_then(|s| s.get_mut("lifetime"));
            fix(sources, resolved, &field, lifetime);
        }
    }
}

/// Rewrites the relative `cell_types` files of `develop` (`lifetime.develop`:
/// the default rule and each `matrix` rule) as absolute ones; the shipped
/// table's name is not a path.
fn cell_type_tables(sources: &Sources, resolved: &Resolved, develop: &mut toml::Value) {
    let absolute = |field: &str, value: &mut toml::Value| {
        let Some(text) = value.as_str() else { return };
        if text == super::lifetime::V1_BILLEH2020 || Path::new(text).is_absolute() {
            return;
        }
        if let Some(dir) = sources.dir_of(resolved, field) {
            let full = dir.join(text);
            let full = full.canonicalize().unwrap_or(full);
            *value = toml::Value::String(full.display().to_string());
        }
    };
    if let Some(value) = develop.get_mut("cell_types") {
        absolute("lifetime.develop.cell_types", value);
    }
    if let Some(toml::Value::Array(rules)) = develop.get_mut("matrix") {
        for (i, rule) in rules.iter_mut().enumerate() {
            if let Some(value) = rule.get_mut("cell_types") {
                absolute(&format!("lifetime.develop.matrix[{i}].cell_types"), value);
            }
        }
    }
}
