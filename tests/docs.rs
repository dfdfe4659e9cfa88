//! The documentation runs: every fenced block of shell commands and every
//! scenario excerpt in `README.md` and the user guide (`docs/src/`) is
//! executed, so the documentation cannot drift from the program.
//!
//! A block may carry a marker, an HTML comment on the line right above its
//! fence:
//!
//! - `<!-- docs: reduced [--generations N] [KEY=VALUE ...] -->` (`sh`):
//!   every `run` in the block runs on a reduced budget: N generations, and
//!   the scenario it names with each dotted KEY set to the TOML VALUE (the
//!   test writes a scenario beside it that `extends` it with those fields,
//!   e.g. `lifetime.steps=100`, and runs that instead);
//! - `<!-- docs: file PATH -->` (`toml`): the block is written to PATH in
//!   the chapter's folder (later blocks run it) and validated;
//! - `<!-- docs: excerpt of PATH -->` (`toml`): the block is merged into the
//!   shipped scenario PATH (tables key by key, arrays replaced) and the
//!   result validated;
//! - `<!-- docs: synopsis -->`: usage lines; every `--flag` each line names
//!   must be in that command's `--help`;
//! - `<!-- docs: not-run: REASON -->`: commands a test cannot run (the test
//!   command itself, a CUDA or MPI build, a cluster); the reason is required.
//!
//! Without a marker a `sh` block runs as written and a `toml` block must be
//! a whole scenario that validates. Blocks in other languages (`text`,
//! output) are not commands. Each chapter runs in a folder of its own that
//! holds a copy of `scenarios/`, its blocks in order, so a chapter's tour
//! can build on its earlier steps. In `sh` blocks, `lineage ARGS` and
//! `cargo run --release -- ARGS` run the binary under test, and `make` the
//! system's make; anything else must be marked.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// One fenced block.
#[derive(Debug, PartialEq)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// The fence's info string (`sh`, `toml`, ...).
    lang: String,
    /// The marker above the fence, without `<!-- docs:` and `-->`.
    marker: Option<String>,
    body: String,
}

/// The fenced blocks of a Markdown text.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let marker = i
            .checked_sub(1)
            .and_then(|j| lines[j].trim().strip_prefix("<!-- docs:"))
            .and_then(|m| m.strip_suffix("-->"))
            .map(|m| m.trim().to_owned());
        let start = i;
        let mut body = String::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        out.push(Block {
            line: start + 1,
            lang: lang.trim().to_owned(),
            marker,
            body,
        });
        i += 1;
    }
    out
}

/// Splits a command line into words: whitespace separates, single and
/// double quotes group, an unquoted `#` after whitespace starts a comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '#') if word.is_none() => break,
            (None, c) if c.is_whitespace() => out.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(word);
    out
}

/// The Markdown files of the documentation.
fn documents() -> Vec<PathBuf> {
    let root = common::root();
    let mut files = vec![root.join("README.md")];
    let mut stack = vec![root.join("docs/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Copies `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// `over` merged into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Where a block is, for messages.
fn at(doc: &Path, block: &Block) -> String {
    let rel = doc.strip_prefix(common::root()).unwrap_or(doc);
    format!("{}:{}", rel.display(), block.line)
}

/// Runs `program args` in `dir`, requiring success.
fn run(dir: &Path, program: &str, args: &[String], what: &str) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run `{program}`: {e}"));
    common::assert_success(&out, what);
}

/// What running every document did.
#[derive(Default)]
struct Tally {
    commands: usize,
    scenarios: usize,
    synopses: usize,
    not_run: Vec<String>,
}

/// What a `reduced` marker asks for: fewer generations, and fields of the
/// scenario a `run` names set to other values.
#[derive(Debug, Default, PartialEq)]
struct Reduced {
    generations: Option<String>,
    fields: Vec<(String, toml::Value)>,
}

impl Reduced {
    /// The `reduced` marker's words, if the marker is one.
    fn parse(marker: &str, what: &str) -> Option<Reduced> {
        let rest = marker.strip_prefix("reduced")?;
        let mut reduced = Reduced::default();
        let mut words = rest.split_whitespace();
        while let Some(word) = words.next() {
            if word == "--generations" {
                reduced.generations = Some(
                    words
                        .next()
                        .unwrap_or_else(|| panic!("{what}: `--generations` needs a number"))
                        .to_owned(),
                );
            } else if let Some((key, value)) = word.split_once('=') {
                let parsed: toml::Table = toml::from_str(&format!("v = {value}"))
                    .unwrap_or_else(|e| panic!("{what}: `{word}` is not KEY=TOML-VALUE: {e}"));
                reduced.fields.push((key.to_owned(), parsed["v"].clone()));
            } else {
                panic!("{what}: unknown word `{word}` in a reduced marker");
            }
        }
        Some(reduced)
    }

    /// `args` of a `run` on the reduced budget: the scenario named by one
    /// that `extends` it with the marker's fields (written beside it, in
    /// `dir`), and the generations.
    fn apply(&self, dir: &Path, mut args: Vec<String>, line: usize) -> Vec<String> {
        if let Some(n) = &self.generations {
            args.extend(["--generations".into(), n.clone()]);
        }
        let scenario = args.iter_mut().skip(1).find(|a| a.ends_with(".toml"));
        if let (false, Some(scenario)) = (self.fields.is_empty(), scenario) {
            let path = Path::new(scenario.as_str());
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut table = toml::Table::new();
            table.insert("extends".into(), toml::Value::String(name.clone()));
            for (key, value) in &self.fields {
                let mut at = &mut table;
                let mut parts: Vec<&str> = key.split('.').collect();
                let last = parts.pop().unwrap();
                for part in parts {
                    at = at
                        .entry(part)
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                        .as_table_mut()
                        .unwrap();
                }
                at.insert(last.into(), value.clone());
            }
            let reduced = path.with_file_name(format!("docs-reduced-{line}-{name}"));
            std::fs::write(dir.join(&reduced), toml::to_string(&table).unwrap()).unwrap();
            *scenario = reduced.to_string_lossy().into_owned();
        }
        args
    }
}

/// Runs one `sh` block's commands in `dir`.
fn run_shell(dir: &Path, doc: &Path, block: &Block, tally: &mut Tally) {
    let reduced = block
        .marker
        .as_deref()
        .and_then(|m| Reduced::parse(m, &at(doc, block)));
    for line in block.body.lines() {
        for command in line.split("&&") {
            let mut w = words(command);
            if w.is_empty() {
                continue;
            }
            let what = format!("{} `{}`", at(doc, block), command.trim());
            let args = match w[0].as_str() {
                "lineage" => w.split_off(1),
                "cargo" if w[1..].starts_with(&["run", "--release", "--"].map(String::from)) => {
                    w.split_off(4)
                }
                "make" => {
                    run(dir, "make", &w[1..], &what);
                    tally.commands += 1;
                    continue;
                }
                other => panic!(
                    "{what}: the docs test does not know how to run `{other}`; mark the block `<!-- docs: not-run: REASON -->` if a test cannot run it"
                ),
            };
            let mut args = match (&reduced, args.first().map(String::as_str)) {
                (Some(reduced), Some("run")) => reduced.apply(dir, args, block.line),
                _ => args,
            };
            if args.first().is_some_and(|a| a == "run" || a == "resume") {
                args.push("--quiet".into());
            }
            run(dir, env!("CARGO_BIN_EXE_lineage"), &args, &what);
            tally.commands += 1;
        }
    }
}

/// Validates one `toml` block in `dir`.
fn check_scenario(dir: &Path, doc: &Path, block: &Block, tally: &mut Tally) {
    let what = at(doc, block);
    let parsed: toml::Table = toml::from_str(&block.body)
        .unwrap_or_else(|e| panic!("{what}: the block is not TOML: {e}"));
    let path = match block.marker.as_deref() {
        Some(m) if m.starts_with("file ") => {
            let path = dir.join(m["file ".len()..].trim());
            std::fs::write(&path, &block.body).unwrap();
            path
        }
        Some(m) if m.starts_with("excerpt of ") => {
            let base = m["excerpt of ".len()..].trim();
            let text = std::fs::read_to_string(dir.join(base))
                .unwrap_or_else(|e| panic!("{what}: cannot read the base scenario {base}: {e}"));
            let mut table: toml::Table = toml::from_str(&text).unwrap();
            merge(&mut table, parsed);
            let path = Path::new(base).with_file_name(format!("docs-excerpt-{}.toml", block.line));
            let path = dir.join(path);
            std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
            path
        }
        None => {
            let path = dir.join(format!("docs-block-{}.toml", block.line));
            std::fs::write(&path, &block.body).unwrap();
            path
        }
        Some(other) => panic!("{what}: unknown marker `{other}` on a toml block"),
    };
    let args = vec!["validate".to_owned(), path.display().to_string()];
    run(
        dir,
        env!("CARGO_BIN_EXE_lineage"),
        &args,
        &format!("{what}: the scenario"),
    );
    tally.scenarios += 1;
}

/// Checks a usage block: each `--flag` of each `lineage SUB ...` line is in
/// `lineage SUB --help`.
fn check_synopsis(doc: &Path, block: &Block, tally: &mut Tally) {
    let mut command: Vec<String> = Vec::new();
    for line in block.body.lines() {
        let w = words(line);
        if w.first().is_some_and(|w| w == "lineage") {
            command = w[1..]
                .iter()
                .take_while(|a| a.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                .filter(|a| !a.starts_with('-'))
                .cloned()
                .collect();
        }
        let flags: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || "[]|".contains(c))
            .filter(|t| t.starts_with("--"))
            .collect();
        if flags.is_empty() {
            continue;
        }
        let mut args = command.clone();
        args.push("--help".into());
        let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(&args)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            assert!(
                help.contains(flag),
                "{}: `lineage {}` has no `{flag}` in its --help:\n{help}",
                at(doc, block),
                command.join(" ")
            );
        }
        tally.synopses += 1;
    }
}

#[test]
fn every_command_and_scenario_in_the_documentation_runs() {
    let mut tally = Tally::default();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &common::root().join("scenarios"),
            &dir.path().join("scenarios"),
        );
        for block in blocks(&text) {
            match (block.lang.as_str(), block.marker.as_deref()) {
                (_, Some(m)) if m.starts_with("not-run:") => {
                    let reason = m["not-run:".len()..].trim();
                    assert!(
                        !reason.is_empty(),
                        "{}: a not-run block needs a reason",
                        at(&doc, &block)
                    );
                    tally
                        .not_run
                        .push(format!("{}: {reason}", at(&doc, &block)));
                }
                (_, Some("synopsis")) => check_synopsis(&doc, &block, &mut tally),
                ("sh" | "console" | "bash", _) => run_shell(dir.path(), &doc, &block, &mut tally),
                ("toml", _) => check_scenario(dir.path(), &doc, &block, &mut tally),
                _ => {}
            }
        }
    }
    eprintln!(
        "docs: {} commands run, {} scenarios validated, {} usage lines checked; not run:\n  {}",
        tally.commands,
        tally.scenarios,
        tally.synopses,
        tally.not_run.join("\n  ")
    );
    assert!(tally.commands >= 10, "only {} commands ran", tally.commands);
    assert!(
        tally.scenarios >= 3,
        "only {} scenarios were validated",
        tally.scenarios
    );
    assert!(
        tally.synopses >= 5,
        "only {} usage lines were checked",
        tally.synopses
    );
    assert!(
        tally.not_run.len() <= 8,
        "{} blocks are not run; keep them few:\n{}",
        tally.not_run.len(),
        tally.not_run.join("\n")
    );
}

#[test]
fn blocks_carry_their_language_and_marker() {
    let text = "text\n<!-- docs: reduced --generations 2 -->\n```sh\nlineage run x.toml  # why\n```\n\n```toml\na = 1\n```\n";
    let got = blocks(text);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].lang, "sh");
    assert_eq!(got[0].marker.as_deref(), Some("reduced --generations 2"));
    let reduced = Reduced::parse("reduced --generations 2 lifetime.steps=100 seed=3", "here");
    assert_eq!(
        reduced,
        Some(Reduced {
            generations: Some("2".into()),
            fields: vec![
                ("lifetime.steps".into(), toml::Value::Integer(100)),
                ("seed".into(), toml::Value::Integer(3)),
            ],
        })
    );
    assert_eq!(got[0].line, 3);
    assert_eq!(words(&got[0].body), ["lineage", "run", "x.toml"]);
    assert_eq!(got[1].lang, "toml");
    assert_eq!(got[1].marker, None);
    assert_eq!(got[1].body, "a = 1\n");
}

#[test]
fn words_keep_quoted_text_together() {
    assert_eq!(
        words(r#"lineage run "my scenario.toml" --seed 3 # a comment"#),
        ["lineage", "run", "my scenario.toml", "--seed", "3"]
    );
    assert_eq!(words("make -C 'a b'"), ["make", "-C", "a b"]);
}
