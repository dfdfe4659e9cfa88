//! Reading scenario files: syntax, `extends` chains, command-line overrides,
//! and the provenance of every field so that errors found later (by serde or
//! by validation) point at the file, line and column that set the field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::error::{Diagnostic, ScenarioError, SourceFile};

/// Where a field of the resolved scenario came from.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    /// A key in a file: index into [`Sources::files`] and the key's path
    /// in that file.
    File { file: usize, path: String },
    /// A command-line flag.
    CommandLine(&'static str),
}

/// Byte offsets of a key and of its value.
#[derive(Clone, Copy, Debug)]
struct Loc {
    key: usize,
    value: usize,
}

/// Every file read for one scenario, with the location of each key.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    files: Vec<SourceFile>,
    /// The folder of each file, against which its relative paths resolve.
    dirs: Vec<PathBuf>,
    locs: Vec<HashMap<String, Loc>>,
}

/// A resolved table plus where each of its fields came from.
#[derive(Debug, Default, Clone)]
pub(crate) struct Resolved {
    pub table: toml::Table,
    pub provenance: HashMap<String, Origin>,
}

/// Which end of a field an error is about.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum At {
    Key,
    Value,
}

impl Sources {
    /// A diagnostic for `field` (a path in the resolved scenario), located
    /// at the innermost part of the path that some file set.
    /// The folder of the file that set `field` (or its nearest parent),
    /// against which a relative path written there resolves.
    pub fn dir_of(&self, resolved: &Resolved, field: &str) -> Option<&Path> {
        let mut probe = field.to_owned();
        loop {
            match resolved.provenance.get(&probe) {
                Some(Origin::File { file, .. }) => return Some(&self.dirs[*file]),
                Some(Origin::CommandLine(_)) => return None,
                None => {}
            }
            match probe.rfind(['.', '[']) {
                Some(i) => probe.truncate(i),
                None => return self.dirs.first().map(PathBuf::as_path),
            }
        }
    }

    pub fn locate(&self, resolved: &Resolved, field: &str, at: At, message: String) -> Diagnostic {
        let mut probe = field.to_owned();
        loop {
            if let Some(origin) = resolved.provenance.get(&probe) {
                return match origin {
                    Origin::File { file, path } => {
                        let loc = self.locs[*file].get(path).copied();
                        let offset = loc.map_or(0, |l| if at == At::Key { l.key } else { l.value });
                        // Name the field as written in that file (an
                        // environment change sets `population` at
                        // `environment[0].set.population`).
                        let shown = format!("{path}{}", &field[probe.len()..]);
                        self.files[*file].diagnostic(offset, &shown, message)
                    }
                    Origin::CommandLine(flag) => Diagnostic {
                        file: format!("command line ({flag})"),
                        line: 1,
                        column: 1,
                        field: field.to_owned(),
                        message,
                        source_line: String::new(),
                    },
                };
            }
            match parent(&probe) {
                Some(p) => probe = p.to_owned(),
                None => return self.files[0].diagnostic(0, field, message),
            }
        }
    }

    /// Reads `path` and every file it extends.
    pub fn load_file(&mut self, path: &Path) -> Result<Resolved, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            file: path.to_owned(),
            source,
        })?;
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        self.load_text(text, path.display().to_string(), &dir, &mut vec![canonical])
    }

    /// Reads a scenario given as text; `extends` resolves against `dir`.
    pub fn load_str(
        &mut self,
        text: &str,
        name: &str,
        dir: &Path,
    ) -> Result<Resolved, ScenarioError> {
        self.load_text(text.to_owned(), name.to_owned(), dir, &mut Vec::new())
    }

    fn load_text(
        &mut self,
        text: String,
        name: String,
        dir: &Path,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Resolved, ScenarioError> {
        let file = self.files.len();
        self.files.push(SourceFile { name, text });
        self.dirs.push(dir.to_owned());
        self.locs.push(HashMap::new());
        let text = &self.files[file].text;
        let table: toml::Table = match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                let message = format!("invalid TOML: {}", e.message().trim_end());
                return Err(invalid(self.files[file].diagnostic(offset, "", message)));
            }
        };
        let mut locs = HashMap::new();
        if let Ok(doc) = DeTable::parse(text) {
            index_table(doc.get_ref(), "", &mut locs);
        }
        self.locs[file] = locs;

        let mut own = Resolved::default();
        for path in leaf_and_table_paths(&table) {
            own.provenance
                .insert(path.clone(), Origin::File { file, path });
        }
        own.table = table;

        let Some(extends) = own.table.remove("extends") else {
            return Ok(own);
        };
        own.provenance.remove("extends");
        let at_extends = |this: &Sources, message: String| {
            let offset = this.locs[file].get("extends").map_or(0, |l| l.value);
            invalid(this.files[file].diagnostic(offset, "extends", message))
        };
        let toml::Value::String(base_name) = extends else {
            return Err(at_extends(
                self,
                format!(
                    "expected a file name (string), found {}",
                    extends.type_str()
                ),
            ));
        };
        let base_path = dir.join(&base_name);
        let canonical = base_path
            .canonicalize()
            .unwrap_or_else(|_| base_path.clone());
        if let Some(start) = chain.iter().position(|p| *p == canonical) {
            let cycle: Vec<String> = chain[start..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| {
                    p.file_name().map_or_else(
                        || p.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    )
                })
                .collect();
            return Err(at_extends(
                self,
                format!("extends forms a cycle: {}", cycle.join(" -> ")),
            ));
        }
        let base_text = match std::fs::read_to_string(&base_path) {
            Ok(t) => t,
            Err(e) => {
                return Err(at_extends(
                    self,
                    format!(
                        "cannot read extended scenario `{base_name}` ({}): {e}",
                        base_path.display()
                    ),
                ));
            }
        };
        chain.push(canonical);
        let base_dir = base_path.parent().map(Path::to_owned).unwrap_or_default();
        let mut base =
            self.load_text(base_text, base_path.display().to_string(), &base_dir, chain)?;
        chain.pop();
        merge_into(&mut base, own);
        Ok(base)
    }
}

fn invalid(d: Diagnostic) -> ScenarioError {
    ScenarioError::Invalid(Box::new(d))
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else
/// (scalars, arrays) replaces what was there, and so does its provenance.
pub(crate) fn merge_into(base: &mut Resolved, over: Resolved) {
    for (key, value) in &over.table {
        merge_value(&mut base.table, key, value, key, &mut base.provenance);
    }
    for (path, origin) in over.provenance {
        base.provenance.insert(path, origin);
    }
}

fn merge_value(
    table: &mut toml::Table,
    key: &str,
    value: &toml::Value,
    path: &str,
    provenance: &mut HashMap<String, Origin>,
) {
    match (table.get_mut(key), value) {
        // A table that names another `kind` (a GRU for a transformer) is a
        // different thing: it replaces the old one whole rather than
        // inheriting fields that mean nothing to it.
        (Some(toml::Value::Table(existing)), toml::Value::Table(incoming))
            if incoming
                .get("kind")
                .is_none_or(|kind| existing.get("kind") == Some(kind)) =>
        {
            for (k, v) in incoming {
                merge_value(existing, k, v, &format!("{path}.{k}"), provenance);
            }
        }
        _ => {
            // The old value and everything under it is gone.
            provenance.retain(|p, _| !is_under(p, path));
            table.insert(key.to_owned(), value.clone());
        }
    }
}

fn is_under(p: &str, prefix: &str) -> bool {
    p.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The parent of a dotted path (`a.b[2].c` -> `a.b[2]` -> `a.b` -> `a`).
pub(crate) fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// Every path in `table`, tables and array elements included.
pub(crate) fn leaf_and_table_paths(table: &toml::Table) -> Vec<String> {
    fn walk(value: &toml::Value, path: String, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(v, format!("{path}.{k}"), out);
                }
            }
            toml::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
        out.push(path);
    }
    let mut out = Vec::new();
    for (k, v) in table {
        walk(v, k.clone(), &mut out);
    }
    out
}

fn index_table(table: &DeTable<'_>, prefix: &str, out: &mut HashMap<String, Loc>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        let loc = Loc {
            key: key.span().start,
            value: value.span().start,
        };
        out.entry(path.clone()).or_insert(loc);
        index_value(value.get_ref(), &path, out);
    }
}

fn index_value(value: &DeValue<'_>, path: &str, out: &mut HashMap<String, Loc>) {
    match value {
        DeValue::Table(t) => index_table(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let start = item.span().start;
                out.entry(p.clone()).or_insert(Loc {
                    key: start,
                    value: start,
                });
                index_value(item.get_ref(), &p, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_of_paths() {
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), None);
        assert!(is_under("a.b", "a") && is_under("a[0]", "a") && !is_under("ab", "a"));
    }

    #[test]
    fn a_table_of_another_kind_replaces_rather_than_merges() {
        let table = |text: &str| -> toml::Table { toml::from_str(text).unwrap() };
        let merged = |base: &str, over: &str| {
            let mut base = table(base);
            let mut provenance = HashMap::new();
            for (k, v) in &table(over) {
                merge_value(&mut base, k, v, k, &mut provenance);
            }
            base
        };
        let base = "model = { kind = \"transformer\", d_model = 48, d_ff = 96 }";
        assert_eq!(
            merged(base, "model = { kind = \"gru\", hidden = 96 }"),
            table("model = { kind = \"gru\", hidden = 96 }")
        );
        assert_eq!(
            merged(base, "model = { kind = \"transformer\", d_ff = 64 }"),
            table("model = { kind = \"transformer\", d_model = 48, d_ff = 64 }")
        );
        assert_eq!(
            merged(base, "model = { d_ff = 64 }"),
            table("model = { kind = \"transformer\", d_model = 48, d_ff = 64 }")
        );
    }
}
