//! A plugin's configuration: the scenario's `[plugins.NAME.config]` table,
//! as TOML text and as flattened `key = literal` entries with typed getters.

use crate::Error;

/// The scenario's configuration table for a plugin.
///
/// Getters return `Ok(None)` for a missing key and an error naming the key
/// for a value of the wrong type, so a plugin can reject bad configuration
/// with a message the user can act on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    toml: String,
    entries: Vec<(String, String)>,
}

impl Config {
    /// A configuration from its TOML text and flattened entries (dotted
    /// keys, TOML-literal values).
    pub fn new(toml: String, entries: Vec<(String, String)>) -> Config {
        Config { toml, entries }
    }

    /// The whole table as TOML text, for plugins that parse it themselves.
    pub fn toml(&self) -> &str {
        &self.toml
    }

    /// Every `(dotted key, TOML literal)` entry.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The TOML literal of `key`.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Fails naming the first key that is not in `known`.
    pub fn expect_keys(&self, known: &[&str]) -> Result<(), Error> {
        match self
            .entries
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(Error(format!(
                "unknown configuration key `{k}` (expected one of: {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// A number (integer or float, `inf`, `nan`).
    pub fn f64(&self, key: &str) -> Result<Option<f64>, Error> {
        self.typed(key, "a number", parse_number)
    }

    /// A non-negative integer.
    pub fn usize(&self, key: &str) -> Result<Option<usize>, Error> {
        self.typed(key, "a non-negative integer", |v| {
            v.replace('_', "").parse::<usize>().ok()
        })
    }

    /// `true` or `false`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, Error> {
        self.typed(key, "true or false", |v| match v {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }

    /// A string (basic `"..."` or literal `'...'`).
    pub fn string(&self, key: &str) -> Result<Option<String>, Error> {
        self.typed(key, "a string", parse_string)
    }

    /// An array of numbers.
    pub fn f64_list(&self, key: &str) -> Result<Option<Vec<f64>>, Error> {
        self.typed(key, "an array of numbers", |v| {
            let inner = v.strip_prefix('[')?.strip_suffix(']')?.trim();
            if inner.is_empty() {
                return Some(Vec::new());
            }
            inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(parse_number)
                .collect()
        })
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => parse(v.trim()).map(Some).ok_or_else(|| {
                Error(format!(
                    "configuration key `{key}`: expected {expected}, found {v}"
                ))
            }),
        }
    }
}

fn parse_number(v: &str) -> Option<f64> {
    let v = v.replace('_', "");
    match v.as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

fn parse_string(v: &str) -> Option<String> {
    if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(inner.to_owned());
    }
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            'U' => {
                let hex: String = chars.by_ref().take(8).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, &str)]) -> Config {
        Config::new(
            String::new(),
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn typed_getters_read_toml_literals() {
        let c = config(&[
            ("rate", "0.5"),
            ("n", "1_000"),
            ("on", "true"),
            ("name", r#""a \"b\"\n""#),
            ("lit", "'c:\\d'"),
            ("xs", "[1, 2.5, -3]"),
        ]);
        assert_eq!(c.f64("rate"), Ok(Some(0.5)));
        assert_eq!(c.f64("n"), Ok(Some(1000.0)));
        assert_eq!(c.usize("n"), Ok(Some(1000)));
        assert_eq!(c.bool("on"), Ok(Some(true)));
        assert_eq!(c.string("name"), Ok(Some("a \"b\"\n".into())));
        assert_eq!(c.string("lit"), Ok(Some("c:\\d".into())));
        assert_eq!(c.f64_list("xs"), Ok(Some(vec![1.0, 2.5, -3.0])));
        assert_eq!(c.f64("missing"), Ok(None));
    }

    #[test]
    fn wrong_types_and_unknown_keys_name_the_key() {
        let c = config(&[("rate", "\"fast\""), ("typo", "1")]);
        let e = c.f64("rate").unwrap_err();
        assert!(e.0.contains("`rate`") && e.0.contains("a number"), "{e}");
        let e = c.expect_keys(&["rate"]).unwrap_err();
        assert!(e.0.contains("`typo`") && e.0.contains("rate"), "{e}");
    }
}
