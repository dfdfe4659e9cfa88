//! Errors that point at the file, line, column and field at fault.

use std::fmt;
use std::path::PathBuf;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// A file could not be read.
    #[error("cannot read scenario file {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The scenario is malformed or invalid at a known place.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

/// A located complaint about a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// The file at fault (or a name such as `<embedded quickstart>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field, e.g. `selection.tournament_size`; empty for
    /// syntax errors before any field.
    pub field: String,
    /// What was expected and what was found.
    pub message: String,
    /// The source line, for display.
    pub source_line: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            writeln!(f, "{}", self.message)?;
        } else {
            writeln!(f, "field `{}`: {}", self.field, self.message)?;
        }
        writeln!(f, "  --> {}:{}:{}", self.file, self.line, self.column)?;
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{gutter} | {}", self.source_line)?;
            write!(f, "{pad} | {}^", " ".repeat(self.column.saturating_sub(1)))?;
        }
        Ok(())
    }
}

/// A text file with its name, able to turn byte offsets into lines.
#[derive(Clone, Debug)]
pub(crate) struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    /// A diagnostic at byte `offset` of this file.
    pub fn diagnostic(&self, offset: usize, field: &str, message: String) -> Diagnostic {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        let source_line = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        Diagnostic {
            file: self.name.clone(),
            line,
            column,
            field: field.to_owned(),
            message,
            source_line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let src = SourceFile {
            name: "a.toml".into(),
            text: "x = 1\npopulation = 0\n".into(),
        };
        let d = src.diagnostic(19, "population", "must be at least 2, found 0".into());
        assert_eq!((d.line, d.column), (2, 14));
        let shown = d.to_string();
        assert!(shown.contains("a.toml:2:14"), "{shown}");
        assert!(shown.contains("2 | population = 0"), "{shown}");
    }
}
